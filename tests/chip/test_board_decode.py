"""Decoding through the board's UART bridge (issue #10 part 4, :mod:`lpu.tools.board_decode`):
the shipped ``fpga-llama`` model on the ``fpga`` preset, every step through the
simulated board (the chip and bridge as Verilog on Verilator, the serial line simulated
bit by bit, driven by :class:`lpu.board.Board`), against the golden backend:

* two steps (the weights written over the line in the first, then the token, the
  program's differences and START; the logits read back) give the golden backend's
  tokens and logits, bit for bit, and each run ends in the golden model's cycle;
* consecutive positions' programs differ in a few words, and only those cross the line;
* a board whose SRAM differs from the golden model's (the golden copy changed behind
  the decoder's back) stops the decode with :class:`BoardMismatch` naming the step;
* (golden only) the claim the first step's writes rest on: every word a step program
  reads before writing it is in the step's image, so a board whose SRAM holds
  leftovers decodes as one that starts at zero.
"""

import numpy as np
import pytest

from lpu.board import RunReport
from lpu.golden.chip import Chip
from lpu.golden.model.tokenizer import encode_bytes
from lpu.sim import verilator as vl
from lpu.tools.board_decode import BoardDecoder, BoardMismatch, covered_words, decode
from lpu.tools.compiler.decode import decode as golden_decode
from lpu.tools.compiler.decode import load_model
from lpu.tools.compiler.lower import ChipDecoder

pytestmark = [pytest.mark.chip, pytest.mark.slow]
MODEL = "fpga-llama"  # the shipped model that fits the fpga preset


@pytest.fixture(scope="module")
def verilator():
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)


def test_decode_through_the_simulated_board_gives_the_golden_tokens(verilator):
    prompt = encode_bytes("RO")
    want = golden_decode(MODEL, tokens=prompt, n=1, config="fpga", backend="golden")
    got = decode(MODEL, tokens=prompt, n=1, config="fpga")
    assert got.tokens == want.tokens and got.text == want.text
    assert got.cycles == want.cycles
    for a, b in zip(got.logits, want.logits, strict=True):
        assert a.view(np.uint32).tolist() == b.view(np.uint32).tolist()
    st = got.rtl
    assert st["steps"] == 2 and st["cycles"] == sum(want.cycles)
    first = st["first_step"]
    # position 1 (in the first vector group of 4, as position 0) differs from position
    # 0 in a few instruction words: the line carries those, not the program
    assert first["imem_words"] > 1000
    assert st["imem_words"] - first["imem_words"] < 20
    assert st["bytes_sent"] - first["bytes_sent"] < first["bytes_sent"] / 5


class _GoldenBoard:
    """A stand-in for :class:`lpu.board.Board` whose chip is a second golden model with
    its own SRAM (no line): what :class:`BoardDecoder` checks, without the simulator."""

    def __init__(self, cfg):
        self.chip, self.imem = Chip(cfg), {}
        self.bytes_sent = self.bytes_received = self.exchanges = 0
        self.t = type("T", (), {"name": "golden stand-in"})()

    def run(self, program, words, read_back, *, timeout):
        for (sl, ad), w in words.items():
            self.chip.write_mem(sl, ad, np.frombuffer(w, np.uint8)[None])
        self.chip.load(program)
        res = self.chip.run()
        back = {k: bytes(self.chip.read_mem(*k)[0]) for k in read_back}
        return RunReport(res.end_cycle, 2, None, None, back, 0.0, 0, 0)

    def close(self):
        pass


def test_a_board_that_differs_from_the_golden_model_stops_the_decode():
    m = load_model(MODEL)
    dec = BoardDecoder(m, "fpga", 8)
    dec._board = board = _GoldenBoard(dec.chip_cfg)
    assert dec.step(82, 0).cycles > 0  # the stand-in agrees while its SRAM is the same
    # the board's copy of the weights changes (soft errors the board does not report):
    # the next step's logits differ
    image = covered_words(dec.chip_cfg, dec.compiled(0).image, {})
    board.chip.mem[image] ^= 0x01
    with pytest.raises(BoardMismatch) as info:
        for pos, tok in enumerate(encode_bytes("OMEO"), start=1):
            dec.step(tok, pos)
    err = info.value
    assert err.step == 1 and err.pos == 1
    assert f"decode step {err.step} (position {err.pos}) on the golden stand-in" in str(err)
    assert "golden model's" in str(err)


def test_step_programs_read_only_their_image_or_earlier_writes():
    m = load_model(MODEL)
    clean, dirty = ChipDecoder(m, "fpga", 8), ChipDecoder(m, "fpga", 8)
    dirty._chip.mem[...] = np.random.default_rng(3).integers(0, 256, dirty._chip.mem.shape)
    for pos, tok in enumerate(encode_bytes("ROMEO")):  # positions 0-4: two vector groups
        a, b = clean.step(tok, pos), dirty.step(tok, pos)
        assert a.logits.view(np.uint32).tolist() == b.logits.view(np.uint32).tolist()
