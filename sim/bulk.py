"""Bulk lockstep: a run's recorded RTL trace against the golden model's events,
compared in numpy one window of cycles at a time.

Contract
--------
:class:`Expected` is the golden side of one run (program, initial SRAM): the golden
model checks and loads the program as :class:`lpu.sim.lockstep.GoldenBackend` does
and produces its events as columns, by the dataflow path in one pass
(:meth:`lpu.golden.chip.Chip.run_events`) or, where that path cannot run the program
(too large for it, an error to raise at run time, or SRAM faults to inject:
``faults``, :class:`lpu.hdl.mem.MemFault` s as :class:`~lpu.sim.lockstep.GoldenBackend`
takes them), by the interpreter, stepped as
far as each window needs. :class:`BulkRun` takes the RTL's records of the run
(:class:`lpu.sim.recorder.Block`, in cycle order) and compares each block with the
golden events of the same cycles, both as :class:`lpu.sim.trace.EventArrays`; memory
is bounded by the block and the window, not by the run.

The result is the one the per-cycle comparison (:func:`lpu.sim.lockstep.compare` over
the same two event streams) gives, field for field:

* the first cycle whose rows differ is checked again with the events themselves
  (the golden events of that cycle, the RTL's decoded by
  :class:`lpu.sim.trace.TraceReader`, compared as sets as
  :class:`~lpu.sim.lockstep.Comparator` compares them); if they are equal after all
  (a row that did not fit the dense form), the scan goes on and :attr:`BulkRun.rechecks`
  counts it;
* at a real difference a :class:`~lpu.sim.lockstep.Comparator` is given the history
  of every cycle before it (:meth:`~lpu.sim.lockstep.Comparator.skip`: the dispatches
  the instruction in flight is looked up in, the events counted) and fed that one
  cycle, so the :class:`~lpu.sim.lockstep.Divergence` is the one the per-cycle
  comparison reports: cycle, slice, superlane, lane, stream or address, both values,
  the instruction in flight and its source line, the other differences of the cycle;
* after the run (no difference) the comparator compares the end of the run
  (:meth:`~lpu.sim.lockstep.Comparator.finish`, docs/timing.md "The end of a run").

Cycles compared are counted as the per-cycle comparison counts them: every cycle the
RTL ran, and every cycle the golden model reported, up to and including a
divergence.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from lpu.config import ChipConfig
from lpu.ecc import REPORT_BYTES
from lpu.errors import LpuError
from lpu.golden.chip import Chip as GoldenChip
from lpu.program import Program
from lpu.trace import KINDS, Event

from .lockstep import HISTORY, Comparator, Divergence, GoldenBackend, LockstepResult
from .recorder import Block
from .trace import EventArrays, PackedTrace, TraceLayout, TraceReader

__all__ = ["Expected", "BulkRun", "columns_of", "events_of", "event_widths",
           "compare_recording"]
_FIELDS = ("cycle", "superlane", "unit", "dir", "index", "data")


def _empty(width: int) -> dict:
    z = np.zeros(0, np.int64)
    return {"cycle": z, "superlane": z, "unit": z, "dir": z, "index": z,
            "data": np.zeros((0, width), np.uint8)}


def event_widths(cfg: ChipConfig) -> dict:
    """Bytes of an event's ``data`` by kind (docs/trace.md)."""
    L = cfg.lanes
    return {"dispatch": 4, "sr": L, "sram": L, "wload": L, "install": 0, "acc": 4 * L,
            "ecc": REPORT_BYTES}


