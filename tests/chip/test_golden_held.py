"""ISA 1.1 held reads (VXM chaining) on the golden model, the static checker, the
assembler and the program format.

Expected values come from numpy on the inputs; the timing rules from docs/isa.md
("Held reads"): a held read in cycle t sees the VXM's writes up to t - 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from lpu import config
from lpu.asm import AsmError, assemble, disassemble
from lpu.golden.check import check
from lpu.golden.chip import Chip, ChipError
from lpu.golden.schedule import ScheduleError
from lpu.isa import ISA_VERSION, decode, encode, make
from lpu.program import Program, ProgramError

pytestmark = [pytest.mark.chip]

TINY = config.load("tiny")
A = np.arange(-3, 5, dtype=np.int32).reshape(1, 8) * 1000
B = np.full((1, 8), 7, dtype=np.int32)


def _run(src: str, *, check_first: bool = True):
    chip = Chip(TINY)
    chip.write_tensor("mem_w0", 0, A)
    chip.write_tensor("mem_e0", 0, B)
    chip.load(assemble(src, TINY, "held.s"), check_first=check_first)
    chip.run()
    return chip


CHAIN = """
.queue mem_w0
    read 0, e0, 4        ; 0: a -> e0..e3, at the VXM in cycle 2
.queue mem_e0
    read 0, w0, 4        ; 0: b -> w0..w3
    nop 8
    write 8, e0, 4       ; 9: the last result arrives
.queue vxm0
    nop 2
    add e4, e0, w0       ; 2: s = a + b, written at 3
    nop 1
    mul w4, ve4, ve4     ; 4: s * s, written at 6 (held s from cycle 3 on)
.queue vxm1
    nop 7
    sub e0, vw4, ve4     ; 7: s*s - s (held writes of another ALU), written at 8
"""

PLAIN = """
.queue mem_w0
    read 0, e0, 4
.queue mem_e0
    read 0, w0, 4
    nop 8
    write 8, e0, 4
.queue vxm0
    nop 2
    add e4, e0, w0
"""


def test_a_chain_of_held_reads_computes_without_sram():
    chip = _run(CHAIN)
    s = (A + B).astype(np.int64)
    want = (s * s - s).astype(np.int32)
    assert (chip.read_tensor("mem_e0", 8, 1, np.int32) == want).all()


def test_a_held_read_in_the_write_cycle_is_refused():
    bad = CHAIN.replace("    nop 1\n    mul w4", "    mul w4")  # mul at 3: s is written at 3
    with pytest.raises(ScheduleError) as e:
        check(TINY, assemble(bad, TINY, "held.s"))
    assert e.value.rule == "empty-read" and e.value.cycle == 3
    assert "held value of stream e4" in str(e.value) and "held.s:" in str(e.value)


def test_a_held_read_of_a_stream_never_written_is_refused_and_raises_at_run_time():
    src = ".queue vxm0\n    nop 4\n    add e4, ve0, ve0\n"
    with pytest.raises(ScheduleError, match="has not written") as e:
        check(TINY, assemble(src, TINY))
    assert e.value.rule == "empty-read"
    with pytest.raises(ChipError) as e:
        _run(src, check_first=False)
    assert e.value.rule == "empty-read" and e.value.cycle == 4


def test_the_held_value_is_the_last_write_and_planes_may_come_from_different_writes():
    src = """
.queue mem_w0
    read 0, e0, 4        ; 0: a, at the VXM in cycle 2
    nop 1
    read 0, e0, 4        ; 2: a again, at the VXM in cycle 4
    nop 5
    write 8, w4, 4       ; 8
.queue mem_e0
    read 0, w0, 4        ; 0
    read 0, w0, 4        ; 1: b again, at the VXM in cycle 3
