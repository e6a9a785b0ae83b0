"""The instruction set: every instruction format and opcode, defined once.

Every instruction is one 32-bit word: a 6-bit :class:`Opcode` in bits 0-5 and a
26-bit payload whose layout depends on the opcode (:class:`Payload`). The layouts
are Amaranth ``data`` structures, so the HDL decodes exactly the same bits that the
assembler encodes and the golden model and disassembler decode here.

The table :data:`OPS` gives, for each opcode, its mnemonic, the slice kind that
executes it, its operands in assembly order, the streams it reads and writes, and
its functional delay ``d``: the result of an instruction dispatched at cycle ``t``
is written at cycle ``t + d`` (plus ``k`` on superlane ``k``). Delays of whole-vector
operations depend on the number of superlanes ``S``. ``docs/isa.md`` is generated
from this table (``lpu isadoc``).
"""



import functools
from dataclasses import dataclass, field

from amaranth.hdl import signed as _signed
from amaranth.lib import data, enum

from .errors import LpuError

__all__ = [
    "ISA_VERSION", "Direction", "StreamRef", "Opcode", "Instruction", "Payload",
    "OpInfo", "Operand", "OPS", "BY_MNEMONIC", "Instr", "encode", "decode", "IsaError",
    "make", "E", "W", "UNITS", "ICU_OPCODES", "opcodes_of", "VXM_OPCODES", "field_width",
    "NOP_MAX", "REPEAT_N_MAX", "REPEAT_D_MAX", "REPEAT_STEP_MIN", "REPEAT_STEP_MAX",
    "drain_cycles",
]

ISA_VERSION = (1, 3)
WORD_BITS = 32


class IsaError(LpuError, ValueError):
    """An instruction cannot be encoded or decoded."""


class Direction(enum.Enum, shape=1):
    """Flow direction of a stream. East-flowing values move to higher positions."""

    EAST = 0
    WEST = 1


class StreamRef(data.Struct):
    """A stream register: its index (0..streams-1) and its direction."""

    stream: 5
    dir: Direction


class Opcode(enum.Enum, shape=6):
    """All opcodes. ICU opcodes (0-3) are valid in every queue."""

    # ICU (every queue)
    NOP = 0
    REPEAT = 1
    SYNC = 2
    NOTIFY = 3
    # MEM
    READ = 4
    WRITE = 5
    GATHER = 6
    # VXM: int32
    ADD = 8
    SUB = 9
    MUL = 10
    MIN = 11
    MAX = 12
    AND = 13
    OR = 14
    XOR = 15
    SHL = 16
    SHR = 17
    SRA = 18
    SHLI = 19
    SHRI = 20
    SRAI = 21
    EQ = 22
    LT = 23
    LE = 24
    SEL = 25
    # VXM: fp32
    FADD = 26
    FSUB = 27
    FMUL = 28
    FMIN = 29
    FMAX = 30
    FEQ = 31
    FLT = 32
    FLE = 33
    FNEG = 34
    FABS = 35
    # VXM: conversions and moves
    CVT_I8_I32 = 36
    CVT_I32_I8 = 37
    CVT_I32_F32 = 38
    CVT_F32_I32 = 39
    CVT_F32_I8 = 40
    MOV = 41
    MOV32 = 42
    # MXM
    LW = 44
    IW = 45
    MM = 46
    MMACC = 47
    # SXM
    SHIFT = 48
    ROT = 49
    BCAST = 50
    PERM = 51
    TRANSPOSE = 52
    # MXM, ISA 1.2
    LWI = 53
    # C2C, ISA 1.3
    SEND = 54
    RECV = 55


# -- payload formats (26 bits; field order is least significant first) -----------------


class NopFormat(data.Struct):
    n: 20


class RepeatFormat(data.Struct):
    n: 12
    d: 8
    step: _signed(6)


class MemFormat(data.Struct):
    addr: 14
    s: StreamRef
    count: 2  # words moved minus one


class GatherFormat(data.Struct):
    addr: 14
    src: StreamRef
    dst: StreamRef


class AluFormat(data.Struct):
    dst: StreamRef
    a: StreamRef
    b: StreamRef
    c: StreamRef
    la: 1  # a is VXM-held (ISA 1.1): the value the VXM last wrote to stream a
    lb: 1  # b likewise


