"""int8 quantization and the quantized float reference.

The chip multiplies int8 by int8 into exact int32 sums (MXM), so every linear layer
of a model runs on int8 weights and int8 activations:

* weights: symmetric, one float32 scale per output channel (row of the ``[out, in]``
  matrix), ``scale = max|w_row| / 127``, ``q = clip(round_half_even(w / scale),
  -127, 127)``; an all-zero row gets scale 1;
* activations: symmetric, one float32 scale per token (row of ``[T, in]``), the same
  rule;
* a linear layer is ``y[t, o] = float32(acc[t, o]) * x_scale[t] * w_scale[o]`` with
  ``acc = q_x @ q_w.T`` summed exactly in int32.

:func:`forward_q` and :func:`logits_sequence_q` run the network of
:mod:`lpu.golden.model.reference` with every linear layer (Q, K, V, O, gate, up, down and
the LM head) computed that way; the embedding lookup reads the dequantized int8
table (the chip holds only the int8 table, shared with a tied LM head). Norms,
RoPE, attention and SiLU stay in float32. This is the *quantized float reference*:
it shows what int8 costs in accuracy. It is not the bit-exact expectation for the
chip (that is the LPU-exact reference, which follows the chip's order of
operations and its fp32 rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from . import reference as ref
from .reference import KVCache, LayerWeights, Model

__all__ = [
    "QMAX", "QuantizedTensor", "quantize_weight", "quantize_activation", "linear_q",
    "embedding_q", "quantize_model", "forward_q", "logits_sequence_q", "generate_q",
]

QMAX = 127
F32 = np.float32


@dataclass(frozen=True)
class QuantizedTensor:
    """int8 values with one float32 scale per row: ``w ~= values * scales[:, None]``."""

    values: np.ndarray  # [out, in] int8, in [-127, 127]
    scales: np.ndarray  # [out] float32, > 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def dequantize(self) -> np.ndarray:
        # -> [out, in] float32
        return self.values.astype(F32) * self.scales[:, None]


def _quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # [n, k] -> int8 [n, k], float32 [n]     symmetric, one scale per row
    x = np.asarray(x, F32)
    amax = np.max(np.abs(x), axis=-1)
    scales = np.where(amax > 0, amax / F32(QMAX), F32(1)).astype(F32)
    q = np.clip(np.rint(x / scales[:, None]), -QMAX, QMAX).astype(np.int8)  # rint: half even
    return q, scales


def quantize_weight(w: np.ndarray) -> QuantizedTensor:
    """Per-output-channel symmetric int8 quantization of a ``[out, in]`` weight."""
    return QuantizedTensor(*_quantize_rows(w))


def quantize_activation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token symmetric int8 quantization.

    # [T, k] -> q int8 [T, k], scale float32 [T]
    """
    return _quantize_rows(x)


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # int8 [T, k], int8 [out, k] -> int32 [T, out]: a @ b.T, exact
    # float64 sums of int8 products are exact while |sum| < 2**53; int32 holds any
    # sum of up to 133,000 products of two int8 values in [-127, 127].
    acc = a.astype(np.float64) @ b.astype(np.float64).T
    return acc.astype(np.int32)


def linear_q(x: np.ndarray, w: QuantizedTensor) -> np.ndarray:
    # [T, in] float32, [out, in] -> [T, out] float32
    qx, sx = quantize_activation(x)
    acc = int_matmul(qx, w.values)
    return (acc.astype(F32) * sx[:, None] * w.scales[None, :]).astype(F32)


def embedding_q(table: QuantizedTensor, tokens: np.ndarray) -> np.ndarray:
    # [vocab, dim], [T] -> [T, dim]    dequantized int8 rows
    return table.values[tokens].astype(F32) * table.scales[tokens, None]


def quantize_model(model: Model) -> Model:
    """The same model with every linear weight (and the embedding) a QuantizedTensor."""
    layers = [
        LayerWeights(
            attn_norm=lw.attn_norm, ffn_norm=lw.ffn_norm,
            wq=quantize_weight(lw.wq), wk=quantize_weight(lw.wk), wv=quantize_weight(lw.wv),
            wo=quantize_weight(lw.wo), w_gate=quantize_weight(lw.w_gate),
            w_up=quantize_weight(lw.w_up), w_down=quantize_weight(lw.w_down),
        )
        for lw in model.layers
    ]
    embed = quantize_weight(model.embed)
    lm_head = embed if model.lm_head is model.embed else quantize_weight(model.lm_head)
    return replace(model, embed=embed, layers=layers, lm_head=lm_head)


def _as_quantized(model: Model) -> Model:
    return model if isinstance(model.embed, QuantizedTensor) else quantize_model(model)


def forward_q(qmodel: Model, token: int, pos: int, cache: KVCache) -> np.ndarray:
    """Logits ``[vocab]`` of one token with int8 linear layers; updates ``cache``.

    ``qmodel`` comes from :func:`quantize_model` (a float model is quantized on each
    call, which is slow).
    """
    qmodel = _as_quantized(qmodel)
    return ref._run(qmodel, np.array([token]), pos, cache, linear_q, embedding_q)[0]


def logits_sequence_q(qmodel: Model, tokens: Sequence[int]) -> np.ndarray:
    """Logits ``[T, vocab]`` of a whole sequence with int8 linear layers."""
    qmodel = _as_quantized(qmodel)
    tokens = np.asarray(tokens)
    cache = KVCache.for_config(qmodel.config, max(1, len(tokens)))
    return ref._run(qmodel, tokens, 0, cache, linear_q, embedding_q)


def generate_q(qmodel: Model, prompt_tokens: Sequence[int], n: int, temperature: float = 0.0,
               seed: int | None = None) -> list[int]:
    """:func:`lpu.golden.model.reference.generate` with the quantized reference."""
    qmodel = _as_quantized(qmodel)
    return ref.generate(qmodel, prompt_tokens, n, temperature, seed,
                        step=lambda t, p, c: forward_q(qmodel, t, p, c))
