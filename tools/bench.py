"""``lpu bench``: measure how fast the models simulate.

``lpu bench golden --config small`` builds a program that keeps every queue busy every
cycle (MEM slices reading four words, every VXM ALU adding fp32 vectors, MXM planes
multiplying, SXMs rotating), checks it, and times the golden model running it.
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.isa import make
from lpu.program import Program

E, W = 0, 1


def busy_program(cfg, cycles: int) -> Program:
    """Every queue dispatches an instruction every cycle for about `cycles` cycles."""
    pos = {p.name: p.index for p in cfg.positions}
    qs: dict = {}

    def steady(queue, start, ins):
        n = cycles - start
        if n <= 0:
            return
        lst = [make("nop", start)] if start else []
        left = n
        while left > 0:
            lst.append(ins)
            left -= 1
            r = min(left, 4095)
            if r:
                lst.append(make("repeat", r, 1, 0))
                left -= r
        qs[queue] = lst

    n = cfg.mem_slices
    for h in "we":
        for i in range(n):
            toward_centre = (i % 2 == 0)
            d = (E if h == "w" else W) if toward_centre else (W if h == "w" else E)
            steady(f"mem_{h}{i}", 0, make("read", 0, (0, d), 4))
    # VXM: a from mem_w0 (east), b from mem_e0 (west), both arrive at cycle 2
    for j in range(cfg.vxm_alus):
        dst = (4 * (j // 2) % cfg.streams, j % 2)
        steady(f"vxm{j}", 2, make("fadd", dst, (0, E), (0, W)))
    # MXM/SXM: fed by the nearest MEM slice that reads away from the centre
    for h, dirn in (("w", W), ("e", E)):
        src = f"mem_{h}1" if n > 1 else None
        for k in range(cfg.mxm_planes):
            if src is None:
                steady(f"mxm_{h}{k}", 0, make("iw"))
            else:
                start = 1 + abs(pos[src] - pos[f"mxm_{h}"])
                steady(f"mxm_{h}{k}", start, make("mm", None, (k % 4, dirn), 0))
        if src is None:
            continue
        start = 1 + abs(pos[src] - pos[f"sxm_{h}"])
        out = E if h == "w" else W
        steady(f"sxm_{h}", start, make("rot", (4, out), (0, dirn), 1, 4))
    return Program.from_instrs(cfg, qs)


def bench_golden(cfg, cycles: int) -> dict:
    from lpu.golden.chip import Chip

    prog = busy_program(cfg, cycles)
    chip = Chip(cfg)
    rng = np.random.default_rng(0)
    for name in chip.mem_names:
        chip.write_mem(name, 0, rng.integers(0, 256, size=(4, cfg.vl), dtype=np.uint8))
    t0 = time.perf_counter()
    chip.load(prog)
    t1 = time.perf_counter()
    res = chip.run()
    t2 = time.perf_counter()
    n_ins = sum(res.dispatched.values())
    busy = sum(1 for v in res.dispatched.values() if v)
    return {
        "model": "golden", "config": cfg.name, "cycles": res.cycles,
        "instructions": n_ins, "queues": len(cfg.queues), "queues_busy": busy,
        "check_and_load_s": round(t1 - t0, 3), "run_s": round(t2 - t1, 3),
        "cycles_per_s": round(res.cycles / (t2 - t1)),
        "instructions_per_s": round(n_ins / (t2 - t1)),
        "python": platform.python_version(), "numpy": np.__version__,
    }


def bench_decode(cfg, steps: int, prompt: str = "ROMEO:\n") -> dict:
    """Decode the shipped model on the golden chip for `steps` steps: cycles per token
    against the analytic bound, and wall-clock time per token (compile and run)."""
    from lpu.golden.decode import decode

    n = max(0, steps - len(prompt.encode()) + 1)
    prompt_b = prompt.encode()[:steps] if n == 0 else prompt.encode()
    t0 = time.perf_counter()
    r = decode("builtin", tokens=list(prompt_b), n=n, config=cfg, backend="golden")
    wall = time.perf_counter() - t0
    k = len(r.cycles)
    return {
        "model": "bytes-llama (builtin)", "config": cfg.name, "steps": k,
        "cycles_per_token": round(r.cycles_per_token, 1),
        "bound_cycles_per_token": round(float(np.mean(r.bound_cycles)), 1),
        "ratio_to_bound": round(r.ratio_to_bound, 2),
        "tokens_per_s_at_clock": round(r.tokens_per_s, 1), "clock_mhz": cfg.clock_mhz,
        "compile_s_per_token": round(r.compile_s / k, 3),
        "golden_run_s_per_token": round(r.run_s / k, 3),
        "wall_s_per_token": round(wall / k, 3),
        "python": platform.python_version(), "numpy": np.__version__,
    }


def add_arguments(p):
    p.add_argument("target", choices=["golden", "decode"],
                   help="golden: golden-model cycles/s on a busy program; decode: the "
                        "shipped model on the golden chip (cycles/token, wall time)")
    p.add_argument("--config", default="small", help="preset name or YAML file")
    p.add_argument("--cycles", type=int, default=5000, help="program length in cycles (golden)")
    p.add_argument("--steps", type=int, default=10, help="decode steps (decode)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    cfg = cfgmod.load(args.config)
    if args.target == "decode":
        if args.steps < 1:
            raise LpuError("--steps must be at least 1")
        r = bench_decode(cfg, args.steps)
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            print(f"decode on {r['config']}: {r['steps']} steps, {r['cycles_per_token']} "
                  f"cycles/token, bound {r['bound_cycles_per_token']} ({r['ratio_to_bound']}x), "
                  f"{r['tokens_per_s_at_clock']} tokens/s at {r['clock_mhz']:g} MHz; wall "
                  f"{r['wall_s_per_token']} s/token (compile {r['compile_s_per_token']} s, "
                  f"golden model {r['golden_run_s_per_token']} s)")
        return 0
    if args.cycles < 10:
        raise LpuError("--cycles must be at least 10")
    r = bench_golden(cfg, args.cycles)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"golden model on {r['config']}: {r['cycles']} cycles, {r['instructions']} "
              f"instructions ({r['queues_busy']}/{r['queues']} queues busy) in {r['run_s']} s: "
              f"{r['cycles_per_s']} cycles/s, {r['instructions_per_s']} instructions/s "
              f"(check and load {r['check_and_load_s']} s)")
    return 0
