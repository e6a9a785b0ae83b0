"""The chip top: ICU, stream fabric, host interface and one slice per position.

Assembled from the floorplan in the config (:attr:`ChipConfig.positions`,
:attr:`ChipConfig.queues`), west to east::

    MXM_W  SXM_W  MEM_W{n-1} .. MEM_W0  VXM  MEM_E0 .. MEM_E{n-1}  SXM_E  MXM_E

Connections (all with :func:`amaranth.lib.wiring.connect`):

* the fabric's ``rd[p]`` to the slice at ``p``'s ``rd``; its ``wr`` to ``wr[p]``
  (:mod:`lpu.hdl.fabric`);
* the ICU's ``dispatch[q]`` to ``dispatch[i]`` of the slice at ``q.position``, ``i``
  the queue's rank among that position's queues (VXM ALU, MXM plane; 0 elsewhere)
  (:mod:`lpu.hdl.icu`);
* each slice's ``error`` to the host's ``errors[p]``; each MEM slice's ``host`` port
  to the host's ``mem[i]``; the host's ``imem`` to the ICU's ``load``
  (:mod:`lpu.hdl.host`);
* the host's ``start`` to the ICU's ``start`` and to the ``start`` input of every
  slice that has one (the VXM: a program start clears its held values).

Timing: the chip implements docs/timing.md. Cycle 0 is the cycle after the bus write
of CTRL.START (see :mod:`lpu.hdl.host` for the register map).

Trace port
----------
With ``trace=True`` the top has an output ``trace`` (:class:`TraceSignature`) that
shows, every cycle, what the golden model reports as events (docs/trace.md):

``sr[p]`` (:class:`~lpu.hdl.interface.StreamOut`)
    What the slice at position ``p`` writes this cycle (``sr`` events).
``dispatch[q]``, ``index[q]``
    Queue ``q``'s dispatch this cycle and its instruction index (``dispatch`` events).
``sram[i]``
    MEM slice ``i``'s SRAM writes this cycle (``sram`` events;
    :func:`lpu.hdl.mem.sram_trace_layout`).
``ecc[i]``
    MEM slice ``i``'s read words with an ECC error this cycle (``ecc`` events;
    :func:`lpu.hdl.mem.ecc_trace_layout`).
``mxm[j]``
    The trace outputs of MXM slice ``j`` (``mxm_w``, ``mxm_e``), whatever members
    besides its slice ports the MXM slice exposes (``wload``, ``install``, ``acc``
    events).
``cycle``, ``running``
    The host's cycle counter and run state.

A second output, ``trace_bits`` (``packed=True``, the default), carries the same bits
packed into one vector (:func:`trace_fields` gives each signal's offset), so a bench
reads one value per cycle. The Verilog of a traced top (:func:`to_verilog`) and the
chip on Amaranth's simulator have no ``trace_bits``: Yosys' RTLIL refuses wires of
65,536 bits or more and Amaranth's simulator values of more than 65,536 bits
(``small``'s trace is 66,813 bits), so the bench top over the Verilog
(:func:`lpu.sim.recorder.bench_top`) packs the ``trace`` ports itself, in
:func:`trace_fields` order, and the Amaranth benches (:func:`lpu.sim.lockstep.sim_chip`)
read the fields. Turning the port into
:class:`~lpu.trace.Event` tuples is testbench work and lives in :mod:`lpu.sim.trace`.
Synthesis builds use ``trace=False``.

Slices
------
The slice classes are ``MemSlice`` (:mod:`lpu.hdl.mem`), ``VxmSlice``
(:mod:`lpu.hdl.vxm`), ``MxmSlice`` (:mod:`lpu.hdl.mxm`) and ``SxmSlice``
(:mod:`lpu.hdl.sxm`) (:data:`SLICE_CLASSES`). On a config with C2C links (ISA 1.3) each
SXM position holds an ``EdgeSlice`` (:mod:`lpu.hdl.c2c`): the SXM and the C2C slice of
that edge, queues ``sxm_h`` and ``c2c_h``.

C2C links
---------
With ``c2c_links > 0`` the top has ``c2c_tx[l]`` (Out) and ``c2c_rx[l]`` (In), one
:class:`~lpu.hdl.c2c.LinkPort` each per link ``l``, wired to the edge slice that serves
the link; a system top (:mod:`lpu.hdl.system`) joins them with link models.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Shape, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.config import load as load_config

from . import emit
from .c2c import EdgeSlice, LinkPort
from .fabric import StreamFabric
from .host import Bus, Host, RegisterMap
from .icu import Dispatcher, Icu
from .interface import Dispatch, StreamOut
from .mem import MemFault, MemSlice
from .mxm import MxmSlice
from .sxm import SxmSlice
from .vxm import VxmSlice, VxmTile
from .vxm_alu import VxmAlu

__all__ = ["Chip", "TraceSignature", "SLICE_CLASSES", "build_top", "port_description",
           "shared_module", "to_verilog", "trace_fields", "trace_width", "verilog_of_top"]

#: The HDL class of each slice kind.
SLICE_CLASSES = {"mem": MemSlice, "vxm": VxmSlice, "mxm": MxmSlice, "sxm": SxmSlice}


def _queues_at(cfg: ChipConfig, position: int):
    return [q for q in cfg.queues if q.position == position]


def _mxm_trace_members(mxm) -> dict:
    """The trace outputs an MXM slice exposes besides its slice ports."""
    skip = {"rd", "wr", "dispatch", "error"}
    return {name: member for name, member in mxm.signature.members.items()
            if name not in skip and member.flow == Out}


class TraceSignature(wiring.Signature):
    """The chip's trace port (see the module docstring)."""

    def __init__(self, cfg: ChipConfig, sram_layout, mxm_members: dict | None = None,
                 n_mxm: int = 0, ecc_layout=None):
        n_mem = sum(1 for q in cfg.queues if q.kind == "mem")
        n_q = len(cfg.queues)
        members = {
            "sr": Out(StreamOut(cfg)).array(len(cfg.positions)),
            "dispatch": Out(Dispatch()).array(n_q),
            "index": Out(range(cfg.imem_words)).array(n_q),
            "cycle": Out(32),
            "running": Out(1),
        }
        if sram_layout is not None:
            members["sram"] = Out(sram_layout).array(n_mem)
        if ecc_layout is not None:
            members["ecc"] = Out(ecc_layout).array(n_mem)
        if mxm_members and n_mxm:
            members["mxm"] = Out(wiring.Signature(mxm_members)).array(n_mxm)
        super().__init__(members)



