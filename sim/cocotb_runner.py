"""Lockstep over the generated Verilog, the Python side: build the chip top for a
simulator, write a job, run the cocotb bench (:mod:`lpu.sim.cocotb_bench`) and read its
result. The chip top runs under cocotb on Verilator or Icarus.

The chip's Verilog (:func:`lpu.hdl.chip.to_verilog` with the trace port) is built once
per config and simulator (:func:`build_chip`, cached: the conversion and the build are
skipped while the HDL sources, the config and the tools are unchanged). Each program
then runs in a fresh simulator process (:func:`lockstep_hdl`):

1. the cocotb test :func:`lpu.sim.cocotb_bench.lockstep` (the cocotb test module)
   reads a job file (config, program, initial SRAM), resets the chip, writes through
   the host bus the non-zero SRAM words the program can read (:func:`words_read`;
   nothing else can show in the events) and the program, and writes START;
2. from cycle 0 on it samples the trace port every cycle, turning it into events with
   :class:`lpu.sim.trace.TraceReader` (through a ``ctx.get`` that reads cocotb handles),
   and feeds them, beside the golden model's events of the same cycle, to a
   :class:`lpu.sim.lockstep.Comparator`, inside the simulator process, stopping at
   the first divergence;
3. it writes the :class:`~lpu.sim.lockstep.LockstepResult` as JSON (and the host's
   STATUS and error registers), which :func:`lockstep_hdl` returns.

A divergence is a result, not a test failure; an exception (a missing port, a
simulator crash) is an error. With ``vcd=`` the build records waves
(``--trace``) and the waveform of the run is copied there.

Bus timing (lpu.hdl.host): inputs are driven at the falling edge and latched by the
rising edge; values of cycle ``c`` are sampled after the falling edge inside ``c``
(``ReadOnly``). Cycle 0 is the cycle after the START write.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import amaranth
import numpy as np

import lpu
import lpu.hdl
from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.golden.schedule import timeline
from lpu.hdl.chip import to_verilog
from lpu.isa import Opcode
from lpu.program import Program

from . import verilator as vl
from .lockstep import LockstepResult
from .recorder import CHIP_TOP, TOPLEVEL, bench_top
from .trace import port_chip

__all__ = ["build_chip", "lockstep_hdl", "lockstep_hdl_many", "design_key", "words_read",
           "words_written"]

#: The environment variable that names the job file for the cocotb bench.
JOB_ENV = "LPU_LOCKSTEP_JOB"


def design_key(cfg: ChipConfig, trace: bool = True) -> str:
    """Hash of everything the chip's Verilog depends on: the HDL sources, the ISA and
    config modules, the config's geometry and the Amaranth version."""
    h = hashlib.sha256()
    hdl_dir = Path(lpu.hdl.__file__).parent
    files = sorted(hdl_dir.glob("*.py")) + [Path(lpu.__file__).parent / n
                                            for n in ("isa.py", "config.py")]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(f"{cfg.hash} trace={trace} amaranth={amaranth.__version__}".encode())
    return h.hexdigest()[:16]


