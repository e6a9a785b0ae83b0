"""Fixtures of the model tests: random checkpoints written in the Hugging Face layout."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import safetensors.numpy


def write_random_checkpoint(folder, *, vocab=48, hidden=32, inter=48, layers=2, heads=4,
                            kv_heads=2, head_dim=None, context=24, tied=False, seed=0,
                            eps=1e-5, theta=10000.0):
    """A randomly initialised checkpoint in the HF layout, written with safetensors and
    json directly (not with save_checkpoint). Returns (config dict, tensors)."""
    rng = np.random.default_rng(seed)
    hd = head_dim or hidden // heads
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "max_position_embeddings": context,
        "rms_norm_eps": eps, "rope_theta": theta, "rope_scaling": None,
        "tie_word_embeddings": tied, "attention_bias": False,
    }
    if head_dim:
        cfg["head_dim"] = head_dim

    def w(*shape):
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)

    def norm():
        return (1 + 0.2 * rng.standard_normal(hidden)).astype(np.float32)

    t = {"model.embed_tokens.weight": rng.standard_normal((vocab, hidden)).astype(np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm()
        t[p + "self_attn.q_proj.weight"] = w(heads * hd, hidden)
        t[p + "self_attn.k_proj.weight"] = w(kv_heads * hd, hidden)
        t[p + "self_attn.v_proj.weight"] = w(kv_heads * hd, hidden)
        t[p + "self_attn.o_proj.weight"] = w(hidden, heads * hd)
        t[p + "post_attention_layernorm.weight"] = norm()
        t[p + "mlp.gate_proj.weight"] = w(inter, hidden)
        t[p + "mlp.up_proj.weight"] = w(inter, hidden)
        t[p + "mlp.down_proj.weight"] = w(hidden, inter)
    t["model.norm.weight"] = norm()
    if not tied:
        t["lm_head.weight"] = w(vocab, hidden)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    safetensors.numpy.save_file(t, str(folder / "model.safetensors"))
    return cfg, t


@pytest.fixture
def write_checkpoint():
    """``write_checkpoint(folder, **shape) -> (config dict, tensors)``."""
    return write_random_checkpoint
