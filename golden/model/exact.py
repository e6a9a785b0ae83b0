"""The LPU-exact algorithms: what the chip computes, step by step, written once.

Every algorithm here (exp, reciprocal, rsqrt, RMSNorm, softmax, SiLU, quantization)
is a sequence of chip primitives called on an ``ops`` object:

* :class:`Ops` is that object's interface, written down once;
* :class:`NumpyOps` evaluates them with numpy, using exactly the chip's arithmetic
  (:mod:`lpu.golden.numerics`): this is the bit-exact expectation;
* the compiler's ``ChipOps`` (:mod:`lpu.tools.compiler.chipops`) schedules the same calls as
  kernels on the chip, which the golden chip model then runs.

So the algorithm is the specification, numpy is one executor and the chip is the
other; tests compare the two bit for bit, and compare both with float64 math for
accuracy.

Values are vector sets ``[n, VL]``: uint32 bit patterns for fp32/int32, uint8 for int8.
Binary operations broadcast a one-vector operand ``[1, VL]`` over ``n``.
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

import numpy as np

from lpu.golden import numerics as nm

from .quant import quantize_weight
from .reference import rope_tables

__all__ = ["Ops", "NumpyOps", "NumpyCache", "exp", "reciprocal", "rsqrt", "rmsnorm",
           "softmax", "silu", "quantize", "linear", "rope", "attention", "swiglu", "Prepared",
           "decode_step", "decode_stage", "step_inputs", "NumpyGroup", "run_group", "pairwise",
           "LOG2E", "NEWTON_STEPS", "DECODE_NEWTON_STEPS", "EXP2_COEFFS"]

LOG2E = 1.4426950408889634
# 2^f for |f| <= 1/2: a degree-5 polynomial, highest power first, evaluated by Horner's
# rule in fp32. Fitted for the least maximum relative error (weighted least squares,
# reweighted until the error equi-oscillates), then moved by single ulps against the
# fp32 evaluation: relative error below 2e-7 (docs/numerics.md). Written as fp32
# values in hex so that every machine evaluates the same numbers.
EXP2_COEFFS = tuple(float.fromhex(h) for h in (
    "0x1.5c08e4p-10", "0x1.3d0c52p-7", "0x1.c6b6e4p-5", "0x1.ebf912p-3", "0x1.62e42ap-1",
    "0x1.000002p+0"))
RSQRT_MAGIC = 0x5F3759DF
RECIP_MAGIC = 0x7EF311C3
NEWTON_STEPS = 3  # reciprocal and rsqrt by default: relative error about 1.5e-7
# Inside a decode step every 1/x and 1/sqrt(x) scales a whole vector that is then
# quantized to int8 (quantize, RMSNorm, softmax) or multiplied into an int8-quantized
# product (SiLU): two steps, relative error below 1e-5, far below the int8 rounding
# (1/254 of the largest value) they feed (docs/numerics.md).
DECODE_NEWTON_STEPS = 2


class Ops(Protocol):
    """The chip primitives the algorithms are written against, and the one interface the
    two executors implement: :class:`NumpyOps` (numpy, bit-exact) and the compiler's
    ``ChipOps`` (:mod:`lpu.tools.compiler.chipops`, which schedules each call on the chip).

    A value ``V`` is whatever the executor uses for a vector set ``[n, VL]`` (uint32 bit
    patterns for fp32/int32, uint8 for int8): numpy arrays, or tensors in SRAM.
    """

    vl: int  # the vector length VL

    # constants and host data
    def const_f32(self, value: float):
        """One vector, every lane the binary32 of `value`."""

    def const_bits(self, bits: int):
        """One vector, every lane the 32-bit pattern `bits`."""

    def const_vec(self, bits):
        """Vectors of given per-lane 32-bit patterns (``[n * VL]`` values)."""

    def token(self, token: int):
        """The step's token, every lane equal (written by the host)."""

    def weight_f32(self, array):
        """fp32 data ``[n, VL]`` written by the host (norm weights, scales)."""

    def weight_i8(self, w):
        """An int8 weight matrix ``[K, N]`` for :meth:`matvec`."""

    def weight_spread(self, w):
        """An int8 matrix ``[K, N]`` for :meth:`matvec` and, transposed, :meth:`matvec_t`."""

    # point-wise (VXM)
    def binary(self, op: str, a, b):
        """``op`` (fadd fsub fmul fmin fmax add sub min max eq and) lane by lane; a
        one-vector operand is broadcast."""

    def unary(self, op: str, a, imm: int | None = None):
        """``op`` (fneg fabs conversions, shli shri srai with `imm`) lane by lane."""

    def cvt_f32_i8(self, a, scale):
        """fp32 to int8 with a scale (the ``cvt.f32.i8`` instruction)."""

    def select(self, c, a, b):
        """``a`` where ``c != 0``, else ``b``, lane by lane."""

    # across lanes and vectors (SXM, VXM)
    def lane_reduce(self, op: str, a):
        """Each vector combined over its lanes, in every lane, in the butterfly order
        ``cur = op(cur, rot(cur, 2^j))`` (an executor may compute the same operations
        as rotations by 1 .. VL-1 combined as a pairwise tree: the same bits)."""

    def vec_reduce(self, op: str, a):
        """The n vectors combined as a pairwise tree (:func:`pairwise`)."""

    def rotate(self, x, n: int):
        """Every vector rotated by `n` lanes (``dst[i] = src[(i - n) mod VL]``)."""

    def stack(self, vals):
        """The vector sets of `vals` as one set, in order."""

    def part(self, x, i: int):
        """Vector `i` of `x`."""

    # matrix products (MXM)
    def matvec(self, x, w):
        """int8 ``x`` ``[K/VL, VL]`` @ int8 ``W`` ``[K, N]`` -> int32 ``[N/VL, VL]``."""

    def matvec_t(self, x, w):
        """int8 ``x`` ``[N/VL, VL]`` @ ``W^T`` for ``W`` ``[K, N]`` -> int32 ``[K/VL, VL]``."""

    # tensor parallelism (a group of chips)
    def all_reduce(self, op: str, a):
        """``a`` combined by ``op`` (``add``: int32, ``fmax``) with the same value of
        every other rank of the tensor-parallel group, the same bits on every rank
        (both ops are exact in any order); ``a`` itself in a group of one."""

    # the KV cache
    def new_cache(self, layers: int, kv_heads: int, max_pos: int):
        """An empty int8 KV cache with per-position scales."""

    def kv_write(self, cache, layer, g, pos, kq, ks, vq, vs, lane_mask):
        """Store position `pos`'s int8 K and V of KV head `g` and their scales."""

    def scores(self, cache, layer, g, nb, q8):
        """int32 ``[nb, VL]``: ``q8 @ K^T`` over the first `nb` blocks of positions."""

    def attend(self, cache, layer, g, nb, p8):
        """int32 ``[1, VL]``: ``p8 [nb, VL] @ V`` over the first `nb` blocks."""

    def scale_vecs(self, cache, which: str, layer, g, nb):
        """The K (``which="k"``) or V scale vectors of the first `nb` blocks."""


