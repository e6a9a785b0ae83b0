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

from lpu.board import DEFAULT_BAUD
from lpu.errors import LpuError
from lpu.tools.area import block_utilisation
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
    p.add_argument("--no-route", action="store_true",
                   help="place but do not route: Fmax is nextpnr's estimate after placement")
    p.add_argument("--blocks", action="store_true",
                   help="synthesize each block of the chip alone and report its area "
                        "(no place and route)")
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
    s = synth(args.config, device=args.device, package=args.package, freq=args.freq,
              component=args.component, workdir=args.output, seed=args.seed,
              board=args.board, baud=args.baud, route=not args.no_route)
    status = 0 if s["fits"] and not (args.board and s["bitstream"] is None) else 1
    if args.json:
        print(json.dumps(s, indent=2))
        return status
    print_summary(s)
    return status


def print_summary(s, out=sys.stdout) -> None:
    """The report of :func:`lpu.tools.synth.synth` (times on stderr)."""
    print(f"{s['top']} ({s['config']}) on {s['device']} {s['package']}"
          + ("" if s["fits"] else f": DOES NOT FIT ({s['error']})") + ":", file=out)
    print(f"  LUT4        {s['luts']:>7} / {s['luts_available']}", file=out)
    print(f"  flip-flops  {s['flip_flops']:>7} / {s['flip_flops_available']}"
          + (f"  (pin wrapper: {s['pin_wrapper_flip_flops']})"
             if s["pin_wrapper_flip_flops"] else ""), file=out)
    print(f"  block RAMs  {s['block_rams']:>7} / {s['block_rams_available']}", file=out)
    print(f"  DSPs        {s['dsps']:>7} / {s['dsps_available']}", file=out)
    fm = s["fmax_mhz"]
    verdict = "meets" if s["meets_target"] else "MISSES"
    est = "" if s["routed"] or fm is None else ", estimated after placement, not routed"
    print(f"  Fmax        {fm if fm is not None else '?':>7} MHz ({verdict} {s['target_mhz']:g} "
          f"MHz{est})", file=out)
    if s["board"]:
        print(f"  bitstream   {s['bitstream']}" if s["bitstream"] else
              "  bitstream   none: " + ("the design does not fit" if not s["fits"] else
                                        "timing is not met"), file=out)
    t = s["seconds"]
    print(f"  time: convert {t['convert']} s, yosys {t['yosys']} s, nextpnr {t['nextpnr']} s; "
          f"files in {s['workdir']}", file=sys.stderr)


def print_blocks(r, out=sys.stdout) -> None:
    """The table of :func:`lpu.tools.area.block_utilisation`."""
    total = r["sum"]
    print(f"blocks of the chip ({r['config']}), each synthesized alone (synth_ecp5, no "
          "placement):", file=out)
    print(f"  {'block':<8} {'n':>2}  {'LUT4':>7} {'%':>5}  {'FF':>6}  {'DSP':>4}  {'BRAM':>4}"
          f"  {'LUTRAM':>6}   LUT4 each", file=out)
    for b in r["blocks"]:
        t = b["total"]
        share = 100 * t["luts"] / total["luts"] if total["luts"] else 0.0
        print(f"  {b['block']:<8} {b['instances']:>2}  {t['luts']:>7} {share:>5.1f}  "
              f"{t['flip_flops']:>6}  {t['dsps']:>4}  {t['block_rams']:>4}  "
              f"{t['lut_rams']:>6}   {b['each']['luts']}", file=out)
    print(f"  {'sum':<8} {'':>2}  {total['luts']:>7} {100.0:>5.1f}  {total['flip_flops']:>6}"
          f"  {total['dsps']:>4}  {total['block_rams']:>4}  {total['lut_rams']:>6}", file=out)


def _blocks(args) -> int:
    r = block_utilisation(args.config, workdir=args.output or _tempdir(),
                          progress=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print_blocks(r)
        print(f"  time: {r['seconds']} s; files in {r['workdir']}", file=sys.stderr)
    return 0


def _tempdir():
    import tempfile

    return tempfile.mkdtemp(prefix="lpu-blocks-")
