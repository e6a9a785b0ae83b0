"""`lpu bench decode`'s report of the schedule: the fraction of each slice kind's queue
slots that dispatch an instruction in the last step, checked against a count of that
step program's instruction words (nops skipped, every other word one dispatch)."""

from collections import Counter

import pytest

from lpu import config
from lpu.golden.model.checkpoint import load_builtin
from lpu.isa import Opcode, decode
from lpu.tools.bench import bench_decode
from lpu.tools.compiler.lower import compile_step

pytestmark = [pytest.mark.model]


@pytest.mark.slow
def test_slot_use_is_the_last_steps_dispatches_over_its_queue_slots(monkeypatch, tmp_path):
    monkeypatch.setenv("LPU_CACHE_DIR", str(tmp_path))
    cfg = config.load("small")
    r = bench_decode(cfg, 1)
    prog = compile_step(load_builtin(), cfg, 0).program
    busy, end = Counter(), 0
    for q in cfg.queues:
        t = 0
        for word in prog.queues.get(q.name, []):
            ins = decode(word)
            if ins.op == Opcode.NOP:
                t += ins.args["n"]
                continue
            assert ins.op != Opcode.REPEAT  # (the count below assumes none)
            busy[q.kind] += 1
            t += 1
        end = max(end, t)
    queues = Counter(q.kind for q in cfg.queues)
    want = {k: round(busy[k] / (queues[k] * end), 3) for k in queues}
    assert r["slot_use_last_step"] == want
    assert 0 < want["vxm"] < 1 and 0 < want["mem"] < 1
    assert r["schedule_gap_breakdown"]  # one sequence: the loss by algorithm is reported
