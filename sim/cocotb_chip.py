"""Lockstep over the generated Verilog: the chip top under cocotb (Verilator or Icarus).

The chip's Verilog (:func:`lpu.hdl.chip.to_verilog` with the trace port) is built once
per config and simulator (:func:`build_chip`, cached: the conversion and the build are
skipped while the HDL sources, the config and the tools are unchanged). Each program
then runs in a fresh simulator process (:func:`lockstep_hdl`):

1. the cocotb test :func:`lockstep` below (this module is the cocotb test module)
   reads a job file (config, program, initial SRAM), resets the chip, writes through
   the host bus the non-zero SRAM words the program can read (:func:`words_read`;
   nothing else can show in the events) and the program, and writes START;
2. from cycle 0 on it samples the trace port every cycle, turning it into events with
   :class:`lpu.hdl.chip.TraceReader` (through a ``ctx.get`` that reads cocotb handles),
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

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.program import Program

__all__ = ["build_chip", "lockstep_hdl", "lockstep_hdl_many", "design_key", "words_read",
           "words_written"]

TOPLEVEL = "lpu_top"
JOB_ENV = "LPU_LOCKSTEP_JOB"


# -- the Python side ---------------------------------------------------------------------------


def design_key(cfg: ChipConfig, trace: bool = True) -> str:
    """Hash of everything the chip's Verilog depends on: the HDL sources, the ISA and
    config modules, the config's geometry and the Amaranth version."""
    import amaranth

    import lpu
    import lpu.hdl

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
    """Build the chip top (with its trace port) for `simulator`; cached."""
    from lpu.sim import verilator as vl

    cfg = load_config(cfg)
    d = vl.build_dir("chip" + ("-waves" if waves else ""), cfg.hash, simulator)
    key = design_key(cfg)
    keyfile = d / "lpu-design-key"
    src = d / f"{TOPLEVEL}.v"
    if keyfile.is_file() and keyfile.read_text() == key and src.is_file():
        verilog = src.read_text()  # same design: skip the (slow) conversion
    else:
        from lpu.hdl.chip import to_verilog

        verilog, _ = to_verilog(cfg, trace=True, name=TOPLEVEL)
    built = vl.build(simulator, verilog, TOPLEVEL, d, waves=waves,
                     extra_args=vl.top_ports_only(simulator))
    keyfile.write_text(key)
    return built


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
    from lpu.sim import verilator as vl
    from lpu.sim.lockstep import LockstepResult

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
    config_spec = cfg.source if Path(cfg.source).is_file() else cfg.name
    job = {"config": config_spec, "config_hash": cfg.hash, "runs": items,
           "result": str(result_path), "max_cycles": max_cycles, "device": simulator,
           "stop_at_first": stop_at_first, "free_run": free_run}
    (work / "job.json").write_text(json.dumps(job))
    vl.run_test(built, "lpu.sim.cocotb_chip", test_dir=work,
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


# -- the simulator side (cocotb) -------------------------------------------------------------------


class _Bus:
    """The host bus from cocotb: one clock edge per access. Inputs are set just after a
    rising edge (cocotb applies them after the edge's evaluation) and latched by the
    next one."""

    def __init__(self, dut):
        from cocotb.triggers import RisingEdge

        self.dut = dut
        self.edge = RisingEdge(dut.clk)

    async def write(self, addr, value):
        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__w_data.value = value & 0xFFFFFFFF
        dut.bus__w_en.value = 1
        dut.bus__r_en.value = 0
        await self.edge

    def idle(self):
        self.dut.bus__w_en.value = 0
        self.dut.bus__r_en.value = 0

    async def read(self, addr) -> int:
        from cocotb.triggers import ReadOnly

        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__w_en.value = 0
        dut.bus__r_en.value = 1
        await self.edge
        dut.bus__r_en.value = 0
        await ReadOnly()
        v = dut.bus__r_data.value
        await self.edge  # leave the read-only phase at an edge, as the writes expect
        return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


def words_read(cfg: ChipConfig, program: Program) -> dict[int, set[int]]:
    """MEM slice index -> the SRAM addresses `program` can read (``read`` words; for a
    ``gather``, every word its 8-bit indices can reach in the bank of its base). Only
    these need loading: events never show SRAM contents that are not read."""
    from lpu.golden.schedule import timeline
    from lpu.isa import Opcode

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
    from lpu.golden.schedule import timeline
    from lpu.isa import Opcode

    out: dict[int, set[int]] = {}
    mem_q = {q.index: i for i, q in enumerate(q for q in cfg.queues if q.kind == "mem")}
    for d in timeline(cfg, program).dispatches:
        if d.queue in mem_q and d.instr.op == Opcode.WRITE:
            a = d.instr.args
            out.setdefault(mem_q[d.queue], set()).update(range(a["addr"], a["addr"] + a["count"]))
    return out


async def _reset(dut, bus):
    from cocotb.triggers import RisingEdge

    bus.idle()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def _load(bus, regs, cfg, program, mem, dirty):
    """Write the SRAM words `program` reads (non-zero ones, and any an earlier run of the
    batch left behind) and the program through the bus."""
    names = [q.name for q in cfg.queues if q.kind == "mem"]
    needed = words_read(cfg, program)
    writes = 0
    for i, name in enumerate(names):
        words = np.asarray(mem.get(name, np.zeros((0, cfg.vl))), dtype=np.uint8)
        done = dirty.setdefault(i, set())
        for addr in sorted(needed.get(i, ())):
            word = words[addr] if addr < len(words) else np.zeros(cfg.vl, np.uint8)
            if not word.any() and addr not in done:
                continue
            for reg, value in regs.word_chunks(bytes(word)):
                await bus.write(reg, value)
            await bus.write(regs.SRAM_WRITE, regs.sram_target(i, addr))
            writes += regs.chunks * cfg.superlanes + 1
            done.add(addr)
    for i, addrs in words_written(cfg, program).items():
        dirty.setdefault(i, set()).update(addrs)
    for q in cfg.queues:
        words = program.queues.get(q.name, [])
        for j, w in enumerate(words):
            await bus.write(regs.imem(q.index, j), w)
        await bus.write(regs.qlen(q.index), len(words))
        writes += len(words) + 1
    return writes


async def _run_one(dut, cfg, chip, program, mem, dirty, limit, device, ref_mem=None) -> dict:
    from cocotb.triggers import FallingEdge

    from lpu.hdl.chip import PackedTrace, TraceReader
    from lpu.hdl.host import RegisterMap
    from lpu.sim.lockstep import Comparator, GoldenBackend, _Side

    regs = RegisterMap(cfg)
    bus = _Bus(dut)
    ctx, reader = PackedTrace(chip), TraceReader(chip)
    t0 = time.perf_counter()
    await _reset(dut, bus)
    writes = await _load(bus, regs, cfg, program, mem, dirty)
    await bus.write(regs.CTRL, regs.CTRL_START)  # the cycle of this write is cycle -1
    bus.idle()
    load_seconds = time.perf_counter() - t0

    golden = _Side(GoldenBackend(cfg).run(program, mem if ref_mem is None else ref_mem))
    cmp = Comparator(cfg, program=program)
    bits = dut.trace_bits
    running_bit = 1 << next(off for sig, off, _ in _fields(chip) if sig is _running(chip))
    fall = FallingEdge(dut.clk)
    c = 0
    t1 = time.perf_counter()
    try:
        while True:
            # values of cycle c, settled: sampled at the falling edge inside it
            await fall
            v = bits.value
            ctx.bits = v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)
            if not ctx.bits & running_bit:
                break
            if cmp.feed(c, golden.take(c), reader.read(ctx, c)) is not None:
                break
            c += 1
            if c > limit:
                raise RuntimeError(f"the chip ran past {limit} cycles without finishing")
        while cmp.divergence is None and golden.next_cycle is not None:
            g = golden.next_cycle
            cmp.feed(g, golden.take(g), [])
    finally:
        golden.close()
    run_seconds = time.perf_counter() - t1
    result = cmp.result("golden", device)
    status = err = None
    if cmp.divergence is None:
        await bus.edge
        status = await bus.read(regs.STATUS)
        if status & regs.STATUS_ERROR:
            err = {n: await bus.read(getattr(regs, "ERR_" + n.upper()))
                   for n in ("cycle", "code", "position", "superlane", "unit", "queue")}
    return {"lockstep": result.to_json(), "status": status, "error": err,
            "seconds": {"load": round(load_seconds, 3), "run": round(run_seconds, 3)},
            "bus_writes": writes, "rtl_cycles": c,
            "cycles_per_second": round(c / run_seconds, 1) if run_seconds else 0}


