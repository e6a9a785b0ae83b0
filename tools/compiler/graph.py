"""The operation graph of a decode step, and the bounds it sets on any schedule.

:class:`GraphOps` is a third executor of the LPU-exact algorithms
(:class:`lpu.golden.model.exact.Ops`): instead of computing, it records every chip
operation, vector by vector, as a :class:`Node` of a :class:`Graph`: VXM ALU operations,
SXM rotations, MXM tile products (``mm``: an int8 vector set times weight blocks,
accumulated; ``mmt``: the same through a transposed block read), stores into the KV
cache, and the data the host writes (``host``). Each node remembers the algorithm of
:mod:`lpu.golden.model.exact` it belongs to (``exp``, ``rmsnorm``, ``softmax``, ...).
:func:`evaluate` runs a graph with numpy; the tests check that it gives the logits of
:class:`~lpu.golden.model.exact.NumpyOps` bit for bit, so the graph is the step.

:func:`bounds` gives, for one step, the cycles no schedule on the chip can beat:

* ``critical_path``: the longest chain of dependent operations, each at its functional
  delay (:data:`lpu.isa.OPS`) plus the floorplan's stream distances between the units
  (:class:`Latency`), with unlimited units. VXM results feed VXM operations through held
  reads (ISA 1.1); everything else travels on streams.
* ``throughput``: per unit kind, the instructions its queues must dispatch over the
  number of queues (VXM ALUs; SXMs; MXM planes counting ``lw`` / ``lwi`` and ``mm``
  slots; MEM slices counting reads and writes).
* ``bandwidth``: bytes of weights and KV cache read over the MEM read rate.

Their maximum is the floor for the step; :func:`critical_breakdown` splits the critical
path by algorithm.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.golden import numerics as nm
from lpu.golden.model import exact as LX
from lpu.isa import BY_MNEMONIC

__all__ = ["Node", "Graph", "GraphOps", "Latency", "trace_step", "evaluate", "bounds",
           "critical_path", "critical_chain", "critical_breakdown", "throughput",
           "step_bounds", "analytic_bound", "schedule_gap", "block_slots", "ALGORITHMS",
           "RADIX"]

#: The algorithms of lpu.golden.model.exact a node can belong to, innermost first wins.
ALGORITHMS = ("exp", "reciprocal", "rsqrt", "rmsnorm", "softmax", "silu", "quantize",
              "linear", "rope", "attention", "swiglu", "decode_step")


@dataclass
class Node:
    """One vector operation of the step.

    kind: ``host`` (data in SRAM before the step: weights, constants, inputs, the KV
    cache), ``vxm`` (an ALU instruction ``op`` on ``args``), ``sxm`` (``rot`` by ``imm``
    lanes), ``mm`` / ``mmt`` (one int32 output vector: ``args`` are the int8 input
    vectors in accumulation order, ``meta["blocks"]`` the weight blocks), ``store`` (a
    vector written into the KV cache; ``args[0]`` the value).
    ``meta["blocks"]`` is aligned with ``args``: input vector ``i`` meets block ``i``
    (``("w", matrix, kt, nt, transposed)`` or ``("k"|"v", layer, kv_head, block)``).
    ``deps`` are extra ordering edges (a block read after the store that writes it).
    """

    id: int
    kind: str
    op: str
    args: tuple[int, ...] = ()
    imm: int | None = None
    dtype: str = "f32"
    algo: str = ""
    deps: tuple[int, ...] = ()
    meta: dict = field(default_factory=dict)


class Graph:
    """Nodes in creation order (a topological order) and the step's output."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.output: list[int] = []
        self.host_data: dict[int, np.ndarray] = {}  # host node -> its vector (bits/bytes)

    def add(self, kind, op, args=(), **kw) -> int:
        n = Node(len(self.nodes), kind, op, tuple(args), **kw)
        self.nodes.append(n)
        return n.id

    def count(self) -> Counter:
        return Counter(n.kind if n.kind != "vxm" else "vxm" for n in self.nodes)


