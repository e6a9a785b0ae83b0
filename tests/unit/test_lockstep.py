"""lpu.sim.lockstep: the golden model against itself, clean and with injected faults.

A fault (one byte flipped in one event, an event dropped, moved by one cycle, or an
extra one) must be reported at the right first cycle, kind, slice, superlane and lane,
with the instruction whose result it is; identical traces compare clean; the device
side is not run past the divergence.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from lpu import config
from lpu.asm import assemble_file
from lpu.golden.chip import Chip
from lpu.golden.schedule import effects
from lpu.isa import decode
from lpu.sim.lockstep import (
    Divergence,
    GoldenBackend,
    LockstepResult,
    compare,
    events_by_cycle,
    lockstep,
)
from lpu.sim.programs.randprog import generate
from lpu.trace import Event

pytestmark = pytest.mark.unit

TINY = config.load("tiny")
EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def case():
    rp = generate(TINY, 21)
    chip = Chip(TINY)
    rp.load_into(chip)
    chip.load(rp.program)
    res = chip.run(trace=True)
    return rp, res.events


class Recorder:
    """An event stream that remembers the last cycle it handed out."""

    def __init__(self, events):
        self.events = list(events)
        self.last = -1
        self.closed = False

    def __iter__(self):
        try:
            for c, evs in events_by_cycle(self.events):
                self.last = c
                yield c, evs
        finally:
            self.closed = True


def run_compare(rp, events):
    dev = Recorder(events)
    ref = GoldenBackend(TINY).run(rp.program, rp.mem)
    res = compare(ref, iter(dev), TINY, program=rp.program)
    return res, dev


def pick(events, kind, rng, min_cycle=8):
    cands = [i for i, e in enumerate(events) if e.kind == kind and e.cycle >= min_cycle]
    assert cands, kind
    return cands[int(rng.integers(0, len(cands)))]


def first_cycle_of(events, i):
    return events[i].cycle


def test_identical_traces_compare_clean(case):
    rp, events = case
    res, dev = run_compare(rp, events)
    assert res.ok and res.divergence is None, res.text()
    assert res.cycles == events[-1].cycle + 1
    assert res.events == 2 * len(events)
    assert "identical" in res.text()
    json.dumps(res.to_json())


def test_golden_backend_against_itself(case):
    rp, _ = case
    res = lockstep(TINY, rp.program, rp.mem, GoldenBackend(TINY))
    assert res.ok, res.text()


@pytest.mark.parametrize("kind", ["sr", "sram", "acc", "wload", "dispatch"])
def test_flipped_byte(case, kind):
    rp, events = case
    rng = np.random.default_rng(sum(map(ord, kind)))
    i = pick(events, kind, rng)
    ev = events[i]
    j = int(rng.integers(0, len(ev.data)))
    bad = bytearray(ev.data)
    bad[j] ^= 0x5A
    faulty = list(events)
    faulty[i] = ev._replace(data=bytes(bad))
    res, dev = run_compare(rp, faulty)
    d = res.divergence
    assert not res.ok and isinstance(d, Divergence)
    assert (d.cycle, d.kind, d.unit, d.dir, d.index, d.superlane) == \
        (ev.cycle, kind, ev.unit, ev.dir, ev.index, ev.superlane), d.text()
    assert d.reason == "value" and d.byte == j
    assert d.expected == ev.data and d.actual == bytes(bad)
    if kind == "dispatch":
        assert d.lane is None
    else:
        assert d.lane == ev.superlane * TINY.lanes + (j // 4 if kind == "acc" else j)
    # named like the config names things
    if kind == "sr":
        assert d.unit_name == TINY.positions[ev.unit].name
        assert d.what == f"stream {'ew'[ev.dir]}{ev.index}"
    # the instruction whose result it is
    assert d.responsible and d.instr is not None
    q = TINY.queue(d.queue)
    if kind == "sr":
        assert q.position == ev.unit
        ins = decode(next(int.from_bytes(e.data, "little") for e in events
                          if e.kind == "dispatch" and e.unit == q.index
                          and e.cycle == d.dispatch_cycle))
        assert ins.text() == d.instr
        assert any(ef.kind == "wr" and d.dispatch_cycle + ef.dt + ev.superlane == ev.cycle
                   for ef in effects(TINY, ins))
    # stopped there: the device was not run much past the divergence
    assert dev.closed and dev.last <= ev.cycle + 1
    text = d.text()
    assert f"cycle {ev.cycle}" in text and d.unit_name in text
    back = json.loads(json.dumps(res.to_json()))
    assert back["divergence"]["cycle"] == ev.cycle
    assert back["divergence"]["lane"] == d.lane


def test_dropped_event(case):
    rp, events = case
    i = pick(events, "sr", np.random.default_rng(1))
    ev = events[i]
    res, _ = run_compare(rp, events[:i] + events[i + 1:])
    d = res.divergence
    assert (d.cycle, d.reason, d.unit_name, d.superlane, d.index) == \
        (ev.cycle, "missing", TINY.positions[ev.unit].name, ev.superlane, ev.index)
    assert d.expected == ev.data and d.actual is None and d.lane is None


@pytest.mark.parametrize("shift", [1, -1])
def test_event_shifted_by_one_cycle(case, shift):
    rp, events = case
    i = pick(events, "sram", np.random.default_rng(2))
    ev = events[i]
    moved = ev._replace(cycle=ev.cycle + shift)
    faulty = sorted(events[:i] + events[i + 1:] + [moved], key=Event.sort_key)
    res, _ = run_compare(rp, faulty)
    d = res.divergence
    if shift > 0:  # missing where it belongs
        assert (d.cycle, d.reason) == (ev.cycle, "missing")
    else:  # early: extra one cycle before
        assert (d.cycle, d.reason) == (ev.cycle - 1, "extra")
    assert d.kind == "sram" and d.unit_name == [q.name for q in TINY.queues
                                                if q.kind == "mem"][ev.unit]
    assert d.index == ev.index and d.superlane == ev.superlane


def test_extra_event(case):
    rp, events = case
    c = events[len(events) // 2].cycle
    extra = Event(c, "sr", TINY.position("vxm").index, 1, TINY.streams - 1, 1,
                  bytes(range(TINY.lanes)))
    if any(e[:6] == extra[:6] for e in events):
        extra = extra._replace(dir=0)
    faulty = sorted(events + [extra], key=Event.sort_key)
    res, _ = run_compare(rp, faulty)
    d = res.divergence
    assert (d.cycle, d.reason, d.unit_name, d.superlane) == (c, "extra", "vxm", 1)
    assert d.actual == extra.data and d.expected is None
    assert "does not have" in d.text()


def test_first_of_several_faults_is_reported(case):
    rp, events = case
    rng = np.random.default_rng(3)
    i1 = pick(events, "sr", rng, min_cycle=20)
    i0 = next(i for i, e in enumerate(events) if e.kind == "sr" and e.cycle < events[i1].cycle
              and e.cycle >= 5)
    faulty = list(events)
    for i in (i0, i1):
        faulty[i] = faulty[i]._replace(data=bytes(b ^ 1 for b in faulty[i].data))
    res, _ = run_compare(rp, faulty)
    assert res.divergence.cycle == events[i0].cycle


def test_device_that_stops_early(case):
    rp, events = case
    last = events[-1].cycle
    res, _ = run_compare(rp, [e for e in events if e.cycle < last - 3])
    first_missing = min(e.cycle for e in events if e.cycle >= last - 3)
    assert not res.ok and res.divergence.cycle == first_missing and \
        res.divergence.reason == "missing"


def test_report_names_the_source_line():
    prog = assemble_file(EX / "vector_add.s", TINY)
    chip = Chip(TINY)
    chip.write_tensor("mem_w0", 0, np.arange(TINY.vl, dtype=np.int32))
    chip.write_tensor("mem_e0", 0, np.arange(TINY.vl, dtype=np.int32) * 3)
    mem = {n: chip.read_mem(n, 0, TINY.mem_words) for n in chip.mem_names}
    chip.load(prog)
    events = chip.run(trace=True).events
    vxm = TINY.position("vxm").index
    i = next(i for i, e in enumerate(events) if e.kind == "sr" and e.unit == vxm
             and e.superlane == 1)
    faulty = list(events)
    faulty[i] = events[i]._replace(data=b"\xff" + events[i].data[1:])
    res = compare(GoldenBackend(TINY).run(prog, mem), events_by_cycle(faulty), TINY,
                  program=prog)
    d = res.divergence
    assert d.cycle == events[i].cycle == 4 and d.lane == TINY.lanes
    assert d.queue == "vxm0" and d.instr.startswith("add e4, e0, w0")
    line = next(n for n, text in enumerate((EX / "vector_add.s").read_text().splitlines(), 1)
                if text.strip().startswith("add "))
    assert d.where and d.where.endswith(f"vector_add.s:{line}"), d.where
    assert f"vector_add.s:{line}" in d.text()


def test_result_json_shape():
    r = LockstepResult(True, 10, 20, None, "golden", "amaranth", 0.5, 17)
    j = r.to_json()
    assert j == {"ok": True, "reference": "golden", "device": "amaranth", "cycles": 10,
                 "events": 20, "seconds": 0.5, "divergence": None, "end_cycle": 17}
    assert LockstepResult.from_json(j).end_cycle == 17
