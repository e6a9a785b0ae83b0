"""The ``lpu`` subcommands: one thin module each (``HELP``, ``add_arguments``, ``run``).

A command parses its arguments, calls a library function and prints; it holds no
work of its own that a test or the Python API would need. :mod:`lpu.cli` lists them.
"""

__all__ = ["asm", "bench", "config", "decode", "directed", "disasm", "isadoc", "random",
           "regress", "run", "sim", "synth", "timeline", "train", "verilog"]
