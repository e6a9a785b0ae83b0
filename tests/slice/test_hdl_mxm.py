"""lpu.hdl.mxm.MxmSlice on Amaranth's simulator against the golden model
(lpu.sim.slice_harness), comparing stream writes and the wload / install / acc trace
every cycle: directed weight loads (several counts, rows across superlanes), double
buffering, mm / mmacc / mm without output; dense random programs on every plane
(installs while a product is still gathering its input, loads right after installs);
and the errors.
"""

import numpy as np
import pytest

from lpu import config
from lpu.hdl.interface import ErrorCode
from lpu.hdl.mxm import MxmSlice
from lpu.isa import E, W
from lpu.program import ProgramBuilder
from lpu.sim.slice_harness import ExpectedError, check_slice
from lpu.sim.trace import mxm_events

pytestmark = pytest.mark.slice

TINY = config.load("tiny")

#: (position name, first west stream) of the MEM slices that feed the west MXM: mem_w1
#: (position 2) arrives 3 cycles after its read, mem_w0 (position 3) 4 cycles after.
FEEDS = (("mem_w1", 0), ("mem_w0", 4))


def feed(cfg, b, rng, cycles, words=64):
    """mem_w1 and mem_w0 read random words onto west streams 0-3 and 4-7 every cycle of
    0..cycles-1: all eight are valid at mxm_w from cycle 4 to cycles + 2."""
    mem = {}
    for name, s in FEEDS:
        mem[name] = rng.integers(0, 256, (words, cfg.vl), dtype=np.uint8)
        for c in range(cycles):
            b.at(name, c, "read", 4 * (c % (words // 4)), (s, W), 4)
    return mem


def run(cfg, b, mem, **kw):
    dut = MxmSlice(cfg, "w")
    return check_slice(cfg, b, "mxm_w", dut, mem=mem,
                       extra_events=lambda ctx, t: mxm_events(ctx, cfg, dut, dut.unit_base, t),
                       **kw)


def random_program(cfg, rng, cycles, first=4, busy=0.9):
    """Every plane of mxm_w issues a random lw / iw / mm / mmacc almost every cycle
    (random rows, counts, streams, slots; a quarter of the products without output),
    with no two products writing one stream register in one cycle."""
    b = ProgramBuilder(cfg)
    NS, VL, S = cfg.streams, cfg.vl, cfg.superlanes
    taken = set()
    kinds = {}
    for x in range(cfg.mxm_planes):
        for t in range(first, cycles + 3):
            if rng.random() > busy:
                continue
            kind = rng.choice(["lw", "iw", "mm", "mmacc"], p=[0.35, 0.15, 0.25, 0.25])
            src = (int(rng.integers(NS)), W)
            if kind == "lw":
                count = int(rng.integers(1, min(NS, VL) + 1))
                s = int(rng.integers(0, NS - count + 1))
                row = int(rng.integers(0, VL - count + 1))
                b.at(f"mxm_w{x}", t, "lw", row, (s, W), count)
            elif kind == "iw":
                b.at(f"mxm_w{x}", t, "iw")
            else:
                dst = None
                if rng.random() < 0.75:
                    tw = t + S + 2
                    free = [(s, dr) for s in range(NS - 3) for dr in (E, W)
                            if not any((tw, dr, s + j) in taken for j in range(4))]
                    if free:
                        dst = free[rng.integers(len(free))]
                        taken.update((tw, dst[1], dst[0] + j) for j in range(4))
                slot = int(rng.integers(cfg.mxm_acc_slots))
                b.at(f"mxm_w{x}", t, kind, dst, src, slot)
            kinds[kind] = kinds.get(kind, 0) + 1
    assert len(kinds) == 4
    return b, feed(cfg, b, rng, cycles)


@pytest.mark.parametrize("cfg", [
    TINY,
    TINY.replace(superlanes=3, mxm_planes=2),
    TINY.replace(superlanes=4, lanes=2, mxm_planes=2, mxm_acc_slots=4),
    config.load("fpga"),
], ids=["tiny", "3x4-2planes", "4x2-2planes", "fpga"])
def test_random_program(cfg):
    n = 60
    res = run(cfg, *random_program(cfg, np.random.default_rng(cfg.vl * 7 + cfg.superlanes), n))
    assert res.events > 2 * n  # a busy program: more than two events a cycle


def load_rows(b, x, t, row, s, count):
    b.at(f"mxm_w{x}", t, "lw", row, (s, W), count)


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(superlanes=3)], ids=["tiny", "3x4"])
def test_double_buffered_products(cfg):
    """Load W1 with counts 8, 3, 1 (rows across superlanes), install, load W2 into the
    shadow right after the install while products with W1 run, install W2 the cycle
    after a product (that product still uses W1 on every superlane); mm into two slots,
    mmacc back to back on one slot, and an mm without output."""
    rng = np.random.default_rng(11)
    b = ProgramBuilder(cfg)
    VL = cfg.vl
    mem = feed(cfg, b, rng, 40)
    x = 0
    t = 4
    load_rows(b, x, t, VL - 8, 0, 8)  # rows VL-8 .. VL-1
    load_rows(b, x, t + 1, 3, 5, 3)  # rows 3..5: superlanes 0 and 1
    load_rows(b, x, t + 2, VL - 1, 7, 1)
    b.at("mxm_w0", t + 4, "iw")  # lw at t+2 writes the shadow at t+3: included
    load_rows(b, x, t + 5, 1, 2, 6)  # W2 into the shadow while W1 is active
    b.at("mxm_w0", t + 5 + 1, "mm", (0, E), (3, W), 0)
    b.at("mxm_w0", t + 5 + 2, "mm", (4, E), (6, W), 1)
    b.at("mxm_w0", t + 5 + 3, "mmacc", (0, W), (1, W), 1)
    b.at("mxm_w0", t + 5 + 4, "iw")  # the product before it still sees W1
    b.at("mxm_w0", t + 5 + 5, "mmacc", (4, W), (0, W), 1)  # with W2, onto slot 1
    b.at("mxm_w0", t + 5 + 6, "mmacc", None, (2, W), 1)  # no output
    b.at("mxm_w0", t + 5 + 7, "mmacc", (0, E), (2, W), 1)
    b.at("mxm_w0", t + 5 + 8, "lw", VL - 2, (0, W), 2)  # the cycle before iw: not installed
    b.at("mxm_w0", t + 5 + 9, "iw")
    b.at("mxm_w0", t + 5 + 10, "mm", None, (5, W), 0)
    b.at("mxm_w0", t + 5 + 11, "mmacc", (0, E), (5, W), 0)
    res = run(cfg, b, mem)
    assert res.events > 100


def test_empty_read_lw():
    """An lw of two rows from w3, w4 where only w0..w3 are fed: EMPTY_READ in its
    dispatch cycle, superlane 0."""
    cfg = TINY
    b = ProgramBuilder(cfg)
    mem = {"mem_w1": np.zeros((4, cfg.vl), dtype=np.uint8)}
    for c in range(3):
        b.at("mem_w1", c, "read", 0, (0, W), 4)  # w0..w3 at mxm_w from 3 to 5
    b.at("mxm_w0", 3, "lw", 0, (2, W), 2)
    b.at("mxm_w0", 5, "lw", 2, (3, W), 2)  # w4 holds nothing
    run(cfg, b, mem, expect_error=ExpectedError(ErrorCode.EMPTY_READ, 5, 0))


def test_empty_read_mm():
    cfg = TINY.replace(superlanes=3)
    b = ProgramBuilder(cfg)
    mem = {"mem_w1": np.zeros((4, cfg.vl), dtype=np.uint8)}
    b.at("mem_w1", 0, "read", 0, (0, W), 4)  # w0..w3 at mxm_w in cycle 3 only
    b.at("mxm_w0", 3, "mm", (0, E), (1, W), 0)
    b.at("mxm_w0", 4, "mm", (0, W), (1, W), 0)
    run(cfg, b, mem, expect_error=ExpectedError(ErrorCode.EMPTY_READ, 4, 0))


def test_two_writers_two_planes():
    """The products of both planes land on stream e2..e3 in one cycle."""
    cfg = TINY.replace(mxm_planes=2)
    rng = np.random.default_rng(2)
    b = ProgramBuilder(cfg)
    mem = feed(cfg, b, rng, 8)
    b.at("mxm_w0", 4, "mm", (0, E), (0, W), 0)
    b.at("mxm_w1", 4, "mm", (4, E), (1, W), 0)
    b.at("mxm_w0", 5, "mm", (4, W), (0, W), 1)
    b.at("mxm_w1", 5, "mm", (2, W), (1, W), 1)
    S = cfg.superlanes
    run(cfg, b, mem, expect_error=ExpectedError(ErrorCode.TWO_WRITERS, 5 + S + 2, 0))
