"""lpu regress: random programs in lockstep on every core (and on a Dask cluster of two
workers), results as JUnit XML, a failing case saved so that it replays without the
generator, and bad arguments refused."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from lpu import config
from lpu.cli import main as lpu_main
from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.program import Program
from lpu.sim import verilator as vl
from lpu.sim.lockstep import GoldenBackend, compare
from lpu.sim.programs.randprog import generate
from lpu.sim.regress import (
    Case,
    CaseResult,
    RegressResult,
    junit_xml,
    parse_seeds,
    regress,
    save_case,
)

pytestmark = [pytest.mark.chip]
TINY = config.load("tiny")


def _golden_events(seed, cycles=30):
    rp = generate(TINY, seed, cycles=cycles)
    chip = Chip(TINY)
    for name, words in rp.mem.items():
        chip.write_mem(name, 0, words)
    chip.load(rp.program)
    return len(chip.run(trace=True).events)


def test_seed_ranges():
    assert parse_seeds("3:7") == range(3, 7)
    assert parse_seeds("5") == range(5, 6)
    for bad in ("x", "5:3", "-1:4", "2:2", "1:y"):
        with pytest.raises(LpuError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.parametrize("argv, msg", [
    (["regress"], "nothing to run"),
    (["regress", "--seeds", "0:2", "--workers", "0"], "--workers must be at least 1"),
    (["regress", "--seeds", "0:2", "--cycles", "0"], "--cycles must be at least 1"),
    (["regress", "--seeds", "0:2", "--workers", "2", "--scheduler", "tcp://x:1"],
     "exclude each other"),
    (["regress", "--seeds", "9:1"], "need 0 <= A < B"),
    (["regress", "--seeds", "0:2", "--junit", "/no/such/folder/r.xml"], "no such folder"),
    (["regress", "--seeds", "0:2", "--junit", "r.txt"], "must be a .xml file"),
])
def test_bad_arguments_are_refused(argv, msg, capsys):
    assert lpu_main(argv) == 1
    assert msg in capsys.readouterr().err


@pytest.mark.slow
def test_random_programs_on_two_local_workers(tmp_path):
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    seeds = range(0, 4)
    res = regress(TINY, seeds, backend="verilator", cycles=30, workers=2,
                  out=tmp_path / "out", progress=None)
    assert (res.workers, res.where) == (2, "local")
    assert [r.case.seed for r in res.results] == list(seeds)
    assert not res.failed, res.text()
    for r in res.results:  # every event of both sides was compared
        assert r.events == 2 * _golden_events(r.case.seed), r.case.label
    junit_xml(res, tmp_path / "r.xml")
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "0"
    assert [tc.get("name") for tc in suite.iter("testcase")] == \
        [f"random-{s}" for s in seeds]
    assert not (tmp_path / "out").exists()  # nothing failed, nothing saved


@pytest.mark.slow
def test_random_programs_on_a_dask_cluster_of_two_workers(tmp_path):
    ok, why = vl.available("verilator")
    if not ok:
        pytest.skip(why)
    distributed = pytest.importorskip("distributed", reason="pip install 'lpu[cluster]'")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        res = regress(TINY, range(10, 14), backend="verilator", cycles=30,
                      scheduler=cluster.scheduler_address, out=tmp_path, progress=None)
    assert (res.workers, res.where) == (2, cluster.scheduler_address)
    assert not res.failed, res.text()
    assert [r.events for r in res.results] == [2 * _golden_events(s) for s in range(10, 14)]


def test_a_failing_case_is_saved_to_replay(tmp_path):
    """A real divergence (the reference given other SRAM) saved as the regression saves
    a failing case: the files give back the program and SRAM of the seed, and the
    report; the JUnit XML carries the failure."""
    seed = 7
    rp = generate(TINY, seed, cycles=30)
    other = {k: v.copy() for k, v in rp.mem.items()}
    for v in other.values():
        v ^= 1  # every byte different: whatever the program reads differs
    res = compare(GoldenBackend(TINY).run(rp.program, other),
                  GoldenBackend(TINY).run(rp.program, rp.mem), TINY, program=rp.program)
    assert not res.ok
    r = CaseResult(Case("random", seed=seed), False, res.text(), res.cycles, res.events,
                   None, res.to_json())
    r.saved = save_case(TINY, "verilator", r, tmp_path, 30, {})
    d = tmp_path / "fail-random-7"
    assert r.saved == str(d)
    assert Program.load(d / "program.bin").queues == rp.program.queues
    with np.load(d / "mem.npz") as z:
        assert set(z.files) == set(rp.mem)
        assert all(np.array_equal(z[k], rp.mem[k]) for k in rp.mem)
    assert (d / "report.txt").read_text().startswith(res.text())
    info = json.loads((d / "report.json").read_text())
    assert (info["seed"], info["backend"], info["cycles"]) == (seed, "verilator", 30)
    assert info["lockstep"]["divergence"]["cycle"] == res.divergence.cycle
    assert ("lpu sim program.bin --mem-in mem.npz --config tiny --backend verilator"
            in (d / "replay.sh").read_text())
    assert (d / "program.s").read_text().startswith("; lpu regress case random-7")
    # the saved files run as the generator's program does
    assert lpu_main(["run", str(d / "program.bin"), "--mem-in", str(d / "mem.npz"),
                     "--config", "tiny"]) == 0
    result = RegressResult("tiny", "verilator", [r], 1.0, 1, "local")
    junit_xml(result, tmp_path / "r.xml")
    fail = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase/failure")
    assert fail is not None and "first divergence" in fail.get("message")
    assert "FAIL random-7" in result.text() and "replay.sh" in result.text()
