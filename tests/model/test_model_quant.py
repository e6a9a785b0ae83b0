"""int8 quantization and the quantized float reference, on random models and on the
shipped byte-level model."""

from __future__ import annotations

import numpy as np
import pytest

from lpu import config as chip_config
from lpu.golden.model import checkpoint, quant, reference, tokenizer

pytestmark = pytest.mark.model


@pytest.mark.unit
def test_weight_quantization_is_per_row_symmetric_round_half_even():
    w = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -126.5],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                  [-2.0, 1.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    q = quant.quantize_weight(w)
    assert q.values.dtype == np.int8 and q.scales.dtype == np.float32
    np.testing.assert_array_equal(q.scales, [1.0, 1.0, np.float32(2.0) / np.float32(127)])
    np.testing.assert_array_equal(q.values[0], [127, 0, 2, 2, 0, -126])  # ties to even
    np.testing.assert_array_equal(q.values[1], 0)  # an all-zero row: scale 1
    np.testing.assert_array_equal(q.values[2], [-127, 64, 0, 0, 0, 0])  # 63.5 -> 64
    assert np.abs(q.dequantize() - w).max() <= q.scales.max() / 2 + 1e-7


@pytest.mark.unit
def test_activation_quantization_is_per_token_and_clipped():
    x = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32) * [[1], [10], [0.1],
                                                                                 [3], [100]]
    q, s = quant.quantize_activation(x.astype(np.float32))
    assert q.shape == (5, 40) and s.shape == (5,)
    np.testing.assert_allclose(s, np.abs(x).max(axis=1) / 127, rtol=1e-6)
    assert q.min() >= -127 and q.max() <= 127 and np.all(np.abs(q).max(axis=1) == 127)


@pytest.mark.unit
def test_int_matmul_is_exact():
    a = np.full((2, 4096), -127, np.int8)
    b = np.full((3, 4096), 127, np.int8)
    assert np.all(quant.int_matmul(a, b) == -127 * 127 * 4096)
    rng = np.random.default_rng(1)
    a = rng.integers(-127, 128, (7, 300)).astype(np.int8)
    b = rng.integers(-127, 128, (5, 300)).astype(np.int8)
    want = [[sum(int(x) * int(y) for x, y in zip(r, c, strict=True)) for c in b] for r in a]
    assert quant.int_matmul(a, b).dtype == np.int32
    np.testing.assert_array_equal(quant.int_matmul(a, b), want)


@pytest.mark.unit
def test_linear_q_dequantizes_with_both_scales():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 16)).astype(np.float32)
    w = quant.quantize_weight(rng.standard_normal((8, 16)).astype(np.float32))
    qx, sx = quant.quantize_activation(x)
    acc = qx.astype(np.int64) @ w.values.astype(np.int64).T
    want = acc.astype(np.float32) * sx[:, None] * w.scales[None, :]
    np.testing.assert_array_equal(quant.linear_q(x, w), want)
    np.testing.assert_allclose(quant.linear_q(x, w), x @ w.dequantize().T, atol=0.1)


def test_forward_q_equals_logits_sequence_q():
    cfg = reference.LlamaConfig(64, 32, 64, 2, 4, 2, 8, 16, tie_word_embeddings=True)
    qm = quant.quantize_model(reference.random_model(cfg, seed=4))
    assert qm.lm_head is qm.embed  # tied: one int8 table
    tokens = np.random.default_rng(5).integers(0, 64, 16)
    full = quant.logits_sequence_q(qm, tokens)
    cache = qm.new_cache()
    steps = np.stack([quant.forward_q(qm, int(t), p, cache) for p, t in enumerate(tokens)])
    # per-token activation scales make each row independent of the others
    np.testing.assert_allclose(steps, full, rtol=1e-5, atol=1e-5)
    assert quant.generate_q(qm, [1, 2], 3) == list(np.argmax(
        quant.logits_sequence_q(qm, [1, 2] + quant.generate_q(qm, [1, 2], 2)), -1)[1:])


# -- the shipped model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    path = checkpoint.builtin_model_path()
    model = checkpoint.load_checkpoint(path)
    text = (path / "heldout.txt").read_text(encoding="utf-8")
    tokens = tokenizer.encode_bytes(text)[:257]
    return model, quant.quantize_model(model), tokens


def test_shipped_model_is_small_and_fits_the_small_preset(shipped):
    model, _, _ = shipped
    path = checkpoint.builtin_model_path()
    assert (path / "model.safetensors").stat().st_size < 1_000_000
    assert (path / "README.md").is_file()
    cfg = model.config
    assert cfg.vocab_size == 256 and cfg.tie_word_embeddings
    assert cfg.max_position_embeddings >= 256
    fp = checkpoint.check_fits(cfg, chip_config.load("small"), 256)
    assert fp.total <= fp.available


def test_shipped_model_predicts_held_out_text(shipped):
    model, _, tokens = shipped
    logits = reference.logits_sequence(model, tokens[:-1]).astype(np.float64)
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    loss = -np.mean(logp[np.arange(256), tokens[1:]])
    assert loss < 2.0, f"held-out loss {loss:.3f} nats/byte"


def test_shipped_model_writes_recognisable_text(shipped):
    model, _, _ = shipped
    out = tokenizer.decode_bytes(reference.generate(model, tokenizer.encode_bytes("ROMEO:\n"),
                                                     120))
    words = out.lower().replace("\n", " ").split()
    common = {"the", "and", "i", "to", "of", "my", "you", "a", "that", "is", "not", "in",
              "me", "with", "it", "be", "your", "his", "shall", "will", "he", "this", "so"}
    assert sum(w.strip(",.;:!?'") in common for w in words) >= 3, out


def test_quantized_reference_is_close_to_float32_on_shipped_model(shipped, record_property):
    model, qm, tokens = shipped
    ref = reference.logits_sequence(model, tokens[:256])
    q = quant.logits_sequence_q(qm, tokens[:256])
    err = np.abs(q - ref)
    agree = np.mean(q.argmax(-1) == ref.argmax(-1))
    record_property("top1_agreement", float(agree))
    record_property("max_logit_error", float(err.max()))
    print(f"\nquantized vs float32, 256 teacher-forced held-out positions: top-1 agreement "
          f"{agree:.2%}, logit error max {err.max():.4f} mean {err.mean():.4f}")
    assert agree >= 0.95
    assert err.max() < 0.1 * np.abs(ref).max()
