"""The assembler and disassembler: readable text <-> :class:`~lpu.program.Program`.

Text format
-----------
One statement per line; ``;`` or ``#`` starts a comment that runs to the end of
the line. ::

    .config tiny              ; optional: config name or hash; must match
    .queue mem_w0             ; the section of one queue (once per queue)
        read 5, e0            ; mnemonic, then operands in OPS order
        repeat 3, 2           ; operands with a default may be left out
    .queue mxm_e0
        mm -, w1, 0           ; '-' for an 'sw?' operand: no stream output

* Stream operands are ``eN`` (east-flowing stream N) or ``wN`` (west-flowing). The
  ``a`` and ``b`` operands of a VXM instruction may be ``veN`` / ``vwN`` instead: a
  *held* read of what the VXM itself last wrote to that stream register (ISA 1.1).
* Integers are decimal or ``0x`` hex, with an optional sign.
* Mnemonics are those of :data:`lpu.isa.OPS`; each must belong to the queue's
  slice kind, except the ICU instructions (``nop``, ``repeat``, ``sync``,
  ``notify``), which are valid in every queue.

Checks
------
Everything that can be checked from one instruction and the config is checked
here, so that an error points at ``file:line:col``: field widths; stream indices
and stream groups (four streams for 32-bit operands, ``count`` streams where an
instruction has a ``count``) against ``cfg.streams``; MEM addresses against
``cfg.mem_words``, with a multi-word access inside one bank; MXM rows against VL
and slots against ``cfg.mxm_acc_slots``; SXM lanes and shift distances against
VL; ``nop``/``repeat`` counts; and that a ``repeat`` directly follows a slice
instruction and steps its address or row only within range. Timing rules
between queues (two writers of a stream register, reads of empty registers, bank
conflicts) are the static checker's (``lpu.golden.check``).

The disassembler prints every operand (defaults included) in the same format,
so ``assemble(disassemble(p, cfg), cfg)`` gives back the same words.
"""

from __future__ import annotations

import re
from pathlib import Path

from lpu import config as cfgmod
from lpu import isa
from lpu.config import ChipConfig
from lpu.errors import LpuError
from lpu.isa import BY_MNEMONIC, Instr, IsaError, Operand, OpInfo, encode, format_instr
from lpu.program import Program, ProgramError, decode_word

__all__ = [
    "AsmError", "assemble", "assemble_file", "disassemble", "decode_program", "instr_problems",
    "read_source", "config_from_source",
]

_STREAM_KINDS = ("sr", "sw", "sw?")
_ICU = "icu"
_INT_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_STREAM_RE = re.compile(r"([vV]?)([eEwW])([0-9]+)\Z")
_WORD_RE = re.compile(r"\S+")


class AsmError(LpuError, ValueError):
    """An assembly source (or a program being disassembled) has an error.

    Attributes
    ----------
    file, line, col
        Where: 1-based line and column; ``line == 0`` when the problem concerns
        the whole file (for example, it cannot be read).
    problem
        The message without the position.
    """

    def __init__(self, file: str, line: int, col: int, problem: str):
        self.file, self.line, self.col, self.problem = file, line, col, problem
        where = f"{file}:{line}:{col}" if line else str(file)
        super().__init__(f"{where}: {problem}")


# -- checks shared by the assembler and the disassembler ------------------------------


def _field_range(info: OpInfo, o: Operand) -> tuple[int, int]:
    """The range an integer operand's payload field can hold."""
    if (info.fmt, o.field) in isa._BIASED:  # stored minus one
        return 1, 1 << o.bits
    if o.kind == "s":
        return -(1 << (o.bits - 1)), (1 << (o.bits - 1)) - 1
    return 0, (1 << o.bits) - 1


