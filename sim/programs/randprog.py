"""Random legal programs: every opcode, random timing, every queue busy, random data.

:func:`generate` builds, for one chip config and one seed, a program that the static
checker (:func:`lpu.golden.check.check`) accepts and that runs on the golden model
without a run-time error, plus the initial SRAM contents it runs on. The lockstep
tests run such programs on the golden model and on the RTL and compare every cycle.

Legal by construction
---------------------
The generator walks the (skewed) cycles in order and, at each cycle, lets every free
queue dispatch something. It keeps the state the checker's rules are about
(docs/timing.md section 5):

* stream-register writes per ``(cycle, direction, stream, position)``: a new
  instruction's results (at ``t + d``; MXM ``S+2``, SXM ``S+1``) may only go into free
  registers, so there is never a second writer;
* which values flow on which diagonal: an instruction dispatched at ``t`` reads only
  streams that some slice upstream wrote so that they arrive at its position in
  cycle ``t``. Everything that lands before ``t`` was placed earlier, so the set of
  readable registers at ``t`` is final when ``t`` is reached;
* the VXM's own writes per ``(direction, stream)`` with their cycles, for *held
  reads* (ISA 1.1, docs/isa.md "Held reads"): a VXM ``a`` or ``b`` operand (``la`` /
  ``lb``, assembly ``veN`` / ``vwN``) is sometimes (``p_held``) the value the VXM
  itself last wrote to those streams, and then only of streams that it writes in a
  cycle strictly before the dispatch cycle (all four for a 32-bit operand; the
  planes may come from different writes; rule ``empty-read``);
* SRAM bank use per ``(cycle, slice, bank)``: at most one access (a read, a write,
  or a ``gather``'s SRAM read) of one bank in one cycle;
* operand ranges: addresses, rows, slots, lanes, shifts from the config.

``transpose`` needs VL streams arriving together: the generator places it a few
cycles ahead together with the MEM reads that feed it (their queues, registers and
banks are reserved at once; a queue with such a reservation does not ``sync`` or
``repeat`` past it).

``repeat`` re-issues an instruction in the future, so its copies are placed only
when their reads are already satisfied by values that are on their way (from writes
placed earlier, such as a repeated MEM read), and their writes and bank uses are
reserved at once. A copy's held reads are legal too: it dispatches later than the
original, whose held streams were written before it. VXM writes placed ahead by a
``repeat`` count for held reads from the cycle after they happen; a ``repeat`` that
does not fit is rolled back from its journal, the VXM's writes with the rest.
``sync`` parks a queue until some other queue's ``notify`` (the generator forces one
after a few cycles, and at the end).

Data-dependent rules (a ``gather`` index outside the bank of its base, a ``perm``
map entry not below VL) cannot be seen by the static checker. The generator tracks a
*tag* for each value on a stream: "every byte is below N". SRAM holds, at the start
of each bank, a few reserved words of small numbers (zeros, lanes below VL, indices
below 4, 16, ...) that programs read but never overwrite; ``gather`` takes its
indices and ``perm`` its map only from streams whose tag proves them in range, and
a value's tag survives ``mov``, ``mov32`` (also from a held read: the tag of the
VXM's last write before the cycle) and the SXM moves. When a repeated
``gather`` or ``perm`` reads such a value in a later cycle, the registers it passes
on the way are kept free of other writers.

Everything else in SRAM is random: fp32 vectors (four words, byte planes) rich in
specials (signed zeros, infinities, NaNs, subnormals, the largest and smallest
normals), int32 vectors with extremes, and raw bytes.

Finally the program is checked by :func:`lpu.golden.check.check`; a rejection is a
bug in this module and raises :class:`RandProgError` naming the seed (``retries``
falls back to fresh sub-seeds, reporting it).

Replaying a seed::

    lpu random --config tiny --seed 1234 -o prog.s --mem-out mem.npz
    lpu run prog.s --config tiny --mem-in mem.npz --trace t.jsonl
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden import check as static_checker
from lpu.golden.schedule import ScheduleError, effects
from lpu.isa import (
    BY_MNEMONIC,
    NOP_MAX,
    OPS,
    REPEAT_STEP_MAX,
    REPEAT_STEP_MIN,
    VXM_OPCODES,
    E,
    Instr,
    Opcode,
    W,
    make,
)
from lpu.program import Program
from lpu.vectors import to_planes

__all__ = ["RandomProgram", "RandProgError", "generate", "OPCODES", "RESERVED_WORDS"]

O = Opcode

#: Every opcode a random program may contain (all of the ISA).
OPCODES: tuple[Opcode, ...] = tuple(OPS)

#: Reserved words at the start of each SRAM bank: offset -> (what, bound); every
#: byte of the word is below ``bound`` (``"vl"``: below min(VL, 256); ``"bank"``:
#: below min(256, words per bank)). Programs read them and never write them.
RESERVED_WORDS = {
    0: "vl", 1: 1, 2: 4, 3: 1, 4: "vl", 5: 1, 6: 16, 7: "bank",
}



class RandProgError(LpuError):
    """The generator produced a program the checker or the golden model rejects."""


@dataclass
class RandomProgram:
    """A generated program, the SRAM it starts from, and how it was made.

    Unpacks as ``program, mem = generate(cfg, seed)``.
    """

    cfg: ChipConfig
    seed: int
    program: Program
    mem: dict[str, np.ndarray]  # MEM slice name -> uint8 [mem_words, VL]
    cycles: int  # dispatch horizon (skewed cycles)
    ops: Counter = field(default_factory=Counter)  # mnemonic -> words in the program
    sub_seed: int | None = None  # set when the fallback retried with another seed

    def __iter__(self):
        yield self.program
        yield self.mem

    def load_into(self, chip) -> None:
        """Write the initial SRAM into a golden :class:`~lpu.golden.chip.Chip`."""
        for name, words in self.mem.items():
            chip.write_mem(name, 0, words)

    def save_mem(self, path) -> None:
        """Save the initial SRAM as ``.npz`` for ``lpu run --mem-in``."""
        np.savez(path, **self.mem)

    @property
    def replay(self) -> str:
        return (f"lpu random --config {self.cfg.name} --seed {self.seed} "
                f"--cycles {self.cycles}")


# -- data ------------------------------------------------------------------------------------

FP32_SPECIALS = np.array([
    0x00000000, 0x80000000,  # +-0
    0x7F800000, 0xFF800000,  # +-inf
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA5A5A5,  # NaNs (quiet, signalling)
    0x00000001, 0x807FFFFF, 0x00400000, 0x80000001,  # subnormals
    0x00800000, 0x80800000,  # smallest normals
    0x7F7FFFFF, 0xFF7FFFFF,  # largest normals
    0x3F800000, 0xBF800000, 0x3F000000, 0x4B000000, 0x4F000000, 0xCF000000,
    0x42FE0000, 0xC3000000, 0x3EFFFFFF,
], dtype=np.uint32)

INT32_SPECIALS = np.array([
    0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x80000001, 127, 128, 0xFFFFFF80,
    0xFFFFFF7F, 255, 31, 32, 0x01000001,
], dtype=np.uint32)


def _rand_fp32(rng, n):
    sign = rng.integers(0, 2, n, dtype=np.uint32) << np.uint32(31)
    exp = np.where(rng.integers(0, 3, n) == 0, rng.integers(0, 256, n),
                   rng.integers(110, 150, n)).astype(np.uint32)
    mant = rng.integers(0, 1 << 23, n, dtype=np.uint32)
    v = sign | (exp << np.uint32(23)) | mant
    pick = rng.random(n) < 0.3
    v[pick] = rng.choice(FP32_SPECIALS, int(pick.sum()))
    return v.astype(np.uint32)


def _rand_int32(rng, n):
    v = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    small = rng.random(n) < 0.3
    v[small] = rng.integers(-300, 300, int(small.sum())).astype(np.int32).view(np.uint32)
    pick = rng.random(n) < 0.2
    v[pick] = rng.choice(INT32_SPECIALS, int(pick.sum()))
    return v


def _bound(cfg: ChipConfig, what) -> int:
    if what == "vl":
        return min(cfg.vl, 256)
    if what == "bank":
        return min(256, cfg.bank_words)
    return int(what)


def initial_mem(cfg: ChipConfig, rng) -> tuple[dict[str, np.ndarray], dict[int, int]]:
    """Random SRAM for every MEM slice, and the reserved words' bounds (offset in bank ->
    every byte below this)."""
    VL, bw = cfg.vl, cfg.bank_words
    names = [q.name for q in cfg.queues if q.kind == "mem"]
    bounds = {off: _bound(cfg, what) for off, what in RESERVED_WORDS.items()}
    mem = {}
    groups = cfg.mem_words // 4  # four words: one vector of 32-bit lanes (byte planes)
    for name in names:
        fp = to_planes(_rand_fp32(rng, groups * VL).reshape(groups, VL))
        i32 = to_planes(_rand_int32(rng, groups * VL).reshape(groups, VL))
        raw = rng.integers(0, 256, (groups, 4, VL), dtype=np.uint8)
        kind = rng.random(groups)[:, None, None]
        m = np.where(kind < 0.4, fp, np.where(kind < 0.75, i32, raw)).reshape(-1, VL)
        m = np.ascontiguousarray(m, dtype=np.uint8)
        for b in range(2):
            for off, bound in bounds.items():
                m[b * bw + off] = rng.integers(0, bound, VL, dtype=np.uint8)
        mem[name] = m
    return mem, bounds


# -- the generator -------------------------------------------------------------------------------


class _Queue:
    __slots__ = ("q", "words", "free", "last", "parked", "release_by", "mem", "reserved")

    def __init__(self, q, mem_index):
        self.q = q
        self.words: list[Instr] = []
        self.free: int | None = 0  # cycle at which its next word is reached (None: parked)
        self.last: tuple[Instr, int] | None = None  # last word, if a slice instruction
        self.parked = False
        self.release_by = 0
        self.mem = mem_index
        self.reserved: dict[int, Instr] = {}  # cycle -> instruction placed ahead of time

    def next_reserved(self) -> float:
        return min(self.reserved, default=float("inf"))


class _Plan:
    """What one dispatch does: stream reads, stream writes (with tags), bank uses."""

    __slots__ = ("reads", "writes", "banks", "protect")

    def __init__(self):
        self.reads = []  # (t, dir, s)
        self.writes = []  # (t, dir, s, tag)
        self.banks = []  # (t, mem, bank, "r"|"w")
        self.protect = []  # (dir, s, diag, pos): keep free of writers


class _Gen:
    def __init__(self, cfg: ChipConfig, seed: int, cycles: int, *, p_idle: float,
                 p_held: float):
        if cfg.bank_words < 2 * len(RESERVED_WORDS):
            raise RandProgError(f"config {cfg.name!r}: random programs need at least "
                                f"{2 * len(RESERVED_WORDS)} words per SRAM bank, not "
                                f"{cfg.bank_words}")
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.cycles = cycles
        self.p_idle = p_idle
        self.p_held = p_held
        self.S, self.VL, self.bw = cfg.superlanes, cfg.vl, cfg.bank_words
        self.P = len(cfg.positions)
        self.vxm_pos = next(p.index for p in cfg.positions if p.kind == "vxm")
        self.n_mem = cfg.mem_slices
        self.mem, self.bounds = initial_mem(cfg, self.rng)
        self.R = len(RESERVED_WORDS)
        self.queues = []
        for q in cfg.queues:
            if q.kind == "c2c":  # send/recv need a system of chips: sim/programs/c2c.py
                continue
            m = None
            if q.kind == "mem":
                m = q.unit if q.name.startswith("mem_w") else q.unit + cfg.mem_slices
            self.queues.append(_Queue(q, m))
        # state
        self.w_occ: set = set()  # (t, dir, s, pos)
        self.diag: dict = {}  # (dir, s, diag) -> {pos: tag}
        self.protected: set = set()  # (dir, s, diag, pos)
        self.bank_use: dict = {}  # (t, mem, bank) -> set of "r"/"w"; (t, plane, -1): "i"
        self.notifies: set = set()
        # the VXM's own writes (ISA 1.1 held reads): (dir, s) -> cycles it writes there
        self.vxm_w: dict = {}
        self.transposes = cfg.streams >= cfg.vl
        self.p_transpose = 0.04
        self._arr_cache: dict = {}
        self._journal: list | None = None

    # -- tags and arrivals -----------------------------------------------------------------
    def word_tag(self, addr: int):
        off = addr % self.bw
        return self.bounds.get(off)

    @staticmethod
    def _diag(t, p, dr):
        return t - p if dr == E else t + p

    def arriving(self, p, t, dr, s):
        """(tag, writer position) of the value arriving at position p in cycle t on
        stream (dr, s), or None if the register holds nothing."""
        ws = self.diag.get((dr, s, self._diag(t, p, dr)))
        if not ws:
            return None
        if dr == E:
            up = [w for w in ws if w < p]
            if not up:
                return None
            w = max(up)
        else:
            up = [w for w in ws if w > p]
            if not up:
                return None
            w = min(up)
        return ws[w], w

    def arrivals(self, p, t):
        """{(dir, s): tag} readable at position p in cycle t."""
        key = (p, t)
        hit = self._arr_cache.get(key)
        if hit is not None:
            return hit
        out = {}
        for dr in (E, W):
            for s in range(self.cfg.streams):
                a = self.arriving(p, t, dr, s)
                if a is not None:
                    out[(dr, s)] = a[0]
        self._arr_cache[key] = out
        return out

    def free_reg(self, p, t, dr, s):
        return ((t, dr, s, p) not in self.w_occ
                and (dr, s, self._diag(t, p, dr), p) not in self.protected)

    def held_ready(self, t, dr, s) -> bool:
        """A held read of stream (dr, s) in cycle t is legal: the VXM writes it (in a
        committed plan) at a cycle before t."""
        ws = self.vxm_w.get((dr, s))
        return bool(ws) and min(ws) < t

    def held_tag(self, t, dr, s):
        """The tag of the value a held read of (dr, s) in cycle t gets: that of the VXM's
        last write before t. Only final for a read in the current cycle (every VXM
        write before it has been placed); None otherwise."""
        ws = [w for w in self.vxm_w.get((dr, s), ()) if w < t]
        if not ws:
            return None
        tw = max(ws)
        return self.diag[(dr, s, self._diag(tw, self.vxm_pos, dr))][self.vxm_pos]

    def held_groups(self, t, width):
        """Every (stream, dir) whose streams s..s+width-1 a held read in cycle t may take."""
        return [(s, dr) for dr in (E, W) for s in range(self.cfg.streams - width + 1)
                if all(self.held_ready(t, dr, s + j) for j in range(width))]

    # -- planning and committing -----------------------------------------------------------
    def plan(self, qs: _Queue, ins: Instr, t: int, now: int):
        """The effects of `ins` dispatched by `qs` at `t`, or None if that would be
        illegal (given everything committed so far)."""
        cfg = self.cfg
        p = qs.q.position
        try:
            effs = effects(cfg, ins)
        except ScheduleError:
            return None
        pl = _Plan()
        op = ins.op
        a = ins.args
        read_tags: dict = {}
        for ef in effs:
            if ef.kind == "rd":
                for s in range(ef.stream, ef.stream + ef.width):
                    arr = self.arriving(p, t, ef.dir, s)
                    if arr is None:
                        return None
                    read_tags[(ef.dir, s)] = arr
                    pl.reads.append((t, ef.dir, s))
            elif ef.kind == "hrd":  # held read: the VXM wrote every stream before t
                for s in range(ef.stream, ef.stream + ef.width):
                    if not self.held_ready(t, ef.dir, s):
                        return None
            elif ef.kind in ("mrd", "mwr"):
                pl.banks.append((t + ef.dt, qs.mem, ef.bank, "r" if ef.kind == "mrd" else "w"))
            elif ef.kind == "inst":  # one install a plane and cycle (iw, lwi two cycles on)
                pl.banks.append((t + ef.dt, qs.q.name, -1, "i"))
        # data-dependent rules, proven by tags
        needs = []  # ((dir, s), bound)
        if op == O.GATHER:
            base = a["base"]
            needs.append((a["idx"], self.bw - base % self.bw))
        elif op == O.PERM:
            s, dr = a["map"]
            needs.append(((s, dr), min(self.VL, 256)))
            needs.append(((s + 1, dr), 1))
        for (s, dr), bound in needs:
            tag, w = read_tags[(dr, s)]
            if tag is None or tag > bound:
                return None
            if t > now:  # keep the value intact on its way to p
                lo, hi = (w, p) if dr == E else (p, w)
                dg = self._diag(t, p, dr)
                pl.protect += [(dr, s, dg, x) for x in range(lo + 1, hi)]
        if op == O.WRITE:
            for addr in range(a["addr"], a["addr"] + a["count"]):
                if addr % self.bw < self.R:
                    return None  # reserved words stay intact
        # writes and their tags
        for ef in effs:
            if ef.kind != "wr":
                continue
            tw = t + ef.dt
            for j in range(ef.width):
                s = ef.stream + j
                if op == O.READ:
                    tag = self.word_tag(a["addr"] + j)
                elif op in (O.MOV, O.MOV32, O.SHIFT, O.ROT, O.BCAST, O.PERM) and t == now:
                    # a moved value keeps its tag (a copy read in a later cycle does not:
                    # the value it will read may still be overwritten on its way)
                    sa, da = a["a" if op in (O.MOV, O.MOV32) else "src"]
                    if a.get("la") and op in (O.MOV, O.MOV32):  # held: the VXM's own write
                        tag = self.held_tag(t, da, sa + j)
                    else:
                        tag = read_tags[(da, sa + j)][0]
                else:
                    tag = None
                if not self.free_reg(p, tw, ef.dir, s):
                    return None
                pl.writes.append((tw, ef.dir, s, tag))
        for tb, m, bank, _ in pl.banks:
            if self.bank_use.get((tb, m, bank)):  # one access per bank and cycle
                return None
        return pl

    def commit(self, qs: _Queue, pl: _Plan) -> bool:
        """Commit a plan, re-checking against what was committed since it was made (other
        copies of one repeat). Returns False (and commits nothing) if it no longer fits."""
        p = qs.q.position
        for tw, dr, s, _ in pl.writes:
            if not self.free_reg(p, tw, dr, s):
                return False
        for x in pl.protect:
            dr, s, dg, pos = x
            t = dg + pos if dr == E else dg - pos
            if (t, dr, s, pos) in self.w_occ:
                return False
        for tb, m, bank, _ in pl.banks:
            if self.bank_use.get((tb, m, bank)):  # one access per bank and cycle
                return False
        j = self._journal
        for tw, dr, s, tag in pl.writes:
            self.w_occ.add((tw, dr, s, p))
            d = self.diag.setdefault((dr, s, self._diag(tw, p, dr)), {})
            d[p] = tag
            if p == self.vxm_pos:
                self.vxm_w.setdefault((dr, s), set()).add(tw)
            if j is not None:
                j.append(("w", (tw, dr, s, p), (dr, s, self._diag(tw, p, dr)), p))
        for x in pl.protect:
            if x not in self.protected:
                self.protected.add(x)
                if j is not None:
                    j.append(("p", x))
        for tb, m, bank, kind in pl.banks:
            key = (tb, m, bank)
            self.bank_use.setdefault(key, set())
            if kind not in self.bank_use[key]:
                self.bank_use[key].add(kind)
                if j is not None:
                    j.append(("b", key, kind))
        self._arr_cache.clear()
        return True

    def rollback(self, journal):
        for item in reversed(journal):
            if item[0] == "w":
                _, occ, dkey, p = item
                self.w_occ.discard(occ)
                d = self.diag.get(dkey)
                if d is not None:
                    d.pop(p, None)
                    if not d:
                        del self.diag[dkey]
                if p == self.vxm_pos:
                    self.vxm_w[occ[1:3]].discard(occ[0])
            elif item[0] == "p":
                self.protected.discard(item[1])
            else:
                _, key, kind = item
                self.bank_use[key].discard(kind)
        self._arr_cache.clear()

    # -- words -------------------------------------------------------------------------------
    def emit(self, qs: _Queue, t: int, ins: Instr):
        """Append `ins`, reached at cycle t (nops fill the gap since the last word)."""
        gap = t - qs.free
        assert gap >= 0
        while gap > 0:
            n = min(gap, NOP_MAX)
            qs.words.append(make("nop", n))
            gap -= n
            qs.last = None
        qs.words.append(ins)

    # -- operand choice ----------------------------------------------------------------------
    def pick_group(self, arr, width, pred=None):
        """A (stream, dir) such that streams s..s+width-1 of dir all arrive (and their
        tags satisfy pred(tags)), or None."""
        streams = self.cfg.streams
        cands = []
        for dr in (E, W):
            for s in range(streams - width + 1):
                tags = []
                for j in range(width):
                    tag = arr.get((dr, s + j), False)
                    if tag is False:
                        break
                    tags.append(tag)
                else:
                    if pred is None or pred(tags):
                        cands.append((s, dr))
        if not cands:
            return None
        return cands[int(self.rng.integers(0, len(cands)))]

    def pick_dst(self, p, tw, width):
        streams = self.cfg.streams
        cands = [(s, dr) for dr in (E, W) for s in range(streams - width + 1)
                 if all(self.free_reg(p, tw, dr, s + j) for j in range(width))]
        if not cands:
            return None
        return cands[int(self.rng.integers(0, len(cands)))]

    def choose(self, qs: _Queue, t: int):
        """A random slice instruction for qs at t whose operands fit, or None."""
        kind = qs.q.kind
        rng = self.rng
        if kind == "mem":
            menu = [("read", 0.45), ("write", 0.33), ("gather", 0.22)]
        elif kind == "vxm":
            menu = [(OPS[o].mnemonic, 1.0) for o in VXM_OPCODES]
        elif kind == "mxm":
            menu = [("lw", 0.27), ("lwi", 0.12), ("iw", 0.08), ("mm", 0.25), ("mmacc", 0.28)]
        else:
            menu = [("shift", 1.0), ("rot", 1.0), ("bcast", 1.0), ("perm", 1.3)]
            if self.transposes:
                menu.append(("transpose", 0.5))
        names = [m for m, _ in menu]
        w = np.array([x for _, x in menu], dtype=float)
        order = rng.choice(len(names), size=min(4, len(names)), replace=False, p=w / w.sum())
        for i in order:
            ins = getattr(self, f"_op_{kind}")(qs, t, names[i])
            if ins is not None:
                pl = self.plan(qs, ins, t, t)
                if pl is not None:
                    return ins, pl
        return None

    def _op_mem(self, qs, t, name):
        rng, bw = self.rng, self.bw
        p = qs.q.position
        if name == "read":
            count = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.2, 0.1, 0.4]))
            bank = int(rng.integers(0, 2))
            if rng.random() < 0.3:  # small numbers: indices and perm maps
                off = int(rng.choice([0, 2, 4])) if count >= 2 and rng.random() < 0.7 else \
                    int(rng.integers(0, self.R - count + 1))
            elif rng.random() < 0.5:
                off = 4 * int(rng.integers(0, (bw - count) // 4 + 1))
            else:
                off = int(rng.integers(0, bw - count + 1))
            dst = self.pick_dst(p, t + 1, count)
            if dst is None:
                return None
            return make("read", bank * bw + off, dst, count)
        arr = self.arrivals(p, t)
        if name == "write":
            count = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.2, 0.1, 0.35]))
            src = self.pick_group(arr, count)
            if src is None:
                return None
            bank = int(rng.integers(0, 2))
            lo = self.R
            if rng.random() < 0.5:
                off = 4 * int(rng.integers(lo // 4, (bw - count) // 4 + 1))
            else:
                off = int(rng.integers(lo, bw - count + 1))
            return make("write", bank * bw + off, src, count)
        # gather: indices from a stream whose tag proves them inside the bank
        idx = self.pick_group(arr, 1, lambda tags: tags[0] is not None and tags[0] <= bw)
        if idx is None:
            return None
        bound = arr[(idx[1], idx[0])]
        bank = int(rng.integers(0, 2))
        base = bank * bw + int(rng.integers(0, bw - bound + 1))
        dst = self.pick_dst(p, t + 2, 1)
        if dst is None:
            return None
        return make("gather", base, idx, dst)

    def _op_vxm(self, qs, t, name):
        info = OPS[make_op(name)]
        p = qs.q.position
        arr = self.arrivals(p, t)
        args = {}
        for o in info.operands:
            if o.kind == "sr":
                if o.held:  # a or b: sometimes held (what the VXM itself wrote before t)
                    held = self.held_groups(t, o.width)
                    g = self.pick_group(arr, o.width)
                    if held and self.rng.random() < self.p_held:
                        g = held[int(self.rng.integers(0, len(held)))]
                        args[o.held] = 1
                    else:
                        args[o.held] = 0
                else:
                    g = self.pick_group(arr, o.width)
                if g is None:
                    return None
                args[o.name] = g
            elif o.kind == "sw":
                g = self.pick_dst(p, t + info.d(self.S), o.width)
                if g is None:
                    return None
                args[o.name] = g
            else:
                args[o.name] = int(self.rng.integers(0, 32))
        return Instr(info.opcode, args)

    def _op_mxm(self, qs, t, name):
        rng, VL = self.rng, self.VL
        p = qs.q.position
        if name == "iw":
            return make("iw")
        arr = self.arrivals(p, t)
        if name in ("lw", "lwi"):
            top = min(32, VL, self.cfg.streams)
            count = int(rng.integers(1, min(4, top) + 1)) if rng.random() < 0.8 else \
                int(rng.integers(1, top + 1))
            src = self.pick_group(arr, count)
            if src is None:
                return None
            row = int(rng.integers(0, VL - count + 1))
            return make(name, row, src, count)
        src = self.pick_group(arr, 1)
        if src is None:
            return None
        slot = int(rng.integers(0, self.cfg.mxm_acc_slots))
        dst = None
        if rng.random() < 0.75:
            dst = self.pick_dst(p, t + OPS[O.MM].d(self.S), 4)
            if dst is None:
                return None
        return make(name, dst, src, slot)

    def _op_sxm(self, qs, t, name):
        rng, VL = self.rng, self.VL
        p = qs.q.position
        arr = self.arrivals(p, t)
        if name == "transpose":  # VL streams in, VL streams out
            src = self.pick_group(arr, VL)
            dst = src and self.pick_dst(p, t + OPS[O.TRANSPOSE].d(self.S), VL)
            return make("transpose", dst, src) if dst else None
        count = int(rng.choice([1, 2, 3, 4], p=[0.4, 0.2, 0.1, 0.3]))
        src = self.pick_group(arr, count)
        if src is None:
            return None
        dst = self.pick_dst(p, t + OPS[O.SHIFT].d(self.S), count)
        if dst is None:
            return None
        if name in ("shift", "rot"):
            n = int(rng.integers(-(VL - 1), VL))
            return make(name, dst, src, n, count)
        if name == "bcast":
            return make("bcast", dst, src, int(rng.integers(0, VL)), count)
        vl_bound = min(VL, 256)
        mp = self.pick_group(arr, 2, lambda tags: tags[0] is not None and tags[0] <= vl_bound
                             and tags[1] is not None and tags[1] <= 1)
        if mp is None:
            return None
        return make("perm", dst, src, mp, count)

    # -- repeat ------------------------------------------------------------------------------
    def try_repeat(self, qs: _Queue, t: int) -> bool:
        ins, t0 = qs.last
        info = ins.info
        rng = self.rng
        step_field = {"addr": "base" if ins.op == O.GATHER else "addr", "row": "row"}.get(
            info.steps) if info.steps else None
        for _ in range(6):
            n = int(rng.integers(1, 4)) if rng.random() < 0.6 else int(rng.integers(1, 9))
            d = int(rng.choice([1, 1, 2, 2, 3, 4, 5]))
            step = int(rng.choice([0, 1, 1, -1, 2, 4, -4])) if step_field else 0
            if ins.op in (O.READ, O.WRITE) and step:
                step = int(np.sign(step)) * max(abs(step), ins.count) if rng.random() < 0.5 \
                    else step
            step = max(REPEAT_STEP_MIN, min(REPEAT_STEP_MAX, step))
            journal: list = []
            self._journal = journal
            ok = True
            try:
                for k in range(1, n + 1):
                    copy = ins
                    if step_field:
                        copy = ins.with_args(**{step_field: ins.args[step_field] + k * step})
                    tc = t0 + k * d
                    pl = self.plan(qs, copy, tc, t)
                    if pl is None or not self.commit(qs, pl):
                        ok = False
                        break
            finally:
                self._journal = None
            if ok and t0 + n * d + 1 > qs.next_reserved():
                ok = False  # the queue must be free for an instruction placed ahead
            if ok:
                self.emit(qs, t, make("repeat", n, d, step))
                qs.free = t0 + n * d + 1
                qs.last = None
                return True
            self.rollback(journal)
        return False

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> dict[str, list[Instr]]:
        rng = self.rng
        nq = len(self.queues)
        start_together = rng.random() < 0.4
        if start_together:  # everybody parks at cycle 0; one queue's notify starts them
            leader = int(rng.integers(0, nq))
            for i, qs in enumerate(self.queues):
                if i == leader:
                    self.do_notify(qs, 0)
                else:
                    self.do_sync(qs, 0)
        t = 0
        while True:
            pending = [qs for qs in self.queues if qs.parked or qs.reserved]
            if t >= self.cycles and not pending:
                break
            if t > self.cycles + 10_000:  # pragma: no cover - cannot happen
                raise RandProgError("the generator did not finish")
            self._arr_cache.clear()
            must_notify = any(qs.parked and qs.release_by <= t for qs in self.queues) or \
                (t >= self.cycles and any(qs.parked for qs in self.queues))
            if t < self.cycles - 8 and self.transposes and rng.random() < self.p_transpose:
                self.plan_transpose(t)
            for i in rng.permutation(nq):
                qs = self.queues[int(i)]
                if t in qs.reserved:  # placed ahead of time, resources already committed
                    assert not qs.parked and qs.free <= t
                    ins = qs.reserved.pop(t)
                    self.emit(qs, t, ins)
                    qs.free = t + 1
                    qs.last = (ins, t)
                    continue
                if qs.parked or qs.free > t:
                    continue
                if t >= self.cycles:  # wind-down: only the notify that releases the rest
                    if must_notify:
                        self.do_notify(qs, t)
                        must_notify = False
                    continue
                if must_notify:
                    self.do_notify(qs, t)
                    must_notify = False
                    continue
                r = rng.random()
                if qs.last is not None and qs.free == t and r < 0.18:
                    if self.try_repeat(qs, t):
                        continue
                r = rng.random()
                if r < self.p_idle:
                    continue
                if r < self.p_idle + 0.025 and not qs.reserved:
                    active = sum(1 for x in self.queues if not x.parked)
                    if active >= 3:
                        self.do_sync(qs, t)
                        continue
                if r > 0.985:
                    self.do_notify(qs, t)
                    continue
                got = self.choose(qs, t)
                if got is None:
                    continue
                ins, pl = got
                if not self.commit(qs, pl):  # pragma: no cover - plan was just made
                    continue
                self.emit(qs, t, ins)
                qs.free = t + 1
                qs.last = (ins, t)
            t += 1
        return {qs.q.name: qs.words for qs in self.queues if qs.words}

    # -- transpose: VL streams at once, fed by MEM reads placed ahead of time ------------------
    def plan_transpose(self, t: int) -> bool:
        """Place, a few cycles ahead, a ``transpose`` on one SXM and the MEM reads that
        bring its VL streams to it in that cycle; False (nothing placed) if the queues,
        registers or banks are not free."""
        rng, cfg, VL = self.rng, self.cfg, self.VL
        side = self.queues[[q.q.name for q in self.queues].index(str(rng.choice(["sxm_w",
                                                                               "sxm_e"])))]
        ps = side.q.position
        dr = W if side.q.name == "sxm_w" else E
        feeders = [q for q in self.queues if q.q.kind == "mem"
                   and (q.q.position > ps if dr == W else q.q.position < ps)]
        rng.shuffle(feeders)
        need = -(-VL // 4)
        if len(feeders) < need:
            return False
        feeders = feeders[:need]
        far = max(abs(q.q.position - ps) for q in feeders)
        T = t + 2 + far + int(rng.integers(0, 4))
        s0 = int(rng.integers(0, cfg.streams - VL + 1))
        dst = (int(rng.integers(0, cfg.streams - VL + 1)), int(rng.integers(0, 2)))
        placed = [(side, T, make("transpose", dst, (s0, dr)))]
        for j, fq in enumerate(feeders):
            count = min(4, VL - 4 * j)
            bank = int(rng.integers(0, 2))
            addr = bank * self.bw + 4 * int(rng.integers(self.R // 4, (self.bw - 4) // 4 + 1))
            td = T - 1 - abs(fq.q.position - ps)
            placed.insert(0, (fq, td, make("read", addr, (s0 + 4 * j, dr), count)))
        for qs, td, _ in placed:
            if qs.parked or qs.free is None or qs.free > td or td in qs.reserved or td <= t:
                return False
        journal: list = []
        self._journal = journal
        try:
            for qs, td, ins in placed:
                pl = self.plan(qs, ins, td, t)
                if pl is None or not self.commit(qs, pl):
                    self.rollback(journal)
                    return False
        finally:
            self._journal = None
        for qs, td, ins in placed:
            qs.reserved[td] = ins
        return True

    def do_sync(self, qs: _Queue, t: int):
        self.emit(qs, t, make("sync"))
        qs.last = None
        if t in self.notifies:  # a notify in this cycle releases it at once
            qs.free = t + 1
            return
        qs.parked = True
        qs.free = None
        qs.release_by = t + int(self.rng.integers(1, 12))

    def do_notify(self, qs: _Queue, t: int):
        self.emit(qs, t, make("notify"))
        qs.last = None
        qs.free = t + 1
        self.notifies.add(t)
        for other in self.queues:
            if other.parked:
                other.parked = False
                other.free = t + 1


def make_op(mnemonic: str) -> Opcode:
    return BY_MNEMONIC[mnemonic].opcode


def generate(cfg: ChipConfig | str, seed: int, *, cycles: int | None = None,
             p_idle: float = 0.06, p_held: float = 0.2, retries: int = 0,
             check: bool = True) -> RandomProgram:
    """A random legal program for `cfg` and the SRAM it starts from.

    Parameters
    ----------
    cfg
        The chip config (or a preset name).
    seed
        Everything follows from it: the same seed gives the same program and data.
    cycles
        Dispatch horizon in cycles (default: 32 + 4 x number of queues). Queues
        dispatch up to it; the program then drains.
    p_idle
        Chance that a free queue idles in a cycle (turns into ``nop``).
    p_held
        Chance that a VXM ``a`` / ``b`` operand is a held read (ISA 1.1) when the VXM
        has written a fitting stream group before the cycle. Held operands also let
        VXM instructions through when nothing fitting arrives on the streams, so the
        share in the program is higher: about 30% of ``a`` and 25% of ``b`` operands
        on ``tiny`` at the default 0.2.
    retries
        Fallback only: if the checker rejects the program (a bug here), try up to this
        many derived seeds instead of raising.
    check
        Run :func:`lpu.golden.check.check` on the result (always on in tests).

    Raises
    ------
    RandProgError
        Naming the seed, if the checker rejects the program.
    """
    cfg = load_config(cfg)
    if cycles is None:
        cycles = 32 + 4 * len(cfg.queues)
    errors = []
    for attempt in range(retries + 1):
        sub = seed if attempt == 0 else (seed * 1_000_003 + attempt) % (1 << 63)
        gen = _Gen(cfg, sub, cycles, p_idle=p_idle, p_held=p_held)
        words = gen.run()
        program = Program.from_instrs(cfg, words)
        ops = Counter(ins.info.mnemonic for lst in words.values() for ins in lst)
        rp = RandomProgram(cfg, seed, program, gen.mem, cycles, ops,
                           None if attempt == 0 else sub)
        if not check:
            return rp
        try:
            static_checker.check(cfg, program, name=f"random program (seed {seed})")
        except ScheduleError as e:
            errors.append(f"seed {sub}: {e}")
            continue
        if attempt:
            print(f"lpu.sim.programs.randprog: seed {seed} was rejected by the checker "
                  f"({errors[0]}); used sub-seed {sub}", file=sys.stderr)
        return rp
    raise RandProgError(f"config {cfg.name}, seed {seed}: the static checker rejected the "
                        f"generated program (a bug in lpu.sim.programs.randprog): {errors[0]}")
