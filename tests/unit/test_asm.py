"""lpu.asm: assembler and disassembler.

Expected words come from lpu.isa.make/encode, expected texts from lpu.isa.format_instr,
expected limits from the config: never from the assembler's own output.
"""

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpu import cli, config
from lpu.asm import AsmError, assemble, assemble_file, disassemble
from lpu.isa import BY_MNEMONIC, OPS, E, W, encode, format_instr, make
from lpu.program import Program, ProgramError

pytestmark = [pytest.mark.unit]

TINY = config.load("tiny")
TINY_C2C = TINY.replace(c2c_links=3, c2c_width=4)  # C2C (ISA 1.3): links 0, 2 west, 1 east
SMALL = config.load("small")


# -- a generator of legal instructions, written from the ISA's rules -------------------


def legal_args(info, cfg, pick):
    """Operand values for one legal instruction of `info` on `cfg`.

    pick(lo, hi) chooses an integer in lo..hi (random, lowest or highest).
    """
    m, vl, ns = info.mnemonic, cfg.vl, cfg.streams

    def stream(width=1):
        return (pick(0, ns - width), pick(0, 1))

    a = {}
    if m == "nop":
        a["n"] = pick(1, (1 << 20) - 1)
    elif m in ("sync", "notify", "iw"):
        pass
    elif m in ("read", "write"):
        c = pick(1, 4)
        bank = pick(0, 1)
        a["addr"] = bank * cfg.bank_words + pick(0, cfg.bank_words - c)
        a["dst" if m == "read" else "src"] = stream(c)
        a["count"] = c
    elif m == "gather":
        a.update(base=pick(0, cfg.mem_words - 1), idx=stream(), dst=stream())
    elif info.unit == "vxm":
        for o in info.operands:
            a[o.name] = pick(0, 31) if o.name == "imm" else stream(o.width)
    elif m in ("lw", "lwi"):
        c = pick(1, min(32, vl, ns))
        a.update(row=pick(0, vl - c), src=stream(c), count=c)
    elif m in ("mm", "mmacc"):
        a["dst"] = None if pick(0, 1) == 0 else stream(4)
        a.update(src=stream(), slot=pick(0, cfg.mxm_acc_slots - 1))
    elif m == "transpose":
        a.update(dst=stream(vl), src=stream(vl))
    elif info.unit == "c2c":
        c = pick(1, cfg.c2c_width)
        a.update(link=pick(0, cfg.c2c_links - 1), count=c)
        a["src" if m == "send" else "dst"] = stream(c)
    elif info.unit == "sxm":
        c = pick(1, 4)
        a.update(dst=stream(c), src=stream(c), count=c)
        if m in ("shift", "rot"):
            a["n"] = pick(-(vl - 1), vl - 1)
        elif m == "bcast":
            a["lane"] = pick(0, vl - 1)
        else:
            a["map"] = stream(2)
    else:
        raise AssertionError(f"legal_args does not know {m!r} yet")
    return make(m, **a)


def span_ok(ins, cfg):
    """The addresses / rows `ins` touches exist (and a MEM access stays in one bank)."""
    m, a = ins.info.mnemonic, ins.args
    c = a.get("count", 1)
    if m in ("lw", "lwi"):
        return 0 <= a["row"] and a["row"] + c <= cfg.vl
    v = a["base"] if m == "gather" else a["addr"]
    bw = cfg.bank_words
    return 0 <= v and v + c <= cfg.mem_words and v // bw == (v + c - 1) // bw


def legal_repeat(prev, cfg, pick):
    n, d, step = pick(1, 4095), pick(1, 255), pick(-32, 31)
    field = {"read": "addr", "write": "addr", "gather": "base", "lw": "row", "lwi": "row"}.get(
        prev.info.mnemonic)
    if field:
        v0 = prev.args[field]
        if not all(span_ok(prev.with_args(**{field: v0 + i * step}), cfg)
                   for i in range(1, n + 1)):
            step = 0
    return make("repeat", n, d, step)


def queue_ops(kind):
    return [i for i in OPS.values() if i.unit in ("icu", kind) and i.mnemonic != "repeat"]


