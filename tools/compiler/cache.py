"""Compile once: compiled step programs cached on disk.

:func:`cached_compile` returns the :class:`~lpu.tools.compiler.lower.CompiledStep` of one
token position, loading it from the cache folder when an entry of the same key is there
and compiling it (:func:`~lpu.tools.compiler.lower.compile_step`) and storing it when not.
:class:`~lpu.tools.compiler.lower.ChipDecoder` goes through it (passing ``compile_step``
and ``CompiledStep``: this module does not import ``lower``, which imports it), so a
second ``lpu decode`` of the same model on the same config compiles nothing.

The key (:func:`step_key`) is a hash of everything a step program depends on: the model
(its config and the bytes of every weight array, hashed once per model object), the chip
config hash, ``lpu.isa.ISA_VERSION``, the position, the context, the batch size and the
source of the compiler (every ``*.py`` of ``tools/compiler`` and the modules it lowers:
``golden/model/exact.py`` and what it imports, ``golden/numerics.py``, ``lpu/isa.py``,
``lpu/program.py``, ``lpu/config.py``), so a changed compiler never reuses an old program.

The folder is ``$LPU_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/lpu/steps`` or
``~/.cache/lpu/steps``; ``LPU_CACHE_DIR=off`` disables the cache. One entry is one
``.npz`` file (``allow_pickle=False``): the program in its ``.bin`` format
(:meth:`lpu.program.Program.to_bytes`), the host SRAM image (tensors and their arrays),
the logits and token tensors and the counts. Entries are written to a temporary file
and renamed (``os.replace``), so a concurrent decode never reads half an entry; an
unreadable entry is recompiled (one warning on stderr), an unwritable folder means no
cache (one warning). :func:`clear` empties the folder; :data:`STATS` counts hits and
misses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lpu import config as _config
from lpu import isa as _isa
from lpu import program as _program
from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.golden import numerics as _numerics
from lpu.golden.model import exact as _exact
from lpu.golden.model import quant as _quant
from lpu.golden.model import reference as _reference
from lpu.isa import ISA_VERSION
from lpu.program import Program

from .kernels import Tensor

__all__ = ["cached_compile", "step_key", "model_hash", "compiler_hash", "cache_dir",
           "entry_path", "clear", "STATS", "CacheStats", "ENV", "FORMAT"]

ENV = "LPU_CACHE_DIR"
OFF = "off"
FORMAT = 1  # of an entry; part of the key

# modules whose source decides what the compiler emits, besides tools/compiler/*.py
SOURCE_MODULES = (_exact, _quant, _reference, _numerics, _isa, _program, _config)


@dataclasses.dataclass
class CacheStats:
    """Counters of this process: ``hits`` (loaded from disk), ``misses`` (compiled,
    with the cache on or off), ``stores`` (entries written), ``errors`` (unreadable
    entries and failed writes)."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    errors: int = 0

    def reset(self) -> None:
        self.hits = self.misses = self.stores = self.errors = 0


STATS = CacheStats()
_warned: set[str] = set()  # folders already warned about (unwritable)
_no_store: set[str] = set()  # folders whose writes failed: not tried again


def _warn(msg: str) -> None:
    print(f"lpu: warning: {msg}", file=sys.stderr)


# -- the key ----------------------------------------------------------------------------

def _hash_value(h, v) -> None:
    """Feed a weight (array, QuantizedTensor-like dataclass, or a list) to hash `h`."""
    if isinstance(v, np.ndarray) or np.isscalar(v):
        a = np.ascontiguousarray(v)
        if a.dtype.hasobject:
            raise LpuError("model hash: an object array cannot be hashed")
        h.update(f"a{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        h.update(f"d{type(v).__name__}".encode())
        for f in dataclasses.fields(v):
            h.update(f.name.encode())
            _hash_value(h, getattr(v, f.name))
    elif isinstance(v, list | tuple):
        h.update(f"l{len(v)}".encode())
        for x in v:
            _hash_value(h, x)
    else:
        _hash_value(h, np.asarray(v))


_MODEL_HASHES: dict[int, tuple[object, str]] = {}


def model_hash(model) -> str:
    """Hash of a model: its config (not where it was read from) and every weight array's
    bytes, and whether the LM head is the embedding table. Computed once per model
    object (a weight changed in place afterwards is not seen: build a new model)."""
    memo = _MODEL_HASHES.get(id(model))
    if memo is not None and memo[0]() is model:
        return memo[1]
    h = hashlib.sha256(b"lpu model\0")
    cfg = model.config
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.compare}
    h.update(json.dumps(fields, sort_keys=True, default=repr).encode())
    h.update(b"tied" if model.lm_head is model.embed else b"untied")
    names = ([f.name for f in dataclasses.fields(model)] if dataclasses.is_dataclass(model)
             else ["embed", "layers", "norm", "lm_head"])
    for name in names:
        if name != "config":
            h.update(name.encode())
            _hash_value(h, getattr(model, name))
    digest = h.hexdigest()
    k = id(model)
    try:
        ref = weakref.ref(model, lambda _r: _MODEL_HASHES.pop(k, None))
    except TypeError:  # an object without weak references: not memoized
        return digest
    _MODEL_HASHES[k] = (ref, digest)
    return digest


