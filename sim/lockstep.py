"""Lockstep: run the golden model beside the RTL and stop at the first cycle that differs.

Both sides report architectural events (:class:`lpu.trace.Event`, docs/trace.md)
per real cycle. A :class:`Backend` turns ``(program, mem_init)`` into an iterator of
``(cycle, events)``, cycles increasing (a cycle without events may be left out or
given with an empty list):

* :class:`GoldenBackend`: the cycle-exact golden model (:mod:`lpu.golden.chip`),
  stepped one cycle at a time, so a divergence stops it early too;
* :class:`AmaranthBackend`: the chip top :class:`lpu.hdl.chip.Chip` with its trace
  port on Amaranth's simulator, SRAM preloaded, the program loaded and started
  through the host bus;
* the cocotb backend over the generated Verilog (:mod:`lpu.sim.cocotb_runner`), which
  runs inside the simulator process.

:func:`compare` consumes two such iterators together, cycle by cycle. In each cycle it
compares the *set* of events (their order within a cycle does not matter): each event
is keyed by ``(kind, unit, dir, index, superlane)`` and must carry the same bytes. At
the first cycle with a difference it stops both sides and returns a
:class:`Divergence`:

``reason``
    ``value`` (both sides have the event, with different bytes), ``missing`` (only the
    expected side has it) or ``extra`` (only the actual side has it). When a cycle has
    several differences, the first in the trace's sort order is reported (dispatches
    first, then stream writes, SRAM writes, weight loads, installs, accumulators) and
    the others are counted.
``cycle``, ``superlane``
    Real cycle and superlane of the event (the instruction that caused it was
    dispatched ``superlane`` cycles earlier on superlane 0, plus its delay).
``lane``, ``byte``
    For a ``value`` difference: the vector lane (``superlane * lanes + i``) of the
    first differing byte, and that byte's offset in the event's data (accumulator
    lanes are 4 bytes wide).
``unit_name``, ``what``
    Where: the position (``vxm``, ``mem_w0`` ...) and stream (``e3``) of a stream
    write, the MEM slice and address of an SRAM write, the MXM plane and row / slot,
    the queue and instruction index of a dispatch.
``expected``, ``actual``
    The bytes (hex in the text and JSON forms).
``queue``, ``instr``, ``dispatch_cycle``, ``instr_index``, ``where``
    The instruction in flight: among the dispatches seen so far (golden side first) of
    the queues driving that unit, the one whose effect lands on this event (its delay
    and operands match), or else the most recent one. ``where`` is its source line
    when the program carries one.

After the last event both sides must also end the run in the same cycle
(docs/timing.md, "The end of a run"): a backend that knows it sets ``end_cycle`` when
its stream is exhausted (the golden model from its dispatch timeline, the RTL backends
from the host's CYCLE register after DONE). A difference is a :class:`Divergence` with
``reason`` ``end`` (``kind`` ``run``): both last cycles, and the queue that finishes
last on the reference side with its last instruction.

:func:`lockstep` wires it together: golden model as the reference, any backend as
the device under test, a :class:`LockstepResult` with the cycles and events compared.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from amaranth.sim import Simulator

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.chip import Chip as GoldenChip
from lpu.golden.schedule import effects, timeline
from lpu.hdl.chip import Chip as HdlChip
from lpu.hdl.chip import trace_fields, trace_width
from lpu.hdl.host import RegisterMap
from lpu.isa import IsaError, Opcode, decode
from lpu.program import Program
from lpu.sim.hostbus import SimBus
from lpu.trace import KINDS, Event, from_json, to_json

from .trace import TraceReader, event_mask

__all__ = ["Backend", "GoldenBackend", "AmaranthBackend", "Divergence", "LockstepResult",
           "LockstepError", "Comparator", "compare", "lockstep", "events_by_cycle", "sim_chip",
           "record_run"]

_KORDER = {k: i for i, k in enumerate(KINDS)}
#: Dispatches per queue (each side) the instruction in flight is looked up in.
HISTORY = 64


class LockstepError(LpuError):
    """A backend could not run the program (not a divergence)."""


class Backend(Protocol):
    """Runs a program and reports its events per real cycle."""

    name: str

    def run(self, program: Program, mem_init: dict) -> Iterator[tuple[int, list[Event]]]:
        """Events per cycle, cycles increasing. `mem_init`: MEM slice name -> uint8
        [n, VL] words from address 0."""
        ...


def events_by_cycle(events: Iterable[Event]) -> Iterator[tuple[int, list[Event]]]:
    """A flat event list (sorted by cycle) as ``(cycle, events)`` pairs."""
    cur, bucket = None, []
    for ev in events:
        if ev.cycle != cur:
            if bucket:
                yield cur, bucket
            cur, bucket = ev.cycle, []
        bucket.append(ev)
    if bucket:
        yield cur, bucket


# -- backends ------------------------------------------------------------------------------------


class GoldenBackend:
    """The golden chip model, one skewed cycle at a time.

    After skewed cycle ``τ`` is simulated every event of real cycle ``τ`` is known (events
    of superlane ``k`` are ``k`` cycles late), so cycles are handed out as soon as they
    are complete.
    """

    name = "golden"

    def __init__(self, cfg: ChipConfig | str, *, check: bool = True, faults=()):
        self.cfg = load_config(cfg)
        self.check = check
        # lpu.hdl.mem.MemFault: flipped SRAM bits, injected as the RTL's (ECC tests)
        self.faults = tuple(faults)
        self.chip = None
        self.end_cycle = None  # set when the stream is exhausted

    def run(self, program, mem_init):
        self.end_cycle = None
        chip = GoldenChip(self.cfg)
        for name, words in (mem_init or {}).items():
            chip.write_mem(name, 0, words)
        chip.load(program, check_first=self.check)
        for f in self.faults:
            chip.inject(f.slice, f.addr, f.bit, superlane=f.superlane, cycle=f.cycle)
        self.chip = chip
        pending: dict[int, list[Event]] = defaultdict(list)
        nxt = 0
        while not chip.done:
            chip.step(trace=True)
            for ev in chip.take_events():
                pending[ev.cycle].append(ev)
            while nxt < chip.cycle:
                yield nxt, pending.pop(nxt, [])
                nxt += 1
        for c in sorted(pending):
            while nxt < c:
                yield nxt, []
                nxt += 1
            yield c, pending.pop(c)
            nxt = c + 1
        self.end_cycle = chip.end_cycle


class AmaranthBackend:
    """:class:`lpu.hdl.chip.Chip` (with its trace port) on Amaranth's simulator.

    Each run builds a fresh simulator: the MEM slices are preloaded with `mem_init`
    (:meth:`lpu.hdl.mem.MemSlice.preload`), the program is written through the host bus,
    START is written, and from cycle 0 on the trace port is read every cycle
    (:class:`lpu.sim.trace.TraceReader`) until RUNNING falls. With ``vcd`` set, the
    waveform of the whole run (up to where the comparison stopped it) is written
    there, with a GTKWave save file beside it (``.gtkw``).

    After the run, :attr:`status` and :attr:`error` hold the host's STATUS register and
    the sticky error registers (None if no error), :attr:`end_cycle` its CYCLE register
    (the run's last cycle).
    """

    name = "amaranth"

    def __init__(self, cfg: ChipConfig | str, *, vcd=None, max_cycles: int = 100_000,
                 fault=None, mem_faults=()):
        self.cfg = load_config(cfg)
        self.fault = fault  # lpu.hdl.vxm.VxmFault: a deliberate bug (checker tests only)
        self.mem_faults = tuple(mem_faults)  # lpu.hdl.mem.MemFault: flipped SRAM bits
        self.vcd = vcd
        self.max_cycles = max_cycles
        self.status = None
        self.error = None
        self.end_cycle = None
        self.corrected = None  # the ECC_CORRECTED register after the run
        self.build_seconds = None

    def build(self, mem_init):
        t0 = time.perf_counter()
        # Amaranth's simulator writes every signal's mask into the Python code it
        # generates as a decimal literal; on configs beyond tiny the widest signals (the
        # trace port) pass Python's default limit of 4300 digits for that conversion
        if 0 < sys.get_int_max_str_digits() < 1 << 20:
            sys.set_int_max_str_digits(0)
        dut = sim_chip(self.cfg, fault=self.fault, mem_faults=self.mem_faults)
        names = [q.name for q in self.cfg.queues if q.kind == "mem"]
        for name, sl in zip(names, dut.mem_slices, strict=True):
            if mem_init and name in mem_init:
                sl.preload(mem_init[name])
        sim = Simulator(dut)
        sim.add_clock(1e-6)
        self.build_seconds = time.perf_counter() - t0
        return dut, sim

    def run(self, program, mem_init):
        program.check_config(self.cfg)
        self.status = self.error = self.end_cycle = None
        dut, sim = self.build(mem_init)
        regs = RegisterMap(self.cfg)
        bus = SimBus(dut.bus, regs)
        reader = TraceReader(dut)
        out: deque = deque()
        limit = self.max_cycles

        async def testbench(ctx):
            await bus.load_program(ctx, program)
            await bus.start(ctx)
            c = 0
            while ctx.get(dut.trace.running):
                out.append((c, reader.read(ctx, c)))
                await ctx.tick()
                c += 1
                if c > limit:
                    raise LockstepError(f"the RTL ran past {limit} cycles without finishing")
            self.status = await bus.status(ctx)
            self.end_cycle = await bus.read(ctx, regs.CYCLE)
            self.error = await bus.error(ctx)
            self.corrected = await bus.read(ctx, regs.ECC_CORRECTED)

        sim.add_testbench(testbench)
        yield from self._simulate(sim, dut, out)

    def record(self, program, mem_init):
        """Run `program` free and record it as :mod:`lpu.sim.recorder` records the
        Verilog: ``(cycles, trace, running)``, the cycles with an event, their
        ``trace_bits`` (uint8 [n, bytes], little-endian) and the cycles the chip ran
        (for :mod:`lpu.sim.bulk`; status, error and end cycle are set as by :meth:`run`)."""
        program.check_config(self.cfg)
        self.status = self.error = self.end_cycle = None
        dut, sim = self.build(mem_init)
        regs = RegisterMap(self.cfg)
        bus = SimBus(dut.bus, regs)
        out = []
        limit = self.max_cycles

        async def testbench(ctx):
            await bus.load_program(ctx, program)
            await bus.start(ctx)
            rec = await record_run(ctx, dut, limit)
            if rec[2] > limit:
                raise LockstepError(f"the RTL ran past {limit} cycles without finishing")
            out.append(rec)
            self.status = await bus.status(ctx)
            self.end_cycle = await bus.read(ctx, regs.CYCLE)
            self.error = await bus.error(ctx)
            self.corrected = await bus.read(ctx, regs.ECC_CORRECTED)

        sim.add_testbench(testbench)
        for _ in self._simulate(sim, dut, deque()):
            pass
        return out[0]

    def _simulate(self, sim, dut, out):
        writer = None
        if self.vcd:
            vcd = str(self.vcd)
            gtkw = vcd.rsplit(".", 1)[0] + ".gtkw"
            writer = sim.write_vcd(vcd, gtkw, traces=[dut.bus, dut.trace])
            writer.__enter__()
        try:
            while True:
                while not out and sim.advance():
                    pass
                if not out:
                    return
                yield out.popleft()
        finally:
            if writer is not None:
                writer.__exit__(None, None, None)


def sim_chip(cfg: ChipConfig, **kw) -> HdlChip:
    """The chip as Amaranth's simulator runs it: traced, the trace port unpacked. A
    packed ``trace_bits`` is one value of every trace bit (66,813 on ``small``), and
    Amaranth's simulator refuses values over 65,536 bits; :func:`record_run` reads the
    port's fields instead. `kw`: :class:`lpu.hdl.chip.Chip`'s ``fault`` and
    ``mem_faults``."""
    return HdlChip(cfg, trace=True, packed=False, **kw)


async def record_run(ctx, dut, limit: int, live: dict | None = None):
    """From cycle 0 of a run (an Amaranth testbench's `ctx`, the chip `dut` with its trace
    port, packed or not) until RUNNING falls, or `limit` cycles have passed: ``(cycles,
    trace, running)`` as :mod:`lpu.sim.recorder` records the Verilog (the cycles with an event,
    their ``trace_bits`` as uint8 [n, bytes] little-endian, the cycles the chip ran:
    above `limit` if it had not finished). `live`: its ``"cycle"`` is set to the cycle
    reached every 256 cycles (for progress lines)."""
    fields = trace_fields(dut)
    mask, nbytes = event_mask(dut), 4 * -(-trace_width(dut) // 32)
    cycles, rows, c = [], [], 0
    get = ctx.get
    while get(dut.trace.running):
        bits = 0  # trace_bits, assembled from the trace port's fields
        for sig, off, w in fields:
            v = get(sig)
            if v:
                bits |= (v & ((1 << w) - 1) if v < 0 else v) << off
        if bits & mask:
            cycles.append(c)
            rows.append(bits.to_bytes(nbytes, "little"))
        await ctx.tick()
        c += 1
        if live is not None and not c & 255:
            live["cycle"] = c
        if c > limit:
            break
    trace = np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), nbytes)
    return np.array(cycles, np.int64), trace, c


# -- the divergence report ----------------------------------------------------------------------


@dataclass
class Divergence:
    """The first difference between two event streams (see the module docstring)."""

    cycle: int
    reason: str  # "value" | "missing" | "extra"
    kind: str
    unit: int
    unit_name: str
    dir: int
    index: int
    what: str  # "stream e3", "address 17", "row 2", "slot 0", "instruction 5", ""
    superlane: int
    lane: int | None
    byte: int | None
    expected: bytes | None
    actual: bytes | None
    queue: str | None = None
    instr: str | None = None
    dispatch_cycle: int | None = None
    instr_index: int | None = None
    where: str | None = None
    responsible: bool = False  # the instruction's effect lands on this event
    others: int = 0  # further differences in the same cycle
    expected_events: list = field(default_factory=list, repr=False)
    actual_events: list = field(default_factory=list, repr=False)

    @property
    def location(self) -> str:
        loc = f"{self.kind} {self.unit_name}"
        return f"{loc} {self.what}" if self.what else loc

    def text(self) -> str:
        if self.reason == "end":
            e, a = (int.from_bytes(x, "little") for x in (self.expected, self.actual))
            lines = [f"first divergence at cycle {self.cycle}: the run ends in cycle {e} "
                     f"on the reference, {a} on the device (the host's CYCLE after DONE)"]
            if self.queue is not None:
                src = f" ({self.where})" if self.where else ""
                lines.append(f"  the last queue to finish: {self.queue}, after its word "
                             f"{self.instr_index} '{self.instr}'{src}")
            return "\n".join(lines)
        head = (f"first divergence at cycle {self.cycle}, superlane {self.superlane}"
                + (f", lane {self.lane}" if self.lane is not None else "")
                + f": {self.location}")
        lines = [head]
        if self.reason == "value":
            lines.append(f"  expected {_hex(self.expected)}")
            lines.append(f"  actual   {_hex(self.actual)}")
            if self.byte is not None:
                lines.append("           " + "  " * self.byte + "^^"
                             + f" byte {self.byte} (lane {self.lane})")
        elif self.reason == "missing":
            lines.append(f"  expected {_hex(self.expected)}, but the device reported no such "
                         "event in this cycle")
        else:
            lines.append(f"  the device reported {_hex(self.actual)}, which the reference "
                         "does not have in this cycle")
        if self.instr is not None:
            rel = "whose result this is" if self.responsible else "most recently dispatched"
            src = f" ({self.where})" if self.where else ""
            lines.append(f"  instruction in flight: {self.queue}[{self.instr_index}] "
                         f"'{self.instr}', dispatched at cycle {self.dispatch_cycle}{src}, "
                         f"{rel}")
        if self.others:
            lines.append(f"  ({self.others} more difference(s) in this cycle)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "cycle": self.cycle, "reason": self.reason, "kind": self.kind, "unit": self.unit,
            "unit_name": self.unit_name, "dir": self.dir, "index": self.index,
            "what": self.what, "superlane": self.superlane, "lane": self.lane,
            "byte": self.byte,
            "expected": None if self.expected is None else self.expected.hex(),
            "actual": None if self.actual is None else self.actual.hex(),
            "queue": self.queue, "instr": self.instr, "dispatch_cycle": self.dispatch_cycle,
            "instr_index": self.instr_index, "where": self.where,
            "responsible": self.responsible, "others": self.others,
            "expected_events": [_ev_json(e) for e in self.expected_events],
            "actual_events": [_ev_json(e) for e in self.actual_events],
        }

    def __str__(self):
        return self.text()

    @classmethod
    def from_json(cls, obj: dict) -> Divergence:
        kw = dict(obj)
        for k in ("expected", "actual"):
            kw[k] = None if kw[k] is None else bytes.fromhex(kw[k])
        kw["expected_events"] = [from_json(e) for e in kw.get("expected_events", [])]
        kw["actual_events"] = [from_json(e) for e in kw.get("actual_events", [])]
        return cls(**kw)


def _hex(b: bytes | None) -> str:
    return "-" if b is None else (b.hex() or "(empty)")


def _ev_json(ev: Event) -> dict:
    return to_json(ev)


@dataclass
class LockstepResult:
    """What a lockstep run compared, and the first divergence if any."""

    ok: bool
    cycles: int  # cycles compared (up to and including a divergence)
    events: int  # events compared (both sides, up to the divergence)
    divergence: Divergence | None = None
    reference: str = "golden"
    device: str = ""
    seconds: float = 0.0
    end_cycle: int | None = None  # the run's last cycle on both sides, when compared

    def text(self) -> str:
        if self.ok:
            end = (f", the run ends in cycle {self.end_cycle} on both"
                   if self.end_cycle is not None else "")
            return (f"lockstep {self.reference} vs {self.device}: {self.cycles} cycles, "
                    f"{self.events} events, identical{end}")
        return (f"lockstep {self.reference} vs {self.device}: DIVERGED after {self.cycles} "
                f"cycles\n{self.divergence.text()}")

    def to_json(self) -> dict:
        return {"ok": self.ok, "reference": self.reference, "device": self.device,
                "cycles": self.cycles, "events": self.events,
                "seconds": round(self.seconds, 3), "end_cycle": self.end_cycle,
                "divergence": None if self.divergence is None else self.divergence.to_json()}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def from_json(cls, obj: dict) -> LockstepResult:
        div = obj.get("divergence")
        return cls(bool(obj["ok"]), int(obj["cycles"]), int(obj["events"]),
                   None if div is None else Divergence.from_json(div),
                   obj.get("reference", "golden"), obj.get("device", ""),
                   float(obj.get("seconds", 0.0)), obj.get("end_cycle"))


# -- comparison ------------------------------------------------------------------------------------


class EventCursor:
    """One event stream, taken cycle by cycle."""

    def __init__(self, it):
        self.it = iter(it)
        self.head = None  # (cycle, events) not yet taken
        self.done = False
        self._fill()

    def _fill(self):
        if self.head is None and not self.done:
            try:
                self.head = next(self.it)
            except StopIteration:
                self.done = True

    @property
    def next_cycle(self):
        return None if self.head is None else self.head[0]

    def take(self, cycle) -> list[Event]:
        if self.head is None or self.head[0] > cycle:
            return []
        c, evs = self.head
        if c < cycle:
            raise LockstepError(f"event stream went back in time: cycle {c} after {cycle}")
        self.head = None
        self._fill()
        return list(evs)

    def close(self):
        close = getattr(self.it, "close", None)
        if close is not None:
            close()


def _key(ev: Event):
    return (_KORDER.get(ev.kind, len(_KORDER)), ev.unit, ev.dir, ev.index, ev.superlane)


class _Names:
    def __init__(self, cfg: ChipConfig):
        self.cfg = cfg
        self.mem = [q for q in cfg.queues if q.kind == "mem"]
        self.mxm = [q for q in cfg.queues if q.kind == "mxm"]

    def unit(self, ev: Event) -> str:
        cfg = self.cfg
        try:
            if ev.kind == "sr":
                return cfg.positions[ev.unit].name
            if ev.kind in ("sram", "ecc"):
                return self.mem[ev.unit].name
            if ev.kind in ("wload", "install", "acc"):
                return self.mxm[ev.unit].name
            return cfg.queues[ev.unit].name
        except IndexError:
            return f"{ev.kind}-unit-{ev.unit}"

    @staticmethod
    def what(ev: Event) -> str:
        return {
            "sr": f"stream {'ew'[ev.dir & 1]}{ev.index}",
            "sram": f"address {ev.index}",
            "ecc": f"address {ev.index} ({('corrected', 'detected')[ev.dir & 1]})",
            "wload": f"row {ev.index}",
            "install": "",
            "acc": f"slot {ev.index}",
            "dispatch": f"instruction {ev.index}",
        }.get(ev.kind, f"index {ev.index}")

    def queues_of(self, ev: Event):
        cfg = self.cfg
        if ev.kind == "sr":
            return [q for q in cfg.queues if q.position == ev.unit]
        if ev.kind in ("sram", "ecc"):
            return self.mem[ev.unit:ev.unit + 1]
        if ev.kind in ("wload", "install", "acc"):
            return self.mxm[ev.unit:ev.unit + 1]
        return list(cfg.queues[ev.unit:ev.unit + 1])


def _explains(cfg, ins, td, ev, tau) -> bool:
    """Does `ins`, dispatched at (skewed) td, cause event `ev` at skewed cycle tau?"""
    op = ins.op
    S = cfg.superlanes
    if ev.kind == "sr":
        try:
            effs = effects(cfg, ins)
        except LpuError:
            return False
        return any(ef.kind == "wr" and ef.dir == ev.dir and td + ef.dt == tau
                   and ef.stream <= ev.index < ef.stream + ef.width for ef in effs)
    a = ins.args
    if ev.kind == "ecc":  # a read's word, put on the streams at td + 1
        return op == Opcode.READ and td + 1 == tau and a["addr"] <= ev.index < a["addr"] + \
            a["count"]
    if ev.kind == "sram":
        return op == Opcode.WRITE and td + 1 == tau and a["addr"] <= ev.index < a["addr"] + \
            a["count"]
    if ev.kind == "wload":
        return op in (Opcode.LW, Opcode.LWI) and td + 1 == tau and \
            a["row"] <= ev.index < a["row"] + a["count"]
    if ev.kind == "install":
        return (op == Opcode.IW and td == tau) or (op == Opcode.LWI and td + 2 == tau)
    if ev.kind == "acc":
        return op in (Opcode.MM, Opcode.MMACC) and td + S + 2 == tau and a["slot"] == ev.index
    return False


class Comparator:
    """Compares one cycle at a time (:meth:`feed`); keeps the dispatch history that names
    the instruction in flight. :func:`compare` drives it from two iterators; the cocotb
    backend drives it from inside the simulator."""

    def __init__(self, cfg: ChipConfig | str, *, program: Program | None = None):
        self.cfg = load_config(cfg)
        self.names = _Names(self.cfg)
        self.program = program
        self.history = ({}, {})  # (expected, actual): queue -> deque of (cycle, index, word)
        self.cycles = 0
        self.events = 0
        self.divergence: Divergence | None = None
        self.end_cycle: int | None = None
        self._t0 = time.perf_counter()

    def feed(self, cycle: int, expected: list[Event], actual: list[Event]) -> Divergence | None:
        """Compare the events of one cycle; the first difference is kept and returned."""
        if self.divergence is not None:
            return self.divergence
        self.cycles = cycle + 1
        self.events += len(expected) + len(actual)
        for side, evs in zip(self.history, (expected, actual), strict=True):
            for ev in evs:
                if ev.kind == "dispatch":
                    side.setdefault(ev.unit, deque(maxlen=HISTORY)).append(
                        (ev.cycle, ev.index, int.from_bytes(ev.data, "little")))
        if sorted((_key(e), e.data) for e in expected) != \
                sorted((_key(a), a.data) for a in actual):
            self.divergence = _divergence(cycle, expected, actual, self.names, self.history,
                                          self.program)
        return self.divergence

    def skip(self, cycle: int, dispatches, events: int) -> None:
        """Take every cycle before `cycle` as compared and equal on both sides (a bulk
        comparison, :mod:`lpu.sim.bulk`, found them so): their `dispatches`
        ``(cycle, queue, index, word)``, in cycle order, go into both sides' histories
        (which name the instruction in flight), their `events` (of one side) into the
        count."""
        for side in self.history:
            for c, q, i, w in dispatches:
                side.setdefault(q, deque(maxlen=HISTORY)).append((c, i, w))
        self.cycles = max(self.cycles, cycle)
        self.events += 2 * events

    def finish(self, expected_end: int | None, actual_end: int | None) -> Divergence | None:
        """After the last event: compare the run's last cycle on both sides (None: not
        known on that side, nothing compared)."""
        if self.divergence is not None or expected_end is None or actual_end is None:
            return self.divergence
        if expected_end == actual_end:
            self.end_cycle = expected_end
            return None
        d = Divergence(
            cycle=min(expected_end, actual_end) + 1, reason="end", kind="run", unit=0,
            unit_name="host", dir=0, index=0, what="end of the run", superlane=0, lane=None,
            byte=None, expected=expected_end.to_bytes(4, "little"),
            actual=actual_end.to_bytes(4, "little"))
        if self.program is not None:  # the queue that finishes last, and its last word
            tl = timeline(self.cfg, self.program)
            if tl.finished and tl.all_finished > 0:
                q = max(tl.finished, key=lambda n: tl.finished[n])
                words = self.program.queues.get(q, [])
                if words:
                    i = len(words) - 1
                    d.queue, d.instr_index = q, i
                    d.dispatch_cycle = tl.finished[q] - 1
                    try:
                        d.instr = decode(words[i]).text()
                    except IsaError:
                        d.instr = f"0x{words[i]:08x}"
                    if self.program.source.get(q):
                        d.where = self.program.where(q, i)
        self.divergence = d
        return d

    def result(self, reference: str = "golden", device: str = "device") -> LockstepResult:
        return LockstepResult(self.divergence is None, self.cycles, self.events,
                              self.divergence, reference, device,
                              time.perf_counter() - self._t0, self.end_cycle)


def compare(expected: Iterable, actual: Iterable, cfg: ChipConfig | str, *,
            program: Program | None = None, max_cycles: int | None = None,
            reference: str = "golden", device: str = "device",
            ends=None) -> LockstepResult:
    """Compare two ``(cycle, events)`` streams cycle by cycle; stop at the first cycle
    that differs (both iterators are closed then). See the module docstring. `ends`: a
    callable returning ``(expected, actual)`` last cycles of the run, called once both
    streams are exhausted without a difference (a side's None: not compared)."""
    cmp = Comparator(cfg, program=program)
    exp, act = EventCursor(expected), EventCursor(actual)
    try:
        while True:
            cands = [c for c in (exp.next_cycle, act.next_cycle) if c is not None]
            if not cands:
                break
            c = min(cands)
            if max_cycles is not None and c >= max_cycles:
                break
            if cmp.feed(c, exp.take(c), act.take(c)) is not None:
                break
    finally:
        exp.close()
        act.close()
    if ends is not None and cmp.divergence is None and exp.done and act.done:
        cmp.finish(*ends())
    return cmp.result(reference, device)


def _divergence(c, E, A, names: _Names, history, program) -> Divergence:
    cfg = names.cfg
    em, am = defaultdict(list), defaultdict(list)
    for ev in E:
        em[_key(ev)].append(ev)
    for ev in A:
        am[_key(ev)].append(ev)
    diffs = []
    for k in sorted(set(em) | set(am)):
        ed = sorted(e.data for e in em.get(k, []))
        ad = sorted(a.data for a in am.get(k, []))
        if ed != ad:
            diffs.append(k)
    k = diffs[0]
    e_ev = em.get(k, [None])[0]
    a_ev = am.get(k, [None])[0]
    if len(em.get(k, [])) > 1 or len(am.get(k, [])) > 1:  # duplicates: report the odd one
        ed = [e.data for e in em.get(k, [])]
        a_ev = next((a for a in am.get(k, []) if a.data not in ed), a_ev)
    ev = e_ev or a_ev
    if e_ev is not None and a_ev is not None:
        reason = "value"
    elif e_ev is not None:
        reason = "missing"
    else:
        reason = "extra"
    lane = byte = None
    if reason == "value" and ev.kind != "dispatch":
        x, y = e_ev.data, a_ev.data
        byte = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        width = 4 if ev.kind == "acc" else 1
        lane = ev.superlane * cfg.lanes + byte // width
    elif reason == "value":
        x, y = e_ev.data, a_ev.data
        byte = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), 0)
    d = Divergence(
        cycle=c, reason=reason, kind=ev.kind, unit=ev.unit, unit_name=names.unit(ev),
        dir=ev.dir, index=ev.index, what=names.what(ev), superlane=ev.superlane, lane=lane,
        byte=byte, expected=None if e_ev is None else e_ev.data,
        actual=None if a_ev is None else a_ev.data, others=len(diffs) - 1,
        expected_events=sorted(E, key=_key), actual_events=sorted(A, key=_key))
    # the instruction in flight
    tau = c - ev.superlane
    queues = names.queues_of(ev)
    best = None  # (responsible, cycle, queue, index, instr)
    for hist in history:
        for q in queues:
            for td, idx, word in reversed(hist.get(q.index, ())):
                if td > tau:
                    continue
                try:
                    ins = decode(word)
                except IsaError:
                    continue
                if ev.kind == "dispatch":
                    cand = (True, td, q, idx, ins)
                else:
                    resp = _explains(cfg, ins, td, ev, tau)
                    cand = (resp, td, q, idx, ins)
                if best is None or (cand[0], cand[1]) > (best[0], best[1]):
                    best = cand
                if cand[0]:
                    break
        if best is not None and best[0]:
            break
    if best is not None:
        resp, td, q, idx, ins = best
        d.queue, d.instr, d.dispatch_cycle, d.instr_index = q.name, ins.text(), td, idx
        d.responsible = resp
        if program is not None:
            where = program.where(q.name, idx)
            d.where = None if where == f"{q.name}[{idx}]" else where
    return d


def lockstep(cfg: ChipConfig | str, program: Program, mem_init: dict | None,
             device: Backend, *, reference: Backend | None = None,
             max_cycles: int | None = None) -> LockstepResult:
    """Run `program` on the reference (the golden model by default) and on `device`
    together; stop at the first cycle whose events differ."""
    cfg = load_config(cfg)
    program.check_config(cfg)
    reference = reference or GoldenBackend(cfg)
    mem_init = mem_init or {}
    return compare(reference.run(program, mem_init), device.run(program, mem_init), cfg,
                   program=program, max_cycles=max_cycles,
                   reference=getattr(reference, "name", "reference"),
                   device=getattr(device, "name", "device"),
                   ends=lambda: (getattr(reference, "end_cycle", None),
                                 getattr(device, "end_cycle", None)))
