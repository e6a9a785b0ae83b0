"""A system of chips over the generated Verilog, under cocotb on Verilator (or Icarus): the
device side of :func:`lpu.sim.system_lockstep.system_lockstep`.

:func:`build_system` converts the system top (:func:`lpu.hdl.system.system_verilog`: one
chip module instantiated once a chip, link models between them, every chip's packed
trace a port) and builds it, both cached in a folder named by the design (the HDL
sources, the ISA, the config, the topology and the tools: :func:`system_key`), one builder
at a time. :class:`VerilogSystemBackend` runs one program a chip in a fresh simulator
process: the cocotb bench :mod:`lpu.sim.cocotb_system_bench` loads every chip through its
host bus, starts them in one cycle and records every chip's ``trace_bits`` each cycle
until none is running; here the rows become events (:class:`lpu.sim.trace.TraceReader`
over a :class:`lpu.sim.trace.PackedTrace` of a chip of the same config), one
``(cycle, events)`` stream a chip, and the host's STATUS, CYCLE and error registers after
the run are kept (:attr:`~VerilogSystemBackend.status`, ``end_cycles``, ``errors``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from lpu.hdl.system import system_verilog
from lpu.system import SystemConfig
from lpu.system import load as load_system
from lpu.trace import Event

from . import verilator as vl
from .cocotb_runner import design_key
from .trace import PackedTrace, TraceReader, port_chip

__all__ = ["build_system", "system_key", "VerilogSystemBackend", "TOPLEVEL", "JOB_ENV"]

TOPLEVEL = "lpu_system"
#: The environment variable that names the bench's job file.
JOB_ENV = "LPU_SYSTEM_JOB"


def system_key(sysc: SystemConfig) -> str:
    """Hash of everything the system's Verilog depends on: the chip's design
    (:func:`lpu.sim.cocotb_runner.design_key`), the number of chips and their cables."""
    h = hashlib.sha256()
    h.update(f"{design_key(sysc.chip)} chips={sysc.chips} links={sysc.links} "
             f"latency={sysc.chip.c2c_latency}".encode())
    h.update(Path(__file__).with_name("cocotb_system_bench.py").read_bytes())
    return h.hexdigest()[:16]


def build_system(sysc: SystemConfig | str, simulator: str = "verilator") -> vl.BuildResult:
    """Convert and build the system top for `simulator` (cached; see the module
    docstring)."""
    sysc = load_system(sysc)
    key = system_key(sysc)
    with vl.locked(vl.build_dir("system", f"{sysc.chip.hash}-{key}", simulator)) as d:
        src = d / f"{TOPLEVEL}.v"
        if src.is_file():
            verilog = src.read_text()
        else:
            verilog, _ = system_verilog(sysc, TOPLEVEL)
        width = len(port_chip(sysc.chip).trace_bits)
        return vl.build(simulator, verilog, TOPLEVEL, d,
                        extra_args=[*vl.top_ports_only(simulator),
                                    *vl.wide_values(simulator, width)])


def _config_keys(cfg) -> dict:
    keys = dataclasses.asdict(cfg)
    keys.pop("source")
    return keys


class VerilogSystemBackend:
    """The system's Verilog under cocotb on `simulator` (see the module docstring)."""

    def __init__(self, sysc: SystemConfig | str, simulator: str = "verilator", *,
                 built: vl.BuildResult | None = None, max_cycles: int = 100_000,
                 workdir=None):
        self.sysc = load_system(sysc)
        self.simulator = simulator
        self.name = simulator
        self.built = built
        self.max_cycles = max_cycles
        self.workdir = workdir
        self.status: list = []
        self.errors: list = []
        self.end_cycles: list[int | None] = []

    def run(self, programs, mem_inits):
        cfg = self.sysc.chip
        built = self.built or build_system(self.sysc, self.simulator)
        work = Path(self.workdir or tempfile.mkdtemp(prefix="lpu-system-"))
        work.mkdir(parents=True, exist_ok=True)
        chip = port_chip(cfg)
        ctx, reader = PackedTrace(chip), TraceReader(chip)
        running_bit = ctx.running_mask().bit_length() - 1
        items = []
        for i, (prog, mem) in enumerate(zip(programs, mem_inits, strict=True)):
            prog.save(work / f"chip{i}.bin")
            np.savez(work / f"chip{i}.npz", **{k: np.asarray(v, np.uint8)
                                             for k, v in (mem or {}).items()})
            items.append({"program": str(work / f"chip{i}.bin"),
                          "mem": str(work / f"chip{i}.npz")})
        job = {"config": _config_keys(cfg), "config_hash": cfg.hash, "chips": items,
               "running_bit": running_bit, "max_cycles": self.max_cycles,
               "result": str(work / "result.json")}
        (work / "job.json").write_text(json.dumps(job))
        vl.run_test(built, "lpu.sim.cocotb_system_bench", test_dir=work,
                    extra_env={JOB_ENV: str(work / "job.json")})
        res = json.loads((work / "result.json").read_text())["chips"]
        self.status = [r["status"] for r in res]
        self.end_cycles = [r["end_cycle"] for r in res]
        self.errors = [r["error"] for r in res]
        out = []
        for r in res:
            rows: list[tuple[int, list[Event]]] = []
            for c, hexbits in r["rows"]:
                ctx.bits = int(hexbits, 16)
                rows.append((c, reader.read(ctx, c)))
            out.append(iter(rows))
        return out
