"""lpu.hdl.mem.MemSlice on Amaranth's simulator, cycle by cycle against the golden model
(lpu.sim.slice_harness): read, write and gather, back to back, with repeats stepping the
address, every dynamic error, on tiny and on a taller config; and the host port.

Positions on these configs: mem_w1 = 2, mem_w0 = 3 (the slice under test), vxm = 4,
mem_e0 = 5. A value mem_w1 reads at t arrives at mem_w0 (east) at t + 2; a value mem_e0
reads at t arrives at mem_w0 (west) at t + 3.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu import config
from lpu.hdl.interface import ErrorCode
from lpu.hdl.mem import MemSlice
from lpu.isa import E, W
from lpu.program import ProgramBuilder
from lpu.sim.slice_harness import ExpectedError, SliceMismatch, check_slice, sram_trace_events

pytestmark = pytest.mark.slice

TINY = config.load("tiny")
TALL = TINY.replace(superlanes=3, name="tiny3")
CONFIGS = [pytest.param(TINY, id="tiny"), pytest.param(TALL, id="tiny-s3")]


def mem_unit(cfg, name):
    return [q.name for q in cfg.queues if q.kind == "mem"].index(name)


def run(cfg, b, mem, *, position="mem_w0", expect=None, host_preload=False):
    dut = MemSlice(cfg, position[4])
    preload = preload_host if host_preload else (lambda d, image: d.preload(image))
    return check_slice(cfg, b, position, dut, mem=mem, preload=preload,
                       extra_events=sram_trace_events(cfg, dut.sram, mem_unit(cfg, position)),
                       expect_error=expect)


async def preload_host(ctx, dut, image):
    """Load the SRAM through the host port, one vector a cycle."""
    ctx.set(dut.host.w_en, 1)
    for addr, word in enumerate(image):
        ctx.set(dut.host.addr, addr)
        ctx.set(dut.host.w_data, int.from_bytes(word.tobytes(), "little"))
        await ctx.tick()
    ctx.set(dut.host.w_en, 0)


def images(cfg, seed, *names, high=256):
    rng = np.random.default_rng(seed)
    return {n: rng.integers(0, high, size=(cfg.mem_words, cfg.vl), dtype=np.uint8)
            for n in names}


@pytest.mark.parametrize("cfg", CONFIGS)
def test_read_write_gather_back_to_back(cfg):
    mem = images(cfg, 1, "mem_w0", "mem_w1", "mem_e0")
    rng = np.random.default_rng(2)
    mem["mem_w1"][40] = rng.integers(0, 118, size=cfg.vl)  # gather indices from base 10
    mem["mem_w1"][41] = rng.integers(0, 123, size=cfg.vl)  # from base 133
    mem["mem_w1"][41, :4] = [117, 118, 119, 120]  # hits the words written at 250..253
    b = ProgramBuilder(cfg)
    b.at("mem_w0", 0, "read", 5, (0, E))
    b.at("mem_w0", 1, "read", 130, (2, W), 4)
    b.at("mem_w0", 2, "read", 124, (4, E), 4)  # the last words of bank 0
    b.at("mem_w1", 1, "read", 3, (1, E), 2)
    b.at("mem_w0", 3, "write", 9, (1, E), 2)  # SRAM write at 4, bank 0
    b.at("mem_w0", 4, "read", 200, (5, E), 3)  # bank 1 while bank 0 is written
    b.at("mem_w0", 5, "read", 9, (0, W), 2)  # reads what was written at 4
    b.at("mem_e0", 3, "read", 7, (4, W), 4)
    b.at("mem_w0", 6, "write", 250, (4, W), 4)  # from the west, SRAM write at 7
    b.at("mem_w1", 5, "read", 40, (3, E))
    b.at("mem_w0", 7, "gather", 10, (3, E), (6, E))  # SRAM read at 8, out at 9
    b.at("mem_w0", 8, "read", 250, (1, W), 4)  # bank 1 at 8, out at 9 beside the gather
    b.at("mem_w1", 8, "read", 41, (2, E))
    b.at("mem_w0", 10, "gather", 133, (2, E), (7, W))
    res = run(cfg, b, mem)
    assert res.events > 40


@pytest.mark.parametrize("cfg", CONFIGS)
def test_repeat_steps_addresses(cfg):
    mem = images(cfg, 3, "mem_w0", "mem_w1")
    mem["mem_w1"][60:63] = np.random.default_rng(4).integers(0, 100, size=(3, cfg.vl))
    b = ProgramBuilder(cfg)
    b.at("mem_w0", 0, "read", 20, (0, E), 2)
    b.at("mem_w0", 1, "repeat", 3, 1, 2)  # reads 22, 24, 26 at 1, 2, 3
    b.at("mem_w1", 3, "read", 50, (4, E))
    b.at("mem_w1", 4, "repeat", 8, 1)  # 51..58 arrive at mem_w0 at 6..13
    b.at("mem_w0", 5, "write", 140, (4, E))
    b.at("mem_w0", 6, "repeat", 3, 2, -3)  # writes 137, 134, 131 at 7, 9, 11
    b.at("mem_w1", 13, "read", 60, (3, E))
    b.at("mem_w1", 14, "repeat", 2, 1)
    b.at("mem_w0", 15, "gather", 0, (3, E), (6, W))
    b.at("mem_w0", 16, "repeat", 2, 1, 10)  # bases 10, 20
    b.at("mem_w0", 18, "read", 128, (0, W), 4)
    b.at("mem_w0", 19, "repeat", 2, 3, 4)  # 132, 136 at 21, 24
    run(cfg, b, mem)


def test_small_banks_and_east_hemisphere():
    """Two words per bank (two sub-banks of one row): every address and both banks."""
    cfg = TINY.replace(mem_words=4, name="tiny-m4")
    mem = images(cfg, 5, "mem_e0", "mem_e1")
    mem["mem_e0"][1] = np.random.default_rng(6).integers(0, 2, size=cfg.vl)
    b = ProgramBuilder(cfg)
    b.at("mem_e1", 0, "read", 0, (0, W), 2)
    b.at("mem_e1", 1, "read", 3, (2, E))
    b.at("mem_e0", 0, "read", 2, (1, E), 2)  # e1, e2 arrive at mem_e1 at 2
    b.at("mem_e1", 2, "write", 2, (1, E), 2)
    b.at("mem_e1", 3, "read", 1, (3, W))
    b.at("mem_e0", 2, "read", 1, (5, E))  # gather indices 0..1
    b.at("mem_e1", 4, "gather", 2, (5, E), (6, E))  # reads what was written at 3
    b.at("mem_e1", 5, "read", 0, (0, E))
    b.at("mem_e1", 6, "repeat", 3, 1)
    run(cfg, b, mem, position="mem_e1")


def test_host_port_preload():
    cfg = TALL
    mem = images(cfg, 7, "mem_e1")
    b = ProgramBuilder(cfg)
    for i, addr in enumerate((0, 124, 128, 252)):
        b.at("mem_e1", i, "read", addr, (0, W), 4)
    run(cfg, b, mem, position="mem_e1", host_preload=True)


def test_host_port_read_and_write():
    cfg = TINY
    image = images(cfg, 8, "m")["m"]
    dut = MemSlice(cfg, "e", init=image)
    new = np.arange(cfg.vl, dtype=np.uint8) + 100

    async def tb(ctx):
        got = []
        ctx.set(dut.host.r_en, 1)
        for addr in range(cfg.mem_words + 1):
            ctx.set(dut.host.addr, addr % cfg.mem_words)
            await ctx.tick()
            got.append(ctx.get(dut.host.r_data))
        assert got[:-1] == [int.from_bytes(w.tobytes(), "little") for w in image]
        ctx.set(dut.host.r_en, 0)
        ctx.set(dut.host.addr, 129)
        ctx.set(dut.host.w_data, int.from_bytes(new.tobytes(), "little"))
        ctx.set(dut.host.w_en, 1)
        await ctx.tick()
        ctx.set(dut.host.w_en, 0)
        ctx.set(dut.host.r_en, 1)
        await ctx.tick()
        assert ctx.get(dut.host.r_data) == int.from_bytes(new.tobytes(), "little")
        assert not ctx.get(dut.error.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


class MisaddressedTrace(MemSlice):
    """A fault for the harness to find: superlane 1 reports its SRAM writes at address 7."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.sram[1][0].addr.eq(7)
        return m