class AluImmFormat(data.Struct):
    dst: StreamRef
    a: StreamRef
    imm: 8
    la: 1  # a is VXM-held (ISA 1.1)


class LwFormat(data.Struct):
    row: 9
    src: StreamRef
    count: 5  # rows loaded minus one


class MmFormat(data.Struct):
    dst: StreamRef
    src: StreamRef
    slot: 4
    emit: 1


class SxmFormat(data.Struct):
    dst: StreamRef
    src: StreamRef
    count: 2  # streams moved minus one
    n: _signed(10)


class PermFormat(data.Struct):
    dst: StreamRef
    src: StreamRef
    count: 2
    map: StreamRef


class C2cFormat(data.Struct):
    link: 3
    s: StreamRef
    count: 2  # vectors moved minus one


class Payload(data.Union):
    nop: NopFormat
    repeat: RepeatFormat
    mem: MemFormat
    gather: GatherFormat
    alu: AluFormat
    alui: AluImmFormat
    lw: LwFormat
    mm: MmFormat
    sxm: SxmFormat
    perm: PermFormat
    c2c: C2cFormat


class Instruction(data.Struct):
    """One 32-bit instruction word."""

    opcode: Opcode
    payload: Payload


assert data.Layout.cast(Instruction).size <= WORD_BITS


# -- the opcode table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Operand:
    """One assembly operand.

    kind: ``sr`` stream read, ``sw`` stream write, ``sw?`` stream write or ``-`` for
    none, ``addr`` MEM address, ``row`` MXM weight row, ``link`` C2C link (ISA 1.3),
    ``u`` unsigned immediate,
    ``s`` signed immediate. ``width`` is the number of consecutive streams (1 or 4;
    0 means VL streams, for ``transpose``) for stream operands. ``field`` is the
    payload field it fills. ``held``, for a VXM stream read, names the one-bit payload
    field (and the instruction argument) that makes it a *held* read (ISA 1.1): the
    value the VXM itself last wrote to those streams, written in assembly ``veN`` /
    ``vwN`` instead of ``eN`` / ``wN``.
    """

    name: str
    kind: str
    field: str
    width: int = 1
    default: int | None = None
    bits: int = 0
    held: str | None = None


@dataclass(frozen=True)
class OpInfo:
    opcode: Opcode
    mnemonic: str
    unit: str  # "icu" | "mem" | "vxm" | "mxm" | "sxm" | "c2c"
    fmt: str  # member of Payload
    operands: tuple[Operand, ...]
    delay: tuple[int, int]  # (constant, per-superlane): d = c + a * S
    doc: str
    steps: str | None = None  # payload field Repeat steps ("addr" / "row")
    dtype: str = ""  # "i32", "f32", "i8" for VXM ops (for docs and generators)

    def d(self, superlanes: int) -> int:
        """Functional delay in cycles on a chip with `superlanes` superlanes."""
        c, a = self.delay
        return c + a * superlanes

    @property
    def delay_text(self) -> str:
        c, a = self.delay
        if a == 0:
            return str(c)
        return f"S+{c}" if c else "S"

    @property
    def reads(self) -> tuple[Operand, ...]:
        return tuple(o for o in self.operands if o.kind == "sr")

    @property
    def writes(self) -> tuple[Operand, ...]:
        return tuple(o for o in self.operands if o.kind in ("sw", "sw?"))

    @property
    def held_flags(self) -> tuple[str, ...]:
        """The held-read flag arguments of this opcode (``la``, ``lb``; ISA 1.1)."""
        return tuple(o.held for o in self.operands if o.held)


def _sr(name, fld, w=1):
    return Operand(name, "sr", fld, w)


def _sw(name, fld, w=1):
    return Operand(name, "sw", fld, w)


OPS: dict[Opcode, OpInfo] = {}


def _op(opc, mnem, unit, fmt, operands, delay, doc, *, steps=None, dtype=""):
    if isinstance(delay, int):
        delay = (delay, 0)
    OPS[opc] = OpInfo(opc, mnem, unit, fmt, tuple(operands), delay, doc, steps, dtype)


