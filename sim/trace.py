"""Trace-port decoding: every piece of code that turns RTL trace outputs into
:class:`~lpu.trace.Event` tuples (docs/trace.md), in one place.

* :class:`TraceReader` reads the chip top's ``trace`` port
  (:class:`lpu.hdl.chip.TraceSignature`) once per cycle: ``sr``, ``dispatch``,
  ``sram`` and the MXM kinds.
* :class:`PackedTrace` is the ``ctx`` for a sampled ``trace_bits`` value (the same
  bits packed into one vector; :func:`lpu.hdl.chip.trace_fields`), as a cocotb bench
  reads it over the generated Verilog.
* :func:`sram_events` decodes one MEM slice's SRAM-write port
  (:func:`lpu.hdl.mem.sram_trace_layout`); :func:`mxm_events` one MXM slice's
  ``wload``/``install``/``acc`` outputs (:mod:`lpu.hdl.mxm`). The slice harness uses
  them on a lone slice, :class:`TraceReader` on the chip's copies.

A ``ctx`` is anything with ``get(value) -> int`` (Amaranth's simulator context, or
:class:`PackedTrace`). Values are sampled after the cycle's inputs settle.
"""

from __future__ import annotations

from amaranth.hdl import Value
from amaranth.lib import data

from lpu.config import ChipConfig
from lpu.hdl.chip import Chip, trace_fields
from lpu.hdl.mxm import acc_layout, wload_layout
from lpu.trace import Event

__all__ = ["TraceReader", "PackedTrace", "sram_events", "mxm_events"]


def _int_of(ctx, value) -> int:
    return ctx.get(value.as_value() if isinstance(value, data.View) else value)


def _fields(layout) -> dict:
    return {name: (f.offset, f.width) for name, f in layout}


def sram_events(ctx, port, unit: int, cycle: int, lanes: int) -> list[Event]:
    """The ``sram`` events of MEM slice number `unit` at `cycle`, from its SRAM-write
    trace port ``[superlane][i] -> {we, addr, data}``."""
    layout = port.shape()
    n = layout.elem_shape.length
    fields = layout.elem_shape.elem_shape
    size = fields.size
    we_off = fields["we"].offset
    a_off, a_w = fields["addr"].offset, fields["addr"].width
    d_off, d_w = fields["data"].offset, fields["data"].width
    bits = ctx.get(port.as_value())
    if not bits:
        return []
    out = []
    for k in range(layout.length):
        for i in range(n):
            base = (k * n + i) * size
            if bits >> (base + we_off) & 1:
                addr = (bits >> (base + a_off)) & ((1 << a_w) - 1)
                val = (bits >> (base + d_off)) & ((1 << d_w) - 1)
                out.append(Event(cycle, "sram", unit, 0, addr, k, val.to_bytes(lanes, "little")))
    return out


def mxm_events(ctx, cfg: ChipConfig, port, unit_base: int, cycle: int) -> list[Event]:
    """The ``wload``, ``install`` and ``acc`` events of this cycle, from an object with
    the trace members of :class:`lpu.hdl.mxm.MxmSlice` (the slice itself, or the chip's
    ``trace.mxm[j]``); planes are numbered from `unit_base`."""
    S, L, NS, P = cfg.superlanes, cfg.lanes, cfg.streams, cfg.mxm_planes
    B = 8 * L
    out = []
    inst = ctx.get(port.install.as_value())
    if inst:
        for x in range(P):
            for k in range(S):
                if inst >> (x * S + k) & 1:
                    out.append(Event(cycle, "install", unit_base + x, 0, 0, k, b""))
    wl = wload_layout(cfg)
    f = _fields(wl)
    bits = ctx.get(port.wload.as_value())
    if bits:
        for x in range(P):
            for k in range(S):
                v = bits >> ((x * S + k) * wl.size)
                if not v & 1:
                    continue
                row = (v >> f["row"][0]) & ((1 << f["row"][1]) - 1)
                count = (v >> f["count"][0]) & ((1 << f["count"][1]) - 1)
                src = (v >> f["src"][0]) & ((1 << f["src"][1]) - 1)
                dat = v >> f["data"][0]
                for i in range(count):
                    s = (src + i) % NS
                    lane_bytes = (dat >> (s * B)) & ((1 << B) - 1)
                    out.append(Event(cycle, "wload", unit_base + x, 0, row + i, k,
                                     lane_bytes.to_bytes(L, "little")))
    al = acc_layout(cfg)
    f = _fields(al)
    bits = ctx.get(port.acc.as_value())
    if bits:
        for x in range(P):
            for k in range(S):
                v = bits >> ((x * S + k) * al.size)
                if not v & 1:
                    continue
                slot = (v >> f["slot"][0]) & ((1 << f["slot"][1]) - 1)
                dat = (v >> f["data"][0]) & ((1 << (32 * L)) - 1)
                out.append(Event(cycle, "acc", unit_base + x, 0, slot, k,
                                 dat.to_bytes(4 * L, "little")))
    return out


