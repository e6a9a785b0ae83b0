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

__all__ = ["build_chip", "lockstep_hdl", "design_key"]

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
    built = vl.build(simulator, verilog, TOPLEVEL, d, waves=waves)
    keyfile.write_text(key)
    return built


def lockstep_hdl(cfg: ChipConfig | str, program: Program, mem_init: dict | None,
                 simulator: str = "verilator", *, vcd=None, max_cycles: int = 200_000,
                 workdir=None, built=None):
    """Run `program` on the chip's Verilog under cocotb in lockstep with the golden
    model; returns a :class:`~lpu.sim.lockstep.LockstepResult` (plus ``.hdl`` info:
    build seconds, status and error registers). `built`: a
    :class:`~lpu.sim.verilator.BuildResult` to use instead of :func:`build_chip`."""
    from lpu.sim import verilator as vl
    from lpu.sim.lockstep import LockstepResult

    cfg = load_config(cfg)
    program.check_config(cfg)
    if built is None:
        built = build_chip(cfg, simulator, waves=bool(vcd))
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lpu-lockstep-"))
    work.mkdir(parents=True, exist_ok=True)
    prog_path, mem_path = work / "program.bin", work / "mem.npz"
    program.save(prog_path)
    np.savez(mem_path, **{k: np.asarray(v, dtype=np.uint8) for k, v in (mem_init or {}).items()})
    result_path = work / "result.json"
    result_path.unlink(missing_ok=True)
    config_spec = cfg.source if Path(cfg.source).is_file() else cfg.name
    job = {"config": config_spec, "config_hash": cfg.hash, "program": str(prog_path),
           "mem": str(mem_path), "result": str(result_path), "max_cycles": max_cycles,
           "device": simulator}
    (work / "job.json").write_text(json.dumps(job))
    vl.run_test(built, "lpu.sim.cocotb_chip", test_dir=work,
                extra_env={JOB_ENV: str(work / "job.json")}, waves=bool(vcd))
    out = json.loads(result_path.read_text())
    res = LockstepResult.from_json(out["lockstep"])
    res.hdl = {"build_seconds": round(built.seconds, 1), "build_cached": built.cached,
               "status": out.get("status"), "error": out.get("error"),
               "run_seconds": out.get("seconds"), "workdir": str(work)}
    if vcd:
        wave = next((p for p in (work / "dump.vcd", work / f"{TOPLEVEL}.fst",
                                 work / "dump.fst") if p.is_file()), None)
        if wave is not None:
            shutil.copyfile(wave, vcd)
            res.hdl["waveform"] = str(vcd)
    return res


# -- the simulator side (cocotb) -------------------------------------------------------------------


class _Ctx:
    """``ctx.get`` for :class:`lpu.hdl.chip.TraceReader`, reading cocotb handles of the top's
    ports (matched to the Amaranth port signals by their names)."""

    def __init__(self, dut, chip):
        from amaranth.hdl import Value

        self.handles = {}
        for _, _, value in chip.signature.flatten(chip):
            sig = Value.cast(value)
            self.handles[id(sig)] = getattr(dut, sig.name)
        self._keep = chip

    def get(self, value) -> int:
        from amaranth.hdl import Value

        v = self.handles[id(Value.cast(value))].value
        return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


class _Bus:
    def __init__(self, dut, regs):
        from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

        self.dut, self.regs = dut, regs
        self.Falling, self.Rising, self.ReadOnly = FallingEdge, RisingEdge, ReadOnly

    async def write(self, addr, value):
        dut = self.dut
        await self.Falling(dut.clk)
        dut.bus__addr.value = addr
        dut.bus__w_data.value = value & 0xFFFFFFFF
        dut.bus__w_en.value = 1
        dut.bus__r_en.value = 0
        await self.Rising(dut.clk)

    async def idle(self):
        await self.Falling(self.dut.clk)
        self.dut.bus__w_en.value = 0
        self.dut.bus__r_en.value = 0

    async def read(self, addr) -> int:
        dut = self.dut
        await self.Falling(dut.clk)
        dut.bus__addr.value = addr
        dut.bus__w_en.value = 0
        dut.bus__r_en.value = 1
        await self.Rising(dut.clk)
        await self.Falling(dut.clk)
        dut.bus__r_en.value = 0
        await self.ReadOnly()
        v = dut.bus__r_data.value
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


