"""The stream-register fabric: every stream register of the chip, east and west.

Timing contract (docs/timing.md section 3, hdl/interface.py)
------------------------------------------------------------
For every position ``p``, superlane ``k``, stream ``s`` and direction the fabric holds
one register of ``lanes`` bytes and a *valid* bit. At each clock edge:

* ``E[p]`` takes the value the slice at ``p`` drives on ``wr[p].e`` if its write enable
  ``wr[p].e_we`` is high in that cycle, else the value ``E[p-1]`` held; ``E[0]`` takes
  *nothing* (valid low) unless written.
* ``W[p]`` likewise takes ``wr[p].w`` or else ``W[p+1]``; ``W[P-1]`` holds nothing
  unless written.
* A written register is valid; an unwritten one inherits its neighbour's valid bit.

So a value written at cycle ``t`` by the slice at ``p`` is seen by the slice at
``q > p`` (east) in cycle ``t + (q - p)`` unless a slice between them overwrote it.
The fabric has no latency of its own beyond the one register per position, no
arbitration and no stall: two writers of one register are the slices' business (they
raise ``SliceError``; the fabric never sees two writers, because each position has
exactly one ``wr`` port).

Ports
-----
``rd[p]`` : ``Out(StreamIn(cfg))``
    What arrives at position ``p`` this cycle: ``e = E[p-1]`` and ``w = W[p+1]``
    with their valid bits (nothing at the edges). Connect it to the slice's ``rd``.
``wr[p]`` : ``In(StreamOut(cfg))``
    What the slice at ``p`` writes this cycle. Connect the slice's ``wr`` to it.

The registers themselves are ``e_data[p]``, ``e_valid[p]``, ``w_data[p]``,
``w_valid[p]`` (attributes, for tests and waveforms): plain vectors with the bit
layout of :func:`~lpu.hdl.interface.stream_data` / :func:`~lpu.hdl.interface.stream_bits`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig

from .interface import StreamIn, StreamOut, stream_bits, stream_data

__all__ = ["StreamFabric"]


def _lane_mask(bits, width):
    """Expand one bit per (superlane, stream) to a mask over the stream data bits."""
    flat = bits.as_value()
    ones = Const((1 << width) - 1, width)
    return Cat(*(Mux(flat[i], ones, 0) for i in range(len(flat))))


class StreamFabric(wiring.Component):
    """The stream registers between slice positions, sized by `cfg`.

    Parameters
    ----------
    cfg : ChipConfig
        Positions (``len(cfg.positions)``), superlanes, lanes and streams.
    """

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            self._MustUse__silence = True
            raise TypeError(f"StreamFabric needs a ChipConfig, not {cfg!r}")
        self._cfg = cfg
        n = len(cfg.positions)
        # plain vectors, laid out as stream_data / stream_bits (cheaper to simulate)
        dw, vw = stream_data(cfg).size, stream_bits(cfg).size
        self.e_data = [Signal(dw, name=f"e{p}") for p in range(n)]
        self.e_valid = [Signal(vw, name=f"e{p}_valid") for p in range(n)]
        self.w_data = [Signal(dw, name=f"w{p}") for p in range(n)]
        self.w_valid = [Signal(vw, name=f"w{p}_valid") for p in range(n)]
        super().__init__({
            "rd": Out(StreamIn(cfg)).array(n),
            "wr": In(StreamOut(cfg)).array(n),
        })

    @property
    def positions(self) -> int:
        return len(self.e_data)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n = self.positions
        width = 8 * cfg.lanes
        for p in range(n):
            wr = self.wr[p]
            for data, valid, new, we, prev in (
                (self.e_data, self.e_valid, wr.e, wr.e_we, p - 1),
                (self.w_data, self.w_valid, wr.w, wr.w_we, p + 1),
            ):
                we_bits = we.as_value()
                mask = _lane_mask(we, width)
                if 0 <= prev < n:
                    m.d.sync += [
                        data[p].eq((new.as_value() & mask) | (data[prev] & ~mask)),
                        valid[p].eq(we_bits | valid[prev]),
                    ]
                else:  # at the edge nothing arrives: only a write makes the register valid
                    m.d.sync += [data[p].eq(new.as_value() & mask), valid[p].eq(we_bits)]
            rd = self.rd[p]
            if p > 0:
                m.d.comb += [rd.e.eq(self.e_data[p - 1]), rd.e_valid.eq(self.e_valid[p - 1])]
            if p < n - 1:
                m.d.comb += [rd.w.eq(self.w_data[p + 1]), rd.w_valid.eq(self.w_valid[p + 1])]
        return m
