"""lpu.hdl.vxm.VxmSlice on Amaranth's simulator against the golden model
(lpu.sim.slice_harness): random programs with every VXM opcode on every ALU, a new
instruction on each queue almost every cycle (results of different delays landing
together), random int32/fp32 operands with fp32 specials, on ``tiny`` and on a chip
with three superlanes; and the two errors the VXM reports.

Simulator builds dominate the runtime (each VxmSlice has ALUs x superlanes x lanes
VxmAlu instances), so each test is one long program and the error tests use two-lane
superlanes.
"""

import numpy as np
import pytest

from lpu import config
from lpu.hdl.interface import ErrorCode
from lpu.hdl.vxm import VxmSlice
from lpu.isa import BY_MNEMONIC, OPS, VXM_OPCODES, E, W
from lpu.program import ProgramBuilder
from lpu.sim.slice_harness import ExpectedError, check_slice

pytestmark = pytest.mark.slice

U32 = np.uint32
TINY = config.load("tiny")

FP_SPECIALS = np.array([
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
    0x00000001, 0x807FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000,
    0x3F000000, 0x3FC00000, 0x4F000000, 0xCF000000, 0x42FF0000, 0xC3008000, 0x00FFFFFF,
], dtype=U32)
INT_SPECIALS = np.array([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 127, 128, 0xFFFFFF80,
                         255, 31, 32], dtype=U32)


def random_words(rng, n, vl):
    """[n, vl] 32-bit lane values: fp32 around 1 with specials, and int32 with specials."""
    sign = rng.integers(0, 2, (n, vl), dtype=U32) << 31
    exp = rng.integers(110, 145, (n, vl), dtype=U32)
    fp = sign | (exp << 23) | rng.integers(0, 1 << 23, (n, vl), dtype=U32)
    ints = rng.integers(0, 1 << 32, (n, vl), dtype=np.uint64).astype(U32)
    small = rng.integers(-200, 200, (n, vl)).astype(np.int32).view(U32)
    pick = rng.integers(0, 5, (n, vl))
    v = np.select([pick == 0, pick == 1, pick == 2, pick == 3],
                  [fp, ints, small, rng.choice(FP_SPECIALS, (n, vl))],
                  rng.choice(INT_SPECIALS, (n, vl))).astype(U32)
    return v


def planes(v):
    """[n, vl] uint32 -> [4n, vl] uint8 MEM words (byte planes, least significant first)."""
    n, vl = v.shape
    return np.ascontiguousarray(v).view(np.uint8).reshape(n, vl, 4).transpose(0, 2, 1) \
        .reshape(4 * n, vl)


FEEDS = (("mem_w0", 0, E), ("mem_w1", 4, E), ("mem_e0", 0, W), ("mem_e1", 4, W))


def feed(cfg, b, rng, cycles, groups=8):
    """Every MEM slice next to the VXM reads a 4-word group onto four streams every cycle
    of 0..cycles-1 (east 0-7 from mem_w0/mem_w1, west 0-7 from mem_e0/mem_e1), so every
    stream is valid at the VXM from cycle 3 to cycles + 1. Returns the SRAM contents."""
    mem = {}
    for name, s, dr in FEEDS:
        mem[name] = planes(random_words(rng, groups, cfg.vl))
        for c in range(cycles):
            b.at(name, c, "read", 4 * (c % groups), (s, dr), 4)
    return mem


