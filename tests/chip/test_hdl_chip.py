"""lpu.hdl.chip.Chip on Amaranth's simulator, driven only through its host bus.

One simulated chip (``tiny``, with its trace port) runs every scenario in turn, since
building the simulator is the slow part:

* the register block: ID, config hash, status, SRAM words through the word buffer;
* every example program (examples/*.s, with random data as in test_examples.py) and a
  program exercising repeat and sync/notify across queues: data and program loaded
  through the bus, started, run to DONE, results read back through the bus and compared
  with the golden model's final SRAM; the trace port's events compared with the golden
  trace, cycle by cycle, all kinds;
* an illegal program (a read of an empty stream): the sticky error registers name the
  cycle, code, position, superlane, unit and queue of the golden model's error.

"""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpu import config
from lpu.asm import assemble, assemble_file
from lpu.golden.chip import Chip as GoldenChip
from lpu.golden.chip import ChipError
from lpu.hdl.chip import Chip, build_top, port_description
from lpu.hdl.host import Host, RegisterMap
from lpu.hdl.interface import ErrorCode
from lpu.isa import drain_cycles
from lpu.sim.hostbus import SimBus
from lpu.sim.trace import TraceReader

pytestmark = pytest.mark.chip

TINY = config.load("tiny")
EX = Path(__file__).resolve().parents[2] / "examples"
VL = TINY.vl

ICU_MIX = """
.queue mem_w0
    sync
    read 0, e0, 1          ; cycle 4 (after the notify at 3), copies at 6, 8, 10
    repeat 3, 2, 1
.queue vxm1
    nop 3
    notify
.queue mem_e1
    sync
    nop 4
    write 40, e0, 1        ; cycle 8, copies at 10, 12, 14
    repeat 3, 2, 1
"""


def _inputs():
    rng = np.random.default_rng(99)
    i32 = lambda: rng.integers(-(1 << 31), 1 << 31, size=(1, VL)).astype(np.int32)  # noqa: E731
    f32 = lambda: rng.standard_normal((1, VL)).astype(np.float32)  # noqa: E731
    return {
        "vector_add.s": {("mem_w0", 0): i32(), ("mem_e0", 0): i32()},
        "fp32_multiply_add.s": {("mem_w0", 0): f32(), ("mem_e0", 0): f32(),
                                ("mem_w0", 4): f32()},
        "matrix_vector.s": {("mem_w1", 20): rng.integers(-128, 128, (VL, VL)).astype(np.int8),
                            ("mem_w0", 0): rng.integers(-128, 128, (1, VL)).astype(np.int8)},
        "lane_sum.s": {("mem_w0", 0): rng.integers(-(1 << 20), 1 << 20, (1, VL)).astype(
            np.int32), ("mem_w1", 0): rng.integers(-(1 << 20), 1 << 20, (1, VL)).astype(
            np.int32)},
        "icu_mix": {("mem_w0", 0): rng.integers(-128, 128, (4, VL)).astype(np.int8)},
    }


def _golden(program, inputs):
    chip = GoldenChip(TINY)
    for (name, addr), arr in inputs.items():
        chip.write_tensor(name, addr, arr)
    chip.load(program)
    res = chip.run(trace=True)
    return chip, res


def _scenarios(dut):
    """name -> (program, inputs as {(slice, addr): uint8 [n, VL]}, golden chip, result)."""
    out = {}
    for name, inputs in _inputs().items():
        prog = (assemble(ICU_MIX, TINY, "icu_mix") if name == "icu_mix"
                else assemble_file(EX / name, TINY))
        gchip, res = _golden(prog, inputs)
        words = {}
        for (sl, addr), arr in inputs.items():
            g = GoldenChip(TINY)
            n = g.write_tensor(sl, addr, arr)
            for i in range(n):
                words[(sl, addr + i)] = bytes(g.read_mem(sl, addr + i)[0])
        out[name] = (prog, words, gchip, res)
    return out


ILLEGAL = ".queue vxm1\n    nop 2\n    mov e0, e1\n"


