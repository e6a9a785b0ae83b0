"""Benchmarks: how fast the models simulate and how fast the chip decodes (``lpu bench``).

``lpu bench golden --config small`` builds a program that keeps every queue busy every
cycle (MEM slices reading four words, every VXM ALU adding fp32 vectors, MXM planes
multiplying, SXMs rotating), checks it, and times the golden model running it.

``lpu bench rtl --config tiny --backend amaranth|verilator|icarus`` runs the same
program on the RTL: the time to build the simulation (Verilog conversion and simulator
build for Verilator and Icarus; ``--fresh`` builds in an empty cache to measure it),
cycles per second running free (no comparison: the program is loaded, started and left
to finish) and in lockstep with the golden model (every cycle's events compared).

``lpu bench accuracy`` measures the numerics (docs/numerics.md): the shipped model,
teacher-forced over the first positions of its held-out text, evaluated LPU-exact (the
numpy evaluation the golden chip equals bit for bit) against the float32 reference:
top-1 agreement and the largest logit difference.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from lpu.board import DEFAULT_BAUD
from lpu.errors import LpuError
from lpu.golden.check import check
from lpu.golden.chip import Chip, progress_lines
from lpu.golden.model import exact as lx
from lpu.golden.model.checkpoint import builtin_model_path, check_fits, load_builtin
from lpu.golden.model.reference import logits_sequence
from lpu.hdl.host import RegisterMap
from lpu.isa import REPEAT_N_MAX, E, W, make
from lpu.program import Program
from lpu.sim import verilator as vl
from lpu.sim.cocotb_runner import build_chip, lockstep_hdl_many
from lpu.sim.hostbus import SimBus
from lpu.sim.lockstep import AmaranthBackend, lockstep
from lpu.tools import board_decode
from lpu.tools.area import block_utilisation
from lpu.tools.compiler.decode import decode
from lpu.tools.compiler.graph import schedule_gap
from lpu.tools.compiler.listsched import schedule_step
from lpu.tools.compiler.pipeline import PipelineDecoder, partition, stage_critical_path, system_for
from lpu.tools.compiler.timeline import utilisation
from lpu.tools.rtl_decode import decode as rtl_decode
from lpu.tools.synth import synth

__all__ = ["busy_program", "bench_golden", "bench_decode", "bench_rtl", "bench_accuracy",
           "bench_synth"]


def busy_program(cfg, cycles: int) -> Program:
    """Every queue dispatches an instruction every cycle for about `cycles` cycles."""
    if cfg.bank_words < 4:  # each MEM slice reads 4 words of one bank
        raise LpuError(f"config {cfg.name}: the busy program of lpu bench reads 4 words of "
                       f"one SRAM bank; it needs mem_words of at least 8, not {cfg.mem_words}")
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
            r = min(left, REPEAT_N_MAX)
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
    prog = busy_program(cfg, cycles)
    chip = Chip(cfg)
    rng = np.random.default_rng(0)
    for name in chip.mem_names:
        chip.write_mem(name, 0, rng.integers(0, 256, size=(4, cfg.vl), dtype=np.uint8))
    t0 = time.perf_counter()
    chip.load(prog)
    t1 = time.perf_counter()
    res = chip.run(progress=progress_lines("lpu bench golden"))
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


def bench_accuracy(cfg, positions: int = 256) -> dict:
    """Teacher-forced over the first `positions` bytes of the shipped model's held-out
    text: how often the LPU-exact logits (vector length of `cfg`) pick the float32
    reference's top-1 byte, and the largest absolute logit difference."""
    model = load_builtin()
    text = (builtin_model_path() / "heldout.txt").read_bytes()
    if not 1 <= positions <= min(len(text), model.config.max_position_embeddings):
        raise LpuError(f"--positions must be between 1 and "
                       f"{min(len(text), model.config.max_position_embeddings)}, "
                       f"not {positions}")
    check_fits(model.config, cfg, positions)  # the layout rules of the step (head_dim == VL)
    toks = list(text[:positions])
    t0 = time.perf_counter()
    ref = logits_sequence(model, toks)
    ops = lx.NumpyOps(cfg.vl)
    prep = lx.Prepared(ops, model, -(-positions // cfg.vl) * cfg.vl)  # whole KV blocks
    agree, worst = 0, 0.0
    for pos, t in enumerate(toks):
        lg = lx.decode_step(ops, prep, t, pos).view(np.float32).reshape(-1)
        agree += int(lg.argmax() == ref[pos].argmax())
        worst = max(worst, float(np.abs(lg.astype(np.float64) - ref[pos]).max()))
    return {"model": "bytes-llama (builtin)", "config": cfg.name, "positions": positions,
            "top1_agreement": round(agree / positions, 4), "top1_same": agree,
            "max_logit_diff": round(worst, 4),
            "logit_span": round(float(np.abs(ref).max()), 2),
            "wall_s": round(time.perf_counter() - t0, 3)}


def bench_decode(cfg, steps: int, prompt: str = "ROMEO:\n", batch: int = 1,
                 backend: str = "golden", log=None) -> dict:
    """Decode the shipped model on the golden chip for `steps` steps: cycles per token
    against every bound of the step (critical path, throughput per unit kind, bandwidth;
    :func:`lpu.tools.compiler.graph.step_bounds`, the mean over the steps), the critical
    path's split by algorithm and the schedule's loss against it (last step), and
    wall-clock time per token.

    With ``batch > 1`` the step runs that many sequences (one program; the context the
    smallest that holds the steps); cycles are reported per step and per token of one
    sequence (step / batch), the bounds per step, and the ratio of the step to the
    largest throughput bound of that batch.

    On an RTL `backend` (``verilator``, ``icarus``) every step also runs on the chip's
    Verilog in lockstep (:mod:`lpu.tools.rtl_decode`; a line per step to `log`): the result
    adds the RTL's cycles per second (START to the end of each run), the wall time per
    token of the whole loop, and whether the tokens and logits are the golden
    backend's (decoded again on the golden chip for that)."""
    n = max(0, steps - len(prompt.encode()) + 1)
    prompt_b = prompt.encode()[:steps] if n == 0 else prompt.encode()
    t0 = time.perf_counter()
    r = rtl_decode("builtin", tokens=list(prompt_b), n=n, config=cfg, backend=backend,
                   batch=batch, log=log)
    wall = time.perf_counter() - t0
    k = len(r.cycles)
    names = r.bounds[0]["bounds"]
    mean_bounds = {n: round(float(np.mean([b["bounds"][n] for b in r.bounds])), 1)
                   for n in names}
    limit = max(mean_bounds, key=mean_bounds.get)
    tput = {k_: v for k_, v in mean_bounds.items() if k_.startswith("throughput")}
    t_limit = max(tput, key=tput.get)
    gap, slot_use = _last_step(cfg, k - 1, batch, r.context)
    out = {
        "model": "bytes-llama (builtin)", "config": cfg.name, "steps": k, "batch": batch,
        "cycles_per_step": round(r.cycles_per_step, 1),
        "cycles_per_token": round(r.cycles_per_token, 1),
        "bounds_cycles_per_step": mean_bounds,
        "floor_cycles_per_step": mean_bounds[limit], "limited_by": limit,
        "ratio_to_floor": round(r.cycles_per_step / mean_bounds[limit], 3),
        "largest_throughput_bound": t_limit,
        "ratio_to_throughput": round(r.cycles_per_step / tput[t_limit], 3),
        "critical_path_breakdown": r.bounds[-1]["breakdown"],
        "schedule_gap_breakdown": gap,
        "slot_use_last_step": slot_use,
        "bound_cycles_per_token": round(float(np.mean(r.bound_cycles)), 1),
        "ratio_to_bound": round(r.ratio_to_bound, 2),
        "tokens_per_s_at_clock": round(r.tokens_per_s, 1), "clock_mhz": cfg.clock_mhz,
        "compile_s_per_token": round(r.compile_s / k, 3),
        "golden_run_s_per_token": round(r.run_s / k, 3),
        "wall_s_per_token": round(wall / k, 3),
        "python": platform.python_version(), "numpy": np.__version__,
    }
    if r.rtl is not None:
        rtl = r.rtl
        g = decode("builtin", tokens=list(prompt_b), n=n, config=cfg, backend="golden",
                   batch=batch)
        out.update({
            "backend": backend, "rtl_cycles": rtl["cycles"], "rtl_run_s": rtl["rtl_run_s"],
            "rtl_cycles_per_s": round(rtl["cycles"] / rtl["rtl_run_s"], 1)
            if rtl["rtl_run_s"] else None,
            "rtl_sram_words_written": rtl["sram_words"], "rtl_bus_writes": rtl["bus_writes"],
            "same_as_golden": g.batch_tokens == r.batch_tokens and all(
                np.array_equal(a.view(np.uint32), b.view(np.uint32))
                for a, b in zip(g.logits, r.logits, strict=True)),
        })
    else:
        out["backend"] = "golden"
    return out


def bench_board(cfg, steps: int, *, model: str = "fpga-llama", board: str = board_decode.SIM,
                baud: int | None = None, fmax_mhz: float | None = None,
                prompt: str = "ROMEO:\n", log=None) -> dict:
    """Decode `model` for `steps` steps with every step through a board's UART bridge
    (:mod:`lpu.tools.board_decode`; the simulated board by default), and again on the
    golden backend to compare. Reports what crossed the line per token (after the
    first step, which carries the weights, and for that step alone), and the tokens
    per second a board would reach with its chip at `fmax_mhz` (default: the config's
    clock) and its line at `baud` (default :data:`lpu.board.DEFAULT_BAUD`), the line's
    time included (:func:`lpu.tools.board_decode.line_cost`; the USB adapter's
    round trips are not in it: ``requests_per_token`` counts them)."""
    data = prompt.encode()
    n = max(0, steps - len(data) + 1)
    tokens = list(data[:steps] if n == 0 else data)
    line = baud or DEFAULT_BAUD
    clock = fmax_mhz or cfg.clock_mhz
    t0 = time.perf_counter()
    r = board_decode.decode(model, tokens=tokens, n=n, config=cfg, board=board,
                            baud=line, log=log)
    wall = time.perf_counter() - t0
    g = decode(model, tokens=tokens, n=n, config=cfg, backend="golden")
    st, k = r.rtl, len(r.cycles)
    cost = board_decode.line_cost(st, clock_mhz=clock, baud=line)
    per = cost["steps"]
    first = st["first_step"]
    rest = {key: (st[key] - first[key]) / per if k > 1 else st[key]
            for key in ("bytes_sent", "bytes_received", "requests", "imem_words", "sram_words")}
    return {
        "model": model, "config": cfg.name, "board": st["board"], "steps": k,
        "cycles_per_token": round(r.cycles_per_token, 1),
        "same_as_golden": g.tokens == r.tokens and all(
            np.array_equal(a.view(np.uint32), b.view(np.uint32))
            for a, b in zip(g.logits, r.logits, strict=True)),
        "text": r.text,
        "first_step": {key: first[key] for key in ("bytes_sent", "bytes_received",
                                                    "requests", "imem_words", "sram_words")},
        "per_token": {key: round(v, 1) for key, v in rest.items()},
        "estimate": {"clock_mhz": clock, "baud": line, "steps": per,
                     "chip_us_per_token": round(1e6 * cost["chip_s"], 1),
                     "line_us_per_token": round(1e6 * cost["line_s"], 1),
                     "tokens_per_s": round(cost["tokens_per_s"], 1),
                     "chip_only_tokens_per_s": round(cost["chip_only_tokens_per_s"], 1)},
        "wall_s_per_token": round(wall / k, 3),
    }


def bench_pipeline(cfg, steps: int, chips: int, batch: int = 1, tp: int = 1,
                   prompt: str = "ROMEO:\n") -> dict:
    """Decode the shipped model for `steps` steps on a pipeline of `chips` chips
    (:mod:`lpu.tools.compiler.pipeline`, golden system), `batch` sequences in flight,
    and one sequence on one chip: cycles per token of both, the stages and how busy
    each chip is (the cycles from its stage's start to its last dispatch over the
    run's cycles), its stage's critical path, the cycles between one chip's end and
    the next one's start (one sequence), the link traffic, each chip's SRAM, and
    whether the tokens and logits are the one-chip ones. With ``tp == chips``, the
    chips are one tensor-parallel group: every rank's critical path (its exchanges
    included) is the floor."""
    n = max(0, steps - len(prompt.encode()) + 1)
    prompt_b = prompt.encode()[:steps] if n == 0 else prompt.encode()
    t0 = time.perf_counter()
    r = decode("builtin", tokens=list(prompt_b), n=n, config=cfg, chips=chips, batch=batch,
               tp=tp)
    wall = time.perf_counter() - t0
    one = decode("builtin", tokens=list(prompt_b), n=n, config=cfg, context=r.context)
    k = len(r.cycles)
    m = load_builtin()
    sysc = system_for(cfg, chips, tp)
    stages = partition(m.config, chips, tp, cfg.vl)
    pl = r.pipeline
    starts, ends = np.array(pl["starts"]), np.array(pl["ends"])  # [step or beat, chip]
    runs = np.array(pl.get("beat_cycles") or r.cycles)
    busy = (ends - starts).sum(axis=0) / runs.sum()
    cps = [stage_critical_path(m, sysc.chip, k - 1, r.context, s) for s in stages]
    words = max(pl["link_words"])
    dec = PipelineDecoder(m, cfg, chips, r.context, slots=batch, tp=tp)
    sram = [dec.stage(i, k - 1).sram_words for i in range(chips)]
    capacity = 2 * sysc.chip.mem_slices * sysc.chip.mem_words
    out = {
        "model": "bytes-llama (builtin)", "config": cfg.name, "system": sysc.describe(),
        "chips": chips, "tp": tp, "batch": batch, "steps": k, "context": r.context,
        "cycles_per_token": round(r.cycles_per_token, 1),
        "tokens_per_s_at_clock": round(r.tokens_per_s, 1),
        "tokens_per_s_per_sequence": round(r.tokens_per_s / batch, 1),
        "clock_mhz": cfg.clock_mhz,
        "one_chip_cycles_per_token": round(one.cycles_per_token, 1),
        "speedup_over_one_chip": round(one.cycles_per_token / r.cycles_per_token, 3),
        "stages": [{"stage": s.describe(), "busy_fraction": round(float(busy[i]), 3),
                    "critical_path_last_step": int(cps[i]),
                    "sram_words": sram[i], "sram_fraction": round(sram[i] / capacity, 3)}
                   for i, s in enumerate(stages)],
        "link_latency": sysc.chip.c2c_latency, "link_width": sysc.chip.c2c_width,
        "link_words_per_hop_per_token": words,
        "link_bytes_per_token": words * sysc.chip.vl * (chips - tp),  # every hop of every rank
        "hops": chips - tp,
        "link_send_cycles_per_hop": words // sysc.chip.c2c_width,
        "same_as_one_chip": r.batch_tokens == [one.tokens] * batch and all(
            np.array_equal(a.view(np.uint32), b.view(np.uint32))
            for a, b in zip(one.logits, r.logits, strict=True)),
        "compile_s_per_token": round(r.compile_s / (k * batch), 3),
        "golden_run_s_per_token": round(r.run_s / (k * batch), 3),
        "wall_s_per_token": round(wall / (k * batch), 3),
    }
    if tp > 1 and tp == chips:
        out["exchanges_per_step"] = words // sysc.chip.c2c_width
        out["link_words_per_hop_per_token"] = words  # over each rank's link east
        out["link_bytes_per_token"] = words * sysc.chip.vl * chips
        out["rank_critical_path_last_step"] = int(cps[0])
        out["last_step_ratio_to_rank_critical_path"] = round(r.cycles[-1] / cps[0], 3)
    elif batch == 1:  # between stages: chip k * tp ends, chip (k + 1) * tp starts
        hops = (starts[:, tp::tp] - ends[:, :-tp:tp]).mean(axis=0)
        out["hop_cycles"] = [round(float(h), 1) for h in hops]
        out["sum_of_stage_critical_paths_last_step"] = int(sum(cps[::tp]))
        # no schedule of these stages over these links beats their critical paths plus
        # the hops (each hop's cycles are fixed by the link and the floorplan)
        floor = sum(cps[::tp]) + float(hops.sum())
        out["pipeline_floor_last_step"] = round(floor, 1)
        out["last_step_ratio_to_pipeline_floor"] = round(r.cycles[-1] / floor, 3)
    else:
        beat = np.array(pl["beat_cycles"])
        out["beats"] = int(pl["beats"])
        out["beat_cycles_median"] = float(np.median(beat))
        out["beat_start_cycle"] = int(np.median(starts[:, 0]))  # the links' prologue
        out["largest_stage_critical_path"] = int(max(cps))
        out["beat_floor"] = int(max(cps)) + out["beat_start_cycle"]
        out["median_beat_ratio_to_floor"] = round(out["beat_cycles_median"]
                                                  / out["beat_floor"], 3)
    return out


def _last_step(cfg, pos: int, batch: int, context: int) -> tuple[dict | None, dict]:
    """The step at `pos` scheduled again: the cycles its schedule loses against its
    critical path, by algorithm (one sequence only: None with a batch), and the fraction
    of each slice kind's queue slots that dispatch an instruction over the whole step."""
    st = schedule_step(load_builtin(), cfg, pos, context, batch=batch)
    gap = schedule_gap(st.graph, cfg, st.result) if batch == 1 else None
    use = utilisation(cfg, st.program, bins=1)
    return gap, {k: round(float(v[0]), 3) for k, v in use.kinds.items()}


def _bench_mem(cfg, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    names = [q.name for q in cfg.queues if q.kind == "mem"]
    mem = {n: np.zeros((cfg.mem_words, cfg.vl), dtype=np.uint8) for n in names}
    for n in names:
        mem[n][:4] = rng.integers(0, 256, size=(4, cfg.vl), dtype=np.uint8)
    return mem


def _bench_amaranth(cfg, prog, mem) -> dict:
    be = AmaranthBackend(cfg)
    dut, sim = be.build(mem)
    build_s = be.build_seconds
    bus = SimBus(dut.bus, RegisterMap(cfg))
    times = {}

    async def free(ctx):
        await bus.load_program(ctx, prog)
        await bus.start(ctx)
        t0 = time.perf_counter()
        await ctx.tick().until(~dut.trace.running)
        times["run"] = time.perf_counter() - t0
        times["cycles"] = ctx.get(dut.trace.cycle)

    sim.add_testbench(free)
    sim.run()
    t0 = time.perf_counter()
    res = lockstep(cfg, prog, mem, be)
    lock_s = time.perf_counter() - t0 - (be.build_seconds or 0)
    if not res.ok:
        raise LpuError(f"the benchmark program diverged on the RTL: {res.text()}")
    return {"build_s": round(build_s, 2), "free_cycles": times["cycles"],
            "free_cycles_per_s": round(times["cycles"] / times["run"], 1),
            "lockstep_cycles": res.cycles, "lockstep_events": res.events,
            "lockstep_cycles_per_s": round(res.cycles / lock_s, 1),
            "lockstep_ratio": _ratio(res.cycles / lock_s, times["cycles"] / times["run"]),
            "lockstep_compare": "cycle",
            "lockstep_note": "includes loading the program through the host bus"}


def _bench_cocotb(cfg, prog, mem, simulator, fresh, compare="bulk") -> dict:
    ok, why = vl.available(simulator)
    if not ok:
        raise LpuError(why)
    saved = os.environ.get("LPU_BUILD_DIR")
    tmp = tempfile.mkdtemp(prefix="lpu-bench-build-") if fresh else None
    if tmp:
        os.environ["LPU_BUILD_DIR"] = tmp
    try:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        built = build_chip(cfg, simulator)
        total, build_cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        free = lockstep_hdl_many(cfg, [(prog, mem)], simulator, built=built,
                                 free_run=True)[0]
        t1 = time.perf_counter()
        check(cfg, prog, name="the busy program")  # as lpu sim does, before the run
        check_s = time.perf_counter() - t1
        res = lockstep_hdl_many(cfg, [(prog, mem)], simulator, built=built,
                                compare=compare, checked=True)[0]
    finally:
        if tmp:
            if saved is None:
                os.environ.pop("LPU_BUILD_DIR", None)
            else:
                os.environ["LPU_BUILD_DIR"] = saved
    if not res.ok:
        raise LpuError(f"the benchmark program diverged on {simulator}: {res.text()}")
    verilate = built.verilate_seconds
    return {"build_s": round(total, 1), "build_cpu_s": round(build_cpu, 1),
            "simulator_build_s": round(built.seconds, 1),
            "verilog_conversion_s": round(total - built.seconds, 1),
            "verilate_s": None if verilate is None else round(verilate, 1),
            "cxx_compile_s": None if verilate is None else round(built.seconds - verilate, 1),
            "build_cached": built.cached,
            "verilator_opt": vl.verilator_opt() if simulator == "verilator" else None,
            "free_cycles": free["rtl_cycles"],
            "free_cycles_per_s": free["cycles_per_second"],
            "free_cycles_per_cpu_s": free.get("cycles_per_cpu_second"),
            "lockstep_cycles": res.cycles, "lockstep_events": res.events,
            "lockstep_cycles_per_s": res.hdl["cycles_per_second"],
            "lockstep_ratio": _ratio(res.hdl["cycles_per_second"], free["cycles_per_second"]),
            "lockstep_compare": compare,
            "lockstep_seconds": res.hdl["run_seconds"], "check_s": round(check_s, 2),
            **_with_golden(res, free["cycles_per_second"]),
            "bus_load_s": res.hdl["run_seconds"]["load"]}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the simulator build's
    tools): on a machine shared with other jobs it measures the work, as wall time
    cannot."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _with_golden(res, free: float) -> dict:
    """Bulk lockstep speed counting the golden model's run too (it runs before START)."""
    sec = res.hdl["run_seconds"]
    if "golden_run" not in sec:
        return {}
    speed = round(res.hdl["rtl_cycles"] / (sec["lockstep"] + sec["golden_run"]), 1)
    return {"lockstep_with_golden_cycles_per_s": speed,
            "lockstep_with_golden_ratio": _ratio(speed, free)}


def _ratio(lockstep: float, free: float) -> float:
    """Lockstep speed as a fraction of the free-running speed."""
    return round(lockstep / free, 3) if free else 0.0


def bench_rtl(cfg, backend: str, cycles: int, fresh: bool = False,
              compare: str = "bulk") -> dict:
    """The busy program on the RTL: build time, free-running and lockstep cycles/s, and
    their ratio. Verilator and Icarus: lockstep as `compare` says
    (:func:`lpu.sim.cocotb_runner.lockstep_hdl_many`; bulk by default), timed from the
    START write to the verdict, as the free run is timed from START to its end. The
    golden model's check and load come before either way and are not in it; bulk: the
    golden model's run comes before START too, reported apart and counted in
    ``lockstep_with_golden_*``, and the comparison runs beside the RTL. Amaranth: per
    cycle."""
    prog = busy_program(cfg, cycles)
    mem = _bench_mem(cfg)
    if backend == "amaranth":
        r = _bench_amaranth(cfg, prog, mem)
    else:
        r = _bench_cocotb(cfg, prog, mem, backend, fresh, compare)
    return {"model": f"rtl ({backend})", "config": cfg.name, "program_cycles": cycles,
            **r, "python": platform.python_version(), "cpus": os.cpu_count()}


def bench_synth(cfg, route: bool = True, progress=None) -> dict:
    """The FPGA figures of `cfg`: the whole chip synthesized, placed and (unless
    ``route=False``) routed (:func:`lpu.tools.synth.synth`), then each block alone
    (:func:`lpu.tools.area.block_utilisation`), in one new temporary directory."""
    work = Path(tempfile.mkdtemp(prefix="lpu-bench-synth-"))
    if progress:
        progress(f"synthesizing, placing{' and routing' if route else ''} the chip "
                 f"(files in {work}) ...")
    chip = synth(cfg, workdir=work / "chip", route=route)
    blocks = block_utilisation(cfg, workdir=work / "blocks", progress=progress)
    return {"config": chip["config"], "chip": chip, "blocks": blocks}

