"""lpu.hdl.vxm_alu.VxmAlu on Amaranth's simulator: every VXM opcode, a new operation every
cycle, each result checked at its exact functional delay, bit for bit against
lpu.golden.numerics (fp32, conversions) and numpy int32 arithmetic (integer ops).
"""

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu.golden import numerics as nm
from lpu.hdl import vxm_alu
from lpu.hdl.vxm_alu import VxmAlu
from lpu.isa import OPS, VXM_OPCODES, Opcode

pytestmark = pytest.mark.slice

O = Opcode
U32 = np.uint32


@pytest.fixture(autouse=True)
def _quiet_nan_casts():
    # numpy warns when a signalling NaN is cast to float64 (in the golden functions too)
    with np.errstate(invalid="ignore"):
        yield


# -- reference ------------------------------------------------------------------------------


def golden(op, a, b, c, imm):
    """The expected 32-bit result of `op` on arrays of operand bits (int8 results
    zero-extended)."""
    sa, sb = a.view(np.int32), b.view(np.int32)
    sh, imm = (b & 31).astype(U32), imm.astype(U32)
    true = U32(0xFFFFFFFF)
    table = {
        O.ADD: lambda: a + b,
        O.SUB: lambda: a - b,
        O.MUL: lambda: (a.astype(np.uint64) * b.astype(np.uint64)) & 0xFFFFFFFF,
        O.MIN: lambda: np.where(sa < sb, a, b),
        O.MAX: lambda: np.where(sa > sb, a, b),
        O.AND: lambda: a & b,
        O.OR: lambda: a | b,
        O.XOR: lambda: a ^ b,
        O.SHL: lambda: a << sh,
        O.SHR: lambda: a >> sh,
        O.SRA: lambda: (sa >> sh.astype(np.int32)).view(U32),
        O.SHLI: lambda: a << imm,
        O.SHRI: lambda: a >> imm,
        O.SRAI: lambda: (sa >> imm.astype(np.int32)).view(U32),
        O.EQ: lambda: np.where(a == b, true, 0),
        O.LT: lambda: np.where(sa < sb, true, 0),
        O.LE: lambda: np.where(sa <= sb, true, 0),
        O.SEL: lambda: np.where(c != 0, a, b),
        O.FADD: lambda: nm.fadd(a, b),
        O.FSUB: lambda: nm.fsub(a, b),
        O.FMUL: lambda: nm.fmul(a, b),
        O.FMIN: lambda: nm.fmin(a, b),
        O.FMAX: lambda: nm.fmax(a, b),
        O.FEQ: lambda: nm.feq(a, b),
        O.FLT: lambda: nm.flt(a, b),
        O.FLE: lambda: nm.fle(a, b),
        O.FNEG: lambda: nm.fneg(a),
        O.FABS: lambda: nm.fabs(a),
        O.CVT_I8_I32: lambda: nm.cvt_i8_i32((a & 0xFF).astype(np.uint8)),
        O.CVT_I32_I8: lambda: nm.cvt_i32_i8(a),
        O.CVT_I32_F32: lambda: nm.cvt_i32_f32(a),
        O.CVT_F32_I32: lambda: nm.cvt_f32_i32(a),
        O.CVT_F32_I8: lambda: nm.cvt_f32_i8(a, b),
        O.MOV: lambda: a & 0xFF,
        O.MOV32: lambda: a,
    }
    return np.asarray(table[op]()).astype(U32)


# -- operands -------------------------------------------------------------------------------

FP_SPECIALS = np.array([
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
    0x7FA5A5A5, 0x00000001, 0x807FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF,
    0x3F800000, 0x3F000000, 0x3FC00000, 0x40200000, 0x4F000000, 0xCF000000, 0x42FF0000,
    0xC3008000, 0x00FFFFFF, 0x1F800000,
], dtype=U32)
INT_SPECIALS = np.array([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x80000001, 127, 128,
                         0xFFFFFF80, 0xFFFFFF7F, 255, 31, 32, 0x01000001], dtype=U32)


def rand_fp32(rng, n):
    sign = rng.integers(0, 2, n, dtype=U32) << 31
    exp = np.where(rng.integers(0, 3, n) == 0, rng.integers(0, 256, n),
                   rng.integers(100, 160, n)).astype(U32)
    mant = np.where(rng.integers(0, 4, n) == 0, rng.integers(0, 2, n) * 0x7FFFFF,
                    rng.integers(0, 1 << 23, n)).astype(U32)
    v = sign | (exp << 23) | mant
    pick = rng.integers(0, 6, n) == 0
    v[pick] = rng.choice(FP_SPECIALS, pick.sum())
    return v.astype(U32)