def canonical_text(cfg, queues, with_name=True):
    """The disassembler's documented layout: .config, then one section per queue."""
    head = f".config {cfg.hash}" + (f"  ; {cfg.name}" if with_name else "")
    lines = [head]
    for q in cfg.queues:
        if q.name in queues:
            lines += ["", f".queue {q.name}"] + ["    " + format_instr(i) for i in queues[q.name]]
    return "\n".join(lines) + "\n"


def queue_of_kind(cfg, unit):
    return next(q.name for q in cfg.queues if unit in ("icu", q.kind))


# -- round trips -------------------------------------------------------------------------


def _lowest(lo, hi):
    return lo


def _highest(lo, hi):
    return hi


@pytest.mark.parametrize("info", list(OPS.values()), ids=lambda i: i.mnemonic)
@pytest.mark.parametrize("pick", [_lowest, _highest], ids=["low", "high"])
def test_every_opcode_round_trips(info, pick):
    cfg = TINY_C2C if info.unit == "c2c" else TINY
    q = queue_of_kind(cfg, info.unit)
    if info.mnemonic == "repeat":
        prev = make("read", 0, (0, E))
        instrs = [prev, legal_repeat(prev, cfg, pick)]
    else:
        instrs = [legal_args(info, cfg, pick)]
        if info.unit == "c2c":  # even links at the west edge, odd ones at the east
            q = cfg.link_queue(instrs[0].link)
    text = canonical_text(cfg, {q: instrs})
    prog = assemble(text, cfg, "rt.s")
    assert prog.queues == {q: [encode(i) for i in instrs]}
    assert prog.config_hash == cfg.hash
    assert disassemble(prog, cfg) == text
    assert prog.source[q] == [("rt.s", 4 + k) for k in range(len(instrs))]


def test_defaults_and_number_syntax():
    text = """
        .config tiny          # by name
        .queue mem_e1
            read 0x10, W3     ; count left out
            repeat 2, 1       ; step left out
            nop
        .queue sxm_e
            SHIFT e1, e2, -0x3
            rot e1, e2, +3, 2
    """
    prog = assemble(text, TINY)
    assert prog.queues["mem_e1"] == [encode(make("read", 16, (3, W), 1)),
                                     encode(make("repeat", 2, 1, 1)), encode(make("nop", 1))]
    assert prog.queues["sxm_e"] == [encode(make("shift", (1, E), (2, E), -3, 1)),
                                    encode(make("rot", (1, E), (2, E), 3, 2))]
    assert assemble(f".config {TINY.hash}\n", TINY).queues == {}


def _programs(cfg):
    """Random legal programs for `cfg`: {queue: [Instr]} (queues a random subset)."""

    @st.composite
    def build(draw):
        names = draw(st.lists(st.sampled_from([q.name for q in cfg.queues]), unique=True,
                              max_size=4))

        def pick(lo, hi):
            return draw(st.integers(lo, hi))

        out = {}
        for name in names:
            kind = cfg.queue(name).kind
            instrs = []
            for _ in range(draw(st.integers(0, 6))):
                prev = instrs[-1] if instrs else None
                if prev is not None and prev.info.unit != "icu" and draw(st.booleans()):
                    instrs.append(legal_repeat(prev, cfg, pick))
                else:
                    info = draw(st.sampled_from(queue_ops(kind)))
                    instrs.append(legal_args(info, cfg, pick))
            out[name] = instrs
        return out

    return build()