def operand_range(info: OpInfo, o: Operand, cfg: ChipConfig) -> tuple[int, int, bool]:
    """``(lo, hi, by_config)``: the legal values of an integer operand on `cfg`.

    ``by_config`` tells whether the config (rather than the field width or the
    instruction's own rule) sets a bound.
    """
    lo, hi = _field_range(info, o)
    lo0, hi0 = lo, hi
    m = info.mnemonic
    if m in ("nop", "repeat") and o.name in ("n", "d"):
        lo = max(lo, 1)
    if o.kind == "addr":
        hi = min(hi, cfg.mem_words - 1)
    elif o.kind == "row":
        hi = min(hi, cfg.vl - 1)
    elif m in ("mm", "mmacc") and o.name == "slot":
        hi = min(hi, cfg.mxm_acc_slots - 1)
    elif o.kind == "link":
        hi = min(hi, cfg.c2c_links - 1)
    elif m in ("send", "recv") and o.name == "count":
        hi = min(hi, cfg.c2c_width)
    elif m == "bcast" and o.name == "lane":
        hi = min(hi, cfg.vl - 1)
    elif m in ("shift", "rot") and o.name == "n":
        lo, hi = max(lo, -(cfg.vl - 1)), min(hi, cfg.vl - 1)
    by_config = o.kind in ("addr", "row", "link") or \
        ((lo, hi) != (lo0, hi0) and m not in ("nop", "repeat"))
    return lo, hi, by_config


def _group_width(info: OpInfo, o: Operand, args: dict) -> tuple[int, str | None]:
    """Consecutive streams a stream operand occupies, and the operand that sets it.

    In an instruction with a ``count`` operand (MEM read/write, MXM ``lw``, SXM), each
    single-stream operand stands for ``count`` consecutive streams; wider operands
    (``perm``'s map) keep their width.
    """
    if o.width == 1 and "count" in args:
        return args["count"], "count"
    return o.width, None  # 0: VL streams (transpose), checked against the config below


def _streams_text(d: int, s: int, w: int) -> str:
    c = "ew"[d]
    return f"{c}{s}" if w == 1 else f"{c}{s}..{c}{s + w - 1}"


def _addrs_text(v: int, c: int) -> str:
    return f"address {v}" if c == 1 else f"addresses {v}..{v + c - 1}"


def _span_problem(info: OpInfo, args: dict, cfg: ChipConfig) -> tuple[str, str] | None:
    """The addresses (MEM) or weight rows (``lw``) an instruction touches must exist,
    and a multi-word MEM access must stay in one bank."""
    if info.steps is None:
        return None
    o = next(o for o in info.operands if o.field == info.steps)
    v, c = args[o.name], args.get("count", 1)
    blame = "count" if "count" in args and c > 1 else o.name
    what = f"operand {o.name!r} = {v}" + (f" with count {c}" if "count" in args else "")
    if o.kind == "row":
        if v < 0 or v + c > cfg.vl:
            return blame, (f"{what} loads rows {v}..{v + c - 1}, outside rows "
                           f"0..{cfg.vl - 1} of config {cfg.name} (VL {cfg.vl})")
        return None
    if v < 0 or v + c > cfg.mem_words:
        return blame, (f"{what} uses {_addrs_text(v, c)}, outside "
                       f"0..{cfg.mem_words - 1} for config {cfg.name}")
    bw = cfg.bank_words
    if v // bw != (v + c - 1) // bw:
        return blame, (f"{what} uses {_addrs_text(v, c)}, which cross from bank {v // bw} to bank "
                       f"{(v + c - 1) // bw} (bank = address // {bw} on config {cfg.name}); "
                       "expected all in one bank")
    return None


