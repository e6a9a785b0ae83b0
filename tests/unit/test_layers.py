"""The rooms and what they may import (docs/architecture.md, "The map").

Every module of the ``lpu`` package is read with :mod:`ast` (nothing is imported) and
each of its imports of another ``lpu`` module is checked against the room rules:

=====================  ===============================================================
room                   may import
=====================  ===============================================================
contract (``lpu.*``)   the contract only (config, isa, program, asm, trace, vectors, ..)
``lpu.hdl``            the contract and ``lpu.hdl``
``lpu.golden``         the contract and ``lpu.golden`` (``lpu.golden.model`` included)
``lpu.tools.compiler`` the contract, ``lpu.golden`` and ``lpu.tools.compiler``
``lpu.sim``            the contract, ``lpu.hdl``, ``lpu.golden`` and ``lpu.sim``
``lpu.tools``          all of the above but the commands
``lpu.commands``       everything (``lpu.cli`` too)
=====================  ===============================================================

Besides: no import cycles between modules, and every import sits at the top of its
module, except an optional dependency's, whose line says ``optional`` in a comment.
The checker is shown to refuse a deliberately bad tree built in a temporary folder.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]

#: room -> the rooms it may import (a room may always import itself)
ALLOWED = {
    "contract": {"contract"},
    "hdl": {"contract"},
    "golden": {"contract"},
    "compiler": {"contract", "golden"},
    "sim": {"contract", "hdl", "golden"},
    "tools": {"contract", "hdl", "golden", "sim", "compiler"},
    "commands": {"contract", "hdl", "golden", "sim", "compiler", "tools"},
}


def room_of(module: str) -> str:
    """The room of a dotted ``lpu`` module name."""
    parts = module.split(".")
    if parts[:2] == ["lpu", "commands"] or module == "lpu.cli":
        return "commands"
    if parts[:3] == ["lpu", "tools", "compiler"]:
        return "compiler"
    if len(parts) > 1 and parts[1] in ("hdl", "golden", "sim", "tools"):
        return parts[1]
    return "contract"


def package_folders(pyproject: Path) -> dict[str, Path]:
    """Package name -> folder, from the setuptools ``package-dir`` table."""
    data = tomllib.loads(pyproject.read_text())
    dirs = data["tool"]["setuptools"]["package-dir"]
    return {pkg: pyproject.parent / folder for pkg, folder in dirs.items()}


def modules(folders: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of every package folder
    (sub-folders belong to the longest package that names them)."""
    out = {}
    for pkg, folder in folders.items():
        for f in sorted(folder.glob("*.py")):
            name = pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"
            out[name] = f
    return out


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if node.level > 1:
        base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]):
    """``(line, imported lpu module, at top level?, source line)`` of every import of an
    ``lpu`` module in `path`; ``from X import name`` counts ``X.name`` when that is a
    module."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, str(path))
    top = {id(n) for n in tree.body}
    is_pkg = path.stem == "__init__"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_pkg, node) if node.level else (node.module or "")
            targets = []
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.append(sub if sub in known else base)
        else:
            continue
        line = lines[node.lineno - 1]
        for t in targets:
            yield node.lineno, t, id(node) in top, line


def problems(folders: dict[str, Path]) -> list[str]:
    """Every broken room rule, cycle and misplaced import of the tree, as
    ``FILE:LINE: problem``."""
    mods = modules(folders)
    known = set(mods)
    out = []
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        room = room_of(mod)
        for lineno, target, at_top, line in imports_of(mod, path, known):
            where = f"{path.relative_to(path.parents[1])}:{lineno}"
            root = target.split(".")[0]
            if not at_top and "optional" not in line:
                out.append(f"{where}: import of {target} inside a function or block (only an "
                           "optional dependency may be imported there, saying so in a comment)")
            if root != "lpu":
                continue
            if target not in known:
                target = next((m for m in sorted(known, key=len, reverse=True)
                               if target.startswith(m + ".")), target)
            to = room_of(target)
            if to != room and to not in ALLOWED[room]:
                out.append(f"{where}: {mod} ({room}) imports {target} ({to}); {room} may "
                           f"import only {', '.join(sorted(ALLOWED[room] | {room}))}")
            if at_top and target in known and target != mod:
                graph[mod].add(target)
    out += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# -- the tests ----------------------------------------------------------------------------------


def test_the_project_keeps_its_rooms():
    folders = package_folders(ROOT / "pyproject.toml")
    assert len(modules(folders)) > 50  # the whole package was read
    assert problems(folders) == []


def test_every_package_folder_is_installed():
    """A folder with Python files under a package folder is itself a listed package
    (setuptools would leave it out of a normal install)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(data["tool"]["setuptools"]["packages"])
    folders = package_folders(ROOT / "pyproject.toml")
    assert set(folders) == listed
    for pkg, folder in folders.items():
        for sub in folder.iterdir():
            if sub.is_dir() and any(sub.glob("*.py")):
                assert f"{pkg}.{sub.name}" in listed, sub


def _tree(tmp_path, files: dict[str, str]) -> dict[str, Path]:
    folders = {"lpu": "lpu", "lpu.hdl": "hdl", "lpu.golden": "golden",
               "lpu.tools": "tools", "lpu.tools.compiler": "tools/compiler"}
    for folder in folders.values():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {pkg: tmp_path / folder for pkg, folder in folders.items()}


def test_a_forbidden_import_is_refused(tmp_path):
    folders = _tree(tmp_path, {
        "lpu/config.py": "X = 1\n",
        "golden/chip.py": "from lpu.config import X\n",
        "hdl/bad.py": "from lpu.golden.chip import Chip\n",  # hdl may not import golden
    })
    found = problems(folders)
    assert len(found) == 1
    assert "hdl/bad.py:1" in found[0] and "lpu.hdl.bad (hdl) imports lpu.golden.chip" in found[0]


def test_a_lower_room_importing_a_higher_one_is_refused(tmp_path):
    folders = _tree(tmp_path, {
        "golden/decode.py": "from lpu.tools.compiler import lower\n",
        "tools/compiler/lower.py": "from lpu.golden import decode\n",
    })
    found = problems(folders)
    assert any("lpu.golden.decode (golden) imports lpu.tools.compiler.lower (compiler)" in p
               for p in found), found
    assert any(p.startswith("import cycle: lpu.golden.decode -> lpu.tools.compiler.lower")
               for p in found), found


def test_an_import_inside_a_function_is_refused_unless_optional(tmp_path):
    folders = _tree(tmp_path, {
        "tools/a.py": "def f():\n    from lpu.golden import chip\n    return chip\n",
        "tools/b.py": "def f():\n    import torch  # optional dependency: the train extra\n",
        "tools/c.py": "def f():\n    import json\n",
    })
    found = problems(folders)
    assert len(found) == 2, found
    assert any("tools/a.py:2" in p for p in found) and any("tools/c.py:2" in p for p in found)


def test_relative_imports_resolve_to_their_room(tmp_path):
    folders = _tree(tmp_path, {
        "hdl/x.py": "from . import y\n",
        "hdl/y.py": "from ..golden import z\n",
        "golden/z.py": "Z = 0\n",
    })
    found = problems(folders)
    assert len(found) == 1 and "lpu.hdl.y (hdl) imports lpu.golden.z (golden)" in found[0]
