"""A system of chips joined by C2C links, in one deterministic run; and its link checker.

Contract (docs/timing.md, "C2C")
--------------------------------
Every chip of a :class:`~lpu.system.SystemConfig` starts its program at cycle 0 of
the same clock. A ``send`` dispatched at cycle ``t`` over link ``l`` of chip ``a``
takes its vectors from chip ``a``'s streams in cycle ``t`` (superlane ``k`` at
``t + k``) and the link delivers them at the other end ``(b, l')`` at ``t + L``
(``L = c2c_latency``): a ``recv`` of the same count over ``l'`` must be dispatched on
chip ``b`` at exactly ``t + L``, and writes them to its streams at ``t + L + 1``. No
buffer, no back-pressure, no retry: a send whose arrival finds no matching recv, or a
recv with nothing arriving, is an illegal schedule.

:func:`check_system` is the static checker of the whole system: every send is matched
to its recv and every recv to its send, the first mismatch (in cycle order) a
:class:`LinkError` naming the chip, the place (``file:line``), the link, the cycle and
the instruction; then every chip's program passes :func:`lpu.golden.check.check` (after
the links: a missing recv would break a chip's own rules first, as a read of streams
nobody wrote).
:class:`System` runs the chips cycle by cycle in chip order (each on the golden chip
model's interpreter, :class:`lpu.golden.chip.Chip`), carrying the vectors over the
links; it raises the same errors at run time if it is given a program unchecked.

Usage::

    sysc = lpu.system.system(cfg, 2, "pairs")
    s = System(sysc)
    s.chips[0].write_mem("mem_w0", 0, words)
    s.load([program0, program1])       # check_system first
    results = s.run(trace=True)        # one RunResult per chip
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.errors import LpuError
from lpu.isa import Opcode
from lpu.program import Program
from lpu.system import SystemConfig
from lpu.system import load as load_system
from lpu.trace import Event

from .check import check
from .chip import Chip, ChipError, RunResult
from .schedule import ScheduleError, effects, timeline

__all__ = ["System", "LinkError", "check_system", "LinkUse"]


class LinkError(ScheduleError):
    """A send without its recv, or a recv without its send: names the chip, the place,
    the cycle, the queue, the instruction and the link (rule ``link``)."""

    def __init__(self, message, *, chip, link, cycle, queue=None, where=None, instr=None):
        self.chip, self.link = chip, link
        super().__init__(message, cycle=cycle, queue=queue, where=where, instr=instr,
                         rule="link")
        self.args = (f"chip {chip}, {self.args[0]}",)


@dataclass(frozen=True)
class LinkUse:
    """One send or recv of a chip's program: where and when, over which link."""

    chip: int
    t: int
    link: int
    count: int
    send: bool
    queue: str
    where: str
    text: str


def _uses(sysc: SystemConfig, chip: int, tl, program: Program) -> list[LinkUse]:
    cfg = sysc.chip
    out = []
    for d in tl.dispatches:
        if d.instr.op not in (Opcode.SEND, Opcode.RECV):
            continue
        q = cfg.queues[d.queue]
        for ef in effects(cfg, d.instr):
            if ef.kind in ("tx", "rx"):
                out.append(LinkUse(chip, d.t, ef.link, ef.width, ef.kind == "tx", q.name,
                                   program.where(q.name, d.index), d.instr.text()))
    return out


def check_system(sysc: SystemConfig, programs: list[Program], *,
                 names: list[str] | None = None) -> list:
    """Check every chip's program, then the links; return the chips' timelines, or raise
    :class:`~lpu.golden.schedule.ScheduleError` (a chip's own rule, its message starting
    ``chip N``) or :class:`LinkError`."""
    if len(programs) != sysc.chips:
        raise LpuError(f"a system of {sysc.chips} chips runs {sysc.chips} programs, one a "
                       f"chip, not {len(programs)}")
    names = names or [f"chip {i}" for i in range(sysc.chips)]
    L = sysc.chip.c2c_latency
    uses = []
    for i, (prog, name) in enumerate(zip(programs, names, strict=True)):
        try:
            prog.check_config(sysc.chip, name)
            uses += _uses(sysc, i, timeline(sysc.chip, prog, name=name), prog)
        except ScheduleError as e:
            raise _on_chip(i, e) from None
    sends = {(u.chip, u.link, u.t): u for u in uses if u.send}
    recvs = {(u.chip, u.link, u.t): u for u in uses if not u.send}
    problems = []  # (cycle the problem shows, chip, message, the use)
    for u in sends.values():
        peer = sysc.peer(u.chip, u.link)
        if peer is None:
            problems.append((u.t, u, f"sends over link {u.link}, which is not cabled in the "
                                     f"{sysc.topology} topology of this system"))
            continue
        r = recvs.get((peer[0], peer[1], u.t + L))
        if r is None:
            problems.append((u.t, u, f"sends {u.count} vector(s) over link {u.link}; they "
                                     f"arrive at chip {peer[0]} link {peer[1]} in cycle "
                                     f"{u.t + L} (latency {L}), where no recv takes them"))
        elif r.count != u.count:
            problems.append((u.t, u, f"sends {u.count} vector(s) over link {u.link}; the recv "
                                     f"at chip {peer[0]} link {peer[1]} in cycle {u.t + L} "
                                     f"({r.where}) takes {r.count}"))
    for r in recvs.values():
        peer = sysc.peer(r.chip, r.link)
        if peer is None:
            problems.append((r.t, r, f"receives over link {r.link}, which is not cabled in "
                                     f"the {sysc.topology} topology of this system"))
        elif (peer[0], peer[1], r.t - L) not in sends:
            problems.append((r.t, r, f"receives over link {r.link}, where nothing arrives in "
                                     f"this cycle: chip {peer[0]} sends nothing over link "
                                     f"{peer[1]} in cycle {r.t - L} (latency {L})"))
    if problems:
        _, u, msg = min(problems, key=lambda p: (p[0], p[1].chip, p[1].queue))
        raise LinkError(msg, chip=u.chip, link=u.link, cycle=u.t, queue=u.queue,
                        where=u.where, instr=u.text)
    # the links match: now each chip's own rules (a missing recv would show there first,
    # as a read of streams it did not write)
    timelines = []
    for i, (prog, name) in enumerate(zip(programs, names, strict=True)):
        try:
            timelines.append(check(sysc.chip, prog, name=name).timeline)
        except ScheduleError as e:
            raise _on_chip(i, e) from None
    return timelines


