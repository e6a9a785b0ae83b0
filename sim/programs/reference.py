"""The reference arithmetic of the directed programs, independent of :mod:`lpu.golden`.

Expected values of every VXM operation, lane by lane, computed with Python integers
and floats: fp32 in float64, then rounded to binary32 (exact for ``+ - *`` since
53 >= 2 * 24 + 2); subnormal inputs read as zero and results flushed to zero after
rounding; NaN results canonical, as ``docs/numerics.md`` says. Written apart from the
golden model's numpy arithmetic on purpose: the directed tests compare the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lpu.isa import BY_MNEMONIC

__all__ = ["REFERENCE", "reference", "M32", "bits_f32"]

M32 = (1 << 32) - 1


def bits_f32(v: int) -> float:
    """The float value of the binary32 pattern `v`."""
    return float(np.array([v], dtype=np.uint32).view(np.float32)[0])


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def _is_nan(b: int) -> bool:
    return (b >> 23) & 0xFF == 0xFF and b & 0x7FFFFF != 0


def _daz_bits(b: int) -> int:
    """A subnormal input is read as zero of its sign."""
    return b & 0x80000000 if (b >> 23) & 0xFF == 0 else b


def _daz(b: int) -> float:
    """The fp32 input `b` (bits) as a Python float, subnormals read as zero of their sign."""
    return bits_f32(_daz_bits(b))


def _to_bits(x: float) -> int:
    """Round a float64 to binary32 (nearest even, gradual underflow), then flush a
    subnormal result to zero of its sign and make a NaN canonical."""
    with np.errstate(all="ignore"):
        b = int(np.array([x], dtype=np.float64).astype(np.float32).view(np.uint32)[0])
    if _is_nan(b):
        return 0x7FC00000
    return _daz_bits(b)


def _f_arith(fn):
    def op(a, b):
        if _is_nan(a) or _is_nan(b):
            return 0x7FC00000
        with np.errstate(all="ignore"):
            return _to_bits(float(fn(np.float64(_daz(a)), np.float64(_daz(b)))))
    return op


def _fminmax(a: int, b: int, want_min: bool) -> int:
    if _is_nan(a) or _is_nan(b):
        return 0x7FC00000
    a, b = _daz_bits(a), _daz_bits(b)
    x, y = bits_f32(a), bits_f32(b)
    if x == y == 0:  # -0 is below +0 here: min(-0, +0) = -0, max(-0, +0) = +0
        signs = {math.copysign(1.0, x), math.copysign(1.0, y)}
        if want_min:
            return 0x80000000 if -1.0 in signs else 0
        return 0 if 1.0 in signs else 0x80000000
    if x == y:
        return a
    return a if (x < y) == want_min else b


def _fcmp(fn):
    def op(a, b):
        if _is_nan(a) or _is_nan(b):
            return 0
        return M32 if fn(_daz(a), _daz(b)) else 0
    return op


def _round_sat(x: float, lo: int, hi: int) -> int:
    """Round half to even and saturate; NaN gives 0."""
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return hi if x > 0 else lo
    return max(lo, min(hi, round(x)))  # Python's round() of a float: ties to even


def _fneg(a: int) -> int:
    return 0x7FC00000 if _is_nan(a) else _to_bits(-_daz(a))


def _fabs(a: int) -> int:
    return 0x7FC00000 if _is_nan(a) else _to_bits(abs(_daz(a)))


_FMUL = _f_arith(lambda x, y: x * y)

#: mnemonic -> per-lane function of Python ints (32-bit lanes as unsigned bits; one-byte
#: lanes as 0..255); "imm" operands are passed last.
REFERENCE: dict[str, Callable[..., int]] = {
    "add": lambda a, b: (a + b) & M32,
    "sub": lambda a, b: (a - b) & M32,
    "mul": lambda a, b: (_s32(a) * _s32(b)) & M32,
    "min": lambda a, b: min(_s32(a), _s32(b)) & M32,
    "max": lambda a, b: max(_s32(a), _s32(b)) & M32,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "shl": lambda a, b: (a << (b & 31)) & M32,
    "shr": lambda a, b: a >> (b & 31),
    "sra": lambda a, b: (_s32(a) >> (b & 31)) & M32,
    "shli": lambda a, i: (a << i) & M32,
    "shri": lambda a, i: a >> i,
    "srai": lambda a, i: (_s32(a) >> i) & M32,
    "eq": lambda a, b: M32 if a == b else 0,
    "lt": lambda a, b: M32 if _s32(a) < _s32(b) else 0,
    "le": lambda a, b: M32 if _s32(a) <= _s32(b) else 0,
    "sel": lambda a, b, c: a if c != 0 else b,
    "fadd": _f_arith(lambda x, y: x + y),
    "fsub": _f_arith(lambda x, y: x - y),
    "fmul": _FMUL,
    "fmin": lambda a, b: _fminmax(a, b, True),
    "fmax": lambda a, b: _fminmax(a, b, False),
    "feq": _fcmp(lambda x, y: x == y),
    "flt": _fcmp(lambda x, y: x < y),
    "fle": _fcmp(lambda x, y: x <= y),
    "fneg": _fneg,
    "fabs": _fabs,
    "cvt.i8.i32": lambda a: (a - 256 if a >= 128 else a) & M32,
    "cvt.i32.i8": lambda a: max(-128, min(127, _s32(a))) & 0xFF,
    "cvt.i32.f32": lambda a: _to_bits(float(_s32(a))),
    "cvt.f32.i32": lambda a: _round_sat(_daz(a), -(1 << 31), (1 << 31) - 1) & M32,
    "cvt.f32.i8": lambda a, s: _round_sat(_daz(_FMUL(a, s)), -128, 127) & 0xFF,
    "mov": lambda a: a,
    "mov32": lambda a: a,
}


def reference(mnemonic: str, *operands, imm: int | None = None) -> np.ndarray:
    """The expected result of a VXM operation, lane by lane (uint32, or uint8 for a
    one-stream result), from operand arrays [VL] (uint32, or uint8 for one stream)."""
    fn = REFERENCE[mnemonic]
    cols = [np.asarray(o).astype(np.int64).tolist() for o in operands]
    extra = () if imm is None else (imm,)
    out = [fn(*(int(c) for c in lane), *extra) for lane in zip(*cols, strict=True)]
    wide = BY_MNEMONIC[mnemonic].operands[0].width == 4
    return np.array(out, dtype=np.uint32 if wide else np.uint8)
