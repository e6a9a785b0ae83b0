"""MEM, MXM and SXM opcodes on the golden chip model, against numpy computed here."""

import numpy as np
import pytest
from _harness import TINY, E, W, new_chip

pytestmark = [pytest.mark.chip]
VL = TINY.vl
S = TINY.superlanes
rng = np.random.default_rng(7)


def test_read_write_one_and_four_words():
    chip, b = new_chip()
    data = rng.integers(0, 256, size=(4, VL), dtype=np.uint8)
    chip.write_mem("mem_w1", 4, data)
    # mem_w1 (position 2) reads 4 words east at 0 -> written at 1 -> mem_e1 (position 6) reads at 5
    b.at("mem_w1", 0, "read", 4, (2, E), 4)
    b.at("mem_e1", 5, "write", 130, (2, E), 4)
    b.at("mem_w1", 1, "read", 7, (0, E))
    b.at("mem_e0", 5, "write", 9, (0, E))
    chip.load(b.program())
    chip.run()
    assert np.array_equal(chip.read_mem("mem_e1", 130, 4), data)
    assert np.array_equal(chip.read_mem("mem_e0", 9, 1)[0], data[3])


def test_gather():
    chip, b = new_chip()
    table = rng.integers(0, 256, size=(40, VL), dtype=np.uint8)
    chip.write_mem("mem_w0", 10, table)
    idx = rng.integers(0, 40, size=VL).astype(np.uint8)
    chip.write_mem("mem_w1", 0, idx[None, :])
    b.at("mem_w1", 0, "read", 0, (0, E))          # idx arrives at mem_w0 at 2
    b.at("mem_w0", 2, "gather", 10, (0, E), (1, E))  # out on e1 at 4
    b.at("mem_e0", 6, "write", 200, (1, E))
    chip.load(b.program())
    chip.run()
    want = table[idx.astype(int), np.arange(VL)]
    assert np.array_equal(chip.read_mem("mem_e0", 200)[0], want)


