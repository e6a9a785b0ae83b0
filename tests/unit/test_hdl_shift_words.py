"""lpu.hdl.interface.shift_words against Python's integer shifts, on Amaranth's
simulator: every shift amount, left and right, outputs narrower and wider than the
input."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from lpu.hdl.interface import shift_words

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("right", [False, True])
@pytest.mark.parametrize("in_words,out_words", [(4, 8), (8, 8), (8, 3)])
def test_shift_words_is_a_word_shift(right, in_words, out_words):
    wb = 5  # odd word width: no byte alignment to hide behind
    m = Module()
    value = Signal(in_words * wb)
    amount = Signal(3)
    out = Signal(out_words * wb)
    m.d.comb += out.eq(shift_words(value, amount, wb, out_words, right=right))
    rng = random.Random(5)
    mask = (1 << (out_words * wb)) - 1
    seen = []

    async def bench(ctx):
        for _ in range(40):
            v = rng.getrandbits(in_words * wb)
            for a in range(8):
                ctx.set(value, v)
                ctx.set(amount, a)
                want = ((v >> (a * wb)) if right else (v << (a * wb))) & mask
                got = ctx.get(out)
                assert got == want, (hex(v), a, hex(got), hex(want))
                seen.append(a)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 40 * 8
