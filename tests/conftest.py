"""Session-wide settings for the tests.

Fresh random seeds: tests that draw a fresh seed per run (random programs, random
lockstep) take it from ``$LPU_FRESH_SEED``. When it is not set, it is drawn here once
per session, before pytest-xdist starts its workers (they inherit the environment),
so every worker collects the same parametrized tests; the header line shows it, and
``LPU_FRESH_SEED=<n> pytest ...`` replays the run.

Compiled step programs: the session uses a cache folder of its own (``$LPU_CACHE_DIR``,
a temporary folder shared by the workers), so the tests neither read programs an older
compiler left in the user's cache nor leave any there.
"""

import os
import random
import shutil
import tempfile


def pytest_configure(config):
    if not hasattr(config, "workerinput") and "LPU_FRESH_SEED" not in os.environ:
        os.environ["LPU_FRESH_SEED"] = str(random.SystemRandom().randrange(1 << 30))
    if not hasattr(config, "workerinput") and "LPU_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="lpu-test-cache-")
        os.environ["LPU_CACHE_DIR"] = folder
        config._lpu_cache_dir = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_lpu_cache_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_report_header(config):
    return f"fresh random seed: LPU_FRESH_SEED={os.environ.get('LPU_FRESH_SEED')}"



# The longest test files, longest first (per-file totals of a clean-clone run with
# empty build caches, pytest --durations=30), started first so that pytest-xdist
# (--dist loadfile) spreads the short files over the other worker meanwhile instead of
# leaving one worker alone with a long file at the end.
LONGEST_FIRST = ("chip/test_rtl_decode.py", "chip/test_bulk_lockstep.py",
                 "chip/test_verilog_lint.py", "chip/test_c2c_verilator.py",
                 "chip/test_board_decode.py", "slice/test_formal.py",
                 "chip/test_rtl_session.py", "model/test_rtl_decode_fault.py",
                 "chip/test_verilator_lockstep.py", "model/test_decode_chip.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        for i, name in enumerate(LONGEST_FIRST):
            if path.endswith(name):
                return i
        return len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each file is kept