class PackedTrace:
    """A ``ctx`` for :meth:`TraceReader.read` over a sampled ``trace_bits`` value: set
    :attr:`bits` to the port's value each cycle; ``get(signal)`` cuts that signal's
    bits out of it."""

    def __init__(self, chip: Chip):
        self.fields = {id(sig): (off, (1 << w) - 1) for sig, off, w in trace_fields(chip)}
        self._keep = chip
        self.bits = 0

    def get(self, value) -> int:
        off, mask = self.fields[id(Value.cast(value))]
        return (self.bits >> off) & mask

    def running_mask(self) -> int:
        """The bit of ``trace.running`` inside ``trace_bits``."""
        return 1 << self.fields[id(Value.cast(self._keep.trace.running))][0]


class TraceReader:
    """Turns the trace port of a :class:`~lpu.hdl.chip.Chip` into golden-model events,
    per cycle.

    ``read(ctx, cycle)`` samples the port (with ``ctx.get``, after the cycle's inputs
    settle) and returns the :class:`~lpu.trace.Event` list of that cycle: ``sr``,
    ``dispatch``, ``sram``, and the MXM kinds (:func:`mxm_events`).
    """

    def __init__(self, chip: Chip):
        if "trace" not in chip.signature.members:
            raise ValueError("the chip was built without its trace port (trace=False)")
        self.chip = chip
        self.cfg = chip.cfg

    def read(self, ctx, cycle: int) -> list[Event]:
        cfg, tr = self.cfg, self.chip.trace
        S, N, L = cfg.superlanes, cfg.streams, cfg.lanes
        lane_mask = (1 << (8 * L)) - 1
        out = []
        for p in range(len(cfg.positions)):
            port = tr.sr[p]
            for dr, (dat, we) in enumerate(((port.e, port.e_we), (port.w, port.w_we))):
                bits = _int_of(ctx, we)
                if not bits:
                    continue
                values = _int_of(ctx, dat)
                for k in range(S):
                    for s in range(N):
                        i = k * N + s
                        if bits >> i & 1:
                            v = (values >> (8 * L * i)) & lane_mask
                            out.append(Event(cycle, "sr", p, dr, s, k, v.to_bytes(L, "little")))
        for q in range(len(cfg.queues)):
            if ctx.get(tr.dispatch[q].valid):
                word = _int_of(ctx, tr.dispatch[q].word)
                out.append(Event(cycle, "dispatch", q, 0, ctx.get(tr.index[q]), 0,
                                 word.to_bytes(4, "little")))
        if "sram" in tr.signature.members:
            for i in range(len(self.chip.mem_slices)):
                out += sram_events(ctx, tr.sram[i], i, cycle, L)
        for j, sl in enumerate(self.chip.mxm_slices):
            out += mxm_events(ctx, cfg, tr.mxm[j], sl.unit_base, cycle)
        return out
