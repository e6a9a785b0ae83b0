"""Loading Hugging Face layout checkpoints: round trip, and each kind of checkpoint the
project refuses, with its specific message; fitting a chip configuration."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import safetensors.numpy

from lpu import config as chip_config
from lpu.errors import LpuError
from lpu.golden.model import checkpoint, reference
from lpu.golden.model.checkpoint import CheckpointError

pytestmark = pytest.mark.model


def _edit_config(folder, **changes):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is _DROP:
            cfg.pop(k)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


def _edit_tensors(folder, fn):
    path = folder / "model.safetensors"
    t = safetensors.numpy.load_file(str(path))
    fn(t)
    safetensors.numpy.save_file(t, str(path))


_DROP = object()
L0 = "model.layers.0."


def test_checkpoint_error_is_an_lpu_error():
    assert issubclass(CheckpointError, LpuError)


def test_save_and_load_round_trip(tmp_path):
    cfg = reference.LlamaConfig(64, 32, 48, 2, 4, 2, 8, 16, tie_word_embeddings=False)
    model = reference.random_model(cfg, seed=3)
    checkpoint.save_checkpoint(tmp_path / "m", cfg, model)
    back = checkpoint.load_checkpoint(tmp_path / "m")
    assert back.config == cfg
    assert back.config.source.endswith("config.json")
    tokens = [1, 5, 9, 2]
    np.testing.assert_array_equal(reference.logits_sequence(back, tokens),
                                  reference.logits_sequence(model, tokens))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "llama"


def test_tied_checkpoint_shares_the_table_and_ignores_extra_lm_head(tmp_path, write_checkpoint):
    write_checkpoint(tmp_path / "c", tied=True)
    _edit_tensors(tmp_path / "c", lambda t: t.update(
        {"lm_head.weight": t["model.embed_tokens.weight"] * 0,
         "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(4, np.float32)}))
    model = checkpoint.load_checkpoint(tmp_path / "c")
    assert model.lm_head is model.embed


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_float_dtypes_load_as_float32(tmp_path, dtype, write_checkpoint):
    _, t = write_checkpoint(tmp_path / "c")
    if dtype == "bfloat16":  # numpy has no bfloat16: write a BF16 file by hand
        _write_bf16(tmp_path / "c" / "model.safetensors", t)
        want = {k: (v.view(np.uint32) & 0xFFFF0000).view(np.float32) for k, v in t.items()}
    else:
        _edit_tensors(tmp_path / "c", lambda d: d.update(
            {k: v.astype(dtype) for k, v in d.items()}))
        want = {k: v.astype(dtype).astype(np.float32) for k, v in t.items()}
    model = checkpoint.load_checkpoint(tmp_path / "c")
    assert model.embed.dtype == np.float32
    np.testing.assert_array_equal(model.embed, want["model.embed_tokens.weight"])
    down = want["model.layers.1.mlp.down_proj.weight"]
    np.testing.assert_array_equal(model.layers[1].w_down, down)


def _write_bf16(path, tensors):
    header, blobs, off = {}, [], 0
    for name, v in tensors.items():
        b = (v.view(np.uint32) >> 16).astype("<u2").tobytes()  # truncation
        header[name] = {"dtype": "BF16", "shape": list(v.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


# Each case: (how to break a good checkpoint, a regex the message must match)
BAD_CONFIG = {
    "architectures": (dict(architectures=["MistralForCausalLM"]),
                      r"config\.json: field 'architectures' is \['MistralForCausalLM'\]; "
                      r"only \['LlamaForCausalLM'\]"),
    "model_type": (dict(model_type="gpt2"),
                   r"config\.json: field 'model_type' is 'gpt2'; only 'llama'"),
    "hidden_act": (dict(hidden_act="gelu"),
                   r"config\.json: field 'hidden_act' is 'gelu'; only 'silu'"),
    "rope_scaling": (dict(rope_scaling={"rope_type": "linear", "factor": 2.0}),
                     r"config\.json: field 'rope_scaling' is .*linear.*; only null"),
    "rope_parameters": (dict(rope_parameters={"rope_type": "yarn", "factor": 4.0}),
                        r"config\.json: field 'rope_parameters' has rope_type 'yarn'"),
    "attention_bias": (dict(attention_bias=True),
                       r"config\.json: field 'attention_bias' is True; only false"),
    "mlp_bias": (dict(mlp_bias=True), r"config\.json: field 'mlp_bias' is True; only false"),
    "missing field": (dict(vocab_size=_DROP), r"config\.json: missing field 'vocab_size'"),
    "bad field": (dict(num_hidden_layers=-2),
                  r"field 'num_hidden_layers' must be a positive integer, not -2"),
    "head_dim not dividing": (dict(num_attention_heads=5, num_key_value_heads=5),
                              r"field 'num_attention_heads' 5 does not divide field "
                              r"'hidden_size' 32"),
    "odd head_dim": (dict(head_dim=7), r"field 'head_dim' is 7; rotary embedding needs an even"),
    "kv heads not dividing": (dict(num_key_value_heads=3),
                              r"field 'num_key_value_heads' 3 does not divide field "
                              r"'num_attention_heads' 4"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_bad_config_is_refused_naming_the_field(tmp_path, case, write_checkpoint):
    changes, message = BAD_CONFIG[case]
    write_checkpoint(tmp_path / "c")
    _edit_config(tmp_path / "c", **changes)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load_checkpoint(tmp_path / "c")
    assert str(tmp_path / "c" / "config.json") in str(e.value)


BAD_TENSORS = {
    "missing tensor": (lambda t: t.pop("model.layers.1.mlp.up_proj.weight"),
                       r"missing tensor 'model.layers.1.mlp.up_proj.weight'"),
    "missing lm_head (untied)": (lambda t: t.pop("lm_head.weight"),
                                 r"missing tensor 'lm_head.weight'"),
    "misshapen": (lambda t: t.update({L0 + "self_attn.k_proj.weight": np.zeros((8, 32), "f4")}),
                  re.escape(f"tensor '{L0}self_attn.k_proj.weight' has shape [8, 32], expected "
                            "[16, 32] (num_key_value_heads * head_dim, hidden_size from "
                            "config.json)")),
    "non-float dtype": (lambda t: t.update({"model.norm.weight": np.ones(32, np.int8)}),
                        r"tensor 'model.norm.weight' has dtype I8; only float tensors "
                        r"\(F16, BF16, F32, F64\)"),
    "unexpected bias": (lambda t: t.update({L0 + "self_attn.q_proj.bias": np.zeros(32, "f4")}),
                        rf"unexpected tensor '{L0}self_attn.q_proj.bias'"),
    "non-finite": (lambda t: t[L0 + "mlp.down_proj.weight"].__setitem__((0, 0), np.nan),
                   rf"tensor '{L0}mlp.down_proj.weight' holds non-finite values"),
}


@pytest.mark.parametrize("case", list(BAD_TENSORS))
def test_bad_tensor_is_refused_naming_the_tensor(tmp_path, case, write_checkpoint):
    fn, message = BAD_TENSORS[case]
    write_checkpoint(tmp_path / "c")
    _edit_tensors(tmp_path / "c", fn)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load_checkpoint(tmp_path / "c")
    assert str(tmp_path / "c" / "model.safetensors") in str(e.value)


def test_missing_folder_and_files(tmp_path, write_checkpoint):
    with pytest.raises(CheckpointError, match=r"nowhere: no such checkpoint folder"):
        checkpoint.load_checkpoint(tmp_path / "nowhere")
    write_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError,
                       match=r"model\.safetensors: missing file \(a checkpoint needs "):
        checkpoint.load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"sharded checkpoints .* are not supported"):
        checkpoint.load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing file"):
        checkpoint.load_checkpoint(tmp_path / "c")


def test_unreadable_files(tmp_path, write_checkpoint):
    write_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text('{"model_type": "llama",\n "vocab_size": }')
    with pytest.raises(CheckpointError, match=r"config\.json:2:16: not valid JSON"):
        checkpoint.load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"config\.json: expected a JSON object, got list"):
        checkpoint.load_checkpoint(tmp_path / "c")
    write_checkpoint(tmp_path / "d")
    (tmp_path / "d" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        checkpoint.load_checkpoint(tmp_path / "d")


# -- fitting a chip ---------------------------------------------------------------------


def _cfg(**kw):
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                max_position_embeddings=256, tie_word_embeddings=True, source="m/config.json")
    return reference.LlamaConfig(**(base | kw))


def test_check_fits_counts_weights_scales_and_kv_cache():
    small = chip_config.load("small")
    fp = checkpoint.check_fits(_cfg(), small)
    d, h, L = 64, 160, 4
    assert fp.weights == L * (2 * d * d + 2 * 16 * d + 3 * d * h) + 256 * d
    assert fp.kv_cache == 2 * L * (256 * 16 + 4 * 256)
    assert fp.total <= fp.available == small.mem_bytes - small.mem_bytes // 16


def test_too_large_model_is_refused():
    small = chip_config.load("small")
    with pytest.raises(CheckpointError, match=(
            r"m/config\.json: the model needs (\d+) bytes of SRAM \(int8 weights \d+, .*KV "
            r"cache for 256 tokens \d+\) but config 'small' has mem_bytes 262144, of which "
            r"245760 are available")):
        checkpoint.check_fits(_cfg(num_hidden_layers=8, num_key_value_heads=4), small)
    # a shorter context can make it fit, a longer one than the model's is refused
    checkpoint.check_fits(_cfg(num_key_value_heads=2), small, context=128)
    with pytest.raises(CheckpointError, match=r"context 512 exceeds field "
                                              r"'max_position_embeddings' 256"):
        checkpoint.check_fits(_cfg(), small, context=512)


@pytest.mark.parametrize("field,value,message", [
    ("vocab_size", 250, r"field 'vocab_size' 250 is not a multiple of the vector length 16 "
                        r"of config 'small'"),
    ("hidden_size", 72, r"field 'hidden_size' 72 is not a multiple of the vector length 16"),
    ("intermediate_size", 172, r"field 'intermediate_size' 172 is not a multiple"),
    ("head_dim", 12, r"field 'head_dim' 12 is not a multiple of the 8 lanes per superlane "
                     r"of config 'small'"),
])
def test_chip_geometry_is_enforced(field, value, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoint.check_fits(_cfg(**{field: value}), chip_config.load("small"))
