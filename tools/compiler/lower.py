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

import functools
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
from .graph import analytic_bound
from .kernels import write_image
from .listsched import schedule_step
from .sched import SchedError

__all__ = ["CompiledStep", "compile_step", "compile_step_by_kernels", "ChipDecoder",
           "analytic_bound", "check_model"]


@dataclass
class CompiledStep:
    pos: int
    program: Program
    image: list  # [(Tensor, array)] for the host to write
    logits: object  # Tensor of the logits (fp32 [vocab / VL, VL])
    token: list  # Tensors where the host writes the token (every lane = token)
    compile_s: float
    instructions: int
    sram_words: int  # words allocated (weights, cache, constants, temporaries)
    #: a pipeline stage's input, written over a C2C link (lpu.tools.compiler.pipeline)
    stage_in: object = None


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


def compile_step(model, chip: ChipConfig | str, pos: int, context: int | None = None, *,
                 batch: int = 1) -> CompiledStep:
    """The step program for the token at position `pos` (0-based) of `batch` sequences:
    the step's operation graph list-scheduled onto the chip
    (:mod:`lpu.tools.compiler.listsched`). With a batch, ``logits`` is one Tensor per
    sequence and ``token`` every sequence's token copies in turn (as many each)."""
    chip = load_config(chip)
    mc = model.config
    context = context or mc.max_position_embeddings
    check_model(mc, chip, context)
    if not 0 <= pos < context:
        raise LpuError(f"position {pos} is outside the context of {context} tokens")
    if batch < 1:
        raise LpuError(f"the batch must be at least 1, not {batch}")
    try:
        st = schedule_step(model, chip, pos, context, batch=batch)
    except SchedError as e:
        raise LpuError(f"cannot compile the step of position {pos} for a batch of {batch} "
                       f"with a context of {context} on {chip.name}: {e} (a smaller --context "
                       "or --batch needs less SRAM)") from None
    logits = st.logits if batch == 1 else list(st.logits_per_seq)
    return CompiledStep(pos, st.program, st.image, logits, list(st.tokens), st.seconds,
                        st.instructions, st.sram_words)


def compile_step_by_kernels(model, chip: ChipConfig | str, pos: int,
                            context: int | None = None) -> CompiledStep:
    """The first compiler: the LPU-exact step run on :class:`ChipOps`, each primitive
    placed as a kernel in program order with every value through SRAM. Kept as a second,
    independent executor of the specification (the kernel tests use it)."""
    chip = load_config(chip)
    mc = model.config
    context = context or mc.max_position_embeddings
    check_model(mc, chip, context)
    t0 = time.perf_counter()
    ops = ChipOps(chip)
    prepared = LX.Prepared(ops, model, context)
    # the token is a host input (ops.token): the program does not depend on its value
    logits = LX.decode_step(ops, prepared, 0, pos)
    prog = ops.program()
    words = sum(nxt - (b * chip.bank_words) for (_, b), nxt in ops.alloc.next.items())
    return CompiledStep(pos, prog, ops.image, logits.t, [ops.token_tensor],
                        time.perf_counter() - t0, sum(len(w) for w in prog.queues.values()),
                        words)




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
    """Token-by-token decoding on the golden chip model, of `batch` sequences at once
    (one step program runs them all)."""

    model: object
    chip_cfg: ChipConfig
    context: int | None = None
    batch: int = 1
    _chip: object = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.chip_cfg = load_config(self.chip_cfg)
        self.context = self.context or self.model.config.max_position_embeddings
        check_model(self.model.config, self.chip_cfg, self.context)
        self._chip = Chip(self.chip_cfg)

    def compiled(self, pos: int) -> CompiledStep:
        if pos not in self._cache:  # from the disk cache (lpu.tools.compiler.cache) or compiled
            self._cache[pos] = cached_compile(
                self.model, self.chip_cfg, pos, self.context,
                compile=(compile_step if self.batch == 1
                         else functools.partial(compile_step, batch=self.batch)),
                step_type=CompiledStep, batch=self.batch)
        return self._cache[pos]

    def step(self, token, pos: int) -> StepResult:
        """Run the step at `pos` for `token` (one per sequence with a batch): writes the
        token copies, runs, reads the logits (float32 [vocab], a list with a batch)."""
        tokens = self._tokens(token)
        cs = self.compiled(pos)
        t0 = time.perf_counter()
        self._apply(cs, tokens)
        res, lgs = self._run(cs, pos)
        return StepResult(token, pos, lgs[0] if self.batch == 1 else lgs, res.cycles,
                          cs.compile_s, time.perf_counter() - t0, self._bound(pos))

    def _tokens(self, token) -> list:
        tokens = list(token) if isinstance(token, list | tuple) else [token]
        if len(tokens) != self.batch:
            raise LpuError(f"step needs {self.batch} tokens (one per sequence), got "
                           f"{len(tokens)}")
        return tokens

    def _fill(self, cs: CompiledStep, tokens: list) -> dict:
        """The step's token copies, each the token of its sequence (``write_image``'s
        `fill`)."""
        copies = cs.token if isinstance(cs.token, list) else [cs.token]
        per = len(copies) // self.batch
        return {t: tokens[i // per] for i, t in enumerate(copies)}

    def _apply(self, cs: CompiledStep, tokens: list) -> None:
        """The step's SRAM image, with the token copies, written into the golden chip."""
        write_image(self._chip, cs.image, self._fill(cs, tokens))

    def _run(self, cs: CompiledStep, pos: int):
        """Run the step program on the golden chip: its RunResult and the logits."""
        chip = self._chip
        chip.load(cs.program, name=f"step {pos}")
        res = chip.run()
        lgs = [chip.read_tensor(o.slice, o.addr, o.n, np.float32).reshape(-1).copy()
               for o in self.outputs(cs)]
        return res, lgs

    @staticmethod
    def outputs(cs: CompiledStep) -> list:
        """The step's logits tensors, one per sequence."""
        return cs.logits if isinstance(cs.logits, list) else [cs.logits]

    def _bound(self, pos: int) -> float:
        return analytic_bound(self.model.config, self.chip_cfg, pos, self.batch)["bound_cycles"]
