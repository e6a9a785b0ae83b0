"""ECC in lockstep on the RTL (Amaranth): flipped SRAM bits (lpu.hdl.mem.MemFault on the
RTL, Chip.inject on the golden model) corrected, counted and detected alike, every
``ecc`` event compared; a fault on the RTL side alone is a divergence naming it. The same
on the generated Verilog (Icarus), per cycle and in bulk (the recorder and the dense
decoder of the ecc port)."""

import numpy as np
import pytest

from lpu import config
from lpu.asm import assemble_file
from lpu.hdl.mem import MemFault
from lpu.hostmap import ErrorCode
from lpu.sim import verilator as vl
from lpu.sim.cocotb_runner import build_chip, lockstep_hdl
from lpu.sim.lockstep import AmaranthBackend, GoldenBackend, lockstep
from lpu.vectors import from_words, to_words

TINY = config.load("tiny")
PROG = assemble_file("examples/vector_add.s", TINY)
A = np.arange(8, dtype=np.int32).reshape(1, 8) * 1001
B = np.arange(8, dtype=np.int32).reshape(1, 8) - 3
MEM = {"mem_w0": to_words(A.view("<u4")), "mem_e0": to_words(B.view("<u4"))}
L = TINY.lanes

FAULTS = [
    MemFault("mem_w0", 1, 5, 1),              # a data bit from power-up: corrected
    MemFault("mem_w0", 0, 8 * L + 2, 0, 0),   # a check bit at cycle 0: corrected
    MemFault("mem_e0", 2, 3, 0), MemFault("mem_e0", 2, 30, 0),  # two bits: detected
    MemFault("mem_e0", 3, 7, 1, 5),           # after the read (cycle 0 + 1): no effect
    MemFault("mem_e1", 8, 1, 0),              # a word the program overwrites
]


def test_faults_agree_and_are_reported():
    dev = AmaranthBackend(TINY, mem_faults=FAULTS)
    ref = GoldenBackend(TINY, faults=FAULTS)
    res = lockstep(TINY, PROG, MEM, dev, reference=ref)
    assert res.ok, res.text()
    # the expected values from the fault list: two corrections, one detection at
    # mem_e0 address 2 superlane 0, read at cycle 0 on superlane 0, on the streams at 1
    assert dev.corrected == ref.chip.ecc_corrected == 2
    want = {"cycle": 1, "code": ErrorCode.ECC.value,
            "position": TINY.queue("mem_e0").position, "superlane": 0, "unit": 0,
            "queue": TINY.queue("mem_e0").index, "address": 2}
    assert dev.error == ref.chip.error == want
    # the sum used b with word 2 (byte plane 2) as stored: bits 3 and 30 of superlane 0
    words = MEM["mem_e0"].copy()
    words[2, 0] ^= 1 << 3
    words[2, 3] ^= 1 << 6
    b_seen = from_words(words, 1).view(np.int32)
    got = from_words(ref.chip.read_mem("mem_e1", 8, 4), 1).view(np.int32)
    assert (got == A + b_seen).all()


def test_rtl_only_fault_is_a_divergence():
    dev = AmaranthBackend(TINY, mem_faults=[MemFault("mem_w0", 3, 9, 1)])
    res = lockstep(TINY, PROG, MEM, dev)
    assert not res.ok
    d = res.divergence
    assert (d.kind, d.reason, d.unit_name, d.index, d.superlane) == \
        ("ecc", "extra", "mem_w0", 3, 1)
    assert d.cycle == 2 and d.instr.startswith("read")  # dispatched at 0, superlane 1


# -- on the Verilog (Icarus: the same bench, recorder and bulk decoder as Verilator) ---------

# a power-up fault would end at the bench's host writes before START: timed ones here
TIMED = [
    MemFault("mem_w0", 1, 5, 1, 0),           # a data bit: corrected
    MemFault("mem_w0", 0, 8 * L + 2, 0, 0),   # a check bit: corrected
    MemFault("mem_e0", 2, 3, 0, 0), MemFault("mem_e0", 2, 30, 0, 0),  # two bits: detected
    MemFault("mem_e0", 3, 7, 1, 5),           # after the read: no effect
]


def _golden(faults):
    gb = GoldenBackend(TINY, faults=faults)
    events = [ev for _, evs in gb.run(PROG, MEM) for ev in evs]
    return gb.chip, events


@pytest.mark.slow
@pytest.mark.parametrize("compare", ["bulk", "cycle"])
def test_faults_agree_on_icarus(tmp_path, compare):
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    chip, events = _golden(TIMED)
    ecc = [ev for ev in events if ev.kind == "ecc"]
    assert len(ecc) == 3 and sum(ev.dir for ev in ecc) == 1  # 2 corrected, 1 detected
    res = lockstep_hdl(TINY, PROG, MEM, "icarus", workdir=tmp_path, compare=compare,
                       mem_faults=TIMED)
    assert res.ok, res.text()
    assert res.events == 2 * len(events)  # both sides, the ecc events among them
    if compare == "bulk":
        assert res.hdl["rechecks"] == 0  # the dense decode of the ecc port agrees
    assert res.hdl["corrected"] == chip.ecc_corrected == 2
    assert res.hdl["error"] == chip.error and chip.error["address"] == 2


@pytest.mark.slow
def test_rtl_only_fault_is_a_divergence_on_icarus(tmp_path):
    ok, why = vl.available("icarus")
    if not ok:
        pytest.skip(why)
    built = build_chip(TINY, "icarus", mem_faults=TIMED)  # the build of the test above
    # the golden model without the two mem_w0 faults (both corrected: the data agree)
    res = lockstep_hdl(TINY, PROG, MEM, "icarus", workdir=tmp_path, built=built,
                       mem_faults=TIMED[2:])
    assert not res.ok
    d = res.divergence
    # the first ecc event only the RTL has: the faulted golden model's, less the other's
    key = lambda ev: (ev.cycle, ev.unit, ev.dir, ev.index, ev.superlane)  # noqa: E731
    other = {key(ev) for ev in _golden(TIMED[2:])[1] if ev.kind == "ecc"}
    first = min((ev for ev in _golden(TIMED)[1] if ev.kind == "ecc" and key(ev) not in other),
                key=key)
    names = [q.name for q in TINY.queues if q.kind == "mem"]
    assert (d.kind, d.reason, d.cycle, d.unit_name, d.index, d.superlane) == \
        ("ecc", "extra", first.cycle, names[first.unit], first.index, first.superlane)
    assert d.instr.startswith("read")


def test_power_up_fault_refused_on_verilog():
    with pytest.raises(ValueError, match="needs a cycle"):
        lockstep_hdl(TINY, PROG, MEM, "icarus", mem_faults=[MemFault("mem_w0", 1, 5, 1)])