.queue vxm0
    nop 2
    mov32 e4, e0         ; 2: e4..e7 = a, written at 3
    mov32 e4, w0         ; 3: e4..e7 = b, written at 4 (the held value now)
    mov e5, e1           ; 4: plane 1 of e4..e7 = byte 1 of a, written at 5
    nop 1
    mov32 w4, ve4        ; 6: reads planes 0, 2, 3 of b and plane 1 of a
"""
    chip = _run(src)
    a = A.view(np.uint8).reshape(8, 4)
    b = B.view(np.uint8).reshape(8, 4)
    want = b.copy()
    want[:, 1] = a[:, 1]
    assert (chip.read_tensor("mem_w0", 8, 1, np.int32) == want.view(np.int32).T).all()


def test_held_operands_round_trip_through_the_assembler_and_the_encoder():
    src = ".queue vxm0\n    nop 9\n    add e4, ve0, vw8\n    shli w0, vw4, 3\n" \
          "    cvt.f32.i8 e1, e8, vw12\n    sel e8, ve0, w4, e0\n"
    cfg = config.load("small")
    prog = assemble(src, cfg)
    again = assemble(disassemble(prog, cfg), cfg)
    assert again.queues == prog.queues
    ins = [decode(w) for w in prog.queues["vxm0"][1:]]
    assert (ins[0].la, ins[0].lb) == (1, 1) and ins[1].la == 1
    assert (ins[2].la, ins[2].lb) == (0, 1) and (ins[3].la, ins[3].lb) == (1, 0)
    assert [i.text() for i in ins] == ["add e4, ve0, vw8", "shli w0, vw4, 3",
                                       "cvt.f32.i8 e1, e8, vw12", "sel e8, ve0, w4, e0"]
    plain = make("add", (4, 0), (0, 0), (8, 1))
    held = make("add", (4, 0), (0, 0), (8, 1), la=1, lb=1)
    assert encode(held) != encode(plain) and decode(encode(held)) == held


@pytest.mark.parametrize("line, col", [
    ("sel e8, e0, w4, ve0", 21),  # c has no held form
    ("add ve4, e0, w0", 9),       # nor a destination
])
def test_a_held_stream_where_there_is_none_is_refused_with_its_column(line, col):
    with pytest.raises(AsmError) as e:
        assemble(f".queue vxm0\n    {line}\n", TINY, "x.s")
    assert (e.value.line, e.value.col) == (2, col)
    assert "veN/vwN" in e.value.problem


def test_programs_of_isa_1_0_run_unchanged_and_newer_ones_are_refused():
    assert ISA_VERSION == (1, 3)
    words = assemble(PLAIN, TINY).queues
    old = Program(TINY.hash, words, isa_version=(1, 0))
    old.check_config(TINY)  # no held flags: a 1.0 program loads
    held = Program(TINY.hash, assemble(CHAIN, TINY).queues, isa_version=(1, 0))
    with pytest.raises(ProgramError, match="queue vxm0 word 3: .* held-read flag"):
        held.check_config(TINY)
    for version in ((1, 4), (2, 0), (0, 9)):
        with pytest.raises(ProgramError, match=f"built for ISA {version[0]}.{version[1]}"):
            Program(TINY.hash, words, isa_version=version).check_config(TINY)


def test_an_lwi_needs_isa_1_2():
    """ISA 1.2 added lwi: a 1.1 (or 1.0) program without one loads, one with an lwi is
    refused with the queue and word; at 1.2 it loads."""
    plain = assemble(PLAIN, TINY).queues
    Program(TINY.hash, plain, isa_version=(1, 1)).check_config(TINY)
    words = {"mxm_w0": [encode(make("lw", 0, (0, 0), 2)), encode(make("lwi", 2, (0, 0), 2))]}
    for version in ((1, 0), (1, 1)):
        with pytest.raises(ProgramError, match="queue mxm_w0 word 1: .* is an lwi, which ISA "
                           f"{version[0]}.{version[1]} does not have"):
            Program(TINY.hash, words, isa_version=version).check_config(TINY)
    Program(TINY.hash, words, isa_version=(1, 2)).check_config(TINY)
