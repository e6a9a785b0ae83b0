"""Draw a program's schedule: as text, as a Perfetto trace, as a utilisation plot.

``lpu timeline`` compiles one decode step of the shipped model (or loads any program)
and draws it:

* :func:`render`: text, one row per queue, one column per span of cycles. A column shows
  how busy the queue is in that span: ' ' idle, '.' up to a quarter, ':' up to half,
  '+' up to three quarters, '#' more.
* :func:`trace_events`: a Chrome / Perfetto trace-event JSON object (open it in
  https://ui.perfetto.dev or chrome://tracing): one track per queue, one slice per
  dispatched instruction.
* :func:`utilisation` and :func:`plot_png`: per slice kind, the fraction of its
  queues' cycles that dispatch an instruction, per bin of cycles; the plot needs
  matplotlib (the ``plot`` extra: ``pip install 'lpu[plot]'``).

A queue is *busy* in a cycle when it dispatches a slice instruction in it (a queue
dispatches at most one per cycle; ``nop``, ``sync`` and ``notify`` are not dispatches,
a ``repeat``'s copies are). Cycles are the golden model's skewed dispatch cycles
(:func:`lpu.golden.schedule.timeline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpu.config import ChipConfig
from lpu.errors import LpuError
from lpu.golden.schedule import timeline

__all__ = ["render", "trace_events", "Utilisation", "utilisation", "plot_png", "KINDS"]

#: Slice kinds in the order they are drawn; each is one process of the trace.
KINDS = ("mem", "vxm", "mxm", "sxm")

#: The trace's colour (a trace viewer's reserved colour name) for critical-path slices.
CRITICAL_COLOUR = "terrible"


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


# -- Perfetto / Chrome trace events ---------------------------------------------------


def trace_events(cfg: ChipConfig, program, *, critical=None) -> dict:
    """The schedule of `program` on `cfg` as a trace-event JSON object
    (``json.dump`` it; the Trace Event Format of chrome://tracing, which Perfetto reads).

    Time: **1 cycle is 1 µs** in the file (``ts`` and ``dur`` are in µs by the format),
    so with ``displayTimeUnit`` ``"ms"`` a viewer's millisecond is 1000 cycles;
    ``otherData`` says so and names the config.

    Tracks: one process per slice kind present (``pid`` 1 MEM, 2 VXM, 3 MXM, 4 SXM, named
    by ``process_name`` metadata events), one thread per queue of ``cfg.queues`` in
    their order (``tid`` = 1 + the queue's index, named by ``thread_name``, ordered by
    ``thread_sort_index``).

    Slices: one complete event (``"ph": "X"``) per dispatched instruction, ``name`` its
    mnemonic, ``ts`` its dispatch cycle, ``dur`` its functional delay
    (``instr.info.d(cfg.superlanes)``, at least 1) cut short where the same queue
    dispatches again sooner: slices on one thread must nest (the format's rule; Perfetto
    drops overlapping ones), so the slice ends at the next dispatch. ``args``: ``instr``
    (the instruction's text), ``index`` (its word index in the queue; a ``repeat``'s
    copies carry the repeat's), ``delay`` (the full functional delay).

    `critical`: the critical path's instructions, a set of ``(queue_name, cycle)`` pairs;
    their slices get ``"cname": "terrible"`` (red) and ``args.critical: true``. Every
    pair must name a dispatch of the program (ValueError otherwise).
    """
    tl = timeline(cfg, program)
    queues = cfg.queues
    kinds = [k for k in KINDS if any(q.kind == k for q in queues)]
    pid = {k: KINDS.index(k) + 1 for k in kinds}
    crit = {(str(qn), int(t)) for qn, t in (critical or ())}
    events: list[dict] = []
    for k in kinds:
        events.append({"ph": "M", "name": "process_name", "pid": pid[k], "tid": 0,
                       "args": {"name": k.upper()}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid[k], "tid": 0,
                       "args": {"sort_index": pid[k]}})
    for q in queues:
        for name, value in (("thread_name", {"name": q.name}),
                            ("thread_sort_index", {"sort_index": q.index})):
            events.append({"ph": "M", "name": name, "pid": pid[q.kind], "tid": q.index + 1,
                           "args": value})
    nxt: dict[int, int] = {}  # queue -> cycle of its following dispatch
    slices = []
    for d in reversed(tl.dispatches):
        delay = d.instr.info.d(cfg.superlanes)
        dur = max(1, delay)
        if d.queue in nxt:
            dur = min(dur, nxt[d.queue] - d.t)
        nxt[d.queue] = d.t
        q = queues[d.queue]
        ev = {"ph": "X", "name": d.instr.info.mnemonic, "cat": q.kind, "pid": pid[q.kind],
              "tid": q.index + 1, "ts": d.t, "dur": dur,
              "args": {"instr": d.instr.text(), "index": d.index, "delay": delay}}
        if (q.name, d.t) in crit:
            crit.discard((q.name, d.t))
            ev["cname"] = CRITICAL_COLOUR
            ev["args"]["critical"] = True
        slices.append(ev)
    if crit:
        missing = ", ".join(f"{qn}@{t}" for qn, t in sorted(crit))
        raise ValueError(f"critical: no instruction is dispatched at {missing}")
    events.extend(reversed(slices))
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"config": cfg.name, "config_hash": cfg.hash,
                          "time_unit": "1 us in this file is 1 chip cycle",
                          "cycles": tl.end, "clock_mhz": cfg.clock_mhz}}


# -- utilisation ------------------------------------------------------------------------


@dataclass
class Utilisation:
    """Busy fraction per slice kind per bin of cycles.

    ``edges``: ``bins + 1`` cycle boundaries (bin ``i`` is cycles ``edges[i]`` to
    ``edges[i+1] - 1``; widths differ by at most one cycle); ``kinds``: kind -> array of
    ``bins`` fractions, busy queue-cycles over (the bin's cycles x the kind's queues);
    ``end``: the first cycle after the last dispatch."""

    edges: np.ndarray
    kinds: dict[str, np.ndarray]
    end: int

    def __getitem__(self, kind: str) -> np.ndarray:
        return self.kinds[kind]


def utilisation(cfg: ChipConfig, program, bins: int = 96) -> Utilisation:
    """Per slice kind of `cfg`, the fraction of its queue-cycles that dispatch an
    instruction, in `bins` bins over cycles ``0 .. end`` (fewer bins if the program is
    shorter than `bins` cycles, so that none is empty)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    tl = timeline(cfg, program)
    end = max(1, tl.end)
    n = min(bins, end)
    edges = (np.arange(n + 1, dtype=np.int64) * end) // n
    width = np.diff(edges)
    kind_of = np.array([KINDS.index(q.kind) for q in cfg.queues], dtype=np.int64)
    t = np.fromiter((d.t for d in tl.dispatches), dtype=np.int64, count=len(tl.dispatches))
    k = kind_of[np.fromiter((d.queue for d in tl.dispatches), dtype=np.int64,
                            count=len(tl.dispatches))]
    b = np.searchsorted(edges, t, side="right") - 1
    out = {}
    for ki, kind in enumerate(KINDS):
        nq = int(np.count_nonzero(kind_of == ki))
        if nq:
            busy = np.bincount(b[k == ki], minlength=n)[:n]
            out[kind] = busy / (width * nq)
    return Utilisation(edges, out, tl.end)


def plot_png(cfg: ChipConfig, program, path, bins: int = 200, *, title: str | None = None):
    """Draw :func:`utilisation` (one line per slice kind against cycles) into a PNG file
    at `path`. Needs matplotlib (the ``plot`` extra); without it, an LpuError saying
    how to install it. OSError if `path` cannot be written."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional: plot extra
        from matplotlib.figure import Figure  # optional dependency: the plot extra
    except ImportError:
        raise LpuError("the utilisation plot needs matplotlib: pip install 'lpu[plot]'"
                       ) from None
    u = utilisation(cfg, program, bins)
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for kind, frac in u.kinds.items():
        nq = sum(q.kind == kind for q in cfg.queues)
        ax.stairs(frac, u.edges, label=f"{kind.upper()} ({nq} queues)", linewidth=1.2)
    ax.set_xlim(0, int(u.edges[-1]))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"cycle (bins of about {u.edges[-1] / (len(u.edges) - 1):.0f} cycles)")
    ax.set_ylabel("fraction of queue-cycles busy")
    ax.set_title(title or f"queue utilisation on {cfg.name}: {u.end} cycles")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png")
