"""C2C (ISA 1.3) on Verilator: the two-chip system top's Verilog (one chip module
instantiated twice, joined by link models: lpu.sim.system_verilator) under cocotb, in
lockstep with the golden system, on a ring of two chips of examples/c2c/chip.yaml:

* the two-chip example (send, receive, compute on both chips), random SRAM;
* the directed C2C program (both cables both ways, every count, repeats), and random
  C2C programs (lpu.sim.programs.c2c.c2c_random: a fixed seed and LPU_FRESH_SEED);
* the lockstep sees what crosses the link: against a golden system whose chip 0 holds
  other data, chip 1 diverges at its recv's stream write.

The build (the Verilog conversion, about 40 s, and Verilator, about 1 to 2 minutes on
the 2-core machine) is cached under $LPU_BUILD_DIR like the chip's, one build for the
whole file (about 1.5 min in all with the Verilator build fresh, the conversion cached).
"""

import os
from pathlib import Path

import numpy as np
import pytest

from lpu import system
from lpu.asm import assemble_file
from lpu.sim import verilator as vl
from lpu.sim.programs.c2c import c2c_directed, c2c_random
from lpu.sim.system_lockstep import GoldenSystemBackend, system_lockstep

pytestmark = [pytest.mark.chip, pytest.mark.slow]
EX = Path(__file__).resolve().parents[2] / "examples" / "c2c"
CFG = system.load(EX / "system.yaml").chip
RING = system.system(CFG, 2, "ring")


@pytest.fixture(scope="module")
def built():
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    from lpu.sim.system_verilator import build_system

    b = build_system(RING, "verilator")
    print(f"\nverilator build of two chips: {b.seconds:.0f} s{' (cached)' if b.cached else ''}")
    return b


def _sram(seed):
    rng = np.random.default_rng(seed)
    return {q.name: rng.integers(0, 256, (CFG.mem_words, CFG.vl), dtype=np.uint8)
            for q in CFG.queues if q.kind == "mem"}


def _device(built, tmp_path):
    from lpu.sim.system_verilator import VerilogSystemBackend

    return VerilogSystemBackend(RING, built=built, workdir=tmp_path)


class _Other(GoldenSystemBackend):
    """The golden system on other SRAM contents."""

    def __init__(self, inits):
        super().__init__(RING)
        self.inits = inits

    def run(self, programs, mem_inits):
        return super().run(programs, self.inits)


def test_the_two_chip_example_and_what_crosses_the_link(built, tmp_path):
    progs = [assemble_file(EX / f"chip{i}.s", CFG) for i in range(2)]
    inits = [_sram(1), _sram(2)]
    dev = _device(built, tmp_path / "ok")
    res = system_lockstep(RING, progs, inits, dev)
    assert res.ok, res.text()
    assert dev.errors == [None, None] and all(s & 2 for s in dev.status)
    other = [_sram(1), inits[1]]
    other[0]["mem_w0"][0] ^= 1
    res = system_lockstep(RING, progs, inits, _device(built, tmp_path / "bad"),
                          reference=_Other(other))
    d = res.chips[1].divergence
    assert d is not None and (d.kind, d.unit_name, d.cycle) == ("sr", "sxm_w", 11)
    assert d.instr == "recv 0, e0, 4"


def test_the_directed_c2c_program(built, tmp_path):
    ds = c2c_directed(RING)
    dev = _device(built, tmp_path)
    res = system_lockstep(RING, [d.program for d in ds], [d.mem_init for d in ds], dev)
    assert res.ok, res.text()
    assert dev.errors == [None, None]


@pytest.mark.parametrize("seed", [3, int(os.environ.get("LPU_FRESH_SEED") or 0)],
                         ids=["3", "fresh"])
def test_random_c2c_programs(built, tmp_path, seed):
    ds = c2c_random(RING, seed, transfers=10)
    dev = _device(built, tmp_path)
    res = system_lockstep(RING, [d.program for d in ds], [d.mem_init for d in ds], dev)
    assert res.ok, f"seed {seed}: {res.text()}"
