"""The MXM slice of one hemisphere: ``mxm_planes`` weight-stationary VL x VL int8 planes.

Timing contract (docs/timing.md), per plane, for an instruction dispatched at ``t``
-------------------------------------------------------------------------------------
Tile ``n`` (superlane ``n``) holds the weight columns of superlane ``n``
(``W[0..VL-1][n*lanes .. n*lanes+lanes-1]``), in a shadow and an active buffer.

``lw row, src, count``
    Tile ``n`` reads streams ``src .. src+count-1`` in cycle ``t + n`` and writes their
    superlane-``n`` bytes as rows ``row .. row+count-1`` of its shadow columns in cycle
    ``t + n + 1`` (``wload`` trace).
``iw``
    Tile ``n`` copies its shadow columns, as they were at the end of ``t + n - 1``, to
    its active columns in cycle ``t + n`` (``install`` trace).
``lwi row, src, count`` (ISA 1.2)
    As ``lw``, and as an ``iw`` dispatched at ``t + 2`` (the stage two cycles on
    installs; no dispatch slot is taken).
``mm dst, src, slot`` / ``mmacc``
    ``y[c] = sum_r x[r] * W[r][c]`` (int8 x int8, exact int32) over the whole vector
    ``x`` on stream ``src``, superlane ``j`` of which arrives at tile ``j`` in cycle
    ``t + j``, with the active weights of cycle ``t`` (each tile's as of ``t + n``).
    Tile ``n`` writes ``acc[slot]`` (``mm``) or ``acc[slot] + y`` (``mmacc``, wrapping)
    for its columns in cycle ``t + n + S + 2`` (``acc`` trace) and, unless ``emit`` is 0
    (``dst`` = ``-``), drives the same int32 lanes onto streams ``dst .. dst+3`` (byte
    planes, least significant first) in that cycle.

Errors: ``EMPTY_READ`` when a tile reads a stream whose valid bit is low (``lw``,
``mm``); ``TWO_WRITERS`` when two planes write one stream register in one cycle.
``unit`` is the plane (0 .. mxm_planes-1). Two in one cycle: EMPTY_READ first, then
the lowest superlane, then the lowest plane.

Datapath
--------
The product needs all of ``x`` before the first output, but the weights a tile holds
may change (``iw``) while ``x`` is still arriving. The planes therefore keep the weight
block of row superlane ``j`` and column superlane ``n`` on the schedule of tile
``max(j, n)``: every load, install and use of that block happens ``max(j, n)`` cycles
after its skewed (superlane 0) cycle, instead of ``n``:

* the block's part of ``x`` (superlane ``j``, arriving at ``t + j``) waits in a short
  delay line until ``t + max(j, n)``; there it meets the active block as of skewed
  cycle ``t``, and their ``lanes x lanes`` partial product joins column ``n``'s running
  sum: at ``t + n`` the blocks ``j <= n`` together, then one more block per cycle until
  ``t + S - 1``; the finished sum waits ``n + 2`` cycles and leaves at ``t + n + S + 2``;
* the ``lw`` data of tile ``n`` (one register of the selected direction's streams)
  waits ``j - n`` more cycles for the rows of superlane ``j > n`` (none on a one-
  superlane chip); installs are a copy per block at ``t + max(j, n)``.

So each plane holds its two weight buffers (``2 * VL * VL`` bytes), ``VL * VL``
multipliers in ``S * S`` blocks, ``S + 2`` partial-sum registers per column superlane,
``mxm_acc_slots`` accumulator vectors and the ``lw`` delay line
(``S * (S - 1) / 2`` registers of ``streams * lanes`` bytes).

Trace ports
-----------
``wload[plane][superlane]`` (:func:`wload_layout`): ``valid``, the first ``row``,
``count``, the first stream ``src`` and ``data`` (the superlane's bytes of every stream
of the direction read): rows ``row + i`` got ``data[src + i]``. ``install[plane]
[superlane]``: one bit. ``acc[plane][superlane]`` (:func:`acc_layout`): ``valid``,
``slot`` and the int32 ``data`` written. :func:`lpu.sim.trace.mxm_events` turns them into golden
events.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from lpu.config import ChipConfig
from lpu.isa import Opcode

from .interface import SlicePorts, mux_tree, report_unit_errors

__all__ = ["MxmSlice", "wload_layout", "acc_layout"]


def wload_layout(cfg: ChipConfig) -> data.StructLayout:
    """One tile's weight-row load in one cycle."""
    return data.StructLayout({
        "valid": 1, "row": 9, "count": 6, "src": 5,
        "data": data.ArrayLayout(unsigned(8 * cfg.lanes), cfg.streams),
    })


