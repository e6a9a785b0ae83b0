"""Decoding on the RTL (``lpu decode --backend verilator``): every step program of a
decode runs on the chip's RTL, in lockstep with the golden model, with the weights and
the KV cache kept in the RTL's SRAM across steps.

Contract
--------
:class:`RtlDecoder` is :class:`lpu.tools.compiler.lower.ChipDecoder` (the same compiled
step programs, from the same cache) with the chip on a simulator
(:class:`lpu.sim.session.RtlSession`, :class:`lpu.sim.session.AmaranthSession`)
instead of the golden model alone. For each step:

1. the host side applies the step's SRAM image (weights, constants, the token's copies)
   to its copy of the SRAM; the words that differ from what the RTL holds are written
   through the host bus: on the first step every non-zero word (the RTL's SRAM is zero
   at power-up), on later steps the token's copies and whatever else the image changes;
2. the step program runs on the RTL, recorded, and on the golden model from the same
   SRAM; every event of every cycle and the end of the run are compared
   (:mod:`lpu.sim.bulk`);
3. the host reads the logits back through the host bus; they must be the golden
   model's, bit for bit. The golden chip's SRAM after the step, equal to the RTL's
   when every write was compared equal, is the next step's starting point.

:func:`decode` is :func:`lpu.tools.compiler.decode.decode` with the RTL backends
(``verilator``, ``icarus``, ``amaranth``) added: the compiler's host loop, this decoder
in place of the golden one.

A divergence stops the decode: :class:`StepDivergence` (an
:class:`~lpu.errors.LpuError`) carries the step, the position and the
:class:`~lpu.sim.lockstep.Divergence` report, and the step is saved as a replayable
case (in `failures`, or a new temp folder: ``program.bin``, ``mem.npz`` with the SRAM at START,
``report.txt``, ``replay.sh`` running it alone with ``lpu sim``).
"""

from __future__ import annotations

import shlex
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.hostmap import RegisterMap
from lpu.sim.session import SIMULATORS, open_session
from lpu.tools.compiler.decode import DecodeResult
from lpu.tools.compiler.decode import decode as _decode
from lpu.tools.compiler.kernels import write_image
from lpu.tools.compiler.lower import ChipDecoder, StepResult, analytic_bound

__all__ = ["RtlDecoder", "StepDivergence", "SIMULATORS", "decode", "Heartbeat"]


class StepDivergence(LpuError):
    """A decode step left lockstep on the RTL (or its logits read back differ)."""

    def __init__(self, message: str, *, step: int, pos: int, divergence=None,
                 case: Path | None = None):
        super().__init__(message)
        self.step, self.pos, self.divergence, self.case = step, pos, divergence, case


