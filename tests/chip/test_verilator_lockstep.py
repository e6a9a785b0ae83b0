"""The chip's Verilog under cocotb on Verilator, in lockstep with the golden model.

One build of the ``tiny`` chip (with its trace port) serves every test here
(:func:`lpu.sim.cocotb_runner.build_chip`, cached by design hash under $LPU_BUILD_DIR or
<tmp>/lpu-build); each test runs its programs one after another in one simulator
process (:func:`lpu.sim.cocotb_runner.lockstep_hdl_many`), every cycle's events compared.

* every example program, with random SRAM contents;
* the directed programs (:mod:`lpu.sim.programs.directed`: every opcode on its edge values);
* random legal programs (:mod:`lpu.sim.programs.randprog`): a fixed set of seeds, and
  ``$LPU_RANDOM_PROGRAMS`` (default 200) programs from a fresh base seed per run,
  printed, so a failure can be replayed with
  ``lpu sim --random SEED --cycles 30 --config tiny --backend verilator``;
* the checker can fail on this backend too: a program run against the golden model of
  different SRAM contents diverges, at the first event that shows the difference.
"""

import os
import random
from pathlib import Path

import numpy as np
import pytest

from lpu import config
from lpu.loaders import load_program
from lpu.sim import verilator as vl
from lpu.sim.programs.randprog import generate

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")
EX = Path(__file__).resolve().parents[2] / "examples"
N_FRESH = int(os.environ.get("LPU_RANDOM_PROGRAMS", "200"))
FRESH = int(os.environ.get("LPU_FRESH_SEED") or random.SystemRandom().randrange(1 << 30))
FIXED = list(range(1, 21)) + [101, 103]


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


def _random_sram(seed):
    rng = np.random.default_rng(seed)
    names = [q.name for q in TINY.queues if q.kind == "mem"]
    return {n: rng.integers(0, 256, size=(TINY.mem_words, TINY.vl), dtype=np.uint8)
            for n in names}


def test_examples(built, tmp_path):
    files = sorted(EX.glob("*.s"))
    assert len(files) >= 4
    runs = [(load_program(str(f), TINY), _random_sram(i)) for i, f in enumerate(files)]
    results = _run(built, runs, tmp_path)
    assert len(results) == len(files)
    for f, res in zip(files, results, strict=True):
        assert res.ok, f"{f.name}: {res.text()}"
        assert res.cycles > 0 and res.events > 0
        assert res.hdl["error"] is None and res.hdl["status"] & 2  # DONE, no error flag


def test_directed_programs(built, tmp_path):
    from lpu.sim.programs.directed import all_mnemonics, directed_programs, opcodes_of

    progs = directed_programs(TINY)
    assert set().union(*(opcodes_of(d.program) for d in progs)) == all_mnemonics()
    results = _run(built, [(d.program, d.mem_init) for d in progs], tmp_path)
    assert len(results) == len(progs)
    for d, res in zip(progs, results, strict=True):
        assert res.ok, f"directed program {d.name!r}:\n{res.text()}"
        assert res.hdl["error"] is None, f"{d.name}: the chip raised {res.hdl['error']}"
        assert res.events > 0


def test_run_ends(built, tmp_path):
    """Programs ending every way a queue can end: the RTL's CYCLE after DONE equals the
    golden model's last cycle (lockstep compares it) and the one worked out by hand."""
    from lpu.sim.programs.run_end import run_end_programs

    cases = run_end_programs(TINY)
    results = _run(built, [(p, {}) for _, p in cases], tmp_path)
    assert len(results) == len(cases)
    for (case, _), res in zip(cases, results, strict=True):
        assert res.ok, f"{case.name}: {res.text()}"
        assert res.end_cycle == case.end_cycle(TINY), case.name


def _check_random(built, seeds, tmp_path):
    programs = [generate(TINY, s, cycles=30) for s in seeds]
    results = _run(built, [(rp.program, rp.mem) for rp in programs], tmp_path)
    assert len(results) == len(seeds)
    bad = [(s, r) for s, r in zip(seeds, results, strict=True)
           if not r.ok or r.hdl["error"] is not None or r.end_cycle is None]
    assert not bad, "\n".join(
        f"seed {s} (replay: lpu sim --random {s} --cycles 30 --config tiny --backend "
        f"verilator): {r.text()} error={r.hdl['error']}" for s, r in bad)
    ops = set().union(*(rp.ops for rp in programs))
    return sum(r.cycles for r in results), sum(r.events for r in results), ops


def test_random_programs_fixed_seeds(built, tmp_path):
    cycles, events, _ = _check_random(built, FIXED, tmp_path)
    assert cycles > 0 and events > 0


def test_random_programs_fresh_seeds(built, tmp_path, capsys):
    seeds = [FRESH + i for i in range(N_FRESH)]
    with capsys.disabled():
        print(f"\nverilator random lockstep: {N_FRESH} programs, seeds {seeds[0]}.."
              f"{seeds[-1]} (replay one: lpu sim --random SEED --cycles 30 --config tiny "
              f"--backend verilator; all: LPU_FRESH_SEED={seeds[0]})")
    cycles, events, ops = _check_random(built, seeds, tmp_path)
    with capsys.disabled():
        print(f"verilator random lockstep: {cycles} cycles, {events} events, "
              f"{len(ops)} opcodes, zero divergences")
    if N_FRESH >= 50:  # a full-size run exercises the whole ISA but the control ops
        from lpu.isa import OPS  # (and the C2C ones: tiny has no links)

        kinds = {q.kind for q in TINY.queues}
        slice_ops = {o.mnemonic for o in OPS.values() if o.unit in kinds}
        assert slice_ops <= ops, sorted(slice_ops - ops)


def test_divergence_is_found_and_located(built, tmp_path):
    """The reference's SRAM differs from the device's in one byte of one word the
    program reads: the first divergence is the stream write of that read, naming the
    MEM slice, the stream, the superlane and the lane of that byte."""
    from lpu.isa import OPS, Opcode
    from lpu.program import ProgramBuilder, arrival

    d_read = OPS[Opcode.READ].d(TINY.superlanes)
    bld = ProgramBuilder(TINY)
    bld.at("mem_w0", 0, "read", 5, (2, 0))
    bld.at("mem_e0", arrival(TINY, "mem_w0", "mem_e0", d_read), "write", 40, (2, 0))
    program = bld.program()
    mem = _random_sram(7)
    lane = 5
    golden_mem = {k: v.copy() for k, v in mem.items()}
    golden_mem["mem_w0"][5, lane] ^= 0x10
    res = _run(built, [(program, mem)], tmp_path, reference_mem=[golden_mem])[0]
    assert not res.ok
    d = res.divergence
    mem_w0 = next(q for q in TINY.queues if q.name == "mem_w0")
    k = lane // TINY.lanes
    assert (d.kind, d.unit_name, d.what) == ("sr", TINY.positions[mem_w0.position].name,
                                             "stream e2")
    # superlane k of a read dispatched at 0 writes its stream in cycle k + d
    assert d.cycle == k + d_read
    assert (d.superlane, d.lane) == (k, lane)
    assert d.expected[lane % TINY.lanes] ^ d.actual[lane % TINY.lanes] == 0x10
