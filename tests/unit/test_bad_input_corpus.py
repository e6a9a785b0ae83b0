"""The bad-input corpus: every command and every input kind, one row per case.

Each row is a command line (``{d}`` is the folder of the corpus files, ``{ex}`` the
examples) and the property a correct answer has:

* ``refused(*needles)``: exit status 1, one message on standard error that starts
  ``lpu COMMAND: error:`` and holds every needle (the file and the place: line and
  column, key, byte offset, queue and word, array, tensor, option), no traceback;
* ``usage(*needles)``: exit status 2 (argparse: an option of the wrong type);
* ``ran(check)``: exit status 0 and ``check(d, out, err)`` holds (the result is right,
  not merely produced).

The files are written once per module by :func:`corpus` from the tables below.
Cases found by the seeded fuzz (tests/unit/test_loader_fuzz.py) go in here too.
"""

from __future__ import annotations

import json
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lpu import cli, config
from lpu.isa import encode, make
from lpu.program import MAGIC, Program

pytestmark = [pytest.mark.unit]

TINY = config.load("tiny")
EX = Path(__file__).resolve().parents[2] / "examples"
H = TINY.hash


@dataclass(frozen=True)
class Expect:
    status: int
    needles: tuple[str, ...] = ()
    check: object = None


def refused(*needles: str) -> Expect:
    return Expect(1, needles)


def usage(*needles: str) -> Expect:
    return Expect(2, needles)


def ran(check=None) -> Expect:
    return Expect(0, (), check)


# -- the corpus files ---------------------------------------------------------------------

def _prog(queues, hash_=H, isa=(1, 1)) -> bytes:
    return Program(hash_, queues, isa).to_bytes()


def _w(*a, **kw) -> int:
    return encode(make(*a, **kw))


def _header(nq: int, hash_: bytes = H.encode(), isa=(1, 1)) -> bytes:
    return MAGIC + struct.pack("<HH", *isa) + hash_ + struct.pack("<H", nq)


def _queue(name: bytes, words) -> bytes:
    return struct.pack("<B", len(name)) + name + struct.pack("<I", len(words)) + b"".join(
        struct.pack("<I", w) for w in words)


NOP1 = _w("nop", 1)

#: config files (YAML)
CONFIGS = {
    # systems of chips (lpu run --system; lpu.system)
    "sys_mesh.yaml": b"chip: {base: tiny, c2c_links: 2}\nchips: 2\ntopology: mesh\n",
    "sys_nolinks.yaml": b"chip: tiny\nchips: 2\ntopology: ring\n",
    "sys_odd.yaml": b"chip: {base: tiny, c2c_links: 2}\nchips: 3\ntopology: pairs\n",
    "sys_badchip.yaml": b"chip: {base: tiny, c2c_width: 9}\nchips: 2\ntopology: pairs\n",
    "utf8.yaml": b"base: tiny\nname: \xff\xfe\n",
    "dup.yaml": b"base: tiny\nstreams: 8\nstreams: 12\n",
    "bigint.yaml": b"base: tiny\nstreams: 1" + b"0" * 5000 + b"\n",
    "nan.yaml": b"base: tiny\nclock_mhz: .nan\n",
    "inf.yaml": b"base: tiny\nclock_mhz: .inf\n",
    "neg.yaml": b"base: tiny\nlanes: -4\n",
    "zero.yaml": b"base: tiny\nlanes: 0\n",
    "frac.yaml": b"base: tiny\nlanes: 2.5\n",
    "bool.yaml": b"base: tiny\nlanes: true\n",
    "ecc_text.yaml": b"base: tiny\necc: 'yes'\n",
    "ecc_int.yaml": b"base: tiny\necc: 1\n",
    "ecc_off.yaml": b"base: tiny\necc: false\n",
    "text.yaml": b"base: tiny\nstreams: many\n",
    "list.yaml": b"base: tiny\nstreams: [8]\n",
    "map.yaml": b"base: tiny\nstreams: {a: 1}\n",
    "null.yaml": b"base: tiny\nstreams: ~\n",
    "unknown.yaml": b"base: tiny\nlanez: 4\n",
    "missing.yaml": b"lanes: 4\n",
    "base_bad.yaml": b"base: huge\n",
    "base_list.yaml": b"base: [tiny]\n",
    "base_path.yaml": b"base: ../../etc/passwd\n",
    "name_list.yaml": b"base: tiny\nname: [1, 2]\n",
    "name_empty.yaml": b"base: tiny\nname: ''\n",
    "empty.yaml": b"",
    "top_list.yaml": b"- 1\n- 2\n",
    "top_scalar.yaml": b"42\n",
    "syntax.yaml": b"base: tiny\nlanes: [1\n",
    "tab.yaml": b"base: tiny\n\tlanes: 4\n",
    "tag.yaml": b"base: !!python/object/apply:os.system [echo]\n",
    "vl_big.yaml": b"base: tiny\nsuperlanes: 32\nlanes: 32\n",
    "vl_small.yaml": b"base: tiny\nsuperlanes: 1\nlanes: 2\n",
    "pow2.yaml": b"base: tiny\nmem_words: 1000\n",
    "imem_small.yaml": b"base: tiny\nimem_words: 8\n",
    "mem_big.yaml": b"base: tiny\nmem_words: 32768\n",
    "clock0.yaml": b"base: tiny\nclock_mhz: 0\n",
    "streams_big.yaml": b"base: tiny\nstreams: 33\n",
    "alus0.yaml": b"base: tiny\nvxm_alus: 0\n",
    "planes3.yaml": b"base: tiny\nmxm_planes: 3\n",
    "nul.yaml": b"base: tiny\x00\n",
    "float_text.yaml": b"base: tiny\nclock_mhz: !!float fast\n",
    "timestamp.yaml": b"base: tiny\nname: !!timestamp 2020-99-99x\n",
    "key_map.yaml": b"base: tiny\n? {a: 1}\n: 2\n",
    "key_set.yaml": b"base: tiny\n? !!set {a}\n: 2\n",
    "binary.yaml": b"base: tiny\nstreams: !!binary AAAA\n",
    "merge.yaml": b"<<: {streams: 8}\nbase: tiny\n",
    # good ones: each must load as the geometry it says
    "ok_bom.yaml": b"\xef\xbb\xbfbase: tiny\nstreams: 12\n",
    "ok_crlf.yaml": b"base: tiny\r\nstreams: 12\r\n",
    "ok_cr.yaml": b"base: tiny\rstreams: 12\r",
    "ok_hex.yaml": b"base: tiny\nstreams: 0xc\n",
    "ok_comment.yaml": b"# mine\nbase: tiny   # the base\nstreams: 12\n",
}

