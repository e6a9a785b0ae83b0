"""Tensor parallelism (lpu.tools.compiler.pipeline, tp == chips): the ranks' algebra in
numpy is the decode step bit for bit, and on the golden system two ranks exchanging
over their ring links give the one-chip tokens and logits with one program for both."""

import numpy as np
import pytest

from lpu import config
from lpu.golden.model import exact as LX
from lpu.golden.model.checkpoint import load_builtin
from lpu.golden.system import check_system
from lpu.tools.compiler.decode import decode
from lpu.tools.compiler.pipeline import PipelineDecoder

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def model():
    return load_builtin()


def test_tensor_parallel_ranks_in_numpy_are_the_decode_step(model):
    """Two ranks, one thread each, all-reducing through a NumpyGroup: every rank's
    logits are decode_step's, bit for bit, over three positions."""
    vl = config.load("small").vl
    ops = LX.NumpyOps(vl)
    whole = LX.Prepared(ops, model, 32)
    toks = [82, 79, 77]

    def rank(r, group):
        o = LX.NumpyOps(vl, group, r)
        P = LX.Prepared(o, model, 32, tp=(r, 2))
        assert len(P.head_ids) == model.config.num_attention_heads // 2
        return [LX.decode_step(o, P, t, p) for p, t in enumerate(toks)]

    outs = LX.run_group(2, rank)
    for p, t in enumerate(toks):
        want = LX.decode_step(ops, whole, t, p)
        assert all(np.array_equal(o[p], want) for o in outs)


def test_tensor_parallel_decode_on_two_chips_gives_the_one_chip_tokens(model):
    one = decode(model, prompt="R", n=2, config="small")
    r = decode(model, prompt="R", n=2, config="small", chips=2, tp=2)
    assert r.tokens == one.tokens
    for a, b in zip(one.logits, r.logits, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    # two all-reduces a layer: a max (one vector) and a sum (hidden / VL vectors), each
    # 4 words a vector, one exchange round with two ranks
    mc, vl = model.config, config.load("small").vl
    words = mc.num_hidden_layers * 2 * 4 * (1 + mc.hidden_size // vl)
    assert r.pipeline["link_words"] == [words] * len(r.cycles)
    dec = PipelineDecoder(model, config.load("small"), 2, tp=2)
    stages, joined, _ = dec.compiled(0)
    assert joined.programs[0].queues == joined.programs[1].queues  # every rank alike
    check_system(dec.sysc, joined.programs)


def test_tensor_parallel_groups_in_a_pipeline_give_the_one_chip_tokens(model):
    """4 chips: two pipeline stages, each a group of two ranks (a `rings` system: each
    rank hands its stage's output to the same rank of the next group over links 3-2)."""
    one = decode(model, prompt="R", n=1, config="small")
    r = decode(model, prompt="R", n=1, config="small", chips=4, tp=2)
    assert r.tokens == one.tokens
    assert np.array_equal(one.logits[0].view(np.uint32), r.logits[0].view(np.uint32))
    starts, ends = r.pipeline["starts"][0], r.pipeline["ends"][0]
    assert starts[0] == starts[1] == 0 and starts[2] == starts[3] > ends[0] == ends[1]
    dec = PipelineDecoder(model, config.load("small"), 4, tp=2)
    assert dec.sysc.topology == "rings" and dec.sysc.chip.c2c_links == 4
    assert [s.tp for s in dec.stages] == [(0, 2), (1, 2)] * 2
    assert [s.layers for s in dec.stages] == [range(0, 2)] * 2 + [range(2, 4)] * 2


def test_a_wavefront_through_tensor_parallel_groups_gives_the_one_chip_tokens(model):
    """Two stages of two ranks, two sequences in flight (one a stage)."""
    r = decode(model, prompt="R", n=1, config="small", chips=4, tp=2, batch=2)
    one = decode(model, prompt="R", n=1, config="small", context=r.context)
    assert r.batch_tokens == [one.tokens] * 2
    assert np.array_equal(one.logits[0].view(np.uint32), r.logits[0].view(np.uint32))
    assert r.pipeline["beats"] == 2 * (len(one.cycles) - 1) + 1 + 2
