"""An RTL chip kept running across programs, each run in bulk lockstep with the golden
model: what decoding on the RTL needs (:mod:`lpu.tools.rtl_decode`).

Contract
--------
:class:`RtlSession` starts one simulator process (Verilator or Icarus, under cocotb;
the chip built once per design by :func:`lpu.sim.cocotb_runner.build_chip`) running
the bench's ``session`` mode (:mod:`lpu.sim.cocotb_bench`), and keeps it until
:meth:`RtlSession.close`. Its SRAM persists between runs, as the golden chip's does:
the chip is reset before each run (dispatchers, streams, MXM and VXM state, error
registers), but only the SRAM words a run names are written. At power-up every SRAM
word is zero, as on the golden chip.

:meth:`RtlSession.run` runs one program:

1. the host writes, through the bus, the SRAM words given (`writes`: what changed
   since the last run on the host's side, e.g. the token of a decode step; on the
   first run everything that is not zero) and the program (the instruction words that
   differ from what each queue's instruction memory holds from earlier runs, and every
   queue's length), and writes START;
2. the chip runs free, recorded (:mod:`lpu.sim.recorder`); beside it the golden model
   runs the same program from `sram` (the golden SRAM at START, which the host's
   writes make the RTL's too) and :class:`lpu.sim.bulk.BulkRun` compares every event
   of every cycle, and then the end of the run;
3. the host reads the SRAM words asked for (`reads`) through the bus.

The :class:`SessionRun` says whether the run stayed in lockstep (its
:class:`~lpu.sim.lockstep.LockstepResult`, with the first
:class:`~lpu.sim.lockstep.Divergence` if not), the host's STATUS and error registers,
and the words read. A divergence is a result, not an error; a simulator that stops,
runs past `max_cycles` or cannot be read is a :class:`~lpu.sim.verilator.SimulatorError`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.hostmap import RegisterMap
from lpu.program import Program

from . import verilator as vl
from .bulk import BulkRun, Expected, compare_recording
from .cocotb_runner import JOB_ENV, build_chip
from .hostbus import SimBus
from .lockstep import LockstepResult, record_run, sim_chip
from .recorder import PLUSARG, Pipe, RecorderError, record_bytes
from .trace import port_chip

__all__ = ["RtlSession", "AmaranthSession", "open_session", "SessionRun", "SIMULATORS"]

#: The simulators a session runs on.
SIMULATORS = ("verilator", "icarus", "amaranth")


@dataclass
class SessionRun:
    """One run of a session: ``lockstep`` (every event and the end of the run compared),
    ``status`` and ``error`` (the host's registers after it; None after a divergence),
    ``reads`` (per region asked for: uint8 [n, VL]), ``seconds`` (load: bus writes;
    run: START to the end; compare; golden: the golden model's check and run) and
    ``bus_writes`` (host bus accesses to load the run); ``preloaded``: the SRAM and
    program were the memories' power-up contents, not bus writes (an
    :class:`AmaranthSession`'s first run)."""

    lockstep: LockstepResult
    status: int | None
    error: dict | None
    reads: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    bus_writes: int = 0
    cycles: int = 0  # up to the RTL's last event, inclusive (as lpu.golden.chip.RunResult)
    running: int = 0  # the cycles the RTL ran (to the end of the run and its drain)
    golden: object = None  # the golden chip after the run (lpu.golden.chip.Chip)
    preloaded: bool = False

    @property
    def ok(self) -> bool:
        return self.lockstep.ok


class RtlSession:
    """A chip on `simulator` kept across runs (see the module docstring). Use as a
    context manager, or call :meth:`close`."""

    def __init__(self, cfg: ChipConfig | str, simulator: str = "verilator", *,
                 max_cycles: int = 2_000_000, workdir=None, built=None):
        if simulator not in SIMULATORS or simulator == "amaranth":
            raise ValueError(f"simulator must be verilator or icarus (amaranth: "
                             f"AmaranthSession), not {simulator!r}")
        ok, why = vl.available(simulator)
        if not ok:
            raise vl.SimulatorError(why)
        self.cfg = cfg = load_config(cfg)
        self.simulator = simulator
        self.max_cycles = max_cycles
        self.built = built if built is not None else build_chip(cfg, simulator)
        self._own = workdir is None
        self.work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lpu-session-"))
        self.work.mkdir(parents=True, exist_ok=True)
        for old in [*self.work.glob("step*"), *self.work.glob("go*"),
                    *self.work.glob("result*"), self.work / "stop"]:
            old.unlink(missing_ok=True)
        self.chip = port_chip(cfg)
        self.names = [q.name for q in cfg.queues if q.kind == "mem"]
        self.runs = 0
        self._failed: list[BaseException] = []
        config_spec = (str(Path(cfg.source).resolve()) if Path(cfg.source).is_file()
                       else cfg.name)
        job = {"config": config_spec, "config_hash": cfg.hash, "runs": [],
               "result": str(self.work / "session.json"), "max_cycles": max_cycles,
               "device": simulator, "mode": "session", "go": str(self.work)}
        (self.work / "job.json").write_text(json.dumps(job))
        self._thread = threading.Thread(target=self._simulate, name="lpu-session",
                                        daemon=True)
        self.pipe = Pipe(self.work / "trace.pipe", len(self.chip.trace_bits),
                         alive=self._thread.is_alive)
        self._thread.start()

    #: What a run is doing, for progress lines: ``{"phase": str, "cycle": int | None}``
    #: (the RTL's last recorded cycle; records come in blocks of a few thousand cycles).
    live: dict = {"phase": "idle", "cycle": None}

    def _simulate(self):
        try:
            vl.run_test(self.built, "lpu.sim.cocotb_bench", test_dir=self.work,
                        extra_env={JOB_ENV: str(self.work / "job.json")},
                        plusargs=[f"+{PLUSARG}={self.pipe.path}"])
        except BaseException as e:  # raised in the caller's thread
            self._failed.append(e)

    def _dead(self, what: str) -> vl.SimulatorError:
        if self._failed:
            err = self._failed[0]
            return err if isinstance(err, vl.SimulatorError) else vl.SimulatorError(
                f"the {self.simulator} session stopped {what}: {err}")
        return vl.SimulatorError(f"the {self.simulator} session stopped {what} (log "
                                 f"{self.work / 'test.log'})")

    def run(self, program: Program, sram: dict, writes=None, reads=(), *,
            checked: bool = False, name: str | None = None) -> SessionRun:
        """Run `program` (see the module docstring). `sram`: MEM slice name -> uint8
        [mem_words, VL], the golden model's SRAM at START; `writes`: ``(slice, addr,
        words)`` arrays (slice indices, addresses, uint8 [n, VL]) the host writes first
        (None: every non-zero word of `sram`, for a first run); `reads`: ``(slice name,
        addr, n)`` regions read back after the run. `checked`: the program passed the
        static checker already."""
        cfg, n = self.cfg, self.runs
        if not self._thread.is_alive():
            raise self._dead(f"before run {n}")
        program.check_config(cfg)
        if writes is None:
            writes = self.nonzero(sram)
        slices, addrs, words = writes
        prog_path, w_path = self.work / f"program{n}.bin", self.work / f"writes{n}.npz"
        program.save(prog_path)
        np.savez(w_path, slice=np.asarray(slices, np.int64), addr=np.asarray(addrs, np.int64),
                 words=np.asarray(words, np.uint8).reshape(-1, cfg.vl))
        regions = [(self.names.index(s), int(a), int(k)) for s, a, k in reads]
        step = self.work / f"step{n}.json"
        tmp = step.with_name(step.name + ".tmp")
        tmp.write_text(json.dumps({"program": str(prog_path), "writes": str(w_path),
                                   "reads": regions, "name": name}))
        tmp.replace(step)  # the bench loads the chip while the golden model runs
        self.live = {"phase": "the golden model runs", "cycle": None}
        t0 = time.perf_counter()
        golden = Expected(cfg, program, sram, check=not checked)
        t_golden = time.perf_counter() - t0
        (self.work / f"go{n}").touch()
        self.live["phase"] = "the host loads the SRAM and the program through the bus"
        bulk = BulkRun(cfg, program, golden, self.chip)
        block = max(64, (16 << 20) // record_bytes(len(self.chip.trace_bits)))
        last = -1  # the last cycle with an event on the RTL
        try:
            for blk in self.pipe.records(block):
                if blk.cycles.size:
                    last = int(blk.cycles[-1])
                    self.live.update(phase="running in lockstep", cycle=last)
                bulk.feed(blk)
        except RecorderError as e:
            raise self._dead(f"in run {n}") from e
        out = self._result(n)
        self.runs += 1
        if out["timeout"] and (bulk.divergence is None or bulk.divergence.cycle > self.max_cycles):
            raise vl.SimulatorError(f"run {n}{f' ({name})' if name else ''}: the chip ran "
                                    f"past {self.max_cycles} cycles without finishing")
        res = bulk.result(out["end_cycle"], self.simulator)
        ok = res.divergence is None
        got = [np.frombuffer(bytes.fromhex("".join(r)), np.uint8).reshape(-1, cfg.vl)
               for r in out.get("reads", [])]
        return SessionRun(res, out["status"] if ok else None, out["error"] if ok else None,
                          got, {**out["seconds"], "golden": round(t_golden, 3),
                                "compare": round(bulk.seconds, 3)},
                          out["bus_writes"], last + 1, bulk.running or 0, golden.chip)

    def _result(self, n: int) -> dict:
        path = self.work / f"result{n}.json"
        while not path.exists():
            if not self._thread.is_alive():
                raise self._dead(f"in run {n}")
            time.sleep(0.002)
        return json.loads(path.read_text())

    def nonzero(self, sram: dict):
        """``(slice, addr, words)`` of every non-zero word of `sram` (name -> [n, VL])."""
        return _nonzero(self.cfg, self.names, sram)

    def close(self) -> None:
        """End the session: the bench leaves its loop and the simulator exits."""
        if self.pipe is None:
            return
        (self.work / "stop").touch()
        self._thread.join(120)
        self.pipe.close()
        self.pipe = None
        if self._own and not self._failed:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _nonzero(cfg, names, sram: dict):
    slices, addrs, words = [], [], []
    for i, name in enumerate(names):
        mem = np.asarray(sram.get(name, np.zeros((0, cfg.vl))), np.uint8)
        at = np.flatnonzero(mem.any(axis=1))
        slices.append(np.full(at.size, i, np.int64))
        addrs.append(at)
        words.append(mem[at])
    return (np.concatenate(slices), np.concatenate(addrs),
            np.concatenate(words).reshape(-1, cfg.vl))


class AmaranthSession:
    """:class:`RtlSession` on Amaranth's simulator, in this process: the chip
    (:class:`lpu.hdl.chip.Chip` with its trace port) is simulated by one
    :class:`amaranth.sim.Simulator` for the whole session, advanced only while a run is
    asked for (between runs it waits, its state kept).

    The same contract, with two differences: the first run's SRAM and program are the
    memories' power-up contents (:meth:`lpu.hdl.mem.MemSlice.preload`,
    :meth:`lpu.hdl.icu.Icu.preload`; the host still writes every queue's length)
    instead of bus writes, which on Amaranth's simulator would take minutes (a decode
    step of ``small`` is about 25,000 instruction words; later runs' `writes` and
    program words go through the bus); and the trace is sampled by the testbench every cycle
    (:func:`lpu.sim.lockstep.record_run`, Python per cycle), then compared in bulk."""

    simulator = "amaranth"

    def __init__(self, cfg: ChipConfig | str, *, max_cycles: int = 2_000_000, fault=None):
        self.cfg = load_config(cfg)
        self.max_cycles = max_cycles
        self.fault = fault  # lpu.hdl.vxm.VxmFault: a deliberate bug (checker tests only)
        self.names = [q.name for q in self.cfg.queues if q.kind == "mem"]
        self.runs = 0
        self._sim = None
        self._job = None

    def nonzero(self, sram: dict):
        return _nonzero(self.cfg, self.names, sram)

    def _build(self, sram: dict, program: Program):
        if 0 < sys.get_int_max_str_digits() < 1 << 20:  # as AmaranthBackend.build
            sys.set_int_max_str_digits(0)
        self.built = time.perf_counter()
        dut = sim_chip(self.cfg, fault=self.fault)
        for name, sl in zip(self.names, dut.mem_slices, strict=True):
            if name in sram:
                sl.preload(sram[name])
        dut.icu.preload(program)
        top = Module()
        top.domains.sync = cd = ClockDomain("sync")
        top.submodules.chip = dut
        sim = Simulator(top)
        sim.add_clock(1e-6, domain="sync")
        regs = RegisterMap(self.cfg)
        bus = SimBus(dut.bus, regs)
        # what the instruction memories hold: the first program, preloaded
        imem: dict = {q: list(w) for q, w in program.queues.items()}

        async def bench(ctx):
            while True:
                while self._job is None or self._job.get("out") is not None:
                    await ctx.tick()
                job = self._job
                t0 = time.perf_counter()
                ctx.set(cd.rst, 1)
                for _ in range(2):  # (a plain tick: repeat() raises in a reset domain)
                    await ctx.tick()
                ctx.set(cd.rst, 0)
                writes = 0
                for m, a, w in zip(*job["writes"], strict=True):
                    await bus.write_word(ctx, int(m), int(a), np.asarray(w, np.uint8).tobytes())
                    writes += regs.chunks * self.cfg.superlanes + 1
                writes += await bus.load_program(ctx, job["program"], imem)
                t1 = time.perf_counter()
                self.live["phase"] = "running on Amaranth's simulator"
                await bus.start(ctx)
                cycles, trace, c = await record_run(ctx, dut, self.max_cycles, self.live)
                t2 = time.perf_counter()
                status = await bus.status(ctx)
                end = await bus.read(ctx, regs.CYCLE)
                error = await bus.error(ctx)
                reads = []
                for m, a, k in job["reads"]:
                    reads.append(np.frombuffer(b"".join(
                        [await bus.read_word(ctx, m, a + i) for i in range(k)]),
                        np.uint8).reshape(k, self.cfg.vl))
                job["out"] = {"cycles": cycles, "trace": trace,
                              "running": c, "timeout": c > self.max_cycles,
                              "status": status, "end_cycle": end, "error": error,
                              "reads": reads, "bus_writes": writes,
                              "seconds": {"load": round(t1 - t0, 3),
                                          "run": round(t2 - t1, 3)}}

        sim.add_testbench(bench, background=True)
        self.dut, self._sim = dut, sim
        self.built = time.perf_counter() - self.built

    def run(self, program: Program, sram: dict, writes=None, reads=(), *,
            checked: bool = False, name: str | None = None) -> SessionRun:
        """As :meth:`RtlSession.run`."""
        cfg, n = self.cfg, self.runs
        program.check_config(cfg)
        preloaded = self._sim is None
        if preloaded:  # the first run's SRAM and program: the memories' power-up contents
            self.live = {"phase": "building the simulation", "cycle": None}
            self._build(sram, program)
            writes = None
        if writes is None:
            writes = (np.zeros(0, np.int64), np.zeros(0, np.int64),
                      np.zeros((0, cfg.vl), np.uint8))
        regions = [(self.names.index(s), int(a), int(k)) for s, a, k in reads]
        t0 = time.perf_counter()
        golden = Expected(cfg, program, sram, check=not checked)
        t_golden = time.perf_counter() - t0
        self._job = job = {"program": program, "writes": writes, "reads": regions, "out": None}
        self.live = {"phase": "the host writes the SRAM and the program through the bus",
                     "cycle": None}
        while job["out"] is None:
            self._sim.advance()
        out = job["out"]
        self.runs += 1
        if out["timeout"]:
            raise vl.SimulatorError(f"run {n}{f' ({name})' if name else ''}: the chip ran "
                                    f"past {self.max_cycles} cycles without finishing")
        rec = (out["cycles"], out["trace"], out["running"])
        bulk = compare_recording(cfg, program, golden, self.dut, rec, out["end_cycle"],
                                 device="amaranth")
        res = bulk.lockstep
        ok = res.divergence is None
        last = int(out["cycles"][-1]) if out["cycles"].size else -1
        return SessionRun(res, out["status"] if ok else None, out["error"] if ok else None,
                          out["reads"], {**out["seconds"], "golden": round(t_golden, 3),
                                         "compare": round(bulk.seconds, 3)},
                          out["bus_writes"], last + 1, out["running"], golden.chip, preloaded)

    def close(self) -> None:
        self._sim = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_session(cfg: ChipConfig | str, simulator: str, **kw):
    """A session on `simulator`: :class:`AmaranthSession` for ``amaranth``, else
    :class:`RtlSession`."""
    if simulator == "amaranth":
        return AmaranthSession(cfg, **kw)
    return RtlSession(cfg, simulator, **kw)
