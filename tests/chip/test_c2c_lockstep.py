"""C2C (ISA 1.3) on the RTL: the two-chip system top (two chips joined by link models of
the configured latency) on Amaranth's simulator, in lockstep with the golden system.

* the two-chip example (examples/c2c: send, receive and compute on both chips), random
  SRAM; the lockstep sees what crosses the link: against a golden system whose chip 0
  holds other data, chip 1 diverges at its recv's stream write;
* the directed C2C program (lpu.sim.programs.c2c) on a ring of two: both cables both ways,
  every count up to the link width, repeated sends and recvs;
* the SXM's directed program on a chip with links (each SXM in an edge slice beside its
  C2C slice);
* unchecked, a vector nobody receives is the receiving chip's sticky LINK error.

Each system build takes about 20 s on Amaranth's simulator; there are three. The C2C
slice on its own (timing, LINK errors) and the link model: tests/slice/test_hdl_c2c.py.
"""

from pathlib import Path

import numpy as np
import pytest

from lpu import system
from lpu.asm import assemble_file
from lpu.sim.programs.c2c import c2c_directed
from lpu.sim.programs.directed import opcodes_of
from lpu.sim.system_lockstep import AmaranthSystemBackend, GoldenSystemBackend, system_lockstep

pytestmark = [pytest.mark.chip, pytest.mark.slow]
EX = Path(__file__).resolve().parents[2] / "examples" / "c2c"
PAIR = system.load(EX / "system.yaml")
CFG = PAIR.chip
RING = system.system(CFG, 2, "ring")


def _sram(seed):
    rng = np.random.default_rng(seed)
    return {q.name: rng.integers(0, 256, (CFG.mem_words, CFG.vl), dtype=np.uint8)
            for q in CFG.queues if q.kind == "mem"}


class _Recorded:
    """A device that replays a recorded run."""

    name = "amaranth"

    def __init__(self, rows, end_cycles):
        self.rows, self.end_cycles = rows, end_cycles

    def run(self, programs, mem_inits):
        return [iter(r) for r in self.rows]


@pytest.fixture(scope="module")
def example_run():
    progs = [assemble_file(EX / f"chip{i}.s", CFG) for i in range(2)]
    inits = [_sram(1), _sram(2)]
    dev = AmaranthSystemBackend(PAIR)
    rows = [list(it) for it in dev.run(progs, inits)]
    return progs, inits, dev, rows


def test_the_two_chip_example_runs_in_lockstep(example_run):
    progs, inits, dev, rows = example_run
    res = system_lockstep(PAIR, progs, inits, _Recorded(rows, dev.end_cycles))
    assert res.ok, res.text()
    assert dev.errors == [None, None] and all(s & 2 for s in dev.status)  # DONE, no error
    golden = GoldenSystemBackend(PAIR)
    golden.run(progs, inits)
    assert dev.end_cycles == golden.end_cycles
    # the result crossed the link twice: (a + b) * c on both chips, from numpy
    a, b = (inits[0][m][0:4] for m in ("mem_w0", "mem_e0"))
    c = inits[1]["mem_e0"][0:4]

    def i32(planes):
        return planes.astype(np.uint32).T @ (1 << np.arange(0, 32, 8, dtype=np.uint32))
    want = (i32(a).astype(np.int64) + i32(b).astype(np.int64)) * i32(c).astype(np.int64)
    s = golden.system
    for chip, (mem, addr) in enumerate((("mem_e1", 8), ("mem_w0", 8))):
        got = s.chips[chip].read_tensor(mem, addr, 1, np.int32)[0]
        assert np.array_equal(got, want.astype(np.uint32).astype(np.int32))


def test_the_lockstep_sees_what_crosses_the_link(example_run):
    progs, inits, dev, rows = example_run
    other = [_sram(1), inits[1]]
    other[0]["mem_w0"] = other[0]["mem_w0"].copy()
    other[0]["mem_w0"][0] ^= 1  # a's low byte plane, lane by lane
    res = system_lockstep(PAIR, progs, inits, _Recorded(rows, dev.end_cycles),
                          reference=_Reference(other))
    assert not res.chips[0].ok and not res.chips[1].ok
    d = res.chips[1].divergence
    assert (d.kind, d.unit_name, d.cycle, d.reason) == ("sr", "sxm_w", 11, "value")
    assert d.queue == "c2c_w" and d.instr == "recv 0, e0, 4"


class _Reference(GoldenSystemBackend):
    """The golden system on other SRAM contents."""

    def __init__(self, inits):
        super().__init__(PAIR)
        self.inits = inits

    def run(self, programs, mem_inits):
        return super().run(programs, self.inits)


def test_the_directed_c2c_program_runs_in_lockstep_on_a_ring_of_two():
    ds = c2c_directed(RING)
    assert set().union(*(opcodes_of(d.program) for d in ds)) >= {"send", "recv", "repeat"}
    dev = AmaranthSystemBackend(RING)
    res = system_lockstep(RING, [d.program for d in ds], [d.mem_init for d in ds], dev)
    assert res.ok, res.text()
    assert dev.errors == [None, None]


def test_the_sxm_beside_the_c2c_slice_runs_its_directed_program():
    """On a chip with links each SXM sits in an edge slice with its C2C slice (one
    position, merged stream writes): the SXM's directed program (both SXMs, every op)
    runs in lockstep there as on a chip without links."""
    from lpu.sim.lockstep import AmaranthBackend, lockstep
    from lpu.sim.programs.directed import directed_programs

    d = next(p for p in directed_programs(CFG) if p.name == "sxm")
    be = AmaranthBackend(CFG)
    res = lockstep(CFG, d.program, d.mem_init, be)
    assert res.ok, res.text()
    assert be.error is None


def test_a_vector_nobody_receives_is_the_sticky_link_error_of_the_receiving_chip():
    """Unchecked, the example without chip 1's recv: the vectors chip 0 sends arrive at
    chip 1's link 0 in cycle 10 and nothing takes them; chip 1's host reads the LINK
    error there (position sxm_w, unit 1: queue c2c_w), as the golden system raises it
    (at the send) and the link checker refuses the program."""
    from lpu.asm import assemble
    from lpu.golden.system import LinkError, check_system
    from lpu.hostmap import ErrorCode

    texts = [(EX / f"chip{i}.s").read_text() for i in range(2)]
    texts[1] = texts[1].replace("    recv 0, e0, 4", "    nop 1")
    progs = [assemble(t, CFG, f"chip{i}.s") for i, t in enumerate(texts)]
    with pytest.raises(LinkError):
        check_system(PAIR, progs)
    dev = AmaranthSystemBackend(PAIR)
    dev.run(progs, [_sram(1), _sram(2)])
    err = dev.errors[1]
    assert err is not None and err["code"] == ErrorCode.LINK.value
    assert (err["cycle"], err["position"], err["unit"], err["superlane"]) == \
        (10, CFG.position("sxm_w").index, 1, 0)
    assert err["queue"] == CFG.queue("c2c_w").index
