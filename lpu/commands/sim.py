"""``lpu sim``: run a program on the RTL in lockstep with the golden model.

    lpu sim examples/vector_add.s --config tiny --backend amaranth [--vcd w.vcd] [--json]
    lpu sim --random 1234 --config tiny --backend verilator

Backends: ``amaranth`` (the chip top on Amaranth's simulator,
:class:`lpu.sim.lockstep.AmaranthBackend`), ``verilator`` and ``icarus`` (the chip's
Verilog under cocotb, :func:`lpu.sim.cocotb_runner.lockstep_hdl`; the first run for a
config builds it, later runs reuse the build). Every cycle's events are compared; the
exit status is 0 only when every cycle matched (and the chip raised no error flag).
``--json`` prints the cycles and events compared and the divergence report, if any
(docs/verification.md explains it). ``--random SEED`` runs the random program of that
seed (:mod:`lpu.sim.programs.randprog`) with its SRAM contents instead of a file.

``--system S.yaml P0 P1 ..`` runs a system of chips joined by C2C links (ISA 1.3; the
file as for ``lpu run --system``), one program a chip, on the RTL system top beside the
golden system, every chip compared cycle by cycle (:mod:`lpu.sim.system_lockstep`;
``verilator`` / ``icarus``: :mod:`lpu.sim.system_verilator`, a build per system).
"""

from __future__ import annotations

import json
import sys

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.golden.check import check
from lpu.golden.chip import Chip
from lpu.loaders import imem_problem, load_mem_npz, load_program, load_system_inputs, output_path
from lpu.sim.cocotb_runner import lockstep_hdl
from lpu.sim.lockstep import AmaranthBackend, lockstep
from lpu.sim.programs.randprog import generate
from lpu.sim.system_lockstep import AmaranthSystemBackend, system_lockstep
from lpu.sim.system_verilator import VerilogSystemBackend
from lpu.sim.verilator import SimulatorError

HELP = "run a program on the RTL in lockstep with the golden model"

BACKENDS = ("amaranth", "verilator", "icarus")


def add_arguments(p):
    p.add_argument("program", nargs="*",
                   help="assembly file (.s) or assembled binary (.bin); with --system, one "
                        "a chip, in chip order")
    p.add_argument("--system", metavar="S.yaml",
                   help="a system of chips joined by C2C links (as for lpu run --system), "
                        "one program a chip, in lockstep with the golden system")
    p.add_argument("--random", type=int, metavar="SEED",
                   help="instead of a file: the random legal program of this seed")
    p.add_argument("--cycles", type=int, metavar="N",
                   help="with --random: the generator's dispatch horizon (default: its own)")
    p.add_argument("--config", default=None, help="preset name or YAML file (default: tiny)")
    p.add_argument("--backend", choices=BACKENDS, default="amaranth")
    p.add_argument("--mem-in", metavar="X.npz", action="append",
                   help="initial SRAM, as for lpu run (with --system: once a chip in chip "
                        "order, '-' for none)")
    p.add_argument("--vcd", metavar="FILE", help="write the RTL waveform of the run here")
    p.add_argument("--max-cycles", type=int, default=200_000,
                   help="give up if the RTL runs longer (default 200000)")
    p.add_argument("--json", action="store_true", help="print a machine-readable report")


def _mem(cfg, path):
    """The SRAM image of an ``--mem-in`` file, as the backends take it."""
    chip = Chip(cfg)
    load_mem_npz(chip, path)
    return {n: chip.read_mem(n, 0, cfg.mem_words) for n in chip.mem_names}


def _inputs(args, cfg):
    if bool(args.program) == (args.random is not None):
        raise LpuError("give a program file or --random SEED (one of them)")
    if len(args.program) > 1:
        raise LpuError(f"one program runs on one chip, not {len(args.program)}; a system of "
                       "chips runs one a chip: --system S.yaml")
    if args.mem_in and len(args.mem_in) > 1:
        raise LpuError("--mem-in is given once for one chip (once a chip with --system)")
    if args.random is not None:
        if args.mem_in:
            raise LpuError("--random brings its own SRAM contents: no --mem-in")
        rp = generate(cfg, args.random, cycles=args.cycles)
        return f"random seed {args.random} ({rp.cycles} cycles)", rp.program, rp.mem
    program = load_program(args.program[0], cfg)
    mem = _mem(cfg, args.mem_in[0]) if args.mem_in else {}
    return args.program[0], program, mem


