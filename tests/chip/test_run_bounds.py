"""Long golden runs can be bounded and show progress: `lpu run --max-cycles`, and the
progress callback of Chip.run (what `lpu run` and `lpu bench golden` print on stderr)."""

from pathlib import Path

import pytest

from lpu import config
from lpu.cli import main as lpu_main
from lpu.golden.chip import Chip
from lpu.loaders import load_program
from lpu.sim.programs.randprog import generate

pytestmark = [pytest.mark.chip]
TINY = config.load("tiny")
VADD = str(Path(__file__).resolve().parents[2] / "examples" / "vector_add.s")


def test_max_cycles_stops_an_unfinished_run_with_an_error(capsys):
    chip = Chip(TINY)
    chip.load(load_program(VADD, TINY))
    last = chip.last_dispatch
    assert lpu_main(["run", VADD, "--config", "tiny", "--max-cycles", str(last)]) == 1
    err = capsys.readouterr().err
    assert f"did not finish within --max-cycles {last}" in err
    assert f"last dispatch is at cycle {last}" in err
    # enough cycles: the same run as without the bound
    assert lpu_main(["run", VADD, "--config", "tiny", "--json"]) == 0
    free = capsys.readouterr().out
    assert lpu_main(["run", VADD, "--config", "tiny", "--json", "--max-cycles",
                     str(chip.end_cycle)]) == 0
    assert capsys.readouterr().out == free
    assert lpu_main(["run", VADD, "--config", "tiny", "--max-cycles", "0"]) == 1
    assert "--max-cycles must be at least 1" in capsys.readouterr().err


def test_progress_reports_rising_cycles_and_changes_nothing():
    rp = generate(TINY, 5, cycles=700)
    runs = []
    for progress in (None, []):
        chip = Chip(TINY)
        for name, words in rp.mem.items():
            chip.write_mem(name, 0, words)
        chip.load(rp.program)
        cb = None if progress is None else (lambda c, last, p=progress: p.append((c, last)))
        res = chip.run(trace=True, progress=cb, progress_every=0.0)
        runs.append((res, {n: chip.read_mem(n, 0, TINY.mem_words) for n in chip.mem_names},
                     progress))
    (r0, m0, _), (r1, m1, calls) = runs
    assert r0.events == r1.events and r0.cycles == r1.cycles
    assert all((m0[n] == m1[n]).all() for n in m0)
    assert calls, "no progress was reported"
    cycles = [c for c, _ in calls]
    assert cycles == sorted(cycles) and all(c % 256 == 0 for c in cycles)
    assert all(last == calls[0][1] for _, last in calls)
