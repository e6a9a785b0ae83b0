"""The operation graph of a decode step (lpu.tools.compiler.graph) and its bounds.

The graph is checked against the LPU-exact numpy evaluation (NumpyOps) bit for bit, so
it is the step; the critical-path bound is checked against hand-computed chains from
the ISA's delays and the floorplan, and against a schedule the compiler really made.
"""

from __future__ import annotations

import numpy as np
import pytest

from lpu import config
from lpu.golden import numerics as nm
from lpu.golden.model import exact as LX
from lpu.golden.model.checkpoint import load_builtin
from lpu.isa import OPS, Opcode
from lpu.tools.compiler import graph as G
from lpu.tools.compiler.lower import ChipDecoder

pytestmark = [pytest.mark.model]

SMALL = config.load("small")


@pytest.fixture(scope="module")
def model():
    return load_builtin()


def test_the_graph_is_the_step_bit_for_bit(model):
    """Five consecutive steps: the graph evaluated node by node with numpy gives the
    logits of NumpyOps, and the KV cache it writes carries over between steps."""
    ctx = 64
    ops = LX.NumpyOps(SMALL.vl)
    prepared = LX.Prepared(ops, model, ctx)
    cache = LX.NumpyCache(model.config.num_hidden_layers, model.config.num_key_value_heads,
                          ctx, SMALL.vl)
    for pos, tok in enumerate(b"ROMEO"):
        want = LX.decode_step(ops, prepared, tok, pos)
        g, gops = G.trace_step(model, SMALL.vl, pos, ctx)
        got = G.evaluate(g, gops, tok, cache)
        assert np.array_equal(want, got), pos


def test_every_node_is_a_chip_operation(model):
    g, _ = G.trace_step(model, SMALL.vl, 3)
    vxm = {OPS[op].mnemonic for op in OPS if OPS[op].unit == "vxm"}
    for n in g.nodes:
        assert n.kind in ("host", "vxm", "sxm", "mm", "mmt", "store"), n
        if n.kind == "vxm":
            assert n.op in vxm, n
        assert all(a < n.id for a in n.args + n.deps), "topological order"
        assert n.algo in G.ALGORITHMS
    assert len(g.output) == model.config.vocab_size // SMALL.vl


def test_lane_reduce_fan_out_has_the_butterflys_bits():
    """Radix-r stages (rotations by span x 1..r-1 combined as a pairwise tree) = the
    butterfly, bit for bit, for r = 2, 4, 16 (one stage: every rotation by 1..VL-1), on
    values where the order of fp32 additions matters."""
    rng = np.random.default_rng(5)
    vl = SMALL.vl
    x = (rng.standard_normal((6, vl)) * 10.0 ** rng.integers(-8, 8, (6, vl))).astype(np.float32)
    x[0, 3] = np.inf
    x[1, :] = [1e8, 1.0, -1e8, 1.0] * (vl // 4)
    bits = x.view(np.uint32)
    for radix in (2, 4, 16):
        for op in ("fadd", "fmax"):
            want = LX.NumpyOps(vl).lane_reduce(op, bits)
            gops = G.GraphOps(vl, radix)
            v = gops.weight_f32(x)
            out = gops.lane_reduce(op, v)
            gops.g.output = out.ids
            gops.prepared = type("P", (), {"cache": gops.new_cache(1, 1, vl)})()
            got = G.evaluate(gops.g, gops, 0)
            assert np.array_equal(want, got), (radix, op)
            rots = sum(1 for n in gops.g.nodes if n.kind == "sxm")
            stages = round(np.log(vl) / np.log(radix))
            assert rots == 6 * stages * (radix - 1)


def test_vector_reductions_are_a_pairwise_tree():
    vl = SMALL.vl
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, vl)).astype(np.float32).view(np.uint32)
    got = LX.NumpyOps(vl).vec_reduce("fadd", a)
    f = nm.fadd
    want = f(f(f(a[0:1], a[1:2]), f(a[2:3], a[3:4])), a[4:5])
    assert np.array_equal(got, want)


def _numpy_eval(fn, x):
    """fn over fp32 x on the numpy executor, as float64."""
    y = fn(LX.NumpyOps(16), x.astype(np.float32).view(np.uint32).reshape(-1, 16))
    return y.view(np.float32).reshape(-1).astype(np.float64)


def test_decode_reciprocals_are_within_the_documented_bounds():
    """docs/numerics.md: two Newton steps inside a decode step (relative error below
    1e-5), three by default (below 2e-7), for 1/x and 1/sqrt(x), against float64."""
    x = np.geomspace(1e-30, 1e30, 160_000).astype(np.float32)
    x64 = x.astype(np.float64)
    for steps, bound in ((LX.DECODE_NEWTON_STEPS, 1e-5), (LX.NEWTON_STEPS, 2e-7)):
        y = _numpy_eval(lambda o, v, n=steps: LX.reciprocal(o, v, n), x)
        assert np.abs(y * x64 - 1.0).max() < bound
        y = _numpy_eval(lambda o, v, n=steps: LX.rsqrt(o, v, n), x)
        assert np.abs(y * np.sqrt(x64) - 1.0).max() < bound
    assert (LX.DECODE_NEWTON_STEPS, LX.NEWTON_STEPS) == (2, 3)


