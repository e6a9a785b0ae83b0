"""The Amaranth backend on geometries beyond ``tiny``: on these, signals of the chip top
are wider than Python's default limit of 4300 digits for the int-to-text conversion
Amaranth's simulator does when it generates code; ``AmaranthBackend`` lifts it. A
random legal program (held reads included) runs in lockstep with the golden model."""

import pytest

from lpu import config
from lpu.hdl.chip import trace_fields
from lpu.sim.lockstep import AmaranthBackend, lockstep, sim_chip
from lpu.sim.programs.randprog import generate

pytestmark = [pytest.mark.chip, pytest.mark.slow]

TINY = config.load("tiny")


@pytest.mark.parametrize("changes", [
    {"mem_slices": 3, "name": "tiny-3mem"},
    {"streams": 12, "name": "tiny-12s"},
])
def test_random_program_in_lockstep_beyond_tiny(changes):
    cfg = TINY.replace(**changes)
    rp = generate(cfg, 7, cycles=24)
    res = lockstep(cfg, rp.program, rp.mem, AmaranthBackend(cfg))
    assert res.ok, res.text()
    assert res.cycles > 0 and res.events > 0


@pytest.mark.unit
def test_simulated_chip_has_no_value_over_amaranths_limit_on_small():
    """``small``'s trace port is 66,813 bits: packed into one value, Amaranth's simulator
    refuses it (values of more than 2**16 bits), so the Amaranth backends simulate the
    chip with the port unpacked and ``record_run`` reads its fields (it records the
    runs of the bulk lockstep tests on ``tiny``)."""
    chip = sim_chip(config.load("small"))
    assert "trace_bits" not in chip.signature.members
    widths = [w for _, _, w in trace_fields(chip)]
    assert sum(widths) > 2 ** 16  # what a packed port would be
    assert max(widths) <= 2 ** 16
