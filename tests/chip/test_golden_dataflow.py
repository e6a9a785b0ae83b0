"""The golden model's two executors agree: an untraced ``Chip.run`` (the dataflow
evaluator, :mod:`lpu.golden.dataflow`) leaves every bit of state, the cycle counts and
every run-time error exactly as the traced run (the cycle-by-cycle interpreter)."""

import os
import secrets

import numpy as np
import pytest
from _harness import TINY, E, W

from lpu import config
from lpu.golden import dataflow
from lpu.golden.chip import Chip, ChipError
from lpu.program import ProgramBuilder
from lpu.sim.programs.randprog import generate
from lpu.tools.bench import busy_program

pytestmark = [pytest.mark.chip]

SMALL = config.load("small")
STATE = ("mem", "shadow", "weights", "acc", "sr", "stamp", "held", "held_at", "cycle",
         "_last_event")
_BASE = int(os.environ.get("LPU_FRESH_SEED") or secrets.randbits(30))
FRESH = [(_BASE * 11 + 104729 * i) % (1 << 31) for i in range(3)]


def _run(cfg, programs, init, *, trace, check_first=True, max_cycles=None):
    """Run `programs` one after another on one chip; (chip, results, error)."""
    chip = Chip(cfg)
    init(chip)
    results = []
    try:
        for p in programs:
            chip.load(p, check_first=check_first)
            results.append(chip.run(trace=trace, max_cycles=max_cycles))
    except ChipError as e:
        return chip, results, e
    return chip, results, None


def assert_agree(monkeypatch, cfg, programs, init, *, dataflow_runs=True, **kw):
    """The traced and the untraced run of `programs` end in the same state and results
    (or the same error); `dataflow_runs`: the untraced one ran on the dataflow path to
    the end (else on the interpreter, at least in part)."""
    finished = []
    run = dataflow.Plan.run
    monkeypatch.setattr(dataflow.Plan, "run",
                        lambda self, chip: finished.append(run(self, chip)) or finished[-1])
    a, ra, ea = _run(cfg, programs, init, trace=True, **kw)
    assert not finished  # a traced run is the interpreter's
    b, rb, eb = _run(cfg, programs, init, trace=False, **kw)
    assert (bool(finished) and all(finished)) == dataflow_runs, finished
    assert [(r.cycles, r.dispatched, r.end_cycle) for r in ra] == [
        (r.cycles, r.dispatched, r.end_cycle) for r in rb]
    assert all(r.events for r in ra) and not any(r.events for r in rb)
    for name in STATE:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    if ea or eb:
        assert (str(ea), ea.cycle, ea.queue, ea.where, ea.instr, ea.rule) == (
            str(eb), eb.cycle, eb.queue, eb.where, eb.instr, eb.rule)
    return ea, finished


@pytest.mark.parametrize("cfg,seed", [(TINY, s) for s in range(12)] +
                         [(SMALL, s) for s in range(4)] + [(TINY, s) for s in FRESH])
def test_random_programs(monkeypatch, cfg, seed):
    rp = generate(cfg, seed)
    assert_agree(monkeypatch, cfg, [rp.program], rp.load_into)


def test_long_random_program_on_small(monkeypatch):
    rp = generate(SMALL, 5, cycles=400)
    assert_agree(monkeypatch, SMALL, [rp.program], rp.load_into)


@pytest.mark.parametrize("cfg", [TINY, SMALL])
def test_busy_program_then_random_program_on_one_chip(monkeypatch, cfg):
    """State carries over between programs (SRAM, weights, accumulators, registers)."""
    rp = generate(cfg, 3)
    assert_agree(monkeypatch, cfg, [busy_program(cfg, 200), rp.program, busy_program(cfg, 50)],
                 rp.load_into)


def test_a_run_stopped_early_is_the_interpreter_s(monkeypatch):
    rp = generate(TINY, 1)
    assert_agree(monkeypatch, TINY, [rp.program], rp.load_into, max_cycles=rp.cycles // 2,
                 dataflow_runs=False)


def _gather_outside_bank():
    def init(chip):
        chip.write_mem("mem_w1", 0, np.full((1, TINY.vl), 200, dtype=np.uint8))
    b = ProgramBuilder(TINY)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "gather", 10, (0, E), (1, E))  # 10 + 200 is in bank 1
    b.at("mem_e0", 0, "read", 1, (0, W))  # something else going on
    b.at("mem_e1", 6, "read", 2, (0, W), 2)
    return b.program(), init


def _perm_map_too_large():
    def init(chip):
        chip.write_mem("mem_w0", 0, np.array([[1] * TINY.vl, [0] * (TINY.vl - 1) + [1]],
                                             dtype=np.uint8))
    b = ProgramBuilder(TINY)
    b.at("mem_w0", 0, "read", 0, (0, W), 2)
    b.at("sxm_w", 3, "perm", (0, E), (0, W), (0, W), 1)  # lane VL-1: 1 + 256
    return b.program(), init


@pytest.mark.parametrize("case,needle", [(_gather_outside_bank, "outside bank 0"),
                                         (_perm_map_too_large, "perm map entry 257")])
def test_data_dependent_errors_are_the_interpreter_s(monkeypatch, case, needle):
    """The dataflow path finds the error, leaves the state alone, and the interpreter
    raises it."""
    program, init = case()
    err, finished = assert_agree(monkeypatch, TINY, [program], init, dataflow_runs=False)
    assert finished == [False]
    assert err.rule == "range" and needle in str(err)


def _two_writers():
    b = ProgramBuilder(TINY)
    b.at("mem_w0", 0, "read", 0, (0, E), 2)
    b.at("vxm0", 2, "mov", (5, E), (0, E))
    b.at("vxm1", 2, "mov", (5, E), (1, E))
    return b.program()


def _empty_read():
    b = ProgramBuilder(TINY)
    b.at("mem_w0", 0, "read", 0, (0, E))
    b.at("vxm0", 3, "mov", (5, E), (0, E))
    return b.program()


def _bank_conflict():
    b = ProgramBuilder(TINY)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "write", 5, (0, E))
    b.at("mem_w0", 3, "read", 6, (1, E))
    return b.program()


@pytest.mark.parametrize("case", [_two_writers, _empty_read, _bank_conflict])
def test_static_errors_without_the_checker_are_the_interpreter_s(monkeypatch, case):
    err, finished = assert_agree(monkeypatch, TINY, [case()], lambda chip: None,
                                 check_first=False, dataflow_runs=False)
    assert err is not None and not finished


def test_a_program_too_large_for_a_plan_runs_on_the_interpreter(monkeypatch):
    monkeypatch.setattr(dataflow, "MAX_BYTES", 10_000)
    rp = generate(TINY, 2)
    assert_agree(monkeypatch, TINY, [rp.program], rp.load_into, dataflow_runs=False)
