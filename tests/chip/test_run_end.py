"""The end of a run (docs/timing.md, "The end of a run"): the golden model's last cycle
equals the one worked out by hand for programs ending every way a queue can end, the
RTL on Amaranth's simulator ends in the same cycle (lockstep compares it), and a device
that ends in another cycle is reported with both cycles and the last queue's word."""

import pytest

from lpu import config
from lpu.golden.chip import Chip
from lpu.isa import OPS, drain_cycles
from lpu.sim.lockstep import AmaranthBackend, GoldenBackend, LockstepResult, lockstep
from lpu.sim.programs.run_end import RUN_ENDS, run_end_programs
from lpu.sim.session import open_session

pytestmark = [pytest.mark.chip]
TINY = config.load("tiny")
SMALL = config.load("small")


def test_drain_covers_the_longest_delay_and_the_stagger():
    for cfg in (TINY, SMALL):
        longest = max(info.d(cfg.superlanes) for info in OPS.values())
        assert drain_cycles(cfg.superlanes) == longest + cfg.superlanes + 1


@pytest.mark.parametrize("cfg", [TINY, SMALL], ids=["tiny", "small"])
@pytest.mark.parametrize("case", RUN_ENDS, ids=[r.name for r in RUN_ENDS])
def test_golden_run_ends_where_the_rules_say(cfg, case):
    chip = Chip(cfg)
    chip.load(case.program(cfg))
    res = chip.run()
    assert chip.end_cycle == res.end_cycle == case.finished + drain_cycles(cfg.superlanes)
    # every event of the run lies inside it
    assert res.cycles <= res.end_cycle


@pytest.mark.slow
def test_rtl_ends_in_the_same_cycle_on_amaranth():
    """Every case on one Amaranth simulation, run after run (the bulk comparison: the
    end of each run compared too); one of them per cycle as well."""
    with open_session(TINY, "amaranth") as s:
        for case, prog in run_end_programs(TINY):
            r = s.run(prog, {}, name=case.name)
            assert r.ok, f"{case.name}: {r.lockstep.text()}"
            assert r.lockstep.end_cycle == case.end_cycle(TINY), case.name
            assert r.status & 2 and r.error is None, case.name  # DONE, no error
    case, prog = next((c, p) for c, p in run_end_programs(TINY) if c.name == "nop_then_notify")
    dev = AmaranthBackend(TINY)
    r = lockstep(TINY, prog, {}, dev)
    assert r.ok, r.text()
    assert r.end_cycle == dev.end_cycle == case.end_cycle(TINY)
    assert dev.status & 2 and dev.error is None


class _LateEnd:
    """A device that reports every event of the golden model but ends one cycle later."""

    name = "late"

    def __init__(self, cfg):
        self.inner = GoldenBackend(cfg)
        self.end_cycle = None

    def run(self, program, mem_init):
        yield from self.inner.run(program, mem_init)
        self.end_cycle = self.inner.end_cycle + 1


def test_a_different_end_is_a_divergence_naming_the_last_queue():
    case = next(r for r in RUN_ENDS if r.name == "nop_then_notify")
    prog = case.program(TINY)
    r = lockstep(TINY, prog, {}, _LateEnd(TINY))
    assert not r.ok
    d = r.divergence
    want = case.end_cycle(TINY)
    assert (d.reason, d.kind) == ("end", "run")
    assert d.cycle == want + 1
    assert int.from_bytes(d.expected, "little") == want
    assert int.from_bytes(d.actual, "little") == want + 1
    assert (d.queue, d.instr_index, d.instr) == ("mem_w0", 2, "notify")
    text = r.text()
    assert f"ends in cycle {want} on the reference, {want + 1} on the device" in text
    assert "mem_w0" in text and "'notify'" in text and "nop_then_notify>:4" in text
    # and through JSON, as the cocotb backends return it
    back = LockstepResult.from_json(r.to_json())
    assert back.text() == r.text()