# ICU
_op(Opcode.NOP, "nop", "icu", "nop", [Operand("n", "u", "n", default=1, bits=20)], 0,
    "Idle this queue for n cycles (n >= 1); the next instruction dispatches n cycles later.")
_op(Opcode.REPEAT, "repeat", "icu", "repeat",
    [Operand("n", "u", "n", bits=12), Operand("d", "u", "d", bits=8),
     Operand("step", "s", "step", default=1, bits=6)], 0,
    "Re-issue the previous instruction n times, d cycles apart (d >= 1), adding step to "
    "its address (MEM) or row (MXM lw) each time. If the previous instruction was "
    "dispatched at t, the copies dispatch at t+d, t+2d, .., t+nd and the next "
    "instruction at t+nd+1.")
_op(Opcode.SYNC, "sync", "icu", "nop", [], 0,
    "Park this queue until a Notify is dispatched (by any queue) at or after this cycle; "
    "the next instruction dispatches the cycle after that Notify.")
_op(Opcode.NOTIFY, "notify", "icu", "nop", [], 0,
    "Release every queue parked at a Sync.")

# MEM
_MEM_CNT = Operand("count", "u", "count", default=1, bits=2)
_op(Opcode.READ, "read", "mem", "mem", [Operand("addr", "addr", "addr", bits=14),
                                        _sw("dst", "s"), _MEM_CNT], 1,
    "Read the count (1..4) words at addr..addr+count-1, all in one bank (SRAM read in "
    "cycle t), and write them to streams dst..dst+count-1.", steps="addr")
_op(Opcode.WRITE, "write", "mem", "mem", [Operand("addr", "addr", "addr", bits=14),
                                          _sr("src", "s"), _MEM_CNT], 1,
    "Take the vectors on streams src..src+count-1 (cycle t) and write them at "
    "addr..addr+count-1, all in one bank (SRAM write in cycle t+1).", steps="addr")
_op(Opcode.GATHER, "gather", "mem", "gather",
    [Operand("base", "addr", "addr", bits=14), _sr("idx", "src"), _sw("dst", "dst")], 2,
    "Per lane j: read byte j of the word at base + idx[j] (idx unsigned, cycle t; SRAM "
    "read in cycle t+1, all in the bank of base) and write it to stream dst.",
    steps="addr")

# VXM int32 (4-stream groups, byte planes least significant first)
def _ha(w=4):
    """Operand a of a VXM ALU instruction: a stream group, or VXM-held (``la``)."""
    return Operand("a", "sr", "a", w, held="la")


def _hb(name="b", w=4):
    """Operand b of a VXM ALU instruction (``lb``)."""
    return Operand(name, "sr", "b", w, held="lb")


_I3 = lambda: [_sw("dst", "dst", 4), _ha(), _hb()]  # noqa: E731
for _opc, _m, _d, _doc in [
    (Opcode.ADD, "add", 1, "dst = a + b (int32, wrapping)"),
    (Opcode.SUB, "sub", 1, "dst = a - b (int32, wrapping)"),
    (Opcode.MUL, "mul", 2, "dst = low 32 bits of a * b"),
    (Opcode.MIN, "min", 1, "dst = min(a, b) (signed)"),
    (Opcode.MAX, "max", 1, "dst = max(a, b) (signed)"),
    (Opcode.AND, "and", 1, "dst = a & b"),
    (Opcode.OR, "or", 1, "dst = a | b"),
    (Opcode.XOR, "xor", 1, "dst = a ^ b"),
    (Opcode.SHL, "shl", 1, "dst = a << (b & 31)"),
    (Opcode.SHR, "shr", 1, "dst = a >> (b & 31), logical"),
    (Opcode.SRA, "sra", 1, "dst = a >> (b & 31), arithmetic"),
    (Opcode.EQ, "eq", 1, "dst = -1 if a == b else 0"),
    (Opcode.LT, "lt", 1, "dst = -1 if a < b else 0 (signed)"),
    (Opcode.LE, "le", 1, "dst = -1 if a <= b else 0 (signed)"),
]:
    _op(_opc, _m, "vxm", "alu", _I3(), _d, _doc, dtype="i32")