def build_chip(cfg: ChipConfig | str, simulator: str = "verilator", *, waves: bool = False):
    """Build the chip top (with its trace port) for `simulator`; cached in a folder of
    its own per design (:func:`design_key`: two checkouts or branches on one machine
    never share one), one builder at a time (a lock file beside the folder, so
    parallel test workers or regression workers build it once)."""
    cfg = load_config(cfg)
    key = design_key(cfg)
    d = vl.build_dir("chip" + ("-waves" if waves else ""), f"{cfg.hash}-{key}", simulator)
    d.parent.mkdir(parents=True, exist_ok=True)
    with open(d.parent / f"{d.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            src = d / f"{CHIP_TOP}.v"
            if src.is_file():
                verilog = src.read_text()  # same design: skip the (slow) conversion
            else:
                verilog, _ = to_verilog(cfg, trace=True, name=CHIP_TOP)
                d.mkdir(parents=True, exist_ok=True)
                src.write_text(verilog)
            top, files = bench_top(port_chip(cfg), simulator)
            for name, text in files.items():
                if not (d / name).is_file() or (d / name).read_text() != text:
                    (d / name).write_text(text)
            return vl.build(simulator, verilog + "\n" + top, TOPLEVEL, d, waves=waves,
                            extra_args=[*vl.top_ports_only(simulator),
                                        *(str(d / name) for name in files)],
                            keep=(src.name, *files))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def lockstep_hdl(cfg: ChipConfig | str, program: Program, mem_init: dict | None,
                 simulator: str = "verilator", *, vcd=None, max_cycles: int = 200_000,
                 workdir=None, built=None):
    """Run `program` on the chip's Verilog under cocotb in lockstep with the golden
    model; returns a :class:`~lpu.sim.lockstep.LockstepResult` (plus ``.hdl`` info:
    build seconds, status and error registers). `built`: a
    :class:`~lpu.sim.verilator.BuildResult` to use instead of :func:`build_chip`."""
    return lockstep_hdl_many(cfg, [(program, mem_init)], simulator, vcd=vcd,
                             max_cycles=max_cycles, workdir=workdir, built=built)[0]


def lockstep_hdl_many(cfg: ChipConfig | str, runs, simulator: str = "verilator", *,
                      vcd=None, max_cycles: int = 200_000, workdir=None, built=None,
                      stop_at_first: bool = False, reference_mem=None,
                      free_run: bool = False) -> list:
    """Run each ``(program, mem_init)`` of `runs` in lockstep, one after the other in one
    simulator process (the chip is reset between them; SRAM words an earlier run wrote
    or loaded are rewritten when a later run reads them). Returns one
    :class:`~lpu.sim.lockstep.LockstepResult` per run (fewer with `stop_at_first`, which
    stops after the first divergence or error flag). `reference_mem`: per run, other
    initial SRAM for the golden model only (tests of the checker: a known difference).

    With `free_run` nothing is compared: each program is loaded, started and left to
    run until RUNNING falls (no Python in the simulation's cycles; for ``lpu bench
    rtl``); the result per run is a dict (``rtl_cycles``, ``seconds``, ``status``)."""
    cfg = load_config(cfg)
    runs = list(runs)
    for program, _ in runs:
        program.check_config(cfg)
    if built is None:
        built = build_chip(cfg, simulator, waves=bool(vcd))
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lpu-lockstep-"))
    work.mkdir(parents=True, exist_ok=True)
    items = []
    for n, (program, mem_init) in enumerate(runs):
        prog_path, mem_path = work / f"program{n}.bin", work / f"mem{n}.npz"
        program.save(prog_path)
        np.savez(mem_path, **{k: np.asarray(v, dtype=np.uint8)
                              for k, v in (mem_init or {}).items()})
        item = {"program": str(prog_path), "mem": str(mem_path)}
        if reference_mem is not None and reference_mem[n] is not None:
            ref_path = work / f"refmem{n}.npz"
            np.savez(ref_path, **{k: np.asarray(v, dtype=np.uint8)
                                  for k, v in reference_mem[n].items()})
            item["reference_mem"] = str(ref_path)
        items.append(item)
    result_path = work / "result.json"
    result_path.unlink(missing_ok=True)
    config_spec = str(Path(cfg.source).resolve()) if Path(cfg.source).is_file() else cfg.name
    job = {"config": config_spec, "config_hash": cfg.hash, "runs": items,
           "result": str(result_path), "max_cycles": max_cycles, "device": simulator,
           "stop_at_first": stop_at_first, "free_run": free_run}
    (work / "job.json").write_text(json.dumps(job))
    vl.run_test(built, "lpu.sim.cocotb_bench", test_dir=work,
                extra_env={JOB_ENV: str(work / "job.json")}, waves=bool(vcd))
    out = json.loads(result_path.read_text())
    if free_run:
        return out["runs"]
    results = []
    for r in out["runs"]:
        res = LockstepResult.from_json(r["lockstep"])
        res.hdl = {"build_seconds": round(built.seconds, 1), "build_cached": built.cached,
                   "status": r.get("status"), "error": r.get("error"),
                   "run_seconds": r.get("seconds"), "rtl_cycles": r.get("rtl_cycles"),
                   "cycles_per_second": r.get("cycles_per_second"), "workdir": str(work)}
        results.append(res)
    if vcd and results:
        wave = next((p for p in (work / "dump.vcd", work / f"{TOPLEVEL}.fst",
                                 work / "dump.fst") if p.is_file()), None)
        if wave is not None:
            shutil.copyfile(wave, vcd)
            results[-1].hdl["waveform"] = str(vcd)
    return results


def words_read(cfg: ChipConfig, program: Program) -> dict[int, set[int]]:
    """MEM slice index -> the SRAM addresses `program` can read (``read`` words; for a
    ``gather``, every word its 8-bit indices can reach in the bank of its base). Only
    these need loading: events never show SRAM contents that are not read."""
    out: dict[int, set[int]] = {}
    mem_q = {q.index: i for i, q in enumerate(q for q in cfg.queues if q.kind == "mem")}
    bw = cfg.bank_words
    for d in timeline(cfg, program).dispatches:
        if d.queue not in mem_q:
            continue
        a = d.instr.args
        if d.instr.op == Opcode.READ:
            addrs = range(a["addr"], a["addr"] + a["count"])
        elif d.instr.op == Opcode.GATHER:
            end = (a["base"] // bw + 1) * bw
            addrs = range(a["base"], min(end, a["base"] + 256))
        else:
            continue
        out.setdefault(mem_q[d.queue], set()).update(addrs)
    return out


def words_written(cfg: ChipConfig, program: Program) -> dict[int, set[int]]:
    """MEM slice index -> the SRAM addresses `program` can write."""
    out: dict[int, set[int]] = {}
    mem_q = {q.index: i for i, q in enumerate(q for q in cfg.queues if q.kind == "mem")}
    for d in timeline(cfg, program).dispatches:
        if d.queue in mem_q and d.instr.op == Opcode.WRITE:
            a = d.instr.args
            out.setdefault(mem_q[d.queue], set()).update(range(a["addr"], a["addr"] + a["count"]))
    return out
