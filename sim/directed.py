"""Directed programs: every opcode, with its edge values, in a few programs any backend runs.

Each :class:`Directed` is a program for one chip config, the SRAM it starts from and the
SRAM words it must leave behind. Together, :func:`directed_programs` covers every
mnemonic of :data:`lpu.isa.OPS` (:func:`opcodes_of` says which a program contains, read
from its instruction words). The same programs run

* on the golden model, where :meth:`Directed.check` compares SRAM with the expected
  words (``tests/chip/test_directed.py``);
* in lockstep on the RTL: ``lockstep(cfg, d.program, d.mem_init, backend)``
  (:mod:`lpu.sim.lockstep`), or from files written by ``--write``::

      python -m lpu.sim.directed --config tiny --list
      python -m lpu.sim.directed --config tiny --write out/
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
``mxm``
    ``lw`` of 1, 3 and 4 rows (with ``repeat``), ``iw`` at the first cycle that sees
    the last row and once a cycle too early (the row loaded just before is not
    installed), double buffering, ``mm`` with and without a result stream,
    ``mmacc`` on both accumulator slots, both planes.
``sxm``
    ``shift``, ``rot`` (both signs, across superlanes, up to VL-1), ``bcast`` (first
    and last lane), ``perm`` (a reversal and a map with repeats), ``count`` 1 to 4,
    and ``transpose``, on both SXM slices.
``chain``
    slices feeding each other directly: MEM -> SXM ``rot`` -> MXM ``mm`` -> VXM
    ``cvt.i32.f32`` -> SXM ``rot`` of four streams -> VXM ``cvt.f32.i8`` -> MXM ``mm``
    -> VXM ``add`` -> MEM, twice, one cycle apart; a MEM slice on the way stores every
    intermediate value too.

Timing: the VXM operations are placed by a small list scheduler (:class:`_Plan`): an
operation is put at the first cycle where its operand reads, its ALU, its result
streams and the MEM slice that stores the result are free, trying every route, so
both ALUs work most cycles and results of different delays interleave. Other programs
are placed by hand with the same bookkeeping, which refuses a collision (two values on
one stream register, two instructions in one queue cycle) before the static checker
(:func:`lpu.golden.check.check`) checks the whole program again.

Expected values are computed here with numpy and Python integers, independently of
:mod:`lpu.golden` (fp32 in float64, then rounded to binary32, which is exact for
``+ - *`` since 53 >= 2 * 24 + 2; subnormal inputs read as zero and results flushed to
zero after rounding, NaN results canonical, as ``docs/numerics.md`` says).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.isa import BY_MNEMONIC, OPS, Instr, decode, make
from lpu.program import Program
from lpu.tools.builder import ProgramBuilder

__all__ = ["Directed", "Expect", "DirectedError", "directed_programs", "opcodes_of",
           "all_mnemonics", "main"]

E, W = 0, 1
M32 = (1 << 32) - 1


class DirectedError(LpuError):
    """The directed programs cannot be built for this config (or a placement collided)."""


# -- what a program must leave in SRAM --------------------------------------------------------


@dataclass
class Expect:
    """Words a program must leave at ``mem[addr .. addr + n - 1]``.

    ``words`` is uint8 [n, VL]. ``kind`` says how to read them in a message: ``u8`` /
    ``i8`` (one word per vector), ``i32`` / ``f32`` (four words: byte planes of one
    vector of 32-bit lanes). ``inputs`` are the operands, lane by lane, for the message
    (name -> (kind, values [VL])).
    """

    mem: str
    addr: int
    words: np.ndarray
    what: str
    kind: str = "u8"
    inputs: dict = field(default_factory=dict)


@dataclass
class Directed:
    """One directed program: run ``program`` on SRAM ``mem_init``, then :meth:`check`."""

    name: str
    doc: str
    program: Program
    mem_init: dict[str, np.ndarray]  # MEM slice -> uint8 [mem_words, VL], from address 0
    expected: list[Expect]
    cycles: int = 0  # last dispatch cycle + 1 (skewed)

    @property
    def opcodes(self) -> set[str]:
        return opcodes_of(self.program)

    def check(self, chip) -> None:
        """Compare the SRAM after the run with the expected words.

        ``chip``: anything with ``read_mem(name, addr, n)`` (the golden
        :class:`~lpu.golden.chip.Chip`), or a dict MEM slice -> uint8 [mem_words, VL].

        Raises
        ------
        AssertionError
            Naming the program, the instruction, the SRAM word and lane, the expected
            and actual values and the operands of that lane.
        """
        if isinstance(chip, dict):
            def read(name, addr, n):
                return np.asarray(chip[name])[addr:addr + n]
        else:
            read = chip.read_mem
        for ex in self.expected:
            got = np.asarray(read(ex.mem, ex.addr, ex.words.shape[0]), dtype=np.uint8)
            if np.array_equal(got, ex.words):
                continue
            raise AssertionError(f"directed program {self.name!r}: " + _mismatch(ex, got))


def _mismatch(ex: Expect, got: np.ndarray) -> str:
    n = ex.words.shape[0]
    place = f"{ex.mem}[{ex.addr}..{ex.addr + n - 1}]" if n > 1 else f"{ex.mem}[{ex.addr}]"
    head = f"{ex.what} -> {place}"
    if ex.kind in ("i32", "f32"):
        want, have = _from_planes(ex.words), _from_planes(got)
        lane = int(np.argmax(want != have))
        msg = (f"{head}, lane {lane}: expected {_show(ex.kind, want[lane])}, "
               f"got {_show(ex.kind, have[lane])}")
    else:
        bad = np.argwhere(ex.words != got)[0]
        w, lane = int(bad[0]), int(bad[1])
        msg = (f"{head}, word {ex.addr + w} lane {lane}: expected "
               f"{_show(ex.kind, ex.words[w, lane])}, got {_show(ex.kind, got[w, lane])}")
    if ex.inputs:
        msg += "; operands " + ", ".join(f"{k}={_show(kd, v[lane])}"
                                         for k, (kd, v) in ex.inputs.items())
    return msg


def _show(kind: str, v) -> str:
    v = int(v)
    if kind == "f32":
        return f"0x{v:08x} ({_bits_f32(v)!r})"
    if kind == "i32":
        return f"{v - (1 << 32) if v >= 1 << 31 else v} (0x{v:08x})"
    if kind == "i8":
        return f"{v - 256 if v >= 128 else v} (0x{v:02x})"
    return f"0x{v:02x}"


def _bits_f32(v: int) -> float:
    return float(np.array([v], dtype=np.uint32).view(np.float32)[0])


# -- which opcodes a program contains ---------------------------------------------------------


def opcodes_of(program: Program) -> set[str]:
    """Mnemonics of every instruction word in `program` (decoded from the words)."""
    return {decode(w).info.mnemonic for words in program.queues.values() for w in words}


def all_mnemonics() -> set[str]:
    """Every mnemonic of the ISA (:data:`lpu.isa.OPS`)."""
    return {info.mnemonic for info in OPS.values()}


# -- the reference arithmetic (independent of lpu.golden) -------------------------------------


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def _is_nan(b: int) -> bool:
    return (b >> 23) & 0xFF == 0xFF and b & 0x7FFFFF != 0


def _daz_bits(b: int) -> int:
    """A subnormal input is read as zero of its sign."""
    return b & 0x80000000 if (b >> 23) & 0xFF == 0 else b


def _daz(b: int) -> float:
    """The fp32 input `b` (bits) as a Python float, subnormals read as zero of their sign."""
    return _bits_f32(_daz_bits(b))


def _to_bits(x: float) -> int:
    """Round a float64 to binary32 (nearest even, gradual underflow), then flush a
    subnormal result to zero of its sign and make a NaN canonical."""
    with np.errstate(all="ignore"):
        b = int(np.array([x], dtype=np.float64).astype(np.float32).view(np.uint32)[0])
    if _is_nan(b):
        return 0x7FC00000
    return _daz_bits(b)


def _f_arith(fn):
    def op(a, b):
        if _is_nan(a) or _is_nan(b):
            return 0x7FC00000
        with np.errstate(all="ignore"):
            return _to_bits(float(fn(np.float64(_daz(a)), np.float64(_daz(b)))))
    return op


def _fminmax(a: int, b: int, want_min: bool) -> int:
    if _is_nan(a) or _is_nan(b):
        return 0x7FC00000
    a, b = _daz_bits(a), _daz_bits(b)
    x, y = _bits_f32(a), _bits_f32(b)
    if x == y == 0:  # -0 is below +0 here: min(-0, +0) = -0, max(-0, +0) = +0
        signs = {math.copysign(1.0, x), math.copysign(1.0, y)}
        if want_min:
            return 0x80000000 if -1.0 in signs else 0
        return 0 if 1.0 in signs else 0x80000000
    if x == y:
        return a
    return a if (x < y) == want_min else b


def _fcmp(fn):
    def op(a, b):
        if _is_nan(a) or _is_nan(b):
            return 0
        return M32 if fn(_daz(a), _daz(b)) else 0
    return op


def _round_sat(x: float, lo: int, hi: int) -> int:
    """Round half to even and saturate; NaN gives 0."""
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return hi if x > 0 else lo
    return max(lo, min(hi, round(x)))  # Python's round() of a float: ties to even


def _fneg(a: int) -> int:
    return 0x7FC00000 if _is_nan(a) else _to_bits(-_daz(a))


def _fabs(a: int) -> int:
    return 0x7FC00000 if _is_nan(a) else _to_bits(abs(_daz(a)))


_FMUL = _f_arith(lambda x, y: x * y)

#: mnemonic -> per-lane function of Python ints (32-bit lanes as unsigned bits; one-byte
#: lanes as 0..255); "imm" operands are passed last.
REFERENCE: dict[str, Callable[..., int]] = {
    "add": lambda a, b: (a + b) & M32,
    "sub": lambda a, b: (a - b) & M32,
    "mul": lambda a, b: (_s32(a) * _s32(b)) & M32,
    "min": lambda a, b: min(_s32(a), _s32(b)) & M32,
    "max": lambda a, b: max(_s32(a), _s32(b)) & M32,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "shl": lambda a, b: (a << (b & 31)) & M32,
    "shr": lambda a, b: a >> (b & 31),
    "sra": lambda a, b: (_s32(a) >> (b & 31)) & M32,
    "shli": lambda a, i: (a << i) & M32,
    "shri": lambda a, i: a >> i,
    "srai": lambda a, i: (_s32(a) >> i) & M32,
    "eq": lambda a, b: M32 if a == b else 0,
    "lt": lambda a, b: M32 if _s32(a) < _s32(b) else 0,
    "le": lambda a, b: M32 if _s32(a) <= _s32(b) else 0,
    "sel": lambda a, b, c: a if c != 0 else b,
    "fadd": _f_arith(lambda x, y: x + y),
    "fsub": _f_arith(lambda x, y: x - y),
    "fmul": _FMUL,
    "fmin": lambda a, b: _fminmax(a, b, True),
    "fmax": lambda a, b: _fminmax(a, b, False),
    "feq": _fcmp(lambda x, y: x == y),
    "flt": _fcmp(lambda x, y: x < y),
    "fle": _fcmp(lambda x, y: x <= y),
    "fneg": _fneg,
    "fabs": _fabs,
    "cvt.i8.i32": lambda a: (a - 256 if a >= 128 else a) & M32,
    "cvt.i32.i8": lambda a: max(-128, min(127, _s32(a))) & 0xFF,
    "cvt.i32.f32": lambda a: _to_bits(float(_s32(a))),
    "cvt.f32.i32": lambda a: _round_sat(_daz(a), -(1 << 31), (1 << 31) - 1) & M32,
    "cvt.f32.i8": lambda a, s: _round_sat(_daz(_FMUL(a, s)), -128, 127) & 0xFF,
    "mov": lambda a: a,
    "mov32": lambda a: a,
}


def reference(mnemonic: str, *operands, imm: int | None = None) -> np.ndarray:
    """The expected result of a VXM operation, lane by lane (uint32, or uint8 for a
    one-stream result), from operand arrays [VL] (uint32, or uint8 for one stream)."""
    fn = REFERENCE[mnemonic]
    cols = [np.asarray(o).astype(np.int64).tolist() for o in operands]
    extra = () if imm is None else (imm,)
    out = [fn(*(int(c) for c in lane), *extra) for lane in zip(*cols, strict=True)]
    wide = BY_MNEMONIC[mnemonic].operands[0].width == 4
    return np.array(out, dtype=np.uint32 if wide else np.uint8)


def _to_planes(v: np.ndarray) -> np.ndarray:
    """[VL] uint32 -> [4, VL] uint8 byte planes, least significant first."""
    return np.ascontiguousarray(np.asarray(v, dtype="<u4").view(np.uint8).reshape(-1, 4).T)


def _from_planes(w: np.ndarray) -> np.ndarray:
    """[4, VL] uint8 -> [VL] uint32."""
    return np.ascontiguousarray(np.asarray(w, dtype=np.uint8).T).view("<u4").reshape(-1)


# -- placing instructions: queues, stream registers, SRAM -------------------------------------


class _Txn:
    """Instructions, stream-register claims and SRAM words that go in together or not at
    all (the scheduler tries a placement and drops it if anything collides)."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.ins: list[tuple[str, int, Instr]] = []
        self.busy: dict[tuple, str] = {}  # (queue, cycle), (queue, 'bank', bank, cycle)
        self.claims: dict[tuple, tuple] = {}
        self.data: dict[tuple, int] = {}
        self.alloc: dict[tuple[str, int], int] = {}
        self.expects: list[Expect] = []
        self.problem: str | None = None

    # instructions
    def at(self, queue: str, cycle: int, mnemonic, *operands, **kw) -> Instr:
        ins = mnemonic if isinstance(mnemonic, Instr) else make(mnemonic, *operands, **kw)
        self._busy(queue, cycle, ins.text())
        self._bank(queue, cycle, ins)
        self.ins.append((queue, cycle, ins))
        return ins

    def repeat(self, queue: str, cycle: int, n: int, d: int, step: int = 1) -> None:
        """`repeat n, d, step` after the instruction placed at `cycle`: copies at
        cycle + d .. cycle + n*d, the queue busy until then."""
        prev = next(ins for q, c, ins in self.ins if (q, c) == (queue, cycle))
        field = {"read": "addr", "write": "addr", "gather": "base", "lw": "row"}.get(
            prev.info.mnemonic)
        for k in range(1, n + 1):
            if field is not None:
                self._bank(queue, cycle + k * d,
                           prev.with_args(**{field: prev.args[field] + k * step}))
        for c in range(cycle + 1, cycle + n * d + 1):
            self._busy(queue, c, "repeat")
        self.ins.append((queue, cycle + 1, make("repeat", n, d, step)))

    def _bank(self, queue: str, cycle: int, ins: Instr) -> None:
        """One access (read, write or a gather's read) per SRAM bank and cycle."""
        m = ins.info.mnemonic
        if m not in ("read", "write", "gather"):
            return
        addr = ins.args["base" if m == "gather" else "addr"]
        key = (queue, "bank", addr // self.plan.cfg.bank_words, cycle + (m != "read"))
        if key in self.busy or key in self.plan.busy:
            self.problem = self.problem or (f"{queue}: bank {key[2]} is used in cycle "
                                            f"{key[3]} ('{ins.text()}')")
        self.busy[key] = ins.text()

    def _busy(self, queue, cycle, text):
        key = (queue, cycle)
        if cycle < 0:
            self.problem = self.problem or f"{queue}: '{text}' at negative cycle {cycle}"
        if key in self.busy or key in self.plan.busy:
            self.problem = self.problem or f"{queue} is busy at cycle {cycle} ('{text}')"
        self.busy[key] = text

    # stream registers
    def flow(self, src: str, ref: tuple[int, int], width: int, t: int, dst: str) -> int:
        """A value written by the slice at `src` on streams `ref` (`width` of them) at
        cycle `t`, read by the slice at `dst`: claim every register it sits in on the
        way (no other slice may write them then). Returns the cycle `dst` reads it."""
        p, q = self.plan.pos[src], self.plan.pos[dst]
        s0, dr = ref
        step = 1 if dr == E else -1
        if (q - p) * step <= 0:
            raise DirectedError(f"{dst} is not downstream of {src} on {'ew'[dr]} streams")
        token = (p, dr, t, s0)
        for k, pp in enumerate(range(p, q, step)):
            for s in range(s0, s0 + width):
                key = (pp, dr, s, t + k)
                old = self.claims.get(key, self.plan.claims.get(key))
                if old is not None and old != token:
                    self.problem = self.problem or (
                        f"stream {'ew'[dr]}{s} at {self.plan.names[pp]} in cycle {t + k} is "
                        "taken")
                self.claims[key] = token
        return t + abs(q - p)

    def send(self, src: str, t: int, addr: int, ref: tuple[int, int], n: int, dst: str) -> int:
        """`read addr, ref, n` on `src` at `t`, read by `dst`: the cycle it reads."""
        self.at(src, t, "read", addr, ref, n)
        return self.flow(src, ref, n, t + 1, dst)

    # SRAM
    def put(self, mem: str, words: np.ndarray, bank: int = 0) -> int:
        """Place initial words (uint8 [n, VL]) in one bank of `mem`; equal words share."""
        words = np.asarray(words, dtype=np.uint8).reshape(-1, self.plan.cfg.vl)
        key = (mem, bank, words.tobytes())
        if key in self.plan.data:
            return self.plan.data[key]
        if key in self.data:
            return self.data[key]
        addr = self.take(mem, words.shape[0], bank)
        self.data[key] = addr
        return addr

    def take(self, mem: str, n: int, bank: int) -> int:
        """Reserve `n` consecutive words in one bank."""
        k = (mem, bank)
        addr = self.plan.next[k] + self.alloc.get(k, 0)
        if addr + n > (bank + 1) * self.plan.cfg.bank_words:
            self.problem = self.problem or f"bank {bank} of {mem} is full"
        self.alloc[k] = self.alloc.get(k, 0) + n
        return addr

    def expect(self, mem: str, addr: int, words, what: str, kind: str = "u8",
               inputs: dict | None = None) -> None:
        words = np.asarray(words, dtype=np.uint8).reshape(-1, self.plan.cfg.vl)
        self.expects.append(Expect(mem, addr, words, what, kind, dict(inputs or {})))

    def commit(self) -> None:
        if self.problem:
            raise DirectedError(f"directed program {self.plan.name!r}: {self.problem}")
        self.plan._commit(self)


class _Plan:
    """A program being placed: queue cycles, stream claims, SRAM contents, expectations."""

    def __init__(self, cfg: ChipConfig, name: str, doc: str):
        self.cfg = cfg
        self.name, self.doc = name, doc
        self.pos = {p.name: p.index for p in cfg.positions}
        self.pos.update({q.name: q.position for q in cfg.queues})
        self.names = {p.index: p.name for p in cfg.positions}
        self.busy: dict[tuple, str] = {}
        self.claims: dict[tuple, tuple] = {}
        self.data: dict[tuple, int] = {}
        self.next = {(q.name, b): b * cfg.bank_words
                     for q in cfg.queues if q.kind == "mem" for b in (0, 1)}
        self.mem = {q.name: np.zeros((cfg.mem_words, cfg.vl), dtype=np.uint8)
                    for q in cfg.queues if q.kind == "mem"}
        self.ins: list[tuple[str, int, Instr]] = []
        self.syncs: dict[str, list[tuple[int, int]]] = {}
        self.expected: list[Expect] = []

    def txn(self) -> _Txn:
        return _Txn(self)

    def _commit(self, tx: _Txn) -> None:
        self.busy.update(tx.busy)
        self.claims.update(tx.claims)
        for (mem, bank, blob), addr in tx.data.items():
            words = np.frombuffer(blob, dtype=np.uint8).reshape(-1, self.cfg.vl)
            self.mem[mem][addr:addr + words.shape[0]] = words
            self.data[(mem, bank, blob)] = addr
        for k, n in tx.alloc.items():
            self.next[k] += n
        self.ins += tx.ins
        self.expected += tx.expects

    def place(self, fn: Callable[[_Txn, int], None], lo: int) -> int:
        """Call ``fn(tx, t)`` for t = lo, lo + 1, .. and commit the first that fits."""
        for t in range(lo, lo + 256):
            tx = self.txn()
            fn(tx, t)
            if tx.problem is None:
                tx.commit()
                return t
        raise DirectedError(f"directed program {self.name!r}: no room after cycle {lo}")

    def one(self) -> _Txn:
        """A transaction placed by hand: commit it with ``with``."""
        return _Hand(self)

    def sync(self, queue: str, cycle: int, resume: int) -> None:
        """`queue` reaches a ``sync`` at `cycle` and resumes at `resume` (the cycle after
        the releasing ``notify``)."""
        if resume <= cycle:
            raise DirectedError(f"{queue}: a sync at {cycle} cannot resume at {resume}")
        with self.one() as tx:
            for c in range(cycle, resume):
                tx._busy(queue, c, "sync")
            tx.ins.append((queue, cycle, make("sync")))
        self.syncs.setdefault(queue, []).append((cycle, resume))

    def build(self) -> Directed:
        from lpu.golden.check import check

        b = ProgramBuilder(self.cfg)
        for queue, cycle, ins in sorted(self.ins, key=lambda x: (x[0], x[1])):
            # after a sync, the builder's cycles run behind the real ones
            lag = sum(r - c - 1 for c, r in self.syncs.get(queue, ()) if c < cycle)
            b.at(queue, cycle - lag, ins)
        program = b.program()
        tl = check(self.cfg, program, name=f"directed program {self.name!r}").timeline
        return Directed(self.name, self.doc, program, self.mem, self.expected, tl.end)


class _Hand(_Txn):
    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.commit()


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


def _place_vxm(plan: _Plan, op: _VxmOp, lo: int) -> int:
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


def _vxm_txn(plan, op, info, want, t, alu, route, dst, keeper) -> _Txn:
    tx = plan.txn()
    args = []
    names = []
    for o, val, (src, ref) in zip(info.reads, op.operands, route, strict=True):
        words = _to_planes(val) if o.width == 4 else np.asarray(val, np.uint8)[None, :]
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
        tx.expect(keeper, out, _to_planes(want), f"'{ins.text()}' ({alu}, cycle {t})", rk,
                  {n: (op.kind if o.width == 4 else "i8", v)
                   for n, o, v in zip(names, info.reads, op.operands, strict=True)})
    else:
        tx.expect(keeper, out, want[None, :], f"'{ins.text()}' ({alu}, cycle {t})", rk,
                  {n: (op.kind if o.width == 4 else "i8", v)
                   for n, o, v in zip(names, info.reads, op.operands, strict=True)})
    return tx


def _vxm_program(cfg: ChipConfig, name: str, doc: str, ops: list[_VxmOp]) -> Directed:
    plan = _Plan(cfg, name, doc)
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


# -- MEM and the ICU --------------------------------------------------------------------------


def _mem(cfg: ChipConfig) -> Directed:
    plan = _Plan(cfg, "mem", "read/write of 1-4 words, repeat, gather, sync/notify")
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


def _load_weights(plan: _Plan, tx: _Txn, plane: str, mem: str, ref, w: np.ndarray, t0: int,
                  groups: list[tuple[int, int]]) -> int:
    """Weight rows `w` (int8 [VL, VL]) from `mem` onto streams `ref`, one read per group of
    rows on consecutive cycles from t0, each loaded by an ``lw`` of the MXM `plane` as it
    arrives. groups: [(row, count)]; runs of 4-row groups use ``repeat`` (step 4) on both
    queues. Returns the cycle of the last ``lw``."""
    s0, dr = ref
    dist = abs(plan.pos[mem] - plan.pos[plane])
    addr = tx.put(mem, w.view(np.uint8))
    t = t0
    i = 0
    while i < len(groups):
        row, n = groups[i]
        run = 1
        while n == 4 and i + run < len(groups) and groups[i + run] == (row + 4 * run, 4):
            run += 1
        tx.send(mem, t, addr + row, (s0, dr), n, plane)
        tx.at(plane, t + 1 + dist, "lw", row, (s0, dr), n)
        if run > 1:
            for k in range(1, run):
                tx.flow(mem, (s0, dr), n, t + k + 1, plane)
            tx.repeat(mem, t, run - 1, 1, 4)
            tx.repeat(plane, t + 1 + dist, run - 1, 1, 4)
        t += run
        i += run
    return t + dist


def _mxm(cfg: ChipConfig) -> Directed:
    plan = _Plan(cfg, "mxm", "lw/iw/mm/mmacc on both planes, double buffering")
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
            tx.expect(keeper, o, _to_planes(want), what, "i32", {"x": ("i8", x.view(np.uint8))})

    fours = [(r, 4) for r in range(0, vl, 4)]
    mixed = [(0, 3), (3, 1)] + [(r, 4) for r in range(4, vl, 4)]
    w1, w2, w3 = weights(), weights(), weights()
    x = [xvec() for _ in range(8)]
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
        wmix = np.concatenate([w2[:vl - 4], w1[vl - 4:]])
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
    plan = _Plan(cfg, "sxm", "shift/rot/bcast/perm/transpose on both SXM slices")
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
    plan = _Plan(cfg, "chain", "MEM -> SXM -> MXM -> VXM -> SXM -> VXM -> MXM -> VXM -> MEM, "
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
        words = _to_planes(want) if width == 4 else np.asarray(want, np.uint8)[None, :]
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
            a_s = tx.put("mem_w0", _to_planes(scale))
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
            a_b = tx.put("mem_w0", _to_planes(bias))
            tx.send("mem_w0", tv3 - 2, a_b, (4, E), 4, "vxm")
            tx.at(vxm[0], tv3, "add", (0, E), (0, W), (4, E))
            keep(tx, "vxm", (0, E), 4, tv3 + 1, "mem_e1",
                 f"add e0, w0, e4 ({vxm[0]}, cycle {tv3}) of the second mm and a bias", out,
                 "i32", {"a": ("i32", z), "b": ("i32", bias)})
        plan.place(one, 0)
    return plan.build()


# -- the set ----------------------------------------------------------------------------------

_BUILDERS = {"mem": _mem, "vxm_int": _vxm_int, "vxm_fp": _vxm_fp, "mxm": _mxm, "sxm": _sxm,
             "chain": _chain}


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


# -- command line -----------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lpu.sim.directed",
        description="The directed programs (every opcode): list them, write them as "
                    "assembly and SRAM images, or run them on the golden model and check.")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--list", action="store_true", help="name, cycles, words, opcodes")
    ap.add_argument("--write", metavar="DIR",
                    help="write NAME.s and NAME.npz (initial SRAM, for --mem-in) per program")
    ap.add_argument("--check", action="store_true",
                    help="run each on the golden model and check the SRAM it leaves")
    ap.add_argument("names", nargs="*", help="only these programs")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        progs = [d for d in directed_programs(cfg) if not args.names or d.name in args.names]
    except LpuError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    unknown = set(args.names) - {d.name for d in progs}
    if unknown:
        print(f"error: no directed program {', '.join(sorted(unknown))}; there are "
              f"{', '.join(_BUILDERS)}", file=sys.stderr)
        return 1
    if args.list or not (args.write or args.check):
        for d in progs:
            words = sum(len(w) for w in d.program.queues.values())
            print(f"{d.name:8} {d.cycles:4} cycles {words:4} words {len(d.expected):3} checks "
                  f" {len(d.opcodes):2} opcodes: {' '.join(sorted(d.opcodes))}")
        every = set().union(*(d.opcodes for d in progs)) if progs else set()
        missing = all_mnemonics() - every
        print(f"{len(every)} of {len(all_mnemonics())} opcodes"
              + (f"; missing: {' '.join(sorted(missing))}" if missing else ""))
    if args.write:
        from lpu.tools.asm import disassemble

        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for d in progs:
            (out / f"{d.name}.s").write_text(
                f"; directed program {d.name!r} ({d.doc}); config {cfg.name}\n"
                f"; initial SRAM: {d.name}.npz (lpu run/sim --mem-in)\n"
                + disassemble(d.program, cfg))
            np.savez(out / f"{d.name}.npz", **d.mem_init)
            print(f"{out / d.name}.s, .npz")
    if args.check:
        from lpu.golden.chip import Chip

        bad = 0
        for d in progs:
            chip = Chip(cfg)
            for name, words in d.mem_init.items():
                chip.write_mem(name, 0, words)
            chip.load(d.program)
            chip.run()
            try:
                d.check(chip)
                print(f"{d.name}: ok ({len(d.expected)} checks)")
            except AssertionError as e:
                bad += 1
                print(f"{d.name}: FAILED: {e}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
