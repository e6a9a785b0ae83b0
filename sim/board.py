"""The simulated board: :class:`SimLink`, a :class:`lpu.board.Transport` whose far end
is a design with a serial line on Amaranth's simulator, and :class:`RtlLink`, the same
board as Verilog on Verilator (or Icarus) under cocotb, fast enough to decode through.

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

:class:`RtlLink` is the same transport over the board's Verilog (:func:`build_board`:
:class:`BoardCore` converted once per design and cached like the chip's builds): the
line is simulated bit by bit inside the cocotb bench :mod:`lpu.sim.cocotb_board_bench`,
which the driver's process talks to through two named pipes, so that time passes on the
simulated board only while the driver waits in :meth:`RtlLink.read`, as on
:class:`SimLink`. Amaranth's simulator runs the ``fpga`` board at about 800 cycles a
second, too slow for a decode step's program (thousands of instruction words, 40 cycles
a byte on the line); Verilator runs it at hundreds of thousands.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from amaranth.sim import Simulator

from lpu import config as cfgmod
from lpu.framing import DEFAULT_MAX_WORDS
from lpu.hdl.board import BoardCore

from . import verilator as vl
from .cocotb_runner import design_key

__all__ = ["SimLink", "RtlLink", "build_board", "SIM_DIVISOR", "SIM_TIMEOUT_BYTES",
           "BOARD_TOP", "BOARD_ENV"]

#: Clock cycles per bit on the simulated line.
SIM_DIVISOR = 4
#: The simulated bridge's quiet time, in byte times (10 bits each).
SIM_TIMEOUT_BYTES = 8
#: The environment variable naming the work folder of the cocotb bench of the board
#: (:mod:`lpu.sim.cocotb_board_bench`: its two pipes and settings).
BOARD_ENV = "LPU_BOARD_WORK"
#: The top module of the board's Verilog (:func:`build_board`).
BOARD_TOP = "lpu_board"
#: Seconds to wait for the simulator to open its end of the line.
START_TIMEOUT_S = 120.0


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


def _board_core(cfg, divisor: int, timeout_bytes: int, max_words: int):
    timeout = 10 * divisor * timeout_bytes
    core = BoardCore(cfg, divisor=divisor, timeout=timeout, max_words=max_words,
                     heartbeat=1 << 16)
    return core, timeout


def build_board(cfg, simulator: str = "verilator", *, divisor: int = SIM_DIVISOR,
                timeout_bytes: int = SIM_TIMEOUT_BYTES, max_words: int = DEFAULT_MAX_WORDS):
    """The board (:class:`BoardCore` of `cfg`: the chip without its trace port, the
    bridge, the LEDs) built for `simulator` under cocotb; the Verilog is converted once
    per design (:func:`lpu.sim.cocotb_runner.design_key` and the bridge's settings) and
    the build cached like the chip's (:func:`lpu.sim.verilator.build`)."""
    cfg = cfgmod.load(cfg)
    key = f"{design_key(cfg, False)}-{divisor}-{timeout_bytes}-{max_words}"  # HDL sources
    with vl.locked(vl.build_dir("board", f"{cfg.hash}-{key}", simulator)) as d:
        src = d / "board-verilog.v"
        if not src.is_file():
            core, _ = _board_core(cfg, divisor, timeout_bytes, max_words)
            part = src.with_suffix(".part")
            part.write_text(vl.verilog_of(core, BOARD_TOP))
            part.replace(src)
        return vl.build(simulator, src.read_text(), BOARD_TOP, d,
                        extra_args=vl.top_ports_only(simulator), keep=(src.name,))


class RtlLink:
    """A byte transport to the board of `cfg` as Verilog on `simulator` under cocotb
    (see the module docstring): :meth:`write` queues bytes, :meth:`read` sends them and
    lets the simulated board run until the bytes asked for arrived or the timeout (in
    simulated seconds at the config's clock) passed. Call :meth:`close` at the end."""

    def __init__(self, cfg, simulator: str = "verilator", *, divisor: int = SIM_DIVISOR,
                 timeout_bytes: int = SIM_TIMEOUT_BYTES, max_words: int = DEFAULT_MAX_WORDS):
        ok, why = vl.available(simulator)
        if not ok:
            raise vl.SimulatorError(why)
        cfg = cfgmod.load(cfg)
        self.cfg, self.simulator, self.divisor = cfg, simulator, divisor
        self.clock_hz = cfg.clock_mhz * 1e6
        self.baud = self.clock_hz / divisor
        timeout = 10 * divisor * timeout_bytes
        self.latency = 2 * timeout / self.clock_hz
        self.name = f"simulated {cfg.name} board ({simulator})"
        self.cycle = 0
        self.line_errors = 0
        self.built = build_board(cfg, simulator, divisor=divisor,
                                 timeout_bytes=timeout_bytes, max_words=max_words)
        self.work = Path(tempfile.mkdtemp(prefix="lpu-board-"))
        (self.work / "board.json").write_text(json.dumps({"divisor": divisor}))
        to_sim, from_sim = self.work / "to_sim.pipe", self.work / "from_sim.pipe"
        os.mkfifo(to_sim)
        os.mkfifo(from_sim)
        self._pending = bytearray()
        self._received = bytearray()
        self._failed: list[BaseException] = []
        self._rd = os.open(from_sim, os.O_RDONLY | os.O_NONBLOCK)
        self._wr = None
        self._partial = b""
        self._thread = threading.Thread(target=self._simulate, name="lpu-board",
                                        daemon=True)
        self._thread.start()
        end = time.monotonic() + START_TIMEOUT_S
        while self._wr is None:  # until the bench opens its end of to_sim
            try:
                self._wr = os.open(to_sim, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                if not self._thread.is_alive() or time.monotonic() > end:
                    self.close()
                    raise self._dead("before it opened the line") from None
                time.sleep(0.02)
        os.set_blocking(self._wr, True)

    def _simulate(self):
        try:
            vl.run_test(self.built, "lpu.sim.cocotb_board_bench", test_dir=self.work,
                        extra_env={BOARD_ENV: str(self.work)})
        except BaseException as e:  # raised in the driver's thread
            self._failed.append(e)

    def _dead(self, what: str) -> vl.SimulatorError:
        if self._failed and isinstance(self._failed[0], vl.SimulatorError):
            return self._failed[0]
        why = f": {self._failed[0]}" if self._failed else ""
        return vl.SimulatorError(f"the {self.name} stopped {what}{why} (log "
                                 f"{self.work / 'test.log'})")

    def _request(self, req: dict) -> dict:
        os.write(self._wr, (json.dumps(req) + "\n").encode())
        while b"\n" not in self._partial:
            ready, _, _ = select.select([self._rd], [], [], 0.5)
            if ready:
                chunk = os.read(self._rd, 1 << 16)
                if chunk:
                    self._partial += chunk
                    continue
            if not self._thread.is_alive():
                raise self._dead("while the driver waited for it")
        text, self._partial = self._partial.split(b"\n", 1)
        return json.loads(text)

    # -- Transport -----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._pending += bytes(data)

    def read(self, n: int, timeout: float) -> bytes:
        if len(self._received) < n:
            until = self.cycle + max(1, round(timeout * self.clock_hz))
            ans = self._request({"send": self._pending.hex(), "want": n - len(self._received),
                                 "until": until})
            self._pending.clear()
            self._received += bytes.fromhex(ans["data"])
            self.cycle, self.line_errors = ans["cycle"], ans["line_errors"]
        out = bytes(self._received[:n])
        del self._received[:n]
        return out

    def now(self) -> float:
        return self.cycle / self.clock_hz

    def discard_input(self) -> None:
        self._received.clear()

    def close(self) -> None:
        if self._wr is not None:
            try:
                os.write(self._wr, b'{"stop": true}\n')
            except OSError:
                pass
            os.close(self._wr)
            self._wr = None
        self._thread.join(timeout=30)
        if self._rd is not None:
            os.close(self._rd)
            self._rd = None
        if not self._thread.is_alive():
            shutil.rmtree(self.work, ignore_errors=True)
