"""Kernels compiled by the scheduler, run on the golden chip model, bit-exact against the
LPU-exact numpy evaluation of the same algorithm, and accurate against float64."""

import numpy as np
import pytest

from lpu import config
from lpu.golden.chip import Chip
from lpu.golden.model import exact as L
from lpu.tools.compiler.chipops import ChipOps

pytestmark = [pytest.mark.kernel]


def run(cfg, fn, *arrays):
    """fn(ops, *vals) on the chip and in numpy; returns (chip result, numpy result, cycles)."""
    co = ChipOps(cfg)
    vals = [co.input(a, "i8" if a.dtype == np.uint8 else "f32") for a in arrays]
    out = fn(co, *vals)
    outs = out if isinstance(out, tuple) else (out,)
    chip = Chip(cfg)
    co.load_image(chip)
    chip.load(co.program())
    res = chip.run()
    got = [co.read(chip, o) for o in outs]
    want = fn(L.NumpyOps(cfg.vl), *arrays)
    want = want if isinstance(want, tuple) else (want,)
    return got, [np.asarray(w) for w in want], res.cycles


def f32(rng, n, vl, scale=1.0):
    return (rng.standard_normal((n, vl)) * scale).astype(np.float32)


@pytest.mark.parametrize("cfgname", ["tiny", "small"])
@pytest.mark.parametrize("op", ["fadd", "fsub", "fmul", "fmax", "fmin"])
def test_elementwise(cfgname, op):
    cfg = config.load(cfgname)
    rng = np.random.default_rng(len(op))
    n = int(rng.integers(1, 6))
    a, b = f32(rng, n, cfg.vl), f32(rng, n, cfg.vl)
    got, want, _ = run(cfg, lambda o, x, y: o.binary(op, x, y), a.view(np.uint32),
                       b.view(np.uint32))
    assert np.array_equal(got[0], want[0])
    ref = {"fadd": np.add, "fsub": np.subtract, "fmul": np.multiply, "fmax": np.maximum,
           "fmin": np.minimum}[op](a, b)
    assert np.array_equal(got[0], ref.view(np.uint32))  # normal inputs: plain numpy agrees


@pytest.mark.parametrize("cfgname", ["tiny", "small"])
def test_lane_and_vector_reductions(cfgname):
    cfg = config.load(cfgname)
    rng = np.random.default_rng(3)
    x = f32(rng, 3, cfg.vl)
    got, want, _ = run(cfg, lambda o, v: (o.lane_reduce("fadd", v), o.vec_reduce("fmax", v),
                                          o.lane_reduce("fmax", v)), x.view(np.uint32))
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
    s = got[0].view(np.float32)
    assert np.allclose(s, x.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-5)
    assert np.array_equal(got[1].view(np.float32)[0], x.max(axis=0))
    assert np.all(got[2].view(np.float32) == x.max(axis=1, keepdims=True))


FUNCS = {
    "exp": (lambda o, v: L.exp(o, v), lambda x: np.exp(x), 4.0, 1e-5),
    "reciprocal": (lambda o, v: L.reciprocal(o, o.unary("fabs", v)), lambda x: 1 / np.abs(x),
                   3.0, 1e-6),
    "rsqrt": (lambda o, v: L.rsqrt(o, o.unary("fabs", v)), lambda x: 1 / np.sqrt(np.abs(x)),
              3.0, 1e-6),
    "silu": (lambda o, v: L.silu(o, v), lambda x: x / (1 + np.exp(-x)), 4.0, 1e-5),
    # absolute error of probabilities <= 1: the sum's reciprocal has two Newton steps
    # (relative error below 1e-5, docs/numerics.md)
    "softmax": (lambda o, v: L.softmax(o, v),
                lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum(), 3.0, 1e-5),
}


