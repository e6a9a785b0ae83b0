"""`lpu bench`: the busy program keeps every queue busy, and the benchmark commands
report what they ran (figures themselves live in docs/benchmarks.md, not in tests)."""

import json
import subprocess
import sys

import pytest

from lpu import config
from lpu.golden.check import check
from lpu.tools.bench import busy_program

pytestmark = [pytest.mark.chip]


def lpu(*argv):
    return subprocess.run([sys.executable, "-m", "lpu.cli", *argv], capture_output=True,
                          text=True)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_busy_program_is_legal_and_busy(preset):
    cfg = config.load(preset)
    prog = busy_program(cfg, 60)
    check(cfg, prog)
    assert set(prog.queues) == {q.name for q in cfg.queues}


def test_bench_golden_json():
    r = lpu("bench", "golden", "--config", "tiny", "--cycles", "40", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["config"] == "tiny" and out["cycles"] >= 40
    assert out["queues_busy"] == out["queues"] and out["cycles_per_s"] > 0


@pytest.mark.slow
def test_bench_rtl_amaranth_json():
    r = lpu("bench", "rtl", "--config", "tiny", "--backend", "amaranth", "--cycles", "30",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "rtl (amaranth)" and out["config"] == "tiny"
    # the free run and the lockstep run see the same program to its end
    assert out["free_cycles"] >= 30 and out["lockstep_cycles"] >= out["free_cycles"]
    assert out["lockstep_events"] > 0
    assert out["free_cycles_per_s"] > 0 and out["lockstep_cycles_per_s"] > 0


@pytest.mark.slow
def test_bench_rtl_verilator_json():
    from lpu.sim import verilator as vl

    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    r = lpu("bench", "rtl", "--config", "tiny", "--backend", "verilator", "--cycles", "50",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["lockstep_compare"] == "bulk" and out["lockstep_cycles"] >= out["free_cycles"]
    assert out["lockstep_ratio"] == round(out["lockstep_cycles_per_s"]
                                          / out["free_cycles_per_s"], 3)
    assert {"run", "golden_load", "golden_run", "compare", "lockstep"} <= set(
        out["lockstep_seconds"])


def test_bench_refuses_bad_input():
    r = lpu("bench", "rtl", "--config", "tiny", "--cycles", "3")
    assert r.returncode != 0 and "--cycles must be at least 10" in r.stderr
    assert "Traceback" not in r.stderr
    r = lpu("bench", "rtl", "--config", "nosuch")
    assert r.returncode != 0 and "nosuch" in r.stderr and "Traceback" not in r.stderr
