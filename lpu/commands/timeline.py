"""``lpu timeline``: draw the schedule of one compiled decode step as text.

    lpu timeline --config small --pos 20 [--width 96]

Compiles the step of the shipped model at one position
(:func:`lpu.tools.compiler.lower.compile_step`) and draws every queue's dispatches
(:func:`lpu.tools.compiler.timeline.render`).
"""

from __future__ import annotations

from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.model.checkpoint import load_builtin
from lpu.tools.compiler.lower import compile_step
from lpu.tools.compiler.timeline import render

HELP = "draw the schedule of one compiled decode step"


def add_arguments(p):
    p.add_argument("--config", default="small", help="chip preset or YAML (default small)")
    p.add_argument("--pos", type=int, default=20, help="the step's position (default 20)")
    p.add_argument("--width", type=int, default=96, help="columns (default 96)")


def run(args) -> int:
    if args.width < 1:
        raise LpuError(f"--width must be at least 1, not {args.width}")
    if args.pos < 0:
        raise LpuError(f"--pos must be at least 0, not {args.pos}")
    cfg = load_config(args.config)
    cs = compile_step(load_builtin(), cfg, args.pos)
    print(f"shipped model, one decode step at position {args.pos} on {cfg.name}: "
          f"{cs.instructions} instructions")
    print(render(cfg, cs.program, args.width))
    return 0
