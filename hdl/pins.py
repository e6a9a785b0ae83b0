"""A pin wrapper for synthesizing a block that has more I/O bits than a package has pins.

Its inputs come from a shift register fed by one pin (``si``), and its outputs are
folded by XOR into one registered pin (``so``), so that synthesis keeps all of the
block's logic and no port needs a pin. The wrapper adds one flip-flop per input bit,
plus one; :attr:`PinWrapper.in_bits` says how many, for area reports.
"""

from amaranth.hdl import Elaboratable, Module, Signal, Value
from amaranth.lib.wiring import In

__all__ = ["PinWrapper"]


class PinWrapper(Elaboratable):
    """Feeds a wide component from a one-pin shift register and folds its outputs by XOR
    into one registered pin.

    Parameters
    ----------
    inner : wiring.Component
        The design; every input port bit comes from the chain, every output bit feeds
        the fold.

    Attributes
    ----------
    si, so : Signal
        The serial input pin and the registered output pin.
    in_bits : int
        Flip-flops of the input chain (known after elaboration).
    """

    def __init__(self, inner):
        self.inner = inner
        self.in_bits = 0
        self.si, self.so = Signal(name="si"), Signal(name="so")

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        ins, outs = [], []
        for _, member, value in inner.signature.flatten(inner):
            (ins if member.flow == In else outs).append(Value.cast(value))
        total = sum(len(v) for v in ins)
        self.in_bits = total
        chain = Signal(max(1, total), name="chain")
        m.d.sync += chain.eq((chain << 1) | self.si)
        pos = 0
        for v in ins:
            m.d.comb += v.eq(chain[pos:pos + len(v)])
            pos += len(v)
        fold = Signal(name="fold")
        acc = outs[0].xor()
        for v in outs[1:]:
            acc = acc ^ v.xor()
        m.d.sync += fold.eq(acc)
        m.d.comb += self.so.eq(fold)
        return m
