"""The golden model's SECDED encoder and decoder (the code: :mod:`lpu.ecc`).

Numpy parity over a bit matrix: an ECC word of ``L`` bytes is unpacked into ``k = 8L``
bits, the Hamming bits are ``bits @ H.T mod 2`` with ``H[i, j] = 1`` where data bit
``j``'s position has bit ``i`` set; a syndrome names the flipped bit by a lookup table
from positions to bit indices. Written apart from the HDL's XOR trees
(:mod:`lpu.hdl.ecc`) so that tests compare two implementations of one code.

Shapes: ``data`` uint8 [..., L]; ``check`` uint16 [...] (the stored check word).
"""

from __future__ import annotations

import functools

import numpy as np

from lpu.ecc import check_bits, data_positions, hamming_bits

__all__ = ["encode", "decode", "width", "OK", "CORRECTED", "DETECTED"]

OK, CORRECTED, DETECTED = 0, 1, 2


@functools.cache
def _tables(L: int):
    k = 8 * L
    r = hamming_bits(k)
    pos = np.array(data_positions(k), dtype=np.int64)
    H = ((pos[None, :] >> np.arange(r)[:, None]) & 1).astype(np.int64)  # [r, k]
    # syndrome -> bit index to flip (-1: none / uncorrectable), for p = 1
    flip = np.full(1 << r, -1, dtype=np.int64)
    flip[pos] = np.arange(k)
    for i in range(r):
        flip[1 << i] = k + i
    flip[0] = k + r
    return k, r, H, flip


def _bits(data: np.ndarray) -> np.ndarray:
    """uint8 [..., L] -> int64 bits [..., 8L], data bit 8i + b = bit b of byte i."""
    return np.unpackbits(data.astype(np.uint8), axis=-1, bitorder="little").astype(np.int64)


def encode(data) -> np.ndarray:
    """The check word (uint16 [...]) of each ECC word of `data` (uint8 [..., L])."""
    data = np.asarray(data, dtype=np.uint8)
    k, r, H, _ = _tables(data.shape[-1])
    bits = _bits(data)
    ham = (bits @ H.T) & 1  # [..., r]
    overall = (bits.sum(axis=-1) + ham.sum(axis=-1)) & 1
    weights = 1 << np.arange(r)
    return ((ham * weights).sum(axis=-1) | overall << r).astype(np.uint16)


def decode(data, check):
    """Decode stored words: ``(corrected data uint8 [..., L], status [...] (OK, CORRECTED,
    DETECTED), report [...] (syndrome | parity << r, :mod:`lpu.ecc`))``. A DETECTED word's
    data is returned as stored."""
    data = np.asarray(data, dtype=np.uint8)
    check = np.asarray(check, dtype=np.int64)
    k, r, H, flip = _tables(data.shape[-1])
    bits = _bits(data)
    stored = (check[..., None] >> np.arange(r + 1)) & 1  # [..., r + 1]
    syn_bits = ((bits @ H.T) + stored[..., :r]) & 1
    syndrome = (syn_bits * (1 << np.arange(r))).sum(axis=-1)
    parity = (bits.sum(axis=-1) + stored.sum(axis=-1)) & 1
    report = syndrome | parity << r
    idx = np.where(parity == 1, flip[syndrome], -1)
    status = np.where(report == 0, OK,
                      np.where((parity == 1) & (idx >= 0), CORRECTED, DETECTED))
    fix = np.zeros_like(bits)
    sel = (status == CORRECTED) & (idx < k)
    fix[sel, idx[sel]] = 1
    out = np.packbits((bits ^ fix).astype(np.uint8), axis=-1, bitorder="little")
    return out.astype(np.uint8), status, report


def width(L: int) -> int:
    """Stored bits of an ECC word of `L` bytes: data and check bits."""
    return 8 * L + check_bits(8 * L)
