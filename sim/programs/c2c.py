"""The directed C2C program (ISA 1.3): every cabled link of a system, both ways.

:func:`c2c_directed` builds, for a :class:`~lpu.system.SystemConfig`, one
:class:`~lpu.sim.programs.placer.Directed` a chip (its program, its SRAM image, the words
it must leave), which together move vectors over every cable in both directions:

* transfer ``j`` over the cable end ``(a, la) -> (b, lb)`` carries ``count`` vectors,
  ``count = 1 + j mod c2c_width`` (every width up to the config's; at most 3 for the
  repeated transfers), from chip ``a``'s
  MEM slice next to the edge of link ``la`` (``mem_w{n-1}`` west, ``mem_e{n-1}``
  east; words ``4j ..``) to chip ``b``'s MEM slice next to the edge of ``lb`` (words
  ``bank_words + 4j ..``);
* the read leaves on the streams that flow toward the edge, the ``recv`` writes the
  streams that flow into the chip, at stream ``j mod (streams - count + 1)``;
* the first transfer of each direction also repeats its send and its recv
  (``repeat 1, 1``), and its MEM read and write step through the words.

The timing is docs/timing.md's: a read at ``t`` reaches the C2C slice next to it at
``t + 2``, where the send goes; the recv at ``t + 2 + L``, its write at the MEM slice
next to it at ``t + 4 + L``. Transfers are placed one after the other, each at the first
cycle all four of its queue slots are free. The expected words come from the SRAM images
(a copy: numpy, not the model).

:func:`c2c_random` builds the same kind of program from random transfers (random cable
ends, counts, streams, repeats and gaps), for a seed.
"""

from __future__ import annotations

import numpy as np

from lpu.program import ProgramBuilder
from lpu.system import SystemConfig
from lpu.system import load as load_system

from .placer import Directed, DirectedError, Expect

__all__ = ["c2c_directed", "c2c_random"]


def _edge(cfg, link: int):
    """(C2C queue, its MEM neighbour, the stream direction toward the edge)."""
    n = cfg.mem_slices
    if cfg.link_queue(link) == "c2c_w":
        return "c2c_w", f"mem_w{n - 1}", 1  # west-flowing streams reach the west edge
    return "c2c_e", f"mem_e{n - 1}", 0


def c2c_directed(sysc: SystemConfig | str, seed: int = 0) -> list[Directed]:
    """The directed C2C program for `sysc`: one :class:`Directed` a chip (see above)."""
    sysc = load_system(sysc)
    W, NS = sysc.chip.c2c_width, sysc.chip.streams
    plan = []
    for j, end in enumerate(e for cable in sysc.links for e in (cable, cable[::-1])):
        rep = int(j < 2)  # the first transfer each way repeats (2 copies, 1 cycle apart)
        count = min(1 + j % W, 4 - rep)  # a repeated read steps within its 4 words
        plan.append((end, count, rep, j % (NS - count + 1), 1))
    return _build(sysc, plan, np.random.default_rng(seed), "directed")


def c2c_random(sysc: SystemConfig | str, seed: int, transfers: int = 12) -> list[Directed]:
    """A random C2C program for `sysc`, as :func:`c2c_directed` but with `transfers`
    transfers over random cable ends (either way), of random counts (1 to
    ``c2c_width``), streams and repeats, each placed a random 0 to 3 cycles after the
    first free cycle, so that transfers overlap in flight."""
    sysc = load_system(sysc)
    rng = np.random.default_rng(seed)
    W, NS = sysc.chip.c2c_width, sysc.chip.streams
    ends = [e for cable in sysc.links for e in (cable, cable[::-1])]
    plan = []
    for _ in range(transfers):
        rep = int(rng.random() < 0.3)
        count = int(rng.integers(1, min(W, 4 - rep) + 1))
        s = int(rng.integers(0, NS - count + 1))
        plan.append((ends[int(rng.integers(len(ends)))], count, rep, s, int(rng.integers(0, 4))))
    return _build(sysc, plan, rng, f"random {seed}")


def _build(sysc: SystemConfig, plan, rng, what: str) -> list[Directed]:
    """One Directed a chip from `plan`: ``(((a, la), (b, lb)), count, repeat, stream,
    gap)`` per transfer, in order (see the module docstring)."""
    cfg = sysc.chip
    L = cfg.c2c_latency
    mems = [q.name for q in cfg.queues if q.kind == "mem"]
    inits = [{m: rng.integers(0, 256, (cfg.mem_words, cfg.vl), dtype=np.uint8) for m in mems}
             for _ in range(sysc.chips)]
    builders = [ProgramBuilder(cfg) for _ in range(sysc.chips)]
    expected: list[list[Expect]] = [[] for _ in range(sysc.chips)]
    if 4 * len(plan) + 4 > cfg.bank_words:
        raise DirectedError(f"config {cfg.name}: {len(plan)} transfers do not fit a bank "
                            f"of {cfg.bank_words} words")
    t0 = 0
    for j, (((a, la), (b, lb)), count, rep, s, gap) in enumerate(plan):
        words = count + rep
        qa, ma, da = _edge(cfg, la)
        qb, mb, db = _edge(cfg, lb)
        src, dst = 4 * j, cfg.bank_words + 4 * j
        slots = [(a, ma, 0), (a, qa, 2), (b, qb, 2 + L), (b, mb, 4 + L)]
        while not all(not builders[c].busy(q, t0 + x) and not builders[c].busy(q, t0 + x - 1)
                      and not (rep and builders[c].busy(q, t0 + x + 1)) for c, q, x in slots):
            t0 += 1
        ba, bb = builders[a], builders[b]
        ba.at(ma, t0, "read", src, (s, da), count)
        ba.at(qa, t0 + 2, "send", la, (s, da), count)
        bb.at(qb, t0 + 2 + L, "recv", lb, (s, 1 - db), count)
        bb.at(mb, t0 + 4 + L, "write", dst, (s, 1 - db), count)
        if rep:  # the read and write step one word; the send and recv carry the same count
            ba.at(ma, t0 + 1, "repeat", 1, 1, 1)
            ba.at(qa, t0 + 3, "repeat", 1, 1)
            bb.at(qb, t0 + 3 + L, "repeat", 1, 1)
            bb.at(mb, t0 + 5 + L, "repeat", 1, 1, 1)
        want = inits[b][mb].copy()
        for i in range(1 + rep):  # copy i moves words src+i .. src+i+count-1
            want[dst + i:dst + i + count] = inits[a][ma][src + i:src + i + count]
        expected[b].append(Expect(mb, dst, want[dst:dst + words].copy(),
                                  f"chip {a} link {la} -> chip {b} link {lb}: {count} "
                                  f"vector(s){' twice' if rep else ''}"))
        t0 += gap
    out = []
    for c in range(sysc.chips):
        prog = builders[c].program()
        out.append(Directed(f"c2c-chip{c}", f"chip {c} of the {what} C2C program", prog,
                            inits[c], expected[c],
                            cycles=max((builders[c].last_cycle(q.name) for q in cfg.queues),
                                       default=-1) + 1))
    return out
