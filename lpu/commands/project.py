"""``lpu project``: decode of a Llama-shaped model at Groq scale, estimated.

    lpu project --model llama-2-70b --preset groq --chips 576
    lpu project --model path/to/config.json --chips 64 --batch 4 --seq 2048 --json
    lpu project --calibrate                  # the estimate against compiled steps
    lpu project --model llama-2-7b --chips 64 --sensitivity

The model is :mod:`lpu.tools.project` (docs/project.md).
"""

from __future__ import annotations

import json
import sys

from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.tools import project as pj

HELP = "estimate decode tokens/s of a Llama-shaped model on many chips (groq preset)"


def add_arguments(p):
    p.add_argument("--model", help="a Hugging Face config.json, a folder holding one, or a "
                                   "shipped model: " + ", ".join(pj.shipped_models()))
    p.add_argument("--preset", default="groq",
                   help="chip preset or YAML of every chip (default groq)")
    p.add_argument("--chips", type=int, help="chips in the system")
    p.add_argument("--batch", type=int, default=1,
                   help="sequences in flight, each with its own KV cache (default 1)")
    p.add_argument("--seq", type=int, default=None,
                   help="positions in the KV cache, the new token's included (default the "
                        "model's max_position_embeddings)")
    p.add_argument("--calibrate", action="store_true",
                   help="print the estimate against every calibration step (alone, or with "
                        "a projection)")
    p.add_argument("--sensitivity", action="store_true",
                   help="the projection again with the calibration, the links and the host "
                        "changed one at a time")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _progress(line: str) -> None:
    print(f"lpu project: {line} (once; then cached)", file=sys.stderr, flush=True)


def _check(args):
    """Every flag checked before any work."""
    if args.model is None and not args.calibrate:
        raise LpuError("--model is needed (or --calibrate alone)")
    if args.model is not None and args.chips is None:
        raise LpuError("--chips is needed with --model")
    for flag, v in (("--chips", args.chips), ("--batch", args.batch), ("--seq", args.seq)):
        if v is not None and v < 1:
            raise LpuError(f"{flag} must be at least 1, not {v}")
    chip = load_config(args.preset)
    model = pj.load_model_config(args.model) if args.model is not None else None
    if model is not None:
        if args.seq is not None and args.seq > model.max_position_embeddings:
            raise LpuError(f"--seq {args.seq} exceeds the model's max_position_embeddings "
                           f"{model.max_position_embeddings} ({model.source})")
        pj.check_fit(model, chip, args.chips, args.batch,
                     args.seq or model.max_position_embeddings)
    return chip, model


def run(args) -> int:
    chip, model = _check(args)
    cal = pj.calibrate(progress=_progress)
    proj = sens = None
    if model is not None:
        proj = pj.project(model, chip, args.chips, batch=args.batch, seq=args.seq,
                          calibration=cal)
        if args.sensitivity:
            sens = pj.sensitivity(model, chip, args.chips, batch=args.batch, seq=args.seq,
                                  calibration=cal)
    if args.json:
        out = proj.as_dict() if proj is not None else {"calibration": cal.as_dict()}
        if sens is not None:
            out["sensitivity"] = [pj.sensitivity_dict(what, r) for what, r in sens]
        print(json.dumps(out, indent=2))
        return 0
    if args.calibrate:
        print("\n".join(pj.calibration_lines(cal)))
    if proj is not None:
        if args.calibrate:
            print()
        print("\n".join(pj.projection_lines(proj)))
    if sens is not None:
        print("\n".join(pj.sensitivity_lines(sens)))
    return 0