class NumpyCache:
    """KV cache of the numpy executor: int8 K/V [layers, kv_heads, max_pos, hd] and
    fp32 scale vectors [layers, kv_heads, max_pos / VL, VL] (bits)."""

    def __init__(self, layers, kv_heads, max_pos, vl):
        self.k = np.zeros((layers, kv_heads, max_pos, vl), dtype=np.uint8)
        self.v = np.zeros((layers, kv_heads, max_pos, vl), dtype=np.uint8)
        self.ks = np.zeros((layers, kv_heads, max_pos // vl, vl), dtype=np.uint32)
        self.vs = np.zeros((layers, kv_heads, max_pos // vl, vl), dtype=np.uint32)


class NumpyGroup:
    """The ranks of a tensor-parallel group evaluated with numpy, one thread a rank
    (:func:`run_group`): :meth:`exchange` waits for every rank's value and combines
    them in rank order."""

    def __init__(self, size: int):
        self.size = size
        self._barrier = threading.Barrier(size)
        self._board: list = [None] * size

    def exchange(self, rank: int, op: str, a: np.ndarray) -> np.ndarray:
        self._board[rank] = a.copy()
        self._barrier.wait()
        vals = list(self._board)
        self._barrier.wait()  # everyone has read the board before it is written again
        out = vals[0]
        for v in vals[1:]:
            out = _BIN[op](out.astype(np.uint32), v.astype(np.uint32))
        return out


def run_group(size: int, fn):
    """``[fn(rank, group) for rank in range(size)]``, each rank in its own thread, sharing
    one :class:`NumpyGroup`; an exception of any rank is raised."""
    group = NumpyGroup(size)
    out: list = [None] * size
    errs: list = []

    def one(r):
        try:
            out[r] = fn(r, group)
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the join
            errs.append(e)
            group._barrier.abort()

    threads = [threading.Thread(target=one, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errs:
        raise errs[0]
    return out


class NumpyOps:
    """Chip primitives on numpy arrays, bit-exact with the chip (an :class:`Ops`)."""

    def __init__(self, vl: int, group: NumpyGroup | None = None, rank: int = 0):
        self.vl = vl
        self.group, self.rank = group, rank

    def all_reduce(self, op, a):
        if self.group is None:
            return np.asarray(a)
        return self.group.exchange(self.rank, op, np.asarray(a))

    # constants: one vector with every lane equal
    def const_f32(self, value: float):
        return np.full((1, self.vl), nm.f32_bits(value), dtype=np.uint32)

    def const_bits(self, bits: int):
        return np.full((1, self.vl), bits & 0xFFFFFFFF, dtype=np.uint32)

    def binary(self, op: str, a, b):
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        return _BIN[op](a.astype(np.uint32), b.astype(np.uint32))

    def unary(self, op: str, a, imm: int | None = None):
        a = np.asarray(a)
        if op in ("shli", "shri", "srai"):
            x = a.astype(np.uint32)
            if op == "shli":
                return x << np.uint32(imm)
            if op == "shri":
                return x >> np.uint32(imm)
            return (x.view(np.int32) >> imm).view(np.uint32)
        return _UN[op](a)

    def cvt_f32_i8(self, a, scale):
        a, scale = np.broadcast_arrays(np.asarray(a, np.uint32), np.asarray(scale, np.uint32))
        return nm.cvt_f32_i8(a, scale)

    def lane_reduce(self, op: str, a):
        """Every vector combined over its lanes, in every lane: cur = op(cur, rot(cur, 2^j))."""
        cur = np.asarray(a, dtype=np.uint32)
        j = 1
        while j < self.vl:
            cur = _BIN[op](cur, np.roll(cur, j, axis=1))
            j <<= 1
        return cur

    def weight_f32(self, array):
        """Host-written fp32 data [n, VL] (e.g. norm weights, scales)."""
        return np.asarray(array, dtype=np.float32).view(np.uint32)

    def matvec(self, x, w):
        """int8 x [K/VL, VL] (uint8 bytes) @ int8 W [K, N] -> int32 bits [N/VL, VL]."""
        xv = np.asarray(x, dtype=np.uint8).view(np.int8).reshape(-1).astype(np.int64)
        y = xv @ np.asarray(w, dtype=np.int8).astype(np.int64)
        return (y & 0xFFFFFFFF).astype(np.uint32).reshape(-1, self.vl)

    def vec_reduce(self, op: str, a):
        """The n vectors combined as a pairwise tree (:func:`pairwise`)."""
        a = np.asarray(a, dtype=np.uint32)
        return pairwise(lambda x, y: _BIN[op](x, y), [a[i:i + 1] for i in range(a.shape[0])])

    def const_vec(self, bits):
        return np.asarray(bits, dtype=np.uint32).reshape(-1, self.vl)

    def select(self, c, a, b):
        c, a, b = np.broadcast_arrays(np.asarray(c, np.uint32), np.asarray(a, np.uint32),
                                      np.asarray(b, np.uint32))
        return np.where(c != 0, a, b).astype(np.uint32)

    def rotate(self, x, n):
        return np.roll(np.asarray(x), n, axis=1)

    def stack(self, vals):
        return np.concatenate([np.asarray(v) for v in vals])

    def part(self, x, i):
        return np.asarray(x)[i:i + 1]

    def new_cache(self, layers, kv_heads, max_pos):
        return NumpyCache(layers, kv_heads, max_pos, self.vl)

    def kv_write(self, cache, layer, g, pos, kq, ks, vq, vs, lane_mask):
        b = pos // self.vl
        cache.k[layer, g, pos] = np.asarray(kq)[0]
        cache.v[layer, g, pos] = np.asarray(vq)[0]
        cache.ks[layer, g, b] = self.select(lane_mask, ks, cache.ks[layer, g, b:b + 1])[0]
        cache.vs[layer, g, b] = self.select(lane_mask, vs, cache.vs[layer, g, b:b + 1])[0]

    def scores(self, cache, layer, g, nb, q8):
        """int32 [nb, VL]: q8 @ K^T over the first nb blocks of positions."""
        k = cache.k[layer, g, :nb * self.vl].view(np.int8).astype(np.int64)
        y = k @ np.asarray(q8, np.uint8).view(np.int8).reshape(-1).astype(np.int64)
        return (y & 0xFFFFFFFF).astype(np.uint32).reshape(nb, self.vl)

    def attend(self, cache, layer, g, nb, p8):
        """int32 [1, VL]: p8 [nb, VL] @ V over the first nb blocks."""
        v = cache.v[layer, g, :nb * self.vl].view(np.int8).astype(np.int64)
        y = np.asarray(p8, np.uint8).view(np.int8).reshape(-1).astype(np.int64) @ v
        return (y & 0xFFFFFFFF).astype(np.uint32).reshape(1, self.vl)

    def scale_vecs(self, cache, which, layer, g, nb):
        return (cache.ks if which == "k" else cache.vs)[layer, g, :nb]

    def token(self, token):
        """The step's token as a vector with every lane = token (host input)."""
        return self.const_bits(token)

    def weight_i8(self, w):
        """An int8 weight matrix [K, N] for matvec (the chip places it in SRAM now)."""
        return np.asarray(w, dtype=np.int8)

    def weight_spread(self, w):
        """An int8 matrix [K, N] usable by matvec and, transposed, by matvec_t."""
        return np.asarray(w, dtype=np.int8)

    def matvec_t(self, x, w):
        """int8 x [N/VL, VL] @ W^T for W [K, N] -> int32 bits [K/VL, VL]."""
        xv = np.asarray(x, dtype=np.uint8).view(np.int8).reshape(-1).astype(np.int64)
        y = np.asarray(w, dtype=np.int8).astype(np.int64) @ xv
        return (y & 0xFFFFFFFF).astype(np.uint32).reshape(-1, self.vl)


_BIN = {
    "fadd": nm.fadd, "fsub": nm.fsub, "fmul": nm.fmul, "fmin": nm.fmin, "fmax": nm.fmax,
    "add": lambda x, y: (x + y).astype(np.uint32),
    "sub": lambda x, y: (x - y).astype(np.uint32),
    "max": lambda x, y: np.maximum(x.view(np.int32), y.view(np.int32)).view(np.uint32),
    "min": lambda x, y: np.minimum(x.view(np.int32), y.view(np.int32)).view(np.uint32),
    "eq": lambda x, y: np.where(x == y, np.uint32(0xFFFFFFFF), np.uint32(0)),
    "and": lambda x, y: x & y,
}
_UN = {
    "fneg": nm.fneg, "fabs": nm.fabs,
    "cvt.f32.i32": nm.cvt_f32_i32, "cvt.i32.f32": nm.cvt_i32_f32,
    "cvt.i8.i32": nm.cvt_i8_i32, "cvt.i32.i8": nm.cvt_i32_i8,
}


# -- algorithms ---------------------------------------------------------------------------

def exp(ops, x):
    """e^x for fp32 vectors: 2^(x log2 e) = 2^n * 2^f, n = round(t), |f| <= 1/2."""
    t = ops.binary("fmul", x, ops.const_f32(LOG2E))
    t = ops.binary("fmax", t, ops.const_f32(-126.0))
    t = ops.binary("fmin", t, ops.const_f32(127.0))
    n = ops.unary("cvt.f32.i32", t)
    f = ops.binary("fsub", t, ops.unary("cvt.i32.f32", n))
    p = ops.const_f32(EXP2_COEFFS[0])
    for c in EXP2_COEFFS[1:]:
        p = ops.binary("fadd", ops.binary("fmul", p, f), ops.const_f32(c))
    scale = ops.unary("shli", ops.binary("add", n, ops.const_bits(127)), imm=23)
    return ops.binary("fmul", p, scale)


def pairwise(combine, items):
    """Combine `items` as a pairwise tree: neighbours (0, 1), (2, 3), .. level by level,
    an odd last item carried up unchanged: the fixed order of every vector reduction."""
    items = list(items)
    while len(items) > 1:
        nxt = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def reciprocal(ops, x, steps: int = NEWTON_STEPS):
    """1/x for positive fp32 x: a bit-level first guess, then `steps` Newton steps
    y = y (2 - x y)."""
    y = ops.binary("sub", ops.const_bits(RECIP_MAGIC), x)
    two = ops.const_f32(2.0)
    for _ in range(steps):
        y = ops.binary("fmul", y, ops.binary("fsub", two, ops.binary("fmul", x, y)))
    return y


def rsqrt(ops, x, steps: int = NEWTON_STEPS):
    """1/sqrt(x) for positive fp32 x: the bit-level guess, then `steps` Newton steps
    y = y (1.5 - x/2 y^2)."""
    y = ops.binary("sub", ops.const_bits(RSQRT_MAGIC), ops.unary("shri", x, imm=1))
    half_x = ops.binary("fmul", x, ops.const_f32(0.5))
    three_halves = ops.const_f32(1.5)
    for _ in range(steps):
        y2 = ops.binary("fmul", y, y)
        y = ops.binary("fmul", y, ops.binary("fsub", three_halves,
                                             ops.binary("fmul", half_x, y2)))
    return y


def rmsnorm(ops, x, weight, eps: float, dim: int):
    """x * rsqrt(mean(x^2) + eps) * weight; x, weight: [dim / VL, VL] fp32."""
    ss = ops.lane_reduce("fadd", ops.vec_reduce("fadd", ops.binary("fmul", x, x)))
    mean = ops.binary("fmul", ss, ops.const_f32(1.0 / dim))
    r = rsqrt(ops, ops.binary("fadd", mean, ops.const_f32(eps)), DECODE_NEWTON_STEPS)
    return ops.binary("fmul", ops.binary("fmul", x, r), weight)


def softmax(ops, x):
    """Softmax over all lanes of all vectors of x [n, VL] (one row of scores)."""
    m = ops.lane_reduce("fmax", ops.vec_reduce("fmax", x))
    e = exp(ops, ops.binary("fsub", x, m))
    s = ops.lane_reduce("fadd", ops.vec_reduce("fadd", e))
    return ops.binary("fmul", e, reciprocal(ops, s, DECODE_NEWTON_STEPS))


def silu(ops, x):
    """x * sigmoid(x) = x / (1 + e^-x)."""
    d = ops.binary("fadd", exp(ops, ops.unary("fneg", x)), ops.const_f32(1.0))
    return ops.binary("fmul", x, reciprocal(ops, d, DECODE_NEWTON_STEPS))


def quantize(ops, x, reduce: bool = False):
    """Per-token symmetric int8: scale = max|x| / 127; q = sat(round(x / scale)).

    Returns (q int8 [n, VL], scale fp32 [1, VL], all lanes equal). `reduce`: `x` is
    this rank's part of a vector split across a tensor-parallel group; the maximum is
    taken over every rank's part (``ops.all_reduce``), so the scale is the whole
    vector's."""
    amax = ops.lane_reduce("fmax", ops.vec_reduce("fmax", ops.unary("fabs", x)))
    if reduce:
        amax = ops.all_reduce("fmax", amax)
    scale = ops.binary("fmax", ops.binary("fmul", amax, ops.const_f32(1.0 / 127.0)),
                       ops.const_f32(1e-30))
    q = ops.cvt_f32_i8(x, reciprocal(ops, scale, DECODE_NEWTON_STEPS))
    return q, scale


def linear(ops, x, w_q, w_scale, quantized=None, reduce: bool = False):
    """y = x @ W with int8 weights (per output channel scales) and per-token int8
    activations: y = (float(q @ Wq) * w_scale) * x_scale.

    x: fp32 [K/VL, VL]; w_q: int8 [K, N]; w_scale: the handle of fp32 [N/VL, VL].
    `quantized`: ``quantize(ops, x)`` already computed (several linears of one input).
    `reduce`: `x` and the rows of `w_q` are this rank's part of K in a tensor-parallel
    group: the scale is the whole input's and the int32 partial products of every rank
    are summed (``ops.all_reduce``, exact in any order) before the scales."""
    q, xs = quantized if quantized is not None else quantize(ops, x, reduce)
    acc = ops.matvec(q, w_q)
    if reduce:
        acc = ops.all_reduce("add", acc)
    return ops.binary("fmul", ops.binary("fmul", ops.unary("cvt.i32.f32", acc), w_scale), xs)


# -- the decoder ----------------------------------------------------------------------------
#
# One decode step of a Llama model, as the chip runs it. Requirements (checked by
# lpu.tools.compiler.lower): head_dim == VL; hidden, intermediate and vocab sizes multiples of
# VL. Weights are int8 with per-output-channel scales (lpu.golden.model.quant); activations
# are quantized per token (per head for q, k, v and the attention probabilities). The
# KV cache is int8, one scale per position; K blocks are read transposed.


def _f32(v):
    return np.asarray(v, dtype=np.float32)




class Prepared:
    """A model's weights as handles of one executor (numpy arrays or chip tensors).

    ``layers`` / ``embed`` / ``head``: a *stage* of the model (a chip of a layer
    pipeline, :mod:`lpu.tools.compiler.pipeline`): only those layers (numbered from 0
    in ``self.layers`` and in the stage's own KV cache), the embedding table and lane
    ids only if the stage embeds the token, the final norm and the LM head (with a
    tied head, the table again) only if it ends the model. The default is the whole
    model; :func:`decode_stage` runs a stage."""

    def __init__(self, ops: Ops, model, max_pos: int, *, layers: range | None = None,
                 embed: bool = True, head: bool = True, tp: tuple[int, int] = (0, 1)):
        cfg = model.config
        vl = ops.vl
        self.cfg, self.vl, self.max_pos = cfg, vl, max_pos
        self.layer_ids = range(cfg.num_hidden_layers) if layers is None else layers
        self.embeds, self.heads = embed, head
        # tensor parallelism: rank r of a group of g takes query heads and FFN columns
        # [r/g, (r+1)/g) of each layer (the K and V heads, the norms, the embedding and
        # the head are on every rank); wo and w_down take the matching input rows, and
        # their products are summed over the group (linear(reduce=True))
        rank, g = tp
        if cfg.num_attention_heads % g or cfg.intermediate_size % (g * vl):
            raise ValueError(f"a tensor-parallel group of {g} needs the heads "
                             f"({cfg.num_attention_heads}) and the intermediate size "
                             f"({cfg.intermediate_size}) in {g} equal parts of whole vectors")
        self.tp = (rank, g)
        hq = cfg.num_attention_heads // g
        self.head_ids = range(rank * hq, (rank + 1) * hq)
        qcols = slice(rank * hq * cfg.head_dim, (rank + 1) * hq * cfg.head_dim)
        ic = cfg.intermediate_size // g
        icols = slice(rank * ic, (rank + 1) * ic)
        full = slice(None)

        def lin(w, rows=full, cols=full):
            """[out, in] float -> (int8 [in, out], scales handle [out / VL, VL]), the
            whole matrix quantized (per output channel) before `rows` and `cols` of it
            are taken."""
            qw = w if hasattr(w, "values") else quantize_weight(np.asarray(w, np.float32))
            return (ops.weight_i8(np.ascontiguousarray(qw.values[rows, cols].T)),
                    ops.weight_f32(_f32(qw.scales[rows]).reshape(-1, vl)))

        def vec(w):
            return ops.weight_f32(_f32(w).reshape(-1, vl))

        self.tied = model.lm_head is model.embed
        if embed or (head and self.tied):
            emb = model.embed if hasattr(model.embed, "values") else quantize_weight(
                np.asarray(model.embed, np.float32))
            # one copy of the table: one-hot @ table for the embedding, and (tied) the LM
            # head reads it transposed
            self.embed_w = ops.weight_spread(np.ascontiguousarray(emb.values))
            self.embed_scales = ops.weight_f32(_f32(emb.scales).reshape(-1, vl))
        if embed:
            lane_ids = np.arange(cfg.vocab_size, dtype=np.uint32).reshape(-1, vl)
            self.lane_ids = ops.const_vec(lane_ids)
        self.layers = []
        for lw in (model.layers[i] for i in self.layer_ids):
            self.layers.append({
                "attn_norm": vec(lw.attn_norm), "ffn_norm": vec(lw.ffn_norm),
                "wq": lin(lw.wq, rows=qcols), "wk": lin(lw.wk), "wv": lin(lw.wv),
                "wo": lin(lw.wo, cols=qcols), "w_gate": lin(lw.w_gate, rows=icols),
                "w_up": lin(lw.w_up, rows=icols), "w_down": lin(lw.w_down, cols=icols),
            })
        if head:
            self.norm = vec(model.norm)
            self.head = (self.embed_w, self.embed_scales) if self.tied else lin(model.lm_head)
        self.cache = ops.new_cache(len(self.layer_ids), cfg.num_key_value_heads, max_pos)


def _linear(ops, x, wl, quantized=None, reduce=False):
    return linear(ops, x, wl[0], wl[1], quantized, reduce)


def step_inputs(cfg, pos: int, vl: int, theta: float):
    """Per-step host data: RoPE cos and signed sin vectors [1, VL] for `pos` (float32,
    computed as the reference does), the lane mask of `pos` in its block, and the
    validity mask of the last block of scores."""
    cos, sin = rope_tables(np.array([pos]), cfg.head_dim, theta)
    cos = _f32(cos).reshape(1, -1)
    sin = _f32(sin).reshape(1, -1).copy()
    sin[:, : vl // 2] *= -1  # rotate_half(x) = (-x2, x1) = sign * rot(x, VL/2)
    j = pos % vl
    lane_mask = np.where(np.arange(vl) == j, 0xFFFFFFFF, 0).astype(np.uint32).reshape(1, vl)
    nb = pos // vl + 1
    valid = np.where(np.arange(nb * vl) <= pos, 0xFFFFFFFF, 0).astype(np.uint32)
    return cos, sin, lane_mask, valid.reshape(nb, vl)


def rope(ops, t, cos, sin):
    """Rotary embedding of every head vector of t [heads, VL] (head_dim = VL):
    t * cos + rotate_half(t) * sin, with rotate_half as a rotation by VL/2 and the
    sign folded into `sin` (step_inputs)."""
    return ops.binary("fadd", ops.binary("fmul", t, cos),
                      ops.binary("fmul", ops.rotate(t, ops.vl // 2), sin))


def attention(ops, cache, layer, q, k, v, pos, lane_mask, valid, n_heads, n_kv_heads,
              heads: range | None = None):
    """Grouped-query attention of one token at `pos` over the int8 KV cache.

    q [n_heads, VL], k, v [n_kv_heads, VL] fp32 (after RoPE); writes k, v (int8, with
    per-position scales) at `pos`, then per head: scores q.K^T on the MXM (K read
    transposed), scaled, masked past `pos`, softmax, probabilities times the V scales,
    quantized, times V on the MXM. Returns [n_heads, VL] fp32. `heads`: only those
    query heads (a tensor-parallel rank's; q holds just them), [len(heads), VL]."""
    vl = ops.vl
    nb = pos // vl + 1
    for g in range(n_kv_heads):
        kq, ks = quantize(ops, ops.part(k, g))
        vq, vs = quantize(ops, ops.part(v, g))
        ops.kv_write(cache, layer, g, pos, kq, ks, vq, vs, lane_mask)
    inv_sqrt = ops.const_f32(1.0 / math.sqrt(vl))
    group = n_heads // n_kv_heads
    heads = range(n_heads) if heads is None else heads
    out = []
    for i, hi in enumerate(heads):
        g = hi // group
        qq, qs = quantize(ops, ops.binary("fmul", ops.part(q, i), inv_sqrt))
        acc = ops.scores(cache, layer, g, nb, qq)
        s = ops.binary("fmul", ops.binary("fmul", ops.unary("cvt.i32.f32", acc), qs),
                       ops.scale_vecs(cache, "k", layer, g, nb))
        s = ops.select(valid, s, ops.const_f32(-1e30))
        p = ops.binary("fmul", softmax(ops, s), ops.scale_vecs(cache, "v", layer, g, nb))
        pq, ps = quantize(ops, p)
        o = ops.attend(cache, layer, g, nb, pq)
        out.append(ops.binary("fmul", ops.unary("cvt.i32.f32", o), ps))
    return ops.stack(out)


def swiglu(ops, h, w_gate, w_up, w_down, reduce: bool = False):
    """down(silu(gate(h)) * up(h)) with int8 linears; each w_* is (int8 [in, out],
    scales handle). `reduce`: gate and up are a tensor-parallel rank's columns, down
    its rows (summed over the group)."""
    hq = quantize(ops, h)  # one quantization of h for both linears
    gate = silu(ops, _linear(ops, h, w_gate, hq))
    up = _linear(ops, h, w_up, hq)
    return _linear(ops, ops.binary("fmul", gate, up), w_down, reduce=reduce)


def decode_step(ops, P: Prepared, token: int, pos: int):
    """Logits handle [vocab / VL, VL] (fp32 bits) for `token` at `pos`; writes the KV
    cache of `pos`. Every value is computed as the chip computes it."""
    return decode_stage(ops, P, pos, token=token)


def decode_stage(ops, P: Prepared, pos: int, *, token: int | None = None, x=None):
    """The part of the decode step at `pos` that `P` holds (:class:`Prepared`): the
    embedding of `token` if the stage embeds, else `x` (the hidden state [hidden / VL,
    VL] fp32 bits that the stage before it returned); its layers (writing their KV
    cache of `pos`); then the logits if the stage ends the model, else the hidden
    state for the next stage. The stages of a model run in turn give
    :func:`decode_step`'s logits bit for bit: they are its parts, not a copy."""
    cfg, vl = P.cfg, P.vl
    if cfg.head_dim != vl:
        raise ValueError(f"head_dim {cfg.head_dim} must equal VL {vl}")
    if P.embeds == (x is not None):
        raise ValueError("a stage that embeds takes the token; the others take x")
    cos_a, sin_a, lane_mask_a, valid_a = step_inputs(cfg, pos, vl, cfg.rope_theta)
    cos, sin = ops.weight_f32(cos_a), ops.weight_f32(sin_a)
    lane_mask, valid = ops.const_vec(lane_mask_a), ops.const_vec(valid_a)
    if P.embeds:
        tok = ops.token(token)
        # embedding: one-hot(token) @ table, times the token's row scale
        hit = ops.binary("eq", P.lane_ids, tok)
        onehot = ops.unary("cvt.i32.i8", ops.binary("and", hit, ops.const_bits(1)))
        row = ops.matvec(onehot, P.embed_w)
        s_tok = ops.lane_reduce("fadd", ops.vec_reduce(
            "fadd", ops.select(hit, P.embed_scales, ops.const_f32(0.0))))
        x = ops.binary("fmul", ops.unary("cvt.i32.f32", row), s_tok)
    split = P.tp[1] > 1  # a tensor-parallel rank: two sums over the group a layer
    for li, L in enumerate(P.layers):
        h = rmsnorm(ops, x, L["attn_norm"], cfg.rms_norm_eps, cfg.hidden_size)
        hq = quantize(ops, h)  # one quantization of h for q, k and v
        q = rope(ops, _linear(ops, h, L["wq"], hq), cos, sin)
        k = rope(ops, _linear(ops, h, L["wk"], hq), cos, sin)
        v = _linear(ops, h, L["wv"], hq)
        att = attention(ops, P.cache, li, q, k, v, pos, lane_mask, valid,
                        cfg.num_attention_heads, cfg.num_key_value_heads, P.head_ids)
        x = ops.binary("fadd", x, _linear(ops, att, L["wo"], reduce=split))
        h = rmsnorm(ops, x, L["ffn_norm"], cfg.rms_norm_eps, cfg.hidden_size)
        x = ops.binary("fadd", x, swiglu(ops, h, L["w_gate"], L["w_up"], L["w_down"],
                                         reduce=split))
    if not P.heads:
        return x
    x = rmsnorm(ops, x, P.norm, cfg.rms_norm_eps, cfg.hidden_size)
    if P.tied:  # logits = x @ table^T, the table read transposed
        q, xs = quantize(ops, x)
        acc = ops.matvec_t(q, P.head[0])
        return ops.binary("fmul", ops.binary("fmul", ops.unary("cvt.i32.f32", acc),
                                             P.head[1]), xs)
    return _linear(ops, x, P.head)