def run(args) -> int:
    if args.cycles is not None and args.cycles < 1:
        raise LpuError(f"--cycles must be at least 1, not {args.cycles}")
    if args.max_cycles < 1:
        raise LpuError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    if args.random is not None and args.random < 0:
        raise LpuError(f"--random must be a seed of 0 or more, not {args.random}")
    if args.system:
        return _run_system(args)
    if args.vcd:
        output_path(args.vcd, what="waveform", inputs=(*args.program, *(args.mem_in or ())))
    cfg = cfgmod.load(args.config or "tiny")
    name, program, mem = _inputs(args, cfg)
    check(cfg, program, name=name)  # an illegal program is an error, not a divergence
    too_long = imem_problem(program, cfg, name)
    if too_long:
        raise LpuError(too_long)
    hdl = {}
    if args.backend == "amaranth":
        be = AmaranthBackend(cfg, vcd=args.vcd, max_cycles=args.max_cycles)
        res = lockstep(cfg, program, mem, be)
        hdl = {"build_seconds": round(be.build_seconds or 0, 1), "status": be.status,
               "error": be.error}
    else:
        try:
            res = lockstep_hdl(cfg, program, mem, args.backend, vcd=args.vcd,
                               max_cycles=args.max_cycles, checked=True)
        except SimulatorError as e:
            raise LpuError(str(e)) from None
        hdl = res.hdl
    ok = res.ok and not (hdl.get("error"))
    if args.json:
        out = {"program": name, "config": cfg.name, "config_hash": cfg.hash,
               "backend": args.backend, **res.to_json(), "ok": ok, "hdl": hdl}
        if args.vcd:
            out["vcd"] = args.vcd
        print(json.dumps(out, indent=2))
    else:
        print(f"{name} on {cfg.name}: {res.text()}")
        if hdl.get("error"):
            print(f"the chip raised an error flag: {hdl['error']}", file=sys.stderr)
        if args.vcd:
            print(f"waveform: {args.vcd}", file=sys.stderr)
    return 0 if ok else 1


def _run_system(args) -> int:
    """``lpu sim --system S.yaml P0 P1 ..``: the RTL system in lockstep with the golden
    system, chip by chip."""
    for flag, given in (("--random", args.random is not None), ("--vcd", args.vcd),
                        ("--cycles", args.cycles is not None)):
        if given:
            raise LpuError(f"{flag} is not supported with --system")
    sysc, mem_in = load_system_inputs(args.system, args.program, args.mem_in,
                                      config=args.config)
    n, cfg = sysc.chips, sysc.chip
    programs = [load_program(p, cfg) for p in args.program]
    for p, prog in zip(args.program, programs, strict=True):
        too_long = imem_problem(prog, cfg, p)
        if too_long:
            raise LpuError(too_long)
    mems = [_mem(cfg, m) if m != "-" else {} for m in mem_in]
    mems += [{} for _ in range(n - len(mems))]
    if args.backend == "amaranth":
        device = AmaranthSystemBackend(sysc, max_cycles=args.max_cycles)
    else:
        device = VerilogSystemBackend(sysc, args.backend, max_cycles=args.max_cycles)
    try:
        res = system_lockstep(sysc, programs, mems, device, names=list(args.program))
    except SimulatorError as e:
        raise LpuError(str(e)) from None
    errors = list(getattr(device, "errors", []) or [])
    ok = res.ok and not any(errors)
    if args.json:
        print(json.dumps({
            "system": args.system, "chips": n, "topology": sysc.topology,
            "config": cfg.name, "config_hash": cfg.hash, "backend": args.backend,
            "ok": ok, "results": [
                {"chip": i, "program": p, **r.to_json(),
                 "error": errors[i] if i < len(errors) else None}
                for i, (p, r) in enumerate(zip(args.program, res.chips, strict=True))]},
            indent=2))
    else:
        print(f"{args.system}: {n} chips of {cfg.name}, {sysc.topology}, on {args.backend}")
        for i, (p, r) in enumerate(zip(args.program, res.chips, strict=True)):
            print(f"chip {i}: {p}: {r.text()}")
            if i < len(errors) and errors[i]:
                print(f"chip {i} raised an error flag: {errors[i]}", file=sys.stderr)
    return 0 if ok else 1