def test_exp_is_within_the_documented_bounds():
    """docs/numerics.md: the degree-5 polynomial of 2^f below 2e-7 on |f| <= 1/2; exp
    below 1e-6 for |x| <= 10 and below 4e-6 for |x| <= 80, against float64."""
    assert len(LX.EXP2_COEFFS) == 6
    f = np.linspace(-0.5, 0.5, 160_000).astype(np.float32)

    def poly(o, v):
        p = o.const_f32(LX.EXP2_COEFFS[0])
        for c in LX.EXP2_COEFFS[1:]:
            p = o.binary("fadd", o.binary("fmul", p, v), o.const_f32(c))
        return p

    assert np.abs(_numpy_eval(poly, f) / np.exp2(f.astype(np.float64)) - 1).max() < 2e-7
    for lim, bound in ((10, 1e-6), (80, 4e-6)):
        x = np.linspace(-lim, lim, 160_000).astype(np.float32)
        y = _numpy_eval(LX.exp, x)
        assert np.abs(y / np.exp(x.astype(np.float64)) - 1).max() < bound


def _chain_graph(vl: int, mnemonics: list[str]):
    """host -> op1 -> op2 -> ... on the VXM; the output is the last."""
    gops = G.GraphOps(vl)
    v = gops.const_f32(1.0)
    for m in mnemonics:
        v = gops.binary(m, v, v)
    gops.g.output = v.ids
    return gops.g


def test_critical_path_of_a_vxm_chain_is_delays_plus_held_hops():
    """From the ISA table: host data on a stream at 1, at the VXM at 2; each op
    dispatches one cycle after the previous result (held read), the last result
    goes one position to a MEM slice and is in SRAM a cycle later."""
    S = SMALL.superlanes
    chain = ["fmul", "fadd", "add", "fmax"]
    g = _chain_graph(SMALL.vl, chain)
    cp, res, _ = G.critical_path(g, SMALL)
    t = 2
    for m in chain:
        d = OPS[getattr(Opcode, m.upper())].d(S)
        t = t + d  # result
        t += 1  # next dispatch: a held read one cycle later
    want = (t - 1) + 1 + 1  # the last result to the neighbouring MEM slice, SRAM +1
    assert cp == want


def test_a_rotation_costs_the_trip_to_the_sxm_and_back():
    vl = SMALL.vl
    gops = G.GraphOps(vl)
    x = gops.const_f32(2.0)
    r = gops.rotate(x, 3)
    y = gops.binary("fadd", x, r)
    gops.g.output = y.ids
    cp, res, _ = G.critical_path(gops.g, SMALL)
    dist = abs(SMALL.position("vxm").index - SMALL.position("sxm_w").index)
    d_rot = OPS[Opcode.ROT].d(SMALL.superlanes)
    d_add = OPS[Opcode.FADD].d(SMALL.superlanes)
    # the host value reaches the SXM from the slice next to the VXM
    assert res[r.ids[0]] == 1 + (dist - 1) + d_rot
    assert res[y.ids[0]] == res[r.ids[0]] + dist + d_add


def test_bounds_of_the_shipped_model_and_the_schedule_respects_them(model):
    b = G.step_bounds(model, SMALL, 20)
    names = set(b["bounds"])
    assert {"critical_path", "bandwidth", "throughput_vxm", "throughput_sxm",
            "throughput_mxm", "throughput_mem"} <= names
    assert b["floor"] == max(b["bounds"].values())
    assert sum(b["breakdown"].values()) == b["bounds"]["critical_path"]
    g, _ = G.trace_step(model, SMALL.vl, 20)
    n_vxm = sum(1 for n in g.nodes if n.kind == "vxm")
    assert b["bounds"]["throughput_vxm"] == n_vxm / SMALL.vxm_alus
    # a schedule the compiler made, run on the golden chip, is never below the floor
    dec = ChipDecoder(model, SMALL, 64)
    step = dec.step(ord("R"), 1)
    assert step.cycles >= G.step_bounds(model, SMALL, 1, 64)["floor"]


def test_a_batch_graph_is_every_sequence_on_its_own(model):
    """Three sequences in one graph (shared weights, own KV caches and tokens) give, for
    three steps, each sequence's NumpyOps logits bit for bit; the weight tiles of the
    sequences share keys (one load serves all)."""
    ctx, B = 32, 3
    seqs = [b"ROM", b"JUL", b"xyz"]
    L = model.config.num_hidden_layers
    ops = LX.NumpyOps(SMALL.vl)
    refs = []
    for _ in range(B):
        p = LX.Prepared(ops, model, ctx)
        refs.append(p)
    cache = LX.NumpyCache(L * B, model.config.num_key_value_heads, ctx, SMALL.vl)
    for pos in range(3):
        g, gops = G.trace_step(model, SMALL.vl, pos, ctx, batch=B)
        got = G.evaluate(g, gops, [s[pos] for s in seqs], cache)
        n = len(g.outputs[0])
        for b in range(B):
            want = LX.decode_step(ops, refs[b], seqs[b][pos], pos)
            assert np.array_equal(got[b * n:(b + 1) * n], want), (pos, b)
    shares = {}
    for nd in g.nodes:
        if "share" in nd.meta:
            shares.setdefault(nd.meta["share"], set()).add(nd.meta["seq"])
    # a weight tile is shared by every sequence, a KV block by the query heads of one
    weights = {k: v for k, v in shares.items() if k[0] in ("mm", "mmt")}
    assert weights and all(v == set(range(B)) for v in weights.values())
    kv = [v for k, v in shares.items() if k[0] in ("k", "v")]
    assert len(kv) == len(shares) - len(weights) > 0 and all(len(v) == 1 for v in kv)
