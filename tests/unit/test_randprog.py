"""lpu.sim.programs.randprog: random programs are legal (static checker and golden model), cover
the whole ISA, are reproducible from their seed, and carry fp32 specials in SRAM.

Every failure message names the config and the seed; replay one with
``lpu random --config CFG --seed N -o prog.s --mem-out mem.npz``.
Set LPU_RANDPROG_SEEDS=N to run N fresh seeds on top of the fixed ones.
"""

import os
import secrets
from collections import Counter

import numpy as np
import pytest

from lpu import cli, config
from lpu.golden.chip import Chip
from lpu.isa import OPS, VXM_OPCODES, decode, encode
from lpu.loaders import load_mem_npz, load_program
from lpu.program import Program
from lpu.sim.programs import randprog
from lpu.sim.programs.randprog import RandProgError, generate

pytestmark = pytest.mark.unit

TINY = config.load("tiny")
SMALL = config.load("small")

FIXED_TINY = range(16)
FIXED_SMALL = range(4)
# fresh each run: from the session's $LPU_FRESH_SEED (tests/conftest.py)
_BASE = int(os.environ.get("LPU_FRESH_SEED") or secrets.randbits(30))
FRESH = [(_BASE * 7 + 7919 * i) % (1 << 31)
         for i in range(int(os.environ.get("LPU_RANDPROG_SEEDS", "4")))]


