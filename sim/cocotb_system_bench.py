"""The cocotb bench of a system top (:func:`lpu.hdl.system.system_verilog`): the module
cocotb loads inside the simulator for :func:`lpu.sim.system_verilator.run_system`.

It reads the job named by ``$LPU_SYSTEM_JOB`` (the chip config's keys, one program file
and SRAM image a chip, the bit of ``trace.running`` in a chip's ``trace_bits``), resets
the system, loads through each chip's host bus (``bus__<i>__*``; the timing of
:mod:`lpu.hdl.host`) the SRAM words its program can read and the program, writes START to
every chip in one cycle, and then samples every chip's ``trace_bits__<i>`` at the
falling edge of every cycle until no chip is running, keeping each running chip's value.
It then reads each chip's STATUS, CYCLE and error registers and writes the result as
JSON (per chip: ``[cycle, hex]`` rows, status, end cycle, error) where the job says.
Turning the rows into events and comparing them happens in the runner's process.

This module needs cocotb (the ``test`` extra); nothing outside the simulator imports it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from lpu.config import from_mapping
from lpu.hdl.host import RegisterMap
from lpu.program import Program

from .cocotb_bench import PERIOD_NS, HostBus, _errors, _load, _npz
from .system_verilator import JOB_ENV

__all__ = ["system"]


class _ChipPorts:
    """The ports of chip `i` under the names :class:`HostBus` uses (``bus__addr`` ..)."""

    def __init__(self, dut, i: int):
        self._dut, self._prefix = dut, f"bus__{i}__"

    def __getattr__(self, name):
        if name.startswith("bus__"):
            name = self._prefix + name[len("bus__"):]
        return getattr(self._dut, name)


@cocotb.test()
async def system(dut):
    """Run the job named by $LPU_SYSTEM_JOB (see the module docstring)."""
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    cfg = from_mapping(job["config"], "<job>", job["config"]["name"])
    if cfg.hash != job["config_hash"]:
        raise RuntimeError(f"the job's config has hash {cfg.hash}, not {job['config_hash']}")
    regs = RegisterMap(cfg)
    n = len(job["chips"])
    buses = [HostBus(_ChipPorts(dut, i)) for i in range(n)]
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for b in buses:
        b.idle()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for b, item in zip(buses, job["chips"], strict=True):
        await _load(b, regs, cfg, Program.load(item["program"]), _npz(item["mem"]), {})
    for i in range(n):  # START to every chip in one cycle: that cycle is cycle -1 of all
        port = _ChipPorts(dut, i)
        port.bus__addr.value = regs.CTRL
        port.bus__w_data.value = regs.CTRL_START
        port.bus__w_en.value = 1
    await RisingEdge(dut.clk)
    for b in buses:
        b.idle()
    bits = [getattr(dut, f"trace_bits__{i}") for i in range(n)]
    running = 1 << int(job["running_bit"])
    rows: list[list] = [[] for _ in range(n)]
    limit = int(job.get("max_cycles", 100_000))
    fall = FallingEdge(dut.clk)
    c = 0
    while True:
        await fall  # the values of cycle c, settled
        any_running = False
        for i, sig in enumerate(bits):
            v = sig.value
            v = v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)
            if v & running:
                any_running = True
                rows[i].append([c, format(v, "x")])
        if not any_running:
            break
        c += 1
        if c > limit:
            raise RuntimeError(f"the system ran past {limit} cycles without finishing")
    await RisingEdge(dut.clk)
    out = []
    for b, r in zip(buses, rows, strict=True):
        status = await b.read(regs.STATUS)
        end = await b.read(regs.CYCLE)
        err, _ = await _errors(b, regs, status)
        out.append({"rows": r, "status": status, "end_cycle": end, "error": err})
    Path(job["result"]).write_text(json.dumps({"chips": out}))
    dut._log.info(f"system: {n} chips, {c} cycles")