def test_harness_names_the_first_difference():
    cfg = TINY
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "write", 9, (0, E))  # SRAM write at 3, on superlane 1 at 4
    dut = MisaddressedTrace(cfg, "w")
    with pytest.raises(SliceMismatch) as info:
        check_slice(cfg, b, "mem_w0", dut, mem=images(cfg, 9, "mem_w1"),
                    extra_events=sram_trace_events(cfg, dut.sram, 0))
    e = info.value
    assert (e.cycle, e.kind, e.superlane) == (4, "sram", 1)
    assert "sram mem_w0 address 9 superlane 1: expected" in str(e)
    assert "sram mem_w0 address 7 superlane 1: expected nothing" in str(e)
    assert "mem_w0[1] 'write 9, e0, 1' dispatched at cycle 2" in str(e)


# -- dynamic errors -------------------------------------------------------------------------


def empty_read(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "write", 5, (0, E), 2)  # e1 holds nothing
    return b, {}, ExpectedError(ErrorCode.EMPTY_READ, 2, 0)


def empty_gather_index(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w0", 0, "read", 0, (0, E))
    b.at("mem_w0", 4, "gather", 0, (3, W), (1, E))
    return b, {}, ExpectedError(ErrorCode.EMPTY_READ, 4, 0)


def bank_read_write(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "write", 5, (0, E))  # SRAM write at 3, bank 0
    b.at("mem_w0", 3, "read", 100, (1, E))  # SRAM read at 3, bank 0
    return b, {}, ExpectedError(ErrorCode.BANK, 3, 0)


def bank_read_gather(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "gather", 130, (0, E), (1, E))  # SRAM read at 3, bank 1
    b.at("mem_w0", 3, "read", 200, (2, E))  # SRAM read at 3, bank 1
    return b, {}, ExpectedError(ErrorCode.BANK, 3, 0)


def gather_range(cfg):
    idx = np.zeros(cfg.vl, dtype=np.uint8)
    idx[-1] = 60  # 100 + 60 is in bank 1: the last superlane reports it
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "gather", 100, (0, E), (1, E))
    k = cfg.superlanes - 1
    return b, {"mem_w1": {0: idx}}, ExpectedError(ErrorCode.RANGE, 3 + k, k)