#: assembly sources (assembled with --config tiny)
SOURCES = {
    "op_unknown.s": ".queue mem_w0\n    frob 1\n",
    "op_typo.s": ".queue mem_w0\n    raed 0, e0\n",
    "op_slice.s": ".queue mem_w0\n    add e0, e1, e2\n",
    "op_mxm_in_sxm.s": ".queue sxm_w\n    iw\n",
    "outside.s": "    nop 1\n",
    "queue_unknown.s": ".queue mem_w9\n    nop 1\n",
    "queue_twice.s": ".queue mem_w0\n    nop 1\n.queue mem_w0\n    nop 1\n",
    "directive.s": ".section text\n",
    "queue_noname.s": ".queue\n",
    "queue_two.s": ".queue mem_w0 mem_w1\n",
    "config_other.s": ".config small\n.queue mem_w0\n    nop 1\n",
    "config_twice.s": ".config tiny\n.config tiny\n",
    "not_int.s": ".queue mem_w0\n    nop one\n",
    "huge_int.s": ".queue mem_w0\n    nop " + "9" * 100_000 + "\n",
    "float.s": ".queue mem_w0\n    nop 1.5\n",
    "too_many.s": ".queue mem_w0\n    nop 1, 2\n",
    "too_few.s": ".queue mem_w0\n    read\n",
    "empty_op.s": ".queue mem_w0\n    read 0, , 1\n",
    "no_comma.s": ".queue mem_w0\n    read 0 e0\n",
    "stream_range.s": ".queue mem_w0\n    read 0, e8\n",
    "stream_bad.s": ".queue mem_w0\n    read 0, x0\n",
    "held_mem.s": ".queue mem_w0\n    read 0, ve0\n",
    "dash_sr.s": ".queue mem_w0\n    write 0, -\n",
    "addr_range.s": ".queue mem_w0\n    read 256, e0\n",
    "addr_neg.s": ".queue mem_w0\n    read -1, e0\n",
    "bank_cross.s": ".queue mem_w0\n    read 126, e0, 4\n",
    "count_streams.s": ".queue mem_w0\n    read 0, e6, 4\n",
    "repeat_first.s": ".queue mem_w0\n    repeat 2, 1\n",
    "repeat_nop.s": ".queue mem_w0\n    nop 1\n    repeat 2, 1\n",
    "repeat_step.s": ".queue mem_w0\n    read 250, e0\n    repeat 8, 1, 1\n",
    "nop0.s": ".queue mem_w0\n    nop 0\n",
    "nop_big.s": ".queue mem_w0\n    nop 99999999\n",
    "shift_vl.s": ".queue sxm_w\n    shift e0, w0, 8\n",
    "slot.s": ".queue mxm_w0\n    mm -, w1, 16\n",
    "row.s": ".queue mxm_w0\n    lw 8, w0\n",
    "lane.s": ".queue sxm_w\n    bcast e0, w0, 8\n",
    "nul_byte.s": ".queue mem_w0\n    nop\x00 1\n",
    "unicode_op.s": ".queue mem_w0\n    nоp 1\n",  # a Cyrillic o
    "cr_error.s": ".queue mem_w0\r    nop 0\r",
    "sync.s": ".queue vxm0\n    nop 3\n    sync\n",
    "ok_empty.s": "",
    "ok_comments.s": "; nothing\n# at all\n",
    "ok_tabs.s": ".queue mem_w0\n\tread\t0,\te0\n",
    "ok_case.s": ".queue mem_w0\n    READ 0, E0\n",
    "ok_hex.s": ".queue mem_w0\n    read 0x10, e0\n",
}
SOURCE_BYTES = {
    "utf8.s": b".queue mem_w0\n    nop 1 ; \xff\n",
    "ok_bom.s": b"\xef\xbb\xbf.queue mem_w0\n    nop 2\n",
    "ok_crlf.s": b".queue mem_w0\r\n    nop 2\r\n    read 0, e0\r\n",
    "ok_cr.s": b".queue mem_w0\r    nop 2\r    read 0, e0\r",
}

#: binary programs (run with --config tiny)
BINARIES = {
    "empty.bin": b"",
    "magic3.bin": MAGIC[:3],
    "text.bin": b".queue mem_w0\n    nop 1\n",
    "header.bin": MAGIC + b"\x01\x00",
    "hash_ascii.bin": _header(0, b"\xff" * 12),
    "hash_hex.bin": _header(0, b"zzzzzzzzzzzz"),
    "hash_other.bin": _prog({"mem_w0": [NOP1]}, config.load("small").hash),
    "isa2.bin": _prog({"mem_w0": [NOP1]}, isa=(2, 0)),
    "isa19.bin": _prog({"mem_w0": [NOP1]}, isa=(1, 9)),
    "isa10_held.bin": _prog({"vxm0": [_w("add", (0, 0), (0, 0), (0, 1), la=1)]}, isa=(1, 0)),
    "nq_more.bin": _header(3) + _queue(b"mem_w0", [NOP1]),
    "qname_ascii.bin": _header(1) + _queue(b"mem_\xe90", [NOP1]),
    "qname_space.bin": _header(1) + _queue(b"mem w0", [NOP1]),
    "qname_empty.bin": _header(1) + _queue(b"", [NOP1]),
    "queue_twice.bin": _header(2) + _queue(b"mem_w0", [NOP1]) + _queue(b"mem_w0", [NOP1]),
    "queue_unknown.bin": _prog({"mem_w9": [NOP1]}),
    "words_short.bin": _header(1) + _queue(b"mem_w0", [NOP1, NOP1])[:-3],
    "trailing.bin": _prog({"mem_w0": [NOP1]}) + b"\0\0",
    "opcode.bin": _prog({"mem_w0": [0x3F]}),
    "bits.bin": _prog({"mem_w0": [NOP1 | 1 << 31]}),
    "vxm_in_mem.bin": _prog({"mem_w0": [_w("add", (0, 0), (0, 0), (0, 1))]}),
    "iw_in_mem.bin": _prog({"mem_w0": [_w("iw")]}),
    "read_in_mxm.bin": _prog({"mxm_w0": [_w("read", 0, (0, 0))]}),
    "iw_in_sxm.bin": _prog({"sxm_w": [_w("iw")]}),
    "mem_in_vxm.bin": _prog({"vxm0": [_w("write", 0, (0, 0))]}),
    "addr.bin": _prog({"mem_w0": [_w("read", 300, (0, 0))]}),
    "stream.bin": _prog({"vxm0": [_w("add", (12, 0), (0, 0), (0, 0))]}),
    "repeat.bin": _prog({"mem_w0": [_w("repeat", 2, 1)]}),
    "shift.bin": _prog({"sxm_w": [_w("shift", (0, 0), (0, 1), 20)]}),
    "bank.bin": _prog({"mem_w0": [_w("read", 126, (0, 0), 4)]}),
    "two_writers.bin": _prog({"mem_w0": [_w("read", 0, (0, 0))],
                              "vxm0": [_w("nop", 2), _w("mov", (1, 0), (0, 0))],
                              "vxm1": [_w("nop", 2), _w("mov", (1, 0), (0, 0))]}),
    "empty_read.bin": _prog({"mem_e1": [_w("write", 0, (0, 0))]}),
    "sync_alone.bin": _prog({"mem_w0": [_w("read", 0, (0, 0)), _w("sync")]}),
    "sync_early.bin": _prog({"mem_w0": [_w("sync"), _w("read", 0, (0, 0))]}),
    "ok_sync.bin": _prog({"mem_w0": [_w("sync"), _w("read", 0, (0, 0))],
                          "mem_w1": [_w("nop", 3), _w("notify")]}),
    "ok_nosuffix.dat": _prog({"mem_w0": [_w("read", 0, (0, 0))]}),
    "ok_none.bin": _prog({}),
    "ok_long.bin": _prog({"mem_w0": [NOP1] * (TINY.imem_words + 1)}),
}

