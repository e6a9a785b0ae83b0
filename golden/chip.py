"""The cycle-exact, bit-exact golden model of the whole chip.

It implements docs/timing.md. Because every superlane runs the same schedule
shifted by its index, the model simulates in *skewed time* (superlane 0's
cycle ``τ``), where each instruction acts on the whole vector at once, and reports
every event of superlane ``k`` at its real cycle ``τ + k``.

Stream registers are stored by *diagonal*: a value on an east-flowing stream that
is at position ``p`` at cycle ``τ`` sits on diagonal ``τ - p`` for as long as it
flows (west: ``τ + p``). A slice at ``p`` reads and writes diagonal ``τ - p`` in
cycle ``τ`` (east), so values move without being copied. Each entry carries the
number of the diagonal it was written for; an entry whose number does not match
holds nothing.

Per cycle, all reads (stream operands, SRAM reads, MXM weights) happen before all
writes, as in the hardware.

Two executors compute the same thing (what each instruction computes is
:mod:`lpu.golden.ops`). This module's interpreter steps cycle by cycle: it serves
:meth:`Chip.step`, traced runs (every event), ``arrivals``, runs stopped early and
every run-time error. An untraced :meth:`Chip.run` of a whole program uses
:mod:`lpu.golden.dataflow`, which evaluates all instructions of one opcode and
dataflow depth in one numpy operation and leaves the same state, cycle counts and
results; wherever the interpreter would raise, the dataflow path steps aside
(before changing any state) and the interpreter runs and raises.

C2C (ISA 1.3): a ``send`` appends its vectors to :attr:`Chip.link_out` and a ``recv``
takes what :attr:`Chip.link_in` holds for its cycle and link; a system of chips
(:mod:`lpu.golden.system`) carries them from one chip to the other. A chip on its own
keeps what it sends, and its ``recv`` finds nothing (an error at that cycle). Programs
with C2C instructions run on the interpreter.

Usage::

    chip = Chip(lpu.config.load("tiny"))
    chip.write_mem("mem_w0", 0, np.arange(8, dtype=np.uint8).reshape(1, 8))
    chip.load(program)            # checked statically first
    result = chip.run(trace=True)
    chip.read_mem("mem_e0", 0, 1)
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.hostmap import ErrorCode
from lpu.isa import E, Opcode, drain_cycles, encode
from lpu.program import Program
from lpu.trace import Event
from lpu.vectors import from_words, to_planes, to_words

from . import dataflow, ops
from . import ecc as secded
from .check import check
from .schedule import Dispatch, effects, timeline

__all__ = ["Chip", "ChipError", "RunResult", "progress_lines"]


class ChipError(LpuError):
    """An illegal event at run time: names the cycle, the queue and the instruction."""

    def __init__(self, message, *, cycle=None, queue=None, where=None, instr=None, rule=""):
        self.cycle, self.queue, self.where, self.instr, self.rule = cycle, queue, where, instr, rule
        parts = [x for x in (where, None if cycle is None else f"cycle {cycle}",
                             queue and f"queue {queue}", instr and f"'{instr}'") if x]
        super().__init__(", ".join(parts) + ": " + message if parts else message)


def progress_lines(what: str):
    """A ``Chip.run(progress=...)`` callback: from two seconds after it is made, a line on
    stderr each time it is called (about once a second), on a terminal or not."""
    start = time.monotonic()

    def report(cycle, last):
        el = time.monotonic() - start
        if el >= 2.0:
            print(f"{what}: cycle {cycle:,} of about {last + 1:,} ({cycle / el:,.0f} "
                  "cycles/s)", file=sys.stderr, flush=True)
    return report


@dataclass
class RunResult:
    cycles: int  # real cycles until the last event on the last superlane, inclusive
    dispatched: dict[str, int]  # slice instructions per queue
    events: list[Event] = field(default_factory=list)  # sorted by cycle, if traced
    arrivals: dict = field(default_factory=dict)  # see Chip.run(arrivals=...)
    # the run's last cycle: what the host's CYCLE register reads after DONE (docs/timing.md,
    # "The end of a run"): every queue finished, then the drain
    end_cycle: int = 0


class Chip:
    """The golden chip model for one :class:`~lpu.config.ChipConfig`."""

    def __init__(self, cfg: ChipConfig | str):
        cfg = load_config(cfg)
        self.cfg = cfg
        S, VL = cfg.superlanes, cfg.vl
        self.S, self.VL, self.L = S, VL, cfg.lanes
        self.P = len(cfg.positions)
        ring = 1
        while ring < 2 * self.P + 8:
            ring *= 2
        self._ring = ring
        self._mask = ring - 1
        # stream registers by diagonal: [dir, stream, diag % ring, VL]
        self.sr = np.zeros((2, cfg.streams, ring, VL), dtype=np.uint8)
        self.stamp = np.full((2, cfg.streams, ring), -(1 << 40), dtype=np.int64)
        self.mem_names = [q.name for q in cfg.queues if q.kind == "mem"]
        self._mem_index = {n: i for i, n in enumerate(self.mem_names)}
        self.mem = np.zeros((len(self.mem_names), cfg.mem_words, VL), dtype=np.uint8)
        self.mxm_names = [q.name for q in cfg.queues if q.kind == "mxm"]
        n_mxm = len(self.mxm_names)
        self.shadow = np.zeros((n_mxm, VL, VL), dtype=np.int8)
        self.weights = np.zeros((n_mxm, VL, VL), dtype=np.int8)
        self.acc = np.zeros((n_mxm, cfg.mxm_acc_slots, VL), dtype=np.int32)
        # VXM-held values (ISA 1.1): the last value the VXM wrote to each stream register
        # at its position, [dir, stream, VL], and the skewed cycle of that write
        self.vxm_pos = next(p.index for p in cfg.positions if p.kind == "vxm")
        self.held = np.zeros((2, cfg.streams, VL), dtype=np.uint8)
        self.held_at = np.full((2, cfg.streams), 1 << 60, dtype=np.int64)  # never
        self.program: Program | None = None
        self._tl = None
        self.cycle = 0  # next skewed cycle to simulate
        # SECDED (lpu.ecc): the check words [M, mem_words, S], kept only once a fault has
        # been injected (until then every stored word is its own encoding); faults still
        # to inject at a cycle of the run; the host-visible counter and sticky error
        self.check: np.ndarray | None = None
        self._timed: list = []
        self.ecc_corrected = 0
        self.error: dict | None = None
        self._host_cycle = 0
        # C2C (ISA 1.3): what this chip sent in the run, [(skewed cycle, link, vectors
        # [count, VL], dispatch)], for the system to carry; what arrives, (skewed cycle,
        # link) -> vectors, put there by the system (lpu.golden.system) before that cycle
        self.link_out: list = []
        self.link_in: dict = {}
        self.in_system = False  # set by lpu.golden.system.System

    # -- host access to SRAM -------------------------------------------------------------
    def _mem_slice(self, name: str) -> int:
        try:
            return self._mem_index[name]
        except KeyError:
            raise LpuError(f"no MEM slice {name!r}; slices are: "
                           f"{', '.join(self.mem_names)}") from None

    def write_mem(self, slice_name: str, addr: int, words) -> None:
        """Write vectors (array [n, VL] of 8-bit values) at addr..addr+n-1 of a MEM slice."""
        m = self._mem_slice(slice_name)
        w = np.asarray(words)
        if w.ndim == 1:
            w = w.reshape(1, -1)
        if w.ndim != 2 or w.shape[1] != self.VL:
            raise LpuError(f"write_mem: expected an array [n, {self.VL}], got shape {w.shape}")
        if not (0 <= addr and addr + w.shape[0] <= self.cfg.mem_words):
            raise LpuError(f"write_mem: addresses {addr}..{addr + w.shape[0] - 1} are outside "
                           f"{slice_name} (0..{self.cfg.mem_words - 1})")
        if w.dtype.kind == "f":
            raise LpuError("write_mem takes 8-bit integers; use write_tensor for fp32")
        self.mem[m, addr:addr + w.shape[0]] = w.astype(np.int64).astype(np.uint8)
        self._encode(m, addr, w.shape[0])

    def read_mem(self, slice_name: str, addr: int, n: int = 1) -> np.ndarray:
        """Read n vectors from addr as uint8 [n, VL], as the host's SRAM_READ does: each
        ECC word checked, a single-bit error corrected and counted
        (:attr:`ecc_corrected`), a double-bit error recorded in :attr:`error` (at the
        host's cycle: the last run's end cycle, or 0) and its word returned as stored."""
        m = self._mem_slice(slice_name)
        if not (0 <= addr and addr + n <= self.cfg.mem_words):
            raise LpuError(f"read_mem: addresses {addr}..{addr + n - 1} are outside "
                           f"{slice_name} (0..{self.cfg.mem_words - 1})")
        out = self.mem[m, addr:addr + n].copy()
        for j in range(n):
            out[j] = self._checked(m, addr + j, out[j], self._host_cycle, None)
        return out

    # -- SECDED and fault injection (lpu.ecc) -------------------------------------------------
    def inject(self, slice_name: str, addr: int, bit: int, *, superlane: int = 0,
               cycle: int | None = None) -> None:
        """Flip one stored bit of one ECC word: bit `bit` (:mod:`lpu.ecc`'s bit index:
        ``0 .. 8*lanes-1`` data bit ``8i + b`` = bit b of lane i, then the check bits) of
        superlane `superlane` of word `addr` of a MEM slice. ``cycle=None``: now;
        otherwise at the start of real cycle `cycle` of the next run (before that
        cycle's reads; a write of the word in that cycle or later replaces it). Flip two
        bits with two calls. A chip with a fault runs on the interpreter."""
        m = self._mem_slice(slice_name)
        cfg = self.cfg
        n_bits = secded.width(cfg.lanes) if cfg.ecc else 8 * cfg.lanes
        for what, v, hi in (("address", addr, cfg.mem_words), ("bit", bit, n_bits),
                            ("superlane", superlane, cfg.superlanes)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < hi:
                raise LpuError(f"inject: {what} must be an integer from 0 to {hi - 1}, "
                               f"not {v!r}")
        if cycle is None:
            self._flip(m, int(addr), int(superlane), int(bit))
            return
        if isinstance(cycle, bool) or not isinstance(cycle, (int, np.integer)) or cycle < 0:
            raise LpuError(f"inject: cycle must be a non-negative integer, not {cycle!r}")
        self._timed.append((int(cycle) - int(superlane), m, int(addr), int(superlane),
                            int(bit)))

    def _flip(self, m, addr, k, bit):
        L = self.L
        if self.cfg.ecc and self.check is None:
            self.check = secded.encode(self.mem.reshape(*self.mem.shape[:2], self.S, L))
        if bit < 8 * L:
            self.mem[m, addr, k * L + bit // 8] ^= np.uint8(1 << (bit % 8))
        else:
            self.check[m, addr, k] ^= np.uint16(1 << (bit - 8 * L))

    def _encode(self, m, addr, n):
        if self.check is not None:
            words = self.mem[m, addr:addr + n].reshape(n, self.S, self.L)
            self.check[m, addr:addr + n] = secded.encode(words)

    def _checked(self, m, addr, word, cycle, dt):
        """One word (uint8 [VL]) read from (m, addr): each superlane's ECC word decoded;
        corrections counted, the first detection recorded; with ``dt`` not None, an
        ``ecc`` event per superlane with an error at real cycle ``cycle + k`` (traced
        runs). Returns the data the reader gets."""
        if self.check is None:
            return word
        data, status, report = secded.decode(word.reshape(self.S, self.L),
                                             self.check[m, addr])
        bad = np.nonzero(status)[0]
        if not len(bad):
            return word
        self.ecc_corrected += int((status == secded.CORRECTED).sum())
        pos = self.cfg.queues[m].position  # MEM queues come first, in slice order
        for k in bad:
            k = int(k)
            detected = status[k] == secded.DETECTED
            if dt is not None and self._trace:
                self._events.append(Event(cycle + k, "ecc", m, int(detected), addr, k,
                                          int(report[k]).to_bytes(2, "little")))
            if detected:  # a host read: the cycle the host's CYCLE register reads
                rec = {"cycle": cycle + k if dt is not None else cycle,
                       "code": ErrorCode.ECC.value, "position": pos, "superlane": k,
                       "unit": 0, "queue": m, "address": addr}
                key = (rec["cycle"], pos, k)
                if self.error is None or key < (self.error["cycle"], self.error["position"],
                                                self.error["superlane"]):
                    self.error = rec
        return data.reshape(-1)

    def write_tensor(self, slice_name: str, addr: int, x) -> int:
        """Write a tensor [n, VL] of int8/uint8 (one word per vector) or int32/uint32/
        float32 (four words per vector: byte planes, least significant first, at
        addr + 4*i .. addr + 4*i + 3). Returns the number of words written."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.dtype in (np.int8, np.uint8):
            self.write_mem(slice_name, addr, x.view(np.uint8))
            return x.shape[0]
        if x.dtype in (np.int32, np.uint32, np.float32):
            self.write_mem(slice_name, addr, to_words(np.ascontiguousarray(x).view("<u4")))
            return 4 * x.shape[0]
        raise LpuError(f"write_tensor: unsupported dtype {x.dtype} (int8, uint8, int32, "
                       "uint32 or float32)")

    def read_tensor(self, slice_name: str, addr: int, n: int, dtype) -> np.ndarray:
        """Read n vectors written as by :meth:`write_tensor` and return them as dtype."""
        dtype = np.dtype(dtype)
        if dtype.itemsize == 1:
            return self.read_mem(slice_name, addr, n).view(dtype)
        return from_words(self.read_mem(slice_name, addr, 4 * n), n).view(dtype)

    # -- program ---------------------------------------------------------------------------
    def load(self, program: Program, *, check_first: bool = True, name: str = "program"):
        """Load a program (refused if built for another config); check it statically."""
        program.check_config(self.cfg, name)
        if check_first:
            self._tl = check(self.cfg, program, name=name).timeline
        else:
            self._tl = timeline(self.cfg, program, name=name)
            for d in self._tl.dispatches:  # ranges are static; the rest is checked as it runs
                try:
                    effects(self.cfg, d.instr)
                except LpuError as e:
                    q = self.cfg.queues[d.queue]
                    raise ChipError(str(e), cycle=d.t, queue=q.name,
                                    where=program.where(q.name, d.index), instr=d.instr.text(),
                                    rule="range") from None
        self.program = program
        self.cycle = 0
        self.ecc_corrected, self.error = 0, None  # the host's START clears them
        self.stamp[:] = -(1 << 40)
        self.held_at[:] = 1 << 60
        self.link_out, self.link_in = [], {}
        self._by_t: dict[int, list[Dispatch]] = defaultdict(list)
        for d in self._tl.dispatches:
            self._by_t[d.t].append(d)
        self._pending: dict[int, list] = defaultdict(list)  # t -> [(kind, ...)]
        self._deferred: dict[int, list] = defaultdict(list)  # t -> deferred reads
        self._last_t = max([d.t for d in self._tl.dispatches], default=-1)
        self._events: list[Event] = []
        self._last_event = -1

    @property
    def done(self) -> bool:
        return self.cycle > self._last_t and not self._pending and not self._deferred

    @property
    def last_dispatch(self) -> int:
        """The last (skewed) cycle the loaded program dispatches in (-1: none)."""
        if self._tl is None:
            raise LpuError("no program loaded")
        return self._last_t

    @property
    def end_cycle(self) -> int:
        """The loaded program's last cycle of the run (RunResult.end_cycle)."""
        if self._tl is None:
            raise LpuError("no program loaded")
        return self._tl.all_finished + drain_cycles(self.cfg.superlanes)

    def run(self, *, trace: bool = False, max_cycles: int | None = None,
            arrivals: tuple[int, ...] = (), progress=None,
            progress_every: float = 1.0) -> RunResult:
        """Run the loaded program to completion (or max_cycles skewed cycles).

        ``progress``: called as ``progress(cycle, last)`` (the skewed cycle reached, and
        the last cycle the program dispatches in) about every `progress_every` seconds
        while the cycle-by-cycle interpreter runs (the dataflow path takes one numpy
        pass and reports nothing); for progress lines on long runs.

        ``arrivals``: positions whose arriving stream values (E[p-1], W[p+1]) to record
        in ``RunResult.arrivals[p]`` as ``(data, valid)``: data uint8 [T, 2, streams, VL]
        and valid bool [T, 2, streams], indexed by *skewed* cycle (superlane k sees
        row t at real cycle t + k). Slice-level HDL tests drive a slice with these.

        Untraced, without ``arrivals``, a program that has not started runs on the
        dataflow path if it may run to its end (see the module docstring).
        """
        if self._tl is None:
            raise LpuError("no program loaded")
        self._trace = trace
        rec: dict[int, list] = {p: [] for p in arrivals}
        if trace or rec or not self._run_dataflow(max_cycles):
            next_report = time.monotonic() + progress_every
            while not self.done:
                if max_cycles is not None and self.cycle >= max_cycles:
                    break
                if rec:
                    self._record_arrivals(rec)
                self._step()
                if progress is not None and not self.cycle & 255 and \
                        time.monotonic() >= next_report:
                    progress(self.cycle, self._last_t)
                    next_report = time.monotonic() + progress_every
            if rec:
                self._record_arrivals(rec)
        if self.done:
            self._host_cycle = self.end_cycle
        events = sorted(self._events, key=Event.sort_key) if trace else []
        cycles = self._last_event + 1 if self._last_event >= 0 else 0
        res = RunResult(cycles, dict(self._tl.per_queue), events, end_cycle=self.end_cycle)
        res.arrivals = {p: (np.stack([r[0] for r in v]), np.stack([r[1] for r in v]))
                        for p, v in rec.items()}
        return res

    def run_events(self) -> dict | None:
        """Run the loaded program as an untraced :meth:`run` does on the dataflow path,
        and return every event of the run as columns
        (:meth:`lpu.golden.dataflow.Plan.events`: what ``run(trace=True)`` reports, in
        arrays); None, with nothing run, where that path cannot run it (the program has
        started, or the interpreter must run it: ``run(trace=True)`` then reports the
        events, or raises the error)."""
        if self._tl is None:
            raise LpuError("no program loaded")
        if self.cycle or not self._tl.dispatches or self.check is not None or self._timed:
            return None
        p = dataflow.plan(self.cfg, self._tl, self._ring, events=True)
        values = None if p is None else p.values(self)
        if values is None:
            return None
        p.run(self, values)
        self.cycle, self._last_event = p.end, p.last
        return p.events(values)

    def _run_dataflow(self, max_cycles) -> bool:
        """Run the whole loaded program at once (:mod:`lpu.golden.dataflow`), if it has
        not started and may run to its end; False if the interpreter must run it."""
        if self.cycle or not self._tl.dispatches or self.check is not None or self._timed:
            return False  # faults: the interpreter checks every read
        p = dataflow.plan(self.cfg, self._tl, self._ring)
        if p is None or (max_cycles is not None and max_cycles < p.end) or not p.run(self):
            return False
        self.cycle, self._last_event = p.end, p.last
        return True

    def _record_arrivals(self, rec):
        """Append what arrives at each recorded position in cycle self.cycle."""
        t = self.cycle
        for p, rows in rec.items():
            dat = np.zeros((2, self.cfg.streams, self.VL), dtype=np.uint8)
            val = np.zeros((2, self.cfg.streams), dtype=bool)
            for dr in (0, 1):
                diag = t - p if dr == E else t + p
                idx = diag & self._mask
                ok = self.stamp[dr, :, idx] == diag
                val[dr] = ok
                dat[dr][ok] = self.sr[dr, ok, idx]
            rows.append((dat, val))

    def step(self, trace: bool = True) -> None:
        """Simulate one skewed cycle: after it, every event of real cycle `self.cycle - 1`
        is known (events of later real cycles may be known too)."""
        self._trace = trace
        self._step()

    def peek(self, dir: int, stream: int, pos: int):
        """Value of stream register (dir, stream) at position `pos` at the end of the last
        simulated (skewed) cycle, as uint8 [VL], or None if it holds nothing."""
        t = self.cycle - 1
        diag = t - pos if dir == E else t + pos
        idx = diag & self._mask
        if self.stamp[dir, stream, idx] != diag:
            return None
        return self.sr[dir, stream, idx].copy()

    def take_events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    # -- the cycle -------------------------------------------------------------------------
    def _err(self, msg, d: Dispatch, rule, t=None):
        q = self.cfg.queues[d.queue]
        return ChipError(msg, cycle=d.t if t is None else t, queue=q.name,
                         where=self.program.where(q.name, d.index), instr=d.instr.text(),
                         rule=rule)

    def _read(self, d: Dispatch, ref, width, t, pos):
        s, dr = ref
        diag = t - pos if dr == E else t + pos
        idx = diag & self._mask
        st = self.stamp[dr, s:s + width, idx]
        if not (st == diag).all():
            bad = s + int(np.argmin(st == diag))
            raise self._err(f"reads stream {'ew'[dr]}{bad}, which holds nothing at position "
                            f"{self.cfg.positions[pos].name}", d, "empty-read", t)
        return self.sr[dr, s:s + width, idx]

    def _step(self):
        t = self.cycle
        cfg = self.cfg
        queues = cfg.queues
        if self._timed:
            now = [f for f in self._timed if f[0] <= t]
            self._timed = [f for f in self._timed if f[0] > t]
            for _, m, addr, k, bit in now:
                self._flip(m, addr, k, bit)
        for item in self._deferred.pop(t, ()):
            item()
        todo = self._by_t.get(t)
        if todo:
            for d in todo:
                self._execute(d, t, queues[d.queue])
                if self._trace:
                    self._events.append(Event(t, "dispatch", d.queue, 0, d.index, 0,
                                              encode(d.instr).to_bytes(4, "little")))
            self._last_event = max(self._last_event, t + self.S - 1)
        pend = self._pending.pop(t, None)
        if pend:
            self._apply(pend, t)
        self.cycle = t + 1

    def _schedule(self, t, item):
        self._pending[t].append(item)

    def _execute(self, d: Dispatch, t: int, q):
        ins = d.instr
        op = ins.op
        a = ins.args
        pos = q.position
        S = self.S
        if q.kind == "mem":
            m = q.unit if q.name.startswith("mem_w") else q.unit + self.cfg.mem_slices
            if op == Opcode.READ:
                self._schedule(t, ("mrd", d, m, a["addr"] // self.cfg.bank_words))
                val = self.mem[m, a["addr"]:a["addr"] + a["count"]].copy()
                if self.check is not None:
                    for j in range(a["count"]):
                        val[j] = self._checked(m, a["addr"] + j, val[j], t + 1, 1)
                self._schedule(t + 1, ("sr", d, pos, a["dst"], val))
            elif op == Opcode.WRITE:
                val = self._read(d, a["src"], a["count"], t, pos).copy()
                self._schedule(t + 1, ("mwr", d, m, a["addr"], val))
            elif op == Opcode.GATHER:
                idx = self._read(d, a["idx"], 1, t, pos)[0].astype(np.int64)
                self._deferred[t + 1].append(lambda: self._gather(d, t + 1, m, pos, idx))
            return
        if q.kind == "vxm":
            self._vxm(d, t, pos, op, a)
            return
        if q.kind == "c2c":
            link, cnt = a["link"], a["count"]
            if op == Opcode.SEND:
                self.link_out.append((t, link, self._read(d, a["src"], cnt, t, pos).copy(), d))
                return
            vals = self.link_in.pop((t, link), None)
            if vals is None:
                alone = "" if self.in_system else " (a chip on its own has no link " \
                    "partner: run a system, lpu.golden.system)"
                raise self._err(f"receives over link {link}, where nothing arrives in this "
                                f"cycle{alone}", d, "link")
            if vals.shape[0] != cnt:
                raise self._err(f"receives {cnt} vector(s) over link {link}, where "
                                f"{vals.shape[0]} arrive in this cycle", d, "link")
            self._schedule(t + 1, ("sr", d, pos, a["dst"], vals))
            return
        if q.kind == "mxm":
            x = self._mxm_index(q)
            if op in (Opcode.LW, Opcode.LWI):
                cnt = a["count"]
                rows = self._read(d, a["src"], cnt, t, pos).view(np.int8).copy()
                self._schedule(t + 1, ("lw", d, x, a["row"], rows))
                if op == Opcode.LWI:  # an iw at t + 2, before that cycle's dispatches
                    self._deferred[t + 2].append(
                        lambda d=d, x=x, t=t: self._schedule(
                            t + 2, ("iw", d, x, self.shadow[x].copy())))
            elif op == Opcode.IW:
                self._schedule(t, ("iw", d, x, self.shadow[x].copy()))
            else:
                y = ops.mm(self._read(d, a["src"], 1, t, pos)[0].view(np.int8), self.weights[x])
                self._schedule(t + S + 2, ("mm", d, x, a["slot"], op == Opcode.MMACC,
                                           y, a["dst"], pos))
            return
        # SXM
        VL = self.VL
        if op == Opcode.TRANSPOSE:
            src = self._read(d, a["src"], VL, t, pos)
            self._schedule(t + S + 1, ("sr", d, pos, a["dst"], np.ascontiguousarray(src.T)))
            return
        src = self._read(d, a["src"], a["count"], t, pos)
        if op == Opcode.PERM:
            mp, bad = ops.perm_map(self._read(d, a["map"], 2, t, pos))
            if bad.any():
                lane = int(np.argmax(bad))
                raise self._err(f"perm map entry {int(mp[lane])} at lane {lane} is not below "
                                f"VL {VL}", d, "range")
            out = src[:, mp]
        else:
            out = ops.lanes(src, ops.lane_map(op, a["lane" if op == Opcode.BCAST else "n"], VL))
        self._schedule(t + S + 1, ("sr", d, pos, a["dst"], np.ascontiguousarray(out)))

    def _mxm_index(self, q):
        return self.mxm_names.index(q.name)

    def _gather(self, d, t, m, pos, idx):
        cfg = self.cfg
        base = d.instr.args["base"]
        bank = base // cfg.bank_words
        addrs, bad = ops.gather_addresses(cfg, base, idx)
        if bad.any():
            lane = int(np.argmax(bad))
            raise self._err(f"gather address {int(addrs[lane])} at lane {lane} is outside bank "
                            f"{bank} of the base address {base}", d, "range", t)
        self._schedule(t, ("mrd", d, m, bank))
        val = self.mem[m, addrs, np.arange(self.VL)]
        self._schedule(t + 1, ("sr", d, pos, d.instr.args["dst"], val[None, :].copy()))

    def _read_held(self, d: Dispatch, ref, width, t):
        """A VXM-held read (ISA 1.1) at skewed cycle `t`: what the VXM last wrote to the
        streams before `t`."""
        s, dr = ref
        at = self.held_at[dr, s:s + width]
        if not (at < t).all():
            bad = s + int(np.argmax(at >= t))
            raise self._err(f"reads the held value of stream {'ew'[dr]}{bad}, which the VXM "
                            "has not written before this cycle", d, "empty-read", t)
        return self.held[dr, s:s + width]

    def _vxm(self, d, t, pos, op, a):
        info = d.instr.info
        width = {o.name: o.width for o in info.reads}
        flags = {o.name: o.held for o in info.operands if o.held}

        def rd(name):
            fl = flags.get(name)
            if fl and a[fl]:
                return self._read_held(d, a[name], width[name], t)
            return self._read(d, a[name], width[name], t, pos)

        rows = ops.vxm(op, rd, a.get("imm", 0))
        self._schedule(t + info.d(self.S), ("sr", d, pos, a["dst"], rows))

    # -- writes ----------------------------------------------------------------------------
    def _apply(self, pend, t):
        seen: dict = {}
        mem_reads: set = set()
        trace = self._trace
        S, L = self.S, self.L
        ev = self._events
        for item in pend:
            kind = item[0]
            if kind == "mrd":
                key = (item[2], item[3])
                if key in mem_reads:  # a read and a gather's SRAM read: one port per bank
                    raise self._err(f"reads bank {item[3]} of {self.mem_names[item[2]]} in "
                                    f"cycle {t}, which another instruction also reads in that "
                                    "cycle", item[1], "bank", t)
                mem_reads.add(key)
        for item in pend:
            kind, d = item[0], item[1]
            if kind == "sr":
                _, _, pos, ref, vals = item
                s0, dr = ref
                diag = t - pos if dr == E else t + pos
                idx = diag & self._mask
                for j in range(vals.shape[0]):
                    key = (dr, s0 + j, pos)
                    if key in seen:
                        other = seen[key]
                        raise self._err(f"writes stream {'ew'[dr]}{s0 + j} at position "
                                        f"{self.cfg.positions[pos].name} in cycle {t}, as does "
                                        f"'{other.instr.text()}': two writers", d,
                                        "two-writers", t)
                    seen[key] = d
                self.sr[dr, s0:s0 + vals.shape[0], idx] = vals
                self.stamp[dr, s0:s0 + vals.shape[0], idx] = diag
                if pos == self.vxm_pos:
                    self.held[dr, s0:s0 + vals.shape[0]] = vals
                    self.held_at[dr, s0:s0 + vals.shape[0]] = t
                if trace:
                    for j in range(vals.shape[0]):
                        for k in range(S):
                            ev.append(Event(t + k, "sr", pos, dr, s0 + j, k,
                                            vals[j, k * L:(k + 1) * L].tobytes()))
            elif kind == "mwr":
                _, _, m, addr, val = item
                bank = addr // self.cfg.bank_words
                if (m, bank) in mem_reads:
                    raise self._err(f"writes bank {bank} of {self.mem_names[m]} in cycle {t}, "
                                    "which is also read in that cycle", d, "bank", t)
                self.mem[m, addr:addr + val.shape[0]] = val
                self._encode(m, addr, val.shape[0])
                if trace:
                    for j in range(val.shape[0]):
                        for k in range(S):
                            ev.append(Event(t + k, "sram", m, 0, addr + j, k,
                                            val[j, k * L:(k + 1) * L].tobytes()))
            elif kind == "lw":
                _, _, x, row, rows = item
                self.shadow[x, row:row + rows.shape[0]] = rows
                if trace:
                    for j in range(rows.shape[0]):
                        for k in range(S):
                            ev.append(Event(t + k, "wload", x, 0, row + j, k,
                                            rows[j, k * L:(k + 1) * L].tobytes()))
            elif kind == "iw":
                _, _, x, snap = item
                self.weights[x] = snap
                if trace:
                    for k in range(S):
                        ev.append(Event(t + k, "install", x, 0, 0, k, b""))
            elif kind == "mm":
                _, _, x, slot, accumulate, y, dst, pos = item
                if accumulate:
                    y = self.acc[x, slot] + y  # int32, wrapping
                self.acc[x, slot] = y
                if trace:
                    for k in range(S):
                        ev.append(Event(t + k, "acc", x, 0, slot, k,
                                        y[k * L:(k + 1) * L].astype("<i4").tobytes()))
                if dst is not None:
                    pend.append(("sr", d, pos, dst, to_planes(y.view(np.uint32))))
        if pend:
            self._last_event = max(self._last_event, t + S - 1)


