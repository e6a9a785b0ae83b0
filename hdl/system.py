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

trace_bits[i] : Out(width), only with ``ports=True``
    Chip ``i``'s packed trace (:func:`lpu.hdl.chip.trace_fields`), for a bench over the
    Verilog (:func:`system_verilog`), which sees only the top's ports.

Without ``ports`` the chips' trace ports stay inside: an Amaranth testbench reads
``top.chips[i].trace`` (:class:`lpu.sim.trace.TraceReader`).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.system import SystemConfig
from lpu.system import load as load_system

from . import emit
from .c2c import LinkModel
from .chip import Chip, shared_module
from .host import Bus

__all__ = ["SystemTop", "system_verilog"]


class SystemTop(wiring.Component):
    """The chips of `sysc` and their cables (see the module docstring).

    Attributes
    ----------
    chips : list of :class:`~lpu.hdl.chip.Chip`
    """

    def __init__(self, sysc: SystemConfig | str, *, trace: bool = True, ports: bool = False):
        self.sysc = sysc = load_system(sysc)
        self.chips = [Chip(sysc.chip, trace=trace or ports, packed=ports)
                      for _ in range(sysc.chips)]
        self.models = [(a, b, LinkModel(sysc.chip)) for x, y in sysc.links
                       for a, b in ((x, y), (y, x))]  # ((chip, link), (chip, link), model)
        members = {"bus": In(Bus()).array(sysc.chips)}
        if ports:
            width = len(self.chips[0].trace_bits)
            members["trace_bits"] = Out(width).array(sysc.chips)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for i, chip in enumerate(self.chips):
            m.submodules[f"chip{i}"] = chip
            wiring.connect(m, wiring.flipped(self.bus[i]), chip.bus)
        for (a, la), (b, lb), model in self.models:
            m.submodules[f"link_{a}_{la}_to_{b}_{lb}"] = model
            wiring.connect(m, self.chips[a].c2c_tx[la], model.tx)
            wiring.connect(m, model.rx, self.chips[b].c2c_rx[lb])
        if "trace_bits" in self.signature.members:
            for i, chip in enumerate(self.chips):
                m.d.comb += self.trace_bits[i].eq(chip.trace_bits)
        return m


def system_verilog(sysc: SystemConfig | str, name: str = "lpu_system") -> tuple[str, SystemTop]:
    """Verilog of the system top with its ``trace_bits`` ports (module `name`, clock
    ``clk``, synchronous reset ``rst``), and the top it was made from. The chips are one
    module, instantiated once a chip (:func:`lpu.hdl.emit.convert`, ``share``), and inside
    it the blocks a chip's own Verilog shares are shared too
    (:func:`lpu.hdl.chip.shared_module`)."""
    top = SystemTop(sysc, ports=True)
    cfg = top.sysc.chip

    def share(component):
        if isinstance(component, Chip):
            return "chip", lambda: Chip(cfg, trace=True, packed=True)
        return shared_module(component)

    text = emit.convert(top, name, share=share, deep=True)
    for chip in top.chips:  # each became an instance of the shared module: never elaborated
        for obj in (chip, chip.icu, chip.fabric, chip.host, *chip.slices):
            obj._MustUse__silence = True
            for part in vars(obj).values():
                if isinstance(part, wiring.Component):
                    part._MustUse__silence = True
    return text, top
