"""lpu.hdl.fp32 on Amaranth's simulator, bit for bit against lpu.golden.numerics.

Combinational blocks (``stages=0``) are driven with one vector per settle; the pipelined
configurations take one vector per cycle and are checked at their latency. Expected
values always come from the golden functions at test time.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu.golden import numerics as nm
from lpu.hdl.fp32 import (
    Fp32Add,
    Fp32Compare,
    Fp32Mul,
    Fp32NegAbs,
    Fp32ToInt,
    Fp32ToInt8Scaled,
    Int8ToInt32,
    Int32ToFp32,
    Int32ToInt8,
)

pytestmark = pytest.mark.unit

N = 2500  # random vectors per operation (plus the special values)

# -- operand generators ---------------------------------------------------------------------

SPECIALS = np.array([
    0x00000000, 0x80000000,  # +-0
    0x7F800000, 0xFF800000,  # +-inf
    0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF, 0x7FFFFFFF, 0x7FA5A5A5,  # NaNs
    0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00400000,  # subnormals
    0x00800000, 0x80800000, 0x00800001, 0x00FFFFFF,  # smallest normals
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000,  # largest normals
    0x3F800000, 0xBF800000, 0x3F000000, 0xBF000000, 0x3FC00000, 0x40200000, 0xC0200000,
    0x3F7FFFFF, 0x3F800001, 0x34000000, 0x33800000,  # 1, 0.5, 1.5, 2.5, ulps of 1
    0x4F000000, 0xCF000000, 0x4EFFFFFF, 0xCEFFFFFF, 0x4F000001, 0xCF000001,  # +-2^31
    0x42FE0000, 0x42FF0000, 0x43000000, 0xC3000000, 0xC3008000, 0xC3010000,  # int8 edges
    0x4B000000, 0x4B7FFFFF, 0x4AFFFFFF, 0x4B800000,  # 2^23, 2^24 - 1, ...
    0x20000000, 0x1F800000, 0x1F000000, 0x5F000000, 0x5F800000, 0x60000000,  # 2^+-63, 64
], dtype=np.uint32)


def rand_fp32(rng, n):
    """Random binary32 patterns that reach every exponent region and mantissa pattern."""
    sign = rng.integers(0, 2, n, dtype=np.uint32) << 31
    region = rng.integers(0, 5, n)
    exp = np.select(
        [region == 0, region == 1, region == 2, region == 3],
        [rng.integers(0, 256, n), rng.integers(97, 160, n), rng.integers(0, 24, n),
         rng.integers(232, 256, n)],
        rng.integers(118, 137, n)).astype(np.uint32)
    kind = rng.integers(0, 6, n)
    mant = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [np.zeros(n, dtype=np.uint32), np.full(n, 0x7FFFFF, dtype=np.uint32),
         rng.integers(0, 1 << 4, n, dtype=np.uint32),
         (0x7FFFFF ^ rng.integers(0, 1 << 4, n, dtype=np.uint32))],
        rng.integers(0, 1 << 23, n, dtype=np.uint32)).astype(np.uint32)
    return (sign | (exp << 23) | mant).astype(np.uint32)


def rand_bits(rng, n):
    return rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)


def f32(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def pairs_special(rng):
    """Every pair of special values."""
    a, b = np.meshgrid(SPECIALS, SPECIALS)
    return a.ravel(), b.ravel()


def pairs_add(rng, n):
    """Operand pairs for add/sub: independent, aligned at every distance, cancelling."""
    a = rand_fp32(rng, n)
    b = rand_fp32(rng, n)
    k = n // 4
    # b within 0..30 binades of a, random mantissa: alignment, guard and sticky bits
    ea = (a[:k] >> 23) & 0xFF
    eb = np.clip(ea.astype(np.int64) - rng.integers(0, 31, k), 1, 254).astype(np.uint32)
    b[:k] = (rand_bits(rng, k) & 0x807FFFFF) | (eb << 23)
    # exact ties: b is half an ulp of a (or 3/2), either sign
    t = slice(k, k + k // 2)
    m = len(a[t])
    ea = np.clip((a[t] >> 23) & 0xFF, 26, 254)
    a[t] = (a[t] & 0x807FFFFF) | (ea << 23)
    half = ((ea - 24) << 23) | np.where(rng.integers(0, 2, m) == 1, 0x400000, 0)
    b[t] = (half | (rng.integers(0, 2, m, dtype=np.uint32) << 31)).astype(np.uint32)
    # near cancellation: b = -a +- a few ulps (also into the subnormal range)
    c = slice(k + k // 2, 2 * k)
    m = len(a[c])
    a[c] = np.where(rng.integers(0, 3, m) == 0, a[c] & 0x81FFFFFF, a[c])  # tiny exponents
    b[c] = ((a[c] ^ 0x80000000).astype(np.int64) + rng.integers(-3, 4, m)).astype(np.uint32)
    return a, b


def pairs_mul(rng, n):
    """Operand pairs for mul: independent, products near 2^-126, 2^-127 and overflow."""
    a = rand_fp32(rng, n)
    b = rand_fp32(rng, n)
    k = n // 2
    x = (a[:k] & 0x807FFFFF) | (rng.integers(64, 190, k, dtype=np.uint32) << 23)
    target = np.select([np.arange(k) % 4 == i for i in range(3)],
                       [2.0 ** -126, 2.0 ** -127, 2.0 ** 128], 2.0 ** -125)
    with np.errstate(all="ignore"):
        y = f32(np.abs(target / np.asarray(x, dtype=np.uint32).view(np.float32)
                       .astype(np.float64)))
    y = (y.astype(np.int64) + rng.integers(-3, 4, k)).astype(np.uint32)
    y |= rng.integers(0, 2, k, dtype=np.uint32) << 31
    a[:k], b[:k] = x, y
    return a, b


def fp_to_int_values(rng, n):
    """fp32 values around integers, halves, and the int32 / int8 saturation limits."""
    v = rand_fp32(rng, n)
    k = n // 3
    ints = rng.integers(-300, 300, k) + np.where(rng.integers(0, 2, k) == 1, 0.5, 0.0)
    v[:k] = f32(ints)
    big = rng.integers(-(1 << 32), 1 << 32, k).astype(np.float64)
    v[k:2 * k] = f32(big)
    exps = rng.integers(100, 160, k, dtype=np.uint32)
    v[2 * k:3 * k] = (rng.integers(0, 2, k, dtype=np.uint32) << 31) | (exps << 23) | \
        rng.integers(0, 1 << 23, k, dtype=np.uint32)
    return v


def int32_values(rng, n):
    """int32 patterns: full range, small, near powers of two, ties for fp32 rounding."""
    v = rand_bits(rng, n)
    k = n // 4
    v[:k] = rng.integers(-400, 400, k).astype(np.int32).view(np.uint32)
    shift = rng.integers(0, 31, k)
    v[k:2 * k] = ((np.int64(1) << shift) + rng.integers(-2, 3, k)).astype(np.uint32)
    # 24 significant bits, then a tie or near-tie pattern below them
    sig = rng.integers(1 << 23, 1 << 24, k, dtype=np.int64)
    s = rng.integers(1, 8, k)
    low = np.select([np.arange(k) % 3 == 0, np.arange(k) % 3 == 1],
                    [np.int64(1) << (s - 1), (np.int64(1) << (s - 1)) + 1],
                    (np.int64(1) << (s - 1)) - 1)
    val = (sig << s) | low
    val = np.where(val >= 1 << 31, val >> 1, val)
    val = np.where(rng.integers(0, 2, k) == 1, -val, val)
    v[2 * k:3 * k] = val.astype(np.int64).astype(np.uint32)
    v[3 * k:3 * k + 6] = [0x80000000, 0x7FFFFFFF, 0x80000001, 0xFFFFFFFF, 0, 1]
    return v


@pytest.fixture(autouse=True)
def _quiet_nan_casts():
    # numpy warns when a signalling NaN is cast to float64 (in the golden functions too)
    with np.errstate(invalid="ignore"):
        yield


# -- simulation harness ---------------------------------------------------------------------


def run(dut, inputs, outputs, *, latency=0):
    """Drive ``inputs`` (port name -> array) one vector per cycle (or per settle when
    ``latency`` is 0) and collect ``outputs`` as uint64 arrays, aligned to the inputs."""
    n = len(next(iter(inputs.values())))
    got = {name: np.zeros(n, dtype=np.uint64) for name in outputs}
    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-6)

    async def testbench(ctx):
        ins = [(getattr(dut, k), [int(x) for x in v]) for k, v in inputs.items()]
        outs = [(getattr(dut, k), got[k]) for k in outputs]
        for i in range(n + max(latency - 1, 0)):
            if i < n:
                for port, values in ins:
                    ctx.set(port, values[i])
            if latency:
                await ctx.tick()
            j = i + 1 - latency if latency else i
            if j >= 0:
                for port, arr in outs:
                    arr[j] = ctx.get(port)

    sim.add_testbench(testbench)
    sim.run()
    return got


def check(what, got, expected, **operands):
    got = np.asarray(got, dtype=np.uint64)
    expected = np.asarray(expected).astype(np.uint64)
    bad = np.flatnonzero(got != expected)
    if len(bad):
        lines = []
        for i in bad[:8]:
            ops = ", ".join(f"{k}=0x{int(v[i]):08x}" for k, v in operands.items())
            lines.append(f"  {ops}: got 0x{int(got[i]):08x}, expected 0x{int(expected[i]):08x}")
        pytest.fail(f"{what}: {len(bad)} of {len(got)} mismatches\n" + "\n".join(lines))


# -- tests ----------------------------------------------------------------------------------


def test_fadd_fsub():
    rng = np.random.default_rng(1)
    sa, sb = pairs_special(rng)
    ra, rb = pairs_add(rng, N)
    a, b = np.concatenate([sa, ra, ra]), np.concatenate([sb, rb, rb])
    sub = np.zeros(len(a), dtype=np.uint32)
    sub[len(sa) + len(ra):] = 1
    sub[: len(sa) // 2] = 1
    got = run(Fp32Add(), {"a": a, "b": b, "sub": sub}, ["result"])["result"]
    expected = np.where(sub == 1, nm.fsub(a, b), nm.fadd(a, b))
    check("fadd/fsub", got, expected, a=a, b=b, sub=sub)


def test_fmul():
    rng = np.random.default_rng(2)
    sa, sb = pairs_special(rng)
    ra, rb = pairs_mul(rng, 2 * N)
    a, b = np.concatenate([sa, ra]), np.concatenate([sb, rb])
    got = run(Fp32Mul(), {"a": a, "b": b}, ["result"])["result"]
    expected = nm.fmul(a, b)
    check("fmul", got, expected, a=a, b=b)
    # the vectors reach the sliver below 2^-126 that rounds up to the smallest normal
    exact = np.abs(nm.to_f32(nm.ftz(a)).astype(np.float64) * nm.to_f32(nm.ftz(b)))
    sliver = (exact < 2.0 ** -126) & ((expected & 0x7FFFFFFF) == 0x00800000)
    flushed = (exact >= 2.0 ** -127) & (exact < 2.0 ** -126) & ((expected & 0x7FFFFFFF) == 0)
    assert sliver.sum() >= 5 and flushed.sum() >= 5


def test_compare_min_max():
    rng = np.random.default_rng(3)
    sa, sb = pairs_special(rng)
    ra, rb = rand_fp32(rng, N), rand_fp32(rng, N)
    ra[: N // 4] = rb[: N // 4]  # equal operands
    ra[N // 4: N // 2] = rb[N // 4: N // 2] ^ 0x80000000  # opposite signs
    ra[N // 2: N // 2 + N // 8] = rb[N // 2: N // 2 + N // 8] + 1  # neighbours
    a, b = np.concatenate([sa, ra]), np.concatenate([sb, rb])
    got = run(Fp32Compare(), {"a": a, "b": b}, ["eq", "lt", "le", "min", "max"])
    ones = lambda bits: np.where(bits == 0xFFFFFFFF, 1, 0)  # noqa: E731
    check("feq", got["eq"], ones(nm.feq(a, b)), a=a, b=b)
    check("flt", got["lt"], ones(nm.flt(a, b)), a=a, b=b)
    check("fle", got["le"], ones(nm.fle(a, b)), a=a, b=b)
    check("fmin", got["min"], nm.fmin(a, b), a=a, b=b)
    check("fmax", got["max"], nm.fmax(a, b), a=a, b=b)


def test_fneg_fabs():
    rng = np.random.default_rng(4)
    a = np.concatenate([SPECIALS, rand_fp32(rng, N // 2)])
    got = run(Fp32NegAbs(), {"a": a}, ["neg", "abs"])
    check("fneg", got["neg"], nm.fneg(a), a=a)
    check("fabs", got["abs"], nm.fabs(a), a=a)


def test_cvt_i32_f32():
    rng = np.random.default_rng(5)
    a = int32_values(rng, N)
    got = run(Int32ToFp32(), {"a": a}, ["result"])["result"]
    check("cvt.i32.f32", got, nm.cvt_i32_f32(a), a=a)


def test_cvt_f32_i32():
    rng = np.random.default_rng(6)
    a = np.concatenate([SPECIALS, fp_to_int_values(rng, N)])
    got = run(Fp32ToInt(32), {"a": a}, ["result"])["result"]
    check("cvt.f32.i32", got, nm.cvt_f32_i32(a), a=a)


def test_cvt_f32_i8():
    rng = np.random.default_rng(7)
    sa, sb = pairs_special(rng)
    a = np.concatenate([sa, fp_to_int_values(rng, N)])
    scale = np.concatenate([sb, rand_fp32(rng, N)])
    k = len(sa)
    # half the random vectors use scales near 1 and 1/127 so the products land near
    # the int8 range, its halves and its saturation edges
    scale[k: k + N // 2] = f32(np.where(rng.integers(0, 2, N // 2) == 1, 1.0, 1.0 / 127.0))
    scale[k: k + N // 2] = (scale[k: k + N // 2].astype(np.int64)
                            + rng.integers(-2, 3, N // 2)).astype(np.uint32)
    a[k + N // 4: k + N // 2] = f32(
        rng.integers(-260, 260, N // 4) * 0.5 * 127.0).astype(np.uint32)
    got = run(Fp32ToInt8Scaled(), {"a": a, "scale": scale}, ["result"])["result"]
    check("cvt.f32.i8", got, nm.cvt_f32_i8(a, scale), a=a, scale=scale)


def test_cvt_f32_int8_plain():
    rng = np.random.default_rng(8)
    a = np.concatenate([SPECIALS, fp_to_int_values(rng, N // 2)])
    got = run(Fp32ToInt(8), {"a": a}, ["result"])["result"]
    one = np.full(len(a), 0x3F800000, dtype=np.uint32)
    check("fp32 -> int8", got, nm.cvt_f32_i8(a, one), a=a)


def test_cvt_i32_i8_and_i8_i32():
    rng = np.random.default_rng(9)
    a = int32_values(rng, N)
    got = run(Int32ToInt8(), {"a": a}, ["result"])["result"]
    check("cvt.i32.i8", got, nm.cvt_i32_i8(a), a=a)
    b = np.arange(256, dtype=np.uint32)
    got = run(Int8ToInt32(), {"a": b}, ["result"])["result"]
    check("cvt.i8.i32", got, nm.cvt_i8_i32(b.astype(np.uint8)), a=b)


@pytest.mark.parametrize("make, inputs, golden", [
    (lambda s: Fp32Add(stages=s), ("a", "b", "sub"),
     lambda a, b, sub: np.where(sub & 1, nm.fsub(a, b), nm.fadd(a, b))),
    (lambda s: Fp32Mul(stages=s), ("a", "b"), nm.fmul),
    (lambda s: Int32ToFp32(stages=s), ("a",), nm.cvt_i32_f32),
    (lambda s: Fp32ToInt(32, stages=s), ("a",), nm.cvt_f32_i32),
    (lambda s: Fp32ToInt8Scaled(stages=s), ("a", "scale"), nm.cvt_f32_i8),
], ids=["add", "mul", "i2f", "f2i", "f2i8"])
def test_pipelined(make, inputs, golden):
    """Every stage count: one vector per cycle, each result exactly `latency` later."""
    rng = np.random.default_rng(10)
    stages = 0
    while True:
        try:
            dut = make(stages)
        except TypeError:
            break
        assert dut.latency == stages
        vecs = {k: rand_fp32(rng, 200) if k != "sub" else rng.integers(0, 2, 200)
                for k in inputs}
        got = run(dut, vecs, ["result"], latency=stages)["result"]
        check(f"{type(dut).__name__}(stages={stages})", got, golden(*vecs.values()), **vecs)
        stages += 1
    assert stages >= 2


def test_bad_parameters():
    with pytest.raises(TypeError, match="stages must be an integer from 0 to 2"):
        Fp32Add(stages=3)
    with pytest.raises(TypeError, match="Integer width must be"):
        Fp32ToInt(40)
