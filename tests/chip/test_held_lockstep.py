"""ISA 1.1 held reads (VXM chaining) on the whole RTL chip, in lockstep with the golden
model: hand-written held-read programs (checked by :func:`lpu.golden.check.check`) on
Amaranth's simulator and on Verilator (one module-scoped build of ``tiny``, as in
test_verilator_lockstep.py; skipped with the reason where Verilator is missing), every
cycle's events compared. The checker can fail on them too: a reference given other
SRAM contents, or an RTL with a deliberate bug in a held operand, diverges at the
first event that shows it. And a program start forgets the held values of the
previous program (EMPTY_READ through the host's error registers).

Expected values always come from the golden model; nothing here is pasted.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu import config
from lpu.asm import assemble
from lpu.golden.check import check
from lpu.golden.chip import Chip as GoldenChip
from lpu.golden.chip import ChipError
from lpu.hdl.chip import Chip
from lpu.hdl.host import RegisterMap
from lpu.hdl.interface import ErrorCode
from lpu.hdl.vxm import VxmFault
from lpu.isa import OPS, E, Opcode, W, decode
from lpu.program import ProgramBuilder, arrival
from lpu.sim import verilator as vl
from lpu.sim.hostbus import SimBus
from lpu.sim.lockstep import AmaranthBackend, GoldenBackend, compare, lockstep

pytestmark = [pytest.mark.chip]
TINY = config.load("tiny")
S = TINY.superlanes

#: int32 chain across both ALUs: s = a + b; s * s from the held s (both operands);
#: s*s - s on the other ALU from the held values of both; written back to SRAM.
CHAIN = """
.queue mem_w0
    read 0, e0, 4        ; 0: a -> e0..e3, at the VXM in cycle 2
.queue mem_e0
    read 0, w0, 4        ; 0: b -> w0..w3
    nop 8
    write 8, e0, 4       ; 9: s*s - s arrives
.queue vxm0
    nop 2
    add e4, e0, w0       ; 2: s, written at 3
    nop 1
    mul w4, ve4, ve4     ; 4 (the earliest: add wrote at 3): s * s, at 6
.queue vxm1
    nop 7
    sub e0, vw4, ve4     ; 7 (the earliest: mul wrote at 6): s*s - s, written at 8
