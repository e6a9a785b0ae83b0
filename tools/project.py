"""A performance model of decode at Groq scale (``lpu project``).

Contract: :func:`project` estimates, for a Llama-shaped model (a Hugging Face
``config.json``: :func:`load_model_config`) on a system of ``chips`` chips of one
config (the ``groq`` preset), decoding ``batch`` sequences with KV caches of ``seq``
positions:

* **placement**: the int8 weights, their fp32 scales, the norms and every sequence's
  int8 KV cache, as the compiler lays them out (whole vectors of VL bytes), per chip,
  against each chip's SRAM less the compiler's reserve
  (:func:`lpu.golden.model.checkpoint.sram_reserve`): what fits, and the fewest chips
  (:func:`fewest_chips`, before any cycles are counted);
* **the partition**: the step cut into blocks (:data:`BLOCK_KINDS`: the embedding, each
  layer's attention, FFN gate/up and FFN down, the LM head), each block tensor parallel
  over a group of ``tp`` chips
  (heads and FFN columns split, the output projections' partial sums all-reduced over
  the links), groups of consecutive blocks pipelined across groups of chips;
* **time**: every block's cycles on one chip from the compiler's own bounds
  (:func:`lpu.tools.compiler.graph.critical_path` and
  :func:`~lpu.tools.compiler.graph.throughput` of the block's operation graph, traced
  from the LPU-exact algorithms of :mod:`lpu.golden.model.exact`), turned into a
  schedule's length by a calibration against what the compiler really schedules on
  small models (:func:`calibrate`); the links' cycles (all-reduces, pipeline hops) and
  the host's round trip **analytically** from :class:`System`, whose numbers come
  from docs (shared/tsp-reference.md, section 6): nothing here simulates a link;
* **rates**: tokens/s per user and in total, with where the time goes.

Everything the model assumes is in docs/project.md; the numbers it was checked against
(Llama-2-70B on 576 chips, Llama-2-7B) are in docs/benchmarks.md. It lives in
``lpu.tools``, not in the compiler's room, because it runs the compiler (the
calibration compiles and runs steps) and the compiler does not need it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.model import exact as LX
from lpu.golden.model.checkpoint import (
    BUILTIN_MODEL,
    CheckpointError,
    load_builtin,
    read_config,
    sram_reserve,
)
from lpu.golden.model.reference import LlamaConfig, random_model
from lpu.isa import BY_MNEMONIC
from lpu.tools.compiler.cache import cache_dir, compiler_hash
from lpu.tools.compiler.graph import (
    Graph,
    GraphOps,
    critical_path,
    throughput,
)
from lpu.tools.compiler.lower import ChipDecoder

__all__ = ["System", "Shard", "SegmentBounds", "Block", "Calibration", "CalibrationRow",
           "Plan", "Projection", "PUBLISHED", "CALIBRATION_SHAPES", "BLOCK_KINDS",
           "load_model_config", "shipped_models", "trace_segment", "segment_bounds",
           "block_bytes", "calibrate", "fit", "allreduce_cycles", "plan", "project",
           "published_for", "vectors", "raw_weight_bytes", "sensitivity", "blocks_for",
           "TP_SIZES", "FLIT_EFFICIENCY", "distinct_blocks", "fewest_chips", "check_fit",
           "display_name", "calibration_lines", "projection_lines", "sensitivity_lines",
           "sensitivity_dict"]


def vectors(n: int, vl: int) -> int:
    """Vectors of ``vl`` lanes that hold ``n`` values (the compiler pads to whole vectors)."""
    return -(-n // vl)


# -- one chip's share of a block ---------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """What one chip of a tensor-parallel group of ``tp`` holds of one layer of ``model``
    (a :class:`~lpu.golden.model.reference.LlamaConfig`): the most any chip of the group
    holds when a count does not divide.

    Members
    -------
    heads, kv_heads
        Query heads and key/value heads on the chip (a KV head is copied to every chip
        that holds one of its query heads when ``tp`` exceeds the KV heads).
    ffn
        FFN columns (gate and up outputs, down inputs) on the chip.
    vocab
        Rows of the embedding table and columns of the LM head on the chip.
    """

    model: object
    tp: int

    @property
    def heads(self) -> int:
        return -(-self.model.num_attention_heads // self.tp)

    @property
    def kv_heads(self) -> int:
        return -(-self.model.num_key_value_heads // self.tp)

    @property
    def ffn(self) -> int:
        return -(-self.model.intermediate_size // self.tp)

    @property
    def vocab(self) -> int:
        return -(-self.model.vocab_size // self.tp)


# -- tracing a block: the compiler's graph of the LPU-exact algorithms --------------------------


class _ShardOps(GraphOps):
    """:class:`~lpu.tools.compiler.graph.GraphOps` for any vector length: a lane reduction
    takes ``ceil(log_radix VL)`` trips to the SXMs (a last trip of fewer rotations when
    VL is not a power of the radix, as on ``groq``'s 320 lanes); for a power of two it
    records exactly the graph of GraphOps."""

    def lane_reduce(self, op, a):
        out = []
        for i in range(a.n):
            cur = type(a)([a[i]])
            span = 1
            while span < self.vl:
                k = min(self.radix, -(-self.vl // span))
                rots = [cur] + [self.rotate(cur, span * r) for r in range(1, k)]
                cur = LX.pairwise(lambda u, v: self.binary(op, u, v), rots)
                span *= k
            out.append(cur[0])
        return type(a)(out)


def _zeros_i8(k: int, n: int) -> np.ndarray:
    """An int8 matrix of shape [k, n] that takes no memory (only its shape is traced)."""
    return np.broadcast_to(np.zeros((), np.int8), (k, n))


def _host(ops: GraphOps, n: int):
    """`n` vectors written by the host (or arriving over a link) before the block."""
    return ops.weight_f32(np.zeros((n, ops.vl), np.float32))


def _linear(ops: GraphOps, x, k: int, n: int, quantized=None):
    """An int8 linear layer of `k` inputs and `n` outputs (whole vectors of each)."""
    vl = ops.vl
    w = _zeros_i8(vectors(k, vl) * vl, vectors(n, vl) * vl)
    return LX.linear(ops, x, ops.weight_i8(w), _host(ops, vectors(n, vl)), quantized)


def _unpack(ops: GraphOps, packed, count: int, hd: int):
    """Heads of `hd` lanes packed in whole vectors, one vector each (head_dim lanes used,
    the rest zero), as the algorithms take them: per vector a head covers, a rotation
    to lane 0 and a masked select, and the covered parts added. Unchanged when a head
    is a whole vector (head_dim == VL): nothing to move."""
    vl = ops.vl
    if hd == vl:
        return packed
    mask = ops.const_vec(np.zeros(vl, np.uint32))
    heads = []
    for i in range(count):
        first, last = i * hd // vl, ((i + 1) * hd - 1) // vl
        parts = [ops.select(mask, ops.rotate(ops.part(packed, j), (j * vl - i * hd) % vl),
                            ops.const_f32(0.0)) for j in range(first, last + 1)]
        heads.append(LX.pairwise(lambda u, v: ops.binary("fadd", u, v), parts))
    return ops.stack(heads)


def _pack(ops: GraphOps, heads, count: int, hd: int):
    """The inverse of :func:`_unpack`: head vectors rotated into their packed place and
    added, vector by vector (the input of the output projection)."""
    vl = ops.vl
    if hd == vl:
        return heads
    mask = ops.const_vec(np.zeros(vl, np.uint32))
    out = []
    for j in range(vectors(count * hd, vl)):
        parts = [ops.select(mask, ops.rotate(ops.part(heads, i), (i * hd - j * vl) % vl),
                            ops.const_f32(0.0))
                 for i in range(count) if i * hd < (j + 1) * vl and (i + 1) * hd > j * vl]
        out.append(LX.pairwise(lambda u, v: ops.binary("fadd", u, v), parts))
    return ops.stack(out)


#: The blocks of a step, in order: ``embed`` (the token's row of the table), per layer
#: ``attn`` (the residual add, RMSNorm, q k v, RoPE, attention over the KV cache, the
#: output projection), ``ffn_up`` (the residual add, RMSNorm, gate and up, SiLU, their
#: product) and ``ffn_down`` (the down projection), then ``head`` (the residual add, the
#: final RMSNorm, the LM head). The pipeline cuts the step between blocks only.
BLOCK_KINDS = ("embed", "attn", "ffn_up", "ffn_down", "head")


def trace_segment(kind: str, shard: Shard, chip: ChipConfig, pos: int, *,
                  residual: bool = True) -> Graph:
    """The operation graph of one block (:data:`BLOCK_KINDS`) on one chip of a group of
    ``shard.tp``, at position `pos`: the steps of
    :func:`lpu.golden.model.exact.decode_step` for that block, on the chip's share.

    The block's inputs (the residual stream, the sums of the previous block's partial
    outputs) are host data at the start, as they arrive from the links; its outputs are
    the graph's output: the partial sums the links add up (``embed``, ``attn``,
    ``ffn_down``), the chip's FFN columns (``ffn_up``) or the logits of its vocabulary
    columns (``head``). ``attn``, ``ffn_up`` and ``head`` start with the residual add of
    the previous block's output (``residual=False``: the first layer's attention, whose
    input is the embedding).
    With ``tp = 1`` the blocks of a step, one after another, record the operations of
    :func:`~lpu.tools.compiler.graph.trace_step` (tested).
    """
    if kind not in BLOCK_KINDS:
        raise ValueError(f"unknown block {kind!r}")
    m, vl = shard.model, chip.vl
    ops = _ShardOps(vl)
    g = ops.g
    dv = vectors(m.hidden_size, vl)
    d = dv * vl
    hd = m.head_dim
    if kind == "embed":
        nv = vectors(shard.vocab, vl)
        table = _zeros_i8(nv * vl, d)
        ops.weight_spread(table)
        tok = ops.token(0)
        hit = ops.binary("eq", ops.const_vec(np.zeros((nv, vl), np.uint32)), tok)
        onehot = ops.unary("cvt.i32.i8", ops.binary("and", hit, ops.const_bits(1)))
        row = ops.matvec(onehot, table)
        s_tok = ops.lane_reduce("fadd", ops.vec_reduce(
            "fadd", ops.select(hit, _host(ops, nv), ops.const_f32(0.0))))
        out = ops.binary("fmul", ops.unary("cvt.i32.f32", row), s_tok)
        g.output = list(out.ids)
        return g
    if kind == "ffn_down":  # the chip's FFN columns, from ffn_up on the same chip
        out = _linear(ops, _host(ops, vectors(shard.ffn, vl)), shard.ffn, d)
        g.output = list(out.ids)
        return g
    x = _host(ops, dv)
    if residual:  # the previous block's output, summed over the links, added
        x = ops.binary("fadd", x, _host(ops, dv))
    h = LX.rmsnorm(ops, x, _host(ops, dv), m.rms_norm_eps, m.hidden_size)
    if kind == "head":
        nv = vectors(shard.vocab, vl)
        if m.tie_word_embeddings:
            table = _zeros_i8(nv * vl, d)
            ops.weight_spread(table)
            q, xs = LX.quantize(ops, h)
            acc = ops.matvec_t(q, table)
            out = ops.binary("fmul", ops.binary("fmul", ops.unary("cvt.i32.f32", acc),
                                                _host(ops, nv)), xs)
        else:
            out = _linear(ops, h, d, nv * vl)
        g.output = list(out.ids)
        return g
    if kind == "ffn_up":  # lpu.golden.model.exact.swiglu but its down projection
        f = shard.ffn
        hq = LX.quantize(ops, h)
        gate = LX.silu(ops, _linear(ops, h, d, f, hq))
        up = _linear(ops, h, d, f, hq)
        g.output = list(ops.binary("fmul", gate, up).ids)
        return g
    # attention
    nh, nkv = shard.heads, shard.kv_heads
    hq = LX.quantize(ops, h)
    cos, sin = _host(ops, 1), _host(ops, 1)
    q = LX.rope(ops, _unpack(ops, _linear(ops, h, d, nh * hd, hq), nh, hd), cos, sin)
    k = LX.rope(ops, _unpack(ops, _linear(ops, h, d, nkv * hd, hq), nkv, hd), cos, sin)
    v = _unpack(ops, _linear(ops, h, d, nkv * hd, hq), nkv, hd)
    nb = pos // vl + 1
    cache = ops.new_cache(1, nkv, nb * vl)
    ops.prepared = type("_P", (), {"cache": cache})()
    lane_mask = ops.const_vec(np.zeros(vl, np.uint32))
    valid = ops.const_vec(np.zeros((nb, vl), np.uint32))
    att = LX.attention(ops, cache, 0, q, k, v, pos, lane_mask, valid, nh, nkv)
    out = _linear(ops, _pack(ops, att, nh, hd), nh * hd, d)
    g.output = list(out.ids)
    return g


@dataclass(frozen=True)
class SegmentBounds:
    """The compiler's bounds of one block on one chip (cycles).

    Members
    -------
    critical_path
        :func:`~lpu.tools.compiler.graph.critical_path` of the block's graph.
    throughput
        :func:`~lpu.tools.compiler.graph.throughput`: per unit kind (``vxm``, ``sxm``,
        ``mxm``, ``mem``), its instructions over its queues.
    kv_heads
        KV heads on the chip (``attn`` blocks; 0 otherwise): a calibration feature.
    """

    kind: str
    critical_path: int
    throughput: dict = field(default_factory=dict)
    kv_heads: int = 0
    nodes: int = 0

    @property
    def floor(self) -> float:
        """The largest bound: no schedule of the block is shorter."""
        return max(self.critical_path, *self.throughput.values())

    @property
    def busy(self) -> float:
        """VXM, SXM and MXM throughput bounds added: the calibration's second feature."""
        return sum(self.throughput[k] for k in ("vxm", "sxm", "mxm"))


