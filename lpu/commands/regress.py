"""``lpu regress``: random programs (and the directed set) in lockstep on the RTL, on
every core or on a Dask cluster.

    lpu regress --seeds 0:200 --config tiny --backend verilator
    lpu regress --seeds 0:2000 --backend verilator --scheduler tcp://host:8786 --junit r.xml
    lpu regress --directed --backend icarus --workers 1

The work is :func:`lpu.sim.regress.regress`; failing cases are saved under ``--out``
(program, SRAM image, seed, report, a replay command). Exit status 0 when every program
agreed, 1 when one diverged or raised the chip's error flag.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.loaders import output_path, write_output
from lpu.sim.regress import BACKENDS, junit_xml, parse_seeds, regress

#: The most random programs one run takes (a larger range hung listing its cases).
MAX_SEEDS = 1_000_000
#: A Dask scheduler address: protocol, host and port.
_ADDRESS = re.compile(r"[a-z]+://[^\s:/]+:[0-9]+\Z")

HELP = "many random programs in lockstep on the RTL (every core, or a Dask cluster)"


def add_arguments(p):
    p.add_argument("--seeds", metavar="A:B",
                   help="the random programs of seeds A .. B-1 (or one seed)")
    p.add_argument("--directed", action="store_true", help="also the directed programs")
    p.add_argument("--config", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--backend", choices=BACKENDS, default="verilator")
    p.add_argument("--cycles", type=int, default=30,
                   help="the generator's dispatch horizon per program (default 30)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes on this machine (default: every core)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on this Dask distributed scheduler (tcp://host:8786) instead")
    p.add_argument("--out", default="regress-out", metavar="DIR",
                   help="where failing cases are saved (default regress-out)")
    p.add_argument("--junit", metavar="FILE.xml", help="also write the results as JUnit XML")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")


def run(args) -> int:
    if args.cycles < 1:
        raise LpuError(f"--cycles must be at least 1, not {args.cycles}")
    if args.workers is not None and args.workers < 1:
        raise LpuError(f"--workers must be at least 1, not {args.workers}")
    if args.workers is not None and args.scheduler:
        raise LpuError("--workers and --scheduler exclude each other (the cluster has its "
                       "own workers)")
    seeds = parse_seeds(args.seeds) if args.seeds else range(0)
    if len(seeds) > MAX_SEEDS:
        raise LpuError(f"--seeds {args.seeds}: {len(seeds):,} programs; one run takes at most "
                       f"{MAX_SEEDS:,} (split it)")
    if args.scheduler and not _ADDRESS.match(args.scheduler):
        raise LpuError(f"--scheduler {args.scheduler!r} is not a scheduler address; expected "
                       "PROTOCOL://HOST:PORT, e.g. tcp://host:8786")
    if not seeds and not args.directed:
        raise LpuError("nothing to run: give --seeds A:B and/or --directed")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LpuError(f"{out}: --out must be a folder")
    if not out.exists() and not out.parent.is_dir():
        raise LpuError(f"{out}: cannot make the folder: no such folder {out.parent}")
    if args.junit:
        output_path(args.junit, suffix=".xml", what="JUnit report")
    cfg = cfgmod.load(args.config)
    res = regress(cfg, seeds, backend=args.backend, cycles=args.cycles,
                  directed=args.directed, workers=args.workers, scheduler=args.scheduler,
                  out=out)
    if args.junit:
        write_output(args.junit, lambda p: junit_xml(res, p), what="JUnit report")
    if args.json:
        print(json.dumps(res.to_json(), indent=2))
    else:
        print(res.text())
        if args.junit:
            print(f"JUnit XML: {args.junit}", file=sys.stderr)
    return 0 if not res.failed else 1