def instr_problems(
    ins: Instr, cfg: ChipConfig, queue_kind: str | None = None, prev: Instr | None = None
) -> list[tuple[str | None, str]]:
    """What is wrong with one instruction on `cfg`, as ``(operand name, message)``.

    The operand name is ``None`` when the problem is the instruction itself.
    `queue_kind` (``"mem"``, ``"vxm"``, ...) checks the slice kind; `prev` is the
    instruction before it in its queue (``None`` at the start), for ``repeat``.
    Empty means the instruction is legal.
    """
    info = ins.info
    out: list[tuple[str | None, str]] = []
    if queue_kind is not None and info.unit not in (_ICU, queue_kind):
        return [(None, f"{info.mnemonic!r} is a {info.unit} instruction; "
                       f"a {queue_kind} queue runs {queue_kind} and icu instructions")]
    args = ins.args
    # 1. each operand on its own
    for o in info.operands:
        v = args[o.name]
        if o.kind in _STREAM_KINDS:
            if v is None:
                if o.kind != "sw?":
                    out.append((o.name, f"operand {o.name!r} needs a stream, not '-'"))
                continue
            s, d = v
            if not 0 <= s < cfg.streams:
                out.append((o.name, f"operand {o.name!r} = {'ew'[d]}{s} is out of range: "
                                    f"config {cfg.name} has streams 0..{cfg.streams - 1}"))
        else:
            lo, hi, by_cfg = operand_range(info, o, cfg)
            if not lo <= v <= hi:
                tail = f" for config {cfg.name}" if by_cfg else ""
                out.append((o.name, f"operand {o.name!r} = {v} is out of range {lo}..{hi}{tail}"))
    if out:
        return out
    # 2. stream groups, address and row spans that run past the end
    for o in info.operands:
        v = args[o.name]
        if o.kind not in _STREAM_KINDS or v is None:
            continue
        s, d = v
        w, by = _group_width(info, o, args)
        if w == 0:
            w = cfg.vl
        if s + w <= cfg.streams:
            continue
        last = cfg.streams - 1
        if by is None:
            out.append((o.name, f"operand {o.name!r} = {'ew'[d]}{s} is a group of {w} streams "
                                f"{_streams_text(d, s, w)}, past stream {last} of config "
                                f"{cfg.name}; expected a first stream in 0..{cfg.streams - w}"))
        else:
            out.append((by, f"operand {by!r} = {w} makes operand {o.name!r} the streams "
                            f"{_streams_text(d, s, w)}, past stream {last} of config "
                            f"{cfg.name}; expected {by} <= {cfg.streams - s}"))
    span = _span_problem(info, args, cfg)
    if span:
        out.append(span)
    # 3. repeat: follows a slice instruction, steps within range
    if info.mnemonic == "repeat":
        out += _repeat_problems(ins, cfg, prev)
    return out


def _repeat_problems(ins: Instr, cfg: ChipConfig, prev: Instr | None):
    if prev is None or prev.info.unit == _ICU:
        what = "nothing" if prev is None else repr(prev.info.mnemonic)
        return [(None, f"'repeat' must directly follow a slice instruction (it re-issues "
                       f"it), but it follows {what}")]
    pinfo = prev.info
    if pinfo.steps is None:
        return []
    n, step = ins.args["n"], ins.args["step"]
    o = next(o for o in pinfo.operands if o.field == pinfo.steps)
    v0 = prev.args[o.name]
    for i in range(1, n + 1):
        problem = _span_problem(pinfo, {**prev.args, o.name: v0 + i * step}, cfg)
        if problem:
            return [("step", f"'repeat' steps {prev.text()!r} by {step} per copy; copy {i}: "
                             f"{problem[1]}")]
        if step == 0:
            break
    return []


# -- the assembler --------------------------------------------------------------------


def _source_lines(text: str) -> list[str]:
    """Lines as editors count them: a line ends at '\\n', '\\r\\n' or a lone '\\r'
    (old Mac files); no other character (form feed, Unicode separators) ends one."""
    return re.split(r"\r\n|\r|\n", text)


def _strip_comment(raw: str) -> str:
    cut = len(raw)
    for ch in ";#":
        i = raw.find(ch)
        if i >= 0:
            cut = min(cut, i)
    return raw[:cut].rstrip()


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _nearest(word: str, names: list[str], prefer: list[str] = ()) -> str | None:
    """The name closest to `word` (at most two edits away), preferring `prefer`."""
    best = min(names, key=lambda n: (_edit_distance(word, n), n not in prefer), default=None)
    if best is None:
        return None
    dist = _edit_distance(word, best)
    return best if dist <= 2 and dist < len(word) else None


def _load_cfg(cfg) -> ChipConfig:
    return cfg if isinstance(cfg, ChipConfig) else cfgmod.load(cfg)


