"""``lpu project`` without compiling anything: the placement arithmetic against sums
written here from the shapes, the blocks' graphs against the compiler's trace of a
whole step, the links' arithmetic, the partition's properties (every stage fits, more
chips are never slower) and the command's refusals of bad inputs.

The calibration (compiled steps) is tests/model/test_project_calibration.py; here a
fixed :class:`~lpu.tools.project.Calibration` stands in for it."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lpu import cli, config
from lpu.errors import LpuError
from lpu.golden.model import checkpoint
from lpu.golden.model.checkpoint import load_builtin
from lpu.golden.model.reference import LlamaConfig, random_model
from lpu.tools import project as pj
from lpu.tools.compiler.graph import critical_path, throughput, trace_step

pytestmark = [pytest.mark.unit]

GROQ = config.load("groq")
SMALL = config.load("small")
CAL = pj.Calibration(busy=0.5, kv=0.1)  # stands in for the fitted one
M70 = pj.load_model_config("llama-2-70b")
M7 = pj.load_model_config("llama-2-7b")


def _llama(**kw) -> LlamaConfig:
    base = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                max_position_embeddings=32, tie_word_embeddings=True)
    return LlamaConfig(**(base | kw))


# -- the shipped shapes ---------------------------------------------------------------------

def test_shipped_shapes_are_llama_2():
    assert {"llama-2-7b", "llama-2-70b", "bytes-llama"} <= set(pj.shipped_models())
    assert (M70.hidden_size, M70.intermediate_size, M70.num_hidden_layers,
            M70.num_attention_heads, M70.num_key_value_heads, M70.head_dim,
            M70.vocab_size) == (8192, 28672, 80, 64, 8, 128, 32000)
    assert (M7.hidden_size, M7.intermediate_size, M7.num_hidden_layers,
            M7.num_attention_heads, M7.num_key_value_heads, M7.head_dim) == \
        (4096, 11008, 32, 32, 32, 128)
    assert pj.display_name(M70) == "Llama-2-70B" and pj.display_name(M7) == "Llama-2-7B"
    # the same shape from a path to the file, and from its folder
    path = checkpoint.builtin_model_path().parent / "llama-2-7b"
    assert pj.load_model_config(path) == pj.load_model_config(path / "config.json") == M7


# -- placement -------------------------------------------------------------------------------

def test_unpadded_weights_from_the_shapes():
    layer70 = 8192 * 8192 * 2 + 8192 * 1024 * 2 + 3 * 8192 * 28672  # q, o; k, v; FFN
    assert pj.raw_weight_bytes(M70) == 80 * layer70 + 2 * 32000 * 8192 == 68_975_329_280
    layer7 = 4 * 4096 * 4096 + 3 * 4096 * 11008
    assert pj.raw_weight_bytes(M7) == 32 * layer7 + 2 * 32000 * 4096


def test_a_groq_chip_of_eight_holds_the_70b_blocks_as_counted_here():
    """One chip of a group of 8 on groq (VL 320): 26 vectors of hidden (8192 -> 8320),
    8 query heads of 128 (1024 -> 4 vectors), one KV head (128 -> 1 vector), FFN columns
    3584 -> 12 vectors, vocabulary 4000 -> 13 vectors; every weight block 320 x 320."""
    sh, blk, f32 = pj.Shard(M70, 8), 320 * 320, 4 * 320
    assert (sh.heads, sh.kv_heads, sh.ffn, sh.vocab) == (8, 1, 3584, 4000)
    attn = pj.block_bytes("attn", sh, GROQ, 4096)
    assert attn["weights"] == (26 * 4 + 26 * 1 + 26 * 1 + 4 * 26) * blk
    assert attn["scales"] == (4 + 1 + 1 + 26) * f32 and attn["norms"] == 26 * f32
    # K and V: 13 blocks of 320 positions, one 320-byte word each, and 13 scale vectors
    assert attn["kv"] == 2 * (13 * 320 * 320 + 13 * f32)
    assert pj.block_bytes("ffn_up", sh, GROQ, 4096)["weights"] == 2 * 26 * 12 * blk
    assert pj.block_bytes("ffn_down", sh, GROQ, 4096)["weights"] == 12 * 26 * blk
    assert pj.block_bytes("embed", sh, GROQ, 4096)["weights"] == 13 * 26 * blk
    assert pj.block_bytes("head", sh, GROQ, 4096)["weights"] == 26 * 13 * blk


def test_placement_at_tensor_parallel_1_is_check_fits_footprint():
    """Where every size is a multiple of VL the blocks add up to what
    lpu.golden.model.checkpoint.check_fits counts (the other definition of a layout)."""
    for m in (load_builtin().config, _llama(tie_word_embeddings=False, num_key_value_heads=2)):
        ctx = m.max_position_embeddings
        fp = checkpoint.check_fits(m, SMALL, ctx)
        sh = pj.Shard(m, 1)
        b = [pj.block_bytes(k, sh, SMALL, ctx) for k, _ in pj._step_blocks(m)]
        tied_head = b[-1]["weights"] if m.tie_word_embeddings else 0
        tied_scales = b[-1]["scales"] if m.tie_word_embeddings else 0
        assert sum(x["weights"] for x in b) - tied_head == fp.weights
        assert sum(x["scales"] for x in b) - tied_scales == fp.scales
        assert sum(x["norms"] for x in b) == fp.norms
        assert sum(x["kv"] for x in b) == fp.kv_cache


def test_the_fewest_chips_partition_fits_and_is_full():
    """Every stage of the fewest-chips partition fits a chip's SRAM less the reserve, and
    no stage could take the next stage's first block as well."""
    avail = GROQ.mem_bytes - checkpoint.sram_reserve(GROQ)
    assert avail == 230_686_720 - 230_686_720 // 16
    for m, batch, seq in ((M70, 1, 4096), (M7, 4, 2048)):
        chips, tp, stages = pj.fewest_chips(m, GROQ, batch, seq)
        best, fewest, _ = pj.plan(m, GROQ, None, batch, seq, CAL)
        assert (fewest.chips, fewest.tp, fewest.stages) == (chips, tp, stages)
        sizes = [pj.block_bytes(k, pj.Shard(m, tp), GROQ, seq) for k, _ in pj._step_blocks(m)]
        per = [s["weights"] + s["scales"] + s["norms"] + s["consts"] + batch * s["kv"]
               for s in sizes]
        for s, (i, j) in enumerate(fewest.bounds):
            assert sum(per[i:j]) == fewest.stage_sram[s] <= avail
            if j < len(per):
                assert sum(per[i:j + 1]) > avail
    assert pj.fewest_chips(M70, GROQ, 1, 4096)[0] > 68_975_329_280 / avail  # sanity


