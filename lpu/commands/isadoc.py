"""``lpu isadoc``: write docs/isa.md from the ISA definition (:mod:`lpu.isa`).

    lpu isadoc -o docs/isa.md      # or -o - for standard output
"""

from __future__ import annotations

import sys

from lpu.loaders import output_path, write_output
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
    out = output_path(args.output, what="ISA document")
    write_output(out, lambda p: p.write_text(text), what="ISA document")
    return 0
