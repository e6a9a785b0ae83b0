"""The directed programs (lpu.sim.programs.directed): every opcode, checked on the golden model
against numpy, and run in lockstep on the RTL (Amaranth's simulator)."""

import numpy as np
import pytest

from lpu import cli, config
from lpu.asm import assemble_file
from lpu.golden.check import check
from lpu.golden.chip import Chip
from lpu.isa import OPS, decode, encode, make
from lpu.program import Program
from lpu.sim.lockstep import AmaranthBackend, lockstep
from lpu.sim.programs.directed import all_mnemonics, directed_programs, opcodes_of

pytestmark = [pytest.mark.chip]
TINY = config.load("tiny")
NAMES = [d.name for d in directed_programs(TINY)]


def run_golden(cfg, d, program=None):
    chip = Chip(cfg)
    for name, words in d.mem_init.items():
        chip.write_mem(name, 0, words)
    chip.load(program or d.program)
    chip.run()
    return chip


def test_every_opcode_is_covered():
    progs = directed_programs(TINY)
    union = set().union(*(opcodes_of(d.program) for d in progs))
    assert union == all_mnemonics(), sorted(all_mnemonics() ^ union)
    assert len(union) == 52  # ISA 1.2 (1.1 and lwi)


def test_opcodes_are_read_from_the_words():
    prog = Program.from_instrs(TINY, {"vxm0": [make("nop", 3), make("mov", (0, 0), (1, 0))]})
    assert opcodes_of(prog) == {"nop", "mov"}


@pytest.mark.parametrize("cfg_name", ["tiny", "small", "fpga"])
def test_programs_pass_the_static_checker(cfg_name):
    cfg = config.load(cfg_name)
    progs = directed_programs(cfg)
    assert [d.name for d in progs] == NAMES
    for d in progs:
        check(cfg, d.program, name=d.name)
        assert d.expected, d.name
        assert set(d.mem_init) == {q.name for q in cfg.queues if q.kind == "mem"}
        for words in d.mem_init.values():
            assert words.shape == (cfg.mem_words, cfg.vl) and words.dtype == np.uint8


@pytest.mark.parametrize("cfg_name", ["tiny", "small", "fpga"])
@pytest.mark.parametrize("name", NAMES)
def test_golden_model_leaves_the_expected_sram(cfg_name, name):
    cfg = config.load(cfg_name)
    d = next(p for p in directed_programs(cfg) if p.name == name)
    d.check(run_golden(cfg, d))


def _held_reads(cfg, program):
    """Every held read of `program`: (cycle, queue, instruction, per stream (write cycle,
    writing queue) of the VXM's last write before the cycle), from the checker's timeline."""
    from lpu.golden.schedule import effects

    vxm = next(p.index for p in cfg.positions if p.kind == "vxm")
    writes: dict = {}
    out = []
    for dsp in check(cfg, program).timeline.dispatches:
        q = cfg.queues[dsp.queue]
        if q.position != vxm:
            continue
        for ef in effects(cfg, dsp.instr):
            streams = [(ef.dir, s) for s in range(ef.stream, ef.stream + ef.width)]
            if ef.kind == "hrd":
                out.append((dsp.t, q.name, dsp.instr, [
                    max(w for w in writes.get(k, ()) if w[0] < dsp.t) for k in streams]))
            elif ef.kind == "wr":
                for k in streams:
                    writes.setdefault(k, []).append((dsp.t + ef.dt, q.name))
    return out


def test_vxm_held_chains_through_held_reads():
    d = next(p for p in directed_programs(TINY) if p.name == "vxm_held")
    reads = _held_reads(TINY, d.program)
    flags = {(ins.info.mnemonic, f) for _, _, ins, _ in reads for f in ins.info.held_flags
             if ins.args.get(f)}
    assert {f for _, f in flags} == {"la", "lb"}  # both held flags are set
    want = {(info.mnemonic, f) for info in OPS.values() for f in info.held_flags}
    assert flags == want, sorted(want - flags)
    # a held read in the cycle right after the write
    assert any(max(c for c, _ in src) == t - 1 for t, _, _, src in reads)
    # the two ALUs read each other's results
    pairs = {(src[0][1], q) for _, q, _, src in reads}
    assert {("vxm0", "vxm1"), ("vxm1", "vxm0")} <= pairs, pairs
    # 32-bit held operands whose planes come from different writes
    mixed = [ins.text() for _, _, ins, src in reads if len(src) == 4 and len(set(src)) > 1]
    assert len(mixed) >= 2, mixed
    # int8 held reads
    int8 = {ins.info.mnemonic for _, _, ins, src in reads if len(src) == 1}
    assert int8 == {"mov", "cvt.i8.i32"}, int8