def _load_weights(chip, b, w, t0, slot_base=20):
    """mem_w1 holds W (VL rows); rows go west to mxm_w0 (position 0), 4 rows a cycle."""
    chip.write_mem("mem_w1", slot_base, w.view(np.uint8))
    for k in range(VL // 4):
        b.at("mem_w1", t0 + k, "read", slot_base + 4 * k, (0, W), 4)
        # written at t0+k+1 at position 2 -> read at position 0 two cycles later
        b.at("mxm_w0", t0 + k + 3, "lw", 4 * k, (0, W), 4)
    # the last lw dispatches at t0 + VL/4 + 2 and writes the shadow at +1: iw from +2 on
    return t0 + VL // 4 + 4


def test_matrix_vector_and_accumulate_with_double_buffer():
    chip, b = new_chip()
    w1 = rng.integers(-128, 128, size=(VL, VL)).astype(np.int8)
    w2 = rng.integers(-128, 128, size=(VL, VL)).astype(np.int8)
    x1 = rng.integers(-128, 128, size=VL).astype(np.int8)
    x2 = rng.integers(-128, 128, size=VL).astype(np.int8)
    t = _load_weights(chip, b, w1, 0, 20)
    b.at("mxm_w0", t, "iw")
    # second weight set into the shadow while the first is active
    t2 = _load_weights(chip, b, w2, t, 40)
    chip.write_mem("mem_w0", 0, np.stack([x1, x2]).view(np.uint8))
    # x from mem_w0 (position 3) arrives at position 0 at read + 4
    tm = t + 1
    b.at("mem_w0", tm - 4, "read", 0, (4, W))
    b.at("mxm_w0", tm, "mm", (0, E), (4, W), 1)  # acc1 = x1 @ w1, out e0..e3 at tm+S+2
    b.at("mem_w1", tm + S + 2 + 2, "write", 100, (0, E), 4)
    b.at("mxm_w0", t2, "iw")
    tn = t2 + 1
    b.at("mem_w0", tn - 4, "read", 1, (4, W))
    b.at("mxm_w0", tn, "mmacc", (0, E), (4, W), 1)  # acc1 += x2 @ w2
    b.at("mem_w1", tn + S + 2 + 2, "write", 104, (0, E), 4)
    chip.load(b.program())
    chip.run()
    y1 = x1.astype(np.int64) @ w1.astype(np.int64)
    y2 = y1 + x2.astype(np.int64) @ w2.astype(np.int64)
    assert chip.read_tensor("mem_w1", 100, 1, np.int32)[0].tolist() == y1.tolist()
    assert chip.read_tensor("mem_w1", 104, 1, np.int32)[0].tolist() == y2.tolist()
    assert chip.acc[0, 1].tolist() == y2.tolist()


def test_mm_without_output_writes_no_stream():
    chip, b = new_chip()
    w = rng.integers(-128, 128, size=(VL, VL)).astype(np.int8)
    x = rng.integers(-128, 128, size=VL).astype(np.int8)
    t = _load_weights(chip, b, w, 0)
    b.at("mxm_w0", t, "iw")
    chip.write_mem("mem_w0", 0, x.view(np.uint8)[None, :])
    b.at("mem_w0", t - 3, "read", 0, (4, W))
    b.at("mxm_w0", t + 1, "mm", None, (4, W), 0)
    chip.load(b.program())
    res = chip.run(trace=True)
    assert chip.acc[0, 0].tolist() == (x.astype(np.int64) @ w.astype(np.int64)).tolist()
    assert not [e for e in res.events if e.kind == "sr" and e.unit == 0]


def _sxm(mnemonic, src, *operands, extra=None, count=1):
    """src [count, VL] uint8 from mem_w0 on west streams 0.. to sxm_w (position 1);
    the result comes back east to mem_w0 at address 50."""
    chip, b = new_chip()
    words = src if extra is None else np.concatenate([src, extra])
    chip.write_mem("mem_w0", 0, words)
    b.at("mem_w0", 0, "read", 0, (0, W), words.shape[0])  # arrives at position 1 at 3
    b.at("sxm_w", 3, mnemonic, (0, E), (0, W), *operands, count)
    b.at("mem_w0", 3 + S + 1 + 2, "write", 50, (0, E), count)
    chip.load(b.program())
    chip.run()
    return chip.read_mem("mem_w0", 50, count)


@pytest.mark.parametrize("n", [0, 1, 3, -2, VL - 1])
def test_shift(n):
    src = rng.integers(0, 256, size=(2, VL), dtype=np.uint8)
    want = np.zeros_like(src)
    for i in range(VL):
        if 0 <= i - n < VL:
            want[:, i] = src[:, i - n]
    assert np.array_equal(_sxm("shift", src, n, count=2), want)


@pytest.mark.parametrize("n", [1, -3, 5])
def test_rotate(n):
    src = rng.integers(0, 256, size=(4, VL), dtype=np.uint8)
    want = src[:, [(i - n) % VL for i in range(VL)]]
    assert np.array_equal(_sxm("rot", src, n, count=4), want)


def test_broadcast():
    src = rng.integers(0, 256, size=(1, VL), dtype=np.uint8)
    assert np.array_equal(_sxm("bcast", src, 5)[0], np.full(VL, src[0, 5]))


def test_permute():
    src = rng.integers(0, 256, size=(1, VL), dtype=np.uint8)
    perm = rng.permutation(VL)
    mp = np.stack([perm & 0xFF, perm >> 8]).astype(np.uint8)
    chip, b = new_chip()
    chip.write_mem("mem_w0", 0, np.concatenate([src, mp]))
    b.at("mem_w0", 0, "read", 0, (0, W), 3)
    b.at("sxm_w", 3, "perm", (0, E), (0, W), (1, W), 1)
    b.at("mem_w0", 3 + S + 1 + 2, "write", 50, (0, E))
    chip.load(b.program())
    chip.run()
    assert np.array_equal(chip.read_mem("mem_w0", 50)[0], src[0, perm])


def test_transpose():
    chip, b = new_chip()
    blk = rng.integers(0, 256, size=(VL, VL), dtype=np.uint8)
    chip.write_mem("mem_w0", 0, blk)
    # eight words onto west streams 0..7 with two reads timed to arrive together at sxm_w
    chip.write_mem("mem_w1", 0, blk[4:])
    b.at("mem_w0", 0, "read", 0, (0, W), 4)   # position 3: arrives at position 1 at 3
    b.at("mem_w1", 1, "read", 0, (4, W), 4)   # position 2: arrives at 3 too
    b.at("sxm_w", 3, "transpose", (0, E), (0, W))
    b.at("mem_w1", 3 + S + 1 + 1, "write", 20, (0, E), 4)
    b.at("mem_w0", 3 + S + 1 + 2, "write", 30, (4, E), 4)
    chip.load(b.program())
    chip.run()
    got = np.concatenate([chip.read_mem("mem_w1", 20, 4), chip.read_mem("mem_w0", 30, 4)])
    assert np.array_equal(got, blk.T)
