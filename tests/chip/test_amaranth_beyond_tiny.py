"""The Amaranth backend on geometries beyond ``tiny``: on these, signals of the chip top
are wider than Python's default limit of 4300 digits for the int-to-text conversion
Amaranth's simulator does when it generates code; ``AmaranthBackend`` lifts it. A
random legal program (held reads included) runs in lockstep with the golden model."""

import pytest

from lpu import config
from lpu.sim.lockstep import AmaranthBackend, lockstep
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