for _opc, _m, _doc in [
    (Opcode.SHLI, "shli", "dst = a << imm"),
    (Opcode.SHRI, "shri", "dst = a >> imm, logical"),
    (Opcode.SRAI, "srai", "dst = a >> imm, arithmetic"),
]:
    _op(_opc, _m, "vxm", "alui",
        [_sw("dst", "dst", 4), _ha(), Operand("imm", "u", "imm", bits=5)], 1,
        _doc + " (imm 0..31)", dtype="i32")
_op(Opcode.SEL, "sel", "vxm", "alu",
    [_sw("dst", "dst", 4), _ha(), _hb(), _sr("c", "c", 4)], 1,
    "dst = a if c != 0 else b (32-bit lanes)", dtype="i32")

# VXM fp32
_F = "IEEE binary32, round to nearest even; subnormal inputs and results are zero of the same sign; NaN results are 0x7FC00000"  # noqa: E501
for _opc, _m, _d, _doc in [
    (Opcode.FADD, "fadd", 3, "dst = a + b"),
    (Opcode.FSUB, "fsub", 3, "dst = a - b"),
    (Opcode.FMUL, "fmul", 3, "dst = a * b"),
    (Opcode.FMIN, "fmin", 1, "dst = min(a, b); NaN if either is NaN; min(-0, +0) = -0"),
    (Opcode.FMAX, "fmax", 1, "dst = max(a, b); NaN if either is NaN; max(-0, +0) = +0"),
    (Opcode.FEQ, "feq", 1, "dst = -1 if a == b else 0 (int32; false on NaN; -0 == +0)"),
    (Opcode.FLT, "flt", 1, "dst = -1 if a < b else 0 (int32; false on NaN)"),
    (Opcode.FLE, "fle", 1, "dst = -1 if a <= b else 0 (int32; false on NaN)"),
]:
    _op(_opc, _m, "vxm", "alu", _I3(), _d, f"{_doc}. {_F}.", dtype="f32")
_op(Opcode.FNEG, "fneg", "vxm", "alu", [_sw("dst", "dst", 4), _ha()], 1,
    f"dst = -a. {_F}.", dtype="f32")
_op(Opcode.FABS, "fabs", "vxm", "alu", [_sw("dst", "dst", 4), _ha()], 1,
    f"dst = |a|. {_F}.", dtype="f32")

# VXM conversions and moves
_op(Opcode.CVT_I8_I32, "cvt.i8.i32", "vxm", "alu", [_sw("dst", "dst", 4), _ha(1)],
    1, "int8 (one stream) to int32 (four streams), sign-extended.", dtype="i8")
_op(Opcode.CVT_I32_I8, "cvt.i32.i8", "vxm", "alu", [_sw("dst", "dst", 1), _ha()],
    1, "int32 to int8, saturated to -128..127.", dtype="i32")
_op(Opcode.CVT_I32_F32, "cvt.i32.f32", "vxm", "alu", [_sw("dst", "dst", 4), _ha()],
    2, "int32 to fp32, round to nearest even.", dtype="i32")
_op(Opcode.CVT_F32_I32, "cvt.f32.i32", "vxm", "alu", [_sw("dst", "dst", 4), _ha()],
    2, "fp32 to int32, round to nearest even, saturated; NaN gives 0.", dtype="f32")
_op(Opcode.CVT_F32_I8, "cvt.f32.i8", "vxm", "alu",
    [_sw("dst", "dst", 1), _ha(), _hb("scale")], 4,
    "fp32 to int8 with scale: fmul(a, scale) (as fmul), then round to nearest even, "
    "saturated to -128..127; NaN gives 0.", dtype="f32")
_op(Opcode.MOV, "mov", "vxm", "alu", [_sw("dst", "dst", 1), _ha(1)], 1,
    "Copy one stream (for example, to turn a value around to the other direction).",
    dtype="i8")
_op(Opcode.MOV32, "mov32", "vxm", "alu", [_sw("dst", "dst", 4), _ha()], 1,
    "Copy a group of four streams.", dtype="i32")

# MXM (weights W[k][n], k = input lane, n = output lane; y[n] = sum_k x[k] * W[k][n])
_LW_OPERANDS = [Operand("row", "row", "row", bits=9), _sr("src", "src"),
                Operand("count", "u", "count", default=1, bits=5)]