class Expected:
    """The golden model's events of one run (see the module docstring).

    ``end_cycle``: the run's last cycle (the host's CYCLE after DONE) on the golden
    model; ``last``: the last cycle the golden model reports (the per-cycle comparison
    is fed up to it); ``events``: its events; the last two known once a window has run
    to the end (:meth:`window` with ``hi=None``)."""

    def __init__(self, cfg: ChipConfig, program: Program, mem_init: dict | None, *,
                 check: bool = True, faults=()):
        self.cfg = cfg
        self.S, self.L = cfg.superlanes, cfg.lanes
        self.width = event_widths(cfg)
        t0 = time.perf_counter()
        chip = GoldenChip(cfg)
        for name, words in (mem_init or {}).items():
            chip.write_mem(name, 0, words)
        chip.load(program, check_first=check)
        self.load_seconds = time.perf_counter() - t0
        self.end_cycle = chip.end_cycle
        cols = None if faults else chip.run_events()  # faults: the interpreter
        self.run_seconds = time.perf_counter() - t0 - self.load_seconds
        self.columns = cols is not None
        self._chip = chip
        self.error: LpuError | None = None  # the interpreter raised it at run time ...
        self.stop: int | None = None  # ... before reporting this cycle
        self.last = -1
        self.events = 0
        self._before = 0  # events in cycles before the current window
        self._hist: dict[int, deque] = {}  # queue -> (cycle, index, word) before the window
        self._window = None
        if cols is not None:
            self._rows = {}
            for kind in KINDS:
                if kind not in cols:  # ecc: the dataflow path runs only without faults
                    continue
                c = cols[kind]
                order = np.argsort(c["t"], kind="stable")
                self._rows[kind] = {k: v[order] for k, v in c.items()}
            self.events = sum(c["t"].size * (1 if k == "dispatch" else self.S)
                              for k, c in self._rows.items())
            last = [int(c["t"][-1]) + (0 if k == "dispatch" else self.S - 1)
                    for k, c in self._rows.items() if c["t"].size]
            self.last = max([chip.cycle - 1, *last])
        else:  # the interpreter, stepped (the run is redone from its start)
            self._gb = GoldenBackend(cfg, check=check, faults=faults)
            self._gen = self._gb.run(program, mem_init or {})
            self._head = None

    @property
    def chip(self) -> GoldenChip:
        """The golden chip that ran the program; in its state at the end of the run
        once the last window was taken (on the dataflow path, from the start)."""
        return self._chip if self.columns else self._gb.chip

    # -- windows ---------------------------------------------------------------------
    def window(self, lo: int, hi: int | None) -> dict:
        """The golden events of cycles ``lo <= c < hi`` (``hi`` None: to the end) as
        columns: kind -> ``cycle``, ``superlane``, ``unit``, ``dir``, ``index``,
        ``data`` arrays. Windows are taken in order, each starting where the last
        ended (:meth:`dense` takes one too)."""
        if self.columns:
            return self._cut(lo, hi)
        if self._window is not None:
            prev = self._window
            self._before += sum(c["cycle"].size for c in prev.values())
            if not self.columns:  # (the columns path looks dispatches up when asked)
                d = prev["dispatch"]
                for c, q, i, w in zip(d["cycle"].tolist(), d["unit"].tolist(),
                                      d["index"].tolist(), _words(d["data"]), strict=True):
                    self._hist.setdefault(q, deque(maxlen=HISTORY)).append((c, q, i, w))
        out = self._step(lo, hi)
        self._window = out
        return out

    def dense(self, layout: TraceLayout, lo: int, hi: int | None, cycles):
        """The next window's events as :class:`~lpu.sim.trace.EventArrays`, one row per
        cycle of `cycles`, and the cycles of its events without a row
        (:meth:`~lpu.sim.trace.EventArrays.from_columns`); on the dataflow path straight
        from its vector writes (:meth:`~lpu.sim.trace.EventArrays.from_vectors`)."""
        if self.columns:
            return EventArrays.from_vectors(layout, self._rows, lo, hi, cycles)
        return EventArrays.from_columns(layout, self.window(lo, hi), cycles)

    def _cut(self, lo, hi) -> dict:
        S, out = self.S, {}
        for kind, rows in self._rows.items():
            t = rows["t"]
            span = 1 if kind == "dispatch" else S
            a = np.searchsorted(t, lo - span + 1, side="left")
            b = t.size if hi is None else np.searchsorted(t, hi, side="left")
            sel = {k: v[a:b] for k, v in rows.items()}
            n = b - a
            if kind == "dispatch":
                col = {"cycle": sel["t"], "superlane": np.zeros(n, np.int64),
                       "unit": sel["queue"], "dir": np.zeros(n, np.int64),
                       "index": sel["index"],
                       "data": sel["word"].astype("<u4").view(np.uint8).reshape(n, 4)}
            else:
                k = np.arange(S)
                col = {"cycle": (sel["t"][:, None] + k).ravel(),
                       "superlane": np.tile(k, n),
                       "unit": np.repeat(sel["unit"], S),
                       "dir": np.repeat(sel["dir"], S) if kind == "sr"
                       else np.zeros(n * S, np.int64),
                       "index": np.repeat(sel["index"], S) if kind != "install"
                       else np.zeros(n * S, np.int64),
                       "data": np.zeros((n * S, 0), np.uint8) if kind == "install"
                       else sel["data"].reshape(n * S, self.width[kind])}
            keep = col["cycle"] >= lo
            if hi is not None:
                keep &= col["cycle"] < hi
            out[kind] = col if keep.all() else {f: v[keep] for f, v in col.items()}
        return out

    def _step(self, lo, hi) -> dict:
        evs: list[Event] = []
        while self.stop is None:
            if self._head is None:
                try:
                    self._head = next(self._gen)
                except StopIteration:
                    self.end_cycle = self._gb.end_cycle
                    break
                except LpuError as e:  # raised as the per-cycle comparison raises it:
                    self.error = e  # before comparing the last cycle it was handed
                    self.stop = self.last
                    break
            c, got = self._head
            if hi is not None and c >= hi:
                break
            self._head = None
            evs += got
            self.last = c
        if self.stop is not None:
            evs = [e for e in evs if e.cycle < self.stop]
        self.events += len(evs)
        return columns_of(evs, self.width)

    # -- what the comparator needs at a divergence --------------------------------------
    def count_before(self, cycle: int) -> int:
        """Golden events in cycles before `cycle` (within the current window)."""
        if self.columns:  # superlane k of a write at t is in cycle t + k
            n = 0
            for kind, rows in self._rows.items():
                t = rows["t"][:np.searchsorted(rows["t"], cycle)]
                n += t.size if kind == "dispatch" else int(np.minimum(cycle - t,
                                                                      self.S).sum())
            return n
        return self._before + sum(int((c["cycle"] < cycle).sum())
                                  for c in self._window.values())

    def dispatches_before(self, cycle: int) -> list:
        """``(cycle, queue, index, word)`` of the last :data:`HISTORY` dispatches of
        each queue before `cycle` (within the current window), in cycle order."""
        if self.columns:
            d = self._rows["dispatch"]
            out = []
            for q in np.unique(d["queue"]).tolist():
                sel = np.flatnonzero((d["queue"] == q) & (d["t"] < cycle))[-HISTORY:]
                out += zip(d["t"][sel].tolist(), [q] * sel.size, d["index"][sel].tolist(),
                           d["word"][sel].tolist(), strict=True)
            return sorted(out, key=lambda x: x[0])
        hist = {q: deque(h, maxlen=HISTORY) for q, h in self._hist.items()}
        d = self._window["dispatch"]
        sel = d["cycle"] < cycle
        for c, q, i, w in zip(d["cycle"][sel].tolist(), d["unit"][sel].tolist(),
                              d["index"][sel].tolist(), _words(d["data"][sel]),
                              strict=True):
            hist.setdefault(q, deque(maxlen=HISTORY)).append((c, q, i, w))
        return sorted((x for h in hist.values() for x in h), key=lambda x: x[0])

    def events_at(self, cycle: int) -> list[Event]:
        """The golden events of `cycle` (within the current window)."""
        if self.columns:
            return events_of(self._cut(cycle, cycle + 1), cycle)
        return events_of(self._window, cycle)


