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

ECC (``cfg.ecc``, :mod:`lpu.ecc`)
---------------------------------
Every ECC word (one tile's ``lanes`` bytes of one SRAM word) has its check bits in a
column memory of its own beside the lane columns, written with the word: the encoder
(:mod:`lpu.hdl.ecc`) sits where a word enters the SRAM (a stream ``write``, a host
write). The decoder sits where a word leaves it onto a stream or to the host (a
``read``, a host read), in the cycle the read data come out of the memories, so a read
keeps its delay: the corrected word goes onto the streams at ``t+k+1`` as before. A
single-bit error is corrected and counted (``host.corrected``: the ECC words corrected
this cycle); an uncorrectable one goes out as stored and raises ``ECC`` (``error.addr``
its address; the lowest priority of the tile's errors, and after every tile's, a host
read's). ``gather`` reads each lane at its own address, never a whole ECC word: its
bytes are not checked. The stored word is not rewritten (no scrubbing): every read of
it corrects again.

Faults (tests only): ``faults`` (:class:`MemFault`, elaborate time) flip one stored bit
of one ECC word from power-up or from a cycle of the run (``cycle``/``running`` ports,
the host's counter), until the word is next written; ``fault_port=True`` adds a port
``fault`` (:class:`FaultPort`) that sets one such fault (any bit mask) at run time. A
fault is an XOR on the read data, data and check bits, of every read of the word (the
gather's bytes included), the same as a flipped bit in the memory.

Trace
-----
``sram`` (:func:`sram_trace_layout`): per superlane, the up to four word writes of
this cycle (``we``, ``addr``, ``data``), for the lockstep checker's ``sram`` events;
``ecc`` (:func:`ecc_trace_layout`): per superlane, the up to four read words of this
cycle with an error (``ecc`` events); leave them unconnected in synthesis.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.ecc import REPORT_BYTES, check_bits, hamming_masks
from lpu.isa import Direction, Opcode

from . import ecc
from .interface import ErrorCode, SlicePorts, shift_words, superlane_dispatch

__all__ = ["MemSlice", "HostPort", "FaultPort", "MemFault", "sram_trace_layout",
           "ecc_trace_layout", "ecc_width"]

MAX_WORDS = 4  # words moved by one read or write

#: Synthesis attributes of every column memory: block RAM (an ECP5 DP16KD each), not
#: LUT RAM and its read multiplexers. On the `fpga` preset this takes each MEM slice from
#: 8,130 LUT4s and 256 LUT RAMs to 6,521 LUT4s and 32 block RAMs (`lpu synth --blocks`,
#: docs/benchmarks.md). Simulators ignore it.
RAM_ATTRS = {"ram_style": "block"}


def _check_cfg(cfg):
    if not isinstance(cfg, ChipConfig):
        raise TypeError(f"Chip configuration must be a ChipConfig, not {cfg!r}")


def ecc_width(cfg: ChipConfig) -> int:
    """Stored bits of one ECC word: data, and the check bits if ``cfg.ecc``."""
    k = 8 * cfg.lanes
    return k + (check_bits(k) if cfg.ecc else 0)


def _check_word(value: int, k: int) -> int:
    """The check word of a k-bit integer (for the memories' initial contents)."""
    ham = [bin(value & mask).count("1") & 1 for mask in hamming_masks(k)]
    overall = (bin(value).count("1") + sum(ham)) & 1
    return sum(b << i for i, b in enumerate(ham)) | overall << len(ham)


@dataclass(frozen=True)
class MemFault:
    """A flipped stored bit, for tests only: bit `bit` (:mod:`lpu.ecc`'s bit index:
    data bits, then check bits) of superlane `superlane`'s ECC word at `addr` of MEM
    slice `slice` (a name; :class:`lpu.hdl.chip.Chip` hands it to that slice), from
    power-up (``cycle=None``) or from cycle `cycle` of a run, until the word is next
    written: :meth:`lpu.golden.chip.Chip.inject` with the same arguments."""

    slice: str
    addr: int
    bit: int
    superlane: int = 0
    cycle: int | None = None


class FaultPort(wiring.Signature):
    """Sets a fault at run time (tests only; from the driver's side).

    Members
    -------
    en : Out(1)
        In cycle ``c``: from cycle ``c + 1`` on, reads of (``superlane``, ``addr``) see
        ``mask`` XORed onto the stored bits (data, then check bits) until the word is
        written; replaces the previous run-time fault.
    superlane, addr, mask : Out
    """

    def __init__(self, cfg: ChipConfig):
        _check_cfg(cfg)
        self.cfg = cfg
        super().__init__({"en": Out(1), "superlane": Out(range(max(2, cfg.superlanes))),
                          "addr": Out(cfg.addr_bits), "mask": Out(ecc_width(cfg))})

    def __eq__(self, other):
        return type(other) is FaultPort and other.cfg == self.cfg

    def __repr__(self):
        return f"FaultPort({self.cfg.name})"


class HostPort(wiring.Signature):
    """Whole-vector SRAM access for the host interface (from the host's side).

    Members
    -------
    addr : Out(range(mem_words))
    w_en : Out(1), w_data : Out(8 * VL)
        Write ``w_data`` (lane ``i`` in bits ``8i..8i+7``) at ``addr``.
    r_en : Out(1), r_data : In(8 * VL)
        ``r_data`` holds, in the cycle after ``r_en``, the word at ``addr`` (each ECC
        word corrected).
    corrected : In(8)
        ECC words corrected this cycle (instruction reads and host reads).
    """

    def __init__(self, cfg: ChipConfig):
        _check_cfg(cfg)
        self.cfg = cfg
        super().__init__({
            "addr": Out(range(cfg.mem_words)),
            "w_en": Out(1), "w_data": Out(8 * cfg.vl),
            "r_en": Out(1), "r_data": In(8 * cfg.vl),
            "corrected": In(8),
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


def ecc_trace_layout(cfg: ChipConfig) -> data.ArrayLayout:
    """[superlane][i] -> {valid, detected, addr, report}: the i-th word a ``read`` puts
    on the streams this cycle, if its ECC word had an error (``ecc`` events)."""
    _check_cfg(cfg)
    word = data.StructLayout({
        "valid": unsigned(1),
        "detected": unsigned(1),
        "addr": unsigned(cfg.addr_bits),
        "report": unsigned(8 * REPORT_BYTES),
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
    faults : list of :class:`MemFault`, optional; fault_port : bool
        Tests only (see the module docstring).

    Ports
    -----
    rd, wr, dispatch, error : see :func:`lpu.hdl.interface.SlicePorts` (one queue).
    host : In(HostPort(cfg))
    sram : Out(sram_trace_layout(cfg)), ecc : Out(ecc_trace_layout(cfg))
    cycle : In(32), running : In(1)
        Only with a fault at a cycle: the host's cycle counter and run state.
    fault : In(FaultPort(cfg)), only with ``fault_port=True``.
    """

    def __init__(self, cfg: ChipConfig, hemisphere: str, *, init=None, faults=(),
                 fault_port: bool = False):
        _check_cfg(cfg)
        if hemisphere not in ("w", "e"):
            self._MustUse__silence = True
            raise ValueError(f"Hemisphere must be 'w' or 'e', not {hemisphere!r}")
        faults = tuple(faults)
        for f in faults:
            if not (isinstance(f, MemFault) and 0 <= f.addr < cfg.mem_words
                    and 0 <= f.bit < ecc_width(cfg) and 0 <= f.superlane < cfg.superlanes
                    and (f.cycle is None or f.cycle >= 0)):
                self._MustUse__silence = True
                raise ValueError(f"{f!r} is not a MemFault inside this chip")
        self.cfg = cfg
        self.hemisphere = hemisphere
        self._init = None
        self.faults = faults
        self.fault_port = fault_port
        ports = SlicePorts(cfg, 1)
        ports["host"] = In(HostPort(cfg))
        ports["sram"] = Out(sram_trace_layout(cfg))
        ports["ecc"] = Out(ecc_trace_layout(cfg))
        if any(f.cycle is not None for f in faults):
            ports["cycle"] = In(32)
            ports["running"] = In(1)
        if fault_port:
            ports["fault"] = In(FaultPort(cfg))
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

    def _check_init(self, k, bank, sub):
        if self._init is None:
            return []
        cfg, n = self.cfg, self.interleave
        rows = np.arange(cfg.bank_words // n) * n + sub + bank * cfg.bank_words
        words = self._init[rows, k * cfg.lanes:(k + 1) * cfg.lanes]
        return [_check_word(int.from_bytes(w.tobytes(), "little"), 8 * cfg.lanes)
                for w in words]

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

        self._faults(m)
        h_addr = Signal(cfg.addr_bits, name="host_rd_addr")
        h_valid = Signal(name="host_rd_valid")
        m.d.sync += [h_addr.eq(host.addr), h_valid.eq(host.r_en)]
        h_rd = (*h_rd, h_addr, h_valid)

        errors = []  # per tile: [(condition, code, address)] in priority order
        host_errors = []
        host_rdata = []
        corrected = []  # 1-bit: an ECC word corrected this cycle
        valid, ins = superlane_dispatch(m, self.dispatch[0], cfg.superlanes)
        for k in range(cfg.superlanes):
            tile_errors, hd, h_err, cor = self._tile(m, k, valid[k], ins[k], h_bank, h_r, h_rd)
            errors.append(tile_errors)
            host_errors.append((*h_err, k))
            host_rdata.append(hd)
            corrected += cor
        m.d.comb += host.r_data.eq(Cat(*host_rdata))
        m.d.comb += host.corrected.eq(sum(corrected) if corrected else 0)
        for e in self._entries:
            m.d.sync += e["on"].eq((e["act"] & ~_any(e["written"] or [Const(0, 1)]))
                                   | e.get("en", 0))

        # after every tile's errors, a host read's: the lowest superlane first
        for cond, code, addr, k in reversed(host_errors):
            with m.If(cond):
                m.d.comb += [self.error.valid.eq(1), self.error.code.eq(code),
                             self.error.superlane.eq(k), self.error.addr.eq(addr)]
        # the lowest superlane first; within a tile, the order of the golden model's checks
        for k in reversed(range(cfg.superlanes)):
            for cond, code, addr in reversed(errors[k]):
                with m.If(cond):
                    m.d.comb += [self.error.valid.eq(1), self.error.code.eq(code),
                                 self.error.superlane.eq(k)]
                    if addr is not None:
                        m.d.comb += self.error.addr.eq(addr)
        return m

    def _faults(self, m):
        """The fault entries (tests only): ``act`` high in a cycle whose SRAM accesses
        see the fault, ``act_d`` the same one cycle later (when the read data come out),
        ``written`` terms the tiles add (the word written: the fault ends)."""
        cfg = self.cfg
        W, ab = ecc_width(cfg), cfg.addr_bits
        self._entries = []
        for i, f in enumerate(self.faults):
            on = Signal(name=f"fault{i}_on", init=int(f.cycle is None))
            act = Signal(name=f"fault{i}_act")
            trig = (self.running & (self.cycle == f.cycle)) if f.cycle is not None else 0
            m.d.comb += act.eq(on | trig)
            self._entries.append({"k": f.superlane, "addr": Const(f.addr, ab),
                                  "mask": Const(1 << f.bit, W), "on": on, "act": act})
        if self.fault_port:
            fp = self.fault
            k_r, a_r = Signal.like(fp.superlane, name="fault_k"), Signal(ab, name="fault_addr")
            mask_r, on = Signal(W, name="fault_mask"), Signal(name="fault_on")
            with m.If(fp.en):
                m.d.sync += [k_r.eq(fp.superlane), a_r.eq(fp.addr), mask_r.eq(fp.mask)]
            self._entries.append({"k": k_r, "addr": a_r, "mask": mask_r, "on": on,
                                  "act": on, "en": fp.en})
        for i, e in enumerate(self._entries):
            e["act_d"] = Signal(name=f"fault{i}_act_d")
            e["written"] = []
            m.d.sync += e["act_d"].eq(e["act"])

    def _fault_mask(self, k, addr, width=None):
        """XOR mask (ecc_width bits) on a word of tile k at `addr` read out this cycle."""
        out = Const(0, ecc_width(self.cfg))
        for e in self._entries:
            here = (e["k"] == k) if not isinstance(e["k"], int) else e["k"] == k
            if here is False:
                continue
            out = out | Mux(here & e["act_d"] & (addr == e["addr"]), e["mask"], 0)
        return out

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
        rB_addr = sig(cfg.addr_bits, "rB_addr")
        m.d.sync += rB_addr.eq(mf.addr)
        k_bits = 8 * L
        use_ecc = cfg.ecc
        if use_ecc:  # the encoders: where a word enters the SRAM
            wB_chk = [sig(check_bits(k_bits), f"wB_check{j}") for j in range(MAX_WORDS)]
            m.d.comb += [wB_chk[j].eq(ecc.encode(wB_data[j], k_bits))
                         for j in range(MAX_WORDS)]
            h_chk = sig(check_bits(k_bits), "host_check")
            m.d.comb += h_chk.eq(ecc.encode(host.w_data[8 * k * L:][:k_bits], k_bits))
        for e in self._entries:  # a write of the faulty word ends the fault
            here = (e["k"] == k) if not isinstance(e["k"], int) else e["k"] == k
            if here is False:
                continue
            hit = [wB & (wB_cnt >= j) & ((wB_addr + j)[:cfg.addr_bits] == e["addr"])
                   for j in range(MAX_WORDS)]
            hit.append(host.w_en & (host.addr == e["addr"]))
            e["written"].append(here & _any(hit))
        gB, gB_base = sig(1, "gB"), sig(cfg.addr_bits, "gB_base")
        gB_idx, gB_dst = sig(8 * L, "gB_idx"), sig(gf.dst.shape(), "gB_dst")
        gB_bank = sig(1, "gB_bank")
        m.d.sync += [gB.eq(is_g & ~g_empty), gB_base.eq(gf.addr), gB_idx.eq(g_idx),
                     gB_dst.eq(gf.dst)]
        m.d.comb += gB_bank.eq(gB_base >> bw_bits)
        g_sub, g_row, g_bad, g_addr = [], [], [], []  # per lane
        for lane in range(L):
            a = sig(cfg.addr_bits + 9, f"gB_a{lane}")
            m.d.comb += a.eq(gB_base + gB_idx[8 * lane:8 * lane + 8])
            g_addr.append(a[:cfg.addr_bits])
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
        gC_addr = [sig(cfg.addr_bits, f"gC_a{lane}") for lane in range(L)]
        m.d.sync += [gC_addr[lane].eq(m_a) for lane, m_a in enumerate(g_addr)]

        # -- the SRAM columns ---------------------------------------------------------------------
        # sub-bank b holds word j = (b - r) mod I of the n words of a read or write at r
        def word_in(b, r, cnt, name):
            j = sig(max(1, sub_bits), name)
            m.d.comb += j.eq((b - self._sub(r)) if sub_bits else 0)
            row = sig(max(1, row_bits), name + "_row")
            m.d.comb += row.eq((r + j) >> sub_bits)
            return j, j <= cnt, row

        rdata = {}  # (bank, sub, lane) -> read data
        cdata = {}  # (bank, sub) -> read check word
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
                if not use_ecc:
                    continue
                c_sel = sig(check_bits(k_bits), f"b{bank}s{b}_wcheck")
                with m.Switch(wj):
                    for j in range(n_sub):
                        with m.Case(j):
                            m.d.comb += c_sel.eq(wB_chk[j])
                mem = Memory(shape=check_bits(k_bits), depth=cfg.bank_words // n_sub,
                             init=self._check_init(k, bank, b), attrs=RAM_ATTRS)
                m.submodules[f"t{k}_b{bank}s{b}ecc"] = mem
                rp, wp = mem.read_port(), mem.write_port()
                cdata[bank, b] = rp.data
                with m.If(use_rd):
                    m.d.comb += rp.addr.eq(r_row)
                with m.Else():
                    m.d.comb += rp.addr.eq(self._row(h_r))
                with m.If(use_wr):
                    m.d.comb += [wp.en.eq(1), wp.addr.eq(w_row), wp.data.eq(c_sel)]
                with m.Elif(host_here):
                    m.d.comb += [wp.en.eq(1), wp.addr.eq(self._row(h_r)), wp.data.eq(h_chk)]

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

        def check_of(bank, sub, name):
            """The check word read from (bank, sub)."""
            out = sig(check_bits(k_bits), name)
            key = Cat(sub[:sub_bits], bank) if sub_bits else bank
            with m.Switch(key):
                for bk in range(2):
                    for b in range(n_sub):
                        with m.Case(bk << sub_bits | b):
                            m.d.comb += out.eq(cdata[bk, b])
            return out

        def checked(word, bank, sub, addr, name):
            """(data, corrected, detected, report) of a word read out this cycle: the
            faults' XOR, then the decoder (:mod:`lpu.hdl.ecc`)."""
            chk = check_of(bank, sub, name + "_check") if use_ecc else Const(0, 0)
            stored = sig(ecc_width(cfg), name + "_stored")
            m.d.comb += stored.eq(Cat(word, chk) ^ self._fault_mask(k, addr))
            if not use_ecc:
                return stored[:k_bits], Const(0, 1), Const(0, 1), Const(0, 1)
            return ecc.decode(m, stored[:k_bits], stored[k_bits:], k_bits, name)

        # -- stream writes: read at t+k+1, gather at t+k+2 ----------------------------------------
        r_words, cor, det, det_addr = [], [], [], []
        for j in range(MAX_WORDS):
            sub_j = sig(max(1, sub_bits), f"rsub{j}")
            m.d.comb += sub_j.eq(rB_lo + j if sub_bits else 0)
            word = columns(rB_bank, [sub_j] * L, f"rword{j}")
            addr_j = sig(cfg.addr_bits, f"raddr{j}")
            m.d.comb += addr_j.eq(rB_addr + j)
            word, c_j, d_j, rep = checked(word, rB_bank, sub_j, addr_j, f"t{k}_r{j}_ecc")
            on = rB & (rB_cnt >= j)
            tr = self.ecc[k][j]
            m.d.comb += [tr.valid.eq(on & (c_j | d_j)), tr.detected.eq(d_j),
                         tr.addr.eq(addr_j), tr.report.eq(rep)]
            cor.append(on & c_j)
            det.append(on & d_j)
            det_addr.append(addr_j)
            # only the read's `count` words: the others would spill onto the streams
            # above the destination (where a gather may write in the same cycle)
            r_words.append(Mux(rB_cnt >= j, word, 0))
        g_word = sig(8 * L, "gword_read")
        m.d.comb += g_word.eq(columns(gC_bank, gC_sub, "gword"))
        g_flip = [self._fault_mask(k, gC_addr[lane])[8 * lane:8 * lane + 8] for lane in range(L)]
        g_word = g_word ^ Cat(*g_flip)  # not checked: see the module docstring
        h_word = columns(h_rd[0], [h_rd[1]] * L, "host_rdata_read")
        host_rdata, h_c, h_d, _ = checked(h_word, h_rd[0], h_rd[1], h_rd[2], f"t{k}_h_ecc")
        cor.append(h_rd[3] & h_c)
        e_addr = sig(cfg.addr_bits, "ecc_err_addr")
        for j in reversed(range(MAX_WORDS)):
            with m.If(det[j]):
                m.d.comb += e_addr.eq(det_addr[j])
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

        errors = [(g_range, ErrorCode.RANGE, None),
                  (w_empty | g_empty, ErrorCode.EMPTY_READ, None),
                  (bank_clash, ErrorCode.BANK, None),
                  (clash, ErrorCode.TWO_WRITERS, None),
                  (_any(det), ErrorCode.ECC, e_addr)]
        return errors, host_rdata, (h_rd[3] & h_d, ErrorCode.ECC, h_rd[2]), cor


def _any(values):
    return Cat(*values).any()
