"""An 8N1 UART: :class:`UartRx` and :class:`UartTx`, ``divisor`` clock cycles per bit.

Line format: idle high; a start bit (0), eight data bits least significant first, one
stop bit (1); each bit lasts ``divisor`` cycles of the ``sync`` domain (the baud rate is
the clock frequency divided by ``divisor``, which must be an integer of at least 4).

Receiver timing: the line is synchronized by two flip-flops. A falling edge seen in
cycle ``t`` starts a byte; the start bit is sampled at ``t + divisor // 2`` (a line
high again by then was a glitch, and the receiver waits for the next edge), each data
bit ``divisor`` cycles after the previous sample, and the stop bit last: ``data.valid``
is high for the one cycle in which a stop bit read as 1 completes the byte (the middle
of the stop bit: ``divisor // 2 + 9 * divisor + 1`` cycles after the first cycle in
which the line was low, the synchronizer's two included), and
``error`` instead for one cycle if the stop bit reads 0 (a framing error: wrong baud rate,
noise or a break); the byte is then dropped and the receiver waits for the line to be
high before it looks for another start bit.

Transmitter timing: ``data.ready`` is high while the transmitter is idle and in the
last cycle of a stop bit; a byte taken in cycle ``t`` (``valid`` and ``ready``) puts its
start bit on ``tx`` from ``t + 1`` for ``divisor`` cycles, then the data bits and the
stop bit, ``divisor`` cycles each, so bytes offered back to back leave without gaps.
``tx`` is a flip-flop output.
"""


from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "check_divisor"]


def check_divisor(divisor) -> int:
    """The clock cycles per bit, validated (an integer of at least 4)."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"Clocks per bit must be an integer of at least 4, not {divisor!r}")
    return divisor


class _Uart(wiring.Component):
    """What both halves share: the clocks per bit."""

    def __init__(self, divisor: int):
        self._MustUse__silence = True  # until the argument is checked
        self._divisor = check_divisor(divisor)
        self._MustUse__silence = False
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UartRx(_Uart):
    """The receiver (see the module docstring for its timing).

    Ports
    -----
    rx : In(1)
        The line (asynchronous to the clock; idle high).
    data : Out(stream.Signature(8, always_ready=True))
        A received byte, ``valid`` for one cycle; it cannot be held back.
    error : Out(1)
        One cycle: a stop bit read as 0 (the byte is dropped).
    busy : Out(1)
        A byte is being received.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8, always_ready=True))
    error: Out(1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        D = self._divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        count = Signal(range(D))
        bits = Signal(range(8))
        shreg = Signal(8)
        m.d.comb += self.data.payload.eq(shreg)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += count.eq(D // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [count.eq(D - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), count.eq(D - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    with m.If(line):
                        m.d.comb += self.data.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(_Uart):
    """The transmitter (see the module docstring for its timing).

    Ports
    -----
    data : In(stream.Signature(8))
        Bytes to send; ``ready`` while idle.
    tx : Out(1)
        The line (idle high).
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        D = self._divisor
        busy = Signal()
        count = Signal(range(D))
        rest = Signal(9)  # the bits after the one on the line, stop bit last
        left = Signal(range(10))
        last = Signal()  # the last cycle of the stop bit
        m.d.comb += [last.eq(busy & (count == 0) & (left == 0)),
                     self.data.ready.eq(~busy | last)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [busy.eq(1), self.tx.eq(0), count.eq(D - 1), left.eq(9),
                         rest.eq(Cat(self.data.payload, Const(1, 1)))]
        with m.Elif(busy):
            m.d.sync += count.eq(count - 1)
            with m.If(count == 0):
                with m.If(left == 0):
                    m.d.sync += [busy.eq(0), self.tx.eq(1)]
                with m.Else():
                    m.d.sync += [self.tx.eq(rest[0]), rest.eq(rest >> 1), left.eq(left - 1),
                                 count.eq(D - 1)]
        return m
