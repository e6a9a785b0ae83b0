"""A model split across chips: its layers pipelined over C2C links, one program a chip.

The contract:

* :func:`partition` cuts a model of ``L`` layers into ``N`` *stages*, one a chip, in
  order: chip 0 embeds the token, chip ``N - 1`` holds the final norm and the LM head
  (with a tied head, a second copy of the embedding table), and the layers are shared
  out as evenly as they go (the first chips take one more when ``N`` does not divide
  ``L``). Each chip holds only its stage's weights and KV cache.
* :func:`compile_stage` compiles one chip's part of the step at a position
  (:func:`lpu.golden.model.exact.decode_stage` traced and list-scheduled like a whole
  step, :mod:`lpu.tools.compiler.listsched`), as if its input were already in SRAM at
  cycle 0, and caches it on disk like a step (:mod:`lpu.tools.compiler.cache`).
* :func:`link` joins the stages of one step into a system's programs: chip ``k``'s
  program starts ``start[k]`` cycles late (every queue shifted), then reads its output
  (the hidden state, ``hidden / VL`` fp32 vectors, 4 words each) out of SRAM
  ``c2c_width`` words a cycle onto the east streams and ``send``\\ s it over link 1 at
  the east edge; chip ``k + 1`` ``recv``\\ s each piece over link 0 at the west edge
  ``c2c_latency`` cycles later and writes it into the SRAM words its stage reads its
  input from; its program starts the cycle after the last of them is readable. The
  stream timing is docs/timing.md's (sections 3 and 6); the whole system is checked
  by :func:`lpu.golden.system.check_system` before it runs.
* :class:`PipelineDecoder` is the host loop on the golden system
  (:class:`lpu.golden.system.System`, a ``ring``: chip ``k``'s link 1 to chip ``k+1``'s
  link 0): it writes every chip's image, the token into chip 0, runs the step's
  programs and reads the logits from the last chip. The KV cache of each chip's layers
  stays in that chip's SRAM between steps.

For one sequence a pipeline is no faster than one chip (the chips work in turn, and
the links add their latency): it is what lets a model larger than one chip's SRAM run
at all. The logits are the one-chip logits bit for bit: every stage computes its part
of the same algorithm, and a link moves the bits unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.schedule import timeline
from lpu.golden.system import System
from lpu.isa import E, Instr, Opcode, make
from lpu.program import Program, ProgramBuilder
from lpu.system import SystemConfig, system

from .cache import cached_compile
from .graph import analytic_bound, critical_path, trace_step
from .kernels import Tensor, write_image
from .listsched import schedule_step
from .lower import CompiledStep, StepResult, check_model
from .sched import SchedError

__all__ = ["Stage", "partition", "system_for", "compile_stage", "link", "Linked",
           "PipelineDecoder", "stage_critical_path", "SEND_LINK", "RECV_LINK", "MAX_CHIPS"]

#: The link a stage sends its output over (the east edge) and the next receives it on
#: (the west edge): a ``ring`` cables chip k's link 1 to chip k+1's link 0.
SEND_LINK, RECV_LINK = 1, 0
#: The most chips ``lpu decode --chips`` splits a model across.
MAX_CHIPS = 16


@dataclass(frozen=True)
class Stage:
    """One chip's part of the model: its layers, whether it embeds the token (chip 0)
    and whether it ends the model (final norm and LM head: the last chip)."""

    chip: int
    layers: range
    embed: bool
    head: bool

    def key(self) -> list:
        """What the stage's program depends on, for the compile cache."""
        return [self.layers.start, self.layers.stop, self.embed, self.head]

    def describe(self) -> str:
        parts = (["embedding"] if self.embed else []) + \
            [f"layers {self.layers.start}-{self.layers.stop - 1}"
             if len(self.layers) > 1 else f"layer {self.layers.start}"] + \
            (["norm + LM head"] if self.head else [])
        return f"chip {self.chip}: " + ", ".join(parts)


def partition(model_cfg, chips: int) -> list[Stage]:
    """The model's layers cut into `chips` stages in order (see the module docstring)."""
    L = model_cfg.num_hidden_layers
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise LpuError(f"--chips must be a whole number of at least 1, not {chips!r}")
    if chips > min(L, MAX_CHIPS):
        raise LpuError(f"--chips {chips}: a model of {L} layer(s) splits across at most "
                       f"{min(L, MAX_CHIPS)} chips (a layer a chip at least"
                       f"{'' if L <= MAX_CHIPS else f', and {MAX_CHIPS} chips at most'})")
    base, extra = divmod(L, chips)
    out, a = [], 0
    for k in range(chips):
        b = a + base + (k < extra)
        out.append(Stage(k, range(a, b), k == 0, k == chips - 1))
        a = b
    return out