@pytest.fixture(scope="module")
def chip_runs():
    dut = Chip(TINY, trace=True)
    regs = RegisterMap(TINY)
    bus = SimBus(dut.bus, regs)
    reader = TraceReader(dut)
    scenarios = _scenarios(dut)
    results = {}

    async def run_program(ctx, prog, max_cycles=2000):
        await bus.load_program(ctx, prog)
        await bus.start(ctx)
        events, c = [], 0
        while ctx.get(dut.trace.running):
            events += reader.read(ctx, c)
            await ctx.tick()
            c += 1
            assert c < max_cycles
        status = await bus.status(ctx)
        cycle = await bus.read(ctx, regs.CYCLE)
        return events, status, cycle, c

    async def tb(ctx):
        results["id"] = [await bus.read(ctx, a) for a in (regs.ID, regs.HASH_LO, regs.HASH_HI)]
        results["status0"] = await bus.status(ctx)
        dirty = set()
        for name, (prog, words, gchip, _) in scenarios.items():
            zero = bytes(VL)
            for sl, addr in sorted(dirty - set(words)):
                await bus.write_word(ctx, sl, addr, zero)
            for (sl, addr), word in words.items():
                await bus.write_word(ctx, sl, addr, word)
            events, status, cycle, ran = await run_program(ctx, prog)
            written = {(gchip.mem_names[e.unit], e.index)
                       for e in scenarios[name][3].events if e.kind == "sram"}
            touched = set(words) | written
            readback = {key: await bus.read_word(ctx, *key) for key in sorted(touched)}
            err = await bus.error(ctx)
            dirty |= touched
            results[name] = dict(events=events, status=status, cycle=cycle, ran=ran,
                                 readback=readback, error=err)
        # an illegal program: the error registers
        prog = assemble(ILLEGAL, TINY, "illegal")
        events, status, cycle, ran = await run_program(ctx, prog)
        results["illegal"] = dict(status=status, error=await bus.error(ctx))
        # CLEAR clears the error registers
        await bus.write(ctx, regs.CTRL, regs.CTRL_CLEAR)
        results["cleared"] = await bus.status(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return dut, scenarios, results


def test_registers(chip_runs):
    dut, _, results = chip_runs
    rm = dut.regs
    assert results["id"] == [rm.id_value, rm.hash_value & 0xFFFFFFFF, rm.hash_value >> 32]
    assert results["status0"] == 0  # neither running nor done before the first start


@pytest.mark.parametrize("name", ["vector_add.s", "fp32_multiply_add.s", "matrix_vector.s",
                                  "lane_sum.s", "icu_mix"])
def test_program_through_the_bus(chip_runs, name):
    dut, scenarios, results = chip_runs
    prog, words, gchip, res = scenarios[name]
    got = results[name]
    assert got["status"] & RegisterMap.STATUS_DONE
    assert not got["status"] & RegisterMap.STATUS_ERROR, got["error"]
    assert got["error"] is None
    # the run lasted at least until the golden model's last event
    assert got["ran"] >= res.cycles and got["cycle"] + 1 == got["ran"]
    # final SRAM: every word the program wrote, and its inputs
    for (sl, addr), word in got["readback"].items():
        assert word == bytes(gchip.read_mem(sl, addr)[0]), (sl, addr)
    # trace: every event of every cycle
    want, have = defaultdict(list), defaultdict(list)
    for e in res.events:
        want[e.cycle].append(e)
    for e in got["events"]:
        have[e.cycle].append(e)
    for c in sorted(set(want) | set(have)):
        assert sorted(have[c], key=lambda e: e.sort_key()) == \
            sorted(want[c], key=lambda e: e.sort_key()), f"cycle {c}"
    assert {e.kind for e in res.events} <= {e.kind for e in got["events"]}


def test_sticky_error(chip_runs):
    dut, _, results = chip_runs
    prog = assemble(ILLEGAL, TINY, "illegal")
    g = GoldenChip(TINY)
    g.load(prog, check_first=False)
    with pytest.raises(ChipError) as info:
        g.run()
    got = results["illegal"]
    assert got["status"] & RegisterMap.STATUS_DONE
    assert got["status"] & RegisterMap.STATUS_ERROR
    q = TINY.queue(info.value.queue)
    assert got["error"] == {"cycle": info.value.cycle, "code": ErrorCode.EMPTY_READ.value,
                            "position": q.position, "superlane": 0, "unit": 1,
                            "queue": q.index}
    assert not results["cleared"] & RegisterMap.STATUS_ERROR


def _never_elaborated(top):
    """Silence UnusedElaboratable for a top built only to describe its ports."""
    for obj in (top, top.icu, top.fabric, top.host, *top.slices):
        obj._MustUse__silence = True


def test_build_top_and_ports():
    top = Chip(TINY, trace=False)
    _never_elaborated(top)
    desc = port_description(top)
    names = {p["name"]: p for p in desc["ports"]}
    assert names["bus__addr"] == {"name": "bus__addr", "dir": "input", "width": 32,
                                  "path": ["bus", "addr"]}
    assert names["bus__r_data"]["dir"] == "output"
    assert not any(n.startswith("trace") for n in names)
    assert desc["registers"]["IMEM"] == RegisterMap.IMEM
    _never_elaborated(build_top(TINY))


def test_host_block_alone():
    """The register block with a model of the MEM host ports, on a config whose lanes
    are not a multiple of four (a partial chunk) and with three superlanes: word
    buffer, SRAM commit and load, instruction and length writes, start, DONE after the
    drain, CYCLE, and the first error's registers (lowest position wins)."""
    cfg = TINY.replace(superlanes=3, lanes=6, name="host3")
    rm = RegisterMap(cfg)
    assert rm.chunks == 2
    dut = Host(cfg)
    rng = np.random.default_rng(5)
    sram = [dict() for _ in rm.mem_slices]
    imem_writes, len_writes = [], []
    got = {}

    async def mem_model(ctx):
        ports = [x for p in dut.mem for x in (p.w_en, p.r_en, p.addr, p.w_data)]
        async for _, _, *v in ctx.tick().sample(*ports, dut.imem.en, dut.imem.len_en,
                                                dut.imem.queue, dut.imem.addr,
                                                dut.imem.data):
            for i, port in enumerate(dut.mem):
                w_en, r_en, addr, w_data = v[4 * i:4 * i + 4]
                if w_en:
                    sram[i][addr] = w_data
                ctx.set(port.r_data, sram[i].get(addr, 0) if r_en else 0)
            en, len_en, queue, addr, value = v[-5:]
            if en:
                imem_writes.append((queue, addr, value))
            if len_en:
                len_writes.append((queue, value))

    async def tb(ctx):
        bus = SimBus(dut.bus, rm)
        words = {(m, a): bytes(rng.integers(0, 256, cfg.vl, dtype=np.uint8))
                 for m in range(len(rm.mem_slices)) for a in (0, 7, cfg.mem_words - 1)}
        for (m, a), w in words.items():
            await bus.write_word(ctx, m, a, w)
        got["sram"] = {key: int.from_bytes(w, "little") for key, w in words.items()}
        got["readback"] = {key: await bus.read_word(ctx, *key) for key in words}
        got["words"] = words
        await bus.write(ctx, rm.imem(3, 5), 0x12345678)
        await bus.write(ctx, rm.qlen(3), 6)
        # a run: the ICU reports done in cycle 4, DONE after the drain
        await bus.start(ctx)  # cycle 0
        assert ctx.get(dut.running) and ctx.get(dut.cycle) == 0
        for _ in range(2):
            await ctx.tick()
        vxm = cfg.position("vxm").index
        ctx.set(dut.errors[vxm].valid, 1)  # cycle 2: two slices at once
        ctx.set(dut.errors[vxm].code, ErrorCode.TWO_WRITERS)
        ctx.set(dut.errors[vxm].superlane, 2)
        ctx.set(dut.errors[vxm].unit, 1)
        ctx.set(dut.errors[vxm + 1].valid, 1)
        ctx.set(dut.errors[vxm + 1].code, ErrorCode.BANK)
        await ctx.tick()
        ctx.set(dut.errors[vxm].code, ErrorCode.EMPTY_READ)  # later errors are ignored
        ctx.set(dut.errors[vxm + 1].valid, 0)
        await ctx.tick()
        ctx.set(dut.errors[vxm].valid, 0)
        ctx.set(dut.icu_done, 1)  # cycle 4
        status = []
        for _ in range(drain_cycles(cfg.superlanes) + 3):
            status.append(await bus.status(ctx))
        got["status"] = status
        got["cycle"] = await bus.read(ctx, rm.CYCLE)
        got["error"] = await bus.error(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(mem_model, background=True)
    sim.add_testbench(tb)
    sim.run()
    for key, w in got["words"].items():
        assert sram[key[0]][key[1]] == got["sram"][key]
        assert got["readback"][key] == w
    assert imem_writes == [(3, 5, 0x12345678)] and len_writes == [(3, 6)]
    # the ICU is done from cycle 4 (the first status read): running in cycles
    # 4 .. 4 + drain, the run's last cycle
    running = [s & rm.STATUS_RUNNING for s in got["status"]]
    assert running == [1] * (drain_cycles(cfg.superlanes) + 1) + [0, 0]
    assert got["status"][-1] == rm.STATUS_DONE | rm.STATUS_ERROR
    assert got["cycle"] == 4 + drain_cycles(cfg.superlanes)
    q = next(q for q in cfg.queues if q.name == "vxm1")
    assert got["error"] == {"cycle": 2, "code": ErrorCode.TWO_WRITERS.value,
                            "position": cfg.position("vxm").index, "superlane": 2, "unit": 1,
                            "queue": q.index}
