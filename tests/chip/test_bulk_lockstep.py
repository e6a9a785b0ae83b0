"""Bulk lockstep (:mod:`lpu.sim.bulk`) reports what the per-cycle comparison reports.

* the golden side: the dataflow path's events as columns
  (:meth:`lpu.golden.chip.Chip.run_events`) are the traced interpreter's events, and
  :class:`lpu.sim.bulk.Expected` hands out the same events window by window on either
  of its paths;
* the RTL side: :meth:`lpu.sim.trace.EventArrays.from_packed` decodes recorded trace
  samples as :class:`lpu.sim.trace.TraceReader` decodes them one at a time;
* the comparison: on a deliberately broken RTL (:class:`lpu.hdl.vxm.VxmFault`, on
  Amaranth's simulator, recorded as the Verilog recorder records), with a golden model
  given other SRAM contents (on Verilator), in blocks of a few records so that the
  first divergence comes after a block boundary and runs span many blocks, the bulk
  result equals the per-cycle one field for field (cycle, slice, superlane, lane,
  stream, both values, the instruction in flight and its source line, the events
  compared, the end of the run);
* the end of a run is compared after the last block as before, and a golden-model
  error at run time is raised unless a divergence comes first, as per cycle.
"""

import os
import random

import numpy as np
import pytest

from lpu import config
from lpu.golden.chip import Chip as GoldenChip
from lpu.golden.chip import ChipError
from lpu.hdl.vxm import VxmFault
from lpu.isa import OPS, E, Opcode, W
from lpu.program import ProgramBuilder, arrival
from lpu.sim import verilator as vl
from lpu.sim.bulk import BulkRun, Expected, columns_of, compare_recording, event_widths, events_of
from lpu.sim.lockstep import AmaranthBackend, GoldenBackend, compare, lockstep
from lpu.sim.programs.directed import directed_programs
from lpu.sim.programs.randprog import generate
from lpu.sim.recorder import Block
from lpu.sim.trace import EventArrays, PackedTrace, TraceLayout, TraceReader, port_chip
from lpu.tools.bench import busy_program

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")
FRESH = int(os.environ.get("LPU_FRESH_SEED") or random.SystemRandom().randrange(1 << 30))


def _key(e):
    return (e.sort_key(), e.data)


def _mem(cfg, seed):
    rng = np.random.default_rng(seed)
    return {q.name: rng.integers(0, 256, size=(cfg.mem_words, cfg.vl), dtype=np.uint8)
            for q in cfg.queues if q.kind == "mem"}


def _cases(cfg, seeds):
    out = [(f"random {s}", *generate(cfg, s, cycles=40)) for s in seeds]
    out += [(f"directed {d.name}", d.program, d.mem_init) for d in directed_programs(cfg)]
    out.append(("busy", busy_program(cfg, 200), _mem(cfg, 0)))
    return out


def _traced(cfg, program, mem):
    chip = GoldenChip(cfg)
    for name, words in mem.items():
        chip.write_mem(name, 0, words)
    chip.load(program)
    return chip, sorted(chip.run(trace=True).events, key=_key)


# -- the golden side ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_run_events_are_the_traced_events(name):
    cfg = config.load(name)
    for label, program, mem in _cases(cfg, [1, 2, 3, FRESH, FRESH + 1]):
        ref_chip, ref = _traced(cfg, program, mem)
        chip = GoldenChip(cfg)
        for n, words in mem.items():
            chip.write_mem(n, 0, words)
        chip.load(program)
        cols = chip.run_events()
        assert cols is not None, label
        exp = Expected(cfg, program, mem)
        got = sorted(events_of(exp.window(0, None)), key=_key)
        assert got == ref, label
        assert np.array_equal(chip.mem, ref_chip.mem) and chip.end_cycle == ref_chip.end_cycle


