"""The SECDED code of the SRAM words: its one definition, shared by the golden model and
the HDL.

An *ECC word* is one superlane's part of one SRAM word: ``lanes`` bytes, ``k = 8 *
lanes`` data bits (lane ``i``, bit ``b`` is data bit ``8i + b``). Its check bits are an
extended Hamming code (single error correction, double error detection):

* ``r`` Hamming bits, the least ``r`` with ``2**r >= k + r + 1`` (:func:`hamming_bits`),
  plus one overall parity bit: :func:`check_bits` ``= r + 1`` (k = 128 gives 9, as on
  the real chip; tiny and fpga, 4 lanes: k = 32, 7 bits; small, 8 lanes: k = 64, 8 bits);
* data bit ``j`` sits at Hamming position :func:`data_positions` ``[j]``: the ``j``-th
  of 1, 2, 3, .. that is not a power of two; Hamming bit ``i`` is the parity of the data
  bits whose position has bit ``i`` set (its own position is ``2**i``);
* the overall parity bit makes the parity of all ``k + r + 1`` bits even.

Stored check word: Hamming bit ``i`` in bit ``i``, the overall parity in bit ``r``.
*Bit index* (fault injection, :meth:`lpu.golden.chip.Chip.inject`): ``0 .. k-1`` the
data bits, ``k + i`` Hamming bit ``i``, ``k + r`` the overall parity bit.

Decoding a stored ``(data, check)``: the *syndrome* ``s`` (``r`` bits) is the recomputed
Hamming bits XOR the stored ones; ``p`` is the parity of every stored bit.

=======  =======================  ===================================================
``p``    ``s``                    outcome
=======  =======================  ===================================================
0        0                        no error
1        0                        the overall parity bit flipped: corrected (data good)
1        a power of two ``2**i``  Hamming bit ``i`` flipped: corrected (data good)
1        a data position          that data bit flipped: corrected (flipped back)
1        above ``k + r``          more than two bits flipped: detected
0        not 0                    two bits flipped: detected (uncorrectable)
=======  =======================  ===================================================

The *report* of a decode (the ``data`` of an ``ecc`` trace event, docs/trace.md) is
``s | p << r``, two bytes little-endian. This module only defines the code; the golden
model (:mod:`lpu.golden.ecc`, numpy parity over a bit matrix) and the HDL
(:mod:`lpu.hdl.ecc`, XOR trees) implement it independently, and tests compare them.
"""

from __future__ import annotations

import functools

__all__ = ["hamming_bits", "check_bits", "data_positions", "hamming_masks", "REPORT_BYTES"]

#: Bytes of an ``ecc`` event's data (the decode report).
REPORT_BYTES = 2


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"ECC data width must be a positive integer, not {k!r}")
    return k


@functools.cache
def hamming_bits(k: int) -> int:
    """Hamming check bits ``r`` of a ``k``-bit word: the least with ``2**r >= k + r + 1``."""
    _check_k(k)
    r = 1
    while (1 << r) < k + r + 1:
        r += 1
    return r


def check_bits(k: int) -> int:
    """Stored check bits of a ``k``-bit word: the Hamming bits and the overall parity."""
    return hamming_bits(k) + 1


@functools.cache
def data_positions(k: int) -> tuple[int, ...]:
    """Hamming position (1-based) of each data bit: the positions that are not powers
    of two, in order."""
    _check_k(k)
    out, p = [], 1
    while len(out) < k:
        if p & (p - 1):
            out.append(p)
        p += 1
    return tuple(out)


@functools.cache
def hamming_masks(k: int) -> tuple[int, ...]:
    """For each Hamming bit ``i``, the data bits it covers, as a ``k``-bit mask."""
    pos = data_positions(k)
    return tuple(sum(1 << j for j, p in enumerate(pos) if p >> i & 1)
                 for i in range(hamming_bits(k)))