_op(Opcode.LW, "lw", "mxm", "lw", _LW_OPERANDS, 1,
    "Load weight rows row..row+count-1 of the shadow buffer from streams "
    "src..src+count-1 (int8; cycle t in, shadow written in cycle t+1).", steps="row")
_op(Opcode.LWI, "lwi", "mxm", "lw", _LW_OPERANDS, 2,
    "Load and install (ISA 1.2): as lw, then the shadow is installed as an iw "
    "dispatched at t+2 would install it (as it was at the end of t+1, these rows "
    "included); an mm from t+3 on uses them. No queue slot at t+2 is taken.", steps="row")
_op(Opcode.IW, "iw", "mxm", "mm", [], 0,
    "Install the shadow buffer as the active weights at the end of cycle t (reads the "
    "shadow as it was at the end of t-1). An mm from t+1 on uses them.")
_op(Opcode.MM, "mm", "mxm", "mm",
    [Operand("dst", "sw?", "dst", 4), _sr("src", "src"), Operand("slot", "u", "slot", bits=4)],
    (2, 1),
    "acc[slot] = x @ W (int8 x int8 -> exact int32 over the whole vector x on stream src); "
    "written, and sent to dst (four streams) unless dst is '-', at cycle t+S+2.")
_op(Opcode.MMACC, "mmacc", "mxm", "mm",
    [Operand("dst", "sw?", "dst", 4), _sr("src", "src"), Operand("slot", "u", "slot", bits=4)],
    (2, 1), "acc[slot] += x @ W (int32, wrapping); otherwise as mm.")

# SXM (whole vector; count = 1..4 consecutive streams moved together)
_SXM_CNT = Operand("count", "u", "count", default=1, bits=2)
_op(Opcode.SHIFT, "shift", "sxm", "sxm",
    [_sw("dst", "dst"), _sr("src", "src"), Operand("n", "s", "n", bits=10), _SXM_CNT], (1, 1),
    "dst[i] = src[i - n] across the whole vector (n > 0 moves data toward higher lanes, "
    "north); vacated lanes are 0.")
_op(Opcode.ROT, "rot", "sxm", "sxm",
    [_sw("dst", "dst"), _sr("src", "src"), Operand("n", "s", "n", bits=10), _SXM_CNT], (1, 1),
    "dst[i] = src[(i - n) mod VL].")
_op(Opcode.BCAST, "bcast", "sxm", "sxm",
    [_sw("dst", "dst"), _sr("src", "src"), Operand("lane", "u", "n", bits=9), _SXM_CNT], (1, 1),
    "dst[i] = src[lane] for every lane i.")
_op(Opcode.PERM, "perm", "sxm", "perm",
    [_sw("dst", "dst"), _sr("src", "src"), _sr("map", "map", 2), _SXM_CNT], (1, 1),
    "dst[i] = src[map[i]] where map is uint16 on streams map, map+1 (low byte first); "
    "map[i] must be below VL.")

_op(Opcode.TRANSPOSE, "transpose", "sxm", "sxm",
    [Operand("dst", "sw", "dst", 0), Operand("src", "sr", "src", 0)], (1, 1),
    "Transpose a VL x VL byte block held on VL consecutive streams: dst stream i, lane j "
    "= src stream j, lane i (streams src..src+VL-1 and dst..dst+VL-1; needs streams >= "
    "VL). Width 0 in the table means VL streams.")

# C2C (ISA 1.3): vectors over a numbered link; even links at the west edge (c2c_w), odd
# ones at the east edge (c2c_e); the latency L and the width are the config's
_C2C_OPERANDS = lambda kind, name: [  # noqa: E731
    Operand("link", "link", "link", bits=3), Operand(name, kind, "s"),
    Operand("count", "u", "count", default=1, bits=2)]
_op(Opcode.SEND, "send", "c2c", "c2c", _C2C_OPERANDS("sr", "src"), 0,
    "Send the vectors on streams src..src+count-1 (cycle t; count up to the config's "
    "c2c_width) over link `link` (ISA 1.3): they arrive at the link's other end at t+L "
    "(L = c2c_latency), where a recv of the same count must be dispatched at t+L.")
