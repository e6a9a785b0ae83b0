"""SECDED (lpu.ecc): the golden decoder (numpy) and the HDL decoder (XOR trees) against
each other and against the code's properties, and the fault sweeps of lpu bench ecc."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from lpu import config
from lpu.ecc import check_bits, data_positions
from lpu.golden import ecc as gecc
from lpu.golden.chip import Chip
from lpu.hdl.ecc import EccDecoder, EccEncoder
from lpu.tools.ecc import sweep


@pytest.mark.parametrize("k, c", [(32, 7), (64, 8), (128, 9)])
def test_check_bits_are_the_standard_secded_widths(k, c):
    # (39, 32), (72, 64) and the real chip's (137, 128) SECDED codes
    assert check_bits(k) == c


def test_code_has_distance_four():
    # every nonzero codeword of an extended Hamming code has weight >= 4: the encoding of
    # each single data bit and of each pair differs from 0 in at least 4 stored bits
    L = 4
    k = 8 * L
    words = []
    for a in range(k):
        for b in range(a, k):
            x = np.zeros(k, np.uint8)
            x[a] ^= 1
            x[b] ^= 1
            words.append(np.packbits(x, bitorder="little"))
    words = np.array(words)
    chk = gecc.encode(words).astype(np.int64)
    weight = np.unpackbits(words, axis=-1).sum(axis=-1) + \
        np.array([bin(int(c)).count("1") for c in chk])
    nonzero = weight > 0
    assert (weight[nonzero] >= 4).all()
    assert len(set(data_positions(k))) == k


def _flip(data, check, bits, L):
    data, check = data.copy(), int(check)
    for b in bits:
        if b < 8 * L:
            data[b // 8] ^= 1 << (b % 8)
        else:
            check ^= 1 << (b - 8 * L)
    return data, check


@pytest.mark.parametrize("L", [4, 8])
def test_hdl_decoder_matches_golden_decoder(L):
    k = 8 * L
    n = k + check_bits(k)
    rng = np.random.default_rng(L)
    cases = []
    for i in range(240):
        data = rng.integers(0, 256, L, dtype=np.uint8)
        check = int(gecc.encode(data))
        nflip = i % 4  # 0, 1, 2 or 3 flipped bits
        bits = [int(b) for b in rng.choice(n, size=nflip, replace=False)]
        cases.append((data, check, *_flip(data, check, bits, L), nflip))
    enc, dec = EccEncoder(k), EccDecoder(k)
    top = Module()
    top.submodules.enc, top.submodules.dec = enc, dec
    got = []

    async def tb(ctx):
        for data, _check, fd, fc, _ in cases:
            ctx.set(enc.data, int.from_bytes(data.tobytes(), "little"))
            ctx.set(dec.data, int.from_bytes(fd.tobytes(), "little"))
            ctx.set(dec.check, fc)
            await ctx.delay(1e-9)
            got.append((ctx.get(enc.check), ctx.get(dec.out), ctx.get(dec.corrected),
                        ctx.get(dec.detected), ctx.get(dec.report)))

    sim = Simulator(top)
    sim.add_testbench(tb)
    sim.run()
    for (data, check, fd, fc, nflip), g in zip(cases, got, strict=True):
        ec, h_out, h_cor, h_det, h_rep = g
        assert ec == check  # the two encoders agree
        out, status, report = gecc.decode(fd, fc)
        assert h_rep == int(report)
        assert (h_cor, h_det) == (int(status == gecc.CORRECTED), int(status == gecc.DETECTED))
        assert h_out == int.from_bytes(out.tobytes(), "little")
        # the properties: 0 flips clean, 1 corrected to the original, 2 detected
        if nflip == 0:
            assert status == gecc.OK
        elif nflip == 1:
            assert status == gecc.CORRECTED and (out == data).all()
        elif nflip == 2:
            assert status == gecc.DETECTED


def test_golden_inject_and_host_read():
    chip = Chip("tiny")
    word = np.arange(8, dtype=np.uint8) * 37
    chip.write_mem("mem_e1", 100, word)
    chip.inject("mem_e1", 100, 3, superlane=1)  # data bit 3 of lane 0 of superlane 1
    assert (chip.read_mem("mem_e1", 100)[0] == word).all()
    assert chip.ecc_corrected == 1 and chip.error is None
    chip.inject("mem_e1", 100, 32 + 2, superlane=1)  # and a check bit: two flips
    got = chip.read_mem("mem_e1", 100)[0]
    stored = word.copy()
    stored[4] ^= 1 << 3  # superlane 1 starts at lane 4: returned as stored
    assert (got == stored).all()
    assert chip.error["address"] == 100 and chip.error["superlane"] == 1
    assert chip.error["position"] == config.load("tiny").queue("mem_e1").position
    chip.write_mem("mem_e1", 100, word)  # a write replaces the faulty word
    assert (chip.read_mem("mem_e1", 100)[0] == word).all()
    assert chip.ecc_corrected == 1


def test_sweeps_golden_full_and_rtl_sample():
    g = sweep("tiny", "golden")
    assert g["doubles"] == g["all_pairs"] == 39 * 38 // 2
    assert (g["corrected"], g["detected"]) == (g["singles"], g["doubles"]) == (39, 741)
    r = sweep("tiny", "amaranth", pairs=120, seed=3)
    assert (r["corrected"], r["detected"]) == (39, 120)
