"""The lockstep checker can fail: the RTL is broken on purpose (a test-only fault hook,
:class:`lpu.hdl.vxm.VxmFault`: one lane of one VXM ALU gets a wrong operand for one
opcode) and the checker must name the first cycle, slice, superlane, lane and stream
where the RTL goes wrong. The expected place comes from the program and the timing
contract (docs/timing.md: tile ``k`` of the VXM writes the result of an instruction
dispatched at ``t`` in cycle ``t + k + d``), not from running the broken RTL."""

import numpy as np
import pytest

from lpu import config
from lpu.golden.chip import Chip as GoldenChip
from lpu.hdl.vxm import VxmFault
from lpu.isa import OPS, E, Opcode, W
from lpu.program import ProgramBuilder
from lpu.sim.lockstep import AmaranthBackend, lockstep

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")
T_ADD = 3  # dispatch cycle of the add on vxm1
DST = 4  # its result goes to east streams 4..7


def _program(seed):
    """Two int32 vectors from SRAM into ``add`` on vxm1, the sum written back."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-(1 << 30), 1 << 30, size=TINY.vl, dtype=np.int64).astype(np.int32)
    b = rng.integers(-(1 << 30), 1 << 30, size=TINY.vl, dtype=np.int64).astype(np.int32)
    chip = GoldenChip(TINY)
    chip.write_tensor("mem_w0", 0, a.reshape(1, -1))
    chip.write_tensor("mem_e0", 0, b.reshape(1, -1))
    bld = ProgramBuilder(TINY)
    bld.at("mem_w0", T_ADD - 2, "read", 0, (0, E), 4)
    bld.at("mem_e0", T_ADD - 2, "read", 0, (0, W), 4)
    bld.at("vxm1", T_ADD, "add", (DST, E), (0, E), (0, W))
    d = OPS[Opcode.ADD].d(TINY.superlanes)
    bld.at("mem_e0", T_ADD + d + 1, "write", 16, (DST, E), 4)
    program = bld.program()
    mem = {n: chip.read_mem(n, 0, TINY.mem_words) for n in chip.mem_names}
    chip.load(program)
    chip.run()
    want = (a.astype(np.int64) + b).astype(np.int32)
    assert np.array_equal(chip.read_tensor("mem_e0", 16, 1, np.int32)[0], want)
    return program, mem


def test_unbroken_rtl_matches():
    program, mem = _program(1)
    res = lockstep(TINY, program, mem, AmaranthBackend(TINY))
    assert res.ok, res.text()


@pytest.mark.parametrize("superlane,lane", [(0, 0), (1, 2)])
def test_checker_names_the_broken_lane(superlane, lane):
    program, mem = _program(2 + lane)
    fault = VxmFault(alu=1, superlane=superlane, lane=lane, opcode=Opcode.ADD, xor=1)
    res = lockstep(TINY, program, mem, AmaranthBackend(TINY, fault=fault))
    assert not res.ok
    d = res.divergence
    vxm = next(p for p in TINY.positions if p.kind == "vxm")
    # a + (b ^ 1) differs from a + b in the low byte: byte plane 0, stream DST
    assert d.reason == "value"
    assert d.cycle == T_ADD + superlane + OPS[Opcode.ADD].d(TINY.superlanes)
    assert (d.kind, d.unit_name, d.what) == ("sr", vxm.name, f"stream e{DST}")
    # lane: the vector lane (superlane * lanes + lane); byte: its offset in the event
    assert (d.superlane, d.lane, d.byte) == (superlane, superlane * TINY.lanes + lane, lane)
    assert d.queue == "vxm1" and d.instr.startswith("add") and d.dispatch_cycle == T_ADD
    assert d.expected[lane] != d.actual[lane]
    assert [i for i in range(TINY.lanes) if d.expected[i] != d.actual[i]] == [lane]
    text = res.text()
    assert f"cycle {d.cycle}" in text and f"lane {d.lane}" in text


def test_fault_on_another_opcode_is_invisible():
    # the hook fires only for its opcode: a sub fault leaves this add program intact
    program, mem = _program(9)
    fault = VxmFault(alu=1, superlane=1, lane=1, opcode=Opcode.SUB)
    res = lockstep(TINY, program, mem, AmaranthBackend(TINY, fault=fault))
    assert res.ok, res.text()


def test_fault_outside_the_chip_is_refused():
    with pytest.raises(ValueError, match="outside this chip"):
        AmaranthBackend(TINY, fault=VxmFault(alu=5, superlane=0, lane=0,
                                            opcode=Opcode.ADD)).build({})
