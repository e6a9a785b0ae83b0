"""fp32 operations of golden.numerics, bit-exact against an independent reference:
float64 arithmetic (exact or correctly rounded for one binary32 operation) rounded to
float32, with flush-to-zero and canonical NaN applied here, over 100,000+ operand
pairs per operation including the special values."""

import math
import struct

import numpy as np
import pytest

from lpu.golden import numerics as nm

pytestmark = [pytest.mark.unit]

N = 100_000
TINY = 2.0 ** -126
QNAN = 0x7FC00000

SPECIALS = np.array([
    0x00000000, 0x80000000,  # +-0
    0x7F800000, 0xFF800000,  # +-inf
    0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF,  # NaNs (quiet, signalling, payloads)
    0x00000001, 0x807FFFFF, 0x00400000, 0x80000010,  # subnormals
    0x00800000, 0x80800000, 0x00800001, 0x00FFFFFF,  # smallest normals
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFE,  # largest normals
    0x3F800000, 0xBF800000, 0x3F800001, 0x33800000, 0x4B000000, 0x4B000001,
    0x01000000, 0x3F000000, 0x5F000000, 0xDF000000, 0x4F000000, 0xCF000000,
], dtype=np.uint32)


def operands(seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 1 << 32, size=(N, 2), dtype=np.uint64).astype(np.uint32)
    # a third of pairs with close exponents (cancellation, rounding ties, underflow)
    k = N // 3
    e = rng.integers(1, 60, size=k).astype(np.uint32)
    m = rng.integers(0, 1 << 23, size=(k, 2)).astype(np.uint32)
    s = rng.integers(0, 2, size=(k, 2)).astype(np.uint32)
    ee = np.stack([e, e + rng.integers(0, 3, size=k).astype(np.uint32)], axis=1)
    bits[:k] = (s << 31) | (ee << 23) | m
    # pairs around 1.0 exponents
    bits[k:2 * k] = (bits[k:2 * k] & np.uint32(0x80FFFFFF)) | np.uint32(0x3E000000)
    pairs = np.array([(x, y) for x in SPECIALS for y in SPECIALS], dtype=np.uint32)
    return np.concatenate([bits, pairs])


def daz(bits):
    """Reference DAZ: a subnormal pattern reads as zero of its sign."""
    with np.errstate(invalid="ignore"):
        f = bits.view(np.float32).astype(np.float64)
    sub = (np.abs(f) < TINY) & (f != 0)
    return np.where(sub, np.copysign(0.0, f), f)


def finish(x64):
    """Round float64 to binary32 (nearest even, with gradual underflow), then FTZ and
    canonical NaN, as bit patterns."""
    with np.errstate(all="ignore"):
        f = x64.astype(np.float32)
    sub = (np.abs(f) < np.float32(TINY)) & (f != 0)
    f = np.where(sub, np.copysign(np.float32(0), f), f).astype(np.float32)
    out = f.view(np.uint32).copy()
    out[np.isnan(f)] = QNAN
    return out


@pytest.mark.parametrize("name,fn", [("fadd", np.add), ("fsub", np.subtract),
                                     ("fmul", np.multiply)])
def test_arith_bit_exact(name, fn):
    ops = operands({"fadd": 1, "fsub": 2, "fmul": 3}[name])
    a, b = ops[:, 0], ops[:, 1]
    with np.errstate(all="ignore"):
        want = finish(fn(daz(a), daz(b)))
    got = getattr(nm, name)(a, b)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    assert len(a) >= N


def _py(bits):
    return struct.unpack("<f", struct.pack("<I", int(bits)))[0]


def _ref_scalar(name, x, y):
    if name in ("fmin", "fmax"):
        if math.isnan(x) or math.isnan(y):
            return QNAN
        if x == y == 0.0:
            neg = math.copysign(1, x) < 0 or math.copysign(1, y) < 0
            pos = math.copysign(1, x) > 0 or math.copysign(1, y) > 0
            zero_neg = neg if name == "fmin" else not pos
            return 0x80000000 if zero_neg else 0
        r = min(x, y) if name == "fmin" else max(x, y)
        return struct.unpack("<I", struct.pack("<f", r))[0]
    op = {"feq": x == y, "flt": x < y, "fle": x <= y}[name]
    return 0xFFFFFFFF if op else 0


@pytest.mark.parametrize("name", ["fmin", "fmax", "feq", "flt", "fle"])
def test_minmax_compare_bit_exact(name):
    ops = operands(11)
    a, b = ops[:, 0], ops[:, 1]
    fa, fb = daz(a), daz(b)
    assert len(a) >= N
    want = np.array([_ref_scalar(name, x, y) for x, y in zip(fa.tolist(), fb.tolist(),
                                                              strict=True)], dtype=np.uint32)
    got = getattr(nm, name)(a, b)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]


def test_neg_abs():
    ops = operands(5)[:, 0]
    f = daz(ops)
    for name, fn in [("fneg", lambda v: -v), ("fabs", abs)]:
        want = []
        for v in f.tolist():
            if math.isnan(v):
                want.append(QNAN)
            else:
                want.append(struct.unpack("<I", struct.pack("<f", fn(v)))[0])
        assert np.array_equal(getattr(nm, name)(ops), np.array(want, dtype=np.uint32)), name


def _round_half_even_sat(v, lo, hi):
    if math.isnan(v):
        return 0
    if v >= hi:
        return hi
    if v <= lo:
        return lo
    return max(lo, min(hi, round(v)))  # Python's round() is half to even


def test_cvt_f32_i32():
    ops = operands(21)[:, 0]
    f = daz(ops)
    want = np.array([_round_half_even_sat(v, -(1 << 31), (1 << 31) - 1) for v in f.tolist()],
                    dtype=np.int64)
    assert np.array_equal(nm.cvt_f32_i32(ops).view(np.int32).astype(np.int64), want)


def test_cvt_i32_f32():
    rng = np.random.default_rng(3)
    v = rng.integers(-(1 << 31), 1 << 31, size=N).astype(np.int32)
    v[:4] = [(1 << 24) + 1, (1 << 24) + 3, -(1 << 31), (1 << 31) - 1]
    want = np.array([struct.unpack("<I", struct.pack("<f", float(x)))[0] for x in v.tolist()],
                    dtype=np.uint32)
    assert np.array_equal(nm.cvt_i32_f32(v.view(np.uint32)), want)


def test_cvt_f32_i8_with_scale():
    ops = operands(31)
    a, s = ops[:, 0], ops[:, 1]
    with np.errstate(all="ignore"):
        prod = finish(daz(a) * daz(s)).view(np.float32).astype(np.float64)
    want = np.array([_round_half_even_sat(v, -128, 127) for v in prod.tolist()], dtype=np.int64)
    got = nm.cvt_f32_i8(a, s).view(np.int8).astype(np.int64)
    assert np.array_equal(got, want)
