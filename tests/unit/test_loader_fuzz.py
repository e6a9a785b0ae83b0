"""A seeded fuzz of the program loaders (:func:`lpu.loaders.load_program`) and the
config loader (:func:`lpu.config.load`).

Mutations of random legal programs (:mod:`lpu.sim.programs.randprog`) on ``tiny``:
bytes of the ``.bin`` file (bit flips, new bytes, cuts, insertions, truncation),
words of its queues (bit flips, random words, random payloads of every opcode,
copies, words moved to another queue) and lines of its assembly (characters, numbers,
statements, case). The properties, for every mutation:

* only an :class:`~lpu.errors.LpuError` escapes the loader (zero crashes);
* an accepted program also disassembles, and assembles back to the same words;
* on a sample, the golden chip given an accepted program either runs it or refuses
  it with an ``LpuError`` (with and without the static checker).

Config files: bytes of a preset (YAML syntax, tags, anchors, numbers); only a
``ConfigError`` escapes, and an accepted config describes itself.

Seeds are fixed, so a failure names the seed and mutation to replay; a bug found
here goes into tests/unit/test_bad_input_corpus.py as a case.
"""

from __future__ import annotations

import random
from importlib import resources

import pytest

from lpu import config
from lpu.asm import assemble, disassemble
from lpu.config import ConfigError
from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.isa import OPS
from lpu.loaders import load_program
from lpu.program import Program
from lpu.sim.programs.randprog import generate

pytestmark = [pytest.mark.unit]

TINY = config.load("tiny")
#: Mutations per kind and seed (3 kinds x 2 seeds x 600 = 3,600 loads).
N = 600
#: Every how many accepted programs one runs on the golden chip.
RUN_EVERY = 10
#: Config file mutations.
CONFIG_N = 1500


def _mutate_bytes(rng: random.Random, blob: bytes) -> bytes:
    b = bytearray(blob)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        if not b:
            break
        i, k = rng.randrange(len(b)), rng.random()
        if k < 0.5:
            b[i] ^= 1 << rng.randrange(8)
        elif k < 0.7:
            b[i] = rng.randrange(256)
        elif k < 0.8:
            del b[i:i + rng.randrange(1, 8)]
        elif k < 0.9:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        else:
            del b[i:]
    return bytes(b)


_OPCODES = [int(op.value) for op in OPS]
_QUEUES = [q.name for q in TINY.queues]


def _mutate_words(rng: random.Random, prog: Program) -> bytes:
    qs = {q: list(w) for q, w in prog.queues.items()}
    for _ in range(rng.choice([1, 1, 2, 3])):
        q = rng.choice(sorted(qs))
        w = qs[q]
        if not w:
            continue
        i, k = rng.randrange(len(w)), rng.random()
        if k < 0.4:
            w[i] ^= 1 << rng.randrange(32)
        elif k < 0.6:
            w[i] = rng.randrange(1 << 32)
        elif k < 0.8:
            w[i] = rng.randrange(1 << 26) << 6 | rng.choice(_OPCODES)
        elif k < 0.9:
            w.insert(i, w[rng.randrange(len(w))])
        else:
            qs[rng.choice(_QUEUES)] = w[i:i + 3]
    return Program(prog.config_hash, qs).to_bytes()


_STATEMENTS = ["repeat 3, 2, 1", "nop 0", "nop 4095", "sync", "notify", ".queue vxm0",
               ".queue mem_w0", ".config tiny", "read 255, e7, 2", "mm -, w1, 0",
               "repeat 4095, 1, 1", "shift e0, e1, 9", "add ve0, e1, w2", "perm e0, e1, e2",
               "lw 7, w0, 2", "gather e0, e1", "transpose e0, w0", "bcast e0, w0, 7, 2"]


def _mutate_text(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.choice([1, 1, 2, 4])):
        i, k = rng.randrange(len(lines)), rng.random()
        ln = lines[i]
        if k < 0.3 and ln:
            j = rng.randrange(len(ln))
            ln = ln[:j] + rng.choice("0123456789-+,xewv ;#.\t\r\x00\u00e9") + ln[j + 1:]
        elif k < 0.45:
            ln = ln.replace(str(rng.randrange(10)), str(rng.randrange(100_000)), 1)
        elif k < 0.55:
            lines.insert(i, rng.choice(lines))
        elif k < 0.65:
            lines.pop(i)
            continue
        elif k < 0.75 and ln:
            ln = ln[:rng.randrange(len(ln))]
        elif k < 0.9:
            ln = rng.choice(_STATEMENTS)
        else:
            ln = ln.upper()
        lines[i] = ln
    return "\n".join(lines)