def _words(data) -> list[int]:
    return np.ascontiguousarray(data).view("<u4").reshape(-1).tolist()


def columns_of(events, widths: dict) -> dict:
    """:class:`~lpu.trace.Event` s as columns (the form of :meth:`Expected.window`)."""
    by = {k: [] for k in KINDS}
    for ev in events:
        by[ev.kind].append(ev)
    out = {}
    for kind, evs in by.items():
        if not evs:
            out[kind] = _empty(widths[kind])
            continue
        col = {f: np.array([getattr(e, f) for e in evs], np.int64) for f in _FIELDS[:-1]}
        w = widths[kind]
        col["data"] = (np.frombuffer(b"".join(e.data for e in evs), np.uint8)
                       .reshape(len(evs), w) if w else np.zeros((len(evs), 0), np.uint8))
        out[kind] = col
    return out


def events_of(cols: dict, cycle: int | None = None) -> list[Event]:
    """The :class:`~lpu.trace.Event` s of `cycle` in columns `cols` (None: all)."""
    out = []
    for kind, c in cols.items():
        sel = np.arange(c["cycle"].size) if cycle is None else np.flatnonzero(
            c["cycle"] == cycle)
        for i in sel.tolist():
            out.append(Event(int(c["cycle"][i]), kind, int(c["unit"][i]), int(c["dir"][i]),
                             int(c["index"][i]), int(c["superlane"][i]),
                             c["data"][i].tobytes()))
    return out


def _same(expected: list[Event], actual: list[Event]) -> bool:
    def key(e):
        return (e.kind, e.unit, e.dir, e.index, e.superlane, e.data)
    return sorted(map(key, expected)) == sorted(map(key, actual))