class _Assembler:
    def __init__(self, text: str, cfg: ChipConfig, filename: str):
        self.text, self.cfg, self.file = text, cfg, filename
        self.queues: dict[str, list[int]] = {}
        self.source: dict[str, list[tuple[str, int]]] = {}
        self.section_line: dict[str, int] = {}
        self.queue = None  # the current lpu.config.Queue
        self.prev: Instr | None = None
        self.config_line = 0
        self.line = 0

    def error(self, col: int, problem: str):
        raise AsmError(self.file, self.line, col, problem)

    def run(self) -> Program:
        for lineno, raw in enumerate(_source_lines(self.text), start=1):
            self.line = lineno
            body = _strip_comment(raw)
            m = _WORD_RE.search(body)
            if m is None:
                continue
            if m.group().startswith("."):
                self.directive(body, m)
            else:
                self.instruction(body, m)
        return Program(self.cfg.hash, self.queues, source=self.source)

    # .queue / .config
    def directive(self, body: str, m: re.Match):
        name = m.group()
        words = list(_WORD_RE.finditer(body, m.end()))
        if name not in (".queue", ".config"):
            self.error(m.start() + 1, f"unknown directive {name!r}; expected .queue or .config")
        what = "a queue name" if name == ".queue" else "a config name or hash"
        if not words:
            self.error(m.start() + 1, f"{name} needs {what}; expected '{name} NAME'")
        if len(words) > 1:
            self.error(words[1].start() + 1,
                       f"unexpected {words[1].group()!r} after {name} {words[0].group()}; "
                       f"expected one name (comments start with ';' or '#')")
        arg, col = words[0].group(), words[0].start() + 1
        if name == ".config":
            self.set_config(arg, col)
        else:
            self.start_queue(arg, col)

    def set_config(self, arg: str, col: int):
        cfg = self.cfg
        if self.config_line:
            self.error(col, f"a second .config line (the first is at line {self.config_line}); "
                            "expected one")
        self.config_line = self.line
        if arg not in (cfg.name, cfg.hash):
            self.error(col, f"the program is for config {arg!r}, but this is config {cfg.name} "
                            f"(hash {cfg.hash}); expected '.config {cfg.name}' or "
                            f"'.config {cfg.hash}', or assemble for config {arg}")

    def start_queue(self, name: str, col: int):
        try:
            q = self.cfg.queue(name)
        except KeyError:
            names = ", ".join(q.name for q in self.cfg.queues)
            near = _nearest(name, [q.name for q in self.cfg.queues])
            hint = f"did you mean {near!r}? " if near else ""
            self.error(col, f"unknown queue {name!r}; {hint}queues on config {self.cfg.name} "
                            f"are: {names}")
        if name in self.section_line:
            self.error(col, f"queue {name} already has a section (line "
                            f"{self.section_line[name]}); expected one section per queue")
        self.section_line[name] = self.line
        self.queue, self.prev = q, None
        self.queues[name] = []
        self.source[name] = []

    # instructions
    def instruction(self, body: str, m: re.Match):
        mnem, mcol = m.group(), m.start() + 1
        if self.queue is None:
            self.error(mcol, f"instruction {mnem!r} outside any .queue section; expected a "
                             "'.queue NAME' line before it")
        q = self.queue
        info = BY_MNEMONIC.get(mnem.lower())
        if info is None:
            valid = [i.mnemonic for i in BY_MNEMONIC.values() if i.unit in (_ICU, q.kind)]
            near = _nearest(mnem.lower(), list(BY_MNEMONIC), prefer=valid)
            if near:
                self.error(mcol, f"unknown opcode {mnem!r}; did you mean {near!r}?")
            self.error(mcol, f"unknown opcode {mnem!r}; expected one of the instructions of "
                             f"queue {q.name}: {', '.join(valid)}")
        if info.unit not in (_ICU, q.kind):
            self.error(mcol, f"{info.mnemonic!r} is a {info.unit} instruction; queue {q.name} "
                             f"is a {q.kind} slice")
        toks = self.split_operands(body, m.end())
        args, cols = self.parse_operands(info, toks, mcol, len(body) + 1)
        ins = Instr(info.opcode, args)
        problems = instr_problems(ins, self.cfg, q.kind, self.prev)
        if not problems and info.unit == "c2c" and self.cfg.link_queue(args["link"]) != q.name:
            problems = [("link", f"link {args['link']} leaves the chip at the "
                                 f"{'east' if args['link'] % 2 else 'west'} edge: queue "
                                 f"{self.cfg.link_queue(args['link'])} serves it, not {q.name} "
                                 "(even links west, odd links east)")]
        if problems:
            name, msg = problems[0]
            if name == "step" and name not in cols:  # the default step: point at n
                name = "n"
            self.error(cols.get(name, mcol), msg)
        try:
            word = encode(ins)
        except IsaError as e:  # not expected: the checks above are stricter
            self.error(mcol, str(e))
        self.queues[q.name].append(word)
        self.source[q.name].append((self.file, self.line))
        self.prev = ins

    def split_operands(self, body: str, start: int) -> list[tuple[str, int]]:
        rest = body[start:]
        if not rest.strip():
            return []
        out = []
        off = start
        for piece in rest.split(","):
            lead = len(piece) - len(piece.lstrip())
            tok = piece.strip()
            col = off + lead + 1
            if not tok:
                self.error(off + 1, "empty operand; expected an operand between the commas")
            inner = re.search(r"\s+\S", tok)
            if inner:
                self.error(col + inner.end() - 1,
                           f"missing ',' before {tok[inner.end() - 1:]!r}; expected operands "
                           "separated by commas")
            out.append((tok, col))
            off += len(piece) + 1
        return out

    def parse_operands(self, info: OpInfo, toks, mcol: int, endcol: int):
        ops = info.operands
        need = 0
        for i, o in enumerate(ops):
            if o.default is None:
                need = i + 1
        names = ", ".join(o.name if o.default is None else f"{o.name}={o.default}" for o in ops)
        if need == len(ops):
            takes = f"{len(ops)} operand{'s' if len(ops) != 1 else ''}"
        else:
            takes = f"{need} to {len(ops)} operands"
        sig = f" ({names})" if ops else ""
        if len(toks) > len(ops):
            self.error(toks[len(ops)][1], f"{info.mnemonic!r} takes {takes}{sig}, "
                                          f"got {len(toks)}")
        if len(toks) < need:
            missing = ", ".join(repr(o.name) for o in ops[len(toks):need])
            self.error(endcol, f"{info.mnemonic!r} takes {takes}{sig}, got {len(toks)}; "
                               f"missing {missing}")
        args, cols = {}, {}
        for i, o in enumerate(ops):
            if i >= len(toks):
                args[o.name] = o.default
                continue
            tok, col = toks[i]
            cols[o.name] = col
            args[o.name] = self.parse_value(o, tok, col)
            if o.held:
                args[o.held] = int(tok[:1] in "vV")
        return args, cols

    def parse_value(self, o: Operand, tok: str, col: int):
        if o.kind in _STREAM_KINDS:
            if tok == "-" and o.kind == "sw?":
                return None
            m = _STREAM_RE.match(tok)
            held = " or veN/vwN (the value the VXM last wrote there)" if o.held else ""
            if m is None:
                alt = " or '-' for none" if o.kind == "sw?" else ""
                self.error(col, f"operand {o.name!r} = {tok!r} is not a stream; expected eN or "
                                f"wN (east/west stream N){held}{alt}")
            if m.group(1) and not o.held:
                self.error(col, f"operand {o.name!r} = {tok!r}: only the a and b operands of a "
                                "VXM instruction can read a held value (veN/vwN); expected eN "
                                "or wN")
            return int(m.group(3)), "ew".index(m.group(2).lower())
        if not _INT_RE.match(tok):
            self.error(col, f"operand {o.name!r} = {tok!r} is not an integer; expected decimal "
                            "or 0x hex" + (", optionally negative" if o.kind == "s" else ""))
        digits = tok.lstrip("+-")
        if len(digits) > 40:  # far past any field; also past Python's int-from-text limit
            self.error(col, f"operand {o.name!r} = {tok[:24]}... ({len(digits)} digits) is "
                            "out of range for any field")
        v = int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10)
        return -v if tok.startswith("-") else v


