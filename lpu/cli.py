"""The ``lpu`` command line.

One thin module per subcommand lives in :mod:`lpu.commands` (``add_arguments(parser)``,
``run(args) -> int`` and a one-line ``HELP``); the work is in the libraries they call.
This file only parses arguments, dispatches, and turns :class:`~lpu.errors.LpuError`
into a one-line message and exit status 1 (usage errors exit 2, as argparse does).
"""

from __future__ import annotations

import argparse
import sys

from .commands import (
    asm,
    bench,
    config,
    decode,
    directed,
    disasm,
    isadoc,
    random,
    regress,
    run,
    sim,
    synth,
    timeline,
    train,
    verilog,
)
from .errors import LpuError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand name -> its module, in the order ``lpu --help`` lists them.
COMMANDS = {
    "decode": decode, "config": config, "asm": asm, "disasm": disasm, "run": run,
    "sim": sim, "bench": bench, "timeline": timeline, "verilog": verilog, "synth": synth,
    "directed": directed, "random": random, "regress": regress, "isadoc": isadoc,
    "train": train,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpu",
        description="A parameterizable model of Groq's LPU (Tensor Streaming Processor)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, mod in COMMANDS.items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LpuError as e:
        print(f"lpu {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lpu {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