class _V:
    """A GraphOps value: a list of vector nodes."""

    __slots__ = ("ids",)

    def __init__(self, ids):
        self.ids = list(ids)

    @property
    def n(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i if len(self.ids) > 1 else 0]


#: Lane reductions: rotations per trip to the SXMs (a power of two; VL = one trip).
RADIX = 4

_DTYPE = {"cvt.f32.i32": "i32", "cvt.i32.f32": "f32", "cvt.i8.i32": "i32", "cvt.i32.i8": "i8",
          "cvt.f32.i8": "i8", "add": "i32", "sub": "i32", "and": "i32", "eq": "i32",
          "shli": "i32", "shri": "i32", "srai": "i32", "max": "i32", "min": "i32"}
_ALGO_CODES = {getattr(LX, name).__code__: name for name in ALGORITHMS}


def _algorithm() -> str:
    """The innermost algorithm of lpu.golden.model.exact on the call stack."""
    f = sys._getframe(2)
    while f is not None:
        name = _ALGO_CODES.get(f.f_code)
        if name is not None:
            return name
        f = f.f_back
    return "decode_step"


class GraphOps:
    """An :class:`~lpu.golden.model.exact.Ops` that records the step as a :class:`Graph`."""

    def __init__(self, vl: int, radix: int = RADIX):
        self.vl = vl
        self.radix = radix
        self.g = Graph()
        self._consts: dict[int, int] = {}
        self._blocks: dict[int, tuple] = {}  # id(matrix) -> (matrix, tag)
        self.token_node: int | None = None
        self.token_nodes: list[int] = []  # one per sequence of a batch
        self.seq = 0  # the sequence being traced (batches)
        self.input_nodes: list[int] = []  # a pipeline stage's input (stage_input)
        self.tp = 1  # ranks of the tensor-parallel group (all_reduce)

    # -- recording helpers
    def _host(self, vec, op="input", dtype="f32") -> int:
        nid = self.g.add("host", op, dtype=dtype, algo=_algorithm())
        self.g.host_data[nid] = np.asarray(vec).reshape(-1).copy()
        return nid

    def _vxm(self, op, args, imm=None, dtype=None) -> int:
        return self.g.add("vxm", op, args, imm=imm, dtype=dtype or _DTYPE.get(op, "f32"),
                          algo=_algorithm())

    # -- constants and host data
    def const_bits(self, bits: int):
        bits &= 0xFFFFFFFF
        if bits not in self._consts:
            self._consts[bits] = self._host(np.full(self.vl, bits, np.uint32), "const")
        return _V([self._consts[bits]])

    def const_f32(self, value: float):
        return self.const_bits(nm.f32_bits(value))

    def const_vec(self, bits):
        arr = np.asarray(bits, dtype=np.uint32).reshape(-1, self.vl)
        return _V([self._host(row, "const") for row in arr])

    def token(self, token: int):
        v = self._host(np.full(self.vl, token, np.uint32), "token")
        self.token_node = v
        self.token_nodes.append(v)
        return _V([v])

    def weight_f32(self, array):
        arr = np.asarray(array, dtype=np.float32).view(np.uint32).reshape(-1, self.vl)
        return _V([self._host(row, "weight") for row in arr])

    def stage_input(self, n: int):
        """The hidden state a pipeline stage receives from the chip before it: `n` fp32
        vectors (``host`` nodes ``stage_in``, written into SRAM over a C2C link before
        the stage's program, :mod:`lpu.tools.compiler.pipeline`)."""
        ids = [self._host(np.zeros(self.vl, np.uint32), "stage_in") for _ in range(n)]
        self.input_nodes = ids
        return _V(ids)

    def weight_i8(self, w):
        w = np.asarray(w, dtype=np.int8)
        self._blocks.setdefault(id(w), (w, "rows"))
        return w

    def weight_spread(self, w):
        w = np.asarray(w, dtype=np.int8)
        self._blocks[id(w)] = (w, "spread")
        return w

    # -- point-wise
    def binary(self, op, a, b):
        n = max(a.n, b.n)
        return _V([self._vxm(op, (a[i], b[i])) for i in range(n)])

    def unary(self, op, a, imm=None):
        return _V([self._vxm(op, (a[i],), imm=imm) for i in range(a.n)])

    def cvt_f32_i8(self, a, scale):
        n = max(a.n, scale.n)
        return _V([self._vxm("cvt.f32.i8", (a[i], scale[i])) for i in range(n)])

    def select(self, c, a, b):
        n = max(a.n, b.n, c.n)
        return _V([self._vxm("sel", (a[i], b[i], c[i]), dtype=self.g.nodes[a[i]].dtype)
                   for i in range(n)])

    # -- across lanes and vectors
    def rotate(self, x, n):
        return _V([self.g.add("sxm", "rot", (x[i],), imm=n % self.vl,
                              dtype=self.g.nodes[x[i]].dtype, algo=_algorithm())
                   for i in range(x.n)])

    def lane_reduce(self, op, a):
        """The butterfly cur = op(cur, rot(cur, 2^j)) of the specification, recorded as a
        fan-out: every rotation of the input by 1 .. VL-1, combined as a pairwise tree
        (rotation r with r+1, then pairs of pairs, ..): for every lane the same
        operations on the same operands in the same order, so the same bits, with one
        trip to the SXMs instead of log2(VL)."""
        out = []
        for i in range(a.n):
            cur = _V([a[i]])
            span = 1
            while span < self.vl:  # a stage: rotations by span * (1 .. radix-1)
                k = min(self.radix, self.vl // span)
                rots = [cur] + [self.rotate(cur, span * r) for r in range(1, k)]
                cur = LX.pairwise(lambda u, v: self.binary(op, u, v), rots)
                span *= k
            out.append(cur[0])
        return _V(out)

    def vec_reduce(self, op, a):
        return LX.pairwise(lambda u, v: self.binary(op, u, v), [_V([i]) for i in a.ids])

    # -- tensor parallelism
    def all_reduce(self, op, a):
        """Over a ring of ``self.tp`` ranks: ``tp - 1`` rounds, each an ``xchg`` node per
        vector (send the value east, receive the west neighbour's, the C2C links of
        every rank used alike), the received values combined in turn. Every rank's
        graph, and so its schedule, is the same."""
        if self.tp == 1:
            return a
        out = []
        for i in range(a.n):
            acc = cur = a[i]
            for _ in range(self.tp - 1):
                cur = self.g.add("xchg", "xchg", (cur,), dtype=self.g.nodes[cur].dtype,
                                 algo=_algorithm())
                acc = self._vxm(op, (acc, cur))
            out.append(acc)
        return _V(out)

    def stack(self, vals):
        return _V([i for v in vals for i in v.ids])

    def part(self, x, i):
        return _V([x.ids[i]])

    # -- matrix products
    def _blocks_of(self, w, transposed: bool):
        vl = self.vl
        K_, N_ = w.shape
        return [[("w", id(w), kt, nt, transposed) for kt in range(K_ // vl)]
                for nt in range(N_ // vl)]

    def matvec(self, x, w):
        w = np.asarray(w, dtype=np.int8)
        self._blocks.setdefault(id(w), (w, "rows"))
        out = []
        for nt, blocks in enumerate(self._blocks_of(w, False)):
            out.append(self.g.add("mm", "mm", tuple(x[kt] for kt in range(len(blocks))),
                                  dtype="i32", algo=_algorithm(),
                                  meta={"blocks": blocks, "w": id(w), "nt": nt,
                                        "share": ("mm", id(w), nt), "seq": self.seq}))
        return _V(out)

    def matvec_t(self, x, w):
        vl = self.vl
        K_, N_ = w.shape
        out = []
        for kt in range(K_ // vl):
            blocks = [("w", id(w), kt, nt, True) for nt in range(N_ // vl)]
            out.append(self.g.add("mmt", "mm", tuple(x[nt] for nt in range(N_ // vl)),
                                  dtype="i32", algo=_algorithm(),
                                  meta={"blocks": blocks, "w": id(w), "kt": kt,
                                        "share": ("mmt", id(w), kt), "seq": self.seq}))
        return _V(out)

    # -- the KV cache
    def new_cache(self, layers, kv_heads, max_pos):
        return {"layers": layers, "kv_heads": kv_heads, "max_pos": max_pos, "stores": {},
                "scales": {}}

    def kv_write(self, cache, layer, g, pos, kq, ks, vq, vs, lane_mask):
        layer += cache.get("offset", 0)
        b = pos // self.vl
        for which, q8 in (("k", kq), ("v", vq)):
            cache["stores"][(which, layer, g, b)] = self.g.add(
                "store", "write", (q8[0],), dtype="i8", algo=_algorithm(),
                meta={"cache": which, "layer": layer, "g": g, "pos": pos})
        for which, s in (("k", ks), ("v", vs)):
            cur = self._host(np.zeros(self.vl, np.uint32), "cache")
            self.g.nodes[cur].meta = {"cache": f"{which}s", "layer": layer, "g": g, "block": b}
            cache["scales"][(which, layer, g, b)] = self._vxm("sel", (s[0], cur, lane_mask[0]))

    def _scales(self, cache, which, layer, g, nb):
        out = []
        for b in range(nb):
            key = (which, layer, g, b)
            if key not in cache["scales"]:
                h = self._host(np.zeros(self.vl, np.uint32), "cache")
                self.g.nodes[h].meta = {"cache": f"{which}s", "layer": layer, "g": g,
                                        "block": b}
                cache["scales"][key] = h
            out.append(cache["scales"][key])
        return out

    def scale_vecs(self, cache, which, layer, g, nb):
        return _V(self._scales(cache, which, layer + cache.get("offset", 0), g, nb))

    def scores(self, cache, layer, g, nb, q8):
        layer += cache.get("offset", 0)
        out = []
        for b in range(nb):
            st = cache["stores"].get(("k", layer, g, b))
            out.append(self.g.add("mmt", "mm", (q8[0],), dtype="i32", algo=_algorithm(),
                                  deps=() if st is None else (st,),
                                  meta={"blocks": [("k", layer, g, b)], "kt": b,
                                        "share": ("k", layer, g, b), "seq": self.seq}))
        return _V(out)

    def attend(self, cache, layer, g, nb, p8):
        layer += cache.get("offset", 0)
        deps = tuple(s for b in range(nb)
                     if (s := cache["stores"].get(("v", layer, g, b))) is not None)
        return _V([self.g.add("mm", "mm", tuple(p8[b] for b in range(nb)), dtype="i32",
                              algo=_algorithm(), deps=deps,
                              meta={"blocks": [("v", layer, g, b) for b in range(nb)],
                                    "share": ("v", layer, g, nb), "seq": self.seq})])


def trace_step(model, vl: int, pos: int, context: int | None = None, *,
               radix: int = RADIX, batch: int = 1, stage=None,
               slot: tuple[int, int] = (0, 1)) -> tuple[Graph, GraphOps]:
    """The graph of the decode step at `pos` (the tokens are host inputs) for `batch`
    sequences at once: each has its own KV cache (its layers numbered
    ``seq * layers + layer`` in one cache of ``batch * layers`` layers) and token input;
    the weights are shared, and MXM tiles of one weight tile across the sequences carry
    one ``meta["share"]`` key. ``g.output`` is every sequence's logits in turn
    (``g.outputs[seq]`` each).

    `stage` (a :class:`lpu.tools.compiler.pipeline.Stage`, batch 1): only that part of
    the step, :func:`lpu.golden.model.exact.decode_stage`; a stage that does not embed
    takes the hidden state as ``stage_in`` nodes (``ops.input_nodes``), one that does
    not end the model outputs the hidden state instead of the logits. ``slot = (j,
    slots)``: the stage's chip keeps the KV caches of `slots` sequences (one cache of
    ``slots * layers`` layers, as a batch's) and this step is sequence `j`'s."""
    ops = GraphOps(vl, radix)
    ctx = context or model.config.max_position_embeddings
    if stage is not None:
        if batch != 1:
            raise ValueError("a pipeline stage is traced for one sequence")
        ops.tp = stage.tp[1]
        prepared = LX.Prepared(ops, model, ctx, layers=stage.layers, embed=stage.embed,
                               head=stage.head, tp=stage.tp)
        j, slots = slot
        nl = len(stage.layers)
        prepared.cache = dict(ops.new_cache(slots * nl, model.config.num_key_value_heads, ctx),
                              offset=j * nl)
        ops.prepared = prepared
        x = None if stage.embed else ops.stage_input(model.config.hidden_size // vl)
        out = LX.decode_stage(ops, prepared, pos, token=0 if stage.embed else None, x=x)
        g = ops.g
        g.outputs = [list(out.ids)]
        g.output = list(out.ids)
        g.stage = stage
        return g, ops
    prepared = LX.Prepared(ops, model, ctx)
    L = model.config.num_hidden_layers
    base = ops.new_cache(L * batch, model.config.num_key_value_heads, ctx)
    prepared.cache = base
    ops.prepared = prepared
    g = ops.g
    g.outputs = []
    for b in range(batch):
        ops.seq = b
        view = dict(base, offset=b * L)  # the same stores and scales, layers shifted
        prepared.cache = view
        out = LX.decode_step(ops, prepared, 0, pos)
        g.outputs.append(list(out.ids))
    prepared.cache = base
    g.output = [i for o in g.outputs for i in o]
    return g, ops


# -- running a graph with numpy ---------------------------------------------------------------


def evaluate(g: Graph, ops: GraphOps, token: int | None, cache=None, x=None) -> np.ndarray:
    """The step's output (uint32 bits [n, VL]) computed node by node with numpy, on the
    LPU-exact arithmetic; `token`: the token, or one per sequence of a batch; `cache`: a
    :class:`~lpu.golden.model.exact.NumpyCache` of earlier positions (updated in place),
    or None for an empty one; `x`: a pipeline stage's input (uint32 bits [n, VL])."""
    vl = ops.vl
    pc = ops.prepared.cache
    if cache is None:
        cache = LX.NumpyCache(pc["layers"], pc["kv_heads"], pc["max_pos"], vl)
    mats = {k: m for k, (m, _) in ops._blocks.items()}
    val: dict[int, np.ndarray] = {}
    for n in g.nodes:
        if n.kind == "host":
            if n.op == "token":
                tok = token[ops.token_nodes.index(n.id)] if isinstance(token, list | tuple) \
                    else token
                val[n.id] = np.full(vl, tok, np.uint32)
            elif n.op == "stage_in":
                val[n.id] = np.asarray(x, np.uint32)[ops.input_nodes.index(n.id)]
            elif n.op == "cache":
                m = n.meta
                arr = cache.ks if m["cache"] == "ks" else cache.vs
                val[n.id] = arr[m["layer"], m["g"], m["block"]].copy()
            else:
                val[n.id] = g.host_data[n.id]
        elif n.kind == "vxm":
            a = [val[i] for i in n.args]
            if n.op == "sel":
                val[n.id] = np.where(a[2] != 0, a[0], a[1]).astype(np.uint32)
            elif n.op == "cvt.f32.i8":
                val[n.id] = nm.cvt_f32_i8(a[0].astype(np.uint32), a[1].astype(np.uint32))
            elif n.op in LX._BIN:
                val[n.id] = LX._BIN[n.op](a[0].astype(np.uint32), a[1].astype(np.uint32))
            else:
                val[n.id] = LX.NumpyOps(vl).unary(n.op, a[0][None, :], n.imm)[0]
        elif n.kind == "sxm":
            val[n.id] = np.roll(val[n.args[0]], n.imm)
        elif n.kind == "store":
            m = n.meta
            arr = cache.k if m["cache"] == "k" else cache.v
            arr[m["layer"], m["g"], m["pos"]] = val[n.args[0]].astype(np.uint8)
        else:  # mm / mmt
            acc = np.zeros(vl, np.int64)
            for x, blk in zip(n.args, n.meta["blocks"], strict=True):
                acc += _block_product(val[x], blk, mats, cache, vl)
            val[n.id] = (acc & 0xFFFFFFFF).astype(np.uint32)
    for (which, layer, g_, b), nid in pc["scales"].items():
        if g.nodes[nid].kind == "vxm":
            (cache.ks if which == "k" else cache.vs)[layer, g_, b] = val[nid]
    return np.stack([val[i] for i in g.output])


def _block_product(x, blk, mats, cache, vl) -> np.ndarray:
    xv = np.asarray(x, np.uint8).view(np.int8).astype(np.int64)
    if blk[0] == "w":
        _, wid, kt, nt, transposed = blk
        w = mats[wid].astype(np.int64)
        if transposed:  # x @ W^T: block rows kt (outputs), columns nt (inputs)
            return w[kt * vl:(kt + 1) * vl, nt * vl:(nt + 1) * vl] @ xv
        return xv @ w[kt * vl:(kt + 1) * vl, nt * vl:(nt + 1) * vl]
    which, layer, g, b = blk
    arr = (cache.k if which == "k" else cache.v)[layer, g, b * vl:(b + 1) * vl]
    m = arr.view(np.int8).astype(np.int64)
    return m @ xv if which == "k" else xv @ m


# -- bounds -----------------------------------------------------------------------------------


def analytic_bound(model_cfg, chip: ChipConfig, pos: int, batch: int = 1) -> dict:
    """Cycles per token no schedule can beat on this chip: the bytes of weights and KV
    cache read per token over the MEM read bandwidth (every slice reading four words a
    cycle), and the weight rows over the MXM planes' load rate (one lw of up to
    `streams` rows per plane per cycle)."""
    vl = chip.vl
    d, hdim, L = model_cfg.hidden_size, model_cfg.intermediate_size, model_cfg.num_hidden_layers
    qd, kvd = model_cfg.q_dim, model_cfg.kv_dim
    w_bytes = L * (d * qd + 2 * d * kvd + qd * d + 3 * d * hdim) + 2 * model_cfg.vocab_size * d
    nb = pos // vl + 1
    kv_bytes = batch * L * model_cfg.num_key_value_heads * 2 * nb * vl * model_cfg.head_dim
    slices = 2 * chip.mem_slices
    mem_bw = slices * 4 * vl
    planes = 2 * chip.mxm_planes
    rows = (w_bytes + kv_bytes) // vl
    mxm_rate = planes * min(32, chip.streams)
    mem_cycles = (w_bytes + kv_bytes) / mem_bw
    mxm_cycles = rows / mxm_rate
    return {"weight_bytes": w_bytes, "kv_bytes": kv_bytes, "mem_bytes_per_cycle": mem_bw,
            "mem_bound_cycles": mem_cycles, "mxm_rows_per_cycle": mxm_rate,
            "mxm_bound_cycles": mxm_cycles, "bound_cycles": max(mem_cycles, mxm_cycles)}



@dataclass(frozen=True)
class Latency:
    """The cycles between units that the ISA and the floorplan fix, for one config.

    A result written by unit A at cycle ``r`` can be read by unit B at ``r + hop(A, B)``:
    VXM to VXM through a held read (1 cycle); otherwise the stream distance between the
    two positions (west hemisphere: the machine is mirrored). Host data is read from the
    MEM slice next to the VXM (on the stream at cycle 1)."""

    cfg: ChipConfig

    def pos(self, name: str) -> int:
        return self.cfg.position(name).index

    def d(self, mnemonic: str) -> int:
        return BY_MNEMONIC[mnemonic].d(self.cfg.superlanes)

    def hop(self, a: str, b: str) -> int:
        if a == b == "vxm":
            return 1
        where = {"vxm": "vxm", "sxm": "sxm_w", "mxm": "mxm_w", "mem": "mem_w0"}
        return abs(self.pos(where[a]) - self.pos(where[b]))

    @property
    def host_ready(self) -> int:
        """Cycle host data written before the step is on a stream next to the VXM."""
        return 1


def block_slots(cfg: ChipConfig) -> tuple[int, int]:
    """``(lw, slots)``: the ``lw`` instructions that load one VL x VL weight block into a
    plane (each loads up to ``streams`` rows, at most 32; the last an ``lwi``, which
    installs the block without an ``iw``, ISA 1.2) and the queue slots a block takes on
    its plane, the loads + ``mm``: two wherever one ``lwi`` loads all rows (``streams >=
    VL``, what the compiler needs), more on a chip such as ``groq`` (ten loads a block),
    which only :mod:`lpu.tools.project` models."""
    lw = max(1, math.ceil(cfg.vl / min(cfg.streams, 32)))
    return lw, lw + 1


def _unit(n: Node) -> str:
    # an exchange's value arrives at the chip's edge, where the SXM sits
    return {"host": "mem", "vxm": "vxm", "sxm": "sxm", "mm": "mxm", "mmt": "mxm",
            "store": "mem", "xchg": "sxm"}[n.kind]


def critical_path(g: Graph, cfg: ChipConfig) -> tuple[int, dict[int, int], dict[int, int]]:
    """``(cycles, result, parent)``: the earliest cycle every node's result can be written
    with unlimited units (``result``), the predecessor that sets it (``parent``), and the
    step's length: the last output vector's result at the VXM plus its write to SRAM
    (one MEM slice away, SRAM written a cycle later)."""
    lat = Latency(cfg)
    d_mm = lat.d("mm")
    d_rot = lat.d("rot")
    d_tr = lat.d("transpose")
    slots = block_slots(cfg)[1]
    res: dict[int, int] = {}
    parent: dict[int, int] = {}
    nodes = g.nodes

    def ready(n: Node, at: str) -> int:
        t, p = 0, -1
        for a in n.args + n.deps:
            m = nodes[a]
            if m.kind == "store":  # the block read after the SRAM write lands
                r = res[a] + 1
            else:
                r = res[a] + lat.hop(_unit(m), at)
            if r > t:
                t, p = r, a
        if p >= 0:
            parent[n.id] = p
        return t

    for n in nodes:
        if n.kind == "host":
            res[n.id] = lat.host_ready
        elif n.kind == "vxm":
            res[n.id] = max(ready(n, "vxm"), 2) + lat.d(n.op)
        elif n.kind == "sxm":
            res[n.id] = ready(n, "sxm") + d_rot
        elif n.kind == "xchg":  # sent at one edge, received at the other L cycles later
            res[n.id] = ready(n, "sxm") + cfg.c2c_latency + 1
        elif n.kind == "store":
            res[n.id] = ready(n, "mem") + 1  # the write's SRAM cycle
        else:  # mm chain on one plane: lwi, mm per block (block_slots queue slots)
            t_mm = -slots
            t_last = 0
            for a in n.args:
                m = nodes[a]
                t_mm = max(t_mm + slots, res[a] + lat.hop(_unit(m), "mxm"))
                if t_mm >= t_last:
                    t_last = t_mm
                    parent[n.id] = a
            start = 0
            if n.kind == "mmt" or n.deps:
                # a block written this step: read (1), to the SXM (transpose) or straight
                # to the plane, lwi (1), its install (1), then the mm
                for dep in n.deps:
                    via = (lat.hop("mem", "sxm") + d_tr + lat.hop("sxm", "mxm")
                           if n.kind == "mmt" else lat.hop("mem", "mxm"))
                    t_dep = res[dep] + 1 + via + 1 + 1 + 1
                    if t_dep > t_mm:
                        t_mm = t_dep
                        parent[n.id] = dep
                start = t_mm
            res[n.id] = max(t_mm, start) + d_mm
    end = max((res[i] + lat.hop("vxm", "mem") + 1 for i in g.output), default=0)
    return end, res, parent


def critical_chain(g: Graph, cfg: ChipConfig) -> list[int]:
    """The nodes of the critical path, first to last."""
    end, res, parent = critical_path(g, cfg)
    if not g.output:
        return []
    cur = max(g.output, key=lambda i: res[i])
    chain = [cur]
    while cur in parent:
        cur = parent[cur]
        chain.append(cur)
    return chain[::-1]


def critical_breakdown(g: Graph, cfg: ChipConfig) -> dict[str, int]:
    """Cycles of the critical path per algorithm (``exp``, ``rmsnorm``, ...) and per
    unit (``vxm``, ``sxm``, ``mxm``, ``transfer``): where the floor comes from."""
    end, res, parent = critical_path(g, cfg)
    chain = critical_chain(g, cfg)
    by_algo: Counter = Counter()
    prev_t = 0
    for nid in chain:
        by_algo[g.nodes[nid].algo] += res[nid] - prev_t
        prev_t = res[nid]
    by_algo["decode_step"] += end - prev_t
    return dict(by_algo.most_common())


def schedule_gap(g: Graph, cfg: ChipConfig, result: dict[int, int]) -> dict[str, int]:
    """Where a schedule loses against the critical path: along the critical chain, the
    growth of (scheduled result cycle - earliest result cycle), summed per algorithm.
    `result`: node -> the cycle its result is written in the schedule."""
    _, res, _ = critical_path(g, cfg)
    out: Counter = Counter()
    prev = 0
    for nid in critical_chain(g, cfg):
        if nid not in result:
            continue
        gap = result[nid] - res[nid]
        out[g.nodes[nid].algo] += gap - prev
        prev = gap
    return dict(out.most_common())


def throughput(g: Graph, cfg: ChipConfig) -> dict[str, float]:
    """Per unit kind: instructions to dispatch over the queues that can dispatch them."""
    vl = cfg.vl
    c = Counter()
    lw_per_block = block_slots(cfg)[0]
    seen: dict = {}
    for n in g.nodes:
        if n.kind == "vxm":
            c["vxm"] += 1
        elif n.kind == "sxm":
            c["sxm"] += 1
        elif n.kind in ("mm", "mmt"):
            blocks = len(n.args) if n.kind == "mm" else max(len(n.args), 1)
            share = n.meta.get("share")
            # a block's loads serve every sequence of a shared tile group
            first = share is None or share not in seen or seen[share] % cfg.mxm_acc_slots == 0
            if share is not None:
                seen[share] = seen.get(share, 0) + 1
            c["mxm"] += blocks * (lw_per_block * first + 1)
            c["mem_words"] += blocks * vl
            if n.kind == "mmt":
                c["sxm"] += blocks  # the transpose
        elif n.kind == "store":
            c["mem"] += 1
    n_alu = cfg.vxm_alus
    n_planes = 2 * cfg.mxm_planes
    n_mem = 2 * cfg.mem_slices
    return {
        "vxm": c["vxm"] / n_alu,
        "sxm": c["sxm"] / 2,
        "mxm": c["mxm"] / n_planes,
        "mem": (c["mem_words"] / 4 + c["mem"]) / n_mem,
    }


def bounds(g: Graph, cfg: ChipConfig, bandwidth_cycles: float) -> dict:
    """Every bound of the step (cycles), the largest, and what sets it."""
    cp, _, _ = critical_path(g, cfg)
    tp = throughput(g, cfg)
    all_b = {"critical_path": float(cp), "bandwidth": float(bandwidth_cycles),
             **{f"throughput_{k}": v for k, v in tp.items()}}
    limit = max(all_b, key=all_b.get)
    return {"bounds": all_b, "floor": all_b[limit], "limited_by": limit,
            "counts": dict(g.count())}


def step_bounds(model, cfg: ChipConfig, pos: int, context: int | None = None,
                batch: int = 1) -> dict:
    """:func:`bounds` of the decode step at `pos`, with the bandwidth bound of
    :func:`lpu.tools.compiler.lower.analytic_bound` (every weight and KV byte read once),
    and the critical path's split by algorithm (``breakdown``)."""
    g, _ = trace_step(model, cfg.vl, pos, context, batch=batch)
    out = bounds(g, cfg, analytic_bound(model.config, cfg, pos, batch)["bound_cycles"])
    out["breakdown"] = critical_breakdown(g, cfg)
    return out