def compiler_files() -> list[Path]:
    """The source files whose text is part of the key."""
    files = sorted(Path(__file__).resolve().parent.glob("*.py"))
    files += [Path(m.__file__).resolve() for m in SOURCE_MODULES]
    return files


_COMPILER_HASH: str | None = None


def compiler_hash() -> str:
    """Hash of the compiler's source (read once per process: the code that runs)."""
    global _COMPILER_HASH
    if _COMPILER_HASH is None:
        h = hashlib.sha256(b"lpu compiler\0")
        for p in compiler_files():
            h.update(p.name.encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
        _COMPILER_HASH = h.hexdigest()
    return _COMPILER_HASH


def step_key(model, chip: ChipConfig | str, pos: int, context: int | None = None,
             batch: int = 1, stage: list | None = None) -> str:
    """The cache key of one step program (hex); `stage`: a pipeline stage's
    :meth:`~lpu.tools.compiler.pipeline.Stage.key` (None: the whole step)."""
    chip = load_config(chip)
    context = context or model.config.max_position_embeddings
    fields = {"format": FORMAT, "model": model_hash(model), "chip": chip.hash,
              "isa": list(ISA_VERSION), "pos": int(pos), "context": int(context),
              "batch": int(batch), "compiler": compiler_hash()}
    if stage is not None:
        fields["stage"] = list(stage)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:40]


# -- the folder -------------------------------------------------------------------------