@dataclass
class RtlDecoder(ChipDecoder):
    """:class:`~lpu.tools.compiler.lower.ChipDecoder` with every step on `simulator` in
    lockstep (see the module docstring). `corrupt`: ``{step: (slice, addr, lane,
    xor)}``, an SRAM byte of the RTL flipped through the host bus before that step, the
    golden model's left alone (tests of the checker: a soft error in the RTL's SRAM).
    `fault`: a :class:`lpu.hdl.vxm.VxmFault` built into the RTL (a deliberate logic bug,
    tests of the checker; Amaranth's simulator only, the others' builds are shared)."""

    simulator: str = "verilator"
    failures: Path | None = None
    corrupt: dict = field(default_factory=dict)
    fault: object = None
    log: object = None  # a file for build and step lines (None: quiet)
    _session: object = field(default=None, repr=False)  # lpu.sim.session
    _mem: np.ndarray | None = field(default=None, repr=False)
    steps: int = 0
    rtl_cycles: int = 0
    rtl_seconds: float = 0.0
    sram_words: int = 0
    bus_writes: int = 0
    total: int | None = None  # steps the caller will run (progress lines only)

    def __post_init__(self):
        super().__post_init__()
        if self.simulator not in SIMULATORS:
            raise LpuError(f"unknown RTL backend {self.simulator!r}; RTL backends are: "
                           f"{', '.join(SIMULATORS)}")
        if self.fault is not None and self.simulator != "amaranth":
            raise LpuError(f"a built-in fault needs the amaranth backend, not "
                           f"{self.simulator!r}")
        self._mem = np.zeros_like(self._chip.mem)  # the RTL's SRAM at power-up

    def _start(self):
        if self._session is None:
            t0 = time.perf_counter()
            if self.log and self.simulator != "amaranth":
                print(f"rtl: the {self.simulator} model of {self.chip_cfg.name} (built once "
                      "per design, then cached; minutes the first time)", file=self.log,
                      flush=True)
            kw = {"fault": self.fault} if self.fault is not None else {}
            self._session = open_session(self.chip_cfg, self.simulator, **kw)
            b = getattr(self._session, "built", None)
            if self.log and b is not None:
                print(f"rtl: model ready in {time.perf_counter() - t0:.1f} s "
                      f"({'cached' if b.cached else f'built in {b.seconds:.0f} s'})",
                      file=self.log, flush=True)
        return self._session

    def stats(self) -> dict:
        """What ran on the RTL so far: steps, cycles, seconds from START to the end of
        each run (``rtl_run_s``), SRAM words the host wrote and bus accesses."""
        return {"simulator": self.simulator, "steps": self.steps, "cycles": self.rtl_cycles,
                "rtl_run_s": round(self.rtl_seconds, 3), "sram_words": self.sram_words,
                "bus_writes": self.bus_writes}

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def step(self, token, pos: int) -> StepResult:
        tokens = self._tokens(token)
        cs = self.compiled(pos)
        session = self._start()
        t0 = time.perf_counter()
        host = Chip(self.chip_cfg)  # the host's copy of the SRAM, with this step's image
        host.mem[...] = self._mem
        write_image(host, cs.image, self._fill(cs, tokens))
        m, a = np.nonzero((host.mem != self._mem).any(axis=2))
        words = host.mem[m, a].copy()
        sram = {n: host.mem[i] for i, n in enumerate(host.mem_names)}
        if self.steps in self.corrupt:
            m, a, words = self._corrupted(m, a, words, host, self.corrupt[self.steps])
        outs = self.outputs(cs)
        reads = [(o.slice, o.addr, o.n * (1 if o.dtype == "i8" else 4)) for o in outs]
        of = f"/{self.total}" if self.total else ""
        beat = Heartbeat(self.log, f"rtl: step {self.steps + 1}{of} (position {pos})",
                          session) if self.log else None
        try:
            r = session.run(cs.program, sram, (m, a, words), reads, name=f"step {pos}")
        finally:
            if beat is not None:
                beat.stop()
        if not r.ok:
            self._fail(cs, pos, sram, r.lockstep.divergence.text(), r.lockstep.divergence)
        if r.status is not None and r.status & RegisterMap(self.chip_cfg).STATUS_ERROR:
            self._fail(cs, pos, sram, f"the RTL flagged an error: {r.error}", None)
        lgs = []
        scratch = Chip(self.chip_cfg)
        for o, (sl, ad, _), got in zip(outs, reads, r.reads, strict=True):
            want = r.golden.read_mem(sl, ad, got.shape[0])
            if not np.array_equal(got, want):
                lane = np.argwhere(got != want)[0]
                self._fail(cs, pos, sram, f"the logits read back from {sl} word "
                           f"{ad + int(lane[0])} lane {int(lane[1])} are "
                           f"0x{int(got[tuple(lane)]):02x}, the golden model's "
                           f"0x{int(want[tuple(lane)]):02x}", None)
            scratch.write_mem(sl, ad, got)
            lgs.append(scratch.read_tensor(sl, ad, o.n, np.float32).reshape(-1).copy())
        self._mem = r.golden.mem.copy()  # = the RTL's: every write compared equal
        self.steps += 1
        self.rtl_cycles += r.running
        self.rtl_seconds += r.seconds.get("run", 0.0)
        self.sram_words += len(a)
        self.bus_writes += r.bus_writes
        bound = analytic_bound(self.model.config, self.chip_cfg, pos, self.batch)["bound_cycles"]
        run_s = time.perf_counter() - t0
        if self.log:
            rate = r.running / r.seconds["run"] if r.seconds.get("run") else 0
            sec = r.seconds
            print(f"rtl: step {self.steps}{of} (position {pos}): {r.running} cycles in lockstep, "
                  f"{r.lockstep.events:,} events, {rate:,.0f} cycles/s; {len(a):,} SRAM words "
                  f"{'preloaded' if r.preloaded else 'written'}; {run_s:.1f} s "
                  f"(bus {sec.get('load', 0):.1f}, golden {sec.get('golden', 0):.1f}, "
                  f"RTL {sec.get('run', 0):.1f})",
                  file=self.log, flush=True)
        return StepResult(token, pos, lgs[0] if self.batch == 1 else lgs, r.cycles,
                          cs.compile_s, run_s, bound)

    def _corrupted(self, m, a, words, host, spec):
        sl, addr, lane, xor = spec
        i = host.mem_names.index(sl)
        word = host.mem[i, addr].copy()
        word[lane] ^= xor
        keep = ~((m == i) & (a == addr))
        return (np.append(m[keep], i), np.append(a[keep], addr),
                np.concatenate([words[keep], word[None]]))

    def _fail(self, cs, pos, sram, text, divergence):
        root = Path(self.failures) if self.failures is not None else \
            Path(tempfile.mkdtemp(prefix="lpu-decode-"))
        case = root / f"fail-step{self.steps}-pos{pos}"
        try:
            case.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LpuError(f"--fail-dir {root}: cannot make {case}: {e.strerror}") from None
        cs.program.save(case / "program.bin")
        np.savez(case / "mem.npz", **sram)
        (case / "report.txt").write_text(text + "\n")
        cfg = self.chip_cfg.source if Path(self.chip_cfg.source).is_file() else \
            self.chip_cfg.name
        (case / "replay.sh").write_text(
            "#!/bin/sh\n# this decode step alone, from its SRAM at START, in lockstep\n"
            f"cd \"$(dirname \"$0\")\" && lpu sim program.bin --mem-in mem.npz "
            f"--config {shlex.quote(str(cfg))} --backend {self.simulator} \"$@\"\n")
        (case / "replay.sh").chmod(0o755)
        where = f" (saved in {case}: replay.sh runs it alone)"
        self.close()
        raise StepDivergence(f"decode step {self.steps} (position {pos}) on "
                             f"{self.simulator}{where}:\n{text}", step=self.steps, pos=pos,
                             divergence=divergence, case=case)