@functools.lru_cache(maxsize=256)
def segment_bounds(kind: str, shard: Shard, chip: ChipConfig, pos: int, *,
                   residual: bool = True) -> SegmentBounds:
    """:class:`SegmentBounds` of :func:`trace_segment` (kept for the process: a block of one
    shape is traced once)."""
    g = trace_segment(kind, shard, chip, pos, residual=residual)
    cp, _, _ = critical_path(g, chip)
    return SegmentBounds(kind, cp, throughput(g, chip),
                         shard.kv_heads if kind == "attn" else 0, len(g.nodes))



# -- the system around the chips: links and host, as numbers ----------------------------------


#: A 320-byte vector travels as a 328-byte flit on a C2C link (97.5 %).
FLIT_EFFICIENCY = 320 / 328


@dataclass(frozen=True)
class System:
    """The links between chips and the host, as published numbers (shared/tsp-reference.md,
    sections 1.1 and 6) and two assumptions. Nothing here is simulated: the project's C2C
    links (ISA 1.3, ``c2c_*`` config keys) are what the compiler schedules a model split
    across chips on (:mod:`lpu.tools.compiler.pipeline`, measured on ``small`` in
    docs/benchmarks.md); this is the Groq-scale system those measurements do not reach
    (nodes, racks, the network, the host).

    Members
    -------
    link_latency
        Cycles from a vector's send to its receive on one C2C link: the measured mean
        (ISCA22: 216-217 cycles, range 209-228, kept aligned by the hardware counters).
    link_gbps
        Bits per second of one link (4 lanes at about 25 Gb/s as run, ISCA22); a vector
        travels as a 328-byte flit (:data:`FLIT_EFFICIENCY`).
    node_chips
        Chips of a node, all-to-all by local links (7 a chip): a tensor-parallel group
        lives in one node, so every all-reduce is one link away.
    rack_chips
        Active chips of a rack (9 nodes of 8, one a spare).
    hop_ns
        Pipelined network latency of one hop between nodes (ISCA22: 722 ns); between
        racks two hops.
    host_ns
        One PCIe transfer's latency, each way (an assumption: no published figure).
    pcie_gbs
        PCIe Gen4 x16 bytes per second as used (an assumption: 31.5 GB/s raw).
    """

    link_latency: int = 216
    link_gbps: float = 100.0
    node_chips: int = 8
    rack_chips: int = 64
    hop_ns: float = 722.0
    host_ns: float = 1000.0
    pcie_gbs: float = 25.0

    def cycles(self, chip: ChipConfig, ns: float) -> float:
        """`ns` nanoseconds in cycles of `chip`'s clock."""
        return ns * chip.clock_mhz / 1000.0

    def link_bytes_per_cycle(self, chip: ChipConfig) -> float:
        """Payload bytes one link carries per cycle of `chip`."""
        return self.link_gbps * 1e9 / 8 * FLIT_EFFICIENCY / (chip.clock_mhz * 1e6)

    def hop_cycles(self, chip: ChipConfig, a: int, b: int) -> float:
        """Latency from chip `a` to chip `b` (numbered in order, ``node_chips`` a node,
        ``rack_chips`` a rack): one link in a node, one network hop in a rack, two
        between racks."""
        if a // self.node_chips == b // self.node_chips:
            return float(self.link_latency)
        hops = 1 if a // self.rack_chips == b // self.rack_chips else 2
        return hops * self.cycles(chip, self.hop_ns)