async def _run_job(dut, job: dict) -> dict:
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

    from lpu.hdl.chip import Chip, TraceReader
    from lpu.hdl.host import RegisterMap
    from lpu.sim.lockstep import Comparator, GoldenBackend, _Side

    cfg = load_config(job["config"])
    if cfg.hash != job["config_hash"]:
        raise RuntimeError(f"config {job['config']} has hash {cfg.hash}, the job wants "
                           f"{job['config_hash']}")
    program = Program.load(job["program"])
    with np.load(job["mem"]) as z:
        mem = {k: z[k] for k in z.files}
    chip = Chip(cfg, trace=True)
    for obj in (chip, chip.icu, chip.fabric, chip.host, *chip.slices):
        obj._MustUse__silence = True  # used for its port objects only, never elaborated
    ctx, reader, regs = _Ctx(dut, chip), TraceReader(chip), RegisterMap(cfg)
    bus = _Bus(dut, regs)
    t0 = time.perf_counter()

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.bus__w_en.value = 0
    dut.bus__r_en.value = 0
    dut.bus__addr.value = 0
    dut.bus__w_data.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    names = [q.name for q in cfg.queues if q.kind == "mem"]
    needed = words_read(cfg, program)
    for i, name in enumerate(names):
        words = mem.get(name)
        if words is None:
            continue
        words = np.asarray(words, dtype=np.uint8)
        for addr in sorted(needed.get(i, ())):
            word = words[addr] if addr < len(words) else np.zeros(cfg.vl, np.uint8)
            if not word.any():
                continue
            for reg, value in regs.word_chunks(bytes(word)):
                await bus.write(reg, value)
            await bus.write(regs.SRAM_WRITE, regs.sram_target(i, addr))
    for q in cfg.queues:
        words = program.queues.get(q.name, [])
        for j, w in enumerate(words):
            await bus.write(regs.imem(q.index, j), w)
        await bus.write(regs.qlen(q.index), len(words))
    load_seconds = time.perf_counter() - t0
    await bus.write(regs.CTRL, regs.CTRL_START)  # the cycle of this write is cycle -1
    await FallingEdge(dut.clk)
    dut.bus__w_en.value = 0
    await ReadOnly()

    golden = _Side(GoldenBackend(cfg).run(program, mem))
    cmp = Comparator(cfg, program=program)
    running = dut.trace__running
    c = 0
    limit = int(job.get("max_cycles", 200_000))
    t1 = time.perf_counter()
    try:
        while int(running.value):
            if cmp.feed(c, golden.take(c), reader.read(ctx, c)) is not None:
                break
            c += 1
            if c > limit:
                raise RuntimeError(f"the chip ran past {limit} cycles without finishing")
            await FallingEdge(dut.clk)
            await ReadOnly()
        while cmp.divergence is None and golden.next_cycle is not None:
            g = golden.next_cycle
            cmp.feed(g, golden.take(g), [])
    finally:
        golden.close()
    run_seconds = time.perf_counter() - t1
    result = cmp.result("golden", job.get("device", "hdl"))
    status = err = None
    if cmp.divergence is None:
        status = await bus.read(regs.STATUS)
        if status & regs.STATUS_ERROR:
            err = {n: await bus.read(getattr(regs, "ERR_" + n.upper()))
                   for n in ("cycle", "code", "position", "superlane", "unit", "queue")}
    return {"lockstep": result.to_json(), "status": status, "error": err,
            "seconds": {"load": round(load_seconds, 2), "run": round(run_seconds, 2)},
            "rtl_cycles": c, "cycles_per_second": round(c / run_seconds, 1) if run_seconds else 0}


try:  # the cocotb test (collected only inside the simulator)
    import cocotb

    @cocotb.test()
    async def lockstep(dut):
        """Run the job named by $LPU_LOCKSTEP_JOB in lockstep with the golden model."""
        job = json.loads(Path(os.environ[JOB_ENV]).read_text())
        out = await _run_job(dut, job)
        Path(job["result"]).write_text(json.dumps(out, indent=2))
        dut._log.info(f"lockstep: ok={out['lockstep']['ok']} cycles={out['lockstep']['cycles']} "
                      f"({out['cycles_per_second']} cycles/s)")
except ImportError:  # pragma: no cover - cocotb is a test dependency
    pass
