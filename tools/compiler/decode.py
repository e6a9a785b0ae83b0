"""The host decode loop: token-by-token decoding, the Python API behind ``lpu decode``.

``backend="golden"`` compiles one step program per position (:mod:`lpu.tools.compiler.lower`)
and runs it on the golden chip model (the host writes the token, runs the step, reads
the logits and picks the next token); ``backend="reference"`` runs the float32
op-level model (:mod:`lpu.golden.model.reference`) with no chip limits;
``backend="exact"`` runs the LPU-exact numpy evaluation
(:mod:`lpu.golden.model.exact`) of the same algorithm the chip runs.

>>> from lpu.tools.compiler.decode import decode
>>> r = decode("builtin", prompt="ROMEO:", n=8, backend="reference")
>>> print(r.text)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.model import exact as LX
from lpu.golden.model.checkpoint import (
    BUILTIN_MODEL,
    load_builtin,
    load_checkpoint,
    shipped_model_path,
)
from lpu.golden.model.reference import KVCache, forward
from lpu.golden.model.tokenizer import decode_bytes, encode_bytes

from .graph import step_bounds
from .lower import ChipDecoder, check_model
from .pipeline import PipelineDecoder

__all__ = ["decode", "DecodeResult", "pick_token", "load_model", "BACKENDS"]

#: golden: the chip model; reference / exact: numpy models; verilator / icarus /
#: amaranth: every step on the chip's RTL in lockstep with the golden model
#: (:func:`lpu.tools.rtl_decode.decode`, which passes the decoder).
BACKENDS = ("golden", "reference", "exact", "verilator", "icarus", "amaranth", "board")
RTL_BACKENDS = ("verilator", "icarus", "amaranth")
#: The backends whose steps run elsewhere, beside the golden model, through a decoder
#: the caller makes (`decoder`): the RTL's and a board's.
HOST_BACKENDS = (*RTL_BACKENDS, "board")


@dataclass
class DecodeResult:
    prompt: list[int]
    tokens: list[int]  # generated tokens only
    text: str  # prompt + generated, as text
    backend: str
    config: str | None
    cycles: list[int] = field(default_factory=list)  # per step (golden backend)
    bound_cycles: list[float] = field(default_factory=list)  # the bandwidth bound, per step
    bounds: list[dict] = field(default_factory=list, repr=False)  # graph.step_bounds, per step
    logits: list[np.ndarray] = field(default_factory=list, repr=False)  # per step
    compile_s: float = 0.0
    run_s: float = 0.0
    clock_mhz: float | None = None
    batch: int = 1  # sequences decoded together; cycles are per step (all of them)
    context: int = 0  # the context the steps were compiled for (tokens)
    batch_tokens: list[list[int]] = field(default_factory=list)  # generated, per sequence
    batch_texts: list[str] = field(default_factory=list)
    #: RTL backends: the RTL's cycles, seconds from START to the end of each run
    #: (``rtl_run_s``), bus accesses and steps (lpu.tools.rtl_decode.RtlDecoder); the
    #: board backend: what crossed the line (lpu.tools.board_decode.BoardDecoder.stats)
    rtl: dict | None = None
    chips: int = 1  # chips the model is split across (lpu.tools.compiler.pipeline)
    #: --chips N: the stages (one line a chip), the system, and per step the cycle each
    #: chip's stage starts, each chip's cycles, and the words sent over each link
    pipeline: dict | None = None

    @property
    def cycles_per_step(self) -> float | None:
        """Mean cycles of a step (one token of every sequence of the batch)."""
        return float(np.mean(self.cycles)) if self.cycles else None

    @property
    def cycles_per_token(self) -> float | None:
        """Mean cycles of a step over the batch: the chip's cost of one token."""
        return float(np.mean(self.cycles)) / self.batch if self.cycles else None

    @property
    def tokens_per_s(self) -> float | None:
        c = self.cycles_per_token
        return self.clock_mhz * 1e6 / c if c and self.clock_mhz else None

    @property
    def ratio_to_bound(self) -> float | None:
        """Cycles per token over the bandwidth bound."""
        if not self.cycles or not self.bound_cycles:
            return None
        return float(np.mean(self.cycles) / np.mean(self.bound_cycles))  # per step

    @property
    def floor_cycles_per_token(self) -> float | None:
        """The mean over steps of the largest bound (critical path, throughput per unit,
        bandwidth): no schedule can beat it."""
        return float(np.mean([b["floor"] for b in self.bounds])) if self.bounds else None

    @property
    def ratio_to_floor(self) -> float | None:
        f = self.floor_cycles_per_token
        return float(np.mean(self.cycles)) / f if self.cycles and f else None