_op(Opcode.RECV, "recv", "c2c", "c2c", _C2C_OPERANDS("sw", "dst"), 1,
    "Receive the count vectors arriving over link `link` in cycle t (sent at t-L by the "
    "chip at its other end) and write them to streams dst..dst+count-1 at t+1 (ISA 1.3). "
    "A recv with nothing arriving, or a send with no recv at its arrival, is illegal.")

BY_MNEMONIC: dict[str, OpInfo] = {info.mnemonic: info for info in OPS.values()}

#: opcode -> its held-read flag arguments (ISA 1.1), for the opcodes that have any.
_HELD_FLAGS: dict[Opcode, tuple[str, ...]] = {op: info.held_flags for op, info in OPS.items()
                                              if info.held_flags}

# -- facts derived from the table and the layouts (one definition each) ---------------------

#: Stream directions as plain integers (the values of :class:`Direction`), as the golden
#: model, the compiler and the program generators index them.
E: int = Direction.EAST.value
W: int = Direction.WEST.value

#: Slice kinds that execute instructions, in floorplan order of first appearance.
UNITS = ("icu", "mem", "vxm", "mxm", "sxm", "c2c")


def opcodes_of(unit: str) -> tuple[Opcode, ...]:
    """The opcodes executed by slice kind `unit` (``"icu"`` ones run in every queue)."""
    if unit not in UNITS:
        raise ValueError(f"Unit must be one of {', '.join(UNITS)}, not {unit!r}")
    return tuple(op for op, info in OPS.items() if info.unit == unit)


#: ICU opcodes (valid in every queue) and VXM ALU opcodes.
ICU_OPCODES: tuple[Opcode, ...] = opcodes_of("icu")
VXM_OPCODES: tuple[Opcode, ...] = opcodes_of("vxm")


def drain_cycles(superlanes: int) -> int:
    """The run's drain (docs/timing.md, "The end of a run"): cycles after every queue has
    finished until the run ends, enough for the longest delay of the ISA table plus the
    superlane stagger, so every effect is written on every superlane."""
    return max(info.d(superlanes) for info in OPS.values()) + superlanes + 1


def field_width(fmt: str, name: str) -> int:
    """Width in bits of field `name` of payload format `fmt` (a :class:`Payload`
    member such as ``"nop"``, ``"repeat"``, ``"mem"``)."""
    layout = data.Layout.cast(Payload)
    if fmt not in {n for n, _ in layout}:
        raise ValueError(f"Payload format must be a member of Payload, not {fmt!r}")
    sub = data.Layout.cast(layout[fmt].shape)
    return sub[name].width


#: Largest operands of the ICU instructions, from their fields' widths.
NOP_MAX: int = (1 << field_width("nop", "n")) - 1
REPEAT_N_MAX: int = (1 << field_width("repeat", "n")) - 1
REPEAT_D_MAX: int = (1 << field_width("repeat", "d")) - 1
REPEAT_STEP_MAX: int = (1 << (field_width("repeat", "step") - 1)) - 1  # a signed field
REPEAT_STEP_MIN: int = -(1 << (field_width("repeat", "step") - 1))

# The "count" operand of lw/SXM is stored minus one; these fields get that bias.
_BIASED = {("lw", "count"), ("sxm", "count"), ("perm", "count"), ("mem", "count"),
           ("c2c", "count")}


@dataclass(frozen=True)
class Instr:
    """A decoded instruction: its opcode and operand values by operand name.

    Stream operands are ``(stream, direction)`` pairs with direction 0 = east,
    1 = west, or ``None`` for an ``sw?`` operand given as ``-``.
    """

    op: Opcode
    args: dict = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self):
        flags = _HELD_FLAGS.get(self.op)
        if flags and any(f not in self.args for f in flags):
            object.__setattr__(self, "args", {**dict.fromkeys(flags, 0), **self.args})

    @property
    def info(self) -> OpInfo:
        return OPS[self.op]

    def __getattr__(self, name):
        args = self.__dict__.get("args")
        if args is not None and name in args:
            return args[name]
        raise AttributeError(name)

    def with_args(self, **kw) -> "Instr":
        return Instr(self.op, {**self.args, **kw})

    def text(self) -> str:
        return format_instr(self)

    def __repr__(self):
        return f"Instr({self.text()!r})"


