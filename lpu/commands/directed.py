"""``lpu directed``: the directed programs (every opcode on its edge values).

    lpu directed --config tiny --list           # name, cycles, words, checks, opcodes
    lpu directed --config tiny --check          # run each on the golden model, check SRAM
    lpu directed --config tiny --write out/     # out/NAME.s and out/NAME.npz (--mem-in)

The programs are :func:`lpu.sim.programs.directed.directed_programs`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lpu.asm import disassemble
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.sim.programs.directed import PROGRAM_NAMES, all_mnemonics, directed_programs

HELP = "list, write or check the directed programs (every opcode)"


def add_arguments(p):
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--list", action="store_true", help="name, cycles, words, opcodes")
    p.add_argument("--write", metavar="DIR",
                   help="write NAME.s and NAME.npz (initial SRAM, for --mem-in) per program")
    p.add_argument("--check", action="store_true",
                   help="run each on the golden model and check the SRAM it leaves")
    p.add_argument("names", nargs="*", help=f"only these programs ({', '.join(PROGRAM_NAMES)})")


def run(args) -> int:
    unknown = sorted(set(args.names) - set(PROGRAM_NAMES))
    if unknown:
        raise LpuError(f"no directed program {', '.join(unknown)}; there are "
                       f"{', '.join(PROGRAM_NAMES)}")
    cfg = load_config(args.config)
    progs = [d for d in directed_programs(cfg) if not args.names or d.name in args.names]
    if args.list or not (args.write or args.check):
        for d in progs:
            words = sum(len(w) for w in d.program.queues.values())
            print(f"{d.name:8} {d.cycles:4} cycles {words:4} words {len(d.expected):3} checks "
                  f" {len(d.opcodes):2} opcodes: {' '.join(sorted(d.opcodes))}")
        every = set().union(*(d.opcodes for d in progs)) if progs else set()
        missing = all_mnemonics() - every
        print(f"{len(every)} of {len(all_mnemonics())} opcodes"
              + (f"; missing: {' '.join(sorted(missing))}" if missing else ""))
    if args.write:
        out = Path(args.write)
        if out.exists() and not out.is_dir():
            raise LpuError(f"{out}: is a file; --write names the folder to write into")
        try:
            out.mkdir(parents=True, exist_ok=True)
            for d in progs:
                (out / f"{d.name}.s").write_text(
                    f"; directed program {d.name!r} ({d.doc}); config {cfg.name}\n"
                    f"; initial SRAM: {d.name}.npz (lpu run/sim --mem-in)\n"
                    + disassemble(d.program, cfg))
                np.savez(out / f"{d.name}.npz", **d.mem_init)
                print(f"{out / d.name}.s, .npz")
        except OSError as e:
            raise LpuError(f"{e.filename or out}: cannot write: {e.strerror}") from None
    if args.check:
        bad = 0
        for d in progs:
            chip = Chip(cfg)
            for name, words in d.mem_init.items():
                chip.write_mem(name, 0, words)
            chip.load(d.program)
            chip.run()
            try:
                d.check(chip)
                print(f"{d.name}: ok ({len(d.expected)} checks)")
            except AssertionError as e:
                bad += 1
                print(f"{d.name}: FAILED: {e}")
        return 1 if bad else 0
    return 0
