"""``lpu isadoc``: write docs/isa.md from the ISA definition (:mod:`lpu.isa`).

    lpu isadoc -o docs/isa.md      # or -o - for standard output
"""

from __future__ import annotations

import sys
from pathlib import Path

from lpu.errors import LpuError
from lpu.tools.isadoc import DEFAULT_PATH, render

HELP = "write docs/isa.md from the ISA definition"


def add_arguments(p):
    p.add_argument("-o", "--output", default=str(DEFAULT_PATH),
                   help="file to write, '-' for standard output (default: docs/isa.md)")


def run(args) -> int:
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text)
    except OSError as e:
        raise LpuError(f"{args.output}: cannot write: {e.strerror}") from None
    return 0
