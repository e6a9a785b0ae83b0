"""The host interface: a small register block on a simple synchronous bus.

Bus (:class:`Bus`)
------------------
One access per cycle, no wait states, no handshake. Word addresses (each address is one
32-bit register). ``w_en`` high in cycle ``c`` writes ``w_data`` to ``addr`` at the end
of ``c``; ``r_en`` high in cycle ``c`` presents the register at ``addr`` on ``r_data``
in cycle ``c + 1`` (``r_data`` is 0 after a cycle without ``r_en``). A read and a
write may not be issued in one cycle. Reading a write-only or unmapped address gives 0.

Register map
------------
``Q`` = ``len(cfg.queues)`` (queue indices in config order), ``M`` = ``2 *
cfg.mem_slices`` MEM slices (``mem_w0 .. mem_w{n-1}, mem_e0 .. mem_e{n-1}``), ``S`` =
superlanes, ``C`` = ``ceil(lanes / 4)`` chunks per superlane. :class:`RegisterMap`
computes every address below.

===========================  ====  =====================================================
address                      acc.  register
===========================  ====  =====================================================
``0x000`` ID                 R     ``0x4C505500 | ISA major`` ("LPU", version)
``0x001`` HASH_LO            R     config hash (48 bits), bits 0-31
``0x002`` HASH_HI            R     config hash, bits 32-47
``0x003`` CTRL               W     bit 0 START: the cycle of this write is cycle -1,
                                   every queue starts from instruction 0 and cycle 0 is
                                   the next cycle; clears DONE, the cycle counter and the
                                   error registers. bit 1 CLEAR: clears the error
                                   registers only
``0x004`` STATUS             R     bit 0 RUNNING, bit 1 DONE, bit 2 ERROR (sticky)
``0x005`` CYCLE              R     while running, the current cycle (0 in cycle 0);
                                   after DONE, the run's last cycle (the drain
                                   included; DONE reads 1 from the cycle after it)
``0x006`` PARKED             R     bit ``q``: queue ``q`` parked at a sync (q < 32)
``0x008`` ERR_CYCLE          R     cycle of the first illegal event since START/CLEAR
                                   (the real cycle, on ERR_SUPERLANE: the golden
                                   model's skewed cycle is ERR_CYCLE - ERR_SUPERLANE)
``0x009`` ERR_CODE           R     its :class:`~lpu.hdl.interface.ErrorCode` (0: none)
``0x00A`` ERR_POSITION       R     position index of the slice that raised it
``0x00B`` ERR_SUPERLANE      R     its superlane
``0x00C`` ERR_UNIT           R     its unit (VXM ALU, MXM plane; 0 elsewhere)
``0x00D`` ERR_QUEUE          R     queue index of (position, unit): the unit-th queue
                                   of that position
``0x010`` SRAM_WRITE         W     ``slice << 16 | addr``: write the word buffer to SRAM
                                   word ``addr`` of MEM slice ``slice`` (the whole
                                   vector, every superlane)
``0x011`` SRAM_READ          W     ``slice << 16 | addr``: load that SRAM word into the
                                   word buffer; readable from the next cycle on
``0x100 + q``  QLEN[q]       W     program length (words) of queue ``q``
``0x200 + k*C + c`` WBUF     RW    word buffer, superlane ``k``, chunk ``c``: lanes
                                   ``4c .. 4c+3`` of the superlane (lane ``4c`` in bits
                                   0-7; bytes past ``lanes`` read 0)
``0x8000_0000 + q*imem_words + i``  W  instruction word ``i`` of queue ``q``
===========================  ====  =====================================================

Loading SRAM word ``a`` of slice ``m``: write every WBUF chunk, then SRAM_WRITE. Reading
it: SRAM_READ, then read the chunks. SRAM accesses are meant for an idle chip (the
slices give their instructions precedence).

Errors: the first cycle in which any slice raises ``SliceError`` is recorded (the
lowest position wins within a cycle), with the slice's code, superlane and unit; later
errors are ignored until START or CLEAR.

Run control (docs/timing.md, "The end of a run"): START pulses every dispatcher's
``start``; RUNNING stays high from cycle 0 until every queue is finished (cycle ``F``)
and :func:`lpu.isa.drain_cycles` more cycles have passed: high in cycles
``0 .. F + drain``, DONE from the cycle after, CYCLE then reading ``F + drain``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.isa import ISA_VERSION, drain_cycles

from .icu import ImemLoad
from .interface import SliceError
from .mem import HostPort

__all__ = ["Bus", "RegisterMap", "Host"]


class Bus(wiring.Signature):
    """The host bus, from the host's (initiator's) side.

    Members
    -------
    addr : Out(32)
        Word address.
    w_en : Out(1), w_data : Out(32)
        Write ``w_data`` to ``addr`` this cycle.
    r_en : Out(1), r_data : In(32)
        Read ``addr``; ``r_data`` holds it in the next cycle.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(32),
            "w_en": Out(1), "w_data": Out(32),
            "r_en": Out(1), "r_data": In(32),
        })


