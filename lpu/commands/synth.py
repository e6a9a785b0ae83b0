"""``lpu synth``: synthesis and place-and-route for the ECP5 with the PyPI tools.

    lpu synth --config fpga --device ecp5-85k [--freq 50] [--json] [-o DIR]
    lpu synth --config fpga --board ulx3s [--baud 1000000] [-o DIR]   # a bitstream
    lpu synth --config fpga --blocks [--json] [-o DIR]     # where the area goes

The flow and its report are :func:`lpu.tools.synth.synth`; ``--blocks`` is
:func:`lpu.tools.area.block_utilisation` (each block synthesized alone, no placement).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile

from lpu.board import DEFAULT_BAUD
from lpu.errors import LpuError
from lpu.tools.area import block_utilisation, table_lines
from lpu.tools.synth import BOARDS, COMPONENTS, DEVICES, report_lines, synth

HELP = "synthesize, place and route for the ECP5 (yowasp tools)"


def add_arguments(p):
    p.add_argument("--config", default="fpga", help="preset name or YAML file (default: fpga)")
    p.add_argument("--device", default="ecp5-85k", choices=sorted(DEVICES))
    p.add_argument("--package", help="FPGA package (default: the device's, e.g. CABGA381)")
    p.add_argument("--freq", type=float, default=None,
                   help="clock constraint in MHz (default: the config's clock_mhz)")
    p.add_argument("--component", choices=COMPONENTS, default="chip",
                   help="the chip top (default), one VXM ALU lane, or the UART bridge alone")
    p.add_argument("--board", choices=sorted(BOARDS),
                   help="build the board top (chip, UART bridge, PLL, LEDs) and its bitstream")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"with --board: the serial rate (default {DEFAULT_BAUD})")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="keep the RTLIL, netlist, logs and reports here (default: a temp dir)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--no-route", action="store_true",
                   help="place but do not route: Fmax is nextpnr's estimate after placement")
    p.add_argument("--blocks", action="store_true",
                   help="synthesize each block of the chip alone and report its area "
                        "(no place and route)")
    p.add_argument("--block", action="append", metavar="NAME", dest="only",
                   help="with --blocks: only this block (mem, host, vxm, ...; repeatable)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")


def run(args) -> int:
    if args.freq is not None and not (math.isfinite(args.freq) and args.freq > 0):
        raise LpuError(f"--freq must be a positive number of MHz, not {args.freq}")
    if args.seed < 0:
        raise LpuError(f"--seed must be 0 or more, not {args.seed}")
    if args.baud <= 0:
        raise LpuError(f"--baud must be a positive number of bits per second, not {args.baud}")
    if args.board and args.component != "chip":
        raise LpuError("--board builds the whole board top; it takes no --component")
    if args.blocks:
        if args.component != "chip" or args.board:
            raise LpuError("--blocks reports the blocks of the chip; it does not take "
                           + ("--board" if args.board else f"--component {args.component}"))
        return _blocks(args)
    if args.only:
        raise LpuError("--block selects blocks of --blocks; give --blocks too")
    s = synth(args.config, device=args.device, package=args.package, freq=args.freq,
              component=args.component, workdir=args.output, seed=args.seed,
              board=args.board, baud=args.baud, route=not args.no_route)
    status = 0 if s["fits"] and not (args.board and s["bitstream"] is None) else 1
    if args.json:
        print(json.dumps(s, indent=2))
        return status
    print("\n".join(report_lines(s)))
    t = s["seconds"]
    print(f"  time: convert {t['convert']} s, yosys {t['yosys']} s, nextpnr {t['nextpnr']} s; "
          f"files in {s['workdir']}", file=sys.stderr)
    return status


def _blocks(args) -> int:
    r = block_utilisation(args.config,
                          workdir=args.output or tempfile.mkdtemp(prefix="lpu-blocks-"),
                          progress=lambda s: print(s, file=sys.stderr, flush=True),
                          only=args.only)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print("\n".join(table_lines(r)))
        print(f"  time: {r['seconds']} s; files in {r['workdir']}", file=sys.stderr)
    return 0
