"""Formal proofs (:mod:`lpu.sim.formal`, ``lpu formal``) with SymbiYosys from PyPI:

* every check passes on the blocks as they are, bounded from reset (here at most 10
  cycles deep, so that the suite stays short; ``lpu formal`` runs each at its own
  depth, docs/verification.md);
* every check fails when its harness expects something off by one (a cycle, an index,
  a bit): the bound reaches the situation the property is about, so a pass means
  something; the failure comes with a counterexample waveform;
* ``lpu formal`` runs a check and exits 0, lists the checks, and refuses bad arguments.
"""

import subprocess
import sys

import pytest

from lpu.sim.formal import CHECKS, available, run_check

pytestmark = [pytest.mark.slow]

#: The depth the suite runs the checks at (each check's own is deeper: ``lpu formal``).
CI_DEPTH = 10
ok, why = available()
needs_tools = pytest.mark.skipif(not ok, reason=why)


@needs_tools
@pytest.mark.parametrize("name", list(CHECKS))
def test_check_passes_and_its_off_by_one_twin_fails(name, tmp_path):
    depth = min(CHECKS[name].depth, CI_DEPTH)
    good = run_check(name, workdir=tmp_path / "good", depth=depth)
    assert good.status == "PASS", "\n".join(good.log)
    assert good.depth == depth
    bad = run_check(name, workdir=tmp_path / "bad", wrong=True, depth=depth)
    assert bad.status == "FAIL", "\n".join(bad.log)
    assert bad.trace is not None and bad.trace.endswith(".vcd")


def _lpu(*args):
    return subprocess.run([sys.executable, "-m", "lpu.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_lpu_formal_lists_and_refuses():
    r = _lpu("formal", "--list")
    assert r.returncode == 0 and all(name in r.stdout for name in CHECKS)
    r = _lpu("formal", "--check", "no-such")
    assert r.returncode != 0 and "no-such" in r.stderr
    r = _lpu("formal", "--check", "icu-slice", "--depth", "0")
    assert r.returncode == 1 and "--depth" in r.stderr


@needs_tools
def test_lpu_formal_runs_a_check(tmp_path):
    r = _lpu("formal", "--check", "icu-slice", "--depth", "8", "--keep", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "icu-slice" in r.stdout and "PASS" in r.stdout
    assert (tmp_path / "icu-slice" / "top.il").is_file()
