"""The MEM slice: two SRAM banks per tile, read, write and gather onto the streams.

Timing contract (docs/timing.md)
--------------------------------
An instruction dispatched at cycle ``t`` reaches tile (superlane) ``k`` at ``t + k``
and moves on north one tile per cycle. On tile ``k``:

==========================  ==============================  ===========================
instruction                 reads                           writes
==========================  ==============================  ===========================
``read addr, s, n``         SRAM words addr..addr+n-1        streams s..s+n-1, t+k+1
                            (one bank), cycle t+k
``write addr, s, n``        streams s..s+n-1, cycle t+k      SRAM, cycle t+k+1
``gather base, idx, s``     stream idx, cycle t+k;          stream s, t+k+2
                            SRAM (lane j: base + idx[j]),
                            cycle t+k+1
==========================  ==============================  ===========================

Dynamic errors (``error``, reported by the tile where they happen, the lowest
superlane first; one code per cycle, in the order of the golden model's checks):

* ``RANGE``: a gather address ``base + idx[j]`` outside the bank of ``base`` (cycle
  ``t+k+1``);
* ``EMPTY_READ``: ``write`` or ``gather`` reads a stream whose valid bit is low;
* ``BANK``: one bank used twice in one cycle (read and write, or a read and a
  gather's SRAM read);
* ``TWO_WRITERS``: a read and a gather write one stream in the same cycle.

Structure
---------
Each tile holds, per bank, ``lanes`` byte-wide columns, each split into
``I = min(4, bank_words)`` interleaved sub-banks (bank-local address ``r`` lives in
sub-bank ``r mod I``, row ``r // I``), one :class:`~amaranth.lib.memory.Memory` each
with one synchronous read port and one write port. The ``n <= 4`` consecutive words
of a read or write fall into distinct sub-banks, so they move in one cycle; the
columns let every lane of a gather read its own address. Synthesis is asked to build
each column memory in block RAM (:data:`RAM_ATTRS`).

Host port
---------
:class:`HostPort`: whole-vector access (all superlanes) for loading and reading SRAM
while the slice is idle. ``w_en`` writes ``w_data`` at ``addr`` at the end of the
cycle; ``r_en`` in cycle ``c`` presents the word at ``addr`` on ``r_data`` in cycle
``c + 1``. Instructions take precedence over the host.

Trace
-----
``sram`` (:func:`sram_trace_layout`): per superlane, the up to four word writes of
this cycle (``we``, ``addr``, ``data``), for the lockstep checker's ``sram`` events;
leave it unconnected in synthesis.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.isa import Direction, Instruction, Opcode

from .interface import ErrorCode, SlicePorts, shift_words

__all__ = ["MemSlice", "HostPort", "sram_trace_layout"]

MAX_WORDS = 4  # words moved by one read or write

#: Synthesis attributes of every column memory: block RAM (an ECP5 DP16KD each), not
#: LUT RAM and its read multiplexers. On the `fpga` preset this takes each MEM slice from
#: 8,130 LUT4s and 256 LUT RAMs to 6,521 LUT4s and 32 block RAMs (`lpu synth --blocks`,
#: docs/benchmarks.md). Simulators ignore it.
RAM_ATTRS = {"ram_style": "block"}


def _check_cfg(cfg):
    if not isinstance(cfg, ChipConfig):
        raise TypeError(f"Chip configuration must be a ChipConfig, not {cfg!r}")


class HostPort(wiring.Signature):
    """Whole-vector SRAM access for the host interface (from the host's side).

    Members
    -------
    addr : Out(range(mem_words))
    w_en : Out(1), w_data : Out(8 * VL)
        Write ``w_data`` (lane ``i`` in bits ``8i..8i+7``) at ``addr``.
    r_en : Out(1), r_data : In(8 * VL)
        ``r_data`` holds, in the cycle after ``r_en``, the word at ``addr``.
    """

    def __init__(self, cfg: ChipConfig):
        _check_cfg(cfg)
        self.cfg = cfg
        super().__init__({
            "addr": Out(range(cfg.mem_words)),
            "w_en": Out(1), "w_data": Out(8 * cfg.vl),
            "r_en": Out(1), "r_data": In(8 * cfg.vl),
        })

    def __eq__(self, other):
        return type(other) is HostPort and other.cfg == self.cfg

    def __repr__(self):
        return f"HostPort({self.cfg.name})"


def sram_trace_layout(cfg: ChipConfig) -> data.ArrayLayout:
    """[superlane][i] -> {we, addr, data}: the i-th SRAM word written this cycle."""
    _check_cfg(cfg)
    word = data.StructLayout({
        "we": unsigned(1),
        "addr": unsigned(cfg.addr_bits),
        "data": unsigned(8 * cfg.lanes),
    })
    return data.ArrayLayout(data.ArrayLayout(word, MAX_WORDS), cfg.superlanes)


class MemSlice(wiring.Component):
    """One MEM slice: ``read``, ``write`` and ``gather`` (see the module docstring).

    Parameters
    ----------
    cfg : ChipConfig
    hemisphere : ``"w"`` or ``"e"``
        Which side of the VXM the slice sits on (for names; the logic is the same).
    init : array [mem_words, VL] of 8-bit values, optional
        Initial SRAM contents (also settable with :meth:`preload` before elaboration).

    Ports
    -----
    rd, wr, dispatch, error : see :func:`lpu.hdl.interface.SlicePorts` (one queue).
    host : In(HostPort(cfg))
    sram : Out(sram_trace_layout(cfg))
    """

    def __init__(self, cfg: ChipConfig, hemisphere: str, *, init=None):
        _check_cfg(cfg)
        if hemisphere not in ("w", "e"):
            self._MustUse__silence = True
            raise ValueError(f"Hemisphere must be 'w' or 'e', not {hemisphere!r}")
        self.cfg = cfg
        self.hemisphere = hemisphere
        self._init = None
        ports = SlicePorts(cfg, 1)
        ports["host"] = In(HostPort(cfg))
        ports["sram"] = Out(sram_trace_layout(cfg))
        super().__init__(ports)
        if init is not None:
            self.preload(init)

    def preload(self, image) -> None:
        """Set the initial SRAM contents, uint8 [n <= mem_words, VL] from address 0."""
        cfg = self.cfg
        img = np.asarray(image)
        if img.ndim != 2 or img.shape[1] != cfg.vl or img.shape[0] > cfg.mem_words:
            raise ValueError(f"SRAM image must be an array [n <= {cfg.mem_words}, {cfg.vl}], "
                             f"not of shape {img.shape}")
        full = np.zeros((cfg.mem_words, cfg.vl), dtype=np.uint8)
        full[:img.shape[0]] = img.astype(np.int64).astype(np.uint8)
        self._init = full

    # -- geometry ------------------------------------------------------------------------
    @property
    def interleave(self) -> int:
        """Sub-banks per bank column: consecutive bank-local addresses rotate over them."""
        return min(MAX_WORDS, self.cfg.bank_words)

    def _mem_init(self, k, bank, sub, lane):
        if self._init is None:
            return []
        cfg, n = self.cfg, self.interleave
        rows = np.arange(cfg.bank_words // n) * n + sub + bank * cfg.bank_words
        return [int(x) for x in self._init[rows, k * cfg.lanes + lane]]

    def _sub(self, r):
        """Bank-local address -> its sub-bank."""
        return r[:self._sub_bits] if self._sub_bits else Const(0, 1)

    def _row(self, r):
        """Bank-local address -> its row in the sub-bank."""
        return r[self._sub_bits:self._bw_bits]

    # -- logic -----------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        self._sub_bits = (self.interleave - 1).bit_length()
        self._bw_bits = (cfg.bank_words - 1).bit_length()  # bank-local address bits

        host = self.host
        h_bank = Signal(name="host_bank")
        h_r = Signal(self._bw_bits, name="host_r")
        m.d.comb += [h_bank.eq(host.addr >> self._bw_bits), h_r.eq(host.addr)]
        h_rd = (Signal(name="host_rd_bank"), Signal(max(1, self._sub_bits), name="host_rd_sub"))
        m.d.sync += [h_rd[0].eq(h_bank), h_rd[1].eq(self._sub(h_r))]

        errors = []  # per tile: [(condition, code)] in priority order
        host_rdata = []
        valid, ins = self.dispatch[0].valid, self.dispatch[0].word
        for k in range(cfg.superlanes):
            if k:  # the instruction moves north one tile per cycle
                v = Signal(name=f"t{k}_valid")
                w = Signal(Instruction, name=f"t{k}_ins")
                m.d.sync += [v.eq(valid), w.eq(ins)]
                valid, ins = v, w
            tile_errors, hd = self._tile(m, k, valid, ins, h_bank, h_r, h_rd)
            errors.append(tile_errors)
            host_rdata.append(hd)
        m.d.comb += host.r_data.eq(Cat(*host_rdata))

        # the lowest superlane first; within a tile, the order of the golden model's checks
        for k in reversed(range(cfg.superlanes)):
            for cond, code in reversed(errors[k]):
                with m.If(cond):
                    m.d.comb += [self.error.valid.eq(1), self.error.code.eq(code),
                                 self.error.superlane.eq(k)]
        return m

    def _operand(self, k, ref, j=0):
        """(data, valid) of stream ref.stream + j arriving at tile k."""
        west = ref.dir == Direction.WEST
        idx = ref.stream + j
        rd = self.rd
        return (Mux(west, rd.w[k][idx], rd.e[k][idx]),
                Mux(west, rd.w_valid[k][idx], rd.e_valid[k][idx]))

    def _tile(self, m, k, valid, ins, h_bank, h_r, h_rd):
        """Tile k: its SRAM columns and the stages of read, write and gather."""
        cfg = self.cfg
        L, NS = cfg.lanes, cfg.streams
        n_sub, sub_bits, bw_bits = self.interleave, self._sub_bits, self._bw_bits
        row_bits = bw_bits - sub_bits
        host = self.host

        def sig(shape, name):
            return Signal(shape, name=f"t{k}_{name}")

        op = ins.opcode
        mf, gf = ins.payload.mem, ins.payload.gather
        is_rd, is_wr, is_g = sig(1, "read"), sig(1, "write"), sig(1, "gather")
        a_bank, a_r = sig(1, "bank"), sig(bw_bits, "r")
        m.d.comb += [is_rd.eq(valid & (op == Opcode.READ)),
                     is_wr.eq(valid & (op == Opcode.WRITE)),
                     is_g.eq(valid & (op == Opcode.GATHER)),
                     a_bank.eq(mf.addr >> bw_bits), a_r.eq(mf.addr)]

        # -- stage A (t+k) of write and gather: the stream operands -------------------------------
        w_words = [sig(8 * L, f"wdata{j}") for j in range(MAX_WORDS)]
        missing = []
        for j, word in enumerate(w_words):
            val, ok = self._operand(k, mf.s, j)
            m.d.comb += word.eq(val)
            missing.append((mf.count >= j) & ~ok)
        w_empty, g_empty = sig(1, "w_empty"), sig(1, "g_empty")
        g_idx, g_ok = self._operand(k, gf.src)
        m.d.comb += [w_empty.eq(is_wr & _any(missing)), g_empty.eq(is_g & ~g_ok)]

        # -- stage B (t+k+1) ----------------------------------------------------------------------
        rB, rB_bank, rB_lo = sig(1, "rB"), sig(1, "rB_bank"), sig(max(1, sub_bits), "rB_lo")
        rB_cnt, rB_dst = sig(2, "rB_cnt"), sig(mf.s.shape(), "rB_dst")
        m.d.sync += [rB.eq(is_rd), rB_bank.eq(a_bank), rB_lo.eq(self._sub(a_r)),
                     rB_cnt.eq(mf.count), rB_dst.eq(mf.s)]
        wB, wB_bank, wB_r = sig(1, "wB"), sig(1, "wB_bank"), sig(bw_bits, "wB_r")
        wB_addr, wB_cnt = sig(cfg.addr_bits, "wB_addr"), sig(2, "wB_cnt")
        wB_data = [sig(8 * L, f"wB_data{j}") for j in range(MAX_WORDS)]
        m.d.sync += [wB.eq(is_wr & ~w_empty), wB_bank.eq(a_bank), wB_r.eq(a_r),
                     wB_addr.eq(mf.addr), wB_cnt.eq(mf.count)]
        m.d.sync += [wB_data[j].eq(w_words[j]) for j in range(MAX_WORDS)]
        gB, gB_base = sig(1, "gB"), sig(cfg.addr_bits, "gB_base")
        gB_idx, gB_dst = sig(8 * L, "gB_idx"), sig(gf.dst.shape(), "gB_dst")
        gB_bank = sig(1, "gB_bank")
        m.d.sync += [gB.eq(is_g & ~g_empty), gB_base.eq(gf.addr), gB_idx.eq(g_idx),
                     gB_dst.eq(gf.dst)]
        m.d.comb += gB_bank.eq(gB_base >> bw_bits)
        g_sub, g_row, g_bad = [], [], []  # per lane
        for lane in range(L):
            a = sig(cfg.addr_bits + 9, f"gB_a{lane}")
            m.d.comb += a.eq(gB_base + gB_idx[8 * lane:8 * lane + 8])
            g_sub.append(self._sub(a))
            g_row.append(self._row(a))
            g_bad.append((a >> bw_bits) != gB_bank)
        g_range = sig(1, "g_range")
        m.d.comb += g_range.eq(gB & _any(g_bad))
        bank_clash = sig(1, "bank_clash")
        m.d.comb += bank_clash.eq((is_rd & wB & (a_bank == wB_bank))
                                  | (is_rd & gB & (a_bank == gB_bank))
                                  | (gB & wB & (gB_bank == wB_bank)))

        # -- stage C (t+k+2) of gather ------------------------------------------------------------
        gC, gC_bank, gC_dst = sig(1, "gC"), sig(1, "gC_bank"), sig(gf.dst.shape(), "gC_dst")
        gC_sub = [sig(max(1, sub_bits), f"gC_sub{lane}") for lane in range(L)]
        m.d.sync += [gC.eq(gB & ~g_range), gC_bank.eq(gB_bank), gC_dst.eq(gB_dst)]
        m.d.sync += [gC_sub[lane].eq(g_sub[lane]) for lane in range(L)]

        # -- the SRAM columns ---------------------------------------------------------------------
        # sub-bank b holds word j = (b - r) mod I of the n words of a read or write at r
        def word_in(b, r, cnt, name):
            j = sig(max(1, sub_bits), name)
            m.d.comb += j.eq((b - self._sub(r)) if sub_bits else 0)
            row = sig(max(1, row_bits), name + "_row")
            m.d.comb += row.eq((r + j) >> sub_bits)
            return j, j <= cnt, row

        rdata = {}  # (bank, sub, lane) -> read data
        for bank in range(2):
            for b in range(n_sub):
                _, r_act, r_row = word_in(b, a_r, mf.count, f"b{bank}s{b}_rj")
                wj, w_act, w_row = word_in(b, wB_r, wB_cnt, f"b{bank}s{b}_wj")
                w_sel = sig(8 * L, f"b{bank}s{b}_wdata")
                with m.Switch(wj):
                    for j in range(n_sub):
                        with m.Case(j):
                            m.d.comb += w_sel.eq(wB_data[j])
                use_rd = is_rd & (a_bank == bank) & r_act
                use_wr = wB & (wB_bank == bank) & w_act
                host_here = host.w_en & (h_bank == bank) & (self._sub(h_r) == b)
                for lane in range(L):
                    mem = Memory(shape=8, depth=cfg.bank_words // n_sub,
                                 init=self._mem_init(k, bank, b, lane), attrs=RAM_ATTRS)
                    m.submodules[f"t{k}_b{bank}s{b}l{lane}"] = mem
                    rp, wp = mem.read_port(), mem.write_port()
                    rdata[bank, b, lane] = rp.data
                    with m.If(use_rd):
                        m.d.comb += rp.addr.eq(r_row)
                    with m.Elif(gB & (gB_bank == bank) & (g_sub[lane] == b)):
                        m.d.comb += rp.addr.eq(g_row[lane])
                    with m.Else():
                        m.d.comb += rp.addr.eq(self._row(h_r))
                    with m.If(use_wr):
                        m.d.comb += [wp.en.eq(1), wp.addr.eq(w_row),
                                     wp.data.eq(w_sel[8 * lane:8 * lane + 8])]
                    with m.Elif(host_here):
                        m.d.comb += [wp.en.eq(1), wp.addr.eq(self._row(h_r)),
                                     wp.data.eq(host.w_data[8 * (k * L + lane):][:8])]

        def columns(bank, subs, name):
            """The word whose lane i is read data of (bank, subs[i], lane i)."""
            out = sig(8 * L, name)
            for lane, sub in enumerate(subs):
                key = Cat(sub[:sub_bits], bank) if sub_bits else bank
                with m.Switch(key):
                    for bk in range(2):
                        for b in range(n_sub):
                            with m.Case(bk << sub_bits | b):
                                m.d.comb += out[8 * lane:8 * lane + 8].eq(rdata[bk, b, lane])
            return out

        # -- stream writes: read at t+k+1, gather at t+k+2 ----------------------------------------
        r_words = []
        for j in range(MAX_WORDS):
            sub_j = sig(max(1, sub_bits), f"rsub{j}")
            m.d.comb += sub_j.eq(rB_lo + j if sub_bits else 0)
            word = columns(rB_bank, [sub_j] * L, f"rword{j}")
            # only the read's `count` words: the others would spill onto the streams
            # above the destination (where a gather may write in the same cycle)
            r_words.append(Mux(rB_cnt >= j, word, 0))
        g_word = columns(gC_bank, gC_sub, "gword")
        host_rdata = columns(h_rd[0], [h_rd[1]] * L, "host_rdata")
        # a read's n words and a gather's word, shifted into place across the streams
        r_mask = sig(NS, "r_mask")
        r_all = sig(NS * 8 * L, "r_all")
        m.d.comb += [r_mask.eq((Const(0b1111, 4) >> ~rB_cnt) << rB_dst.stream),
                     r_all.eq(shift_words(Cat(*r_words), rB_dst.stream, 8 * L, NS))]
        g_mask = sig(NS, "g_mask")
        g_all = sig(NS * 8 * L, "g_all")
        m.d.comb += [g_mask.eq(Const(1, 1) << gC_dst.stream),
                     g_all.eq(shift_words(g_word, gC_dst.stream, 8 * L, NS))]
        clash = sig(1, "clash")
        m.d.comb += clash.eq(rB & gC & (rB_dst.dir == gC_dst.dir) & (r_mask & g_mask).any())
        for d, out, we in ((Direction.EAST, self.wr.e[k], self.wr.e_we[k]),
                           (Direction.WEST, self.wr.w[k], self.wr.w_we[k])):
            r_here = rB & (rB_dst.dir == d)
            g_here = gC & (gC_dst.dir == d)
            m.d.comb += [
                we.eq(Mux(r_here, r_mask, 0) | Mux(g_here, g_mask, 0)),
                out.eq(Mux(r_here, r_all, 0) | Mux(g_here, g_all, 0)),
            ]

        # -- trace --------------------------------------------------------------------------------
        for j in range(MAX_WORDS):
            tr = self.sram[k][j]
            m.d.comb += [tr.we.eq(wB & (wB_cnt >= j)), tr.addr.eq(wB_addr + j),
                         tr.data.eq(wB_data[j])]

        errors = [(g_range, ErrorCode.RANGE),
                  (w_empty | g_empty, ErrorCode.EMPTY_READ),
                  (bank_clash, ErrorCode.BANK),
                  (clash, ErrorCode.TWO_WRITERS)]
        return errors, host_rdata


def _any(values):
    return Cat(*values).any()
