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

With ``tp == chips`` (:func:`partition`) the chips are one tensor-parallel group
instead: every chip holds every layer, rank ``r`` its share of the query heads and FFN
columns, and the two all-reduces of a layer are ``xchg`` nodes of the step's own graph
(:meth:`lpu.tools.compiler.listsched.ListScheduler.place_xchg`: send east at ``t``,
receive from the west at ``t + c2c_latency``). The ranks' graphs are alike, so their
schedules are one program (checked); it runs on every chip from cycle 0, no joining.

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
from lpu.isa import E
from lpu.program import Program, ProgramBuilder
from lpu.system import SystemConfig, system

from .cache import cached_compile
from .graph import analytic_bound, critical_path, trace_step
from .kernels import Tensor, write_image
from .listsched import RECV_LINK, SEND_LINK, schedule_step
from .lower import CompiledStep, StepResult, check_model
from .sched import SchedError

__all__ = ["Stage", "partition", "system_for", "compile_stage", "link", "link_beat", "Linked",
           "PipelineDecoder", "BeatResult", "stage_critical_path", "SEND_LINK", "RECV_LINK",
           "MAX_CHIPS"]

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
    tp: tuple[int, int] = (0, 1)  # (rank, group size) of tensor parallelism

    def key(self) -> list:
        """What the stage's program depends on, for the compile cache."""
        return [self.layers.start, self.layers.stop, self.embed, self.head, *self.tp]

    def describe(self) -> str:
        parts = (["embedding"] if self.embed else []) + \
            [f"layers {self.layers.start}-{self.layers.stop - 1}"
             if len(self.layers) > 1 else f"layer {self.layers.start}"] + \
            (["norm + LM head"] if self.head else [])
        rank, g = self.tp
        split = f" (tensor-parallel rank {rank} of {g}: heads and FFN columns {rank + 1}/{g})" \
            if g > 1 else ""
        return f"chip {self.chip}: " + ", ".join(parts) + split


def partition(model_cfg, chips: int, tp: int = 1, vl: int | None = None) -> list[Stage]:
    """The model's layers cut into `chips` stages in order (see the module docstring);
    with ``tp == chips``, every chip a rank of one tensor-parallel group instead (every
    layer on every chip, its query heads and FFN columns split; `vl` the vector
    length, for the check that they split into whole vectors)."""
    L = model_cfg.num_hidden_layers
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise LpuError(f"--chips must be a whole number of at least 1, not {chips!r}")
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise LpuError(f"--tp must be a whole number of at least 1, not {tp!r}")
    if tp > 1:
        if chips % tp:
            raise LpuError(f"--tp {tp} --chips {chips}: the chips must make whole "
                           f"tensor-parallel groups of {tp}")
        heads, inter = model_cfg.num_attention_heads, model_cfg.intermediate_size
        if heads % tp or (vl and inter % (tp * vl)):
            raise LpuError(f"--tp {tp}: the model's {heads} query heads and intermediate "
                           f"size {inter} must split into {tp} equal parts (of whole "
                           f"{vl}-lane vectors)")
    n = chips // tp  # pipeline stages, a tensor-parallel group each
    if n > min(L, MAX_CHIPS):
        raise LpuError(f"--chips {chips}: a model of {L} layer(s) splits across at most "
                       f"{min(L, MAX_CHIPS)} pipeline stages (a layer a stage at least"
                       f"{'' if L <= MAX_CHIPS else f', and {MAX_CHIPS} at most'}), not {n}")
    base, extra = divmod(L, n)
    out, a = [], 0
    for k in range(n):
        b = a + base + (k < extra)
        out += [Stage(k * tp + r, range(a, b), k == 0, k == n - 1, (r, tp)) for r in range(tp)]
        a = b
    return out