def stream_text(ref, held: bool = False) -> str:
    """``eN`` / ``wN`` (``veN`` / ``vwN`` for a VXM-held read), ``-`` for no stream."""
    if ref is None:
        return "-"
    s, d = ref
    return f"{'v' if held else ''}{'ew'[d]}{s}"


def format_instr(ins: Instr) -> str:
    info = ins.info
    parts = []
    for o in info.operands:
        v = ins.args[o.name]
        if o.kind in ("sr", "sw", "sw?"):
            parts.append(stream_text(v, bool(o.held and ins.args.get(o.held))))
        else:
            parts.append(str(v))
    return info.mnemonic + (" " + ", ".join(parts) if parts else "")


def _check_range(o: Operand, v: int, signed: bool, bits: int):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not (lo <= v <= hi):
        raise IsaError(f"operand {o.name} = {v} is out of range {lo}..{hi}")




def _field_map(fmt: str) -> dict:
    """payload field name -> (bit offset in the word, width, signed), from the layouts."""
    word = data.Layout.cast(Instruction)
    base = word["payload"].offset + data.Layout.cast(Payload)[fmt].offset
    out = {}
    for name, f in data.Layout.cast(data.Layout.cast(Payload)[fmt].shape):
        shape = f.shape
        if isinstance(shape, type) and issubclass(shape, data.Struct):  # StreamRef
            for sub, sf in data.Layout.cast(shape):
                out[(name, sub)] = (base + f.offset + sf.offset, sf.width, False)
        else:
            out[name] = (base + f.offset, f.width, bool(getattr(shape, "signed", False)))
    return out


@functools.cache
def _encoder(opc: "Opcode"):
    info = OPS[opc]
    fm = _field_map(info.fmt)
    op_off = data.Layout.cast(Instruction)["opcode"].offset
    return info, fm, op_off


def encode(ins: Instr) -> int:
    """Encode an :class:`Instr` into a 32-bit word (fields checked against their widths).

    Bit positions come from the Amaranth layouts (:func:`_field_map`); the tests check
    the result against ``Instruction.const(...)`` for every opcode."""
    info, fm, op_off = _encoder(ins.op)
    word = int(info.opcode.value) << op_off
    for o in info.operands:
        v = ins.args[o.name]
        if o.kind in ("sr", "sw", "sw?"):
            if v is None:
                if o.kind != "sw?":
                    raise IsaError(f"operand {o.name} needs a stream")
                continue  # emit = 0, stream fields 0
            if o.kind == "sw?":
                off, _, _ = fm["emit"]
                word |= 1 << off
            s, d = v
            _check_range(o, s, False, 5)
            if d not in (0, 1):
                raise IsaError(f"operand {o.name}: direction {d!r} is not 0 (east) or 1 (west)")
            off, w, _ = fm[(o.field, "stream")]
            word |= s << off
            off, w, _ = fm[(o.field, "dir")]
            word |= d << off
            if o.held:
                flag = ins.args.get(o.held, 0)
                if flag not in (0, 1):
                    raise IsaError(f"operand {o.name}: held flag {o.held} = {flag!r} is not 0 "
                                   "or 1")
                word |= flag << fm[o.held][0]
        else:
            if (info.fmt, o.field) in _BIASED:
                if v < 1:
                    raise IsaError(f"operand {o.name} = {v} must be at least 1")
                v = v - 1
            _check_range(o, v, o.kind == "s", o.bits)
            off, w, _ = fm[o.field]
            word |= (v & ((1 << w) - 1)) << off
    return word


def encode_via_layout(ins: Instr) -> int:
    """The same as :func:`encode`, through ``Instruction.const`` (slow; for tests)."""
    return _encode(ins)


