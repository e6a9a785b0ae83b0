"""Config loading: presets, user files with `base:`, and every kind of bad input."""

import subprocess
import sys

import pytest

from lpu import config
from lpu.cli import main as lpu_main

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize("name", ["tiny", "small", "fpga", "groq"])
def test_presets_load_and_derive(name):
    cfg = config.load(name)
    assert cfg.vl == cfg.superlanes * cfg.lanes
    pos = [p.name for p in cfg.positions]
    n = cfg.mem_slices
    assert pos[0] == "mxm_w" and pos[-1] == "mxm_e" and pos[n + 2] == "vxm"
    assert len(pos) == 2 * n + 5
    assert pos[2:n + 2] == [f"mem_w{i}" for i in reversed(range(n))]
    kinds = [q.kind for q in cfg.queues]
    assert kinds.count("mem") == 2 * n and kinds.count("vxm") == cfg.vxm_alus
    assert kinds.count("mxm") == 2 * cfg.mxm_planes and kinds.count("sxm") == 2
    assert len(cfg.hash) == 12 and cfg.hash == config.load(name).hash


def test_user_file_with_base(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: small\nstreams: 8\nname: eight\n")
    cfg = config.load(str(f))
    small = config.load("small")
    assert cfg.name == "eight" and cfg.streams == 8 and cfg.lanes == small.lanes
    assert cfg.hash != small.hash
    # the name does not change the hash
    g = tmp_path / "same.yaml"
    g.write_text("base: small\n")
    assert config.load(str(g)).hash == small.hash


@pytest.mark.parametrize("text,needle", [
    ("base: small\nlanes: 0\n",
     "key 'lanes': lanes (bytes) per superlane must be from 1 to 64, not 0"),
    ("base: small\nmem_words: 1000\n", "key 'mem_words'"),
    ("base: small\nmem_words: 1000\n", "power of two, not 1000"),
    ("base: small\nstreams: many\n", "key 'streams'"),
    ("base: small\nlanez: 4\n", "unknown key 'lanez'"),
    ("base: huge\n", "key 'base': unknown preset 'huge'"),
    ("lanes: 4\n", "missing key 'superlanes'"),
    ("base: small\nsuperlanes: 32\nlanes: 32\n", "vector length 1024 exceeds 512"),
    ("base: small\nlanes: [1\n", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
])
def test_bad_files_name_file_key_and_problem(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(config.ConfigError) as ei:
        config.load(str(f))
    msg = str(ei.value)
    assert msg.startswith(str(f)), msg
    assert needle in msg, msg


def test_yaml_error_has_line_and_column(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("base: small\nlanes: [1\n")
    msg = str(pytest.raises(config.ConfigError, config.load, str(f)).value)
    assert msg.startswith(f"{f}:3:1") or msg.startswith(f"{f}:2:"), msg


def test_cli_exit_status_and_message(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("base: tiny\nvxm_alus: 99\n")
    assert lpu_main(["config", str(f)]) == 1
    err = capsys.readouterr().err
    assert str(f) in err and "vxm_alus" in err and "99" in err
    r = subprocess.run([sys.executable, "-m", "lpu.cli", "config", "nosuchpreset"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "unknown preset 'nosuchpreset'" in r.stderr
    assert lpu_main(["config", "tiny", "--json"]) == 0


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("base: tiny\nstreams: 8\nstreams: 12\n")
    with pytest.raises(config.ConfigError, match=r"dup.yaml:3:1: .*'streams' is given twice "
                                                 r"\(first on line 2\)"):
        config.load(str(p))


def test_a_config_that_is_not_utf8_is_refused_with_its_place(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"base: tiny\nname: \xff\xfe\n")
    with pytest.raises(config.ConfigError, match=r"bad.yaml:2:7: not UTF-8"):
        config.load(str(p))


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbfbase: tiny\nstreams: 12\n")
    assert config.load(str(p)).streams == 12
