"""The calibration of ``lpu project``: the decode steps the compiler schedules, measured
on the golden chip, against the estimate from their bounds. The error the command
prints is recomputed here from the rows, the fit is checked to be the least-squares
one, and a row's cycles and bounds are measured again by other paths (the compiler's
``compile_step`` run on a fresh chip; the compiler's trace of the whole step).

The calibration runs once for the module (about half a minute: twelve steps compiled
and run) into a cache folder of its own."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lpu import cli, config
from lpu.golden.chip import Chip
from lpu.tools import project as pj
from lpu.tools.compiler.graph import critical_path, throughput, trace_step
from lpu.tools.compiler.kernels import write_image
from lpu.tools.compiler.lower import compile_step

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LPU_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        lines = []
        c = pj.calibrate(progress=lines.append)
        assert len(lines) == len(pj.CALIBRATION_SHAPES)
        yield c


def _sse(rows, busy, kv):
    return sum(((r.critical_path + busy * r.busy + kv * r.kv_term - r.scheduled)
                / r.scheduled) ** 2 for r in rows)


def test_errors_are_the_rows_recomputed(cal):
    assert len(cal.rows) == len(pj.CALIBRATION_SHAPES) == len(cal.loo)
    errs = []
    for r in cal.rows:
        pred = r.critical_path + cal.busy * r.busy + cal.kv * r.kv_term
        assert r.predicted == pytest.approx(pred)  # no block's bound is above its estimate
        assert r.floor <= r.predicted
        errs.append((pred - r.scheduled) / r.scheduled)
        assert r.error == pytest.approx(errs[-1])
    assert cal.mean_abs_error == pytest.approx(np.mean(np.abs(errs)))
    assert cal.max_abs_error == pytest.approx(np.max(np.abs(errs)))
    assert cal.mean_abs_error < 0.10 and cal.max_abs_error < 0.20


def _nonneg_lstsq(rows):
    """(busy, kv): least squares of the relative excess, no coefficient negative (a
    column whose coefficient would be is left out)."""
    t = np.array([(r.scheduled - r.critical_path) / r.scheduled for r in rows])
    cols = np.array([[r.busy / r.scheduled, r.kv_term / r.scheduled] for r in rows])
    best = None
    for use in ([0, 1], [0], [1]):
        c, *_ = np.linalg.lstsq(cols[:, use], t, rcond=None)
        if (c < 0).any():
            continue
        err = float(np.sum((cols[:, use] @ c - t) ** 2))
        if best is None or err < best[0]:
            coef = [0.0, 0.0]
            for i, v in zip(use, c, strict=True):
                coef[i] = float(v)
            best = (err, coef)
    return best[1]


def test_the_fit_is_least_squares_of_relative_error(cal):
    rows = cal.rows
    assert cal.busy > 0 and cal.kv >= 0
    best = _sse(rows, cal.busy, cal.kv)
    for db, dk in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        if cal.kv + dk >= 0:  # a coefficient at its bound moves one way only
            assert _sse(rows, cal.busy + db, cal.kv + dk) > best
    assert (cal.busy, cal.kv) == pytest.approx(tuple(_nonneg_lstsq(rows)))
    # one step left out: the others' fit, the step's error under it
    i = 5
    rest = [r for j, r in enumerate(rows) if j != i]
    b, k = _nonneg_lstsq(rest)
    r = rows[i]
    loo = (r.critical_path + b * r.busy + k * r.kv_term - r.scheduled) / r.scheduled
    assert cal.loo[i] == pytest.approx(loo)


def test_a_row_measured_again_by_other_paths(cal):
    """The first step: compiled by compile_step and run on a fresh golden chip; its bounds
    from the compiler's trace of the whole step."""
    shape, row = pj.CALIBRATION_SHAPES[0], cal.rows[0]
    chip = config.load(shape[0])
    model, pos = pj._calibration_model(shape, chip)
    cs = compile_step(model, chip, pos)
    g = Chip(chip)
    write_image(g, cs.image, {t: 7 for t in cs.token})
    g.load(cs.program)
    assert g.run().cycles == row.scheduled
    graph, _ = trace_step(model, chip.vl, pos)
    tp = throughput(graph, chip)
    assert tp["vxm"] + tp["sxm"] + tp["mxm"] == pytest.approx(row.busy)
    cp = critical_path(graph, chip)[0]
    assert cp <= row.critical_path <= cp + 3 * len(pj._step_blocks(model.config))


def test_the_command_prints_these_errors(cal, capsys):
    assert cli.main(["project", "--calibrate"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # measured once: from the cache now
    printed = re.findall(r"^  (tiny|small) +(.+?) +(\d+) +([\d,]+) +([\d,]+) +([\d,]+) +"
                         r"([+-][\d.]+)% +([+-][\d.]+)%$", out, re.M)
    assert len(printed) == len(cal.rows)
    for (chip, label, pos, sched, cp, est, e, loo), r, lo in zip(printed, cal.rows, cal.loo,
                                                                 strict=True):
        assert (chip, label, int(pos)) == (r.chip, r.label, r.pos)
        assert int(sched.replace(",", "")) == r.scheduled
        assert int(cp.replace(",", "")) == r.critical_path
        assert int(est.replace(",", "")) == round(r.predicted)
        assert float(e) == round(100 * r.error, 1) and float(loo) == round(100 * lo, 1)
    assert (f"mean |error| {100 * cal.mean_abs_error:.1f}%, largest "
            f"{100 * cal.max_abs_error:.1f}%") in out
    assert cli.main(["project", "--calibrate", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["calibration"]
    assert d["mean_abs_error"] == pytest.approx(cal.mean_abs_error)
    assert [x["error"] for x in d["rows"]] == pytest.approx([r.error for r in cal.rows])


def test_the_published_models(cal, capsys):
    assert cli.main(["project", "--model", "llama-2-70b", "--preset", "groq", "--chips",
                     "576"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "published: Llama-2-70B 240-300 tokens/s per user" in out
    assert f"within {100 * cal.mean_abs_error:.1f}% on average" in out
    m = re.search(r"rates: ([\d,.]+) tokens/s per user", out)
    p = pj.project(pj.load_model_config("llama-2-70b"), config.load("groq"), 576,
                   calibration=cal)
    assert float(m.group(1).replace(",", "")) == round(p.tokens_per_s_user, 1)
    assert cli.main(["project", "--model", "llama-2-7b", "--chips", "64", "--seq", "2048",
                     "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["published"]["name"] == "Llama-2-7B" and d["seq"] == 2048
    assert d["tokens_per_s_user"] == pytest.approx(900e6 / d["round_cycles"])
    assert sum(d["breakdown_cycles"].values()) == pytest.approx(d["token_cycles"])


def test_one_small_chip_projects_the_calibrated_step(cal):
    """The shipped model on one small chip: the projection's compute is the calibration's
    estimate of that step, and the rest is the host round trip (no links)."""
    row = next(r for r in cal.rows if r.label == "bytes-llama")
    p = pj.project(pj.load_model_config("bytes-llama"), config.load("small"), 1,
                   seq=row.pos + 1, calibration=cal)
    b = p.breakdown
    assert b["compute: critical path"] + b["compute: schedule (calibrated)"] == \
        pytest.approx(row.predicted)
    assert b["links: all-reduces"] == b["links: pipeline hops"] == 0
    assert p.plan.token_cycles == pytest.approx(row.predicted + p.plan.host_cycles)
