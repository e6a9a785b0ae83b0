"""``lpu timeline``: draw a schedule: one compiled decode step, or any program.

    lpu timeline --config small --pos 20 [--width 96]      # text (the default)
    lpu timeline --json step.json                         # Perfetto / chrome://tracing
    lpu timeline --png step.png                           # utilisation plot (lpu[plot])
    lpu timeline --program examples/vector_add.s --config tiny --json add.json

Without ``--program`` it compiles the step of the shipped model at one position
(:func:`lpu.tools.compiler.listsched.schedule_step`) and marks, in the JSON, the
instructions of the step's critical path (:func:`lpu.tools.compiler.graph.critical_chain`);
with it, it loads the program
(:func:`lpu.loaders.load_program`). The drawing is
:mod:`lpu.tools.compiler.timeline`'s (``render``, ``trace_events``, ``plot_png``).
"""

from __future__ import annotations

import json
from pathlib import Path

from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.model.checkpoint import load_builtin
from lpu.loaders import load_program
from lpu.tools.compiler.graph import critical_chain
from lpu.tools.compiler.listsched import schedule_step
from lpu.tools.compiler.lower import check_model
from lpu.tools.compiler.timeline import plot_png, render, trace_events

HELP = "draw a schedule (a compiled decode step or a program) as text, JSON trace or plot"


def add_arguments(p):
    p.add_argument("--config", default="small", help="chip preset or YAML (default small)")
    p.add_argument("--pos", type=int, default=20,
                   help="the decode step's position (default 20; ignored with --program)")
    p.add_argument("--width", type=int, default=96, help="columns of the text view (default 96)")
    p.add_argument("--program", metavar="FILE.s|FILE.bin",
                   help="draw this program instead of compiling a decode step")
    p.add_argument("--json", metavar="FILE",
                   help="write a trace-event JSON (open in ui.perfetto.dev or chrome://tracing)")
    p.add_argument("--png", metavar="FILE",
                   help="write a utilisation plot (needs matplotlib: pip install 'lpu[plot]')")


def _write(path: str, write) -> None:
    """Call ``write(path)``; a path that cannot be written is an LpuError naming it."""
    try:
        write(path)
    except OSError as e:
        raise LpuError(f"{path}: cannot write: {e.strerror or e}") from None


def run(args) -> int:
    if args.width < 1:
        raise LpuError(f"--width must be at least 1, not {args.width}")
    if args.pos < 0:
        raise LpuError(f"--pos must be at least 0, not {args.pos}")
    for out in (args.json, args.png):
        if out is not None and not Path(out).parent.is_dir():  # before a long compile
            raise LpuError(f"{out}: cannot write: no such directory {Path(out).parent}")
        if out is not None and args.program and Path(args.program).exists() and \
                Path(out).resolve() == Path(args.program).resolve():
            raise LpuError(f"{out}: is also the --program; writing it would overwrite it")
    cfg = load_config(args.config)
    critical = None
    if args.program:
        program = load_program(args.program, cfg)
        what = f"{args.program} on {cfg.name}"
    else:
        model = load_builtin()
        ctx = model.config.max_position_embeddings
        if args.pos >= ctx:
            raise LpuError(f"--pos {args.pos} is outside 0..{ctx - 1} (the shipped model's "
                           "max_position_embeddings)")
        check_model(model.config, cfg, ctx)  # the chip's shapes: head_dim = VL, ...
        st = schedule_step(model, cfg, args.pos)
        program = st.program
        critical = {st.placed[n] for n in critical_chain(st.graph, cfg) if n in st.placed}
        what = (f"shipped model, one decode step at position {args.pos} on {cfg.name}: "
                f"{st.instructions} instructions")
    if args.json:
        trace = trace_events(cfg, program, critical=critical)
        _write(args.json, lambda p: Path(p).write_text(json.dumps(trace) + "\n"))
        n = sum(e["ph"] == "X" for e in trace["traceEvents"])
        print(f"{args.json}: {n} slices ({what}); open in ui.perfetto.dev or chrome://tracing")
    if args.png:
        _write(args.png, lambda p: plot_png(cfg, program, p))
        print(f"{args.png}: utilisation plot ({what})")
    if not (args.json or args.png):
        print(what)
        print(render(cfg, program, args.width))
    return 0
