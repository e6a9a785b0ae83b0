"""The float32 op-level reference against an independent float64 computation of the
same network, written here from the Hugging Face Llama definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lpu.errors import LpuError
from lpu.golden.model import checkpoint, reference

pytestmark = pytest.mark.model


def independent_logits(cfg: dict, t: dict, tokens) -> np.ndarray:
    """The same network in float64 with explicit loops, one position at a time."""
    W = {k: v.astype(np.float64) for k, v in t.items()}
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    lm = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]

    def norm(x, g):
        return g * x / math.sqrt(sum(v * v for v in x) / len(x) + eps)

    def rope(vec, pos):  # rotate each pair (i, i + hd/2) by pos * theta^(-2i/hd)
        out = vec.copy()
        half = hd // 2
        for i in range(half):
            a = pos * theta ** (-2.0 * i / hd)
            x1, x2 = vec[i], vec[i + half]
            out[i] = x1 * math.cos(a) - x2 * math.sin(a)
            out[i + half] = x2 * math.cos(a) + x1 * math.sin(a)
        return out

    keys = [[[] for _ in range(nkv)] for _ in range(cfg["num_hidden_layers"])]
    vals = [[[] for _ in range(nkv)] for _ in range(cfg["num_hidden_layers"])]
    logits = []
    for pos, tok in enumerate(tokens):
        x = W["model.embed_tokens.weight"][tok].copy()
        for li in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{li}."
            h = norm(x, W[p + "input_layernorm.weight"])
            q = np.einsum("oi,i->o", W[p + "self_attn.q_proj.weight"], h)
            k = np.einsum("oi,i->o", W[p + "self_attn.k_proj.weight"], h)
            v = np.einsum("oi,i->o", W[p + "self_attn.v_proj.weight"], h)
            for g in range(nkv):
                keys[li][g].append(rope(k[g * hd:(g + 1) * hd], pos))
                vals[li][g].append(v[g * hd:(g + 1) * hd])
            att = []
            for head in range(nh):
                g = head * nkv // nh
                qh = rope(q[head * hd:(head + 1) * hd], pos)
                s = [float(qh @ kk) / math.sqrt(hd) for kk in keys[li][g]]
                m = max(s)
                e = [math.exp(si - m) for si in s]
                att.append(sum(ei * vv for ei, vv in zip(e, vals[li][g], strict=True)) / sum(e))
            x = x + np.einsum("oi,i->o", W[p + "self_attn.o_proj.weight"], np.concatenate(att))
            h = norm(x, W[p + "post_attention_layernorm.weight"])
            gate = np.einsum("oi,i->o", W[p + "mlp.gate_proj.weight"], h)
            up = np.einsum("oi,i->o", W[p + "mlp.up_proj.weight"], h)
            act = gate / (1 + np.exp(-gate)) * up
            x = x + np.einsum("oi,i->o", W[p + "mlp.down_proj.weight"], act)
        logits.append(lm @ norm(x, W["model.norm.weight"]))
    return np.array(logits)


SHAPES = [
    dict(),  # GQA 4 heads on 2 KV heads, untied
    dict(tied=True, kv_heads=1, layers=3),  # multi-query, tied embeddings
    dict(heads=2, kv_heads=2, head_dim=8, hidden=24, theta=500.0),  # explicit head_dim
]


@pytest.mark.parametrize("shape", SHAPES, ids=["gqa-untied", "mqa-tied", "mha-head_dim"])
def test_reference_matches_independent_float64(tmp_path, shape, write_checkpoint):
    cfg, t = write_checkpoint(tmp_path / "ckpt", **shape)
    model = checkpoint.load_checkpoint(tmp_path / "ckpt")
    tokens = np.random.default_rng(1).integers(0, cfg["vocab_size"], 20)
    want = independent_logits(cfg, t, tokens)
    got = reference.logits_sequence(model, tokens)
    assert got.dtype == np.float32 and got.shape == (20, cfg["vocab_size"])
    assert np.max(np.abs(got - want)) < 2e-4 * max(1.0, np.max(np.abs(want)))


def test_forward_with_cache_equals_logits_sequence(tmp_path, write_checkpoint):
    write_checkpoint(tmp_path / "ckpt", context=32)
    model = checkpoint.load_checkpoint(tmp_path / "ckpt")
    tokens = np.random.default_rng(2).integers(0, model.config.vocab_size, 32)
    full = reference.logits_sequence(model, tokens)
    cache = reference.KVCache.for_config(model.config)
    steps = np.stack([reference.forward(model, int(t), p, cache) for p, t in enumerate(tokens)])
    np.testing.assert_allclose(steps, full, rtol=1e-5, atol=1e-5)
    # the cache holds the roped keys the whole-sequence run used
    assert np.any(cache.k[:, -1] != 0)


def test_generate_is_greedy_and_sampling_is_seeded(tmp_path, write_checkpoint):
    write_checkpoint(tmp_path / "ckpt", context=24)
    model = checkpoint.load_checkpoint(tmp_path / "ckpt")
    prompt = [3, 1, 4]
    out = reference.generate(model, prompt, 6)
    seq = list(prompt)
    for _ in range(6):
        seq.append(int(np.argmax(reference.logits_sequence(model, seq)[-1])))
    assert out == seq[3:]
    a = reference.generate(model, prompt, 6, temperature=1.0, seed=7)
    b = reference.generate(model, prompt, 6, temperature=1.0, seed=7)
    assert a == b
    with pytest.raises(LpuError, match="exceed the model's context of 24 tokens"):
        reference.generate(model, prompt, 22)


def test_forward_beyond_context_is_refused():
    cfg = reference.LlamaConfig(32, 16, 32, 1, 2, 1, 8, 4)
    model = reference.random_model(cfg)
    with pytest.raises(LpuError, match="outside the context of 4 tokens"):
        reference.forward(model, 1, 4, model.new_cache())


@pytest.mark.unit
def test_ops_shapes_and_conventions():
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8)
    np.testing.assert_array_equal(reference.rotate_half(x)[0, 0], [-4, -5, -6, -7, 0, 1, 2, 3])
    cos, sin = reference.rope_tables(np.array([0]), 8, 10000.0)
    np.testing.assert_array_equal(reference.apply_rope(x, cos, sin), x)  # position 0
    m = reference.causal_mask(np.arange(3), np.arange(3))
    assert np.isneginf(m[0, 1]) and m[2, 0] == 0 and m[1, 1] == 0
    y = reference.rms_norm(np.array([[3.0, 4.0]], np.float32), np.ones(2, np.float32), 0.0)
    np.testing.assert_allclose(y, [[3 / math.sqrt(12.5), 4 / math.sqrt(12.5)]], rtol=1e-6)
