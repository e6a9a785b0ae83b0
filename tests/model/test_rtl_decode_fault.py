"""A decode step on an RTL broken on purpose (issue #13: "a test breaks the RTL on
purpose during a decode step and the report names the right first cycle, slice and
lane"). A small random checkpoint (head_dim 8 = the vector length of ``tiny``) decodes
on ``tiny`` on Amaranth's simulator with a :class:`lpu.hdl.vxm.VxmFault` built in: in
one lane of one superlane of VXM ALU 0, operand ``b`` of every integer ``sub`` is XORed
with 1, so that lane's result is off by one the first time the step program runs a
``sub`` on that ALU. The decode stops at that step with a :class:`StepDivergence`
whose report is where the timing contract puts that result: the first ``sub``
dispatched on ``vxm0`` (from the golden model's own expansion of the step program,
:func:`lpu.golden.schedule.timeline`), plus the superlane's stagger and the ALU's
delay (docs/timing.md), in the faulted lane, on a stream the instruction writes; the
step is saved as a case. (Every cycle before that one agreed with the golden model:
the report is the first divergence. Decoding without a fault on every backend:
tests/chip/test_rtl_session.py, tests/chip/test_rtl_decode.py.)
"""

import pytest

from lpu.errors import LpuError
from lpu.golden.schedule import timeline
from lpu.hdl.vxm import VxmFault
from lpu.isa import OPS, E, Opcode
from lpu.tools.compiler.decode import load_model
from lpu.tools.rtl_decode import RtlDecoder, StepDivergence

pytestmark = [pytest.mark.chip, pytest.mark.slow]
SHAPE = dict(vocab=16, hidden=16, inter=16, layers=1, heads=2, kv_heads=1, head_dim=8,
             context=16, tied=True, seed=5)


@pytest.fixture
def checkpoint(tmp_path, write_checkpoint):
    write_checkpoint(tmp_path / "micro", **SHAPE)
    return str(tmp_path / "micro")


def test_a_logic_fault_stops_the_decode_at_its_first_cycle_slice_and_lane(checkpoint,
                                                                          tmp_path):
    sl, lane = 1, 2
    fault = VxmFault(alu=0, superlane=sl, lane=lane, opcode=Opcode.SUB, xor=1)
    dec = RtlDecoder(load_model(checkpoint), "tiny", simulator="amaranth",
                     failures=tmp_path, fault=fault)
    cfg = dec.chip_cfg
    tl = timeline(cfg, dec.compiled(0).program)
    subs = [d for d in tl.dispatches if d.instr.op == Opcode.SUB and
            cfg.queues[d.queue].name == "vxm0"]
    assert subs, "the step program has no sub on vxm0: pick another opcode"
    first = min(subs, key=lambda d: d.t)
    with pytest.raises(StepDivergence) as info:
        dec.step(3, 0)
    err = info.value
    d = err.divergence
    assert err.step == 0 and err.pos == 0 and d is not None
    assert d.cycle == first.t + sl + OPS[Opcode.SUB].d(cfg.superlanes)
    assert (d.kind, d.superlane, d.lane) == ("sr", sl, sl * cfg.lanes + lane)
    assert d.queue == "vxm0" and d.dispatch_cycle == first.t
    stream, dirn = first.instr.args["dst"]  # a 32-bit result: four streams from it
    assert d.what in [f"stream {'e' if dirn == E else 'w'}{s}" for s in range(stream, stream + 4)]
    assert f"cycle {d.cycle}" in str(err)
    assert (err.case / "report.txt").read_text().strip() == d.text().strip()


def test_a_fault_needs_the_amaranth_backend(checkpoint):
    fault = VxmFault(alu=0, superlane=0, lane=0, opcode=Opcode.SUB)
    with pytest.raises(LpuError, match="amaranth"):
        RtlDecoder(load_model(checkpoint), "tiny", simulator="verilator", fault=fault)
