"""``lpu verilog``: Verilog for the chip top (or one block) plus a JSON description of its
ports, optionally linted with Verilator.

    lpu verilog --config tiny -o out/             # out/lpu_top.v, out/lpu_top.json
    lpu verilog --config tiny -o out/ --lint      # and verilator --lint-only -Wall
    lpu verilog --config fpga -o out/ --component vxm_alu

The chip top is :func:`lpu.hdl.chip.to_verilog` (module ``lpu_top``, clock ``clk``,
synchronous reset ``rst``, the host bus; ``--trace`` adds the trace port used in
lockstep). The JSON lists every port as Amaranth names it in Verilog (signature path
joined with ``__``), its direction and width, plus (for the chip) the config, the host
register map and the queue order.

``--lint`` runs ``verilator --lint-only -Wall`` with the waivers of
:data:`lpu.sim.verilator.WAIVERS` (documented there, the one place they live) and
writes its output to ``<name>.lint.txt``; the command fails if Verilator reports
anything else.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lpu import config as cfgmod
from lpu.errors import LpuError

__all__ = ["add_arguments", "run", "generate", "component_ports"]

COMPONENTS = ("chip", "vxm_alu")


def add_arguments(p):
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--component", choices=COMPONENTS, default="chip",
                   help="what to convert: the chip top (default) or one VXM ALU lane")
    p.add_argument("--name", help="top module name (default: lpu_top / vxm_alu)")
    p.add_argument("--trace", action="store_true",
                   help="chip: include the trace port (simulation, lockstep); not for synthesis")
    p.add_argument("--allow-stubs", action="store_true",
                   help="chip: build even if some slice kind has no HDL yet (stub slices)")
    p.add_argument("--lint", action="store_true",
                   help="run verilator --lint-only -Wall with the documented waivers")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")


def component_ports(component, name: str) -> dict:
    """Ports of an Amaranth component as :func:`amaranth.back.verilog.convert` names
    them (arrays expanded: ``trace__sr__0__e``), with the implicit clock and reset."""
    from amaranth.hdl import Value
    from amaranth.lib.wiring import In

    ports = [{"name": "clk", "dir": "input", "width": 1, "path": ["clk"]},
             {"name": "rst", "dir": "input", "width": 1, "path": ["rst"]}]
    for path, member, value in component.signature.flatten(component):
        sig = Value.cast(value)  # the port Signal under a View / EnumView
        ports.append({
            "name": sig.name,
            "dir": "input" if member.flow == In else "output",
            "width": len(sig),
            "path": [x if isinstance(x, int) else str(x) for x in path],
        })
    return {"top": name, "clock": "clk", "reset": "rst", "ports": ports}


def generate(cfg, component: str = "chip", *, name: str | None = None, trace: bool = False,
             allow_stubs: bool = False) -> tuple[str, dict]:
    """(Verilog text, port description) of `component` for `cfg`."""
    cfg = cfgmod.load(cfg)
    if component == "chip":
        from lpu.hdl.chip import build_top, port_description
        from lpu.sim.verilator import verilog_of

        name = name or "lpu_top"
        try:
            top = build_top(cfg, trace, allow_stubs=allow_stubs)
        except ValueError as e:
            raise LpuError(f"config {cfg.name}: {e}") from None
        desc = port_description(top, name)
        desc.update(component_ports(top, name))  # every array element, clock and reset
        return verilog_of(top, name), desc
    if component == "vxm_alu":
        from lpu.hdl.vxm_alu import VxmAlu
        from lpu.sim.verilator import verilog_of

        name = name or "vxm_alu"
        alu = VxmAlu(superlanes=cfg.superlanes)
        desc = component_ports(alu, name)
        desc["config"] = {"name": cfg.name, "hash": cfg.hash}
        desc["delays"] = {op.name.lower(): d for op, d in alu.delays.items()}
        return verilog_of(alu, name), desc
    raise LpuError(f"unknown component {component!r}; use one of {', '.join(COMPONENTS)}")


def run(args) -> int:
    cfg = cfgmod.load(args.config)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    text, desc = generate(cfg, args.component, name=args.name, trace=args.trace,
                          allow_stubs=args.allow_stubs)
    seconds = time.perf_counter() - t0
    name = desc["top"]
    vpath, jpath = out / f"{name}.v", out / f"{name}.json"
    vpath.write_text(text)
    jpath.write_text(json.dumps(desc, indent=2) + "\n")
    summary = {"config": cfg.name, "config_hash": cfg.hash, "component": args.component,
               "top": name, "verilog": str(vpath), "ports_json": str(jpath),
               "ports": len(desc["ports"]), "verilog_bytes": len(text),
               "seconds": round(seconds, 2)}
    status = 0
    if args.lint:
        from lpu.sim.verilator import WAIVERS, SimulatorError, lint

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
