"""The simulated board under cocotb, the simulator's side of :class:`lpu.sim.board.RtlLink`:
the whole chip behind its UART bridge (:class:`lpu.hdl.board.BoardCore`, as Verilog) with
its serial line simulated bit by bit, driven by a host process through two named pipes.

Protocol (one JSON object a line): the host writes to ``<work>/to_sim.pipe``
``{"send": HEX, "want": N, "until": CYCLE}`` and this bench

1. queues the bytes of ``send`` on the chip's ``rx`` (8N1, ``divisor`` cycles a bit,
   back to back, each start bit as soon as the line is free);
2. runs the clock until ``N`` bytes have been decoded from ``tx`` since the last
   answer, or the cycle count reaches ``until``;
3. answers on ``<work>/from_sim.pipe`` ``{"data": HEX, "cycle": C}``: the bytes
   decoded (sampled in the middle of each bit; a byte whose stop bit reads 0 is not
   given, it counts in ``line_errors``) and the cycle reached.

``{"stop": true}`` ends the test. Cycle 0 is the first cycle after reset. Time only
passes while the host waits for an answer, as on :class:`lpu.sim.board.SimLink`.

This module needs cocotb (the ``test`` extra); nothing outside the simulator imports it.
"""

from __future__ import annotations

import json
import os
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, RisingEdge

from .board import BOARD_ENV

__all__ = ["board_line", "PERIOD_NS"]

PERIOD_NS = 10


class _Line:
    """The serial line: ``rx`` driven from a queue of levels, ``tx`` decoded."""

    def __init__(self, dut, divisor: int):
        self.dut, self.d = dut, divisor
        self.levels: deque = deque()
        self.received = bytearray()
        self.line_errors = 0
        self.queued = Event()
        self.got = Event()

    def send(self, data: bytes) -> None:
        for b in data:
            self.levels.extend([0, *((b >> i) & 1 for i in range(8)), 1])
        if self.levels:
            self.queued.set()

    async def drive(self):
        rx, clk, d = self.dut.rx, self.dut.clk, self.d
        rx.value = 1
        while True:
            if not self.levels:
                self.queued.clear()
                await self.queued.wait()
                await RisingEdge(clk)
            rx.value = self.levels.popleft()
            await ClockCycles(clk, d)

    async def listen(self):
        tx, clk, d = self.dut.tx, self.dut.clk, self.d
        while True:
            await FallingEdge(tx)
            await ClockCycles(clk, d // 2)
            if tx.value:
                continue  # a glitch, not a start bit
            value = 0
            for i in range(9):
                await ClockCycles(clk, d)
                if i < 8:
                    value |= int(tx.value) << i
            if tx.value:
                self.received.append(value)
                self.got.set()
            else:
                self.line_errors += 1


@cocotb.test()
async def board_line(dut):
    """Serve the host's line requests until it says stop (see the module docstring)."""
    work = os.environ[BOARD_ENV]
    settings = json.loads(open(os.path.join(work, "board.json")).read())
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    line = _Line(dut, int(settings["divisor"]))
    dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    base = get_sim_time(unit="ns")

    def cycle() -> int:
        return round((get_sim_time(unit="ns") - base) / PERIOD_NS)

    cocotb.start_soon(line.drive())
    cocotb.start_soon(line.listen())
    inbox = open(os.path.join(work, "to_sim.pipe"))  # noqa: SIM115 (kept for the test)
    outbox = open(os.path.join(work, "from_sim.pipe"), "w")  # noqa: SIM115
    while True:
        text = inbox.readline()
        if not text:
            break  # the host closed its end
        req = json.loads(text)
        if req.get("stop"):
            break
        line.send(bytes.fromhex(req.get("send", "")))
        want, until = int(req["want"]), int(req["until"])
        while True:
            line.got.clear()
            now = cycle()
            if len(line.received) >= want or now >= until:
                break
            await First(line.got.wait(), ClockCycles(dut.clk, until - now))
        out = bytes(line.received[:want])
        del line.received[:want]
        outbox.write(json.dumps({"data": out.hex(), "cycle": cycle(),
                                 "line_errors": line.line_errors}) + "\n")
        outbox.flush()
    inbox.close()
    outbox.close()
