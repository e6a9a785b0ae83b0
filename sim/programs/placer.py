"""Placing the directed programs: what a program must leave in SRAM, and the bookkeeping
that places instructions without collisions.

:class:`Expect` and :class:`Directed` are a program with its initial SRAM and the
words it must leave. :class:`Txn` groups instructions, stream-register claims and
SRAM words that go in together or not at all; :class:`Plan` holds the whole
program's claims (queues, stream registers per cycle and position, SRAM banks per
cycle) and refuses a collision before the static checker
(:func:`lpu.golden.check.check`) checks the finished program; :class:`Hand` is a
transaction used as a context manager for hand-placed instructions.

Held reads (ISA 1.1, docs/isa.md "Held reads"): the plan keeps every write of the
VXM per stream with its cycle and, where the caller gives it, its value. A VXM
instruction with ``la`` / ``lb`` placed at ``t`` reads, per stream, the VXM's last
write before ``t`` (:meth:`Txn.held` says which, and its value); placing it refuses a
held read of a stream the VXM has not written before ``t`` and *holds* each stream
from the cycle after that write to ``t - 1``: a VXM write into a held interval (it
would replace the value before it is read) is refused. :meth:`Txn.hold` holds
streams from a cycle on, open-ended, for a read not placed yet; :meth:`Plan.release`
ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.errors import LpuError
from lpu.golden.check import check
from lpu.isa import OPS, E, Instr, decode, make
from lpu.program import Program, ProgramBuilder
from lpu.vectors import from_planes

from .reference import bits_f32

__all__ = ["Expect", "Directed", "DirectedError", "Txn", "Plan", "Hand", "opcodes_of",
           "all_mnemonics"]


class DirectedError(LpuError):
    """The directed programs cannot be built for this config (or a placement collided)."""


# -- what a program must leave in SRAM --------------------------------------------------------


@dataclass
class Expect:
    """Words a program must leave at ``mem[addr .. addr + n - 1]``.

    ``words`` is uint8 [n, VL]. ``kind`` says how to read them in a message: ``u8`` /
    ``i8`` (one word per vector), ``i32`` / ``f32`` (four words: byte planes of one
    vector of 32-bit lanes). ``inputs`` are the operands, lane by lane, for the message
    (name -> (kind, values [VL])).
    """

    mem: str
    addr: int
    words: np.ndarray
    what: str
    kind: str = "u8"
    inputs: dict = field(default_factory=dict)


@dataclass
class Directed:
    """One directed program: run ``program`` on SRAM ``mem_init``, then :meth:`check`."""

    name: str
    doc: str
    program: Program
    mem_init: dict[str, np.ndarray]  # MEM slice -> uint8 [mem_words, VL], from address 0
    expected: list[Expect]
    cycles: int = 0  # last dispatch cycle + 1 (skewed)

    @property
    def opcodes(self) -> set[str]:
        return opcodes_of(self.program)

    def check(self, chip) -> None:
        """Compare the SRAM after the run with the expected words.

        ``chip``: anything with ``read_mem(name, addr, n)`` (the golden
        :class:`~lpu.golden.chip.Chip`), or a dict MEM slice -> uint8 [mem_words, VL].

        Raises
        ------
        AssertionError
            Naming the program, the instruction, the SRAM word and lane, the expected
            and actual values and the operands of that lane.
        """
        if isinstance(chip, dict):
            def read(name, addr, n):
                return np.asarray(chip[name])[addr:addr + n]
        else:
            read = chip.read_mem
        for ex in self.expected:
            got = np.asarray(read(ex.mem, ex.addr, ex.words.shape[0]), dtype=np.uint8)
            if np.array_equal(got, ex.words):
                continue
            raise AssertionError(f"directed program {self.name!r}: " + _mismatch(ex, got))


def _mismatch(ex: Expect, got: np.ndarray) -> str:
    n = ex.words.shape[0]
    place = f"{ex.mem}[{ex.addr}..{ex.addr + n - 1}]" if n > 1 else f"{ex.mem}[{ex.addr}]"
    head = f"{ex.what} -> {place}"
    if ex.kind in ("i32", "f32"):
        want, have = from_planes(ex.words), from_planes(got)
        lane = int(np.argmax(want != have))
        msg = (f"{head}, lane {lane}: expected {_show(ex.kind, want[lane])}, "
               f"got {_show(ex.kind, have[lane])}")
    else:
        bad = np.argwhere(ex.words != got)[0]
        w, lane = int(bad[0]), int(bad[1])
        msg = (f"{head}, word {ex.addr + w} lane {lane}: expected "
               f"{_show(ex.kind, ex.words[w, lane])}, got {_show(ex.kind, got[w, lane])}")
    if ex.inputs:
        msg += "; operands " + ", ".join(f"{k}={_show(kd, v[lane])}"
                                         for k, (kd, v) in ex.inputs.items())
    return msg


def _show(kind: str, v) -> str:
    v = int(v)
    if kind == "f32":
        return f"0x{v:08x} ({bits_f32(v)!r})"
    if kind == "i32":
        return f"{v - (1 << 32) if v >= 1 << 31 else v} (0x{v:08x})"
    if kind == "i8":
        return f"{v - 256 if v >= 128 else v} (0x{v:02x})"
    return f"0x{v:02x}"


# -- which opcodes a program contains ---------------------------------------------------------


def opcodes_of(program: Program) -> set[str]:
    """Mnemonics of every instruction word in `program` (decoded from the words)."""
    return {decode(w).info.mnemonic for words in program.queues.values() for w in words}


def all_mnemonics() -> set[str]:
    """Every mnemonic one chip runs on its own: those of :data:`lpu.isa.OPS` but the C2C
    ones (``send``, ``recv``: they need a system of chips, :mod:`lpu.sim.programs.c2c`)."""
    return {info.mnemonic for info in OPS.values() if info.unit != "c2c"}



# -- placing instructions: queues, stream registers, SRAM -------------------------------------


class Txn:
    """Instructions, stream-register claims and SRAM words that go in together or not at
    all (the scheduler tries a placement and drops it if anything collides)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.ins: list[tuple[str, int, Instr]] = []
        self.busy: dict[tuple, str] = {}  # (queue, cycle), (queue, 'bank', bank, cycle)
        self.claims: dict[tuple, tuple] = {}
        self.data: dict[tuple, int] = {}
        self.alloc: dict[tuple[str, int], int] = {}
        self.expects: list[Expect] = []
        self.problem: str | None = None
        self.vxm_w: dict[tuple, dict] = {}  # (dir, s) -> {cycle: (token, uint8 [VL] | None)}
        self.holds: dict[tuple, list] = {}  # (dir, s) -> [(lo, hi | None, owner)]

    # instructions
    def at(self, queue: str, cycle: int, mnemonic, *operands, result=None, **kw) -> Instr:
        """Place an instruction. For a VXM instruction, `result` (uint8 [width, VL]) is the
        value it writes, for later held reads; its held reads are checked and held."""
        ins = mnemonic if isinstance(mnemonic, Instr) else make(mnemonic, *operands, **kw)
        self._busy(queue, cycle, ins.text())
        self._bank(queue, cycle, ins)
        if ins.info.unit == "vxm":
            self._vxm(queue, cycle, ins, result)
        self.ins.append((queue, cycle, ins))
        return ins

    # the VXM's writes and held reads (ISA 1.1)
    def _vxm(self, queue: str, cycle: int, ins: Instr, result) -> None:
        info = ins.info
        for o in info.reads:
            if o.held and ins.args.get(o.held):
                writes = self.held(ins.args[o.name], o.width, cycle, what=ins.text())
                for (s, dr), (tw, _, _) in zip(self._streams(ins.args[o.name], o.width), writes,
                                               strict=True):
                    if tw is not None and tw + 1 < cycle:
                        self.holds.setdefault((dr, s), []).append(
                            (tw + 1, cycle - 1, (queue, cycle)))
        o = info.writes[0]
        tw = cycle + info.d(self.plan.cfg.superlanes)
        s0, dr = ins.args[o.name]
        token = (self.plan.pos["vxm"], dr, tw, s0)
        for j, (s, _) in enumerate(self._streams(ins.args[o.name], o.width)):
            key = (dr, s)
            if tw in self.vxm_w.get(key, {}) or tw in self.plan.vxm_w.get(key, {}):
                self.problem = self.problem or (f"the VXM writes {'ew'[dr]}{s} twice in "
                                                f"cycle {tw} ('{ins.text()}')")
            for lo, hi, owner in self.holds.get(key, []) + self.plan.holds.get(key, []):
                if lo <= tw and (hi is None or tw <= hi):
                    self.problem = self.problem or (
                        f"'{ins.text()}' ({queue}, cycle {cycle}) would overwrite "
                        f"{'ew'[dr]}{s} in cycle {tw}, held for a read by {owner}")
            creg = (self.plan.pos["vxm"], dr, s, tw)
            old = self.claims.get(creg, self.plan.claims.get(creg))
            if old is not None and old != token:
                self.problem = self.problem or (f"stream {'ew'[dr]}{s} at vxm in cycle {tw} "
                                                "is taken")
            self.claims[creg] = token
            val = None if result is None else np.asarray(result, np.uint8)[j].copy()
            self.vxm_w.setdefault(key, {})[tw] = ((queue, cycle), val)

    @staticmethod
    def _streams(ref, width):
        s0, dr = ref
        return [(s, dr) for s in range(s0, s0 + width)]

    def held(self, ref: tuple[int, int], width: int, t: int, what: str = "a held read"):
        """What a VXM held read of streams `ref` (`width` of them) in cycle `t` takes: per
        stream, (cycle of the write, token (queue, cycle) of the instruction, value
        uint8 [VL] or None), the VXM's last write before `t`. A stream the VXM has not
        written before `t` is a problem (and gives (None, None, None))."""
        out = []
        for s, dr in self._streams(ref, width):
            ws = {**self.plan.vxm_w.get((dr, s), {}), **self.vxm_w.get((dr, s), {})}
            before = [c for c in ws if c < t]
            if not before:
                self.problem = self.problem or (
                    f"{what} in cycle {t}: the VXM has not written {'ew'[dr]}{s} before")
                out.append((None, None, None))
                continue
            tw = max(before)
            out.append((tw, *ws[tw]))
        return out

    def hold(self, ref: tuple[int, int], width: int, lo: int, owner) -> None:
        """Keep the VXM from writing streams `ref` from cycle `lo` on, until
        :meth:`Plan.release` of `owner` (a held read not placed yet)."""
        for s, dr in self._streams(ref, width):
            self.holds.setdefault((dr, s), []).append((lo, None, owner))

    def repeat(self, queue: str, cycle: int, n: int, d: int, step: int = 1) -> None:
        """`repeat n, d, step` after the instruction placed at `cycle`: copies at
        cycle + d .. cycle + n*d, the queue busy until then."""
        prev = next(ins for q, c, ins in self.ins if (q, c) == (queue, cycle))
        field = {"read": "addr", "write": "addr", "gather": "base", "lw": "row", "lwi": "row"}.get(
            prev.info.mnemonic)
        for k in range(1, n + 1):
            if field is not None:
                self._bank(queue, cycle + k * d,
                           prev.with_args(**{field: prev.args[field] + k * step}))
        for c in range(cycle + 1, cycle + n * d + 1):
            self._busy(queue, c, "repeat")
        self.ins.append((queue, cycle + 1, make("repeat", n, d, step)))

    def _bank(self, queue: str, cycle: int, ins: Instr) -> None:
        """One access (read, write or a gather's read) per SRAM bank and cycle."""
        m = ins.info.mnemonic
        if m not in ("read", "write", "gather"):
            return
        addr = ins.args["base" if m == "gather" else "addr"]
        key = (queue, "bank", addr // self.plan.cfg.bank_words, cycle + (m != "read"))
        if key in self.busy or key in self.plan.busy:
            self.problem = self.problem or (f"{queue}: bank {key[2]} is used in cycle "
                                            f"{key[3]} ('{ins.text()}')")
        self.busy[key] = ins.text()

    def _busy(self, queue, cycle, text):
        key = (queue, cycle)
        if cycle < 0:
            self.problem = self.problem or f"{queue}: '{text}' at negative cycle {cycle}"
        if key in self.busy or key in self.plan.busy:
            self.problem = self.problem or f"{queue} is busy at cycle {cycle} ('{text}')"
        self.busy[key] = text

    # stream registers
    def flow(self, src: str, ref: tuple[int, int], width: int, t: int, dst: str) -> int:
        """A value written by the slice at `src` on streams `ref` (`width` of them) at
        cycle `t`, read by the slice at `dst`: claim every register it sits in on the
        way (no other slice may write them then). Returns the cycle `dst` reads it."""
        p, q = self.plan.pos[src], self.plan.pos[dst]
        s0, dr = ref
        step = 1 if dr == E else -1
        if (q - p) * step <= 0:
            raise DirectedError(f"{dst} is not downstream of {src} on {'ew'[dr]} streams")
        token = (p, dr, t, s0)
        for k, pp in enumerate(range(p, q, step)):
            for s in range(s0, s0 + width):
                key = (pp, dr, s, t + k)
                old = self.claims.get(key, self.plan.claims.get(key))
                if old is not None and old != token:
                    self.problem = self.problem or (
                        f"stream {'ew'[dr]}{s} at {self.plan.names[pp]} in cycle {t + k} is "
                        "taken")
                self.claims[key] = token
        return t + abs(q - p)

    def send(self, src: str, t: int, addr: int, ref: tuple[int, int], n: int, dst: str) -> int:
        """`read addr, ref, n` on `src` at `t`, read by `dst`: the cycle it reads."""
        self.at(src, t, "read", addr, ref, n)
        return self.flow(src, ref, n, t + 1, dst)

    # SRAM
    def put(self, mem: str, words: np.ndarray, bank: int = 0) -> int:
        """Place initial words (uint8 [n, VL]) in one bank of `mem`; equal words share."""
        words = np.asarray(words, dtype=np.uint8).reshape(-1, self.plan.cfg.vl)
        key = (mem, bank, words.tobytes())
        if key in self.plan.data:
            return self.plan.data[key]
        if key in self.data:
            return self.data[key]
        addr = self.take(mem, words.shape[0], bank)
        self.data[key] = addr
        return addr

    def take(self, mem: str, n: int, bank: int) -> int:
        """Reserve `n` consecutive words in one bank."""
        k = (mem, bank)
        addr = self.plan.next[k] + self.alloc.get(k, 0)
        if addr + n > (bank + 1) * self.plan.cfg.bank_words:
            self.problem = self.problem or f"bank {bank} of {mem} is full"
        self.alloc[k] = self.alloc.get(k, 0) + n
        return addr

    def expect(self, mem: str, addr: int, words, what: str, kind: str = "u8",
               inputs: dict | None = None) -> None:
        words = np.asarray(words, dtype=np.uint8).reshape(-1, self.plan.cfg.vl)
        self.expects.append(Expect(mem, addr, words, what, kind, dict(inputs or {})))

    def commit(self) -> None:
        if self.problem:
            raise DirectedError(f"directed program {self.plan.name!r}: {self.problem}")
        self.plan._commit(self)


class Plan:
    """A program being placed: queue cycles, stream claims, SRAM contents, expectations."""

    def __init__(self, cfg: ChipConfig, name: str, doc: str):
        self.cfg = cfg
        self.name, self.doc = name, doc
        self.pos = {p.name: p.index for p in cfg.positions}
        self.pos.update({q.name: q.position for q in cfg.queues})
        self.names = {p.index: p.name for p in cfg.positions}
        self.busy: dict[tuple, str] = {}
        self.claims: dict[tuple, tuple] = {}
        self.data: dict[tuple, int] = {}
        self.next = {(q.name, b): b * cfg.bank_words
                     for q in cfg.queues if q.kind == "mem" for b in (0, 1)}
        self.mem = {q.name: np.zeros((cfg.mem_words, cfg.vl), dtype=np.uint8)
                    for q in cfg.queues if q.kind == "mem"}
        self.ins: list[tuple[str, int, Instr]] = []
        self.syncs: dict[str, list[tuple[int, int]]] = {}
        self.expected: list[Expect] = []
        # the VXM's writes (dir, s) -> {cycle: (token, value | None)}, and the intervals
        # (lo, hi | None for open, owner) in which it must not write (dir, s): held reads
        self.vxm_w: dict[tuple, dict] = {}
        self.holds: dict[tuple, list] = {}

    def txn(self) -> Txn:
        return Txn(self)

    def release(self, owner) -> None:
        """End the open-ended holds (:meth:`Txn.hold`) of `owner`."""
        for key, hs in self.holds.items():
            self.holds[key] = [h for h in hs if not (h[1] is None and h[2] == owner)]

    def _commit(self, tx: Txn) -> None:
        self.busy.update(tx.busy)
        self.claims.update(tx.claims)
        for key, ws in tx.vxm_w.items():
            self.vxm_w.setdefault(key, {}).update(ws)
        for key, hs in tx.holds.items():
            self.holds.setdefault(key, []).extend(hs)
        for (mem, bank, blob), addr in tx.data.items():
            words = np.frombuffer(blob, dtype=np.uint8).reshape(-1, self.cfg.vl)
            self.mem[mem][addr:addr + words.shape[0]] = words
            self.data[(mem, bank, blob)] = addr
        for k, n in tx.alloc.items():
            self.next[k] += n
        self.ins += tx.ins
        self.expected += tx.expects

    def place(self, fn: Callable[[Txn, int], None], lo: int) -> int:
        """Call ``fn(tx, t)`` for t = lo, lo + 1, .. and commit the first that fits."""
        for t in range(lo, lo + 256):
            tx = self.txn()
            fn(tx, t)
            if tx.problem is None:
                tx.commit()
                return t
        raise DirectedError(f"directed program {self.name!r}: no room after cycle {lo}")

    def one(self) -> Txn:
        """A transaction placed by hand: commit it with ``with``."""
        return Hand(self)

    def sync(self, queue: str, cycle: int, resume: int) -> None:
        """`queue` reaches a ``sync`` at `cycle` and resumes at `resume` (the cycle after
        the releasing ``notify``)."""
        if resume <= cycle:
            raise DirectedError(f"{queue}: a sync at {cycle} cannot resume at {resume}")
        with self.one() as tx:
            for c in range(cycle, resume):
                tx._busy(queue, c, "sync")
            tx.ins.append((queue, cycle, make("sync")))
        self.syncs.setdefault(queue, []).append((cycle, resume))

    def build(self) -> Directed:
        b = ProgramBuilder(self.cfg)
        for queue, cycle, ins in sorted(self.ins, key=lambda x: (x[0], x[1])):
            # after a sync, the builder's cycles run behind the real ones
            lag = sum(r - c - 1 for c, r in self.syncs.get(queue, ()) if c < cycle)
            b.at(queue, cycle - lag, ins)
        program = b.program()
        tl = check(self.cfg, program, name=f"directed program {self.name!r}").timeline
        return Directed(self.name, self.doc, program, self.mem, self.expected, tl.end)


class Hand(Txn):
    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.commit()
