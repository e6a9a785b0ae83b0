"""A resource-aware list scheduler: places operations at exact cycles, routes values
on stream registers, and never produces an illegal program.

The compiler thinks in *flows*: a value written onto a stream group at one position in
one cycle, moving one position per cycle (docs/timing.md section 3) to the readers
downstream. The scheduler keeps, per cycle,

* which dispatch slot of which queue is taken;
* which stream registers (direction, stream, position) carry a value somebody will
  read (a *claim*: from the writer's position up to the register before the farthest
  reader), so that no other write may land there: a write claims its register too,
  so two writers, or a writer clobbering a value in flight, are impossible;
* which SRAM bank of which MEM slice is read or written.

Each ``try_*`` method either claims everything an operation needs and returns, or
claims nothing and returns ``None``; kernels search over cycles and stream groups.
Times are dispatch cycles of superlane 0 (the skewed time of the golden model; the
whole machine runs the same schedule shifted by the superlane index, so it suffices).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.isa import BY_MNEMONIC, E, W, make
from lpu.program import Program, ProgramBuilder

__all__ = ["Flow", "Scheduler", "SchedError"]


class SchedError(LpuError):
    """The compiler could not place something (out of memory, no free resources)."""


@dataclass
class Flow:
    """A value on streams stream..stream+width-1 of direction `dir`, written at
    position `pos` in cycle `t` (readable downstream, one position further per cycle)."""

    dir: int
    stream: int
    width: int
    pos: int
    t: int
    claimed_to: int = field(default=-1)  # farthest position whose arriving value is claimed

    def arrives(self, pos: int) -> int:
        """Cycle in which a slice at `pos` reads this value."""
        if (self.dir == E and pos <= self.pos) or (self.dir == W and pos >= self.pos):
            raise SchedError(f"position {pos} is not downstream of {self.pos} "
                             f"({'east' if self.dir == E else 'west'})")
        return self.t + abs(pos - self.pos)

    @property
    def ref(self):
        return (self.stream, self.dir)


class Scheduler:
    """Claims resources cycle by cycle and emits the program through a ProgramBuilder."""

    def __init__(self, cfg: ChipConfig | str):
        self.cfg = load_config(cfg)
        self.b = ProgramBuilder(self.cfg)
        self.P = len(self.cfg.positions)
        self.posi = {p.name: p.index for p in self.cfg.positions}
        self.qpos = {q.name: q.position for q in self.cfg.queues}
        self.claims: set[tuple[int, int, int, int]] = set()  # (dir, stream, pos, cycle)
        self.qbusy: set[tuple[str, int]] = set()  # (queue, cycle) dispatch slots taken
        self.qtimes: dict[str, list[int]] = {q.name: [] for q in self.cfg.queues}  # sorted
        self.bank: dict[tuple[str, int, int], str] = {}  # (queue, bank, cycle) -> "r"/"w"
        self.horizon = 0  # last cycle anything was scheduled at (dispatch + delay)
        self._journal: list | None = None
        self._marks: list[tuple[int, int]] = []
        # SRAM data dependencies: (queue, addr) -> first cycle a read may dispatch
        # (written at SRAM cycle c: readable from c + 1), and the last cycle it is read
        self.ready: dict[tuple[str, int], int] = {}
        self.lastread: dict[tuple[str, int], int] = {}
        # MXM planes hold state (shadow and active weights, accumulators): a kernel
        # uses a plane alone from its first lw to its last mm; next use from here on
        self.unit_free_at: dict[str, int] = {}
        self._instrs: dict = {}  # (mnemonic, operands) -> Instr

    # -- transactions -------------------------------------------------------------------
    def begin(self):
        """Start a transaction (they nest): claims after this can be undone by
        :meth:`rollback`, or kept by :meth:`commit`."""
        if self._journal is None:
            self._journal = []
        self._marks.append((len(self._journal), self.horizon))

    def commit(self):
        self._marks.pop()
        if not self._marks:
            self._journal = None

    def rollback(self):
        mark, horizon = self._marks.pop()
        while len(self._journal) > mark:
            kind, key = self._journal.pop()
            if kind == "claims":
                self.claims.difference_update(key)
            elif kind == "q":
                self.release_slot(*key)
                self.b._q[key[0]].pop(key[1], None)
            elif kind == "bank":
                self.bank.pop(key, None)
            elif kind == "flow":
                key[0].claimed_to = key[1]
            elif kind == "ready":
                self.ready[key[0]] = key[1]
            elif kind == "lastread":
                self.lastread[key[0]] = key[1]
            elif kind == "undo":  # a caller's own bookkeeping
                key()
        self.horizon = horizon
        if not self._marks:
            self._journal = None

    def _claim(self, keys):
        self.claims.update(keys)
        if self._journal is not None:
            self._journal.append(("claims", keys))

    def _set_bank(self, key, kind):
        self.bank[key] = kind
        if self._journal is not None:
            self._journal.append(("bank", key))

    def _set_dict(self, name, key, value):
        d = self.ready if name == "ready" else self.lastread
        if self._journal is not None:
            self._journal.append((name, (key, d.get(key, -1))))
        d[key] = value

    def mark_ready(self, queue: str, addr: int, count: int = 1, t: int = 0):
        """Declare words written by the host (readable from cycle t)."""
        for a in range(addr, addr + count):
            self.ready[(queue, a)] = t

    def _set_claimed(self, flow, pos):
        if self._journal is not None:
            self._journal.append(("flow", (flow, flow.claimed_to)))
        flow.claimed_to = pos

    # -- low-level claims ---------------------------------------------------------------
    def _path(self, flow: Flow, upto: int):
        """Registers (dir, s, q, cycle) a flow occupies from its writer to just before
        position `upto` (the farthest reader)."""
        d, p0, t0 = flow.dir, flow.pos, flow.t
        step = 1 if d == E else -1
        streams = range(flow.stream, flow.stream + flow.width)
        return [(d, s, p0 + i * step, t0 + i) for i in range((upto - p0) * step)
                for s in streams]

    def _free(self, keys) -> bool:
        claims = self.claims
        for k in keys:
            if k in claims:
                return False
        return True

    def path_free(self, dir: int, s0: int, width: int, pos: int, t: int, upto: int) -> bool:
        """Whether the registers a flow written at (pos, t) would occupy up to `upto`
        are all unclaimed (the fast form of _free(_path(...)))."""
        claims = self.claims
        if not claims:
            return True
        step = 1 if dir == E else -1
        streams = range(s0, s0 + width)
        for i in range((upto - pos) * step):
            q, c = pos + i * step, t + i
            for s in streams:
                if (dir, s, q, c) in claims:
                    return False
        return True

    def extend(self, flow: Flow, reader_pos: int, *, dry: bool = False) -> bool:
        """Claim the flow's registers up to a new reader at `reader_pos`."""
        if flow.claimed_to >= 0:
            already = flow.claimed_to
            farther = (reader_pos > already) if flow.dir == E else (reader_pos < already)
            if not farther:
                return True
            start = Flow(flow.dir, flow.stream, flow.width, already, flow.arrives(already) - 0)
            # registers from `already` (exclusive of those claimed) to reader
            keys = self._path(start, reader_pos)
        else:
            keys = self._path(flow, reader_pos)
        if not self._free(keys):
            return False
        if not dry:
            self._claim(keys)
            self._set_claimed(flow, reader_pos)
        return True

    def queue_free(self, queue: str, t: int) -> bool:
        return t >= 0 and (queue, t) not in self.qbusy

    def take_slot(self, queue: str, t: int) -> None:
        """Mark the dispatch slot taken (journaled inside a transaction)."""
        if (queue, t) not in self.qbusy:
            self.qbusy.add((queue, t))
            bisect.insort(self.qtimes[queue], t)
        if self._journal is not None:
            self._journal.append(("q", (queue, t)))

    def release_slot(self, queue: str, t: int) -> None:
        if (queue, t) in self.qbusy:
            self.qbusy.discard((queue, t))
            lst = self.qtimes[queue]
            del lst[bisect.bisect_left(lst, t)]

    def slots_taken(self, queue: str, lo: int, hi: int) -> int:
        """How many dispatch slots of `queue` in cycles lo..hi are taken."""
        lst = self.qtimes[queue]
        return bisect.bisect_right(lst, hi) - bisect.bisect_left(lst, lo)

    def bank_ok(self, queue: str, bank: int, t: int, kind: str) -> bool:
        other = self.bank.get((queue, bank, t))
        return other is None or other == kind

    # -- operations ---------------------------------------------------------------------
    def _emit(self, queue: str, t: int, mnemonic: str, *operands, extra_delay: int = 0):
        key = (mnemonic, operands)
        try:
            ins = self._instrs.get(key)
        except TypeError:  # an operand that is not hashable (a list): no sharing
            key, ins = None, None
        if ins is None:  # instructions are values: one object per distinct instruction
            ins = make(mnemonic, *operands)
            if key is not None:
                self._instrs[key] = ins
        self.b.at(queue, t, ins)
        self.take_slot(queue, t)
        d = BY_MNEMONIC[mnemonic].d(self.cfg.superlanes)
        self.horizon = max(self.horizon, t + d + extra_delay + 1)

    def try_read(self, queue: str, addr: int, count: int, t: int, dir: int, stream: int,
                 readers: list[int]) -> Flow | None:
        """MEM read at dispatch cycle t onto (dir, stream..), claimed up to `readers`."""
        cfg = self.cfg
        if not self.queue_free(queue, t):
            return None
        bank = addr // cfg.bank_words
        if not self.bank_ok(queue, bank, t, "r"):
            return None
        if stream + count > cfg.streams:
            return None
        for a in range(addr, addr + count):
            if self.ready.get((queue, a), 0) > t:
                return None
        f = Flow(dir, stream, count, self.qpos[queue], t + 1)
        far = max(readers) if dir == E else min(readers)
        keys = self._path(f, far)
        if not self._free(keys):
            return None
        self._claim(keys)
        self._set_claimed(f, far)
        self._set_bank((queue, bank, t), "r")
        for a in range(addr, addr + count):
            self._set_dict("lastread", (queue, a), max(t, self.lastread.get((queue, a), -1)))
        self._emit(queue, t, "read", addr, (stream, dir), count)
        return f

    def try_write(self, queue: str, addr: int, flow: Flow) -> bool:
        """MEM write of a flow at the cycle it arrives at the slice."""
        p = self.qpos[queue]
        t = flow.arrives(p)
        bank = addr // self.cfg.bank_words
        if not self.queue_free(queue, t) or not self.bank_ok(queue, bank, t + 1, "w"):
            return False
        for a in range(addr, addr + flow.width):
            if self.lastread.get((queue, a), -1) >= t + 1:
                return False  # an earlier-scheduled read still needs the old value
            if self.ready.get((queue, a), 0) > t + 1:
                return False  # an earlier-scheduled write lands later: keep write order
        if not self.extend(flow, p):
            return False
        self._set_bank((queue, bank, t + 1), "w")
        for a in range(addr, addr + flow.width):
            self._set_dict("ready", (queue, a), max(t + 2, self.ready.get((queue, a), 0)))
        self._emit(queue, t, "write", addr, flow.ref, flow.width)
        return True

    def free_group(self, dir: int, width: int, pos: int, t: int, readers: list[int],
                   avoid=()) -> int | None:
        """A stream group free for a value written at (pos, t) up to the readers."""
        far = max(readers) if dir == E else min(readers)
        for s in range(0, self.cfg.streams - width + 1):
            if s in avoid:
                continue
            if self.path_free(dir, s, width, pos, t, far):
                return s
        return None

    def try_unit(self, queue: str, t: int, mnemonic: str, operands: dict, dst_dir: int | None,
                 readers: list[int], dst_width: int, delay: int | None = None,
                 fixed: dict | None = None) -> Flow | None:
        """A VXM/SXM/MXM instruction at cycle t whose stream operands are flows arriving
        exactly at t; its result goes to a free stream group toward `readers`.

        operands: operand name -> Flow (checked to arrive at t) or immediate value.
        fixed: operand name -> immediate values appended in operand order.
        Returns ``(placed, result flow or None)``.
        """
        if not self.queue_free(queue, t):
            return False, None
        p = self.qpos[queue]
        info = BY_MNEMONIC[mnemonic]
        for v in operands.values():
            if isinstance(v, Flow):
                try:
                    if v.arrives(p) != t:
                        return False, None
                except SchedError:
                    return False, None
                if not self.extend(v, p, dry=True):
                    return False, None
        d = info.d(self.cfg.superlanes) if delay is None else delay
        dst = None
        if dst_dir is not None:
            s = self.free_group(dst_dir, dst_width, p, t + d, readers)
            if s is None:
                return False, None
            dst = Flow(dst_dir, s, dst_width, p, t + d)
            far = max(readers) if dst_dir == E else min(readers)
            self._claim(self._path(dst, far))
            self._set_claimed(dst, far)
        for v in operands.values():
            if isinstance(v, Flow):
                self.extend(v, p)
        args = []
        for o in info.operands:
            if o.kind in ("sw", "sw?"):
                args.append(dst.ref if dst is not None else None)
            elif o.name in operands:
                v = operands[o.name]
                args.append(v.ref if isinstance(v, Flow) else v)
            elif fixed and o.name in fixed:
                args.append(fixed[o.name])
            elif o.default is not None:
                args.append(o.default)
            else:
                raise SchedError(f"{mnemonic}: operand {o.name} not given")
        self._emit(queue, t, mnemonic, *args)
        return True, dst

    def program(self) -> Program:
        return self.b.program()
