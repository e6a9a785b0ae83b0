"""The UART host bridge: frames on a serial line to accesses of the chip's host bus.

:class:`Bridge` receives requests on ``rx`` (8N1, :mod:`lpu.hdl.uart`), executes them
on its ``bus`` (the initiator side of :class:`lpu.hdl.host.Bus`: one access per cycle,
read data in the next cycle) and sends one acknowledgement per request on ``tx``. The
framing (commands, status codes, CRC-8, the error rules) is :mod:`lpu.framing`, the one
definition shared with the host driver :mod:`lpu.board`; docs/fpga.md restates it for
writers of other drivers. In short::

    request  = command(1) address(4, LE) count(2, LE) [count words (4, LE), WRITE] crc(1)
    ack      = command(1) status(1) [count words, READ; 4 words, PING] crc(1)

Timing contract
---------------
* A good WRITE's words are held in a buffer (``max_words`` words of memory) until the
  check byte has been verified, then written on ``count`` consecutive bus cycles
  starting the cycle after the check byte arrived (addresses ``address ..``); its
  acknowledgement is offered to the transmitter the cycle after the last write.
* A good READ's words are read one bus access each, word ``i`` after word ``i - 1``'s
  four bytes were handed to the transmitter; PING answers from constants.
* An error (:class:`lpu.framing.Status`) is found at the byte that shows it; the bridge
  then discards every byte until ``timeout`` cycles have passed without one, and sends
  the error acknowledgement. A frame with no byte for ``timeout`` cycles is TIMEOUT,
  answered at once. Bytes arriving while the bridge executes or answers set an overrun,
  answered (OVERRUN, command byte 0) after the current acknowledgement and a quiet
  ``timeout``. No state waits for anything but the line or the transmitter, so the
  bridge always returns to idle.
* In every cycle in which the bridge makes no access of its own it reads the STATUS
  register; ``status`` holds the last value read (RUNNING, DONE, ERROR: the board's
  LEDs). Reading STATUS has no side effects.

Address check: ``count`` must be ``1 .. max_words`` and ``address .. address + count -
1`` must lie in one of the register map's regions (:meth:`lpu.hostmap.RegisterMap.
regions`).
"""


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from lpu.framing import BRIDGE_ID, HEADER_BYTES, PING_WORDS, Command, Status
from lpu.hostmap import RegisterMap

from .host import Bus
from .uart import UartRx, UartTx, check_divisor

__all__ = ["Bridge", "crc8_next"]


def crc8_next(crc, byte):
    """The CRC-8 of :func:`lpu.framing.crc8` continued by one byte (8-bit Values)."""
    c = crc ^ byte
    for _ in range(8):
        c = (c << 1)[:8] ^ Mux(c[7], 0x07, 0)
    return c