def test_a_model_that_does_not_fit_says_how_many_chips_it_needs():
    with pytest.raises(LpuError, match=r"needs at least 432 chips of groq .*--chips 100"):
        pj.check_fit(M70, GROQ, 100, 1, 4096)
    huge = LlamaConfig(vocab_size=32000, hidden_size=65536, intermediate_size=262144,
                       num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=8,
                       head_dim=8192, max_position_embeddings=128, source="huge.json")
    with pytest.raises(LpuError, match=r"huge.json: head_dim 8192 exceeds the vector length"):
        pj.check_fit(huge, GROQ, 10_000, 1, 128)
    huge = LlamaConfig(vocab_size=32000, hidden_size=65536, intermediate_size=262144,
                       num_hidden_layers=2, num_attention_heads=512, num_key_value_heads=8,
                       head_dim=128, max_position_embeddings=128, source="huge.json")
    with pytest.raises(LpuError, match=r"huge.json: does not fit any partition .* block needs"):
        pj.check_fit(huge, GROQ, 10_000, 1, 128)


# -- the blocks' graphs -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [dict(), dict(num_hidden_layers=3, num_attention_heads=4,
                                                num_key_value_heads=2, tie_word_embeddings=False,
                                                intermediate_size=96)])
def test_blocks_at_tensor_parallel_1_are_the_compilers_step(shape):
    """The blocks of a step, traced one by one, record the operations of the compiler's
    trace of the whole step (lpu.tools.compiler.graph.trace_step), the same throughput
    bounds, and critical paths adding up to the step's within a few cycles a block."""
    m = _llama(**shape)
    model = random_model(m)
    pos = 20
    g, _ = trace_step(model, SMALL.vl, pos, m.max_position_embeddings)

    def ops(graph):
        return Counter((n.kind, n.op) for n in graph.nodes if n.kind != "host")

    mine, cp, tput = Counter(), 0, Counter()
    blocks = pj._step_blocks(m)
    for kind, residual in blocks:
        sg = pj.trace_segment(kind, pj.Shard(m, 1), SMALL, pos, residual=residual)
        mine += ops(sg)
        cp += critical_path(sg, SMALL)[0]
        tput.update(throughput(sg, SMALL))
    assert mine == ops(g)
    assert dict(tput) == pytest.approx(throughput(g, SMALL))
    whole = critical_path(g, SMALL)[0]
    assert whole <= cp <= whole + 3 * len(blocks)


def test_groq_blocks_trace_quickly_and_reduce_in_five_trips():
    """VL 320 is not a power of 4: a lane reduction takes ceil(log4 320) = 5 trips."""
    g = pj.trace_segment("ffn_down", pj.Shard(M70, 8), GROQ, 4095)
    rots = [n for n in g.nodes if n.kind == "sxm"]
    assert sorted({n.imm for n in rots}) == sorted({s * r for s in (1, 4, 16, 64)
                                                    for r in (1, 2, 3)} | {256})
    sb = pj.segment_bounds("attn", pj.Shard(M70, 8), GROQ, 4095)
    assert sb.kv_heads == 1 and sb.critical_path > 0 and sb.throughput["mxm"] > 0


# -- links ------------------------------------------------------------------------------------

