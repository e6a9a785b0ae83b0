"""lpu.hdl.icu on Amaranth's simulator against lpu.golden.schedule.timeline.

Random ICU programs (``nop``, ``repeat`` with stepped addresses and rows, ``sync`` /
``notify`` across queues, mixed with slice instructions) are loaded through the ICU's
host port, started, and every dispatch (cycle, queue, instruction index, word as
issued) is compared with the golden timeline. The program is then started again and
must give the same dispatches.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu import config
from lpu.golden.schedule import ScheduleError, timeline
from lpu.hdl.icu import Icu
from lpu.isa import decode, encode, make
from lpu.program import Program

pytestmark = pytest.mark.slice

TINY = config.load("tiny")


def _slice_instr(rng, kind: str):
    """A random instruction of slice kind `kind` (the ICU dispatches it whatever it does;
    the dispatch timeline refuses an instruction of another kind's slice)."""
    s = (int(rng.integers(0, 8)), int(rng.integers(0, 2)))
    if kind == "mem":
        k = int(rng.integers(0, 3))
        if k == 0:
            return make("read", int(rng.integers(64, 4000)), s, int(rng.integers(1, 5)))
        if k == 1:
            return make("write", int(rng.integers(64, 4000)), s, int(rng.integers(1, 5)))
        return make("gather", int(rng.integers(64, 4000)), s, (3, 1))
    if kind == "mxm":
        return make("lw", int(rng.integers(64, 400)), s, int(rng.integers(1, 4)))
    if kind == "vxm":
        return make("add", (4, 0), s, (0, 1))
    return make("shift", (1, 1), s, int(rng.integers(-5, 6)))


def random_program(cfg, rng, queues, length):
    """Per queue a random mix; retried until no sync is left unreleased."""
    while True:
        out = {}
        for q in queues:
            ins = []
            prev_slice = False
            while len(ins) < length:
                r = rng.random()
                if prev_slice and r < 0.3:
                    ins.append(make("repeat", int(rng.integers(1, 5)), int(rng.integers(1, 5)),
                                    int(rng.integers(-4, 5))))
                    prev_slice = False
                    continue
                r = rng.random()
                if r < 0.45:
                    ins.append(_slice_instr(rng, cfg.queue(q).kind))
                    prev_slice = True
                    continue
                prev_slice = False
                if r < 0.7:
                    ins.append(make("nop", int(rng.integers(1, 7))))
                elif r < 0.85:
                    ins.append(make("sync"))
                else:
                    ins.append(make("notify"))
            out[q] = ins
        prog = Program.from_instrs(cfg, out)
        try:
            return prog, timeline(cfg, prog)
        except ScheduleError:
            continue


def run_icu(cfg, progs, cycles, *, runs=2):
    """Load each program of `progs` in turn through the ICU's host port (every other
    queue's length set to 0), start it `runs` times for `cycles[i]` cycles, and return
    per program the dispatches of each run as sorted (cycle, queue, index, word) and
    ``done`` per cycle. One simulator serves every program."""
    dut = Icu(cfg)
    results = []

    async def tb(ctx):
        for prog, n_cycles in zip(progs, cycles, strict=True):
            for q in cfg.queues:
                words = prog.queues.get(q.name, [])
                ctx.set(dut.load.queue, q.index)
                for i, w in enumerate(words):
                    ctx.set(dut.load.addr, i)
                    ctx.set(dut.load.data, w)
                    ctx.set(dut.load.en, 1)
                    await ctx.tick()
                ctx.set(dut.load.en, 0)
                ctx.set(dut.load.data, len(words))
                ctx.set(dut.load.len_en, 1)
                await ctx.tick()
                ctx.set(dut.load.len_en, 0)
                # a finished queue does not wake up when its length changes
                assert not any(ctx.get(dut.dispatch[i].valid) for i in range(len(cfg.queues)))
            per_run = []
            for _ in range(runs):
                ctx.set(dut.start, 1)  # this is cycle -1
                await ctx.tick()
                ctx.set(dut.start, 0)
                seen, done = [], []
                for c in range(n_cycles):
                    for q in range(len(cfg.queues)):
                        if ctx.get(dut.dispatch[q].valid):
                            seen.append((c, q, ctx.get(dut.index[q]),
                                         ctx.get(dut.dispatch[q].word.as_value())))
                    done.append(ctx.get(dut.done))
                    await ctx.tick()
                per_run.append((sorted(seen), done))
            results.append(per_run)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return results


def expected(tl):
    return sorted((d.t, d.queue, d.index, encode(d.instr)) for d in tl.dispatches)


SEEDS = range(6)


def _random_case(seed):
    rng = np.random.default_rng(1000 + seed)
    names = [q.name for q in TINY.queues]
    chosen = list(rng.choice(names, size=5, replace=False))
    return random_program(TINY, rng, chosen, length=14)


def _directed_case():
    prog = Program.from_instrs(TINY, {
        "mem_w0": [make("sync"), make("read", 10, (0, 0), 2), make("repeat", 3, 2, -2),
                   make("nop", 3), make("read", 0, (1, 0))],
        "mxm_w0": [make("lw", 7, (0, 1)), make("repeat", 2, 1, 5), make("sync"),
                   make("lw", 0, (2, 0))],
        "vxm1": [make("nop", 4), make("notify"), make("nop", 2), make("notify")],
    })
    return prog, timeline(TINY, prog)


@pytest.fixture(scope="module")
def icu_runs():
    """Every case of this module through one simulated ICU."""
    cases = {f"random{s}": _random_case(s) for s in SEEDS}
    cases["directed"] = _directed_case()
    empty = Program.from_instrs(TINY, {"sxm_e": [make("nop", 3)]})
    cases["empty"] = (empty, timeline(TINY, empty))
    names = list(cases)
    results = run_icu(TINY, [cases[n][0] for n in names],
                      [cases[n][1].end + 8 for n in names])
    return {n: (cases[n][0], cases[n][1], r) for n, r in zip(names, results, strict=True)}


@pytest.mark.parametrize("seed", SEEDS)
def test_random_programs_match_golden_timeline(icu_runs, seed):
    prog, tl, runs = icu_runs[f"random{seed}"]
    want = expected(tl)
    assert len(want) > 10
    assert len(runs) == 2  # a second start replays the program
    for got, done in runs:
        assert got == want
        assert done[-1] == 1
        # no queue is done before its last dispatch
        last = max(t for t, *_ in want)
        assert not any(done[: last + 1])


def test_repeat_sync_notify_directed(icu_runs):
    prog, tl, runs = icu_runs["directed"]
    got, _ = runs[0]
    assert got == expected(tl)
    # mem_w0 resumes the cycle after the notify at 4: read at 5, copies at 7, 9, 11
    times = [t for t, q, *_ in got if q == TINY.queue("mem_w0").index]
    assert times == [5, 7, 9, 11, 15]
    words = [w for t, q, i, w in got if q == TINY.queue("mem_w0").index]
    assert [decode(w).addr for w in words] == [10, 8, 6, 4, 0]
    rows = [decode(w).row for t, q, i, w in got if q == TINY.queue("mxm_w0").index]
    assert rows == [7, 12, 17, 0]


def test_empty_and_idle_queues_are_done(icu_runs):
    _, _, runs = icu_runs["empty"]
    got, done = runs[0]
    assert got == []
    assert done[:4] == [0, 1, 1, 1]  # done once the nop, its last word, is reached