@pytest.fixture(scope="module")
def bases():
    return [generate(TINY, seed).program for seed in range(3)]


@pytest.mark.parametrize("kind", ["bytes", "words", "text"])
@pytest.mark.parametrize("seed", [1, 2])
def test_loaders_refuse_or_accept_and_round_trip(tmp_path, bases, kind, seed):
    rng = random.Random(f"{kind}-{seed}")
    sources = [disassemble(p, TINY) for p in bases]
    accepted = ran = 0
    for k in range(N):
        path = tmp_path / (f"m{k}.s" if kind == "text" else f"m{k}.bin")
        base = rng.randrange(len(bases))
        if kind == "bytes":
            path.write_bytes(_mutate_bytes(rng, bases[base].to_bytes()))
        elif kind == "words":
            path.write_bytes(_mutate_words(rng, bases[base]))
        else:
            path.write_text(_mutate_text(rng, sources[base]), encoding="utf-8")
        case = f"seed {seed}, {kind} mutation {k} ({path.read_bytes()[:200]!r})"
        try:
            prog = load_program(path, TINY)
        except LpuError:
            path.unlink()
            continue
        except Exception as e:  # noqa: BLE001 - the property under test
            pytest.fail(f"{case}: the loader raised {type(e).__name__}: {e}")
        accepted += 1
        try:
            back = assemble(disassemble(prog, TINY, name=str(path)), TINY)
        except LpuError as e:
            pytest.fail(f"{case}: accepted, but the disassembler refuses it: {e}")
        assert back.queues == {q: w for q, w in prog.queues.items()}, case
        if accepted % RUN_EVERY == 0:
            ran += 1
            for check_first in (True, False):
                chip = Chip(TINY)
                try:
                    chip.load(prog, check_first=check_first, name=str(path))
                    chip.run(max_cycles=20_000)
                except LpuError:
                    pass
                except Exception as e:  # noqa: BLE001
                    pytest.fail(f"{case}: the golden chip (check_first={check_first}) "
                                f"raised {type(e).__name__}: {e}")
        path.unlink()
    # the mutations reach past the first checks: some are accepted, some refused
    assert 0 < accepted < N, accepted


_YAML_BITS = [b": ", b"- ", b"&a ", b"*a", b"!!str ", b"!!int ", b"!!float ", b"!!binary ",
              b"!!timestamp ", b"!!set ", b"? ", b"<<: ", b"1e9999", b"0x", b"0o7", b".inf",
              b"0b101", b"1_000", b"---\n", b"...\n", b"%YAML 1.1\n", b"9" * 5000]


def test_config_loader_refuses_or_accepts(tmp_path):
    rng = random.Random("config")
    preset = (resources.files("lpu") / "presets" / "small.yaml").read_bytes()
    base = preset + b"\nbase: tiny\nname: x\n"
    path = tmp_path / "c.yaml"
    accepted = 0
    for k in range(CONFIG_N):
        b = bytearray(base)
        for _ in range(rng.choice([1, 2, 4])):
            i, r = rng.randrange(len(b)), rng.random()
            if r < 0.4:
                b[i] = rng.choice(b"0123456789-.:[]{}&*!|>'\"#%@`\t\n ~eEx\xff\x00\r")
            elif r < 0.6:
                del b[i:i + rng.randrange(1, 5)]
            elif r < 0.8:
                b[i:i] = rng.choice(_YAML_BITS)
            else:
                b[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(b))
        try:
            cfg = config.load(str(path))
        except ConfigError:
            continue
        except Exception as e:  # noqa: BLE001 - the property under test
            pytest.fail(f"config mutation {k} ({bytes(b)[:300]!r}): {type(e).__name__}: {e}")
        accepted += 1
        assert cfg.describe() and len(cfg.hash) == 12
    assert 0 < accepted < CONFIG_N, accepted
