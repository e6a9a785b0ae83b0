"""``lpu run``: run a program on the golden chip model."""

from __future__ import annotations

import json
import sys

import numpy as np

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.golden.chip import Chip, progress_lines
from lpu.loaders import imem_problem, load_mem_npz, load_program, output_path, write_output
from lpu.trace import write_jsonl

HELP = "run a program on the golden chip model"


def add_arguments(p):
    p.add_argument("program", help="assembly file (.s) or assembled binary (.bin)")
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--mem-in", metavar="X.npz",
                   help="initial SRAM: arrays named SLICE or SLICE@ADDR (e.g. mem_w0@16), "
                        "shape [n, VL]; int8/uint8 take one word per vector, int32/uint32/"
                        "float32 four (byte planes)")
    p.add_argument("--mem-out", metavar="Y.npz", help="write every MEM slice's SRAM at the end")
    p.add_argument("--trace", metavar="T.jsonl", help="write the event trace (docs/trace.md)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--no-check", action="store_true",
                   help="skip the static checker (the model still stops at an illegal cycle)")
    p.add_argument("--max-cycles", type=int, metavar="N",
                   help="stop with an error if the run has not finished after N cycles")


def run(args) -> int:
    if args.max_cycles is not None and args.max_cycles < 1:
        raise LpuError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    if args.trace:
        output_path(args.trace, what="trace", inputs=(args.program, args.mem_in))
    if args.mem_out:
        output_path(args.mem_out, suffix=".npz", what="SRAM image", inputs=(args.program,))
    cfg = cfgmod.load(args.config)
    chip = Chip(cfg)
    summary = {"program": args.program, "config": cfg.name, "config_hash": cfg.hash}
    try:
        prog = load_program(args.program, cfg)
        too_long = imem_problem(prog, cfg, args.program)
        if too_long:  # the golden model has no instruction memory; say so all the same
            print(f"lpu run: warning: {too_long}; the golden model runs it, lpu sim would "
                  "refuse it", file=sys.stderr)
        if args.mem_in:
            load_mem_npz(chip, args.mem_in)
        chip.load(prog, check_first=not args.no_check, name=args.program)
        res = chip.run(trace=bool(args.trace), max_cycles=args.max_cycles,
                       progress=progress_lines("lpu run"))
        if not chip.done:
            raise LpuError(f"{args.program}: the run did not finish within --max-cycles "
                           f"{args.max_cycles} (its last dispatch is at cycle "
                           f"{chip.last_dispatch}; it ends in cycle {chip.end_cycle})")
    except LpuError as e:
        if args.json:
            summary.update(ok=False, errors=[str(e)])
            print(json.dumps(summary, indent=2))
            return 1
        raise
    if args.trace:
        write_output(args.trace, lambda p: write_jsonl(res.events, p), what="trace")
    if args.mem_out:
        mem = {n: chip.read_mem(n, 0, cfg.mem_words) for n in chip.mem_names}
        write_output(args.mem_out, lambda p: np.savez(p, **mem), what="SRAM image")
    summary.update(ok=True, cycles=res.cycles, end_cycle=res.end_cycle,
                   dispatched=res.dispatched,
                   instructions=sum(res.dispatched.values()), errors=[])
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        busy = ", ".join(f"{q} {n}" for q, n in res.dispatched.items() if n)
        print(f"{args.program}: {res.cycles} cycles on {cfg.name} (the run ends in cycle "
              f"{res.end_cycle}); dispatched: {busy or 'none'}")
        if args.trace:
            print(f"trace: {len(res.events)} events in {args.trace}", file=sys.stderr)
    return 0
