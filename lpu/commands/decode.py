"""``lpu decode``: generate text token by token on the golden chip model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from lpu.board import DEFAULT_BAUD
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.tools import board_decode
from lpu.tools.compiler.decode import BACKENDS, HOST_BACKENDS, RTL_BACKENDS
from lpu.tools.rtl_decode import decode

HELP = "generate text token by token on the golden chip model"
DEFAULT_PROMPT = "ROMEO:\n"
#: The most sequences one decode runs (each its own KV cache; beyond it a run takes hours).
MAX_BATCH = 256


def add_arguments(p):
    p.add_argument("--model", default=None,
                   help="checkpoint folder (config.json + model.safetensors), 'builtin', or "
                        "a shipped model's name (fpga-llama: the one that fits the fpga "
                        "preset); default builtin, with --board fpga-llama")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", help=f"prompt text (default {DEFAULT_PROMPT!r})")
    src.add_argument("--tokens", help="prompt as token ids, e.g. 1,2,3")
    p.add_argument("-n", type=int, default=16, help="tokens to generate (default 16)")
    p.add_argument("--config", default=None,
                   help="chip preset or YAML (default small, with --board fpga)")
    p.add_argument("--backend", default="golden",
                   choices=[b for b in BACKENDS if b != "board"],
                   help="golden: the chip model; reference: float32 op-level model; "
                        "exact: numpy evaluation of what the chip computes; verilator, "
                        "icarus, amaranth: every step on the chip's RTL in lockstep with the "
                        "golden model (a line per step on stderr)")
    p.add_argument("--board", metavar="sim|DEV", default=None,
                   help="every step through a board's UART bridge, checked against the golden "
                        "model: 'sim' for the simulated board (the chip and bridge on "
                        "Verilator, the serial line simulated), or the serial port of a "
                        "board running the lpu bitstream (/dev/ttyUSB0); docs/fpga.md")
    p.add_argument("--baud", type=int, default=None,
                   help=f"with --board DEV: the rate the bitstream was built for (default "
                        f"{DEFAULT_BAUD})")
    p.add_argument("--fail-dir", default=None,
                   help="RTL backends: where a step that leaves lockstep is saved as a "
                        "replayable case (default: a new folder under the temp dir)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed")
    p.add_argument("--context", type=int, default=None,
                   help="KV cache positions (default: the model's max_position_embeddings)")
    p.add_argument("--batch", type=int, default=1,
                   help="sequences of the prompt decoded together (golden: one step program "
                        "runs them all; sampling uses a generator per sequence)")
    p.add_argument("--chips", type=int, default=1,
                   help="split the model's layers across a pipeline of this many chips "
                        "joined by C2C links (golden backend; the config gets two links "
                        "if it has none); the tokens are the one-chip tokens")
    p.add_argument("--tp", type=int, default=1,
                   help="with --chips N: 1 (default) pipelines the layers; N makes the chips "
                        "one tensor-parallel group (query heads and FFN columns split, "
                        "all-reduced over the links)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _tokens(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise LpuError(f"--tokens: expected comma-separated integers, got {text!r}") from None


def run(args) -> int:
    if args.batch > MAX_BATCH:
        raise LpuError(f"--batch must be at most {MAX_BATCH} (every sequence has its own KV "
                       f"cache and runs every step), not {args.batch}")
    if args.config is None:
        args.config = "fpga" if args.board is not None else "small"
    if args.model is None:
        args.model = "fpga-llama" if args.board is not None else "builtin"
    load_config(args.config)  # refused even where the backend does not use it (reference)
    if args.board is not None:
        if args.backend != "golden":
            raise LpuError(f"--board runs every step on the board, beside the golden model; "
                           f"it does not go with --backend {args.backend}")
        if not args.board:
            raise LpuError("--board: give 'sim' (the simulated board) or a serial port")
        if args.chips != 1:
            raise LpuError(f"--board drives one chip through its bridge; --chips {args.chips} "
                           "runs on the golden system")
        if args.baud is not None and args.board == board_decode.SIM:
            raise LpuError("--baud: the simulated board's line runs at its own rate; "
                           "--baud is for a real board (--board /dev/ttyUSB0)")
        if args.baud is not None and args.baud <= 0:
            raise LpuError(f"--baud must be a positive number of bits per second, not "
                           f"{args.baud}")
        args.backend = "board"
    elif args.baud is not None:
        raise LpuError("--baud is the serial rate of a board: give --board DEV too")
    if args.fail_dir is not None:
        if args.backend not in RTL_BACKENDS:
            raise LpuError(f"--fail-dir: only the RTL backends ({', '.join(RTL_BACKENDS)}) "
                           f"save failing steps, not --backend {args.backend}")
        d = Path(args.fail_dir)
        if d.exists() and not d.is_dir():
            raise LpuError(f"--fail-dir {d}: is a file; expected a folder for failing steps")
        if not d.exists() and not d.parent.is_dir():
            raise LpuError(f"--fail-dir {d}: no such folder {d.parent}")
    if args.prompt is not None:
        try:
            args.prompt.encode("utf-8")
        except UnicodeEncodeError as e:  # bytes of the command line that are not UTF-8
            bad = ord(args.prompt[e.start]) - 0xDC00
            byte = f"byte 0x{bad:02x}" if 0 <= bad < 256 else repr(args.prompt[e.start])
            raise LpuError(f"--prompt: character {e.start} ({byte}) is not UTF-8 text; the "
                           "model reads UTF-8 (or give token ids with --tokens)") from None
    tokens = _tokens(args.tokens) if args.tokens is not None else None
    prompt = None if tokens is not None else (args.prompt if args.prompt is not None
                                              else DEFAULT_PROMPT)
    # the RTL and board backends print a line per step instead of the bar
    show = sys.stderr.isatty() and not args.json and args.backend not in HOST_BACKENDS

    def progress(done, total):
        if show:
            bar = "#" * (30 * done // total)
            print(f"\r[{bar:<30}] {done}/{total} steps", end="", file=sys.stderr, flush=True)

    kw = dict(prompt=prompt, tokens=tokens, n=args.n, config=args.config,
              temperature=args.temperature, seed=args.seed, context=args.context,
              batch=args.batch, progress=progress, chips=args.chips, tp=args.tp,
              log=sys.stderr if args.backend in HOST_BACKENDS else None)
    if args.backend == "board":
        r = board_decode.decode(args.model, board=args.board,
                                baud=args.baud or DEFAULT_BAUD, **kw)
    else:
        r = decode(args.model, backend=args.backend, failures=args.fail_dir, **kw)
    if show:
        print(file=sys.stderr)
    for step, logits in enumerate(r.logits):
        if not np.all(np.isfinite(logits)):  # the tokens picked from them mean nothing
            raise LpuError(f"{args.model}: step {step}: the model's logits are not finite "
                           "(NaN or inf): its weights or activations overflow float32")
    summary = {
        "backend": r.backend, "config": r.config, "prompt_tokens": r.prompt,
        "tokens": r.tokens, "text": r.text,
        "cycles": r.cycles, "cycles_per_token": r.cycles_per_token,
        "batch": r.batch, "cycles_per_step": r.cycles_per_step,
        "batch_tokens": r.batch_tokens, "batch_texts": r.batch_texts,
        "bound_cycles_per_token": (sum(r.bound_cycles) / len(r.bound_cycles)
                                   if r.bound_cycles else None),
        "ratio_to_bound": r.ratio_to_bound,
        "floor_cycles_per_token": r.floor_cycles_per_token,
        "ratio_to_floor": r.ratio_to_floor, "tokens_per_s": r.tokens_per_s,
        "clock_mhz": r.clock_mhz, "compile_s": round(r.compile_s, 3),
        "run_s": round(r.run_s, 3), "chips": r.chips, "pipeline": r.pipeline,
    }
    if args.backend == "board":
        summary["board"] = r.rtl
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if r.batch == 1:
        print(r.text)
    else:
        for b, text in enumerate(r.batch_texts):
            print(f"[{b}] {text}")
    print()
    if r.pipeline is not None:
        print(f"{r.pipeline['system']}")
        for line in r.pipeline["stages"]:
            print(f"  {line}")
    if r.cycles and r.chips > 1 and r.batch > 1:
        print(f"{len(r.cycles)} steps of {r.batch} sequences in flight on {r.chips} chips of "
              f"{r.config} ({r.pipeline['beats']} beats): {r.cycles_per_token:.0f} cycles/token, "
              f"{r.tokens_per_s:,.0f} tokens/s in total at {r.clock_mhz:g} MHz "
              f"({r.tokens_per_s / r.batch:,.0f} per sequence); compile {r.compile_s:.1f} s, "
              f"golden system {r.run_s:.1f} s")
    elif r.cycles:
        per = (f"{r.cycles_per_step:.0f} cycles/step for {r.batch} sequences, "
               if r.batch > 1 else "")
        where = f"{r.chips} chips of {r.config}" if r.chips > 1 else r.config
        print(f"{len(r.cycles)} steps on {where} ({r.backend}): {per}"
              f"{r.cycles_per_token:.0f} cycles/token, "
              f"{r.tokens_per_s:,.0f} tokens/s at {r.clock_mhz:g} MHz, "
              f"{r.ratio_to_floor:.3f}x the {'one-chip ' if r.chips > 1 else ''}step's "
              f"floor of {r.floor_cycles_per_token:.0f} "
              + ("(the links add their cycles: lpu bench decode --chips); " if r.chips > 1
                 else "(critical path, units, bandwidth: lpu bench decode); ") +
              f"compile {r.compile_s:.1f} s, "
              + {"golden": "golden model", "board": "board and golden model"}.get(
                  r.backend, r.backend + " in lockstep") + f" {r.run_s:.1f} s")
    else:
        print(f"{len(r.prompt) + len(r.tokens) - 1} steps ({r.backend}) in {r.run_s:.1f} s")
    if r.backend == "board" and r.rtl and r.rtl["steps"]:
        b, f = r.rtl, r.rtl["first_step"]
        print(f"{b['board']}: {b['steps']} steps as the golden model, "
              f"{b['bytes_sent'] + b['bytes_received']:,} bytes on the line in "
              f"{b['requests']:,} requests ({f['bytes_sent'] + f['bytes_received']:,} of them "
              "in the first step, with the weights); lpu bench decode --board gives the "
              "tokens/s at a clock and baud rate")
    return 0
