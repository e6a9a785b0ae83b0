"""The ICU's dispatch timeline and each instruction's effects, computed from the program alone.

Both the static checker (:mod:`lpu.golden.check`) and the chip model
(:mod:`lpu.golden.chip`) start from here, so the dispatch rules of docs/timing.md
section 1 are written once:

* a slice instruction occupies one cycle; ``nop n`` occupies ``n``;
* ``repeat n, d, step`` re-issues the previous slice instruction at ``t0 + i*d``
  (``i = 1..n``) with its address or row stepped by ``i*step``; the queue goes on at
  ``t0 + n*d + 1``;
* ``sync`` parks a queue until a ``notify`` dispatched at or after that cycle; it
  resumes the cycle after;
* all queues start at cycle 0.

Times here are *skewed* cycles (superlane 0's cycle); superlane ``k`` sees every
effect ``k`` cycles later.
"""

from __future__ import annotations

import functools
import heapq
from dataclasses import dataclass, field

from lpu.config import ChipConfig
from lpu.errors import LpuError
from lpu.isa import OPS, Instr, IsaError, Opcode, decode, encode
from lpu.program import Program

__all__ = ["Dispatch", "Effect", "ScheduleError", "timeline", "effects", "Timeline"]



class ScheduleError(LpuError):
    """An illegal program: names the cycle, the queue and the instruction."""

    def __init__(self, message: str, *, cycle: int | None = None, queue: str | None = None,
                 where: str | None = None, instr: str | None = None, rule: str = ""):
        self.cycle, self.queue, self.where, self.instr, self.rule = cycle, queue, where, instr, rule
        parts = []
        if where:
            parts.append(where)
        if cycle is not None:
            parts.append(f"cycle {cycle}")
        if queue:
            parts.append(f"queue {queue}")
        if instr:
            parts.append(f"'{instr}'")
        head = ": ".join([", ".join(parts)]) if parts else ""
        super().__init__(f"{head}: {message}" if head else message)


@dataclass(frozen=True)
class Dispatch:
    """One slice instruction handed to superlane 0 of its slice at (skewed) cycle `t`."""

    t: int
    queue: int  # index into cfg.queues
    instr: Instr
    index: int  # index of the instruction word in its queue (a repeat's copies: the repeat's)


@dataclass
class Timeline:
    dispatches: list[Dispatch]  # sorted by (t, queue)
    per_queue: dict[str, int]  # slice instructions dispatched per queue
    end: int  # first cycle after the last dispatch (skewed)
    # the cycle from which each queue is finished (docs/timing.md, "The end of a run"):
    # the cycle after it reached its last word (a final repeat: after its last copy);
    # 0 for an empty queue
    finished: dict[str, int] = field(default_factory=dict)

    @property
    def all_finished(self) -> int:
        """The first cycle in which every queue is finished."""
        return max(self.finished.values(), default=0)


def _step_operand(instr: Instr) -> str | None:
    info = OPS[instr.op]
    if info.steps is None:
        return None
    for o in info.operands:
        if o.field == info.steps:
            return o.name
    return None


def _word_place(program: Program, name: str, queue: str, index: int) -> str:
    """``file:line`` of an assembled word, else the program's name, queue and index."""
    if program.source.get(queue):
        return program.where(queue, index)
    return f"{name}: {queue} word {index}"


