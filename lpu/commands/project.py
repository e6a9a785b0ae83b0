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
    if model is not None and args.seq is not None and args.seq > model.max_position_embeddings:
        raise LpuError(f"--seq {args.seq} exceeds the model's max_position_embeddings "
                       f"{model.max_position_embeddings} ({model.source})")
    return chip, model


def run(args) -> int:
    chip, model = _check(args)
    cal = pj.calibrate(progress=_progress)
    proj = sens = None
    if model is not None:
        proj = pj.project(model, chip, args.chips, batch=args.batch, seq=args.seq,
                          calibration=cal, name=_name(args.model, model))
        if args.sensitivity:
            sens = pj.sensitivity(model, chip, args.chips, batch=args.batch, seq=args.seq,
                                  calibration=cal)
    if args.json:
        out = proj.as_dict() if proj is not None else {"calibration": cal.as_dict()}
        if sens is not None:
            out["sensitivity"] = [_sens_dict(what, r) for what, r in sens]
        print(json.dumps(out, indent=2))
        return 0
    if args.calibrate:
        print("\n".join(calibration_lines(cal)))
    if proj is not None:
        if args.calibrate:
            print()
        print("\n".join(projection_lines(proj)))
    if sens is not None:
        print("\n".join(sensitivity_lines(sens)))
    return 0


def _name(spec: str, model) -> str:
    pub = pj.published_for(model)
    return pub[0] if pub is not None else str(spec)


def _sens_dict(what, r) -> dict:
    if isinstance(r, LpuError):
        return {"variant": what, "error": str(r)}
    return {"variant": what, "tokens_per_s_user": r.tokens_per_s_user,
            "tokens_per_s_total": r.tokens_per_s_total, "token_cycles": r.plan.token_cycles,
            "tp": r.plan.tp, "stages": r.plan.stages}


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def calibration_lines(cal) -> list[str]:
    out = [f"calibration: a block's cycles = max(largest bound, critical path x (1 + "
           f"{cal.kv:.3f} x (KV heads - 1)) + {cal.busy:.3f} x (VXM + SXM + MXM throughput "
           f"bounds)), fitted on {len(cal.rows)} decode steps the compiler scheduled, run on "
           "the golden chip model:",
           f"  {'chip':5} {'step':24} {'pos':>4} {'scheduled':>10} {'crit. path':>11} "
           f"{'estimate':>9} {'error':>7} {'left out':>9}"]
    for r, loo in zip(cal.rows, cal.loo, strict=True):
        out.append(f"  {r.chip:5} {r.label:24} {r.pos:4} {r.scheduled:10,} "
                   f"{r.critical_path:11,} {round(r.predicted):9,} {_pct(r.error):>7} "
                   f"{_pct(loo):>9}")
    out.append(f"calibration error: mean |error| {100 * cal.mean_abs_error:.1f}%, largest "
               f"{100 * cal.max_abs_error:.1f}%; each step left out of the fit: mean "
               f"{100 * cal.loo_mean_abs_error:.1f}%, largest {100 * cal.loo_max_abs_error:.1f}%")
    return out


_KIND_NAMES = {"embed": "embedding", "attn": "attention", "attn (layer 0)": "attention (layer 0)",
               "ffn_up": "FFN gate/up", "ffn_down": "FFN down", "head": "LM head"}