def test_allreduce_arithmetic():
    s = pj.System()
    per_cycle = 100e9 / 8 * 320 / 328 / 900e6  # payload bytes a cycle on one link
    assert s.link_bytes_per_cycle(GROQ) == pytest.approx(per_cycle)
    nbytes = 26 * 320 * 4
    phase = 216 + nbytes / 8 / per_cycle
    adds = 3 * 3 + -(-7 * 4 // 16)  # three levels of fadd (3 cycles); 7 x 4 vectors / 16
    assert pj.allreduce_cycles(nbytes, 8, GROQ, s) == pytest.approx(2 * phase + adds)
    assert pj.allreduce_cycles(nbytes, 1, GROQ, s) == 0
    assert s.hop_cycles(GROQ, 0, 7) == 216  # one node
    assert s.hop_cycles(GROQ, 0, 8) == pytest.approx(722 * 0.9)  # one network hop
    assert s.hop_cycles(GROQ, 0, 64) == pytest.approx(2 * 722 * 0.9)  # another rack


# -- the partition's properties --------------------------------------------------------------

def test_more_chips_are_never_slower():
    for m, batch, seq in ((M7, 1, 2048), (M7, 8, 512)):
        few = pj.fewest_chips(m, GROQ, batch, seq)[0]
        last_user = last_total = 0.0
        for chips in (few, few + 3, 3 * few, 576):
            p = pj.project(m, GROQ, chips, batch=batch, seq=seq, calibration=CAL)
            assert p.plan.chips <= chips
            assert p.tokens_per_s_user >= last_user - 1e-9
            assert p.tokens_per_s_total >= last_total - 1e-9
            last_user, last_total = p.tokens_per_s_user, p.tokens_per_s_total


def test_where_the_pipeline_sets_the_pace_more_chips_help():
    """Batch 64 at a short context: the round is 64 passes of the slowest stage, which
    more chips (more, shorter stages) shorten."""
    few = pj.fewest_chips(M7, GROQ, 64, 256)[0]
    a = pj.project(M7, GROQ, few, batch=64, seq=256, calibration=CAL)
    b = pj.project(M7, GROQ, 4 * few, batch=64, seq=256, calibration=CAL)
    assert a.plan.round_cycles > a.plan.token_cycles  # pipeline-bound
    assert b.tokens_per_s_total > a.tokens_per_s_total
    assert b.plan.stages > a.plan.stages


def test_a_projection_adds_up():
    p = pj.project(M7, GROQ, 64, seq=2048, calibration=CAL)
    pl = p.plan
    assert sum(p.breakdown.values()) == pytest.approx(pl.token_cycles)
    assert pl.token_cycles == pytest.approx(sum(pl.stage_cycles) + sum(pl.hop_cycles)
                                            + pl.host_cycles)
    assert p.tokens_per_s_user == pytest.approx(900e6 / pl.round_cycles)
    assert len(pl.hop_cycles) == pl.stages - 1
    blocks = [b for i, j in pl.bounds for b in p.blocks[i:j]]
    assert len(blocks) == 2 + 3 * 32  # every block once, in order
    assert sum(b.cycles + b.allreduce for b in blocks) == pytest.approx(sum(pl.stage_cycles))
    for b in p.blocks:
        assert b.cycles >= b.bounds.floor
    # batch 1: one sequence in the pipeline at a time
    assert pl.utilization == pytest.approx(sum(pl.stage_cycles) / pl.stages / pl.round_cycles)


# -- the command's refusals (before any calibration) -------------------------------------------

@pytest.fixture
def files(tmp_path):
    (tmp_path / "bad.json").write_text('{"model_type": "llama", "hidden_size": ')
    (tmp_path / "gpt.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "nohidden.json").write_text(json.dumps(
        {"model_type": "llama", "num_attention_heads": 4}))
    return tmp_path


@pytest.mark.parametrize("line, needles", [  # more in tests/unit/test_bad_input_corpus.py
    ("--model {d}/bad.json --chips 8", ("bad.json:1:", "not valid JSON")),
    ("--model {d}/gpt.json --chips 8", ("gpt.json", "'model_type'")),
    ("--model {d}/nohidden.json --chips 8", ("nohidden.json", "'hidden_size'")),
    ("--model {d} --chips 8", ("{d}/config.json", "missing file")),
    ("--model llama-2-7b --chips 0", ("--chips must be at least 1",)),
    ("--model llama-2-7b --chips 64 --batch 0", ("--batch must be at least 1",)),
    ("--model llama-2-7b --chips 64 --seq 0", ("--seq must be at least 1",)),
    ("--model llama-2-7b --chips 64 --batch 100000", ("does not fit", "batch 100000")),
    ("--model llama-2-7b", ("--chips is needed",)),
    ("--model llama-2-7b --chips 64 --preset nosuch", ("unknown preset 'nosuch'",)),
])
def test_bad_inputs_are_one_line_and_status_1(files, capsys, line, needles):
    argv = ["project"] + line.format(d=files).split()
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("lpu project: error: "), err
    assert "Traceback" not in err and not out
    for n in needles:
        assert n.format(d=files) in err, (n, err)


def test_a_count_of_the_wrong_type_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["project", "--model", "llama-2-7b", "--chips", "many"])
    assert e.value.code == 2 and "Traceback" not in capsys.readouterr().err
