"""The C2C slice (chip-to-chip links, ISA 1.3), the edge slice that holds it beside the SXM,
and the link model.

Timing contract (docs/timing.md, "C2C")
---------------------------------------
An instruction dispatched at cycle ``t`` reaches tile (superlane) ``k`` at ``t + k``.

``send link, src, count``
    tile ``k`` reads its part of streams ``src .. src+count-1`` in cycle ``t + k`` and
    drives it on the link's transmit port in that same cycle (:class:`LinkPort`:
    ``valid[k]``, ``count[k]`` (stored minus one), ``data[k][j]``).
``recv link, dst, count``
    tile ``k`` takes what the link's receive port carries on superlane ``k`` in cycle
    ``t + k`` and writes it to streams ``dst .. dst+count-1`` at ``t + k + 1``
    (functional delay 1).

The link model (:class:`LinkModel`) delivers the transmit port of one end to the
receive port of the other ``L = c2c_latency`` cycles later, every superlane alike: a
vector sent at ``t`` (superlane ``k``: ``t + k``) is taken by a recv dispatched at
``t + L``. No buffer, no back-pressure.

Dynamic errors (``error``, lowest superlane first; ``unit`` 1 in an :class:`EdgeSlice`,
the C2C queue): ``EMPTY_READ`` when a send's source stream is empty on tile ``k``;
``LINK`` when a recv finds nothing (or another count) arriving on its link on tile
``k``, or a vector arrives on a link with no recv taking it there.

Links: the C2C slice of the west edge serves the even links, the east one the odd links
(:meth:`lpu.config.ChipConfig.link_queue`); :func:`links_of` lists them.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.isa import Direction, Opcode

from .interface import ErrorCode, SlicePorts, shift_words, superlane_dispatch
from .sxm import SxmSlice

__all__ = ["LinkPort", "C2cSlice", "EdgeSlice", "LinkModel", "links_of"]


def links_of(cfg: ChipConfig, hemisphere: str) -> list[int]:
    """The links the C2C slice of `hemisphere` (``"w"`` / ``"e"``) serves, in order."""
    queue = f"c2c_{hemisphere}"
    return [ln for ln in range(cfg.c2c_links) if cfg.link_queue(ln) == queue]


class LinkPort(wiring.Signature):
    """One direction of a link, from the sending side.

    Members
    -------
    valid : Out(ArrayLayout(1, S))
        Superlane ``k`` carries a vector group this cycle.
    count : Out(ArrayLayout(2, S))
        Vectors in it, minus one.
    data : Out(ArrayLayout(ArrayLayout(8 * lanes, c2c_width), S))
        Superlane ``k``'s part of each vector (``lanes`` bytes, lane 0 lowest).
    """

    def __init__(self, cfg: ChipConfig):
        S = cfg.superlanes
        super().__init__({
            "valid": Out(data.ArrayLayout(unsigned(1), S)),
            "count": Out(data.ArrayLayout(unsigned(2), S)),
            "data": Out(data.ArrayLayout(data.ArrayLayout(unsigned(8 * cfg.lanes),
                                                          cfg.c2c_width), S)),
        })


def _link_members(cfg: ChipConfig, n: int) -> dict:
    if not n:
        return {}
    return {"tx": Out(LinkPort(cfg)).array(n), "rx": In(LinkPort(cfg)).array(n)}


class C2cSlice(wiring.Component):
    """One C2C slice (see the module docstring).

    Parameters
    ----------
    cfg : ChipConfig
    hemisphere : ``"w"`` or ``"e"``

    Ports
    -----
    rd, wr, dispatch, error : :func:`lpu.hdl.interface.SlicePorts` (one queue).
    tx[i], rx[i] : the transmit and receive ports of link ``links_of(cfg, hemisphere)[i]``.
    """

    def __init__(self, cfg: ChipConfig, hemisphere: str):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"Chip configuration must be a ChipConfig, not {cfg!r}")
        if hemisphere not in ("w", "e"):
            self._MustUse__silence = True
            raise ValueError(f"Hemisphere must be 'w' or 'e', not {hemisphere!r}")
        self.cfg, self.hemisphere = cfg, hemisphere
        self.links = links_of(cfg, hemisphere)
        super().__init__(SlicePorts(cfg, 1) | _link_members(cfg, len(self.links)))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        S, NS, WS = cfg.superlanes, cfg.streams, cfg.c2c_width
        lane_bits = 8 * cfg.lanes

        valid, ins = superlane_dispatch(m, self.dispatch[0], S)

        rd = self.rd
        errors = []  # per superlane: (empty read, link error)
        for k in range(S):
            f = ins[k].payload.c2c
            west = f.s.dir == Direction.WEST
            is_send = Signal(name=f"t{k}_send")
            is_recv = Signal(name=f"t{k}_recv")
            m.d.comb += [is_send.eq(valid[k] & (ins[k].opcode == Opcode.SEND)),
                         is_recv.eq(valid[k] & (ins[k].opcode == Opcode.RECV))]
            n = Signal(range(5), name=f"t{k}_n")
            m.d.comb += n.eq(f.count + 1)
            need = Signal(WS, name=f"t{k}_need")
            m.d.comb += need.eq(Const((1 << WS) - 1, WS) >> (WS - n).as_unsigned())
            # send: the source streams arriving at tile k, onto the link
            src = Signal(WS * lane_bits, name=f"t{k}_src")
            ok = Signal(WS, name=f"t{k}_src_valid")
            m.d.comb += [
                src.eq(shift_words(Mux(west, rd.w[k].as_value(), rd.e[k].as_value()),
                                   f.s.stream, lane_bits, WS, right=True)),
                ok.eq(Mux(west, rd.w_valid[k].as_value(), rd.e_valid[k].as_value())
                      >> f.s.stream),
            ]
            empty = Signal(name=f"t{k}_empty")
            m.d.comb += empty.eq(is_send & (need & ~ok).any())
            # recv: what arrives on its link at tile k
            r_valid = Signal(name=f"t{k}_rx_valid")
            r_count = Signal(2, name=f"t{k}_rx_count")
            r_data = Signal(WS * lane_bits, name=f"t{k}_rx_data")
            stray = []
            for i, ln in enumerate(self.links):
                mine = Signal(name=f"t{k}_link{ln}")
                m.d.comb += mine.eq(f.link == ln)
                tx, rx = self.tx[i], self.rx[i]
                m.d.comb += [tx.valid[k].eq(is_send & mine), tx.count[k].eq(f.count),
                             tx.data[k].eq(Mux(is_send & mine, src, 0))]
                with m.If(mine):
                    m.d.comb += [r_valid.eq(rx.valid[k]), r_count.eq(rx.count[k]),
                                 r_data.eq(rx.data[k])]
                stray.append(rx.valid[k] & ~(is_recv & mine))
            link_err = Signal(name=f"t{k}_link_error")
            m.d.comb += link_err.eq((is_recv & (~r_valid | (r_count != f.count)))
                                    | Cat(*stray, Const(0, 1)).any())
            # the recv's result, one cycle later
            o_valid = Signal(name=f"t{k}_out_valid")
            o_stream = Signal(5, name=f"t{k}_out_stream")
            o_west = Signal(name=f"t{k}_out_west")
            o_need = Signal(WS, name=f"t{k}_out_need")
            o_data = Signal(WS * lane_bits, name=f"t{k}_out_data")
            m.d.sync += [o_valid.eq(is_recv & r_valid), o_stream.eq(f.s.stream),
                         o_west.eq(west), o_need.eq(need), o_data.eq(r_data)]
            mask = Signal(NS, name=f"t{k}_wmask")
            shifted = Signal(NS * lane_bits, name=f"t{k}_wdata")
            m.d.comb += [mask.eq(o_need << o_stream),
                         shifted.eq(shift_words(o_data, o_stream, lane_bits, NS))]
            for w_, out, we in ((0, self.wr.e[k], self.wr.e_we[k]),
                                (1, self.wr.w[k], self.wr.w_we[k])):
                here = o_valid & (o_west == w_)
                m.d.comb += [we.eq(Mux(here, mask, 0)), out.eq(Mux(here, shifted, 0))]
            errors.append((empty, link_err))

        for k in reversed(range(S)):  # the lowest superlane first; EMPTY_READ before LINK
            empty, link_err = errors[k]
            with m.If(link_err):
                m.d.comb += [self.error.valid.eq(1), self.error.code.eq(ErrorCode.LINK),
                             self.error.superlane.eq(k)]
            with m.If(empty):
                m.d.comb += [self.error.valid.eq(1), self.error.code.eq(ErrorCode.EMPTY_READ),
                             self.error.superlane.eq(k)]
        return m


class EdgeSlice(wiring.Component):
    """The slice at an SXM position of a chip with C2C links: the SXM (queue ``sxm_h``,
    ``dispatch[0]``) and the C2C slice (queue ``c2c_h``, ``dispatch[1]``) side by side,
    their stream writes merged (both writing one register in one cycle is
    ``TWO_WRITERS``, unit 1) and their errors reported with ``unit`` 0 (SXM) or 1 (C2C).

    Ports: as :class:`C2cSlice`, with two dispatch inputs.
    """

    def __init__(self, cfg: ChipConfig, hemisphere: str):
        self.cfg = cfg
        self.sxm = SxmSlice(cfg)
        self.c2c = C2cSlice(cfg, hemisphere)
        self.links = self.c2c.links
        super().__init__(SlicePorts(cfg, 2) | _link_members(cfg, len(self.links)))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.sxm = sxm = self.sxm
        m.submodules.c2c = c2c = self.c2c
        for sub in (sxm, c2c):
            m.d.comb += [sub.rd.e.eq(self.rd.e), sub.rd.e_valid.eq(self.rd.e_valid),
                         sub.rd.w.eq(self.rd.w), sub.rd.w_valid.eq(self.rd.w_valid)]
        for i, sub in enumerate((sxm, c2c)):
            m.d.comb += [sub.dispatch[0].valid.eq(self.dispatch[i].valid),
                         sub.dispatch[0].word.eq(self.dispatch[i].word)]
        for i in range(len(self.links)):
            wiring.connect(m, c2c.tx[i], wiring.flipped(self.tx[i]))
            wiring.connect(m, wiring.flipped(self.rx[i]), c2c.rx[i])
        two = []
        for k in range(cfg.superlanes):
            both = Signal(name=f"t{k}_two")
            parts = []
            for d in ("e", "w"):
                a_we, b_we = getattr(sxm.wr, d + "_we")[k], getattr(c2c.wr, d + "_we")[k]
                a_v, b_v = getattr(sxm.wr, d)[k].as_value(), getattr(c2c.wr, d)[k].as_value()
                m.d.comb += [getattr(self.wr, d + "_we")[k].eq(a_we.as_value() | b_we.as_value()),
                             getattr(self.wr, d)[k].eq(a_v | b_v)]  # each is 0 unless written
                parts.append((a_we.as_value() & b_we.as_value()).any())
            m.d.comb += both.eq(Cat(*parts).any())
            two.append(both)
        with m.If(sxm.error.valid):
            m.d.comb += [self.error.valid.eq(1), self.error.code.eq(sxm.error.code),
                         self.error.superlane.eq(sxm.error.superlane), self.error.unit.eq(0)]
        with m.Elif(c2c.error.valid):
            m.d.comb += [self.error.valid.eq(1), self.error.code.eq(c2c.error.code),
                         self.error.superlane.eq(c2c.error.superlane), self.error.unit.eq(1)]
        with m.Elif(Cat(*two).any()):
            m.d.comb += [self.error.valid.eq(1), self.error.code.eq(ErrorCode.TWO_WRITERS),
                         self.error.unit.eq(1)]
            for k in reversed(range(cfg.superlanes)):
                with m.If(two[k]):
                    m.d.comb += self.error.superlane.eq(k)
        return m


class LinkModel(wiring.Component):
    """One direction of a cable: ``rx`` is ``tx`` delayed by ``latency`` cycles.

    Ports
    -----
    tx : In(LinkPort(cfg))
        The sending chip's transmit port.
    rx : Out(LinkPort(cfg))
        The receiving chip's receive port.
    """

    def __init__(self, cfg: ChipConfig, latency: int | None = None):
        latency = cfg.c2c_latency if latency is None else latency
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 1:
            self._MustUse__silence = True
            raise ValueError(f"Link latency must be a positive integer, not {latency!r}")
        self.cfg, self.latency = cfg, latency
        super().__init__({"tx": In(LinkPort(cfg)), "rx": Out(LinkPort(cfg))})

    def elaborate(self, platform):
        m = Module()
        value = Cat(self.tx.valid.as_value(), self.tx.count.as_value(),
                    self.tx.data.as_value())
        for i in range(self.latency):
            reg = Signal(len(value), name=f"stage{i + 1}")
            m.d.sync += reg.eq(value)
            value = reg
        nv, nc = len(self.rx.valid.as_value()), len(self.rx.count.as_value())
        m.d.comb += [self.rx.valid.eq(value[:nv]), self.rx.count.eq(value[nv:nv + nc]),
                     self.rx.data.eq(value[nv + nc:])]
        return m