#: SRAM images (--mem-in)
VL = TINY.vl
MEMS = {
    "wrong_vl.npz": {"mem_w0": np.zeros((2, 5), np.int32)},
    "one_d.npz": {"mem_w0": np.zeros(8, np.uint8)},
    "three_d.npz": {"mem_w0": np.zeros((1, 2, VL), np.uint8)},
    "f64.npz": {"mem_w0": np.zeros((1, VL), np.float64)},
    "f16.npz": {"mem_w0": np.zeros((1, VL), np.float16)},
    "bool.npz": {"mem_w0": np.zeros((1, VL), bool)},
    "obj.npz": {"mem_w0": np.array([None, 1], dtype=object)},
    "neg_addr.npz": {"mem_w0@-1": np.zeros((1, VL), np.uint8)},
    "addr_text.npz": {"mem_w0@ten": np.zeros((1, VL), np.uint8)},
    "addr_far.npz": {"mem_w0@250": np.zeros((8, VL), np.uint8)},
    "addr_huge.npz": {"mem_w0@" + "9" * 30: np.zeros((1, VL), np.uint8)},
    "i32_far.npz": {"mem_w0@254": np.zeros((1, VL), np.int32)},
    "slice.npz": {"mem_q9": np.zeros((1, VL), np.uint8)},
    "ok_empty.npz": {},
    "ok_nan.npz": {"mem_w0": np.full((1, VL), np.nan, np.float32)},
}


