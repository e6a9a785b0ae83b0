"""Directed programs: every opcode, with its edge values, in a few programs any backend runs.

Each :class:`Directed` is a program for one chip config, the SRAM it starts from and the
SRAM words it must leave behind. Together, :func:`directed_programs` covers every
mnemonic of :data:`lpu.isa.OPS` (:func:`opcodes_of` says which a program contains, read
from its instruction words). The same programs run

* on the golden model, where :meth:`Directed.check` compares SRAM with the expected
  words (``tests/chip/test_directed.py``);
* in lockstep on the RTL: ``lockstep(cfg, d.program, d.mem_init, backend)``
  (:mod:`lpu.sim.lockstep`), or from files written by ``--write``::

      lpu directed --config tiny --list
      lpu directed --config tiny --write out/
      lpu sim out/vxm_fp.s --mem-in out/vxm_fp.npz --config tiny --backend amaranth

The programs, and what they pin down:

``mem``
    ``read`` and ``write`` of 1 to 4 words on east and west streams starting at
    different streams, ``repeat`` with positive and negative steps and ``d`` of 1 and
    2, ``gather`` from both banks (east and west results, a repeated gather), and
    ``sync`` / ``notify``: two queues parked before the ``notify``, one reaching its
    ``sync`` in the ``notify``'s cycle, one parked after it (released only by a
    later ``notify``); every resumed queue moves data whose timing proves the cycle
    it resumed in.
``vxm_int``
    every int32 operation on int32 extremes, shift amounts of 0, 31, 32, 33 and
    negative, ``sel`` with conditions set in any one byte.
``vxm_fp``
    every fp32 operation, conversion and move on +-0, +-inf, quiet, signalling and
    negative NaNs, subnormal inputs (read as zero) and results (flushed, after
    rounding: one product rounds up to the smallest normal), overflow by rounding,
    ties to even, saturating conversions.
``vxm_held``
    VXM operations chained through held reads (ISA 1.1, ``veN`` / ``vwN``): every
    VXM opcode with ``la`` and every one with a ``b`` (or ``scale``) with ``lb``,
    each reading the result of the operation before (often in the very next cycle)
    or the one before that, the ALUs reading each other's results; 32-bit held
    operands whose byte planes come from different writes (a ``mov`` into one plane,
    a ``cvt.i32.i8`` over the low plane), int8 held reads (``mov``, ``cvt.i8.i32``)
    of one-stream results and of one plane of a 32-bit result. Every result is also
    stored by a MEM slice.
``mxm``
    ``lw`` of 1, 3 and 4 rows (with ``repeat``), ``iw`` at the first cycle that sees
    the last row and once a cycle too early (the row loaded just before is not
    installed), double buffering, ``mm`` with and without a result stream,
    ``mmacc`` on both accumulator slots, both planes; ``lwi`` (ISA 1.2) with an
    ``mm`` in its install cycle (old weights) and the next (new), and two ``lwi`` a
    cycle apart (the first installs without the rows the second loads).
``sxm``
    ``shift``, ``rot`` (both signs, across superlanes, up to VL-1), ``bcast`` (first
    and last lane), ``perm`` (a reversal and a map with repeats), ``count`` 1 to 4,
    and ``transpose``, on both SXM slices.
``chain``
    slices feeding each other directly: MEM -> SXM ``rot`` -> MXM ``mm`` -> VXM
    ``cvt.i32.f32`` -> SXM ``rot`` of four streams -> VXM ``cvt.f32.i8`` -> MXM ``mm``
    -> VXM ``add`` -> MEM, twice, one cycle apart; a MEM slice on the way stores every
    intermediate value too.

Timing: the VXM operations are placed by a small list scheduler over a
:class:`~lpu.sim.programs.placer.Plan`: an operation is put at the first cycle where
its operand reads, its ALU, its result streams and the MEM slice that stores the
result are free, trying every route, so both ALUs work most cycles and results of
different delays interleave. In ``vxm_held`` an operation reading a held value is put
at the first cycle after the write(s) it reads, preferably on the other ALU; the
plan keeps the streams it reads from being written by the VXM in between, and its
value (the expected words follow it plane by plane) is the VXM's last write to each
stream, as the plan tracks. Other programs are placed by hand with the same
bookkeeping, which refuses a collision (two values on one stream register, two
instructions in one queue cycle) before the static checker
(:func:`lpu.golden.check.check`) checks the whole program again.

Expected values come from :mod:`lpu.sim.programs.reference`, independently of
:mod:`lpu.golden` (fp32 in float64, then rounded to binary32, which is exact for
``+ - *`` since 53 >= 2 * 24 + 2; subnormal inputs read as zero and results flushed to
zero after rounding, NaN results canonical, as ``docs/numerics.md`` says).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.isa import BY_MNEMONIC, E, W
from lpu.program import Program
from lpu.vectors import from_planes, to_planes

from .placer import Directed, DirectedError, Expect, Plan, Txn, all_mnemonics, opcodes_of
from .reference import M32, reference

__all__ = ["Directed", "Expect", "DirectedError", "directed_programs", "opcodes_of",
           "all_mnemonics", "PROGRAM_NAMES"]



# -- data helpers -----------------------------------------------------------------------------


def _u32(values) -> np.ndarray:
    return np.array([v & M32 for v in values], dtype=np.uint32)


def _f(*xs) -> list[int]:
    """float values -> their binary32 bits."""
    return [int(v) for v in np.array(xs, dtype=np.float32).view(np.uint32)]


def _vectors(columns: list[list[int]], vl: int, dtype=np.uint32) -> list[tuple[np.ndarray, ...]]:
    """Lane-value columns (one list per operand, equal length) cut into vectors of `vl`
    lanes; the last vector is filled up with the first lanes again."""
    n = len(columns[0])
    count = -(-n // vl)
    out = []
    for k in range(count):
        idx = [(k * vl + i) % n for i in range(vl)]
        out.append(tuple(np.array([c[i] & (M32 if dtype == np.uint32 else 0xFF)
                                   for i in idx], dtype=dtype) for c in columns))
    return out


# fp32 bits by name
PZ, NZ = 0x00000000, 0x80000000
PINF, NINF = 0x7F800000, 0xFF800000
QNAN, NQNAN, SNAN, PNAN = 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA5A5A5
SUB_MIN, SUB_MAX, NSUB_MIN, NSUB_MAX = 0x00000001, 0x007FFFFF, 0x80000001, 0x807FFFFF
MIN_N, NMIN_N, MAX_F, NMAX_F = 0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF
IMIN, IMAX = -(1 << 31), (1 << 31) - 1

#: (a, b) fp32 pairs for every binary fp32 operation and compare.
FP_PAIRS: list[tuple[int, int]] = [
    (*_f(1.0), *_f(2.0)), (*_f(-2.75), *_f(1e-3)), (*_f(3.0), *_f(-3.0)), (*_f(2.0), *_f(2.0)),
    (PZ, NZ), (NZ, NZ), (NZ, PZ), (*_f(-1.5), PZ),
    (PINF, NINF), (PINF, PINF), (NINF, *_f(1.0)), (PINF, PZ),
    (QNAN, *_f(1.0)), (*_f(1.0), SNAN), (NQNAN, PNAN), (PNAN, PINF),
    (SUB_MIN, *_f(1.0)),  # subnormal input read as zero
    (SUB_MAX, SUB_MAX),  # +0 + +0
    (NSUB_MAX, PZ),  # -0 vs +0: fmin -0, fmax +0, feq true
    (NSUB_MIN, SUB_MIN),  # -0 vs +0 the other way round
    (MAX_F, MAX_F),  # overflow to inf
    (MAX_F, 0x73000000),  # MAX + half an ulp: a tie that rounds up to inf
    (0x00C00000, MIN_N),  # 1.5 * 2^-126 -/+ 2^-126: fsub gives a subnormal, flushed
    (0x00FFFFFF, *_f(0.5)),  # fmul: 2^-126 - 2^-150, a tie that rounds to the smallest normal
    (0x00FFFFFE, *_f(0.5)),  # fmul: exactly subnormal, flushed to +0
    (0x80FFFFFE, *_f(0.5)),  # ... to -0
    (*_f(1.0), 0x33800000),  # 1 + 2^-24: tie to even, 1.0
    (0x3F800001, 0x33800000),  # (1 + 2^-23) + 2^-24: tie to even, up
    (MIN_N, NMIN_N), (NMAX_F, *_f(-1e30)), (*_f(1e30), *_f(1e10)), (*_f(-0.0), SUB_MIN),
]

#: int32 pairs for every binary int32 operation.
INT_PAIRS: list[tuple[int, int]] = [
    (0, 0), (1, -1), (IMAX, 1), (IMIN, -1), (IMIN, IMAX), (-1, -1), (0x12345678, 0x0F0F0F0F),
    (-7, 3), (5, 5), (IMIN, IMIN), (IMAX, IMAX), (0x55555555, -0x55555556), (-2, 0x10000),
    (65535, 65537), (46341, 46341), (-100000, 30000),
]

#: (value, shift amount) pairs: only amount & 31 counts.
SHIFT_PAIRS: list[tuple[int, int]] = [
    (0x80000001, 0), (0x12345678, 1), (-1, 31), (1, 32), (IMIN, 33), (IMAX, -1),
    (-12345, 0x7FFFFFE4), (0xF0F0F0F0, 16), (IMIN, 8), (0x00ABCDEF, 63), (-2, 5),
    (0x40000000, 30), (3, 2), (0x7F00FF00, 0x100), (-256, 7), (0x0000FFFF, 12),
]

SHIFT_IMM = (0, 1, 13, 31)

#: (a, b, c) for sel: c non-zero in any one byte selects a.
SEL_TRIPLES: list[tuple[int, int, int]] = [
    (1, 2, 0), (3, 4, 1), (5, 6, -1), (7, 8, IMIN), (IMAX, IMIN, 0x100), (-9, 10, 0x01000000),
    (11, -12, 0x00010000), (13, 14, 0), (0x7FC00000, 0xFFC00000, 0x80), (-1, 0, 0),
    (0, -1, 2), (IMIN, IMAX, 0),
]

CVT_F32_I32 = [
    *_f(0.5, 1.5, 2.5, -2.5, -0.5, 0.0, -0.0), SUB_MIN, 0x4F000000, 0xCF000000, 0xCF000001,
    0x4EFFFFFF, PINF, NINF, QNAN, NQNAN, *_f(123.75, -7.5), MAX_F, *_f(1e-3), NSUB_MAX,
    *_f(-2147483520.0),
]
CVT_I32_F32 = [IMAX, IMIN, 16777217, 16777219, -16777217, 0, -1, 1, 0x7FFFFFC0, 33554435,
               12345, -100, 0x7FFFFF40, -33554435]
CVT_F32_I8 = [  # (a, scale)
    (*_f(1.0), *_f(2.0)), (*_f(63.75), *_f(2.0)), (*_f(63.25), *_f(2.0)),
    (*_f(-64.25), *_f(2.0)), (*_f(-64.5), *_f(2.0)), (*_f(0.25), *_f(2.0)),
    (*_f(0.75), *_f(2.0)), (*_f(-0.25), *_f(2.0)), (QNAN, *_f(1.0)), (*_f(1.0), QNAN),
    (PINF, *_f(1.0)), (NINF, *_f(1.0)), (MAX_F, *_f(2.0)), (SUB_MAX, 0x71800000),
    (*_f(3.0), *_f(-1.0)), (PINF, PZ),
]
CVT_I32_I8 = [IMAX, IMIN, 127, 128, -128, -129, 0, -1, 255, -255, 256, 0x80, 0x7F7F, IMIN + 1]
CVT_I8_I32 = [0, 1, 0x7F, 0x80, 0x81, 0xFF, 0xFE, 0x40]


# -- VXM: the list scheduler ------------------------------------------------------------------


@dataclass
class _VxmOp:
    mnemonic: str
    operands: tuple[np.ndarray, ...]  # [VL] uint32 per 4-stream operand, uint8 per 1-stream
    imm: int | None = None
    kind: str = "i32"  # how to show operands and result in messages
    result_kind: str | None = None


#: (MEM slice, streams) that feed the VXM: the nearest two slices on each side.
_VXM_SRCS = [("mem_w0", (0, E)), ("mem_e0", (0, W)), ("mem_w1", (4, E)), ("mem_e1", (4, W))]

#: (result streams, the MEM slice that stores them), in the order tried.
_VXM_DSTS = [((4, E), "mem_e1"), ((4, W), "mem_w1"), ((0, E), "mem_e0"), ((0, W), "mem_w0"),
             ((0, E), "mem_e1"), ((0, W), "mem_w1"), ((4, E), "mem_e0"), ((4, W), "mem_w0")]


def _place_vxm(plan: Plan, op: _VxmOp, lo: int) -> int:
    """Put `op` at the first cycle >= lo where some route is free; returns that cycle."""
    info = BY_MNEMONIC[op.mnemonic]
    reads = info.reads
    want = reference(op.mnemonic, *op.operands, imm=op.imm)
    vxm = [q.name for q in plan.cfg.queues if q.kind == "vxm"]
    for t in itertools.count(lo):
        if t > lo + 64:
            raise DirectedError(f"directed program {plan.name!r}: no room for "
                                f"{op.mnemonic} after cycle {lo}")
        for alu in vxm:
            if (alu, t) in plan.busy:
                continue
            for route in itertools.permutations(_VXM_SRCS, len(reads)):
                for dst, keeper in _VXM_DSTS:
                    tx = _vxm_txn(plan, op, info, want, t, alu, route, dst, keeper)
                    if tx.problem is None:
                        tx.commit()
                        return t
    raise AssertionError("unreachable")


def _vxm_txn(plan, op, info, want, t, alu, route, dst, keeper) -> Txn:
    tx = plan.txn()
    args = []
    names = []
    for o, val, (src, ref) in zip(info.reads, op.operands, route, strict=True):
        words = to_planes(val) if o.width == 4 else np.asarray(val, np.uint8)[None, :]
        addr = tx.put(src, words)
        dist = abs(plan.pos["vxm"] - plan.pos[src])
        tx.send(src, t - 1 - dist, addr, ref, o.width, "vxm")
        args.append(ref)
        names.append(o.name)
        if tx.problem:
            return tx
    ops = [dst if o.name == "dst" else args[names.index(o.name)] if o.kind == "sr" else op.imm
           for o in info.operands]
    ins = tx.at(alu, t, op.mnemonic, *ops)
    wd = info.operands[0].width
    t_res = t + info.d(plan.cfg.superlanes)
    t_keep = tx.flow("vxm", dst, wd, t_res, keeper)
    out = tx.take(keeper, wd, 1)
    tx.at(keeper, t_keep, "write", out, dst, wd)
    rk = op.result_kind or op.kind
    if wd == 4:
        tx.expect(keeper, out, to_planes(want), f"'{ins.text()}' ({alu}, cycle {t})", rk,
                  {n: (op.kind if o.width == 4 else "i8", v)
                   for n, o, v in zip(names, info.reads, op.operands, strict=True)})
    else:
        tx.expect(keeper, out, want[None, :], f"'{ins.text()}' ({alu}, cycle {t})", rk,
                  {n: (op.kind if o.width == 4 else "i8", v)
                   for n, o, v in zip(names, info.reads, op.operands, strict=True)})
    return tx


def _vxm_program(cfg: ChipConfig, name: str, doc: str, ops: list[_VxmOp]) -> Directed:
    plan = Plan(cfg, name, doc)
    t = 4  # the farthest operand source reads at t - 3
    for op in ops:
        t = _place_vxm(plan, op, t)
    return plan.build()


def _vxm_int(cfg: ChipConfig) -> Directed:
    vl = cfg.vl
    ops: list[_VxmOp] = []
    pairs = _vectors([[a for a, _ in INT_PAIRS], [b for _, b in INT_PAIRS]], vl)
    for m in ("add", "sub", "mul", "min", "max", "and", "or", "xor", "eq", "lt", "le"):
        ops += [_VxmOp(m, (a, b)) for a, b in pairs]
    for m in ("shl", "shr", "sra"):
        ops += [_VxmOp(m, v) for v in _vectors([[a for a, _ in SHIFT_PAIRS],
                                                [b for _, b in SHIFT_PAIRS]], vl)]
    shv = _vectors([[a for a, _ in SHIFT_PAIRS]], vl)[0][0]
    for imm in SHIFT_IMM:
        ops += [_VxmOp(m, (shv,), imm=imm) for m in ("shli", "shri", "srai")]
    ops += [_VxmOp("sel", v) for v in _vectors([list(c) for c in zip(*SEL_TRIPLES,
                                                                     strict=True)], vl)]
    return _vxm_program(cfg, "vxm_int", "every int32 VXM operation on int32 extremes", ops)


def _vxm_fp(cfg: ChipConfig) -> Directed:
    vl = cfg.vl
    ops: list[_VxmOp] = []
    pairs = _vectors([[a for a, _ in FP_PAIRS], [b for _, b in FP_PAIRS]], vl)
    for m in ("fadd", "fsub", "fmul", "fmin", "fmax"):
        ops += [_VxmOp(m, (a, b), kind="f32") for a, b in pairs]
    for m in ("feq", "flt", "fle"):
        ops += [_VxmOp(m, (a, b), kind="f32", result_kind="i32") for a, b in pairs]
    for m in ("fneg", "fabs"):
        ops += [_VxmOp(m, (v,), kind="f32") for a, b in pairs for v in (a, b)]
    ops += [_VxmOp("mov32", (a,), kind="f32") for a, _ in pairs]
    ops += [_VxmOp("cvt.f32.i32", v, kind="f32", result_kind="i32")
            for v in _vectors([CVT_F32_I32], vl)]
    ops += [_VxmOp("cvt.i32.f32", v, kind="i32", result_kind="f32")
            for v in _vectors([CVT_I32_F32], vl)]
    ops += [_VxmOp("cvt.f32.i8", v, kind="f32", result_kind="i8")
            for v in _vectors([[a for a, _ in CVT_F32_I8], [s for _, s in CVT_F32_I8]], vl)]
    ops += [_VxmOp("cvt.i32.i8", v, kind="i32", result_kind="i8")
            for v in _vectors([CVT_I32_I8], vl)]
    ops += [_VxmOp("cvt.i8.i32", v, kind="i8", result_kind="i32")
            for v in _vectors([CVT_I8_I32], vl, np.uint8)]
    raw = np.random.default_rng(1).integers(0, 256, vl, dtype=np.uint8)
    ops.append(_VxmOp("mov", (raw,), kind="u8", result_kind="u8"))
    return _vxm_program(cfg, "vxm_fp",
                        "every fp32 VXM operation, conversion and move on fp32 specials", ops)


# -- VXM chaining through held reads (ISA 1.1) ---------------------------------------------------


@dataclass
class _HStep:
    """One operation of ``vxm_held``. ``srcs``: operand name -> ``("m", values)`` (sent
    from a MEM slice) or ``("h", k)`` / ``("h", k, plane)`` (held: the streams step k
    wrote, all of them or one plane). ``dst``: ``("of", k, plane)`` writes into that plane
    of step k's streams (after step k's write); None: any free result streams."""

    mnemonic: str
    srcs: dict
    imm: int | None = None
    dst: tuple | None = None


def _kind(mnemonic: str, width: int, result: bool) -> str:
    """How to show a value of `mnemonic` in a message."""
    if width == 1:
        return "u8" if mnemonic == "mov" else "i8"
    if result:
        if mnemonic in ("feq", "flt", "fle", "cvt.f32.i32", "cvt.i8.i32"):
            return "i32"
        if mnemonic == "cvt.i32.f32":
            return "f32"
    return BY_MNEMONIC[mnemonic].dtype if BY_MNEMONIC[mnemonic].dtype != "i8" else "i32"


def _held_steps(cfg: ChipConfig) -> list[_HStep]:
    vl = cfg.vl
    rng = np.random.default_rng(17)

    def pool(values, dtype=np.uint32):
        vecs = [v[0] for v in _vectors([list(values)], vl, dtype)]
        return itertools.cycle(vecs)

    ints = pool([a for a, _ in INT_PAIRS] + [b for _, b in INT_PAIRS][::-1])
    amounts = pool([b for _, b in SHIFT_PAIRS])
    conds = pool([c for _, _, c in SEL_TRIPLES])
    fps = pool(_f(1.5, -2.25, 0.5, 3.0, -0.75, 1e-3, 100.0, -7.0, 0.0, -0.0, 2.0 ** 100)
               + [PINF, QNAN, SUB_MIN, MAX_F, NMIN_N])
    scales = pool(_f(2.0, 0.5, -1.0, 1 / 64, 3.0, 100.0, 1e-3, -0.25))
    raw = pool(rng.integers(0, 256, 3 * vl).tolist(), np.uint8)
    steps: list[_HStep] = []
    chain = []  # step indices of the chain so far (prev = chain[-1], prev2 = chain[-2])

    def st(mnemonic, srcs, imm=None, dst=None, link=True) -> int:
        steps.append(_HStep(mnemonic, srcs, imm, dst))
        if link:
            chain.append(len(steps) - 1)
        return len(steps) - 1

    def H(k=None, plane=None):
        k = chain[-1] if k is None else k
        return ("h", k) if plane is None else ("h", k, plane)

    def M(it):
        return ("m", next(it))

    ibin = ["add", "sub", "mul", "min", "max", "and", "or", "xor", "shl", "shr", "sra", "eq",
            "lt", "le"]
    fbin = ["fadd", "fsub", "fmul", "fmin", "fmax", "feq", "flt", "fle"]

    def bin_pass(names, data, pas):
        # patterns (a, b): held/MEM, MEM/held, held/held-before; shifted by one in the
        # second pass, so that every opcode gets la and lb
        for j, m in enumerate(names):
            pat = (j + pas) % 3
            src = amounts if m in ("shl", "shr", "sra") else data
            a = H() if pat != 1 else M(data)
            b = M(src) if pat == 0 else H() if pat == 1 else H(chain[-2])
            st(m, {"a": a, "b": b})

    st("mov32", {"a": M(ints)})
    st("mov32", {"a": H()})  # the next cycle on the other ALU
    bin_pass(ibin, ints, 0)
    for m, imm in (("shli", 1), ("shri", 13), ("srai", 31)):
        st(m, {"a": H()}, imm=imm)
    st("cvt.i32.f32", {"a": H()})
    bin_pass(fbin, fps, 0)
    st("fneg", {"a": H()})
    st("fabs", {"a": H()})
    st("cvt.f32.i32", {"a": H()})
    st("sel", {"a": H(), "b": H(chain[-2]), "c": M(conds)})
    bin_pass(ibin, ints, 1)
    st("sel", {"a": M(ints), "b": H(), "c": M(conds)})
    st("cvt.i32.f32", {"a": H()})
    bin_pass(fbin, fps, 1)
    q8 = st("cvt.f32.i8", {"a": H(), "scale": M(scales)})  # one stream
    st("cvt.i8.i32", {"a": H(q8)})  # int8 held read of a one-stream result
    # 32-bit held operands with planes from different writes
    g = st("add", {"a": H(), "b": M(ints)})
    st("mov", {"a": H(q8)}, dst=("of", g, 2), link=False)  # plane 2 of g: q8
    m = st("mul", {"a": H(g), "b": M(ints)})  # planes 0, 1, 3 of g, plane 2 of the mov
    lo8 = st("cvt.i32.i8", {"a": H(m)}, dst=("of", m, 0), link=False)  # over m's plane 0
    st("cvt.i8.i32", {"a": H(lo8)})
    st("sub", {"a": M(ints), "b": H(m)})  # m with its low plane from cvt.i32.i8
    f = st("cvt.i32.f32", {"a": H()})
    st("cvt.f32.i8", {"a": M(fps), "scale": H(f)})
    st("mov", {"a": H(f, 3)})  # int8 held read of one plane of a 32-bit result
    st("mov", {"a": M(raw)}, link=False)
    return steps


def _vxm_held(cfg: ChipConfig) -> Directed:
    plan = Plan(cfg, "vxm_held", "VXM operations chained through held reads (ISA 1.1)")
    steps = _held_steps(cfg)
    vxm = [q.name for q in cfg.queues if q.kind == "vxm"]
    placed: dict[int, tuple] = {}  # step -> (alu, cycle, write cycle, dst, width)
    by_token: dict[tuple, int] = {}  # (alu, cycle) -> step
    over: dict[int, list] = {}  # step k -> [(step j, plane)]: j writes into plane of k
    for j, stp in enumerate(steps):
        if stp.dst is not None:
            over.setdefault(stp.dst[1], []).append((j, stp.dst[2]))

    def writers(c, ref, width):
        """Per stream of held operand `ref` (`width` streams) of step c: the step whose
        write it must read (step k, or a later step that wrote into that plane of k)."""
        k, plane = ref[1], (ref[2] if len(ref) > 2 else 0)
        out = []
        for p in range(plane, plane + width):
            who = k
            for j, pl in over.get(k, ()):
                if j < c and pl == p:
                    who = j
            out.append(who)
        return out

    def streams(ref):
        """The first stream of held operand `ref` (its step placed)."""
        s0, dr = placed[ref[1]][3]
        return (s0 + (ref[2] if len(ref) > 2 else 0), dr)

    for i, stp in enumerate(steps):
        info = BY_MNEMONIC[stp.mnemonic]
        d = info.d(cfg.superlanes)
        wd = info.operands[0].width
        plan.release(i)  # its own holds: it places exact ones
        lo = 4
        held_refs = [(o, stp.srcs[o.name]) for o in info.reads if stp.srcs[o.name][0] == "h"]
        for o, ref in held_refs:
            for who in writers(i, ref, o.width):
                lo = max(lo, placed[who][2] + 1)
        if stp.dst is not None:
            lo = max(lo, placed[stp.dst[1]][2] - d + 1)
        first = held_refs and placed[writers(i, held_refs[0][1], 1)[0]][0]
        alus = [a for a in vxm if a != first] + [a for a in vxm if a == first]
        if stp.dst is not None:
            (s0, dr) = placed[stp.dst[1]][3]
            ref = (s0 + stp.dst[2], dr)
            keepers = ["mem_e0", "mem_e1"] if dr == E else ["mem_w0", "mem_w1"]
            dsts = [(ref, kp) for kp in keepers]
        else:
            r = i % len(_VXM_DSTS)
            dsts = _VXM_DSTS[r:] + _VXM_DSTS[:r]
        n_mem = sum(1 for o in info.reads if stp.srcs[o.name][0] == "m")
        done = None
        for t in itertools.count(lo):
            if t > lo + 64:
                raise DirectedError(f"directed program 'vxm_held': no room for step {i} "
                                    f"({stp.mnemonic}) after cycle {lo}")
            for alu in alus:
                if (alu, t) in plan.busy:
                    continue
                for route in itertools.permutations(_VXM_SRCS, n_mem):
                    for dst, keeper in dsts:
                        tx = _held_txn(plan, stp, t, alu, route, dst, keeper, d, wd, streams,
                                       lambda ref, w, i=i: writers(i, ref, w), by_token)
                        if tx.problem is None:
                            done = (tx, alu, t, dst)
                            break
                    if done:
                        break
                if done:
                    break
            if done:
                break
        tx, alu, t, dst = done
        tx.commit()
        placed[i] = (alu, t, t + d, dst, wd)
        by_token[(alu, t)] = i
        # hold what later steps will read of this write until they are placed
        for c in range(i + 1, len(steps)):
            for o in BY_MNEMONIC[steps[c].mnemonic].reads:
                ref = steps[c].srcs[o.name]
                if ref[0] != "h" or ref[1] not in placed:
                    continue
                if ref[1] != i and i not in [j for j, _ in over.get(ref[1], ())]:
                    continue
                s, dr = streams(ref)
                with plan.one() as hx:
                    for off, who in enumerate(writers(c, ref, o.width)):
                        if who == i:
                            hx.hold((s + off, dr), 1, t + d + 1, c)
    return plan.build()


def _held_txn(plan, stp, t, alu, route, dst, keeper, d, wd, streams, writers,
              by_token) -> Txn:
    """One try at placing `stp` on `alu` at `t`: MEM operands on `route`, held operands
    checked against the steps they must read, the result to `dst`, kept by `keeper`."""
    info = BY_MNEMONIC[stp.mnemonic]
    tx = plan.txn()
    args, vals, flags, inputs = {}, [], {}, {}
    mem_srcs = iter(route)
    for o in info.reads:
        spec = stp.srcs[o.name]
        if spec[0] == "m":
            src, ref = next(mem_srcs)
            val = spec[1]
            words = to_planes(val) if o.width == 4 else np.asarray(val, np.uint8)[None, :]
            addr = tx.put(src, words)
            dist = abs(plan.pos["vxm"] - plan.pos[src])
            tx.send(src, t - 1 - dist, addr, ref, o.width, "vxm")
        else:
            ref = streams(spec)
            got = tx.held(ref, o.width, t)
            if tx.problem:
                return tx
            if [by_token.get(tok) for _, tok, _ in got] != writers(spec, o.width):
                tx.problem = f"'{stp.mnemonic}': a held stream was written by another step"
                return tx
            planes = np.stack([v for _, _, v in got])
            val = from_planes(planes) if o.width == 4 else planes[0]
            flags[o.held] = 1
        if tx.problem:
            return tx
        args[o.name] = ref
        vals.append(val)
        inputs[o.name] = (_kind(stp.mnemonic, o.width, False), val)
    want = reference(stp.mnemonic, *vals, imm=stp.imm)
    ops = [dst if o.name == "dst" else args[o.name] if o.kind == "sr" else stp.imm
           for o in info.operands]
    words = to_planes(want) if wd == 4 else want[None, :]
    ins = tx.at(alu, t, stp.mnemonic, *ops, result=words, **flags)
    if tx.problem:
        return tx
    t_keep = tx.flow("vxm", dst, wd, t + d, keeper)
    out = tx.take(keeper, wd, 1)
    tx.at(keeper, t_keep, "write", out, dst, wd)
    tx.expect(keeper, out, words, f"'{ins.text()}' ({alu}, cycle {t})",
              _kind(stp.mnemonic, wd, True), inputs)
    return tx


# -- MEM and the ICU --------------------------------------------------------------------------


def _mem(cfg: ChipConfig) -> Directed:
    plan = Plan(cfg, "mem", "read/write of 1-4 words, repeat, gather, sync/notify")
    vl, bw = cfg.vl, cfg.bank_words
    rng = np.random.default_rng(11)

    def words(n):
        w = rng.integers(0, 256, (n, vl), dtype=np.uint8)
        w[0, 0], w[-1, -1] = 0xFF, 0x80
        return w

    # 1-4 words east (mem_w0 -> mem_e1) and west (mem_e0 -> mem_w1), on various streams
    for k, (se, sw) in enumerate([(7, 0), (5, 6), (1, 3), (4, 4)]):
        n = k + 1
        for src, dst, ref in (("mem_w0", "mem_e1", (se, E)), ("mem_e0", "mem_w1", (sw, W))):
            data = words(n)

            def move(tx, t, src=src, dst=dst, ref=ref, n=n, data=data):
                a = tx.put(src, data)
                tk = tx.send(src, t, a, ref, n, dst)
                o = tx.take(dst, n, 1)
                tx.at(dst, tk, "write", o, ref, n)
                tx.expect(dst, o, data, f"read {n} word(s) from {src} on {'ew'[ref[1]]}"
                          f"{ref[0]}, write on {dst}")
            plan.place(move, 0)

    # repeat: 4 x 2 words, step 2, d 2 (mem_w1 -> mem_e0)
    data2 = words(8)

    def repeat_up(tx, t):
        a = tx.put("mem_w1", data2)
        tk = tx.send("mem_w1", t, a, (2, E), 2, "mem_e0")
        for k in range(1, 4):
            tx.flow("mem_w1", (2, E), 2, t + 2 * k + 1, "mem_e0")
        tx.repeat("mem_w1", t, 3, 2, 2)
        o = tx.take("mem_e0", 8, 1)
        tx.at("mem_e0", tk, "write", o, (2, E), 2)
        tx.repeat("mem_e0", tk, 3, 2, 2)
        tx.expect("mem_e0", o, data2, "read 2 words + repeat 3, 2, 2 (mem_w1), write + repeat "
                  "3, 2, 2 (mem_e0)")
    plan.place(repeat_up, 0)

    # ... and 4 x 1 word with step -1 (mem_e1 -> mem_w0): the words reversed
    data4 = words(4)

    def repeat_down(tx, t):
        a = tx.put("mem_e1", data4)
        tk = tx.send("mem_e1", t, a + 3, (6, W), 1, "mem_w0")
        for k in range(1, 4):
            tx.flow("mem_e1", (6, W), 1, t + k + 1, "mem_w0")
        tx.repeat("mem_e1", t, 3, 1, -1)
        o = tx.take("mem_w0", 4, 1)
        tx.at("mem_w0", tk, "write", o, (6, W), 1)
        tx.repeat("mem_w0", tk, 3, 1, 1)
        tx.expect("mem_w0", o, data4[::-1], "read + repeat 3, 1, -1 (mem_e1), write + repeat "
                  "3, 1, 1 (mem_w0): the words reversed")
    plan.place(repeat_down, 0)

    # gather from bank 0 of mem_w0, indices from mem_w1, repeated with the base stepped by 8
    g_lim = min(16, bw // 4)
    table1 = words(g_lim + 8)
    idx1 = [np.resize(np.array([0, g_lim - 1, 1, 5, 2, g_lim - 2, 3, 7]), vl) % g_lim,
            np.resize(np.array([g_lim - 1, 0, 4, 4, 6, 1, 0, 2]), vl) % g_lim]

    def gather_repeated(tx, t):
        base = tx.put("mem_w0", table1)
        ia = tx.put("mem_w1", np.stack(idx1).astype(np.uint8))
        tg = tx.send("mem_w1", t, ia, (0, E), 1, "mem_w0")
        tx.flow("mem_w1", (0, E), 1, t + 2, "mem_w0")
        tx.repeat("mem_w1", t, 1, 1, 1)
        tx.at("mem_w0", tg, "gather", base, (0, E), (3, E))
        tx.repeat("mem_w0", tg, 1, 1, 8)
        tk = tx.flow("mem_w0", (3, E), 1, tg + 2, "mem_e0")
        tx.flow("mem_w0", (3, E), 1, tg + 3, "mem_e0")
        o = tx.take("mem_e0", 2, 1)
        tx.at("mem_e0", tk, "write", o, (3, E), 1)
        tx.repeat("mem_e0", tk, 1, 1, 1)
        for k in range(2):
            tx.expect("mem_e0", o + k, table1[8 * k + idx1[k], np.arange(vl)][None, :],
                      f"gather {base + 8 * k}, e0, e3 on mem_w0 (copy {k} of a repeat)",
                      inputs={"idx": ("u8", idx1[k])})
    plan.place(gather_repeated, 0)

    # gather from bank 1 of mem_e1, indices from mem_e0 (east), result west to mem_w0
    table2 = words(g_lim)
    idx2 = np.resize(np.array([g_lim - 1, 3, 0, 2, 9, 1, 0, 6]), vl) % g_lim

    def gather_bank1(tx, t):
        base = tx.put("mem_e1", table2, bank=1)
        ia = tx.put("mem_e0", idx2.astype(np.uint8)[None, :])
        tg = tx.send("mem_e0", t, ia, (5, E), 1, "mem_e1")
        tx.at("mem_e1", tg, "gather", base, (5, E), (1, W))
        tk = tx.flow("mem_e1", (1, W), 1, tg + 2, "mem_w0")
        o = tx.take("mem_w0", 1, 1)
        tx.at("mem_w0", tk, "write", o, (1, W), 1)
        tx.expect("mem_w0", o, table2[idx2, np.arange(vl)][None, :],
                  f"gather {base}, e5, w1 on mem_e1 (bank 1)", inputs={"idx": ("u8", idx2)})
    plan.place(gather_bank1, 0)

    # sync / notify: mem_w1 and mem_e1 park before the notify, mem_w0 reaches its sync in
    # the notify's cycle; mem_e1 parks again after it and waits for a second notify.
    def last(queue):
        return max(k[1] for k in plan.busy if k[0] == queue and len(k) == 2)

    tn = max(last(q) for q in ("mem_w0", "mem_w1", "mem_e0", "mem_e1")) + 2
    tn2 = tn + 12
    tx = plan.one()
    with tx:
        tx.at("mem_e0", tn, "notify")
        tx.at("mem_e0", tn2, "notify")
    plan.sync("mem_w1", last("mem_w1") + 1, tn + 1)
    plan.sync("mem_e1", last("mem_e1") + 1, tn + 1)
    plan.sync("mem_w0", tn, tn + 1)
    with plan.one() as tx:  # mem_w1 resumes: 4 words east to mem_e1, which resumed too
        data = words(4)
        a = tx.put("mem_w1", data)
        t = tx.send("mem_w1", tn + 1, a, (4, E), 4, "mem_e1")
        o = tx.take("mem_e1", 4, 1)
        tx.at("mem_e1", t, "write", o, (4, E), 4)
        tx.expect("mem_e1", o, data, "read on mem_w1 and write on mem_e1, both the cycle "
                  "after their release by notify")
    with plan.one() as tx:  # mem_w0 (sync in the notify's cycle) resumes at once
        data = words(1)
        a = tx.put("mem_w0", data)
        t = tx.send("mem_w0", tn + 1, a, (2, W), 1, "mem_w1")
        o = tx.take("mem_w1", 1, 1)
        tx.at("mem_w1", t, "write", o, (2, W), 1)
        tx.expect("mem_w1", o, data, "read on mem_w0 released by a notify in the cycle it "
                  "reached its sync")
    plan.sync("mem_e1", last("mem_e1") + 1, tn2 + 1)
    with plan.one() as tx:  # mem_e1 released by the second notify only
        data = words(3)
        a = tx.put("mem_e1", data)
        t = tx.send("mem_e1", tn2 + 1, a, (5, W), 3, "mem_w0")
        o = tx.take("mem_w0", 3, 1)
        tx.at("mem_w0", t, "write", o, (5, W), 3)
        tx.expect("mem_w0", o, data, "read on mem_e1 parked after the first notify, released "
                  "by the second")
    return plan.build()


# -- MXM --------------------------------------------------------------------------------------


def _load_weights(plan: Plan, tx: Txn, plane: str, mem: str, ref, w: np.ndarray, t0: int,
                  groups: list[tuple[int, int]], lwi: int = 0) -> int:
    """Weight rows `w` (int8 [VL, VL]) from `mem` onto streams `ref`, one read per group of
    rows on consecutive cycles from t0, each loaded by an ``lw`` of the MXM `plane` as it
    arrives (the last `lwi` groups by an ``lwi``, ISA 1.2: each installs the shadow two
    cycles on). groups: [(row, count)]; runs of 4-row ``lw`` groups use ``repeat``
    (step 4) on both queues. Returns the cycle of the last load."""
    s0, dr = ref
    dist = abs(plan.pos[mem] - plan.pos[plane])
    addr = tx.put(mem, w.view(np.uint8))
    t = t0
    i = 0
    first_lwi = len(groups) - lwi
    while i < len(groups):
        row, n = groups[i]
        run = 1
        while n == 4 and i + run < first_lwi and groups[i + run] == (row + 4 * run, 4):
            run += 1
        tx.send(mem, t, addr + row, (s0, dr), n, plane)
        tx.at(plane, t + 1 + dist, "lwi" if i >= first_lwi else "lw", row, (s0, dr), n)
        if run > 1:
            for k in range(1, run):
                tx.flow(mem, (s0, dr), n, t + k + 1, plane)
            tx.repeat(mem, t, run - 1, 1, 4)
            tx.repeat(plane, t + 1 + dist, run - 1, 1, 4)
        t += run
        i += run
    return t + dist


def _mxm(cfg: ChipConfig) -> Directed:
    plan = Plan(cfg, "mxm", "lw/lwi/iw/mm/mmacc on both planes, double buffering")
    vl, S = cfg.vl, cfg.superlanes
    rng = np.random.default_rng(5)
    if vl % 4:
        raise DirectedError(f"config {cfg.name}: the mxm program needs VL a multiple of 4")

    def weights():
        w = rng.integers(-128, 128, (vl, vl)).astype(np.int8)
        w[0, :2] = (-128, 127)
        w[-1, -2:] = (127, -128)
        return w

    def xvec():
        x = rng.integers(-128, 128, vl).astype(np.int8)
        x[:2] = (-128, 127)
        return x

    def mm_ref(x, w):
        return (x.astype(np.int64) @ w.astype(np.int64)).astype(np.uint32)

    def mm(tx, plane, op, x, slot, t, dst, src_mem, xref, keeper, want, what):
        dist = abs(plan.pos[src_mem] - plan.pos[plane])
        a = tx.put(src_mem, x.view(np.uint8)[None, :])
        tx.send(src_mem, t - 1 - dist, a, xref, 1, plane)
        tx.at(plane, t, op, dst, xref, slot)
        if dst is not None:
            tk = tx.flow(plane, dst, 4, t + S + 2, keeper)
            o = tx.take(keeper, 4, 1)
            tx.at(keeper, tk, "write", o, dst, 4)
            tx.expect(keeper, o, to_planes(want), what, "i32", {"x": ("i8", x.view(np.uint8))})

    fours = [(r, 4) for r in range(0, vl, 4)]
    mixed = [(0, 3), (3, 1)] + [(r, 4) for r in range(4, vl, 4)]
    w1, w2, w3 = weights(), weights(), weights()
    x = [xvec() for _ in range(8)]
    w4, w5 = weights(), weights()
    x += [xvec() for _ in range(4)]
    # west plane: W1 into the shadow, installed at the first cycle that sees the last row
    with plan.one() as tx:
        t_lw = _load_weights(plan, tx, "mxm_w0", "mem_w1", (0, W), w1, 0, fours)
        t_iw1 = t_lw + 2
        tx.at("mxm_w0", t_iw1, "iw")
        acc0 = mm_ref(x[0], w1)
        mm(tx, "mxm_w0", "mm", x[0], 0, t_iw1 + 1, (0, E), "mem_w0", (7, W), "mem_w1", acc0,
           "mm e0, w7, 0 right after iw (W1)")
        acc1 = mm_ref(x[1], w1)
        mm(tx, "mxm_w0", "mm", x[1], 1, t_iw1 + 2, None, "mem_w0", (7, W), None, None, "")
    # W2 into the shadow while W1 is active (rows in groups of 3, 1, 4, ..); the last
    # group's lw is one cycle before an iw, which therefore installs the old last rows
    with plan.one() as tx:
        t_lw = _load_weights(plan, tx, "mxm_w0", "mem_w0", (0, W), w2, t_iw1 + 3, mixed)
        t_iw2 = t_lw + 1
        tx.at("mxm_w0", t_iw2, "iw")
        last = mixed[-1][0]  # the rows of the last group are still W1's
        wmix = np.concatenate([w2[:last], w1[last:]])
        acc1 = (acc1 + mm_ref(x[2], wmix)).astype(np.uint32)
        mm(tx, "mxm_w0", "mmacc", x[2], 1, t_iw2 + 1, (4, E), "mem_w1", (6, W), "mem_w0",
           acc1, "mmacc e4, w6, 1 after an iw one cycle after the last lw (W2's first rows, "
           "W1's last rows)")
        tx.at("mxm_w0", t_iw2 + 2, "iw")
        acc0 = (acc0 + mm_ref(x[3], w2)).astype(np.uint32)
        mm(tx, "mxm_w0", "mmacc", x[3], 0, t_iw2 + 3, (0, E), "mem_w1", (6, W), "mem_w1",
           acc0, "mmacc e0, w6, 0 (W2)")
        mm(tx, "mxm_w0", "mm", x[4], 1, t_iw2 + 4, (4, E), "mem_w1", (6, W), "mem_w0",
           mm_ref(x[4], w2), "mm e4, w6, 1 overwrites the accumulator (W2)")
    # lwi (ISA 1.2): W4's last rows by an lwi, which installs two cycles on with no iw:
    # an mm in that cycle still uses W2, the next one W4. Then W5's last two groups by
    # lwi one cycle apart: the first installs W5 but for the rows of the last group
    # (still W4's: they reach the shadow a cycle later), the second all of W5.
    with plan.one() as tx:
        t_l4 = _load_weights(plan, tx, "mxm_w0", "mem_w1", (0, W), w4, t_iw2 + 12, fours, 1)
        mm(tx, "mxm_w0", "mm", x[8], 0, t_l4 + 2, (0, E), "mem_w0", (7, W), "mem_w1",
           mm_ref(x[8], w2), "mm e0, w7, 0 in the cycle an lwi installs (still W2)")
        mm(tx, "mxm_w0", "mm", x[9], 1, t_l4 + 3, (4, E), "mem_w0", (7, W), "mem_w1",
           mm_ref(x[9], w4), "mm e4, w7, 1 the cycle after (W4, installed by the lwi)")
        t_l5 = _load_weights(plan, tx, "mxm_w0", "mem_w1", (0, W), w5, t_l4 + 1, fours, 2)
        split = fours[-1][0]  # the last group's rows are still W4's at the first install
        w54 = np.concatenate([w5[:split], w4[split:]])
        mm(tx, "mxm_w0", "mm", x[10], 0, t_l5 + 2, (0, E), "mem_w0", (6, W), "mem_w0",
           mm_ref(x[10], w54), "mm e0, w6, 0 after the first of two lwi a cycle apart (W5's "
           "first rows, W4's last)")
        mm(tx, "mxm_w0", "mmacc", x[11], 0, t_l5 + 3, (4, E), "mem_w0", (6, W), "mem_w1",
           (mm_ref(x[10], w54) + mm_ref(x[11], w5)).astype(np.uint32),
           "mmacc e4, w6, 0 after the second lwi (all of W5)")
    # east plane: W3 from mem_e1 on east streams, results west
    with plan.one() as tx:
        t_lw = _load_weights(plan, tx, "mxm_e0", "mem_e1", (4, E), w3, 2, fours)
        t_iw = t_lw + 2
        tx.at("mxm_e0", t_iw, "iw")
        a0 = mm_ref(x[5], w3)
        mm(tx, "mxm_e0", "mm", x[5], 0, t_iw + 1, (0, W), "mem_e0", (1, E), "mem_e1", a0,
           "mm w0, e1, 0 on the east plane (W3)")
        a0 = (a0 + mm_ref(x[6], w3)).astype(np.uint32)
        mm(tx, "mxm_e0", "mmacc", x[6], 0, t_iw + 2, (4, W), "mem_e0", (1, E), "mem_e0", a0,
           "mmacc w4, e1, 0 on the east plane (W3)")
        mm(tx, "mxm_e0", "mmacc", x[7], 1, t_iw + 3, (0, W), "mem_e1", (3, E), "mem_e1",
           mm_ref(x[7], w3), "mmacc w0, e3, 1 on the east plane onto a zero accumulator")
    return plan.build()


# -- SXM --------------------------------------------------------------------------------------


def _sxm(cfg: ChipConfig) -> Directed:
    plan = Plan(cfg, "sxm", "shift/rot/bcast/perm/transpose on both SXM slices")
    vl, S, L = cfg.vl, cfg.superlanes, cfg.lanes
    rng = np.random.default_rng(9)
    sides = {  # SXM queue -> (its MEM slices, nearest first; stream direction in; out)
        "sxm_w": ([f"mem_w{i}" for i in reversed(range(cfg.mem_slices))], W, E),
        "sxm_e": ([f"mem_e{i}" for i in reversed(range(cfg.mem_slices))], E, W),
    }

    def shift(n):
        def fn(row):
            out = np.zeros_like(row)
            for i in range(vl):
                if 0 <= i - n < vl:
                    out[i] = row[i - n]
            return out
        return fn

    def rot(n):
        return lambda row: np.array([row[(i - n) % vl] for i in range(vl)], dtype=np.uint8)

    def bcast(lane):
        return lambda row: np.full(vl, row[lane], dtype=np.uint8)

    def perm(mp):
        return lambda row: row[mp]

    def small(vals):
        return [v for v in dict.fromkeys(vals) if abs(v) < vl]

    ops = []  # (mnemonic, n or map, count, fn)
    for k, n in enumerate(small([1, -1, L, -L, vl - 1, -(vl - 1), 0, 3])):
        ops.append(("shift", n, [1, 2, 3, 4][k % 4], shift(n)))
    for k, n in enumerate(small([1, -1, L + 1, vl - 1, -(vl - 2)])):
        ops.append(("rot", n, [3, 1, 4, 2][k % 4], rot(n)))
    for k, lane in enumerate(dict.fromkeys([0, vl - 1, L % vl, vl // 2 + 1])):
        ops.append(("bcast", lane, [4, 1, 2, 1][k % 4], bcast(lane)))
    maps = [np.arange(vl)[::-1], np.resize(np.array([vl - 1, 0, 0, 3 % vl, 1, vl - 1, 2, 2]), vl)]
    for k, mp in enumerate(maps):
        ops.append(("perm", mp, [1, 2][k], perm(mp)))

    t = {"sxm_w": 3, "sxm_e": 3}
    for k, (mn, arg, cnt, fn) in enumerate(ops):
        for sx, (mems, din, dout) in sides.items():
            # alternate: data from the far slice kept by the near one, and the other way
            src_mem, keeper = (mems[0], mems[1]) if k % 2 else (mems[1], mems[0])
            src = rng.integers(0, 256, (cnt, vl), dtype=np.uint8)
            src[0, 0], src[-1, -1] = 0xFF, 0x80
            s_in = 0 if mn == "perm" or k % 2 == 0 else 8 - cnt
            s_out = min(4 * (k % 2), 8 - cnt)
            words = src
            if mn == "perm":  # the map (uint16, low byte first) on the two streams after src
                words = np.concatenate([src, np.stack([arg & 0xFF, arg >> 8]).astype(np.uint8)])
            while True:
                tx = plan.txn()
                tc = t[sx]
                t[sx] += 1
                a = tx.put(src_mem, words)
                dist = abs(plan.pos[src_mem] - plan.pos[sx])
                tx.send(src_mem, tc - 1 - dist, a, (s_in, din), words.shape[0], sx)
                if mn == "perm":
                    ins = tx.at(sx, tc, "perm", (s_out, dout), (s_in, din), (cnt, din), cnt)
                else:
                    ins = tx.at(sx, tc, mn, (s_out, dout), (s_in, din), arg, cnt)
                tk = tx.flow(sx, (s_out, dout), cnt, tc + S + 1, keeper)
                o = tx.take(keeper, cnt, 1)
                tx.at(keeper, tk, "write", o, (s_out, dout), cnt)
                tx.expect(keeper, o, np.stack([fn(row) for row in src]),
                          f"'{ins.text()}' ({sx}, cycle {tc})")
                if tx.problem is None:
                    tx.commit()
                    break
    # transpose on each side: VL streams from the nearest VL/4 slices, arriving together
    if cfg.streams >= vl and cfg.mem_slices >= vl // 4 and vl % 4 == 0:
        for sx, (mems, din, dout) in sides.items():
            while True:
                tx = plan.txn()
                blk = rng.integers(0, 256, (vl, vl), dtype=np.uint8)
                tc = t[sx]
                for g in range(vl // 4):
                    mem = mems[g]
                    a = tx.put(mem, blk[4 * g:4 * g + 4])
                    dist = abs(plan.pos[mem] - plan.pos[sx])
                    tx.send(mem, tc - 1 - dist, a, (4 * g, din), 4, sx)
                ins = tx.at(sx, tc, "transpose", (0, dout), (0, din))
                for g in range(vl // 4):
                    mem = mems[g]
                    tk = tx.flow(sx, (4 * g, dout), 4, tc + S + 1, mem)
                    o = tx.take(mem, 4, 1)
                    tx.at(mem, tk, "write", o, (4 * g, dout), 4)
                    tx.expect(mem, o, blk.T[4 * g:4 * g + 4],
                              f"'{ins.text()}' ({sx}, cycle {tc}), result streams "
                              f"{4 * g}..{4 * g + 3}")
                t[sx] += 1
                if tx.problem is None:
                    tx.commit()
                    break
    return plan.build()


# -- slices feeding each other -------------------------------------------------------------------


def _chain(cfg: ChipConfig) -> Directed:
    plan = Plan(cfg, "chain", "MEM -> SXM -> MXM -> VXM -> SXM -> VXM -> MXM -> VXM -> MEM, "
                               "twice, overlapped")
    vl, S = cfg.vl, cfg.superlanes
    rng = np.random.default_rng(3)
    vxm = [q.name for q in cfg.queues if q.kind == "vxm"]
    wa = rng.integers(-16, 17, (vl, vl)).astype(np.int8)
    wb = rng.integers(-128, 128, (vl, vl)).astype(np.int8)
    with plan.one() as tx:
        iw_a = _load_weights(plan, tx, "mxm_w0", "mem_w1", (0, W), wa, 0,
                             [(r, 4) for r in range(0, vl, 4)]) + 2
        tx.at("mxm_w0", iw_a, "iw")
        iw_b = _load_weights(plan, tx, "mxm_e0", "mem_e1", (4, E), wb, 0,
                             [(r, 4) for r in range(0, vl, 4)]) + 2
        tx.at("mxm_e0", iw_b, "iw")
    scale_pool = _f(1 / 64, 1 / 128, 1 / 32, -1 / 64, 0.01, 1 / 16, -1 / 8, 3 / 256)

    def keep(tx, src, ref, width, t, mem, what, want, kind, inputs=None):
        """Store a value on its way past MEM slice `mem` (it flows on)."""
        tk = tx.flow(src, ref, width, t, mem)
        o = tx.take(mem, width, 1)
        tx.at(mem, tk, "write", o, ref, width)
        words = to_planes(want) if width == 4 else np.asarray(want, np.uint8)[None, :]
        tx.expect(mem, o, words, what, kind, inputs)

    for k in range(min(2, cfg.mxm_acc_slots)):
        x = rng.integers(-128, 128, vl).astype(np.int8)
        x[:2] = (-128, 127)
        scale = np.resize(np.array(scale_pool, dtype=np.uint32), vl)
        scale = np.roll(scale, k)
        bias = _u32(rng.integers(IMIN, IMAX, vl, endpoint=True).tolist())
        x1 = np.roll(x, 1)
        y1 = (x1.astype(np.int64) @ wa.astype(np.int64)).astype(np.uint32)
        f1 = reference("cvt.i32.f32", y1)
        f2 = np.roll(f1, -1)
        q = reference("cvt.f32.i8", f2, scale)
        z = (q.view(np.int8).astype(np.int64) @ wb.astype(np.int64)).astype(np.uint32)
        out = reference("add", z, bias)

        def one(tx, t0, k=k, x=x, scale=scale, bias=bias, y1=y1, f1=f1, f2=f2, q=q, z=z,
                out=out):
            ax = tx.put("mem_w0", x.view(np.uint8)[None, :])
            ts = tx.send("mem_w0", t0, ax, (6, W), 1, "sxm_w")
            tx.at("sxm_w", ts, "rot", (5, W), (6, W), 1, 1)
            tm = tx.flow("sxm_w", (5, W), 1, ts + S + 1, "mxm_w")
            if tm <= iw_a:
                tx.problem = tx.problem or "before the weights are installed"
            tx.at("mxm_w0", tm, "mm", (0, E), (5, W), k)
            tv1 = tx.flow("mxm_w", (0, E), 4, tm + S + 2, "vxm")
            keep(tx, "mxm_w", (0, E), 4, tm + S + 2, "mem_w1",
                 f"mm e0, w5, {k} (mxm_w0, cycle {tm}) of rot 1 of x", y1, "i32")
            tx.at(vxm[0], tv1, "cvt.i32.f32", (4, E), (0, E))
            ts2 = tx.flow("vxm", (4, E), 4, tv1 + 2, "sxm_e")
            keep(tx, "vxm", (4, E), 4, tv1 + 2, "mem_e0",
                 f"cvt.i32.f32 e4, e0 ({vxm[0]}, cycle {tv1}) of the mm result", f1, "f32")
            tx.at("sxm_e", ts2, "rot", (4, W), (4, E), -1, 4)
            tv2 = tx.flow("sxm_e", (4, W), 4, ts2 + S + 1, "vxm")
            keep(tx, "sxm_e", (4, W), 4, ts2 + S + 1, "mem_e1",
                 f"rot w4, e4, -1, 4 (sxm_e, cycle {ts2}) of fp32 lanes", f2, "f32")
            a_s = tx.put("mem_w0", to_planes(scale))
            tx.send("mem_w0", tv2 - 2, a_s, (0, E), 4, "vxm")
            tx.at(vxm[-1], tv2, "cvt.f32.i8", (2, E), (4, W), (0, E))
            tm2 = tx.flow("vxm", (2, E), 1, tv2 + 4, "mxm_e")
            keep(tx, "vxm", (2, E), 1, tv2 + 4, "mem_e0",
                 f"cvt.f32.i8 e2, w4, e0 ({vxm[-1]}, cycle {tv2})", q, "i8",
                 {"a": ("f32", f2), "scale": ("f32", scale)})
            if tm2 <= iw_b:
                tx.problem = tx.problem or "before the weights are installed"
            tx.at("mxm_e0", tm2, "mm", (0, W), (2, E), k)
            tv3 = tx.flow("mxm_e", (0, W), 4, tm2 + S + 2, "vxm")
            keep(tx, "mxm_e", (0, W), 4, tm2 + S + 2, "mem_e1",
                 f"mm w0, e2, {k} (mxm_e0, cycle {tm2}) of the int8 vector", z, "i32")
            a_b = tx.put("mem_w0", to_planes(bias))
            tx.send("mem_w0", tv3 - 2, a_b, (4, E), 4, "vxm")
            tx.at(vxm[0], tv3, "add", (0, E), (0, W), (4, E))
            keep(tx, "vxm", (0, E), 4, tv3 + 1, "mem_e1",
                 f"add e0, w0, e4 ({vxm[0]}, cycle {tv3}) of the second mm and a bias", out,
                 "i32", {"a": ("i32", z), "b": ("i32", bias)})
        plan.place(one, 0)
    return plan.build()


# -- the set ----------------------------------------------------------------------------------

_BUILDERS = {"mem": _mem, "vxm_int": _vxm_int, "vxm_fp": _vxm_fp, "vxm_held": _vxm_held,
             "mxm": _mxm, "sxm": _sxm, "chain": _chain}
#: The names of the directed programs, in order.
PROGRAM_NAMES = tuple(_BUILDERS)


def _usable(cfg: ChipConfig) -> None:
    if cfg.mem_slices < 2 or cfg.streams < 8:
        raise DirectedError(f"config {cfg.name}: the directed programs need at least 2 MEM "
                            f"slices per hemisphere and 8 streams (it has {cfg.mem_slices} "
                            f"and {cfg.streams})")


@functools.lru_cache(maxsize=8)
def _programs(cfg: ChipConfig) -> tuple[Directed, ...]:
    _usable(cfg)
    return tuple(build(cfg) for build in _BUILDERS.values())


def directed_programs(cfg: ChipConfig | str = "tiny") -> list[Directed]:
    """The directed programs for `cfg` (built once per config; copies of the SRAM images
    are handed out, so a caller may modify them)."""
    cfg = load_config(cfg)
    out = []
    for d in _programs(cfg):
        out.append(Directed(d.name, d.doc, Program(d.program.config_hash,
                                                   {q: list(w) for q, w in
                                                    d.program.queues.items()}),
                            {k: v.copy() for k, v in d.mem_init.items()},
                            [Expect(e.mem, e.addr, e.words.copy(), e.what, e.kind,
                                    dict(e.inputs)) for e in d.expected],
                            d.cycles))
    return out