def system_for(cfg: ChipConfig | str, chips: int) -> SystemConfig:
    """The system a pipeline of `chips` runs on: a ``ring`` of chips of `cfg`; a config
    without C2C links gets two (the config's default latency and width), named
    ``<name>+c2c``."""
    cfg = load_config(cfg)
    if cfg.c2c_links < 2:
        cfg = cfg.replace(c2c_links=2, name=f"{cfg.name}+c2c")
    return system(cfg, chips, "ring", source=f"--chips {chips} on {cfg.name}")


def compile_stage(model, chip: ChipConfig, pos: int, context: int, stage: Stage
                  ) -> CompiledStep:
    """Chip ``stage.chip``'s program of the step at `pos`, before :func:`link`: its
    input (``stage_in``) in SRAM at cycle 0, its output at ``logits`` (the hidden state
    unless the stage ends the model); from the disk cache when it is there."""

    def compile_(model, chip, pos, context):
        try:
            st = schedule_step(model, chip, pos, context, stage=stage)
        except SchedError as e:
            raise LpuError(f"cannot compile {stage.describe()} for position {pos} with a "
                           f"context of {context} on {chip.name}: {e}") from None
        return CompiledStep(pos, st.program, st.image, st.logits, list(st.tokens),
                            st.seconds, st.instructions, st.sram_words, stage_in=st.stage_in)

    return cached_compile(model, chip, pos, context, compile=compile_,
                          step_type=CompiledStep, stage=stage.key())


def stage_critical_path(model, cfg: ChipConfig, pos: int, context: int, stage: Stage) -> int:
    """The critical path of a stage's graph (cycles, unlimited units,
    :func:`lpu.tools.compiler.graph.critical_path`): no schedule of the stage beats it."""
    g, _ = trace_step(model, cfg.vl, pos, context, stage=stage)
    return critical_path(g, cfg)[0]


# -- joining the stages ---------------------------------------------------------------


def _placed(prog: Program, queue: str) -> list[tuple[int, Instr]]:
    """The queue's instructions at their dispatch cycles (nops dropped; a ``repeat`` at
    the cycle after the instruction it repeats, as :class:`ProgramBuilder` takes it)."""
    out, t, prev = [], 0, None
    for ins in prog.instrs(queue):
        if ins.op == Opcode.NOP:
            t += ins.n
        elif ins.op == Opcode.REPEAT:
            out.append((t, ins))
            t = prev + ins.n * ins.d + 1
        elif ins.op in (Opcode.SYNC, Opcode.NOTIFY):
            raise LpuError(f"queue {queue}: a stage program with {ins.text()} cannot be "
                           "shifted in time")
        else:
            out.append((t, ins))
            prev = t
            t += 1
    return out


@dataclass
class Linked:
    """One step's programs for a system, joined by :func:`link`."""

    programs: list[Program]
    starts: list[int]  # the cycle each chip's stage program starts
    ends: list[int]  # the cycle after each chip's stage program's last dispatch
    sends: list[list[int]]  # per chip: the cycles it sends in (its output's pieces)
    words: int  # words (VL bytes each) sent over each link per step


