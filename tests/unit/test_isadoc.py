"""docs/isa.md is generated from lpu/isa.py and must stay in step with it."""

import re

import pytest

from lpu.isa import OPS, encode, make
from lpu.tools import isadoc

pytestmark = [pytest.mark.unit]


def test_committed_isa_md_is_up_to_date():
    path = isadoc.DEFAULT_PATH
    assert path.is_file(), f"{path} is missing; generate it with: {isadoc.REGENERATE}"
    if path.read_text() != isadoc.render():
        pytest.fail(f"{path} differs from lpu/isa.py; regenerate it with: {isadoc.REGENERATE}",
                    pytrace=False)


def test_every_opcode_has_a_row():
    text = isadoc.render()
    for info in OPS.values():
        assert f"| `{info.mnemonic}` | {info.opcode.value} |" in text, info.mnemonic


def _field_bits(text, fmt, field):
    """(lo, hi) of `field` in the table of payload format `fmt` in the rendered doc."""
    section = text.split(f"### `{fmt}` ")[1].split("###")[0]
    m = re.search(rf"^\| (\d+)(?:-(\d+))? \| `{re.escape(field)}` \|", section, re.M)
    assert m, (fmt, field)
    lo = int(m.group(1))
    return lo, int(m.group(2) or lo)


@pytest.mark.parametrize("fmt, field, one, zero", [
    # instructions differing only in the field's lowest bit, built through the ISA encoder
    ("nop", "n", make("nop", 2), make("nop", 3)),
    ("mem", "addr", make("read", 1, (0, 0)), make("read", 0, (0, 0))),
    ("mem", "s.dir", make("read", 0, (0, 1)), make("read", 0, (0, 0))),
    ("alu", "b.stream", make("add", (0, 0), (0, 0), (1, 0)), make("add", (0, 0), (0, 0), (0, 0))),
    ("sxm", "n", make("shift", (0, 0), (0, 0), 1), make("shift", (0, 0), (0, 0), 0)),
    ("lw", "row", make("lw", 1, (0, 0)), make("lw", 0, (0, 0))),
])
def test_documented_bit_positions_match_the_encoder(fmt, field, one, zero):
    lo, _ = _field_bits(isadoc.render(), fmt, field)
    assert encode(one) ^ encode(zero) == 1 << lo