def acc_layout(cfg: ChipConfig) -> data.StructLayout:
    """One tile's accumulator write in one cycle."""
    return data.StructLayout({
        "valid": 1, "slot": 4, "data": data.ArrayLayout(unsigned(32), cfg.lanes),
    })


class _Stage:
    """The fields of one instruction stage of a plane."""

    def __init__(self, m, valid, word, name):
        op = word.opcode
        self.lw, self.lwi, self.iw, self.mm, self.mmacc = (
            Signal(name=f"{name}_{n}") for n in ("lw", "lwi", "iw", "mm", "mmacc"))
        m.d.comb += [self.lw.eq(valid & ((op == Opcode.LW) | (op == Opcode.LWI))),
                     self.lwi.eq(valid & (op == Opcode.LWI)),
                     self.iw.eq(valid & (op == Opcode.IW)),
                     self.mmacc.eq(valid & (op == Opcode.MMACC)),
                     self.mm.eq(valid & ((op == Opcode.MM) | (op == Opcode.MMACC)))]
        lw, mm = word.payload.lw, word.payload.mm
        self.row, self.lw_src, self.count = lw.row, lw.src, lw.count  # count minus one
        self.dst, self.mm_src, self.slot, self.emit = mm.dst, mm.src, mm.slot, mm.emit


