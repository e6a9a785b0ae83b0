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
"""

from __future__ import annotations

import json
import sys

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.golden.check import check
from lpu.golden.chip import Chip
from lpu.loaders import imem_problem, load_mem_npz, load_program, output_path
from lpu.sim.cocotb_runner import lockstep_hdl
from lpu.sim.lockstep import AmaranthBackend, lockstep
from lpu.sim.programs.randprog import generate
from lpu.sim.verilator import SimulatorError

HELP = "run a program on the RTL in lockstep with the golden model"

BACKENDS = ("amaranth", "verilator", "icarus")


def add_arguments(p):
    p.add_argument("program", nargs="?", help="assembly file (.s) or assembled binary (.bin)")
    p.add_argument("--random", type=int, metavar="SEED",
                   help="instead of a file: the random legal program of this seed")
    p.add_argument("--cycles", type=int, metavar="N",
                   help="with --random: the generator's dispatch horizon (default: its own)")
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--backend", choices=BACKENDS, default="amaranth")
    p.add_argument("--mem-in", metavar="X.npz", help="initial SRAM, as for lpu run")
    p.add_argument("--vcd", metavar="FILE", help="write the RTL waveform of the run here")
    p.add_argument("--max-cycles", type=int, default=200_000,
                   help="give up if the RTL runs longer (default 200000)")
    p.add_argument("--json", action="store_true", help="print a machine-readable report")


def _inputs(args, cfg):
    if (args.program is None) == (args.random is None):
        raise LpuError("give a program file or --random SEED (one of them)")
    if args.random is not None:
        rp = generate(cfg, args.random, cycles=args.cycles)
        return f"random seed {args.random} ({rp.cycles} cycles)", rp.program, rp.mem
    program = load_program(args.program, cfg)
    mem = {}
    if args.mem_in:
        chip = Chip(cfg)
        load_mem_npz(chip, args.mem_in)
        mem = {n: chip.read_mem(n, 0, cfg.mem_words) for n in chip.mem_names}
    return args.program, program, mem


def run(args) -> int:
    if args.cycles is not None and args.cycles < 1:
        raise LpuError(f"--cycles must be at least 1, not {args.cycles}")
    if args.max_cycles < 1:
        raise LpuError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    if args.random is not None and args.random < 0:
        raise LpuError(f"--random must be a seed of 0 or more, not {args.random}")
    if args.vcd:
        output_path(args.vcd, what="waveform", inputs=(args.program, args.mem_in))
    cfg = cfgmod.load(args.config)
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
