"""C2C (ISA 1.3) on the golden model: configs with links, topologies, the two-chip example
against numpy, and the link-schedule checker refusing a missing or mistimed recv with a
located error (chip, file:line, link, cycle), statically and at run time."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lpu import config, system
from lpu.asm import AsmError, assemble, assemble_file
from lpu.golden.chip import Chip, ChipError
from lpu.golden.system import LinkError, System, check_system
from lpu.program import Program, ProgramError

pytestmark = [pytest.mark.chip]
EX = Path(__file__).resolve().parents[2] / "examples" / "c2c"
SYS = system.load(EX / "system.yaml")
CFG = SYS.chip


def _sources():
    return [(EX / f"chip{i}.s").read_text() for i in range(2)]


def _programs(texts):
    return [assemble(t, CFG, f"chip{i}.s") for i, t in enumerate(texts)]


def _line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _example_system(seed=0):
    rng = np.random.default_rng(seed)
    a, b, c = (rng.integers(-(1 << 31), 1 << 31, (1, CFG.vl), dtype=np.int64)
               .astype(np.int32) for _ in range(3))
    s = System(SYS)
    s.chips[0].write_tensor("mem_w0", 0, a)
    s.chips[0].write_tensor("mem_e0", 0, b)
    s.chips[1].write_tensor("mem_e0", 0, c)
    return s, (a.astype(np.int64) + b) * c


# -- configs and topologies ------------------------------------------------------------------


@pytest.mark.parametrize("name", config.preset_names())
def test_a_config_without_links_keeps_its_queues_and_hash(name):
    cfg = config.load(name)
    assert cfg.c2c_links == 0 and not any(q.kind == "c2c" for q in cfg.queues)
    assert cfg.replace(c2c_latency=99, c2c_width=3).hash == cfg.hash  # no links: not counted
    linked = cfg.replace(c2c_links=2)
    assert linked.hash != cfg.hash
    assert linked.queues[:len(cfg.queues)] == cfg.queues  # C2C queues come last
    extra = linked.queues[len(cfg.queues):]
    assert [(q.name, q.kind) for q in extra] == [("c2c_w", "c2c"), ("c2c_e", "c2c")]
    assert [q.position for q in extra] == [cfg.position("sxm_w").index,
                                           cfg.position("sxm_e").index]


@pytest.mark.parametrize("key, value, words", [
    ("c2c_links", 8, "from 0 to 7"), ("c2c_latency", 0, "from 1 to 4096"),
    ("c2c_width", 5, "from 1 to 4"),
])
def test_bad_c2c_keys_are_refused_with_the_file_and_key(tmp_path, key, value, words):
    f = tmp_path / "c.yaml"
    f.write_text(f"base: tiny\n{key}: {value}\n")
    with pytest.raises(config.ConfigError, match=f"{f}: key '{key}'.*{words}"):
        config.load(f)


@pytest.mark.parametrize("topology, n, group", [
    ("pairs", 2, None), ("pairs", 6, None), ("ring", 2, None), ("ring", 5, None),
    ("full", 8, None), ("full", 6, 3), ("full", 2, None),
    ("rings", 4, 2), ("rings", 6, 3), ("rings", 3, None), ("rings", 8, 4),
])
def test_topologies_cable_each_end_once_and_join_the_right_chips(topology, n, group):
    cfg = config.load("tiny").replace(c2c_links=7)
    sc = system.system(cfg, n, topology, group=group)
    ends = [e for link in sc.links for e in link]
    assert len(ends) == len(set(ends))  # no end cabled twice
    for a, b in sc.links:
        assert sc.peer(*a) == b and sc.peer(*b) == a and a[0] != b[0]
    joined = {frozenset((a[0], b[0])) for a, b in sc.links}
    if topology == "pairs":
        want = {frozenset((i, i + 1)) for i in range(0, n, 2)}
    elif topology == "ring":
        want = {frozenset((i, (i + 1) % n)) for i in range(n)}
    elif topology == "rings":  # a ring a group, and rank r of each group to the next's
        g = group or n
        want = {frozenset((i, i - i % g + (i + 1) % g)) for i in range(n)} | \
               {frozenset((i, i + g)) for i in range(n - g)}
    else:
        g = group or n
        want = {frozenset((i, j)) for i in range(n) for j in range(n)
                if i != j and i // g == j // g}
    assert joined == want
    if topology != "full":  # east edge (odd link) to west edge (even link)
        assert all(a[1] % 2 == 1 and b[1] % 2 == 0 for a, b in sc.links)


@pytest.mark.parametrize("text, key", [
    ("chip: tiny\nchips: 2\ntopology: pairs\n", "topology"),  # tiny has no links
    ("chip: {base: tiny, c2c_links: 2}\nchips: 3\ntopology: pairs\n", "chips"),
    ("chip: {base: tiny, c2c_links: 2}\nchips: 2\ntopology: mesh\n", "topology"),
    ("chip: {base: tiny, c2c_links: 7}\nchips: 9\ntopology: full\n", "group"),
    ("chip: {base: tiny, c2c_links: 2}\nchips: 4\ntopology: full\n", "topology"),
    ("chip: {base: tiny, c2c_links: 2}\nchips: 1\ntopology: ring\n", "chips"),
    ("chip: {base: tiny, c2c_links: 9}\nchips: 2\ntopology: ring\n", "chip"),
    ("chip: tiny\nchips: 2\n", "topology"),
    ("chip: tiny\nchips: 2\ntopology: ring\nlinks: 3\n", "links"),
])
def test_bad_system_files_are_refused_with_the_file_and_key(tmp_path, text, key):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(system.SystemConfigError) as e:
        system.load(f)
    assert str(e.value).startswith(f"{f}: ") and f"key {key!r}" in str(e.value)


# -- the two-chip example -----------------------------------------------------------------------


def test_the_two_chip_example_computes_on_both_chips():
    s, want = _example_system()
    progs = [assemble_file(EX / f"chip{i}.s", CFG) for i in range(2)]
    s.load(progs)
    res = s.run(trace=True)
    got0 = s.chips[0].read_tensor("mem_e1", 8, 1, np.int32)
    got1 = s.chips[1].read_tensor("mem_w0", 8, 1, np.int32)
    assert np.array_equal(got0, want.astype(np.int32))  # int32 wrapping, as the VXM's mul
    assert np.array_equal(got1, want.astype(np.int32))
    # each recv's stream writes are there, at its dispatch + 1, on every superlane
    for chip, (pos, t) in enumerate([("sxm_e", 24), ("sxm_w", 11)]):
        p = CFG.position(pos).index
        cyc = sorted({e.cycle for e in res[chip].events if e.kind == "sr" and e.unit == p})
        assert cyc == [t + k for k in range(CFG.superlanes)]
    assert all(r.end_cycle > 0 for r in res)


def test_a_chip_alone_refuses_a_recv():
    prog = assemble_file(EX / "chip1.s", CFG)
    chip = Chip(CFG)
    chip.load(prog)  # legal for the chip's own checker: the link is the system's
    with pytest.raises(ChipError, match="nothing arrives") as e:
        chip.run()
    assert e.value.rule == "link" and e.value.queue == "c2c_w" and e.value.cycle == 10


# -- the link-schedule checker -----------------------------------------------------------------


NO_RECV = "arrive at chip 1 link 0 in cycle 10 (latency 4), where no recv takes them"


def _mistimed(texts):
    t1 = texts[1].replace("    nop 10\n    recv 0, e0, 4", "    nop 11\n    recv 0, e0, 4")
    return [texts[0], t1.replace("    nop 8\n    send", "    nop 7\n    send")]


def _missing(texts):
    return [texts[0], texts[1].replace("    recv 0, e0, 4", "    nop 1")]


def _nothing_sent(texts):
    t0 = texts[0].replace("    send 1, e4, 4", "    nop 1")
    return [t0, texts[1]]


def _count(texts):
    return [texts[0].replace("send 1, e4, 4", "send 1, e4, 3"), texts[1]]


@pytest.mark.parametrize("change, chip, needle, cycle, link, words, at_run", [
    (_missing, 0, "send 1, e4, 4", 6, 1, NO_RECV, None),
    (_mistimed, 0, "send 1, e4, 4", 6, 1, NO_RECV, None),
    (_nothing_sent, 1, "recv 0, e0, 4", 10, 0, "nothing arrives in this cycle: chip 0 sends "
                                               "nothing over link 1 in cycle 6", None),
    # at run time, the recv finds 3 vectors where it takes 4
    (_count, 0, "send 1, e4, 3", 6, 1, "sends 3 vector(s) over link 1; the recv at chip 1",
     (1, "recv 0, e0, 4")),
])
def test_the_checker_refuses_a_missing_or_mistimed_recv_with_a_located_error(
        change, chip, needle, cycle, link, words, at_run):
    texts = change(_sources())
    progs = _programs(texts)
    with pytest.raises(LinkError) as e:
        check_system(SYS, progs)
    err = e.value
    line = _line_of(texts[chip], needle)
    assert (err.chip, err.link, err.cycle, err.rule) == (chip, link, cycle, "link")
    assert str(err).startswith(f"chip {chip}, chip{chip}.s:{line}, cycle {cycle}, ")
    assert words in str(err)
    # unchecked, the system raises at run time on the same chip and instruction
    s, _ = _example_system()
    s.load(progs, check_first=False)
    with pytest.raises(ChipError) as run_err:
        s.run()
    assert run_err.value.rule == "link"
    if at_run is not None:
        chip, line = at_run[0], _line_of(texts[at_run[0]], at_run[1])
    assert str(run_err.value).startswith(f"chip {chip}, chip{chip}.s:{line}, ")


def test_a_chips_own_rule_is_reported_with_the_chip():
    texts = _sources()
    texts[1] = texts[1].replace("mul w4, e0, w0", "mul w4, e4, w0")  # e4..e7: nothing
    with pytest.raises(Exception, match=r"^chip 1, chip1\.s:13, cycle 14, queue vxm0, .*"
                                        r"reads stream e4, which holds nothing"):
        check_system(SYS, _programs(texts))


# -- the assembler and the loader ----------------------------------------------------------------


@pytest.mark.parametrize("line, col, words", [
    ("send 1, e0", 10, "link 1 leaves the chip at the east edge: queue c2c_e serves it"),
    ("send 2, e0", 10, "out of range 0..1 for config tiny-c2c"),
    ("recv 0, e0, 4", 10, None),
    ("recv 0, e6, 4", 17, "past stream 7"),
    ("mov e0, e1", 5, "is a vxm instruction"),
])
def test_the_assembler_checks_c2c_operands(line, col, words):
    text = f".queue c2c_w\n    {line}\n"
    if words is None:
        assemble(text, CFG)
        return
    with pytest.raises(AsmError) as e:
        assemble(text, CFG, "x.s")
    assert (e.value.line, e.value.col) == (2, col) and words in e.value.problem


def test_a_send_needs_a_chip_with_links_and_a_count_within_the_width():
    with pytest.raises(AsmError, match="queue 'c2c_w'|c2c_w"):
        assemble(".queue c2c_w\n    send 0, e0\n", config.load("tiny"))
    narrow = CFG.replace(c2c_width=2)
    with pytest.raises(AsmError, match=r"x.s:2:17: operand 'count' = 3 is out of range 1..2"):
        assemble(".queue c2c_w\n    send 0, e0, 3\n", narrow, "x.s")


def test_a_program_of_isa_1_2_with_a_send_is_refused():
    prog = assemble_file(EX / "chip0.s", CFG)
    old = Program(CFG.hash, prog.queues, isa_version=(1, 2))
    with pytest.raises(ProgramError, match=r"queue c2c_e word 1: 0x[0-9a-f]{8} is a send, "
                                           r"which ISA 1.2 does not have"):
        old.check_config(CFG)
    plain = {q: w for q, w in prog.queues.items() if not q.startswith("c2c")}
    Program(CFG.hash, plain, isa_version=(1, 2)).check_config(CFG)  # no C2C: it loads


# -- the directed C2C program on systems of N chips ----------------------------------------------


@pytest.mark.parametrize("topology, n, group", [
    ("pairs", 4, None), ("ring", 3, None), ("full", 4, None), ("full", 6, 3),
])
def test_the_directed_c2c_program_moves_every_cable_both_ways(topology, n, group):
    from lpu.sim.programs.c2c import c2c_directed

    cfg = config.load("tiny").replace(c2c_links=3, c2c_latency=5, c2c_width=3)
    sc = system.system(cfg, n, topology, group=group)
    ds = c2c_directed(sc, seed=n)
    assert sum(len(d.expected) for d in ds) == 2 * len(sc.links)
    s = System(sc)
    for chip, d in zip(s.chips, ds, strict=True):
        for name, words in d.mem_init.items():
            chip.write_mem(name, 0, words)
        for ex in d.expected:  # the words are news to the receiver: the check means something
            assert not np.array_equal(d.mem_init[ex.mem][ex.addr:ex.addr + len(ex.words)],
                                      ex.words)
    s.load([d.program for d in ds])
    s.run()
    for chip, d in zip(s.chips, ds, strict=True):
        d.check(chip)


# -- lpu run --system ---------------------------------------------------------------------------


def test_lpu_run_system_runs_both_chips_from_sram_images(tmp_path, capsys):
    from lpu import cli
    from lpu.vectors import from_words

    rng = np.random.default_rng(7)
    a, b, c = (rng.integers(-1000, 1000, (1, CFG.vl)).astype(np.int32) for _ in range(3))
    np.savez(tmp_path / "m0.npz", mem_w0=a, mem_e0=b)
    np.savez(tmp_path / "m1.npz", mem_e0=c)
    out = tmp_path / "out.npz"
    rc = cli.main(["run", "--system", str(EX / "system.yaml"), str(EX / "chip0.s"),
                   str(EX / "chip1.s"), "--mem-in", str(tmp_path / "m0.npz"), "--mem-in",
                   str(tmp_path / "m1.npz"), "--mem-out", str(out),
                   "--trace", str(tmp_path / "t.jsonl")])
    text = capsys.readouterr().out
    assert rc == 0 and "chip 0: " in text and "chip 1: " in text
    mem = np.load(out)
    want = (a.astype(np.int64) + b) * c
    for key in ("chip0.mem_e1", "chip1.mem_w0"):
        assert np.array_equal(from_words(mem[key][8:12], 1).view(np.int32), want)
    chips = {json.loads(line)["chip"] for line in (tmp_path / "t.jsonl").read_text().splitlines()}
    assert chips == {0, 1}


def test_random_programs_on_a_chip_with_links_leave_the_links_alone():
    from lpu.golden.check import check
    from lpu.sim.programs.randprog import generate

    for seed in (1, 2):
        rp = generate(CFG, seed, cycles=40)
        check(CFG, rp.program)
        assert rp.program.queues and not any(q.startswith("c2c") for q in rp.program.queues)


FRESH = int(os.environ.get("LPU_FRESH_SEED") or 0)


@pytest.mark.parametrize("topology, n", [("pairs", 2), ("ring", 3), ("full", 4)])
@pytest.mark.parametrize("seed", [1, 2, FRESH], ids=["1", "2", "fresh"])
def test_random_c2c_programs_pass_the_checker_and_move_their_words(topology, n, seed):
    """Random transfers (lpu.sim.programs.c2c.c2c_random) in flight together; replay a
    fresh one with LPU_FRESH_SEED."""
    from lpu.sim.programs.c2c import c2c_random

    cfg = config.load("tiny").replace(c2c_links=3, c2c_latency=2, c2c_width=3)
    sc = system.system(cfg, n, topology)
    ds = c2c_random(sc, seed, transfers=14)
    s = System(sc)
    for chip, d in zip(s.chips, ds, strict=True):
        for name, words in d.mem_init.items():
            chip.write_mem(name, 0, words)
    s.load([d.program for d in ds])
    s.run()
    for chip, d in zip(s.chips, ds, strict=True):
        d.check(chip)


def test_a_link_the_topology_does_not_cable_is_refused():
    sc = system.system(CFG, 4, "pairs")  # chip 0's link 0 (west edge) goes nowhere
    text = ".queue mem_w1\n    read 0, w0\n.queue c2c_w\n    nop 2\n    send 0, w0\n"
    progs = [assemble(text, CFG, "c0.s")] + [Program(CFG.hash, {}) for _ in range(3)]
    with pytest.raises(LinkError, match=r"^chip 0, c0\.s:5, cycle 2, queue c2c_w, "
                                        r"'send 0, w0, 1': sends over link 0, which is not "
                                        r"cabled in the pairs topology"):
        check_system(sc, progs)
