"""lpu.tools.compiler.timeline: the trace-event JSON, the utilisation and its plot, and
``lpu timeline --json/--png/--program``.

Expected slices are computed from the ProgramBuilder's placements and lpu.isa.OPS,
not from lpu.golden.schedule.timeline.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lpu import cli
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.isa import OPS, E, Opcode, W, make
from lpu.program import ProgramBuilder
from lpu.tools.compiler.timeline import plot_png, trace_events, utilisation

pytestmark = [pytest.mark.unit]

TINY = load_config("tiny")
ROOT = Path(__file__).resolve().parents[2]
HAS_MPL = importlib.util.find_spec("matplotlib") is not None

#: queue -> {cycle: instruction} placed by the builder (a repeat at the cycle after the
#: instruction it repeats). fadd (delay 3) back to back on vxm0: the first two slices are
#: cut short by the next dispatch; mm's delay grows with the superlanes; iw's is 0.
PLACED = {
    "mem_w0": {0: make("read", 0, (0, E), 4), 1: make("repeat", 3, 2, 1),
               20: make("write", 9, (1, W))},
    "mem_e1": {4: make("read", 3, (2, W))},
    "vxm0": {2: make("fadd", (4, E), (0, E), (0, W)), 3: make("fadd", (4, E), (0, E), (0, W)),
             4: make("mul", (4, E), (0, E), (0, W)), 9: make("add", (4, E), (0, E), (0, W))},
    "mxm_w0": {5: make("iw"), 6: make("mm", (0, E), (0, E), 0)},
    "sxm_e": {7: make("rot", (1, W), (1, W), 3)},
}


def _program():
    b = ProgramBuilder(TINY)
    for q, placed in PLACED.items():
        for t, ins in placed.items():
            b.at(q, t, ins)
    return b.program()


def _expected():
    """(queue, ts, dur, mnemonic, word index) per dispatch, from PLACED and OPS."""
    out = []
    for q, placed in PLACED.items():
        disp = []  # (cycle, instr, index of its word)
        index = 0
        t_next = 0
        for t, ins in sorted(placed.items()):
            if ins.op == Opcode.REPEAT:
                pt, pins, _ = disp[-1]  # the copies carry the repeat's word index
                disp += [(pt + k * ins.d, pins.with_args(addr=pins.addr + k * ins.step), index)
                         for k in range(1, ins.n + 1)]
                index += 1
                t_next = pt + ins.n * ins.d + 1
                continue
            index += t > t_next  # a nop fills the gap
            disp.append((t, ins, index))
            index += 1
            t_next = t + 1
        for i, (t, ins, idx) in enumerate(disp):
            dur = max(1, OPS[ins.op].d(TINY.superlanes))
            if i + 1 < len(disp):
                dur = min(dur, disp[i + 1][0] - t)
            out.append((q, t, dur, ins, idx))
    return out


def _slices(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def test_one_complete_event_per_dispatch_with_ts_dur_tid():
    trace = trace_events(TINY, _program())
    tid = {q.name: q.index + 1 for q in TINY.queues}
    got = sorted((e["tid"], e["ts"], e["dur"], e["name"], e["args"]["instr"],
                  e["args"]["index"]) for e in _slices(trace))
    want = sorted((tid[q], t, dur, ins.info.mnemonic, ins.text(), idx)
                  for q, t, dur, ins, idx in _expected())
    assert got == want
    assert len(got) == 13
    # the full delay is kept in args, also where the slice is cut short
    fadd = [e for e in _slices(trace) if e["name"] == "fadd"]
    assert [(e["ts"], e["dur"], e["args"]["delay"]) for e in fadd] == [(2, 1, 3), (3, 1, 3)]
    mm = next(e for e in _slices(trace) if e["name"] == "mm")
    assert mm["dur"] == OPS[Opcode.MM].d(TINY.superlanes) == 2 + TINY.superlanes
    assert trace["displayTimeUnit"] in ("ms", "ns")


def test_slices_on_one_track_never_overlap():
    by_tid: dict[int, list] = {}
    for e in _slices(trace_events(TINY, _program())):
        by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_tid.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_metadata_names_every_queue_and_kind():
    trace = trace_events(TINY, _program())
    meta = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta
               if e["name"] == "thread_name"}
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert sorted(threads.values()) == sorted(q.name for q in TINY.queues)
    assert procs == {1: "MEM", 2: "VXM", 3: "MXM", 4: "SXM"}
    for q in TINY.queues:
        assert threads[(list(procs.values()).index(q.kind.upper()) + 1, q.index + 1)] == q.name
    for e in trace["traceEvents"]:
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
    for e in _slices(trace):  # every slice sits on a named track
        assert (e["pid"], e["tid"]) in threads


def test_critical_marks_exactly_the_given_pairs():
    crit = {("vxm0", 3), ("mem_w0", 4), ("sxm_e", 7)}
    marked = {(e["args"]["instr"], e["tid"], e["ts"])
              for e in _slices(trace_events(TINY, _program(), critical=crit))
              if e.get("args", {}).get("critical")}
    coloured = [e for e in _slices(trace_events(TINY, _program(), critical=crit))
                if "cname" in e]
    name = {q.index + 1: q.name for q in TINY.queues}
    assert {(name[tid], ts) for _, tid, ts in marked} == crit
    assert {(name[e["tid"]], e["ts"]) for e in coloured} == crit
    assert not any("cname" in e or "critical" in e["args"]
                   for e in _slices(trace_events(TINY, _program())))
    with pytest.raises(ValueError, match="vxm0@5"):
        trace_events(TINY, _program(), critical={("vxm0", 5)})


def test_json_round_trips():
    trace = trace_events(TINY, _program(), critical={("vxm0", 2)})
    assert json.loads(json.dumps(trace)) == trace


def test_utilisation_of_one_queue_busy_every_cycle():
    b = ProgramBuilder(TINY)
    b.at("vxm1", 0, "add", (4, E), (0, E), (0, W))
    b.at("vxm1", 1, "repeat", 39, 1, 0)  # vxm1 dispatches in cycles 0..39
    u = utilisation(TINY, b.program(), bins=8)
    assert u.end == 40 and list(u.edges) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    nvxm = sum(q.kind == "vxm" for q in TINY.queues)
    np.testing.assert_allclose(u["vxm"] * nvxm, 1.0)  # its share of the VXM: all of it
    for kind in ("mem", "mxm", "sxm"):
        np.testing.assert_array_equal(u[kind], 0.0)


def test_utilisation_counts_every_dispatch_once():
    prog = _program()
    u = utilisation(TINY, prog, bins=7)
    width = np.diff(u.edges)
    total = sum(float((u[k] * width).sum()) * sum(q.kind == k for q in TINY.queues)
                for k in u.kinds)
    assert round(total) == len(_expected())
    assert len(utilisation(TINY, prog, bins=1000).edges) == u.end + 1  # no empty bins


def test_command_writes_the_json(tmp_path, capsys):
    out = tmp_path / "add.json"
    rc = cli.main(["timeline", "--program", str(ROOT / "examples/vector_add.s"),
                   "--config", "tiny", "--json", str(out)])
    assert rc == 0
    trace = json.loads(out.read_text())
    assert sorted((e["name"], e["ts"]) for e in _slices(trace)) == [
        ("add", 2), ("read", 0), ("read", 0), ("write", 5)]
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--json", "--png"])
def test_command_refuses_an_unwritable_path(tmp_path, capsys, flag):
    bad = tmp_path / "no" / "such" / "dir" / "out.file"
    rc = cli.main(["timeline", "--program", str(ROOT / "examples/vector_add.s"),
                   "--config", "tiny", flag, str(bad)])
    assert rc == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "cannot write" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_command_refuses_a_directory_as_output(tmp_path, capsys):
    rc = cli.main(["timeline", "--program", str(ROOT / "examples/vector_add.s"),
                   "--config", "tiny", "--json", str(tmp_path)])
    assert rc == 1
    assert f"{tmp_path}: cannot write" in capsys.readouterr().err


def test_command_text_view_of_a_program(capsys):
    rc = cli.main(["timeline", "--program", str(ROOT / "examples/vector_add.s"),
                   "--config", "tiny", "--width", "6"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "cycles 0..6 (1 per column)" in out and "   vxm0 |  #   |" in out


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib is not installed (pip install 'lpu[plot]')")
def test_png_is_written(tmp_path):
    out = tmp_path / "u.png"
    plot_png(TINY, _program(), out, bins=10)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = tmp_path / "cmd.png"
    rc = cli.main(["timeline", "--program", str(ROOT / "examples/vector_add.s"),
                   "--config", "tiny", "--png", str(out2)])
    assert rc == 0 and out2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_matplotlib_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    with pytest.raises(LpuError, match=r"pip install 'lpu\[plot\]'"):
        plot_png(TINY, _program(), tmp_path / "u.png")
    rc = cli.main(["timeline", "--program", str(ROOT / "examples/vector_add.s"),
                   "--config", "tiny", "--png", str(tmp_path / "u.png")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "pip install 'lpu[plot]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "u.png").exists()