def cache_dir() -> Path | None:
    """The cache folder (not created here), or None when ``LPU_CACHE_DIR=off``."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() == OFF:
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "lpu" / "steps"


def entry_path(folder: Path, key: str, pos: int) -> Path:
    return folder / f"step{int(pos)}-{key}.npz"


def clear(folder: Path | None = None) -> int:
    """Remove every entry (and leftover temporary file) of the cache folder; returns
    how many files were removed."""
    folder = folder if folder is not None else cache_dir()
    if folder is None or not folder.is_dir():
        return 0
    n = 0
    for p in list(folder.glob("step*.npz")) + list(folder.glob(".step*.tmp")):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


# -- entries ----------------------------------------------------------------------------

def _tensor_fields(t) -> list:
    return [t.slice, int(t.addr), int(t.n), t.dtype]


def _enc_tensors(x):
    """A Tensor as [slice, addr, n, dtype]; a list of Tensors as {"list": [...]}."""
    if isinstance(x, list | tuple):
        return {"list": [_tensor_fields(t) for t in x]}
    return _tensor_fields(x)


def _dec_tensors(x):
    if isinstance(x, dict):
        return [Tensor(*f) for f in x["list"]]
    return Tensor(*x)


def _entry_bytes(cs, key: str) -> bytes:
    """One compiled step as the bytes of a .npz file."""
    arrays = [np.ascontiguousarray(np.asarray(a)) for _, a in cs.image]
    for a in arrays:
        if a.dtype.hasobject:
            raise LpuError("an image array of objects cannot be stored")
    offsets = np.cumsum([0] + [a.nbytes for a in arrays]).tolist()
    meta = {
        "format": FORMAT, "key": key, "pos": int(cs.pos),
        "image": [_tensor_fields(t) + [a.dtype.str, list(a.shape), offsets[i]]
                  for i, ((t, _), a) in enumerate(zip(cs.image, arrays, strict=True))],
        "image_bytes": offsets[-1],
        "logits": _enc_tensors(cs.logits), "token": _enc_tensors(cs.token),
        "stage_in": None if getattr(cs, "stage_in", None) is None
        else _enc_tensors(cs.stage_in),
        "compile_s": float(cs.compile_s), "instructions": int(cs.instructions),
        "sram_words": int(cs.sram_words),
    }
    blob = b"".join(a.tobytes() for a in arrays)
    buf = io.BytesIO()
    np.savez_compressed(
        buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
        program=np.frombuffer(cs.program.to_bytes(), np.uint8),
        image=np.frombuffer(blob, np.uint8))
    return buf.getvalue()


def _load_entry(path: Path, key: str, chip: ChipConfig, pos: int, step_type):
    """The step stored in `path`, as a `step_type`; raises on anything unexpected."""
    t0 = time.perf_counter()
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        prog_bytes = bytes(z["program"])
        blob = z["image"]
    if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("pos") != pos:
        raise ValueError("the entry's key, position or format differs")
    if blob.dtype != np.uint8 or blob.size != meta["image_bytes"]:
        raise ValueError("the image is truncated")
    prog = Program.from_bytes(prog_bytes, str(path))
    if prog.config_hash != chip.hash or tuple(prog.isa_version) != tuple(ISA_VERSION):
        raise ValueError("the program is for another config or ISA")
    image = []
    for sl, addr, n, dt, adt, shape, off in meta["image"]:
        dtype = np.dtype(adt)
        if dtype.hasobject:
            raise ValueError("an image array of objects")
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if off < 0 or off + size > blob.size:
            raise ValueError("an image array is outside the stored bytes")
        arr = blob[off:off + size].view(dtype).reshape(shape).copy()
        image.append((Tensor(sl, addr, n, dt), arr))
    cs = step_type(pos, prog, image, _dec_tensors(meta["logits"]),
                   _dec_tensors(meta["token"]), time.perf_counter() - t0,
                   int(meta["instructions"]), int(meta["sram_words"]))
    if meta.get("stage_in") is not None:
        cs.stage_in = _dec_tensors(meta["stage_in"])
    return cs


def _store(folder: Path, path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; an unwritable folder is warned about once."""
    name = str(folder)
    if name in _no_store:
        return
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + path.stem + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        tmp = None
        STATS.stores += 1
    except OSError as e:
        STATS.errors += 1
        _no_store.add(name)
        if name not in _warned:
            _warned.add(name)
            _warn(f"compile cache {folder} is not writable ({e.strerror or e}); compiled "
                  f"steps are not cached (set {ENV}=off to silence this)")
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cached_compile(model, chip: ChipConfig | str, pos: int, context: int | None = None, *,
                   compile: Callable, step_type: type, batch: int = 1,
                   stage: list | None = None):
    """The compiled step of position `pos`, from the disk cache when it is there.

    ``compile(model, chip, pos, context)`` makes the step on a miss
    (:func:`~lpu.tools.compiler.lower.compile_step`, batch 1; a batched decoder passes
    its own compiler and its `batch`); a hit is built as
    ``step_type(pos, program, image, logits, token, load_s, instructions, sram_words)``
    (:class:`~lpu.tools.compiler.lower.CompiledStep`; `load_s` is the seconds the load
    took, in place of the compile time). `stage`: a pipeline stage's key
    (:func:`step_key`; its entry keeps the stage's ``stage_in`` tensor too)."""
    chip = load_config(chip)
    context = context or model.config.max_position_embeddings
    folder = cache_dir()
    key = path = None
    if folder is not None:
        try:
            key = step_key(model, chip, pos, context, batch, stage)
        except (LpuError, OSError) as e:
            _warn(f"compiled step {pos} cannot be cached ({e})")
            folder = None
    if folder is not None:
        path = entry_path(folder, key, pos)
        try:
            cs = _load_entry(path, key, chip, pos, step_type)
        except (FileNotFoundError, NotADirectoryError):  # not there: a miss
            pass
        except Exception as e:  # a corrupt, truncated or foreign entry: compile again
            STATS.errors += 1
            _warn(f"compile cache entry {path} is unreadable ({type(e).__name__}: "
                  f"{str(e).splitlines()[0] if str(e) else 'no detail'}); compiling it again")
        else:
            STATS.hits += 1
            return cs
    cs = compile(model, chip, pos, context)
    STATS.misses += 1
    if folder is not None:
        try:
            data = _entry_bytes(cs, key)
        except (LpuError, TypeError, ValueError) as e:
            STATS.errors += 1
            _warn(f"compiled step {pos} cannot be cached ({e})")
        else:
            _store(folder, path, data)
    return cs
