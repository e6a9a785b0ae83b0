"""``lpu run``: run a program on the golden chip model, or one program a chip on a golden
system of chips joined by C2C links (``--system``, :mod:`lpu.golden.system`)."""

from __future__ import annotations

import json
import sys

import numpy as np

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.golden.chip import Chip, progress_lines
from lpu.golden.system import System
from lpu.loaders import (
    imem_problem,
    load_mem_npz,
    load_program,
    load_system_inputs,
    output_path,
    write_output,
)
from lpu.trace import to_json, write_jsonl

HELP = "run a program on the golden chip model (or a system of chips: --system)"


def add_arguments(p):
    p.add_argument("program", nargs="+",
                   help="assembly file (.s) or assembled binary (.bin); with --system, one "
                        "a chip, in chip order")
    p.add_argument("--config", default=None, help="preset name or YAML file (default: tiny)")
    p.add_argument("--system", metavar="S.yaml",
                   help="run a system of chips joined by C2C links (lpu.system: chip, chips, "
                        "topology), one program a chip, statically checked as a whole")
    p.add_argument("--mem-in", metavar="X.npz", action="append",
                   help="initial SRAM: arrays named SLICE or SLICE@ADDR (e.g. mem_w0@16), "
                        "shape [n, VL]; int8/uint8 take one word per vector, int32/uint32/"
                        "float32 four (byte planes); with --system, once a chip in chip "
                        "order ('-': none)")
    p.add_argument("--mem-out", metavar="Y.npz",
                   help="write every MEM slice's SRAM at the end (with --system: arrays "
                        "named chipN.SLICE)")
    p.add_argument("--trace", metavar="T.jsonl",
                   help="write the event trace (docs/trace.md; with --system every event "
                        "also has its chip)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--no-check", action="store_true",
                   help="skip the static checker (the model still stops at an illegal cycle)")
    p.add_argument("--max-cycles", type=int, metavar="N",
                   help="stop with an error if the run has not finished after N cycles")


def run(args) -> int:
    if args.max_cycles is not None and args.max_cycles < 1:
        raise LpuError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    if args.system:
        return _run_system(args)
    if len(args.program) > 1:
        raise LpuError(f"one program runs on one chip, not {len(args.program)}; a system of "
                       "chips runs one a chip: --system S.yaml")
    args.program = args.program[0]
    if args.mem_in and len(args.mem_in) > 1:
        raise LpuError("--mem-in is given once for one chip (once a chip with --system)")
    args.mem_in = args.mem_in[0] if args.mem_in else None
    if args.trace:
        output_path(args.trace, what="trace", inputs=(args.program, args.mem_in))
    if args.mem_out:
        output_path(args.mem_out, suffix=".npz", what="SRAM image", inputs=(args.program,))
    cfg = cfgmod.load(args.config or "tiny")
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


def _run_system(args) -> int:
    """``lpu run --system S.yaml P0 P1 ..``: the golden system (one program a chip)."""
    if args.max_cycles is not None:
        raise LpuError("--max-cycles is not supported with --system (a system runs to its end)")
    sysc, mem_in = load_system_inputs(args.system, args.program, args.mem_in,
                                      config=args.config)
    n = sysc.chips
    inputs = (*args.program, *(m for m in mem_in if m != "-"))
    if args.trace:
        output_path(args.trace, what="trace", inputs=inputs)
    if args.mem_out:
        output_path(args.mem_out, suffix=".npz", what="SRAM image", inputs=inputs)
    cfg = sysc.chip
    s = System(sysc)
    summary = {"system": args.system, "chips": n, "topology": sysc.topology,
               "config": cfg.name, "config_hash": cfg.hash, "programs": args.program}
    try:
        progs = [load_program(p, cfg) for p in args.program]
        for chip, path in zip(s.chips, mem_in, strict=False):
            if path != "-":
                load_mem_npz(chip, path)
        s.load(progs, names=list(args.program))
        results = s.run(trace=bool(args.trace))
    except LpuError as e:
        if args.json:
            summary.update(ok=False, errors=[str(e)])
            print(json.dumps(summary, indent=2))
            return 1
        raise
    if args.trace:
        def write(p):
            with open(p, "w") as f:
                for i, r in enumerate(results):
                    for ev in r.events:
                        f.write(json.dumps({"chip": i, **to_json(ev)}) + "\n")
        write_output(args.trace, write, what="trace")
    if args.mem_out:
        mem = {f"chip{i}.{m}": c.read_mem(m, 0, cfg.mem_words)
               for i, c in enumerate(s.chips) for m in c.mem_names}
        write_output(args.mem_out, lambda p: np.savez(p, **mem), what="SRAM image")
    summary.update(ok=True, errors=[], results=[
        {"chip": i, "program": p, "cycles": r.cycles, "end_cycle": r.end_cycle,
         "instructions": sum(r.dispatched.values()), "dispatched": r.dispatched}
        for i, (p, r) in enumerate(zip(args.program, results, strict=True))])
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.system}: {n} chips of {cfg.name}, {sysc.topology} (latency "
          f"{cfg.c2c_latency}, width {cfg.c2c_width})")
    for i, (p, r) in enumerate(zip(args.program, results, strict=True)):
        busy = ", ".join(f"{q} {k}" for q, k in r.dispatched.items() if k)
        print(f"chip {i}: {p}: {r.cycles} cycles (the run ends in cycle {r.end_cycle}); "
              f"dispatched: {busy or 'none'}")
    return 0