class System:
    """The golden model of a system of chips (see the module docstring).

    Attributes
    ----------
    cfg : SystemConfig
    chips : list of :class:`~lpu.golden.chip.Chip`, one per chip, in chip order.
    """

    def __init__(self, sysc: SystemConfig | str):
        self.cfg = sysc = load_system(sysc)
        self.chips = [Chip(sysc.chip) for _ in range(sysc.chips)]
        for c in self.chips:
            c.in_system = True
        self._loaded = False

    def load(self, programs: list[Program], *, check_first: bool = True,
             names: list[str] | None = None) -> None:
        """Load one program a chip (each refused if built for another config); check the
        system statically first (:func:`check_system`)."""
        names = names or [f"chip {i}" for i in range(self.cfg.chips)]
        if check_first:
            check_system(self.cfg, programs, names=names)
        elif len(programs) != self.cfg.chips:
            raise LpuError(f"a system of {self.cfg.chips} chips runs {self.cfg.chips} "
                           f"programs, one a chip, not {len(programs)}")
        for i, (chip, prog, name) in enumerate(zip(self.chips, programs, names, strict=True)):
            try:
                chip.load(prog, check_first=False, name=name)
            except ChipError as e:
                raise _on_chip(i, e) from None
        self._loaded = True

    def run(self, *, trace: bool = False) -> list[RunResult]:
        """Run every chip's program to its end, cycle by cycle; one RunResult a chip."""
        if not self._loaded:
            raise LpuError("no programs loaded")
        L = self.cfg.chip.c2c_latency
        chips = self.chips
        for c in chips:
            c._trace = trace
        t = 0
        came_from = {}  # (chip, arrival cycle, link) -> (sending chip, its dispatch)
        while not all(c.done for c in chips) or any(c.link_in for c in chips):
            for i, c in enumerate(chips):
                sent = len(c.link_out)
                try:
                    c._step()
                except ChipError as e:
                    raise _on_chip(i, e) from None
                for (ts, link, vals, d) in c.link_out[sent:]:
                    peer = self.cfg.peer(i, link)
                    if peer is None:
                        raise self._link_err(i, c, d, f"sends over link {link}, which is not "
                                             f"cabled in the {self.cfg.topology} topology")
                    chips[peer[0]].link_in[(ts + L, peer[1])] = vals
                    came_from[(peer[0], ts + L, peer[1])] = (i, d)
            for j, c in enumerate(chips):  # what arrived in cycle t and nobody took
                for (ta, link) in [k for k in c.link_in if k[0] <= t]:
                    i, d = came_from[(j, ta, link)]
                    raise self._link_err(i, chips[i], d, f"sends over link {d.instr.link}; the "
                                         f"vectors arrive at chip {j} link {link} in cycle "
                                         f"{ta}, where no recv takes them")
            t += 1
        out = []
        for c in chips:
            c._host_cycle = c.end_cycle
            events = sorted(c._events, key=Event.sort_key) if trace else []
            c._events = []
            cycles = c._last_event + 1 if c._last_event >= 0 else 0
            out.append(RunResult(cycles, dict(c._tl.per_queue), events, end_cycle=c.end_cycle))
        return out

    def _link_err(self, i, chip, d, msg):
        q = chip.cfg.queues[d.queue]
        return _on_chip(i, ChipError(msg, cycle=d.t, queue=q.name, instr=d.instr.text(),
                                     where=chip.program.where(q.name, d.index), rule="link"))


def _on_chip(i: int, e: LpuError) -> LpuError:
    """`e` with its message starting ``chip i, `` and its ``chip`` attribute set."""
    e.args = (f"chip {i}, {e.args[0]}",)
    e.chip = i
    return e
