"""lpu.hdl.fabric.StreamFabric on Amaranth's simulator.

* Random writes at every position, checked every cycle against the contract's formula
  (docs/timing.md section 3: ``E[p] <= write if we else E[p-1]``, ``E[0]`` invalid
  unless written; ``W`` mirrored), on ``tiny`` and a 3-superlane config.
* The stream writes of a golden-model run (MEM reads from every MEM slice, overwriting
  each other's streams) driven into the fabric, whose registers must then equal the
  golden model's ``Chip.peek`` on every superlane of every cycle.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu import config
from lpu.golden.chip import Chip
from lpu.hdl.fabric import StreamFabric
from lpu.isa import make
from lpu.program import Program

pytestmark = pytest.mark.slice

TINY = config.load("tiny")
THREE = TINY.replace(superlanes=3, lanes=2, streams=4, mem_slices=1, name="three")


def _flat(words, cfg):
    """[superlane][stream] ints -> the flat bits of a stream_data value."""
    w = 8 * cfg.lanes
    out = 0
    for k in range(cfg.superlanes):
        for s in range(cfg.streams):
            out |= int(words[k][s]) << ((k * cfg.streams + s) * w)
    return out


def _bits(we, cfg):
    """[superlane][stream] bools -> the flat bits of a stream_bits value."""
    return sum(int(we[k][s]) << (k * cfg.streams + s)
               for k in range(cfg.superlanes) for s in range(cfg.streams))


def _unflat(value, cfg, width=None):
    w = 8 * cfg.lanes if width is None else width
    mask = (1 << w) - 1
    return [[(value >> ((k * cfg.streams + s) * w)) & mask for s in range(cfg.streams)]
            for k in range(cfg.superlanes)]


def _run(dut, tb, cycles):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(cycles * 1e-6 + 1e-7)


@pytest.mark.parametrize("cfg", [TINY, THREE], ids=lambda c: c.name)
def test_random_writes_follow_the_contract(cfg):
    P, S, N = len(cfg.positions), cfg.superlanes, cfg.streams
    rng = np.random.default_rng(7)
    dut = StreamFabric(cfg)
    cycles = 40
    wmask = (1 << (8 * cfg.lanes)) - 1

    async def tb(ctx):
        # the model: [dir][p][k][s] -> (value, valid)
        val = np.zeros((2, P, S, N), dtype=object)
        ok = np.zeros((2, P, S, N), dtype=bool)
        for _ in range(cycles):
            writes = []
            for p in range(P):
                per_dir = []
                for data_port, we_port in ((dut.wr[p].e, dut.wr[p].e_we),
                                           (dut.wr[p].w, dut.wr[p].w_we)):
                    we = rng.random((S, N)) < 0.15
                    data = rng.integers(0, wmask + 1, size=(S, N), dtype=np.uint64)
                    ctx.set(data_port.as_value(), _flat(data, cfg))
                    ctx.set(we_port.as_value(), _bits(we, cfg))
                    per_dir.append((we, data))
                writes.append(per_dir)
            # what arrives (combinational) must be the neighbours' registers
            for p in range(P):
                e = _unflat(ctx.get(dut.rd[p].e.as_value()), cfg)
                ev = _unflat(ctx.get(dut.rd[p].e_valid.as_value()), cfg, 1)
                w = _unflat(ctx.get(dut.rd[p].w.as_value()), cfg)
                wv = _unflat(ctx.get(dut.rd[p].w_valid.as_value()), cfg, 1)
                for k in range(S):
                    for s in range(N):
                        exp_ev = bool(ok[0, p - 1, k, s]) if p > 0 else False
                        exp_wv = bool(ok[1, p + 1, k, s]) if p < P - 1 else False
                        assert bool(ev[k][s]) == exp_ev, (p, k, s)
                        assert bool(wv[k][s]) == exp_wv, (p, k, s)
                        if exp_ev:
                            assert e[k][s] == val[0, p - 1, k, s]
                        if exp_wv:
                            assert w[k][s] == val[1, p + 1, k, s]
            await ctx.tick()
            # the model's edge
            nval, nok = val.copy(), ok.copy()
            for p in range(P):
                for d, prev in ((0, p - 1), (1, p + 1)):
                    we, data = writes[p][d]
                    for k in range(S):
                        for s in range(N):
                            if we[k, s]:
                                nval[d, p, k, s], nok[d, p, k, s] = int(data[k, s]), True
                            elif 0 <= prev < P:
                                nval[d, p, k, s], nok[d, p, k, s] = val[d, prev, k, s], \
                                    ok[d, prev, k, s]
                            else:
                                nok[d, p, k, s] = False
            val, ok = nval, nok
            for p in range(P):
                for d, (dat, vld) in enumerate(((dut.e_data, dut.e_valid),
                                                (dut.w_data, dut.w_valid))):
                    got = _unflat(ctx.get(dat[p]), cfg)
                    gotv = _unflat(ctx.get(vld[p]), cfg, 1)
                    for k in range(S):
                        for s in range(N):
                            assert bool(gotv[k][s]) == ok[d, p, k, s], (d, p, k, s)
                            if ok[d, p, k, s]:
                                assert got[k][s] == val[d, p, k, s], (d, p, k, s)

    _run(dut, tb, cycles)


def _mem_read_program(cfg, rng, cycles):
    """Random MEM reads on every MEM slice: values written at the MEM positions that
    travel and overwrite each other. Legal by construction (only reads)."""
    queues = {}
    for q in cfg.queues:
        if q.kind != "mem":
            continue
        ins = []
        for _ in range(cycles):
            if rng.random() < 0.5:
                count = int(rng.integers(1, 5))
                s = int(rng.integers(0, cfg.streams - count + 1))
                addr = int(rng.integers(0, cfg.bank_words - count + 1))
                ins.append(make("read", addr, (s, int(rng.integers(0, 2))), count))
            else:
                ins.append(make("nop", 1))
        queues[q.name] = ins
    return Program.from_instrs(cfg, queues)


@pytest.mark.parametrize("cfg", [TINY, THREE], ids=lambda c: c.name)
def test_matches_golden_peek(cfg):
    """Drive the fabric with the golden model's stream writes; compare every register."""
    P, S, N, L = len(cfg.positions), cfg.superlanes, cfg.streams, cfg.lanes
    rng = np.random.default_rng(3)
    chip = Chip(cfg)
    for name in chip.mem_names:
        chip.write_mem(name, 0, rng.integers(0, 256, size=(cfg.mem_words, cfg.vl)))
    chip.load(_mem_read_program(cfg, rng, 20))
    # skewed cycle tau -> [dir][p][stream] -> VL bytes or None
    peeks, events = [], []
    while not chip.done:
        chip.step(trace=True)
        peeks.append({(d, p, s): chip.peek(d, s, p) for d in (0, 1) for p in range(P)
                      for s in range(N)})
    for _ in range(S + 2):  # let the last values travel (nothing more is written)
        chip.step(trace=True)
        peeks.append({(d, p, s): chip.peek(d, s, p) for d in (0, 1) for p in range(P)
                      for s in range(N)})
    events = [e for e in chip.take_events() if e.kind == "sr"]
    by_cycle = {}
    for e in events:
        by_cycle.setdefault(e.cycle, []).append(e)
    cycles = len(peeks)
    dut = StreamFabric(cfg)
    checked = 0

    async def tb(ctx):
        nonlocal checked
        for c in range(cycles):
            drive = {(p, d): ([[0] * N for _ in range(S)], [[0] * N for _ in range(S)])
                     for p in range(P) for d in (0, 1)}
            for e in by_cycle.get(c, ()):
                data, we = drive[(e.unit, e.dir)]
                data[e.superlane][e.index] = int.from_bytes(e.data, "little")
                we[e.superlane][e.index] = 1
            for (p, d), (data, we) in drive.items():
                port = dut.wr[p]
                ctx.set((port.e if d == 0 else port.w).as_value(), _flat(data, cfg))
                ctx.set((port.e_we if d == 0 else port.w_we).as_value(), _bits(we, cfg))
            await ctx.tick()
            # registers after the edge ending cycle c, superlane k <-> skewed cycle c - k
            for p in range(P):
                for d, (dat, vld) in enumerate(((dut.e_data, dut.e_valid),
                                                (dut.w_data, dut.w_valid))):
                    got = _unflat(ctx.get(dat[p]), cfg)
                    gotv = _unflat(ctx.get(vld[p]), cfg, 1)
                    for k in range(S):
                        tau = c - k
                        for s in range(N):
                            want = peeks[tau][(d, p, s)] if 0 <= tau < cycles else None
                            want_ok = want is not None
                            assert bool(gotv[k][s]) == want_ok, (c, d, p, k, s)
                            if want_ok:
                                lane_bytes = bytes(want[k * L:(k + 1) * L])
                                assert got[k][s] == int.from_bytes(lane_bytes, "little"), \
                                    (c, d, p, k, s)
                                checked += 1

    _run(dut, tb, cycles)
    assert checked > 50