def rand_int(rng, n):
    v = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(U32)
    small = rng.integers(0, 3, n) == 0
    v[small] = rng.integers(-300, 300, small.sum()).astype(np.int32).view(U32)
    pick = rng.integers(0, 6, n) == 0
    v[pick] = rng.choice(INT_SPECIALS, pick.sum())
    return v


def operands(rng, op, n):
    """Random (a, b, c, imm) for `n` issues of `op`, shaped to reach its corner cases."""
    dtype = OPS[op].dtype
    gen = rand_fp32 if dtype == "f32" else rand_int
    a, b, c = gen(rng, n), gen(rng, n), rand_int(rng, n)
    imm = rng.integers(0, 32, n)
    if dtype == "f32":
        # near neighbours and opposites: cancellation, ties, equal compares
        k = n // 4
        b[:k] = (a[:k].astype(np.int64) + rng.integers(-2, 3, k)).astype(U32) \
            ^ (rng.integers(0, 2, k, dtype=U32) << 31)
    if op == O.FMUL:
        # products around 2^-126 (the rounding sliver of gradual underflow)
        k = n // 3
        x = (a[:k] & 0x807FFFFF) | (rng.integers(64, 190, k, dtype=U32) << 23)
        y = np.abs(np.float64(2.0 ** -126) / x.view(np.float32)).astype(np.float32).view(U32)
        a[:k], b[:k] = x, (y.astype(np.int64) + rng.integers(-2, 3, k)).astype(U32)
    if op == O.CVT_F32_I8:
        k = n // 2
        b[:k] = np.float32(1.0).view(U32) + rng.integers(-1, 2, k).astype(U32)
        a[:k] = (rng.integers(-280, 280, k) * np.float32(0.5)).astype(np.float32).view(U32)
    if op in (O.CVT_F32_I32,):
        k = n // 2
        a[:k] = (rng.integers(-(1 << 32), 1 << 32, k) / rng.choice([1, 2, 2 ** 9], k)) \
            .astype(np.float32).view(U32)
    if op in (O.SHL, O.SHR, O.SRA):
        b[: n // 2] = rng.integers(0, 32, n // 2)
    if op == O.SEL:
        c[: n // 2] = 0
    return a, b, c, imm


# -- harness --------------------------------------------------------------------------------


def schedule(rng, ops, cycles, delays, idle=0.1):
    """One issue per cycle: a random opcode from `ops` whose result cycle is still free
    (results of a legal program never land together), or an idle cycle."""
    landing = set()
    program = []
    for t in range(cycles):
        free = [o for o in ops if t + delays[o] not in landing]
        if not free or rng.random() < idle:
            program.append(None)
            continue
        op = free[rng.integers(0, len(free))]
        landing.add(t + delays[op])
        program.append(op)
    return program


def run_alu(dut, program, rng):
    """Issue `program` (opcode or None per cycle) with random operands; check every
    cycle's result and result_valid against the golden values at the opcode's delay."""
    delays = dut.delays
    n = len(program)
    a, b, c, imm = (np.zeros(n, dtype=U32) for _ in range(4))
    expected = {}  # cycle -> (opcode, issue cycle, value)
    for op in set(p for p in program if p is not None):
        idx = np.array([t for t, p in enumerate(program) if p == op])
        va, vb, vc, vi = operands(rng, op, len(idx))
        a[idx], b[idx], c[idx], imm[idx] = va, vb, vc, vi
        for t, v in zip(idx, golden(op, va, vb, vc, vi), strict=True):
            assert int(t) + delays[op] not in expected, "two results land in one cycle"
            expected[int(t) + delays[op]] = (op, int(t), int(v))
    idle = [t for t, p in enumerate(program) if p is None]  # junk operands when idle
    a[idle], b[idle], c[idle] = rand_int(rng, len(idle)), rand_int(rng, len(idle)), 0
    last = n + max(delays.values())
    observed = {}

    async def testbench(ctx):
        for t in range(last):
            op = program[t] if t < n else None
            ctx.set(dut.valid, op is not None)
            ctx.set(dut.op, op if op is not None else O.NOP)
            if t < n:
                ctx.set(dut.a, int(a[t]))
                ctx.set(dut.b, int(b[t]))
                ctx.set(dut.c, int(c[t]))
                ctx.set(dut.imm, int(imm[t]))
            await ctx.tick()
            observed[t + 1] = (ctx.get(dut.result_valid), ctx.get(dut.result))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

    errors = []
    for t in range(1, last + 1):
        valid, value = observed[t]
        if t in expected:
            op, t0, want = expected[t]
            if not valid or value != want:
                errors.append(f"cycle {t}: {op.name} issued at {t0} (a=0x{int(a[t0]):08x} "
                              f"b=0x{int(b[t0]):08x} c=0x{int(c[t0]):08x} imm={int(imm[t0])}): "
                              f"got valid={valid} 0x{value:08x}, expected 0x{want:08x}")
        elif valid or value:
            errors.append(f"cycle {t}: no result due, got valid={valid} 0x{value:08x}")
    if errors:
        pytest.fail(f"{len(errors)} wrong cycles:\n" + "\n".join(errors[:10]))
    return len(expected)


# -- tests ----------------------------------------------------------------------------------


def test_delays_come_from_the_isa():
    dut = VxmAlu()
    assert set(dut.delays) == set(VXM_OPCODES) == {o for o in OPS if OPS[o].unit == "vxm"}
    for op, d in dut.delays.items():
        assert d == OPS[op].d(2)
    Simulator(dut)  # elaborates
    dut20 = VxmAlu(superlanes=20)
    Simulator(dut20)
    assert dut20.delays == dut.delays
    with pytest.raises(TypeError, match="Superlane count must be a positive integer"):
        VxmAlu(superlanes=0)


def test_each_opcode_back_to_back():
    """Every opcode alone, issued every cycle (with a few idle cycles)."""
    rng = np.random.default_rng(11)
    dut = VxmAlu()
    program = []
    for op in VXM_OPCODES:
        program += [op if rng.random() > 0.05 else None for _ in range(250)]
        program += [None] * 3  # let the previous opcode's results land first
    checked = run_alu(dut, program, rng)
    assert checked > 0.9 * 250 * len(VXM_OPCODES)


def test_mixed_issue_every_cycle():
    """A random opcode every cycle, of every delay, results interleaved."""
    rng = np.random.default_rng(12)
    dut = VxmAlu()
    program = schedule(rng, VXM_OPCODES, 4000, dut.delays, idle=0.05)
    checked = run_alu(dut, program, rng)
    assert checked > 3500


def test_other_opcodes_give_no_result():
    dut = VxmAlu()
    others = [o for o in Opcode if o not in VXM_OPCODES]

    async def testbench(ctx):
        for i, op in enumerate(others * 3):
            ctx.set(dut.op, op)
            ctx.set(dut.valid, 1)
            ctx.set(dut.a, 0x12345678 + i)
            ctx.set(dut.b, 0x3F800000)
            await ctx.tick()
            assert ctx.get(dut.result_valid) == 0 and ctx.get(dut.result) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def _patched_ops(monkeypatch, delays):
    ops = dict(OPS)
    for op, d in delays.items():
        ops[op] = dataclasses.replace(ops[op], delay=(d, 0))
    monkeypatch.setattr(vxm_alu, "OPS", ops)


def test_longer_delays_use_the_result_line(monkeypatch):
    """If the ISA table gave longer delays, the same datapath meets them."""
    _patched_ops(monkeypatch, {O.ADD: 3, O.FADD: 5, O.MUL: 4, O.CVT_F32_I8: 6,
                               O.FMUL: 4})
    rng = np.random.default_rng(13)
    dut = VxmAlu()
    assert dut.delays[O.FADD] == 5 and dut.delays[O.SUB] == 1
    ops = [O.ADD, O.SUB, O.FADD, O.FSUB, O.MUL, O.FMUL, O.CVT_F32_I8, O.CVT_I32_F32, O.FMIN]
    program = schedule(rng, ops, 600, dut.delays, idle=0.05)
    run_alu(dut, program, rng)


def test_too_short_delay_is_refused(monkeypatch):
    _patched_ops(monkeypatch, {O.FADD: 2})
    with pytest.raises(ValueError, match="FADD has functional delay 2, but its datapath "
                                         "needs 3 cycles"):
        VxmAlu()