def decode(model="builtin", *, backend: str = "golden", log=None, failures=None,
           **kw) -> DecodeResult:
    """:func:`lpu.tools.compiler.decode.decode`, also on the RTL backends
    (:data:`SIMULATORS`): every step on the chip's RTL in lockstep (a line per step to
    `log`; a divergence raises :class:`StepDivergence`, the step saved under
    `failures`, or a new temp folder). The result's ``rtl`` holds
    :meth:`RtlDecoder.stats`."""
    if backend not in SIMULATORS:
        return _decode(model, backend=backend, **kw)

    def make(m, cfg, ctx, batch):
        return RtlDecoder(m, cfg, ctx, batch=batch, simulator=backend, log=log,
                          failures=failures)

    return _decode(model, backend=backend, decoder=make, **kw)


class Heartbeat:
    """A progress line on `log` every `every` seconds while a step runs on the RTL or a
    board (a step of ``small`` takes minutes on Icarus or Amaranth's simulator, the first
    step through a board writes the weights over the serial line): the time so far and
    what the session says it is doing (``session.live``, when it has one)."""

    def __init__(self, log, prefix: str, session, every: float = 15.0):
        self.log, self.prefix, self.session, self.every = log, prefix, session, every
        self.t0 = time.perf_counter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lpu-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._done.wait(self.every):
            live = getattr(self.session, "live", None) or {}
            what = live.get("phase", "running")
            if live.get("cycle") is not None:
                what += f", cycle {live['cycle']:,} recorded"
            print(f"{self.prefix}: {time.perf_counter() - self.t0:.0f} s, {what}",
                  file=self.log, flush=True)

    def stop(self):
        self._done.set()
        self._thread.join()
