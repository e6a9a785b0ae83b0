"""Draw a program's schedule as text: one row per queue, one column per span of cycles.

``lpu timeline`` compiles one decode step of the shipped model and draws it
(:func:`render`). A column shows how busy the queue is in that span: ' ' idle, '.' up to a
quarter, ':' up to half, '+' up to three quarters, '#' more.
"""

from __future__ import annotations

from lpu.config import ChipConfig
from lpu.golden.schedule import timeline

__all__ = ["render"]


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
