"""The fast encoder agrees with the Amaranth layout (Instruction.const) for every opcode
over random operand values, and decode inverts it."""

import numpy as np
import pytest

from lpu.isa import OPS, decode, decode_via_layout, encode, encode_via_layout, make

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize("info", list(OPS.values()), ids=lambda i: i.mnemonic)
def test_fast_encoder_matches_layout(info):
    rng = np.random.default_rng(info.opcode.value)
    for _ in range(25):
        args = []
        for o in info.operands:
            if o.kind in ("sr", "sw"):
                args.append((int(rng.integers(0, 32)), int(rng.integers(0, 2))))
            elif o.kind == "sw?":
                args.append(None if rng.integers(0, 2) else (int(rng.integers(0, 32)),
                                                             int(rng.integers(0, 2))))
            elif o.kind == "s":
                args.append(int(rng.integers(-(1 << (o.bits - 1)), 1 << (o.bits - 1))))
            else:
                biased = o.name == "count"
                hi = (1 << o.bits) - (0 if biased else 1)
                args.append(int(rng.integers(1 if biased or info.mnemonic == "nop" else 0,
                                             hi + 1)))
        ins = make(info.mnemonic, *args)
        w = encode(ins)
        assert w == encode_via_layout(ins), ins
        assert decode(w) == ins == decode_via_layout(w)


def test_fast_decoder_matches_layout_on_any_word():
    """Random 32-bit words (unused bits set too): same instruction or both refuse."""
    rng = np.random.default_rng(1)
    for w in rng.integers(0, 1 << 32, size=600).tolist():
        try:
            want = decode_via_layout(w)
        except Exception as e:
            with pytest.raises(type(e)):
                decode(w)
            continue
        assert decode(w) == want
