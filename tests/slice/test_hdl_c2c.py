"""lpu.hdl.c2c on Amaranth's simulator: the C2C slice's send and recv timing on superlane
0 and 1 (docs/timing.md, "C2C"), its LINK errors (a recv with nothing arriving, a
vector nobody takes), and the link model's latency. The whole two-chip system is in
tests/chip/test_c2c_lockstep.py."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu import config
from lpu.hdl.c2c import C2cSlice, LinkModel, links_of
from lpu.hdl.interface import ErrorCode
from lpu.isa import E, W, encode, make

pytestmark = pytest.mark.slice
CFG = config.load("tiny").replace(c2c_links=3, c2c_latency=3, c2c_width=2, name="tiny-c2c")


def test_each_edge_serves_its_links():
    assert links_of(CFG, "w") == [0, 2] and links_of(CFG, "e") == [1]


def _run(dut, body):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(body)
    sim.run()


def test_send_and_recv_on_every_superlane():
    dut = C2cSlice(CFG, "w")
    rng = np.random.default_rng(0)
    lanes = [[int(x) for x in rng.integers(0, 1 << 32, 2, dtype=np.uint64)]
             for _ in range(CFG.superlanes)]  # [superlane][stream] of west streams 3, 4
    seen = {}

    async def tb(ctx):
        for k in range(CFG.superlanes):
            for j in range(2):
                ctx.set(dut.rd.w[k][3 + j], lanes[k][j])
                ctx.set(dut.rd.w_valid[k][3 + j], 1)
        ctx.set(dut.dispatch[0].valid, 1)
        ctx.set(dut.dispatch[0].word.as_value(), encode(make("send", 2, (3, W), 2)))
        for k in range(CFG.superlanes):  # cycle k: superlane k goes out on link 2 (tx[1])
            assert ctx.get(dut.tx[1].valid[k]) == 1 and ctx.get(dut.tx[0].valid[k]) == 0
            seen[k] = [ctx.get(dut.tx[1].data[k][j]) for j in range(2)]
            assert ctx.get(dut.error.valid) == 0
            await ctx.tick()
            ctx.set(dut.dispatch[0].valid, 0)
        # recv over link 0 (rx[0]) of one vector, written east at stream 5 a cycle later
        ctx.set(dut.dispatch[0].valid, 1)
        ctx.set(dut.dispatch[0].word.as_value(), encode(make("recv", 0, (5, E), 1)))
        for k in range(CFG.superlanes):
            ctx.set(dut.rx[0].valid[k], 1)
            ctx.set(dut.rx[0].count[k], 0)
            ctx.set(dut.rx[0].data[k][0], lanes[k][0])
            if k:
                assert ctx.get(dut.wr.e_we[k - 1].as_value()) == 1 << 5
                assert ctx.get(dut.wr.e[k - 1][5]) == lanes[k - 1][0]
            assert ctx.get(dut.error.valid) == 0
            await ctx.tick()
            ctx.set(dut.rx[0].valid[k], 0)
            ctx.set(dut.dispatch[0].valid, 0)
        k = CFG.superlanes - 1
        assert ctx.get(dut.wr.e[k][5]) == lanes[k][0]

    _run(dut, tb)
    assert seen == {k: lanes[k] for k in range(CFG.superlanes)}


@pytest.mark.parametrize("case", ["nothing arrives", "nobody takes it", "other count"])
def test_a_link_mismatch_is_the_link_error(case):
    dut = C2cSlice(CFG, "w")

    async def tb(ctx):
        if case != "nobody takes it":
            ctx.set(dut.dispatch[0].valid, 1)
            ctx.set(dut.dispatch[0].word.as_value(), encode(make("recv", 2, (0, E), 2)))
        if case != "nothing arrives":
            ctx.set(dut.rx[1].valid[0], 1)
            ctx.set(dut.rx[1].count[0], 0)  # one vector
        assert ctx.get(dut.error.valid) == 1
        assert ctx.get(dut.error.code) == ErrorCode.LINK
        assert ctx.get(dut.error.superlane) == 0

    _run(dut, tb)


def test_the_link_model_delivers_after_its_latency():
    dut = LinkModel(CFG)

    async def tb(ctx):
        ctx.set(dut.tx.valid[1], 1)
        ctx.set(dut.tx.data[1][1], 0xA5A5)
        for c in range(CFG.c2c_latency + 1):
            got = ctx.get(dut.rx.valid[1])
            assert got == (c == CFG.c2c_latency), c
            if got:
                assert ctx.get(dut.rx.data[1][1]) == 0xA5A5
            await ctx.tick()
            ctx.set(dut.tx.valid[1], 0)

    _run(dut, tb)
