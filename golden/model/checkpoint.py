"""Llama checkpoints in the Hugging Face layout: load, refuse, save, and size them.

A checkpoint is a folder holding ``config.json`` and ``model.safetensors`` with the
tensor names of ``transformers.LlamaForCausalLM``::

    model.embed_tokens.weight                         [vocab, hidden]
    model.layers.N.input_layernorm.weight             [hidden]
    model.layers.N.self_attn.q_proj.weight            [heads * head_dim, hidden]
    model.layers.N.self_attn.k_proj.weight            [kv_heads * head_dim, hidden]
    model.layers.N.self_attn.v_proj.weight            [kv_heads * head_dim, hidden]
    model.layers.N.self_attn.o_proj.weight            [hidden, heads * head_dim]
    model.layers.N.post_attention_layernorm.weight    [hidden]
    model.layers.N.mlp.gate_proj.weight               [intermediate, hidden]
    model.layers.N.mlp.up_proj.weight                 [intermediate, hidden]
    model.layers.N.mlp.down_proj.weight               [hidden, intermediate]
    model.norm.weight                                 [hidden]
    lm_head.weight                                    [vocab, hidden]  (absent when tied)

Anything the project cannot run is refused with a :class:`CheckpointError` whose
message names the file and the field or tensor. :func:`check_fits` refuses a model
that does not fit a chip configuration's SRAM or vector geometry.

The project ships one model, ``bytes-llama`` (:func:`builtin_model_path`), a tiny
byte-level model (vocabulary 256: token = byte of UTF-8 text, see
:func:`encode_bytes`) trained by ``tools/train_model.py``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import safetensors.numpy

from lpu.errors import LpuError

from .reference import LayerWeights, LlamaConfig, Model

__all__ = [
    "CheckpointError", "Footprint", "read_config", "load_checkpoint", "load_builtin",
    "save_checkpoint", "model_tensors", "tensor_shapes", "check_fits", "builtin_model_path",
    "sram_reserve", "BUILTIN_MODEL",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BUILTIN_MODEL = "bytes-llama"

#: The largest weight magnitude loaded (float16's largest value): a trained model's
#: weights are far inside it; beyond it the float32 activations overflow (1e30 weights
#: decoded to NUL tokens, no warning), so such a checkpoint is refused.
MAX_ABS_WEIGHT = 65504.0

# safetensors dtype -> numpy dtype (None: bfloat16, converted by hand)
_FLOAT_DTYPES = {"F16": np.float16, "BF16": None, "F32": np.float32, "F64": np.float64}


class CheckpointError(LpuError, ValueError):
    """A checkpoint the project cannot run. The message names the file and the field
    or tensor."""


# -- config.json ------------------------------------------------------------------------


def _need_int(raw: dict, key: str, where: str, default=None) -> int:
    value = raw.get(key, default)
    if value is None:
        raise CheckpointError(f"{where}: missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"{where}: field {key!r} must be a positive integer, not {value!r}")
    return value


def _need_float(raw: dict, key: str, where: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CheckpointError(f"{where}: field {key!r} must be a positive number, not {value!r}")
    return float(value)


def config_from_dict(raw: Mapping, where: str = "<config>") -> LlamaConfig:
    """Validate a ``config.json`` dictionary; ``where`` names it in messages."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    raw = dict(raw)
    archs = raw.get("architectures")
    if archs is not None and archs != ["LlamaForCausalLM"]:
        raise CheckpointError(
            f"{where}: field 'architectures' is {archs!r}; only ['LlamaForCausalLM'] is supported"
        )
    if raw.get("model_type") != "llama":
        raise CheckpointError(
            f"{where}: field 'model_type' is {raw.get('model_type')!r}; only 'llama' is supported"
        )
    act = raw.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(
            f"{where}: field 'hidden_act' is {act!r}; only 'silu' (SwiGLU) is supported"
        )
    rope_theta = raw.get("rope_theta", 10000.0)
    if raw.get("rope_scaling") is not None:
        raise CheckpointError(
            f"{where}: field 'rope_scaling' is {raw['rope_scaling']!r}; only null (plain RoPE) "
            "is supported"
        )
    params = raw.get("rope_parameters")  # newer transformers put rope_theta here
    if params is not None:
        kind = params.get("rope_type", "default") if isinstance(params, dict) else params
        if kind != "default":
            raise CheckpointError(
                f"{where}: field 'rope_parameters' has rope_type {kind!r}; only 'default' "
                "(plain RoPE) is supported"
            )
        rope_theta = params.get("rope_theta", rope_theta)
    for key in ("attention_bias", "mlp_bias"):
        if raw.get(key, False):
            raise CheckpointError(
                f"{where}: field {key!r} is {raw[key]!r}; only false (no biases) is supported"
            )
    tie = raw.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise CheckpointError(f"{where}: field 'tie_word_embeddings' must be true or false")

    hidden = _need_int(raw, "hidden_size", where)
    heads = _need_int(raw, "num_attention_heads", where)
    kv_heads = _need_int(raw, "num_key_value_heads", where, default=heads)
    if raw.get("head_dim") is None and hidden % heads:
        raise CheckpointError(
            f"{where}: field 'num_attention_heads' {heads} does not divide field "
            f"'hidden_size' {hidden} (and no 'head_dim' is given)"
        )
    head_dim = _need_int(raw, "head_dim", where, default=hidden // heads)
    if head_dim % 2:
        raise CheckpointError(
            f"{where}: field 'head_dim' is {head_dim}; rotary embedding needs an even head_dim"
        )
    if heads % kv_heads:
        raise CheckpointError(
            f"{where}: field 'num_key_value_heads' {kv_heads} does not divide field "
            f"'num_attention_heads' {heads}"
        )
    return LlamaConfig(
        vocab_size=_need_int(raw, "vocab_size", where),
        hidden_size=hidden,
        intermediate_size=_need_int(raw, "intermediate_size", where),
        num_hidden_layers=_need_int(raw, "num_hidden_layers", where),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=_need_int(raw, "max_position_embeddings", where),
        rms_norm_eps=_need_float(raw, "rms_norm_eps", where, 1e-6),
        rope_theta=_need_float({"rope_theta": rope_theta}, "rope_theta", where, 10000.0),
        tie_word_embeddings=tie,
        source=where,
    )


def _folder(folder) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    return path


def read_config(folder) -> LlamaConfig:
    """Read and validate ``folder/config.json`` (`folder` may also be that file)."""
    path = Path(folder)
    if not path.is_file():
        path = _folder(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing file (a checkpoint needs {CONFIG_FILE})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    return config_from_dict(raw, str(path))


# -- model.safetensors ------------------------------------------------------------------


def tensor_shapes(cfg: LlamaConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """HF tensor name -> (expected shape, how the shape follows from config.json)."""
    d, v, h = cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size
    q, kv = cfg.q_dim, cfg.kv_dim
    out = {"model.embed_tokens.weight": ((v, d), "vocab_size, hidden_size")}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": ((d,), "hidden_size"),
            p + "self_attn.q_proj.weight": ((q, d), "num_attention_heads * head_dim, hidden_size"),
            p + "self_attn.k_proj.weight": ((kv, d), "num_key_value_heads * head_dim, hidden_size"),
            p + "self_attn.v_proj.weight": ((kv, d), "num_key_value_heads * head_dim, hidden_size"),
            p + "self_attn.o_proj.weight": ((d, q), "hidden_size, num_attention_heads * head_dim"),
            p + "post_attention_layernorm.weight": ((d,), "hidden_size"),
            p + "mlp.gate_proj.weight": ((h, d), "intermediate_size, hidden_size"),
            p + "mlp.up_proj.weight": ((h, d), "intermediate_size, hidden_size"),
            p + "mlp.down_proj.weight": ((d, h), "hidden_size, intermediate_size"),
        }
    out["model.norm.weight"] = ((d,), "hidden_size")
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = ((v, d), "vocab_size, hidden_size")
    return out


def _ignored(name: str, cfg: LlamaConfig) -> bool:
    # Tensors HF may save that carry nothing the model needs.
    return name.endswith("rotary_emb.inv_freq") or (
        name == "lm_head.weight" and cfg.tie_word_embeddings
    )


def _read_header(path: Path) -> tuple[dict, int]:
    """The safetensors JSON header (name -> dtype, shape, data_offsets) and where the
    data begins."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("file is shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(f.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None
    header.pop("__metadata__", None)
    return header, 8 + n


def _load_bf16(path: Path, header: dict, data_start: int) -> dict[str, np.ndarray]:
    # numpy has no bfloat16: read the raw 16-bit patterns and widen them to float32.
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        buf = np.asarray(raw[data_start + lo: data_start + hi])
        if info["dtype"] == "BF16":
            bits = buf.view("<u2").astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(info["shape"])
        else:
            out[name] = buf.view(np.dtype(_FLOAT_DTYPES[info["dtype"]]).newbyteorder("<"))
            out[name] = out[name].reshape(info["shape"])
    return out


def _load_tensors(path: Path, cfg: LlamaConfig) -> dict[str, np.ndarray]:
    """Check names, shapes and dtypes against ``cfg``, then read the tensors as float32."""
    header, data_start = _read_header(path)
    expected = tensor_shapes(cfg)
    missing = [n for n in expected if n not in header]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{path}: missing tensor {missing[0]!r}{more}")
    for name in header:
        if name not in expected and not _ignored(name, cfg):
            raise CheckpointError(
                f"{path}: unexpected tensor {name!r}; a Llama checkpoint without biases "
                "has only the tensors listed in docs/models.md"
            )
    for name, (shape, why) in expected.items():
        info = header[name]
        actual = tuple(info.get("shape", ()))
        if actual != shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {list(actual)}, expected {list(shape)} "
                f"({why} from {CONFIG_FILE})"
            )
        if info.get("dtype") not in _FLOAT_DTYPES:
            raise CheckpointError(
                f"{path}: tensor {name!r} has dtype {info.get('dtype')}; only float tensors "
                f"({', '.join(_FLOAT_DTYPES)}) can be loaded"
            )
    wanted = {n: header[n] for n in expected}
    try:
        if any(info["dtype"] == "BF16" for info in wanted.values()):
            tensors = _load_bf16(path, wanted, data_start)
        else:
            tensors = safetensors.numpy.load_file(path)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None
    out = {}
    for name in expected:
        t = np.asarray(tensors[name], dtype=np.float32)
        if not np.all(np.isfinite(t)):
            raise CheckpointError(f"{path}: tensor {name!r} holds non-finite values (NaN or inf)")
        big = float(np.max(np.abs(t), initial=0.0))
        if big > MAX_ABS_WEIGHT:
            at = np.unravel_index(int(np.argmax(np.abs(t))), t.shape)
            raise CheckpointError(
                f"{path}: tensor {name!r} holds {t[at]:g} at index {list(map(int, at))}; "
                f"weights must be within +-{MAX_ABS_WEIGHT:g} (float16's range), beyond "
                "which the float32 activations overflow")
        out[name] = np.ascontiguousarray(t)
    return out


def load_checkpoint(folder) -> Model:
    """Load a Hugging Face layout Llama checkpoint as a float32 :class:`Model`.

    Raises
    ------
    CheckpointError
        Naming the file and the field or tensor the project cannot run.
    """
    folder = _folder(folder)
    cfg = read_config(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        if (folder / (WEIGHTS_FILE + ".index.json")).is_file():
            raise CheckpointError(
                f"{path}: missing file; sharded checkpoints ({WEIGHTS_FILE}.index.json) are "
                f"not supported: merge the shards into one {WEIGHTS_FILE}"
            )
        raise CheckpointError(f"{path}: missing file (a checkpoint needs {WEIGHTS_FILE})")
    t = _load_tensors(path, cfg)
    layers = []
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        layers.append(LayerWeights(
            attn_norm=t[p + "input_layernorm.weight"],
            wq=t[p + "self_attn.q_proj.weight"],
            wk=t[p + "self_attn.k_proj.weight"],
            wv=t[p + "self_attn.v_proj.weight"],
            wo=t[p + "self_attn.o_proj.weight"],
            ffn_norm=t[p + "post_attention_layernorm.weight"],
            w_gate=t[p + "mlp.gate_proj.weight"],
            w_up=t[p + "mlp.up_proj.weight"],
            w_down=t[p + "mlp.down_proj.weight"],
        ))
    embed = t["model.embed_tokens.weight"]
    lm_head = embed if cfg.tie_word_embeddings else t["lm_head.weight"]
    return Model(cfg, embed, layers, t["model.norm.weight"], lm_head)


def model_tensors(model: Model) -> dict[str, np.ndarray]:
    """The HF-named float32 tensors of ``model`` (no ``lm_head.weight`` when tied)."""
    out = {"model.embed_tokens.weight": model.embed}
    for i, lw in enumerate(model.layers):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": lw.attn_norm,
            p + "self_attn.q_proj.weight": lw.wq,
            p + "self_attn.k_proj.weight": lw.wk,
            p + "self_attn.v_proj.weight": lw.wv,
            p + "self_attn.o_proj.weight": lw.wo,
            p + "post_attention_layernorm.weight": lw.ffn_norm,
            p + "mlp.gate_proj.weight": lw.w_gate,
            p + "mlp.up_proj.weight": lw.w_up,
            p + "mlp.down_proj.weight": lw.w_down,
        }
    out["model.norm.weight"] = model.norm
    if not model.config.tie_word_embeddings:
        out["lm_head.weight"] = model.lm_head
    return out


def save_checkpoint(folder, config: Mapping | LlamaConfig, tensors: Mapping | Model) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors`` (HF layout).

    ``config`` is a ``config.json`` dictionary or a :class:`LlamaConfig`; ``tensors``
    maps HF names to arrays, or is a :class:`Model`. Arrays are written as given
    (tests use this to write broken checkpoints); a :class:`Model` as float32.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(config, LlamaConfig):
        config = config.to_hf()
    if isinstance(tensors, Model):
        tensors = {k: np.asarray(v, np.float32) for k, v in model_tensors(tensors).items()}
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    (folder / CONFIG_FILE).write_text(json.dumps(dict(config), indent=2) + "\n")
    safetensors.numpy.save_file(arrays, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    return folder


# -- fitting a chip ---------------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """SRAM bytes a model needs on a chip, each tensor rounded up to whole vectors."""

    weights: int  # int8 weights of every linear layer and the embedding table
    scales: int  # float32 per-output-channel weight scales
    norms: int  # float32 RMSNorm weights
    kv_cache: int  # int8 keys and values for `context` tokens + float32 per-token scales
    context: int
    available: int  # SRAM minus the reserve kept for activations and scratch
    mem_bytes: int

    @property
    def total(self) -> int:
        return self.weights + self.scales + self.norms + self.kv_cache


def sram_reserve(chip_cfg) -> int:
    """SRAM bytes kept free of weights and KV cache for activations and scratch: a
    sixteenth of the chip's (``check_fits``, and ``lpu project`` per chip)."""
    return chip_cfg.mem_bytes // 16


def _vectors(n_bytes: int, vl: int) -> int:
    return -(-n_bytes // vl) * vl


def check_fits(model_cfg: LlamaConfig, chip_cfg, context: int | None = None, *,
               reserve: int | None = None) -> Footprint:
    """Refuse a model that the chip ``chip_cfg`` cannot hold or lay out.

    Counts int8 weights, float32 per-output-channel scales, float32 norm weights and
    an int8 KV cache for ``context`` tokens (default ``max_position_embeddings``) with
    one float32 scale per token, layer, K/V and KV head, each tensor rounded up to
    whole vectors of ``chip_cfg.vl`` bytes, against ``chip_cfg.mem_bytes`` less
    ``reserve`` bytes (default a sixteenth of SRAM) kept for activations and scratch.
    ``hidden_size``, ``intermediate_size`` and ``vocab_size`` must be multiples of
    the vector length and ``head_dim`` of ``lanes``.

    Raises
    ------
    CheckpointError
        Naming the field and both numbers.
    """
    where = model_cfg.source
    chip = f"config {chip_cfg.name!r}"
    if context is None:
        context = model_cfg.max_position_embeddings
    if context > model_cfg.max_position_embeddings:
        raise CheckpointError(
            f"{where}: context {context} exceeds field 'max_position_embeddings' "
            f"{model_cfg.max_position_embeddings}"
        )
    for key in ("hidden_size", "intermediate_size", "vocab_size"):
        value = getattr(model_cfg, key)
        if value % chip_cfg.vl:
            raise CheckpointError(
                f"{where}: field {key!r} {value} is not a multiple of the vector length "
                f"{chip_cfg.vl} of {chip}"
            )
    if model_cfg.head_dim % chip_cfg.lanes:
        raise CheckpointError(
            f"{where}: field 'head_dim' {model_cfg.head_dim} is not a multiple of the "
            f"{chip_cfg.lanes} lanes per superlane of {chip}"
        )
    vl, c = chip_cfg.vl, model_cfg
    d, h, v, L = c.hidden_size, c.intermediate_size, c.vocab_size, c.num_hidden_layers
    layer_out = [c.q_dim, c.kv_dim, c.kv_dim, d, h, h, d]  # output channels per linear
    layer_in = [d, d, d, c.q_dim, d, d, h]
    tables = 1 if c.tie_word_embeddings else 2
    weights = L * sum(_vectors(o * i, vl) for o, i in zip(layer_out, layer_in, strict=True))
    weights += tables * _vectors(v * d, vl)
    scales = L * sum(_vectors(4 * o, vl) for o in layer_out) + tables * _vectors(4 * v, vl)
    norms = (2 * L + 1) * _vectors(4 * d, vl)
    kv = 2 * L * (_vectors(context * c.kv_dim, vl)
                  + _vectors(4 * context * c.num_key_value_heads, vl))
    if reserve is None:
        reserve = sram_reserve(chip_cfg)
    fp = Footprint(weights, scales, norms, kv, context, chip_cfg.mem_bytes - reserve,
                   chip_cfg.mem_bytes)
    if fp.total > fp.available:
        raise CheckpointError(
            f"{where}: the model needs {fp.total} bytes of SRAM (int8 weights {weights}, "
            f"scales {scales}, norms {norms}, KV cache for {context} tokens {kv}) but "
            f"{chip} has mem_bytes {chip_cfg.mem_bytes}, of which {fp.available} are "
            f"available after {reserve} kept for activations"
        )
    return fp


# -- the shipped model ------------------------------------------------------------------


def builtin_model_path() -> Path:
    """The folder of the shipped byte-level model (``lpu/models/bytes-llama``)."""
    return Path(str(resources.files("lpu").joinpath("models", BUILTIN_MODEL)))


def shipped_model_path(name: str) -> Path | None:
    """The folder of a model shipped in ``lpu/models`` (``bytes-llama``, ``fpga-llama``:
    a checkpoint folder with weights), or None if there is none of that name."""
    d = Path(str(resources.files("lpu").joinpath("models", name)))
    return d if "/" not in name and (d / WEIGHTS_FILE).is_file() else None


def load_builtin() -> Model:
    """Load the shipped byte-level model."""
    return load_checkpoint(builtin_model_path())
