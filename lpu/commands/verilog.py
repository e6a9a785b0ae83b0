"""``lpu verilog``: write Verilog of the chip top (or one block) and its ports, and lint it.

    lpu verilog --config tiny -o out/             # out/lpu_top.v, out/lpu_top.json
    lpu verilog --config tiny -o out/ --lint      # and verilator --lint-only -Wall
    lpu verilog --config fpga -o out/ --component vxm_alu

The work is :mod:`lpu.tools.verilog`; lint is :func:`lpu.sim.verilator.lint`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.loaders import write_output
from lpu.sim.verilator import WAIVERS, SimulatorError, lint
from lpu.tools.verilog import COMPONENTS, generate

HELP = "write Verilog of the chip top (or a block) and its ports"


def add_arguments(p):
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--component", choices=COMPONENTS, default="chip",
                   help="what to convert: the chip top (default) or one VXM ALU lane")
    p.add_argument("--name", help="top module name (default: lpu_top / vxm_alu)")
    p.add_argument("--trace", action="store_true",
                   help="chip: include the trace port (simulation, lockstep); not for synthesis")
    p.add_argument("--lint", action="store_true",
                   help="run verilator --lint-only -Wall with the documented waivers")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")


#: A Verilog module name: what Verilog accepts as a simple identifier.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
#: The largest chip (positions x streams x VL bytes of stream registers) converted:
#: beyond it the conversion takes hours (the groq preset is an analytic model only).
MAX_FABRIC_BYTES = 1 << 16


def run(args) -> int:
    if args.name is not None and not _NAME.match(args.name):
        raise LpuError(f"--name {args.name!r} is not a Verilog module name (a letter or _, "
                       "then letters, digits, _ or $)")
    cfg = cfgmod.load(args.config)
    size = len(cfg.positions) * 2 * cfg.streams * cfg.vl
    if args.component == "chip" and size > MAX_FABRIC_BYTES:
        raise LpuError(f"config {cfg.name} is too large to convert to Verilog ({size:,} bytes "
                       f"of stream registers, limit {MAX_FABRIC_BYTES:,}); convert one block "
                       "with --component vxm_alu, or a smaller config")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise LpuError(f"{out}: is a file; -o names the output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LpuError(f"{out}: cannot create the output folder: {e.strerror or e}") from None
    if args.component == "chip":  # minutes beyond tiny (small: about 2): say so first
        print(f"lpu verilog: converting the chip of config {cfg.name} ({size:,} bytes of "
              "stream registers) to Verilog; configs larger than tiny take minutes",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    text, desc = generate(cfg, args.component, name=args.name, trace=args.trace)
    seconds = time.perf_counter() - t0
    name = desc["top"]
    vpath, jpath = out / f"{name}.v", out / f"{name}.json"
    write_output(vpath, lambda p: p.write_text(text), what="Verilog")
    write_output(jpath, lambda p: p.write_text(json.dumps(desc, indent=2) + "\n"),
                 what="port description")
    summary = {"config": cfg.name, "config_hash": cfg.hash, "component": args.component,
               "top": name, "verilog": str(vpath), "ports_json": str(jpath),
               "ports": len(desc["ports"]), "verilog_bytes": len(text),
               "seconds": round(seconds, 2)}
    status = 0
    if args.lint:
        t1 = time.perf_counter()
        try:
            clean, output = lint(vpath, name)
        except SimulatorError as e:
            raise LpuError(str(e)) from None
        lpath = out / f"{name}.lint.txt"
        lpath.write_text(output + "\n")
        summary["lint"] = {"clean": clean, "waivers": list(WAIVERS), "output": str(lpath),
                           "seconds": round(time.perf_counter() - t1, 2)}
        if not clean:
            status = 1
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{vpath}: {len(text) // 1024} KiB of Verilog, module {name}, "
              f"{len(desc['ports'])} ports ({jpath.name}), {seconds:.1f} s")
        if args.lint:
            lint_s = summary["lint"]
            verdict = "clean" if lint_s["clean"] else "WARNINGS (see the file)"
            print(f"verilator --lint-only -Wall (waivers: {', '.join(WAIVERS)}): {verdict}; "
                  f"{lint_s['output']}", file=sys.stderr if not lint_s["clean"] else sys.stdout)
    return status
