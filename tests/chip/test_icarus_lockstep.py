"""The chip's Verilog under cocotb on Icarus Verilog, in lockstep with the golden model:
every example program (random SRAM contents) and the directed programs, in one
simulator process each. Icarus is slow on the whole chip (tens of cycles per second),
so the random programs run on Verilator only (test_verilator_lockstep.py). Skipped, with the
reason, where ``iverilog`` is not installed (Debian: ``apt-get install iverilog``)."""

from pathlib import Path

import numpy as np
import pytest

from lpu import config
from lpu.loaders import load_program
from lpu.sim import verilator as vl

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")
EX = Path(__file__).resolve().parents[2] / "examples"


def test_examples_on_icarus(tmp_path):
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    rng = np.random.default_rng(11)
    names = [q.name for q in TINY.queues if q.kind == "mem"]
    files = sorted(EX.glob("*.s"))
    assert len(files) >= 4
    runs = [(load_program(str(f), TINY),
             {n: rng.integers(0, 256, size=(TINY.mem_words, TINY.vl), dtype=np.uint8)
              for n in names}) for f in files]
    results = lockstep_hdl_many(TINY, runs, "icarus", workdir=tmp_path)
    assert len(results) == len(files)
    for f, res in zip(files, results, strict=True):
        assert res.ok, f"{f.name}: {res.text()}"
        assert res.events > 0 and res.hdl["error"] is None


def test_directed_programs_on_icarus(tmp_path):
    """The directed programs (every opcode, held reads included: vxm_held) on Icarus."""
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import lockstep_hdl_many
    from lpu.sim.programs.directed import directed_programs

    progs = directed_programs(TINY)
    results = lockstep_hdl_many(TINY, [(d.program, d.mem_init) for d in progs], "icarus",
                                workdir=tmp_path)
    for d, res in zip(progs, results, strict=True):
        assert res.ok, f"{d.name}: {res.text()}"
        assert res.hdl["error"] is None


def test_run_ends_on_icarus(tmp_path):
    """Programs ending every way a queue can end: the RTL's CYCLE after DONE equals the
    golden model's last cycle (lockstep compares it) and the one worked out by hand."""
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import lockstep_hdl_many
    from lpu.sim.programs.run_end import run_end_programs

    cases = run_end_programs(TINY)
    results = lockstep_hdl_many(TINY, [(p, {}) for _, p in cases], "icarus",
                                workdir=tmp_path)
    assert len(results) == len(cases)
    for (case, _), res in zip(cases, results, strict=True):
        assert res.ok, f"{case.name}: {res.text()}"
        assert res.end_cycle == case.end_cycle(TINY), case.name
