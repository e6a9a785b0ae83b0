"""The LPU-exact algorithms: what the chip computes, step by step, written once.

Every algorithm here (exp, reciprocal, rsqrt, RMSNorm, softmax, SiLU, quantization)
is a sequence of chip primitives called on an ``ops`` object:

* :class:`NumpyOps` evaluates them with numpy, using exactly the chip's arithmetic
  (:mod:`lpu.golden.numerics`): this is the bit-exact expectation;
* the compiler's ``ChipOps`` (:mod:`lpu.tools.chipops`) schedules the same calls as
  kernels on the chip, which the golden chip model then runs.

So the algorithm is the specification, numpy is one executor and the chip is the
other; tests compare the two bit for bit, and compare both with float64 math for
accuracy.

Values are vector sets ``[n, VL]``: uint32 bit patterns for fp32/int32, uint8 for int8.
Binary operations broadcast a one-vector operand ``[1, VL]`` over ``n``.
"""

from __future__ import annotations

import math

import numpy as np

from . import numerics as nm

__all__ = ["NumpyOps", "exp", "reciprocal", "rsqrt", "rmsnorm", "softmax", "silu",
           "quantize", "linear", "LOG2E"]

LOG2E = 1.4426950408889634
# 2^f on [-0.5, 0.5]: Taylor coefficients of e^(f ln 2), degree 7, highest first
_EXP2_COEFFS = [math.log(2) ** k / math.factorial(k) for k in range(7, -1, -1)]
RSQRT_MAGIC = 0x5F3759DF
RECIP_MAGIC = 0x7EF311C3
NEWTON_STEPS = 3


def _f32_bits(v: float) -> int:
    return int(np.array(v, dtype=np.float32).view(np.uint32))


class NumpyOps:
    """Chip primitives on numpy arrays, bit-exact with the chip."""

    def __init__(self, vl: int):
        self.vl = vl

    # constants: one vector with every lane equal
    def const_f32(self, value: float):
        return np.full((1, self.vl), _f32_bits(value), dtype=np.uint32)

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
        """The n vectors combined in order: ((a0 op a1) op a2) ..."""
        a = np.asarray(a, dtype=np.uint32)
        cur = a[:1]
        for i in range(1, a.shape[0]):
            cur = _BIN[op](cur, a[i:i + 1])
        return cur


_BIN = {
    "fadd": nm.fadd, "fsub": nm.fsub, "fmul": nm.fmul, "fmin": nm.fmin, "fmax": nm.fmax,
    "add": lambda x, y: (x + y).astype(np.uint32),
    "sub": lambda x, y: (x - y).astype(np.uint32),
    "max": lambda x, y: np.maximum(x.view(np.int32), y.view(np.int32)).view(np.uint32),
    "min": lambda x, y: np.minimum(x.view(np.int32), y.view(np.int32)).view(np.uint32),
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
    p = ops.const_f32(_EXP2_COEFFS[0])
    for c in _EXP2_COEFFS[1:]:
        p = ops.binary("fadd", ops.binary("fmul", p, f), ops.const_f32(c))
    scale = ops.unary("shli", ops.binary("add", n, ops.const_bits(127)), imm=23)
    return ops.binary("fmul", p, scale)


def reciprocal(ops, x):
    """1/x for positive fp32 x: a bit-level first guess, then Newton: y = y (2 - x y)."""
    y = ops.binary("sub", ops.const_bits(RECIP_MAGIC), x)
    two = ops.const_f32(2.0)
    for _ in range(NEWTON_STEPS):
        y = ops.binary("fmul", y, ops.binary("fsub", two, ops.binary("fmul", x, y)))
    return y


def rsqrt(ops, x):
    """1/sqrt(x) for positive fp32 x: the bit-level guess, then y = y (1.5 - x/2 y^2)."""
    y = ops.binary("sub", ops.const_bits(RSQRT_MAGIC), ops.unary("shri", x, imm=1))
    half_x = ops.binary("fmul", x, ops.const_f32(0.5))
    three_halves = ops.const_f32(1.5)
    for _ in range(NEWTON_STEPS):
        y2 = ops.binary("fmul", y, y)
        y = ops.binary("fmul", y, ops.binary("fsub", three_halves,
                                             ops.binary("fmul", half_x, y2)))
    return y


def rmsnorm(ops, x, weight, eps: float, dim: int):
    """x * rsqrt(mean(x^2) + eps) * weight; x, weight: [dim / VL, VL] fp32."""
    ss = ops.lane_reduce("fadd", ops.vec_reduce("fadd", ops.binary("fmul", x, x)))
    mean = ops.binary("fmul", ss, ops.const_f32(1.0 / dim))
    r = rsqrt(ops, ops.binary("fadd", mean, ops.const_f32(eps)))
    return ops.binary("fmul", ops.binary("fmul", x, r), weight)


def softmax(ops, x):
    """Softmax over all lanes of all vectors of x [n, VL] (one row of scores)."""
    m = ops.lane_reduce("fmax", ops.vec_reduce("fmax", x))
    e = exp(ops, ops.binary("fsub", x, m))
    s = ops.lane_reduce("fadd", ops.vec_reduce("fadd", e))
    return ops.binary("fmul", e, reciprocal(ops, s))


def silu(ops, x):
    """x * sigmoid(x) = x / (1 + e^-x)."""
    d = ops.binary("fadd", exp(ops, ops.unary("fneg", x)), ops.const_f32(1.0))
    return ops.binary("fmul", x, reciprocal(ops, d))


def quantize(ops, x):
    """Per-token symmetric int8: scale = max|x| / 127; q = sat(round(x / scale)).

    Returns (q int8 [n, VL], scale fp32 [1, VL], all lanes equal)."""
    amax = ops.lane_reduce("fmax", ops.vec_reduce("fmax", ops.unary("fabs", x)))
    scale = ops.binary("fmax", ops.binary("fmul", amax, ops.const_f32(1.0 / 127.0)),
                       ops.const_f32(1e-30))
    q = ops.cvt_f32_i8(x, reciprocal(ops, scale))
    return q, scale


def linear(ops, x, w_q, w_scale):
    """y = x @ W with int8 weights (per output channel scales) and per-token int8
    activations: y = (float(q @ Wq) * w_scale) * x_scale.

    x: fp32 [K/VL, VL]; w_q: int8 [K, N]; w_scale: the handle of fp32 [N/VL, VL]."""
    q, xs = quantize(ops, x)
    acc = ops.matvec(q, w_q)
    return ops.binary("fmul", ops.binary("fmul", ops.unary("cvt.i32.f32", acc), w_scale), xs)
