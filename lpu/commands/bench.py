"""``lpu bench``: measure how fast the models simulate and how fast the chip decodes.

    lpu bench golden --config small          # golden-model cycles/s on a busy program
    lpu bench decode --config small          # cycles/token of the shipped model
    lpu bench rtl --config tiny --backend verilator   # RTL build, free and lockstep speed
    lpu bench accuracy                       # LPU-exact numerics against float32
    lpu bench synth --config fpga [--no-route]   # ECP5 area, Fmax, area by block
    lpu bench ecc --config tiny [--backend golden|amaranth] [--pairs N]   # SECDED sweep

The measurements are :mod:`lpu.tools.bench` (and :mod:`lpu.tools.ecc` for ``ecc``).
"""

from __future__ import annotations

import json
import sys

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.tools.area import table_lines
from lpu.tools.bench import (
    bench_accuracy,
    bench_board,
    bench_decode,
    bench_golden,
    bench_pipeline,
    bench_rtl,
    bench_synth,
)
from lpu.tools.ecc import BACKENDS as ECC_BACKENDS
from lpu.tools.ecc import summary as ecc_summary
from lpu.tools.ecc import sweep as ecc_sweep
from lpu.tools.synth import report_lines

HELP = "measure simulation speed"

#: The longest busy program `lpu bench golden/rtl` builds.
MAX_CYCLES = 1_000_000