@pytest.mark.parametrize("cfgname", ["tiny", "small"])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_functions_bit_exact_and_accurate(cfgname, name):
    cfg = config.load(cfgname)
    fn, ref, scale, tol = FUNCS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    n = 2 if cfgname == "small" else 3
    x = f32(rng, n, cfg.vl, scale)
    got, want, _ = run(cfg, fn, x.view(np.uint32))
    assert np.array_equal(got[0], want[0])
    exact = ref(x.astype(np.float64))
    err = np.abs(got[0].view(np.float32) - exact) / np.maximum(np.abs(exact), 1e-30)
    if name == "softmax":
        err = np.abs(got[0].view(np.float32) - exact)
    assert err.max() < tol, err.max()


def test_rmsnorm_and_quantize():
    cfg = config.load("small")
    rng = np.random.default_rng(11)
    x = f32(rng, 4, cfg.vl, 2.0)
    w = f32(rng, 4, cfg.vl)
    dim = x.size

    def fn(o, xv, wv):
        y = L.rmsnorm(o, xv, wv, 1e-5, dim)
        q, s = L.quantize(o, y)
        return y, q, s

    got, want, _ = run(cfg, fn, x.view(np.uint32), w.view(np.uint32))
    for g, wnt in zip(got, want, strict=True):
        assert np.array_equal(g, wnt)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt((x64 ** 2).mean() + 1e-5) * w
    y = got[0].view(np.float32)
    assert np.allclose(y, ref, rtol=1e-5, atol=1e-6)
    q = got[1].view(np.int8).astype(np.float64)
    s = got[2].view(np.float32)[0, 0]
    assert np.abs(q).max() == 127
    assert np.abs(q * s - y).max() <= s / 2 * 1.001


@pytest.mark.parametrize("cfgname,kt,nt", [("tiny", 2, 3), ("small", 4, 2)])
def test_linear_int8(cfgname, kt, nt):
    cfg = config.load(cfgname)
    vl = cfg.vl
    rng = np.random.default_rng(kt * 10 + nt)
    w = rng.standard_normal((kt * vl, nt * vl)).astype(np.float32)
    scale = np.abs(w).max(axis=0) / 127
    wq = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    x = f32(rng, kt, vl)

    def fn(o, xv):
        ws = o.weight_f32(scale.astype(np.float32).reshape(nt, vl))
        return L.linear(o, xv, wq, ws)

    got, want, cycles = run(cfg, fn, x.view(np.uint32))
    assert np.array_equal(got[0], want[0])
    y = got[0].view(np.float32).reshape(-1)
    ref = x.reshape(-1).astype(np.float64) @ w.astype(np.float64)
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()


