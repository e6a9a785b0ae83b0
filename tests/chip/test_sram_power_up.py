"""SRAM the host never wrote reads zero on the chip's Verilog, as the golden model assumes
at power-up, on Verilator and Icarus: the memories start at zero in the Verilog itself
(:mod:`lpu.hdl.emit`), since the cocotb loader writes only the non-zero words a program
reads (:func:`lpu.sim.cocotb_runner.words_read`)."""

import numpy as np
import pytest

from lpu import config
from lpu.isa import E, W, make
from lpu.program import Program
from lpu.sim import verilator as vl

pytestmark = [pytest.mark.chip, pytest.mark.slow]
TINY = config.load("tiny")


def _program(cfg):
    """Each MEM slice reads, four words at a time, a few places in both banks (the
    first, a middle and the last words of each)."""
    bw, qs = cfg.bank_words, {}
    addrs = [0, 4, bw // 2, bw - 4, bw, bw + 8, 2 * bw - 4]
    for q in (q for q in cfg.queues if q.kind == "mem"):
        d = E if q.name.startswith("mem_w") else W  # toward the VXM
        ins = []
        for a in addrs:
            ins += [make("read", a, (0, d), 4), make("nop", 1)]
        qs[q.name] = ins
    return Program.from_instrs(cfg, qs)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_unwritten_sram_reads_zero(simulator, tmp_path):
    ok, why = vl.available(simulator)
    if not ok:
        pytest.skip(why)
    from lpu.sim.cocotb_runner import lockstep_hdl_many

    names = [q.name for q in TINY.queues if q.kind == "mem"]
    rng = np.random.default_rng(5)
    some = {}  # one slice with a few non-zero words the program reads, the other none
    some[names[0]] = np.zeros((TINY.mem_words, TINY.vl), dtype=np.uint8)
    some[names[0]][4:6] = rng.integers(1, 256, size=(2, TINY.vl), dtype=np.uint8)
    prog = _program(TINY)
    res_none, res_some = lockstep_hdl_many(TINY, [(prog, None), (prog, some)], simulator,
                                           workdir=tmp_path)
    for res in (res_none, res_some):
        assert res.ok, res.text()
        assert res.hdl["error"] is None
    # the reads put zero vectors (and the loaded words) on the streams, every one
    # compared with the golden model's: at least one sr event per read word
    assert res_none.events >= 4 * 7 * len(names)
