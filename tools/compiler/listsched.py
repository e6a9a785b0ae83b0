"""The step scheduler: the operation graph of a step list-scheduled onto the chip.

Input: the :class:`~lpu.tools.compiler.graph.Graph` of one decode step (every chip
operation, vector by vector). Output: a :class:`~lpu.program.Program` whose run on the
golden chip leaves the LPU-exact logits in SRAM, plus the SRAM image the host writes
first. Nodes are placed in priority order (the longest latency from a node to the end of
the step first), each at the earliest cycle where everything it needs is free, so
independent work (the heads of a layer, the two MXM planes, the SXMs) interleaves and the
schedule follows the critical path.

Where a value is
----------------
Every produced value is, from its result cycle on:

* *held* at the VXM (VXM results, ISA 1.1): a later VXM operation reads it with a held
  read while no VXM write lands on its streams in between (a new result's streams are
  chosen to end no held value still to be read, where it can be);
* *flowing*: on its stream group, one position a cycle; a consumer downstream may read
  it in exactly the cycle it arrives (a value rotated three ways in a lane-reduction
  stage is computed twice more: a twin flowing the other way, and a third a cycle later);
* *in SRAM*: every value is also written by a MEM slice on its way (the least busy slice,
  or the fixed address of the KV cache, the scales or the logits), so any later consumer
  can read it: MEM read at ``t - 1 - distance``. A VXM result that every consumer read
  held gives that write back once its last consumer is placed.

The placement primitives (stream-register claims along every path, queue slots, SRAM
banks, SRAM read/write order) are :class:`~lpu.tools.compiler.sched.Scheduler`'s; the
static checker verifies the result.

Persistent data
---------------
Weight blocks (``VL x VL`` int8) are spread four rows per MEM slice over ``VL/4`` slices
of the hemisphere of the MXM plane that uses them, so one ``lwi`` (ISA 1.2: load and
install, no ``iw``) loads all ``VL`` rows in one cycle; the KV cache (K blocks read
transposed through the SXM, V blocks as weights) likewise, the K blocks of a KV head
alternating hemispheres block by block, its V blocks in one hemisphere; host vectors
(constants, norm weights, scales) have a copy in both hemispheres. The output tiles of
all matrices take the two planes in turn. Tiles that read one block (the sequences of a
batch for a weight block, the query heads of a KV head for a KV block) are placed
together: one ``lwi`` a block, an ``mm`` each.

MXM tiles
---------
A plane takes two queue slots a block (``lwi``, ``mm``); its tiles go in one after the
other, each placed as its inputs are (a block once its input is placed, the last when
the tile is ready), and a tile of many blocks shares its plane with the next tile of
the same inputs (block by block, an accumulator slot each), so neither waits for the
last input to start.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.errors import LpuError
from lpu.isa import BY_MNEMONIC, E, W, make

from .graph import Graph, GraphOps, Latency, block_slots, trace_step
from .kernels import MemAlloc, Tensor
from .sched import Flow, SchedError, Scheduler

# A job of several tiles (kt-major, an accumulator slot each) only for tiles of many
# blocks, whose inputs arrive over a long span (the embedding's one-hot vectors); two
# tiles a job. Measured on the shipped model: jobs for the down projection's ten blocks,
# or of three or four tiles, cost cycles.
_JOB_MIN_BLOCKS = 12
_JOB_TILES = 2

__all__ = ["ListScheduler", "ScheduledStep", "schedule_step", "SEND_LINK", "RECV_LINK"]

#: The C2C links a chip sends east over and receives from the west on (a ``ring``
#: cables chip k's link 1 to chip k+1's link 0): a pipeline's hops and the ring
#: exchanges of a tensor-parallel group.
SEND_LINK, RECV_LINK = 1, 0

_WIDTH = {"i8": 1, "i32": 4, "f32": 4}


@dataclass
class Avail:
    """Where a value can be had (see the module docstring)."""

    width: int
    r: int = -1  # result cycle at the producer
    held: tuple[int, int] | None = None  # (dir, first stream) at the VXM
    reserved: bool = False  # held streams reserved until the last consumer is placed
    sram: list = field(default_factory=list)  # [(slice, addr, first read cycle)]
    flows: list = field(default_factory=list)  # [Flow]
    last_read: int = -1  # latest cycle a placed consumer reads it
    tensor: object = None  # the temporary SRAM words of the copy, freed after the last use
    extra: list = field(default_factory=list)  # the words of further copies, likewise
    used: bool = False  # a consumer took it from a stream or SRAM (not a held read)
    store: tuple | None = None  # (slice, addr, Flow) of the SRAM write of a VXM result


@dataclass
class ScheduledStep:
    program: object
    image: list  # [(Tensor, array)]
    logits: Tensor
    tokens: list  # [Tensor]: every copy of the token input the host writes
    instructions: int
    sram_words: int
    seconds: float
    result: dict = field(default_factory=dict, repr=False)  # node -> scheduled result cycle
    graph: object = field(default=None, repr=False)
    placed: dict = field(default_factory=dict, repr=False)  # node -> (queue, dispatch cycle)
    logits_per_seq: list = field(default_factory=list)  # [Tensor] per sequence of a batch
    token_groups: list = field(default_factory=list)  # [[Tensor]] per sequence
    stage_in: Tensor | None = None  # a pipeline stage's input tensor (schedule_step)


def _sorted_remove(lst: list, x) -> None:
    """Remove one `x` from the sorted list `lst` (bisect, not a linear search)."""
    i = bisect.bisect_left(lst, x)
    if i < len(lst) and lst[i] == x:
        del lst[i]
    else:  # pragma: no cover - the undo journal only removes what it added
        lst.remove(x)


class _Held:
    """The VXM's held values per stream (dir, stream): the cycles the VXM writes it, which
    value each write holds, and the cycles no write may land (a held value still to be
    read; open while its last reader is not placed)."""

    def __init__(self):
        self.writes: dict[tuple[int, int], list[int]] = {}  # sorted write cycles
        self.owner: dict[tuple[int, int], list[tuple[int, int]]] = {}  # sorted (cycle, node)
        self.prot: dict[tuple[int, int], dict[int, int]] = {}  # cycle -> reservations
        self.open: dict[tuple[int, int], list[int]] = {}  # first cycles of open ones
        self.last_prot: dict[tuple[int, int], int] = {}  # latest cycle ever protected

    def can_write(self, d, s, w, t) -> bool:
        prot, open_ = self.prot, self.open
        for k in range(s, s + w):
            pk = prot.get((d, k))
            if pk and pk.get(t):
                return False
            for lo in open_.get((d, k), ()):
                if lo <= t:
                    return False
        return True

    def clean_until(self, d, s, w, r, t) -> bool:
        """No write to the streams in r+1 .. t-1 (a held read at t of a write at r)."""
        for k in range(s, s + w):
            lst = self.writes.get((d, k))
            if lst:
                i = bisect.bisect_right(lst, r)
                if i < len(lst) and lst[i] < t:
                    return False
        return True

    def later(self, d, s, w, r) -> bool:
        """Whether a write or a reservation is already placed after cycle r."""
        for k in range(s, s + w):
            lst = self.writes.get((d, k))
            if lst and lst[-1] > r:
                return True
            if self.last_prot.get((d, k), -1) > r:
                return True
            if any(lo > r for lo in self.open.get((d, k), ())):
                return True
        return False

    def owner_before(self, d, k, t):
        """The node whose value stream (d, k) holds at cycle t (written before t)."""
        lst = self.owner.get((d, k))
        if not lst:
            return None
        i = bisect.bisect_left(lst, (t, -1)) - 1
        return lst[i][1] if i >= 0 else None


class ListScheduler:
    """Schedules one step graph (see the module docstring)."""

    SHARE_COST = 4
    DUP = True

    def __init__(self, cfg: ChipConfig, g: Graph, gops: GraphOps, *, max_wait: int = 3000):
        self.cfg = cfg
        self.g = g
        self.gops = gops
        self.vl = cfg.vl
        self.S = cfg.superlanes
        self.lat = Latency(cfg)
        self.s = Scheduler(cfg)
        self.alloc = MemAlloc(cfg)
        self.alloc.free_at = self._free_at
        self.image: list[tuple[Tensor, np.ndarray]] = []
        self.max_wait = max_wait
        self.vxm = cfg.position("vxm").index
        self.alus = [q.name for q in cfg.queues if q.kind == "vxm"]
        self.mem_names = [q.name for q in cfg.queues if q.kind == "mem"]
        self._slice_at = {q.position: q.name for q in cfg.queues if q.kind == "mem"}
        self.held = _Held()
        self.av: dict[int, Avail] = {}
        self.consumers: dict[int, list[int]] = {n.id: [] for n in g.nodes}
        for n in g.nodes:
            for a in n.args:
                self.consumers[a].append(n.id)
        self.pending = {i: len(c) for i, c in self.consumers.items()}
        self.home: dict[int, Tensor] = {}
        self.token_tensor: Tensor | None = None
        self.token_tensors: list[Tensor] = []  # every copy of every sequence's token
        self.token_groups: list[list[Tensor]] = []  # per sequence: the token's copies
        self.logits: Tensor | None = None
        self.stage_in: Tensor | None = None  # a pipeline stage's input (place_data)
        self.blocks: dict = {}  # block key -> [(slice, addr)] x VL/4
        self.tile_hemi: dict = {}  # (matrix, output tile) -> hemisphere of its plane
        self.plane_free: dict[str, int] = {}
        self.why: dict | None = None  # node -> {reason: cycles lost}, when debugging
        self.placed: dict[int, tuple[str, int]] = {}  # node -> (queue, dispatch cycle)
        # held-only results (streams reserved until the last consumer is placed): off,
        # the reservations cost more than they save now that a result read only held
        # gives its SRAM write back (_release_store); at most this many per direction
        self.open_holds = {E: 0, W: 0}
        self.max_holds = 0
        self._instrs: dict = {}  # (mnemonic, operands, flags) -> Instr

    # -- persistent data ----------------------------------------------------------------
    def _hemi_slices(self, h: str) -> list[str]:
        return [m for m in self.mem_names if m.startswith(f"mem_{h}")]

    def _place_block(self, key, rows: np.ndarray, hemi: str):
        vl = self.vl
        parts = []
        for c in range(vl // 4):
            t = self.alloc.alloc(4, "i8", slice=f"mem_{hemi}{c}", fresh=True)
            parts.append((t.slice, t.addr))
            if rows is not None:
                self.image.append((Tensor(t.slice, t.addr, 4, "i8"), rows[4 * c:4 * c + 4]))
            self.s.mark_ready(t.slice, t.addr, 4)
        self.blocks[key] = (parts, hemi)

    def _host_vec(self, vec: np.ndarray, dtype: str, slices) -> list:
        out = []
        for sl in slices:
            t = self.alloc.alloc(1, dtype, slice=sl, fresh=True)
            arr = np.asarray(vec).reshape(1, -1)
            self.image.append((t, arr.astype(np.uint8) if dtype == "i8" else arr))
            self.s.mark_ready(t.slice, t.addr, t.n * t.words)
            out.append((t.slice, t.addr, 0))
        return out

    def place_data(self, model):
        cfg, vl = self.cfg, self.vl
        if cfg.mem_slices < vl // 4 or cfg.streams < vl:
            raise SchedError(f"the step scheduler needs mem_slices >= VL/4 and streams >= VL "
                             f"(config {cfg.name}: {cfg.mem_slices}, {cfg.streams}, VL {vl})")
        mats = {k: (m, how) for k, (m, how) in self.gops._blocks.items()}
        # weight blocks, in the hemisphere of their plane: the output tiles of the
        # matrices taken in turn (tile i of all of them on plane i % 2), so matrices of
        # an odd number of tiles that share an input (k and v) still split evenly
        turn = 0
        for wid, (w, how) in mats.items():
            K_, N_ = w.shape
            for nt in range(N_ // vl):
                if how != "spread":
                    self.tile_hemi[(wid, nt)] = "we"[(turn + nt) % 2]
            turn += 0 if how == "spread" else N_ // vl
            for kt in range(K_ // vl):
                for nt in range(N_ // vl):
                    blk = w[kt * vl:(kt + 1) * vl, nt * vl:(nt + 1) * vl]
                    hemi = "we"[kt % 2] if how == "spread" else self.tile_hemi[(wid, nt)]
                    self._place_block(("w", wid, kt, nt), blk.astype(np.int8).view(np.uint8),
                                      hemi)
        # the KV cache: blocks spread like weights, scales fp32 vectors
        pc = self.gops.prepared.cache
        nbmax = pc["max_pos"] // vl
        self.scale_tensors = {}
        # (K blocks alternate hemispheres, so a head's scores use both planes and both
        # SXMs transpose; the V blocks of a KV head, one chain of products, sit together
        # in the other hemisphere: a head's products overlap the next head's scores)
        for li in range(pc["layers"]):
            for gi in range(pc["kv_heads"]):
                h = li * pc["kv_heads"] + gi
                for b in range(nbmax):
                    self._place_block(("k", li, gi, b), None, "we"[(h + b) % 2])
                    self._place_block(("v", li, gi, b), None, "we"[(h + 1) % 2])
                for which in ("ks", "vs"):
                    t = self.alloc.alloc(nbmax, "f32", fresh=True)
                    self.scale_tensors[(which, li, gi)] = t
                    self.s.mark_ready(t.slice, t.addr, t.n * t.words)
        # a pipeline stage's input and output: at the same words at every position (a
        # wavefront reads the output of one step's program while the next is loaded)
        staged = getattr(self.g, "stage", None) is not None
        if staged:
            self._place_outputs()
            if self.gops.input_nodes:
                t = self.alloc.alloc(len(self.gops.input_nodes), "f32",
                                     slice=self.mem_names[0], fresh=True)
                self.s.mark_ready(t.slice, t.addr, t.n * t.words)
                self.stage_in = t
        # host vectors: a copy near the VXM in each hemisphere (rotating over the slices)
        rr = 0
        ws, es = self._hemi_slices("w"), self._hemi_slices("e")
        for n in self.g.nodes:
            if n.kind != "host":
                continue
            a = Avail(_WIDTH[n.dtype], r=0)
            if n.op == "cache":
                m = n.meta
                t = self.scale_tensors[(m["cache"], m["layer"], m["g"])]
                a.sram = [(t.slice, t.vec(m["block"]), 0)]
            elif n.op == "token":  # the host writes it into two slices per hemisphere
                k = len(self.token_groups)
                sl = [ws[(k + i) % len(ws)] for i in range(2)] + \
                     [es[(k + i) % len(es)] for i in range(2)]
                a.sram = self._host_vec(self.g.host_data[n.id], "f32", sl)
                self.token_groups.append([Tensor(s_, addr, 1, "f32") for s_, addr, _ in a.sram])
                self.token_tensors = [t_ for grp in self.token_groups for t_ in grp]
                self.token_tensor = self.token_tensors[0]
            elif n.op == "stage_in":  # a pipeline stage's input: written over a C2C link
                a.sram = [(self.stage_in.slice,
                           self.stage_in.vec(self.gops.input_nodes.index(n.id)), 0)]
            elif n.op == "const":  # used all over the step: copies in both hemispheres
                uses = len(self.consumers[n.id])
                k = 4 if uses >= 16 else 2
                sl = [ws[(rr + i) % len(ws)] for i in range(k // 2)] + \
                     [es[(rr + i) % len(es)] for i in range(k // 2)]
                rr += 1
                a.sram = self._host_vec(self.g.host_data[n.id], n.dtype, sl)
            else:  # weights, scales, masks, RoPE tables: used once or twice
                sl = [self.mem_names[rr % len(self.mem_names)]]
                rr += 1
                a.sram = self._host_vec(self.g.host_data[n.id], n.dtype, sl)
            self.av[n.id] = a
        # fixed homes: the scale vectors updated by kv_write, and the logits
        for (which, li, gi, b), nid in pc["scales"].items():
            if self.g.nodes[nid].kind == "vxm":
                t = self.scale_tensors[(f"{which}s", li, gi)]
                self.home[nid] = Tensor(t.slice, t.vec(b), 1, "f32")
        if not staged:
            self._place_outputs()

    def _place_outputs(self):
        """The fixed homes of the step's outputs (the logits, one tensor a sequence)."""
        outs = getattr(self.g, "outputs", None) or [self.g.output]
        self.logits_per_seq = []
        for b, out in enumerate(outs):
            lg = self.alloc.alloc(len(out), "f32", slice=self.mem_names[b % len(self.mem_names)],
                                  fresh=True)
            self.logits_per_seq.append(lg)
            for i, nid in enumerate(out):
                self.home[nid] = Tensor(lg.slice, lg.vec(i), 1, "f32")
        self.logits = self.logits_per_seq[0]

    def _free_at(self, slice_name: str, addr: int, words: int) -> int:
        s = self.s
        t = 0
        for a in range(addr, addr + words):
            t = max(t, s.lastread.get((slice_name, a), -1) + 1, s.ready.get((slice_name, a), 0))
        return t

    # -- priorities ------------------------------------------------------------------------
    def ranks(self) -> dict[int, int]:
        lat = self.lat
        rank: dict[int, int] = {}
        unit = {"host": "mem", "vxm": "vxm", "sxm": "sxm", "mm": "mxm", "mmt": "mxm",
                "store": "vxm", "xchg": "sxm"}
        slots = block_slots(self.cfg)[1]  # queue slots of one weight block on a plane
        # a KV row stored this step is read by its products after the SRAM write lands
        # (through the SXM for q.K^T; as graph.critical_path counts it)
        via = {"mmt": lat.hop("mem", "sxm") + lat.d("transpose") + lat.hop("sxm", "mxm"),
               "mm": lat.hop("mem", "mxm")}
        # (one sequence only: a batch is throughput-bound, and every sequence's KV rows
        # raised ahead keeps more temporaries live than SRAM holds, batch 8 on small)
        sharing = Counter(n.meta.get("share") for n in self.g.nodes
                          if n.kind in ("mm", "mmt"))

        def per_block(n) -> int:
            """Plane cycles a block of tile `n` takes: a job's tiles (`_JOB_TILES` of many
            blocks, not a batch's group) share the plane block by block (run)."""
            job = len(n.args) >= _JOB_MIN_BLOCKS and sharing[n.meta.get("share")] == 1
            return slots * (_JOB_TILES if job else 1)

        after: dict[int, list[int]] = {}
        for n in self.g.nodes if len(getattr(self.g, "outputs", None) or [0]) == 1 else ():
            for dep in n.deps:
                after.setdefault(dep, []).append(n.id)
        for n in reversed(self.g.nodes):
            if n.kind == "vxm" or n.kind == "store":
                d = lat.d(n.op if n.kind == "vxm" else "mov")
            elif n.kind == "sxm":
                d = lat.d("rot")
            elif n.kind == "xchg":
                d = self.cfg.c2c_latency + 1
            elif n.kind in ("mm", "mmt"):
                d = lat.d("mm") + per_block(n) * len(n.args)
            else:
                d = 0
            best = 0
            for c in self.consumers[n.id]:
                m = self.g.nodes[c]
                r = rank[c] + lat.hop(unit[n.kind], unit[m.kind])
                if m.kind in ("mm", "mmt"):  # the input of block k is needed k blocks in
                    r -= per_block(m) * m.args.index(n.id)
                best = max(best, r)
            for c in after.get(n.id, ()):
                best = max(best, rank[c] + 1 + via[self.g.nodes[c].kind] + 3)
            rank[n.id] = best + d
        return rank

    # -- operands ----------------------------------------------------------------------------
    def earliest(self, a: int, pos: int) -> int:
        """First cycle a consumer at `pos` could read value `a`."""
        av = self.av[a]
        best = 1 << 30
        if av.held is not None and pos == self.vxm:
            best = av.r + 1
        for f in av.flows:
            try:
                best = min(best, f.arrives(pos))
            except SchedError:
                pass
        for sl, _addr, ready in av.sram:
            p = self.s.qpos[sl]
            if p != pos:
                best = min(best, ready + 1 + abs(pos - p))
        return best

    def deliver(self, a: int, pos: int, t: int, *, vxm: bool):
        """Claim a way for value `a` to be read at `pos` in cycle `t`: ``("held", ref)``,
        ``("stream", ref)``, or None. Call inside a transaction."""
        av = self.av[a]
        s = self.s
        w = av.width
        if vxm and av.held is not None and av.r < t:
            d, s0 = av.held
            if av.reserved:
                self._set_last_read(av, t)
                return "held", (s0, d)
            if self.held.clean_until(d, s0, w, av.r, t):
                self._reserve(d, s0, w, av.r + 1, t - 1)
                return "held", (s0, d)
        if av.reserved:
            return None  # only held: wait for a cycle after the result
        for f in av.flows:
            try:
                if f.arrives(pos) == t and s.extend(f, pos):
                    self._set_used(av)
                    return "stream", f.ref
            except SchedError:
                continue
        # from SRAM: nearest copy first
        for sl, addr, ready in sorted(av.sram, key=lambda c: abs(s.qpos[c[0]] - pos)):
            p = s.qpos[sl]
            if p == pos:
                continue
            tr = t - 1 - abs(pos - p)
            if tr < ready or tr < 0:
                continue
            dirn = E if pos > p else W
            grp = self._group(dirn, w, p, tr + 1, pos)
            if grp is None:
                continue
            f = s.try_read(sl, addr, w, tr, dirn, grp, [pos])
            if f is not None:
                self._set_used(av)
                return "stream", f.ref
        return None

    def _set_used(self, av: Avail):
        if not av.used:
            av.used = True
            self._undo(lambda: setattr(av, "used", False))

    def _unhold(self, d):
        self.open_holds[d] -= 1

    def _set_last_read(self, av: Avail, t: int):
        old = av.last_read
        if t > old:
            av.last_read = t
            self._undo(lambda: setattr(av, "last_read", old))

    def _group(self, dirn, width, pos, t, far):
        """A free stream group for a value written at (pos, t) read at `far`; for writes
        at the VXM also free of held reservations."""
        return self._group_cost(dirn, width, pos, t, far)[0]

    def _group_cost(self, dirn, width, pos, t, far):
        """(group, how many of its streams hold a value still to be read) or (None, 0);
        the cheapest group."""
        best, best_cost = None, 0
        for s0 in range(0, self.cfg.streams - width + 1, 4 if width == 4 else 1):
            if not self.s.path_free(dirn, s0, width, pos, t, far):
                continue
            if pos != self.vxm:
                return s0, 0
            if not self.held.can_write(dirn, s0, width, t):
                continue
            cost = self._clobber_cost(dirn, s0, width, t)
            if cost == 0:
                return s0, 0
            if best is None or cost < best_cost:
                best, best_cost = s0, cost
        return best, best_cost

    def _clobber_cost(self, d, s0, w, t) -> int:
        """How many streams of the group hold, at cycle t, a value with consumers still
        to place (a write there would end its held life)."""
        cost = 0
        for k in range(s0, s0 + w):
            own = self.held.owner_before(d, k, t)
            if own is not None and own >= 0 and self.pending.get(own, 0) > 0:
                cost += 1
        return cost

    def _reserve(self, d, s0, w, lo, hi):
        """No VXM write to the streams in cycles lo..hi (hi None: until closed)."""
        for k in range(s0, s0 + w):
            if hi is None:
                lst = self.held.open.setdefault((d, k), [])
                lst.append(lo)
                self._undo(lambda lst=lst, lo=lo: lst.remove(lo))
            elif hi >= lo:
                prot = self.held.prot.setdefault((d, k), {})
                for c in range(lo, hi + 1):
                    prot[c] = prot.get(c, 0) + 1
                lp = self.held.last_prot  # conservative: not lowered by an undo
                lp[(d, k)] = max(lp.get((d, k), -1), hi)
                self._undo(lambda prot=prot, lo=lo, hi=hi: self._unprotect(prot, lo, hi))

    @staticmethod
    def _unprotect(prot, lo, hi):
        for c in range(lo, hi + 1):
            prot[c] -= 1

    def _undo(self, fn):
        if self.s._journal is not None:
            self.s._journal.append(("undo", fn))

    def _note_write(self, d, s0, w, t, nid=None):
        for k in range(s0, s0 + w):
            lst = self.held.writes.setdefault((d, k), [])
            bisect.insort(lst, t)
            self._undo(lambda lst=lst, t=t: _sorted_remove(lst, t))
            own = self.held.owner.setdefault((d, k), [])
            item = (t, -1 if nid is None else nid)
            bisect.insort(own, item)
            self._undo(lambda own=own, item=item: _sorted_remove(own, item))

    # -- results -------------------------------------------------------------------------------
    def _store_targets(self, nid: int, pos: int, r: int):
        """MEM slices that could store a result written at `pos` in cycle `r`: the fixed
        home, or slices by distance (those toward the consumers' hemisphere first)."""
        if nid in self.home:
            return [self.home[nid]]
        w = _WIDTH[self.g.nodes[nid].dtype]
        slots_taken = self.s.slots_taken

        def load(m):  # the slice's busy dispatch slots around the cycles it would be used
            c = r + abs(self.s.qpos[m] - pos)
            return slots_taken(m, c - 6, c + 6)

        if pos != self.vxm:  # an SXM or MXM result flows to the VXM: store it on the way
            on_path = [m for m in self.mem_names
                       if min(pos, self.vxm) < self.s.qpos[m] < max(pos, self.vxm)]
            return [(m, w) for m in sorted(
                on_path, key=lambda m: load(m) + abs(self.s.qpos[m] - self.vxm))]
        want = self._want_hemi(nid)
        # slices holding the other operands of its consumers: one read a cycle there
        taken = set()
        for c in self.consumers[nid]:
            for a in self.g.nodes[c].args:
                if a != nid and a in self.av and self.g.nodes[a].kind != "host":
                    taken.update(sl for sl, _, _ in self.av[a].sram)

        cands = sorted(self.mem_names, key=lambda m: (
            (want is not None and not m.startswith(f"mem_{want}")),
            load(m) + abs(self.s.qpos[m] - pos) + self.SHARE_COST * (m in taken)))
        return [(m, w) for m in cands]

    def _want_hemi(self, nid: int) -> str | None:
        for c in self.consumers[nid]:
            h = self._unit_hemi(self.g.nodes[c])
            if h is not None:
                return h
        return None

    def _unit_hemi(self, n) -> str | None:
        if n.kind in ("mm", "mmt"):
            return self._plane_of(n)[-2]
        if n.kind == "sxm":
            return n.meta.get("hemi")
        return None

    def _vxm_only(self, nid: int) -> bool:
        """Whether every consumer of the value is a VXM operation (a held read can serve
        them all) and it has no fixed home in SRAM."""
        if nid in self.home or not self.consumers[nid]:
            return False
        for c in self.consumers[nid]:
            m = self.g.nodes[c]
            if m.kind not in ("vxm", "store"):
                return False
            srcs = [o for o in BY_MNEMONIC[m.op if m.kind == "vxm" else "mov"].operands
                    if o.kind == "sr"]
            if any(a == nid and not o.held for o, a in zip(srcs, m.args, strict=True)):
                return False  # read as an operand without a held form (sel's c)
        return True

    def _emit_held_only(self, nid: int, r: int):
        """Write the result at the VXM only, on streams whose held value nothing will
        overwrite: reserved from r+1 until the last consumer is placed. Returns (dir,
        stream) or None (no such streams free)."""
        w = _WIDTH[self.g.nodes[nid].dtype]
        s = self.s
        for dirn in sorted((E, W), key=lambda d: self.open_holds[d]):
            if self.open_holds[dirn] >= self.max_holds:
                continue  # keep streams free for results that go to SRAM
            for s0 in range(0, self.cfg.streams - w + 1, 4 if w == 4 else 1):
                keys = [(dirn, k, self.vxm, r) for k in range(s0, s0 + w)]
                if not s._free(keys) or not self.held.can_write(dirn, s0, w, r):
                    continue
                if self.held.later(dirn, s0, w, r):
                    continue  # a later write is already placed: the hold could not last
                s._claim(keys)
                self._note_write(dirn, s0, w, r, nid)
                self._reserve(dirn, s0, w, r + 1, None)
                self.open_holds[dirn] += 1
                self._undo(lambda d=dirn: self._unhold(d))
                return dirn, s0
        return None

    def _emit_result(self, nid: int, pos: int, r: int, *, dirs=(E, W)):
        """Pick the result's stream group and the MEM slice that stores it; claims the
        path and the write. Returns (dir, stream, Flow) or None."""
        s = self.s
        w = _WIDTH[self.g.nodes[nid].dtype]

        at_vxm = pos == self.vxm
        groups = {}  # dir -> stream groups writable at the VXM, in stream order
        costs = {}  # (dir, group) -> clobber cost, computed when first needed
        step = 4 if w == 4 else 1

        def group_cost(dirn, p):  # = self._group_cost(dirn, w, pos, r, p)
            if not at_vxm:
                return self._group_cost(dirn, w, pos, r, p)
            if dirn not in groups:
                groups[dirn] = [s0 for s0 in range(0, self.cfg.streams - w + 1, step)
                                if self.held.can_write(dirn, s0, w, r)]
            best, best_cost = None, 0
            for s0 in groups[dirn]:
                if not s.path_free(dirn, s0, w, pos, r, p):
                    continue
                cost = costs.get((dirn, s0))
                if cost is None:
                    cost = costs[(dirn, s0)] = self._clobber_cost(dirn, s0, w, r)
                if cost == 0:
                    return s0, 0
                if best is None or cost < best_cost:
                    best, best_cost = s0, cost
            return best, best_cost

        def candidates():  # targets whose stream group ends no held value still to be
            later = []  # read first, then the others
            for tgt in self._store_targets(nid, pos, r):
                sl = tgt.slice if isinstance(tgt, Tensor) else tgt[0]
                p = s.qpos[sl]
                dirn = E if p > pos else W
                if dirn not in dirs:
                    continue
                grp, cost = group_cost(dirn, p)
                if grp is None:
                    continue
                if cost:
                    later.append((tgt, sl, p, dirn, grp))
                else:
                    yield tgt, sl, p, dirn, grp
            yield from later

        for tgt, sl, p, dirn, grp in candidates():
            addr = tgt.addr if isinstance(tgt, Tensor) else None
            s.begin()
            flow = Flow(dirn, grp, w, pos, r)
            s._claim(s._path(flow, p))
            s._set_claimed(flow, p)
            if addr is None:
                t_arr = r + abs(p - pos)
                try:
                    tt = self.alloc.alloc(1, "i8" if w == 1 else "f32", slice=sl, when=t_arr)
                except SchedError:  # this slice is full: try the next
                    s.rollback()
                    continue
                addr = tt.addr
                self._undo(lambda tt=tt: self.alloc.free(tt))
            else:
                tt = None
            if s.try_write(sl, addr, flow):
                s.commit()
                return dirn, grp, flow, (sl, addr, r + abs(p - pos) + 2), tt
            s.rollback()
        return None

    def _dup_wanted(self, nid: int) -> bool:
        return sum(self.g.nodes[c].kind in ("vxm", "store") for c in self.consumers[nid]) >= 3

    def _second_copy(self, nid: int, flow: Flow, sl: str):
        """A second SRAM copy of a VXM result, written by the next slice its flow passes
        (a consumer whose other operand sits in the first slice reads this one).
        Returns ((slice, addr, first read), tensor) or None (nothing claimed)."""
        s = self.s
        p = s.qpos[sl] + (1 if flow.dir == E else -1)
        sl2 = self._slice_at.get(p)
        if sl2 is None:
            return None
        w = flow.width
        t_arr = flow.arrives(p)
        s.begin()
        try:
            tt = self.alloc.alloc(1, "i8" if w == 1 else "f32", slice=sl2, when=t_arr)
        except SchedError:
            s.rollback()
            return None
        self._undo(lambda tt=tt: self.alloc.free(tt))
        if s.try_write(sl2, tt.addr, flow):
            s.commit()
            return (sl2, tt.addr, t_arr + 2), tt
        s.rollback()
        return None

    # -- placing nodes --------------------------------------------------------------------------
    def place_vxm(self, n, mnemonic: str, args_in: list[int], imm=None):
        info = BY_MNEMONIC[mnemonic]
        d = info.d(self.S)
        srcs = [o for o in info.operands if o.kind == "sr"]
        t0 = max([self.earliest(a, self.vxm) for a in args_in] + [2])
        s = self.s
        why = self.why.setdefault(n.id, {}) if self.why is not None else None
        for t in range(t0, t0 + self.max_wait):
            alus = [q for q in self.alus if s.queue_free(q, t)]
            if not alus:
                if why is not None:
                    why["alu"] = why.get("alu", 0) + 1
                continue
            if t >= 4 and not all(self._may_deliver(a, self.vxm, t, o.held is not None)
                                  for o, a in zip(srcs, args_in, strict=True)):
                # (before cycle 4 no operand can be moved in first; from then on an
                # operand with no way in may still come through a premove: check that)
                if not any(o.held and self._may_deliver(a, self.vxm, t - 2, False)
                           for o, a in zip(srcs, args_in, strict=True)):
                    if why is not None:
                        why["operands"] = why.get("operands", 0) + 1
                    continue
            s.begin()
            got = self._deliver_all(srcs, args_in, t)
            ok = got is not None
            if why is not None and not ok:
                why["operands"] = why.get("operands", 0) + 1
            if ok:
                refs, flags = got
            if ok and self.max_holds and self._vxm_only(n.id):
                held = self._emit_held_only(n.id, t + d)
                if held is not None:
                    dirn, grp = held
                    ops = [(grp, dirn)] + refs + ([imm] if imm is not None else [])
                    self._emit_held(alus[0], t, mnemonic, ops, flags)
                    self.av[n.id] = Avail(_WIDTH[n.dtype], r=t + d, held=(dirn, grp),
                                          reserved=True)
                    self.placed[n.id] = (alus[0], t)
                    s.commit()
                    return t
            if ok:
                res = self._emit_result(n.id, self.vxm, t + d)
                if res is not None:
                    dirn, grp, flow, copy, tt = res
                    ops = [(grp, dirn)] + refs + ([imm] if imm is not None else [])
                    self._emit_held(alus[0], t, mnemonic, ops, flags)
                    self._note_write(dirn, grp, _WIDTH[n.dtype], t + d, n.id)
                    av = Avail(_WIDTH[n.dtype], r=t + d, held=(dirn, grp), sram=[copy],
                               flows=[flow])
                    av.tensor = tt
                    if tt is not None:
                        av.store = (copy[0], copy[1], flow)
                    if tt is not None and self.DUP and self._dup_wanted(n.id):
                        more = self._second_copy(n.id, flow, copy[0])
                        if more is not None:
                            av.sram.append(more[0])
                            av.extra.append(more[1])
                    if len(alus) > 1 and self._rotated_both_ways(n.id):
                        twin = self._twin(n.id, alus[1], t, t + d, 1 - dirn, mnemonic, refs,
                                          imm, flags)
                        if twin is not None:
                            av.flows.append(twin)
                    self.av[n.id] = av
                    if len(av.flows) == 2 and self._rotations(n.id) >= 3:
                        late = self._late_twin(n.id, t + 1, d, mnemonic, srcs, args_in, imm)
                        if late is not None:
                            av.flows.append(late)
                    self.placed[n.id] = (alus[0], t)
                    s.commit()
                    return t
            if why is not None and ok:
                why["result"] = why.get("result", 0) + 1
            s.rollback()
        raise SchedError(f"could not place {mnemonic} (node {n.id}) within {self.max_wait} "
                         "cycles")

    def _rotations(self, nid: int) -> int:
        return sum(self.g.nodes[c].kind == "sxm" for c in self.consumers[nid])

    def _rotated_both_ways(self, nid: int) -> bool:
        """Whether two or more SXM rotations take the value (a lane-reduction stage)."""
        return self._rotations(nid) >= 2

    def _late_twin(self, nid, t, d, mnemonic, srcs, args_in, imm):
        """A radix-4 stage rotates its value three ways, two SXMs take two at once: the
        same instruction once more a cycle later (its operands delivered again), its
        result flowing toward an SXM one cycle behind the first, so the third rotation
        need not wait for the SRAM copy. Returns the Flow or None (nothing claimed)."""
        s = self.s
        w = _WIDTH[self.g.nodes[nid].dtype]
        alus = [q for q in self.alus if s.queue_free(q, t)]
        if not alus:
            return None
        s.begin()
        got = self._deliver_orders(srcs, args_in, t, range(len(srcs)), [None] * len(srcs), {})
        if got is None:
            s.rollback()
            return None
        refs, flags = got
        r = t + d
        for dirn in (W, E):
            for s0 in range(0, self.cfg.streams - w + 1, 4 if w == 4 else 1):
                keys = [(dirn, k, self.vxm, r) for k in range(s0, s0 + w)]
                if not s._free(keys) or not self.held.can_write(dirn, s0, w, r):
                    continue
                if self._clobber_cost(dirn, s0, w, r):
                    continue
                s._claim(keys)
                flow = Flow(dirn, s0, w, self.vxm, r)
                s._set_claimed(flow, self.vxm + (1 if dirn == E else -1))
                self._note_write(dirn, s0, w, r, nid)
                self._emit_held(alus[0], t, mnemonic, [(s0, dirn)] + refs +
                                ([imm] if imm is not None else []), flags)
                s.commit()
                return flow
        s.rollback()
        return None

    def _twin(self, nid, alu, t, r, dirn, mnemonic, refs, imm, flags):
        """The same instruction on a second ALU in the same cycle, its result written the
        other way: both SXMs then see the value on their own flow. Returns the Flow or
        None (nothing claimed)."""
        s = self.s
        w = _WIDTH[self.g.nodes[nid].dtype]
        best = None
        for s0 in range(0, self.cfg.streams - w + 1, 4 if w == 4 else 1):
            keys = [(dirn, k, self.vxm, r) for k in range(s0, s0 + w)]
            if not s._free(keys) or not self.held.can_write(dirn, s0, w, r):
                continue
            cost = self._clobber_cost(dirn, s0, w, r)
            if best is None or cost < best[0]:
                best = (cost, s0, keys)
        if best is None:
            return None
        _, s0, keys = best
        s._claim(keys)
        flow = Flow(dirn, s0, w, self.vxm, r)
        s._set_claimed(flow, self.vxm + (1 if dirn == E else -1))
        self._note_write(dirn, s0, w, r, nid)
        self._emit_held(alu, t, mnemonic, [(s0, dirn)] + refs +
                        ([imm] if imm is not None else []), flags)
        return flow

    def _may_deliver(self, a: int, pos: int, t: int, vxm: bool) -> bool:
        """A quick necessary condition for :meth:`deliver` (nothing claimed): some way
        to have `a` at `pos` in cycle t is not obviously taken."""
        av = self.av[a]
        s = self.s
        if vxm and av.held is not None and av.r < t:
            d, s0 = av.held
            if av.reserved or self.held.clean_until(d, s0, av.width, av.r, t):
                return True
        if av.reserved:
            return False
        for f in av.flows:
            try:
                if f.arrives(pos) == t:
                    return True
            except SchedError:
                continue
        bw = self.cfg.bank_words
        for sl, addr, ready in av.sram:
            p = s.qpos[sl]
            tr = t - 1 - abs(pos - p)
            if p != pos and tr >= ready and s.queue_free(sl, tr) and \
                    s.bank_ok(sl, addr // bw, tr, "r"):
                return True
        return False

    def _deliver_all(self, srcs, args_in, t):
        """Deliver every operand at the VXM in cycle t, trying the operands in every
        order (two operands may have their SRAM copies in one slice), and else first
        moving one operand into the VXM (:meth:`_premove`); returns (refs, held flags)
        or None, claims kept only on success."""
        s = self.s
        k = len(srcs)
        got = self._deliver_orders(srcs, args_in, t, range(k), [None] * k, {})
        if got is not None:
            return got
        for i in range(k):
            if not srcs[i].held or t < 4:
                continue
            s.begin()
            pre = self._premove(args_in[i], t)
            if pre is not None:
                refs = [None] * k
                refs[i] = pre
                got = self._deliver_orders(srcs, args_in, t, [j for j in range(k) if j != i],
                                           refs, {srcs[i].held: 1})
                if got is not None:
                    s.commit()
                    return got
            s.rollback()
        return None

    def _deliver_orders(self, srcs, args_in, t, which, refs, flags):
        s = self.s
        for order in itertools.permutations(which):
            s.begin()
            r, f = list(refs), dict(flags)
            for i in order:
                o, a = srcs[i], args_in[i]
                got = self.deliver(a, self.vxm, t, vxm=o.held is not None)
                if got is None:
                    break
                r[i] = got[1]
                if o.held:
                    f[o.held] = int(got[0] == "held")
            else:
                s.commit()
                return r, f
            s.rollback()
        return None

    def _premove(self, a: int, t: int):
        """A ``mov32``/``mov`` of value `a` at t-2 whose result the VXM holds for a held
        read at t. Returns the held stream ref or None."""
        s = self.s
        w = self.av[a].width
        mn = "mov32" if w == 4 else "mov"
        tm = t - 1 - BY_MNEMONIC[mn].d(self.S)
        alus = [q for q in self.alus if s.queue_free(q, tm)]
        if not alus or tm < 2:
            return None
        got = self.deliver(a, self.vxm, tm, vxm=False)
        if got is None:
            return None
        r = tm + BY_MNEMONIC[mn].d(self.S)
        for dirn in (E, W):
            for s0 in range(0, self.cfg.streams - w + 1, 4 if w == 4 else 1):
                keys = [(dirn, q, self.vxm, r) for q in range(s0, s0 + w)]
                if not s._free(keys) or not self.held.can_write(dirn, s0, w, r):
                    continue
                s._claim(keys)
                self._note_write(dirn, s0, w, r)
                self._emit_held(alus[0], tm, mn, [(s0, dirn), got[1]], {})
                return (s0, dirn)
        return None

    def _emit_held(self, queue, t, mnemonic, ops, flags):
        s = self.s
        key = (mnemonic, tuple(ops), tuple(sorted(flags.items())))
        ins = self._instrs.get(key)
        if ins is None:  # instructions are values: one object per distinct instruction
            ins = self._instrs[key] = make(mnemonic, *ops, **flags)
        s.b.at(queue, t, ins)
        s.take_slot(queue, t)
        s.horizon = max(s.horizon, t + ins.info.d(self.S) + 1)

    def place_sxm(self, n):
        a = n.args[0]
        s = self.s
        best = None
        for hemi in ("w", "e"):
            sxm = f"sxm_{hemi}"
            p = s.qpos[sxm]
            best = min(best or (1 << 30, sxm), (self.earliest(a, p), sxm))
        t0 = best[0]
        for t in range(t0, t0 + self.max_wait):
            for hemi in ("w", "e"):
                sxm = f"sxm_{hemi}"
                p = s.qpos[sxm]
                if not s.queue_free(sxm, t):
                    continue
                s.begin()
                got = self.deliver(a, p, t, vxm=False)
                if got is not None:
                    d = BY_MNEMONIC["rot"].d(self.S)
                    res = self._emit_result(n.id, p, t + d, dirs=(E,) if hemi == "w" else (W,))
                    if res is not None:
                        dirn, grp, flow, copy, tt = res
                        w = _WIDTH[n.dtype]
                        s._emit(sxm, t, "rot", (grp, dirn), got[1], n.imm, w)
                        # the flow continues toward the VXM; claim nothing more now
                        self._note_away(n.id, w, t + d, flow, copy, tt, (sxm, t))
                        s.commit()
                        return t
                s.rollback()
        raise SchedError(f"could not place rot (node {n.id})")

    def _note_away(self, nid, w, r, flow, copy, tt, placed):
        """Record a result made away from the VXM (an SXM rotation, a received
        exchange): written at cycle `r` as `flow`, stored on its way (`copy`, in the
        words `tt`); `placed`: (queue, dispatch cycle)."""
        av = Avail(w, r=r, sram=[copy], flows=[flow])
        av.tensor = tt
        self.av[nid] = av
        self.placed[nid] = placed

    def place_xchg(self, n):
        """A tensor-parallel exchange: the value delivered to the east edge and sent over
        :data:`SEND_LINK` at ``t``; the west neighbour's value (every rank runs this
        same schedule) received over :data:`RECV_LINK` at ``t + c2c_latency``, on the
        streams at the west edge a cycle later, flowing east and stored on its way."""
        a = n.args[0]
        s = self.s
        w = _WIDTH[n.dtype]
        if self.cfg.c2c_width < w:
            raise SchedError(f"an exchange of a {w}-stream vector needs c2c_width >= {w} "
                             f"(config {self.cfg.name}: {self.cfg.c2c_width})")
        send_q, recv_q = self.cfg.link_queue(SEND_LINK), self.cfg.link_queue(RECV_LINK)
        pe, pw = s.qpos[send_q], s.qpos[recv_q]
        lat = self.cfg.c2c_latency
        t0 = self.earliest(a, pe)
        for t in range(t0, t0 + self.max_wait):
            tr = t + lat
            if not s.queue_free(send_q, t) or not s.queue_free(recv_q, tr):
                continue
            s.begin()
            got = self.deliver(a, pe, t, vxm=False)
            if got is not None:
                res = self._emit_result(n.id, pw, tr + 1, dirs=(E,))
                if res is not None:
                    dirn, grp, flow, copy, tt = res
                    s._emit(send_q, t, "send", SEND_LINK, got[1], w)
                    s._emit(recv_q, tr, "recv", RECV_LINK, (grp, dirn), w)
                    self._note_away(n.id, w, tr + 1, flow, copy, tt, (recv_q, tr))
                    s.commit()
                    return tr
            s.rollback()
        raise SchedError(f"could not place the exchange (node {n.id})")

    def _plane_of(self, n) -> str:
        """The plane of an output tile: matvec tiles take the planes in turn
        (``tile_hemi``; the embedding's by output tile), the transposed LM head's by its
        tile, KV products sit with their cache."""
        m = n.meta
        blk = m["blocks"][0]
        if blk[0] != "w":
            hemi = self.blocks[tuple(blk)][1]
        elif n.kind == "mm":
            hemi = self.tile_hemi.get((m["w"], m["nt"]), "we"[m["nt"] % 2])
        else:
            hemi = "we"[m["kt"] % 2]
        return f"mxm_{hemi}0"

    def _block_parts(self, blk):
        if blk[0] == "w":
            return self.blocks[("w",) + tuple(blk[1:4])][0]
        return self.blocks[tuple(blk)][0]

    def _read_parts(self, parts, dest: int, t: int):
        """Read a block's 4-word parts onto streams 4c.. so they reach queue position
        ``dest`` at cycle ``t``; the flows by operand name, or None if a read does not fit."""
        s = self.s
        flows = {}
        for c, (sl, addr) in enumerate(parts):
            p = s.qpos[sl]
            tr = t - 1 - abs(dest - p)
            f = None if tr < 0 else s.try_read(sl, addr, 4, tr, E if dest > p else W,
                                                4 * c, [dest])
            if f is None:
                return None
            flows["src" if c == 0 else f"_p{c}"] = f
        return flows

    def _load_rows(self, plane: str, parts, tl: int) -> bool:
        """lwi of all VL rows at tl, read from the block's slices so they meet the plane."""
        s = self.s
        pm = s.qpos[plane]
        flows = self._read_parts(parts, pm, tl)
        if flows is None:
            return False
        ok, _ = s.try_unit(plane, tl, "lwi", flows, None, [], 0,
                           fixed={"row": 0, "count": self.vl})
        return ok

    def _load_rows_t(self, plane: str, parts, tl: int) -> bool:
        """The block read onto VL streams, transposed by the SXM next to the plane, and
        loaded in one lwi at tl."""
        s = self.s
        pm = s.qpos[plane]
        sxm = "sxm_" + plane[4]
        ps = s.qpos[sxm]
        d_tr = BY_MNEMONIC["transpose"].d(self.S)
        ts = tl - d_tr - abs(pm - ps)
        if ts < 0 or not s.queue_free(sxm, ts):
            return False
        flows = self._read_parts(parts, ps, ts)
        if flows is None:
            return False
        ok, tf = s.try_unit(sxm, ts, "transpose", flows, E if pm > ps else W, [pm], self.vl)
        if not ok:
            return False
        ok, _ = s.try_unit(plane, tl, "lwi", {"src": tf}, None, [], 0,
                           fixed={"row": 0, "count": self.vl})
        return ok

    def place_mm_group(self, members):
        """Output tiles of one weight tile (the sequences of a batch): per block one lwi
        of all rows, then an mm / mmacc of each member's input into its own accumulator
        slot; the last block sends each member's result."""
        blocks = members[0].meta["blocks"]
        return self._place_blocks(members[0], [
            (blk, [(m, k, slot) for slot, m in enumerate(members)])
            for k, blk in enumerate(blocks)])

    def place_mm_job(self, tiles, k0: int = 0, k1: int | None = None):
        """Output tiles of one plane with the same inputs, each in its own accumulator
        slot, placed input by input: block k of every tile before block k + 1 of any
        (blocks `k0` up to `k1`), so input k is used as soon as it is placed."""
        blocks = tiles[0].meta["blocks"]
        return self._place_blocks(tiles[0], [
            (m.meta["blocks"][k], [(m, k, slot)])
            for k in range(k0, len(blocks) if k1 is None else k1)
            for slot, m in enumerate(tiles)])

    def _place_blocks(self, n0, steps):
        """Per step ``(block, [(tile, k, slot)])``: lwi of the block (all rows), then the
        mm / mmacc of each tile's input k into its slot, on the plane of `n0`, in order; a
        tile's last block sends its result. Returns the first mm's cycle."""
        s = self.s
        plane = self._plane_of(n0)
        pm = s.qpos[plane]
        hemi = plane[4]
        load = self._load_rows_t if n0.kind == "mmt" else self._load_rows
        d_mm = BY_MNEMONIC["mm"].d(self.S)
        # the plane's queue: the lwi of block k+1 comes after that of block k, and it
        # installs (two cycles on) no earlier than the last mm of block k (which uses the
        # active weights of its cycle); the mm of block k + 1 from its install + 1
        lw_min, mm_last = self.plane_free.get(plane, (0, 0))
        first_mm = None
        for blk, uses in steps:
            parts = self._block_parts(blk)
            placed = False
            t0 = max(lw_min, mm_last - 2)
            for tl in range(t0, t0 + self.max_wait):
                if not s.queue_free(plane, tl):
                    continue
                s.begin()
                if not load(plane, parts, tl):
                    s.rollback()
                    continue
                tm = tl + 3
                ok = True
                for m, k, slot in uses:
                    last = k == len(m.meta["blocks"]) - 1
                    tm = self._place_member_mm(m, k, slot, plane, pm, hemi, last, tm, d_mm)
                    if tm is None:
                        ok = False
                        break
                    if first_mm is None:
                        first_mm = tm
                    tm += 1
                if ok:
                    s.commit()
                    lw_min, mm_last = tl + 1, tm - 1
                    placed = True
                    break
                s.rollback()
            if not placed:
                m, k, _ = uses[0]
                raise SchedError(f"could not place block {k} of tile node {m.id}")
        self.plane_free[plane] = (lw_min, mm_last)
        return first_mm

    def _place_member_mm(self, m, k, slot, plane, pm, hemi, last, t_from, d_mm):
        """The mm / mmacc of member `m`'s input `k` at the first cycle from `t_from` its
        input reaches the plane; returns that cycle or None. Inside a transaction."""
        s = self.s
        a = m.args[k]
        t0 = max(t_from, self.earliest(a, pm))
        for tm in range(t0, t0 + self.max_wait):
            if not s.queue_free(plane, tm):
                continue
            s.begin()
            got = self.deliver(a, pm, tm, vxm=False)
            if got is not None:
                mn = "mm" if k == 0 else "mmacc"
                if not last:
                    s._emit(plane, tm, mn, None, got[1], slot)
                    s.commit()
                    return tm
                res = self._emit_result(m.id, pm, tm + d_mm, dirs=(E,) if hemi == "w" else (W,))
                if res is not None:
                    dirn, grp, flow, copy, tt = res
                    s._emit(plane, tm, mn, (grp, dirn), got[1], slot)
                    av = Avail(4, r=tm + d_mm, sram=[copy], flows=[flow])
                    av.tensor = tt
                    self.av[m.id] = av
                    self.placed[m.id] = (plane, tm)
                    s.commit()
                    return tm
            s.rollback()
        return None

    # -- the loop ---------------------------------------------------------------------------------
    def run(self):
        rank = self.ranks()
        # MXM tiles first once ready: a plane is used in placement order, and its loads
        # need every slice of the hemisphere at once (VXM stores placed before it fill them)
        for n in self.g.nodes:
            if n.kind in ("mm", "mmt"):
                rank[n.id] += 1 << 20
        indeg = {n.id: len(n.args) + len(n.deps) for n in self.g.nodes}
        dependents: dict[int, list[int]] = {n.id: [] for n in self.g.nodes}
        for n in self.g.nodes:
            for a in n.args + n.deps:
                dependents[a].append(n.id)
        heap = []
        for n in self.g.nodes:
            if n.kind == "host":
                for c in dependents[n.id]:
                    indeg[c] -= 1
        for n in self.g.nodes:
            if n.kind != "host" and indeg[n.id] == 0:
                heapq.heappush(heap, (-rank[n.id], -n.id))
        for n in self.g.nodes:  # SXM rotations: the hemisphere is decided when placed
            n.meta.setdefault("hemi", None)
        # MXM tiles of one weight tile across a batch: placed together (one load each
        # block), in groups of at most mxm_acc_slots (one accumulator slot per member)
        groups: dict = {}
        for n in self.g.nodes:
            key = n.meta.get("share") if n.kind in ("mm", "mmt") else None
            if key is not None:
                groups.setdefault(key, []).append(n.id)
        group_of, waiting = {}, {}
        k = self.cfg.mxm_acc_slots
        for key, ids in groups.items():
            for c in range(0, len(ids), k):
                for i in ids[c:c + k]:
                    group_of[i] = (key, c)
        sizes = Counter(group_of.values())  # members per group
        # Tiles other than a batch's groups are placed as their inputs are: once the
        # first input of a plane's next tile is placed, that tile and the plane's other
        # tiles of the same inputs (one accumulator slot each) form a job that holds the
        # plane; each input
        # placed adds its block of every tile of the job, so the loads take the MEM
        # queue slots before the VXM work placed after them, and the last input costs a
        # block a tile rather than whole tiles. The last blocks go in when the tiles are
        # ready, as any node. A job starts only at the plane's first tile (in trace order)
        # not placed, so no tile it waits for can be waiting for the plane.
        nodes = self.g.nodes
        plane_of = {n.id: self._plane_of(n) for n in nodes if n.kind in ("mm", "mmt")}
        order: dict[str, list[int]] = {}
        for i in plane_of:
            order.setdefault(plane_of[i], []).append(i)
        first = dict.fromkeys(order, 0)  # per plane: its first tile not placed yet
        job_of: dict[int, list[int]] = {}  # tile -> the tiles of its job
        partial: dict[int, int] = {}  # job (its first tile) -> its next block
        claim: dict[str, int] = {}  # plane -> the job placing its blocks
        deferred: dict[str, list[int]] = {}  # plane -> ready tiles waiting for it
        finished: set[int] = set()
        placed = {n.id for n in nodes if n.kind == "host"}

        def progress(c: int):
            pl, n = plane_of[c], nodes[c]
            job = job_of.get(c)
            if job is None:
                if c in group_of and sizes[group_of[c]] > 1:
                    return  # a batch group: placed together once all are ready
                tiles = order[pl]
                if pl in claim or tiles[first[pl]] != c or n.args[0] not in placed \
                        or any(d not in placed for d in n.deps):
                    return
                size = min(k, _JOB_TILES if len(n.args) >= _JOB_MIN_BLOCKS else 1)
                job = [c] + [t for t in tiles[first[pl] + 1:first[pl] + 2 * k]
                             if t not in finished and nodes[t].args == n.args
                             and nodes[t].deps == n.deps and nodes[t].kind == n.kind][:size - 1]
                for t in job:
                    job_of[t] = job
                claim[pl] = c
            k0 = kk = partial.get(job[0], 0)
            while kk < len(n.args) - 1 and n.args[kk] in placed:
                kk += 1
            if kk > k0:
                self.place_mm_job([nodes[t] for t in job], k0, kk)
                partial[job[0]] = kk

        while heap:
            _, nid = heapq.heappop(heap)
            nid = -nid
            n = self.g.nodes[nid]
            done = [n]
            if n.kind == "vxm":
                self.place_vxm(n, n.op, list(n.args), n.imm)
            elif n.kind == "store":
                self.place_store(n)
            elif n.kind == "sxm":
                self.place_sxm(n)
            elif n.kind == "xchg":
                self.place_xchg(n)
            elif nid in finished:
                continue  # placed with its job
            else:
                pl = plane_of[nid]
                job = job_of.get(nid, [nid])
                if claim.get(pl, job[0]) != job[0]:
                    deferred.setdefault(pl, []).append(nid)
                    continue
                if nid in group_of and sizes[group_of[nid]] > 1:
                    w = waiting.setdefault(group_of[nid], [])
                    w.append(n)
                    if len(w) < sizes[group_of[nid]]:
                        continue  # wait for the other sequences' inputs
                    pm = self.s.qpos[pl]  # the member whose input is first
                    done = sorted(w, key=lambda m: (self.earliest(m.args[0], pm),
                                                    m.meta.get("seq", 0), m.id))
                    self.place_mm_group(done)
                else:
                    self.place_mm_job([nodes[t] for t in job], partial.pop(job[0], 0))
                    done = [nodes[t] for t in job]
                    claim.pop(pl, None)
                finished.update(m.id for m in done)
                tiles = order[pl]
                while first[pl] < len(tiles) and tiles[first[pl]] in finished:
                    first[pl] += 1
                for c in deferred.pop(pl, []):
                    heapq.heappush(heap, (-rank[c], -c))
            for m in done:
                placed.add(m.id)
                for a in m.args:
                    self._consumed(a)
                for c in dependents[m.id]:
                    indeg[c] -= 1
                    if indeg[c] == 0:
                        heapq.heappush(heap, (-rank[c], -c))
                    elif c in plane_of:
                        progress(c)
        if deferred:
            raise SchedError(f"MXM tiles {sorted(sum(deferred.values(), []))} never placed")

    def _consumed(self, a: int):
        self.pending[a] -= 1
        if self.pending[a] == 0:
            av = self.av[a]
            if av.store is not None and not av.used:
                self._release_store(av)
            if av.tensor is not None:
                self.alloc.free(av.tensor)
            for tt in av.extra:
                self.alloc.free(tt)
            if av.reserved:  # the hold is needed only until the last read
                d, s0 = av.held
                self.open_holds[d] -= 1
                for k in range(s0, s0 + av.width):
                    self.held.open[(d, k)].remove(av.r + 1)
                self._reserve(d, s0, av.width, av.r + 1, av.last_read - 1)

    def _release_store(self, av: Avail):
        """Every consumer read the value held: take back its SRAM write (the queue slot,
        the bank cycle, the stream registers from the VXM to the slice) for nodes placed
        later. Outside any transaction."""
        sl, addr, flow = av.store
        s = self.s
        p = s.qpos[sl]
        if flow.claimed_to != p or s._journal is not None:
            return  # the flow goes on to another reader
        tw = flow.arrives(p)
        s.b._q[sl].pop(tw, None)
        s.release_slot(sl, tw)
        s.bank.pop((sl, addr // self.cfg.bank_words, tw + 1), None)
        for key in s._path(flow, p):
            if key[2] != self.vxm:
                s.claims.discard(key)
        av.sram = [c for c in av.sram if c[0] != sl or c[1] != addr]
        av.store = None

    def place_store(self, n):
        """A KV-cache row: a mov of the value to its fixed address in the block."""
        m = n.meta
        vl = self.vl
        b, j = divmod(m["pos"], vl)
        parts, _ = self.blocks[(m["cache"], m["layer"], m["g"], b)]
        sl, addr = parts[j // 4]
        self.home[n.id] = Tensor(sl, addr + j % 4, 1, "i8")
        self.place_vxm(n, "mov", list(n.args))
        # readers of the block wait for the write (Scheduler.ready)


def schedule_step(model, cfg: ChipConfig, pos: int, context: int | None = None, *,
                  batch: int = 1, stage=None, slot: tuple[int, int] = (0, 1)):
    """Trace and schedule the decode step at `pos` of `batch` sequences; returns a
    :class:`ScheduledStep` (``logits_per_seq`` / ``token_groups``: per sequence).
    `stage`: only that part of the step (:func:`trace_step`): ``logits`` is then the
    stage's output (the hidden state unless the stage ends the model) and
    ``stage_in`` the tensor its input is written into (None if it embeds); `slot`:
    which of how many sequences' KV caches the stage's chip keeps (:func:`trace_step`)."""
    t0 = time.perf_counter()
    g, gops = trace_step(model, cfg.vl, pos, context, batch=batch, stage=stage, slot=slot)
    ls = ListScheduler(cfg, g, gops)
    ls.place_data(model)
    ls.run()
    prog = ls.s.program()
    words = sum(nxt - (b * cfg.bank_words) for (_, b), nxt in ls.alloc.next.items())
    if ls.token_tensor is None and (stage is None or stage.embed):
        raise LpuError("the step has no token input")
    st = ScheduledStep(prog, ls.image, ls.logits, ls.token_tensors,
                       sum(len(w) for w in prog.queues.values()), words,
                       time.perf_counter() - t0,
                       {i: a.r for i, a in ls.av.items() if g.nodes[i].kind != "host"}, g,
                       dict(ls.placed))
    st.logits_per_seq = list(ls.logits_per_seq)
    st.token_groups = [list(grp) for grp in ls.token_groups]
    st.stage_in = ls.stage_in
    return st
