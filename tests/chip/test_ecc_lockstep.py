"""ECC in lockstep on the RTL (Amaranth): flipped SRAM bits (lpu.hdl.mem.MemFault on the
RTL, Chip.inject on the golden model) corrected, counted and detected alike, every
``ecc`` event compared; a fault on the RTL side alone is a divergence naming it."""

import numpy as np

from lpu import config
from lpu.asm import assemble_file
from lpu.hdl.mem import MemFault
from lpu.hostmap import ErrorCode
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
