"""The shipped model split across chips (lpu.tools.compiler.pipeline): the stages are the
step's parts (numpy, bit for bit), the pipelined decode on the golden system gives the
one-chip tokens and logits, the joined programs pass the system's link checker (and a
mistimed receive does not), and the command line refuses what it cannot run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lpu import config
from lpu.cli import main as lpu_main
from lpu.errors import LpuError
from lpu.golden.model import exact as LX
from lpu.golden.model.checkpoint import load_builtin
from lpu.golden.system import LinkError, check_system
from lpu.isa import Opcode, make
from lpu.program import Program
from lpu.tools.compiler import cache
from lpu.tools.compiler.decode import decode
from lpu.tools.compiler.pipeline import PipelineDecoder, partition, system_for

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def model():
    return load_builtin()


class _Cfg:
    def __init__(self, layers):
        self.num_hidden_layers = layers


@pytest.mark.parametrize("layers", range(1, 9))
def test_partition_covers_every_layer_once_in_order(layers):
    for chips in range(1, layers + 1):
        st = partition(_Cfg(layers), chips)
        got = [i for s in st for i in s.layers]
        assert got == list(range(layers))
        sizes = [len(s.layers) for s in st]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
        assert sizes == sorted(sizes, reverse=True)  # the extra layers go first
        assert [s.embed for s in st] == [k == 0 for k in range(chips)]
        assert [s.head for s in st] == [k == chips - 1 for k in range(chips)]
        assert [s.chip for s in st] == list(range(chips))


@pytest.mark.parametrize("chips,needle", [(0, "at least 1"), (True, "whole number"),
                                          (5, "at most 4 pipeline stages")])
def test_partition_refuses(chips, needle):
    with pytest.raises(LpuError, match=needle):
        partition(_Cfg(4), chips)


@pytest.mark.parametrize("chips", [2, 3, 4])
def test_stages_run_in_turn_are_the_decode_step(model, chips):
    """numpy: the stages of a partition, each with its own KV cache, chained over three
    positions, give decode_step's logits bit for bit."""
    vl = config.load("small").vl
    ops = LX.NumpyOps(vl)
    whole = LX.Prepared(ops, model, 32)
    parts = [LX.Prepared(ops, model, 32, layers=s.layers, embed=s.embed, head=s.head)
             for s in partition(model.config, chips)]
    assert sum(p.cache.k.shape[0] for p in parts) == whole.cache.k.shape[0]
    for pos, tok in enumerate([82, 79, 77]):
        want = LX.decode_step(ops, whole, tok, pos)
        x = LX.decode_stage(ops, parts[0], pos, token=tok)
        for p in parts[1:]:
            x = LX.decode_stage(ops, p, pos, x=x)
        assert np.array_equal(x, want)


def test_decode_on_two_and_four_chips_gives_the_one_chip_tokens(model):
    one = decode(model, prompt="R", n=2, config="small")
    for chips, n in ((2, 2), (4, 1)):  # two steps (the KV cache kept on each chip), one
        r = decode(model, prompt="R", n=n, config="small", chips=chips)
        assert r.tokens == one.tokens[:n]
        for a, b in zip(one.logits, r.logits, strict=False):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
        assert len(r.logits) == n
        pl = r.pipeline
        assert len(pl["stages"]) == chips and r.chips == chips
        hidden_words = 4 * model.config.hidden_size // config.load("small").vl
        assert pl["link_words"] == [hidden_words] * len(r.cycles)
        lat = system_for("small", chips).chip.c2c_latency
        for starts, ends, cyc in zip(pl["starts"], pl["ends"], r.cycles, strict=True):
            assert starts[0] == 0
            # each chip starts after the one before it ended and its output crossed a link
            assert all(starts[k + 1] > ends[k] + lat for k in range(chips - 1))
            assert cyc >= ends[-1]


