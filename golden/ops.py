"""What each slice instruction computes from its operands: one definition, for any batch.

Both executors of the golden model call these functions: the cycle-by-cycle
interpreter (:mod:`lpu.golden.chip`, one instruction at a time) and the dataflow
evaluator (:mod:`lpu.golden.dataflow`, every instruction of one opcode and depth at
once). Every function works on a leading batch shape ``...`` (empty for one
instruction) and never on time: *when* operands are read and results written is
docs/timing.md, implemented by the executors.

Vectors are ``uint8`` rows of VL lanes, one row per stream (SRAM word, weight row);
32-bit lane values travel as four byte planes (:mod:`lpu.vectors`).
"""

from __future__ import annotations

import numpy as np

from lpu.config import ChipConfig
from lpu.isa import OPS, Opcode
from lpu.vectors import from_planes, to_planes

from . import numerics as nm

__all__ = ["vxm", "lane_map", "lanes", "perm_map", "gather_addresses", "mm", "delay"]


def vxm(op: Opcode, rd, imm=0) -> np.ndarray:
    """The rows a VXM ALU instruction writes to ``dst``: ``[..., 4, VL]`` (32-bit
    results) or ``[..., 1, VL]`` (8-bit results).

    ``rd(name)`` returns operand `name` as ``[..., width, VL]`` uint8 (width as in
    :data:`lpu.isa.OPS`); operands are read in assembly order, ``a`` first (an
    executor that checks as it reads names the first bad operand). ``imm`` is the
    immediate of ``shli`` / ``shri`` / ``srai``: an int, or an int array ``[..., 1]``.
    """
    O = Opcode

    def r32(name):
        return from_planes(rd(name))

    if op in _INT_BIN:
        x, y = r32("a"), r32("b")
        res = _INT_BIN[op](x, y)
    elif op in _F_BIN:
        x, y = r32("a"), r32("b")
        res = _F_BIN[op](x, y)
    elif op in (O.SHLI, O.SHRI, O.SRAI):
        x = r32("a")
        sh = np.asarray(imm) & 31
        if op == O.SHLI:
            res = x << sh.astype(np.uint32)
        elif op == O.SHRI:
            res = x >> sh.astype(np.uint32)
        else:
            res = (x.view(np.int32) >> sh.astype(np.int32)).view(np.uint32)
    elif op == O.SEL:
        x, y, c = r32("a"), r32("b"), r32("c")
        res = np.where(c != 0, x, y).astype(np.uint32)
    elif op == O.FNEG:
        res = nm.fneg(r32("a"))
    elif op == O.FABS:
        res = nm.fabs(r32("a"))
    elif op == O.CVT_I8_I32:
        res = nm.cvt_i8_i32(rd("a")[..., 0, :])
    elif op == O.CVT_I32_I8:
        return nm.cvt_i32_i8(r32("a"))[..., None, :]
    elif op == O.CVT_I32_F32:
        res = nm.cvt_i32_f32(r32("a"))
    elif op == O.CVT_F32_I32:
        res = nm.cvt_f32_i32(r32("a"))
    elif op == O.CVT_F32_I8:
        x, scale = r32("a"), r32("scale")
        return nm.cvt_f32_i8(x, scale)[..., None, :]
    elif op == O.MOV:
        return rd("a").copy()
    elif op == O.MOV32:
        res = r32("a").copy()
    else:
        raise ValueError(f"Opcode must be a VXM operation, not {op.name}")
    return to_planes(res)


def lane_map(op: Opcode, n: int, vl: int) -> np.ndarray:
    """For ``shift`` / ``rot`` (``n``) and ``bcast`` (``lane`` = ``n``): the source lane
    of each destination lane, int64 ``[VL]``; ``-1`` where the lane becomes 0."""
    lane = np.arange(vl)
    if op == Opcode.SHIFT:
        j = lane - n
        return np.where((j >= 0) & (j < vl), j, -1)
    if op == Opcode.ROT:
        return (lane - n) % vl
    if op == Opcode.BCAST:
        return np.full(vl, n, dtype=np.int64)
    raise ValueError(f"Opcode must be shift, rot or bcast, not {op.name}")


def lanes(src: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``[..., VL]`` rows moved across lanes by a :func:`lane_map`."""
    out = src[..., np.maximum(cols, 0)]
    out[..., cols < 0] = 0
    return out


def perm_map(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ``perm`` map from its two streams ``[..., 2, VL]`` (low byte first): the source
    lanes ``[..., VL]`` (int64) and where they are not below VL (bool)."""
    mp = rows.astype(np.int64)
    mp = mp[..., 0, :] | (mp[..., 1, :] << 8)
    return mp, mp >= rows.shape[-1]


def gather_addresses(cfg: ChipConfig, base, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ``gather``'s SRAM address per lane (``base + idx``, int64 ``[..., VL]``) and
    where it leaves the bank of ``base`` or the slice (bool)."""
    addrs = np.asarray(base)[..., None] + idx.astype(np.int64)
    bank = np.asarray(base)[..., None] // cfg.bank_words
    return addrs, (addrs // cfg.bank_words != bank) | (addrs >= cfg.mem_words)


def mm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ W``: int8 ``[..., VL]`` times int8 ``[..., VL, VL]``, exact int32 ``[..., VL]``."""
    y = x.astype(np.int32)[..., None, :] @ w.astype(np.int32)
    return y[..., 0, :]


def delay(cfg: ChipConfig, op: Opcode) -> int:
    """Cycles from dispatch to an instruction's last effect on superlane 0 (its
    functional delay, :meth:`lpu.isa.OpInfo.d`)."""
    return OPS[op].d(cfg.superlanes)


_INT_BIN = {
    Opcode.ADD: lambda x, y: (x + y).astype(np.uint32),
    Opcode.SUB: lambda x, y: (x - y).astype(np.uint32),
    Opcode.MUL: lambda x, y: (x.astype(np.uint64) * y.astype(np.uint64)).astype(np.uint32),
    Opcode.MIN: lambda x, y: np.minimum(x.view(np.int32), y.view(np.int32)).view(np.uint32),
    Opcode.MAX: lambda x, y: np.maximum(x.view(np.int32), y.view(np.int32)).view(np.uint32),
    Opcode.AND: lambda x, y: x & y,
    Opcode.OR: lambda x, y: x | y,
    Opcode.XOR: lambda x, y: x ^ y,
    Opcode.SHL: lambda x, y: x << (y & np.uint32(31)),
    Opcode.SHR: lambda x, y: x >> (y & np.uint32(31)),
    Opcode.SRA: lambda x, y: (x.view(np.int32) >> (y & np.uint32(31)).astype(np.int32)).view(
        np.uint32),
    Opcode.EQ: lambda x, y: np.where(x == y, np.uint32(0xFFFFFFFF), np.uint32(0)),
    Opcode.LT: lambda x, y: np.where(x.view(np.int32) < y.view(np.int32), np.uint32(0xFFFFFFFF),
                                     np.uint32(0)),
    Opcode.LE: lambda x, y: np.where(x.view(np.int32) <= y.view(np.int32),
                                     np.uint32(0xFFFFFFFF), np.uint32(0)),
}

_F_BIN = {
    Opcode.FADD: nm.fadd, Opcode.FSUB: nm.fsub, Opcode.FMUL: nm.fmul,
    Opcode.FMIN: nm.fmin, Opcode.FMAX: nm.fmax,
    Opcode.FEQ: nm.feq, Opcode.FLT: nm.flt, Opcode.FLE: nm.fle,
}
