"""Each illegal-schedule rule: the static checker's error, and the golden model's own
error at the cycle when the checker is bypassed."""

import numpy as np
import pytest
from _harness import TINY, E, W

from lpu.golden.check import check
from lpu.golden.chip import Chip, ChipError
from lpu.golden.schedule import ScheduleError
from lpu.isa import make
from lpu.program import Program, ProgramBuilder

pytestmark = [pytest.mark.chip]


def prog(**queues):
    return Program.from_instrs(TINY, queues)


def two_writers():
    # both VXM ALUs write east stream 0 at cycle 1+1 (mov has delay 1); operands from mem_w0
    b = ProgramBuilder(TINY)
    b.at("mem_w0", 0, "read", 0, (0, E), 2)
    b.at("vxm0", 2, "mov", (5, E), (0, E))
    b.at("vxm1", 2, "mov", (5, E), (1, E))
    return b.program(), 3, "vxm", "two-writers"


def empty_read():
    b = ProgramBuilder(TINY)
    b.at("mem_w0", 0, "read", 0, (0, E))
    b.at("vxm0", 3, "mov", (5, E), (0, E))  # arrives at 2, not 3
    return b.program(), 3, "vxm0", "empty-read"


def bank_conflict():
    b = ProgramBuilder(TINY)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "write", 5, (0, E))  # SRAM write at 3, bank 0
    b.at("mem_w0", 3, "read", 6, (1, E))  # SRAM read at 3, bank 0
    return b.program(), 3, "mem_w0", "bank"


def wrong_direction():
    # reading a west stream that only ever flowed east
    b = ProgramBuilder(TINY)
    b.at("mem_w0", 0, "read", 0, (0, E))
    b.at("vxm0", 2, "mov", (5, E), (0, W))
    return b.program(), 2, "vxm0", "empty-read"


@pytest.mark.parametrize("case", [two_writers, empty_read, bank_conflict, wrong_direction])
def test_rule_static_and_dynamic(case):
    program, cycle, queue, rule = case()
    with pytest.raises(ScheduleError) as ei:
        check(TINY, program)
    e = ei.value
    assert e.rule == rule
    assert e.queue.startswith(queue)
    assert f"queue {e.queue}" in str(e) and "cycle" in str(e)
    # the model itself, without the checker, stops at the cycle
    chip = Chip(TINY)
    chip.load(program, check_first=False)
    with pytest.raises(ChipError) as ci:
        chip.run()
    assert ci.value.rule == rule
    assert ci.value.cycle == cycle
    assert ci.value.queue.startswith(queue)


@pytest.mark.parametrize("queues,rule,needle", [
    ({"mem_w0": [make("read", 300, (0, E))]}, "range", "address 300 is outside"),
    ({"mem_w0": [make("read", 126, (0, E), 4)]}, "range", "span both banks"),
    ({"mxm_w0": [make("lw", 6, (0, E), 4)]}, "range", "weight rows 6..9"),
    ({"mxm_w0": [make("mm", None, (0, E), 3)]}, "range", "slot 3 does not exist"),
    ({"vxm0": [make("add", (6, E), (0, E), (0, W))]}, "range", "run past the last stream"),
    ({"sxm_w": [make("rot", (0, E), (0, W), 8)]}, "range", "not below VL"),
    ({"mem_w0": [make("nop", 2), make("repeat", 3, 1)]}, "repeat", "directly follow"),
    ({"mem_w0": [make("sync"), make("read", 0, (0, E))]}, "sync", "never released"),
    ({"mem_w1": [make("read", 0, (0, W))],  # an iw where an lwi (ISA 1.2) installs
      "mxm_w0": [make("nop", 3), make("lwi", 0, (0, W)), make("nop", 1), make("iw")]},
     "install", "lwi installs two cycles after its dispatch"),
])
def test_static_rules(queues, rule, needle):
    with pytest.raises(ScheduleError, match=needle) as ei:
        check(TINY, prog(**queues))
    assert ei.value.rule == rule


def test_repeat_stepping_out_of_range_names_the_copy_cycle():
    p = prog(mem_w0=[make("read", 250, (0, E)), make("repeat", 8, 1)])
    with pytest.raises(ScheduleError, match="address 256") as ei:
        check(TINY, p)
    assert ei.value.cycle == 6


def test_gather_outside_bank_raises_at_cycle():
    chip = Chip(TINY)
    chip.write_mem("mem_w1", 0, np.full((1, TINY.vl), 200, dtype=np.uint8))
    b = ProgramBuilder(TINY)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "gather", 10, (0, E), (1, E))  # 10 + 200 is in bank 1
    chip.load(b.program())  # legal statically: the addresses are data
    with pytest.raises(ChipError, match="outside bank 0") as ei:
        chip.run()
    assert ei.value.cycle == 3


def test_program_for_another_config_is_refused():
    small_prog = Program.from_instrs(TINY.replace(lanes=8, name="x"), {"mem_w0": [make("nop", 1)]})
    with pytest.raises(Exception, match="config hash"):
        Chip(TINY).load(small_prog)