@pytest.mark.parametrize("window", [1, 3, 17])
def test_expected_windows_on_both_paths(window, monkeypatch):
    """Window by window, the dataflow path and the interpreter hand out the same events,
    counts, dispatch histories and last cycles as the per-cycle golden backend."""
    for label, program, mem in _cases(TINY, [4, FRESH + 2]):
        ref = list(GoldenBackend(TINY).run(program, mem))
        sides = [Expected(TINY, program, mem)]
        with monkeypatch.context() as m:
            m.setattr(GoldenChip, "run_events", lambda self: None)
            sides.append(Expected(TINY, program, mem))
        assert sides[0].columns and not sides[1].columns
        for exp in sides:
            seen, lo = [], 0
            while True:
                hi = lo + window if lo + window <= ref[-1][0] else None
                cols = exp.window(lo, hi)
                got = events_of(cols)
                assert all(lo <= e.cycle and (hi is None or e.cycle < hi) for e in got)
                seen += got
                mid = lo + window // 2
                before = [e for c, evs in ref if c < mid for e in evs]
                assert exp.count_before(mid) == len(before), (label, lo)
                hist = [(e.cycle, e.unit, e.index, int.from_bytes(e.data, "little"))
                        for e in before if e.kind == "dispatch"]
                want = []
                for q in sorted({h[1] for h in hist}):
                    want += [h for h in hist if h[1] == q][-64:]
                assert sorted(exp.dispatches_before(mid)) == sorted(want), (label, lo)
                if hi is None:
                    break
                lo = hi
            assert sorted(seen, key=_key) == sorted((e for _, evs in ref for e in evs),
                                                    key=_key), label
            assert exp.last == ref[-1][0] and exp.events == len(seen), label


# -- the RTL side: decoding in bulk ------------------------------------------------------


def test_packed_samples_decode_as_one_at_a_time():
    chip = port_chip(TINY)
    layout, reader, ctx = TraceLayout(chip), TraceReader(chip), PackedTrace(chip)
    for seed in (5, FRESH + 3):
        rp = generate(TINY, seed, cycles=30)
        cycles, trace, running = AmaranthBackend(TINY).record(rp.program, rp.mem)
        assert cycles.size and running > cycles[-1]
        events = []
        for c, row in zip(cycles.tolist(), trace, strict=True):
            ctx.bits = int.from_bytes(row.tobytes(), "little")
            events += reader.read(ctx, c)
        A = EventArrays.from_packed(layout, trace)
        E, missing = EventArrays.from_columns(layout, columns_of(events, event_widths(TINY)),
                                              cycles)
        assert not missing.size and not E.differ(A).any(), seed
        # and the golden model's events of those cycles, the same way
        G, missing = EventArrays.from_columns(
            layout, Expected(TINY, rp.program, rp.mem).window(0, None), cycles)
        assert not missing.size and not G.differ(A).any(), seed
        # a changed byte of a stream write, or an event less, shows in its own row only
        i = len(cycles) // 2
        p, dr, k, s = np.argwhere(G.sr_we[:, :, i])[0]
        G.sr[p, dr, i, k, s, 0] ^= 1
        assert np.flatnonzero(G.differ(A)).tolist() == [i]
        G.sr[p, dr, i, k, s, 0] ^= 1
        G.sr_we[p, dr, i, k, s] = False
        assert np.flatnonzero(G.differ(A)).tolist() == [i]


# -- the comparison, on a broken RTL ---------------------------------------------------------

T_ADD = 3  # the first add on vxm1
DST = 4