def timeline(cfg: ChipConfig, program: Program, *, name: str = "program") -> Timeline:
    """Expand every queue of `program` into its dispatches, in cycle order."""
    queues = cfg.queues
    qindex = {q.name: q.index for q in queues}
    decoded: dict[int, list[Instr]] = {}
    for qname, words in program.queues.items():
        if qname not in qindex:
            raise ScheduleError(f"queue {qname!r} does not exist on config {cfg.name!r}")
        qi = qindex[qname]
        kind = queues[qi].kind
        out = []
        for i, w in enumerate(words):
            where = _word_place(program, name, qname, i)
            try:
                ins = decode(w)
            except IsaError as e:
                raise ScheduleError(str(e), queue=qname, where=where) from None
            if encode(ins) != w:  # as strict as the disassembler
                raise ScheduleError(
                    f"word 0x{w:08x} ({ins.text()}) has bits set outside its fields "
                    f"(0x{w ^ encode(ins):08x})", queue=qname, where=where, rule="encoding")
            unit = ins.info.unit
            if unit != "icu" and unit != kind:
                raise ScheduleError(
                    f"'{ins.text()}' is a {unit.upper()} instruction; queue {qname} feeds "
                    f"a {kind.upper()} slice", queue=qname, where=where, instr=ins.text(),
                    rule="unit")
            if unit == "c2c" and cfg.link_queue(ins.args["link"]) != qname:
                raise ScheduleError(
                    f"link {ins.args['link']} leaves the chip at the "
                    f"{'east' if ins.args['link'] % 2 else 'west'} edge: queue "
                    f"{cfg.link_queue(ins.args['link'])} serves it, not {qname} (even links "
                    "west, odd links east)", queue=qname, where=where, instr=ins.text(),
                    rule="range")
            out.append(ins)
        decoded[qi] = out

    dispatches: list[Dispatch] = []
    per_queue = {q.name: 0 for q in queues}
    pc = {qi: 0 for qi in decoded}
    last: dict[int, tuple[Instr, int, int] | None] = {qi: None for qi in decoded}
    heap = [(0, qi) for qi in sorted(decoded) if decoded[qi]]
    heapq.heapify(heap)
    parked: dict[int, int] = {}  # queue -> cycle it reached sync
    finished = {q.name: 0 for q in queues}
    end = 0
    while heap:
        t = heap[0][0]
        now = []
        while heap and heap[0][0] == t:
            now.append(heapq.heappop(heap)[1])
        notified = False
        for qi in sorted(now):
            prog = decoded[qi]
            i = pc[qi]
            ins = prog[i]
            qname = queues[qi].name
            pc[qi] = i + 1
            op = ins.op
            nxt: int | None
            if op == Opcode.NOP:
                if ins.n < 1:
                    raise ScheduleError("nop needs n >= 1", cycle=t, queue=qname,
                                        where=program.where(qname, i), instr=ins.text(),
                                        rule="operand")
                nxt = t + ins.n
                last[qi] = None
            elif op == Opcode.REPEAT:
                prev = last[qi]
                if prev is None:
                    raise ScheduleError(
                        "repeat must directly follow a slice instruction", cycle=t,
                        queue=qname, where=program.where(qname, i), instr=ins.text(),
                        rule="repeat")
                if ins.n < 1 or ins.d < 1:
                    raise ScheduleError("repeat needs n >= 1 and d >= 1", cycle=t, queue=qname,
                                        where=program.where(qname, i), instr=ins.text(),
                                        rule="operand")
                pins, t0, pidx = prev
                field = _step_operand(pins)
                for k in range(1, ins.n + 1):
                    copy = pins
                    if field is not None:
                        copy = pins.with_args(**{field: pins.args[field] + k * ins.step})
                    dispatches.append(Dispatch(t0 + k * ins.d, qi, copy, i))
                per_queue[qname] += ins.n
                nxt = t0 + ins.n * ins.d + 1
                end = max(end, t0 + ins.n * ins.d + 1)
                last[qi] = None
            elif op == Opcode.SYNC:
                parked[qi] = t
                nxt = None
                last[qi] = None
            elif op == Opcode.NOTIFY:
                notified = True
                nxt = t + 1
                last[qi] = None
            else:
                dispatches.append(Dispatch(t, qi, ins, i))
                per_queue[qname] += 1
                last[qi] = (ins, t, i)
                nxt = t + 1
                end = max(end, t + 1)
            if pc[qi] == len(prog):  # the last word: finished after it (a repeat: its copies)
                finished[qname] = nxt if op == Opcode.REPEAT else t + 1
            if nxt is not None and pc[qi] < len(prog):
                heapq.heappush(heap, (nxt, qi))
        if notified:
            for qi in list(parked):
                if pc[qi] < len(decoded[qi]):
                    heapq.heappush(heap, (t + 1, qi))
                del parked[qi]
    for qi, t in parked.items():
        qname = queues[qi].name
        if pc[qi] < len(decoded[qi]):
            raise ScheduleError(
                "sync is never released: no notify is dispatched at or after this cycle",
                cycle=t, queue=qname, where=program.where(qname, pc[qi] - 1), instr="sync",
                rule="sync")
    dispatches.sort(key=lambda d: (d.t, d.queue))
    return Timeline(dispatches, per_queue, end, finished)


