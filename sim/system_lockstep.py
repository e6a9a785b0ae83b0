"""Lockstep of a system of chips: the golden :class:`~lpu.golden.system.System` beside the
RTL system top, compared chip by chip and cycle by cycle.

Both sides report, for every chip, its architectural events (docs/trace.md) per real
cycle; the chips share one clock, so cycle ``c`` of chip ``i`` on one side is cycle ``c``
of chip ``i`` on the other. :func:`system_lockstep` checks the whole system statically
(:func:`lpu.golden.system.check_system`), runs both, and compares each chip's events with
:func:`lpu.sim.lockstep.compare` (the same :class:`~lpu.sim.lockstep.Divergence` report:
cycle, unit, superlane, lane, expected, actual, the instruction in flight), then its last
cycle. The result is a :class:`SystemLockstepResult`: one
:class:`~lpu.sim.lockstep.LockstepResult` a chip.

Backends (:class:`SystemBackend`): :class:`AmaranthSystemBackend` runs
:class:`lpu.hdl.system.SystemTop` on Amaranth's simulator: the SRAM of every chip
preloaded, every program loaded through its chip's host bus, START written to every
chip in one cycle, each chip's trace port read every cycle until every chip has
finished; after the run, each chip's STATUS, error registers and CYCLE.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from amaranth.sim import Simulator

from lpu.golden.system import System, check_system
from lpu.hdl.host import RegisterMap
from lpu.hdl.system import SystemTop
from lpu.program import Program
from lpu.system import SystemConfig
from lpu.system import load as load_system

from .hostbus import SimBus
from .lockstep import LockstepError, LockstepResult, compare, events_by_cycle
from .trace import TraceReader

__all__ = ["SystemBackend", "GoldenSystemBackend", "AmaranthSystemBackend",
           "SystemLockstepResult", "system_lockstep"]


class SystemBackend(Protocol):
    """Runs one program a chip; per chip, the ``(cycle, events)`` of the run."""

    name: str
    end_cycles: list[int | None]

    def run(self, programs: list[Program], mem_inits: list[dict]) -> list[Iterator]:
        """Run the system; one ``(cycle, events)`` iterator a chip."""
        ...


class GoldenSystemBackend:
    """The golden system, traced (:meth:`lpu.golden.system.System.run`)."""

    name = "golden"

    def __init__(self, sysc: SystemConfig | str):
        self.sysc = load_system(sysc)
        self.end_cycles: list[int | None] = []
        self.system: System | None = None

    def run(self, programs, mem_inits):
        s = self.system = System(self.sysc)
        for chip, init in zip(s.chips, mem_inits, strict=True):
            for name, words in (init or {}).items():
                chip.write_mem(name, 0, words)
        s.load(programs, check_first=False)  # system_lockstep checked it
        results = s.run(trace=True)
        self.end_cycles = [r.end_cycle for r in results]
        return [events_by_cycle(r.events) for r in results]


class AmaranthSystemBackend:
    """:class:`lpu.hdl.system.SystemTop` on Amaranth's simulator (see the module
    docstring). After a run, :attr:`status`, :attr:`errors` and :attr:`end_cycles` hold
    each chip's STATUS, first error (None if none) and CYCLE."""

    name = "amaranth"

    def __init__(self, sysc: SystemConfig | str, *, max_cycles: int = 100_000):
        self.sysc = load_system(sysc)
        self.max_cycles = max_cycles
        self.status: list = []
        self.errors: list = []
        self.end_cycles: list[int | None] = []

    def run(self, programs, mem_inits):
        if 0 < sys.get_int_max_str_digits() < 1 << 20:
            sys.set_int_max_str_digits(0)
        cfg = self.sysc.chip
        top = SystemTop(self.sysc)
        names = [q.name for q in cfg.queues if q.kind == "mem"]
        for chip, init in zip(top.chips, mem_inits, strict=True):
            for name, sl in zip(names, chip.mem_slices, strict=True):
                if init and name in init:
                    sl.preload(init[name])
        regs = RegisterMap(cfg)
        buses = [SimBus(top.bus[i], regs) for i in range(self.sysc.chips)]
        readers = [TraceReader(chip) for chip in top.chips]
        out: list[list] = [[] for _ in top.chips]
        limit = self.max_cycles

        async def testbench(ctx):
            for bus, prog in zip(buses, programs, strict=True):
                await bus.load_program(ctx, prog)
            for bus in buses:  # START to every chip in one cycle
                ctx.set(bus.bus.addr, regs.CTRL)
                ctx.set(bus.bus.w_data, regs.CTRL_START)
                ctx.set(bus.bus.w_en, 1)
            await ctx.tick()
            for bus in buses:
                ctx.set(bus.bus.w_en, 0)
            c = 0
            while any(ctx.get(chip.trace.running) for chip in top.chips):
                for i, (chip, reader) in enumerate(zip(top.chips, readers, strict=True)):
                    if ctx.get(chip.trace.running):
                        out[i].append((c, reader.read(ctx, c)))
                await ctx.tick()
                c += 1
                if c > limit:
                    raise LockstepError(f"the RTL system ran past {limit} cycles without "
                                        "finishing")
            self.status = [await b.status(ctx) for b in buses]
            self.end_cycles = [await b.read(ctx, regs.CYCLE) for b in buses]
            self.errors = [await b.error(ctx) for b in buses]

        sim = Simulator(top)
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()
        return [iter(rows) for rows in out]


@dataclass
class SystemLockstepResult:
    """One :class:`~lpu.sim.lockstep.LockstepResult` a chip; ``ok`` if all are."""

    chips: list[LockstepResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.chips)

    def text(self) -> str:
        return "\n".join(f"chip {i}: {r.text()}" for i, r in enumerate(self.chips))


def system_lockstep(sysc: SystemConfig | str, programs: list[Program], mem_inits: list[dict],
                    device: SystemBackend, *, reference: SystemBackend | None = None,
                    names: list[str] | None = None) -> SystemLockstepResult:
    """Check the system statically, run it on `reference` (the golden system by default)
    and on `device`, and compare every chip (see the module docstring)."""
    sysc = load_system(sysc)
    check_system(sysc, programs, names=names)
    reference = reference or GoldenSystemBackend(sysc)
    mem_inits = list(mem_inits) if mem_inits else [{} for _ in programs]
    exp = reference.run(programs, mem_inits)
    act = device.run(programs, mem_inits)
    out = []
    for i, (e, a, prog) in enumerate(zip(exp, act, programs, strict=True)):
        out.append(compare(e, a, sysc.chip, program=prog, reference=reference.name,
                           device=device.name,
                           ends=lambda i=i: (reference.end_cycles[i], device.end_cycles[i])))
    return SystemLockstepResult(out)