def projection_lines(p) -> list[str]:
    c, pl, f = p.chip, p.plan, p.fewest
    avail = c.mem_bytes - pj.sram_reserve(c)
    layout = sum(b.bytes["weights"] for b in pj.blocks_for(p.model, c, 1, p.seq,
                                                            p.calibration, p.system))
    kv = sum(b.bytes["kv"] for b in p.blocks) * pl.tp
    out = [f"{p.name} ({p.model.source}) on {p.chips} chips of {c.name} ({c.clock_mhz:g} MHz, "
           f"{c.mem_bytes:,} B of SRAM each, {avail:,} B for weights and KV cache), batch "
           f"{p.batch}, {p.seq} positions",
           f"placement: int8 weights {layout / 1e9:.2f} GB laid out in {c.vl}-lane vectors "
           f"({pj.raw_weight_bytes(p.model) / 1e9:.2f} GB unpadded); KV cache "
           f"{kv / 1e9:.3f} GB per sequence at tensor parallel {pl.tp}; fewest chips that "
           f"hold it: {f.chips} (tensor parallel {f.tp} x {f.stages} stages)",
           f"partition: tensor parallel {pl.tp} x {pl.stages} pipeline stages = {pl.chips} "
           f"chips ({p.chips - pl.chips} idle); {min(j - i for i, j in pl.bounds)}-"
           f"{max(j - i for i, j in pl.bounds)} blocks a stage (stage 0: {p.stage_names(0)}; "
           f"last: {p.stage_names(pl.stages - 1)}); the fullest chip holds "
           f"{max(pl.stage_sram):,} B",
           f"per block on one chip of {pl.tp} (cycles: estimate = critical path + calibrated "
           f"schedule, or a bound; + all-reduce over the links):"]
    for key, b in pj.distinct_blocks(p.blocks).items():
        sb = b.bounds
        tp = ", ".join(f"{u} {v:,.0f}" for u, v in sb.throughput.items())
        ar = f" + all-reduce {b.allreduce:,.0f}" if b.allreduce else ""
        out.append(f"  {_KIND_NAMES[key]:20} {b.cycles:9,.0f}{ar} (critical path "
                   f"{sb.critical_path:,}; throughput {tp})")
    tok = pl.token_cycles
    out.append(f"one token: {tok:,.0f} cycles = {1e3 * p.seconds_per_token:.3f} ms, where it "
               "goes:")
    for what, cyc in p.breakdown.items():
        extra = f" ({pl.stages - 1} hops)" if what == "links: pipeline hops" else ""
        out.append(f"  {what + extra:38} {cyc:12,.0f} {100 * cyc / tok:5.1f}%")
    mxm = sum(b.bounds.throughput["mxm"] for b in p.blocks)
    out.append(f"  (the MXMs stream weights {mxm:,.0f} cycles of it, {100 * mxm / tok:.1f}%, "
               "overlapped with the above)")
    if pl.round_cycles > tok:
        out.append(f"  the pipeline, not the token, sets the pace: a round of {p.batch} "
                   f"passes of the slowest stage is {pl.round_cycles:,.0f} cycles")
    out.append(f"rates: {p.tokens_per_s_user:,.1f} tokens/s per user, "
               f"{p.tokens_per_s_total:,.1f} tokens/s in total (batch {p.batch}); the chips "
               f"are busy {100 * pl.utilization:.1f}% of the time (pipeline bubbles "
               f"{100 * (1 - pl.utilization):.1f}%)")
    pub = p.published
    if pub is not None:
        name, (_, lo, hi, ctx, src) = pub
        span = f"{lo:g}-{hi:g}" if lo != hi else f"{lo:g}"
        out.append(f"published: {name} {span} tokens/s per user ({src}); this estimate is "
                   f"{p.tokens_per_s_user / hi:.2f}-{p.tokens_per_s_user / lo:.2f}x that"
                   if lo != hi else
                   f"published: {name} {span} tokens/s per user ({src}); this estimate is "
                   f"{p.tokens_per_s_user / lo:.2f}x that")
    cal = p.calibration
    out.append(f"calibration: {len(cal.rows)} compiled steps on tiny and small, estimate "
               f"within {100 * cal.mean_abs_error:.1f}% on average (largest "
               f"{100 * cal.max_abs_error:.1f}%; left out of the fit "
               f"{100 * cal.loo_mean_abs_error:.1f}%, {100 * cal.loo_max_abs_error:.1f}%): "
               "lpu project --calibrate prints each")
    out.append("links and host are modelled from published numbers, not simulated "
               f"(C2C link {p.system.link_latency} cycles, {p.system.link_gbps:g} Gb/s; network "
               f"hop {p.system.hop_ns:g} ns; host {p.system.host_ns / 1000:g} us each way, "
               "assumed): docs/project.md")
    return out


def sensitivity_lines(sens) -> list[str]:
    out = ["sensitivity (one thing changed at a time):"]
    for what, r in sens:
        if isinstance(r, LpuError):
            out.append(f"  {what:64} does not fit: {r}")
        else:
            out.append(f"  {what:64} {r.tokens_per_s_user:9,.1f} tokens/s per user "
                       f"({r.tokens_per_s_total:,.1f} in total; tp {r.plan.tp} x "
                       f"{r.plan.stages} stages)")
    return out
