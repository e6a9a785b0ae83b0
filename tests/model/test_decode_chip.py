"""Whole-model decoding: the shipped model on the golden chip model against the
LPU-exact numpy evaluation (bit for bit), and LPU-exact against float32."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lpu import config
from lpu.cli import main as lpu_main
from lpu.golden.model import exact as L
from lpu.golden.model.checkpoint import builtin_model_path, load_builtin
from lpu.golden.model.reference import logits_sequence
from lpu.golden.model.tokenizer import encode_bytes
from lpu.tools.compiler.decode import decode

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def model():
    return load_builtin()


@pytest.mark.slow
def test_golden_chip_decode_matches_lpu_exact(model):
    """8 tokens decoded on the golden chip: same tokens, logits equal bit for bit."""
    chip = decode(model, prompt="RO", n=7, config="small", backend="golden")
    exact = decode(model, prompt="RO", n=7, config="small", backend="exact")
    assert len(chip.logits) == 8
    assert chip.tokens == exact.tokens
    for a, b in zip(chip.logits, exact.logits, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    assert all(c > 0 for c in chip.cycles)
    assert chip.ratio_to_bound > 1.0  # no schedule beats the analytic bound


def test_lpu_exact_agrees_with_float32(model, capsys):
    """Teacher-forced over 256 held-out positions: top-1 agreement >= 95%."""
    text = (builtin_model_path() / "heldout.txt").read_bytes()[:256]
    toks = list(text)
    ref = logits_sequence(model, toks)
    ops = L.NumpyOps(config.load("small").vl)
    P = L.Prepared(ops, model, 256)
    agree = 0
    err = 0.0
    for pos, t in enumerate(toks):
        lg = L.decode_step(ops, P, t, pos).view(np.float32).reshape(-1)
        agree += int(lg.argmax() == ref[pos].argmax())
        err = max(err, float(np.abs(lg - ref[pos]).max()))
    rate = agree / len(toks)
    with capsys.disabled():
        print(f"\nLPU-exact vs float32: top-1 agreement {rate:.1%} over {len(toks)} positions, "
              f"max logit error {err:.3f}")
    assert rate >= 0.95


def test_bench_accuracy_counts_what_the_numpy_evaluation_gives(model, capsys):
    """`lpu bench accuracy` over 20 positions: the agreement and largest difference of
    the LPU-exact logits counted here position by position; bad counts refused."""
    n = 20
    toks = list((builtin_model_path() / "heldout.txt").read_bytes()[:n])
    ref = logits_sequence(model, toks)
    ops = L.NumpyOps(config.load("small").vl)
    P = L.Prepared(ops, model, 32)
    lg = [L.decode_step(ops, P, t, p).view(np.float32).reshape(-1) for p, t in enumerate(toks)]
    same = sum(int(a.argmax() == r.argmax()) for a, r in zip(lg, ref, strict=True))
    worst = max(float(np.abs(a.astype(np.float64) - r).max()) for a, r in zip(lg, ref, strict=True))
    assert lpu_main(["bench", "accuracy", "--positions", str(n), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["positions"] == n and out["top1_same"] == same
    assert out["max_logit_diff"] == pytest.approx(worst, abs=1e-4)
    for bad in ("0", "100000"):
        assert lpu_main(["bench", "accuracy", "--positions", bad]) != 0
        assert "--positions must be between 1 and" in capsys.readouterr().err


def test_decode_reference_backend_cli(capsys):
    assert lpu_main(["decode", "--backend", "reference", "--prompt", "ROMEO:", "-n", "12",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt_tokens"] == encode_bytes("ROMEO:")
    assert len(out["tokens"]) == 12 and out["text"].startswith("ROMEO:")
    # greedy decoding picks the arg max of the reference's logits
    m = load_builtin()
    seq = out["prompt_tokens"] + out["tokens"]
    ref = logits_sequence(m, seq[:-1])
    assert out["tokens"] == [int(ref[p].argmax()) for p in range(5, len(seq) - 1)]


def test_sampling_is_reproducible():
    a = decode("builtin", prompt="A", n=10, backend="reference", temperature=0.8, seed=3)
    b = decode("builtin", prompt="A", n=10, backend="reference", temperature=0.8, seed=3)
    assert a.tokens == b.tokens


@pytest.mark.parametrize("argv,needle", [
    (["--model", "/nonexistent/folder"], "/nonexistent/folder"),
    (["--tokens", "1,x"], "--tokens"),
    (["--tokens", "300"], "outside the vocabulary"),
    (["-n", "400", "--backend", "reference"], "exceed the context"),
    (["--config", "tiny"], "head_dim 16 must equal the vector length 8"),
])
def test_decode_errors(argv, needle):
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "decode", *argv],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_bad_checkpoint_cli(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"],
                                                       "model_type": "gpt2"}))
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "decode", "--model", str(tmp_path),
                        "--backend", "reference"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "config.json" in r.stderr


def test_decode_n_0_runs_the_prompt_and_generates_nothing():
    r = decode("builtin", prompt="ROMEO:", n=0, backend="exact")
    assert r.tokens == [] and r.text == "ROMEO:" and len(r.logits) == len("ROMEO:")