def add_arguments(p):
    p.add_argument("target", choices=["golden", "decode", "rtl", "accuracy", "synth", "ecc"],
                   help="golden: golden-model cycles/s on a busy program; decode: the "
                        "shipped model on the golden chip (cycles/token, wall time); rtl: "
                        "the busy program on the RTL (build time, free-running and "
                        "lockstep cycles/s); accuracy: the shipped model's LPU-exact "
                        "logits against float32 on held-out text (top-1 agreement); synth: "
                        "the chip on the ECP5-85F (yowasp tools: LUT4s, DSPs, Fmax) and the "
                        "area of each block; ecc: every single-bit and double-bit fault of "
                        "an SRAM ECC word, corrected / detected percentages")
    p.add_argument("--backend", choices=["golden", "amaranth", "verilator", "icarus"],
                   default=None, help="rtl: the simulator (default verilator); decode: "
                   "golden (default), or verilator / icarus: every step also on the RTL "
                   "in lockstep (cycles/s, wall time per token)")
    p.add_argument("--compare", choices=["bulk", "cycle"], default="bulk",
                   help="rtl, Verilator and Icarus: lockstep recorded and compared in bulk "
                        "(default) or cycle by cycle inside the simulator")
    p.add_argument("--fresh", action="store_true",
                   help="rtl: build in an empty cache (measures the build time)")
    p.add_argument("--config", default=None,
                   help="preset name or YAML file (default: fpga for synth and decode "
                        "--board, small otherwise)")
    p.add_argument("--no-route", action="store_true",
                   help="synth: place but do not route (Fmax estimated after placement)")
    p.add_argument("--cycles", type=int, default=5000,
                   help="program length in cycles (golden, rtl)")
    p.add_argument("--steps", type=int, default=10, help="decode steps (decode)")
    p.add_argument("--batch", type=int, default=1,
                   help="decode: sequences in one step program (default 1)")
    p.add_argument("--chips", type=int, default=1,
                   help="decode: the model's layers pipelined across this many chips "
                        "(golden system; compared with one chip)")
    p.add_argument("--tp", type=int, default=1,
                   help="decode with --chips N: N makes the chips one tensor-parallel group")
    p.add_argument("--board", metavar="sim|DEV", default=None,
                   help="decode: every step through a board's UART bridge ('sim': the "
                        "simulated board on Verilator; or a serial port), the line's bytes "
                        "and the tokens/s at --fmax and --baud, the line included")
    p.add_argument("--model", default=None,
                   help="decode --board: the model (default fpga-llama, the shipped model "
                        "that fits the fpga preset)")
    p.add_argument("--fmax", type=float, default=None, metavar="MHZ",
                   help="decode --board: the chip's clock for the tokens/s estimate "
                        "(default the config's clock_mhz)")
    p.add_argument("--baud", type=int, default=None,
                   help="decode --board: the line's rate for the estimate, and a real board's "
                        "(default 1000000)")
    p.add_argument("--positions", type=int, default=256,
                   help="accuracy: teacher-forced positions of held-out text (default 256)")
    p.add_argument("--pairs", type=int, default=None,
                   help="ecc: double-bit faults to try, a seeded sample (default: every pair)")
    p.add_argument("--seed", type=int, default=0,
                   help="ecc: seed of the random words, places and sample (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _board(args, cfg, backend) -> int:
    if backend != "golden" or args.batch != 1:
        raise LpuError("--board: one sequence, every step on the board beside the golden "
                       "model (no --backend, no --batch)")
    if args.fmax is not None and not args.fmax > 0:
        raise LpuError(f"--fmax must be a positive clock in MHz, not {args.fmax}")
    if args.baud is not None and args.baud <= 0:
        raise LpuError(f"--baud must be a positive number of bits per second, not {args.baud}")
    r = bench_board(cfg, args.steps, model=args.model or "fpga-llama", board=args.board,
                    baud=args.baud, fmax_mhz=args.fmax, log=sys.stderr)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0 if r["same_as_golden"] else 1
    e, f, t = r["estimate"], r["first_step"], r["per_token"]
    print(f"decode on the {r['board']} ({r['config']}, {r['model']}): {r['steps']} steps, "
          f"{r['cycles_per_token']} cycles/token; tokens and logits "
          f"{'identical to' if r['same_as_golden'] else 'DIFFERENT from'} the golden "
          f"backend's; wall {r['wall_s_per_token']} s/token")
    print(f"line: first step {f['bytes_sent'] + f['bytes_received']:,} bytes in "
          f"{f['requests']:,} requests ({f['sram_words']} SRAM words, {f['imem_words']} "
          f"instruction words); then {t['bytes_sent'] + t['bytes_received']:,.0f} bytes in "
          f"{t['requests']:,.0f} requests a token ({t['sram_words']:.0f} SRAM words, "
          f"{t['imem_words']:.0f} instruction words)")
    print(f"at {e['clock_mhz']:g} MHz and {e['baud']:,} baud: {e['chip_us_per_token']} us of "
          f"chip and {e['line_us_per_token']} us of line a token (mean of {e['steps']} "
          f"steps after the first): {e['tokens_per_s']} tokens/s "
          f"({e['chip_only_tokens_per_s']} with the chip alone); the USB adapter's "
          f"round trips ({t['requests']:.0f} a token) come on top")
    return 0 if r["same_as_golden"] else 1


def _pipeline(args, cfg, backend) -> int:
    if backend != "golden":
        raise LpuError(f"--chips {args.chips}: the pipeline runs on the golden system "
                       f"(--backend golden), not --backend {backend}")
    if args.chips == 1:
        raise LpuError(f"--tp {args.tp}: tensor parallelism splits a layer across chips; "
                       f"give --chips {args.tp} too")
    r = bench_pipeline(cfg, args.steps, args.chips, args.batch, args.tp)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0 if r["same_as_one_chip"] else 1
    flight = f", {r['batch']} sequences in flight" if r["batch"] > 1 else ""
    print(f"decode on {r['system']}{flight}: {r['steps']} steps, {r['cycles_per_token']} "
          f"cycles/token ({r['speedup_over_one_chip']}x the throughput of one chip's "
          f"{r['one_chip_cycles_per_token']}); {r['tokens_per_s_at_clock']} tokens/s in "
          f"total, {r['tokens_per_s_per_sequence']} per sequence at {r['clock_mhz']:g} MHz; "
          f"tokens and logits {'identical to' if r['same_as_one_chip'] else 'DIFFERENT from'}"
          f" one chip's; wall {r['wall_s_per_token']} s/token (compile "
          f"{r['compile_s_per_token']} s, golden system {r['golden_run_s_per_token']} s)")
    for s in r["stages"]:
        print(f"  {s['stage']}: busy {100 * s['busy_fraction']:.0f}% of the cycles, critical "
              f"path {s['critical_path_last_step']} (last step), SRAM {s['sram_words']} words "
              f"({100 * s['sram_fraction']:.0f}%)")
    if r["tp"] > 1 and r["tp"] == r["chips"]:
        print(f"links: {r['link_words_per_hop_per_token']} words a rank a token on its ring "
              f"link ({r['link_bytes_per_token']} bytes a token over {r['chips']} links), "
              f"width {r['link_width']}, latency {r['link_latency']}")
    else:
        print(f"links: {r['link_words_per_hop_per_token']} words a hop a token "
              f"({r['link_bytes_per_token']} bytes a token over {r['hops']} hop(s)), "
              f"{r['link_send_cycles_per_hop']} send cycles a hop at width {r['link_width']}, "
              f"latency {r['link_latency']}")
    if r["tp"] > 1 and r["tp"] == r["chips"]:
        print(f"tensor parallel: {r['exchanges_per_step']} exchanges a step on each rank's "
              f"ring link; a rank's critical path (its exchanges included) "
              f"{r['rank_critical_path_last_step']}: the last step is "
              f"{r['last_step_ratio_to_rank_critical_path']}x it")
    elif r["batch"] == 1:
        print("cycles from one chip's end to the next one's start: "
              + ", ".join(str(h) for h in r["hop_cycles"])
              + f"; the stages' critical paths sum to "
                f"{r['sum_of_stage_critical_paths_last_step']}, with the hops "
                f"{r['pipeline_floor_last_step']}: the last step is "
                f"{r['last_step_ratio_to_pipeline_floor']}x that floor")
    else:
        print(f"{r['beats']} beats, median {r['beat_cycles_median']} cycles (stages start at "
              f"cycle {r['beat_start_cycle']}, after the links); the largest stage's "
              f"critical path {r['largest_stage_critical_path']}, with the links "
              f"{r['beat_floor']}: the median beat is {r['median_beat_ratio_to_floor']}x "
              "that floor")
    return 0 if r["same_as_one_chip"] else 1


def run(args) -> int:
    cfg = cfgmod.load(args.config or ("fpga" if args.target == "synth" or args.board
                                      else "small"))
    if args.target == "synth":
        r = bench_synth(cfg, route=not args.no_route,
                        progress=lambda s: print(s, file=sys.stderr, flush=True))
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            print("\n".join(report_lines(r["chip"]) + table_lines(r["blocks"])))
        return 0 if r["chip"]["fits"] and r["chip"]["meets_target"] else 1
    if args.target == "ecc":
        backend = args.backend or "golden"
        if backend not in ECC_BACKENDS:
            raise LpuError(f"--backend {backend}: ecc runs on {' or '.join(ECC_BACKENDS)}")
        if args.seed < 0:
            raise LpuError(f"--seed must be 0 or more, not {args.seed}")
        if args.pairs is not None and args.pairs < 1:
            raise LpuError(f"--pairs must be at least 1, not {args.pairs}")
        r = ecc_sweep(cfg, backend, pairs=args.pairs, seed=args.seed)
        print(json.dumps(r, indent=2) if args.json else ecc_summary(r))
        return 0 if r["corrected"] == r["singles"] and r["detected"] == r["doubles"] else 1
    if args.target == "accuracy":
        r = bench_accuracy(cfg, args.positions)
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            print(f"accuracy on {r['config']}: {r['model']}, {r['positions']} teacher-forced "
                  f"held-out positions, LPU-exact vs float32: top-1 agreement "
                  f"{100 * r['top1_agreement']:.1f}% ({r['top1_same']}/{r['positions']}), "
                  f"largest logit difference {r['max_logit_diff']} (logits within "
                  f"+-{r['logit_span']}); {r['wall_s']} s")
        return 0
    if args.target == "decode":
        if args.steps < 1:
            raise LpuError("--steps must be at least 1")
        if args.batch < 1:
            raise LpuError(f"--batch must be at least 1, not {args.batch}")
        backend = args.backend or "golden"
        if backend == "amaranth":
            raise LpuError("--backend amaranth: decode runs on golden, verilator or icarus")
        if args.chips != 1 or args.tp != 1:
            return _pipeline(args, cfg, backend)
        if args.board is not None:
            return _board(args, cfg, backend)
        for flag in ("model", "fmax", "baud"):
            if getattr(args, flag) is not None:
                raise LpuError(f"--{flag}: goes with decode --board")
        r = bench_decode(cfg, args.steps, batch=args.batch, backend=backend,
                         log=sys.stderr if backend != "golden" else None)
        if args.json:
            print(json.dumps(r, indent=2))
        elif backend != "golden":
            print(f"decode on {r['config']} ({backend}, every step in lockstep with the "
                  f"golden model): {r['steps']} steps, {r['cycles_per_token']} cycles/token; "
                  f"RTL {r['rtl_cycles_per_s']:,} cycles/s ({r['rtl_cycles']} cycles in "
                  f"{r['rtl_run_s']} s from START to the end of each run); wall "
                  f"{r['wall_s_per_token']} s/token (compile {r['compile_s_per_token']} s); "
                  f"{r['rtl_sram_words_written']} SRAM words written by the host; tokens and "
                  f"logits {'identical to' if r['same_as_golden'] else 'DIFFERENT from'} "
                  "the golden backend's")
            return 0 if r["same_as_golden"] else 1
        else:
            per = (f"{r['cycles_per_step']} cycles/step for {r['batch']} sequences, "
                   if r["batch"] > 1 else "")
            print(f"decode on {r['config']}: {r['steps']} steps, {per}"
                  f"{r['cycles_per_token']} cycles/token, {r['ratio_to_floor']}x the step's "
                  f"floor of {r['floor_cycles_per_step']} ({r['limited_by']}), "
                  f"{r['ratio_to_throughput']}x its largest throughput bound "
                  f"({r['largest_throughput_bound']}); "
                  f"{r['tokens_per_s_at_clock']} tokens/s at {r['clock_mhz']:g} MHz; wall "
                  f"{r['wall_s_per_token']} s/step (compile {r['compile_s_per_token']} s, "
                  f"golden model {r['golden_run_s_per_token']} s)")
            print("bounds (cycles/step): " + ", ".join(
                f"{k} {v}" for k, v in r["bounds_cycles_per_step"].items()))
            print("critical path by algorithm (cycles): " + ", ".join(
                f"{k} {v}" for k, v in r["critical_path_breakdown"].items()))
            print("queue slots dispatching, by slice kind (last step): " + ", ".join(
                f"{k} {100 * v:.0f}%" for k, v in r["slot_use_last_step"].items()))
            if r["schedule_gap_breakdown"] is not None:
                print("schedule minus critical path, by algorithm (cycles, last step): " +
                      ", ".join(f"{k} {v}" for k, v in r["schedule_gap_breakdown"].items()))
        return 0
    if args.cycles < 10:
        raise LpuError("--cycles must be at least 10")
    if args.cycles > MAX_CYCLES:
        raise LpuError(f"--cycles must be at most {MAX_CYCLES:,} (a longer program takes "
                       f"hours to simulate), not {args.cycles}")
    if args.target == "rtl":
        if args.backend == "golden":
            raise LpuError("--backend golden: rtl runs on amaranth, verilator or icarus "
                           "(the golden model's speed: lpu bench golden)")
        r = bench_rtl(cfg, args.backend or "verilator", args.cycles, args.fresh, args.compare)
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            cached = " (cached)" if r.get("build_cached") else ""
            if "verilog_conversion_s" in r and not r.get("build_cached"):
                split = (f": Verilator {r['verilate_s']} s, C++ compile "
                         f"{r['cxx_compile_s']} s" if r.get("verilate_s") is not None else "")
                cached = (f" (Verilog conversion {r['verilog_conversion_s']} s, "
                          f"simulator build {r['simulator_build_s']} s{split}; "
                          f"{r['build_cpu_s']} CPU s)")
            cpu = (f", {r['free_cycles_per_cpu_s']} per CPU second"
                   if r.get("free_cycles_per_cpu_s") else "")
            print(f"{r['model']} on {r['config']}: build {r['build_s']} s{cached}; free "
                  f"running {r['free_cycles_per_s']} cycles/s{cpu} ({r['free_cycles']} "
                  f"cycles); "
                  f"lockstep ({r['lockstep_compare']}) {r['lockstep_cycles_per_s']} cycles/s "
                  f"({r['lockstep_cycles']} cycles, {r['lockstep_events']} events): "
                  f"{100 * r['lockstep_ratio']:.0f}% of free running")
            sec = r.get("lockstep_seconds") or {}
            if "golden_run" in sec:
                print(f"lockstep, START to verdict {sec['lockstep']} s: the RTL ran "
                      f"{sec['run']} s, recorded, and the comparison beside it took "
                      f"{sec['compare']} s; before START the golden model loaded the "
                      f"program in {sec['golden_load']} s (checked before that, in "
                      f"{r['check_s']} s) and ran it in {sec['golden_run']} s; with that "
                      f"run, {r['lockstep_with_golden_cycles_per_s']} cycles/s "
                      f"({100 * r['lockstep_with_golden_ratio']:.0f}% of free running)")
        return 0
    r = bench_golden(cfg, args.cycles)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"golden model on {r['config']}: {r['cycles']} cycles, {r['instructions']} "
              f"instructions ({r['queues_busy']}/{r['queues']} queues busy) in {r['run_s']} s: "
              f"{r['cycles_per_s']} cycles/s, {r['instructions_per_s']} instructions/s "
              f"(check and load {r['check_and_load_s']} s)")
    return 0
