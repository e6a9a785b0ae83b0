"""Op-level float32 reference of a Llama-architecture decoder, in numpy.

This is the readable statement of what the chip must compute when it decodes a
transformer. Every operation is a pure function with a shape comment; the model
is a plain container of arrays (:class:`Model`); the decode API follows llama2.c:

* :func:`forward` ``(model, token, pos, cache) -> logits[vocab]`` runs one token at
  position ``pos``, reading the keys and values of positions ``0 .. pos-1`` from
  an explicit :class:`KVCache` and writing its own there;
* :func:`logits_sequence` ``(model, tokens) -> logits[T, vocab]`` runs a whole
  sequence at once with a causal mask. The two agree (tests/model).
* :func:`generate` decodes greedily (or samples with a temperature).

Conventions (those of Hugging Face ``LlamaForCausalLM``):

* weights of a linear layer are stored ``[out, in]``: ``y = x @ w.T``;
* RMSNorm: ``x / sqrt(mean(x^2) + eps) * w``;
* rotary embedding on each head of ``head_dim`` values, with the *first/second
  half* split (``rotate_half``), frequencies ``theta ** (-2i / head_dim)``;
* grouped-query attention: query head ``h`` reads key/value head
  ``h // (n_heads // n_kv_heads)``, scores scaled by ``1/sqrt(head_dim)``;
* SwiGLU FFN: ``down(silu(gate(x)) * up(x))``;
* pre-norm residual blocks, a final RMSNorm and the LM head (tied to the
  embedding table or not).

All arithmetic is numpy float32 except the rotary angles, which are computed in
float64 and rounded once to float32 (cos/sin tables). The quantized references
(:mod:`lpu.golden.model.quant`) reuse this module with another ``linear``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpu.errors import LpuError

__all__ = [
    "LlamaConfig", "LayerWeights", "Model", "LlamaWeights", "KVCache",
    "embedding", "rms_norm", "matmul", "silu", "softmax", "rope_tables", "rotate_half",
    "apply_rope", "attention", "causal_mask", "swiglu",
    "forward", "logits_sequence", "generate", "random_model",
]

F32 = np.float32


# -- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a Llama-architecture model (the fields of HF ``config.json``)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    source: str = field(default="<memory>", compare=False)

    @property
    def q_dim(self) -> int:
        """Width of the query projection, ``num_attention_heads * head_dim``."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the key and value projections, ``num_key_value_heads * head_dim``."""
        return self.num_key_value_heads * self.head_dim

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    def to_hf(self) -> dict:
        """The ``config.json`` dictionary Hugging Face writes for this shape."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": None,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
        }


# -- weights ----------------------------------------------------------------------------

# A weight is a float32 array, or (in lpu.golden.model.quant) a QuantizedTensor; the ops
# below only see it through the ``linear`` and ``embed`` functions they are given.
Weight = Any


@dataclass
class LayerWeights:
    """One decoder layer. Linear weights are ``[out, in]``."""

    attn_norm: np.ndarray  # [dim]            input_layernorm
    wq: Weight  # [q_dim, dim]                self_attn.q_proj
    wk: Weight  # [kv_dim, dim]               self_attn.k_proj
    wv: Weight  # [kv_dim, dim]               self_attn.v_proj
    wo: Weight  # [dim, q_dim]                self_attn.o_proj
    ffn_norm: np.ndarray  # [dim]             post_attention_layernorm
    w_gate: Weight  # [hidden, dim]           mlp.gate_proj
    w_up: Weight  # [hidden, dim]             mlp.up_proj
    w_down: Weight  # [dim, hidden]           mlp.down_proj


@dataclass
class Model:
    """A Llama model: its config and its weights (``lm_head is embed`` when tied)."""

    config: LlamaConfig
    embed: Weight  # [vocab, dim]
    layers: list[LayerWeights]
    norm: np.ndarray  # [dim]
    lm_head: Weight  # [vocab, dim]

    def new_cache(self) -> KVCache:
        return KVCache.for_config(self.config)

    def forward(self, token: int, pos: int, cache: KVCache) -> np.ndarray:
        return forward(self, token, pos, cache)

    def logits_sequence(self, tokens: Sequence[int]) -> np.ndarray:
        return logits_sequence(self, tokens)

    def n_params(self) -> int:
        """Number of parameters (the tied table counted once)."""
        arrays = [self.embed, self.norm]
        for lw in self.layers:
            arrays += [getattr(lw, f) for f in LayerWeights.__dataclass_fields__]
        if self.lm_head is not self.embed:
            arrays.append(self.lm_head)
        return sum(int(np.prod(np.shape(_values(a)))) for a in arrays)


LlamaWeights = Model  # llama2.c's name for the same thing


def _values(w):
    return getattr(w, "values", w)


@dataclass
class KVCache:
    """Keys and values of every layer for positions ``0 .. max_seq-1``.

    ``k[layer, pos]`` and ``v[layer, pos]`` hold the ``[n_kv_heads, head_dim]`` key
    (after RoPE) and value of the token at ``pos``.
    """

    k: np.ndarray  # [n_layers, max_seq, n_kv_heads, head_dim]
    v: np.ndarray  # [n_layers, max_seq, n_kv_heads, head_dim]

    @classmethod
    def for_config(cls, cfg: LlamaConfig, max_seq: int | None = None) -> KVCache:
        n = cfg.max_position_embeddings if max_seq is None else max_seq
        shape = (cfg.num_hidden_layers, n, cfg.num_key_value_heads, cfg.head_dim)
        return cls(np.zeros(shape, F32), np.zeros(shape, F32))

    @property
    def max_seq(self) -> int:
        return self.k.shape[1]


# -- operations -------------------------------------------------------------------------


def embedding(table: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    # [vocab, dim], [T] -> [T, dim]
    return np.asarray(table, F32)[tokens]


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    # [..., dim], [dim] -> [..., dim]
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=F32)
    return (x * (F32(1) / np.sqrt(ms + F32(eps)))).astype(F32) * w


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    # [T, in], [out, in] -> [T, out]      the float32 linear layer
    return (x @ np.asarray(w, F32).T).astype(F32)


def silu(x: np.ndarray) -> np.ndarray:
    # [...] -> [...]
    return (x / (F32(1) + np.exp(-x))).astype(F32)


def softmax(x: np.ndarray) -> np.ndarray:
    # [..., n] -> [..., n]   (masked entries are -inf and come out as 0)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(F32)


def rope_tables(positions: np.ndarray, head_dim: int, theta: float):
    # [T] -> cos [T, head_dim], sin [T, head_dim]
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    ang = np.asarray(positions, np.float64)[:, None] * inv_freq[None, :]  # [T, head_dim/2]
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang).astype(F32), np.sin(ang).astype(F32)


def rotate_half(x: np.ndarray) -> np.ndarray:
    # [..., head_dim] -> [..., head_dim]: (x1, x2) -> (-x2, x1), halves of head_dim
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    # [T, n_heads, head_dim], [T, head_dim], [T, head_dim] -> [T, n_heads, head_dim]
    return (x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]).astype(F32)


def causal_mask(q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
    # [n_q], [n_k] -> [n_q, n_k]: 0 where key position <= query position, else -inf
    return np.where(k_pos[None, :] <= q_pos[:, None], F32(0), F32(-np.inf)).astype(F32)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # [n_q, hd], [n_k, hd], [n_k, hd], [n_q, n_k] -> [n_q, hd]     one head
    scores = (q @ k.T).astype(F32) * F32(1 / np.sqrt(q.shape[-1])) + mask
    return (softmax(scores) @ v).astype(F32)


def swiglu(x, w_gate, w_up, w_down, linear=matmul):
    # [T, dim], [hidden, dim], [hidden, dim], [dim, hidden] -> [T, dim]
    return linear(silu(linear(x, w_gate)) * linear(x, w_up), w_down)


# -- the network ------------------------------------------------------------------------


def _run(model: Model, tokens: np.ndarray, start: int, cache: KVCache,
         linear: Callable = matmul, embed: Callable = embedding) -> np.ndarray:
    # tokens [T] at positions start .. start+T-1 -> logits [T, vocab]
    # Positions 0 .. start-1 are read from ``cache``; the new ones are written there.
    cfg = model.config
    T = len(tokens)
    if start < 0 or start + T > cache.max_seq:
        raise LpuError(
            f"position {start + T - 1} is outside the context of {cache.max_seq} tokens "
            f"(max_position_embeddings of {cfg.source})"
        )
    hd, nh, nkv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    pos = np.arange(start, start + T)
    keys = np.arange(start + T)
    cos, sin = rope_tables(pos, hd, cfg.rope_theta)
    mask = causal_mask(pos, keys)  # [T, start+T]
    x = embed(model.embed, np.asarray(tokens))  # [T, dim]
    for li, lw in enumerate(model.layers):
        h = rms_norm(x, lw.attn_norm, cfg.rms_norm_eps)
        q = apply_rope(linear(h, lw.wq).reshape(T, nh, hd), cos, sin)  # [T, nh, hd]
        k = apply_rope(linear(h, lw.wk).reshape(T, nkv, hd), cos, sin)  # [T, nkv, hd]
        v = linear(h, lw.wv).reshape(T, nkv, hd)
        cache.k[li, start:start + T] = k
        cache.v[li, start:start + T] = v
        ks, vs = cache.k[li, : start + T], cache.v[li, : start + T]  # [n_k, nkv, hd]
        heads = [
            attention(q[:, hi], ks[:, hi // cfg.group], vs[:, hi // cfg.group], mask)
            for hi in range(nh)
        ]
        x = x + linear(np.concatenate(heads, axis=-1), lw.wo)  # [T, dim]
        h = rms_norm(x, lw.ffn_norm, cfg.rms_norm_eps)
        x = x + swiglu(h, lw.w_gate, lw.w_up, lw.w_down, linear)
    x = rms_norm(x, model.norm, cfg.rms_norm_eps)
    return linear(x, model.lm_head)  # [T, vocab]


def forward(model: Model, token: int, pos: int, cache: KVCache) -> np.ndarray:
    """Logits ``[vocab]`` for ``token`` at position ``pos``; updates ``cache``."""
    return _run(model, np.array([token]), pos, cache)[0]


def logits_sequence(model: Model, tokens: Sequence[int]) -> np.ndarray:
    """Logits ``[T, vocab]`` of a whole sequence from position 0, with a causal mask."""
    tokens = np.asarray(tokens)
    return _run(model, tokens, 0, KVCache.for_config(model.config, max(1, len(tokens))))


def generate(model: Model, prompt_tokens: Sequence[int], n: int, temperature: float = 0.0,
             seed: int | None = None, step: Callable | None = None) -> list[int]:
    """Decode ``n`` tokens after ``prompt_tokens``; returns only the new tokens.

    Greedy (argmax) when ``temperature`` is 0, else samples from
    ``softmax(logits / temperature)`` with ``numpy.random.default_rng(seed)``.
    ``step(token, pos, cache) -> logits`` replaces :func:`forward` (the quantized
    references pass theirs).
    """
    prompt = [int(t) for t in prompt_tokens]
    if not prompt:
        raise LpuError("generate needs at least one prompt token")
    if len(prompt) + n > model.config.max_position_embeddings:
        raise LpuError(
            f"{len(prompt)} prompt tokens + {n} new ones exceed the model's context of "
            f"{model.config.max_position_embeddings} tokens (max_position_embeddings)"
        )
    step = step or (lambda t, p, c: forward(model, t, p, c))
    rng = np.random.default_rng(seed)
    cache = model.new_cache()
    out: list[int] = []
    logits = None
    for pos, tok in enumerate(prompt):
        logits = step(tok, pos, cache)
    for i in range(n):
        nxt = _pick(logits, temperature, rng)
        out.append(nxt)
        if i + 1 < n:
            logits = step(nxt, len(prompt) + i, cache)
    return out


def _pick(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    p = softmax((np.asarray(logits, np.float64) / temperature).astype(F32)).astype(np.float64)
    return int(rng.choice(len(p), p=p / p.sum()))


# -- a random model, for tests ----------------------------------------------------------


def random_model(cfg: LlamaConfig, seed: int = 0, scale: float = 0.5) -> Model:
    """A model with normal random weights (std ``scale / sqrt(fan_in)``), norms near 1."""
    rng = np.random.default_rng(seed)

    def lin(out, inp):
        return (rng.standard_normal((out, inp)) * scale / np.sqrt(inp)).astype(F32)

    def norm():
        return (1 + 0.1 * rng.standard_normal(cfg.hidden_size)).astype(F32)

    d, hdn = cfg.hidden_size, cfg.intermediate_size
    embed = rng.standard_normal((cfg.vocab_size, d)).astype(F32)
    layers = [
        LayerWeights(norm(), lin(cfg.q_dim, d), lin(cfg.kv_dim, d), lin(cfg.kv_dim, d),
                     lin(d, cfg.q_dim), norm(), lin(hdn, d), lin(hdn, d), lin(d, hdn))
        for _ in range(cfg.num_hidden_layers)
    ]
    lm_head = embed if cfg.tie_word_embeddings else lin(cfg.vocab_size, d)
    return Model(cfg, embed, layers, norm(), lm_head)