def allreduce_cycles(nbytes: int, tp: int, chip: ChipConfig, system: System) -> float:
    """Cycles to all-reduce `nbytes` of fp32 partial sums over a group of `tp` chips joined
    all-to-all: a reduce-scatter (every chip sends a `tp`-th to each other chip at once,
    over its own link: one link latency plus the shard's flits), the adds (a pairwise
    tree of fp32 adds on the VXM), and an all-gather (the same as the scatter)."""
    if tp == 1:
        return 0.0
    shard = nbytes / tp
    phase = system.link_latency + shard / system.link_bytes_per_cycle(chip)
    adds = (math.ceil(math.log2(tp)) * BY_MNEMONIC["fadd"].d(chip.superlanes)
            + math.ceil((tp - 1) * vectors(math.ceil(shard / 4), chip.vl) / chip.vxm_alus))
    return 2 * phase + adds


# -- the model's shape -----------------------------------------------------------------------


def _models_dir() -> Path:
    return Path(str(resources.files("lpu").joinpath("models")))


def shipped_models() -> list[str]:
    """Names of the shipped model configs (``lpu/models/NAME/config.json``)."""
    return sorted(p.parent.name for p in _models_dir().glob("*/config.json"))


def load_model_config(spec: str | Path) -> LlamaConfig:
    """The shape of a Llama model: a shipped model's name (:func:`shipped_models`), a
    Hugging Face ``config.json``, or a folder holding one. Errors name the file and the
    field (:func:`lpu.golden.model.checkpoint.read_config`)."""
    spec_s = str(spec)
    if spec_s in shipped_models():  # named by its place in the package
        return replace(read_config(_models_dir() / spec_s / "config.json"),
                       source=f"lpu/models/{spec_s}/config.json")
    path = Path(spec_s)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model config (a config.json, a folder "
                              f"holding one, or a shipped model: {', '.join(shipped_models())})")
    return read_config(path)


