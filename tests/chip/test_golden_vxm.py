"""Every VXM opcode on the golden chip model, against numpy computed here."""

import numpy as np
import pytest
from _harness import TINY, run_vxm

pytestmark = [pytest.mark.chip]

VL = TINY.vl
rng = np.random.default_rng(2024)
M32 = (1 << 32) - 1


def i32(v):
    return np.asarray(v, dtype=np.int64).astype(np.int32)


def rand_i32(n=VL):
    return rng.integers(-(1 << 31), 1 << 31, size=n).astype(np.int32)


def u32(v):
    return np.asarray(v, dtype=np.int32).view(np.uint32)


INT_CASES = {
    "add": lambda a, b: (a.astype(np.int64) + b) & M32,
    "sub": lambda a, b: (a.astype(np.int64) - b) & M32,
    "mul": lambda a, b: (a.astype(object) * b.astype(object)) & M32,
    "min": lambda a, b: np.minimum(a, b).astype(np.int64) & M32,
    "max": lambda a, b: np.maximum(a, b).astype(np.int64) & M32,
    "and": lambda a, b: (a & b).astype(np.int64) & M32,
    "or": lambda a, b: (a | b).astype(np.int64) & M32,
    "xor": lambda a, b: (a ^ b).astype(np.int64) & M32,
    "eq": lambda a, b: np.where(a == b, M32, 0),
    "lt": lambda a, b: np.where(a < b, M32, 0),
    "le": lambda a, b: np.where(a <= b, M32, 0),
}


@pytest.mark.parametrize("op", sorted(INT_CASES))
def test_int_binary(op):
    a = rand_i32()
    b = rand_i32()
    b[:2] = a[:2]  # some equal lanes for the compares
    got = run_vxm(op, a, b)
    want = np.array([int(x) for x in INT_CASES[op](a, b)], dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(got, want), (op, got, want)


@pytest.mark.parametrize("op", ["shl", "shr", "sra"])
def test_shift_by_stream(op):
    a = rand_i32()
    b = rng.integers(0, 1 << 31, size=VL).astype(np.int32)  # only b & 31 counts
    got = run_vxm(op, a, b)
    want = []
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        s = y & 31
        ux = x & M32
        want.append({"shl": (ux << s) & M32, "shr": ux >> s, "sra": (x >> s) & M32}[op])
    assert got.tolist() == want


@pytest.mark.parametrize("op", ["shli", "shri", "srai"])
@pytest.mark.parametrize("imm", [0, 1, 23, 31])
def test_shift_immediate(op, imm):
    a = rand_i32()
    got = run_vxm(op, a, imm=imm)
    want = []
    for x in a.tolist():
        ux = x & M32
        want.append({"shli": (ux << imm) & M32, "shri": ux >> imm, "srai": (x >> imm) & M32}[op])
    assert got.tolist() == want


def test_sel():
    a, b = rand_i32(), rand_i32()
    c = np.array([0, 1, -1, 0, 5, 0, 0, 1 << 30], dtype=np.int32)
    got = run_vxm("sel", a, b, c)
    want = [(x if z != 0 else y) & M32 for x, y, z in zip(a.tolist(), b.tolist(), c.tolist(),
                                                          strict=True)]
    assert got.tolist() == want


def rand_f32(n=VL):
    # normal values only: plain numpy float32 is then the exact reference
    return (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, size=n)).astype(np.float32)


@pytest.mark.parametrize("op,fn", [("fadd", np.add), ("fsub", np.subtract),
                                   ("fmul", np.multiply)])
def test_fp_arith(op, fn):
    a, b = rand_f32(), rand_f32()
    got = run_vxm(op, a, b).view(np.float32)
    assert np.array_equal(got.view(np.uint32), fn(a, b).view(np.uint32))


@pytest.mark.parametrize("op,fn", [("fmin", np.minimum), ("fmax", np.maximum)])
def test_fp_minmax(op, fn):
    a, b = rand_f32(), rand_f32()
    got = run_vxm(op, a, b)
    assert np.array_equal(got, fn(a, b).view(np.uint32))


def test_fp_minmax_signed_zero_and_nan():
    a = np.array([0.0, -0.0, np.nan, 1.0, -np.inf, np.inf, 2.0, -3.0], dtype=np.float32)
    b = np.array([-0.0, 0.0, 1.0, np.nan, 5.0, 5.0, 2.0, -3.0], dtype=np.float32)
    mn = run_vxm("fmin", a, b)
    mx = run_vxm("fmax", a, b)
    assert mn[0] == 0x80000000 and mn[1] == 0x80000000
    assert mx[0] == 0 and mx[1] == 0
    assert mn[2] == mn[3] == mx[2] == mx[3] == 0x7FC00000
    assert mn[4:].view(np.float32).tolist() == [-np.inf, 5.0, 2.0, -3.0]
    assert mx[4:].view(np.float32).tolist() == [5.0, np.inf, 2.0, -3.0]


@pytest.mark.parametrize("op,fn", [("feq", np.equal), ("flt", np.less), ("fle", np.less_equal)])
def test_fp_compare(op, fn):
    a, b = rand_f32(), rand_f32()
    b[:3] = a[:3]
    a[3], b[4] = np.nan, np.nan
    a[5], b[5] = 0.0, -0.0
    with np.errstate(invalid="ignore"):
        want = np.where(fn(a, b), M32, 0)
    assert run_vxm(op, a, b).tolist() == want.tolist()


def test_fneg_fabs():
    a = rand_f32()
    assert np.array_equal(run_vxm("fneg", a), (-a).view(np.uint32))
    assert np.array_equal(run_vxm("fabs", a), np.abs(a).view(np.uint32))


def test_cvt_i8_i32():
    a = rng.integers(-128, 128, size=VL).astype(np.int8)
    assert run_vxm("cvt.i8.i32", a).view(np.int32).tolist() == a.tolist()


def test_cvt_i32_i8():
    a = np.array([0, 1, -1, 127, 128, -128, -129, 1 << 30], dtype=np.int32)
    assert run_vxm("cvt.i32.i8", a).view(np.int8).tolist() == [0, 1, -1, 127, 127, -128, -128,
                                                               127]


def test_cvt_i32_f32():
    a = rand_i32()
    a[0] = (1 << 24) + 1  # rounds (ties to even)
    want = np.array([float(x) for x in a.tolist()], dtype=np.float32)  # Python float -> RNE
    assert np.array_equal(run_vxm("cvt.i32.f32", a), want.view(np.uint32))


def test_cvt_f32_i32():
    a = np.array([0.5, 1.5, 2.5, -2.5, 3e9, -3e9, np.nan, 123.4], dtype=np.float32)
    want = [0, 2, 2, -2, (1 << 31) - 1, -(1 << 31), 0, 123]
    assert run_vxm("cvt.f32.i32", a).view(np.int32).tolist() == want


def test_cvt_f32_i8_with_scale():
    a = np.array([1.0, 2.5, -2.5, 100.0, -100.0, 0.24, np.nan, 3.0], dtype=np.float32)
    s = np.full(VL, 2.0, dtype=np.float32)
    want = [2, 5, -5, 127, -128, 0, 0, 6]
    assert run_vxm("cvt.f32.i8", a, s).view(np.int8).tolist() == want


def test_mov_and_mov32():
    a8 = rng.integers(0, 256, size=VL).astype(np.uint8)
    assert run_vxm("mov", a8).tolist() == a8.tolist()
    a = rand_i32()
    assert run_vxm("mov32", a).view(np.int32).tolist() == a.tolist()
