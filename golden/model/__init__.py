"""``lpu.golden.model``: the transformer the chip runs, as numpy models.

``reference`` (the float32 op-level Llama), ``quant`` (int8 quantization and the
quantized reference), ``checkpoint`` (Hugging Face checkpoints: load, refuse, save),
``tokenizer`` (bytes) and ``exact`` (the LPU-exact algorithms over chip primitives,
the :class:`~lpu.golden.model.exact.Ops` interface and its numpy executor).
"""

__all__ = ["checkpoint", "exact", "quant", "reference", "tokenizer"]
