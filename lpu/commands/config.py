"""``lpu config``: show a configuration and its derived values."""

from __future__ import annotations

import json

from lpu import config as cfgmod

HELP = "show a chip configuration and its derived values"


def add_arguments(p):
    p.add_argument("config", nargs="?", default="small", help="preset name or YAML file")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    cfg = cfgmod.load(args.config)
    if args.json:
        d = cfgmod.as_dict(cfg)
        d["positions"] = [p.name for p in cfg.positions]
        d["queues"] = [q.name for q in cfg.queues]
        print(json.dumps(d, indent=2))
        return 0
    print(cfg.describe())
    print("positions (west to east): " + " ".join(p.name for p in cfg.positions))
    print("queues: " + " ".join(q.name for q in cfg.queues))
    return 0
