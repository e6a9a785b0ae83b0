"""The SXM slice: whole-vector lane moves (shift, rot, bcast, perm, transpose).

Timing contract (docs/timing.md)
--------------------------------
An instruction dispatched at cycle ``t`` reaches tile (superlane) ``k`` at ``t + k``,
which reads its part of the source streams (and of the ``perm`` map) then. The
result's superlane ``k`` is written at ``t + k + S + 1`` (functional delay ``S + 1``).
A new instruction may dispatch every cycle.

==================================  =====================================================
instruction                         result lane ``i`` of each of the ``count`` streams
==================================  =====================================================
``shift dst, src, n, count``        ``src[i - n]``, 0 where ``i - n`` is outside the vector
``rot dst, src, n, count``          ``src[(i - n) mod VL]``
``bcast dst, src, lane, count``     ``src[lane]``
``perm dst, src, map, count``       ``src[map[i]]``, ``map`` uint16 on streams map, map+1
``transpose dst, src``              stream ``i``, lane ``j`` = src stream ``j``, lane ``i``
                                    (VL streams; only on configs with ``streams >= VL``)
==================================  =====================================================

Dynamic errors (``error``, lowest superlane first): ``EMPTY_READ`` when a source or map
stream's valid bit is low on tile ``k`` (cycle ``t + k``); ``RANGE`` when a ``perm``
map entry of superlane ``k`` is not below VL (cycle ``t + k``).

Datapath
--------
An instruction passes these stages (``|`` is a register)::

    tile k, t+k          t+k .. t+S-1          t+S                   t+S+1+k
    select its operand | deskew: S-1-k regs | collect | crossbar | result | reskew: k regs
    streams (valid?)                          (one register each side of the crossbar)

The operand of superlane ``k`` waits ``S - 1 - k`` registers so that the whole
vector is aligned in cycle ``t + S - 1``; the crossbar (one VL:1 byte multiplexer per
result lane, or plain wiring for ``transpose``) sits between two registers; superlane
``k`` of the result then waits ``k`` more registers to leave on its own tile.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from lpu.config import ChipConfig
from lpu.isa import Direction, Instruction, Opcode

from .interface import ErrorCode, SlicePorts, delayed, shift_words, superlane_dispatch

__all__ = ["SxmSlice", "SXM_OPCODES"]

MAX_STREAMS = 4  # streams moved by shift, rot, bcast, perm

#: The opcodes the SXM executes.
SXM_OPCODES = (Opcode.SHIFT, Opcode.ROT, Opcode.BCAST, Opcode.PERM, Opcode.TRANSPOSE)


class SxmSlice(wiring.Component):
    """One SXM slice (see the module docstring).

    Parameters
    ----------
    cfg : ChipConfig

    Ports
    -----
    rd, wr, dispatch, error : see :func:`lpu.hdl.interface.SlicePorts` (one queue).
    """

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"Chip configuration must be a ChipConfig, not {cfg!r}")
        self.cfg = cfg
        super().__init__(SlicePorts(cfg, 1))

    @property
    def width(self) -> int:
        """Streams one instruction can move: 4, or VL if the config fits a transpose."""
        cfg = self.cfg
        return cfg.vl if cfg.vl <= cfg.streams and cfg.vl > MAX_STREAMS else MAX_STREAMS

    @property
    def has_transpose(self) -> bool:
        return self.cfg.vl <= self.cfg.streams

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        S, L, NS, VL = cfg.superlanes, cfg.lanes, cfg.streams, cfg.vl
        WS = self.width
        lane_bits = 8 * L

        # -- the instruction moves north one tile per cycle ----------------------------------
        valid, ins = superlane_dispatch(m, self.dispatch[0], S)

        # -- tile k, cycle t+k: select the operand streams, check them, deskew -------------
        errors = []
        aligned_src, aligned_map = [], []
        for k in range(S):
            op = ins[k].opcode
            sx, px = ins[k].payload.sxm, ins[k].payload.perm
            is_sxm = Signal(name=f"t{k}_sxm")
            is_perm = Signal(name=f"t{k}_perm")
            m.d.comb += [is_sxm.eq(valid[k] & _is_sxm(op)),
                         is_perm.eq(valid[k] & (op == Opcode.PERM))]
            n_src = Signal(range(WS + 1), name=f"t{k}_nsrc")
            m.d.comb += n_src.eq(sx.count + 1)
            if self.has_transpose:
                with m.If(op == Opcode.TRANSPOSE):
                    m.d.comb += n_src.eq(VL)
            src, src_ok = self._streams(m, k, sx.src, WS, f"t{k}_src")
            mp, mp_ok = self._streams(m, k, px.map, 2, f"t{k}_map")
            need = Signal(WS, name=f"t{k}_need")
            m.d.comb += need.eq(Const((1 << WS) - 1, WS) >> (WS - n_src).as_unsigned())
            empty = Signal(name=f"t{k}_empty")
            m.d.comb += empty.eq((is_sxm & (need & ~src_ok).any())
                                 | (is_perm & ~mp_ok.all()))
            bad = []
            for lane in range(L):
                entry = Cat(mp[8 * lane:8 * lane + 8], mp[lane_bits + 8 * lane:][:8])
                bad.append(entry >= VL)
            out_of_range = Signal(name=f"t{k}_range")
            m.d.comb += out_of_range.eq(is_perm & Cat(*bad).any())
            errors.append([(empty, ErrorCode.EMPTY_READ), (out_of_range, ErrorCode.RANGE)])
            aligned_src.append(delayed(m, S - 1 - k, f"t{k}_src", src))
            aligned_map.append(delayed(m, S - 1 - k, f"t{k}_map", mp))

        # -- cycle t+S-1 -> t+S: collect the whole vector and the instruction ----------------
        top_v, top = valid[S - 1], ins[S - 1]
        c_valid = Signal(name="col_valid")
        c_ins = Signal(Instruction, name="col_ins")
        c_src = [Signal(8 * VL, name=f"col_src{c}") for c in range(WS)]
        c_map = Signal(16 * VL, name="col_map")
        m.d.sync += c_ins.eq(top)
        m.d.sync += c_valid.eq(top_v & _is_sxm(top.opcode))
        for c in range(WS):
            m.d.sync += c_src[c].eq(Cat(*(a[c * lane_bits:(c + 1) * lane_bits]
                                          for a in aligned_src)))
        lo = Cat(*(a[:lane_bits] for a in aligned_map))
        hi = Cat(*(a[lane_bits:] for a in aligned_map))
        m.d.sync += c_map.eq(Cat(*(Cat(lo[8 * i:8 * i + 8], hi[8 * i:8 * i + 8])
                                   for i in range(VL))))

        # -- cycle t+S: the crossbar --------------------------------------------------------
        op = c_ins.opcode
        n = c_ins.payload.sxm.n
        idx_bits = max(1, (VL - 1).bit_length())
        x_src = [Signal(8 * VL, name=f"xbar_src{c}") for c in range(WS)]
        for i in range(VL):
            j = Signal(range(-VL, 2 * VL + 1), name=f"xbar_j{i}")
            zero = Signal(name=f"xbar_zero{i}")
            with m.Switch(op):
                with m.Case(Opcode.SHIFT):
                    m.d.comb += [j.eq(i - n), zero.eq((j < 0) | (j >= VL))]
                with m.Case(Opcode.ROT):
                    diff = i - n
                    m.d.comb += j.eq(Mux(diff < 0, diff + VL, Mux(diff >= VL, diff - VL, diff)))
                with m.Case(Opcode.BCAST):
                    m.d.comb += j.eq(n.as_unsigned()[:9])
                with m.Case(Opcode.PERM):
                    m.d.comb += j.eq(c_map[16 * i:16 * i + 16])
            sel = j.as_unsigned()[:idx_bits]
            for c in range(WS):
                m.d.comb += x_src[c][8 * i:8 * i + 8].eq(
                    Mux(zero, 0, c_src[c].word_select(sel, 8)))
        result = [Signal(8 * VL, name=f"xbar_out{c}") for c in range(WS)]
        if self.has_transpose:
            with m.If(op == Opcode.TRANSPOSE):
                for i in range(VL):  # stream i, lane j = src stream j, lane i
                    m.d.comb += result[i].eq(Cat(*(c_src[j][8 * i:8 * i + 8]
                                                   for j in range(VL))))
            with m.Else():
                m.d.comb += [result[c].eq(x_src[c]) for c in range(WS)]
        else:
            m.d.comb += [result[c].eq(x_src[c]) for c in range(WS)]

        # -- cycle t+S -> t+S+1: the result register; superlane k leaves k cycles later ----
        r_valid = Signal(name="res_valid")
        r_stream = Signal(5, name="res_stream")
        r_west = Signal(name="res_west")
        r_n = Signal(range(WS + 1), name="res_n")
        r_data = [Signal(8 * VL, name=f"res{c}") for c in range(WS)]
        n_dst = Signal(range(WS + 1), name="xbar_n")
        dst = c_ins.payload.sxm.dst
        m.d.comb += n_dst.eq(c_ins.payload.sxm.count + 1)
        if self.has_transpose:
            with m.If(op == Opcode.TRANSPOSE):
                m.d.comb += n_dst.eq(VL)
        m.d.sync += [r_valid.eq(c_valid), r_stream.eq(dst.stream),
                     r_west.eq(dst.dir == Direction.WEST), r_n.eq(n_dst)]
        m.d.sync += [r_data[c].eq(result[c]) for c in range(WS)]
        for k in range(S):
            part = Cat(*(r_data[c][k * lane_bits:(k + 1) * lane_bits] for c in range(WS)))
            part = delayed(m, k, f"t{k}_out", part)
            o_valid, o_stream, o_west, o_n = (delayed(m, k, f"t{k}_out_{x.name}", x)
                                              for x in (r_valid, r_stream, r_west, r_n))
            mask = Signal(NS, name=f"t{k}_wmask")
            shifted = Signal(NS * lane_bits, name=f"t{k}_wdata")
            m.d.comb += [
                mask.eq((Const((1 << WS) - 1, WS) >> (WS - o_n).as_unsigned()) << o_stream),
                shifted.eq(shift_words(part, o_stream, lane_bits, NS)),
            ]
            for west, out, we in ((0, self.wr.e[k], self.wr.e_we[k]),
                                  (1, self.wr.w[k], self.wr.w_we[k])):
                here = o_valid & (o_west == west)
                m.d.comb += [we.eq(Mux(here, mask, 0)), out.eq(Mux(here, shifted, 0))]

        for k in reversed(range(S)):  # the lowest superlane first
            for cond, code in reversed(errors[k]):
                with m.If(cond):
                    m.d.comb += [self.error.valid.eq(1), self.error.code.eq(code),
                                 self.error.superlane.eq(k)]
        return m

    def _streams(self, m, k, ref, width, name):
        """`width` consecutive streams from `ref` arriving at tile k: (data, valid bits)."""
        cfg = self.cfg
        lane_bits = 8 * cfg.lanes
        west = ref.dir == Direction.WEST
        rd = self.rd
        data = Signal(width * lane_bits, name=name)
        ok = Signal(width, name=name + "_valid")
        m.d.comb += [
            data.eq(shift_words(Mux(west, rd.w[k].as_value(), rd.e[k].as_value()),
                                ref.stream, lane_bits, width, right=True)),
            ok.eq(Mux(west, rd.w_valid[k].as_value(), rd.e_valid[k].as_value()) >> ref.stream),
        ]
        return data, ok


def _is_sxm(opcode):
    return Cat(*(opcode == op for op in SXM_OPCODES)).any()

