"""The step scheduler (lpu.tools.compiler.listsched): its programs are legal, bit-exact
with the LPU-exact evaluation across KV-cache blocks, chain VXM operations through held
reads, and never beat the bounds of their graph."""

from __future__ import annotations

import numpy as np
import pytest

from lpu import config
from lpu.golden.chip import Chip
from lpu.golden.model.checkpoint import load_checkpoint
from lpu.isa import decode
from lpu.tools.compiler import graph as G
from lpu.tools.compiler.decode import decode as decode_text
from lpu.tools.compiler.kernels import write_image
from lpu.tools.compiler.listsched import schedule_step

pytestmark = [pytest.mark.model]

SMALL = config.load("small")


@pytest.fixture
def model(tmp_path, write_checkpoint):
    """A random model the shape rules allow on small (head_dim = VL), untied (the
    shipped model covers the tied LM head), three KV blocks of context."""
    write_checkpoint(tmp_path, vocab=32, hidden=32, inter=48, layers=2, heads=2,
                     kv_heads=1, head_dim=16, context=48, tied=False, seed=3)
    return load_checkpoint(tmp_path)


def test_decoding_across_kv_blocks_is_bit_exact(model):
    """Twenty steps (positions 0..19: the KV cache's second block from position 16 on):
    the golden chip running the scheduled programs gives the LPU-exact logits, bit for
    bit, at every step."""
    prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2]
    chip = decode_text(model, tokens=prompt, n=3, config=SMALL, backend="golden",
                       context=48)
    exact = decode_text(model, tokens=prompt, n=3, config=SMALL, backend="exact",
                        context=48)
    assert len(chip.logits) == 19 and chip.tokens == exact.tokens
    for a, b in zip(chip.logits, exact.logits, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    for cycles, b in zip(chip.cycles, chip.bounds, strict=True):
        assert cycles >= b["floor"]


def test_the_program_chains_vxm_operations_through_held_reads(model):
    st = schedule_step(model, SMALL, 5, 48)
    vxm_words = [decode(w) for q, ws in st.program.queues.items() if q.startswith("vxm")
                 for w in ws]
    alu = [i for i in vxm_words if i.info.unit == "vxm"]
    held = [i for i in alu if any(i.args.get(f) for f in i.info.held_flags)]
    assert len(held) > 0.3 * len(alu)
    # one lwi (ISA 1.2) loads and installs all VL rows of a weight block: no lw, no iw,
    # and one mm or mmacc a block for each tile that uses it
    mxm = [decode(w) for q, ws in st.program.queues.items() if q.startswith("mxm")
           for w in ws]
    names = [i.info.mnemonic for i in mxm]
    lwis = [i for i in mxm if i.info.mnemonic == "lwi"]
    assert lwis and all(i.count == SMALL.vl for i in lwis)
    assert "lw" not in names and "iw" not in names
    assert names.count("mm") + names.count("mmacc") >= len(lwis)


def test_the_token_copies_are_all_written_and_the_program_does_not_depend_on_it(model):
    """The program is the same for every token; the host writes each token copy."""
    st = schedule_step(model, SMALL, 2, 48)
    assert len(st.tokens) >= 2
    outs = []
    for tok in (0, 7):
        chip = Chip(SMALL)
        write_image(chip, st.image, {t: tok for t in st.tokens})
        chip.load(st.program)
        chip.run()
        outs.append(chip.read_tensor(st.logits.slice, st.logits.addr, st.logits.n,
                                     np.uint32))
    assert not np.array_equal(outs[0], outs[1])  # the token reached the embedding


def test_the_schedule_of_the_shipped_model_is_within_its_bounds():
    from lpu.golden.model.checkpoint import load_builtin

    m = load_builtin()
    st = schedule_step(m, SMALL, 20, 256)
    g, _ = G.trace_step(m, SMALL.vl, 20, 256)
    cp, _, _ = G.critical_path(g, SMALL)
    chip = Chip(SMALL)
    write_image(chip, st.image)
    chip.load(st.program)
    res = chip.run()
    assert cp <= res.cycles


def test_lpu_timeline_marks_the_critical_path(tmp_path):
    """The trace-event JSON of a decode step marks exactly the instructions of the
    critical chain's nodes (looked up independently in the schedule)."""
    import json

    from lpu import cli
    from lpu.golden.model.checkpoint import load_builtin

    out = tmp_path / "step.json"
    assert cli.main(["timeline", "--config", "small", "--pos", "3", "--json", str(out)]) == 0
    marked = {(e["tid"], e["ts"]) for e in json.loads(out.read_text())["traceEvents"]
              if e.get("args", {}).get("critical")}
    st = schedule_step(load_builtin(), SMALL, 3)
    names = {q.name: q.index + 1 for q in SMALL.queues}
    want = {(names[q], t) for n in G.critical_chain(st.graph, SMALL)
            if n in st.placed for q, t in [st.placed[n]]}
    assert marked == want and len(want) > 100


def test_a_batch_decodes_each_sequence_as_alone(model):
    """Three sequences in one step program (sampled, each with its own generator) give
    the tokens and logits of the LPU-exact evaluation of each; greedy, each equals one
    decoded alone; the weight blocks are loaded once for all three."""
    kw = dict(tokens=[3, 1, 4], n=3, config=SMALL, context=16, temperature=1.0, seed=11)
    chip = decode_text(model, backend="golden", batch=3, **kw)
    exact = decode_text(model, backend="exact", batch=3, **kw)
    assert chip.batch_tokens == exact.batch_tokens
    assert len({tuple(t) for t in chip.batch_tokens}) > 1  # the generators differ
    alone = decode_text(model, tokens=[3, 1, 4], n=3, config=SMALL, context=16,
                        backend="golden")
    greedy = decode_text(model, tokens=[3, 1, 4], n=3, config=SMALL, context=16,
                         backend="golden", batch=2)
    assert greedy.batch_tokens == [alone.tokens, alone.tokens]
    assert chip.cycles_per_step == pytest.approx(chip.cycles_per_token * 3)
    st = schedule_step(model, SMALL, 1, 16, batch=3)
    lws = sum(decode(w).info.mnemonic == "lwi" for q, ws in st.program.queues.items()
              if q.startswith("mxm") for w in ws)
    st1 = schedule_step(model, SMALL, 1, 16)
    lws1 = sum(decode(w).info.mnemonic == "lwi" for q, ws in st1.program.queues.items()
               if q.startswith("mxm") for w in ws)
    # KV blocks are each sequence's own (loaded once for the query heads of their KV
    # head: 4 heads, 1 KV head, 4 accumulator slots); every weight block once for the batch
    assert SMALL.mxm_acc_slots >= model.config.num_attention_heads
    own = len({tuple(b) for n in st1.graph.nodes if n.kind in ("mm", "mmt")
               for b in n.meta["blocks"] if b[0] != "w"})
    assert own > 0 and lws == (lws1 - own) + 3 * own


def test_decode_batch_is_checked():
    with pytest.raises(Exception, match="--batch must be a whole number"):
        decode_text("builtin", prompt="A", n=1, batch=0, backend="exact")


def _lws(st) -> dict[str, int]:
    """lwi instructions (a block each) per MXM plane of a step program."""
    return {q: sum(decode(w).info.mnemonic == "lwi" for w in ws)
            for q, ws in st.program.queues.items() if q.startswith("mxm")}


def test_every_block_is_loaded_once_the_heads_of_a_kv_head_sharing_it(model):
    """Two query heads read each block of their KV head (two blocks at position 20):
    one lwi per distinct weight or KV block of the step, not one per head."""
    assert model.config.num_attention_heads == 2 * model.config.num_key_value_heads
    st = schedule_step(model, SMALL, 20, 48)
    tiles = [n for n in st.graph.nodes if n.kind in ("mm", "mmt")]
    blocks = {tuple(b) for n in tiles for b in n.meta["blocks"]}
    assert sum(_lws(st).values()) == len(blocks) < sum(len(n.meta["blocks"]) for n in tiles)


def test_the_linear_layers_of_one_input_split_evenly_between_the_planes():
    """q, k and v (one quantized input; k and v a tile each), gate and up, and every
    other matrix: the weight blocks multiplied by each plane differ by at most one
    tile's blocks."""
    from lpu.golden.model.checkpoint import load_builtin

    st = schedule_step(load_builtin(), SMALL, 3)
    by_input: dict[int, dict[str, int]] = {}
    for n in st.graph.nodes:
        if n.kind == "mm" and n.meta["blocks"][0][0] == "w":
            plane = st.placed[n.id][0]
            per = by_input.setdefault(n.args[0], {})
            per[plane] = per.get(plane, 0) + len(n.args)
    assert len(by_input) > 8
    for x, per in by_input.items():
        most = max(len(n.args) for n in st.graph.nodes if n.kind == "mm" and n.args[0] == x)
        assert abs(per.get("mxm_w0", 0) - per.get("mxm_e0", 0)) <= most, (x, per)


def test_the_embeddings_two_tiles_of_a_plane_go_block_by_block():
    """The embedding's tiles (sixteen blocks each) share each plane two at a time, block
    by block, an accumulator slot each: the second tile's products start before the
    first tile's last one, and each tile's sixteen go to its own slot."""
    from lpu.golden.model.checkpoint import load_builtin
    from lpu.golden.schedule import timeline

    st = schedule_step(load_builtin(), SMALL, 3)
    g = st.graph
    emb = [n for n in g.nodes if n.kind == "mm" and n.algo == "decode_step"]
    assert len(emb) == 4 and all(len(n.args) == 16 for n in emb)
    names = [q.name for q in SMALL.queues]
    mm_by_plane: dict[str, list] = {}
    for d in timeline(SMALL, st.program).dispatches:
        q = names[d.queue]
        if q.startswith("mxm") and d.instr.info.mnemonic in ("mm", "mmacc"):
            mm_by_plane.setdefault(q, []).append((d.t, d.instr.slot))
    planes = {st.placed[n.id][0] for n in emb}
    assert planes == {"mxm_w0", "mxm_e0"}
    for p in planes:
        # the embedding's 32 products on this plane come first: 16 blocks of two tiles
        first = sorted(mm_by_plane[p])[:32]
        slots = [s for _, s in first]
        assert sorted(set(slots)) == [0, 1] and slots.count(0) == slots.count(1) == 16
        t_last0 = max(t for t, s in first if s == 0)
        t_first1 = min(t for t, s in first if s == 1)
        assert t_first1 < t_last0
