"""lpu.hdl.vxm.VxmSlice on Amaranth's simulator against the golden model
(lpu.sim.slice_harness): random programs with every VXM opcode on every ALU, a new
instruction on each queue almost every cycle (results of different delays landing
together), random int32/fp32 operands with fp32 specials, on ``tiny`` and on a chip
with three superlanes; and the two errors the VXM reports. ISA 1.1 held reads: a
directed chain and every opcode with held flags, each flag set, on ``tiny`` and on three
superlanes with ten streams and three ALUs; and held reads that are EMPTY_READ (never
written, read in the write cycle, one plane of a group missing) at the golden model's
error cycle.

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
from lpu.sim.slice_harness import ExpectedError, check_slice, golden_slice

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


# -- held reads (ISA 1.1) -------------------------------------------------------------------

#: the streams the MEM slices feed in each direction (FEEDS: 0-7)
FED = 8


def _held_combos(info):
    """The held-flag settings to issue `info` with: each flag alone and all together."""
    flags = info.held_flags
    combos = [{f: 1} for f in flags]
    if len(flags) > 1:
        combos.append(dict.fromkeys(flags, 1))
    return combos


def held_program(cfg, rng, first=3, busy=0.9, directed=None):
    """Held reads on every ALU queue, from the golden model's point of view legal:

    * from cycle `first` on, the ALUs write every stream register of both directions
      (``mov32`` per group of four, ``mov`` for the rest, from random arriving
      streams), so that from cycle ``t0`` (returned) every held value exists;
    * then ``directed(t0)``: instructions ``(queue, cycle, mnemonic, operands, flags)``,
      issued as given (the random ones come after the last of them);
    * then every VXM opcode that has held flags, on every queue, once per setting of
      :func:`_held_combos`, in random order, with random operand streams (a held
      operand among all streams, an arriving one among the FED streams the MEM slices
      feed) and destinations such that no two results hit one stream register in one
      cycle.

    Returns the builder, the SRAM contents, ``t0`` and the number of held reads."""
    b = ProgramBuilder(cfg)
    NS, Q, S = cfg.streams, cfg.vxm_alus, cfg.superlanes
    taken = set()  # (cycle, dir, stream) written
    last = first
    n_held = 0

    def issue(q, t, mnemonic, args, flags):
        nonlocal last, n_held
        info = BY_MNEMONIC[mnemonic]
        b.at(q, t, mnemonic, *args, **flags)
        s, dr = args[0]
        tw = t + info.d(S)
        taken.update((tw, dr, s + j) for j in range(info.operands[0].width))
        last = max(last, t)
        n_held += sum(flags.values())
        return tw

    # every stream register written once (held values from here on)
    targets = [(s, dr, 4) for dr in (E, W) for s in range(0, NS - 3, 4)]
    targets += [(s, dr, 1) for dr in (E, W) for s in range(NS - NS % 4, NS)]
    t0 = first
    for i, (s, dr, w) in enumerate(targets):
        t = first + i // Q
        src = (int(rng.integers(0, FED - w + 1)), int(rng.integers(2)))
        t0 = max(t0, issue(f"vxm{i % Q}", t, "mov32" if w == 4 else "mov", [(s, dr), src],
                           {}) + 1)
    t = t0
    for q, tq, mnemonic, args, flags in (directed(t0) if directed else ()):
        issue(q, tq, mnemonic, args, flags)
        t = max(t, tq + 1)
    start = t
    for q in range(Q):
        todo = [(op, combo) for op in VXM_OPCODES for combo in _held_combos(OPS[op])]
        rng.shuffle(todo)
        t = start
        while todo:
            if rng.random() > busy or b.busy(f"vxm{q}", t):
                t += 1
                continue
            op, combo = todo[-1]
            info = OPS[op]
            dst = info.operands[0]
            tw = t + info.d(S)
            free = [(s, dr) for s in range(NS - dst.width + 1) for dr in (E, W)
                    if not any((tw, dr, s + j) in taken for j in range(dst.width))]
            if not free:
                t += 1
                continue
            todo.pop()
            args = [free[rng.integers(len(free))]]
            for o in info.operands[1:]:
                if o.kind == "sr":
                    top = (NS if combo.get(o.held) else FED) - o.width + 1
                    args.append((int(rng.integers(0, top)), int(rng.integers(2))))
                else:
                    args.append(int(rng.integers(0, 32)))
            issue(f"vxm{q}", t, info.mnemonic, args, combo)
            t += 1
    mem = feed(cfg, b, rng, last)
    return b, mem, t0, n_held


def held_chain(t):
    """Directed held reads from cycle `t` on (every held value exists), on vxm0 and
    vxm1 and streams 0-7, each read one cycle after the write it needs:

    * fmul on vxm0 -> fadd on vxm1 (a held) -> mul on vxm0 (a held: vxm1's result; b
      held: vxm0's own older one), a chain across ALUs without the arriving streams;
    * a ``mov`` into e5 after the mul wrote e4..e7: a held e4..e7 then has plane 1 from
      the mov and planes 0, 2, 3 from the mul (sub, in the cycle right after the mov);
    * int8 held reads: ``mov`` of that held e5, ``cvt.i8.i32`` of the mov's result, and a
      ``cvt.i32.i8`` of the cvt's result.
    """
    return [
        ("vxm0", t, "fmul", [(0, E), (0, W), (4, E)], {"lb": 1}),        # e0..e3 at t+3
        ("vxm1", t + 4, "fadd", [(4, W), (0, E), (0, W)], {"la": 1}),    # w4..w7 at t+7
        ("vxm0", t + 8, "mul", [(4, E), (4, W), (0, E)], {"la": 1, "lb": 1}),  # e4.. t+10
        ("vxm1", t + 10, "mov", [(5, E), (2, W)], {}),                   # e5 at t+11
        ("vxm0", t + 12, "sub", [(4, W), (4, E), (4, E)], {"la": 1}),    # w4..w7 at t+13
        ("vxm1", t + 12, "mov", [(3, W), (5, E)], {"la": 1}),            # w3 at t+13
        ("vxm0", t + 14, "cvt.i8.i32", [(0, E), (3, W)], {"la": 1}),     # e0..e3 at t+15
        ("vxm1", t + 16, "cvt.i32.i8", [(7, W), (0, E)], {"la": 1}),     # w7 at t+17
    ]


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(superlanes=3, lanes=2, streams=10,
                                                    vxm_alus=3)],
                         ids=["tiny", "3sl-10streams-3alus"])
def test_held_reads(cfg):
    """The directed chain of held reads, then every opcode with held flags on every
    ALU with each flag set (alone and together), dense and random (held groups from
    results of any ALU and delay, planes of different writes, a read one cycle after
    the write); on ``tiny``, and on three two-lane superlanes with ten streams (held
    reads of streams 8 and 9, which never arrive at the VXM) and three ALUs."""
    b, mem, t0, n_held = held_program(cfg, np.random.default_rng(1101), directed=held_chain)
    ins = [i for q in range(cfg.vxm_alus) for i in b.instrs().get(f"vxm{q}", [])]
    for op in VXM_OPCODES:
        for flag in OPS[op].held_flags:
            assert any(i.op == op and i.args[flag] for i in ins), (op, flag)
    res = check_slice(cfg, b, "vxm", VxmSlice(cfg), mem=mem)
    assert n_held > 100 * cfg.vxm_alus and res.events > 400


def _held_error(cfg, b, mem, t, superlane=0):
    """The program's first illegal event is an EMPTY_READ of a held read dispatched in
    cycle `t`: the golden model raises rule empty-read at (skewed) cycle t, the HDL
    slice EMPTY_READ on superlane 0 in real cycle t."""
    g = golden_slice(cfg, b, "vxm", mem, expect_error=True)
    assert g.error.rule == "empty-read" and g.error.cycle == t, g.error
    assert "held value" in str(g.error)
    res = check_slice(cfg, b, "vxm", VxmSlice(cfg), mem=mem,
                      expect_error=ExpectedError(ErrorCode.EMPTY_READ, t, superlane))
    assert res.error == (t, ErrorCode.EMPTY_READ, superlane)


def test_held_read_of_a_stream_never_written():
    """vxm0 writes e4..e7; a held read of w0..w3 (never written) is EMPTY_READ in its
    dispatch cycle, although w0..w3 arrive at the VXM in that cycle."""
    cfg = TINY.replace(lanes=2, vxm_alus=1)
    b = ProgramBuilder(cfg)
    mem = feed(cfg, b, np.random.default_rng(5), 8)
    b.at("vxm0", 3, "add", (4, E), (0, E), (0, W))
    b.at("vxm0", 5, "fadd", (0, E), (4, E), (0, W), la=1)  # legal: e4..e7 held
    b.at("vxm0", 7, "fadd", (0, W), (4, E), (0, W), la=1, lb=1)  # w0..w3 never written
    _held_error(cfg, b, mem, 7)


def test_held_read_in_the_write_cycle():
    """A held read in the cycle of the write it wants (one cycle too early) is
    EMPTY_READ, on the other ALU too (its own int8 read of one stream)."""
    cfg = TINY.replace(lanes=2)
    b = ProgramBuilder(cfg)
    mem = feed(cfg, b, np.random.default_rng(6), 8)
    b.at("vxm0", 3, "add", (4, E), (0, E), (0, W))  # e4..e7 written at 4
    b.at("vxm1", 4, "mov", (0, W), (6, E), la=1)
    _held_error(cfg, b, mem, 4)


def test_held_group_with_one_plane_never_written():
    """Three superlanes: streams w4, w5, w6 written by movs, w7 never; a 32-bit held read
    of w4..w7 as b is EMPTY_READ (superlane 0 first)."""
    cfg = TINY.replace(superlanes=3, lanes=2)
    b = ProgramBuilder(cfg)
    mem = feed(cfg, b, np.random.default_rng(7), 10)
    for i, s in enumerate((4, 5, 6)):
        b.at(f"vxm{i % 2}", 3 + i // 2, "mov", (s, W), (i, E))
    b.at("vxm1", 6, "mov32", (0, E), (4, W), la=1)  # legal: the three are held
    b.at("vxm0", 6, "cvt.f32.i8", (0, W), (0, W), (4, W), lb=1)
    _held_error(cfg, b, mem, 6)
