"""Draw a program's schedule as text: one row per queue, one column per span of cycles.

``python -m lpu.tools.timeline --layer`` compiles one decode step of the shipped model
and draws it. A column shows how busy the queue is in that span: ' ' idle, '.' up to a
quarter, ':' up to half, '+' up to three quarters, '#' more.
"""

from __future__ import annotations

import argparse

from lpu.config import ChipConfig
from lpu.golden.schedule import timeline


def render(cfg: ChipConfig, program, width: int = 96, start: int = 0,
           end: int | None = None) -> str:
    tl = timeline(cfg, program)
    end = end if end is not None else tl.end
    span = max(1, -(-(end - start) // width))
    busy: dict[int, list[int]] = {}
    for d in tl.dispatches:
        if start <= d.t < end:
            busy.setdefault(d.queue, [0] * width)[(d.t - start) // span] += 1
    lines = [f"cycles {start}..{end} ({span} per column)"]
    for q in cfg.queues:
        row = busy.get(q.index, [0] * width)
        chars = "".join(" " if c == 0 else "." if c <= span / 4 else ":" if c <= span / 2
                        else "+" if c <= 3 * span / 4 else "#" for c in row)
        lines.append(f"{q.name:>7} |{chars}|")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="small")
    ap.add_argument("--pos", type=int, default=20, help="the step's position")
    ap.add_argument("--width", type=int, default=96)
    args = ap.parse_args(argv)
    from lpu.config import load
    from lpu.golden.checkpoint import load_builtin
    from lpu.tools.compiler import compile_step

    cfg = load(args.config)
    cs = compile_step(load_builtin(), cfg, args.pos)
    print(f"shipped model, one decode step at position {args.pos} on {cfg.name}: "
          f"{cs.instructions} instructions")
    print(render(cfg, cs.program, args.width))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