class Bridge(wiring.Component):
    """UART to host-bus bridge (see the module docstring).

    Parameters
    ----------
    regs : RegisterMap
        The chip's register map: the regions accepted and the STATUS address.
    divisor : int
        Clock cycles per UART bit (at least 4).
    timeout : int
        Clock cycles without a received byte that end a frame (TIMEOUT) or a discard;
        at least two byte times (``20 * divisor``).
    max_words : int
        The largest ``count`` of a request (1 .. 65535).

    Ports
    -----
    rx : In(1), tx : Out(1)
        The serial line (idle high).
    bus : Out(Bus())
        To the chip's host bus.
    status : Out(3)
        The STATUS register as last read: RUNNING, DONE, ERROR.
    busy : Out(1)
        A request is being received, executed or answered.
    failed : Out(1)
        The last acknowledgement sent carried an error status.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    bus: Out(Bus())
    status: Out(3)
    busy: Out(1)
    failed: Out(1)

    def __init__(self, regs: RegisterMap, *, divisor: int, timeout: int, max_words: int):
        self._MustUse__silence = True  # until the arguments are checked
        if not isinstance(regs, RegisterMap):
            raise TypeError(f"Bridge needs a RegisterMap, not {regs!r}")
        check_divisor(divisor)
        if not isinstance(timeout, int) or timeout < 20 * divisor:
            raise ValueError(f"Timeout must be an integer of at least two byte times "
                             f"({20 * divisor} cycles), not {timeout!r}")
        if not isinstance(max_words, int) or not 1 <= max_words <= 0xFFFF:
            raise ValueError(f"Max words must be an integer in 1..65535, not {max_words!r}")
        self._regs, self._divisor = regs, divisor
        self._timeout, self._max_words = timeout, max_words
        self._MustUse__silence = False
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def max_words(self) -> int:
        return self._max_words

    @property
    def info_words(self) -> list[int]:
        """The data of a PING's acknowledgement."""
        return [BRIDGE_ID, self._max_words, self._divisor, self._timeout]

    def elaborate(self, platform):
        m = Module()
        N = self._max_words
        m.submodules.urx = urx = UartRx(self._divisor)
        m.submodules.utx = utx = UartTx(self._divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        m.submodules.buf = buf = memory.Memory(shape=32, depth=N, init=[])
        wr = buf.write_port()
        rd = buf.read_port(transparent_for=())
        bus = self.bus

        got = urx.data.valid  # a byte this cycle
        byte = urx.data.payload
        line_err = urx.error
        cmd = Signal(8)
        code = Signal(3)  # the acknowledgement's status
        hdr = Signal(48)  # address (bits 0-31), count (bits 32-47)
        addr, count = hdr[:32], hdr[32:]
        idx = Signal(range(HEADER_BYTES + 1))
        bidx = Signal(2)
        widx = Signal(range(max(N, PING_WORDS) + 1))
        nwords = Signal(range(max(N, PING_WORDS) + 1))
        word = Signal(32)
        crc_rx, crc_tx = Signal(8), Signal(8)
        quiet = Signal(range(self._timeout + 1))
        timed_out = quiet == self._timeout
        overrun = Signal()
        own_access = Signal()
        taking = Signal()  # the state takes a received byte
        info = Array(Const(w, 32) for w in self.info_words)

        # cycles since the last byte (or framing error) received, saturating
        with m.If(got | line_err):
            m.d.sync += quiet.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += quiet.eq(quiet + 1)

        end = Signal(33)
        m.d.comb += end.eq(addr + count - 1)
        in_region = Signal()
        m.d.comb += in_region.eq(0)
        for first, last, _ in self._regs.regions():
            with m.If((addr >= first) & (end <= last)):
                m.d.comb += in_region.eq(1)

        def fail(value):
            m.d.sync += code.eq(value)
            m.next = "DISCARD"

        def receiving():
            """The transitions shared by the states that expect a byte of a frame."""
            with m.If(line_err):
                fail(Status.LINE_ERROR)
            with m.Elif(~got & timed_out):
                m.d.sync += code.eq(Status.TIMEOUT)
                m.next = "ACK_CMD"

        def send(value, then):
            m.d.comb += [utx.data.payload.eq(value), utx.data.valid.eq(1)]
            with m.If(utx.data.ready):
                m.d.sync += crc_tx.eq(crc8_next(crc_tx, value))
                m.next = then

        m.d.comb += rd.addr.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += taking.eq(1)
                m.d.sync += [crc_rx.eq(crc8_next(0, byte)), cmd.eq(byte), idx.eq(1),
                             code.eq(Status.OK), overrun.eq(0)]
                with m.If(got):
                    with m.If((byte == Command.PING) | (byte == Command.WRITE)
                              | (byte == Command.READ)):
                        m.next = "HEADER"
                    with m.Else():
                        fail(Status.UNKNOWN_COMMAND)
                with m.Elif(line_err):
                    m.d.sync += cmd.eq(0)
                    fail(Status.LINE_ERROR)

            with m.State("HEADER"):
                m.d.comb += taking.eq(1)
                m.d.comb += self.busy.eq(1)
                with m.If(got):
                    m.d.sync += [crc_rx.eq(crc8_next(crc_rx, byte)), hdr.eq(Cat(hdr[8:], byte)),
                                 idx.eq(idx + 1)]
                    with m.If(idx == HEADER_BYTES - 1):
                        m.next = "HEADER_CHECK"
                receiving()

            with m.State("HEADER_CHECK"):  # one cycle: no byte can arrive in it
                m.d.comb += self.busy.eq(1)
                m.d.sync += [widx.eq(0), bidx.eq(0)]
                with m.If(cmd == Command.PING):
                    m.next = "CHECK"
                with m.Elif((count == 0) | (count > N)):
                    fail(Status.BAD_LENGTH)
                with m.Elif(~in_region):
                    fail(Status.BAD_ADDRESS)
                with m.Elif(cmd == Command.WRITE):
                    m.next = "DATA"
                with m.Else():
                    m.next = "CHECK"

            with m.State("DATA"):
                m.d.comb += taking.eq(1)
                m.d.comb += self.busy.eq(1)
                with m.If(got):
                    m.d.sync += [crc_rx.eq(crc8_next(crc_rx, byte)), word.eq(Cat(word[8:], byte)),
                                 bidx.eq(bidx + 1)]
                    with m.If(bidx == 3):
                        m.d.comb += [wr.addr.eq(widx), wr.data.eq(Cat(word[8:], byte)),
                                     wr.en.eq(1)]
                        m.d.sync += widx.eq(widx + 1)
                        with m.If(widx == count - 1):
                            m.next = "CHECK"
                receiving()

            with m.State("CHECK"):
                m.d.comb += taking.eq(1)
                m.d.comb += self.busy.eq(1)
                m.d.sync += widx.eq(0)
                with m.If(got):
                    with m.If(byte != crc_rx):
                        fail(Status.BAD_CHECKSUM)
                    with m.Elif(cmd == Command.WRITE):
                        m.next = "WRITE"
                    with m.Else():
                        m.next = "ACK_CMD"
                receiving()

            with m.State("WRITE"):
                m.d.comb += [self.busy.eq(1), own_access.eq(1),
                             bus.addr.eq(addr + widx), bus.w_data.eq(rd.data), bus.w_en.eq(1),
                             rd.addr.eq(widx + 1)]
                m.d.sync += widx.eq(widx + 1)
                with m.If(widx == count - 1):
                    m.next = "ACK_CMD"

            with m.State("DISCARD"):
                m.d.comb += taking.eq(1)
                m.d.comb += self.busy.eq(1)
                with m.If(timed_out):
                    m.next = "ACK_CMD"

            with m.State("ACK_CMD"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += crc_tx.eq(0)
                m.d.comb += [utx.data.payload.eq(cmd), utx.data.valid.eq(1)]
                with m.If(utx.data.ready):
                    m.d.sync += crc_tx.eq(crc8_next(0, cmd))
                    m.next = "ACK_STATUS"

            with m.State("ACK_STATUS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [widx.eq(0), nwords.eq(Mux(cmd == Command.PING, PING_WORDS, count))]
                with m.If((code == Status.OK) & (cmd != Command.WRITE)):
                    send(code, "ACK_WORD")
                with m.Else():
                    send(code, "ACK_CRC")

            with m.State("ACK_WORD"):  # the next data word: a bus read, or PING's constants
                m.d.comb += self.busy.eq(1)
                m.d.sync += bidx.eq(0)
                with m.If(cmd == Command.READ):
                    m.d.comb += [own_access.eq(1), bus.addr.eq(addr + widx), bus.r_en.eq(1)]
                    m.next = "ACK_READ"
                with m.Else():
                    m.d.sync += word.eq(info[widx])
                    m.next = "ACK_BYTES"

            with m.State("ACK_READ"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += word.eq(bus.r_data)
                m.next = "ACK_BYTES"

            with m.State("ACK_BYTES"):
                m.d.comb += [self.busy.eq(1), utx.data.payload.eq(word[:8]),
                             utx.data.valid.eq(1)]
                with m.If(utx.data.ready):
                    m.d.sync += [crc_tx.eq(crc8_next(crc_tx, word[:8])), word.eq(word >> 8),
                                 bidx.eq(bidx + 1)]
                    with m.If(bidx == 3):
                        m.d.sync += widx.eq(widx + 1)
                        with m.If(widx == nwords - 1):
                            m.next = "ACK_CRC"
                        with m.Else():
                            m.next = "ACK_WORD"

            with m.State("ACK_CRC"):
                m.d.comb += [self.busy.eq(1), utx.data.payload.eq(crc_tx),
                             utx.data.valid.eq(1)]
                with m.If(utx.data.ready):
                    m.d.sync += self.failed.eq(code != Status.OK)
                    with m.If(overrun | got | line_err):
                        m.d.sync += [cmd.eq(0), code.eq(Status.OVERRUN), overrun.eq(0)]
                        m.next = "DISCARD"
                    with m.Else():
                        m.next = "IDLE"

        # a byte (or framing error) in a state that does not take one: an overrun
        with m.If((got | line_err) & ~taking):
            m.d.sync += overrun.eq(1)

        # STATUS polled in every cycle without an access of the bridge's own
        polled = Signal()
        m.d.sync += polled.eq(0)
        with m.If(~own_access):
            m.d.comb += [bus.addr.eq(self._regs.STATUS), bus.r_en.eq(1)]
            m.d.sync += polled.eq(1)
        with m.If(polled):
            m.d.sync += self.status.eq(bus.r_data[:3])
        return m