def load_model(spec):
    """'builtin' (or the shipped model's name, ``bytes-llama``), the name of another
    shipped model (``fpga-llama``), a checkpoint folder, or a Model. A folder of that
    name, if there is one, wins over a shipped model."""
    if spec is None or spec == "builtin" or (spec == BUILTIN_MODEL and not Path(spec).exists()):
        return load_builtin()
    if isinstance(spec, str) and not Path(spec).exists() and shipped_model_path(spec):
        return load_checkpoint(shipped_model_path(spec))
    if isinstance(spec, str) or hasattr(spec, "__fspath__"):
        return load_checkpoint(spec)
    return spec


def pick_token(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Greedy (lowest index among ties) at temperature 0, else sampled from softmax."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def _wavefront(dec, res: DecodeResult, seqs, prompt_len, n, steps, temperature, rngs,
               progress) -> None:
    """`len(seqs)` sequences in flight on a pipeline of chips (PipelineDecoder.beat):
    in beat ``t`` stage 0 takes sequence ``t mod stages`` (if there is one) at position
    ``t // stages``, and stage ``k`` goes on with what stage ``k - 1`` did in beat
    ``t - 1`` (a stage: a chip, or a tensor-parallel group). A sequence's logits leave
    the last stage one beat before its next token enters stage 0, so with as many
    sequences as stages no chip idles once the pipeline is full. ``res.cycles[p]`` are
    the cycles of the beats in which stage 0 took position ``p`` (the last one also
    the beats that drain the pipeline): they sum to the run's cycles, and the mean over
    the batch is the cycles per token."""
    N, B = dec.n_stages, len(seqs)
    work: list = [None] * N
    res.pipeline["beat_cycles"] = []
    beats = N * (steps - 1) + (B - 1) + N  # until the last sequence's last step leaves
    res.cycles = [0] * steps
    logits0: dict[int, np.ndarray] = {}
    done = 0
    for t in range(beats):
        j, p = t % N, t // N
        work = [(j, p) if j < B and p < steps else None] + work[:-1]
        token = seqs[j][p] if work[0] is not None else None
        r = dec.beat(work, token)
        res.cycles[min(p, steps - 1)] += r.cycles
        res.compile_s += r.compile_s
        res.run_s += r.run_s
        res.pipeline["starts"].append([r.start] * dec.chips)
        res.pipeline["ends"].append(r.ends)
        res.pipeline["link_words"].append(r.link_words)
        res.pipeline["beat_cycles"].append(r.cycles)
        if r.done is not None:
            seq, pos = r.done
            if seq == 0:
                logits0[pos] = r.logits
            if n and pos >= prompt_len - 1:
                seqs[seq].append(pick_token(r.logits, temperature, rngs[seq]))
            done += 1
            if progress:
                progress(done, steps * B)
    res.logits = [np.asarray(logits0[p], dtype=np.float32) for p in range(steps)]
    res.pipeline["beats"] = beats


