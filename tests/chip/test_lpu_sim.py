"""`lpu sim` end to end: example programs on the RTL (Amaranth's simulator) in lockstep
with the golden model; exit status 0 only when every cycle matched."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chip, pytest.mark.slow]
EX = Path(__file__).resolve().parents[2] / "examples"


def lpu(*argv):
    return subprocess.run([sys.executable, "-m", "lpu.cli", *argv], capture_output=True,
                          text=True)


@pytest.mark.parametrize("example", ["vector_add.s", "lane_sum.s"])
def test_examples_in_lockstep_on_amaranth(example):
    r = lpu("sim", str(EX / example), "--config", "tiny", "--backend", "amaranth", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["divergence"] is None
    assert out["events"] > 0 and out["cycles"] > 0


def test_illegal_program_is_refused(tmp_path):
    bad = tmp_path / "bad.s"
    bad.write_text(".queue vxm0\n    mov e0, e1\n")
    r = lpu("sim", str(bad), "--config", "tiny", "--backend", "amaranth")
    assert r.returncode == 1
    assert "holds nothing" in r.stderr and "Traceback" not in r.stderr
