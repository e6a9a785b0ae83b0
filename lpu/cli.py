"""The ``lpu`` command line.

Each subcommand lives in the module that implements it; this file only parses
arguments, dispatches, and turns :class:`~lpu.errors.LpuError` into a one-line
message and exit status 1 (usage errors exit 2, as argparse does).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import LpuError

# name -> (module, help). Each module has `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "config": ("lpu.tools.configcmd", "show a chip configuration and its derived values"),
    "run": ("lpu.golden.runcmd", "run a program on the golden chip model"),
    "bench": ("lpu.tools.bench", "measure simulation speed"),
    "decode": ("lpu.tools.decode", "generate text token by token on the golden chip model"),
    "asm": ("lpu.tools.asm", "assemble a source file into a program for one chip config"),
    "disasm": ("lpu.tools.asm", "disassemble a program file (checking it against a config)"),
    "verilog": ("lpu.tools.verilog", "write Verilog of the chip top (or a block) and its ports"),
    "synth": ("lpu.tools.synth", "synthesize, place and route for the ECP5 (yowasp tools)"),
    "sim": ("lpu.sim.simcmd", "run a program on the RTL in lockstep with the golden model"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpu",
        description="A parameterizable model of Groq's LPU (Tensor Streaming Processor)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (modname, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        mod = importlib.import_module(modname)
        adder = getattr(mod, f"add_{name}_arguments", None) or mod.add_arguments
        adder(p)
        p.set_defaults(_module=modname, _command=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    runner = getattr(mod, f"run_{args._command}", None) or mod.run
    try:
        return int(runner(args) or 0)
    except LpuError as e:
        print(f"lpu {args._command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lpu {args._command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
