"""lpu.hdl.sxm.SxmSlice on Amaranth's simulator, cycle by cycle against the golden model
(lpu.sim.slice_harness): shift, rot, bcast, perm on 1-4 streams, back to back and
repeated, transpose, and the dynamic errors, on tiny and on a taller config.

Positions: sxm_w = 1, mem_w1 = 2, mem_w0 = 3; mem_e1 = 6, sxm_e = 7. A value read at t
by mem_w1 (mem_w0) on a west stream arrives at sxm_w at t + 2 (t + 3); a value read by
mem_e1 on an east stream arrives at sxm_e at t + 2.
"""

import numpy as np
import pytest

from lpu import config
from lpu.hdl.interface import ErrorCode
from lpu.hdl.sxm import SxmSlice
from lpu.isa import E, W
from lpu.program import ProgramBuilder
from lpu.sim.slice_harness import ExpectedError, check_slice

pytestmark = pytest.mark.slice

TINY = config.load("tiny")
TALL = TINY.replace(superlanes=3, name="tiny3")
CONFIGS = [pytest.param(TINY, id="tiny"), pytest.param(TALL, id="tiny-s3")]


def run(cfg, b, mem, position, expect=None):
    return check_slice(cfg, b, position, SxmSlice(cfg), mem=mem, expect_error=expect)


def image(cfg, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(64, cfg.vl), dtype=np.uint8)


def map_words(values):
    """A perm map (uint16 per lane) as its two byte planes."""
    v = np.asarray(values, dtype=np.uint16)
    return np.stack([v & 0xFF, v >> 8]).astype(np.uint8)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_op_back_to_back_west(cfg):
    VL = cfg.vl
    rng = np.random.default_rng(1)
    src = image(cfg, 2)
    maps = np.zeros((4, VL), dtype=np.uint8)
    maps[0:2] = map_words(rng.integers(0, VL, size=VL))
    maps[2:4] = map_words(rng.permutation(VL))
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, W), 4)
    b.at("sxm_w", 2, "shift", (0, E), (0, W), 3, 4)
    b.at("mem_w1", 1, "read", 4, (0, W), 2)
    b.at("sxm_w", 3, "shift", (2, W), (0, W), -5, 2)
    b.at("mem_w1", 2, "read", 8, (1, W))
    b.at("sxm_w", 4, "rot", (5, E), (1, W), VL - 1)
    b.at("mem_w1", 3, "read", 9, (0, W), 3)
    b.at("sxm_w", 5, "rot", (4, W), (0, W), -2, 3)
    b.at("mem_w1", 4, "read", 12, (2, W))
    b.at("sxm_w", 6, "bcast", (7, E), (2, W), VL - 1)
    b.at("mem_w1", 5, "read", 13, (0, W), 4)
    b.at("mem_w0", 4, "read", 0, (4, W), 2)  # the map, on w4 w5
    b.at("sxm_w", 7, "perm", (0, W), (0, W), (4, W), 4)
    b.at("mem_w1", 6, "read", 17, (1, W))
    b.at("mem_w1", 7, "repeat", 2, 1)  # 18, 19 arrive at 9, 10
    b.at("sxm_w", 8, "shift", (3, E), (1, W), -VL + 1)
    b.at("sxm_w", 9, "repeat", 2, 1)
    b.at("mem_w1", 9, "read", 30, (0, W))
    b.at("mem_w0", 8, "read", 2, (6, W), 2)
    b.at("sxm_w", 11, "perm", (6, E), (0, W), (6, W))
    b.at("mem_w1", 10, "read", 31, (2, W), 2)
    b.at("sxm_w", 12, "bcast", (0, E), (2, W), 0, 2)
    res = run(cfg, b, {"mem_w1": src, "mem_w0": maps}, "sxm_w")
    assert res.events >= 20 * cfg.superlanes


def test_east_side():
    cfg = TALL
    VL = cfg.vl
    maps = map_words(np.random.default_rng(3).integers(0, VL, size=VL))
    b = ProgramBuilder(cfg)
    b.at("mem_e1", 0, "read", 0, (0, E), 4)
    b.at("sxm_e", 2, "rot", (0, W), (0, E), 5, 4)
    b.at("mem_e1", 1, "read", 4, (4, E), 2)
    b.at("mem_e0", 0, "read", 0, (6, E), 2)  # the map, on e6 e7
    b.at("sxm_e", 3, "perm", (1, E), (4, E), (6, E), 2)
    b.at("mem_e1", 2, "read", 6, (0, E))
    b.at("sxm_e", 4, "bcast", (7, W), (0, E), 3)
    b.at("sxm_e", 5, "repeat", 1, 1)  # no step: the same bcast, on the next value
    b.at("mem_e1", 3, "read", 7, (0, E))
    run(cfg, b, {"mem_e1": image(cfg, 4), "mem_e0": {0: maps}}, "sxm_e")


def test_transpose():
    cfg = TINY  # VL = streams = 8
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 1, "read", 0, (0, W), 4)
    b.at("mem_w0", 0, "read", 4, (4, W), 4)
    b.at("sxm_w", 3, "transpose", (0, E), (0, W))
    b.at("mem_w1", 2, "read", 8, (0, W), 4)
    b.at("mem_w0", 1, "read", 12, (4, W), 4)
    b.at("sxm_w", 4, "transpose", (0, W), (0, W))
    b.at("mem_w1", 3, "read", 16, (0, W))
    b.at("sxm_w", 5, "rot", (0, E), (0, W), 1)  # the next cycle: out beside the transpose
    run(cfg, b, {"mem_w1": image(cfg, 5), "mem_w0": image(cfg, 6)}, "sxm_w")


# -- dynamic errors -------------------------------------------------------------------------


def empty_source(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, W), 2)
    b.at("sxm_w", 2, "shift", (0, E), (0, W), 1, 3)  # w2 holds nothing
    return b, {}, ExpectedError(ErrorCode.EMPTY_READ, 2, 0)


def empty_map(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, W), 2)
    b.at("sxm_w", 2, "perm", (0, E), (0, W), (1, W))  # map on w1 w2: w2 holds nothing
    return b, {}, ExpectedError(ErrorCode.EMPTY_READ, 2, 0)


def perm_range(cfg):
    values = np.zeros(cfg.vl, dtype=np.int64)
    values[-1] = 256  # high byte set: not below VL; the last superlane reports it
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, W), 3)
    b.at("sxm_w", 2, "perm", (0, E), (0, W), (1, W))
    k = cfg.superlanes - 1
    return b, {"mem_w1": {1: map_words(values)}}, ExpectedError(ErrorCode.RANGE, 2 + k, k)


@pytest.mark.parametrize("case", [empty_source, empty_map, perm_range])
def test_dynamic_error(case):
    cfg = TALL if case is perm_range else TINY
    b, mem, expect = case(cfg)
    run(cfg, b, mem, "sxm_w", expect=expect)
