"""Regressions: many random programs (and the directed set) in lockstep on the RTL, on
every core of this machine or on a Dask distributed cluster (``lpu regress``).

:func:`regress` turns seeds into *cases* (``random`` seed: the program and SRAM of
:func:`lpu.sim.programs.randprog.generate`; ``directed`` name: a program of
:mod:`lpu.sim.programs.directed`), splits them into chunks and runs each chunk with
:func:`run_chunk` in a worker: one simulator process per chunk for Verilator and Icarus
(:func:`lpu.sim.cocotb_runner.lockstep_hdl_many`, the chip built once per machine and
reused by every chunk), or Amaranth's simulator in the worker itself. Every event of
every cycle is compared, and the end of the run (docs/verification.md).

Workers are processes of this machine (``workers``, default every core) or, given
``scheduler`` (the address of a running ``distributed`` scheduler, ``pip install
'lpu[cluster]'``; every worker needs this package installed), tasks on that cluster:
not a job farm of its own. The chip is built once per machine and design
(:func:`~lpu.sim.cocotb_runner.build_chip` takes a lock), and every chunk reuses it.

A failing case is saved under ``out/fail-<case>/`` so it can be replayed without the
generator: ``program.bin`` and ``program.s`` (the program), ``mem.npz`` (its SRAM),
``report.txt`` / ``report.json`` (the divergence, seed, config, backend) and
``replay.sh`` (the ``lpu sim`` command that reruns it). :func:`junit_xml` writes the
results as JUnit XML (one test case per program). Progress goes to `progress` (stderr
by default) as chunks finish: programs done, failures, programs per hour.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from lpu.asm import disassemble
from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError

from . import verilator as vl
from .cocotb_runner import build_chip, lockstep_hdl_many
from .lockstep import AmaranthBackend, lockstep
from .programs.directed import directed_programs
from .programs.randprog import generate

__all__ = ["Case", "CaseResult", "RegressResult", "regress", "run_chunk", "parse_seeds",
           "junit_xml", "save_case", "BACKENDS"]

BACKENDS = ("verilator", "icarus", "amaranth")


@dataclass(frozen=True)
class Case:
    kind: str  # "random" | "directed"
    seed: int | None = None  # random
    name: str | None = None  # directed

    @property
    def label(self) -> str:
        return f"random-{self.seed}" if self.kind == "random" else f"directed-{self.name}"


@dataclass
class CaseResult:
    case: Case
    ok: bool
    text: str  # the lockstep report (a divergence in full)
    cycles: int = 0
    events: int = 0
    error: dict | None = None  # the chip's error registers, if its error flag rose
    report: dict = field(default_factory=dict, repr=False)  # LockstepResult.to_json()
    saved: str | None = None  # the folder of a saved failing case


@dataclass
class RegressResult:
    config: str
    backend: str
    results: list[CaseResult]
    seconds: float
    workers: int
    where: str  # "local" or the scheduler's address

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]

    @property
    def per_hour(self) -> float:
        return 3600 * len(self.results) / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        cycles = sum(r.cycles for r in self.results)
        head = (f"regress on {self.config} ({self.backend}, {self.workers} worker(s), "
                f"{self.where}): {len(self.results)} programs, {cycles} cycles compared, "
                f"{len(self.failed)} failing, in {self.seconds:.1f} s: "
                f"{self.per_hour:,.0f} programs/hour")
        lines = [head]
        for r in self.failed:
            lines.append(f"FAIL {r.case.label}: {r.text.splitlines()[-1] if r.text else ''}")
            if r.saved:
                lines.append(f"  saved in {r.saved} (replay: sh {r.saved}/replay.sh)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"config": self.config, "backend": self.backend, "workers": self.workers,
                "where": self.where, "seconds": round(self.seconds, 3),
                "programs": len(self.results), "failing": len(self.failed),
                "programs_per_hour": round(self.per_hour, 1),
                "results": [{"case": r.case.label, "ok": r.ok, "cycles": r.cycles,
                             "events": r.events, "error": r.error, "saved": r.saved,
                             "report": r.report} for r in self.results]}


def parse_seeds(text: str) -> range:
    """``A:B`` (seeds A .. B-1) or one seed ``A``."""
    try:
        if ":" in text:
            a, b = (int(x) for x in text.split(":", 1))
        else:
            a = int(text)
            b = a + 1
    except ValueError:
        raise LpuError(f"--seeds must be A:B (seeds A to B-1) or one seed, not {text!r}") \
            from None
    if a < 0 or b <= a:
        raise LpuError(f"--seeds {text}: need 0 <= A < B")
    return range(a, b)


def _config_spec(cfg: ChipConfig) -> str:
    """How a worker loads the config: its preset name, or its YAML file's absolute path."""
    src = Path(cfg.source)
    return str(src.resolve()) if src.is_file() else cfg.name