def system_for(cfg: ChipConfig | str, chips: int, tp: int = 1) -> SystemConfig:
    """The system a pipeline of `chips` runs on: a ``ring`` of chips of `cfg` (one
    pipeline, or one tensor-parallel group), or ``rings`` of `tp` chips (groups in a
    pipeline: hops over links 3 to 2); a config without C2C links gets two, or four for
    ``rings`` (the config's default latency and width), named ``<name>+c2c``; one with
    links is used as it is (too few are refused by :func:`lpu.system.system`). A
    tensor-parallel group exchanges whole fp32 and int32 vectors (four streams) in one
    send: a derived config gets ``c2c_width`` 4, a given one with less is refused."""
    cfg = load_config(cfg)
    need = 4 if 1 < tp < chips else 2
    if cfg.c2c_links == 0:
        cfg = cfg.replace(c2c_links=need, name=f"{cfg.name}+c2c",
                          **({"c2c_width": 4} if tp > 1 else {}))
    if tp > 1 and cfg.c2c_width < 4:
        raise LpuError(f"--tp {tp}: config {cfg.name} has c2c_width {cfg.c2c_width}; a "
                       "tensor-parallel exchange sends a 32-bit vector (4 streams) at once: "
                       "set c2c_width: 4")
    where = f"--chips {chips}{f' --tp {tp}' if tp > 1 else ''} on {cfg.name}"
    if 1 < tp < chips:  # a ring a group, the groups a pipeline
        return system(cfg, chips, "rings", group=tp, source=where)
    return system(cfg, chips, "ring", source=where)


def compile_stage(model, chip: ChipConfig, pos: int, context: int, stage: Stage,
                  slot: tuple[int, int] = (0, 1)) -> CompiledStep:
    """Chip ``stage.chip``'s program of the step at `pos`, before :func:`link`: its
    input (``stage_in``) in SRAM at cycle 0, its output at ``logits`` (the hidden state
    unless the stage ends the model); from the disk cache when it is there. ``slot =
    (j, slots)``: the chip keeps `slots` sequences' KV caches and this is sequence
    `j`'s step (a wavefront, :meth:`PipelineDecoder.beat`). The input and output
    tensors are at the same words for every position and slot of a stage."""

    def compile_(model, chip, pos, context):
        try:
            st = schedule_step(model, chip, pos, context, stage=stage, slot=slot)
        except SchedError as e:
            raise LpuError(f"cannot compile {stage.describe()} for position {pos} with a "
                           f"context of {context} on {chip.name}: {e}") from None
        return CompiledStep(pos, st.program, st.image, st.logits, list(st.tokens),
                            st.seconds, st.instructions, st.sram_words, stage_in=st.stage_in)

    return cached_compile(model, chip, pos, context, compile=compile_,
                          step_type=CompiledStep, stage=stage.key() + list(slot))


def stage_critical_path(model, cfg: ChipConfig, pos: int, context: int, stage: Stage) -> int:
    """The critical path of a stage's graph (cycles, unlimited units,
    :func:`lpu.tools.compiler.graph.critical_path`): no schedule of the stage beats it."""
    g, _ = trace_step(model, cfg.vl, pos, context, stage=stage)
    return critical_path(g, cfg)[0]


# -- joining the stages ---------------------------------------------------------------


@dataclass
class Linked:
    """One step's programs for a system, joined by :func:`link`."""

    programs: list[Program]
    starts: list[int]  # the cycle each chip's stage program starts
    ends: list[int]  # the cycle after each chip's stage program's last dispatch
    sends: list[list[int]]  # per chip: the cycles it sends in (its output's pieces)
    words: int  # words (VL bytes each) sent over each link per step


