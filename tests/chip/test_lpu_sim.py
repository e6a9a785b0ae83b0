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


C2C = EX / "c2c"


def test_a_system_in_lockstep_on_amaranth_matches_lpu_run(tmp_path):
    """`lpu sim --system`: both chips of the two-chip example on the RTL system, each in
    lockstep with the golden system; each chip's run ends in the cycle the golden system
    alone reports (`lpu run --system`)."""
    args = ["--system", str(C2C / "system.yaml"), str(C2C / "chip0.s"), str(C2C / "chip1.s"),
            "--json"]
    r = lpu("sim", *args, "--backend", "amaranth")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    golden = json.loads(lpu("run", *args).stdout)
    assert out["ok"] and out["chips"] == 2 == len(out["results"])
    for sim, run in zip(out["results"], golden["results"], strict=True):
        assert sim["ok"] and sim["divergence"] is None and sim["events"] > 0
        assert sim["error"] is None
        assert sim["end_cycle"] == run["end_cycle"]


@pytest.mark.parametrize("change, words", [
    (["one.s"], ["2 chips runs 2 programs", "not 1"]),
    (["--config", "tiny"], ["--config and --system"]),
    (["--vcd", "w.vcd"], ["--vcd is not supported with --system"]),
    (["--random", "3"], ["--random is not supported with --system"]),
])
def test_lpu_sim_system_refuses_bad_arguments(tmp_path, change, words):
    progs = [str(C2C / "chip0.s")] if change == ["one.s"] else \
        [str(C2C / "chip0.s"), str(C2C / "chip1.s"), *change]
    r = lpu("sim", "--system", str(C2C / "system.yaml"), *progs)
    assert r.returncode == 1, r
    assert all(w in r.stderr for w in words), r.stderr
    assert "Traceback" not in r.stderr


def test_lpu_sim_system_refuses_a_mistimed_recv_with_its_place(tmp_path):
    """A recv one cycle late: chip 0's send then finds no recv where its vectors arrive;
    the link checker names that send's chip, file and line, cycle and link, before any
    simulation."""
    text = (C2C / "chip1.s").read_text().replace("    nop 10\n    recv", "    nop 11\n    recv")
    late = tmp_path / "chip1.s"
    late.write_text(text)
    sender = C2C / "chip0.s"
    lines = sender.read_text().splitlines()
    line = next(i for i, t in enumerate(lines) if t.strip().startswith("send 1,")) + 1
    r = lpu("sim", "--system", str(C2C / "system.yaml"), str(sender), str(late))
    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr
    assert f"chip 0, {sender}:{line}" in r.stderr and "link 1" in r.stderr, r.stderr
    assert "no recv" in r.stderr