def _inputs(cfg: ChipConfig, case: Case, cycles: int | None, directed: dict):
    if case.kind == "random":
        rp = generate(cfg, case.seed, cycles=cycles)
        return rp.program, rp.mem
    d = directed[case.name]
    return d.program, d.mem_init


def run_chunk(config: str, backend: str, cases: list[Case], cycles: int | None = None,
              max_cycles: int = 200_000) -> list[CaseResult]:
    """Run `cases` in lockstep on `backend` (one simulator process for Verilator and
    Icarus); runs in a worker process. `config`: a preset name or a YAML path."""
    cfg = load_config(config)
    directed = ({d.name: d for d in directed_programs(cfg)}
                if any(c.kind == "directed" for c in cases) else {})
    runs = [_inputs(cfg, c, cycles, directed) for c in cases]
    out = []
    if backend == "amaranth":
        for c, (prog, mem) in zip(cases, runs, strict=True):
            dev = AmaranthBackend(cfg, max_cycles=max_cycles)
            res = lockstep(cfg, prog, mem, dev)
            out.append(CaseResult(c, res.ok and dev.error is None, res.text(), res.cycles,
                                  res.events, dev.error, res.to_json()))
        return out
    built = build_chip(cfg, backend)  # cached: built once per machine and design
    with tempfile.TemporaryDirectory(prefix="lpu-regress-") as work:
        results = lockstep_hdl_many(cfg, runs, backend, built=built, workdir=work,
                                    max_cycles=max_cycles)
    for c, res in zip(cases, results, strict=True):
        err = res.hdl.get("error")
        out.append(CaseResult(c, res.ok and err is None, res.text(), res.cycles,
                              res.events, err, res.to_json()))
    return out


def save_case(cfg: ChipConfig, backend: str, r: CaseResult, out: Path, cycles: int | None,
          directed: dict) -> str:
    """Write a failing case where it can be replayed (see the module docstring)."""
    d = out / f"fail-{r.case.label}"
    d.mkdir(parents=True, exist_ok=True)
    prog, mem = _inputs(cfg, r.case, cycles, directed)
    prog.save(d / "program.bin")
    (d / "program.s").write_text(
        f"; lpu regress case {r.case.label}"
        + (f" (generator horizon {cycles} cycles)" if r.case.kind == "random" else "")
        + "\n" + disassemble(prog, cfg, name=r.case.label))
    np.savez(d / "mem.npz", **{k: np.asarray(v, dtype=np.uint8) for k, v in mem.items()})
    (d / "report.txt").write_text(r.text + "\n" + (f"error flag: {r.error}\n" if r.error
                                                    else ""))
    info = {"case": r.case.label, "seed": r.case.seed, "directed": r.case.name,
            "cycles": cycles, "config": _config_spec(cfg), "config_hash": cfg.hash,
            "backend": backend, "error": r.error, "lockstep": r.report}
    (d / "report.json").write_text(json.dumps(info, indent=2))
    (d / "replay.sh").write_text(
        "#!/bin/sh\n# the failing case, from its saved files (the seed is in report.json)\n"
        f'cd "$(dirname "$0")" && lpu sim program.bin --mem-in mem.npz '
        f"--config {shlex.quote(_config_spec(cfg))} --backend {backend}\n")
    return str(d)


def _chunks(cases: list[Case], n: int) -> list[list[Case]]:
    size = max(1, math.ceil(len(cases) / n))
    return [cases[i:i + size] for i in range(0, len(cases), size)]


