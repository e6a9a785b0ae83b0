"""Random legal programs (every opcode, fp32 specials) on the RTL on Amaranth's simulator
in lockstep with the golden model: a fixed set of seeds, and one fresh seed per run
(printed, so that a failure can be replayed with `lpu sim --random SEED --cycles 30`)."""

import os
import random

import pytest

from lpu import config
from lpu.sim.lockstep import AmaranthBackend, lockstep
from lpu.sim.programs.randprog import generate

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")
FRESH = int(os.environ.get("LPU_FRESH_SEED") or random.SystemRandom().randrange(1 << 30))


@pytest.mark.parametrize("seed", [101, 103, FRESH])
def test_random_program_in_lockstep(seed, capsys):
    with capsys.disabled():
        print(f"\nrandom lockstep seed {seed} (replay: lpu sim --random {seed} --cycles 30 "
              "--config tiny --backend amaranth)")
    rp = generate(TINY, seed, cycles=30)
    res = lockstep(TINY, rp.program, rp.mem, AmaranthBackend(TINY))
    assert res.ok, res.text()