def _encode(ins: Instr) -> int:
    info = ins.info
    fmt_fields: dict = {}
    for o in info.operands:
        v = ins.args[o.name]
        if o.kind in ("sr", "sw", "sw?"):
            if v is None:
                if o.kind != "sw?":
                    raise IsaError(f"operand {o.name} needs a stream")
                fmt_fields["emit"] = 0
                v = (0, 0)
            elif o.kind == "sw?":
                fmt_fields["emit"] = 1
            s, d = v
            _check_range(o, s, False, 5)
            fmt_fields[o.field] = {"stream": s, "dir": Direction(d)}
            if o.held:
                fmt_fields[o.held] = ins.args.get(o.held, 0)
        else:
            if (info.fmt, o.field) in _BIASED:
                if v < 1:
                    raise IsaError(f"operand {o.name} = {v} must be at least 1")
                v = v - 1
            bits = o.bits
            _check_range(o, v, o.kind == "s", bits)
            fmt_fields[o.field] = v
    const = Instruction.const({"opcode": info.opcode, "payload": {info.fmt: fmt_fields}})
    return int(const.as_bits())


@functools.lru_cache(maxsize=1 << 16)
def decode(word: int) -> "Instr":
    """Decode a 32-bit word into an :class:`Instr`; raises :class:`IsaError` if invalid.

    Bit positions come from the Amaranth layouts (as for :func:`encode`); the tests check
    it against :func:`decode_via_layout` (``Instruction.from_bits``)."""
    if not isinstance(word, int) or not (0 <= word < (1 << WORD_BITS)):
        raise IsaError(f"instruction word {word!r} is not a 32-bit value")
    raw_op = word & 0x3F
    try:
        opc = Opcode(raw_op)
    except ValueError:
        raise IsaError(f"word 0x{word:08x}: unknown opcode {raw_op}") from None
    info, fm, _ = _encoder(opc)

    def get(key):
        off, w, signed = fm[key]
        v = (word >> off) & ((1 << w) - 1)
        if signed and v >= 1 << (w - 1):
            v -= 1 << w
        return v

    args: dict = {}
    for o in info.operands:
        if o.kind in ("sr", "sw", "sw?"):
            ref = (get((o.field, "stream")), get((o.field, "dir")))
            if o.kind == "sw?" and not get("emit"):
                ref = None
            args[o.name] = ref
            if o.held:
                args[o.held] = get(o.held)
        else:
            v = get(o.field)
            if (info.fmt, o.field) in _BIASED:
                v += 1
            args[o.name] = v
    return Instr(opc, args)


def decode_via_layout(word: int) -> "Instr":
    """The same as :func:`decode`, through ``Instruction.from_bits`` (slow; for tests)."""
    if not (0 <= word < (1 << WORD_BITS)):
        raise IsaError(f"instruction word {word!r} is not a 32-bit value")
    raw_op = word & 0x3F
    try:
        opc = Opcode(raw_op)
    except ValueError:
        raise IsaError(f"word 0x{word:08x}: unknown opcode {raw_op}") from None
    info = OPS[opc]
    view = Instruction.from_bits(word)
    fmt = getattr(view.payload, info.fmt)
    args: dict = {}
    for o in info.operands:
        raw = getattr(fmt, o.field)
        if o.kind in ("sr", "sw", "sw?"):
            ref = (int(raw.stream), int(raw.dir.value))
            if o.kind == "sw?" and not int(fmt.emit):
                ref = None
            args[o.name] = ref
            if o.held:
                args[o.held] = int(getattr(fmt, o.held))
        else:
            v = int(raw)
            if (info.fmt, o.field) in _BIASED:
                v += 1
            args[o.name] = v
    return Instr(opc, args)


def make(mnemonic: str, *values, **kw) -> "Instr":
    """Build an instruction from Python values: ``make("read", 5, (0, 0))``.

    Operands with defaults may be left out; keyword arguments name operands. A VXM
    operand is read from the VXM's held values with its flag: ``make("add", (4, 0),
    (0, 0), (0, 1), la=1)`` is ``add e4, ve0, w0`` (ISA 1.1).
    """
    info = BY_MNEMONIC[mnemonic]
    args = {f: int(kw.pop(f, 0)) for f in info.held_flags}
    vals = list(values)
    for o in info.operands:
        if vals:
            args[o.name] = vals.pop(0)
        elif o.name in kw:
            args[o.name] = kw.pop(o.name)
        elif o.default is not None:
            args[o.name] = o.default
        else:
            raise IsaError(f"{mnemonic}: missing operand {o.name}")
    if vals or kw:
        raise IsaError(f"{mnemonic}: too many operands")
    return Instr(info.opcode, args)
