"""The compiler: a Llama model lowered to one step program per token position.

:func:`compile_step` runs the LPU-exact decode step (:func:`lpu.golden.model.exact.
decode_step`) on :class:`~lpu.tools.compiler.chipops.ChipOps`, which places the weights, the KV
cache and every temporary in SRAM, routes every value on stream registers and
schedules every instruction at an exact cycle (:mod:`lpu.tools.compiler.sched`). The result is
a checked :class:`~lpu.program.Program` plus the SRAM image the host writes before the
step (weights, constants, the step's inputs) and where the logits will be.

:class:`ChipDecoder` is the host loop: it writes the image, runs the step program on
the golden chip model, reads the logits and picks the next token. The KV cache stays
in SRAM between steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.golden.model import exact as LX
from lpu.golden.model.checkpoint import CheckpointError
from lpu.program import Program

from .cache import cached_compile
from .chipops import ChipOps

__all__ = ["CompiledStep", "compile_step", "ChipDecoder", "analytic_bound", "check_model"]


@dataclass
class CompiledStep:
    pos: int
    program: Program
    image: list  # [(Tensor, array)] for the host to write
    logits: object  # Tensor of the logits (fp32 [vocab / VL, VL])
    token: object  # Tensor where the host writes the token (every lane = token)
    compile_s: float
    instructions: int
    sram_words: int  # words allocated (weights, cache, constants, temporaries)


def check_model(model_cfg, chip: ChipConfig, context: int) -> None:
    """Refuse a model the compiler cannot place on `chip`, naming the field."""
    vl = chip.vl
    src = getattr(model_cfg, "source", "<model>")
    if model_cfg.head_dim != vl:
        raise CheckpointError(f"{src}: head_dim {model_cfg.head_dim} must equal the vector "
                              f"length {vl} of config {chip.name}")
    for name in ("hidden_size", "intermediate_size", "vocab_size"):
        v = getattr(model_cfg, name)
        if v % vl:
            raise CheckpointError(f"{src}: {name} {v} is not a multiple of the vector length "
                                  f"{vl} of config {chip.name}")
    if context % vl or context > model_cfg.max_position_embeddings:
        raise CheckpointError(f"{src}: context {context} must be a multiple of {vl} and at "
                              f"most max_position_embeddings {model_cfg.max_position_embeddings}")
    if chip.streams < vl:
        raise CheckpointError(f"config {chip.name}: attention needs streams >= VL "
                              f"({chip.streams} < {vl})")


def compile_step(model, chip: ChipConfig | str, pos: int, context: int | None = None
                 ) -> CompiledStep:
    """The step program for the token at position `pos` (0-based)."""
    chip = load_config(chip)
    mc = model.config
    context = context or mc.max_position_embeddings
    check_model(mc, chip, context)
    if not 0 <= pos < context:
        raise LpuError(f"position {pos} is outside the context of {context} tokens")
    t0 = time.perf_counter()
    ops = ChipOps(chip)
    prepared = LX.Prepared(ops, model, context)
    # the token is a host input (ops.token): the program does not depend on its value
    logits = LX.decode_step(ops, prepared, 0, pos)
    prog = ops.program()
    words = sum(nxt - (b * chip.bank_words) for (_, b), nxt in ops.alloc.next.items())
    return CompiledStep(pos, prog, ops.image, logits.t, ops.token_tensor,
                        time.perf_counter() - t0, sum(len(w) for w in prog.queues.values()),
                        words)


def analytic_bound(model_cfg, chip: ChipConfig, pos: int) -> dict:
    """Cycles per token no schedule can beat on this chip: the bytes of weights and KV
    cache read per token over the MEM read bandwidth (every slice reading four words a
    cycle), and the weight rows over the MXM planes' load rate (one lw of up to
    `streams` rows per plane per cycle)."""
    vl = chip.vl
    d, hdim, L = model_cfg.hidden_size, model_cfg.intermediate_size, model_cfg.num_hidden_layers
    qd, kvd = model_cfg.q_dim, model_cfg.kv_dim
    w_bytes = L * (d * qd + 2 * d * kvd + qd * d + 3 * d * hdim) + 2 * model_cfg.vocab_size * d
    nb = pos // vl + 1
    kv_bytes = L * model_cfg.num_key_value_heads * 2 * nb * vl * model_cfg.head_dim
    slices = 2 * chip.mem_slices
    mem_bw = slices * 4 * vl
    planes = 2 * chip.mxm_planes
    rows = (w_bytes + kv_bytes) // vl
    mxm_rate = planes * min(32, chip.streams)
    mem_cycles = (w_bytes + kv_bytes) / mem_bw
    mxm_cycles = rows / mxm_rate
    return {"weight_bytes": w_bytes, "kv_bytes": kv_bytes, "mem_bytes_per_cycle": mem_bw,
            "mem_bound_cycles": mem_cycles, "mxm_rows_per_cycle": mxm_rate,
            "mxm_bound_cycles": mxm_cycles, "bound_cycles": max(mem_cycles, mxm_cycles)}


@dataclass
class StepResult:
    token: int
    pos: int
    logits: np.ndarray  # float32 [vocab]
    cycles: int
    compile_s: float
    run_s: float
    bound_cycles: float


@dataclass
class ChipDecoder:
    """Token-by-token decoding on the golden chip model."""

    model: object
    chip_cfg: ChipConfig
    context: int | None = None
    _chip: object = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.chip_cfg = load_config(self.chip_cfg)
        self.context = self.context or self.model.config.max_position_embeddings
        check_model(self.model.config, self.chip_cfg, self.context)
        self._chip = Chip(self.chip_cfg)

    def compiled(self, pos: int) -> CompiledStep:
        if pos not in self._cache:  # from the disk cache (lpu.tools.compiler.cache) or compiled
            self._cache[pos] = cached_compile(self.model, self.chip_cfg, pos, self.context,
                                              compile=compile_step, step_type=CompiledStep)
        return self._cache[pos]

    def step(self, token: int, pos: int) -> StepResult:
        cs = self.compiled(pos)
        chip = self._chip
        t0 = time.perf_counter()
        for t, arr in cs.image:
            a = np.asarray(arr)
            if t == cs.token:
                a = np.full(a.shape, token, dtype=np.uint32)
            if t.dtype == "i8":
                chip.write_mem(t.slice, t.addr, a.astype(np.uint8))
            else:
                chip.write_tensor(t.slice, t.addr, a.astype(np.uint32))
        chip.load(cs.program, name=f"step {pos}")
        res = chip.run()
        lg = chip.read_tensor(cs.logits.slice, cs.logits.addr, cs.logits.n, np.float32)
        bound = analytic_bound(self.model.config, self.chip_cfg, pos)["bound_cycles"]
        return StepResult(token, pos, lg.reshape(-1).copy(), res.cycles, cs.compile_s,
                          time.perf_counter() - t0, bound)