def _npz(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _fields(chip):
    from lpu.hdl.chip import trace_fields

    return trace_fields(chip)


def _running(chip):
    from amaranth.hdl import Value

    return Value.cast(chip.trace.running)


async def _free_run(dut, cfg, program, mem, dirty) -> dict:
    from cocotb.triggers import FallingEdge

    from lpu.hdl.host import RegisterMap

    regs = RegisterMap(cfg)
    bus = _Bus(dut)
    t0 = time.perf_counter()
    await _reset(dut, bus)
    await _load(bus, regs, cfg, program, mem, dirty)
    await bus.write(regs.CTRL, regs.CTRL_START)
    bus.idle()
    t1 = time.perf_counter()
    await FallingEdge(dut.trace__running)
    t2 = time.perf_counter()
    await bus.edge
    cycles = await bus.read(regs.CYCLE)
    status = await bus.read(regs.STATUS)
    return {"rtl_cycles": cycles, "status": status,
            "seconds": {"load": round(t1 - t0, 3), "run": round(t2 - t1, 3)},
            "cycles_per_second": round(cycles / (t2 - t1), 1) if t2 > t1 else 0}


async def _run_job(dut, job: dict) -> dict:
    from cocotb.clock import Clock

    from lpu.hdl.chip import Chip

    cfg = load_config(job["config"])
    if cfg.hash != job["config_hash"]:
        raise RuntimeError(f"config {job['config']} has hash {cfg.hash}, the job wants "
                           f"{job['config_hash']}")
    chip = Chip(cfg, trace=True)
    for obj in (chip, chip.icu, chip.fabric, chip.host, *chip.slices):
        obj._MustUse__silence = True  # used for its port objects only, never elaborated
    Clock(dut.clk, 10, unit="ns").start()
    limit = int(job.get("max_cycles", 200_000))
    dirty: dict[int, set[int]] = {}
    out = []
    for item in job["runs"]:
        program = Program.load(item["program"])
        mem = _npz(item["mem"])
        if job.get("free_run"):
            out.append(await _free_run(dut, cfg, program, mem, dirty))
            continue
        ref = _npz(item["reference_mem"]) if "reference_mem" in item else None
        r = await _run_one(dut, cfg, chip, program, mem, dirty, limit,
                           job.get("device", "hdl"), ref)
        out.append(r)
        if job.get("stop_at_first") and (not r["lockstep"]["ok"] or r["error"]):
            break
    return {"runs": out}


try:  # the cocotb test (collected only inside the simulator)
    import cocotb

    @cocotb.test()
    async def lockstep(dut):
        """Run the job named by $LPU_LOCKSTEP_JOB in lockstep with the golden model."""
        job = json.loads(Path(os.environ[JOB_ENV]).read_text())
        out = await _run_job(dut, job)
        Path(job["result"]).write_text(json.dumps(out, indent=2))
        for n, r in enumerate(out["runs"]):
            ok = r["lockstep"]["ok"] if "lockstep" in r else "free run"
            dut._log.info(f"run {n}: ok={ok} rtl cycles={r['rtl_cycles']} "
                          f"({r['cycles_per_second']} cycles/s)")
except ImportError:  # pragma: no cover - cocotb is a test dependency
    pass
