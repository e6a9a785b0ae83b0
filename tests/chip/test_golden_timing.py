"""The timing contract (docs/timing.md) on the golden model: stream movement, the
superlane stagger, NOP, Repeat and Sync/Notify."""

import numpy as np
import pytest
from _harness import TINY, E, W

from lpu.golden.chip import Chip
from lpu.isa import encode, make
from lpu.program import ProgramBuilder

pytestmark = [pytest.mark.chip]


@pytest.mark.parametrize("direction", [E, W])
def test_value_moves_one_position_per_cycle(direction):
    cfg = TINY
    chip = Chip(cfg)
    b = ProgramBuilder(cfg)
    vec = np.arange(1, cfg.vl + 1, dtype=np.uint8)
    chip.write_mem("mem_w0", 0, vec[None, :])
    t_read = 2
    b.at("mem_w0", t_read, "read", 0, (3, direction))
    chip.load(b.program())
    p = cfg.position("mem_w0").index
    t_write = t_read + 1  # functional delay of read is 1
    seen = {}
    for _ in range(t_read + len(cfg.positions) + 4):  # past the end of the program
        chip.step(trace=False)
        t = chip.cycle - 1
        for q in range(len(cfg.positions)):
            v = chip.peek(direction, 3, q)
            if v is not None:
                assert np.array_equal(v, vec)
                seen.setdefault(q, []).append(t)
    # the register at q holds the value exactly in cycle t_write + |q - p|, downstream only
    want = {}
    for q in range(len(cfg.positions)):
        if (direction == E and q >= p) or (direction == W and q <= p):
            want[q] = [t_write + abs(q - p)]
    assert seen == want


@pytest.mark.parametrize("direction", [E, W])
def test_reader_sees_value_only_at_its_arrival_cycle(direction):
    cfg = TINY
    src = "mem_w1" if direction == E else "mem_e1"
    dst = "mem_e1" if direction == E else "mem_w1"
    dist = abs(cfg.position(dst).index - cfg.position(src).index)
    vec = np.arange(cfg.vl, dtype=np.uint8) + 40
    for offset, ok in [(-1, False), (0, True), (1, False)]:
        chip = Chip(cfg)
        chip.write_mem(src, 0, vec[None, :])
        b = ProgramBuilder(cfg)
        b.at(src, 0, "read", 0, (1, direction))
        b.at(dst, 1 + dist + offset, "write", 5, (1, direction))
        chip.load(b.program(), check_first=False)
        if ok:
            chip.run()
            assert np.array_equal(chip.read_mem(dst, 5)[0], vec)
        else:
            with pytest.raises(Exception, match="holds nothing"):
                chip.run()


def test_superlane_stagger():
    cfg = TINY.replace(superlanes=4, name="tiny4")
    chip = Chip(cfg)
    vec = np.arange(cfg.vl, dtype=np.uint8)
    chip.write_mem("mem_w0", 3, vec[None, :])
    b = ProgramBuilder(cfg)
    b.at("mem_w0", 5, "read", 3, (2, E))
    b.at("mem_e0", 8, "write", 9, (2, E))  # two positions east: read at 6 + 2
    chip.load(b.program())
    res = chip.run(trace=True)
    sr = [e for e in res.events if e.kind == "sr"]
    sram = [e for e in res.events if e.kind == "sram"]
    L = cfg.lanes
    assert [(e.cycle, e.superlane) for e in sr] == [(6 + k, k) for k in range(4)]
    assert [(e.cycle, e.superlane) for e in sram] == [(9 + k, k) for k in range(4)]
    for e in sr + sram:
        assert e.data == vec[e.superlane * L:(e.superlane + 1) * L].tobytes()
    # the program ends when the last superlane has written
    assert res.cycles == 9 + 3 + 1


def _dispatches(cfg, queues):
    from lpu.program import Program
    chip = Chip(cfg)
    chip.load(Program.from_instrs(cfg, queues), check_first=False)
    res = chip.run(trace=True)
    return [(e.cycle, e.unit, e.data) for e in res.events if e.kind == "dispatch"], res


def test_nop_and_repeat_timing():
    cfg = TINY
    q = cfg.queue("mem_w0").index
    evs, res = _dispatches(cfg, {"mem_w0": [
        make("nop", 4), make("read", 10, (0, E)), make("repeat", 3, 2, 5), make("read", 0, (1, E)),
        make("nop", 1), make("read", 1, (1, E)), make("repeat", 2, 1)]})
    want = [(4, 10), (6, 15), (8, 20), (10, 25), (11, None), (13, 1), (14, 2), (15, 3)]
    got = [(c, u, d) for c, u, d in evs]
    assert [c for c, _, _ in got] == [c for c, _ in want]
    assert all(u == q for _, u, _ in got)
    for (c, _, data), (_, addr) in zip(got, want, strict=True):
        if addr is not None:
            assert data == encode(make("read", addr, (0 if c < 11 else 1, E))).to_bytes(4, "little")
    assert res.dispatched["mem_w0"] == 8


def test_sync_notify():
    cfg = TINY
    evs, _ = _dispatches(cfg, {
        "mem_w0": [make("sync"), make("read", 0, (0, E))],
        "mem_e0": [make("sync"), make("read", 0, (0, W))],
        "vxm0": [make("nop", 6), make("notify"), make("nop", 3), make("notify")],
        "mem_w1": [make("nop", 8), make("sync"), make("read", 1, (2, E))],
    })
    cycles = {cfg.queues[u].name: c for c, u, _ in evs}
    # notify at 6 releases the two parked queues at 7; mem_w1 parks at 8 and is
    # released by the second notify, at 10 (6 + 1 + 3)
    assert cycles == {"mem_w0": 7, "mem_e0": 7, "mem_w1": 11}