"""


def _sums():
    """Running sums of the vectors mem_w0 streams in on e0..e3, one per cycle (a
    ``repeat``): on vxm0 an int32 sum of vectors 0, 2, 4, ... (a repeat of one add whose
    a is the held sum, every other cycle), on vxm1 an fp32 sum of vectors 0, 2, 6, 10,
    14 (every fourth cycle: fadd's delay plus one); both sums written back to SRAM.
    Cycles come from the opcode table and :func:`lpu.program.arrival`."""
    b = ProgramBuilder(TINY)
    n = 16
    b.at("mem_w0", 0, "read", 0, (0, E), 4)
    b.at("mem_w0", 1, "repeat", n - 1, 1, 4)
    t_in = arrival(TINY, "mem_w0", "vxm", OPS[Opcode.READ].d(S))  # vector 0 at the VXM
    # vxm0: int sum over vectors 0, 2, 4, ...: held e4..e7 + arriving e0..e3
    b.at("vxm0", t_in, "mov32", (4, E), (0, E))
    d_add = OPS[Opcode.ADD].d(S)
    b.at("vxm0", t_in + d_add + 1, "add", (4, E), (4, E), (0, E), la=1)
    reps = (n - 2) // (d_add + 1) - 1
    b.at("vxm0", t_in + d_add + 2, "repeat", reps, d_add + 1, 0)
    t_int = t_in + (d_add + 1) * (reps + 1) + d_add  # the last write of the int sum
    # vxm1: fp32 sum over vectors 0, 4, 8, 12: held w4..w7 + arriving e0..e3
    b.at("vxm1", t_in, "mov32", (4, W), (0, E))
    d_fadd = OPS[Opcode.FADD].d(S)
    t_fp = t_in
    for t in range(t_in + d_add + 1, t_in + n, d_fadd + 1):
        b.at("vxm1", t, "fadd", (4, W), (4, W), (0, E), la=1)
        t_fp = t + d_fadd
    # the sums go back to SRAM: the int one east to mem_e0, the fp32 one west to mem_w0
    b.at("mem_e0", arrival(TINY, "vxm", "mem_e0", t_int), "write", 100, (4, E), 4)
    b.at("mem_w0", arrival(TINY, "vxm", "mem_w0", t_fp), "write", 100, (4, W), 4)
    return b.program()


def _mixed():
    """fp32 and int8 held reads, a group whose planes come from different writes, the
    alui form (shli) and both flags of sel, each read one cycle after its write."""
    b = ProgramBuilder(TINY)
    d = {op: OPS[op].d(S) for op in Opcode if op in OPS}
    t_rd = OPS[Opcode.READ].d(S)
    b.at("mem_w0", 0, "read", 0, (0, E), 4)  # x -> e0..e3
    b.at("mem_e0", 0, "read", 0, (0, W), 4)  # y -> w0..w3
    t = arrival(TINY, "mem_w0", "vxm", t_rd)
    b.at("vxm0", t, "fmul", (4, E), (0, E), (0, W))  # x*y -> e4..e7
    b.at("vxm1", t, "mov32", (4, W), (0, W))  # y -> w4..w7 (held copy)
    t1 = t + d[Opcode.FMUL] + 1
    b.at("vxm1", t1, "fadd", (0, E), (4, E), (4, W), la=1, lb=1)  # x*y + y
    b.at("vxm0", t1, "cvt.f32.i8", (0, W), (4, E), (4, W), la=1, lb=1)  # int8(x*y * y)
    t2 = t1 + d[Opcode.CVT_F32_I8] + 1
    b.at("vxm0", t2, "mov", (5, E), (0, W), la=1)  # the int8 result -> e5
    b.at("vxm1", t2, "cvt.i8.i32", (4, W), (0, W), la=1)  # the int8 result -> int32 w4..
    t3 = t2 + max(d[Opcode.MOV], d[Opcode.CVT_I8_I32]) + 1
    b.at("vxm0", t3, "mov32", (0, W), (4, E), la=1)  # planes 0, 2, 3: fmul; 1: mov
    b.at("vxm1", t3, "shli", (0, E), (4, W), 3, la=1)
    t4 = t3 + max(d[Opcode.MOV32], d[Opcode.SHLI]) + 1
    b.at("mem_w0", t4 - t_rd - 1, "read", 4, (4, E), 4)  # c -> e4..e7 at the VXM at t4
    b.at("vxm0", t4, "sel", (4, W), (0, W), (0, E), (4, E), la=1, lb=1)
    t5 = t4 + d[Opcode.SEL]
    b.at("mem_w0", arrival(TINY, "vxm", "mem_w0", t5), "write", 200, (4, W), 4)
    b.at("mem_e0", arrival(TINY, "vxm", "mem_e0", t3 + d[Opcode.SHLI]), "write", 200,
         (0, E), 4)
    return b.program()


def _programs():
    return {"chain": assemble(CHAIN, TINY, "chain.s"), "sums": _sums(), "mixed": _mixed()}


def _mem(seed):
    rng = np.random.default_rng(seed)
    return {q.name: rng.integers(0, 256, size=(TINY.mem_words, TINY.vl), dtype=np.uint8)
            for q in TINY.queues if q.kind == "mem"}


PROGRAMS = _programs()


def _held_reads(program):
    """How many held operands the program's VXM instructions have."""
    return sum(sum(ins.args.get(f, 0) for f in ins.info.held_flags)
               for q, words in program.queues.items() if q.startswith("vxm")
               for ins in map(decode, words))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_held_program_is_legal(name):
    report = check(TINY, PROGRAMS[name])
    assert report.dispatches > 0 and _held_reads(PROGRAMS[name]) >= 2


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_amaranth_lockstep(name):
    res = lockstep(TINY, PROGRAMS[name], _mem(1), AmaranthBackend(TINY))
    assert res.ok, res.text()
    assert res.cycles > 0 and res.events > 0


def _diverging_mem(seed=2):
    """SRAM for the reference: one byte of one word that mem_w0 reads differs."""
    mem = _mem(seed)
    ref = {k: v.copy() for k, v in mem.items()}
    ref["mem_w0"][9, 6] ^= 0x40  # word 9: vector 2, plane 1 of SUMS; lane 6
    return mem, ref


def _check_sram_divergence(d, read_cycle):
    """The first divergence is mem_w0's stream write of word 9 (stream e1, lane 6)."""
    lane = 6
    k = lane // TINY.lanes
    mem_w0 = TINY.position("mem_w0").index
    assert (d.kind, d.unit, d.what) == ("sr", mem_w0, "stream e1")
    assert d.cycle == read_cycle + k + OPS[Opcode.READ].d(S)
    assert (d.superlane, d.lane) == (k, lane)
    assert d.expected[lane % TINY.lanes] ^ d.actual[lane % TINY.lanes] == 0x40


def test_amaranth_divergence_of_other_sram_is_found_and_located():
    program = PROGRAMS["sums"]
    mem, ref = _diverging_mem()
    res = compare(GoldenBackend(TINY).run(program, ref),
                  AmaranthBackend(TINY).run(program, mem), TINY, program=program)
    assert not res.ok
    _check_sram_divergence(res.divergence, read_cycle=2)  # the copy reading words 8..11


def test_amaranth_bug_in_a_held_operand_is_found_and_located():
    """An RTL whose vxm0 corrupts operand b of mul in one lane (the mul of CHAIN reads
    b held): the first divergence is that mul's result, at its write cycle on that
    superlane, naming the instruction."""
    lane = 6
    k = lane // TINY.lanes
    fault = VxmFault(alu=0, superlane=k, lane=lane % TINY.lanes, opcode=Opcode.MUL)
    program = PROGRAMS["chain"]
    res = lockstep(TINY, program, _mem(3), AmaranthBackend(TINY, fault=fault))
    assert not res.ok
    d = res.divergence
    t_mul = 4  # mul w4, ve4, ve4 is dispatched in cycle 4
    assert d.kind == "sr" and d.unit_name == "vxm" and d.what in {f"stream w{s}"
                                                                   for s in range(4, 8)}
    assert d.cycle == t_mul + k + OPS[Opcode.MUL].d(S)
    assert (d.superlane, d.lane) == (k, lane)
    assert d.instr == "mul w4, ve4, ve4" and d.responsible and d.dispatch_cycle == t_mul


#: a held read of w0..w3, which this program never writes (the previous one did)
NEVER = ".queue vxm0\n    nop 4\n    add e0, vw4, vw4\n"


def test_a_start_forgets_the_held_values_of_the_previous_program():
    """CHAIN writes w4..w7; the next program's held read of them is EMPTY_READ, at the
    cycle and unit the golden model (fresh, as every program starts) names; CHAIN
    itself ran clean before."""
    after = assemble(NEVER, TINY, "never.s")
    g = GoldenChip(TINY)
    g.load(after, check_first=False)
    with pytest.raises(ChipError) as info:
        g.run()
    assert info.value.rule == "empty-read"
    dut = Chip(TINY, trace=True)
    regs = RegisterMap(TINY)
    bus = SimBus(dut.bus, regs)
    got = {}

    async def tb(ctx):
        for name, prog in (("chain", PROGRAMS["chain"]), ("never", after)):
            await bus.load_program(ctx, prog)
            await bus.start(ctx)
            await bus.wait_done(ctx)
            got[name] = await bus.error(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got["chain"] is None
    q = TINY.queue(info.value.queue)
    assert got["never"] == {"cycle": info.value.cycle, "code": ErrorCode.EMPTY_READ.value,
                            "position": q.position, "superlane": 0, "unit": 0,
                            "queue": q.index}


# -- Verilator ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built():
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import build_chip

    b = build_chip(TINY, "verilator")
    print(f"\nverilator build of tiny: {b.seconds:.0f} s{' (cached)' if b.cached else ''}")
    return b


def _run(built, runs, tmp_path, **kw):
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    return lockstep_hdl_many(TINY, runs, "verilator", built=built, workdir=tmp_path, **kw)


@pytest.mark.slow
def test_verilator_lockstep(built, tmp_path):
    names = sorted(PROGRAMS)
    results = _run(built, [(PROGRAMS[n], _mem(i)) for i, n in enumerate(names)], tmp_path)
    assert len(results) == len(names)
    for n, res in zip(names, results, strict=True):
        assert res.ok, f"{n}: {res.text()}"
        assert res.events > 0
        assert res.hdl["error"] is None and res.hdl["status"] & 2, (n, res.hdl)


@pytest.mark.slow
def test_verilator_divergence_is_found_and_located(built, tmp_path):
    program = PROGRAMS["sums"]
    mem, ref = _diverging_mem()
    res = _run(built, [(program, mem)], tmp_path, reference_mem=[ref])[0]
    assert not res.ok
    _check_sram_divergence(res.divergence, read_cycle=2)


# -- Icarus ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_icarus():
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import build_chip

    return build_chip(TINY, "icarus")


@pytest.mark.slow
def test_icarus_lockstep(built_icarus, tmp_path):
    """The held-read programs on the chip's Verilog under Icarus, in lockstep."""
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    names = sorted(PROGRAMS)
    results = lockstep_hdl_many(TINY, [(PROGRAMS[n], _mem(i)) for i, n in enumerate(names)],
                                "icarus", built=built_icarus, workdir=tmp_path)
    for n, res in zip(names, results, strict=True):
        assert res.ok, f"{n}: {res.text()}"
        assert res.hdl["error"] is None and res.hdl["status"] & 2, (n, res.hdl)