class BulkRun:
    """The comparison of one run: :meth:`feed` the RTL's blocks in order, then
    :meth:`result` (see the module docstring). `chip`: the port chip
    (:func:`lpu.sim.trace.port_chip`) whose trace the records hold."""

    def __init__(self, cfg: ChipConfig, program: Program, expected: Expected, chip):
        self.cfg, self.program, self.expected = cfg, program, expected
        self.layout = TraceLayout(chip)
        self.reader, self.ctx = TraceReader(chip), PackedTrace(chip)
        self.next = 0  # the first cycle not compared yet
        self.comparator: Comparator | None = None
        self.running: int | None = None  # the RTL's running cycles, from the end record
        self.rechecks = 0
        self.blocks = 0
        self.seconds = 0.0  # spent comparing
        self._golden = None  # (last, events, end_cycle) of the golden model, at the end

    @property
    def divergence(self) -> Divergence | None:
        return None if self.comparator is None else self.comparator.divergence

    def feed(self, block: Block) -> Divergence | None:
        """Compare the records of `block` (and the golden events of the cycles since the
        last block, up to its last record; the run's last block: up to the end)."""
        if block.end is not None:
            self.running = block.end
        if self.divergence is not None:
            if block.end is not None:
                self.expected = None  # done with it (a batch keeps its BulkRuns)
            return self.divergence
        if block.end is None and not block.cycles.size:
            return None
        t0 = time.perf_counter()
        self.blocks += 1
        lo, hi = self.next, None if block.end is not None else int(block.cycles[-1]) + 1
        act_cycles, trace = block.cycles, block.trace
        # rows for the cycles the RTL recorded; golden events in other cycles differ
        E, only_golden = self.expected.dense(self.layout, lo, hi, act_cycles)
        stop = self.expected.stop
        if stop is not None:  # the golden model raised: compare the cycles before it
            keep = act_cycles < stop
            act_cycles, trace, E = act_cycles[keep], trace[keep], E.take(keep)
        A = EventArrays.from_packed(self.layout, trace)
        suspects = np.union1d(act_cycles[E.differ(A)], only_golden)
        for c in suspects.tolist():
            j = int(np.searchsorted(act_cycles, c))
            actual = []
            if j < act_cycles.size and act_cycles[j] == c:
                self.ctx.bits = int.from_bytes(trace[j].tobytes(), "little")
                actual = self.reader.read(self.ctx, c)
            expected = self.expected.events_at(c)
            if _same(expected, actual):
                self.rechecks += 1
                continue
            cmp = Comparator(self.cfg, program=self.program)
            cmp.skip(c, self.expected.dispatches_before(c), self.expected.count_before(c))
            cmp.feed(c, expected, actual)
            self.comparator = cmp
            break
        self.next = hi if hi is not None else self.next
        self.seconds += time.perf_counter() - t0
        if self.divergence is None and self.expected.error is not None:
            raise self.expected.error
        if block.end is not None:
            g = self.expected
            self._golden = (g.last, g.events, g.end_cycle)
            self.expected = None  # done with it (a batch keeps its BulkRuns)
        return self.divergence

    def result(self, actual_end: int | None, device: str) -> LockstepResult:
        """The run's :class:`~lpu.sim.lockstep.LockstepResult`; `actual_end`: the RTL's
        CYCLE after DONE (None: not compared)."""
        cmp = self.comparator
        if cmp is None:
            if self._golden is None:
                raise ValueError("the run's last block has not been fed")
            last, events, end = self._golden
            cmp = Comparator(self.cfg, program=self.program)
            cmp.skip(max(self.running or 0, last + 1), [], events)
            cmp.finish(end, actual_end)
        res = cmp.result("golden", device)
        res.seconds = self.seconds
        return res


def compare_recording(cfg: ChipConfig, program: Program, expected: Expected, chip,
                      recording, actual_end: int | None, *, device: str = "device",
                      block: int = 1024) -> BulkRun:
    """Compare a whole recorded run, ``(cycles, trace, running)`` as
    :meth:`lpu.sim.lockstep.AmaranthBackend.record` returns it, in blocks of `block`
    records (as the recorder's pipe hands them out); the :class:`BulkRun`, its
    :meth:`~BulkRun.result` taken with `actual_end`."""
    cycles, trace, running = recording
    run = BulkRun(cfg, program, expected, chip)
    n = cycles.size
    starts = list(range(0, n, block)) or [0]
    for i, a in enumerate(starts):
        last = i == len(starts) - 1
        run.feed(Block(0, cycles[a:a + block], trace[a:a + block],
                       running if last else None))
    run.lockstep = run.result(actual_end if run.divergence is None else None, device)
    return run
