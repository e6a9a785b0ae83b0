"""``ChipOps``: the LPU-exact algorithms (:mod:`lpu.golden.model.exact`) scheduled on the chip.

Each primitive call allocates its result in SRAM and schedules a kernel
(:mod:`lpu.tools.compiler.kernels`); constants are collected into the initial SRAM image that
the host writes before running. Values are :class:`Val` handles; when a handle is
garbage-collected its SRAM is returned to the allocator (the scheduler's read/write
tracking keeps reuse safe).
"""

from __future__ import annotations

import weakref

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.golden.model.exact import pairwise
from lpu.golden.numerics import f32_bits

from . import kernels as K
from .sched import Scheduler

__all__ = ["ChipOps", "Val"]

_OUT_DTYPE = {"cvt.f32.i32": "i32", "cvt.i32.f32": "f32", "cvt.i8.i32": "i32",
              "cvt.i32.i8": "i8", "cvt.f32.i8": "i8"}


class Val:
    """A vector set living in SRAM."""

    def __init__(self, ops: ChipOps, t: K.Tensor, owned: bool = True, alts=()):
        self.t = t
        self.alts = list(alts)  # identical copies in other slices (constants)
        if owned:
            weakref.finalize(self, ops.alloc.free, t)

    @property
    def n(self):
        return self.t.n