def _add_program(n_adds: int, seed: int):
    """``n_adds`` int32 adds on vxm1 one cycle apart, from SRAM, each sum written back:
    a run of about ``n_adds + 8`` cycles with events in every one."""
    rng = np.random.default_rng(seed)
    chip = GoldenChip(TINY)
    for name in ("mem_w0", "mem_e0"):
        x = rng.integers(-(1 << 30), 1 << 30, size=(n_adds, TINY.vl)).astype(np.int32)
        chip.write_tensor(name, 0, x)
    bld = ProgramBuilder(TINY)
    d = OPS[Opcode.ADD].d(TINY.superlanes)
    for i in range(n_adds):
        t = T_ADD + i
        bld.at("mem_w0", t - 2, "read", 4 * i, (0, E), 4)
        bld.at("mem_e0", t - 2, "read", 4 * i, (0, W), 4)
        bld.at("vxm1", t, "add", (DST, E), (0, E), (0, W))
        bld.at("mem_e1", arrival(TINY, "vxm", "mem_e1", t + d), "write",
               64 + 4 * (i % 8), (DST, E), 4)
    mem = {n: chip.read_mem(n, 0, TINY.mem_words) for n in chip.mem_names}
    return bld.program(), mem


def _same(a, b):
    ja, jb = a.to_json(), b.to_json()
    ja.pop("seconds")
    jb.pop("seconds")
    return ja == jb


def _per_cycle(program, mem, ref=None, fault=None, end_shift=0):
    """The per-cycle result on Amaranth (golden model of `ref` SRAM if given), with the
    device's run ending `end_shift` cycles late; and the recording of the same device."""
    dev = AmaranthBackend(TINY, fault=fault)
    rec = dev.record(program, mem)
    events = list(AmaranthBackend(TINY, fault=fault).run(program, mem))

    def result(shift):
        gb = GoldenBackend(TINY)
        return compare(gb.run(program, mem if ref is None else ref), iter(events), TINY,
                       program=program, reference="golden", device="amaranth",
                       ends=lambda: (gb.end_cycle, dev.end_cycle + shift))
    return result, rec, dev.end_cycle


def _bulk(program, mem, rec, end, block, ref=None):
    return compare_recording(TINY, program, Expected(TINY, program, mem if ref is None
                                                     else ref),
                             port_chip(TINY), rec, end, device="amaranth", block=block)


def test_broken_rtl_same_first_divergence():
    program, mem = _add_program(12, 1)
    sl, lane = 1, 2
    fault = VxmFault(alu=1, superlane=sl, lane=lane, opcode=Opcode.ADD, xor=1)
    result, rec, end = _per_cycle(program, mem, fault=fault)
    per_cycle = result(0)
    assert _same(per_cycle, lockstep(TINY, program, mem, AmaranthBackend(TINY, fault=fault)))
    d = per_cycle.divergence
    assert d.cycle == T_ADD + sl + OPS[Opcode.ADD].d(TINY.superlanes)
    assert (d.kind, d.what, d.superlane, d.lane) == ("sr", f"stream e{DST}", sl,
                                                      sl * TINY.lanes + lane)
    assert d.queue == "vxm1" and d.dispatch_cycle == T_ADD
    for block in (1, 4, 1000):
        run = _bulk(program, mem, rec, end, block)
        assert _same(run.lockstep, per_cycle), (block, run.lockstep.text())
        assert run.rechecks == 0
        if block < 1000:  # the records before the divergence filled whole blocks first
            assert int(np.searchsorted(rec[0], d.cycle)) >= block and run.blocks > 1


def test_unbroken_rtl_over_many_blocks_and_the_end_of_the_run():
    program, mem = _add_program(12, 2)
    result, rec, end = _per_cycle(program, mem)
    per_cycle = result(0)
    assert per_cycle.ok and per_cycle.end_cycle is not None
    for block in (1, 3):
        run = _bulk(program, mem, rec, end, block)
        assert _same(run.lockstep, per_cycle) and run.blocks > 5 and run.rechecks == 0
    # the end record alone in the last block (as the pipe may hand it out)
    run = BulkRun(TINY, program, Expected(TINY, program, mem), port_chip(TINY))
    for a in range(0, rec[0].size, 5):
        run.feed(Block(0, rec[0][a:a + 5], rec[1][a:a + 5]))
    run.feed(Block(0, rec[0][:0], rec[1][:0], rec[2]))
    assert _same(run.result(end, "amaranth"), per_cycle)
    # a device whose run ends a cycle late: the end is compared after the last block
    late = _bulk(program, mem, rec, end + 1, 2)
    assert late.lockstep.divergence.reason == "end" and _same(late.lockstep, result(1))


