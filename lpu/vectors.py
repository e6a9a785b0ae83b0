"""How 32-bit lane values sit in the machine: byte planes, one definition.

A vector of 32-bit lanes (int32 or fp32) travels on four consecutive streams and sits
in four consecutive SRAM words: plane ``i`` holds byte ``i`` of every lane, least
significant first (docs/architecture.md, "wider data"). These functions convert
between lane values and planes; every module that packs or unpacks 32-bit vectors
uses them.

Shapes: ``to_planes`` maps ``[..., VL]`` 32-bit values to ``[..., 4, VL]`` uint8;
``from_planes`` the reverse (to uint32); ``to_words`` / ``from_words`` work on the flat
``[4n, VL]`` word sequence of ``n`` vectors as it lies in SRAM.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLANES", "to_planes", "from_planes", "to_words", "from_words"]

#: Streams (and SRAM words) of one 32-bit vector.
PLANES = 4


def to_planes(v) -> np.ndarray:
    """``[..., VL]`` 32-bit values -> ``[..., 4, VL]`` uint8 byte planes, LSB first."""
    u = np.ascontiguousarray(np.asarray(v).astype("<u4", copy=False))
    b = u.view(np.uint8).reshape(*u.shape, PLANES)
    return np.ascontiguousarray(np.moveaxis(b, -1, -2))


def from_planes(w) -> np.ndarray:
    """``[..., 4, VL]`` uint8 byte planes -> ``[..., VL]`` uint32."""
    b = np.asarray(w, dtype=np.uint8)
    if b.shape[-2] != PLANES:
        raise ValueError(f"Byte planes must have {PLANES} planes on axis -2, not shape {b.shape}")
    lanes = np.ascontiguousarray(np.moveaxis(b, -2, -1))
    return lanes.view("<u4").reshape(b.shape[:-2] + (b.shape[-1],)).astype(np.uint32, copy=False)


def to_words(x) -> np.ndarray:
    """``[n, VL]`` 32-bit vectors -> ``[4n, VL]`` uint8 SRAM words (vector ``i`` at words
    ``4i .. 4i+3``)."""
    p = to_planes(x)
    return p.reshape(-1, p.shape[-1])


def from_words(w, n: int | None = None) -> np.ndarray:
    """``[4n, VL]`` uint8 SRAM words -> ``[n, VL]`` uint32 (the inverse of :func:`to_words`)."""
    w = np.asarray(w, dtype=np.uint8)
    n = w.shape[0] // PLANES if n is None else n
    return from_planes(w[:PLANES * n].reshape(n, PLANES, w.shape[-1]))