class ChipCache:
    """KV cache tensors in SRAM (zero at start; never part of the host image).

    K block (layer, g, b): VL words spread over VL/4 MEM slices of one hemisphere, four
    words each (so that a block can be read onto VL streams in one cycle for the
    transposed load); V block: VL words in one slice; scales: [max_pos / VL] fp32."""

    def __init__(self, ops: ChipOps, layers: int, kv_heads: int, max_pos: int):
        vl = ops.vl
        cfg = ops.cfg
        nbmax = max_pos // vl
        if cfg.mem_slices < vl // 4:
            raise K.SchedError(f"the KV cache layout needs {vl // 4} MEM slices per "
                               f"hemisphere, config {cfg.name} has {cfg.mem_slices}")
        self.k: dict = {}
        self.v: dict = {}
        self.ks: dict = {}
        self.vs: dict = {}
        for li in range(layers):
            for g in range(kv_heads):
                hemi = "we"[(li * kv_heads + g) % 2]
                for b in range(nbmax):
                    parts = []
                    for c in range(vl // 4):
                        t = ops.alloc.alloc(4, "i8", slice=f"mem_{hemi}{c}", fresh=True)
                        parts.append((t.slice, t.addr))
                    self.k[(li, g, b)] = parts
                    self.v[(li, g, b)] = ops.alloc.alloc(vl, "i8", fresh=True)
                self.ks[(li, g)] = ops.alloc.alloc(nbmax, "f32", fresh=True)
                self.vs[(li, g)] = ops.alloc.alloc(nbmax, "f32", fresh=True)


class ChipOps:
    """Chip primitives that schedule kernels; same interface as NumpyOps."""

    def __init__(self, cfg: ChipConfig | str, sched: Scheduler | None = None):
        self.cfg = load_config(cfg)
        self.vl = self.cfg.vl
        self.sched = sched or Scheduler(self.cfg)
        self.alloc = K.MemAlloc(self.cfg)
        self.alloc.free_at = self._free_at
        self.image: list[tuple[K.Tensor, np.ndarray]] = []  # host writes before the run
        self._consts: dict[int, Val] = {}
        self._scratch: list[K.Tensor] = []
        self._weights: dict[int, tuple] = {}  # id(array) -> (array, blocks)

    # -- host data ------------------------------------------------------------------------
    def input(self, array: np.ndarray, dtype: str) -> Val:
        """A tensor the host writes before the run: array [n, VL] (uint32 bits or uint8)."""
        arr = np.asarray(array)
        t = self.alloc.alloc(arr.shape[0], dtype, fresh=True)
        self.image.append((t, arr))
        self.sched.mark_ready(t.slice, t.addr, t.n * t.words)
        return Val(self, t, owned=False)

    def weight_f32(self, array) -> Val:
        """Host-written fp32 data [n, VL]."""
        return self.input(np.asarray(array, dtype=np.float32).view(np.uint32), "f32")

    def weight_i8(self, w):
        """Place an int8 weight matrix [K, N] in SRAM now (before any temporaries)."""
        w = np.asarray(w, dtype=np.int8)
        self._place(w)
        return w

    def weight_spread(self, w):
        """Place an int8 matrix [K, N] spread over slices (usable by matvec and by
        matvec_t, which reads it transposed)."""
        w = np.asarray(w, dtype=np.int8)
        key = id(w)
        if key not in self._weights:
            blocks = K.spread_blocks(self.alloc, w, self.vl,
                                     hemi_of=lambda kt, nt: "we"[kt % 2])
            for (parts, rows) in blocks.values():
                for c, (sl, addr) in enumerate(parts):
                    self.image.append((K.Tensor(sl, addr, 4, "i8"), rows[4 * c:4 * c + 4]))
                    self.sched.mark_ready(sl, addr, 4)
            self._weights[key] = (w, {k: v[0] for k, v in blocks.items()})
        return w

    def matvec(self, x: Val, w) -> Val:
        """int8 x [K/VL] @ int8 W [K, N] -> int32 [N/VL] on the MXM planes."""
        w = np.asarray(w, dtype=np.int8)
        self._place(w)
        blocks = self._weights[id(w)][1]
        out = self._new(w.shape[1] // self.vl, "i32")
        K.matvec(self.sched, out.t, x.t, blocks, t0=self._t0(x))
        return out

    def matvec_t(self, x: Val, w) -> Val:
        """int8 x [N/VL] @ W^T for W [K, N] placed by weight_spread -> int32 [K/VL]."""
        blocks = self._weights[id(w)][1]
        kb = {(nt, kt): parts for (kt, nt), parts in blocks.items()}
        out = self._new(w.shape[0] // self.vl, "i32")
        K.matvec_t(self.sched, out.t, x.t, kb, t0=self._t0(x))
        return out

    def _place(self, w):
        key = id(w)
        if key not in self._weights:
            blocks = K.weight_blocks(self.alloc, w, self.vl)
            for t, rows in blocks.values():
                self.image.append((t, rows))
                self.sched.mark_ready(t.slice, t.addr, t.n)
            self._weights[key] = (w, blocks)

    def const_bits(self, bits: int) -> Val:
        """A constant vector; a copy lives in every MEM slice so that it can always be
        read alongside an operand from any slice."""
        bits &= 0xFFFFFFFF
        if bits not in self._consts:
            arr = np.full((1, self.vl), bits, dtype=np.uint32)
            self._consts[bits] = self._replicated(arr)
        return self._consts[bits]

    def _replicated(self, arr, copies: int = 3) -> Val:
        """Host data with a copy in `copies` different slices (so that it can be read
        beside operands in any other slices)."""
        made = []
        for _ in range(copies):
            t = self.alloc.alloc(arr.shape[0], "f32", fresh=True,
                                 exclude={c.slice for c in made})
            self.image.append((t, arr))
            self.sched.mark_ready(t.slice, t.addr, t.n * t.words)
            made.append(t)
        return Val(self, made[0], owned=False, alts=made[1:])

    def _apart(self, vals: list[Val], fixed: int | None = None) -> list[K.Tensor]:
        """Tensors for the operands, each in a different MEM slice (constants pick a copy;
        otherwise an operand is first copied to another slice). `fixed`: the index of an
        operand that must stay where it is (an in-place update)."""
        used: set[str] = set()
        out: list[K.Tensor | None] = [None] * len(vals)
        order = sorted(range(len(vals)), key=lambda i: (i != fixed, len(vals[i].alts)))
        for i in order:
            v = vals[i]
            for t in [v.t] + v.alts:
                if t.slice not in used:
                    out[i] = t
                    break
            if out[i] is None:
                cp = self.alloc.alloc(v.n, v.t.dtype, exclude=used | {v.t.slice},
                                      when=self._t0(v))
                K.elementwise(self.sched, "mov32" if v.t.words == 4 else "mov", cp, v.t,
                              t0=self._t0(v))
                self._scratch.append(cp)
                out[i] = cp
            used.add(out[i].slice)
        return out

    def const_f32(self, value: float) -> Val:
        return self.const_bits(f32_bits(value))

    # -- primitives -----------------------------------------------------------------------
    def _t0(self, *vals) -> int:
        s = self.sched
        t = 0
        for v in vals:
            x = v if isinstance(v, K.Tensor) else v.t
            for a in range(x.addr, x.addr + x.n * x.words):
                t = max(t, s.ready.get((x.slice, a), 0))
        return t

    def _free_at(self, slice_name: str, addr: int, words: int) -> int:
        s = self.sched
        t = 0
        for a in range(addr, addr + words):
            t = max(t, s.lastread.get((slice_name, a), -1) + 1, s.ready.get((slice_name, a), 0))
        return t

    def _new(self, n: int, dtype: str, when: int | None = None) -> Val:
        return Val(self, self.alloc.alloc(n, dtype, when=when))

    def binary(self, op: str, a: Val, b: Val) -> Val:
        out = self._new(max(a.n, b.n), _OUT_DTYPE.get(op, a.t.dtype), when=self._t0(a, b))
        ta, tb = self._apart([a, b])
        K.elementwise(self.sched, op, out.t, ta, tb, t0=self._t0(ta, tb))
        self._free_scratch()
        return out

    def _free_scratch(self):
        for t in self._scratch:
            self.alloc.free(t)
        self._scratch.clear()

    def unary(self, op: str, a: Val, imm: int | None = None) -> Val:
        out = self._new(a.n, _OUT_DTYPE.get(op, a.t.dtype), when=self._t0(a))
        K.elementwise(self.sched, op, out.t, a.t, t0=self._t0(a), imm=imm)
        return out

    def cvt_f32_i8(self, a: Val, scale: Val) -> Val:
        out = self._new(a.n, "i8", when=self._t0(a, scale))
        ta, tb = self._apart([a, scale])
        K.elementwise(self.sched, "cvt.f32.i8", out.t, ta, tb, t0=self._t0(ta, tb))
        self._free_scratch()
        return out

    def lane_reduce(self, op: str, a: Val) -> Val:
        out = self._new(a.n, a.t.dtype, when=self._t0(a))
        K.lane_reduce(self.sched, op, out.t, a.t, self.alloc, t0=self._t0(a))
        return out

    def vec_reduce(self, op: str, a: Val) -> Val:
        x = a.t
        if x.n == 1:
            out = self._new(1, x.dtype)
            K.elementwise(self.sched, "mov32", out.t, x, t0=self._t0(a))
            return out
        keep = [a]  # the parts below are views of a: keep it alive until they are read

        def combine(u, v):
            w = self.binary(op, u, v)
            keep.append(w)
            return w

        parts = [Val(self, K.Tensor(x.slice, x.vec(i), 1, x.dtype), owned=False)
                 for i in range(x.n)]
        return pairwise(combine, parts)

    # -- running on the golden model --------------------------------------------------------
    def program(self):
        return self.sched.program()

    def load_image(self, chip) -> None:
        K.write_image(chip, self.image)

    def read(self, chip, v: Val) -> np.ndarray:
        t = v.t
        if t.dtype == "i8":
            return chip.read_mem(t.slice, t.addr, t.n)
        return chip.read_tensor(t.slice, t.addr, t.n, np.uint32)

    def const_vec(self, bits) -> Val:
        arr = np.asarray(bits, dtype=np.uint32).reshape(-1, self.vl)
        return self._replicated(arr)

    def select(self, c: Val, a: Val, b: Val) -> Val:
        out = self._new(max(a.n, b.n, c.n), a.t.dtype, when=self._t0(a, b, c))
        ta, tb, tc = self._apart([a, b, c])
        K.elementwise(self.sched, "sel", out.t, ta, tb, tc, t0=self._t0(ta, tb, tc))
        self._free_scratch()
        return out

    def rotate(self, x: Val, n: int) -> Val:
        out = self._new(x.n, x.t.dtype, when=self._t0(x))
        K.sxm_unary(self.sched, "rot", out.t, x.t, n, t0=self._t0(x))
        return out

    def part(self, x: Val, i: int) -> Val:
        t = x.t
        v = Val(self, K.Tensor(t.slice, t.vec(i), 1, t.dtype), owned=False)
        v.parent = x
        return v

    def stack(self, vals) -> Val:
        out = self._new(len(vals), vals[0].t.dtype, when=self._t0(*vals))
        for i, v in enumerate(vals):
            dst = K.Tensor(out.t.slice, out.t.vec(i), 1, out.t.dtype)
            self._copy_any(dst, v)
        return out

    def _copy(self, dst: K.Tensor, src: K.Tensor):
        mn = "mov32" if src.words == 4 else "mov"
        if dst.slice == src.slice:
            raise K.SchedError("copy within one slice is not supported")
        K.elementwise(self.sched, mn, dst, src, t0=self._t0(src))

    def new_cache(self, layers, kv_heads, max_pos):
        return ChipCache(self, layers, kv_heads, max_pos)

    def kv_write(self, cache, layer, g, pos, kq, ks, vq, vs, lane_mask):
        vl = self.vl
        b, j = divmod(pos, vl)
        sl, addr = cache.k[(layer, g, b)][j // 4]
        self._copy_any(K.Tensor(sl, addr + j % 4, 1, "i8"), kq)
        vb = cache.v[(layer, g, b)]
        self._copy_any(K.Tensor(vb.slice, vb.addr + j, 1, "i8"), vq)
        for scales, s in ((cache.ks[(layer, g)], ks), (cache.vs[(layer, g)], vs)):
            cur = Val(self, K.Tensor(scales.slice, scales.vec(b), 1, "f32"), owned=False)
            ta, tb, tc = self._apart([s, cur, lane_mask], fixed=1)
            K.elementwise(self.sched, "sel", cur.t, ta, tb, tc, t0=self._t0(ta, tb, tc))
            self._free_scratch()

    def _copy_any(self, dst: K.Tensor, src: Val):
        """Copy src into dst, through a temporary in another slice if they share one."""
        s = src.t
        if s.slice == dst.slice:
            tmp = self.alloc.alloc(s.n, s.dtype, exclude={s.slice}, when=self._t0(s))
            self._copy(tmp, s)
            self._copy(dst, tmp)
            self.alloc.free(tmp)
        else:
            self._copy(dst, s)

    def scores(self, cache, layer, g, nb, q8: Val) -> Val:
        out = self._new(nb, "i32")
        blocks = {(0, b): cache.k[(layer, g, b)] for b in range(nb)}
        K.matvec_t(self.sched, out.t, q8.t, blocks, t0=self._t0(q8))
        return out

    def attend(self, cache, layer, g, nb, p8: Val) -> Val:
        out = self._new(1, "i32")
        blocks = {(b, 0): (cache.v[(layer, g, b)], None) for b in range(nb)}
        K.matvec(self.sched, out.t, p8.t, blocks, t0=self._t0(p8))
        return out

    def token(self, token: int) -> Val:
        """The step's token: a host input (one vector, every lane = token) at a fixed
        place, so that a step program does not depend on the token;
        ``self.token_tensor`` says where the host writes it."""
        v = self.input(np.full((1, self.vl), token, dtype=np.uint32), "f32")
        self.token_tensor = v.t
        return v

    def scale_vecs(self, cache, which, layer, g, nb) -> Val:
        t = (cache.ks if which == "k" else cache.vs)[(layer, g)]
        return Val(self, K.Tensor(t.slice, t.addr, nb, "f32"), owned=False)
