"""The fast path of :meth:`~lpu.golden.chip.Chip.run`: a program as a dataflow graph,
evaluated one depth at a time.

Contract
--------
:func:`plan` turns a program's dispatch timeline (:mod:`lpu.golden.schedule`) into a
:class:`Plan` (the chip builds one when an untraced run starts). :meth:`Plan.run`
applies it to a chip's state (SRAM, MXM shadow and active weights, accumulators, stream
registers by diagonal, VXM-held values) and leaves that state, bit for bit, as the
cycle-by-cycle interpreter of :mod:`lpu.golden.chip` leaves it after running the whole
program untraced. It records no events; the cycle counts are :attr:`Plan.end` (skewed
cycles simulated) and :attr:`Plan.last` (the last skewed cycle with an effect). A plan
built with ``events=True`` also keeps every write it makes, and :meth:`Plan.events`
gives them, from the cell values, as the events a traced run of the interpreter
reports, in columns (:meth:`lpu.golden.chip.Chip.run_events`; lockstep's bulk
comparison, :mod:`lpu.sim.bulk`, compares them with the RTL's).

The plan never raises: every illegal event the interpreter would raise as it runs makes
it step aside, so that the chip runs the interpreter, which raises the error with its
cycle, queue, place and rule. A static one (two writers of a stream register, a read of
a register or held value that holds nothing, an SRAM bank used twice in a cycle) makes
:func:`plan` return None; a data-dependent one (a ``gather`` address outside the bank of
its base, a ``perm`` map entry not below VL) makes :meth:`Plan.run` return False and
leave the state untouched. A program with C2C instructions (ISA 1.3) has no plan: its
data comes from other chips, cycle by cycle (:mod:`lpu.golden.system`). :func:`plan`
also returns None for a program too large to hold in memory at once (:data:`MAX_BYTES`).

How
---
Nothing in the machine waits on data (docs/timing.md), so which write each read sees
is fixed by the program. Every row an instruction writes (to a stream register, an SRAM
word, a shadow or active weight row, an accumulator plane) is a *cell*, and every read
names a *place* and a cycle and sees the latest write to that place in an earlier
cycle (all reads of a cycle happen before its writes):

``sr``
    a stream register value, by direction, stream and diagonal (chip.py): the slice
    at ``p`` reading in cycle ``t`` sees, of the writes to the diagonal it reads, the
    latest before ``t``, which is the most downstream writer upstream of ``p``;
``held``
    a VXM-held value (ISA 1.1), by direction and stream: the VXM's latest write;
``mem``, ``shadow``, ``weights``, ``acc``
    an SRAM word, a shadow row, an active weight row, an accumulator slot's byte plane:
    the latest write, or the value the place held before the run.

A copy (a MEM ``read`` or ``write``, ``lw``, ``iw``, the stream output of ``mm``)
computes nothing: its cells stand for the cells it copies. Every other instruction is a
*node* that computes its cells from the cells it reads (:mod:`lpu.golden.ops`). A node's
depth is one more than the depth of the deepest node it reads from; the evaluator
computes all nodes of one depth and one kind in one numpy operation, so a program runs
in about (depth x kinds) operations however many instructions it dispatches.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from lpu.config import ChipConfig
from lpu.isa import OPS, E, Opcode, encode
from lpu.vectors import PLANES, from_planes, to_planes

from . import ops
from .schedule import Timeline, _step_operand, max_delay

__all__ = ["plan", "Plan", "MAX_BYTES"]

#: About the most memory (bytes) :func:`plan` lets a plan take; a longer program runs on
#: the interpreter.
MAX_BYTES = 1 << 30


#: Operands that may differ between the dispatches of one :class:`_Group`.
_VARYING = frozenset({"addr", "base", "row", "slot", "imm"})


@functools.cache
def _shared(op: Opcode) -> tuple[str, ...]:
    """The operands (and held-read flags) of `op` that one :class:`_Group` shares."""
    info = OPS[op]
    names = [o.name for o in info.operands if o.kind not in ("sr", "sw", "sw?")]
    return tuple(n for n in (*names, *info.held_flags) if n not in _VARYING)


def plan(cfg: ChipConfig, tl: Timeline, ring: int, *, events: bool = False) -> Plan | None:
    """Compile timeline `tl` for a chip whose stream registers are kept on `ring`
    diagonals (a power of two); None if the interpreter must run it (see above). With
    `events`, the plan also keeps every write, for :meth:`Plan.events`."""
    if not tl.dispatches:
        return None
    c2c = {q.index for q in cfg.queues if q.kind == "c2c"}
    if c2c and any(d.queue in c2c for d in tl.dispatches):
        return None  # C2C (ISA 1.3): a system of chips steps them cycle by cycle
    b = _Builder(cfg, tl, events)
    groups: dict = {}  # group key -> the dispatches of each of its words
    of_word: dict = {}  # (queue, word index) -> its dispatches (a repeat's: its copies)
    for d in tl.dispatches:
        ds = of_word.get((d.queue, d.index))
        if ds is None:
            ds = of_word[(d.queue, d.index)] = []
            groups.setdefault((d.queue, *_Group.key(d.instr)), []).append(ds)
        ds.append(d)
    size = sum(len(ds) * _bytes(cfg, key[1]) for key, words in groups.items() for ds in words)
    if size > MAX_BYTES:
        return None
    last = 0
    for key, words in groups.items():
        g = _Group(words)
        b.add(cfg.queues[key[0]], g)
        last = max(last, int(g.t.max()) + OPS[g.op].d(cfg.superlanes))
    p = b.finish(ring, end=last + 1, last=last + cfg.superlanes - 1)
    if p is not None and events:
        p.dispatches = _dispatch_columns(of_word)
    return p


def _dispatch_columns(of_word: dict) -> dict:
    """The dispatch events as columns, from the dispatches of each instruction word
    (a repeat's copies with it). Each word is encoded once; its copies differ only in
    the stepped operand, a plain bit field (an Amaranth struct field), so their words
    are the word with that field set, checked against :func:`lpu.isa.encode` at the
    smallest and the largest value (in between, every value fits the field too)."""
    cols = {k: [] for k in ("t", "queue", "index", "word")}
    for (q, index), ds in of_word.items():
        n = len(ds)
        ins = ds[0].instr
        field = _step_operand(ins)
        cols["t"].append(np.fromiter((d.t for d in ds), np.int64, n))
        cols["queue"].append(np.full(n, q, np.int64))
        cols["index"].append(np.full(n, index, np.int64))
        if field is None or n == 1:
            cols["word"].append(np.full(n, encode(ins), np.int64))
            continue
        v = np.fromiter((d.instr.args[field] for d in ds), np.int64, n)
        w0 = encode(ins.with_args(**{field: 0}))
        off = (w0 ^ encode(ins.with_args(**{field: 1}))).bit_length() - 1
        words = w0 | (v << off)
        lo, hi = int(np.argmin(v)), int(np.argmax(v))
        if any(int(words[i]) != encode(ds[i].instr) for i in (lo, hi)):
            words = np.fromiter((encode(d.instr) for d in ds), np.int64, n)
        cols["word"].append(words)
    return {k: np.concatenate(v) for k, v in cols.items()}


def _bytes(cfg: ChipConfig, op: Opcode) -> int:
    """About the most memory building and running the plan takes per dispatch of `op`
    (an estimate before it is built; measured: 740 bytes for the mix of ``lpu bench``)."""
    VL = cfg.vl
    if op == Opcode.GATHER:  # a read of every word of the bank
        return 64 * cfg.bank_words
    if op in (Opcode.IW, Opcode.LWI, Opcode.MM, Opcode.MMACC):  # a read of every weight row
        return 64 * VL + VL * VL
    if op == Opcode.TRANSPOSE:  # a source row and lane per lane
        return 32 * VL * VL
    return 1024


class _Group:
    """Dispatches of one queue that differ only in their cycles (``t``), stream
    registers, addresses, rows, accumulator slots and immediates: those as vectors.

    It holds them by word: the copies of a repeated word differ only in the cycle and
    the stepped operand, so the other operands are read once per word."""

    def __init__(self, words):
        self.first = words[0][0].instr
        self.op = self.first.op
        self._words = [ds[0].instr.args for ds in words]
        self._per_word = np.array([len(ds) for ds in words])
        self._all = [d for ds in words for d in ds]
        self.n = len(self._all)
        self.t = np.fromiter((d.t for d in self._all), np.int64, self.n)
        self._stepped = _step_operand(self.first)

    @staticmethod
    def key(ins) -> tuple:
        """What the dispatches of a group share: opcode, counts, held-read flags, shift
        or lane, whether ``mm`` emits."""
        a = ins.args
        return (ins.op, *[a[k] for k in _shared(ins.op)], a.get("dst", 0) is None)

    def __getitem__(self, name):
        """A shared operand."""
        return self.first.args[name]

    def col(self, name) -> np.ndarray:
        """A varying integer operand, ``[n]``."""
        if name == self._stepped:
            return np.fromiter((d.instr.args[name] for d in self._all), np.int64, self.n)
        per_word = np.fromiter((a[name] for a in self._words), np.int64, len(self._words))
        return np.repeat(per_word, self._per_word)

    def ref(self, name) -> tuple[np.ndarray, np.ndarray]:
        """A stream operand: its streams and directions, ``[n]`` each."""
        sd = np.array([a[name] for a in self._words], dtype=np.int64).reshape(-1, 2)
        sd = np.repeat(sd, self._per_word, axis=0)
        return sd[:, 0], sd[:, 1]


class _Places:
    """The writes to and reads of one kind of place: integer place keys, cycles, cells."""

    def __init__(self, span: int):
        self.span = span  # every cycle is below it
        self.w_key, self.w_t, self.w_cell = [], [], []
        self.r_key, self.r_t = [], []
        self.n_reads = 0

    def write(self, key, t, cells) -> None:
        key, t, cells = np.broadcast_arrays(key, t, cells)
        self.w_key.append(key.ravel())
        self.w_t.append(t.ravel())
        self.w_cell.append(cells.ravel())

    def read(self, key, t) -> np.ndarray:
        """Request reads of places `key` in cycles `t` (broadcast together); returns the
        request numbers, in that shape."""
        key, t = np.broadcast_arrays(key, t)
        self.r_key.append(key.ravel())
        self.r_t.append(t.ravel())
        first, self.n_reads = self.n_reads, self.n_reads + key.size
        return np.arange(first, self.n_reads).reshape(key.shape)

    def resolve(self):
        """The cell each read sees (-1: none), whether a place is written twice in one
        cycle, and (place key, cycle, cell) of the last write to each place."""
        wk, wt, wc = (_cat(x) for x in (self.w_key, self.w_t, self.w_cell))
        rk, rt = _cat(self.r_key), _cat(self.r_t)
        ws = wk * self.span + wt
        order = np.argsort(ws, kind="stable")
        ws, wk, wt, wc = ws[order], wk[order], wt[order], wc[order]
        twice = bool((ws[1:] == ws[:-1]).any())
        seen = np.full(rk.size, -1, dtype=np.int64)
        if wk.size:
            i = np.searchsorted(ws, rk * self.span + rt, side="left") - 1
            j = np.maximum(i, 0)
            hit = (i >= 0) & (wk[j] == rk)
            seen[hit] = wc[j[hit]]
        last = np.ones(wk.size, bool)
        last[:-1] = wk[1:] != wk[:-1]
        return seen, twice, (wk[last], wt[last], wc[last])


def _cat(xs) -> np.ndarray:
    return np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)


def _distinct(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of `x`, sorted, and how often each occurs (``np.unique``
    without the import of ``numpy.ma`` it costs on first use)."""
    x = np.sort(x)
    new = np.ones(x.size, dtype=bool)
    np.not_equal(x[1:], x[:-1], out=new[1:])
    first = np.flatnonzero(new)
    return x[first], np.diff(first, append=x.size)


@dataclass
class _Kind:
    """Nodes of one kind: the cells each writes ``[n, k]``, the cells it reads by operand
    (``[n, ...]``) and its static operands (``[n, ...]``)."""

    name: str  # "vxm:<OPCODE>", "lanes", "perm", "gather" or "mm"
    out: np.ndarray
    ins: dict
    extra: dict


class _Builder:
    """Collects the cells, copies, nodes and place accesses of a program, then links
    them (:meth:`finish`)."""

    def __init__(self, cfg: ChipConfig, tl: Timeline, events: bool = False):
        self.cfg = cfg
        # every write by event kind (docs/trace.md), kept for Plan.events: kind -> list
        # of (cycles, unit, dir, index, cells), one element per row written (acc: per
        # slot written, with the cells of its four byte planes)
        self.log = defaultdict(list) if events else None
        self.S, self.VL, self.P = cfg.superlanes, cfg.vl, len(cfg.positions)
        self.streams = cfg.streams
        self.vxm_pos = next(p.index for p in cfg.positions if p.kind == "vxm")
        span = tl.dispatches[-1].t + max_delay(cfg) + 2  # dispatches are in cycle order
        self.dspan = span + 2 * self.P + 2  # diagonals, offset by P to be non-negative
        self.places = {n: _Places(span) for n in _PLACES}
        mems = [q for q in cfg.queues if q.kind == "mem"]
        mxms = [q for q in cfg.queues if q.kind == "mxm"]
        self.unit = {q.index: i for qs in (mems, mxms) for i, q in enumerate(qs)}
        self.n_cells = 1  # cell 0 is a row of zeros
        self.leaves = {}  # state -> its first cell; the cells of its rows follow in key order
        for name, n in (("mem", len(mems) * cfg.mem_words), ("shadow", len(mxms) * self.VL),
                        ("weights", len(mxms) * self.VL),
                        ("acc", len(mxms) * cfg.mxm_acc_slots * PLANES)):
            self.leaves[name] = self.n_cells
            self.n_cells += n
        self.copies = []  # (cells, ref of the cells they copy)
        self.nodes = defaultdict(lambda: ([], defaultdict(list), defaultdict(list)))
        self.bank_use = {"r": [], "w": []}  # SRAM bank keys (slice * 2 + bank) * span + cycle
        self.span = span

    def cells(self, *shape) -> np.ndarray:
        n = int(np.prod(shape))
        c = np.arange(self.n_cells, self.n_cells + n).reshape(shape)
        self.n_cells += n
        return c

    # stream registers and held values -------------------------------------------------------
    def _sr_key(self, pos, ref, width, t):
        """Place keys ``[n, width]`` of streams ``ref .. +width`` at `pos` in cycles `t`:
        the diagonal a slice there reads (and writes) then."""
        s, dr = ref
        diag = np.where(dr == E, t - pos, t + pos) + self.P
        return self._lanes(ref, width) * self.dspan + diag[:, None]

    def _lanes(self, ref, width):
        s, dr = ref
        return (dr * self.streams + s)[:, None] + np.arange(width)[None, :]

    def sr_read(self, pos, ref, width, t, held=False):
        """A ref ``(place, request numbers [n, width])`` to what the slice at `pos` reads
        in cycles `t` (a VXM-held read if `held`)."""
        if held:
            return ("held", self.places["held"].read(self._lanes(ref, width), t[:, None]))
        return ("sr", self.places["sr"].read(self._sr_key(pos, ref, width, t), t[:, None]))

    def sr_write(self, pos, ref, t, cells):
        """Cells ``[n, width]`` written to streams ``ref ..`` at `pos` in cycles `t`."""
        width = cells.shape[1]
        if self.log is not None:
            s, dr = ref
            n = cells.shape[0]
            self._log("sr", t, np.full(n, pos), np.repeat(dr[:, None], width, axis=1),
                      s[:, None] + np.arange(width)[None, :], cells)
        self.places["sr"].write(self._sr_key(pos, ref, width, t), t[:, None], cells)
        if pos == self.vxm_pos:
            self.places["held"].write(self._lanes(ref, width), t[:, None], cells)

    def _log(self, kind, t, unit, dr, index, cells):
        """Writes of cells ``[n, k]`` in cycles `t` ``[n]``: one row per cell (``acc``:
        one per slot, its ``k`` = 4 byte planes)."""
        n, k = cells.shape
        if kind == "acc":
            shapes = ((t, (n,)), (unit, (n,)), (dr, (n,)), (index, (n,)), (cells, (n, k)))
            self.log[kind].append(tuple(np.broadcast_to(np.asarray(x), sh).copy()
                                        for x, sh in shapes))
            return
        t, unit = np.asarray(t)[:, None], np.asarray(unit)
        unit = unit[:, None] if unit.ndim else unit
        self.log[kind].append(tuple(np.broadcast_to(x, (n, k)).ravel()
                                    for x in (t, unit, np.asarray(dr), np.asarray(index),
                                              cells)))

    def node(self, kind, out, extra=None, **ins):
        outs, refs, statics = self.nodes[kind]
        outs.append(out)
        for name, ref in ins.items():
            refs[name].append(ref)
        for name, v in (extra or {}).items():
            statics[name].append(v)

    # instructions ---------------------------------------------------------------------------
    def add(self, q, g: _Group):
        """The dispatches of group `g` on queue `q`."""
        op, pos, VL, n, t = g.op, q.position, self.VL, g.n, g.t
        info = OPS[op]
        d = info.d(self.S)
        if q.kind == "mem":
            m = self.unit[q.index]
            bw, mw = self.cfg.bank_words, self.cfg.mem_words
            if op == Opcode.GATHER:  # reads the whole bank of base in cycle t + 1
                base = g.col("base")
                bank = base // bw
                self.bank_use["r"].append((m * 2 + bank) * self.span + t + 1)
                words = m * mw + (bank * bw)[:, None] + np.arange(bw)[None, :]
                out = self.cells(n, 1)
                self.node("gather", out, {"base": base},
                          idx=self.sr_read(pos, g.ref("idx"), 1, t),
                          bank=("mem", self.places["mem"].read(words, (t + 1)[:, None])))
                self.sr_write(pos, g.ref("dst"), t + d, out)
                return
            addr, cnt = g.col("addr"), g["count"]
            words = m * mw + addr[:, None] + np.arange(cnt)[None, :]
            bank = m * 2 + addr // bw
            cells = self.cells(n, cnt)
            if op == Opcode.READ:
                self.bank_use["r"].append(bank * self.span + t)
                self.copies.append((cells, ("mem", self.places["mem"].read(words, t[:, None]))))
                self.sr_write(pos, g.ref("dst"), t + d, cells)
            else:  # WRITE
                self.bank_use["w"].append(bank * self.span + t + d)
                self.copies.append((cells, self.sr_read(pos, g.ref("src"), cnt, t)))
                self.places["mem"].write(words, (t + d)[:, None], cells)
                if self.log is not None:
                    self._log("sram", t + d, m, 0, addr[:, None] + np.arange(cnt), cells)
            return
        if q.kind == "vxm":
            refs = {o.name: self.sr_read(pos, g.ref(o.name), o.width, t,
                                         held=bool(o.held and g[o.held]))
                    for o in info.reads}
            imm = g.col("imm")[:, None] if "imm" in g.first.args else np.zeros((n, 1), np.int64)
            out = self.cells(n, info.writes[0].width)
            self.node(f"vxm:{op.name}", out, {"imm": imm}, **refs)
            self.sr_write(pos, g.ref("dst"), t + d, out)
            return
        if q.kind == "mxm":
            x = self.unit[q.index]
            rows = x * VL + np.arange(VL)
            if op in (Opcode.LW, Opcode.LWI):
                cnt = g["count"]
                cells = self.cells(n, cnt)
                self.copies.append((cells, self.sr_read(pos, g.ref("src"), cnt, t)))
                rows_w = g.col("row")[:, None] + np.arange(cnt)
                self.places["shadow"].write(x * VL + rows_w, (t + 1)[:, None], cells)
                if self.log is not None:
                    self._log("wload", t + 1, x, 0, rows_w, cells)
            if op in (Opcode.IW, Opcode.LWI):  # the shadow as at the end of ti - 1, active
                ti = t if op == Opcode.IW else t + 2  # from ti + 1 (lwi: an iw at t + 2)
                cells = self.cells(n, VL)
                shadow = self.places["shadow"].read(rows[None, :], ti[:, None])
                self.copies.append((cells, ("shadow", shadow)))
                self.places["weights"].write(rows[None, :], ti[:, None], cells)
                if self.log is not None:  # the install: no data (cell 0, the zero row)
                    self._log("install", ti, x, 0, 0, np.zeros((n, 1), np.int64))
            if op in (Opcode.MM, Opcode.MMACC):  # mm adds its product to a row of zeros
                slot = x * self.cfg.mxm_acc_slots + g.col("slot")
                acc = slot[:, None] * PLANES + np.arange(PLANES)[None, :]
                prev = (("acc", self.places["acc"].read(acc, (t + d)[:, None]))
                        if op == Opcode.MMACC else (None, np.zeros((n, PLANES), np.int64)))
                out = self.cells(n, PLANES)
                w = self.places["weights"].read(rows[None, :], t[:, None])
                self.node("mm", out, x=self.sr_read(pos, g.ref("src"), 1, t), w=("weights", w),
                          prev=prev)
                self.places["acc"].write(acc, (t + d)[:, None], out)
                if self.log is not None:  # one event per slot: its four byte planes
                    self._log("acc", t + d, x, 0, g.col("slot"), out)
                if g["dst"] is not None:
                    cells = self.cells(n, PLANES)
                    self.copies.append((cells, (None, out)))
                    self.sr_write(pos, g.ref("dst"), t + d, cells)
            return
        # SXM: one node per row written; a "lanes" row takes lane j from cell src[j]
        if op == Opcode.TRANSPOSE:  # dst stream i, lane j = src stream j, lane i
            place, req = self.sr_read(pos, g.ref("src"), VL, t)
            src = np.broadcast_to(req[:, None, :], (n, VL, VL))
            cols = np.broadcast_to(np.arange(VL)[None, :, None], (n, VL, VL))
            out = self.cells(n, VL)
        else:
            cnt = g["count"]
            place, req = self.sr_read(pos, g.ref("src"), cnt, t)
            out = self.cells(n, cnt)
            if op == Opcode.PERM:
                mp, mreq = self.sr_read(pos, g.ref("map"), 2, t)
                self.node("perm", out.reshape(-1, 1), src=(place, req.reshape(-1, 1)),
                          map=(mp, np.repeat(mreq, cnt, axis=0)))
                self.sr_write(pos, g.ref("dst"), t + d, out)
                return
            src = np.broadcast_to(req[:, :, None], (n, cnt, VL))
            lane = ops.lane_map(op, g["lane" if op == Opcode.BCAST else "n"], VL)
            cols = np.broadcast_to(lane[None, None, :], (n, cnt, VL))
        self.node("lanes", out.reshape(-1, 1), {"cols": cols.reshape(-1, VL)},
                  src=(place, src.reshape(-1, VL)))
        self.sr_write(pos, g.ref("dst"), t + d, out)

    # linking --------------------------------------------------------------------------------
    def _bank_clash(self) -> bool:
        """An SRAM bank read twice, or read and written, in one cycle."""
        r, w = np.sort(_cat(self.bank_use["r"])), _cat(self.bank_use["w"])
        if not r.size:
            return False
        i = np.minimum(np.searchsorted(r, w), r.size - 1)
        return bool((r[1:] == r[:-1]).any() or (r[i] == w).any())

    def finish(self, ring: int, end: int, last: int) -> Plan | None:
        if self._bank_clash():
            return None
        seen, finals = {}, {}
        for name, pl in self.places.items():
            seen[name], twice, finals[name] = pl.resolve()
            if name in ("sr", "held"):
                if twice or (seen[name] < 0).any():
                    return None  # two writers; a read of nothing
            else:  # an unwritten place holds its value from before the run
                miss = seen[name] < 0
                seen[name][miss] = self.leaves[name] + _cat(pl.r_key)[miss]

        def cells_of(ref):
            place, idx = ref
            return idx if place is None else seen[place][idx]

        parent = np.arange(self.n_cells)
        for cells, ref in self.copies:
            parent[cells] = cells_of(ref)
        while True:  # a copy of a copy: to the cell first written
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up

        kinds, node_of, n_nodes = [], np.full(self.n_cells, -1), 0
        for name, (outs, refs, statics) in self.nodes.items():
            out = np.concatenate(outs)
            ins = {k: parent[np.concatenate([cells_of(r) for r in v])] for k, v in refs.items()}
            extra = {k: np.concatenate(v) for k, v in statics.items()}
            if name == "lanes":  # a lane that becomes 0 reads lane 0 of the zero row
                zero = extra["cols"] < 0
                ins["src"] = np.where(zero, 0, ins["src"])
                extra["cols"] = np.where(zero, 0, extra["cols"])
            node_of[out] = np.arange(n_nodes, n_nodes + out.shape[0])[:, None]
            n_nodes += out.shape[0]
            kinds.append(_Kind(name, out, ins, extra))
        depth = _depths(kinds, node_of, n_nodes)

        for name in ("mem", "shadow", "weights", "acc", "held"):
            key, t, cell = finals[name]
            finals[name] = (key, t, parent[cell])
        key, t, cell = finals.pop("sr")  # the last write to each register of the ring
        lane, diag = key // self.dspan, key % self.dspan - self.P
        slot = lane * ring + (diag & (ring - 1))
        order = np.lexsort((t, slot))
        keep = np.ones(order.size, bool)
        keep[:-1] = slot[order][1:] != slot[order][:-1]
        o = order[keep]
        finals["ring"] = (lane[o], slot[o] % ring, diag[o], parent[cell[o]])
        p = Plan(self.cfg, self.n_cells, self.leaves, kinds, depth, finals, end, last)
        if self.log is not None:
            p.log = {kind: tuple(np.concatenate(col) for col in zip(*parts, strict=True))
                     for kind, parts in self.log.items()}
            p.log = {kind: (t, unit, dr, index, parent[cells])
                     for kind, (t, unit, dr, index, cells) in p.log.items()}
        return p


_PLACES = ("sr", "held", "mem", "shadow", "weights", "acc")


def _depths(kinds, node_of, n_nodes) -> dict:
    """Depth of every node by kind: 0 if it reads only cells from before the run, else
    one more than the deepest node it reads from (levels of a topological sort)."""
    src, dst = [], []
    first = 0
    for k in kinds:
        n = k.out.shape[0]
        me = np.arange(first, first + n)
        for cells in k.ins.values():
            prod = node_of[cells.reshape(n, -1)]
            has = prod >= 0
            src.append(prod[has])
            dst.append(np.broadcast_to(me[:, None], prod.shape)[has])
        first += n
    src, dst = _cat(src), _cat(dst)
    pair, _ = _distinct(src * n_nodes + dst)  # each edge once
    src, dst = pair // n_nodes, pair % n_nodes
    indeg = np.bincount(dst, minlength=n_nodes)
    order = np.argsort(src, kind="stable")
    out_dst = dst[order]
    start = np.searchsorted(src[order], np.arange(n_nodes + 1))
    depth = np.zeros(n_nodes, dtype=np.int64)
    mark = np.zeros(n_nodes, dtype=np.int64)
    front, level = np.flatnonzero(indeg == 0), 0
    while front.size:
        depth[front] = level
        lo, hi = start[front], start[front + 1]
        cnt = hi - lo
        tot = int(cnt.sum())
        if not tot:
            break
        succ = out_dst[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(tot)]
        np.subtract.at(indeg, succ, 1)
        ready = succ[indeg[succ] == 0]  # a node once per edge from the front: keep one
        mark[ready] = np.arange(ready.size)
        front, level = ready[mark[ready] == np.arange(ready.size)], level + 1
    out, first = {}, 0
    for k in kinds:
        out[k.name] = depth[first:first + k.out.shape[0]]
        first += k.out.shape[0]
    return out


# -- evaluating ---------------------------------------------------------------------------


class Plan:
    """A program compiled for one config by :func:`plan`: cells, copies and nodes."""

    def __init__(self, cfg: ChipConfig, n_cells: int, leaves: dict, kinds: list[_Kind],
                 depth: dict, finals: dict, end: int, last: int):
        self.cfg = cfg
        self.n_cells = n_cells
        self.leaves = leaves
        self.kinds = kinds
        self.finals = finals  # state -> (place keys, cycles, cells) of the last writes
        self.end = end  #: skewed cycles the interpreter simulates
        self.last = last  #: the last skewed cycle with an effect on some superlane
        # nodes of each kind grouped by depth: order[k][bounds[k][i]:bounds[k][i + 1]]
        self.top = max((int(dp.max()) for dp in depth.values() if dp.size), default=-1) + 1
        self.order = {k.name: np.argsort(depth[k.name], kind="stable") for k in kinds}
        self.bounds = {k.name: np.searchsorted(depth[k.name][self.order[k.name]],
                                               np.arange(self.top + 1)) for k in kinds}
        self.log = None  # the writes, with plan(events=True)
        self.dispatches = None

    def values(self, chip) -> np.ndarray | None:
        """The value of every cell ``[n_cells, VL]`` for `chip`'s state (left untouched);
        None on a data-dependent error."""
        V = np.zeros((self.n_cells, chip.VL), dtype=np.uint8)
        rows = _state_rows(chip)
        for name, first in self.leaves.items():
            V[first:first + rows[name].shape[0]] = rows[name]
        for level in range(self.top):
            for k in self.kinds:
                b = self.bounds[k.name]
                if b[level] < b[level + 1]:
                    sel = self.order[k.name][b[level]:b[level + 1]]
                    if not _EVAL[k.name.partition(":")[0]](self.cfg, V, k, sel):
                        return None
        return V

    def run(self, chip, values: np.ndarray | None = None) -> bool:
        """Run on `chip`'s state; False (state untouched) on a data-dependent error.
        `values`: what :meth:`values` returned for this state (computed if None)."""
        V = self.values(chip) if values is None else values
        if V is None:
            return False
        self._commit(chip, V, _state_rows(chip))
        return True

    def events(self, values: np.ndarray) -> dict:
        """Every event of the run (what a traced run of the interpreter reports), by
        kind, as columns, from the cell values :meth:`values` returned; needs
        ``plan(events=True)``. Each row is one instruction's write of a whole vector in
        skewed cycle ``t``: superlane ``k``'s event is in real cycle ``t + k`` with bytes
        ``k * lanes .. (k + 1) * lanes`` of ``data`` (``acc``: of its lanes, 4 bytes
        each). Rows are in no particular order.

        ``dispatch``: ``t``, ``queue``, ``index``, ``word`` (superlane 0 only);
        ``sr``: ``t``, ``unit`` (position), ``dir``, ``index`` (stream), ``data`` [n, VL];
        ``sram``: ``t``, ``unit`` (MEM slice), ``index`` (address), ``data`` [n, VL];
        ``wload``: ``t``, ``unit`` (MXM plane), ``index`` (row), ``data`` [n, VL];
        ``install``: ``t``, ``unit``; ``acc``: ``t``, ``unit``, ``index`` (slot),
        ``data`` uint8 [n, VL, 4] (each lane's int32, little-endian)."""
        if self.log is None:
            raise ValueError("the plan was built without events=True")
        out = {"dispatch": dict(self.dispatches)}
        for kind in ("sr", "sram", "wload", "install", "acc"):
            empty = np.zeros(0, np.int64)
            t, unit, dr, index, cells = self.log.get(
                kind, (empty,) * 4 + (np.zeros((0, PLANES) if kind == "acc" else 0, np.int64),))
            col = {"t": t, "unit": unit}
            if kind == "sr":
                col["dir"] = dr
            if kind != "install":
                col["index"] = index
            if kind == "acc":  # one row per slot write: its four planes, lane-major
                col["data"] = np.ascontiguousarray(values[cells].transpose(0, 2, 1))
            elif kind != "install":
                col["data"] = values[cells]
            out[kind] = col
        return out

    def _commit(self, chip, V, rows) -> None:
        for name in ("mem", "shadow", "weights", "acc"):
            key, _, cell = self.finals[name]
            rows[name][key] = V[cell]
        chip.mem[:] = rows["mem"].reshape(chip.mem.shape)
        chip.shadow[:] = rows["shadow"].view(np.int8).reshape(chip.shadow.shape)
        chip.weights[:] = rows["weights"].view(np.int8).reshape(chip.weights.shape)
        n_mxm, slots = chip.acc.shape[:2]
        planes = rows["acc"].reshape(n_mxm, slots, PLANES, chip.VL)
        chip.acc[:] = from_planes(planes).view(np.int32)
        S = self.cfg.streams
        lane, idx, diag, cell = self.finals["ring"]
        chip.sr[lane // S, lane % S, idx] = V[cell]
        chip.stamp[lane // S, lane % S, idx] = diag
        key, t, cell = self.finals["held"]
        chip.held[key // S, key % S] = V[cell]
        chip.held_at[key // S, key % S] = t


def _state_rows(chip) -> dict:
    """Copies of the chip's state as rows of VL bytes, in the order of the place keys."""
    VL = chip.VL
    return {
        "mem": chip.mem.reshape(-1, VL).copy(),
        "shadow": chip.shadow.view(np.uint8).reshape(-1, VL).copy(),
        "weights": chip.weights.view(np.uint8).reshape(-1, VL).copy(),
        "acc": to_planes(chip.acc.view(np.uint32)).reshape(-1, VL),
    }


def _eval_vxm(cfg, V, k, sel) -> bool:
    op = Opcode[k.name.partition(":")[2]]
    V[k.out[sel]] = ops.vxm(op, lambda name: V[k.ins[name][sel]], k.extra["imm"][sel])
    return True


def _eval_lanes(cfg, V, k, sel) -> bool:
    V[k.out[sel, 0]] = V[k.ins["src"][sel], k.extra["cols"][sel]]
    return True


def _eval_perm(cfg, V, k, sel) -> bool:
    mp, bad = ops.perm_map(V[k.ins["map"][sel]])
    if bad.any():
        return False
    V[k.out[sel, 0]] = V[k.ins["src"][sel], mp]
    return True


def _eval_gather(cfg, V, k, sel) -> bool:
    base = k.extra["base"][sel]
    addrs, bad = ops.gather_addresses(cfg, base, V[k.ins["idx"][sel, 0]])
    if bad.any():
        return False
    word = addrs - (base // cfg.bank_words * cfg.bank_words)[:, None]
    cell = np.take_along_axis(k.ins["bank"][sel], word, axis=1)
    V[k.out[sel, 0]] = V[cell, np.arange(V.shape[1])]
    return True


def _eval_mm(cfg, V, k, sel) -> bool:
    VL = V.shape[1]
    step = max(1, (1 << 22) // (VL * VL))  # weights of at most 16 MiB (int32) at once
    for i in range(0, sel.size, step):
        s = sel[i:i + step]
        y = ops.mm(V[k.ins["x"][s, 0]].view(np.int8), V[k.ins["w"][s]].view(np.int8))
        y = from_planes(V[k.ins["prev"][s]]).view(np.int32) + y  # int32, wrapping
        V[k.out[s]] = to_planes(y.view(np.uint32))
    return True


_EVAL = {"vxm": _eval_vxm, "lanes": _eval_lanes, "perm": _eval_perm, "gather": _eval_gather,
         "mm": _eval_mm}
