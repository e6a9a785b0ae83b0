"""The cocotb bench of the chip top: the module cocotb loads inside the simulator.

It reads the job file named by ``$LPU_LOCKSTEP_JOB`` (written by
:func:`lpu.sim.cocotb_runner.lockstep_hdl_many`: config, programs, initial SRAM), and
for each run resets the chip, loads through the host bus (:class:`HostBus`) the SRAM
words the program can read and the program, writes START, and then, by the job's
``mode``,

* ``record`` (bulk lockstep, the default): lets the chip run free while the recorder
  of the bench top (:mod:`lpu.sim.recorder`, on with the plusarg the runner passes)
  writes its trace into the runner's pipe, with no Python in the simulated cycles; it
  waits for RUNNING to fall (or resets the chip after ``max_cycles``) and reads the
  host's registers. The comparison happens in the runner's process
  (:mod:`lpu.sim.bulk`);
* ``cycle`` (per-cycle lockstep): samples ``trace_bits`` at the falling edge of every
  cycle, turns it into events (:class:`lpu.sim.trace.TraceReader` over a
  :class:`lpu.sim.trace.PackedTrace`) and feeds them beside the golden model's to a
  :class:`lpu.sim.lockstep.Comparator`, stopping at the first divergence;
* ``free``: waits for RUNNING to fall, with no Python in the simulated cycles and
  nothing recorded (``lpu bench rtl``);
* ``session`` (:class:`lpu.sim.session.RtlSession`: decoding on the RTL): runs come
  one at a time, each as the runner asks for it (``step<n>.json`` in the job's folder:
  the program, the SRAM words to write, the words to read back after the run). The
  chip is reset before each run but its SRAM is never cleared or reloaded: only the
  words the runner names are written, so what a run wrote is there for the next one,
  as on the golden chip; of each program only the instruction words that differ from
  what the queue's instruction memory holds from earlier runs are written. Each run
  is recorded as in ``record``; after it the bench reads the host's registers and the
  words asked for, and writes ``result<n>.json``. ``stop`` in the folder ends the
  session.

The result goes back as JSON to the path the job names. Bus timing is that of
:mod:`lpu.hdl.host`: inputs are set just after a rising edge and latched by the next;
cycle 0 is the cycle after the START write.

This module needs cocotb (the ``test`` extra); nothing outside the simulator imports it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from lpu.config import load as load_config
from lpu.hdl.host import RegisterMap
from lpu.hdl.mem import MemFault
from lpu.hostmap import ErrorCode
from lpu.program import Program

from .cocotb_runner import JOB_ENV, words_read, words_written
from .lockstep import Comparator, EventCursor, GoldenBackend
from .trace import PackedTrace, TraceReader, port_chip

#: The bench's clock period.
PERIOD_NS = 10
#: The runner's process (the simulator's parent): a bench waiting for the runner stops
#: when it is gone, instead of waiting for ever.
_PARENT = os.getppid()


class HostBus:
    """The host bus from cocotb: one clock edge per access. Inputs are set just after a
    rising edge (cocotb applies them after the edge's evaluation) and latched by the
    next one."""

    def __init__(self, dut):
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


async def _reset(dut, bus):
    bus.idle()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def _write_word(bus, regs, mem_slice: int, addr: int, word: bytes) -> int:
    """One SRAM word through the bus: its WBUF chunks, then SRAM_WRITE; the accesses."""
    chunks = regs.word_chunks(word)
    for reg, value in chunks:
        await bus.write(reg, value)
    await bus.write(regs.SRAM_WRITE, regs.sram_target(mem_slice, addr))
    return len(chunks) + 1


async def _read_word(bus, regs, mem_slice: int, addr: int) -> bytes:
    """One SRAM word through the bus: SRAM_READ, then its WBUF chunks."""
    await bus.write(regs.SRAM_READ, regs.sram_target(mem_slice, addr))
    bus.idle()
    await bus.edge  # the word buffer holds it from the cycle after SRAM_READ
    values = [await bus.read(regs.wbuf(k, c))
              for k in range(regs.cfg.superlanes) for c in range(regs.chunks)]
    return regs.chunks_word(values)


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
            writes += await _write_word(bus, regs, i, addr, bytes(word))
            done.add(addr)
    for i, addrs in words_written(cfg, program).items():
        dirty.setdefault(i, set()).update(addrs)
    return writes + await _load_program(bus, regs, cfg, program)


async def _load_program(bus, regs, cfg, program, loaded: dict | None = None) -> int:
    """Every queue's instruction words and length through the bus; the accesses.
    `loaded` (queue name -> the words its instruction memory holds, from an earlier
    run; updated here): only words that differ from those are written (a reset does
    not clear instruction memory)."""
    writes = 0
    for q in cfg.queues:
        words = program.queues.get(q.name, [])
        old = loaded.get(q.name, []) if loaded is not None else []
        for j, w in enumerate(words):
            if j >= len(old) or old[j] != w:
                await bus.write(regs.imem(q.index, j), w)
                writes += 1
        await bus.write(regs.qlen(q.index), len(words))
        writes += 1
        if loaded is not None:
            loaded[q.name] = list(words) + list(old[len(words):])
    return writes


async def _run_one(dut, cfg, chip, program, mem, dirty, limit, device, ref_mem=None,
                   faults=()) -> dict:
    regs = RegisterMap(cfg)
    bus = HostBus(dut)
    ctx, reader = PackedTrace(chip), TraceReader(chip)
    t0 = time.perf_counter()
    await _reset(dut, bus)
    writes = await _load(bus, regs, cfg, program, mem, dirty)
    await bus.write(regs.CTRL, regs.CTRL_START)  # the cycle of this write is cycle -1
    bus.idle()
    load_seconds = time.perf_counter() - t0

    gb = GoldenBackend(cfg, faults=faults)
    golden = EventCursor(gb.run(program, mem if ref_mem is None else ref_mem))
    cmp = Comparator(cfg, program=program)
    bits = dut.trace_bits
    running_bit = ctx.running_mask()
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
    status = err = None
    if cmp.divergence is None:
        await bus.edge
        status = await bus.read(regs.STATUS)
        cmp.finish(gb.end_cycle, await bus.read(regs.CYCLE))  # the run ends alike
        err, corrected = await _errors(bus, regs, status)
    result = cmp.result("golden", device)
    return {"lockstep": result.to_json(), "status": status, "error": err,
            "corrected": corrected if cmp.divergence is None else None,
            "seconds": {"load": round(load_seconds, 3), "run": round(run_seconds, 3)},
            "bus_writes": writes, "rtl_cycles": c,
            "cycles_per_second": round(c / run_seconds, 1) if run_seconds else 0}


def _npz(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


async def _free_run(dut, cfg, program, mem, dirty) -> dict:
    regs = RegisterMap(cfg)
    bus = HostBus(dut)
    t0 = time.perf_counter()
    await _reset(dut, bus)
    await _load(bus, regs, cfg, program, mem, dirty)
    await bus.write(regs.CTRL, regs.CTRL_START)
    bus.idle()
    t1, c1 = time.perf_counter(), time.process_time()
    await FallingEdge(dut.trace__running)
    t2, c2 = time.perf_counter(), time.process_time()
    await bus.edge
    cycles = await bus.read(regs.CYCLE)
    status = await bus.read(regs.STATUS)
    # the simulator's CPU time too: on a shared machine the wall time says more about
    # the other jobs than about the model
    return {"rtl_cycles": cycles, "status": status,
            "seconds": {"load": round(t1 - t0, 3), "run": round(t2 - t1, 3),
                        "run_cpu": round(c2 - c1, 3)},
            "cycles_per_second": round(cycles / (t2 - t1), 1) if t2 > t1 else 0,
            "cycles_per_cpu_second": round(cycles / (c2 - c1), 1) if c2 > c1 else 0}


def _wait_for(go: Path, stop: Path) -> None:
    """Block, and the simulation with it, until the runner creates `go` (raise if it
    creates `stop`)."""
    while not go.exists():
        if stop.exists() or os.getppid() != _PARENT:
            raise RuntimeError("the runner stopped the job")
        time.sleep(0.002)


async def _record_one(dut, cfg, load, limit, go=None) -> dict:
    """Reset the chip, `load` it (``await load(bus, regs)``: the bus accesses) and run
    it free, recorded (modes ``record`` and ``session``): the host's registers after
    it, and when it started and ended (``time.monotonic``, for the runner's speed
    figures). With `go` (``(go, stop)`` paths), START waits until the runner says go:
    its golden model of this run is ready, so the run is compared as it is recorded
    and the two do not compete for the machine."""
    regs = RegisterMap(cfg)
    bus = HostBus(dut)
    t0 = time.perf_counter()
    await _reset(dut, bus)
    writes = await load(bus, regs)
    load_seconds = time.perf_counter() - t0
    if go is not None:
        _wait_for(*go)
    await bus.write(regs.CTRL, regs.CTRL_START)
    start = time.monotonic()
    bus.idle()
    running = dut.trace__running
    await FallingEdge(dut.clk)  # inside cycle 0
    timed_out = False
    if running.value:
        fell = FallingEdge(running)  # one callback, not one a cycle (as ClockCycles)
        timed_out = await First(fell, Timer((limit + 2) * PERIOD_NS, unit="ns")) is not fell
    end = time.monotonic()
    out = {"timeout": timed_out, "start": start, "end": end, "bus_writes": writes,
           "seconds": {"load": round(load_seconds, 3), "run": round(end - start, 3)},
           "status": None, "error": None, "corrected": None, "end_cycle": None}
    if timed_out:
        await _reset(dut, bus)  # RUNNING falls: the recorder ends the run
        await bus.edge
        return out
    await bus.edge
    out["end_cycle"] = await bus.read(regs.CYCLE)
    out["status"] = status = await bus.read(regs.STATUS)
    out["error"], out["corrected"] = await _errors(bus, regs, status)
    return out


async def _errors(bus, regs, status: int):
    """The first error (``{"cycle", "code", "position", "superlane", "unit", "queue"}``,
    and ``"address"`` for an ``ECC`` error) or None, and ECC_CORRECTED, as the host reads
    them after the run (:meth:`lpu.sim.hostbus.HostBus.error`)."""
    err = None
    if status & regs.STATUS_ERROR:
        err = {n: await bus.read(getattr(regs, "ERR_" + n.upper()))
               for n in ("cycle", "code", "position", "superlane", "unit", "queue")}
        if err["code"] == ErrorCode.ECC.value:
            err["address"] = await bus.read(regs.ERR_ADDRESS)
    return err, await bus.read(regs.ECC_CORRECTED)


def _write_json(path: Path, obj) -> None:
    """Write `obj` as JSON so that a reader polling for `path` never sees it half made."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


async def _session(dut, cfg, job: dict, limit: int) -> dict:
    """Mode ``session``: run ``step<n>.json`` for n = 0, 1, .. as each appears in the
    job's folder, until ``stop`` does (see the module docstring)."""
    folder = Path(job["go"])
    stop = folder / "stop"
    n = 0
    imem: dict = {}  # queue -> the words its instruction memory holds
    while True:
        step = folder / f"step{n}.json"
        while not step.exists():  # the simulation waits here between runs
            if stop.exists() or os.getppid() != _PARENT:
                return {"runs": n}
            time.sleep(0.002)
        item = json.loads(step.read_text())
        program = Program.load(item["program"])
        with np.load(item["writes"]) as z:
            slices, addrs, words = z["slice"], z["addr"], z["words"]

        async def load(bus, regs, program=program, slices=slices, addrs=addrs, words=words):
            writes = 0
            for m, a, w in zip(slices.tolist(), addrs.tolist(), words, strict=True):
                writes += await _write_word(bus, regs, m, a, w.tobytes())
            return writes + await _load_program(bus, regs, cfg, program, imem)

        out = await _record_one(dut, cfg, load, limit, (folder / f"go{n}", stop))
        if not out["timeout"]:
            regs, bus = RegisterMap(cfg), HostBus(dut)
            out["reads"] = [[(await _read_word(bus, regs, m, a + k)).hex()
                             for k in range(count)] for m, a, count in item["reads"]]
            bus.idle()
        _write_json(folder / f"result{n}.json", out)
        n += 1


async def _run_job(dut, job: dict) -> dict:
    cfg = load_config(job["config"])
    if cfg.hash != job["config_hash"]:
        raise RuntimeError(f"config {job['config']} has hash {cfg.hash}, the job wants "
                           f"{job['config_hash']}")
    chip = port_chip(cfg)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    limit = int(job.get("max_cycles", 200_000))
    if job.get("mode") == "session":
        return await _session(dut, cfg, job, limit)
    dirty: dict[int, set[int]] = {}
    out = []
    for n, item in enumerate(job["runs"]):
        program = Program.load(item["program"])
        mem = _npz(item["mem"])
        mode = job.get("mode", "cycle")
        if mode == "free":
            out.append(await _free_run(dut, cfg, program, mem, dirty))
            continue
        if mode == "record":
            go = None
            if job.get("go"):
                go = (Path(job["go"]) / f"go{n}", Path(job["go"]) / "stop")
            out.append(await _record_one(
                dut, cfg, lambda bus, regs, p=program, m=mem: _load(bus, regs, cfg, p, m, dirty),
                limit, go))
            continue
        ref = _npz(item["reference_mem"]) if "reference_mem" in item else None
        r = await _run_one(dut, cfg, chip, program, mem, dirty, limit,
                           job.get("device", "hdl"), ref,
                           [MemFault(**f) for f in job.get("faults", [])])
        out.append(r)
        if job.get("stop_at_first") and (not r["lockstep"]["ok"] or r["error"]):
            break
    return {"runs": out}


@cocotb.test()
async def lockstep(dut):
    """Run the job named by $LPU_LOCKSTEP_JOB in lockstep with the golden model."""
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    out = await _run_job(dut, job)
    Path(job["result"]).write_text(json.dumps(out, indent=2))
    if job.get("mode") == "session":
        dut._log.info(f"session: {out['runs']} runs")
        return
    for n, r in enumerate(out["runs"]):
        if "lockstep" in r:
            dut._log.info(f"run {n}: ok={r['lockstep']['ok']} rtl cycles={r['rtl_cycles']} "
                          f"({r['cycles_per_second']} cycles/s)")
        else:
            dut._log.info(f"run {n}: {job.get('mode')}, {r['seconds']}")
