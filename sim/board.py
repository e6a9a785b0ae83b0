"""The simulated board: :class:`SimLink`, a :class:`lpu.board.Transport` whose far end
is a design with a serial line on Amaranth's simulator.

:meth:`SimLink.chip` builds the board itself (:class:`lpu.hdl.board.BoardCore`: the
whole chip of a config behind its UART bridge), so that :class:`lpu.board.Board` drives
it exactly as it drives a real board over a serial port; tests also put a bare bridge on
the line (:class:`SimLink` over any design with ``rx``/``tx``).

The line is simulated bit by bit: bytes written are sent on the design's ``rx`` (8N1,
``divisor`` cycles a bit, back to back) by one testbench, and another decodes the
design's ``tx`` (sampled in the middle of each bit; a stop bit read as 0 is recorded in
:attr:`SimLink.line_errors`). The simulator runs only while the driver waits in
:meth:`SimLink.read`; time (:meth:`SimLink.now`) is the simulated cycle count divided by
the config's clock, so the driver's timeouts mean what they mean on the board.
"""

from __future__ import annotations

import sys
from collections import deque

from amaranth.sim import Simulator

from lpu import config as cfgmod
from lpu.framing import DEFAULT_MAX_WORDS
from lpu.hdl.board import BoardCore

__all__ = ["SimLink", "SIM_DIVISOR", "SIM_TIMEOUT_BYTES"]

#: Clock cycles per bit on the simulated line.
SIM_DIVISOR = 4
#: The simulated bridge's quiet time, in byte times (10 bits each).
SIM_TIMEOUT_BYTES = 8


class SimLink:
    """A byte transport to `dut` (with 1-bit ports ``rx`` and ``tx``) on Amaranth's
    simulator, at `clock_hz` and `divisor` cycles per bit.

    `latency` is the longest wait for an answer beyond its bytes (the design's quiet
    time, in seconds); `testbenches` are more background testbenches (a bus model).
    """

    def __init__(self, dut, *, divisor: int, clock_hz: float, latency: float,
                 testbenches=(), name: str = "simulated board"):
        self.dut, self.divisor, self.clock_hz = dut, divisor, clock_hz
        self.baud = clock_hz / divisor
        self.latency = latency
        self.name = name
        self.cycle = 0
        self.line_errors: list[int] = []  # cycles of stop bits read as 0 on tx
        self._levels: deque = deque()  # rx line levels to send, one per bit time
        self._received = bytearray()
        # the simulator's generated code holds wide masks as decimal literals
        if 0 < sys.get_int_max_str_digits() < 1 << 20:
            sys.set_int_max_str_digits(0)
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-6)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)
        for tb in testbenches:
            self.sim.add_testbench(tb, background=True)

    @classmethod
    def chip(cls, cfg, *, divisor: int = SIM_DIVISOR, timeout_bytes: int = SIM_TIMEOUT_BYTES,
             max_words: int = DEFAULT_MAX_WORDS) -> SimLink:
        """The whole chip of `cfg` behind its bridge (:class:`BoardCore`)."""
        cfg = cfgmod.load(cfg)
        timeout = 10 * divisor * timeout_bytes
        core = BoardCore(cfg, divisor=divisor, timeout=timeout, max_words=max_words,
                         heartbeat=1 << 16)
        clock = cfg.clock_mhz * 1e6
        link = cls(core, divisor=divisor, clock_hz=clock, latency=2 * timeout / clock,
                   name=f"simulated {cfg.name} board")
        link.core = core
        return link

    # -- the line ------------------------------------------------------------------------
    async def _drive(self, ctx):
        rx, d = self.dut.rx, self.divisor
        ctx.set(rx, 1)
        while True:
            if self._levels:
                ctx.set(rx, self._levels.popleft())
            else:
                ctx.set(rx, 1)
            for _ in range(d):
                await ctx.tick()

    async def _listen(self, ctx):
        tx, d = self.dut.tx, self.divisor
        while True:
            await ctx.negedge(tx)  # just after the clock edge that started the start bit
            for _ in range(d // 2):
                await ctx.tick()
            if ctx.get(tx):
                continue  # not a start bit
            value = 0
            for i in range(9):
                for _ in range(d):
                    await ctx.tick()
                if i < 8:
                    value |= ctx.get(tx) << i
            if ctx.get(tx):
                self._received.append(value)
            else:
                self.line_errors.append(self.cycle)

    def send_levels(self, levels) -> None:
        """Put raw line levels on ``rx``, one per bit time (tests: framing errors)."""
        self._levels.extend(int(bool(v)) for v in levels)

    # -- Transport -----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        for b in bytes(data):
            self._levels.extend([0, *((b >> i) & 1 for i in range(8)), 1])

    def read(self, n: int, timeout: float) -> bytes:
        end = self.cycle + max(1, round(timeout * self.clock_hz))
        step = self.divisor  # a bit time: the answer is read soon after it arrives
        while len(self._received) < n and self.cycle < end:
            self.run_cycles(min(step, end - self.cycle))
        out = bytes(self._received[:n])
        del self._received[:n]
        return out

    def run_cycles(self, n: int) -> None:
        """Advance the simulation by `n` clock cycles."""
        self.cycle += n
        self.sim.run_until(self.cycle * 1e-6)

    def now(self) -> float:
        return self.cycle / self.clock_hz

    def discard_input(self) -> None:
        self._received.clear()

    def close(self) -> None:
        pass
