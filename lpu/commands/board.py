"""``lpu board``: drive a board's chip through its UART bridge (docs/fpga.md).

    lpu board run PROG.s --port /dev/ttyUSB0 [--config fpga] [--mem-in X.npz] [--mem-out Y.npz]
    lpu board run PROG.s --sim [--json]
    lpu board ping --port /dev/ttyUSB0

``run`` loads the program and its SRAM image, runs it, reads back every word the
program writes, prints the run's last cycle and the status, and compares both
with the golden model (exit status 1 on any difference or a chip error);
``--sim`` runs the same driver against the whole chip and bridge on Amaranth's
simulator. ``ping`` reports the bridge and the chip it finds. The work is
:func:`lpu.tools.board.board_run` and :class:`lpu.board.Board`.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from lpu import config as cfgmod
from lpu.board import DEFAULT_BAUD
from lpu.errors import LpuError
from lpu.loaders import output_path, write_output
from lpu.tools.board import board_run, open_board, words_npz

HELP = "run a program on a board (ULX3S) or the simulated board, through the UART bridge"


def _link_arguments(p):
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="DEV", help="the board's serial port (/dev/ttyUSB0)")
    where.add_argument("--sim", action="store_true",
                       help="the simulated board: chip, bridge and serial line on Amaranth's "
                            "simulator")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"the serial rate the bitstream was built for (default {DEFAULT_BAUD})")
    p.add_argument("--config", default="fpga", help="preset name or YAML file (default: fpga)")


def add_arguments(p):
    sub = p.add_subparsers(dest="board_command", metavar="ACTION")
    sub.required = True
    r = sub.add_parser("run", help="load, run and read back a program; compare with golden")
    r.add_argument("program", help="assembly file (.s) or assembled binary (.bin)")
    _link_arguments(r)
    r.add_argument("--mem-in", metavar="X.npz", help="initial SRAM, as for lpu run")
    r.add_argument("--mem-out", metavar="Y.npz",
                   help="write the words read back (arrays SLICE@ADDR, as for --mem-in)")
    r.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for DONE (simulated seconds with --sim; default 10)")
    r.add_argument("--json", action="store_true", help="print a machine-readable summary")
    q = sub.add_parser("ping", help="report the bridge and the chip behind it")
    _link_arguments(q)


def _link(args):
    if not args.sim and not args.port:
        raise LpuError("no board given: --port DEV (the board's serial port, e.g. "
                       "/dev/ttyUSB0) or --sim (the simulated board)")
    if args.baud <= 0:
        raise LpuError(f"--baud must be a positive number of bits per second, not {args.baud}")
    return dict(port=args.port, sim=args.sim, baud=args.baud)


def run(args) -> int:
    link = _link(args)
    if args.board_command == "ping":
        return _ping(args, link)
    if not args.timeout > 0:
        raise LpuError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    if args.mem_out:
        output_path(args.mem_out, suffix=".npz", what="SRAM words",
                    inputs=(args.program, args.mem_in))
    res = board_run(args.program, config=args.config, mem_in=args.mem_in,
                    timeout=args.timeout, **link)
    if args.mem_out:
        arrays = words_npz(res.words)
        write_output(args.mem_out, lambda p: np.savez(p, **arrays), what="SRAM words")
    if args.json:
        print(json.dumps(res.to_json(), indent=2))
        return 0 if res.ok else 1
    state = "DONE" if res.status & 2 else f"STATUS 0x{res.status:x}"
    print(f"{args.program} on the {res.link} ({res.config}): the run ends in cycle "
          f"{res.end_cycle} (golden model: {res.golden_end_cycle}); {state}, "
          + (f"chip error: {res.error}" if res.error else "no chip error"))
    if res.mismatches:
        for sl, addr, got, want in res.mismatches[:10]:
            print(f"  {sl}[{addr}]: board {got.hex()}, golden {want.hex()}", file=sys.stderr)
    print(f"{len(res.words)} SRAM words read back, "
          + (f"{len(res.mismatches)} differ from the golden model" if res.mismatches
             else "all equal to the golden model")
          + f"; {res.bytes_sent} bytes sent, {res.bytes_received} received, "
          f"{res.seconds:.6g} s on the link's clock ({res.wall_seconds:.1f} s wall)")
    return 0 if res.ok else 1


def _ping(args, link) -> int:
    cfg = cfgmod.load(args.config)
    board = open_board(cfg, **link)
    try:
        info = board.info
        status = board.status()
    finally:
        board.close()
    print(f"{board.t.name}: bridge (up to {info.max_words} words a request, "
          f"{info.divisor} cycles a bit, quiet time {info.timeout_cycles} cycles), chip of "
          f"config {cfg.name} (hash {cfg.hash}) at {info.clock_hz / 1e6:g} MHz; "
          f"STATUS 0x{status:x}")
    return 0
