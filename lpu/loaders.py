"""Loading user inputs: one path per input kind, each naming the file and the place.

* :func:`load_program`: an assembled program (recognised by its magic bytes, whatever
  its suffix) or an assembly source (any suffix but ``.bin``), checked against the
  chip config it will run on: the config hash and ISA version, and every word as
  strictly as ``lpu disasm`` checks it (its queue's slice kind, operand ranges,
  repeats). :func:`imem_problem` says whether a queue overflows the RTL's instruction
  memory.
* :func:`load_mem_npz`: an SRAM image (``.npz``: arrays named ``SLICE`` or
  ``SLICE@ADDR``) written into anything with ``write_tensor(slice, addr, array)``
  (the golden chip, a host driver).
* :func:`load_system_inputs`: a system file (:mod:`lpu.system`) with one program a
  chip and at most one SRAM image a chip (``-``: none), as ``--system`` takes them.
* :func:`output_path` / :func:`write_output`: a file a command will write, checked
  before any work starts (its folder exists, it is not a folder, its suffix), and the
  write itself, every failure naming the path.

Every problem is an :class:`~lpu.errors.LpuError` whose message starts with the
file's path.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .asm import AsmError, assemble_file, decode_program
from .config import ChipConfig
from .errors import LpuError
from .program import MAGIC, Program
from .system import load as load_system

__all__ = ["load_program", "imem_problem", "load_mem_npz", "load_system_inputs", "output_path",
           "write_output"]

#: The dtypes an SRAM image may hold: one word per vector (8 bits) or four (32 bits).
_MEM_DTYPES = tuple(np.dtype(d) for d in ("int8", "uint8", "int32", "uint32", "float32"))


def load_program(path, cfg: ChipConfig) -> Program:
    """The program in the file at `path` (an assembled program, recognised by its magic
    bytes whatever its name; otherwise assembly source), checked to be built for `cfg`."""
    p = Path(path)
    if not p.is_file():
        raise LpuError(f"{p}: no such file")
    try:
        with open(p, "rb") as f:
            binary = f.read(len(MAGIC)) == MAGIC
    except OSError as e:
        raise LpuError(f"{p}: cannot read: {e.strerror or e}") from None
    if p.suffix == ".bin" and not binary:
        raise LpuError(f"{p}: not a program file (it does not start with {MAGIC!r}; an "
                       "assembly source should not be named .bin)")
    try:
        prog = Program.load(p) if binary else assemble_file(p, cfg)
    except AsmError as e:
        if e.problem.startswith("not UTF-8"):
            raise AsmError(e.file, e.line, e.col, "neither an assembled program (it does not "
                           f"start with {MAGIC!r}) nor UTF-8 text (an assembly source)") from None
        raise
    prog.check_config(cfg, str(p))
    if binary:  # a source was checked word by word as it was assembled
        decode_program(prog, cfg, str(p))
    return prog


def imem_problem(prog: Program, cfg: ChipConfig, name: str) -> str | None:
    """Why `prog` does not fit the RTL's instruction memory (``imem_words`` per queue),
    or None. The golden model has no such limit; the RTL (``lpu sim``) refuses it."""
    for q, words in prog.queues.items():
        if len(words) > cfg.imem_words:
            return (f"{name}: queue {q} has {len(words)} instructions; the RTL's "
                    f"instruction memory holds {cfg.imem_words} per queue (imem_words "
                    f"of config {cfg.name})")
    return None


def load_mem_npz(target, path) -> None:
    """Write every array of the ``.npz`` SRAM image at `path` into `target` (an object
    with ``write_tensor(slice_name, address, array)``, such as the golden chip)."""
    p = Path(path)
    if p.is_dir():
        raise LpuError(f"{p}: is a folder; an SRAM image is a .npz file (np.savez)")
    if p.suffix != ".npz":
        raise LpuError(f"{p}: an SRAM image must be a .npz file (np.savez), not "
                       f"{p.suffix or 'a file without a suffix'}")
    if not p.is_file():
        raise LpuError(f"{p}: no such file")
    try:
        data = np.load(p, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy or pickle named .npz
            raise ValueError("it is not a zip of arrays (np.savez)")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise LpuError(f"{p}: cannot read as .npz: {e}") from None
    with data:
        for key in data.files:
            slice_name, _, addr = key.partition("@")
            try:
                a = int(addr) if addr else 0
            except ValueError:
                raise LpuError(f"{p}: array {key!r}: address {addr!r} is not a number") from None
            try:
                arr = data[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                # object arrays (pickles) are refused; a damaged member cannot be read
                raise LpuError(f"{p}: array {key!r}: cannot be read ({e})") from None
            if arr.dtype not in _MEM_DTYPES:
                raise LpuError(f"{p}: array {key!r}: dtype {arr.dtype} is not one of "
                               f"{', '.join(sorted(str(np.dtype(d)) for d in _MEM_DTYPES))}")
            vl = getattr(getattr(target, "cfg", None), "vl", None)
            if arr.ndim != 2 or (vl is not None and arr.shape[1] != vl):
                raise LpuError(f"{p}: array {key!r}: shape {arr.shape} is not [n, VL]"
                               + (f" with VL = {vl}" if vl is not None else ""))
            if a < 0:
                raise LpuError(f"{p}: array {key!r}: address {a} is negative")
            try:
                target.write_tensor(slice_name, a, arr)
            except LpuError as e:
                raise LpuError(f"{p}: array {key!r}: {e}") from None


def load_system_inputs(path, programs, mem_in, *, config=None):
    """The system of `path` for `programs` (one a chip, in chip order) and `mem_in` (at
    most one a chip, ``-`` for none): ``(system, mem_in)``. `config`: a ``--config``
    given beside it, which is refused (the system file names the chip)."""
    if config is not None:
        raise LpuError("--config and --system: the system file names the chip's config "
                       "(key 'chip'); give one of them")
    sysc = load_system(path)
    n = sysc.chips
    if len(programs) != n:
        raise LpuError(f"{path}: a system of {n} chips runs {n} programs, one a chip "
                       f"in chip order, not {len(programs)}")
    mem_in = list(mem_in or [])
    if len(mem_in) > n:
        raise LpuError(f"--mem-in is given {len(mem_in)} times for {n} chips (once a chip, "
                       "in chip order; '-' for none)")
    return sysc, mem_in


def output_path(path, *, suffix: str | None = None, what: str = "output",
                inputs=()) -> Path:
    """Check, before anything runs, that `path` can be a file to write: its folder
    exists, it is not a folder, it ends in `suffix` when one is required, and it is
    none of the command's `inputs` (which it would overwrite)."""
    p = Path(path)
    for src in inputs:
        if src is not None and Path(src).exists() and p.resolve() == Path(src).resolve():
            raise LpuError(f"{path}: is also the command's input {src}; the {what} would "
                           "overwrite it")
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise LpuError(f"{path}: is a folder; expected a file name for the {what}")
    if not p.parent.is_dir():
        raise LpuError(f"{p}: cannot write the {what}: no such folder {p.parent}")
    if suffix is not None and p.suffix != suffix:
        raise LpuError(f"{p}: the {what} must be a {suffix} file (got {p.suffix or 'none'})")
    return p


def write_output(path, write, *, what: str = "output") -> None:
    """Call ``write(path)``; an OSError (a full device, no permission) becomes an
    LpuError naming the path."""
    try:
        write(path)
    except OSError as e:
        raise LpuError(f"{path}: cannot write the {what}: {e.strerror or e}") from None
