"""Bad inputs to the commands: refused with a message naming the input and the problem,
exit status 1, no traceback, nothing run or written (the "Nothing gets in unchecked"
cases fixed so far)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpu import cli

pytestmark = [pytest.mark.unit]

EX = Path(__file__).resolve().parents[2] / "examples"


def _fails(capsys, argv, *needles):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_mem_out_must_be_an_npz_file(tmp_path, capsys):
    prog = str(EX / "vector_add.s")
    _fails(capsys, ["run", prog, "--mem-out", str(tmp_path)], str(tmp_path), "is a folder")
    _fails(capsys, ["run", prog, "--mem-out", str(tmp_path / "m.bin")], "m.bin",
           "must be a .npz file")
    assert not (tmp_path / "m.bin.npz").exists()
    assert cli.main(["run", prog, "--mem-out", str(tmp_path / "m.npz")]) == 0
    assert (tmp_path / "m.npz").is_file()


def test_trace_in_a_missing_folder_is_refused_before_running(tmp_path, capsys):
    bad = tmp_path / "no" / "t.jsonl"
    _fails(capsys, ["run", str(EX / "vector_add.s"), "--trace", str(bad)], str(bad),
           "no such folder")


@pytest.mark.parametrize("argv, needle", [
    (["--temperature", "nan"], "--temperature must be a finite number"),
    (["--temperature", "-1"], "--temperature must be a finite number"),
    (["--seed", "-3"], "--seed must be a whole number of at least 0"),
    (["--context", "100000"], "--context 100000 is outside 1..256"),
    (["--config", "tiny"], "head_dim 16 must equal the vector length 8"),
    (["--batch", "0"], "--batch must be a whole number of at least 1"),
])
def test_decode_options_are_checked(capsys, argv, needle):
    _fails(capsys, ["decode", "--backend", "exact", "-n", "1", *argv], needle)


def test_sim_cycle_counts_are_checked(capsys):
    _fails(capsys, ["sim", "--random", "3", "--cycles", "-5"], "--cycles must be at least 1")
    _fails(capsys, ["sim", "--random", "3", "--max-cycles", "0"],
           "--max-cycles must be at least 1")


@pytest.mark.parametrize("name", ["../x", "a b", "9top", "top;"])
def test_verilog_module_names_are_checked(tmp_path, capsys, name):
    _fails(capsys, ["verilog", "--config", "tiny", "-o", str(tmp_path), "--name", name],
           "is not a Verilog module name")
    assert not any(tmp_path.parent.glob("x.v"))


def test_verilog_refuses_a_file_as_its_folder_and_a_chip_too_large(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("")
    _fails(capsys, ["verilog", "--config", "tiny", "-o", str(f)], "is a file")
    _fails(capsys, ["verilog", "--config", "groq", "-o", str(tmp_path)], "too large")


def test_bench_cycles_are_bounded(capsys):
    _fails(capsys, ["bench", "golden", "--config", "tiny", "--cycles", "100000000"],
           "--cycles must be in 10..1,000,000")