#: Published decode speeds (shared/tsp-reference.md, section 7: [S] secondary sources):
#: model name -> (shape fields, tokens/s per user low and high, context, source).
PUBLISHED = {
    "Llama-2-70B": ({"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                     "num_attention_heads": 64, "num_key_value_heads": 8},
                    240.0, 300.0, 4096, "int8 on about 576 chips: 240 tokens/s (EE Times, Sept "
                    "2023), about 300 at 4k context (TechPowerUp, Nov 2023 - Feb 2024)"),
    "Llama-2-7B": ({"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                    "num_attention_heads": 32, "num_key_value_heads": 32},
                   750.0, 750.0, 2048, "750 tokens/s at 2k context (TechPowerUp; chip count "
                   "not published)"),
}


def display_name(model: LlamaConfig) -> str:
    """The published name of a model of a published shape, else its config file."""
    pub = published_for(model)
    return pub[0] if pub is not None else model.source


def published_for(model: LlamaConfig) -> tuple[str, tuple] | None:
    """``(name, PUBLISHED[name])`` for a model of a published shape, else None."""
    for name, entry in PUBLISHED.items():
        if all(getattr(model, k) == v for k, v in entry[0].items()):
            return name, entry
    return None


# -- placement: what one chip of a group holds of a block --------------------------------------


def block_bytes(kind: str, shard: Shard, chip: ChipConfig, context: int) -> dict[str, int]:
    """SRAM bytes one chip of a group of ``shard.tp`` holds for one block, laid out as the
    compiler lays them (:mod:`lpu.tools.compiler.listsched`, ``place_data``): int8
    weights in whole VL x VL blocks (``weights``), fp32 per-output-channel scales
    (``scales``) and RMSNorm weights (``norms``) in whole vectors, host constants
    (``consts``: the embedding's lane numbers), and per sequence (``kv``) the int8 KV
    cache of `context` positions in whole blocks of VL positions, one word of VL lanes
    per position and KV head per ``VL`` lanes of head_dim, with an fp32 scale per position
    (``attn`` only)."""
    m, vl = shard.model, chip.vl
    blk, f32 = vl * vl, 4 * vl
    dv = vectors(m.hidden_size, vl)
    out = {"weights": 0, "scales": 0, "norms": 0, "consts": 0, "kv": 0}
    if kind == "embed":
        nv = vectors(shard.vocab, vl)
        out.update(weights=nv * dv * blk, scales=nv * f32, consts=nv * f32)
    elif kind == "attn":
        nq = vectors(shard.heads * m.head_dim, vl)
        nkv = vectors(shard.kv_heads * m.head_dim, vl)
        positions = vectors(context, vl) * vl
        out.update(weights=(2 * dv * nq + 2 * dv * nkv) * blk, scales=(nq + 2 * nkv + dv) * f32,
                   norms=dv * f32,
                   kv=2 * shard.kv_heads * (positions * vectors(m.head_dim, vl) * vl
                                            + vectors(context, vl) * f32))
    elif kind == "ffn_up":
        nf = vectors(shard.ffn, vl)
        out.update(weights=2 * dv * nf * blk, scales=2 * nf * f32, norms=dv * f32)
    elif kind == "ffn_down":
        nf = vectors(shard.ffn, vl)
        out.update(weights=nf * dv * blk, scales=dv * f32)
    elif kind == "head":
        nv = vectors(shard.vocab, vl)
        # a tied table is the embedding's: a second copy when the head is on other chips
        out.update(weights=nv * dv * blk, scales=nv * f32, norms=dv * f32)
    else:
        raise ValueError(f"unknown block {kind!r}")
    return out


# -- calibration: the bounds against what the compiler really schedules ------------------------


#: The decode steps the estimate is calibrated on: ``(preset, hidden, intermediate, layers,
#: heads, KV heads, vocabulary, position)`` of a random model (head_dim = VL, tied
#: embeddings, seed :data:`CALIBRATION_SEED`), or ``(preset, "bytes-llama", position)``,
#: the shipped model. Chosen to vary what the estimate depends on (the critical path,
#: the units' work, the KV heads) at a few seconds of compiling each.
CALIBRATION_SHAPES = (
    ("tiny", 16, 16, 1, 1, 1, 16, 10),
    ("tiny", 16, 32, 1, 2, 1, 24, 5),
    ("tiny", 16, 32, 1, 2, 2, 24, 13),
    ("small", 32, 64, 1, 1, 1, 64, 73),
    ("small", 64, 192, 1, 4, 1, 64, 23),
    ("small", 64, 32, 1, 6, 2, 32, 44),
    ("small", 96, 64, 1, 4, 4, 128, 27),
    ("small", 128, 192, 1, 6, 2, 128, 35),
    ("small", 64, 96, 2, 2, 2, 64, 58),
    ("small", 32, 128, 3, 1, 1, 128, 38),
    ("small", 128, 32, 2, 4, 4, 32, 24),
    ("small", BUILTIN_MODEL, 20),
)
CALIBRATION_SEED = 1


def _calibration_model(shape: tuple, chip: ChipConfig):
    """The model of one calibration shape and its position."""
    if shape[1] == BUILTIN_MODEL:
        return load_builtin(), shape[2]
    _, d, f, layers, heads, kv, vocab, pos = shape
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=f,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv, head_dim=chip.vl,
                      max_position_embeddings=(pos // chip.vl + 1) * chip.vl,
                      tie_word_embeddings=True, source="<calibration>")
    return random_model(cfg, seed=CALIBRATION_SEED), pos


def _label(shape: tuple) -> str:
    if shape[1] == BUILTIN_MODEL:
        return BUILTIN_MODEL
    _, d, f, layers, heads, kv, vocab, _ = shape
    return f"d{d} f{f} L{layers} h{heads} kv{kv} v{vocab}"


def _step_blocks(model: LlamaConfig) -> list[tuple[str, bool]]:
    """``(kind, residual)`` of every block of a step, in order."""
    layer = [("attn", True), ("ffn_up", True), ("ffn_down", True)]
    return ([("embed", True), ("attn", False), ("ffn_up", True), ("ffn_down", True)]
            + layer * (model.num_hidden_layers - 1) + [("head", True)])


@dataclass(frozen=True)
class CalibrationRow:
    """One calibration step: its cycles on the golden chip (``scheduled``), the sums of its
    blocks' bounds and features (tensor parallel 1), and the estimate."""

    chip: str
    label: str
    pos: int
    scheduled: int
    critical_path: int
    busy: float
    kv_term: float
    floor: float
    predicted: float

    @property
    def error(self) -> float:
        """(predicted - scheduled) / scheduled."""
        return (self.predicted - self.scheduled) / self.scheduled


@dataclass(frozen=True)
class Calibration:
    """How a block's bounds become a schedule's length: for a block with critical path
    ``cp``, VXM + SXM + MXM throughput bounds ``busy``, ``k`` KV heads and largest bound
    ``floor``::

        cycles = max(floor, cp * (1 + kv * (k - 1)) + busy * busy_bound)

    ``busy``: the share of the units' work the list scheduler does not hide behind the
    critical path; ``kv``: what each KV head beyond the first costs, as a share of the
    attention block's critical path (an MXM plane takes its tiles in the order they are
    placed, so a later KV head's tile delays an earlier one's: docs/project.md). Both
    fitted by least squares on relative error over
    :data:`CALIBRATION_SHAPES`. ``loo``: each row's error when it is left out of the fit.
    """

    busy: float
    kv: float
    rows: tuple = ()
    loo: tuple = ()

    def estimate(self, sb: SegmentBounds) -> float:
        """Cycles of a block (:class:`SegmentBounds`) on one chip."""
        return max(sb.floor, self.formula(sb))

    def formula(self, sb: SegmentBounds) -> float:
        return sb.critical_path * (1 + self.kv * max(sb.kv_heads - 1, 0)) + self.busy * sb.busy

    @property
    def mean_abs_error(self) -> float:
        return float(np.mean([abs(r.error) for r in self.rows])) if self.rows else 0.0

    @property
    def max_abs_error(self) -> float:
        return max((abs(r.error) for r in self.rows), default=0.0)

    @property
    def loo_mean_abs_error(self) -> float:
        return float(np.mean(np.abs(self.loo))) if self.loo else 0.0

    @property
    def loo_max_abs_error(self) -> float:
        return float(np.max(np.abs(self.loo))) if self.loo else 0.0

    def as_dict(self) -> dict:
        return {"busy": self.busy, "kv": self.kv,
                "mean_abs_error": self.mean_abs_error, "max_abs_error": self.max_abs_error,
                "loo_mean_abs_error": self.loo_mean_abs_error,
                "loo_max_abs_error": self.loo_max_abs_error,
                "rows": [asdict(r) | {"error": r.error} for r in self.rows]}


def fit(scheduled, cp, busy, kv_term) -> tuple[float, float]:
    """``(busy, kv)`` of :class:`Calibration`: least squares of ``scheduled - cp`` on
    ``busy`` and ``kv_term``, each row weighted by ``1 / scheduled`` (relative error), the
    coefficients not negative (a negative one is dropped and the other refitted)."""
    y = np.asarray(scheduled, float)
    t = (y - np.asarray(cp, float)) / y
    cols = [np.asarray(busy, float) / y, np.asarray(kv_term, float) / y]
    best = (math.inf, (0.0, 0.0))
    for use in ((0, 1), (0,), (1,)):
        a = np.stack([cols[i] for i in use], axis=1)
        c, *_ = np.linalg.lstsq(a, t, rcond=None)
        if (c < 0).any():
            continue
        coef = [0.0, 0.0]
        for i, v in zip(use, c, strict=True):
            coef[i] = float(v)
        err = float(np.sum((a @ c - t) ** 2))
        if err < best[0]:
            best = (err, tuple(coef))
    return best[1]


def _features(model: LlamaConfig, chip: ChipConfig, pos: int) -> list[SegmentBounds]:
    """The bounds of every block of one step at tensor parallel 1 (each kind traced once)."""
    shard, seen = Shard(model, 1), {}
    out = []
    for kind, residual in _step_blocks(model):
        if (kind, residual) not in seen:
            seen[(kind, residual)] = segment_bounds(kind, shard, chip, pos, residual=residual)
        out.append(seen[(kind, residual)])
    return out


def _measure(shapes, progress) -> list[int]:
    """Cycles of each calibration step on the golden chip model, compiled by the compiler
    (through its disk cache) and run from an empty KV cache (the cycles of a step program
    do not depend on the data)."""
    out = []
    for i, shape in enumerate(shapes):
        chip = load_config(shape[0])
        model, pos = _calibration_model(shape, chip)
        if progress:
            progress(f"calibration step {i + 1}/{len(shapes)}: {_label(shape)} on {chip.name}")
        out.append(int(ChipDecoder(model, chip).step(0, pos).cycles))
    return out


def _cache_file(shapes) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    key = json.dumps({"format": 1, "compiler": compiler_hash(), "seed": CALIBRATION_SEED,
                      "shapes": [list(s) for s in shapes],
                      "chips": sorted({load_config(s[0]).hash for s in shapes})})
    return folder / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _cached_measure(shapes, progress) -> list[int]:
    """:func:`_measure`, kept in the compiler's cache folder
    (:func:`lpu.tools.compiler.cache.cache_dir`) under a key of the compiler's source and
    the shapes: a changed compiler is measured again."""
    path = _cache_file(shapes)
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text())
            if len(data["scheduled"]) == len(shapes):
                return [int(c) for c in data["scheduled"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # measured again and rewritten
    cycles = _measure(shapes, progress)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".calibration", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump({"shapes": [list(s) for s in shapes], "scheduled": cycles}, f)
            os.replace(tmp, path)
        except OSError as e:
            print(f"lpu project: cannot keep the calibration in {path.parent}: {e}",
                  file=sys.stderr)
    return cycles


def calibrate(shapes=CALIBRATION_SHAPES, *, progress=None, scheduled=None) -> Calibration:
    """Compile and run each step of `shapes` (:data:`CALIBRATION_SHAPES`), sum its blocks'
    bounds (:func:`segment_bounds`, tensor parallel 1), :func:`fit` the
    :class:`Calibration`, and report every step's estimate and error (and each one's
    error when left out of the fit). `scheduled`: the measured cycles, if known (else
    measured, or read from the cache); `progress`: called with a line per step measured."""
    shapes = tuple(tuple(s) for s in shapes)
    if scheduled is None:
        scheduled = _cached_measure(shapes, progress)
    feats = []
    for shape in shapes:
        chip = load_config(shape[0])
        model, pos = _calibration_model(shape, chip)
        feats.append((chip, model.config, pos, _features(model.config, chip, pos)))
    cp = [sum(b.critical_path for b in f[3]) for f in feats]
    busy = [sum(b.busy for b in f[3]) for f in feats]
    kvt = [sum(b.critical_path * max(b.kv_heads - 1, 0) for b in f[3]) for f in feats]

    def rows_for(cal: Calibration):
        return [CalibrationRow(chip.name, _label(shape), pos, int(y), int(c), float(b),
                               float(k), float(sum(s.floor for s in blocks)),
                               float(sum(cal.estimate(s) for s in blocks)))
                for shape, (chip, _, pos, blocks), y, c, b, k
                in zip(shapes, feats, scheduled, cp, busy, kvt, strict=True)]

    cal = Calibration(*fit(scheduled, cp, busy, kvt))
    loo = []
    for i in range(len(shapes)):
        keep = [j for j in range(len(shapes)) if j != i]
        part = Calibration(*fit(*([v[j] for j in keep] for v in (scheduled, cp, busy, kvt))))
        loo.append(rows_for(part)[i].error)
    return replace(cal, rows=tuple(rows_for(cal)), loo=tuple(loo))


# -- the partition and the time of a token ------------------------------------------------------


#: Tensor-parallel group sizes tried (a group stays inside one node, :class:`System`).
TP_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Block:
    """One block of the step on one chip of its group.

    Members
    -------
    bytes
        :func:`block_bytes` (``kv`` per sequence).
    cycles
        The calibrated estimate of the block on one chip (:meth:`Calibration.estimate`).
    allreduce
        Cycles to all-reduce its partial output over the group (0 when it has none).
    out_bytes
        Bytes each chip hands on when the next block is on other chips (a shard of the
        reduced residual, its FFN columns, or the logits to the host).
    """

    kind: str
    layer: int
    bytes: dict
    bounds: SegmentBounds
    cycles: float
    allreduce: float
    out_bytes: int

    def sram(self, batch: int) -> int:
        return _srams([self.bytes], batch)[0][0]


def blocks_for(model: LlamaConfig, chip: ChipConfig, tp: int, seq: int, cal: Calibration,
               system: System) -> list[Block]:
    """Every block of a step (:data:`BLOCK_KINDS`) on one chip of a group of `tp`, for a
    KV cache of `seq` positions (the new token at position ``seq - 1``)."""
    shard, vl, pos = Shard(model, tp), chip.vl, seq - 1
    x_bytes = vectors(model.hidden_size, vl) * vl * 4  # the residual stream, fp32
    seen: dict = {}
    out = []
    for i, (kind, residual) in enumerate(_step_blocks(model)):
        if (kind, residual) not in seen:
            sb = segment_bounds(kind, shard, chip, pos, residual=residual)
            reduce = kind in ("embed", "attn", "ffn_down")
            hand = {"ffn_up": vectors(shard.ffn, vl) * vl * 4,
                    "head": vectors(shard.vocab, vl) * vl * 4}.get(kind, -(-x_bytes // tp))
            seen[(kind, residual)] = (sb, cal.estimate(sb),
                                      allreduce_cycles(x_bytes, tp, chip, system) if reduce
                                      else 0.0, hand, block_bytes(kind, shard, chip, seq))
        sb, cyc, ar, hand, nbytes = seen[(kind, residual)]
        layer = -1 if kind == "embed" else (model.num_hidden_layers if kind == "head"
                                            else (i - 1) // 3)
        out.append(Block(kind, layer, nbytes, sb, cyc, ar, hand))
    return out


@dataclass(frozen=True)
class Plan:
    """A partition: ``tp`` chips a group, ``stages`` groups in a pipeline, each holding the
    blocks ``[first, last)`` of the step (``bounds``), and its times in cycles."""

    tp: int
    bounds: tuple
    stage_cycles: tuple
    stage_sram: tuple
    hop_cycles: tuple  # between stage s and s + 1
    host_cycles: float
    token_cycles: float
    round_cycles: float
    batch: int

    @property
    def stages(self) -> int:
        return len(self.bounds)

    @property
    def chips(self) -> int:
        return self.tp * self.stages

    @property
    def utilization(self) -> float:
        """Share of the chips' time spent on a block (the rest: pipeline bubbles)."""
        return self.batch * sum(self.stage_cycles) / (self.stages * self.round_cycles)


def _stage_sram(srams, head_table, i, j, tied) -> int:
    """SRAM of one chip of a stage holding blocks ``[i, j)`` (`srams` per block)."""
    total = sum(srams[i:j])
    if tied and i == 0 and j == len(srams):  # the table once for embedding and head
        total -= head_table
    return total


def _srams(blocks_bytes, batch: int) -> tuple[list[int], int]:
    """Per block, the SRAM of one chip (:func:`block_bytes`, `batch` KV caches), and the
    LM head's table (a tied table is shared with the embedding on one stage)."""
    srams = [b["weights"] + b["scales"] + b["norms"] + b["consts"] + batch * b["kv"]
             for b in blocks_bytes]
    return srams, blocks_bytes[-1]["weights"] + blocks_bytes[-1]["scales"]


def _evaluate(blocks, bounds, tp, batch, chip, system, tied) -> Plan:
    stage = tuple(sum(b.cycles + b.allreduce for b in blocks[i:j]) for i, j in bounds)
    link = system.link_bytes_per_cycle(chip)
    hops = tuple(system.hop_cycles(chip, s * tp, (s + 1) * tp) + blocks[j - 1].out_bytes / link
                 for s, (_, j) in enumerate(bounds[:-1]))
    pcie = system.pcie_gbs * 1e9 / (chip.clock_mhz * 1e6)
    host = 2 * system.cycles(chip, system.host_ns) + blocks[-1].out_bytes / pcie
    token = sum(stage) + sum(hops) + host
    srams, table = _srams([b.bytes for b in blocks], batch)
    return Plan(tp, tuple(bounds), stage,
                tuple(_stage_sram(srams, table, i, j, tied) for i, j in bounds), hops, host,
                token, max(token, batch * max(stage)), batch)


def _greedy(srams, table, tied, times, cap_cycles, available):
    """Stages filled in order while a stage's SRAM fits and its cycles (`times` per
    block) stay within `cap_cycles` (a stage holds at least one block); None if a block
    alone does not fit."""
    bounds, i, n = [], 0, len(srams)
    while i < n:
        j, t = i, 0.0
        while j < n:
            t_next = t + times[j]
            if _stage_sram(srams, table, i, j + 1, tied) > available or (
                    j > i and t_next > cap_cycles):
                break
            t, j = t_next, j + 1
        if j == i:
            return None
        bounds.append((i, j))
        i = j
    return bounds


def _tp_sizes(model: LlamaConfig, system: System) -> list[int]:
    return [tp for tp in TP_SIZES if tp <= model.num_attention_heads and tp <= system.node_chips]


def fewest_chips(model: LlamaConfig, chip: ChipConfig, batch: int, seq: int,
                 system: System = System()) -> tuple[int, int, int] | None:
    """``(chips, tp, stages)`` of the partition with the fewest chips whose every chip holds
    its blocks (:func:`block_bytes`: weights and `batch` KV caches of `seq` positions,
    in the SRAM a chip has less :func:`~lpu.golden.model.checkpoint.sram_reserve`),
    stages filled in order; None when some block does not fit even on the largest group.
    Placement only: no cycles, no calibration."""
    available = chip.mem_bytes - sram_reserve(chip)
    best = None
    for tp in _tp_sizes(model, system):
        shard = Shard(model, tp)
        srams, table = _srams([block_bytes(k, shard, chip, seq) for k, _ in _step_blocks(model)],
                              batch)
        bounds = _greedy(srams, table, model.tie_word_embeddings, [0.0] * len(srams),
                         math.inf, available)
        if bounds is not None and (best is None or tp * len(bounds) < best[0]):
            best = (tp * len(bounds), tp, len(bounds))
    return best


def check_fit(model: LlamaConfig, chip: ChipConfig, chips: int, batch: int, seq: int,
              system: System = System(), name: str | None = None) -> tuple[int, int, int]:
    """:func:`fewest_chips`, or an LpuError saying why the model does not fit: the block
    no group holds, or the fewest chips that hold it when `chips` are fewer."""
    name = name or model.source
    if model.head_dim > chip.vl:
        raise LpuError(f"{name}: head_dim {model.head_dim} exceeds the vector length "
                       f"{chip.vl} of {chip.name}: a head of several vectors is not modelled")
    few = fewest_chips(model, chip, batch, seq, system)
    if few is None:
        tp = _tp_sizes(model, system)[-1]
        kinds = [k for k, _ in _step_blocks(model)]
        srams, _ = _srams([block_bytes(k, Shard(model, tp), chip, seq) for k in kinds], batch)
        big = max(range(len(kinds)), key=srams.__getitem__)
        raise LpuError(f"{name}: does not fit any partition of {chip.name} chips: one "
                       f"{kinds[big]} block needs {srams[big]:,} bytes of SRAM on each of {tp} "
                       f"chips (batch {batch}, {seq} positions), "
                       f"{chip.mem_bytes - sram_reserve(chip):,} are available")
    if chips < few[0]:
        raise LpuError(f"{name}: needs at least {few[0]:,} chips of {chip.name} (tensor "
                       f"parallel {few[1]} x {few[2]} stages) for batch {batch} at {seq} "
                       f"positions; --chips {chips} is too few")
    return few


def plan(model: LlamaConfig, chip: ChipConfig, chips: int | None, batch: int, seq: int,
         cal: Calibration, system: System = System()) -> tuple[Plan | None, Plan | None, dict]:
    """The best partition on at most `chips` chips (None: any number) and the one with the
    fewest chips that holds the model: ``(best, fewest, blocks by tp)``.

    Candidates: every group size of :data:`TP_SIZES` (at most the model's heads), and for
    each the stages filled greedily in order under the SRAM of a chip and a cap on a
    stage's cycles, for caps from one block to the whole step (the uncapped fill has the
    fewest stages). The best has the shortest round (:attr:`Plan.round_cycles`: the
    token's own latency, or ``batch`` passes of the slowest stage when that is longer),
    then the fewest chips. With more chips there are only more candidates: the best is
    never slower."""
    available = chip.mem_bytes - sram_reserve(chip)
    tied = model.tie_word_embeddings
    best = fewest = None
    by_tp = {}
    for tp in _tp_sizes(model, system):
        blocks = blocks_for(model, chip, tp, seq, cal, system)
        by_tp[tp] = blocks
        times = [b.cycles + b.allreduce for b in blocks]
        srams, table = _srams([b.bytes for b in blocks], batch)
        caps = [math.inf] + list(np.geomspace(max(times), sum(times), 48))
        seen = set()
        for cap in caps:
            bounds = _greedy(srams, table, tied, times, cap, available)
            if bounds is None:
                break  # a block alone does not fit: no cap helps
            if tuple(bounds) in seen:
                continue
            seen.add(tuple(bounds))
            p = _evaluate(blocks, bounds, tp, batch, chip, system, tied)
            if fewest is None or (p.chips, p.round_cycles) < (fewest.chips, fewest.round_cycles):
                fewest = p
            if chips is not None and p.chips > chips:
                continue
            if best is None or (p.round_cycles, p.chips) < (best.round_cycles, best.chips):
                best = p
    return best, fewest, by_tp


@dataclass(frozen=True)
class Projection:
    """What :func:`project` found. Cycles are of one chip's clock; ``breakdown`` splits
    one token's latency (:attr:`Plan.token_cycles`) by where it goes (a round is longer
    when the pipeline, not the token, sets it: :attr:`Plan.round_cycles`)."""

    model: LlamaConfig
    name: str
    chip: ChipConfig
    system: System
    chips: int
    batch: int
    seq: int
    plan: Plan
    fewest: Plan
    blocks: tuple
    calibration: Calibration
    breakdown: dict

    @property
    def seconds_per_token(self) -> float:
        return self.plan.token_cycles / (self.chip.clock_mhz * 1e6)

    @property
    def tokens_per_s_user(self) -> float:
        return self.chip.clock_mhz * 1e6 / self.plan.round_cycles

    @property
    def tokens_per_s_total(self) -> float:
        return self.batch * self.tokens_per_s_user

    @property
    def published(self):
        return published_for(self.model)

    def stage_names(self, s: int) -> str:
        """The blocks of stage `s`, as ``L3 attn .. L4 ffn_up``."""
        i, j = self.plan.bounds[s]

        def nm(b):
            return b.kind if b.layer < 0 or b.kind == "head" else f"L{b.layer} {b.kind}"
        return nm(self.blocks[i]) if j - i == 1 else f"{nm(self.blocks[i])} .. " \
            f"{nm(self.blocks[j - 1])}"

    def as_dict(self) -> dict:
        p, f = self.plan, self.fewest
        pub = self.published
        return {
            "model": self.name, "shape": self.model.to_hf(), "chip": self.chip.name,
            "clock_mhz": self.chip.clock_mhz, "chips": self.chips, "batch": self.batch,
            "seq": self.seq, "system": asdict(self.system),
            "sram_per_chip": self.chip.mem_bytes,
            "sram_available_per_chip": self.chip.mem_bytes - sram_reserve(self.chip),
            "fewest_chips": f.chips, "fewest_tp": f.tp, "fewest_stages": f.stages,
            "tp": p.tp, "stages": p.stages, "chips_used": p.chips,
            "stage_blocks": [list(b) for b in p.bounds],
            "stage_cycles": list(p.stage_cycles), "stage_sram": list(p.stage_sram),
            "hop_cycles": list(p.hop_cycles), "host_cycles": p.host_cycles,
            "token_cycles": p.token_cycles, "round_cycles": p.round_cycles,
            "seconds_per_token": self.seconds_per_token,
            "tokens_per_s_user": self.tokens_per_s_user,
            "tokens_per_s_total": self.tokens_per_s_total,
            "utilization": p.utilization, "breakdown_cycles": self.breakdown,
            "blocks": [{"kind": k, "cycles": b.cycles, "allreduce": b.allreduce,
                        "critical_path": b.bounds.critical_path,
                        "throughput": b.bounds.throughput, "sram": b.sram(self.batch),
                        "bytes": b.bytes}
                       for k, b in distinct_blocks(self.blocks).items()],
            "calibration": self.calibration.as_dict(),
            "published": None if pub is None else {
                "name": pub[0], "tokens_per_s_user": [pub[1][1], pub[1][2]],
                "context": pub[1][3], "source": pub[1][4]},
        }


def distinct_blocks(blocks) -> dict:
    """One block of each kind (the first layer's attention apart: it has no residual add)."""
    out = {}
    for b in blocks:
        key = "attn (layer 0)" if b.kind == "attn" and b.layer == 0 else b.kind
        out.setdefault(key, b)
    return out


#: What a block's bound is called in the breakdown when it, not the calibrated estimate,
#: sets the block's cycles.
_FLOOR_NAMES = {"mxm": "weight streaming (MXM bound)", "mem": "weight streaming (MEM bound)",
                "vxm": "VXM bound", "sxm": "SXM bound"}


def _breakdown(blocks, p: Plan, cal: Calibration) -> dict:
    out = {"compute: critical path": 0.0, "compute: schedule (calibrated)": 0.0}
    for b in blocks:
        sb = b.bounds
        out["compute: critical path"] += sb.critical_path
        form = cal.formula(sb)
        if form >= sb.floor:
            out["compute: schedule (calibrated)"] += form - sb.critical_path
        else:
            unit = max(sb.throughput, key=sb.throughput.get)
            key = _FLOOR_NAMES[unit]
            out[key] = out.get(key, 0.0) + sb.floor - sb.critical_path
    out["links: all-reduces"] = sum(b.allreduce for b in blocks)
    out["links: pipeline hops"] = sum(p.hop_cycles)
    out["host round trip"] = p.host_cycles
    return out


def project(model: LlamaConfig, chip: ChipConfig, chips: int, *, batch: int = 1,
            seq: int | None = None, calibration: Calibration | None = None,
            system: System = System(), name: str | None = None) -> Projection:
    """Decode of `batch` sequences of `model` with a KV cache of `seq` positions
    (default ``max_position_embeddings``) on `chips` chips of `chip`: the best partition
    (:func:`plan`) and its rates. `calibration`: :func:`calibrate` (run, or read from the
    cache, when None).

    Raises
    ------
    LpuError
        A count out of range, or a model that does not fit (naming the fewest chips that
        hold it, or the block that no group holds).
    """
    for what, v in (("chips", chips), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise LpuError(f"{what} must be a whole number of at least 1, not {v!r}")
    seq = model.max_position_embeddings if seq is None else seq
    if isinstance(seq, bool) or not isinstance(seq, int) or not \
            1 <= seq <= model.max_position_embeddings:
        raise LpuError(f"seq must be from 1 to the model's max_position_embeddings "
                       f"{model.max_position_embeddings}, not {seq!r}")
    name = name or display_name(model)
    check_fit(model, chip, chips, batch, seq, system, name)  # before any calibration
    cal = calibration if calibration is not None else calibrate()
    best, fewest, by_tp = plan(model, chip, chips, batch, seq, cal, system)
    blocks = tuple(by_tp[best.tp])
    return Projection(model, name, chip, system, chips, batch, seq, best, fewest, blocks, cal,
                      _breakdown(blocks, best, cal))


def raw_weight_bytes(model: LlamaConfig) -> int:
    """Bytes of the model's int8 weights before any padding: every linear layer's ``in x
    out`` and the embedding table (twice when the LM head is not tied)."""
    d, f, q, kv = model.hidden_size, model.intermediate_size, model.q_dim, model.kv_dim
    tables = 1 if model.tie_word_embeddings else 2
    return model.num_hidden_layers * (2 * d * q + 2 * d * kv + 3 * d * f) \
        + tables * model.vocab_size * d


def sensitivity(model: LlamaConfig, chip: ChipConfig, chips: int, *, batch: int = 1,
                seq: int | None = None, calibration: Calibration | None = None,
                system: System = System()) -> list[tuple[str, Projection | LpuError]]:
    """The projection again with one thing changed at a time: the calibration (none: every
    block at its largest bound; without the KV-head term, refitted), the links (twice
    the latency of a link and of a network hop; lanes at the PHY's 30 Gb/s) and the
    assumed host latency (10 us each way). ``(what changed, projection or the error)``."""
    cal = calibration if calibration is not None else calibrate()
    rows = cal.rows
    no_kv = Calibration(fit([r.scheduled for r in rows], [r.critical_path for r in rows],
                            [r.busy for r in rows], [0.0] * len(rows))[0], 0.0, rows)
    variants = [
        ("as projected", cal, system),
        ("no calibration: every block at its largest bound", Calibration(0.0, 0.0), system),
        (f"calibration without the KV-head term (busy {no_kv.busy:.3f})", no_kv, system),
        ("links twice as slow (432-cycle links, 1444 ns network hops)", cal,
         replace(system, link_latency=2 * system.link_latency, hop_ns=2 * system.hop_ns)),
        ("link lanes at 30 Gb/s (the PHY's peak)", cal, replace(system, link_gbps=120.0)),
        ("host 10 us each way", cal, replace(system, host_ns=10000.0)),
    ]
    out = []
    for what, c, s in variants:
        try:
            out.append((what, project(model, chip, chips, batch=batch, seq=seq, calibration=c,
                                      system=s)))
        except LpuError as e:
            out.append((what, e))
    return out


# -- the text of a projection (lpu project) ---------------------------------------------------


def sensitivity_dict(what: str, r) -> dict:
    """One row of :func:`sensitivity` for JSON."""
    if isinstance(r, LpuError):
        return {"variant": what, "error": str(r)}
    return {"variant": what, "tokens_per_s_user": r.tokens_per_s_user,
            "tokens_per_s_total": r.tokens_per_s_total, "token_cycles": r.plan.token_cycles,
            "tp": r.plan.tp, "stages": r.plan.stages}


def _size(n: float) -> str:
    """Bytes in GB, MB or bytes."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n:,.0f} B"


def _span(values) -> str:
    """``lo-hi`` of some counts, or the one count."""
    v = list(values)
    return f"{min(v)}" if min(v) == max(v) else f"{min(v)}-{max(v)}"


def _pct(x: float) -> str:
    """A signed percentage."""
    return f"{100 * x:+.1f}%"


def calibration_lines(cal: Calibration) -> list[str]:
    """The text of ``lpu project --calibrate``: the estimate against every step."""
    out = [f"calibration: a block's cycles = max(largest bound, critical path x (1 + "
           f"{cal.kv:.3f} x (KV heads - 1)) + {cal.busy:.3f} x (VXM + SXM + MXM throughput "
           f"bounds)), fitted on {len(cal.rows)} decode steps the compiler scheduled, run on "
           "the golden chip model:",
           f"  {'chip':5} {'step':24} {'pos':>4} {'scheduled':>10} {'crit. path':>11} "
           f"{'estimate':>9} {'error':>7} {'left out':>9}"]
    for r, loo in zip(cal.rows, cal.loo, strict=True):
        out.append(f"  {r.chip:5} {r.label:24} {r.pos:4} {r.scheduled:10,} "
                   f"{r.critical_path:11,} {round(r.predicted):9,} {_pct(r.error):>7} "
                   f"{_pct(loo):>9}")
    out.append(f"calibration error: mean |error| {100 * cal.mean_abs_error:.1f}%, largest "
               f"{100 * cal.max_abs_error:.1f}%; each step left out of the fit: mean "
               f"{100 * cal.loo_mean_abs_error:.1f}%, largest {100 * cal.loo_max_abs_error:.1f}%")
    return out


_KIND_NAMES = {"embed": "embedding", "attn": "attention", "attn (layer 0)": "attention (layer 0)",
               "ffn_up": "FFN gate/up", "ffn_down": "FFN down", "head": "LM head"}


def projection_lines(p: Projection) -> list[str]:
    """The text of ``lpu project``: placement, partition, blocks, where a token's time
    goes, rates, the published figure and the calibration's error."""
    c, pl, f = p.chip, p.plan, p.fewest
    avail = c.mem_bytes - sram_reserve(c)
    whole = blocks_for(p.model, c, 1, p.seq, p.calibration, p.system)
    layout = sum(b.bytes["weights"] for b in whole) - (
        whole[-1].bytes["weights"] if p.model.tie_word_embeddings else 0)  # one table
    kv = sum(b.bytes["kv"] for b in p.blocks) * pl.tp
    src = "" if p.name == p.model.source else f" ({p.model.source})"
    out = [f"{p.name}{src} on {p.chips} chips of {c.name} ({c.clock_mhz:g} MHz, "
           f"{c.mem_bytes:,} B of SRAM each, {avail:,} B for weights and KV cache), batch "
           f"{p.batch}, {p.seq} positions",
           f"placement: int8 weights {_size(layout)} laid out in {c.vl}-lane vectors "
           f"({_size(raw_weight_bytes(p.model))} unpadded); KV cache "
           f"{_size(kv)} per sequence at tensor parallel {pl.tp}; fewest chips that "
           f"hold it: {f.chips} (tensor parallel {f.tp} x {f.stages} stages)",
           f"partition: tensor parallel {pl.tp} x {pl.stages} pipeline stages = {pl.chips} "
           f"chips ({p.chips - pl.chips} idle); {_span(j - i for i, j in pl.bounds)} blocks "
           f"a stage (stage 0: {p.stage_names(0)}; "
           f"last: {p.stage_names(pl.stages - 1)}); the fullest chip holds "
           f"{max(pl.stage_sram):,} B",
           f"per block on one chip of {pl.tp} (cycles: estimate = critical path + calibrated "
           f"schedule, or a bound; + all-reduce over the links):"]
    for key, b in distinct_blocks(p.blocks).items():
        sb = b.bounds
        tp = ", ".join(f"{u} {v:,.0f}" for u, v in sb.throughput.items())
        ar = f" + all-reduce {b.allreduce:,.0f}" if b.allreduce else ""
        out.append(f"  {_KIND_NAMES[key]:20} {b.cycles:9,.0f}{ar} (critical path "
                   f"{sb.critical_path:,}; throughput {tp})")
    tok = pl.token_cycles
    out.append(f"one token: {tok:,.0f} cycles = {1e3 * p.seconds_per_token:.3f} ms, where it "
               "goes:")
    for what, cyc in p.breakdown.items():
        extra = f" ({pl.stages - 1} hops)" if what == "links: pipeline hops" else ""
        out.append(f"  {what + extra:38} {cyc:12,.0f} {100 * cyc / tok:5.1f}%")
    mxm = sum(b.bounds.throughput["mxm"] for b in p.blocks)
    out.append(f"  (the MXMs stream weights {mxm:,.0f} cycles of it, {100 * mxm / tok:.1f}%, "
               "overlapped with the above)")
    if pl.round_cycles > tok:
        out.append(f"  the pipeline, not the token, sets the pace: a round of {p.batch} "
                   f"passes of the slowest stage is {pl.round_cycles:,.0f} cycles")
    out.append(f"rates: {p.tokens_per_s_user:,.1f} tokens/s per user, "
               f"{p.tokens_per_s_total:,.1f} tokens/s in total (batch {p.batch}); the chips "
               f"are busy {100 * pl.utilization:.1f}% of the time (pipeline bubbles "
               f"{100 * (1 - pl.utilization):.1f}%)")
    pub = p.published
    if pub is not None:
        name, (_, lo, hi, ctx, src) = pub
        span = f"{lo:g}-{hi:g}" if lo != hi else f"{lo:g}"
        out.append(f"published: {name} {span} tokens/s per user ({src}); this estimate is "
                   f"{p.tokens_per_s_user / hi:.2f}-{p.tokens_per_s_user / lo:.2f}x that"
                   if lo != hi else
                   f"published: {name} {span} tokens/s per user ({src}); this estimate is "
                   f"{p.tokens_per_s_user / lo:.2f}x that")
    cal = p.calibration
    out.append(f"calibration: {len(cal.rows)} compiled steps on tiny and small, estimate "
               f"within {100 * cal.mean_abs_error:.1f}% on average (largest "
               f"{100 * cal.max_abs_error:.1f}%; left out of the fit "
               f"{100 * cal.loo_mean_abs_error:.1f}%, {100 * cal.loo_max_abs_error:.1f}%): "
               "lpu project --calibrate prints each")
    out.append("links and host are modelled from published numbers, not simulated "
               f"(C2C link {p.system.link_latency} cycles, {p.system.link_gbps:g} Gb/s; network "
               f"hop {p.system.hop_ns:g} ns; host {p.system.host_ns / 1000:g} us each way, "
               "assumed): docs/project.md")
    return out


def sensitivity_lines(sens) -> list[str]:
    """The text of ``lpu project --sensitivity``."""
    out = ["sensitivity (one thing changed at a time):"]
    for what, r in sens:
        if isinstance(r, LpuError):
            out.append(f"  {what:64} does not fit: {r}")
        else:
            out.append(f"  {what:64} {r.tokens_per_s_user:9,.1f} tokens/s per user "
                       f"({r.tokens_per_s_total:,.1f} in total; tp {r.plan.tp} x "
                       f"{r.plan.stages} stages)")
    return out
