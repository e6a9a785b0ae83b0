"""Progress of a long decode step on the RTL (:class:`lpu.tools.rtl_decode.Heartbeat`):
while a step runs, a line every few seconds on the log with the time so far and what the
session says it is doing (the phase, the last cycle the RTL recorded); none once the
step is over."""

import io
import re
import time

from lpu.tools.rtl_decode import Heartbeat


class FakeSession:
    def __init__(self):
        self.live = {"phase": "the host loads the SRAM and the program through the bus",
                     "cycle": None}


def test_heartbeat_lines_follow_the_session_and_stop_with_the_step():
    log, session = io.StringIO(), FakeSession()
    beat = Heartbeat(log, "rtl: step 3/8 (position 2)", session, every=0.05)
    time.sleep(0.18)
    session.live = {"phase": "running in lockstep", "cycle": 40960}
    time.sleep(0.18)
    beat.stop()
    lines = log.getvalue().splitlines()
    assert len(lines) >= 4
    assert all(re.fullmatch(r"rtl: step 3/8 \(position 2\): \d+ s, .+", ln) for ln in lines)
    assert "through the bus" in lines[0] and "cycle" not in lines[0]
    assert lines[-1].endswith("running in lockstep, cycle 40,960 recorded")
    n = len(lines)
    time.sleep(0.15)
    assert len(log.getvalue().splitlines()) == n  # nothing after the step