def test_the_placer_keeps_held_values_until_they_are_read():
    from lpu.isa import E, W
    from lpu.sim.programs.placer import Plan

    plan = Plan(TINY, "held", "")
    val = np.arange(4 * TINY.vl, dtype=np.uint8).reshape(4, TINY.vl)
    with plan.one() as tx:
        tx.at("vxm0", 4, "mov32", (4, E), (0, E), result=val)  # e4..e7 written at 5
    tx = plan.txn()
    tx.at("vxm1", 5, "mov32", (0, W), (4, E), la=1)  # in the write's cycle: refused
    assert "has not written e4 before" in tx.problem
    tx = plan.txn()
    got = tx.held((4, E), 4, 8)
    assert [(c, tok) for c, tok, _ in got] == [(5, ("vxm0", 4))] * 4
    assert np.array_equal(np.stack([v for _, _, v in got]), val)
    tx.at("vxm1", 8, "mov32", (0, W), (4, E), la=1)  # held from 6 to 7
    tx.commit()
    for cycle, ok in ((5, False), (6, False), (7, True)):  # writes e6 at cycle + 1
        tx = plan.txn()
        tx.at("vxm0", cycle, "mov", (6, E), (1, E))
        assert (tx.problem is None) == ok, (cycle, tx.problem)
    with plan.one() as tx:
        tx.hold((6, E), 1, 20, "later")  # a read not placed yet
    tx = plan.txn()
    tx.at("vxm0", 30, "mov", (6, E), (1, E))
    assert "held for a read by later" in tx.problem
    plan.release("later")
    tx = plan.txn()
    tx.at("vxm0", 30, "mov", (6, E), (1, E))
    assert tx.problem is None


def test_check_fails_on_a_wrong_expected_value():
    d = next(p for p in directed_programs(TINY) if p.name == "vxm_fp")
    chip = run_golden(TINY, d)
    d.check(chip)
    ex = next(e for e in d.expected if "fmul" in e.what)
    ex.words[2, 3] ^= 0x40  # byte 2 of lane 3
    with pytest.raises(AssertionError, match=r"directed program 'vxm_fp': 'fmul .*lane 3: "
                                             r"expected 0x[0-9a-f]{8} \(.*\), got"):
        d.check(chip)


def test_check_fails_on_a_mutated_program():
    d = next(p for p in directed_programs(TINY) if p.name == "vxm_int")
    q, i = next((q, i) for q, words in d.program.queues.items()
                for i, w in enumerate(words) if decode(w).info.mnemonic == "add")
    ins = decode(d.program.queues[q][i])
    d.program.queues[q][i] = encode(make("sub", ins.dst, ins.a, ins.b))  # add -> sub
    with pytest.raises(AssertionError, match="'add "):
        d.check(run_golden(TINY, d))


def test_check_reads_a_dict_of_sram_images():
    d = next(p for p in directed_programs(TINY) if p.name == "mem")
    chip = run_golden(TINY, d)
    d.check({n: chip.read_mem(n, 0, TINY.mem_words) for n in chip.mem_names})
    with pytest.raises(AssertionError, match="directed program 'mem'"):
        d.check(d.mem_init)  # the SRAM before the run


def test_write_gives_assembly_and_sram_that_lpu_sim_takes(tmp_path, capsys):
    assert cli.main(["directed", "--config", "tiny", "--write", str(tmp_path), "mxm"]) == 0
    d = next(p for p in directed_programs(TINY) if p.name == "mxm")
    assert assemble_file(tmp_path / "mxm.s", TINY).queues == d.program.queues
    with np.load(tmp_path / "mxm.npz") as mem:
        assert {k: mem[k].tolist() for k in mem.files} == \
            {k: v.tolist() for k, v in d.mem_init.items()}
    assert cli.main(["directed", "--config", "tiny", "--list"]) == 0
    assert "52 of 52 opcodes" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_in_lockstep_on_amaranth(name):
    d = next(p for p in directed_programs(TINY) if p.name == name)
    be = AmaranthBackend(TINY)
    res = lockstep(TINY, d.program, d.mem_init, be)
    assert res.ok, f"directed program {name!r}:\n{res.text()}"
    assert be.error is None, f"directed program {name!r}: the chip raised {be.error}"
    assert res.events > 0