class Chip(wiring.Component):
    """The whole chip for one config.

    Parameters
    ----------
    cfg : ChipConfig or preset name
    trace : bool
        Add the ``trace`` output port (simulation and lockstep; not for synthesis).
    packed : bool
        With ``trace``: add ``trace_bits``, the trace port packed into one output.
    fault : :class:`lpu.hdl.vxm.VxmFault`, optional
        A deliberate bug in one VXM lane, for tests that the lockstep checker finds and
        locates a broken RTL. Never set outside those tests.
    mem_faults : list of :class:`lpu.hdl.mem.MemFault`
        Flipped SRAM bits (ECC tests only), each handed to its MEM slice.

    Ports
    -----
    bus : In(:class:`~lpu.hdl.host.Bus`)
        The host interface (register map in :mod:`lpu.hdl.host`).
    trace : Out(:class:`TraceSignature`), only with ``trace=True``.
    trace_bits : Out(width), only with ``trace=True`` and ``packed=True``.

    Attributes
    ----------
    slices : list
        The slice component at each position.
    regs : RegisterMap
        The host register map of this chip.
    """

    def __init__(self, cfg: ChipConfig | str, trace: bool = True, *, packed: bool = True,
                 fault=None, mem_faults=()):
        cfg = load_config(cfg)
        self.cfg = cfg
        self.regs = RegisterMap(cfg)
        self.icu = Icu(cfg)
        self.fabric = StreamFabric(cfg)
        self.host = Host(cfg)
        self.slices = []
        try:
            self._make_slices(cfg, fault, tuple(mem_faults))
        except (TypeError, ValueError):
            for obj in (self, self.icu, self.fabric, self.host, *self.slices):
                obj._MustUse__silence = True  # refused: never elaborated
            raise
        self.mem_slices = [self.slices[q.position] for q in cfg.queues if q.kind == "mem"]
        self.mxm_slices = [s for s, p in zip(self.slices, cfg.positions, strict=True)
                           if p.kind == "mxm"]
        members = {"bus": In(Bus())}
        if cfg.c2c_links:
            members["c2c_tx"] = Out(LinkPort(cfg)).array(cfg.c2c_links)
            members["c2c_rx"] = In(LinkPort(cfg)).array(cfg.c2c_links)
        self._trace = trace
        if trace:
            sram = None
            if self.mem_slices and "sram" in self.mem_slices[0].signature.members:
                sram = self.mem_slices[0].signature.members["sram"].shape
            mxm = _mxm_trace_members(self.mxm_slices[0]) if self.mxm_slices else None
            ecc = None
            if self.mem_slices and "ecc" in self.mem_slices[0].signature.members:
                ecc = self.mem_slices[0].signature.members["ecc"].shape
            tsig = TraceSignature(cfg, sram, mxm, len(self.mxm_slices), ecc)
            members["trace"] = Out(tsig)
            if packed:
                width = sum(len(Value.cast(v)) for _, _, v in tsig.flatten(tsig.create()))
                members["trace_bits"] = Out(width)
        super().__init__(members)

    def _make_slices(self, cfg, fault, mem_faults):
        names = {q.position: q.name for q in cfg.queues if q.kind == "mem"}
        for f in mem_faults:
            if not isinstance(f, MemFault) or f.slice not in names.values():
                raise ValueError(f"{f!r} is not a MemFault of a MEM slice of this chip")
        for pos in cfg.positions:
            cls = SLICE_CLASSES[pos.kind]
            if pos.kind == "mem":
                here = [f for f in mem_faults if f.slice == names[pos.index]]
                self.slices.append(cls(cfg, pos.hemisphere, faults=here))
            elif pos.kind == "mxm":
                self.slices.append(cls(cfg, pos.hemisphere))
            elif pos.kind == "sxm" and cfg.c2c_links:
                self.slices.append(EdgeSlice(cfg, pos.hemisphere))
            elif pos.kind == "vxm" and fault is not None:
                self.slices.append(cls(cfg, fault=fault))
            else:
                self.slices.append(cls(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.icu = icu = self.icu
        m.submodules.fabric = fabric = self.fabric
        m.submodules.host = host = self.host

        wiring.connect(m, wiring.flipped(self.bus), host.bus)
        wiring.connect(m, host.imem, icu.load)
        m.d.comb += [icu.start.eq(host.start), host.icu_done.eq(icu.done),
                     host.parked.eq(icu.parked)]

        for pos, sl in zip(cfg.positions, self.slices, strict=True):
            m.submodules[pos.name] = sl
            wiring.connect(m, fabric.rd[pos.index], sl.rd)
            wiring.connect(m, sl.wr, fabric.wr[pos.index])
            wiring.connect(m, sl.error, host.errors[pos.index])
            for i, q in enumerate(_queues_at(cfg, pos.index)):
                wiring.connect(m, icu.dispatch[q.index], sl.dispatch[i])
            if "start" in sl.signature.members:  # the VXM forgets its held values
                m.d.comb += sl.start.eq(host.start)
            if "running" in sl.signature.members:  # a MEM slice's fault at a cycle
                m.d.comb += [sl.cycle.eq(host.cycle), sl.running.eq(host.running)]
            for i, ln in enumerate(sl.links if isinstance(sl, EdgeSlice) else ()):
                wiring.connect(m, sl.tx[i], wiring.flipped(self.c2c_tx[ln]))
                wiring.connect(m, wiring.flipped(self.c2c_rx[ln]), sl.rx[i])
        for i, sl in enumerate(self.mem_slices):
            if "host" in sl.signature.members:
                wiring.connect(m, host.mem[i], sl.host)

        if self._trace:
            tr = self.trace
            for pos, sl in zip(cfg.positions, self.slices, strict=True):
                out = tr.sr[pos.index]
                m.d.comb += [out.e.eq(sl.wr.e), out.e_we.eq(sl.wr.e_we),
                             out.w.eq(sl.wr.w), out.w_we.eq(sl.wr.w_we)]
            for q in cfg.queues:
                m.d.comb += [tr.dispatch[q.index].valid.eq(icu.dispatch[q.index].valid),
                             tr.dispatch[q.index].word.eq(icu.dispatch[q.index].word),
                             tr.index[q.index].eq(icu.index[q.index])]
            if "sram" in tr.signature.members:
                for i, sl in enumerate(self.mem_slices):
                    m.d.comb += tr.sram[i].eq(sl.sram)
            if "ecc" in tr.signature.members:
                for i, sl in enumerate(self.mem_slices):
                    m.d.comb += tr.ecc[i].eq(sl.ecc)
            if "mxm" in tr.signature.members:
                for j, sl in enumerate(self.mxm_slices):
                    for name in _mxm_trace_members(sl):
                        m.d.comb += getattr(tr.mxm[j], name).eq(getattr(sl, name))
            m.d.comb += [tr.cycle.eq(host.cycle), tr.running.eq(host.running)]
            if "trace_bits" in self.signature.members:
                m.d.comb += self.trace_bits.eq(Cat(v for v, _, _ in trace_fields(self)))
        return m


def trace_width(chip: Chip) -> int:
    """Bits of the trace port: the width of ``trace_bits``, packed or not."""
    return sum(w for _, _, w in trace_fields(chip))


def trace_fields(chip: Chip) -> list:
    """``(signal, offset, width)`` of each signal of the trace port inside ``trace_bits``,
    the same bits packed into one output (``trace=True`` only): a cocotb bench reads that
    one port per cycle instead of every trace signal (:class:`lpu.sim.trace.PackedTrace`)."""
    out, off = [], 0
    for _, _, value in chip.trace.signature.flatten(chip.trace):
        sig = Value.cast(value)
        out.append((sig, off, len(sig)))
        off += len(sig)
    return out


# -- builds -------------------------------------------------------------------------------------


def build_top(cfg: ChipConfig | str, trace: bool = False, mem_faults=()) -> Chip:
    """The chip top for `lpu verilog` (and the benches over the Verilog with
    ``trace=True``: the trace port unpacked; `mem_faults`: ECC tests only)."""
    return Chip(cfg, trace=trace, packed=False, mem_faults=mem_faults)


def port_description(top: Chip, name: str = "top") -> dict:
    """A JSON-able description of the top's ports, as amaranth.back.verilog names them
    (path joined with ``__``): ``{"name", "dir", "width", "path"}`` per port, plus the
    module name, the clock and reset, the config and the host register map."""
    ports = []
    for path, member in top.signature.members.flatten():
        if not member.is_port:
            continue
        ports.append({
            "name": "__".join(str(x) for x in path),
            "dir": "input" if member.flow == In else "output",
            "width": Shape.cast(member.shape).width,
            "path": [x if isinstance(x, int) else str(x) for x in path],
        })
    rm = top.regs
    regs = {name: getattr(RegisterMap, name) for name in dir(RegisterMap)
            if name.isupper() and isinstance(getattr(RegisterMap, name), int)}
    return {
        "top": name,
        "config": {"name": top.cfg.name, "hash": top.cfg.hash},
        "clock": "clk", "reset": "rst",
        "ports": ports,
        "registers": regs,
        "word_buffer_chunks_per_superlane": rm.chunks,
        "mem_slices": rm.mem_slices,
        "queues": [q.name for q in top.cfg.queues],
    }


def shared_module(component):
    """The chip's blocks its Verilog holds once (:func:`lpu.hdl.emit.convert`):
    ``(module suffix, make an equal one)`` for

    * a MEM slice (all alike: the hemisphere only names it; not one with initial SRAM
      contents or faults),
    * a VXM tile (not one with a fault) and in it a VXM ALU lane (alike for one
      superlane count),
    * an ICU queue's dispatcher (not one with a preloaded program),
    * an MXM slice (the hemisphere only numbers its trace units, outside the slice),
    * an SXM slice (not the C2C edge slice);

    None for anything else."""
    if isinstance(component, MemSlice) and component._init is None \
            and not component.faults and not component.fault_port:
        cfg = component.cfg
        return "mem_slice", lambda: MemSlice(cfg, "w")
    if isinstance(component, VxmTile) and component.fault is None:
        cfg = component.cfg
        return "vxm_tile", lambda: VxmTile(cfg)
    if isinstance(component, VxmAlu):
        s = component.superlanes
        return f"vxm_alu_s{s}", lambda: VxmAlu(superlanes=s)
    if isinstance(component, Dispatcher) and not component.init:
        cfg = component.cfg
        return "dispatcher", lambda: Dispatcher(cfg)
    if type(component) is MxmSlice:
        cfg = component.cfg
        return "mxm_slice", lambda: MxmSlice(cfg, "w")
    if type(component) is SxmSlice:
        cfg = component.cfg
        return "sxm_slice", lambda: SxmSlice(cfg)
    return None


def verilog_of_top(top: Chip, name: str = "lpu_top") -> str:
    """Verilog of a chip top (module `name`, clock ``clk``, synchronous reset ``rst``):
    :func:`lpu.hdl.emit.convert`, the blocks :func:`shared_module` names as one module
    each (within a shared VXM tile too), memories that start at zero as one loop each."""
    return emit.convert(top, name, share=shared_module, deep=True)


def to_verilog(cfg: ChipConfig | str, trace: bool = False, *,
               name: str = "lpu_top", mem_faults=()) -> tuple[str, dict]:
    """Verilog of the chip top (:func:`verilog_of_top`) and its :func:`port_description`.
    Takes a minute or more for the bigger configs. `mem_faults`: flipped SRAM bits built
    in (:class:`lpu.hdl.mem.MemFault`; ECC tests only)."""
    top = build_top(cfg, trace, mem_faults)
    desc = port_description(top, name)
    return verilog_of_top(top, name), desc
