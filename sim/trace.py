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

Many cycles at once (the bulk comparison, :mod:`lpu.sim.bulk`):

* :class:`TraceLayout` says where each trace signal sits in ``trace_bits``, from the
  same layouts the per-cycle decoders read;
* :class:`EventArrays` holds the events of many cycles in dense arrays, one row per
  cycle, equal rows meaning equal sets of events; :meth:`EventArrays.from_packed`
  decodes recorded ``trace_bits`` samples into it in numpy, field by field, as
  :class:`TraceReader` decodes one sample; :meth:`EventArrays.from_columns` puts events
  given as columns (the golden model's) into the same form;
* :func:`event_mask` is the bits of ``trace_bits`` that flag an event (the recorder
  skips cycles without any); :func:`port_chip` the chip object all of these read.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Value
from amaranth.lib import data, wiring

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.ecc import REPORT_BYTES
from lpu.hdl.chip import Chip, trace_fields, trace_width
from lpu.hdl.mxm import acc_layout, wload_layout
from lpu.trace import Event

__all__ = ["TraceReader", "PackedTrace", "sram_events", "ecc_events", "mxm_events",
           "event_mask",
           "port_chip", "TraceLayout", "EventArrays"]

_PORT_CHIPS: dict = {}


def port_chip(cfg: ChipConfig | str) -> Chip:
    """A :class:`~lpu.hdl.chip.Chip` of `cfg` with its trace port, used for its port
    objects only (never elaborated): what the decoders here read offsets and layouts
    from. One per config and process."""
    cfg = load_config(cfg)
    chip = _PORT_CHIPS.get(cfg.hash)
    if chip is None:
        chip = _PORT_CHIPS[cfg.hash] = Chip(cfg, trace=True)
        for obj in (chip, chip.icu, chip.fabric, chip.host, *chip.slices):
            obj._MustUse__silence = True
            for part in vars(obj).values():  # an edge slice's SXM and C2C slice (ISA 1.3)
                if isinstance(part, wiring.Component):
                    part._MustUse__silence = True
    return chip


def _int_of(ctx, value) -> int:
    return ctx.get(value.as_value() if isinstance(value, data.View) else value)


def _fields(layout) -> dict:
    return {name: (f.offset, f.width) for name, f in layout}


def ecc_events(ctx, port, unit: int, cycle: int) -> list[Event]:
    """The ``ecc`` events of MEM slice number `unit` at `cycle`, from its ECC trace port
    (:func:`lpu.hdl.mem.ecc_trace_layout`)."""
    layout = port.shape()
    bits = _int_of(ctx, port)
    word = layout.elem_shape.elem_shape
    f = _fields(word)
    out = []
    for k in range(layout.length):
        for j in range(layout.elem_shape.length):
            w = bits >> ((k * layout.elem_shape.length + j) * word.size)

            def get(name, w=w):
                off, width = f[name]
                return (w >> off) & ((1 << width) - 1)
            if get("valid"):
                out.append(Event(cycle, "ecc", unit, get("detected"), get("addr"), k,
                                 get("report").to_bytes(REPORT_BYTES, "little")))
    return out


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
        if "ecc" in tr.signature.members:
            for i in range(len(self.chip.mem_slices)):
                out += ecc_events(ctx, tr.ecc[i], i, cycle)
        for j, sl in enumerate(self.chip.mxm_slices):
            out += mxm_events(ctx, cfg, tr.mxm[j], sl.unit_base, cycle)
        return out


def _offsets(chip: Chip) -> dict:
    """id of each trace signal -> (offset, width) inside ``trace_bits``."""
    return {id(sig): (off, w) for sig, off, w in trace_fields(chip)}


def event_mask(chip: Chip) -> int:
    """The bits of ``trace_bits`` that say an event happens: the write enables of the
    stream writes and SRAM writes, the dispatch, ECC-report, weight-load and accumulator
    valid bits and the installs. A cycle with none of them set has no events."""
    at = _offsets(chip)
    tr = chip.trace

    def field(value):
        return at[id(Value.cast(value.as_value() if isinstance(value, data.View) else value))]

    def ones(w):
        return (1 << w) - 1

    mask = 0
    for port in tr.sr:
        for we in (port.e_we, port.w_we):
            off, w = field(we)
            mask |= ones(w) << off
    for d in tr.dispatch:
        off, _ = field(d.valid)
        mask |= 1 << off
    for member, flag in (("sram", "we"), ("ecc", "valid")):  # [superlane][i] -> {flag, ..}
        if member not in tr.signature.members:
            continue
        for port in getattr(tr, member):
            off, _ = field(port)
            layout = port.shape()
            n, word = layout.elem_shape.length, layout.elem_shape.elem_shape
            for e in range(layout.length * n):
                mask |= 1 << (off + e * word.size + word[flag].offset)
    if "mxm" in tr.signature.members:
        for port in tr.mxm:
            off, w = field(port.install)
            mask |= ones(w) << off
            for name in ("wload", "acc"):
                view = getattr(port, name)
                off, w = field(view)
                elem = view.shape().elem_shape.elem_shape
                for e in range(w // elem.size):
                    mask |= 1 << (off + e * elem.size + elem["valid"].offset)
    return mask


# -- many cycles at once: dense event arrays --------------------------------------------


def _bytes_at(bits, off: int, width: int):
    """Bits ``off .. off + width`` of each row of `bits` (uint8 [n, B], little-endian)
    as uint8 [n, ceil(width / 8)]: a view where the field is whole bytes, else a copy."""
    b0, r = divmod(off, 8)
    nb = -(-width // 8)
    if not r and not width % 8:
        return bits[:, b0:b0 + nb]
    seg = bits[:, b0:b0 + nb + 1]
    if seg.shape[1] < nb + 1:  # the last byte of the row
        seg = np.concatenate([seg, np.zeros((seg.shape[0], nb + 1 - seg.shape[1]),
                                            np.uint8)], axis=1)
    if r:
        out = (seg[:, :nb] >> r) | (seg[:, 1:nb + 1] << (8 - r))
    else:
        out = seg[:, :nb].copy()
    if width % 8:
        out[:, -1] &= (1 << (width % 8)) - 1
    return out


def _lanes_as_words(x):
    """The last axis (a superlane's lanes, bytes) as 32-bit words where it divides, for
    fewer comparisons; a view."""
    if x.shape[-1] % 4 or x.strides[-1] != 1:
        return x
    return x.view(np.uint32)


def _uint_at(bits, off: int, width: int):
    """Bits ``off .. off + width`` (``width`` at most 56) of each row as int64 [n]."""
    b0, r = divmod(off, 8)
    nb = -(-(r + width) // 8)
    seg = bits[:, b0:b0 + nb].astype(np.int64)
    v = np.zeros(bits.shape[0], np.int64)
    for i in range(nb):
        v |= seg[:, i] << (8 * i)
    return (v >> r) & ((1 << width) - 1)


class TraceLayout:
    """Where every trace signal sits inside ``trace_bits`` (:func:`lpu.hdl.chip.trace_fields`
    and the slices' layouts, the same the per-cycle decoders read), and the geometry of
    :class:`EventArrays` for that chip: ``P`` positions, ``S`` superlanes, ``N``
    streams, ``L`` lanes, ``Q`` queues, ``M`` MEM slices with ``R`` SRAM words per
    superlane and cycle, ``E`` ECC reports per MEM slice, superlane and cycle (0: the
    trace has no ecc port, docs/trace.md), ``X`` MXM planes taking up to ``C`` (= ``N``)
    weight rows per cycle."""

    def __init__(self, chip: Chip):
        cfg = self.cfg = chip.cfg
        tr = chip.trace
        at = _offsets(chip)

        def field(value):
            return at[id(Value.cast(value.as_value() if isinstance(value, data.View)
                                    else value))]

        self.width = trace_width(chip)
        self.P, self.S, self.N, self.L = (len(cfg.positions), cfg.superlanes, cfg.streams,
                                          cfg.lanes)
        self.Q = len(cfg.queues)
        self.sr = [(field(p.e)[0], field(p.e_we)[0], field(p.w)[0], field(p.w_we)[0])
                   for p in tr.sr]
        self.dispatch = [(field(tr.dispatch[q].valid)[0], field(tr.dispatch[q].word)[0],
                          field(tr.index[q])) for q in range(self.Q)]
        self.sram = []
        self.M = self.R = 0
        if "sram" in tr.signature.members:
            for port in tr.sram:
                layout = port.shape()
                self.R = layout.elem_shape.length
                word = layout.elem_shape.elem_shape
                self.sram.append((field(port)[0], word.size, word["we"].offset,
                                  (word["addr"].offset, word["addr"].width),
                                  word["data"].offset))
            self.M = len(self.sram)
        self.ecc = []  # per MEM slice, if the trace has its ecc port (not on small)
        self.E = 0
        if "ecc" in tr.signature.members:
            for port in tr.ecc:
                layout = port.shape()
                self.E = layout.elem_shape.length
                word = layout.elem_shape.elem_shape
                self.ecc.append((field(port)[0], word.size, word["valid"].offset,
                                 word["detected"].offset,
                                 (word["addr"].offset, word["addr"].width),
                                 (word["report"].offset, word["report"].width)))
        self.mxm = []
        for j, sl in enumerate(chip.mxm_slices):
            port = tr.mxm[j]
            wl, al = wload_layout(cfg), acc_layout(cfg)
            self.mxm.append((sl.unit_base, field(port.install)[0], field(port.wload)[0],
                             field(port.acc)[0], wl, al))
        self.planes = cfg.mxm_planes
        self.X = len(self.mxm) * self.planes
        self.C = self.N


class EventArrays:
    """The events of ``n`` cycles as dense arrays, one row per cycle, in a form where two
    rows are equal exactly when the two cycles' sets of events are (:meth:`differ`):
    every event has one place, keyed as :mod:`lpu.sim.lockstep` keys it (SRAM words and
    weight rows of one slice, superlane and cycle in address order), and the bytes of a
    place without an event are zero (stream writes: of no meaning, not compared). A row
    whose events do not fit that form (more SRAM words or weight rows in one cycle than
    the chip can report, two events of one key) is marked ``overflow`` and compares
    unequal to every row.

    Arrays (leading dimension ``n``, but for the stream writes; geometry of
    :class:`TraceLayout`):

    ``sr_we`` [P, 2, n, S, N], ``sr`` [P, 2, n, S, N, L]
        stream writes by position, direction, (cycle,) superlane and stream; ``sr[p][d]``
        may also be a view into the samples (:meth:`from_packed`);
    ``disp`` [Q], ``disp_word`` [Q], ``disp_index`` [Q]
        dispatches by queue;
    ``sram_n`` [M, S], ``sram_addr`` [M, S, R], ``sram`` [M, S, R, L]
        SRAM writes by slice and superlane, ``sram_n`` of them, in address order;
    ``ecc_n`` [M, S], ``ecc_addr`` [M, S, E], ``ecc_dir`` [M, S, E], ``ecc`` [M, S, E, 2]
        ECC reports (``ecc`` events: address, detected, report bytes) by slice and
        superlane, in address order (no MEM slices here when the trace has no ecc port:
        a row with an ``ecc`` event then does not fit);
    ``wload_n`` [X, S], ``wload_row`` [X, S, C], ``wload`` [X, S, C, L]
        weight-row loads by plane and superlane, in row order;
    ``install`` [X, S]; ``acc_we`` [X, S], ``acc_slot`` [X, S], ``acc`` [X, S, L, 4]
        installs, and accumulator writes (int32 lanes, little-endian).
    """

    FIELDS = ("sr_we", "sr", "disp", "disp_word", "disp_index", "sram_n", "sram_addr",
              "sram", "ecc_n", "ecc_addr", "ecc_dir", "ecc", "wload_n", "wload_row", "wload",
              "install", "acc_we", "acc_slot", "acc", "overflow")

    def __init__(self, lay: TraceLayout, n: int, *, sr: bool = True):
        P, S, N, L, Q, M, R, X, C = (lay.P, lay.S, lay.N, lay.L, lay.Q, lay.M, lay.R,
                                     lay.X, lay.C)
        self.n = n
        z = np.zeros
        self.sr_we = z((P, 2, n, S, N), bool)
        self.sr = z((P, 2, n, S, N, L), np.uint8) if sr else None
        self.disp = z((n, Q), bool)
        self.disp_word = z((n, Q), np.int64)
        self.disp_index = z((n, Q), np.int64)
        self.sram_n = z((n, M, S), np.int64)
        self.sram_addr = z((n, M, S, R), np.int64)
        self.sram = z((n, M, S, R, L), np.uint8)
        Me, E = len(lay.ecc), lay.E
        self.ecc_n = z((n, Me, S), np.int64)
        self.ecc_addr = z((n, Me, S, E), np.int64)
        self.ecc_dir = z((n, Me, S, E), np.int64)
        self.ecc = z((n, Me, S, E, REPORT_BYTES), np.uint8)
        self.wload_n = z((n, X, S), np.int64)
        self.wload_row = z((n, X, S, C), np.int64)
        self.wload = z((n, X, S, C, L), np.uint8)
        self.install = z((n, X, S), bool)
        self.acc_we = z((n, X, S), bool)
        self.acc_slot = z((n, X, S), np.int64)
        self.acc = z((n, X, S, L, 4), np.uint8)
        self.overflow = z(n, bool)

    def take(self, keep) -> EventArrays:
        """The rows where `keep` (bool [n]) is set."""
        out = EventArrays.__new__(EventArrays)
        out.n = int(np.count_nonzero(keep))
        for name in self.FIELDS:
            v = getattr(self, name)
            if name in ("sr_we", "sr"):
                v = v[:, :, keep] if isinstance(v, np.ndarray) else \
                    [[x[keep] for x in pair] for pair in v]
            else:
                v = v[keep]
            setattr(out, name, v)
        return out

    def differ(self, other: EventArrays):
        """bool [n]: the rows whose events differ from `other`'s (or do not fit)."""
        n = self.n
        out = self.overflow | other.overflow

        def rows(x):
            return x.reshape(n, int(np.prod(x.shape[1:]))).any(axis=1)

        for p in range(self.sr_we.shape[0]):
            for dr in (0, 1):
                we = self.sr_we[p, dr]
                out |= rows(we != other.sr_we[p, dr])
                ne = _lanes_as_words(self.sr[p][dr]) != _lanes_as_words(other.sr[p][dr])
                out |= rows(ne.any(axis=-1) & we)
        for name in self.FIELDS[2:-1]:
            out |= rows(getattr(self, name) != getattr(other, name))
        return out

    @classmethod
    def from_packed(cls, lay: TraceLayout, bits):
        """The events of sampled ``trace_bits`` values (uint8 [k, B], little-endian, as
        :mod:`lpu.sim.recorder` records them), one row per sample, decoded as
        :class:`TraceReader` decodes one."""
        k = bits.shape[0]
        out = cls(lay, k, sr=False)
        S, N, L, R, C = lay.S, lay.N, lay.L, lay.R, lay.C
        out.sr = [[None, None] for _ in lay.sr]  # views: the data is only compared
        for p, offs in enumerate(lay.sr):
            for dr in (0, 1):
                d_off, we_off = offs[2 * dr], offs[2 * dr + 1]
                out.sr_we[p, dr] = np.unpackbits(
                    _bytes_at(bits, we_off, S * N), axis=1, count=S * N,
                    bitorder="little").reshape(k, S, N)
                out.sr[p][dr] = _bytes_at(bits, d_off, 8 * L * S * N).reshape(k, S, N, L)
        # the other kinds: a field whose valid bits are all clear in the block is skipped
        for q, (v_off, w_off, (i_off, i_w)) in enumerate(lay.dispatch):
            valid = _uint_at(bits, v_off, 1).astype(bool)
            if valid.any():
                out.disp[:, q] = valid
                out.disp_word[:, q] = np.where(valid, _uint_at(bits, w_off, 32), 0)
                out.disp_index[:, q] = np.where(valid, _uint_at(bits, i_off, i_w), 0)
        for m, (off, size, we_off, (a_off, a_w), d_off) in enumerate(lay.sram):
            we = np.stack([_uint_at(bits, off + e * size + we_off, 1).astype(bool)
                           for e in range(S * R)], axis=1).reshape(k, S, R)
            if not we.any():
                continue
            addr = np.zeros((k, S, R), np.int64)
            val = np.zeros((k, S, R, L), np.uint8)
            for e in range(S * R):
                kk, i = divmod(e, R)
                base = off + e * size
                addr[:, kk, i] = _uint_at(bits, base + a_off, a_w)
                val[:, kk, i] = _bytes_at(bits, base + d_off, 8 * L)
            key = np.where(we, addr, 1 << 40)
            if (key[..., 1:] < key[..., :-1]).any():  # not in address order: sort
                order = np.argsort(key, axis=-1, kind="stable")
                we = np.take_along_axis(we, order, axis=-1)
                addr = np.take_along_axis(addr, order, axis=-1)
                val = np.take_along_axis(val, order[..., None], axis=-2)
            out.sram_n[:, m] = we.sum(axis=-1)
            out.sram_addr[:, m] = addr * we
            out.sram[:, m] = val * we[..., None]
        E = lay.E
        for m, (off, size, v_off, d_off, (a_off, a_w), (r_off, r_w)) in enumerate(lay.ecc):
            valid = np.stack([_uint_at(bits, off + e * size + v_off, 1).astype(bool)
                              for e in range(S * E)], axis=1).reshape(k, S, E)
            if not valid.any():
                continue
            at = [off + e * size for e in range(S * E)]
            addr = np.stack([_uint_at(bits, b + a_off, a_w) for b in at], 1).reshape(k, S, E)
            det = np.stack([_uint_at(bits, b + d_off, 1) for b in at], 1).reshape(k, S, E)
            rep = np.stack([_bytes_at(bits, b + r_off, r_w) for b in at], 1)
            rep = rep.reshape(k, S, E, REPORT_BYTES)
            key = np.where(valid, addr, 1 << 40)
            order = np.argsort(key, axis=-1, kind="stable")  # address order
            valid, addr, det = (np.take_along_axis(x, order, axis=-1)
                                for x in (valid, addr, det))
            rep = np.take_along_axis(rep, order[..., None], axis=-2)
            out.ecc_n[:, m] = valid.sum(axis=-1)
            out.ecc_addr[:, m] = addr * valid
            out.ecc_dir[:, m] = det * valid
            out.ecc[:, m] = rep * valid[..., None]
        for base_unit, inst_off, wl_off, acc_off, wl, al in lay.mxm:
            fw, fa = dict(_fields(wl)), dict(_fields(al))
            for x in range(lay.planes):
                u = base_unit + x
                for kk in range(S):
                    e = x * S + kk
                    out.install[:, u, kk] = _uint_at(bits, inst_off + e, 1).astype(bool)
                    b = wl_off + e * wl.size
                    valid = _uint_at(bits, b + fw["valid"][0], 1).astype(bool)
                    if valid.any():
                        row = _uint_at(bits, b + fw["row"][0], fw["row"][1])
                        count = np.where(valid, _uint_at(bits, b + fw["count"][0],
                                                         fw["count"][1]), 0)
                        src = _uint_at(bits, b + fw["src"][0], fw["src"][1])
                        dat = _bytes_at(bits, b + fw["data"][0], 8 * L * N).reshape(k, N, L)
                        live = np.arange(C)[None, :] < count[:, None]
                        streams = (src[:, None] + np.arange(C)[None, :]) % N
                        out.wload_n[:, u, kk] = np.minimum(count, C)
                        out.wload_row[:, u, kk] = (row[:, None] + np.arange(C)) * live
                        out.wload[:, u, kk] = np.take_along_axis(
                            dat, streams[..., None], axis=1) * live[..., None]
                        out.overflow |= count > C
                    b = acc_off + e * al.size
                    valid = _uint_at(bits, b + fa["valid"][0], 1).astype(bool)
                    if valid.any():
                        out.acc_we[:, u, kk] = valid
                        out.acc_slot[:, u, kk] = np.where(
                            valid, _uint_at(bits, b + fa["slot"][0], fa["slot"][1]), 0)
                        out.acc[:, u, kk] = (_bytes_at(bits, b + fa["data"][0], 32 * L)
                                             .reshape(k, L, 4) * valid[:, None, None])
        return out

    @classmethod
    def from_columns(cls, lay: TraceLayout, cols: dict, cycles):
        """The events of `cols` (kind -> ``cycle``, ``superlane``, ``unit``, ``dir``,
        ``index``, ``data`` [n, bytes] arrays: events as columns, ``data`` as in
        :class:`~lpu.trace.Event`) in one row per cycle of `cycles` (sorted, distinct),
        and the cycles (sorted, distinct) of the events whose cycle is not among them."""
        out = cls(lay, len(cycles))
        place = _Placer(out, cycles)
        for kind, c in cols.items():
            place(kind, c)
        return out, place.finish()

    @classmethod
    def from_vectors(cls, lay: TraceLayout, rows: dict, lo: int, hi: int | None, cycles):
        """As :meth:`from_columns`, for the events of cycles ``lo <= c < hi`` (``hi``
        None: no end) given as whole-vector writes sorted by ``t``, in the form of
        :meth:`lpu.golden.dataflow.Plan.events` (superlane ``k`` of a row written in
        skewed cycle ``t`` is an event of cycle ``t + k``), without making event
        columns."""
        out = cls(lay, len(cycles))
        place = _Placer(out, cycles, lo, hi)
        S, L = lay.S, lay.L
        for kind, v in rows.items():
            t = v["t"]
            for k in range(1 if kind == "dispatch" else S):
                # the rows whose superlane k falls in the window: t + k in [lo, hi)
                a = int(np.searchsorted(t, lo - k))
                b = t.size if hi is None else int(np.searchsorted(t, hi - k))
                if a >= b:
                    continue
                if kind == "dispatch":
                    place(kind, {"cycle": t[a:b], "superlane": 0, "unit": v["queue"][a:b],
                                 "dir": 0, "index": v["index"][a:b],
                                 "data": v["word"][a:b].astype("<u4").view(np.uint8)
                                 .reshape(-1, 4)})
                    continue
                col = {"cycle": t[a:b] + k, "superlane": k, "unit": v["unit"][a:b],
                       "dir": v["dir"][a:b] if kind == "sr" else 0,
                       "index": v["index"][a:b] if kind != "install" else 0}
                if kind == "acc":
                    col["data"] = v["data"][a:b, k * L:(k + 1) * L].reshape(b - a, 4 * L)
                elif kind != "install":
                    col["data"] = v["data"][a:b, k * L:(k + 1) * L]
                place(kind, col)
        return out, place.finish()


class _Placer:
    """Puts events given as columns (a field may be one number for all) into the rows
    of an :class:`EventArrays` for `cycles`, ignoring events outside ``lo <= c < hi``
    and remembering the cycles of the others that have no row; :meth:`finish` marks
    the rows where a key came twice as overflow and returns those cycles."""

    def __init__(self, out: EventArrays, cycles, lo=None, hi=None):
        self.out = out
        self.cycles = c = np.asarray(cycles)
        self.lo, self.hi = lo, hi
        self.base = int(c[0]) if c.size and int(c[-1]) - int(c[0]) + 1 == c.size else None
        self.missing = []
        self.flats: dict = {}  # kind -> indices placed into its flags, for finish()

    def _rows(self, cyc):
        c = self.cycles
        if self.base is not None:  # consecutive cycles: the row is the offset
            r = cyc - self.base
            hit = (r >= 0) & (r < c.size)
        elif c.size:
            r = np.searchsorted(c, cyc)
            hit = (r < c.size) & (c[np.minimum(r, c.size - 1)] == cyc)
        else:
            r, hit = np.zeros(cyc.size, np.int64), np.zeros(cyc.size, bool)
        inside = None
        if self.lo is not None:
            inside = cyc >= self.lo
            if self.hi is not None:
                inside &= cyc < self.hi
        return r, hit, inside

    def __call__(self, kind: str, c: dict) -> None:
        out = self.out
        cyc = np.asarray(c["cycle"])
        if not cyc.size:
            return
        r, hit, inside = self._rows(cyc)
        if not hit.all():
            miss = ~hit if inside is None else inside & ~hit
            if miss.any():
                self.missing.append(cyc[miss])
            r = r[hit]
            c = {f: (v[hit] if np.ndim(v) else v) for f, v in c.items()}
        if not r.size:
            return
        L = out.acc.shape[3]
        k = np.broadcast_to(c["superlane"], r.shape)
        if kind == "sr":
            d = np.broadcast_to(c["dir"], r.shape)
            flat = np.ravel_multi_index((c["unit"], d, r, k, c["index"]), out.sr_we.shape)
            out.sr_we.reshape(-1)[flat] = True
            data = np.ascontiguousarray(c["data"])
            if L % 4 == 0:  # as 32-bit words: fewer, wider copies
                out.sr.view(np.uint32).reshape(-1, L // 4)[flat] = data.view(np.uint32)
            else:
                out.sr.reshape(-1, L)[flat] = data
            self.flats.setdefault(kind, []).append(flat)
        elif kind == "dispatch":
            out.disp[r, c["unit"]] = True
            out.disp_word[r, c["unit"]] = np.ascontiguousarray(c["data"]).view("<u4")[:, 0]
            out.disp_index[r, c["unit"]] = c["index"]
            self.flats.setdefault(kind, []).append(
                np.ravel_multi_index((r, c["unit"]), out.disp.shape))
        elif kind in ("sram", "wload", "ecc"):
            nn, key, val = {"sram": ("sram_n", "sram_addr", "sram"),
                            "wload": ("wload_n", "wload_row", "wload"),
                            "ecc": ("ecc_n", "ecc_addr", "ecc")}[kind]
            counts, keys = getattr(out, nn), getattr(out, key)
            units, S, width = counts.shape[1], counts.shape[2], keys.shape[3]
            if not units * width:  # no place for them (a trace without its ecc port)
                out.overflow[r] = True
                return
            index = np.broadcast_to(c["index"], r.shape)
            group = (r * units + c["unit"]) * S + k
            order = np.lexsort((index, group))
            g = group[order]
            rank = np.arange(g.size) - np.searchsorted(g, g, side="left")
            fits = rank < width
            out.overflow[r[order][~fits]] = True
            o = order[fits]
            ix = (r[o], c["unit"][o], k[o])
            keys[(*ix, rank[fits])] = index[o]
            getattr(out, val)[(*ix, rank[fits])] = c["data"][o]
            if kind == "ecc":
                out.ecc_dir[(*ix, rank[fits])] = np.broadcast_to(c["dir"], r.shape)[o]
            np.add.at(counts, ix, 1)
            same = (g[1:] == g[:-1]) & (index[order][1:] == index[order][:-1])
            out.overflow[r[order][1:][same]] = True
        else:  # install, acc
            idx = (r, c["unit"], k)
            flags = out.install if kind == "install" else out.acc_we
            flags[idx] = True
            if kind == "acc":
                out.acc_slot[idx] = c["index"]
                out.acc[idx] = np.asarray(c["data"]).reshape(-1, L, 4)
            self.flats.setdefault(kind, []).append(np.ravel_multi_index(idx, flags.shape))

    def finish(self):
        out = self.out
        for kind, flats in self.flats.items():
            flags, axis = {"sr": (out.sr_we, 2), "dispatch": (out.disp, 0),
                           "install": (out.install, 0), "acc": (out.acc_we, 0)}[kind]
            if int(np.count_nonzero(flags)) == sum(f.size for f in flats):
                continue  # as many places set as events: no key twice
            flat = np.sort(np.concatenate(flats))
            dup = flat[1:][flat[1:] == flat[:-1]]
            out.overflow[np.unravel_index(dup, flags.shape)[axis]] = True
        if not self.missing:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate(self.missing))