def random_program(cfg, rng, repeats, first=3, busy=0.9, directed=()):
    """Issue every VXM opcode `repeats` times on every ALU queue, in random order, from
    cycle `first` on, skipping a cycle now and then; random operand streams, and
    destinations such that no two results hit one stream register in one cycle. The
    MEM slices feed the VXM for as long as it reads. `directed`: instructions
    ``(queue, cycle, mnemonic, *operands)`` placed first (the random ones avoid their
    cycles and destinations)."""
    b = ProgramBuilder(cfg)
    NS = cfg.streams
    taken = set()  # (cycle, dir, stream) written
    last = first
    for q, t, mnemonic, *args in directed:
        b.at(q, t, mnemonic, *args)
        info = BY_MNEMONIC[mnemonic]
        s, dr = args[0]
        taken.update((t + info.d(cfg.superlanes), dr, s + j)
                     for j in range(info.operands[0].width))
        last = max(last, t)
    for q in range(cfg.vxm_alus):
        todo = list(VXM_OPCODES) * repeats
        rng.shuffle(todo)
        t = first
        while todo:
            if rng.random() > busy or b.busy(f"vxm{q}", t):
                t += 1
                continue
            info = OPS[todo[-1]]
            dst = info.operands[0]
            tw = t + info.d(cfg.superlanes)
            free = [(s, dr) for s in range(NS - dst.width + 1) for dr in (E, W)
                    if not any((tw, dr, s + j) in taken for j in range(dst.width))]
            if not free:
                t += 1
                continue
            todo.pop()
            s, dr = free[rng.integers(len(free))]
            taken.update((tw, dr, s + j) for j in range(dst.width))
            args = [(s, dr)]
            for o in info.operands[1:]:
                if o.kind == "sr":
                    args.append((int(rng.integers(0, NS - o.width + 1)), int(rng.integers(2))))
                else:
                    args.append(int(rng.integers(0, 32)))
            b.at(f"vxm{q}", t, info.mnemonic, *args)
            last = max(last, t)
            t += 1
    mem = feed(cfg, b, rng, last)
    return b, mem


def test_random_program_tiny():
    """Both ALUs busy, every opcode on each queue, random streams and delays."""
    cfg = TINY
    b, mem = random_program(cfg, np.random.default_rng(2024), 1, busy=0.95)
    res = check_slice(cfg, b, "vxm", VxmSlice(cfg), mem=mem)
    assert res.events > 400


#: One queue issues ops of delays 4, 3, 2, 1 back to back: all four land at cycle 7 (on
#: different streams) while the other queue writes too.
LAND_TOGETHER = (
    ("vxm0", 3, "cvt.f32.i8", (0, E), (0, E), (4, W)),
    ("vxm0", 4, "fmul", (1, E), (0, W), (4, E)),
    ("vxm0", 5, "mul", (0, W), (2, E), (3, W)),
    ("vxm0", 6, "sub", (4, W), (4, E), (1, W)),
    ("vxm1", 6, "mov", (5, E), (7, W)),
    ("vxm1", 7, "fadd", (4, E), (4, W), (0, E)),
    ("vxm1", 8, "cvt.i8.i32", (0, E), (6, W)),
)


def test_random_program_four_superlanes():
    """Four one-lane superlanes: every opcode on both queues after the directed
    LAND_TOGETHER sequence."""
    cfg = TINY.replace(superlanes=4, lanes=1)
    b, mem = random_program(cfg, np.random.default_rng(77), 1, first=9, busy=1.0,
                            directed=LAND_TOGETHER)
    res = check_slice(cfg, b, "vxm", VxmSlice(cfg), mem=mem)
    assert res.events > 400


def test_empty_read():
    """An ALU reads a group whose upper two streams nobody wrote: EMPTY_READ on
    superlane 0 in its dispatch cycle (superlane 1 a cycle later)."""
    cfg = TINY.replace(lanes=2, vxm_alus=1)
    b = ProgramBuilder(cfg)
    rng = np.random.default_rng(3)
    mem = {"mem_w0": planes(random_words(rng, 1, cfg.vl))}
    for c in range(4):
        b.at("mem_w0", c, "read", 0, (0, E), 4)  # east 0-3 valid at the VXM from 2 to 5
    b.at("vxm0", 2, "add", (0, W), (0, E), (0, E))
    b.at("vxm0", 4, "fmul", (0, E), (0, E), (2, E))  # streams 4, 5 hold nothing
    check_slice(cfg, b, "vxm", VxmSlice(cfg), mem=mem,
                expect_error=ExpectedError(ErrorCode.EMPTY_READ, 4, 0))


def test_two_writers_one_alu():
    """One ALU's fadd (delay 3) and add (delay 1) land together and share stream e3."""
    cfg = TINY.replace(lanes=2, vxm_alus=1)
    rng = np.random.default_rng(4)
    b = ProgramBuilder(cfg)
    mem = feed(cfg, b, rng, 8)
    b.at("vxm0", 3, "and", (4, W), (0, E), (0, W))
    b.at("vxm0", 4, "fadd", (0, E), (0, E), (0, W))
    b.at("vxm0", 6, "add", (3, E), (4, E), (4, W))  # e3..e6 at 7; fadd writes e0..e3 at 7
    check_slice(cfg, b, "vxm", VxmSlice(cfg), mem=mem,
                expect_error=ExpectedError(ErrorCode.TWO_WRITERS, 7, 0))