def assemble(text: str, cfg: ChipConfig | str, filename: str = "<string>") -> Program:
    """Assemble source text into a :class:`Program` for `cfg`.

    Parameters
    ----------
    text
        The source (see the module docstring for the format).
    cfg
        A :class:`~lpu.config.ChipConfig` or anything :func:`lpu.config.load` takes.
    filename
        Named in error messages and in ``Program.source``.

    Raises
    ------
    AsmError
        At the first error, as ``FILE:LINE:COL: problem``.
    """
    return _Assembler(text, _load_cfg(cfg), filename).run()


def read_source(path) -> str:
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as e:
        raise AsmError(str(p), 0, 0, f"cannot read: {e.strerror}") from None
    try:
        return blob.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is allowed
    except UnicodeDecodeError as e:
        line = blob[:e.start].count(b"\n") + 1
        col = e.start - (blob.rfind(b"\n", 0, e.start) + 1) + 1
        raise AsmError(str(p), line, col, "not UTF-8 text; expected an assembly source") from None


def assemble_file(path, cfg: ChipConfig | str) -> Program:
    """Assemble the file at `path` for `cfg` (see :func:`assemble`)."""
    return assemble(read_source(path), cfg, str(path))


# -- the disassembler -----------------------------------------------------------------


def disassemble(program: Program, cfg: ChipConfig | str | None = None,
                name: str = "program") -> str:
    """Text that :func:`assemble` turns back into the same words.

    With `cfg`, the program is first checked against it (config hash, queue names,
    and every instruction as the assembler would check it), and the sections come
    in ``cfg.queues`` order; without, in the program's order.

    Raises
    ------
    ProgramError
        A word that does not decode, is not in its canonical encoding (bits set
        outside its fields would be lost), or, with `cfg`, does not fit the chip.
    """
    if cfg is not None:
        cfg = _load_cfg(cfg)
        program.check_config(cfg, name)
        order = [q.name for q in cfg.queues if q.name in program.queues]
        header = f".config {program.config_hash}  ; {cfg.name}"
    else:
        order = list(program.queues)
        header = f".config {program.config_hash}"
    decoded = decode_program(program, cfg, name)
    lines = [header]
    for qname in order:
        lines += ["", f".queue {qname}"]
        lines += ["    " + format_instr(ins) for ins in decoded[qname]]
    return "\n".join(lines) + "\n"