class RegisterMap:
    """Addresses and data packing of the host registers for one config (pure Python)."""

    ID = 0x000
    HASH_LO = 0x001
    HASH_HI = 0x002
    CTRL = 0x003
    STATUS = 0x004
    CYCLE = 0x005
    PARKED = 0x006
    ERR_CYCLE = 0x008
    ERR_CODE = 0x009
    ERR_POSITION = 0x00A
    ERR_SUPERLANE = 0x00B
    ERR_UNIT = 0x00C
    ERR_QUEUE = 0x00D
    SRAM_WRITE = 0x010
    SRAM_READ = 0x011
    QLEN = 0x100
    WBUF = 0x200
    IMEM = 0x8000_0000

    CTRL_START = 1 << 0
    CTRL_CLEAR = 1 << 1
    STATUS_RUNNING = 1 << 0
    STATUS_DONE = 1 << 1
    STATUS_ERROR = 1 << 2

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            raise TypeError(f"RegisterMap needs a ChipConfig, not {cfg!r}")
        self.cfg = cfg
        self.chunks = (cfg.lanes + 3) // 4
        self.mem_slices = [q.name for q in cfg.queues if q.kind == "mem"]
        if len(cfg.queues) > 0x100:
            raise ValueError(f"{len(cfg.queues)} queues do not fit the QLEN registers (256)")
        if cfg.superlanes * self.chunks > 0x200:
            raise ValueError("the word buffer does not fit its 512 registers")

    @property
    def id_value(self) -> int:
        return 0x4C505500 | ISA_VERSION[0]

    @property
    def hash_value(self) -> int:
        return int(self.cfg.hash, 16)

    def qlen(self, queue: int) -> int:
        return self.QLEN + queue

    def imem(self, queue: int, index: int) -> int:
        if not 0 <= index < self.cfg.imem_words:
            raise ValueError(f"instruction index {index} is outside 0..{self.cfg.imem_words - 1}")
        return self.IMEM + queue * self.cfg.imem_words + index

    def wbuf(self, superlane: int, chunk: int) -> int:
        return self.WBUF + superlane * self.chunks + chunk

    def sram_target(self, mem_slice: int | str, addr: int) -> int:
        """The value to write to SRAM_WRITE / SRAM_READ."""
        if isinstance(mem_slice, str):
            mem_slice = self.mem_slices.index(mem_slice)
        if not 0 <= addr < self.cfg.mem_words:
            raise ValueError(f"address {addr} is outside 0..{self.cfg.mem_words - 1}")
        return mem_slice << 16 | addr

    def word_chunks(self, word: bytes) -> list[tuple[int, int]]:
        """A VL-byte word -> [(WBUF address, 32-bit value)] for every chunk."""
        cfg = self.cfg
        if len(word) != cfg.vl:
            raise ValueError(f"a word is {cfg.vl} bytes, not {len(word)}")
        out = []
        for k in range(cfg.superlanes):
            lanes = word[k * cfg.lanes:(k + 1) * cfg.lanes]
            for c in range(self.chunks):
                out.append((self.wbuf(k, c), int.from_bytes(lanes[4 * c:4 * c + 4], "little")))
        return out

    def chunks_word(self, values: list[int]) -> bytes:
        """The chunk values in WBUF order -> the VL-byte word."""
        cfg = self.cfg
        out = bytearray()
        for k in range(cfg.superlanes):
            lanes = b"".join(values[k * self.chunks + c].to_bytes(4, "little")
                             for c in range(self.chunks))
            out += lanes[:cfg.lanes]
        return bytes(out)


