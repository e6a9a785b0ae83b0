"""Compile once: step programs cached on disk (lpu.tools.compiler.cache).

The shipped model on config small, two steps: a second decode loads every step from the
cache (no compile) and decodes the same tokens with the same logits bit for bit; the
key changes with the model, the config, the position, the context, the batch, the ISA
and the compiler's source; a corrupt entry is compiled again with a warning; ``off``
disables the cache; an unwritable folder still decodes."""

import copy
import shutil

import numpy as np
import pytest

from lpu.golden.model.checkpoint import load_builtin
from lpu.tools.compiler import cache
from lpu.tools.compiler import lower as lower_mod
from lpu.tools.compiler.decode import decode
from lpu.tools.compiler.lower import ChipDecoder, CompiledStep, compile_step

pytestmark = [pytest.mark.model]

CTX = 32
PROMPT = [82]  # "R": two steps (positions 0 and 1) for n=2


@pytest.fixture(scope="module")
def model():
    return load_builtin()


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Counters at zero and no folder warned about, for each test."""
    cache.STATS.reset()
    monkeypatch.setattr(cache, "_warned", set())
    monkeypatch.setattr(cache, "_no_store", set())


@pytest.fixture(scope="module")
def first(model, tmp_path_factory):
    """A decode into an empty cache folder: (folder, result, stats)."""
    folder = tmp_path_factory.mktemp("steps")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cache.ENV, str(folder))
        cache.STATS.reset()
        r = decode(model, tokens=PROMPT, n=2, config="small", context=CTX)
        stats = copy.copy(cache.STATS)
    return folder, r, stats


def _cached(model, pos):
    return cache.cached_compile(model, "small", pos, CTX, compile=compile_step,
                                step_type=CompiledStep)


def _copy(folder, tmp_path):
    dst = tmp_path / "steps"
    shutil.copytree(folder, dst)
    return dst


def _same_step(a, b):
    assert a.program.to_bytes() == b.program.to_bytes()
    assert a.logits == b.logits and a.token == b.token
    assert (a.instructions, a.sram_words) == (b.instructions, b.sram_words)
    assert len(a.image) == len(b.image)
    for (ta, xa), (tb, xb) in zip(a.image, b.image, strict=True):
        xa, xb = np.asarray(xa), np.asarray(xb)
        assert ta == tb and xa.dtype == xb.dtype and xa.shape == xb.shape
        assert xa.tobytes() == xb.tobytes()


def test_first_decode_compiles_and_stores(first):
    folder, r, stats = first
    assert (stats.hits, stats.misses, stats.stores, stats.errors) == (0, 2, 2, 0)
    assert len(r.tokens) == 2
    assert len(list(folder.glob("step*.npz"))) == 2
    assert not list(folder.glob(".*.tmp"))


def test_second_decode_hits_every_position(model, first, monkeypatch):
    folder, r1, _ = first
    monkeypatch.setenv(cache.ENV, str(folder))
    r2 = decode(model, tokens=PROMPT, n=2, config="small", context=CTX)
    assert (cache.STATS.hits, cache.STATS.misses) == (2, 0)  # nothing compiled
    assert r2.tokens == r1.tokens
    for a, b in zip(r1.logits, r2.logits, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    # the stored step is the compiled one; compile_step itself is not cached
    loaded = _cached(model, 0)
    fresh = compile_step(model, "small", 0, CTX)
    _same_step(loaded, fresh)
    assert (cache.STATS.hits, cache.STATS.misses, cache.STATS.stores) == (3, 0, 0)


def test_changed_weight_misses(model, first, tmp_path, monkeypatch):
    folder = _copy(first[0], tmp_path)
    monkeypatch.setenv(cache.ENV, str(folder))
    other = copy.deepcopy(model)
    other.layers[0].wq[0, 0] += 0.25
    ChipDecoder(other, "small", CTX).compiled(0)
    assert (cache.STATS.hits, cache.STATS.misses, cache.STATS.stores) == (0, 1, 1)
    ChipDecoder(model, "small", CTX).compiled(0)
    assert cache.STATS.hits == 1


def test_key_changes_with_everything_the_step_depends_on(model, monkeypatch, tmp_path):
    key = cache.step_key(model, "small", 0, CTX)
    assert cache.step_key(model, "small", 0, CTX) == key
    assert cache.step_key(load_builtin(), "small", 0, CTX) == key  # content, not identity
    assert cache.step_key(model, "small", 0, None) == cache.step_key(
        model, "small", 0, model.config.max_position_embeddings)
    other = copy.deepcopy(model)
    other.layers[1].w_down[3, 5] = np.nextafter(other.layers[1].w_down[3, 5], np.float32(9))
    untied = copy.deepcopy(model)
    untied.lm_head = untied.embed.copy()  # same values, not tied: another program
    keys = {
        "model": cache.step_key(other, "small", 0, CTX),
        "untied": cache.step_key(untied, "small", 0, CTX),
        "config": cache.step_key(model, "tiny", 0, CTX),
        "pos": cache.step_key(model, "small", 1, CTX),
        "context": cache.step_key(model, "small", 0, 2 * CTX),
        "batch": cache.step_key(model, "small", 0, CTX, batch=2),
    }
    with monkeypatch.context() as mp:
        mp.setattr(cache, "ISA_VERSION", (9, 0))
        keys["isa"] = cache.step_key(model, "small", 0, CTX)
    assert key not in keys.values() and len(set(keys.values())) == len(keys)
    # the compiler's source is part of the key
    names = {p.name for p in cache.compiler_files()}
    assert {"lower.py", "chipops.py", "cache.py", "exact.py", "numerics.py", "isa.py",
            "program.py"} <= names
    src = tmp_path / "kernels.py"
    src.write_text("x = 1\n")
    monkeypatch.setattr(cache, "compiler_files", lambda: [src])
    monkeypatch.setattr(cache, "_COMPILER_HASH", None)
    k1 = cache.step_key(model, "small", 0, CTX)
    src.write_text("x = 2\n")
    monkeypatch.setattr(cache, "_COMPILER_HASH", None)
    k2 = cache.step_key(model, "small", 0, CTX)
    assert len({key, k1, k2}) == 3


def test_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x"
    monkeypatch.delenv(cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "lpu" / "steps"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "lpu" / "steps"
    for off in ("off", "OFF"):
        monkeypatch.setenv(cache.ENV, off)
        assert cache.cache_dir() is None


def test_corrupt_entries_are_compiled_again(model, first, tmp_path, monkeypatch, capsys):
    folder = _copy(first[0], tmp_path)
    monkeypatch.setenv(cache.ENV, str(folder))
    p0 = cache.entry_path(folder, cache.step_key(model, "small", 0, CTX), 0)
    p1 = cache.entry_path(folder, cache.step_key(model, "small", 1, CTX), 1)
    blob = p0.read_bytes()
    p0.write_bytes(blob[: len(blob) // 2])  # truncated
    blob = bytearray(p1.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one byte flipped
    p1.write_bytes(bytes(blob))
    dec = ChipDecoder(model, "small", CTX)
    steps = [dec.compiled(0), dec.compiled(1)]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("unreadable" in e and "compiling it again" in e for e in err)
    assert (cache.STATS.hits, cache.STATS.misses, cache.STATS.stores) == (0, 2, 2)
    again = ChipDecoder(model, "small", CTX)  # the entries were written again
    for pos, cs in enumerate(steps):
        _same_step(again.compiled(pos), cs)
    assert cache.STATS.hits == 2
    assert capsys.readouterr().err == ""


def test_off_disables_the_cache(model, first, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(first[0]))
    stored = _cached(model, 0)
    calls = []

    def fake_compile(m, chip, pos, context=None):
        calls.append(pos)
        return stored

    monkeypatch.setattr(lower_mod, "compile_step", fake_compile)
    monkeypatch.setenv(cache.ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache.STATS.reset()
    for _ in range(2):
        assert ChipDecoder(model, "small", CTX).compiled(0) is stored
    assert calls == [0, 0]
    assert (cache.STATS.hits, cache.STATS.misses, cache.STATS.stores) == (0, 2, 0)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_still_decodes(model, first, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cache.ENV, str(first[0]))
    stored = _cached(model, 0)
    blocker = tmp_path / "file"
    blocker.write_text("a regular file\n")
    monkeypatch.setenv(cache.ENV, str(blocker / "steps"))  # a folder under a file
    r = decode(model, tokens=PROMPT, n=1, config="small", context=CTX)
    assert r.tokens == first[1].tokens[:1]
    assert np.array_equal(r.logits[0].view(np.uint32), first[1].logits[0].view(np.uint32))
    # more steps: no more warnings
    for pos in (1, 2):
        assert cache.cached_compile(model, "small", pos, CTX, compile=lambda *a: stored,
                                    step_type=CompiledStep) is stored
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0], err
    assert (cache.STATS.misses, cache.STATS.stores) == (3, 0)
    assert blocker.read_text() == "a regular file\n"
