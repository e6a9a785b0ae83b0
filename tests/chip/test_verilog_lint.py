"""`lpu verilog --lint`: the chip top of each preset converts to Verilog that passes
``verilator --lint-only -Wall`` with only the waivers documented in
lpu.sim.verilator.WAIVERS, and the port description lists the ports the Verilog has."""

import json
import re
import subprocess
import sys

import pytest

from lpu.sim import verilator as vl

pytestmark = [pytest.mark.chip, pytest.mark.slow]


def lpu(*argv):
    return subprocess.run([sys.executable, "-m", "lpu.cli", *argv], capture_output=True,
                          text=True)


@pytest.mark.parametrize("preset", ["tiny", "small", "fpga"])
def test_verilog_is_lint_clean(preset, tmp_path):
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    r = lpu("verilog", "--config", preset, "-o", str(tmp_path), "--lint", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["config"] == preset
    assert out["lint"]["clean"], (tmp_path / "lpu_top.lint.txt").read_text()[-3000:]
    assert out["lint"]["waivers"] == list(vl.WAIVERS)
    verilog = (tmp_path / "lpu_top.v").read_text()
    header = verilog[verilog.index("module lpu_top("):]
    header = header[:header.index(");")]
    ports = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", header.split("(", 1)[1]))
    desc = json.loads((tmp_path / "lpu_top.json").read_text())
    names = {p["name"] for p in desc["ports"]} | {desc["clock"], desc["reset"]}
    assert names == ports
    assert "trace" not in " ".join(ports)  # synthesis output has no trace port
