"""``lpu disasm``: disassemble a program file, checking it against a config."""

from __future__ import annotations

import sys

from lpu import config as cfgmod
from lpu.asm import disassemble
from lpu.errors import LpuError
from lpu.loaders import output_path, write_output
from lpu.program import MAGIC, Program

HELP = "disassemble a program file (checking it against a config)"


def add_arguments(p):
    p.add_argument("program", metavar="FILE.bin", help="program file")
    p.add_argument("--config", "-c", metavar="PRESET",
                   help="preset name or YAML file to check the program against")
    p.add_argument("-o", "--output", metavar="FILE.s",
                   help="source file to write (default: standard output)")


def _looks_like_source(path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False  # Program.load names the problem
    return not head.startswith(MAGIC) and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(
        (b".queue", b".config", b";", b"#"))


def run(args) -> int:
    if args.output:
        out = output_path(args.output, what="source", inputs=(args.program,))
    if _looks_like_source(args.program):
        raise LpuError(f"{args.program}: is an assembly source, not an assembled program; "
                       f"lpu disasm reads what lpu asm writes (lpu asm {args.program})")
    prog = Program.load(args.program)
    cfg = cfgmod.load(args.config) if args.config else None
    text = disassemble(prog, cfg, name=args.program)
    if args.output:
        write_output(out, lambda p: p.write_text(text), what="source")
    else:
        sys.stdout.write(text)
    return 0
