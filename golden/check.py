"""Static schedule checker: rejects illegal programs before they run.

Rules (docs/timing.md section 5):

``two-writers``
    two in-flight instructions write one stream register (position, direction,
    stream) in the same cycle;
``empty-read``
    an instruction reads a stream register that holds nothing: no slice upstream
    wrote the value that would arrive at that cycle;
``bank``
    a MEM slice reads and writes the same SRAM bank in one cycle;
``range``
    an address, weight row, stream group, accumulator slot, lane or shift is
    outside the config;
``repeat`` / ``sync``
    a repeat that does not follow a slice instruction; a sync never released.

Each error is a :class:`~lpu.golden.schedule.ScheduleError` naming the source
place, the cycle (superlane 0; superlane k is k cycles later), the queue, the
instruction and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.config import ChipConfig
from lpu.isa import E
from lpu.program import Program

from .schedule import ScheduleError, Timeline, effects, timeline

__all__ = ["check", "CheckReport"]


class _Lazy:
    """An instruction's text, rendered only when an error message needs it."""

    __slots__ = ("ins",)

    def __init__(self, ins):
        self.ins = ins

    def __str__(self):
        return self.ins.text()

    __format__ = lambda self, spec: format(str(self), spec)  # noqa: E731


@dataclass
class CheckReport:
    timeline: Timeline
    dispatches: int
    stream_writes: int
    stream_reads: int


def check(cfg: ChipConfig, program: Program, *, name: str = "program") -> CheckReport:
    """Check `program` for `cfg`; return the timeline, or raise ScheduleError."""
    program.check_config(cfg, name)
    tl = timeline(cfg, program, name=name)
    queues = cfg.queues
    writes: dict[tuple, tuple] = {}  # (t, dir, s, pos) -> (queue, where, text)
    upstream: dict[tuple, int] = {}  # (dir, s, diag) -> most-upstream writer position
    mem_use: dict[tuple, tuple] = {}  # (t, queue, bank) -> ("r"|"w", queue name, where, text)
    held: dict[tuple, int] = {}  # (pos, dir, s) -> first cycle the slice at pos writes it
    installs: dict[tuple, tuple] = {}  # (t, queue) -> (where, text) of the install
    n_w = n_r = 0
    for dsp in tl.dispatches:
        q = queues[dsp.queue]
        where = program.where(q.name, dsp.index)
        text = _Lazy(dsp.instr)
        try:
            effs = effects(cfg, dsp.instr)
        except ScheduleError as e:
            raise ScheduleError(str(e), cycle=dsp.t, queue=q.name, where=where, instr=str(text),
                                rule=e.rule) from None
        p = q.position
        for ef in effs:
            t = dsp.t + ef.dt
            if ef.kind == "rd":
                n_r += 1
                diag = t - p if ef.dir == E else t + p
                for s in range(ef.stream, ef.stream + ef.width):
                    up = upstream.get((ef.dir, s, diag))
                    ok = up is not None and (up < p if ef.dir == E else up > p)
                    if not ok:
                        raise ScheduleError(
                            f"reads stream {'ew'[ef.dir]}{s}, which holds nothing at position "
                            f"{cfg.positions[p].name} in this cycle (no slice upstream wrote "
                            "the value that would arrive)",
                            cycle=t, queue=q.name, where=where, instr=str(text), rule="empty-read")
            elif ef.kind == "hrd":
                n_r += 1
                for s in range(ef.stream, ef.stream + ef.width):
                    first = held.get((p, ef.dir, s))
                    if first is None or first >= t:
                        raise ScheduleError(
                            f"reads the held value of stream {'ew'[ef.dir]}{s}, which the "
                            f"{q.kind.upper()} has not written before this cycle (a held read "
                            "takes what the VXM itself last wrote to that stream register, at "
                            "least one cycle earlier)",
                            cycle=t, queue=q.name, where=where, instr=str(text), rule="empty-read")
            elif ef.kind == "wr":
                n_w += 1
                diag = t - p if ef.dir == E else t + p
                for s in range(ef.stream, ef.stream + ef.width):
                    key = (t, ef.dir, s, p)
                    if key in writes:
                        oq, ow, otext = writes[key]
                        raise ScheduleError(
                            f"writes stream {'ew'[ef.dir]}{s} at position "
                            f"{cfg.positions[p].name} in cycle {t}, which '{otext}' "
                            f"(queue {oq}, {ow}) also writes in that cycle: two writers",
                            cycle=dsp.t, queue=q.name, where=where, instr=str(text),
                            rule="two-writers")
                    writes[key] = (q.name, where, text)  # text: rendered only on error
                    if held.get((p, ef.dir, s), t + 1) > t:
                        held[(p, ef.dir, s)] = t
                    k2 = (ef.dir, s, diag)
                    up = upstream.get(k2)
                    if up is None or (p < up if ef.dir == E else p > up):
                        upstream[k2] = p
            elif ef.kind in ("tx", "rx"):
                continue  # a link: the system's check (lpu.golden.system) matches the ends
            elif ef.kind == "inst":
                prev = installs.get((t, q.index))
                if prev is not None:  # an iw where an lwi installs: one install a cycle
                    raise ScheduleError(
                        f"installs the weights of {q.name} in cycle {t}, where '{prev[1]}' "
                        f"({prev[0]}) installs them too (an lwi installs two cycles after "
                        "its dispatch; an iw there is a second install)",
                        cycle=dsp.t, queue=q.name, where=where, instr=str(text),
                        rule="install")
                installs[(t, q.index)] = (where, text)
            else:
                kind = "r" if ef.kind == "mrd" else "w"
                key = (t, q.index, ef.bank)
                prev = mem_use.get(key)
                if prev is not None:  # one access per bank and cycle (read, write or gather read)
                    other = {"r": "reads", "w": "writes"}[prev[0]]
                    raise ScheduleError(
                        f"{'reads' if kind == 'r' else 'writes'} bank {ef.bank} of "
                        f"{q.name} in cycle {t}, which '{prev[3]}' ({prev[2]}) "
                        f"{other} in the same cycle",
                        cycle=dsp.t, queue=q.name, where=where, instr=str(text), rule="bank")
                mem_use[key] = (kind, q.name, where, text)
    return CheckReport(tl, len(tl.dispatches), n_w, n_r)