def regress(cfg: ChipConfig | str, seeds=(), *, backend: str = "verilator",
            cycles: int | None = None, directed: bool = False, workers: int | None = None,
            scheduler: str | None = None, out: str | Path = "regress-out",
            chunk_size: int = 25, progress=sys.stderr) -> RegressResult:
    """Run the random programs of `seeds` (and with `directed`, the directed programs)
    in lockstep on `backend`; see the module docstring. Returns a
    :class:`RegressResult`; failing cases are saved under `out`."""
    cfg = load_config(cfg)
    if backend not in BACKENDS:
        raise LpuError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "amaranth":
        ok, why = vl.available(backend)
        if not ok:
            raise LpuError(why)
    if workers is not None and workers < 1:
        raise LpuError(f"--workers must be at least 1, not {workers}")
    cases = [Case("random", seed=s) for s in seeds]
    dmap = {}
    if directed:
        dmap = {d.name: d for d in directed_programs(cfg)}
        cases += [Case("directed", name=n) for n in dmap]
    if not cases:
        raise LpuError("nothing to run: give --seeds A:B and/or --directed")
    n_workers = workers or os.cpu_count() or 1
    chunks = _chunks(cases, max(n_workers, math.ceil(len(cases) / chunk_size)))
    spec = _config_spec(cfg)
    t0 = time.perf_counter()
    done: list[CaseResult] = []
    last = [0.0, -1]  # when the last line was printed, and how many were done then

    def report(final=False):
        now = time.perf_counter()
        if progress is None or (not final and now - last[0] < 1.0) or \
                (final and last[1] == len(done)):
            return
        last[0], last[1] = now, len(done)
        el = now - t0
        rate = 3600 * len(done) / el if el > 0 else 0.0
        bad = sum(not r.ok for r in done)
        print(f"regress: {len(done)}/{len(cases)} programs, {bad} failing, "
              f"{el:.0f} s, {rate:,.0f} programs/hour", file=progress, flush=True)

    if scheduler is not None:
        try:
            from distributed import Client  # optional: the cluster extra
            from distributed import as_completed as dask_completed  # optional
        except ImportError:
            raise LpuError("--scheduler needs the Dask distributed package: "
                           "pip install 'lpu[cluster]'") from None
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as e:
            raise LpuError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        with client:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            futs = client.map(run_chunk, [spec] * len(chunks), [backend] * len(chunks),
                              chunks, [cycles] * len(chunks), pure=False)
            for fut in dask_completed(futs):
                done.extend(fut.result())
                report()
        where = scheduler
    else:
        if backend != "amaranth":
            if progress is not None:
                print(f"regress: the {backend} model of {cfg.name} (built once, then "
                      "cached)", file=progress, flush=True)
            build_chip(cfg, backend)  # once, before the workers start
        if n_workers == 1 or len(chunks) == 1:
            for ch in chunks:
                done.extend(run_chunk(spec, backend, ch, cycles))
                report()
        else:
            with ProcessPoolExecutor(max_workers=n_workers,
                                     mp_context=get_context("spawn")) as pool:
                futs = [pool.submit(run_chunk, spec, backend, ch, cycles) for ch in chunks]
                for fut in as_completed(futs):
                    done.extend(fut.result())
                    report()
        where = "local"
    order = {c: i for i, c in enumerate(cases)}
    done.sort(key=lambda r: order[r.case])
    out = Path(out)
    for r in done:
        if not r.ok:
            r.saved = save_case(cfg, backend, r, out, cycles, dmap)
    report(final=True)
    return RegressResult(cfg.name, backend, done, time.perf_counter() - t0, n_workers, where)


def junit_xml(res: RegressResult, path: str | Path) -> None:
    """The results as JUnit XML: one ``testcase`` per program, a ``failure`` with the
    lockstep report for each failing one."""
    suite = ET.Element("testsuite", name=f"lpu regress {res.config} {res.backend}",
                       tests=str(len(res.results)), failures=str(len(res.failed)),
                       errors="0", time=f"{res.seconds:.3f}")
    for r in res.results:
        tc = ET.SubElement(suite, "testcase", classname=f"lpu.regress.{res.backend}."
                           f"{res.config}", name=r.case.label)
        if not r.ok:
            msg = (r.text.splitlines()[1] if len(r.text.splitlines()) > 1 else r.text)
            f = ET.SubElement(tc, "failure", message=msg.strip())
            f.text = r.text + (f"\nerror flag: {r.error}" if r.error else "") + \
                (f"\nsaved in {r.saved}" if r.saved else "")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(str(path), encoding="utf-8", xml_declaration=True)