class MxmSlice(wiring.Component):
    """The ``cfg.mxm_planes`` MXM planes of one hemisphere (``dispatch[i]``: plane ``i``).

    Parameters
    ----------
    cfg : ChipConfig
    hemisphere : ``"w"`` or ``"e"``
        Which MXM this is; it numbers the planes in the trace (``mxm_w0..``,
        ``mxm_e0..``: :attr:`unit_base`).

    Ports
    -----
    The members of :func:`lpu.hdl.interface.SlicePorts` with ``cfg.mxm_planes``
    dispatch inputs, and the trace outputs ``wload``, ``install``, ``acc`` (see the
    module docstring).
    """

    def __init__(self, cfg: ChipConfig, hemisphere: str):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"MxmSlice needs a ChipConfig, not {cfg!r}")
        if hemisphere not in ("w", "e"):
            self._MustUse__silence = True
            raise ValueError(f"Hemisphere must be 'w' or 'e', not {hemisphere!r}")
        self._cfg = cfg
        self.hemisphere = hemisphere
        S, P = cfg.superlanes, cfg.mxm_planes
        members = SlicePorts(cfg, P)
        members.update({
            "wload": Out(data.ArrayLayout(data.ArrayLayout(wload_layout(cfg), S), P)),
            "install": Out(data.ArrayLayout(data.ArrayLayout(1, S), P)),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(acc_layout(cfg), S), P)),
        })
        super().__init__(members)

    @property
    def cfg(self) -> ChipConfig:
        return self._cfg

    @property
    def unit_base(self) -> int:
        """The trace unit number of plane 0 (MXM planes in queue order)."""
        return 0 if self.hemisphere == "w" else self._cfg.mxm_planes

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        S, L, NS, P = cfg.superlanes, cfg.lanes, cfg.streams, cfg.mxm_planes
        B = 8 * L
        empty = [[Signal(name=f"empty_k{k}_plane{x}") for x in range(P)] for k in range(S)]
        writes = [[] for _ in range(S)]  # [k] -> (plane, east mask, west mask, [4] planes)
        for x in range(P):
            self._plane(m, x, empty, writes)

        # -- stream writes of all planes, two-writer check ---------------------------------
        two = [Signal(name=f"two_writers_k{k}") for k in range(S)]
        two_unit = [Signal(range(max(2, P)), name=f"two_writers_k{k}_unit") for k in range(S)]
        for k in range(S):
            collide = [Const(0, 1)] * len(writes[k])
            for dr, (out, we) in enumerate(((self.wr.e, self.wr.e_we),
                                            (self.wr.w, self.wr.w_we))):
                for s in range(NS):
                    hits = Signal(len(writes[k]), name=f"wr_k{k}_{'ew'[dr]}{s}_hits")
                    m.d.comb += hits.eq(Cat(*((mw if dr else me)[s]
                                              for _, me, mw, _ in writes[k])))
                    value = Const(0, B)
                    for j, (_, _, _, rot) in enumerate(writes[k]):
                        value = value | Mux(hits[j], rot[s % 4], 0)
                    both = Signal(name=f"wr_k{k}_{'ew'[dr]}{s}_two")
                    m.d.comb += [out[k][s].eq(value), we[k][s].eq(hits.any()),
                                 both.eq((hits & (hits - 1)).any())]
                    collide = [c | (both & hits[j]) for j, c in enumerate(collide)]
            m.d.comb += two[k].eq(Cat(*collide).any())
            for j, (x, *_) in enumerate(writes[k]):
                with m.If(collide[j]):
                    m.d.comb += two_unit[k].eq(x)

        # -- errors ------------------------------------------------------------------------
        report_unit_errors(m, self.error, empty, two, two_unit)
        return m

    def _plane(self, m, x, empty, writes):
        cfg = self._cfg
        S, L, NS, VL = cfg.superlanes, cfg.lanes, cfg.streams, cfg.vl
        B = 8 * L
        name = f"p{x}"
        psum_w = 16 + VL.bit_length()  # |sum of VL int8 products| < 2^(15 + log2 VL)

        # -- instruction stages: stage i = dispatched i cycles ago -------------------------
        valid, word = self.dispatch[x].valid, self.dispatch[x].word
        st = [_Stage(m, valid, word, f"{name}_st0")]
        for i in range(1, 2 * S + 2):
            v = Signal(name=f"{name}_st{i}_v")
            w = Signal.like(self.dispatch[x].word, name=f"{name}_st{i}_word")
            m.d.sync += [v.eq(valid), w.eq(word)]
            valid, word = v, w
            st.append(_Stage(m, v, w, f"{name}_st{i}"))

        def arriving(k, ref, tag):
            """(data, valid bits) of the direction `ref` names, superlane k."""
            d = Signal(NS * B, name=f"{name}_k{k}_{tag}_rd")
            v = Signal(NS, name=f"{name}_k{k}_{tag}_rd_valid")
            west = ref.dir.as_value()
            m.d.comb += [d.eq(Mux(west, self.rd.w[k].as_value(), self.rd.e[k].as_value())),
                         v.eq(Mux(west, self.rd.w_valid[k].as_value(),
                                  self.rd.e_valid[k].as_value()))]
            return d, v

        def installs(k):
            """Tile k's install cycle: an iw dispatched k cycles ago, an lwi k + 2."""
            return st[k].iw | st[k + 2].lwi

        # -- per tile: reads (lw data, x), empty-read checks, lw delay line --------------
        xs = []  # [j] -> [e]: x of superlane j, e cycles after it arrived (signed lanes)
        lw_pkts = []  # [n] -> [e]: tile n's lw packet, e cycles after the event cycle
        for k in range(S):
            s = st[k]
            lw_data, lw_valid = arriving(k, s.lw_src, "lw")
            mm_west = s.mm_src.dir.as_value()
            x0 = Signal(B, name=f"{name}_k{k}_x0")
            mm_ok = Signal(name=f"{name}_k{k}_x0_valid")
            m.d.comb += [
                x0.eq(Mux(mm_west, mux_tree(s.mm_src.stream, list(self.rd.w[k])),
                          mux_tree(s.mm_src.stream, list(self.rd.e[k])))),
                mm_ok.eq(Mux(mm_west, mux_tree(s.mm_src.stream, list(self.rd.w_valid[k])),
                             mux_tree(s.mm_src.stream, list(self.rd.e_valid[k])))),
            ]
            count = s.count + 1
            want = Signal(NS, name=f"{name}_k{k}_lw_reads")
            m.d.comb += want.eq(Mux(s.lw, ((Const(1, 1) << count) - 1) << s.lw_src.stream, 0))
            m.d.comb += empty[k][x].eq(
                (want & ~lw_valid).any() | (s.mm & ~mm_ok))

            line = [x0]
            for e in range(1, S - k):
                r = Signal(B, name=f"{name}_k{k}_x{e}")
                m.d.sync += r.eq(line[-1])
                line.append(r)
            xs.append(line)

            pkt = Signal(wload_layout(cfg), name=f"{name}_k{k}_lw0")
            m.d.sync += [pkt.valid.eq(s.lw), pkt.row.eq(s.row), pkt.count.eq(count),
                         pkt.src.eq(s.lw_src.stream), pkt.data.eq(lw_data)]
            m.d.comb += self.wload[x][k].eq(pkt)
            pkts = [pkt]
            for e in range(1, S - k):
                r = Signal(wload_layout(cfg), name=f"{name}_k{k}_lw{e}")
                m.d.sync += r.eq(pkts[-1])
                pkts.append(r)
            lw_pkts.append(pkts)
            m.d.comb += self.install[x][k].eq(installs(k))

        # -- weight blocks: shadow, active, partial products -------------------------------
        # block (j, n): rows j*L.. of the columns of superlane n, on tile max(j, n)'s clock
        partial = [[None] * S for _ in range(S)]  # [j][n] -> [c] signed partial sums
        for j in range(S):
            for n in range(S):
                o = max(j, n)
                pkt = lw_pkts[n][o - n]
                iw = installs(o)
                xv = xs[j][o - j]
                sums = [Const(0, signed(psum_w))] * L
                for i in range(L):
                    r = j * L + i
                    shadow = Signal(B, name=f"{name}_shadow_r{r}_n{n}")
                    active = Signal(B, name=f"{name}_active_r{r}_n{n}")
                    rel = Signal(signed(11), name=f"{name}_lw_r{r}_n{n}_rel")
                    m.d.comb += rel.eq(r - pkt.row)
                    pick = Signal(5, name=f"{name}_lw_r{r}_n{n}_stream")
                    m.d.comb += pick.eq(pkt.src + rel)
                    with m.If(pkt.valid & (rel >= 0) & (rel < pkt.count)):
                        m.d.sync += shadow.eq(mux_tree(pick, [pkt.data[e] for e in range(NS)]))
                    with m.If(iw):
                        m.d.sync += active.eq(shadow)
                    xi = xv.word_select(i, 8).as_signed()
                    sums = [acc + xi * active.word_select(c, 8).as_signed()
                            for c, acc in enumerate(sums)]
                part = [Signal(signed(psum_w), name=f"{name}_part_j{j}_n{n}_c{c}")
                        for c in range(L)]
                m.d.comb += [p.eq(v) for p, v in zip(part, sums, strict=True)]
                partial[j][n] = part

        # -- column sums, delay to t + n + S + 2, accumulators, outputs --------------------
        slots = cfg.mxm_acc_slots
        for n in range(S):
            total = [sum(partial[j][n][c] for j in range(n + 1)) for c in range(L)]
            chain = None
            for i in range(n, S):
                if i > n:
                    total = [chain[c] + partial[i][n][c] for c in range(L)]
                chain = [Signal(signed(psum_w), name=f"{name}_sum_n{n}_s{i}_c{c}")
                         for c in range(L)]
                m.d.sync += [r.eq(v) for r, v in zip(chain, total, strict=True)]
            for e in range(n + 2):
                nxt = [Signal(signed(psum_w), name=f"{name}_y_n{n}_d{e}_c{c}")
                       for c in range(L)]
                m.d.sync += [r.eq(v) for r, v in zip(nxt, chain, strict=True)]
                chain = nxt
            out = st[n + S + 2]
            acc = [[Signal(32, name=f"{name}_acc{a}_n{n}_c{c}") for c in range(L)]
                   for a in range(slots)]
            old = [Signal(32, name=f"{name}_acc_old_n{n}_c{c}") for c in range(L)]
            new = [Signal(32, name=f"{name}_acc_new_n{n}_c{c}") for c in range(L)]
            with m.Switch(out.slot):
                for a in range(slots):
                    with m.Case(a):
                        m.d.comb += [o.eq(v) for o, v in zip(old, acc[a], strict=True)]
            for c in range(L):
                y = chain[c]
                m.d.comb += new[c].eq(Mux(out.mmacc, old[c] + y, y))
            for a in range(slots):
                with m.If(out.mm & (out.slot == a)):
                    m.d.sync += [r.eq(v) for r, v in zip(acc[a], new, strict=True)]
            port = self.acc[x][n]
            m.d.comb += [port.valid.eq(out.mm), port.slot.eq(out.slot),
                         port.data.eq(Cat(*new))]

            mask = Signal(NS, name=f"{name}_k{n}_wr_mask")
            m.d.comb += mask.eq(Mux(out.mm & out.emit, Const(0b1111, 4) << out.dst.stream, 0))
            mask_e, mask_w = Signal(NS), Signal(NS)
            west = out.dst.dir.as_value()
            m.d.comb += [mask_e.eq(Mux(west, 0, mask)), mask_w.eq(Mux(west, mask, 0))]
            rot = [Signal(B, name=f"{name}_k{n}_wr_plane{b}") for b in range(4)]
            with m.Switch(out.dst.stream[0:2]):
                for r in range(4):
                    with m.Case(r):
                        for b in range(4):
                            m.d.comb += rot[b].eq(Cat(
                                *(v.word_select((b - r) % 4, 8) for v in new)))
            writes[n].append((x, mask_e, mask_w, rot))
