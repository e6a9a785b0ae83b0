"""A system top: chip instances joined by link models, as a :class:`~lpu.system.SystemConfig`
cables them (docs/timing.md, "C2C").

Every chip is a :class:`lpu.hdl.chip.Chip` of the system's chip config; each cable
``(a, la) - (b, lb)`` is two :class:`lpu.hdl.c2c.LinkModel` (one a direction), so that
what chip ``a`` sends over link ``la`` in cycle ``t`` is on chip ``b``'s receive port of
link ``lb`` in cycle ``t + c2c_latency``. A link no cable joins receives nothing.

Ports
-----
bus[i] : In(:class:`~lpu.hdl.host.Bus`)
    Chip ``i``'s host bus. The chips run on one clock: a host that writes START to every
    chip in one cycle starts them together (cycle 0 of every chip is the same cycle).

The chips' trace ports (``trace=True``) stay inside: a testbench reads
``top.chips[i].trace`` (:class:`lpu.sim.trace.TraceReader`).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from lpu.system import SystemConfig
from lpu.system import load as load_system

from .c2c import LinkModel
from .chip import Chip
from .host import Bus

__all__ = ["SystemTop"]


class SystemTop(wiring.Component):
    """The chips of `sysc` and their cables (see the module docstring).

    Attributes
    ----------
    chips : list of :class:`~lpu.hdl.chip.Chip`
    """

    def __init__(self, sysc: SystemConfig | str, *, trace: bool = True):
        self.sysc = sysc = load_system(sysc)
        self.chips = [Chip(sysc.chip, trace=trace, packed=False) for _ in range(sysc.chips)]
        self.models = [(a, b, LinkModel(sysc.chip)) for x, y in sysc.links
                       for a, b in ((x, y), (y, x))]  # ((chip, link), (chip, link), model)
        super().__init__({"bus": In(Bus()).array(sysc.chips)})

    def elaborate(self, platform):
        m = Module()
        for i, chip in enumerate(self.chips):
            m.submodules[f"chip{i}"] = chip
            wiring.connect(m, wiring.flipped(self.bus[i]), chip.bus)
        for (a, la), (b, lb), model in self.models:
            m.submodules[f"link_{a}_{la}_to_{b}_{lb}"] = model
            wiring.connect(m, self.chips[a].c2c_tx[la], model.tx)
            wiring.connect(m, model.rx, self.chips[b].c2c_rx[lb])
        return m