def test_rope():
    cfg = config.load("small")
    vl = cfg.vl
    rng = np.random.default_rng(5)
    t = f32(rng, 3, vl)
    from lpu.golden.model.reference import LlamaConfig, apply_rope, rope_tables
    mc = LlamaConfig(vocab_size=vl, hidden_size=vl, intermediate_size=vl, num_hidden_layers=1,
                     num_attention_heads=3, num_key_value_heads=3, head_dim=vl,
                     max_position_embeddings=64)
    pos = 37
    cos, sin, _, _ = L.step_inputs(mc, pos, vl, 10000.0)

    def fn(o, tv):
        return L.rope(o, tv, o.weight_f32(cos), o.weight_f32(sin))

    got, want, _ = run(cfg, fn, t.view(np.uint32))
    assert np.array_equal(got[0], want[0])
    c, s = rope_tables(np.array([pos]), vl, 10000.0)
    ref = apply_rope(t[None].astype(np.float32), c, s)[0]
    assert np.allclose(got[0].view(np.float32), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_heads,n_kv,steps", [(2, 1, 3), (2, 2, 18)])
def test_attention_with_cache(n_heads, n_kv, steps):
    """Several tokens' attention steps over the int8 KV cache, chip against LPU-exact;
    the last step crosses into a second block of positions when steps > VL."""
    cfg = config.load("small")
    vl = cfg.vl
    rng = np.random.default_rng(steps)
    from lpu.golden.model.reference import LlamaConfig
    mc = LlamaConfig(vocab_size=vl, hidden_size=vl, intermediate_size=vl, num_hidden_layers=1,
                     num_attention_heads=n_heads, num_key_value_heads=n_kv, head_dim=vl,
                     max_position_embeddings=32)
    qs = [f32(rng, n_heads, vl) for _ in range(steps)]
    ks = [f32(rng, n_kv, vl) for _ in range(steps)]
    vs = [f32(rng, n_kv, vl) for _ in range(steps)]

    def attend_all(o, cache, pos_list):
        outs = []
        for pos in pos_list:
            _, _, lane, valid = L.step_inputs(mc, pos, vl, 10000.0)
            q, k, v = (o.weight_f32(a[pos]) for a in (qs, ks, vs))
            outs.append(L.attention(o, cache, 0, q, k, v, pos, o.const_vec(lane),
                                    o.const_vec(valid), n_heads, n_kv))
        return outs

    nops = L.NumpyOps(vl)
    ncache = nops.new_cache(1, n_kv, 32)
    want = attend_all(nops, ncache, range(steps))
    # the chip runs one program per step, the cache staying in SRAM between them
    chip = Chip(cfg)
    for pos in range(steps):
        co = ChipOps(cfg)
        cache = co.new_cache(1, n_kv, 32)
        out = attend_all(co, cache, [pos])[0]
        co.load_image(chip)
        chip.load(co.program())
        chip.run()
        assert np.array_equal(co.read(chip, out), want[pos]), f"step {pos}"
    # and the attention is close to float softmax attention over the same history
    q = qs[-1][0].astype(np.float64)
    kk = np.stack([k[0] for k in ks]).astype(np.float64)
    vv = np.stack([v[0] for v in vs]).astype(np.float64)
    sc = kk @ q / np.sqrt(vl)
    p = np.exp(sc - sc.max())
    ref = (p / p.sum()) @ vv
    assert np.abs(want[-1][0].view(np.float32) - ref).max() < 0.05 * np.abs(ref).max() + 0.02


def test_swiglu():
    cfg = config.load("small")
    vl = cfg.vl
    rng = np.random.default_rng(9)
    h = f32(rng, 2, vl)
    dim, hid = 2 * vl, 3 * vl

    def qw(shape):
        w = rng.standard_normal(shape).astype(np.float32) / np.sqrt(shape[0])
        sc = (np.abs(w).max(axis=0) / 127).astype(np.float32)
        return np.clip(np.rint(w / sc), -127, 127).astype(np.int8), sc, w

    (g8, gs, gw), (u8, us, uw), (d8, ds, dw) = qw((dim, hid)), qw((dim, hid)), qw((hid, dim))

    def fn(o, hv):
        return L.swiglu(o, hv, (o.weight_i8(g8), o.weight_f32(gs.reshape(-1, vl))),
                        (o.weight_i8(u8), o.weight_f32(us.reshape(-1, vl))),
                        (o.weight_i8(d8), o.weight_f32(ds.reshape(-1, vl))))

    got, want, _ = run(cfg, fn, h.view(np.uint32))
    assert np.array_equal(got[0], want[0])
    x = h.reshape(-1).astype(np.float64)
    g, u = x @ gw, x @ uw
    ref = (g / (1 + np.exp(-g)) * u) @ dw
    y = got[0].view(np.float32).reshape(-1)
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()


def test_independent_matvecs_share_the_planes_safely():
    """Several matrix-vector products ready at the same time: the MXM planes hold state
    (shadow, weights, accumulators), so the scheduler must not interleave them."""
    cfg = config.load("small")
    vl = cfg.vl
    rng = np.random.default_rng(21)
    ws = [rng.integers(-127, 128, size=(2 * vl, 3 * vl)).astype(np.int8) for _ in range(3)]
    x = rng.integers(-127, 128, size=(2, vl)).astype(np.int8).view(np.uint8)

    def fn(o, xv):
        return tuple(o.matvec(xv, o.weight_i8(w)) for w in ws)

    got, want, _ = run(cfg, fn, x)
    for g, w_, w in zip(got, want, ws, strict=True):
        assert np.array_equal(g, w_)
        ref = x.view(np.int8).reshape(-1).astype(np.int64) @ w.astype(np.int64)
        assert g.view(np.int32).reshape(-1).tolist() == ref.tolist()
