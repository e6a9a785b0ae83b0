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
:class:`lpu.hostmap.RegisterMap` (the contract shared with every host: the simulators'
bus drivers and the board driver :mod:`lpu.board`) documents and computes every address;
this block implements it.

The error registers and run control behave as the map documents (docs/timing.md,
"The end of a run"): the first cycle in which any slice raises ``SliceError`` is recorded
(the lowest position wins within a cycle); RUNNING is high in cycles ``0 .. F + drain``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.hostmap import RegisterMap
from lpu.isa import drain_cycles

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
        # (a write outside the map has no effect: every field is decoded in full)
        n_q = len(cfg.queues)
        in_imem = Signal()
        m.d.comb += in_imem.eq(bus.addr[31] & (bus.addr[ibits + qbits:31] == 0) &
                               (bus.addr[ibits:ibits + qbits] < n_q))
        m.d.comb += [
            self.imem.addr.eq(bus.addr[:ibits] if ibits else 0),
            self.imem.data.eq(bus.w_data),
            self.imem.en.eq(wr & in_imem),
        ]
        in_qlen = ~bus.addr[31] & (bus.addr[8:31] == rm.QLEN >> 8) & (bus.addr[:8] < n_q)
        with m.If(bus.addr[31]):
            m.d.comb += self.imem.queue.eq(bus.addr[ibits:ibits + qbits])
        with m.Else():
            m.d.comb += self.imem.queue.eq(bus.addr[:8])
        m.d.comb += self.imem.len_en.eq(wr & in_qlen)

        # -- word buffer and SRAM ------------------------------------------------------------
        wbuf = Signal(8 * VL)
        wbuf_now = Signal(8 * VL)  # the buffer as a read or SRAM_WRITE sees it
        loading = Signal()  # the word buffer takes r_data this cycle
        load_slice = Signal(range(max(2, n_mem)))
        m.d.sync += loading.eq(0)
        tgt_slice = bus.w_data[16:]
        tgt_addr = bus.w_data[:16]
        tgt_ok = (tgt_slice < n_mem) & (tgt_addr < cfg.mem_words)  # else: no effect
        sram_write = write_to(rm.SRAM_WRITE) & tgt_ok
        sram_read = write_to(rm.SRAM_READ) & tgt_ok
        for i, port in enumerate(self.mem):
            m.d.comb += [
                port.addr.eq(tgt_addr),
                port.w_data.eq(wbuf_now),
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
        err_addr = Signal(16)
        corrected = Signal(32)
        with m.If(clear):
            m.d.sync += corrected.eq(0)
        with m.Else():
            m.d.sync += corrected.eq(corrected + sum(p.corrected for p in self.mem))
        with m.If(clear):
            m.d.sync += [err_valid.eq(0), err_cycle.eq(0), err_code.eq(0), err_pos.eq(0),
                         err_sl.eq(0), err_unit.eq(0), err_queue.eq(0), err_addr.eq(0)]
        with m.Elif(~err_valid):
            for p in reversed(range(len(cfg.positions))):  # the lowest position wins
                e = self.errors[p]
                with m.If(e.valid):
                    m.d.sync += [err_valid.eq(1), err_cycle.eq(cycle),
                                 err_code.eq(e.code.as_value()), err_pos.eq(p),
                                 err_sl.eq(e.superlane), err_unit.eq(e.unit),
                                 err_addr.eq(e.addr)]
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
            rm.ERR_ADDRESS: err_addr,
            rm.ECC_CORRECTED: corrected,
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