# -- effects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """Something an instruction does to architectural state, `dt` cycles after dispatch.

    kind: ``rd`` stream read / ``wr`` stream write (dir, stream, width); ``hrd`` a
    VXM-held read (ISA 1.1: what the VXM last wrote to those streams before this
    cycle); ``mrd`` / ``mwr`` SRAM read / write (bank, addr; addr None if
    data-dependent); ``inst`` an MXM install (``iw``; ``lwi``'s, ISA 1.2, two cycles on);
    ``tx`` / ``rx`` (ISA 1.3) `width` vectors sent over / taken from C2C link `link`
    (whether a send and a recv match is the system's check, :mod:`lpu.golden.system`).
    """

    dt: int
    kind: str
    dir: int = 0
    stream: int = 0
    width: int = 1
    bank: int = 0
    addr: int | None = None
    link: int = 0


_EFFECTS: dict = {}


@functools.lru_cache(maxsize=64)
def _geometry(cfg: ChipConfig) -> str:
    """The config's hash, computed once per config (it serialises the whole geometry)."""
    return cfg.hash


def effects(cfg: ChipConfig, instr: Instr) -> list[Effect]:
    """The stream and SRAM effects of one instruction (data-independent part).

    Raises ScheduleError (without place; the caller adds it) for operands out of the
    config's range. Results are memoized per config and instruction.
    """
    key = (_geometry(cfg), instr.op, tuple(instr.args.items()))
    hit = _EFFECTS.get(key)
    if hit is not None:
        return hit
    out = _effects(cfg, instr)
    if len(_EFFECTS) > 1 << 18:
        _EFFECTS.clear()
    _EFFECTS[key] = out
    return out


def _effects(cfg: ChipConfig, instr: Instr) -> list[Effect]:
    info = OPS[instr.op]
    S = cfg.superlanes
    d = info.d(S)
    out: list[Effect] = []
    for o in info.operands:
        v = instr.args[o.name]
        if o.kind in ("sr", "sw", "sw?"):
            if v is None:
                continue
            s, dr = v
            w = o.width
            if o.name in ("src", "dst") and info.unit == "sxm":
                w = instr.args.get("count", 1)
            if info.opcode in (Opcode.READ, Opcode.WRITE):
                w = instr.args["count"]
            if info.opcode in (Opcode.LW, Opcode.LWI) and o.name == "src":
                w = instr.args["count"]
            if info.unit == "c2c":
                w = instr.args["count"]
            if o.name == "map":
                w = 2
            if o.width == 0:
                w = cfg.vl
            if s + w > cfg.streams:
                raise ScheduleError(
                    f"operand {o.name}: streams {s}..{s + w - 1} run past the last stream "
                    f"{cfg.streams - 1}", rule="range")
            kind = "rd" if o.kind == "sr" else "wr"
            if o.held and instr.args.get(o.held):
                kind = "hrd"
            out.append(Effect(0 if o.kind == "sr" else d, kind, dr, s, w))
        elif o.kind == "addr":
            if not (0 <= v < cfg.mem_words):
                raise ScheduleError(
                    f"address {v} is outside the slice (0..{cfg.mem_words - 1})", rule="range")
    op = info.opcode
    if op in (Opcode.READ, Opcode.WRITE):
        last = instr.addr + instr.count - 1
        if last >= cfg.mem_words:
            raise ScheduleError(
                f"address {last} is outside the slice (0..{cfg.mem_words - 1})", rule="range")
        bank = instr.addr // cfg.bank_words
        if last // cfg.bank_words != bank:
            raise ScheduleError(
                f"words {instr.addr}..{last} span both banks (bank boundary at "
                f"{cfg.bank_words})", rule="range")
        if op == Opcode.READ:
            out.append(Effect(0, "mrd", bank=bank, addr=instr.addr))
        else:
            out.append(Effect(1, "mwr", bank=bank, addr=instr.addr))
    elif op == Opcode.GATHER:
        out.append(Effect(1, "mrd", bank=instr.base // cfg.bank_words, addr=None))
    elif op in (Opcode.LW, Opcode.LWI):
        if instr.row < 0 or instr.row + instr.count > cfg.vl:
            raise ScheduleError(
                f"weight rows {instr.row}..{instr.row + instr.count - 1} are outside "
                f"0..{cfg.vl - 1}", rule="range")
    elif op in (Opcode.SEND, Opcode.RECV):
        if not 0 <= instr.link < cfg.c2c_links:
            raise ScheduleError(
                f"link {instr.link} does not exist (config {cfg.name} has "
                + (f"links 0..{cfg.c2c_links - 1})" if cfg.c2c_links else "no C2C links)"),
                rule="range")
        if instr.count > cfg.c2c_width:
            raise ScheduleError(
                f"{instr.count} vectors in one cycle exceed the link width {cfg.c2c_width} "
                f"of config {cfg.name}", rule="range")
        out.append(Effect(0, "tx" if op == Opcode.SEND else "rx", width=instr.count,
                          link=instr.link))
    if op == Opcode.IW:
        out.append(Effect(0, "inst"))
    elif op == Opcode.LWI:
        out.append(Effect(2, "inst"))
    elif op in (Opcode.MM, Opcode.MMACC):
        if instr.slot >= cfg.mxm_acc_slots:
            raise ScheduleError(
                f"accumulator slot {instr.slot} does not exist (0..{cfg.mxm_acc_slots - 1})",
                rule="range")
    elif op in (Opcode.SHIFT, Opcode.ROT):
        if abs(instr.n) >= cfg.vl:
            raise ScheduleError(f"shift {instr.n} is not below VL {cfg.vl}", rule="range")
    elif op == Opcode.BCAST:
        if instr.lane >= cfg.vl:
            raise ScheduleError(f"lane {instr.lane} is not below VL {cfg.vl}", rule="range")
    return out


def max_delay(cfg: ChipConfig) -> int:
    return max(info.d(cfg.superlanes) for info in OPS.values()) + 1
