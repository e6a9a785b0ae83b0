"""Decode steps of the shipped model on the RTL of ``small`` (Verilator), in lockstep
with the golden model (:mod:`lpu.tools.rtl_decode`):

* two steps (the prompt's first token, then the second; the weights and the KV cache
  of the first stay in the RTL's SRAM): every event of every cycle compared, the
  tokens and the logits read back through the host bus identical, bit for bit, to the
  golden backend's;
* a byte of the RTL's SRAM flipped before the second step (a soft error in a word the
  step reads): the decode stops with a report naming the first cycle, slice, stream
  and lane where the golden model itself shows the difference (the golden model run
  on both SRAM contents and compared per cycle), and the step is saved as a case
  (program, SRAM at START, report, replay script).
"""

import numpy as np
import pytest

from lpu.golden.chip import Chip as GoldenChip
from lpu.golden.schedule import timeline
from lpu.isa import Opcode
from lpu.program import Program
from lpu.sim import verilator as vl
from lpu.sim.lockstep import GoldenBackend, compare
from lpu.tools.compiler.decode import load_model
from lpu.tools.rtl_decode import decode

pytestmark = [pytest.mark.chip, pytest.mark.slow]
PROMPT = [82, 79]  # "RO"


@pytest.fixture(scope="module")
def verilator():
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)


def test_two_decode_steps_on_the_rtl_equal_the_golden_chip(verilator):
    golden = decode("builtin", tokens=PROMPT, n=1, config="small", backend="golden")
    rtl = decode("builtin", tokens=PROMPT, n=1, config="small", backend="verilator")
    assert rtl.tokens == golden.tokens and rtl.text == golden.text
    assert rtl.cycles == golden.cycles and len(rtl.cycles) == 2
    for a, b in zip(rtl.logits, golden.logits, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    assert rtl.rtl["steps"] == 2 and rtl.rtl["cycles"] >= sum(golden.cycles)
    # the second step writes a handful of words (the token's copies), not the image
    assert 0 < rtl.rtl["sram_words"] - _first_step_words() < 200


def _first_step_words():
    from lpu.tools.compiler.kernels import write_image
    from lpu.tools.compiler.lower import ChipDecoder

    dec = ChipDecoder(load_model("builtin"), "small")
    cs = dec.compiled(0)
    chip = GoldenChip(dec.chip_cfg)
    copies = cs.token if isinstance(cs.token, list) else [cs.token]
    write_image(chip, cs.image, {t: PROMPT[0] for t in copies})
    return int(chip.mem.any(axis=2).sum())


def test_a_flipped_sram_byte_stops_the_decode_where_it_first_shows(verilator, tmp_path):
    from lpu.tools.rtl_decode import RtlDecoder, StepDivergence

    dec = RtlDecoder(load_model("builtin"), "small", simulator="verilator",
                     failures=tmp_path)
    cfg = dec.chip_cfg
    # the word the second step reads first with a MEM read
    tl = timeline(cfg, dec.compiled(1).program)
    first = min((d for d in tl.dispatches if d.instr.op == Opcode.READ),
                key=lambda d: (d.t, d.queue))
    name, addr, lane = cfg.queues[first.queue].name, first.instr.args["addr"], cfg.vl - 3
    dec.corrupt = {1: (name, addr, lane, 0x10)}
    dec.step(PROMPT[0], 0)
    with pytest.raises(StepDivergence) as info:
        dec.step(PROMPT[1], 1)
    err = info.value
    assert err.step == 1 and err.pos == 1 and err.case is not None
    got = err.divergence
    # where the golden model shows it, from the saved SRAM at START (the golden's)
    case = err.case
    program = Program.load(case / "program.bin")
    with np.load(case / "mem.npz") as z:
        sram = {k: z[k] for k in z.files}
    bad = {k: v.copy() for k, v in sram.items()}
    bad[name][addr, lane] ^= 0x10
    want = compare(GoldenBackend(cfg).run(program, sram), GoldenBackend(cfg).run(program, bad),
                   cfg, program=program).divergence
    assert want is not None
    assert (got.cycle, got.kind, got.unit_name, got.what, got.superlane, got.lane) == \
        (want.cycle, want.kind, want.unit_name, want.what, want.superlane, want.lane)
    assert got.lane == lane and got.cycle > first.t
    assert f"cycle {got.cycle}" in str(err) and (case / "replay.sh").is_file()
    assert (case / "report.txt").read_text().strip() == got.text().strip()
