"""Bad inputs to the commands: refused with a message naming the input and the problem,
exit status 1, no traceback, nothing run or written (the "Nothing gets in unchecked"
cases fixed so far)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpu import cli, config
from lpu.isa import encode, make
from lpu.program import Program

pytestmark = [pytest.mark.unit]
TINY = config.load("tiny")

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
           "--cycles must be at most 1,000,000")


def test_a_huge_integer_in_assembly_is_located(tmp_path, capsys):
    src = tmp_path / "big.s"
    src.write_text(".queue mem_w0\n    nop " + "9" * 100_000 + "\n")
    _fails(capsys, ["asm", str(src), "--config", "tiny"], "big.s:2:9:", "out of range")


@pytest.mark.parametrize("queue, ins, needle", [
    ("mxm_w0", make("read", 0, (0, 0)), "is a MEM instruction; queue mxm_w0 feeds a MXM slice"),
    ("sxm_w", make("iw"), "is a MXM instruction; queue sxm_w feeds a SXM slice"),
    ("mem_w0", make("iw"), "is a MXM instruction; queue mem_w0 feeds a MEM slice"),
    ("mem_w0", make("add", (0, 0), (0, 0), (0, 1)), "is a VXM instruction; queue mem_w0"),
])
def test_a_binary_with_an_instruction_of_another_slice_is_refused(tmp_path, capsys, queue,
                                                                 ins, needle):
    path = tmp_path / "p.bin"
    Program(TINY.hash, {queue: [encode(ins)]}).save(path)
    for extra in ([], ["--no-check"]):  # the checker and the model both refuse it
        _fails(capsys, ["run", str(path), "--config", "tiny", *extra], "p.bin", needle)


def test_a_binary_with_bits_outside_the_fields_is_refused(tmp_path, capsys):
    path = tmp_path / "p.bin"
    Program(TINY.hash, {"mem_w0": [encode(make("nop", 3)) | 1 << 31]}).save(path)
    _fails(capsys, ["run", str(path), "--config", "tiny"], "has bits set outside its fields")


def test_sram_images_are_checked(tmp_path, capsys):
    import numpy as np

    prog = str(EX / "vector_add.s")
    cases = {
        "wrong.npz": ({"mem_w0": np.zeros((2, 5), np.int32)}, "is not [n, VL] with VL = 8"),
        "f64.npz": ({"mem_w0": np.zeros((1, 8), np.float64)}, "dtype float64 is not one of"),
        "obj.npz": ({"mem_w0": np.array([None, 1], dtype=object)}, "cannot be read"),
    }
    for name, (arrays, needle) in cases.items():
        np.savez(tmp_path / name, **arrays)
        _fails(capsys, ["run", prog, "--config", "tiny", "--mem-in", str(tmp_path / name)],
               name, needle)
    np.save(tmp_path / "a.npy", np.zeros((1, 8), np.uint8))
    _fails(capsys, ["run", prog, "--config", "tiny", "--mem-in", str(tmp_path / "a.npy")],
           "a.npy", "must be a .npz file")


def test_sim_refuses_a_queue_longer_than_the_instruction_memory(tmp_path, capsys):
    path = tmp_path / "long.bin"
    words = [encode(make("nop", 1))] * (TINY.imem_words + 1)
    Program(TINY.hash, {"mem_w0": words}).save(path)
    _fails(capsys, ["sim", str(path), "--config", "tiny"], "long.bin",
           f"instruction memory holds {TINY.imem_words}")


def test_programs_are_recognised_by_content_and_sources_may_have_crlf_and_a_bom(tmp_path,
                                                                              capsys):
    src = tmp_path / "crlf.s"
    src.write_bytes(b"\xef\xbb\xbf.queue mem_w0\r\n    nop 2\r\n")
    out = tmp_path / "prog.dat"  # an assembled program under another suffix
    assert cli.main(["asm", str(src), "--config", "tiny", "-o", str(out)]) == 0
    assert cli.main(["run", str(out), "--config", "tiny"]) == 0
    fake = tmp_path / "src.bin"
    fake.write_text(".queue mem_w0\n    nop 1\n")
    _fails(capsys, ["run", str(fake), "--config", "tiny"], "src.bin", "not a program file")


def test_the_shipped_model_is_found_by_its_name(capsys):
    assert cli.main(["decode", "--model", "bytes-llama", "-n", "1", "--backend",
                     "exact"]) == 0
