"""``lpu asm``: assemble a source file into a program for one chip config."""

from __future__ import annotations

from pathlib import Path

from lpu import config as cfgmod
from lpu.asm import assemble, config_from_source, read_source
from lpu.loaders import output_path, write_output

HELP = "assemble a source file into a program for one chip config"


def add_arguments(p):
    p.add_argument("source", metavar="FILE.s", help="assembly source")
    p.add_argument("--config", "-c", metavar="PRESET",
                   help="preset name or YAML file (default: the preset the source's .config "
                        "line names, else small)")
    p.add_argument("-o", "--output", metavar="FILE.bin",
                   help="program file to write (default: the source with suffix .bin)")


def run(args) -> int:
    text = read_source(args.source)
    out = output_path(args.output if args.output else Path(args.source).with_suffix(".bin"),
                      what="program", inputs=(args.source,))
    cfg = cfgmod.load(args.config) if args.config else config_from_source(text, args.source)
    prog = assemble(text, cfg, args.source)
    write_output(out, prog.save, what="program")
    n = sum(len(w) for w in prog.queues.values())
    print(f"{out}: {n} instructions in {len(prog.queues)} queues for config {cfg.name} "
          f"(hash {cfg.hash})")
    return 0