def two_writers(cfg):
    b = ProgramBuilder(cfg)
    b.at("mem_w1", 0, "read", 0, (0, E))
    b.at("mem_w0", 2, "gather", 0, (0, E), (2, W))  # writes w2 at 4
    b.at("mem_w0", 3, "read", 200, (1, W), 2)  # writes w1, w2 at 4
    return b, {}, ExpectedError(ErrorCode.TWO_WRITERS, 4, 0)


@pytest.mark.parametrize("case", [empty_read, empty_gather_index, bank_read_write,
                                  bank_read_gather, two_writers, gather_range])
def test_dynamic_error(case):
    cfg = TALL if case is gather_range else TINY
    b, mem, expect = case(cfg)
    run(cfg, b, mem, expect=expect)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_short_read_beside_gather_above_it(cfg):
    """A one-word read to stream s and a gather to stream s+3 write in the same cycle:
    the read's unused word slots must not spill onto the gather's stream (found by
    random program seed 103)."""
    mem = images(cfg, 7, "mem_w0")
    mem["mem_e0"] = images(cfg, 9, "mem_e0", high=12)["mem_e0"]  # gather indices < 12
    b = ProgramBuilder(cfg)
    b.at("mem_e0", 0, "read", 0, (5, W))  # indices from the east, arrive at 3
    b.at("mem_w0", 3, "gather", 243, (5, W), (5, E))  # SRAM read at 4 (bank 1), out at 5
    b.at("mem_w0", 4, "read", 3, (2, E), 1)  # bank 0, out at 5: its word slots 1..3 unused
    res = run(cfg, b, mem)
    assert res.events == 2 * cfg.superlanes  # the read and the gather, every superlane
