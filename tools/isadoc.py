"""Generate ``docs/isa.md`` from :mod:`lpu.isa`.

Everything in the document is computed from the ISA definition: bit positions
from the Amaranth layouts, the opcode tables from :data:`lpu.isa.OPS`. Run::

    lpu isadoc            # writes docs/isa.md
    lpu isadoc -o -       # prints it

``tests/unit/test_isadoc.py`` fails when the committed file differs from
:func:`render`.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import data, enum

from lpu import isa
from lpu.isa import OPS, Operand, OpInfo

__all__ = ["render", "DEFAULT_PATH", "REGENERATE"]

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "isa.md"
REGENERATE = "lpu isadoc -o docs/isa.md"

_UNITS = [
    ("icu", "ICU", "Instruction dispatch; valid in every queue."),
    ("mem", "MEM", "SRAM slices: read, write and gather."),
    ("vxm", "VXM", "Vector ALUs, per lane; 32-bit values on four streams, least significant "
                   "byte first. An operand marked `held` may be read from the VXM's held "
                   "values instead of the arriving streams (ISA 1.1, see below)."),
    ("mxm", "MXM", "Weight-stationary int8 matrix unit with a shadow weight buffer and int32 "
                   "accumulators."),
    ("sxm", "SXM", "Whole-vector lane moves: shift, rotate, broadcast, permute."),
    ("c2c", "C2C", "Chip-to-chip links (ISA 1.3): two C2C slices, `c2c_w` at the position of "
                   "`sxm_w` (the even links, at the west edge) and `c2c_e` at the position of "
                   "`sxm_e` (the odd links, east), on a config with `c2c_links` > 0. `L` is "
                   "the config's `c2c_latency`; `count` is at most its `c2c_width`. Every "
                   "send needs the recv of the same count at the link's other end exactly "
                   "`L` cycles later, and every recv its send (docs/timing.md, \"C2C\")."),
]


def _bits(lo: int, width: int) -> str:
    return str(lo) if width == 1 else f"{lo}-{lo + width - 1}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type_text(shape) -> str:
    if isinstance(shape, type) and issubclass(shape, (data.Struct, data.Union, enum.Enum)):
        return f"`{shape.__name__}`"
    s = Shape.cast(shape)
    return "signed" if s.signed else "unsigned"


def _fields(layout, base: int, prefix: str = ""):
    """(name, first bit in the word, width, shape) for every leaf field of `layout`."""
    for name, f in data.Layout.cast(layout):
        if isinstance(f.shape, type) and issubclass(f.shape, data.Struct):
            yield from _fields(f.shape, base + f.offset, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", base + f.offset, f.width, f.shape


def _word_section() -> list[str]:
    word = data.Layout.cast(isa.Instruction)
    top = {name: f for name, f in word}
    out = ["## Instruction word", ""]
    out.append(f"Every instruction is one {word.size}-bit word "
               f"(`lpu.isa.Instruction`), bit 0 least significant:")
    out += ["", "| bits | field | type |", "|---|---|---|"]
    for name, f in word:
        out.append(f"| {_bits(f.offset, f.width)} | `{name}` | {_type_text(f.shape)} |")
    out.append("")
    payload_at = top["payload"].offset
    ref = data.Layout.cast(isa.StreamRef)
    parts = ", ".join(f"`{n}` bit{'s' if f.width > 1 else ''} {_bits(f.offset, f.width)}"
                      for n, f in ref)
    dirs = ", ".join(f"{d.value} = {d.name.lower()}" for d in isa.Direction)
    out += [
        "The opcode selects one payload format (a member of the `Payload` union). A stream",
        f"operand is a `StreamRef` of {ref.size} bits: {parts}",
        f"(`Direction`: {dirs}).",
        "Bits a format does not use are zero; the disassembler refuses words with other",
        "bits set, since they would not assemble back to the same word.",
        "",
    ]
    biased = sorted(isa._BIASED)
    users: dict[str, list[str]] = {}
    for info in OPS.values():
        users.setdefault(info.fmt, []).append(info.mnemonic)
    out += ["## Payload formats", "",
            "Bit positions are in the 32-bit word (the payload starts at bit "
            f"{payload_at}).", ""]
    for fmt, f in data.Layout.cast(isa.Payload):
        cls = f.shape
        used = ", ".join(f"`{m}`" for m in users.get(fmt, [])) or "none"
        out += [f"### `{fmt}` ({cls.__name__}, {data.Layout.cast(cls).size} bits)", "",
                f"Used by: {used}.", "",
                "| bits | field | type |", "|---|---|---|"]
        for name, lo, width, shape in _fields(cls, payload_at):
            t = _type_text(shape)
            if (fmt, name) in biased:
                t += ", stored minus one"
            out.append(f"| {_bits(lo, width)} | `{name}` | {t} |")
        end = payload_at + data.Layout.cast(cls).size
        word_bits = word.size
        if end < word_bits:
            out.append(f"| {_bits(end, word_bits - end)} | (unused) | zero |")
        out.append("")
    return out


def _lane_type(info: OpInfo, o: Operand) -> str:
    """The lane type a stream operand carries (for the operand column)."""
    if o.width == 2:
        return "u16"
    if o.width == 1:
        return "i8"
    m = info.mnemonic
    if m.startswith("cvt."):
        _, src, dst = m.split(".")
        return src if o.kind == "sr" else dst
    if info.dtype == "f32" and not (o.kind != "sr" and m in ("feq", "flt", "fle")):
        return "f32"
    return "i32"


def _operand_text(info: OpInfo, o: Operand) -> str:
    names = {p.name for p in info.operands}
    if o.kind in ("sr", "sw", "sw?"):
        width = "count" if o.width == 1 and "count" in names else str(o.width)
        t = f"{o.name}:{_lane_type(info, o)}x{width}"
        if o.kind == "sw?":
            t += "/-"
        if o.held:
            t += " held"
    elif (info.fmt, o.field) in isa._BIASED:
        t = f"{o.name}:1..{1 << o.bits}"
    else:
        t = f"{o.name}:{'s' if o.kind == 's' else 'u'}{o.bits}"
    if o.default is not None:
        t += f"={o.default}"
    return f"`{t}`"


def _unit_sections() -> list[str]:
    out = [
        "## Opcodes",
        "",
        "Operands are listed in assembly order. `name:TxW` is a stream operand: `W`",
        "consecutive streams of one direction (`count` of them where the instruction has a",
        "`count` operand) carrying lanes of type `T` (`i32`/`f32` on four streams, byte",
        "planes least significant first; `u16` on two). `/-` means the operand may be `-`",
        "(no stream written). `name:uN` / `name:sN` is an N-bit unsigned / signed immediate;",
        "`name:1..N` a count; `=v` gives the default used when the operand is left out.",
        "",
        "The functional delay `d`: an instruction dispatched at cycle `t` reads its streams",
        "in cycle `t` and writes its results at cycle `t + d`, on superlane `k` at `t + k` and",
        "`t + k + d` (see [timing.md](timing.md)). `S` is the number of superlanes.",
        "",
    ]
    for unit, title, blurb in _UNITS:
        ops = sorted((i for i in OPS.values() if i.unit == unit), key=lambda i: i.opcode.value)
        out += [f"### {title}", "", blurb, "",
                "| mnemonic | opcode | operands | delay | reads | writes | description |",
                "|---|---|---|---|---|---|---|"]
        for info in ops:
            operands = ", ".join(_operand_text(info, o) for o in info.operands) or "-"
            reads = ", ".join(f"`{o.name}`" for o in info.reads) or "-"
            writes = ", ".join(f"`{o.name}`" for o in info.writes) or "-"
            doc = info.doc
            if info.steps:
                doc += f" Repeat steps `{info.steps}`."
            out.append(f"| `{info.mnemonic}` | {info.opcode.value} | {operands} | "
                       f"{info.delay_text} | {reads} | {writes} | {_cell(doc)} |")
        out.append("")
        if unit == "vxm":
            out += _held_section()
    return out


def _held_section() -> list[str]:
    flags = sorted({(info.fmt, o.name, o.held) for info in OPS.values() for o in info.operands
                    if o.held})
    fields = ", ".join(f"`{fmt}.{flag}` for `{name}`" for fmt, name, flag in flags)
    return [
        "#### Held reads (VXM chaining, ISA 1.1)",
        "",
        "The VXM keeps, for every stream register at its position (each stream, each",
        "direction, every lane), the last value it wrote there: its *held* value. An operand",
        "marked `held` in the table is read from the held values instead of the streams",
        "arriving at the VXM when its one-bit flag is set: " + fields + ". In assembly",
        "the operand is written `veN` / `vwN` instead of `eN` / `wN`. So a result can feed",
        "the next VXM instruction (of any VXM ALU) without leaving the VXM:",
        "",
        "```",
        ".queue vxm0",
        "    fmul e4, e0, w0       ; t: result written to e4..e7 at t+3",
        "    nop 3",
        "    fadd w8, ve4, e8      ; t+4: a = the held e4..e7, the product",
        "```",
        "",
        "A held read in cycle `t` (on superlane `k`: `t + k`) sees every write of the VXM up",
        "to cycle `t - 1`: the earliest held read of a result written at `t + d` is at",
        "`t + d + 1`. It reads the held values of all the operand's streams (four for a",
        "32-bit operand), which may come from different writes. A held read of a stream the",
        "VXM has not written since the program started is an illegal schedule (rule",
        "`empty-read`): refused by the static checker, an error at that cycle in the golden",
        "model, and the sticky `EMPTY_READ` error in the HDL. Held values are not",
        "architectural events of their own: they are the VXM's `sr` writes, kept.",
        "A VXM write still goes out on its stream register as before; only the `c` operand",
        "of `sel` has no held form.",
        "",
    ]


def _syntax_section() -> list[str]:
    return [
        "## Assembly syntax",
        "",
        "Read by `lpu asm` (`lpu.asm`), written by `lpu disasm`:",
        "",
        "```",
        ".config tiny            ; optional: config name or hash; must match the target",
        ".queue mem_w0           ; one section per queue, named as in `lpu config`",
        "    read 5, e0          ; mnemonic, operands in the order of the tables above",
        "    repeat 3, 2         ; operands with a default may be left out",
        ".queue mxm_e0",
        "    mm -, w1, 0         # '-': no stream output",
        "```",
        "",
        "- `;` and `#` start comments; one instruction per line.",
        "- Streams are `eN` (east-flowing) or `wN` (west-flowing), and `veN` / `vwN` for a",
        "  held read (VXM `a` and `b` only); integers are decimal or `0x` hex, with a sign",
        "  where the operand is signed.",
        "- An instruction must belong to its queue's slice kind; the ICU instructions are",
        "  valid in every queue. Operand values are checked against the config (streams,",
        "  addresses, rows, slots, lanes, links), and errors are reported as",
        "  `FILE:LINE:COL: ...`.",
        "",
    ]


def render() -> str:
    """The text of ``docs/isa.md``."""
    major, minor = isa.ISA_VERSION
    lines = [
        "# Instruction set",
        "",
        f"<!-- Generated from lpu/isa.py by `{REGENERATE}`; do not edit. -->",
        "",
        f"ISA version {major}.{minor}. Each slice has its own instruction queue; a queue",
        "dispatches at most one instruction per cycle. Programs carry the ISA version and",
        "the config hash and are refused on another config.",
        "",
        "Versions: ISA 1.1 added held reads (the `la` / `lb` flags of the VXM formats,",
        "bits that ISA 1.0 kept zero); ISA 1.2 added `lwi` (MXM load and install, an",
        "opcode 1.1 did not have); ISA 1.3 added `send` and `recv` (C2C links, opcodes",
        "1.2 did not have). A program built for ISA 1.0, 1.1 or 1.2 runs unchanged; one",
        "whose words set the held-read bits while it says 1.0, that has an `lwi` while",
        "it says 1.0 or 1.1, or a `send` or `recv` while it says 1.2 or older, is refused,",
        "and so is a program of another major version or of a newer minor version.",
        "",
    ]
    lines += _word_section()
    lines += _unit_sections()
    lines += _syntax_section()
    return "\n".join(lines)
