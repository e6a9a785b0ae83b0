"""The ``lpu`` command line.

One thin module per subcommand lives in :mod:`lpu.commands` (``add_arguments(parser)``,
``run(args) -> int`` and a one-line ``HELP``); the work is in the libraries they call.
This file only parses arguments, dispatches, and turns what a command raises into
one line on standard error and an exit status (README, "Exit status"):

===== ==========================================================================
0     done (for checks: everything matched)
1     a bad input refused (an :class:`~lpu.errors.LpuError`: the file, the place
      and the problem), or a check that failed (``lpu sim`` diverged, ...)
2     a usage error: an unknown option or a value of the wrong type (argparse)
3     an internal error: any other exception is a bug in lpu; one line says what it
      was and where to report it, and the traceback follows only with ``LPU_DEBUG=1``
130   interrupted (Ctrl-C)
===== ==========================================================================
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .commands import (
    asm,
    bench,
    board,
    config,
    decode,
    directed,
    disasm,
    formal,
    isadoc,
    project,
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

__all__ = ["COMMANDS", "EXIT_INPUT", "EXIT_INTERNAL", "build_parser", "main"]

#: Exit status of a refused input (an LpuError).
EXIT_INPUT = 1
#: Exit status of an internal error (an exception that is not an LpuError: a bug).
EXIT_INTERNAL = 3
#: Where to report a bug.
REPORT_TO = "the lpu issue tracker (include the command line and the LPU_DEBUG=1 output)"

#: Subcommand name -> its module, in the order ``lpu --help`` lists them.
COMMANDS = {
    "decode": decode, "config": config, "asm": asm, "disasm": disasm, "run": run,
    "sim": sim, "board": board, "bench": bench, "timeline": timeline, "verilog": verilog,
    "synth": synth, "formal": formal,
    "directed": directed, "random": random, "regress": regress, "isadoc": isadoc,
    "train": train, "project": project,
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
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"lpu {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - every other exception is a bug in lpu
        return _internal_error(args.command, e)


def _internal_error(command: str, e: Exception) -> int:
    """One line naming the bug and where to report it; the traceback under LPU_DEBUG=1."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    what = str(e).splitlines()[0][:200] if str(e) else ""
    print(f"lpu {command}: internal error (a bug in lpu, not in your input): "
          f"{type(e).__name__}{where}{': ' + what if what else ''}; please report it to "
          f"{REPORT_TO}" + ("" if os.environ.get("LPU_DEBUG") == "1"
                            else "; LPU_DEBUG=1 shows the traceback"), file=sys.stderr)
    if os.environ.get("LPU_DEBUG") == "1":
        traceback.print_exception(e, file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