def link(cfg: ChipConfig, stages: list[CompiledStep]) -> Linked:
    """The programs of one step on a system of ``len(stages)`` chips of `cfg` (see the
    module docstring): chip ``k`` sends ``stages[k].logits`` to chip ``k + 1``, which
    receives it into ``stages[k + 1].stage_in``."""
    w = cfg.c2c_width
    p_e, p_w = cfg.position("sxm_e").index, cfg.position("sxm_w").index
    qpos = {q.name: q.position for q in cfg.queues}
    programs, starts, ends, sends = [], [], [], []
    arrive: list[int] = []  # cycles the pieces of the previous chip's output arrive
    words = 0
    for k, cs in enumerate(stages):
        b = ProgramBuilder(cfg)
        start = 0
        if k:  # receive the hidden state, piece by piece, into stage_in
            dst = cs.stage_in
            if dst is None or dst.n * dst.words != words:
                raise LpuError(f"chip {k}'s stage takes {0 if dst is None else dst.n} "
                               f"vector(s); chip {k - 1} sends {words // 4}")
            dist = qpos[dst.slice] - p_w
            for j, ta in enumerate(arrive):
                b.at(cfg.link_queue(RECV_LINK), ta, "recv", RECV_LINK, (0, E), w)
                tw = ta + 1 + dist  # the pieces flow east from the west edge
                b.at(dst.slice, tw, "write", dst.addr + j * w, (0, E), w)
                start = tw + 2  # the SRAM cycle is tw + 1; readable from tw + 2
        prog = cs.program
        for q in cfg.queues:
            for t, ins in _placed(prog, q.name):
                b.at(q.name, start + t, ins)
        end = start + timeline(cfg, prog).end
        out: Tensor = cs.logits
        sent = []
        if k < len(stages) - 1:  # send the output east, piece by piece
            words = out.n * out.words
            if words % w:
                raise LpuError(f"the hidden state's {words} words do not split into pieces "
                               f"of c2c_width {w}")
            dist = p_e - qpos[out.slice]
            t0 = end + 1  # the output's last SRAM write is readable from here
            arrive = []
            for j in range(words // w):
                b.at(out.slice, t0 + j, "read", out.addr + j * w, (0, E), w)
                ts = t0 + j + 1 + dist
                b.at(cfg.link_queue(SEND_LINK), ts, "send", SEND_LINK, (0, E), w)
                sent.append(ts)
                arrive.append(ts + cfg.c2c_latency)
        programs.append(b.program())
        starts.append(start)
        ends.append(end)
        sends.append(sent)
    return Linked(programs, starts, ends, sends, words)


# -- the host loop --------------------------------------------------------------------


@dataclass
class PipelineResult(StepResult):
    """A step on a system: the cycles are the system's (its last chip's end)."""

    starts: list = field(default_factory=list)  # the cycle each chip's stage starts
    ends: list = field(default_factory=list)  # the cycle after its last dispatch
    chip_cycles: list = field(default_factory=list)  # each chip's run, cycles
    link_words: int = 0


@dataclass
class PipelineDecoder:
    """Token-by-token decoding of one sequence on a golden system of `chips` chips."""

    model: object
    chip_cfg: ChipConfig
    chips: int
    context: int | None = None
    _sys: System = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.sysc = system_for(self.chip_cfg, self.chips)
        self.chip_cfg = self.sysc.chip
        self.context = self.context or self.model.config.max_position_embeddings
        check_model(self.model.config, self.chip_cfg, self.context)
        self.stages = partition(self.model.config, self.chips)
        self._sys = System(self.sysc)

    def compiled(self, pos: int) -> tuple[list[CompiledStep], Linked, float]:
        """The stages of the step at `pos`, joined; the seconds compiling (or loading)
        took."""
        if pos not in self._cache:
            t0 = time.perf_counter()
            stages = [compile_stage(self.model, self.chip_cfg, pos, self.context, s)
                      for s in self.stages]
            self._cache[pos] = (stages, link(self.chip_cfg, stages),
                                time.perf_counter() - t0)
        return self._cache[pos]

    def step(self, token: int, pos: int) -> PipelineResult:
        """Run the step at `pos` for `token` on every chip; the logits (float32 [vocab])
        are read from the last chip."""
        if isinstance(token, list | tuple):
            raise LpuError("a pipeline decodes one sequence (--batch 1)")
        stages, linked, compile_s = self.compiled(pos)
        chips = self._sys.chips
        t0 = time.perf_counter()
        for chip, cs in zip(chips, stages, strict=True):
            write_image(chip, cs.image, {t: token for t in cs.token})
        self._sys.load(linked.programs, names=[f"chip {k} step {pos}"
                                               for k in range(self.chips)])
        res = self._sys.run()
        out = stages[-1].logits
        logits = chips[-1].read_tensor(out.slice, out.addr, out.n, np.float32).reshape(-1)
        bound = analytic_bound(self.model.config, self.chip_cfg, pos)["bound_cycles"]
        return PipelineResult(token, pos, logits.copy(), max(r.cycles for r in res),
                              compile_s, time.perf_counter() - t0, bound,
                              starts=list(linked.starts), ends=list(linked.ends),
                              chip_cycles=[r.cycles for r in res], link_words=linked.words)