def _send(b: ProgramBuilder, cfg: ChipConfig, out: Tensor, t0: int,
          lk: int = SEND_LINK) -> list[int]:
    """Read `out` from SRAM ``c2c_width`` words a cycle from `t0` onto the east streams
    and send each piece over :data:`SEND_LINK`; the cycles the pieces arrive at the
    other end."""
    w = cfg.c2c_width
    words = out.n * out.words
    if words % w:
        raise LpuError(f"the hidden state's {words} words do not split into pieces of "
                       f"c2c_width {w}")
    dist = cfg.position("sxm_e").index - cfg.position(out.slice).index
    arrive = []
    for j in range(words // w):
        b.at(out.slice, t0 + j, "read", out.addr + j * w, (0, E), w)
        ts = t0 + j + 1 + dist  # on the streams at t0 + j + 1, then east to the edge
        b.at(cfg.link_queue(lk), ts, "send", lk, (0, E), w)
        arrive.append(ts + cfg.c2c_latency)
    return arrive


def _recv(b: ProgramBuilder, cfg: ChipConfig, dst: Tensor, arrive: list[int],
          lk: int = RECV_LINK) -> int:
    """Receive the pieces arriving over :data:`RECV_LINK` at the cycles `arrive` into
    `dst`; the first cycle all of them are readable in SRAM."""
    w = cfg.c2c_width
    if len(arrive) * w != dst.n * dst.words:
        raise LpuError(f"{len(arrive) * w} words arrive for an input of {dst.n * dst.words}")
    dist = cfg.position(dst.slice).index - cfg.position("sxm_w").index
    ready = 0
    for j, ta in enumerate(arrive):
        b.at(cfg.link_queue(lk), ta, "recv", lk, (0, E), w)
        tw = ta + 1 + dist  # on the streams at the west edge at ta + 1, then east
        b.at(dst.slice, tw, "write", dst.addr + j * w, (0, E), w)
        ready = tw + 2  # SRAM written at tw + 1, readable from tw + 2
    return ready


def _dispatches(cfg: ChipConfig, prog: Program, queue: str | None = None) -> list:
    """`prog`'s slice instructions (of `queue`, or all) at their dispatch cycles, as the
    ICU dispatches them (:func:`lpu.golden.schedule.timeline`)."""
    return [d for d in timeline(cfg, prog).dispatches
            if queue is None or cfg.queues[d.queue].name == queue]


def _place(b: ProgramBuilder, cfg: ChipConfig, prog: Program, start: int) -> int:
    """Every instruction of `prog` dispatched `start` cycles late; the cycle after its
    last dispatch."""
    tl = timeline(cfg, prog)
    for d in tl.dispatches:
        b.at(cfg.queues[d.queue].name, start + d.t, d.instr)
    return start + tl.end


def _merge(chains: list[Linked], chips: int, tp: int) -> Linked:
    """The ranks' chains through the stages (``chains[r]``: rank ``r`` of every stage)
    as one system's programs, chip ``s * tp + r`` in order."""
    order = [(k // tp, k % tp) for k in range(chips)]
    return Linked([chains[r].programs[s] for s, r in order],
                  [chains[r].starts[s] for s, r in order],
                  [chains[r].ends[s] for s, r in order],
                  [chains[r].sends[s] for s, r in order], chains[0].words)


def link(cfg: ChipConfig, stages: list[CompiledStep], links: tuple[int, int] = (SEND_LINK,
         RECV_LINK)) -> Linked:
    """The programs of one step on a system of ``len(stages)`` chips of `cfg` (see the
    module docstring): chip ``k`` sends ``stages[k].logits`` to chip ``k + 1``, which
    receives it into ``stages[k + 1].stage_in``; `links`: the link each sends over and
    the one the next receives on."""
    programs, starts, ends, sends = [], [], [], []
    arrive: list[int] = []
    words = 0
    for k, cs in enumerate(stages):
        b = ProgramBuilder(cfg)
        start = _recv(b, cfg, cs.stage_in, arrive, links[1]) if k else 0
        end = _place(b, cfg, cs.program, start)
        sent = []
        if k < len(stages) - 1:  # the output's last SRAM write is readable from end + 1
            arrive = _send(b, cfg, cs.logits, end + 1, links[0])
            sent = [t - cfg.c2c_latency for t in arrive]
            words = cs.logits.n * cs.logits.words
        programs.append(b.program())
        starts.append(start)
        ends.append(end)
        sends.append(sent)
    return Linked(programs, starts, ends, sends, words)


def link_beat(cfg: ChipConfig, now: list[CompiledStep | None],
              before: list[CompiledStep | None],
              links: tuple[int, int] = (SEND_LINK, RECV_LINK)) -> Linked:
    """The programs of one beat of a wavefront: chip ``k`` runs ``now[k]`` (None: no
    stage this beat); first every chip whose stage takes an input receives it from
    chip ``k - 1``, which sends the output of the stage it ran the beat before
    (``before[k - 1]``, still in its SRAM), all from cycle 0; then every chip's stage
    starts in the same cycle, the first after the last input is readable. `links`: the
    link each chip sends over and the one the next receives on."""
    n = len(now)
    bs = [ProgramBuilder(cfg) for _ in range(n)]
    start, words = 0, 0
    sends: list[list[int]] = [[] for _ in range(n)]
    for k in range(1, n):
        if now[k] is None:
            continue
        prev = before[k - 1]
        if prev is None:
            raise LpuError(f"chip {k} has a stage this beat, but chip {k - 1} ran none "
                           "the beat before")
        arrive = _send(bs[k - 1], cfg, prev.logits, 0, links[0])
        sends[k - 1] = [t - cfg.c2c_latency for t in arrive]
        start = max(start, _recv(bs[k], cfg, now[k].stage_in, arrive, links[1]))
        words = prev.logits.n * prev.logits.words
    ends = [_place(b, cfg, cs.program, start) if cs is not None else start
            for b, cs in zip(bs, now, strict=True)]
    return Linked([b.program() for b in bs], [start] * n, ends, sends, words)


#: The links of the hops between the rings of a ``rings`` system (east, west).
RING_HOP_LINKS = (3, 2)


def _groups(cfg: ChipConfig, stages: list[CompiledStep], tp: int) -> Linked:
    """The programs of tensor-parallel groups of `tp` ranks (chips ``s * tp + r``).
    Inside a group every rank's program must be the same (the ranks' graphs are alike,
    so their schedules are: every exchange's send meets the neighbour's receive). One
    group runs from cycle 0; groups in a pipeline are joined rank by rank as
    :func:`link` joins stages, over :data:`RING_HOP_LINKS`, so the ranks of a group
    start together."""
    n = len(stages) // tp
    for s in range(n):
        first = stages[s * tp].program
        for r in range(1, tp):
            if stages[s * tp + r].program.queues != first.queues:
                raise LpuError(f"stage {s}: tensor-parallel rank {r}'s program differs from "
                               "rank 0's: the exchanges would not meet (a compiler bug)")
    if n == 1:  # the words each rank sends: its exchanges
        sends = [[d.t for d in _dispatches(cfg, cs.program, cfg.link_queue(SEND_LINK))]
                 for cs in stages]
        ends = [timeline(cfg, cs.program).end for cs in stages]
        return Linked([cs.program for cs in stages], [0] * tp, ends, sends,
                      len(sends[0]) * cfg.c2c_width)
    return _merge([link(cfg, stages[r::tp], RING_HOP_LINKS) for r in range(tp)],
                  len(stages), tp)


# -- the host loop --------------------------------------------------------------------


@dataclass
class PipelineResult(StepResult):
    """A step on a system: the cycles are the system's (its last chip's end)."""

    starts: list = field(default_factory=list)  # the cycle each chip's stage starts
    ends: list = field(default_factory=list)  # the cycle after its last dispatch
    chip_cycles: list = field(default_factory=list)  # each chip's run, cycles
    link_words: int = 0


@dataclass
class BeatResult:
    """One beat of a wavefront: what the last chip finished (``(sequence, position)``,
    or None), its logits, the beat's cycles and where they went."""

    done: tuple[int, int] | None
    logits: np.ndarray | None
    cycles: int
    compile_s: float
    run_s: float
    start: int  # the cycle every chip's stage started in
    ends: list  # the cycle after each chip's last dispatch
    link_words: int


@dataclass
class PipelineDecoder:
    """Token-by-token decoding on a golden system of `chips` chips: one sequence a
    step (:meth:`step`), or `slots` sequences in flight (:meth:`beat`: each chip keeps
    every sequence's KV cache of its layers)."""

    model: object
    chip_cfg: ChipConfig
    chips: int
    context: int | None = None
    slots: int = 1
    tp: int = 1  # tensor parallelism: every chip a rank of one group (tp == chips)
    _sys: System = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.context = self.context or self.model.config.max_position_embeddings
        cfg = load_config(self.chip_cfg)
        check_model(self.model.config, cfg, self.context)
        self.stages = partition(self.model.config, self.chips, self.tp, cfg.vl)
        self.sysc = system_for(cfg, self.chips, self.tp)
        self.chip_cfg = self.sysc.chip
        n = self.chips // self.tp
        if not 1 <= self.slots <= n:
            raise LpuError(f"--batch {self.slots}: a pipeline of {n} stage(s) keeps 1 to "
                           f"{n} sequence(s) in flight (one a stage)")
        self._sys = System(self.sysc)
        self._before: list = [None] * self.chips  # the stages of the last beat
        self._beats = 0

    def stage(self, k: int, pos: int, seq: int = 0) -> CompiledStep:
        """Chip `k`'s stage program for sequence `seq` at `pos`."""
        return compile_stage(self.model, self.chip_cfg, pos, self.context, self.stages[k],
                             (seq, self.slots))

    def compiled(self, pos: int) -> tuple[list[CompiledStep], Linked, float]:
        """The stages of the step at `pos` (sequence 0), joined; the seconds compiling
        (or loading) took."""
        if pos not in self._cache:
            t0 = time.perf_counter()
            stages = [self.stage(k, pos) for k in range(self.chips)]
            joined = link(self.chip_cfg, stages) if self.tp == 1 else \
                _groups(self.chip_cfg, stages, self.tp)
            self._cache[pos] = (stages, joined, time.perf_counter() - t0)
        return self._cache[pos]

    def _run(self, programs, images, tokens, name):
        chips = self._sys.chips
        for k, cs in enumerate(images):
            if cs is not None:
                write_image(chips[k], cs.image, {t: tokens for t in cs.token})
        self._sys.load(programs, names=[f"chip {k} {name}" for k in range(self.chips)])
        return self._sys.run()

    def _logits(self, cs: CompiledStep) -> np.ndarray:
        out = cs.logits
        return self._sys.chips[-1].read_tensor(out.slice, out.addr, out.n,
                                               np.float32).reshape(-1).copy()

    def step(self, token: int, pos: int) -> PipelineResult:
        """Run the step at `pos` for `token` on every chip in turn; the logits (float32
        [vocab]) are read from the last chip."""
        if isinstance(token, list | tuple):
            raise LpuError("PipelineDecoder.step decodes one sequence; a wavefront of "
                           "several runs beat by beat (beat)")
        stages, linked, compile_s = self.compiled(pos)
        t0 = time.perf_counter()
        res = self._run(linked.programs, stages, token, f"step {pos}")
        bound = analytic_bound(self.model.config, self.chip_cfg, pos)["bound_cycles"]
        return PipelineResult(token, pos, self._logits(stages[-1]), max(r.cycles for r in res),
                              compile_s, time.perf_counter() - t0, bound,
                              starts=list(linked.starts), ends=list(linked.ends),
                              chip_cycles=[r.cycles for r in res], link_words=linked.words)

    @property
    def n_stages(self) -> int:
        """Pipeline stages (a tensor-parallel group of ``tp`` chips each)."""
        return self.chips // self.tp

    def beat(self, work: list[tuple[int, int] | None], token: int | None) -> BeatResult:
        """One beat of a wavefront: stage ``s`` (every rank of its group) runs its part
        of ``work[s] = (sequence, position)`` (None: nothing), stage ``s``'s work being
        stage ``s - 1``'s of the beat before; `token` is the token of stage 0's work.
        Every chip runs at once; the last chip's logits, if it ran, are read."""
        n, tp = self.n_stages, self.tp
        if len(work) != n:
            raise LpuError(f"a beat gives one piece of work a stage ({n}), not {len(work)}")
        t0 = time.perf_counter()
        now = [None if work[k // tp] is None else
               self.stage(k, work[k // tp][1], work[k // tp][0]) for k in range(self.chips)]
        if tp == 1:
            linked = link_beat(self.chip_cfg, now, self._before)
        else:  # each rank's chain through the stages, as one pipeline
            linked = _merge([link_beat(self.chip_cfg, now[r::tp], self._before[r::tp],
                                       RING_HOP_LINKS) for r in range(tp)], self.chips, tp)
            for k in range(self.chips):  # a group's ranks: one program, started together
                if now[k] is not None and (linked.programs[k].queues
                                           != linked.programs[k - k % tp].queues):
                    raise LpuError(f"chip {k}'s beat program differs from its group's rank "
                                   "0 (a compiler bug)")
        compile_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        res = self._run(linked.programs, now, token, f"beat {self._beats}")
        self._before, self._beats = now, self._beats + 1
        last = work[-1]
        return BeatResult(last, None if last is None else self._logits(now[-1]),
                          max(r.cycles for r in res), compile_s, time.perf_counter() - t1,
                          linked.starts[0], list(linked.ends), linked.words)
