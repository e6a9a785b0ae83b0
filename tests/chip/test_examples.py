"""Every example program on the golden model, with random data, against numpy."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _harness import TINY

from lpu.asm import assemble_file
from lpu.cli import main as lpu_main
from lpu.golden.chip import Chip
from lpu.trace import read_jsonl

pytestmark = [pytest.mark.chip]
EX = Path(__file__).resolve().parents[2] / "examples"
VL = TINY.vl
rng = np.random.default_rng(99)


def run_example(name, inputs):
    chip = Chip(TINY)
    for (slice_name, addr), arr in inputs.items():
        chip.write_tensor(slice_name, addr, arr)
    chip.load(assemble_file(EX / name, TINY))
    chip.run()
    return chip


def test_vector_add():
    a = rng.integers(-(1 << 31), 1 << 31, size=(1, VL)).astype(np.int32)
    b = rng.integers(-(1 << 31), 1 << 31, size=(1, VL)).astype(np.int32)
    chip = run_example("vector_add.s", {("mem_w0", 0): a, ("mem_e0", 0): b})
    want = ((a.astype(np.int64) + b) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    assert np.array_equal(chip.read_tensor("mem_e1", 8, 1, np.int32), want)


def test_fp32_multiply_add():
    a, b, c = (rng.standard_normal((1, VL)).astype(np.float32) for _ in range(3))
    chip = run_example("fp32_multiply_add.s", {("mem_w0", 0): a, ("mem_e0", 0): b,
                                               ("mem_w0", 4): c})
    want = (a * b) + c  # float32, rounded after each operation, as the chip does
    assert np.array_equal(chip.read_tensor("mem_e1", 8, 1, np.float32).view(np.uint32),
                          want.view(np.uint32))


def test_matrix_vector():
    w = rng.integers(-128, 128, size=(VL, VL)).astype(np.int8)
    x = rng.integers(-128, 128, size=(1, VL)).astype(np.int8)
    chip = run_example("matrix_vector.s", {("mem_w1", 20): w, ("mem_w0", 0): x})
    want = x.astype(np.int64) @ w.astype(np.int64)
    assert chip.read_tensor("mem_w1", 100, 1, np.int32).tolist() == want.tolist()


def test_lane_sum():
    x = rng.integers(-(1 << 20), 1 << 20, size=(1, VL)).astype(np.int32)
    chip = run_example("lane_sum.s", {("mem_w0", 0): x, ("mem_w1", 0): x})
    got = chip.read_tensor("mem_e0", 24, 1, np.int32)[0]
    assert got.tolist() == [int(x.sum())] * VL


def test_lpu_run_cli_with_npz_and_trace(tmp_path, capsys):
    a = rng.integers(-1000, 1000, size=(1, VL)).astype(np.int32)
    b = rng.integers(-1000, 1000, size=(1, VL)).astype(np.int32)
    np.savez(tmp_path / "in.npz", **{"mem_w0@0": a, "mem_e0@0": b})
    rc = lpu_main(["run", str(EX / "vector_add.s"), "--config", "tiny",
                   "--mem-in", str(tmp_path / "in.npz"), "--mem-out", str(tmp_path / "out.npz"),
                   "--trace", str(tmp_path / "t.jsonl"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and summary["instructions"] == 4 and summary["errors"] == []
    out = np.load(tmp_path / "out.npz")["mem_e1"]
    planes = out[8:12]  # byte planes of the int32 result
    got = np.ascontiguousarray(planes.T).view("<i4").reshape(-1)
    assert got.tolist() == (a + b)[0].tolist()
    events = read_jsonl(tmp_path / "t.jsonl")
    assert [e.cycle for e in events] == sorted(e.cycle for e in events)
    assert {e.kind for e in events} == {"dispatch", "sr", "sram"}
    assert summary["cycles"] == events[-1].cycle + 1


def test_lpu_run_errors_exit_1_without_traceback(tmp_path):
    bad = tmp_path / "bad.s"
    bad.write_text(".queue vxm0\n    mov e0, e1\n")  # reads a stream nobody wrote
    for argv in ([str(bad)], [str(tmp_path / "missing.s")], [str(bad), "--config", "nope"]):
        r = subprocess.run([sys.executable, "-m", "lpu.cli", "run", *argv, "--config", "tiny"]
                           if "--config" not in argv else
                           [sys.executable, "-m", "lpu.cli", "run", *argv],
                           capture_output=True, text=True)
        assert r.returncode == 1, r
        assert "Traceback" not in r.stderr and "error" in r.stderr
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "run", str(bad), "--config", "tiny",
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert not report["ok"] and "holds nothing" in report["errors"][0]
    assert f"{bad}:2" in report["errors"][0]
