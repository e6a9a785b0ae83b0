"""The ICU: one instruction memory and dispatcher per queue.

Timing contract (docs/timing.md section 1, as :mod:`lpu.golden.schedule` implements it)
--------------------------------------------------------------------------------------
*Start and cycle 0.* ``start`` high during a cycle ``c`` (re)starts the queue from
instruction 0; cycle 0 is the cycle after, ``c + 1``: the first instruction, if it is
a slice instruction, is dispatched in cycle 0. (The chip top raises every queue's
``start`` in the cycle the host writes the start bit, so all queues start together.)

Each cycle a queue *reaches* at most one instruction word:

==============================  ===========================================================
word reached in cycle ``t``     effect
==============================  ===========================================================
slice instruction               dispatched in ``t``; the next word is reached in ``t + 1``
``nop n``                       next word reached in ``t + n`` (``n = 0`` counts as 1)
``repeat n, d, step``           (reached in ``t0 + 1``, after a slice instruction
                                dispatched in ``t0``) copies of that instruction are
                                dispatched in ``t0 + i*d``, ``i = 1..n``, the ``i``-th with
                                its address (``read``/``write``/``gather``) or row (``lw``)
                                plus ``i*step`` (the field wraps); next word in
                                ``t0 + n*d + 1``. The first copy may be in ``t`` itself
                                (``d = 1``). ``d = 0`` counts as 1; ``n = 0`` issues
                                nothing and goes on in ``t + 1``
``sync``                        parks the queue; it reaches its next word in the cycle
                                after the first cycle ``t' >= t`` in which any queue
                                (``notify_in``) dispatches ``notify``
``notify``                      raises ``notify`` in ``t``; next word in ``t + 1``
==============================  ===========================================================

A ``repeat`` that does not follow a slice instruction (illegal, rejected by the static
checker) takes its time but dispatches nothing. The queue is *done* when it has
reached every word of its program (``length`` words); a trailing ``nop`` or a final
``sync`` leaves it done. A done queue stays idle until the next ``start``, whatever
the host writes meanwhile (a new program and length).

Instruction memory
------------------
``cfg.imem_words`` 32-bit words (:class:`amaranth.lib.memory.Memory`) written by the
host through :attr:`Dispatcher.load`, with the program length; its power-up contents
are zero, or the words given to :meth:`Icu.preload` (simulation only: a bench's first
program without the bus writes, as :meth:`lpu.hdl.mem.MemSlice.preload` does for SRAM;
the length is still written by the host). The read port is
synchronous: its address is the *next* value of the program counter, computed
combinationally, so the word at the program counter is on the read data in every
cycle without a bubble (the start cycle reads word 0 for cycle 0).

Ports
-----
``start`` : In(1)
    Start from instruction 0; cycle 0 is the next cycle.
``load`` : In(:class:`ImemLoad`)
    Host writes: ``en`` writes ``data`` at ``addr``; ``len_en`` sets the length.
``dispatch`` : Out(:class:`~lpu.hdl.interface.Dispatch`)
    The instruction handed to superlane 0 of the slice this cycle (word as issued,
    stepped for repeat copies).
``index`` : Out
    The instruction's index in the queue (a repeat copy: the repeat's index).
``notify`` : Out(1), ``notify_in`` : In(1)
    This queue dispatches ``notify`` this cycle; some queue does (the OR of all
    ``notify`` outputs, this one's included).
``done``, ``parked`` : Out(1)
    Nothing more to dispatch (also before the first start); parked at a ``sync``.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.isa import OPS, Instruction, Opcode

from .interface import Dispatch

__all__ = ["ImemLoad", "Dispatcher", "Icu"]

_ICU = (Opcode.NOP, Opcode.REPEAT, Opcode.SYNC, Opcode.NOTIFY)


class ImemLoad(wiring.Signature):
    """Host writes into a queue's instruction memory and length register.

    ``en`` writes ``data`` at ``addr``; ``len_en`` sets the program length to ``data``.
    With ``queues=True`` (the whole :class:`Icu`) a ``queue`` member selects the queue.
    """

    def __init__(self, cfg: ChipConfig, *, queues: bool = False):
        members = {
            "addr": Out(range(cfg.imem_words)),
            "data": Out(32),
            "en": Out(1),
            "len_en": Out(1),
        }
        if queues:
            members["queue"] = Out(range(max(2, len(cfg.queues))))
        super().__init__(members)


class Dispatcher(wiring.Component):
    """One queue of the ICU (see the module docstring for its timing)."""

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"Dispatcher needs a ChipConfig, not {cfg!r}")
        self._cfg = cfg
        self.init: list[int] = []  # the instruction memory's power-up words (Icu.preload)
        super().__init__({
            "start": In(1),
            "load": In(ImemLoad(cfg)),
            "dispatch": Out(Dispatch()),
            "index": Out(range(cfg.imem_words)),
            "notify": Out(1),
            "notify_in": In(1),
            "done": Out(1),
            "parked": Out(1),
        })

    @property
    def cfg(self) -> ChipConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        words = cfg.imem_words

        m.submodules.imem = imem = Memory(shape=32, depth=words, init=self.init)
        wp = imem.write_port()
        rp = imem.read_port()
        m.d.comb += [wp.addr.eq(self.load.addr), wp.data.eq(self.load.data),
                     wp.en.eq(self.load.en)]

        length = Signal(range(words + 1))
        with m.If(self.load.len_en):
            m.d.sync += length.eq(self.load.data)

        pc = Signal(range(words + 1))
        active = Signal()
        wait = Signal(20)  # cycles left of a nop
        parked = Signal()
        # the last slice instruction dispatched, for repeat
        last = Signal(32)
        last_ok = Signal()
        # repeat in progress
        repeating = Signal()
        rep_left = Signal(12)
        rep_cnt = Signal(8)
        rep_d = Signal(8)
        rep_step = Signal(signed(6))
        rep_word = Signal(32)

        def comb(name, value, shape=1):
            sig = Signal(shape, name=name)
            m.d.comb += sig.eq(value)
            return sig

        cur = Instruction(rp.data)
        op = cur.opcode
        at_end = comb("at_end", pc >= length)
        exec_now = comb("exec_now", active & ~repeating & ~parked & (wait == 0) & ~at_end)
        is_icu = comb("is_icu", (op == Opcode.NOP) | (op == Opcode.REPEAT) |
                      (op == Opcode.SYNC) | (op == Opcode.NOTIFY))
        slice_now = comb("slice_now", exec_now & ~is_icu)

        # -- repeat: the first cycle takes its operands from the word, later ones from
        #    the registers
        rpt = cur.payload.repeat
        first = comb("rep_first", exec_now & (op == Opcode.REPEAT))
        d_eff = Mux(rpt.d == 0, 1, rpt.d)
        r_cnt = comb("r_cnt", Mux(first, d_eff - 1, rep_cnt), 8)
        r_left = comb("r_left", Mux(first, rpt.n, rep_left), 12)
        r_word = comb("r_word", Mux(first, last, rep_word), 32)
        r_step = comb("r_step", Mux(first, rpt.step, rep_step), signed(6))
        r_d = comb("r_d", Mux(first, d_eff, rep_d), 8)
        in_rep = comb("in_rep", first | (active & repeating))
        copy_now = comb("copy_now", in_rep & (r_cnt == 0) & (r_left != 0))
        rep_done = comb("rep_done", in_rep & ((r_left == 0) | (copy_now & (r_left == 1))))

        # the copy: the step field of the previous instruction plus step (from OPS)
        base = Instruction(r_word)
        copy = Instruction(Signal(32, name="copy"))
        m.d.comb += copy.eq(base)
        with m.Switch(base.opcode):
            for opc, info in OPS.items():
                if info.steps is None:
                    continue
                with m.Case(opc):
                    fld = getattr(getattr(copy.payload, info.fmt), info.steps)
                    src = getattr(getattr(base.payload, info.fmt), info.steps)
                    m.d.comb += fld.eq(src + r_step)

        with m.If(in_rep):
            with m.If(rep_done):
                m.d.sync += repeating.eq(0)
            with m.Else():
                m.d.sync += repeating.eq(1)
                with m.If(copy_now):
                    m.d.sync += [rep_cnt.eq(r_d - 1), rep_left.eq(r_left - 1),
                                 rep_word.eq(copy)]
                with m.Else():
                    m.d.sync += [rep_cnt.eq(r_cnt - 1), rep_left.eq(r_left),
                                 rep_word.eq(r_word)]
                m.d.sync += [rep_d.eq(r_d), rep_step.eq(r_step)]

        # -- sync / notify
        sync_now = exec_now & (op == Opcode.SYNC)
        park_now = sync_now | (active & parked)
        with m.If(park_now):
            m.d.sync += parked.eq(~self.notify_in)
        m.d.comb += self.notify.eq(exec_now & (op == Opcode.NOTIFY))

        # -- nop
        with m.If(exec_now & (op == Opcode.NOP)):
            nop_n = cur.payload.nop.n
            m.d.sync += wait.eq(Mux(nop_n > 1, nop_n - 1, 0))
        with m.Elif(active & (wait != 0)):
            m.d.sync += wait.eq(wait - 1)

        # -- the last slice instruction, for repeat
        with m.If(slice_now):
            m.d.sync += [last.eq(rp.data), last_ok.eq(1)]
        with m.Elif(exec_now & ~first):  # nop, sync, notify: a repeat may not follow
            m.d.sync += last_ok.eq(0)
        with m.Elif(rep_done):
            m.d.sync += last_ok.eq(0)

        # -- program counter: its next value addresses the instruction memory
        advance = (exec_now & (op != Opcode.REPEAT)) | rep_done
        pc_next = Signal.like(pc)
        with m.If(self.start):
            m.d.comb += pc_next.eq(0)
        with m.Elif(advance):
            m.d.comb += pc_next.eq(pc + 1)
        with m.Else():
            m.d.comb += pc_next.eq(pc)
        m.d.sync += pc.eq(pc_next)
        m.d.comb += rp.addr.eq(pc_next)

        # a finished queue stays idle (a new length does not wake it) until the next start
        with m.If(at_end & ~repeating):
            m.d.sync += active.eq(0)
        with m.If(self.start):
            m.d.sync += [active.eq(1), wait.eq(0), parked.eq(0), repeating.eq(0),
                         last_ok.eq(0)]

        # -- outputs
        m.d.comb += [
            self.dispatch.valid.eq(slice_now | (copy_now & last_ok)),
            self.dispatch.word.eq(Mux(copy_now, copy.as_value(), rp.data)),
            self.index.eq(pc),
            self.done.eq(~active | at_end),
            self.parked.eq(active & parked & ~at_end),
        ]
        return m


class Icu(wiring.Component):
    """Every queue's :class:`Dispatcher`, started together, with the shared notify line.

    Ports
    -----
    ``start`` : In(1)
        Start every queue; cycle 0 is the next cycle.
    ``load`` : In(ImemLoad(cfg, queues=True))
        Host writes, to the queue ``load.queue``.
    ``dispatch[q]``, ``index[q]`` : Out
        Queue ``q``'s dispatch (to its slice) and the instruction index (for the trace).
    ``done`` : Out(1)
        Every queue has reached the end of its program.
    ``parked`` : Out(len(cfg.queues))
        Bit ``q``: queue ``q`` is parked at a ``sync``.
    """

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"Icu needs a ChipConfig, not {cfg!r}")
        self._cfg = cfg
        self._init: dict[int, list[int]] = {}
        n = len(cfg.queues)
        super().__init__({
            "start": In(1),
            "load": In(ImemLoad(cfg, queues=True)),
            "dispatch": Out(Dispatch()).array(n),
            "index": Out(range(cfg.imem_words)).array(n),
            "done": Out(1),
            "parked": Out(n),
        })

    def preload(self, program) -> None:
        """Power-up contents of the instruction memories: every queue's words of
        `program` (a :class:`lpu.program.Program`), before elaboration. The lengths are
        not set: the host writes them."""
        for q in self._cfg.queues:
            words = [int(w) for w in program.queues.get(q.name, [])]
            if len(words) > self._cfg.imem_words:
                raise ValueError(f"queue {q.name}: {len(words)} words do not fit the "
                                 f"instruction memory ({self._cfg.imem_words})")
            self._init[q.index] = words

    def elaborate(self, platform):
        m = Module()
        queues = self._cfg.queues
        notify = Signal()
        any_notify = 0
        all_done = 1
        for q in queues:
            dp = Dispatcher(self._cfg)
            dp.init = self._init.get(q.index, [])
            m.submodules[f"q_{q.name}"] = dp
            m.d.comb += [
                dp.start.eq(self.start),
                dp.load.addr.eq(self.load.addr),
                dp.load.data.eq(self.load.data),
                dp.load.en.eq(self.load.en & (self.load.queue == q.index)),
                dp.load.len_en.eq(self.load.len_en & (self.load.queue == q.index)),
                dp.notify_in.eq(notify),
                self.parked[q.index].eq(dp.parked),
                self.index[q.index].eq(dp.index),
            ]
            wiring.connect(m, dp.dispatch, wiring.flipped(self.dispatch[q.index]))
            any_notify = any_notify | dp.notify
            all_done = all_done & dp.done
        m.d.comb += [notify.eq(any_notify), self.done.eq(all_done)]
        return m
