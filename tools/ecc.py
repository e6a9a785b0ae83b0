"""ECC fault sweeps: every single-bit and every (or a seeded sample of the) double-bit
fault of an ECC word, on the golden model or the RTL (``lpu bench ecc``).

Contract
--------
:func:`patterns` lists the faults: each bit index of an ECC word (data and check bits,
:mod:`lpu.ecc`) alone, then pairs of distinct bits (all of them, or `pairs` drawn
without replacement with `seed`). :func:`sweep` runs each on a fresh random word (seeded)
at a random MEM slice, superlane and address, the way a host sees it:

1. the host writes the word (the check bits are generated there);
2. the fault flips the chosen stored bits (golden: :meth:`lpu.golden.chip.Chip.inject`;
   RTL: the MEM slice's run-time :class:`lpu.hdl.mem.FaultPort`);
3. the host reads the word back (SRAM_READ: the decoder).

A single-bit fault counts as *corrected* when the word read equals the word written, the
corrected counter went up by exactly one and no error was raised; a double-bit fault as
*detected* when the ``ECC`` error was raised with the word's superlane and address. The
result gives both counts and percentages. The RTL sweep runs the MEM slice alone on
Amaranth's simulator (its host port is what SRAM_READ drives); the stream read path is
covered by the lockstep tests with :class:`lpu.hdl.mem.MemFault`.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from amaranth.sim import Simulator

from lpu import config as cfgmod
from lpu.ecc import check_bits
from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.hdl.mem import MemSlice
from lpu.hostmap import ErrorCode

__all__ = ["patterns", "sweep", "summary", "BACKENDS"]

BACKENDS = ("golden", "amaranth")


def patterns(n_bits: int, pairs: int | None = None, seed: int = 0) -> list[tuple[int, ...]]:
    """Every single bit of an `n_bits` word, then every pair (or `pairs` of them, drawn
    with `seed`)."""
    all_pairs = list(itertools.combinations(range(n_bits), 2))
    if pairs is not None and pairs < len(all_pairs):
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(all_pairs), size=pairs, replace=False)
        all_pairs = [all_pairs[i] for i in sorted(pick)]
    return [(b,) for b in range(n_bits)] + all_pairs


def _cases(cfg, pats, seed):
    rng = np.random.default_rng(seed + 1)
    n_mem = 2 * cfg.mem_slices
    for bits in pats:
        yield (bits, int(rng.integers(n_mem)), int(rng.integers(cfg.superlanes)),
               int(rng.integers(cfg.mem_words)),
               rng.integers(0, 256, size=cfg.vl, dtype=np.uint8))


def _golden(cfg, cases):
    chip = Chip(cfg)
    names = chip.mem_names
    out = []
    for bits, m, k, addr, word in cases:
        before = chip.ecc_corrected
        chip.error = None
        chip.write_mem(names[m], addr, word)
        for b in bits:
            chip.inject(names[m], addr, b, superlane=k)
        got = chip.read_mem(names[m], addr)[0]
        err = chip.error
        out.append((bits, bool((got == word).all()), chip.ecc_corrected - before,
                    err is not None and err["code"] == ErrorCode.ECC.value
                    and err["superlane"] == k and err["address"] == addr))
    return out


def _amaranth(cfg, cases):
    cases = list(cases)
    dut = MemSlice(cfg, "w", fault_port=True)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = []
    h, f, e = dut.host, dut.fault, dut.error

    async def tb(ctx):
        for bits, _m, k, addr, word in cases:  # every slice is the same logic: one slice
            value = int.from_bytes(word.tobytes(), "little")
            ctx.set(h.addr, addr)
            ctx.set(h.w_data, value)
            ctx.set(h.w_en, 1)
            await ctx.tick()
            ctx.set(h.w_en, 0)
            ctx.set(f.superlane, k)
            ctx.set(f.addr, addr)
            ctx.set(f.mask, sum(1 << b for b in bits))
            ctx.set(f.en, 1)
            await ctx.tick()
            ctx.set(f.en, 0)
            ctx.set(h.r_en, 1)
            await ctx.tick()
            ctx.set(h.r_en, 0)
            got = ctx.get(h.r_data)
            cor = ctx.get(h.corrected)
            det = (ctx.get(e.valid) and ctx.get(e.code) == ErrorCode.ECC
                   and ctx.get(e.superlane) == k and ctx.get(e.addr) == addr)
            out.append((bits, got == value, cor, bool(det)))
            await ctx.tick()

    sim.add_testbench(tb)
    sim.run()
    return out


def sweep(cfg, backend: str = "golden", *, pairs: int | None = None, seed: int = 0) -> dict:
    """Run the fault sweep (see the module docstring) and return the counts."""
    cfg = cfgmod.load(cfg)
    if backend not in BACKENDS:
        raise LpuError(f"ECC sweep backend must be one of {', '.join(BACKENDS)}, not "
                       f"{backend!r}")
    if not cfg.ecc:
        raise LpuError(f"config {cfg.name} has ecc: false: no check bits to sweep")
    if pairs is not None and (isinstance(pairs, bool) or pairs < 1):
        raise LpuError(f"pairs must be a positive number of double-bit faults, not {pairs!r}")
    k = 8 * cfg.lanes
    n_bits = k + check_bits(k)
    pats = patterns(n_bits, pairs, seed)
    t0 = time.perf_counter()
    run = _golden if backend == "golden" else _amaranth
    res = run(cfg, _cases(cfg, pats, seed))
    singles = [r for r in res if len(r[0]) == 1]
    doubles = [r for r in res if len(r[0]) == 2]
    corrected = sum(1 for _, same, cor, det in singles if same and cor == 1 and not det)
    detected = sum(1 for *_, det in doubles if det)
    return {"config": cfg.name, "backend": backend, "data_bits": k,
            "check_bits": check_bits(k), "singles": len(singles), "corrected": corrected,
            "doubles": len(doubles), "all_pairs": n_bits * (n_bits - 1) // 2,
            "detected": detected, "seed": seed,
            "corrected_pct": 100.0 * corrected / len(singles),
            "detected_pct": 100.0 * detected / len(doubles),
            "seconds": round(time.perf_counter() - t0, 2)}


def summary(r: dict) -> str:
    """One line of text for :func:`sweep`'s result."""
    sample = "every pair" if r["doubles"] == r["all_pairs"] else \
        f"{r['doubles']:,} of {r['all_pairs']:,} pairs, seed {r['seed']}"
    return (f"ecc on {r['config']} ({r['backend']}): {r['data_bits'] + r['check_bits']}-bit "
            f"ECC words ({r['data_bits']} data + {r['check_bits']} check bits); single-bit "
            f"faults: {r['corrected']}/{r['singles']} corrected ({r['corrected_pct']:.1f}%); "
            f"double-bit faults ({sample}): {r['detected']}/{r['doubles']} detected "
            f"({r['detected_pct']:.1f}%); {r['seconds']} s")