@pytest.mark.parametrize("chips,batch,n", [(2, 2, 2), (4, 2, 1)])
def test_wavefront_gives_every_sequence_the_one_chip_tokens(model, chips, batch, n):
    """`batch` sequences in flight: each gets the tokens of one sequence on one chip (the
    first one's logits bit for bit); the beats' cycles are all counted once; with a
    full pipeline a token costs fewer cycles than on one chip."""
    r = decode(model, prompt="R", n=n, config="small", chips=chips, batch=batch)
    one = decode(model, prompt="R", n=n, config="small", context=r.context)
    assert r.batch_tokens == [one.tokens] * batch
    for a, b in zip(one.logits, r.logits, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    steps = len(one.cycles)
    pl = r.pipeline
    assert pl["beats"] == chips * (steps - 1) + batch - 1 + chips
    assert sum(r.cycles) == sum(pl["beat_cycles"]) and len(pl["beat_cycles"]) == pl["beats"]
    if batch == chips:
        assert r.cycles_per_token < one.cycles_per_token


def test_a_beat_needs_the_work_of_the_chip_before(model):
    dec = PipelineDecoder(model, config.load("small"), 2, 16, slots=2)
    with pytest.raises(LpuError, match="chip 0 ran none the beat before"):
        dec.beat([None, (0, 0)], None)


def test_joined_programs_pass_the_link_checker_and_a_late_recv_is_refused(model):
    dec = PipelineDecoder(model, config.load("small"), 2, 32)
    stages, linked, _ = dec.compiled(0)
    check_system(dec.sysc, linked.programs)  # raises if any send or recv is mistimed
    assert len(linked.sends[0]) == linked.words // dec.sysc.chip.c2c_width
    # chip 1's receives one cycle late: the first piece arrives where nobody takes it
    p1 = linked.programs[1]
    ins = p1.instrs("c2c_w")
    assert ins[0].op == Opcode.NOP and ins[1].op == Opcode.RECV
    late = [make("nop", ins[0].n + 1)] + ins[1:]
    queues = dict(p1.queues)
    queues["c2c_w"] = Program.from_instrs(dec.sysc.chip, {"c2c_w": late}).queues["c2c_w"]
    bad = Program(p1.config_hash, queues, p1.isa_version)
    with pytest.raises(LinkError, match=r"chip 0.*link 1") as e:
        check_system(dec.sysc, [linked.programs[0], bad])
    assert str(linked.sends[0][0]) in str(e.value)


def test_stage_programs_come_back_from_the_disk_cache(model, monkeypatch, tmp_path):
    monkeypatch.setenv("LPU_CACHE_DIR", str(tmp_path))
    a = PipelineDecoder(model, config.load("small"), 2, 32)
    sa, la, _ = a.compiled(1)
    hits = cache.STATS.hits
    b = PipelineDecoder(model, config.load("small"), 2, 32)
    sb, lb, _ = b.compiled(1)
    assert cache.STATS.hits == hits + 2
    assert [s.stage_in for s in sb] == [s.stage_in for s in sa] and sb[0].stage_in is None
    assert [p.queues for p in lb.programs] == [p.queues for p in la.programs]


def test_decode_chips_cli_json(capsys):
    assert lpu_main(["decode", "--chips", "2", "--prompt", "R", "-n", "1", "--json"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert lpu_main(["decode", "--prompt", "R", "-n", "1", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert two["tokens"] == one["tokens"] and two["chips"] == 2
    assert two["pipeline"]["stages"][0].startswith("chip 0: embedding")


@pytest.mark.parametrize("argv,needle", [
    (["--chips", "0"], "--chips must be a whole number of at least 1"),
    (["--chips", "5"], "at most 4 pipeline stages"),
    (["--chips", "2", "--backend", "exact"], "--backend golden"),
    (["--chips", "2", "--batch", "3"], "at most 2 sequence(s) in flight"),
    (["--tp", "2"], "give --chips 2 too"),
    (["--chips", "3", "--tp", "2"], "whole tensor-parallel groups of 2"),
    (["--chips", "4", "--tp", "4"], "must split into 4 equal parts"),
    (["--chips", "2", "--tp", "2", "--batch", "2"], "at most 1 sequence(s) in flight"),
    (["--chips", "2", "--tp", "0"], "--tp must be a whole number"),
])
def test_decode_chips_errors(argv, needle):
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "decode", "-n", "1", *argv],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