def test_golden_error_at_run_time_as_per_cycle():
    """A gather the golden model refuses at run time (an index word changed so that the
    index leaves the bank): per cycle the error is raised unless a divergence came
    first; bulk too, whatever the block size."""
    rp = generate(TINY, 5, cycles=30)
    bad = {k: v.copy() for k, v in rp.mem.items()}
    for k in bad:
        bad[k][8:, 3] ^= 0x40
    # the golden model of other SRAM: a divergence at cycle 1 comes first
    result, rec, end = _per_cycle(rp.program, rp.mem, ref=bad)
    per_cycle = result(0)
    assert not per_cycle.ok
    for block in (1, 2, 1000):
        run = _bulk(rp.program, rp.mem, rec, None, block, ref=bad)
        assert _same(run.lockstep, per_cycle)
    # the same SRAM on both sides: no divergence before the golden model refuses
    result, rec, end = _per_cycle(rp.program, bad)
    with pytest.raises(ChipError) as per_cycle_error:
        result(0)
    for block in (1, 1000):
        with pytest.raises(ChipError) as bulk_error:
            _bulk(rp.program, bad, rec, end, block)
        assert str(bulk_error.value) == str(per_cycle_error.value)


# -- the comparison on Verilator: recorded, piped, in blocks ------------------------------------


@pytest.fixture(scope="module")
def built():
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import build_chip

    return build_chip(TINY, "verilator")


def _both(built, runs, tmp_path, **kw):
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    out = {c: lockstep_hdl_many(TINY, runs, "verilator", built=built,
                                workdir=tmp_path / c, compare=c, **kw)
           for c in ("bulk", "cycle")}
    for a, b in zip(out["bulk"], out["cycle"], strict=True):
        ja, jb = a.to_json(), b.to_json()
        for j in (ja, jb):
            j.pop("seconds")
            if j["divergence"]:  # per cycle, the simulator names the saved program
                j["divergence"].pop("where")
        assert ja == jb, f"{a.text()}\n{b.text()}"
        assert (a.hdl["status"], a.hdl["error"]) == (b.hdl["status"], b.hdl["error"])
        assert a.hdl["compare"] == "bulk" and a.hdl["rechecks"] == 0
    return out["bulk"]


def _other_contents(program, mem):
    """Golden SRAM differing from `mem` in one bit of byte 1 (or 0) of every word, on
    which the golden model still runs without an error (a flipped bit of a perm map can
    make an entry out of range: that case has its own test below)."""
    for byte in (1, 0):
        for bit in (0x01, 0x02, 0x04):
            ref = {k: v.copy() for k, v in mem.items()}
            for k in ref:
                ref[k][:, byte] ^= bit
            chip = GoldenChip(TINY)
            for name, words in ref.items():
                chip.write_mem(name, 0, words)
            chip.load(program)
            try:
                chip.run()
            except ChipError:
                continue
            return ref
    return None


def test_verilator_bulk_equals_per_cycle(built, tmp_path):
    """Random programs (fixed and fresh seeds), the directed ones and a busy program of
    400 cycles, in blocks of 8 records, some against other golden SRAM contents."""
    runs, refs = [], []
    for i, s in enumerate([7, 8, FRESH + 4, FRESH + 5]):
        rp = generate(TINY, s, cycles=30)
        runs.append((rp.program, rp.mem))
        refs.append(_other_contents(rp.program, rp.mem) if i % 2 else None)
    for d in directed_programs(TINY):
        runs.append((d.program, d.mem_init))
        refs.append(None)
    runs.append((busy_program(TINY, 400), _mem(TINY, 1)))
    refs.append(None)
    results = _both(built, runs, tmp_path, reference_mem=refs, block=8)
    assert results[-1].ok and results[-1].hdl["rtl_cycles"] > 400