def _write_checkpoints(d: Path) -> None:
    from lpu.golden.model.checkpoint import (
        builtin_model_path,
        load_builtin,
        model_tensors,
        save_checkpoint,
    )

    cfg = json.loads((builtin_model_path() / "config.json").read_text())
    t = model_tensors(load_builtin())
    q0 = "model.layers.0.self_attn.q_proj.weight"

    def ck(name, c=cfg, tensors=t):
        save_checkpoint(d / name, c, tensors)

    ck("ck_1e30", tensors={**t, q0: t[q0] * 1e30})
    ck("ck_neg", tensors={**t, "model.norm.weight": t["model.norm.weight"] - 1e30})
    nan = t[q0].copy()
    nan[3, 4] = np.nan
    ck("ck_nan", tensors={**t, q0: nan})
    ck("ck_shape", tensors={**t, q0: t[q0][:-1]})
    ck("ck_missing", tensors={k: v for k, v in t.items() if k != q0})
    ck("ck_extra", tensors={**t, "model.layers.0.self_attn.q_proj.bias": t["model.norm.weight"]})
    ck("ck_int", tensors={**t, q0: t[q0].astype(np.int32)})
    ck("ck_type", c={**cfg, "model_type": "gpt2"})
    ck("ck_field", c={k: v for k, v in cfg.items() if k != "hidden_size"})
    ck("ck_negfield", c={**cfg, "num_hidden_layers": -1})
    ck("ck_odd", c={**cfg, "head_dim": 15})
    (d / "ck_nojson").mkdir()
    (d / "ck_nojson" / "config.json").write_text("{not json")
    (d / "ck_array").mkdir()
    (d / "ck_array" / "config.json").write_text("[1, 2]")
    (d / "ck_noweights").mkdir()
    (d / "ck_noweights" / "config.json").write_text(json.dumps(cfg))
    (d / "ck_badweights").mkdir()
    (d / "ck_badweights" / "config.json").write_text(json.dumps(cfg))
    (d / "ck_badweights" / "model.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not a header")
    (d / "ck_empty").mkdir()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    for name, blob in CONFIGS.items():
        (d / name).write_bytes(blob)
    for name, text in SOURCES.items():
        (d / name).write_text(text, encoding="utf-8")
    for name, blob in {**SOURCE_BYTES, **BINARIES}.items():
        (d / name).write_bytes(blob)
    for name, arrays in MEMS.items():
        np.savez(d / name, **arrays)
    np.save(d / "arr.npy", np.zeros((1, VL), np.uint8))
    (d / "npy_as.npz").write_bytes((d / "arr.npy").read_bytes())
    (d / "zip.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (d / "nosuffix").write_bytes(b"")
    (d / "noise.dat").write_bytes(bytes(range(128, 256)))
    (d / "folder").mkdir()
    (d / "folder.npz").mkdir()
    (d / "afile").write_text("")
    good = {"mem_w0": np.arange(4 * VL, dtype=np.uint8).reshape(4, VL)}
    np.savez(d / "ok_va.npz", **{"mem_w0": np.arange(VL, dtype=np.int32)[None] * 3,
                                 "mem_e0": np.arange(VL, dtype=np.int32)[None] - 100})
    np.savez(d / "ok_words.npz", **good)
    _write_checkpoints(d)
    return d


# -- checks of the good cases -------------------------------------------------------------

def _system_ran(d, out, err):
    """Both chips ran, and end where the golden system says (lpu.golden.system)."""
    from lpu.asm import assemble_file
    from lpu.golden.system import System

    ex = Path(__file__).resolve().parents[2] / "examples" / "c2c"
    s = System(ex / "system.yaml")
    s.load([assemble_file(ex / f"chip{i}.s", s.cfg.chip) for i in range(2)])
    ends = [r.end_cycle for r in s.run()]
    res = json.loads(out)
    return res["ok"] and [r["end_cycle"] for r in res["results"]] == ends


def _streams_12(d, out, err):
    return "12 streams/dir" in out


def _assembled(words: dict[str, list]):
    def check(d, out, err):
        prog = Program.load(d / "out.bin")
        return prog.queues == {q: [encode(make(*i)) for i in ins] for q, ins in words.items()}
    return check


def _vector_sum(d, out, err):
    with np.load(d / "sum.npz") as m:
        got = m["mem_e1"][8:12]
    a = np.arange(VL, dtype=np.int32) * 3
    b = np.arange(VL, dtype=np.int32) - 100
    planes = (a + b).astype("<i4").view(np.uint8).reshape(VL, 4).T
    return np.array_equal(got, planes)


def _no_tokens(d, out, err):
    r = json.loads(out)
    return r["tokens"] == [] and r["text"] == "ROMEO:\n"


def _one_token(d, out, err):
    return len(json.loads(out)["tokens"]) == 1


def _imem_warning(d, out, err):
    return f"holds {TINY.imem_words} per queue" in err and "ok_long.bin: 0 cycles" in out


def _ran_nothing(d, out, err):
    return "dispatched: none" in out


def _dispatched_read(d, out, err):
    return "mem_w0 1" in out


def _sram_words(d, out, err):
    with np.load(d / "words_out.npz") as m:
        return np.array_equal(m["mem_w0"][:4], np.arange(4 * VL, dtype=np.uint8).reshape(4, VL))


# -- the table ----------------------------------------------------------------------------

RUN = "run {ex}/vector_add.s --config tiny"
DEC = "decode --backend reference -n 1"
CASES: list[tuple[str, str, Expect]] = [
    # config files: lpu config FILE (and through --config of other commands)
    ("config-utf8", "config {d}/utf8.yaml", refused("utf8.yaml:2:7:", "not UTF-8")),
    ("config-dup", "config {d}/dup.yaml", refused("dup.yaml:3:1:", "'streams' is given twice")),
    ("config-bigint", "config {d}/bigint.yaml", refused("bigint.yaml:2:10:", "too long")),
    ("config-nan", "config {d}/nan.yaml", refused("nan.yaml", "'clock_mhz'", "nan")),
    ("config-inf", "config {d}/inf.yaml", refused("inf.yaml", "'clock_mhz'", "inf")),
    ("config-neg", "config {d}/neg.yaml", refused("neg.yaml", "'lanes'", "-4")),
    ("config-zero", "config {d}/zero.yaml", refused("zero.yaml", "'lanes'", "from 1 to 64")),
    ("config-frac", "config {d}/frac.yaml", refused("frac.yaml", "'lanes'", "whole number")),
    ("config-bool", "config {d}/bool.yaml", refused("bool.yaml", "'lanes'", "True")),
    ("config-ecc-text", "config {d}/ecc_text.yaml", refused("ecc_text.yaml", "'ecc'", "'yes'")),
    ("config-ecc-int", "config {d}/ecc_int.yaml", refused("ecc_int.yaml", "'ecc'", "1")),
    ("config-text", "config {d}/text.yaml", refused("text.yaml", "'streams'", "'many'")),
    ("config-list", "config {d}/list.yaml", refused("list.yaml", "'streams'", "[8]")),
    ("config-map", "config {d}/map.yaml", refused("map.yaml", "'streams'")),
    ("config-null", "config {d}/null.yaml", refused("null.yaml", "'streams'", "None")),
    ("config-unknown", "config {d}/unknown.yaml", refused("unknown.yaml", "unknown key 'lanez'")),
    ("config-missing", "config {d}/missing.yaml",
     refused("missing.yaml", "missing key 'superlanes'")),
    ("config-base", "config {d}/base_bad.yaml", refused("base_bad.yaml", "key 'base'", "huge")),
    ("config-base-list", "config {d}/base_list.yaml", refused("base_list.yaml", "key 'base'")),
    ("config-base-path", "config {d}/base_path.yaml", refused("base_path.yaml", "key 'base'")),
    ("config-name-list", "config {d}/name_list.yaml", refused("name_list.yaml", "key 'name'")),
    ("config-name-empty", "config {d}/name_empty.yaml", refused("name_empty.yaml", "key 'name'")),
    ("config-empty", "config {d}/empty.yaml", refused("empty.yaml", "missing key")),
    ("config-top-list", "config {d}/top_list.yaml", refused("top_list.yaml", "expected a mapping")),
    ("config-top-scalar", "config {d}/top_scalar.yaml",
     refused("top_scalar.yaml", "expected a mapping")),
    ("config-syntax", "config {d}/syntax.yaml", refused("syntax.yaml:", "not valid YAML")),
    ("config-tab", "config {d}/tab.yaml", refused("tab.yaml:2:1:", "not valid YAML")),
    ("config-tag", "config {d}/tag.yaml", refused("tag.yaml:1:7:", "not valid YAML")),
    ("config-vl-big", "config {d}/vl_big.yaml", refused("vl_big.yaml", "exceeds 512")),
    ("config-vl-small", "config {d}/vl_small.yaml", refused("vl_small.yaml", "below 4")),
    ("config-pow2", "config {d}/pow2.yaml", refused("pow2.yaml", "'mem_words'", "power of two")),
    ("config-imem", "config {d}/imem_small.yaml", refused("imem_small.yaml", "'imem_words'")),
    ("config-mem-big", "config {d}/mem_big.yaml", refused("mem_big.yaml", "'mem_words'")),
    ("config-clock0", "config {d}/clock0.yaml", refused("clock0.yaml", "'clock_mhz'")),
    ("config-streams", "config {d}/streams_big.yaml", refused("streams_big.yaml", "'streams'")),
    ("config-alus", "config {d}/alus0.yaml", refused("alus0.yaml", "'vxm_alus'")),
    ("config-planes", "config {d}/planes3.yaml", refused("planes3.yaml", "'mxm_planes'")),
    ("config-nul", "config {d}/nul.yaml", refused("nul.yaml:1:", "not valid YAML")),
    ("config-float-text", "config {d}/float_text.yaml",
     refused("float_text.yaml:2:12:", "cannot read 'fast' as a float")),
    ("config-timestamp", "config {d}/timestamp.yaml",
     refused("timestamp.yaml:2:7:", "as a timestamp")),
    ("config-key-map", "config {d}/key_map.yaml", refused("key_map.yaml:2:3:", "a key must be")),
    ("config-key-set", "config {d}/key_set.yaml", refused("key_set.yaml:2:3:", "a key must be")),
    ("config-binary", "config {d}/binary.yaml", refused("binary.yaml", "key 'streams'")),
    ("config-merge", "config {d}/merge.yaml", refused("merge.yaml:1:1:", "not valid YAML")),
    ("config-nofile", "config {d}/nosuch.yaml", refused("nosuch.yaml", "no such config file")),
    ("config-folder", "config {d}/folder/", refused("folder", "no such config file")),
    ("config-preset", "config nosuch", refused("unknown preset 'nosuch'")),
    ("config-via-run", RUN.replace("tiny", "{d}/dup.yaml"), refused("dup.yaml:3:1:")),
    ("config-via-asm", "asm {d}/ok_empty.s -o {d}/out.bin --config {d}/bigint.yaml",
     refused("bigint.yaml:2:10:")),
    ("config-via-decode", DEC + " --config {d}/utf8.yaml", refused("utf8.yaml:2:7:")),
    ("config-ok-bom", "config {d}/ok_bom.yaml", ran(_streams_12)),
    ("config-ok-crlf", "config {d}/ok_crlf.yaml", ran(_streams_12)),
    ("config-ok-cr", "config {d}/ok_cr.yaml", ran(_streams_12)),
    ("config-ok-hex", "config {d}/ok_hex.yaml", ran(_streams_12)),
    ("config-ok-comment", "config {d}/ok_comment.yaml", ran(_streams_12)),

    # assembly sources: lpu asm FILE --config tiny
    *[(f"asm-{name[:-2]}", f"asm {{d}}/{name} --config tiny -o {{d}}/out.bin", refused(*needles))
      for name, needles in {
          "op_unknown.s": ("op_unknown.s:2:5:", "unknown opcode 'frob'"),
          "op_typo.s": ("op_typo.s:2:5:", "did you mean 'read'"),
          "op_slice.s": ("op_slice.s:2:5:", "vxm instruction"),
          "op_mxm_in_sxm.s": ("op_mxm_in_sxm.s:2:5:", "mxm instruction"),
          "outside.s": ("outside.s:1:5:", "outside any .queue"),
          "queue_unknown.s": ("queue_unknown.s:1:8:", "unknown queue 'mem_w9'"),
          "queue_twice.s": ("queue_twice.s:3:8:", "already has a section"),
          "directive.s": ("directive.s:1:1:", "unknown directive"),
          "queue_noname.s": ("queue_noname.s:1:1:", "needs a queue name"),
          "queue_two.s": ("queue_two.s:1:15:", "unexpected 'mem_w1'"),
          "config_other.s": ("config_other.s:1:9:", "config 'small'"),
          "config_twice.s": ("config_twice.s:2:9:", "a second .config"),
          "not_int.s": ("not_int.s:2:9:", "not an integer"),
          "huge_int.s": ("huge_int.s:2:9:", "out of range"),
          "float.s": ("float.s:2:9:", "not an integer"),
          "too_many.s": ("too_many.s:2:12:", "takes 0 to 1 operands"),
          "too_few.s": ("too_few.s:2:", "missing 'addr'"),
          "empty_op.s": ("empty_op.s:2:", "empty operand"),
          "no_comma.s": ("no_comma.s:2:", "missing ','"),
          "stream_range.s": ("stream_range.s:2:13:", "e8 is out of range"),
          "stream_bad.s": ("stream_bad.s:2:13:", "is not a stream"),
          "held_mem.s": ("held_mem.s:2:13:", "held value"),
          "dash_sr.s": ("dash_sr.s:2:", "not a stream"),
          "addr_range.s": ("addr_range.s:2:10:", "256 is out of range 0..255"),
          "addr_neg.s": ("addr_neg.s:2:10:", "out of range"),
          "bank_cross.s": ("bank_cross.s:2:", "cross from bank 0 to bank 1"),
          "count_streams.s": ("count_streams.s:2:", "past stream 7"),
          "repeat_first.s": ("repeat_first.s:2:5:", "follows nothing"),
          "repeat_nop.s": ("repeat_nop.s:3:5:", "follows 'nop'"),
          "repeat_step.s": ("repeat_step.s:3:", "copy 6"),
          "nop0.s": ("nop0.s:2:9:", "out of range"),
          "nop_big.s": ("nop_big.s:2:9:", "out of range"),
          "shift_vl.s": ("shift_vl.s:2:", "out of range -7..7"),
          "slot.s": ("slot.s:2:", "'slot' = 16"),
          "row.s": ("row.s:2:", "out of range 0..7"),
          "lane.s": ("lane.s:2:", "'lane' = 8"),
          "nul_byte.s": ("nul_byte.s:2:", ""),
          "unicode_op.s": ("unicode_op.s:2:5:", "unknown opcode"),
          "cr_error.s": ("cr_error.s:2:9:", "out of range"),
          "utf8.s": ("utf8.s:2:13:", "not UTF-8"),
      }.items()],
    ("asm-nofile", "asm {d}/nosuch.s", refused("nosuch.s", "cannot read")),
    ("asm-folder", "asm {d}/folder", refused("folder", "cannot read")),
    ("asm-ok-config-line", "asm {d}/config_other.s", ran()),  # .config small: a preset
    ("asm-ok-empty", "asm {d}/ok_empty.s --config tiny -o {d}/out.bin", ran(_assembled({}))),
    ("asm-ok-comments", "asm {d}/ok_comments.s --config tiny -o {d}/out.bin",
     ran(_assembled({}))),
    ("asm-ok-tabs", "asm {d}/ok_tabs.s --config tiny -o {d}/out.bin",
     ran(_assembled({"mem_w0": [("read", 0, (0, 0))]}))),
    ("asm-ok-case", "asm {d}/ok_case.s --config tiny -o {d}/out.bin",
     ran(_assembled({"mem_w0": [("read", 0, (0, 0))]}))),
    ("asm-ok-hex", "asm {d}/ok_hex.s --config tiny -o {d}/out.bin",
     ran(_assembled({"mem_w0": [("read", 16, (0, 0))]}))),
    ("asm-ok-bom", "asm {d}/ok_bom.s --config tiny -o {d}/out.bin",
     ran(_assembled({"mem_w0": [("nop", 2)]}))),
    ("asm-ok-crlf", "asm {d}/ok_crlf.s --config tiny -o {d}/out.bin",
     ran(_assembled({"mem_w0": [("nop", 2), ("read", 0, (0, 0))]}))),
    ("asm-ok-cr", "asm {d}/ok_cr.s --config tiny -o {d}/out.bin",
     ran(_assembled({"mem_w0": [("nop", 2), ("read", 0, (0, 0))]}))),
    ("run-not-text", "run {d}/noise.dat --config tiny",
     refused("noise.dat:1:1:", "neither an assembled program", "nor UTF-8 text")),
    ("run-source-error", "run {d}/addr_range.s --config tiny", refused("addr_range.s:2:10:")),
    # systems of chips: lpu run --system S.yaml P0 P1
    ("run-system-topology", "run --system {d}/sys_mesh.yaml {ex}/c2c/chip0.s {ex}/c2c/chip1.s",
     refused("sys_mesh.yaml: key 'topology'", "'mesh'")),
    ("run-system-no-links", "run --system {d}/sys_nolinks.yaml {ex}/c2c/chip0.s "
     "{ex}/c2c/chip1.s", refused("sys_nolinks.yaml: key 'topology'", "needs 2 C2C links")),
    ("run-system-odd-pairs", "run --system {d}/sys_odd.yaml {ex}/c2c/chip0.s {ex}/c2c/chip1.s",
     refused("sys_odd.yaml: key 'chips'", "even number")),
    ("run-system-chip-key", "run --system {d}/sys_badchip.yaml {ex}/c2c/chip0.s "
     "{ex}/c2c/chip1.s", refused("sys_badchip.yaml: key 'chip'", "key 'c2c_width'")),
    ("run-system-programs", "run --system {ex}/c2c/system.yaml {ex}/c2c/chip0.s",
     refused("system.yaml: a system of 2 chips runs 2 programs", "not 1")),
    ("run-system-config", "run --system {ex}/c2c/system.yaml {ex}/c2c/chip0.s "
     "{ex}/c2c/chip1.s --config tiny", refused("--config and --system")),
    ("run-system-mem-in", "run --system {ex}/c2c/system.yaml {ex}/c2c/chip0.s {ex}/c2c/chip1.s "
     "--mem-in - --mem-in - --mem-in -", refused("--mem-in is given 3 times for 2 chips")),
    ("run-system-link", "run --system {ex}/c2c/system.yaml {ex}/c2c/chip0.s {ex}/c2c/chip0.s",
     refused("chip 0, ", "chip0.s:13, cycle 6, queue c2c_e", "link 1", "no recv takes them")),
    ("run-two-programs", "run {ex}/vector_add.s {ex}/lane_sum.s",
     refused("one program runs on one chip, not 2", "--system")),
    ("run-system-ok", "run --system {ex}/c2c/system.yaml {ex}/c2c/chip0.s {ex}/c2c/chip1.s "
     "--mem-in - --json", ran(_system_ran)),

    # binary programs: lpu run FILE --config tiny
    *[(f"bin-{name[:-4]}", f"run {{d}}/{name} --config tiny", refused(name, *needles))
      for name, needles in {
          "empty.bin": ("not a program file",),
          "magic3.bin": ("not a program file",),
          "text.bin": ("not a program file",),
          "header.bin": ("truncated at byte 4",),
          "hash_ascii.bin": ("byte 8", "not ASCII"),
          "hash_hex.bin": ("byte 8", "hex digits"),
          "hash_other.bin": ("built for config hash",),
          "isa2.bin": ("built for ISA 2.0",),
          "isa19.bin": ("built for ISA 1.9",),
          "isa10_held.bin": ("queue vxm0 word 0", "held-read flag"),
          "nq_more.bin": ("truncated at byte 37", "queue name length"),
          "qname_ascii.bin": ("byte 23", "not ASCII"),
          "qname_space.bin": ("byte 23", "'mem w0' is not a name"),
          "qname_empty.bin": ("byte 23", "'' is not a name"),
          "queue_twice.bin": ("byte 38", "queue mem_w0 is given twice"),
          "queue_unknown.bin": ("queue 'mem_w9' does not exist",),
          "words_short.bin": ("truncated at byte 33", "2 words of queue mem_w0"),
          "trailing.bin": ("byte 37", "2 bytes of trailing garbage"),
          "opcode.bin": ("byte 33", "queue mem_w0 word 0", "unknown opcode 63"),
          "bits.bin": ("byte 33", "queue mem_w0 word 0", "bits set outside its fields"),
          "vxm_in_mem.bin": ("word 0", "is a VXM instruction; queue mem_w0 feeds a MEM"),
          "iw_in_mem.bin": ("word 0", "is a MXM instruction; queue mem_w0 feeds a MEM"),
          "read_in_mxm.bin": ("word 0", "is a MEM instruction; queue mxm_w0 feeds a MXM"),
          "iw_in_sxm.bin": ("word 0", "is a MXM instruction; queue sxm_w feeds a SXM"),
          "mem_in_vxm.bin": ("word 0", "is a MEM instruction; queue vxm0 feeds a VXM"),
          "addr.bin": ("queue mem_w0 word 0", "'addr' = 300"),
          "stream.bin": ("queue vxm0 word 0", "'dst' = e12"),
          "repeat.bin": ("queue mem_w0 word 0", "follows nothing"),
          "shift.bin": ("queue sxm_w word 0", "'n' = 20"),
          "bank.bin": ("queue mem_w0 word 0", "cross from bank 0"),
          "two_writers.bin": ("queue vxm1 word 1", "cycle 2"),
          "empty_read.bin": ("queue mem_e1 word 0", "holds nothing"),
          "sync_early.bin": ("queue mem_w0 word 0", "sync is never released"),
      }.items()],
    *[(f"bin-nocheck-{name[:-4]}", f"run {{d}}/{name} --config tiny --no-check",
       refused(name, "word 0", needle))
      for name, needle in {"vxm_in_mem.bin": "VXM instruction", "iw_in_mem.bin": "MXM",
                           "read_in_mxm.bin": "MEM instruction", "bits.bin": "bits set",
                           "addr.bin": "'addr' = 300", "repeat.bin": "follows nothing"}.items()],
    *[(f"disasm-{name[:-4]}", f"disasm {{d}}/{name} --config tiny", refused(name, *needles))
      for name, needles in {
          "bits.bin": ("byte 33", "word 0", "bits set outside"),
          "opcode.bin": ("byte 33", "unknown opcode"),
          "vxm_in_mem.bin": ("word 0", "VXM instruction"),
          "trailing.bin": ("byte 37", "trailing"),
          "hash_other.bin": ("built for config hash",),
          "addr.bin": ("word 0", "'addr' = 300"),
          "empty.bin": ("truncated at byte 0",),
      }.items()],
    ("disasm-source", "disasm {d}/ok_tabs.s", refused("ok_tabs.s", "is an assembly source")),
    ("disasm-nofile", "disasm {d}/nosuch.bin", refused("nosuch.bin", "cannot read")),
    ("disasm-folder", "disasm {d}/folder", refused("folder", "cannot read")),
    ("bin-nofile", "run {d}/nosuch.bin --config tiny", refused("nosuch.bin", "no such file")),
    ("bin-folder", "run {d}/folder --config tiny", refused("folder", "no such file")),
    ("timeline-bin", "timeline --program {d}/vxm_in_mem.bin --config tiny",
     refused("vxm_in_mem.bin", "word 0", "VXM instruction")),
    ("sim-bin", "sim {d}/bits.bin --config tiny", refused("bits.bin", "byte 33", "bits set")),
    ("sim-long", "sim {d}/ok_long.bin --config tiny",
     refused("ok_long.bin", "queue mem_w0", f"holds {TINY.imem_words}")),
    ("bin-ok-nosuffix", "run {d}/ok_nosuffix.dat --config tiny", ran(_dispatched_read)),
    ("bin-ok-sync", "run {d}/ok_sync.bin --config tiny",
     ran(lambda d, out, err: "mem_w0 1" in out)),
    # a queue's last word may be a sync, released or not (docs/timing.md, the end of a run)
    ("bin-ok-sync-last", "run {d}/sync_alone.bin --config tiny", ran(_dispatched_read)),
    ("asm-ok-sync-last", "run {d}/sync.s --config tiny", ran(_ran_nothing)),
    ("bin-ok-none", "run {d}/ok_none.bin --config tiny", ran(_ran_nothing)),
    ("bin-ok-long", "run {d}/ok_long.bin --config tiny", ran(_imem_warning)),
    ("disasm-ok-nosuffix", "disasm {d}/ok_nosuffix.dat --config tiny",
     ran(lambda d, out, err: "read 0, e0, 1" in out)),

    # SRAM images: --mem-in
    *[(f"mem-{name[:-4]}", RUN + f" --mem-in {{d}}/{name}", refused(name, *needles))
      for name, needles in {
          "wrong_vl.npz": ("array 'mem_w0'", "shape (2, 5) is not [n, VL] with VL = 8"),
          "one_d.npz": ("array 'mem_w0'", "shape (8,)"),
          "three_d.npz": ("array 'mem_w0'", "shape (1, 2, 8)"),
          "f64.npz": ("array 'mem_w0'", "dtype float64"),
          "f16.npz": ("array 'mem_w0'", "dtype float16"),
          "bool.npz": ("array 'mem_w0'", "dtype bool"),
          "obj.npz": ("array 'mem_w0'", "cannot be read"),
          "neg_addr.npz": ("array 'mem_w0@-1'", "negative"),
          "addr_text.npz": ("array 'mem_w0@ten'", "not a number"),
          "addr_far.npz": ("array 'mem_w0@250'", "250..257 are outside"),
          "addr_huge.npz": ("array 'mem_w0@999", "outside"),
          "i32_far.npz": ("array 'mem_w0@254'", "254..257 are outside"),
          "slice.npz": ("array 'mem_q9'", "no MEM slice 'mem_q9'"),
          "npy_as.npz": ("not a zip of arrays",),
          "zip.npz": ("cannot read as .npz",),
          "arr.npy": ("must be a .npz file",),
          "nosuffix": ("must be a .npz file",),
          "folder.npz": ("is a folder",),
          "nosuch.npz": ("no such file",),
      }.items()],
    ("sim-mem", "sim {ex}/vector_add.s --config tiny --mem-in {d}/wrong_vl.npz",
     refused("wrong_vl.npz", "array 'mem_w0'")),
    ("mem-ok-empty", RUN + " --mem-in {d}/ok_empty.npz", ran()),
    ("mem-ok-nan", RUN + " --mem-in {d}/ok_nan.npz", ran()),
    ("mem-ok-sum", RUN + " --mem-in {d}/ok_va.npz --mem-out {d}/sum.npz", ran(_vector_sum)),
    ("mem-ok-words", "run {d}/ok_empty.s --config tiny --mem-in {d}/ok_words.npz "
     "--mem-out {d}/words_out.npz", ran(_sram_words)),

    # checkpoints: lpu decode --model DIR
    *[(f"model-{name[3:]}", DEC + f" --model {{d}}/{name}", refused(name, *needles))
      for name, needles in {
          "ck_1e30": ("model.safetensors", "q_proj.weight", "within +-65504"),
          "ck_neg": ("model.norm.weight", "within +-65504"),
          "ck_nan": ("q_proj.weight", "non-finite"),
          "ck_shape": ("q_proj.weight", "has shape"),
          "ck_missing": ("missing tensor", "q_proj.weight"),
          "ck_extra": ("unexpected tensor", "q_proj.bias"),
          "ck_int": ("q_proj.weight", "dtype I32"),
          "ck_type": ("config.json", "'model_type'"),
          "ck_field": ("config.json", "missing field 'hidden_size'"),
          "ck_negfield": ("config.json", "'num_hidden_layers'"),
          "ck_odd": ("config.json", "'head_dim'"),
          "ck_nojson": ("config.json:1:2:", "not valid JSON"),
          "ck_array": ("config.json", "expected a JSON object"),
          "ck_noweights": ("model.safetensors", "missing file"),
          "ck_badweights": ("model.safetensors", "not a readable safetensors file"),
          "ck_empty": ("config.json", "missing file"),
      }.items()],
    ("model-nofolder", DEC + " --model {d}/nosuch", refused("nosuch", "no such checkpoint")),
    ("model-file", DEC + " --model {d}/afile", refused("afile", "no such checkpoint folder")),
    ("model-ok-name", "decode --backend reference -n 1 --json --model bytes-llama",
     ran(_one_token)),

    # output paths
    ("out-trace-folder", RUN + " --trace {d}/folder", refused("folder", "is a folder")),
    ("out-trace-missing", RUN + " --trace {d}/no/t.jsonl", refused("t.jsonl", "no such folder")),
    ("out-trace-slash", RUN + " --trace {d}/newdir/", refused("newdir/", "is a folder")),
    ("out-mem-folder", RUN + " --mem-out {d}/folder", refused("folder", "is a folder")),
    ("out-mem-suffix", RUN + " --mem-out {d}/m.bin", refused("m.bin", "must be a .npz file")),
    ("out-mem-missing", RUN + " --mem-out {d}/no/m.npz", refused("m.npz", "no such folder")),
    ("out-asm-folder", "asm {d}/ok_tabs.s --config tiny -o {d}/folder",
     refused("folder", "is a folder")),
    ("out-asm-self", "asm {d}/ok_tabs.s --config tiny -o {d}/ok_tabs.s",
     refused("ok_tabs.s", "is also the command's input", "overwrite")),
    ("out-asm-missing", "asm {d}/ok_tabs.s --config tiny -o {d}/no/x.bin",
     refused("x.bin", "no such folder")),
    ("out-asm-slash", "asm {d}/ok_tabs.s --config tiny -o {d}/newdir/",
     refused("newdir/", "is a folder")),
    ("out-disasm-folder", "disasm {d}/ok_nosuffix.dat -o {d}/folder",
     refused("folder", "is a folder")),
    ("out-disasm-self", "disasm {d}/ok_nosuffix.dat -o {d}/ok_nosuffix.dat",
     refused("ok_nosuffix.dat", "would overwrite it")),
    ("out-trace-program", "run {d}/ok_tabs.s --config tiny --trace {d}/ok_tabs.s",
     refused("ok_tabs.s", "the trace would overwrite it")),
    ("out-trace-mem-in", RUN + " --mem-in {d}/ok_va.npz --trace {d}/ok_va.npz",
     refused("ok_va.npz", "the trace would overwrite it")),
    ("out-mem-program", "run {d}/ok_nosuffix.dat --config tiny --mem-out {d}/ok_nosuffix.dat",
     refused("ok_nosuffix.dat", "the SRAM image would overwrite it")),
    ("out-sim-vcd-program", "sim {d}/ok_tabs.s --config tiny --vcd {d}/ok_tabs.s",
     refused("ok_tabs.s", "the waveform would overwrite it")),
    ("out-timeline-program", "timeline --program {d}/ok_tabs.s --config tiny --json "
     "{d}/ok_tabs.s", refused("ok_tabs.s", "would overwrite it")),
    ("out-random-folder", "random --seed 1 -o {d}/folder", refused("folder", "is a folder")),
    ("out-random-mem", "random --seed 1 -o {d}/r.s --mem-out {d}/folder",
     refused("folder", "is a folder")),
    ("out-random-mem-suffix", "random --seed 1 -o {d}/r.s --mem-out {d}/r.dat",
     refused("r.dat", "must be a .npz file")),
    ("out-sim-vcd-folder", "sim {ex}/vector_add.s --config tiny --vcd {d}/folder",
     refused("folder", "is a folder")),
    ("out-sim-vcd-missing", "sim {ex}/vector_add.s --config tiny --vcd {d}/no/w.vcd",
     refused("w.vcd", "no such folder")),
    ("out-verilog-file", "verilog --config tiny -o {d}/afile", refused("afile", "is a file")),
    ("out-isadoc-folder", "isadoc -o {d}/folder", refused("folder", "is a folder")),
    ("out-isadoc-missing", "isadoc -o {d}/no/isa.md", refused("isa.md", "no such folder")),
    ("out-timeline-missing", "timeline --program {ex}/vector_add.s --config tiny --json "
     "{d}/no/t.json", refused("t.json", "cannot write")),
    ("out-directed-file", "directed --config tiny --write {d}/afile",
     refused("afile", "is a file")),

    # flags
    ("decode-n-neg", DEC.replace("-n 1", "-n -1"), refused("-n must be at least 0")),
    ("decode-n-0", "decode --backend reference -n 0 --json", ran(_no_tokens)),
    ("decode-temp-nan", DEC + " --temperature nan", refused("--temperature", "nan")),
    ("decode-temp-neg", DEC + " --temperature -1", refused("--temperature", "-1")),
    ("decode-temp-inf", DEC + " --temperature inf", refused("--temperature", "inf")),
    ("decode-seed-neg", DEC + " --seed -3", refused("--seed", "-3")),
    ("decode-context-0", DEC + " --context 0", refused("--context 0", "1..256")),
    ("decode-context-big", DEC + " --context 100000", refused("--context 100000", "1..256")),
    ("decode-context-short", DEC + " --context 4", refused("exceed the context of 4")),
    ("decode-batch-0", DEC + " --batch 0", refused("--batch", "0")),
    ("decode-batch-big", DEC + " --batch 100000", refused("--batch must be at most 256")),
    ("decode-tokens-text", DEC + " --tokens 1,x", refused("--tokens", "'1,x'")),
    ("decode-tokens-vocab", DEC + " --tokens 999", refused("token 999", "0..255")),
    ("decode-tokens-neg", DEC + " --tokens=-1", refused("token -1")),
    ("decode-tokens-empty", DEC + " --tokens ,", refused("prompt is empty")),
    ("decode-prompt-bytes", DEC + " --prompt \udcff", refused("--prompt", "byte 0xff")),
    ("decode-prompt-empty", DEC + " --prompt=", refused("prompt is empty")),
    ("decode-exact-tiny", "decode --backend exact -n 1 --config tiny",
     refused("head_dim 16 must equal the vector length 8")),
    ("decode-n-text", DEC.replace("-n 1", "-n x"), usage()),
    ("decode-backend", DEC + " --backend nosuch", usage()),
    ("decode-baud-alone", "decode -n 1 --baud 9600", refused("--baud", "--board DEV")),
    ("decode-board-backend", "decode -n 1 --board sim --backend exact",
     refused("--board", "--backend exact")),
    ("decode-board-sim-baud", "decode -n 1 --board sim --baud 9600",
     refused("--baud", "simulated board")),
    ("decode-board-baud-0", "decode -n 1 --board /dev/null --baud 0",
     refused("--baud must be a positive")),
    ("decode-board-empty", "decode -n 1 --board=", refused("--board", "'sim'")),
    ("decode-board-chips", "decode -n 1 --board sim --chips 2", refused("--board", "--chips 2")),
    ("decode-board-no-port", "decode --config fpga --model fpga-llama -n 1 --board "
     "{d}/no-such-tty", refused("no-such-tty")),
    ("decode-board-too-big", "decode --model builtin -n 1 --board {d}/no-such-tty",
     refused("head_dim 16", "config fpga")),
    ("sim-cycles", "sim --random 3 --cycles -5", refused("--cycles must be at least 1")),
    ("sim-max-cycles", "sim --random 3 --max-cycles 0", refused("--max-cycles must be at least 1")),
    ("sim-seed", "sim --random -1", refused("--random", "-1")),
    ("sim-none", "sim", refused("give a program file or --random")),
    ("sim-both", "sim {ex}/vector_add.s --random 1", refused("give a program file or --random")),
    ("bench-cycles-low", "bench golden --config tiny --cycles 5", refused("--cycles", "10")),
    ("bench-cycles-high", "bench golden --config tiny --cycles 100000000",
     refused("--cycles must be at most 1,000,000")),
    ("bench-steps", "bench decode --steps 0", refused("--steps")),
    ("bench-batch", "bench decode --batch 0", refused("--batch")),
    ("bench-positions", "bench accuracy --positions 0", refused("--positions", "0")),
    ("bench-fmax-alone", "bench decode --config fpga --fmax 20", refused("--fmax", "--board")),
    ("bench-board-batch", "bench decode --config fpga --board sim --batch 2",
     refused("--board", "--batch")),
    ("bench-board-fmax", "bench decode --config fpga --board sim --fmax -1",
     refused("--fmax must be a positive")),
    ("bench-ecc-backend", "bench ecc --config tiny --backend verilator",
     refused("--backend verilator", "golden or amaranth")),
    ("bench-ecc-pairs", "bench ecc --config tiny --pairs 0", refused("--pairs", "0")),
    ("bench-ecc-seed", "bench ecc --config tiny --seed -1", refused("--seed", "-1")),
    ("bench-ecc-off", "bench ecc --config {d}/ecc_off.yaml", refused("ecc: false")),
    ("bench-ecc-pairs-text", "bench ecc --config tiny --pairs x", usage()),
    ("timeline-width", "timeline --program {ex}/vector_add.s --config tiny --width 0",
     refused("--width")),
    ("timeline-pos-neg", "timeline --pos -1", refused("--pos")),
    ("timeline-pos-big", "timeline --pos 256", refused("--pos 256", "0..255")),
    ("timeline-tiny", "timeline --config tiny", refused("head_dim 16", "config tiny")),
    ("verilog-name-path", "verilog --config tiny -o {d}/v --name ../x",
     refused("'../x' is not a Verilog module name")),
    ("verilog-name-space", "verilog --config tiny -o {d}/v --name 'a b'",
     refused("is not a Verilog module name")),
    ("verilog-name-digit", "verilog --config tiny -o {d}/v --name 9top",
     refused("is not a Verilog module name")),
    ("verilog-groq", "verilog --config groq -o {d}/v", refused("too large", "1,904,640 bytes")),
    ("random-seed", "random --seed -1 -o {d}/r.s", refused("--seed", "-1")),
    ("random-cycles", "random --seed 1 --cycles 0 -o {d}/r.s", refused("--cycles", "0")),
    ("synth-freq-nan", "synth --freq nan", refused("--freq", "nan")),
    ("synth-freq-neg", "synth --freq -5", refused("--freq", "-5")),
    ("synth-seed", "synth --seed -1", refused("--seed", "-1")),
    ("synth-block-alone", "synth --block mem", refused("--block", "--blocks")),
    ("synth-block-unknown", "synth --blocks --block nosuch", refused("nosuch", "mem")),
    ("synth-board-component", "synth --board ulx3s --component vxm_alu",
     refused("--board", "--component")),
    ("synth-board-baud", "synth --board ulx3s --baud 0", refused("--baud", "0")),
    ("board-no-link", "board run {ex}/vector_add.s", refused("no board given", "--port", "--sim")),
    ("board-ping-no-link", "board ping", refused("no board given")),
    ("board-no-port", "board run {ex}/vector_add.s --config tiny --port {d}/nosuch-tty",
     refused("serial port", "nosuch-tty", "cannot open")),
    ("board-no-program", "board run {d}/nosuch.s --sim", refused("nosuch.s", "no such file")),
    ("board-wrong-config", "board run {ex}/vector_add.s --sim",
     refused("vector_add.s:6:9", "config 'tiny'", "config fpga")),
    ("board-timeout", "board run {ex}/vector_add.s --sim --timeout 0", refused("--timeout")),
    ("board-baud", "board ping --port /dev/null --baud 0", refused("--baud", "0")),
    ("directed-name", "directed --config tiny nosuch", refused("no directed program nosuch")),
    ("regress-nothing", "regress", refused("nothing to run")),
    ("regress-seeds-order", "regress --seeds 5:2", refused("--seeds 5:2", "0 <= A < B")),
    ("regress-seeds-text", "regress --seeds a:b", refused("--seeds", "'a:b'")),
    ("regress-seeds-neg", "regress --seeds=-1:3", refused("--seeds -1:3", "0 <= A < B")),
    ("regress-seeds-huge", "regress --seeds 0:99999999999999",
     refused("--seeds 0:99999999999999", "at most 1,000,000")),
    ("regress-cycles", "regress --seeds 1 --cycles 0", refused("--cycles", "0")),
    ("regress-workers", "regress --seeds 1 --workers 0", refused("--workers", "0")),
    ("regress-scheduler", "regress --seeds 1 --scheduler notaurl",
     refused("--scheduler 'notaurl'", "tcp://host:8786")),
    ("regress-out-file", "regress --seeds 1 --out {d}/afile", refused("afile", "folder")),
    ("regress-junit", "regress --seeds 1 --junit {d}/r.txt", refused("r.txt", ".xml")),
    ("project-nothing", "project", refused("--model is needed")),
    ("project-nosuch", "project --model {d}/nosuch.json --chips 8",
     refused("nosuch.json", "no such model config", "llama-2-70b")),
    ("project-nojson", "project --model {d}/ck_nojson/config.json --chips 8",
     refused("config.json:1:2:", "not valid JSON")),
    ("project-array", "project --model {d}/ck_array --chips 8",
     refused("config.json", "expected a JSON object")),
    ("project-folder", "project --model {d}/ck_empty --chips 8", refused("config.json",
                                                                        "missing file")),
    ("project-chips-neg", "project --model llama-2-7b --chips -4", refused("--chips", "-4")),
    ("project-seq-big", "project --model llama-2-7b --chips 64 --seq 5000",
     refused("--seq 5000", "max_position_embeddings 4096")),
    ("project-too-few", "project --model llama-2-70b --chips 100",
     refused("lpu/models/llama-2-70b/config.json", "needs at least 432 chips", "--chips 100")),
    ("project-chips-text", "project --model llama-2-7b --chips many", usage("--chips")),
    ("formal-depth-0", "formal --check icu-slice --depth 0", refused("--depth", "0")),
    ("formal-depth-big", "formal --depth 100000", refused("--depth", "100000")),
    ("formal-nocheck", "formal --check nosuch", usage("--check", "nosuch")),
    ("formal-keep-file", "formal --check icu-slice --keep {d}/ok_tabs.s",
     refused("--keep", "ok_tabs.s", "is a file")),
    ("formal-keep-nofolder", "formal --check icu-slice --keep {d}/no/such/dir",
     refused("--keep", "no such folder")),
    ("decode-faildir-golden", DEC + " --fail-dir {d}", refused("--fail-dir", "RTL backends")),
    ("decode-faildir-file", "decode --backend verilator -n 1 --fail-dir {d}/ok_tabs.s",
     refused("--fail-dir", "is a file")),
    ("usage-flag", "run {ex}/vector_add.s --nosuch", usage()),
    ("usage-command", "nosuch", usage()),
]


def _argv(line: str, d: Path) -> list[str]:
    return shlex.split(line.format(d=d, ex=EX))


@pytest.mark.parametrize("line, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case(corpus, capsys, line, expect):
    argv = _argv(line, corpus)
    if expect.status == 2:
        with pytest.raises(SystemExit) as ei:
            cli.main(argv)
        assert ei.value.code == 2
        assert "Traceback" not in capsys.readouterr().err
        return
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    if expect.status == 0:
        assert rc == 0, err
        assert expect.check is None or expect.check(corpus, out, err), (out, err)
        return
    assert rc == 1, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith(f"lpu {argv[0]}: error: "), err
    assert len(lines) == 1, err  # one message, nothing else (no progress, no warnings)
    for needle in expect.needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def test_the_corpus_is_large_and_spans_every_command():
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)
    commands = {_argv(c[1], Path("/d"))[0] for c in CASES}
    assert set(cli.COMMANDS) - commands <= {"train"}  # train needs torch, not installed


def test_an_internal_error_is_one_line_with_exit_status_3(monkeypatch, capsys):
    def boom(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli.COMMANDS["config"], "run", boom)
    monkeypatch.delenv("LPU_DEBUG", raising=False)
    assert cli.main(["config", "tiny"]) == cli.EXIT_INTERNAL == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error (a bug in lpu" in err and "KeyError" in err and "report" in err
    assert "Traceback" not in err and "LPU_DEBUG=1" in err
    monkeypatch.setenv("LPU_DEBUG", "1")
    assert cli.main(["config", "tiny"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "oops" in err