def decode(model="builtin", *, prompt: str | None = None, tokens: Sequence[int] | None = None,
           n: int = 16, config="small", backend: str = "golden", temperature: float = 0.0,
           seed: int | None = None, context: int | None = None, batch: int = 1,
           progress: Callable[[int, int], None] | None = None,
           decoder: Callable | None = None, chips: int = 1, tp: int = 1) -> DecodeResult:
    """Decode `n` tokens after the prompt; every prompt token is one step too.

    With ``batch > 1``, that many sequences of the same prompt decode together: on the
    golden backend one step program runs them all (weights loaded once for every
    sequence), on the others each runs alone. Sequence ``b`` samples with its own
    generator (seeded ``seed`` for the first, ``(seed, b)`` for the others), so greedy
    sequences are identical to decoding one alone. The result's ``tokens`` / ``text`` /
    ``logits`` are the first sequence's; ``batch_tokens`` / ``batch_texts`` every
    sequence's. Without `context`, a batch uses the smallest multiple of the vector
    length that holds the prompt and the new tokens (every sequence has its own KV
    cache in SRAM).

    On the RTL backends (``verilator``, ``icarus``, ``amaranth``) every step runs on
    the chip's RTL in lockstep with the golden model: `decoder` (``(model, cfg,
    context, batch) ->`` a :class:`~lpu.tools.compiler.lower.ChipDecoder` with a
    ``close()`` and ``stats()``) makes the decoder;
    :func:`lpu.tools.rtl_decode.decode` passes :class:`lpu.tools.rtl_decode.RtlDecoder`.

    With ``chips > 1`` (golden backend, one sequence) the model's layers are pipelined
    across a system of that many chips joined by C2C links
    (:mod:`lpu.tools.compiler.pipeline`): the tokens are the one-chip tokens, and
    ``pipeline`` says where each chip's stage ran and what the links carried. With
    ``tp == chips`` the chips are one tensor-parallel group instead (every layer's
    query heads and FFN columns split across them, two all-reduces a layer over the
    links)."""
    if backend not in BACKENDS:
        raise LpuError(f"unknown backend {backend!r}; backends are: {', '.join(BACKENDS)}")
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise LpuError(f"--chips must be a whole number of at least 1, not {chips!r}")
    if tp != 1 and chips == 1:
        raise LpuError(f"--tp {tp}: tensor parallelism splits a layer across chips; give "
                       f"--chips {tp} too")
    if chips > 1 and backend != "golden":
        raise LpuError(f"--chips {chips}: a model split across chips runs on the golden "
                       f"system (--backend golden), not --backend {backend}")
    if chips > 1 and batch > chips // max(tp, 1):
        n = chips // max(tp, 1)
        raise LpuError(f"--chips {chips}{f' --tp {tp}' if tp > 1 else ''} --batch {batch}: "
                       f"a pipeline of {n} stage(s) keeps at most {n} sequence(s) in flight "
                       "(one a stage)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise LpuError(f"--batch must be a whole number of at least 1, not {batch!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature)
            and temperature >= 0):
        raise LpuError(f"--temperature must be a finite number of at least 0, not "
                       f"{temperature!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise LpuError(f"--seed must be a whole number of at least 0, not {seed!r}")
    m = load_model(model)
    if tokens is None:
        tokens = encode_bytes(prompt if prompt is not None else "")
    tokens = [int(t) for t in tokens]
    if not tokens:
        raise LpuError("the prompt is empty: give --prompt TEXT or --tokens 1,2,3")
    vocab = m.config.vocab_size
    for t in tokens:
        if not 0 <= t < vocab:
            raise LpuError(f"token {t} is outside the vocabulary 0..{vocab - 1}")
    if n < 0:
        raise LpuError(f"-n must be at least 0, not {n}")
    total = len(tokens) + n
    if context is None and batch > 1:
        vl = load_config(config).vl
        context = min(m.config.max_position_embeddings, -(-total // vl) * vl)
    if context is not None and not 1 <= context <= m.config.max_position_embeddings:
        raise LpuError(f"--context {context} is outside 1..{m.config.max_position_embeddings} "
                       "(the model's max_position_embeddings)")
    ctx = context or m.config.max_position_embeddings
    if total > ctx:
        raise LpuError(f"prompt ({len(tokens)} tokens) + {n} new tokens exceed the context "
                       f"of {ctx} tokens")
    rngs = [np.random.default_rng(seed if b == 0 or seed is None else (seed, b))
            for b in range(batch)]
    cfg = None
    res = DecodeResult(tokens, [], "", backend, None)
    res.batch = batch
    res.context = ctx
    if backend == "reference":
        caches = [KVCache.for_config(m.config, ctx) for _ in range(batch)]

        def step(toks, pos):
            return [forward(m, tk, pos, caches[b]) for b, tk in enumerate(toks)], None
    elif backend == "exact":
        cfg = load_config(config)
        check_model(m.config, cfg, ctx)  # the chip's shapes: head_dim = VL, ..
        ops = LX.NumpyOps(cfg.vl)
        prepared = [LX.Prepared(ops, m, ctx) for _ in range(batch)]

        def step(toks, pos):
            return [LX.decode_step(ops, prepared[b], tk, pos).view(np.float32).reshape(-1)
                    for b, tk in enumerate(toks)], None
    else:
        cfg = load_config(config)
        if backend in HOST_BACKENDS:
            if decoder is None:
                raise LpuError(f"backend {backend}: the RTL backends decode through "
                               "lpu.tools.rtl_decode.decode, a board through "
                               "lpu.tools.board_decode.decode")
            dec = decoder(m, cfg, ctx, batch)
        elif chips > 1:
            dec = PipelineDecoder(m, cfg, chips, ctx, slots=batch, tp=tp)
            res.chips = chips
            res.pipeline = {"system": dec.sysc.describe(), "tp": tp,
                            "stages": [s_.describe() for s_ in dec.stages],
                            "starts": [], "ends": [], "chip_cycles": [], "link_words": []}
        else:
            dec = ChipDecoder(m, cfg, ctx, batch=batch)

        def step(toks, pos):
            r = dec.step(toks if batch > 1 else toks[0], pos)
            return (r.logits if batch > 1 else [r.logits]), r

    if cfg is not None:
        res.config, res.clock_mhz = cfg.name, cfg.clock_mhz
    seqs = [list(tokens) for _ in range(batch)]
    steps = total - 1 if n else len(tokens)
    t0 = time.perf_counter()
    if chips > 1 and batch > 1:
        _wavefront(dec, res, seqs, len(tokens), n, steps, temperature, rngs, progress)
        res.tokens = seqs[0][len(tokens):]
        res.text = decode_bytes(seqs[0])
        res.batch_tokens = [s[len(tokens):] for s in seqs]
        res.batch_texts = [decode_bytes(s) for s in seqs]
        return res
    info = None
    if backend in HOST_BACKENDS:
        dec.total = steps  # for its progress lines
    try:
        for pos in range(steps):
            logits, info = step([s[pos] for s in seqs], pos)
            res.logits.append(np.asarray(logits[0], dtype=np.float32))
            if info is not None:
                res.cycles.append(info.cycles)
                res.bound_cycles.append(info.bound_cycles)
                res.bounds.append(step_bounds(m, cfg, pos, ctx, batch))
                res.compile_s += info.compile_s
                res.run_s += info.run_s
                if res.pipeline is not None:
                    res.pipeline["starts"].append(info.starts)
                    res.pipeline["ends"].append(info.ends)
                    res.pipeline["chip_cycles"].append(info.chip_cycles)
                    res.pipeline["link_words"].append(info.link_words)
            if n and pos >= len(tokens) - 1:  # -n 0: only the prompt's steps (a prefill)
                for b in range(batch):
                    nxt = pick_token(np.asarray(logits[b]), temperature, rngs[b])
                    seqs[b].append(nxt)
            if progress:
                progress(pos + 1, steps)
    finally:
        if backend in HOST_BACKENDS:
            dec.close()
            res.rtl = dec.stats()
    if info is None:
        res.run_s = time.perf_counter() - t0
    res.tokens = seqs[0][len(tokens):]
    res.text = decode_bytes(seqs[0])
    res.batch_tokens = [s[len(tokens):] for s in seqs]
    res.batch_texts = [decode_bytes(s) for s in seqs]
    return res
