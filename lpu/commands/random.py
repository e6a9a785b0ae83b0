"""``lpu random``: write the random legal program of one seed (and its initial SRAM).

    lpu random --config tiny --seed 1234 -o prog.s --mem-out mem.npz
    lpu run prog.s --config tiny --mem-in mem.npz

The generator is :func:`lpu.sim.programs.randprog.generate`.
"""

from __future__ import annotations

from pathlib import Path

from lpu.asm import disassemble
from lpu.errors import LpuError
from lpu.loaders import output_path, write_output
from lpu.sim.programs.randprog import generate

HELP = "write the random legal program of one seed"


def add_arguments(p):
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--seed", type=int, required=True, help="the seed (0 or more)")
    p.add_argument("--cycles", type=int, default=None,
                   help="the generator's dispatch horizon (default: its own)")
    p.add_argument("-o", "--output", metavar="PROG", required=True,
                   help="program: .s (assembly) or .bin")
    p.add_argument("--mem-out", metavar="MEM.npz", help="initial SRAM for lpu run --mem-in")


def run(args) -> int:
    if args.seed < 0:
        raise LpuError(f"--seed must be 0 or more, not {args.seed}")
    if args.cycles is not None and args.cycles < 1:
        raise LpuError(f"--cycles must be at least 1, not {args.cycles}")
    out = output_path(args.output, what="program")
    if args.mem_out:  # np.savez would add .npz to any other name
        output_path(args.mem_out, suffix=".npz", what="SRAM image")
    rp = generate(args.config, args.seed, cycles=args.cycles)
    if out.suffix == ".bin":
        write_output(out, rp.program.save, what="program")
    else:
        text = (f"; random program: config {rp.cfg.name}, seed {rp.seed}\n"
                + disassemble(rp.program, rp.cfg))
        write_output(out, lambda p: p.write_text(text), what="program")
    if args.mem_out:
        write_output(Path(args.mem_out), rp.save_mem, what="SRAM image")
    print(f"seed {rp.seed}: {sum(rp.ops.values())} words in {len(rp.program.queues)} queues "
          f"-> {out}" + (f", {args.mem_out}" if args.mem_out else ""))
    return 0