@pytest.mark.parametrize("cfg", [TINY, SMALL], ids=lambda c: c.name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_text_binary_text_property(cfg, data):
    queues = data.draw(_programs(cfg))
    text = canonical_text(cfg, queues)
    prog = assemble(text, cfg, "gen.s")
    words = {q: [encode(i) for i in ins] for q, ins in queues.items()}
    assert prog.queues == words
    back = Program.from_bytes(prog.to_bytes(), "gen.bin")
    assert back.queues == words
    assert disassemble(back, cfg) == text
    # without a config: program order, .config line without the name, same words again
    plain = disassemble(back)
    assert assemble(plain, cfg).queues == words


# -- errors: FILE:LINE:COL: message -------------------------------------------------------


def _where(src, line_no, token, nth=0):
    """1-based (line, col) of the `nth` occurrence (-1: the last) of `token` on line
    `line_no` of `src`; token None: just past the end of the line."""
    line = src.split("\n")[line_no - 1]
    if token is None:
        return line_no, len(line.rstrip()) + 1
    if nth == -1:
        return line_no, line.rindex(token) + 1
    col = -1
    for _ in range(nth + 1):
        col = line.index(token, col + 1)
    return line_no, col + 1


def _error(src, cfg=TINY, filename="prog.s"):
    with pytest.raises(AsmError) as info:
        assemble(src, cfg, filename)
    return info.value


def _queues_text(cfg):
    return ", ".join(q.name for q in cfg.queues)


ERROR_CASES = [
    # (id, source, (line, token, nth), expected message pieces)
    ("unknown-opcode", ".queue vxm0\n    fadx e0, e4, w0\n", (2, "fadx", 0),
     lambda c: ["unknown opcode 'fadx'; did you mean 'fadd'?"]),
    ("unknown-opcode-no-guess", ".queue vxm0\n    qqqqqq e0\n", (2, "qqqqqq", 0),
     lambda c: ["unknown opcode 'qqqqqq'", "expected one of", "fadd"]),
    ("unknown-queue", "; a comment\n.queue mem_w9\n", (2, "mem_w9", 0),
     lambda c: ["unknown queue 'mem_w9'", f"queues on config {c.name} are: {_queues_text(c)}"]),
    ("addr-range", ".queue mem_w0\n    nop 2\n    read 300, e0\n", (3, "300", 0),
     lambda c: [f"operand 'addr' = 300 is out of range 0..{c.mem_words - 1} for config tiny"]),
    ("wrong-unit", ".queue mem_w0\n    fadd e0, e4, w0\n", (2, "fadd", 0),
     lambda c: ["'fadd' is a vxm instruction; queue mem_w0 is a mem slice"]),
    ("outside-section", "\n   read 1, e0\n", (2, "read", 0),
     lambda c: ["instruction 'read' outside any .queue section"]),
    ("too-many-operands", ".queue vxm1\n    add e0, e4, e0, e4\n", (2, "e4", 1),
     lambda c: ["'add' takes 3 operands (dst, a, b), got 4"]),
    ("too-few-operands", ".queue vxm1\n    add e0, e4\n", (2, None, 0),
     lambda c: ["'add' takes 3 operands (dst, a, b), got 2", "missing 'b'"]),
    ("bad-stream", ".queue vxm1\n    add e0, x4, e0\n", (2, "x4", 0),
     lambda c: ["operand 'a' = 'x4' is not a stream", "expected eN or wN"]),
    ("bad-stream-dash", ".queue vxm1\n    add -, e4, e0\n", (2, "-", 0),
     lambda c: ["operand 'dst' = '-' is not a stream"]),
    ("bad-integer", ".queue mem_w0\n    read 1x, e0\n", (2, "1x", 0),
     lambda c: ["operand 'addr' = '1x' is not an integer", "0x hex"]),
    ("missing-comma", ".queue vxm1\n    add e0 e4, e0\n", (2, "e4", 0),
     lambda c: ["missing ','"]),
    ("empty-operand", ".queue vxm1\n    add e0,, e0\n", (2, ",", 1),
     lambda c: ["empty operand"]),
    ("stream-range", ".queue mem_w0\n    read 1, w8\n", (2, "w8", 0),
     lambda c: [f"operand 'dst' = w8 is out of range: config tiny has streams "
                f"0..{c.streams - 1}"]),
    ("stream-group", ".queue vxm0\n    add e0, e5, e0\n", (2, "e5", 0),
     lambda c: ["operand 'a' = e5 is a group of 4 streams e5..e8",
                f"expected a first stream in 0..{c.streams - 4}"]),
    ("mem-count-streams", ".queue mem_w0\n    read 0, e6, 3\n", (2, "3", 0),
     lambda c: ["operand 'count' = 3", "e6..e8"]),
    ("mem-count-bank", f".queue mem_w0\n    read {TINY.bank_words - 1}, e0, 2\n", (2, "2", -1),
     lambda c: ["cross from bank 0 to bank 1", "expected all in one bank"]),
    ("sxm-count", ".queue sxm_w\n    rot w0, w6, 1, 3\n", (2, "3", 0),
     lambda c: ["operand 'count' = 3", "w6..w8"]),
    ("sxm-count-field", ".queue sxm_w\n    rot w0, w1, 1, 5\n", (2, "5", 0),
     lambda c: ["operand 'count' = 5 is out of range 1..4"]),
    ("lw-rows", f".queue mxm_w0\n    lw {TINY.vl - 2}, e0, 3\n", (2, "3", 0),
     lambda c: [f"loads rows {c.vl - 2}..{c.vl}"]),
    ("mm-slot", f".queue mxm_e0\n    mm -, w0, {TINY.mxm_acc_slots}\n",
     (2, str(TINY.mxm_acc_slots), 0),
     lambda c: [f"operand 'slot' = {c.mxm_acc_slots} is out of range "
                f"0..{c.mxm_acc_slots - 1} for config tiny"]),
    ("bcast-lane", f".queue sxm_e\n    bcast e0, e1, {TINY.vl}\n", (2, str(TINY.vl), 0),
     lambda c: [f"operand 'lane' = {c.vl} is out of range 0..{c.vl - 1} for config tiny"]),
    ("shift-n", f".queue sxm_e\n    shift e0, e1, -{TINY.vl}\n", (2, f"-{TINY.vl}", 0),
     lambda c: [f"operand 'n' = -{c.vl} is out of range -{c.vl - 1}..{c.vl - 1}"]),
    ("nop-zero", ".queue sxm_e\n    nop 0\n", (2, "0", 0),
     lambda c: ["operand 'n' = 0 is out of range 1.."]),
    ("repeat-d-zero", ".queue sxm_e\n    bcast e0, e1, 1\n    repeat 2, 0\n", (3, "0", 0),
     lambda c: ["operand 'd' = 0 is out of range 1..255"]),
    ("repeat-n-zero", ".queue sxm_e\n    bcast e0, e1, 1\n    repeat 0, 1\n", (3, "0", 0),
     lambda c: ["operand 'n' = 0 is out of range 1.."]),
    ("repeat-after-nop", ".queue sxm_e\n    nop 3\n    repeat 2, 1\n", (3, "repeat", 0),
     lambda c: ["'repeat' must directly follow a slice instruction", "'nop'"]),
    ("repeat-first", ".queue sxm_e\n  repeat 2, 1\n", (2, "repeat", 0),
     lambda c: ["'repeat' must directly follow a slice instruction"]),
    ("repeat-steps-out", f".queue mem_e0\n  write {TINY.mem_words - 3}, w0\n  repeat 3, 1, 1\n",
     (3, "1", -1), lambda c: ["copy 3", f"address {c.mem_words}"]),
    ("duplicate-queue", ".queue vxm0\n    nop\n.queue vxm0\n", (3, "vxm0", 0),
     lambda c: ["queue vxm0 already has a section (line 1)"]),
    ("config-mismatch", ".config small\n", (1, "small", 0),
     lambda c: ["the program is for config 'small'", f"this is config tiny (hash {c.hash})"]),
    ("config-twice", ".config tiny\n.config tiny\n", (2, "tiny", 0),
     lambda c: ["a second .config line"]),
    ("unknown-directive", "  .org 5\n", (1, ".org", 0),
     lambda c: ["unknown directive '.org'"]),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_point_at_file_line_col(case):
    _, src, (line_no, token, nth), pieces = case
    err = _error(src)
    line, col = _where(src, line_no, token, nth)
    assert (err.file, err.line, err.col) == ("prog.s", line, col), str(err)
    assert str(err).startswith(f"prog.s:{line}:{col}: "), str(err)
    for piece in pieces(TINY):
        assert piece in str(err), str(err)


def test_config_line_by_hash_and_comments():
    src = f".config {TINY.hash}  # hash\n.queue vxm0 ; x\n  mov e1, w1 # y\n"
    assert assemble(src, TINY).queues == {"vxm0": [encode(make("mov", (1, E), (1, W)))]}


def test_first_error_wins_and_position_counts_tabs_as_one_column():
    src = ".queue vxm0\n\tadd e0, e9, e0\n\tadd e0, e99, e0\n"
    err = _error(src)
    assert (err.line, err.col) == (2, src.split("\n")[1].index("e9") + 1)


# -- programs and configs ------------------------------------------------------------------


def test_tiny_program_refused_on_small():
    prog = assemble(".queue mem_w0\n    read 3, e0\n", TINY)
    with pytest.raises(ProgramError, match=SMALL.hash):
        prog.check_config(SMALL)
    with pytest.raises(ProgramError):
        disassemble(prog, SMALL)
    back = Program.from_bytes(prog.to_bytes())
    with pytest.raises(ProgramError):
        back.check_config(SMALL)


def test_disassemble_checks_instructions_against_config():
    # legal on small (16 streams), but not on tiny (8): same hash forced to reach the check
    prog = Program(TINY.hash, {"vxm0": [encode(make("add", (12, E), (0, E), (0, E)))]})
    with pytest.raises(ProgramError, match=r"vxm0 word 0 .*'dst' = e12"):
        disassemble(prog, TINY, name="x.bin")
    assert "add e12, e0, e0" in disassemble(prog)


def test_disassemble_refuses_non_canonical_words():
    word = encode(make("nop", 3)) | (1 << 31)
    with pytest.raises(ProgramError, match="bits set outside its fields"):
        disassemble(Program(TINY.hash, {"vxm0": [word]}))


def test_assemble_file(tmp_path):
    path = tmp_path / "p.s"
    path.write_text(".queue sxm_w\n    perm w0, w1, e2\n")
    prog = assemble_file(path, "tiny")
    assert prog.queues == {"sxm_w": [encode(make("perm", (0, W), (1, W), (2, E)))]}
    assert prog.where("sxm_w", 0) == f"{path}:2"
    with pytest.raises(AsmError, match="cannot read"):
        assemble_file(tmp_path / "missing.s", TINY)


# -- command line ----------------------------------------------------------------------------


SOURCE = """; CLI test
.config tiny
.queue mem_w0
    read 3, e0
    repeat 2, 1
.queue mxm_e0
    lw 0, w0, 2
    iw
    mm e0, w1, 0
"""


def test_cli_asm_and_disasm(tmp_path, capsys):
    src, binf, out = tmp_path / "p.s", tmp_path / "p.bin", tmp_path / "back.s"
    src.write_text(SOURCE)
    assert cli.main(["asm", str(src), "--config", "tiny", "-o", str(binf)]) == 0
    expected = assemble(SOURCE, TINY)
    assert Program.load(binf).queues == expected.queues
    assert cli.main(["disasm", str(binf), "--config", "tiny", "-o", str(out)]) == 0
    assert assemble(out.read_text(), TINY).queues == expected.queues
    capsys.readouterr()
    assert cli.main(["disasm", str(binf)]) == 0
    printed = capsys.readouterr().out
    assert f".config {TINY.hash}" in printed and "mm e0, w1, 0" in printed
    # no --config: the source's .config line names the preset; default output name
    assert cli.main(["asm", str(src)]) == 0
    assert Program.load(src.with_suffix(".bin")).queues == expected.queues


@pytest.mark.parametrize("argv, needle", [
    (["asm", "{missing}", "--config", "tiny"], "cannot read"),
    (["asm", "{src}", "--config", "small"], "this is config small"),
    (["asm", "{bad}", "--config", "tiny"], "unknown opcode"),
    (["asm", "{src}", "--config", "no-such-preset"], "unknown preset"),
    (["disasm", "{missing}"], "cannot read"),
    (["disasm", "{garbage}"], "not an LPU program"),
    (["disasm", "{bin}", "--config", "small"], "assemble it again"),
])
def test_cli_errors_exit_1(tmp_path, capsys, argv, needle):
    paths = {"missing": tmp_path / "missing", "src": tmp_path / "p.s",
             "bad": tmp_path / "bad.s", "garbage": tmp_path / "g.bin", "bin": tmp_path / "p.bin"}
    paths["src"].write_text(SOURCE)
    paths["bad"].write_text(".queue vxm0\n    fadx e0, e0, e0\n")
    paths["garbage"].write_bytes(b"\x00garbage")
    assemble(SOURCE, TINY).save(paths["bin"])
    argv = [a.format(**paths) for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert err.startswith(f"lpu {argv[0]}: error: ")


def test_cli_subprocess_error_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.s"
    bad.write_text(".queue mem_w0\n    read 300, e0\n")
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "asm", str(bad), "--config", "tiny"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    line, col = _where(bad.read_text(), 2, "300")
    assert f"{bad}:{line}:{col}: operand 'addr' = 300 is out of range" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_mnemonic_is_in_by_mnemonic():
    # the assembler looks mnemonics up there; a clash would hide an opcode
    assert len(BY_MNEMONIC) == len(OPS)