def test_verilator_divergence_after_block_boundaries(built, tmp_path):
    """One SRAM word differs for the golden model; a busy run reads it at cycle 150: in
    blocks of 16 records, the divergence is in the tenth block or later."""
    t_read, lane = 150, 5
    mem = _mem(TINY, 2)
    ref = {k: v.copy() for k, v in mem.items()}
    ref["mem_w1"][40, lane] ^= 0x10
    results = _both(built, [(_late_read_program(t_read), mem)], tmp_path,
                    reference_mem=[ref], block=16)
    d = results[0].divergence
    k = lane // TINY.lanes
    assert d.cycle == t_read + OPS[Opcode.READ].d(TINY.superlanes) + k
    assert (d.unit_name, d.superlane, d.lane, d.queue) == ("mem_w1", k, lane, "mem_w1")
    assert d.expected[lane % TINY.lanes] ^ d.actual[lane % TINY.lanes] == 0x10
    assert results[0].cycles == d.cycle + 1


def _late_read_program(t_read: int):
    """Every MEM slice reads one word every cycle (of words 0..3, as the busy program of
    ``lpu bench`` does, toward or away from the VXM); mem_w1 reads word 40 at `t_read`."""
    bld = ProgramBuilder(TINY)
    for h in "we":
        for i in range(TINY.mem_slices):
            toward = i % 2 == 0
            d = (E if h == "w" else W) if toward else (W if h == "w" else E)
            name = f"mem_{h}{i}"
            for t in range(t_read + 20):
                addr = 40 if (name == "mem_w1" and t == t_read) else t % 4
                bld.at(name, t, "read", addr, (0, d))
    return bld.program()


def test_verilator_bulk_figures(built, tmp_path):
    """A bulk run reports the RTL's running cycles and where its time went."""
    from lpu.sim.cocotb_runner import lockstep_hdl

    res = lockstep_hdl(TINY, busy_program(TINY, 100), _mem(TINY, 3), "verilator",
                       built=built, workdir=tmp_path)
    assert res.ok and res.hdl["rtl_cycles"] == res.end_cycle + 1 == res.cycles
    sec = res.hdl["run_seconds"]
    assert {"load", "run", "golden_load", "golden_run", "compare", "lockstep"} <= set(sec)
    assert res.hdl["golden_path"] == "dataflow" and res.hdl["cycles_per_second"] > 0


def test_icarus_bulk_divergence_and_waveform(tmp_path):
    """On Icarus, bulk and per cycle agree on a located divergence, and the waveform of
    the bulk run is written (the whole run: the cycles before the divergence too)."""
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    program = _late_read_program(12)
    mem = _mem(TINY, 4)
    ref = {k: v.copy() for k, v in mem.items()}
    ref["mem_w1"][40, 2] ^= 0x01
    out = {}
    for c in ("bulk", "cycle"):
        out[c] = lockstep_hdl_many(TINY, [(program, mem)], "icarus", workdir=tmp_path / c,
                                   compare=c, reference_mem=[ref], block=4,
                                   vcd=tmp_path / f"{c}.fst")[0]
    a, b = (out[c].to_json() for c in ("bulk", "cycle"))
    for j in (a, b):
        j.pop("seconds")
        j["divergence"].pop("where")
    assert a == b and out["bulk"].divergence.cycle == 12 + 1
    wave = tmp_path / "bulk.fst"
    assert wave.is_file() and wave.stat().st_size > 1000
    assert out["bulk"].hdl["waveform"] == str(wave)


def test_verilator_run_past_the_limit(built, tmp_path):
    """A run longer than ``max_cycles`` is an error on both paths (bulk: the chip is reset
    at the limit, and the cycles recorded up to it are still compared first)."""
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    for c in ("bulk", "cycle"):
        with pytest.raises(vl.SimulatorError, match="ran past 20 cycles"):
            lockstep_hdl_many(TINY, [(busy_program(TINY, 60), _mem(TINY, 5))], "verilator",
                              built=built, workdir=tmp_path / c, compare=c, max_cycles=20)
