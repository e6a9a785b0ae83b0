"""``lpu disasm``: disassemble a program file, checking it against a config."""

from __future__ import annotations

import sys
from pathlib import Path

from lpu import config as cfgmod
from lpu.asm import AsmError, disassemble
from lpu.program import Program

HELP = "disassemble a program file (checking it against a config)"


def add_arguments(p):
    p.add_argument("program", metavar="FILE.bin", help="program file")
    p.add_argument("--config", "-c", metavar="PRESET",
                   help="preset name or YAML file to check the program against")
    p.add_argument("-o", "--output", metavar="FILE.s",
                   help="source file to write (default: standard output)")


def run(args) -> int:
    prog = Program.load(args.program)
    cfg = cfgmod.load(args.config) if args.config else None
    text = disassemble(prog, cfg, name=args.program)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as e:
            raise AsmError(args.output, 0, 0, f"cannot write: {e.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0