def decode_program(program: Program, cfg: ChipConfig | None = None,
                   name: str = "program") -> dict[str, list[Instr]]:
    """Every queue's instructions, each word decoded strictly
    (:func:`lpu.program.decode_word`) and, with `cfg`, checked as the assembler checks
    it (its queue's slice kind, operand ranges, stream groups, spans, repeats): the one
    check of a loaded program's words (:func:`lpu.loaders.load_program`, the
    disassembler). It does not check the config hash (``Program.check_config``).

    Raises
    ------
    ProgramError
        ``NAME: queue Q word I (TEXT): problem`` at the first bad word.
    """
    out: dict[str, list[Instr]] = {}
    for qname, words in program.queues.items():
        kind = None
        if cfg is not None:
            try:
                kind = cfg.queue(qname).kind
            except KeyError:
                raise ProgramError(f"{name}: queue {qname!r} does not exist on config "
                                   f"{cfg.name!r}") from None
        prev = None
        seq = out[qname] = []
        for i, word in enumerate(words):
            where = f"{name}: queue {qname} word {i}"
            try:
                ins = decode_word(word)
            except IsaError as e:
                raise ProgramError(f"{where}: {e}") from None
            if kind is not None and ins.info.unit not in (_ICU, kind):
                raise ProgramError(f"{where}: '{ins.text()}' is a {ins.info.unit.upper()} "
                                   f"instruction; queue {qname} feeds a {kind.upper()} slice")
            if cfg is not None:
                problems = instr_problems(ins, cfg, kind, prev)
                if problems:
                    raise ProgramError(f"{where} ({ins.text()}): {problems[0][1]}")
            seq.append(ins)
            prev = ins
    return out


def config_from_source(text: str, filename: str) -> ChipConfig:
    """The preset a source's ``.config`` line names (by name or hash), else the default."""
    for lineno, raw in enumerate(_source_lines(text), start=1):
        words = _strip_comment(raw).split()
        if len(words) >= 2 and words[0] == ".config":
            arg = words[1]
            for preset in cfgmod.preset_names():
                cfg = cfgmod.load(preset)
                if arg in (preset, cfg.hash):
                    return cfg
            col = raw.index(arg, raw.index(".config") + 7) + 1
            raise AsmError(filename, lineno, col,
                           f".config {arg!r} is neither a preset name nor a preset's hash; "
                           f"expected --config PRESET_OR_YAML (presets: "
                           f"{', '.join(cfgmod.preset_names())})")
    return cfgmod.load(None)
