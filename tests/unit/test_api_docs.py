"""docs/api.md: every Python example on the page runs, in order, as one script.

The examples assert their own results against independent expectations (numpy sums,
the assembler against the builder, the golden chip against the LPU-exact numpy
evaluation); this test runs them and checks that each printed something. It also
checks that every public module lists its names in ``__all__`` and that they exist.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_examples():
    assert len(_blocks()) >= 6


@pytest.mark.slow
def test_every_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    scope: dict = {"__name__": "api_md"}
    for i, block in enumerate(_blocks()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, f"docs/api.md block {i + 1}", "exec"), scope)  # noqa: S102
        if "print(" in block:
            assert out.getvalue().strip(), f"block {i + 1} printed nothing"


def _public_modules():
    out = []
    for pkg, folder in {"lpu": "lpu", "lpu.commands": "lpu/commands", "lpu.hdl": "hdl",
                        "lpu.golden": "golden", "lpu.golden.model": "golden/model",
                        "lpu.sim": "sim", "lpu.sim.programs": "sim/programs",
                        "lpu.tools": "tools", "lpu.tools.compiler": "tools/compiler"}.items():
        for f in sorted((ROOT / folder).glob("*.py")):
            if f.stem == "__init__":
                out.append(pkg)
            elif not f.stem.startswith("_") and f.stem not in ("cocotb_bench", "train_model"):
                out.append(f"{pkg}.{f.stem}")
    return out


@pytest.mark.parametrize("name", _public_modules())
def test_public_names_are_listed_and_exist(name):
    """Every module (cocotb's bench and the torch trainer need optional packages)
    has ``__all__``, and each listed name is an attribute or a submodule."""
    mod = importlib.import_module(name)
    if name.startswith("lpu.commands.") or name == "lpu.cli":
        assert hasattr(mod, "run") and hasattr(mod, "add_arguments") or name == "lpu.cli"
        return
    assert hasattr(mod, "__all__"), f"{name} has no __all__"
    for n in mod.__all__:
        if not hasattr(mod, n):
            importlib.import_module(f"{name}.{n}")  # a submodule of a package


def test_commands_are_thin():
    """A command module holds HELP, add_arguments and run (and small private helpers)."""
    from lpu import cli

    for name, mod in cli.COMMANDS.items():
        src = Path(mod.__file__).read_text()
        assert mod.HELP and callable(mod.add_arguments) and callable(mod.run), name
        assert src.count("\ndef ") + src.count("\nclass ") <= 5, f"lpu {name} is not thin"
        assert os.path.basename(mod.__file__) == f"{name}.py", name