class Host(wiring.Component):
    """The register block (see the module docstring for the map).

    Ports
    -----
    bus : In(Bus())
    imem : Out(ImemLoad(cfg, queues=True))
        To the ICU's ``load``.
    start : Out(1)
        To the ICU's ``start`` (combinational from the CTRL write).
    icu_done : In(1), parked : In(len(cfg.queues))
        From the ICU.
    mem[i] : Out(HostPort(cfg))
        To MEM slice ``i``'s ``host`` port (MEM slices in queue order).
    errors[p] : In(SliceError(cfg))
        From the slice at position ``p``.
    cycle : Out(32), running : Out(1)
        The cycle counter and run state (for the trace port).
    """

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"Host needs a ChipConfig, not {cfg!r}")
        self._cfg = cfg
        self.map = RegisterMap(cfg)
        n_mem = len(self.map.mem_slices)
        super().__init__({
            "bus": In(Bus()),
            "imem": Out(ImemLoad(cfg, queues=True)),
            "start": Out(1),
            "icu_done": In(1),
            "parked": In(len(cfg.queues)),
            "mem": Out(HostPort(cfg)).array(n_mem),
            "errors": In(SliceError(cfg)).array(len(cfg.positions)),
            "cycle": Out(32),
            "running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, rm = self._cfg, self.map
        bus = self.bus
        VL, L, C = cfg.vl, cfg.lanes, rm.chunks
        n_mem = len(rm.mem_slices)
        wr = Signal()
        m.d.comb += wr.eq(bus.w_en)

        def write_to(address):
            return wr & (bus.addr == address)

        # -- run control ---------------------------------------------------------------------
        start = write_to(rm.CTRL) & bus.w_data[0]
        clear = start | (write_to(rm.CTRL) & bus.w_data[1])
        m.d.comb += self.start.eq(start)
        running, done = Signal(), Signal()
        cycle = Signal(32)
        n_drain = drain_cycles(cfg.superlanes)
        drain = Signal(range(n_drain + 1))
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0), cycle.eq(0), drain.eq(n_drain)]
        with m.Elif(running):
            with m.If(self.icu_done & (drain == 0)):
                m.d.sync += [running.eq(0), done.eq(1)]
            with m.Else():
                m.d.sync += cycle.eq(cycle + 1)
                with m.If(self.icu_done):
                    m.d.sync += drain.eq(drain - 1)
        m.d.comb += [self.cycle.eq(cycle), self.running.eq(running)]

        # -- instruction memories and lengths ------------------------------------------------
        qbits = max(1, (len(cfg.queues) - 1).bit_length())
        ibits = (cfg.imem_words - 1).bit_length()
        in_imem = bus.addr[31]
        m.d.comb += [
            self.imem.addr.eq(bus.addr[:ibits] if ibits else 0),
            self.imem.data.eq(bus.w_data),
            self.imem.en.eq(wr & in_imem),
        ]
        in_qlen = ~in_imem & (bus.addr[8:31] == rm.QLEN >> 8)
        with m.If(in_imem):
            m.d.comb += self.imem.queue.eq(bus.addr[ibits:ibits + qbits])
        with m.Else():
            m.d.comb += self.imem.queue.eq(bus.addr[:8])
        m.d.comb += self.imem.len_en.eq(wr & in_qlen)

        # -- word buffer and SRAM ------------------------------------------------------------
        wbuf = Signal(8 * VL)
        loading = Signal()  # the word buffer takes r_data this cycle
        load_slice = Signal(range(max(2, n_mem)))
        m.d.sync += loading.eq(0)
        tgt_slice = bus.w_data[16:24]
        tgt_addr = bus.w_data[:16]
        sram_write = write_to(rm.SRAM_WRITE)
        sram_read = write_to(rm.SRAM_READ)
        for i, port in enumerate(self.mem):
            m.d.comb += [
                port.addr.eq(tgt_addr),
                port.w_data.eq(wbuf),
                port.w_en.eq(sram_write & (tgt_slice == i)),
                port.r_en.eq(sram_read & (tgt_slice == i)),
            ]
        with m.If(sram_read):
            m.d.sync += [loading.eq(1), load_slice.eq(tgt_slice)]
        loaded = Signal(8 * VL)
        with m.Switch(load_slice):
            for i, port in enumerate(self.mem):
                with m.Case(i):
                    m.d.comb += loaded.eq(port.r_data)
        wbuf_now = Signal(8 * VL)  # the buffer as a read sees it
        m.d.comb += wbuf_now.eq(Mux(loading, loaded, wbuf))
        with m.If(loading):
            m.d.sync += wbuf.eq(loaded)

        # chunk (k, c): bytes k*L + 4c .. k*L + min(4c + 4, L) - 1 of the buffer
        chunks = []
        for k in range(cfg.superlanes):
            for c in range(C):
                lo = 8 * (k * L + 4 * c)
                width = 8 * min(4, L - 4 * c)
                chunks.append((rm.wbuf(k, c), lo, width))
        for address, lo, width in chunks:
            with m.If(write_to(address)):
                m.d.sync += wbuf[lo:lo + width].eq(bus.w_data[:width])

        # -- errors --------------------------------------------------------------------------
        err_valid = Signal()
        err_cycle = Signal(32)
        err_code = Signal(8)
        err_pos = Signal(8)
        err_sl = Signal(8)
        err_unit = Signal(8)
        err_queue = Signal(8)
        with m.If(clear):
            m.d.sync += [err_valid.eq(0), err_cycle.eq(0), err_code.eq(0), err_pos.eq(0),
                         err_sl.eq(0), err_unit.eq(0), err_queue.eq(0)]
        with m.Elif(~err_valid):
            for p in reversed(range(len(cfg.positions))):  # the lowest position wins
                e = self.errors[p]
                with m.If(e.valid):
                    m.d.sync += [err_valid.eq(1), err_cycle.eq(cycle),
                                 err_code.eq(e.code.as_value()), err_pos.eq(p),
                                 err_sl.eq(e.superlane), err_unit.eq(e.unit)]
                    with m.Switch(e.unit):
                        here = [q for q in cfg.queues if q.position == p]
                        for rank, q in enumerate(here):
                            with m.Case(rank):
                                m.d.sync += err_queue.eq(q.index)

        # -- reads ---------------------------------------------------------------------------
        r_data = Signal(32)
        m.d.sync += r_data.eq(0)
        status = Cat(running, done, err_valid)
        readable = {
            rm.ID: Const(rm.id_value, 32),
            rm.HASH_LO: Const(rm.hash_value & 0xFFFFFFFF, 32),
            rm.HASH_HI: Const(rm.hash_value >> 32, 32),
            rm.STATUS: status,
            rm.CYCLE: cycle,
            rm.PARKED: self.parked[:32],
            rm.ERR_CYCLE: err_cycle,
            rm.ERR_CODE: err_code,
            rm.ERR_POSITION: err_pos,
            rm.ERR_SUPERLANE: err_sl,
            rm.ERR_UNIT: err_unit,
            rm.ERR_QUEUE: err_queue,
        }
        for address, lo, width in chunks:
            readable[address] = wbuf_now[lo:lo + width]
        with m.If(bus.r_en):
            with m.Switch(bus.addr):
                for address, value in readable.items():
                    with m.Case(address):
                        m.d.sync += r_data.eq(value)
        m.d.comb += bus.r_data.eq(r_data)
        return m
