"""The chip's arithmetic, bit for bit, on numpy arrays of raw 32-bit patterns.

Every function takes and returns ``np.uint32`` arrays holding the bits of the
lane values (int32 two's complement or IEEE binary32), except where noted.

fp32 rules (the same in the HDL):

* IEEE-754 binary32, round to nearest, ties to even;
* subnormal inputs are read as zero of the same sign (DAZ);
* a subnormal result (computed with gradual underflow, as numpy float32 does) is
  replaced by zero of the same sign (FTZ);
* every NaN result is the canonical quiet NaN ``0x7FC00000``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CANONICAL_NAN", "ftz", "canon", "fadd", "fsub", "fmul", "fmin", "fmax", "feq", "flt",
    "fle", "fneg", "fabs", "cvt_i32_f32", "cvt_f32_i32", "cvt_f32_i8", "cvt_i32_i8",
    "cvt_i8_i32", "to_f32", "from_f32", "f32_bits",
]

CANONICAL_NAN = np.uint32(0x7FC00000)
_SIGN = np.uint32(0x80000000)
_EXP = np.uint32(0x7F800000)
_MANT = np.uint32(0x007FFFFF)
_TRUE = np.uint32(0xFFFFFFFF)


def to_f32(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def from_f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def f32_bits(v: float) -> int:
    """The binary32 bit pattern of the Python float `v` (rounded to nearest even)."""
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def ftz(bits: np.ndarray) -> np.ndarray:
    """Replace subnormal patterns by zero of the same sign."""
    bits = np.asarray(bits, dtype=np.uint32)
    sub = ((bits & _EXP) == 0) & ((bits & _MANT) != 0)
    return np.where(sub, bits & _SIGN, bits).astype(np.uint32)


def canon(bits: np.ndarray) -> np.ndarray:
    """Flush subnormal results to zero and make every NaN canonical."""
    bits = ftz(bits)
    nan = ((bits & _EXP) == _EXP) & ((bits & _MANT) != 0)
    return np.where(nan, CANONICAL_NAN, bits).astype(np.uint32)


def _binary(fn, a, b):
    fa, fb = to_f32(ftz(a)), to_f32(ftz(b))
    with np.errstate(all="ignore"):
        r = fn(fa, fb).astype(np.float32)
    return canon(from_f32(r))


def fadd(a, b):
    return _binary(np.add, a, b)


def fsub(a, b):
    return _binary(np.subtract, a, b)


def fmul(a, b):
    return _binary(np.multiply, a, b)


def _isnan(bits):
    return ((bits & _EXP) == _EXP) & ((bits & _MANT) != 0)


def fmin(a, b):
    a, b = ftz(a), ftz(b)
    fa, fb = to_f32(a), to_f32(b)
    r = np.where(fa < fb, a, b)
    r = np.where(fa == fb, a | b, r)  # min(-0, +0) = -0; equal non-zeros are identical
    r = np.where(_isnan(a) | _isnan(b), CANONICAL_NAN, r)
    return r.astype(np.uint32)


def fmax(a, b):
    a, b = ftz(a), ftz(b)
    fa, fb = to_f32(a), to_f32(b)
    r = np.where(fa > fb, a, b)
    r = np.where(fa == fb, a & b, r)  # max(-0, +0) = +0
    r = np.where(_isnan(a) | _isnan(b), CANONICAL_NAN, r)
    return r.astype(np.uint32)


def _cmp(fn, a, b):
    fa, fb = to_f32(ftz(a)), to_f32(ftz(b))
    with np.errstate(invalid="ignore"):
        return np.where(fn(fa, fb), _TRUE, np.uint32(0)).astype(np.uint32)


def feq(a, b):
    return _cmp(np.equal, a, b)


def flt(a, b):
    return _cmp(np.less, a, b)


def fle(a, b):
    return _cmp(np.less_equal, a, b)


def fneg(a):
    a = ftz(a)
    return np.where(_isnan(a), CANONICAL_NAN, a ^ _SIGN).astype(np.uint32)


def fabs(a):
    a = ftz(a)
    return np.where(_isnan(a), CANONICAL_NAN, a & ~_SIGN).astype(np.uint32)


def cvt_i32_f32(a):
    """int32 -> fp32, round to nearest even (never subnormal)."""
    return from_f32(np.asarray(a, dtype=np.uint32).view(np.int32).astype(np.float32))


def _round_sat(x64: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """float64 values (from fp32) -> round half to even, saturate, NaN -> 0 (int64)."""
    nan = np.isnan(x64)
    with np.errstate(invalid="ignore"):
        r = np.rint(np.where(nan, 0.0, x64))
    r = np.clip(r, lo, hi)
    return r.astype(np.int64)


def cvt_f32_i32(a):
    """fp32 -> int32, round to nearest even, saturated, NaN -> 0."""
    with np.errstate(invalid="ignore"):
        x = to_f32(ftz(a)).astype(np.float64)
    return _round_sat(x, -(1 << 31), (1 << 31) - 1).astype(np.int32).view(np.uint32)


def cvt_f32_i8(a, scale):
    """fmul(a, scale) -> int8 (returned as uint8 bytes), nearest even, saturated, NaN -> 0."""
    with np.errstate(invalid="ignore"):
        y = to_f32(fmul(a, scale)).astype(np.float64)
    return _round_sat(y, -128, 127).astype(np.int8).view(np.uint8)


def cvt_i32_i8(a):
    """int32 -> int8 (uint8 bytes), saturated."""
    v = np.asarray(a, dtype=np.uint32).view(np.int32)
    return np.clip(v, -128, 127).astype(np.int8).view(np.uint8)


def cvt_i8_i32(a):
    """int8 bytes (uint8) -> int32 bits, sign-extended."""
    return np.asarray(a, dtype=np.uint8).view(np.int8).astype(np.int32).view(np.uint32)
