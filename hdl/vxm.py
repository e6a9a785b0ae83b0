"""The VXM slice: ``vxm_alus`` vector ALUs at the centre position, every lane of every
superlane, and the held values of its own stream writes (ISA 1.1 held reads).

Timing contract (docs/timing.md)
--------------------------------
* ALU queue ``q`` (``vxm{q}``) hands an instruction to superlane 0 on
  ``dispatch[q]`` in cycle ``t``. The instruction moves north one tile per cycle: tile
  ``k`` (superlane ``k``) reads its operand streams in cycle ``t + k``, from the values
  arriving at the VXM (``rd``), and drives its result onto ``wr`` in cycle
  ``t + k + d``, ``d`` the opcode's functional delay (:data:`lpu.isa.OPS`, 1 to 4).
* Operands: an int32/fp32 operand is the group of four streams ``s .. s+3`` of one
  direction (byte planes, least significant first: lane ``i``'s value is byte ``i`` of
  streams ``s``, ``s+1``, ``s+2``, ``s+3``); an int8 operand (``cvt.i8.i32``, ``mov``)
  is the one stream ``s``. ``a`` and ``b`` come from the ``alu`` payload (``b`` is the
  scale of ``cvt.f32.i8``), ``c`` (``sel`` only) likewise, ``imm`` (low five bits) from
  the ``alui`` payload. Results go to four streams from ``dst`` in ``dst``'s direction,
  or to the one stream ``dst`` for int8 results (``cvt.i32.i8``, ``cvt.f32.i8``, ``mov``).
* Held reads (ISA 1.1, docs/isa.md "Held reads"): every tile keeps, for each stream
  register of both directions, the last value it drove on ``wr`` (write enable high)
  and a *held valid* bit. With the flag ``la`` (``alu.la``, or ``alui.la`` for
  ``shli``/``shri``/``srai``) of the instruction a tile is acting on, operand ``a`` is
  taken from those held values instead of ``rd`` (same streams, same direction, same
  width); ``lb`` (``alu.lb``) likewise for ``b`` (the scale of ``cvt.f32.i8``); ``c``
  has no held form. The held registers are written at the edge that ends the write
  cycle and read without a bypass, so a read in cycle ``t + k`` on tile ``k`` sees
  the tile's writes up to cycle ``t + k - 1``: a result written in ``t + d`` can be read
  held from ``t + d + 1`` on. A 32-bit operand reads four held streams, each the last
  write to that stream (they may come from different writes). ``start`` high in a
  cycle (the host's CTRL.START write, the cycle before cycle 0) clears every held valid
  bit at the end of that cycle (reset clears them too; the held data are not reset).
* Errors (:class:`~lpu.hdl.interface.SliceError`), in the cycle they happen:
  ``EMPTY_READ`` when a tile reads an operand stream whose valid bit is low, or a held
  stream whose held valid bit is low (not written since the program started, or only
  in this very cycle) (``unit`` = the ALU); ``TWO_WRITERS`` when two results (of
  different ALUs, or of one ALU with different delays) write one stream register of
  one superlane in one cycle (``unit`` = the ALU of the second writer). Two errors in
  one cycle: EMPTY_READ before TWO_WRITERS, then the lowest superlane, then the lowest
  ALU.

Datapath and area
-----------------
Each tile has, per ALU, ``lanes`` :class:`~lpu.hdl.vxm_alu.VxmAlu` instances (one per
lane); every tile works on a different instruction each cycle (the stagger), so none
of them can be shared. Everything else is shared per tile and ALU:

* one instruction register per ALU and stage (``S - 1 + 4`` stages: tile ``k`` acts on
  stage ``k`` and writes the results of stage ``k + d``), in the slice; each tile
  (:class:`VxmTile`, one component per superlane, all alike) decodes the stages it
  is handed (``k .. k + 4``) itself, so the chip's Verilog holds the tile once;
* operand selection: per operand and byte plane one mux of a whole superlane
  (``lanes`` bytes): a tree of 2:1 muxes on the stream field, then the direction. A
  four-stream group starts at most at stream ``streams - 4``, so byte plane ``i`` only
  chooses among streams ``i .. streams - 4 + i`` (the first plane of ``a``, which may
  be one int8 stream, among all). ``c`` is only ever tested against zero, so the tile
  first reduces every arriving byte to a "nonzero" bit and the ``c`` mux moves one bit
  per lane and plane instead of eight. For ``a`` and ``b`` a second such tree picks
  the plane among the held registers, and one more 2:1 mux per plane (on ``la`` /
  ``lb``) chooses between the two: per ALU and tile, eight more plane muxes of
  ``lanes`` bytes (and of one bit for the valid bits);
* held registers (per tile, shared by the ALUs): ``2 * streams`` registers of
  ``8 * lanes`` bits, written from the tile's own merged stream writes (the values and
  write enables it drives on ``wr``), and ``2 * streams`` held valid bits:
  ``2 * streams * (8 * lanes + 1)`` flip-flops per tile (``tiny`` 528, ``fpga`` 1040,
  ``small`` 2080; times ``superlanes`` for the slice), no multiplexers on the write
  side beyond one enable per register. With the held operand trees above, the
  ``fpga`` VXM slice grows by 1040 flip-flops and about 4.9k 2:1 muxes (Yosys generic
  cells, +4.6 % of the slice's); the held data registers have no reset (only their
  valid bits do);
* result routing: each ALU lane has one result port per delay (results of different
  delays of one queue may land together); each such result is rotated once by
  ``dst mod 4`` bytes, so that stream ``s`` takes byte ``s mod 4`` of it, and each
  stream register ORs the bytes of the writers that hit it (at most one in a legal
  program). Write enables come from a shifted four-bit (or one-bit) mask per writer.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.isa import OPS, VXM_OPCODES, Instruction, Opcode

from .interface import SlicePorts, mux_tree, report_unit_errors
from .vxm_alu import VxmAlu

__all__ = ["VxmSlice", "VxmTile", "VxmFault"]


def _held_table():
    """opcode -> (payload format of ``la`` or None, of ``lb`` or None): the held-read
    flags (ISA 1.1) of the operands a and b, as :data:`lpu.isa.OPS` gives them."""
    table = {}
    for op in VXM_OPCODES:
        info = OPS[op]
        flags = {o.held: o.field for o in info.operands if o.held}
        for flag, fld in (("la", "a"), ("lb", "b")):
            if flag in flags and flags[flag] != fld:
                raise ValueError(f"VXM opcode {op.name}: flag {flag} must mark operand {fld}")
        table[op] = tuple(info.fmt if f in flags else None for f in ("la", "lb"))
    return table


def _op_table(superlanes):
    """opcode -> (reads a, a is four streams, reads b, reads c, dst is four streams, d)."""
    table = {}
    for op in VXM_OPCODES:
        info = OPS[op]
        widths = {o.field: o.width for o in info.reads}
        table[op] = ("a" in widths, widths.get("a", 1) == 4, "b" in widths, "c" in widths,
                     info.writes[0].width == 4, info.d(superlanes))
    for op, (_, _, rb, _, _, _) in table.items():
        if rb and dict((o.field, o.width) for o in OPS[op].reads)["b"] != 4:
            raise ValueError(f"VXM opcode {op.name}: operand b must be four streams")
    return table


def _max_delay(superlanes) -> int:
    """The largest functional delay of a VXM opcode (the result stages a tile writes)."""
    return max(d for *_, d in _op_table(superlanes).values())


class _Decoded:
    """The fields of one instruction stage that the tiles use."""

    def __init__(self, m, valid, word, table, held, max_delay, name):
        op = word.opcode
        alu = word.payload.alu
        self.op = op
        self.dst, self.a, self.b, self.c = alu.dst, alu.a, alu.b, alu.c
        self.imm = word.payload.alui.imm[0:5]
        self.valid = Signal(name=f"{name}_valid")
        self.reads_a = Signal(name=f"{name}_reads_a")
        self.a_wide = Signal(name=f"{name}_a_wide")
        self.reads_b = Signal(name=f"{name}_reads_b")
        self.reads_c = Signal(name=f"{name}_reads_c")
        self.dst_wide = Signal(name=f"{name}_dst_wide")
        self.delay = Signal(range(max_delay + 1), name=f"{name}_delay")
        self.la = Signal(name=f"{name}_la")  # a is VXM-held (ISA 1.1)
        self.lb = Signal(name=f"{name}_lb")  # b likewise
        is_vxm = Signal(name=f"{name}_is_vxm")
        with m.Switch(op):
            for opc, (ra, aw, rb, rc, dw, d) in table.items():
                with m.Case(opc):
                    m.d.comb += [is_vxm.eq(1), self.reads_a.eq(ra), self.a_wide.eq(aw),
                                 self.reads_b.eq(rb), self.reads_c.eq(rc),
                                 self.dst_wide.eq(dw), self.delay.eq(d)]
                    for flag, fld, fmt in ((self.la, "la", held[opc][0]),
                                           (self.lb, "lb", held[opc][1])):
                        if fmt is not None:  # the flag's bit in this opcode's format
                            m.d.comb += flag.eq(getattr(getattr(word.payload, fmt), fld))
        m.d.comb += self.valid.eq(valid & is_vxm)


@dataclass(frozen=True)
class VxmFault:
    """A deliberate bug, for tests of the lockstep checker only: in ALU `alu`, superlane
    `superlane`, lane `lane`, operand ``b`` is XORed with `xor` whenever the operation
    is `opcode` (so ``add`` computes ``a + (b ^ xor)`` in that one lane)."""

    alu: int
    superlane: int
    lane: int
    opcode: Opcode
    xor: int = 1


class VxmSlice(wiring.Component):
    """The VXM: ``cfg.vxm_alus`` ALUs, each with its own queue (``dispatch[q]``).

    Parameters
    ----------
    cfg : ChipConfig

    Ports
    -----
    The members of :func:`lpu.hdl.interface.SlicePorts` with ``cfg.vxm_alus`` dispatch
    inputs: ``rd`` (streams arriving at the VXM), ``wr`` (stream writes), ``dispatch``,
    ``error``; and ``start`` : In(1), high in the cycle before a program's cycle 0 (the
    chip top connects the host's start): clears the held values (ISA 1.1). Left low
    (a slice tested alone), only reset clears them.

    Structure: the slice keeps the instruction stages and reports the errors; each
    superlane's tile is a :class:`VxmTile` (all alike, so the chip's Verilog holds one:
    :func:`lpu.hdl.chip.shared_module`), fed the stages it acts on.
    """

    def __init__(self, cfg: ChipConfig, *, fault: VxmFault | None = None):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"VxmSlice needs a ChipConfig, not {cfg!r}")
        if fault is not None and not (0 <= fault.alu < cfg.vxm_alus
                                      and 0 <= fault.superlane < cfg.superlanes
                                      and 0 <= fault.lane < cfg.lanes):
            self._MustUse__silence = True
            raise ValueError(f"{fault} is outside this chip")
        self._cfg = cfg
        self._fault = fault
        self._max_delay = _max_delay(cfg.superlanes)
        super().__init__({**SlicePorts(cfg, cfg.vxm_alus), "start": In(1)})

    @property
    def cfg(self) -> ChipConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        S, NS, Q = cfg.superlanes, cfg.streams, cfg.vxm_alus
        D = self._max_delay

        # -- instruction stages: stage i holds what ALU q dispatched i cycles ago --------
        stages = []  # [q][i] -> (valid, word)
        for q in range(Q):
            valid, word = self.dispatch[q].valid, self.dispatch[q].word
            row = [(valid, word)]
            for i in range(1, S + D):
                v = Signal(name=f"alu{q}_st{i}_v")
                w = Signal.like(self.dispatch[q].word, name=f"alu{q}_st{i}_word")
                m.d.sync += [v.eq(valid), w.eq(word)]
                valid, word = v, w
                row.append((v, w))
            stages.append(row)

        empty = [[Signal(name=f"empty_k{k}_alu{q}") for q in range(Q)] for k in range(S)]
        two = [Signal(name=f"two_writers_k{k}") for k in range(S)]
        two_unit = [Signal(range(max(2, Q)), name=f"two_writers_k{k}_unit") for k in range(S)]
        for k in range(S):
            f = self._fault
            tile = VxmTile(cfg, fault=f if f is not None and f.superlane == k else None)
            m.submodules[f"tile{k}"] = tile
            for q in range(Q):
                for i in range(D + 1):
                    valid, word = stages[q][k + i]
                    m.d.comb += [tile.valid[q][i].eq(valid), tile.word[q][i].eq(word)]
                m.d.comb += empty[k][q].eq(tile.empty[q])
            for j in range(NS):
                m.d.comb += [
                    tile.rd_e[j].eq(self.rd.e[k][j]), tile.rd_e_valid[j].eq(self.rd.e_valid[k][j]),
                    tile.rd_w[j].eq(self.rd.w[k][j]), tile.rd_w_valid[j].eq(self.rd.w_valid[k][j]),
                    self.wr.e[k][j].eq(tile.wr_e[j]), self.wr.e_we[k][j].eq(tile.wr_e_we[j]),
                    self.wr.w[k][j].eq(tile.wr_w[j]), self.wr.w_we[k][j].eq(tile.wr_w_we[j]),
                ]
            m.d.comb += [tile.start.eq(self.start), two[k].eq(tile.two),
                         two_unit[k].eq(tile.two_unit)]

        # -- errors ------------------------------------------------------------------------
        report_unit_errors(m, self.error, empty, two, two_unit)
        return m


class VxmTile(wiring.Component):
    """One superlane's tile of the VXM (see the module docstring): operand selection,
    ``vxm_alus * lanes`` ALU lanes, result routing and the held values.

    Ports (``Q = cfg.vxm_alus``, ``D`` the largest functional delay)
    -----------------------------------------------------------------
    valid, word : In, ``[Q][D + 1]``
        The instruction stages this tile acts on: ``[q][0]`` the one it reads operands
        for this cycle, ``[q][d]`` the one whose delay-``d`` results it writes.
    rd_e, rd_e_valid, rd_w, rd_w_valid : In
        This superlane's streams arriving at the VXM (``streams`` values of
        ``8 * lanes`` bits and their valid bits).
    wr_e, wr_e_we, wr_w, wr_w_we : Out
        This superlane's stream writes.
    start : In(1)
        Forget the held values (as :class:`VxmSlice`'s).
    empty : Out(Q)
        ALU ``q`` read an empty stream (or held stream) this cycle.
    two, two_unit : Out
        Two results wrote one stream register; the ALU of the second writer.

    `fault`: a :class:`VxmFault` of this superlane (checker tests only).
    """

    def __init__(self, cfg: ChipConfig, *, fault: VxmFault | None = None):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"VxmTile needs a ChipConfig, not {cfg!r}")
        self._cfg = cfg
        self.fault = fault
        self._table = _op_table(cfg.superlanes)
        self._held = _held_table()
        self._max_delay = _max_delay(cfg.superlanes)
        Q, NS, B, D = cfg.vxm_alus, cfg.streams, 8 * cfg.lanes, self._max_delay
        super().__init__({
            "valid": In(data.ArrayLayout(data.ArrayLayout(1, D + 1), Q)),
            "word": In(data.ArrayLayout(data.ArrayLayout(Instruction, D + 1), Q)),
            "rd_e": In(data.ArrayLayout(B, NS)), "rd_e_valid": In(NS),
            "rd_w": In(data.ArrayLayout(B, NS)), "rd_w_valid": In(NS),
            "wr_e": Out(data.ArrayLayout(B, NS)), "wr_e_we": Out(NS),
            "wr_w": Out(data.ArrayLayout(B, NS)), "wr_w_we": Out(NS),
            "start": In(1),
            "empty": Out(Q),
            "two": Out(1),
            "two_unit": Out(range(max(2, Q))),
        })

    @property
    def cfg(self) -> ChipConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        S, L, NS, Q = cfg.superlanes, cfg.lanes, cfg.streams, cfg.vxm_alus
        D = self._max_delay
        B = 8 * L  # bits of one stream of one superlane
        stages = [[_Decoded(m, self.valid[q][i], self.word[q][i], self._table, self._held,
                            D, f"alu{q}_st{i}") for i in range(D + 1)] for q in range(Q)]

        # arriving streams; per lane, whether a byte is nonzero
        streams = {0: [self.rd_e[j] for j in range(NS)], 1: [self.rd_w[j] for j in range(NS)]}
        valids = {0: [self.rd_e_valid[j] for j in range(NS)],
                  1: [self.rd_w_valid[j] for j in range(NS)]}
        nonzero = {}
        for dr in (0, 1):
            nonzero[dr] = []
            for j, v in enumerate(streams[dr]):
                nz = Signal(L, name=f"rd_{'ew'[dr]}{j}_nonzero")
                m.d.comb += nz.eq(Cat(*(v.word_select(i, 8) != 0 for i in range(L))))
                nonzero[dr].append(nz)
        # held values (ISA 1.1): what this tile last drove on each stream register,
        # and whether it has since the program started
        held = {dr: [Signal(B, name=f"held_{'ew'[dr]}{j}", reset_less=True)
                     for j in range(NS)] for dr in (0, 1)}
        held_ok = {dr: [Signal(name=f"held_{'ew'[dr]}{j}_valid") for j in range(NS)]
                   for dr in (0, 1)}

        def plane(ref, i, wide, entries, name, width, flag=None, held_entries=None):
            """Stream ``ref.stream + i`` of ``ref``'s direction; a four-stream group
            (``wide``) starts at most at stream NS - 4 (statically checked). With
            `flag`: from `held_entries` instead of `entries` when it is high."""
            n = NS - 3 if wide else NS

            def pick(ent):
                return Mux(ref.dir.as_value(), mux_tree(ref.stream, ent[1][i:i + n]),
                           mux_tree(ref.stream, ent[0][i:i + n]))

            out = Signal(width, name=name)
            if flag is None:
                m.d.comb += out.eq(pick(entries))
            else:
                m.d.comb += out.eq(Mux(flag, pick(held_entries), pick(entries)))
            return out

        # -- operands, ALUs ----------------------------------------------------------
        results = []  # [q] -> [lane] -> ALU
        for q in range(Q):
            st = stages[q][0]
            pre = f"alu{q}"
            flags = {"a": st.la, "b": st.lb, "c": None}
            planes = {n: [plane(getattr(st, n), i, n != "a" or i > 0, streams,
                                f"{pre}_{n}{i}", B, flags[n], held)
                          for i in range(4)] for n in "ab"}
            c_nz = [plane(st.c, i, True, nonzero, f"{pre}_c{i}_nonzero", L)
                    for i in range(4)]
            ok = {n: [plane(getattr(st, n), i, n != "a" or i > 0, valids,
                            f"{pre}_{n}{i}_valid", 1, flags[n], held_ok)
                      for i in range(4)] for n in "abc"}
            m.d.comb += self.empty[q].eq(st.valid & (
                (st.reads_a & ~Mux(st.a_wide, Cat(*ok["a"]).all(), ok["a"][0]))
                | (st.reads_b & ~Cat(*ok["b"]).all()) | (st.reads_c & ~Cat(*ok["c"]).all())))
            alus = []
            for i in range(L):
                alu = VxmAlu(superlanes=S)
                m.submodules[f"alu{q}_lane{i}"] = alu
                b = Cat(*(p.word_select(i, 8) for p in planes["b"]))
                f = self.fault
                if f is not None and (f.alu, f.lane) == (q, i):
                    b = b ^ Mux(st.op == f.opcode, f.xor & 0xFFFF_FFFF, 0)
                m.d.comb += [
                    alu.valid.eq(st.valid),
                    alu.op.eq(st.op),
                    alu.a.eq(Cat(*(p.word_select(i, 8) for p in planes["a"]))),
                    alu.b.eq(b),
                    alu.c.eq(Cat(*(p[i] for p in c_nz)).any()),
                    alu.imm.eq(st.imm),
                ]
                alus.append(alu)
            results.append(alus)

        # -- results -> stream registers ------------------------------------------------
        writers = []  # (q, write mask east, write mask west, [4] rotated planes)
        for q in range(Q):
            for d in range(1, D + 1):
                st = stages[q][d]
                hit = Signal(name=f"wr_alu{q}_d{d}")
                m.d.comb += hit.eq(st.valid & (st.delay == d))
                mask = Signal(NS, name=f"wr_alu{q}_d{d}_mask")
                m.d.comb += mask.eq(Mux(hit, Mux(st.dst_wide, 0b1111, 0b0001)
                                        << st.dst.stream, 0))
                west = st.dst.dir.as_value()
                rot = [Signal(B, name=f"wr_alu{q}_d{d}_plane{j}") for j in range(4)]
                lanes = [alu.results[d - 1] for alu in results[q]]
                with m.Switch(st.dst.stream[0:2]):
                    for n in range(4):
                        with m.Case(n):
                            for j in range(4):
                                m.d.comb += rot[j].eq(Cat(
                                    *(r.word_select((j - n) % 4, 8) for r in lanes)))
                mask_e, mask_w = Signal(NS), Signal(NS)
                m.d.comb += [mask_e.eq(Mux(west, 0, mask)), mask_w.eq(Mux(west, mask, 0))]
                writers.append((q, mask_e, mask_w, rot))
        collide = [Const(0, 1)] * len(writers)
        for dr, (out, we) in enumerate(((self.wr_e, self.wr_e_we), (self.wr_w, self.wr_w_we))):
            for s in range(NS):
                hits = Signal(len(writers), name=f"wr_{'ew'[dr]}{s}_hits")
                m.d.comb += hits.eq(Cat(*((mw if dr else me)[s] for _, me, mw, _ in writers)))
                value = Const(0, B)
                for j, (_, _, _, rot) in enumerate(writers):
                    value = value | Mux(hits[j], rot[s % 4], 0)
                both = Signal(name=f"wr_{'ew'[dr]}{s}_two")
                m.d.comb += [out[s].eq(value), we[s].eq(hits.any()),
                             both.eq((hits & (hits - 1)).any())]
                # the held register keeps what the tile drives (seen from the next
                # cycle on); a program start forgets every held value
                with m.If(we[s]):
                    m.d.sync += held[dr][s].eq(out[s])
                with m.If(self.start):
                    m.d.sync += held_ok[dr][s].eq(0)
                with m.Elif(we[s]):
                    m.d.sync += held_ok[dr][s].eq(1)
                collide = [c | (both & hits[j]) for j, c in enumerate(collide)]
        m.d.comb += self.two.eq(Cat(*collide).any())
        for j, (q, *_) in enumerate(writers):
            with m.If(collide[j]):
                m.d.comb += self.two_unit.eq(q)
        return m
