"""Verilog for the chip top (or one block) plus a JSON description of its
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

from amaranth.hdl import Value
from amaranth.lib.wiring import In

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.hdl.chip import build_top, port_description, verilog_of_top
from lpu.hdl.vxm_alu import VxmAlu
from lpu.sim.verilator import verilog_of

__all__ = ["generate", "component_ports", "COMPONENTS"]

COMPONENTS = ("chip", "vxm_alu")


def component_ports(component, name: str) -> dict:
    """Ports of an Amaranth component as :func:`amaranth.back.verilog.convert` names
    them (arrays expanded: ``trace__sr__0__e``), with the implicit clock and reset."""
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


def generate(cfg, component: str = "chip", *, name: str | None = None,
             trace: bool = False) -> tuple[str, dict]:
    """(Verilog text, port description) of `component` for `cfg`."""
    cfg = cfgmod.load(cfg)
    if component == "chip":
        name = name or "lpu_top"
        top = build_top(cfg, trace)
        desc = port_description(top, name)
        desc.update(component_ports(top, name))  # every array element, clock and reset
        return verilog_of_top(top, name), desc
    if component == "vxm_alu":
        name = name or "vxm_alu"
        alu = VxmAlu(superlanes=cfg.superlanes)
        desc = component_ports(alu, name)
        desc["config"] = {"name": cfg.name, "hash": cfg.hash}
        desc["delays"] = {op.name.lower(): d for op, d in alu.delays.items()}
        return verilog_of(alu, name), desc
    raise LpuError(f"unknown component {component!r}; use one of {', '.join(COMPONENTS)}")


