"""An RTL chip kept across runs (:class:`lpu.sim.session.RtlSession`), on ``tiny``:

* random programs run one after another on one Verilator (Icarus, Amaranth)
  simulator, the SRAM never reloaded: after every run the RTL's SRAM, read back
  through the host bus (on Verilator all of it; on the slower two the words the runs
  write and every 16th other word), is the golden model's after the same runs from the
  same start (computed here with the golden chip alone, run after run), and every run
  is in lockstep;
* only the words the host names are written: a word written before the first run is
  still there after several runs that do not write it;
* an SRAM byte of the RTL that differs from the golden model's (a soft error) is
  reported at the first cycle and lane where the golden model itself would show it
  (the golden model run on both contents and compared per cycle), in the right slice.
"""

import numpy as np
import pytest

from lpu import config
from lpu.golden.chip import Chip as GoldenChip
from lpu.golden.schedule import timeline
from lpu.isa import E
from lpu.sim import verilator as vl
from lpu.sim.cocotb_runner import words_written
from lpu.sim.lockstep import GoldenBackend, compare
from lpu.sim.programs.randprog import generate

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")
NAMES = [q.name for q in TINY.queues if q.kind == "mem"]
NONE = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, TINY.vl), np.uint8))


def _session(simulator):
    from lpu.sim.session import open_session

    if simulator != "amaranth":
        ok, why = vl.available(simulator)
        if not ok:
            pytest.skip(why)
    return open_session(TINY, simulator)


def _read_back(simulator, programs):
    """(slice, first address, words) runs each run reads back: on Verilator the whole
    SRAM; on Icarus and Amaranth (a bus read is a simulated cycle or more) the words any
    of `programs` writes and every 16th other word."""
    if simulator == "verilator":
        return [(n, 0, TINY.mem_words) for n in NAMES]
    out = []
    for i, n in enumerate(NAMES):
        addrs = set(range(0, TINY.mem_words, 16))
        for p in programs:
            addrs |= words_written(TINY, p).get(i, set())
        run = None
        for a in sorted(addrs):
            if run is not None and a == run[1] + run[2]:
                run[2] += 1
            else:
                run = [n, a, 1]
                out.append(run)
    return [tuple(r) for r in out]


def _golden_after(sram, program):
    """The golden chip's SRAM after `program` from `sram`, on a chip of its own."""
    chip = GoldenChip(TINY)
    for n, words in sram.items():
        chip.write_mem(n, 0, words)
    chip.load(program)
    chip.run()
    return {n: chip.mem[i].copy() for i, n in enumerate(chip.mem_names)}


@pytest.mark.parametrize("simulator", ["verilator", "icarus", "amaranth"])
def test_sram_persists_across_runs(simulator):
    seeds = range(8) if simulator == "verilator" else range(3)
    first = generate(TINY, 100, cycles=30)
    state = {n: np.asarray(first.mem.get(n, np.zeros((TINY.mem_words, TINY.vl))), np.uint8)
             for n in NAMES}
    programs = [generate(TINY, seed, cycles=30).program for seed in seeds]
    reads = _read_back(simulator, programs)
    with _session(simulator) as s:
        for k, program in enumerate(programs):
            r = s.run(program, state, None if k == 0 else NONE, reads=reads)
            assert r.ok, r.lockstep.text()
            assert r.lockstep.events > 0 and r.cycles > 0
            state = _golden_after(state, program)
            for (n, a, c), got in zip(reads, r.reads, strict=True):
                assert np.array_equal(got, state[n][a:a + c]), f"run {k}: {n} {a}+{c} differs"
        assert s.runs == len(seeds)


def test_only_named_words_are_written():
    """A word the first run's host writes stays in the RTL through runs whose hosts
    write nothing and whose programs do not write it."""
    from lpu.program import ProgramBuilder

    pb = ProgramBuilder(TINY)
    pb.at("mem_w0", 0, "read", 100, (0, E), 1)  # reads another word, writes none
    prog = pb.program()
    word = np.arange(TINY.vl, dtype=np.uint8) + 7
    sram = {n: np.zeros((TINY.mem_words, TINY.vl), np.uint8) for n in NAMES}
    sram["mem_e1"][200] = word
    with _session("verilator") as s:
        for k in range(3):
            r = s.run(prog, sram, None if k == 0 else NONE, reads=[("mem_e1", 199, 3)])
            assert r.ok, r.lockstep.text()
            assert np.array_equal(r.reads[0][1], word)
            assert not r.reads[0][0].any() and not r.reads[0][2].any()


def test_a_flipped_sram_byte_is_reported_where_it_first_shows():
    rp = generate(TINY, 3, cycles=40)
    sram = {n: np.asarray(rp.mem.get(n, np.zeros((TINY.mem_words, TINY.vl))), np.uint8)
            for n in NAMES}
    # a word the program reads: the first read of the first MEM queue that reads
    reads = [d for d in timeline(TINY, rp.program).dispatches
             if d.instr.op.name == "READ" and TINY.queues[d.queue].kind == "mem"]
    d = min(reads, key=lambda d: d.t)
    name, addr, lane = TINY.queues[d.queue].name, d.instr.args["addr"], 5
    bad = {n: v.copy() for n, v in sram.items()}
    bad[name][addr, lane] ^= 0x40
    want = compare(GoldenBackend(TINY).run(rp.program, sram),
                   GoldenBackend(TINY).run(rp.program, bad), TINY, program=rp.program)
    assert want.divergence is not None
    with _session("verilator") as s:  # the RTL gets the flipped byte, the golden model not
        r = s.run(rp.program, sram, s.nonzero(bad))
    got = r.lockstep.divergence
    assert got is not None, "the flipped byte went unnoticed"
    w = want.divergence
    assert (got.cycle, got.kind, got.unit_name, got.what, got.superlane, got.lane) == \
        (w.cycle, w.kind, w.unit_name, w.what, w.superlane, w.lane)
    assert got.lane == lane and got.unit_name == name
    assert got.expected != got.actual