def run_golden(rp):
    """Check statically and run on the golden model; any error names the seed."""
    chip = Chip(rp.cfg)
    rp.load_into(chip)
    try:
        chip.load(rp.program, name=f"seed {rp.seed}")
        return chip.run(trace=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the replay command
        pytest.fail(f"config {rp.cfg.name}, seed {rp.seed}: {e}\nreplay: {rp.replay}")


@pytest.fixture(scope="module")
def tiny_programs():
    return [generate(TINY, seed) for seed in FIXED_TINY]


def test_fixed_seeds_tiny_are_legal_and_run(tiny_programs):
    for rp in tiny_programs:
        res = run_golden(rp)
        assert res.events, f"seed {rp.seed}: no events"
        assert sum(res.dispatched.values()) > 0


@pytest.mark.parametrize("seed", FIXED_SMALL)
def test_fixed_seeds_small_are_legal_and_run(seed):
    run_golden(generate(SMALL, seed))


@pytest.mark.parametrize("seed", FRESH)
def test_fresh_seeds(seed):
    print(f"fresh seed {seed} (replay: lpu random --config tiny --seed {seed} "
          "-o prog.s --mem-out mem.npz)")
    run_golden(generate(TINY, seed))
    run_golden(generate(SMALL, seed, cycles=60))


def test_every_opcode_appears(tiny_programs):
    seen = Counter()
    for rp in tiny_programs:
        seen.update(rp.ops)
    missing = [info.mnemonic for info in OPS.values() if not seen[info.mnemonic]
               and info.unit != "c2c"]  # send and recv need a system: sim/programs/c2c.py
    assert not missing, (f"opcodes never generated in seeds {list(FIXED_TINY)} on tiny: "
                         f"{missing}")
    # the ICU words are there in earnest, not once by luck
    for m in ("nop", "repeat", "sync", "notify"):
        assert seen[m] >= len(tiny_programs), (m, seen[m])


def test_every_queue_is_busy(tiny_programs):
    from lpu.golden.check import check

    for rp in tiny_programs[:4]:
        tl = check(rp.cfg, rp.program).timeline
        for q in rp.cfg.queues:
            busy = tl.per_queue[q.name] / rp.cycles
            assert busy > 0.25, f"seed {rp.seed}: queue {q.name} dispatches in {busy:.0%}"


def test_same_seed_same_program():
    a, b = generate(TINY, 77), generate(TINY, 77)
    assert a.program.queues == b.program.queues
    assert all(np.array_equal(a.mem[k], b.mem[k]) for k in a.mem)
    c = generate(TINY, 78)
    assert c.program.queues != a.program.queues


def test_unpacks_as_program_and_mem():
    program, mem = generate(TINY, 5)
    assert program.config_hash == TINY.hash
    assert set(mem) == {q.name for q in TINY.queues if q.kind == "mem"}
    for words in mem.values():
        assert words.shape == (TINY.mem_words, TINY.vl) and words.dtype == np.uint8


def test_words_are_canonical(tiny_programs):
    for rp in tiny_programs[:3]:
        for q, words in rp.program.queues.items():
            for w in words:
                assert encode(decode(w)) == w, (rp.seed, q, hex(w))


def test_sram_holds_fp32_specials():
    rp = generate(SMALL, 3)
    vals = set()
    for words in rp.mem.values():
        groups = words.reshape(-1, 4, SMALL.vl).transpose(0, 2, 1)
        vals |= set(np.ascontiguousarray(groups).view("<u4").ravel().tolist())
    u = np.array(sorted(vals), dtype=np.uint32)
    exp, mant = (u >> 23) & 0xFF, u & 0x7FFFFF
    assert {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7F7FFFFF} <= vals
    assert ((exp == 0xFF) & (mant != 0)).any(), "no NaN"
    assert ((exp == 0) & (mant != 0)).any(), "no subnormal"
    assert {0x7FFFFFFF, 0x80000000, 0xFFFFFFFF} <= vals


def test_reserved_words_are_never_written(tiny_programs):
    """Gather indices and perm maps come from reserved words; programs never overwrite
    them, so their bounds hold for the whole run."""
    bw = TINY.bank_words
    for rp in tiny_programs[:6]:
        chip = Chip(TINY)
        rp.load_into(chip)
        chip.load(rp.program)
        res = chip.run(trace=True)
        for ev in res.events:
            if ev.kind == "sram":
                assert ev.index % bw >= len(randprog.RESERVED_WORDS), (rp.seed, ev)


def test_checker_rejection_names_the_seed(monkeypatch):
    from lpu.golden import check as check_mod
    from lpu.golden.schedule import ScheduleError

    def reject(cfg, program, name="program"):
        raise ScheduleError("injected", rule="two-writers")

    monkeypatch.setattr(check_mod, "check", reject)
    with pytest.raises(RandProgError, match=r"seed 4242.*injected"):
        generate(TINY, 4242)


def test_replay_command_writes_program_and_mem(tmp_path):
    prog, mem = tmp_path / "p.s", tmp_path / "m.npz"
    assert cli.main(["random", "--config", "tiny", "--seed", "9", "-o", str(prog),
                     "--mem-out", str(mem)]) == 0
    rp = generate(TINY, 9)
    again = load_program(str(prog), TINY)
    assert again.queues == rp.program.queues
    chip = Chip(TINY)
    load_mem_npz(chip, str(mem))
    for name, words in rp.mem.items():
        assert np.array_equal(chip.read_mem(name, 0, TINY.mem_words), words)


# -- held reads (ISA 1.1, VXM chaining) ---------------------------------------------------------

HELD_SEEDS = range(100, 140)


@pytest.fixture(scope="module")
def held_programs():
    return [generate(TINY, seed) for seed in HELD_SEEDS]


def _held_reads(rp):
    """(dispatch, the latest of the first VXM writes of its held streams) for every held
    read in `rp`, from the checker's timeline (independent of the generator)."""
    from lpu.golden.check import check
    from lpu.golden.schedule import effects

    cfg = rp.cfg
    vxm_pos = next(p.index for p in cfg.positions if p.kind == "vxm")
    tl = check(cfg, rp.program).timeline
    first: dict = {}  # (dir, s) -> first cycle the VXM writes it
    out = []
    for d in tl.dispatches:
        if cfg.queues[d.queue].position != vxm_pos:
            continue
        for ef in effects(cfg, d.instr):
            if ef.kind == "hrd":
                out.append((d, max(first.get((ef.dir, s), d.t)
                                   for s in range(ef.stream, ef.stream + ef.width))))
            elif ef.kind == "wr":
                for s in range(ef.stream, ef.stream + ef.width):
                    first[(ef.dir, s)] = min(first.get((ef.dir, s), 1 << 60), d.t + ef.dt)
    return out


def test_held_reads_on_every_held_capable_opcode(held_programs):
    from lpu.golden.check import check

    seen = Counter()
    for rp in held_programs:
        check(rp.cfg, rp.program, name=f"seed {rp.seed}")
        run_golden(rp)
        for words in rp.program.queues.values():
            for w in words:
                ins = decode(w)
                for f in ins.info.held_flags:
                    if ins.args.get(f):
                        seen[(ins.info.mnemonic, f)] += 1
    want = [(info.mnemonic, f) for info in OPS.values() for f in info.held_flags]
    # la on every VXM opcode, lb on those with b (or scale)
    assert [m for m, f in want if f == "la"] == [OPS[o].mnemonic for o in VXM_OPCODES]
    assert len(want) == len(VXM_OPCODES) + 24
    missing = [k for k in want if not seen[k]]
    assert not missing, f"held flags never generated in seeds {list(HELD_SEEDS)}: {missing}"


def test_held_reads_are_legal_by_a_cycle_and_one_earlier_is_refused(held_programs):
    """Every held read is of streams the VXM wrote before its cycle; many are of a
    write in the cycle just before, and moving such a read one cycle earlier (the nop
    before it one shorter, one after it) makes the checker and the golden model refuse
    the program as a held read of a stream not yet written."""
    from lpu.golden.check import check
    from lpu.golden.chip import ChipError
    from lpu.golden.schedule import ScheduleError

    tight = moved = held_refusals = 0
    repeated = 0
    for rp in held_programs:
        for d, last_first in _held_reads(rp):
            assert last_first < d.t, (rp.seed, d)
            q = rp.cfg.queues[d.queue].name
            words = rp.program.queues[q]
            if decode(words[d.index]).info.mnemonic == "repeat":
                repeated += 1  # a copy of a repeated held read
                continue
            if last_first != d.t - 1:
                continue
            tight += 1
            i = d.index
            before = decode(words[i - 1]) if i else None
            if before is None or before.info.mnemonic != "nop":
                continue
            n = before.args["n"]
            j = i + 2 if i + 1 < len(words) and \
                decode(words[i + 1]).info.mnemonic == "repeat" else i + 1
            new = (words[:i - 1] + ([encode(before.with_args(n=n - 1))] if n > 1 else [])
                   + words[i:j] + [encode(decode(words[i - 1]).with_args(n=1))] + words[j:])
            mutated = Program(rp.program.config_hash, {**rp.program.queues, q: new})
            moved += 1
            with pytest.raises(ScheduleError) as e:
                check(rp.cfg, mutated)
            if e.value.rule == "empty-read" and "held value" in str(e.value):
                held_refusals += 1
                assert e.value.cycle == d.t - 1, (rp.seed, q, i, str(e.value))
                chip = Chip(rp.cfg)
                rp.load_into(chip)
                chip.load(mutated, check_first=False)
                with pytest.raises(ChipError, match="held value") as ce:
                    chip.run()
                assert ce.value.rule == "empty-read" and ce.value.cycle == d.t - 1
    # seeds 100..139: 57 reads one cycle after the write, 32 movable, 24 refused as held
    assert tight >= 30 and moved >= 15 and held_refusals >= 10, (tight, moved, held_refusals)
    assert repeated >= 20, f"only {repeated} held reads by copies of a repeat"
