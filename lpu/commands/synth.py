"""``lpu synth``: synthesis and place-and-route for the ECP5 with the PyPI tools.

    lpu synth --config fpga --device ecp5-85k [--freq 50] [--json] [-o DIR]
    lpu synth --config fpga --board ulx3s [--baud 1000000] [-o DIR]   # a bitstream

The flow and its report are :func:`lpu.tools.synth.synth`.
"""

from __future__ import annotations

import json
import math
import sys

from lpu.board import DEFAULT_BAUD
from lpu.errors import LpuError
from lpu.tools.synth import BOARDS, COMPONENTS, DEVICES, synth

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
    s = synth(args.config, device=args.device, package=args.package, freq=args.freq,
              component=args.component, workdir=args.output, seed=args.seed,
              board=args.board, baud=args.baud)
    status = 0 if s["fits"] and not (args.board and s["bitstream"] is None) else 1
    if args.json:
        print(json.dumps(s, indent=2))
        return status
    print(f"{s['top']} ({s['config']}) on {s['device']} {s['package']}"
          + ("" if s["fits"] else f": DOES NOT FIT ({s['error']})") + ":")
    print(f"  LUT4        {s['luts']:>7} / {s['luts_available']}")
    print(f"  flip-flops  {s['flip_flops']:>7} / {s['flip_flops_available']}"
          + (f"  (pin wrapper: {s['pin_wrapper_flip_flops']})"
             if s["pin_wrapper_flip_flops"] else ""))
    print(f"  block RAMs  {s['block_rams']:>7} / {s['block_rams_available']}")
    print(f"  DSPs        {s['dsps']:>7} / {s['dsps_available']}")
    fm = s["fmax_mhz"]
    verdict = "meets" if s["meets_target"] else "MISSES"
    print(f"  Fmax        {fm if fm is not None else '?':>7} MHz ({verdict} {s['target_mhz']:g} "
          "MHz)")
    if args.board:
        print(f"  bitstream   {s['bitstream']}" if s["bitstream"] else
              "  bitstream   none: " + ("the design does not fit" if not s["fits"] else
                                        "timing is not met"))
    t = s["seconds"]
    print(f"  time: convert {t['convert']} s, yosys {t['yosys']} s, nextpnr {t['nextpnr']} s; "
          f"files in {s['workdir']}", file=sys.stderr)
    return status
