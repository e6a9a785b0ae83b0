"""Programs that pin down the end of a run (docs/timing.md, "The end of a run").

Each :class:`RunEnd` is an assembly program for any config (it uses only the queues
``mem_w0``, ``mem_e0`` and ``vxm0``, which every preset has) whose queues end in the
ways a program can end: a slice instruction, a trailing ``nop`` (its wait does not
count), a ``notify`` after a long ``nop``, a final ``sync``, a ``sync`` released by a
``notify`` of the same cycle or a later one, a final ``repeat``, an empty program.
``finished`` is the first cycle in which every queue is finished, worked out by hand
from the rules of docs/timing.md (the comments show the arithmetic); the run's last
cycle, what the host's CYCLE register reads after DONE, is ``finished`` plus
:func:`lpu.isa.drain_cycles`. The tests run them on the golden model and in lockstep
on every RTL backend, which compares the end of the run too.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.asm import assemble
from lpu.config import ChipConfig
from lpu.isa import drain_cycles
from lpu.program import Program

__all__ = ["RunEnd", "RUN_ENDS", "run_end_programs"]


@dataclass(frozen=True)
class RunEnd:
    name: str
    source: str  # assembly
    finished: int  # first cycle in which every queue is finished

    def program(self, cfg: ChipConfig) -> Program:
        return assemble(self.source, cfg, f"<run_end {self.name}>")

    def end_cycle(self, cfg: ChipConfig) -> int:
        """The run's last cycle: CYCLE after DONE."""
        return self.finished + drain_cycles(cfg.superlanes)


RUN_ENDS = (
    # read at 0, nop reached at 1 (cycles 1..40), notify reached at 41: finished at 42
    RunEnd("nop_then_notify", ".queue mem_w0\nread 0, e0, 1\nnop 40\nnotify\n", 42),
    # read at 0, the nop (the last word) reached at 1: finished at 2, its wait not counted
    RunEnd("trailing_nop", ".queue mem_w0\nread 0, e0, 1\nnop 40\n", 2),
    # mem_w0: read at 0, sync (last word) at 1: finished at 2, parked or not;
    # mem_e0: nop at 0, notify at 10: finished at 11
    RunEnd("final_sync", ".queue mem_w0\nread 0, e0, 1\nsync\n"
                         ".queue mem_e0\nnop 10\nnotify\n", 11),
    # mem_w0 parks at 0, the notify at 10 releases it, read at 11: finished at 12
    RunEnd("released_sync", ".queue mem_w0\nsync\nread 0, e0, 1\n"
                            ".queue mem_e0\nnop 10\nnotify\n", 12),
    # both reach their sync / notify at 5: released in that cycle, read at 6: finished at 7
    RunEnd("sync_and_notify_together", ".queue mem_w0\nnop 5\nsync\nread 0, e0, 1\n"
                                       ".queue mem_e0\nnop 5\nnotify\n", 7),
    # read at 0, copies at 3, 6, 9, 12, 15: finished at 16
    RunEnd("final_repeat", ".queue mem_w0\nread 0, e0, 1\nrepeat 5, 3, 1\n", 16),
    # notify at 0, nop (last word) at 1: finished at 2
    RunEnd("notify_then_nop", ".queue mem_e0\nnotify\nnop 100\n", 2),
    # a queue of ICU words only: nop at 0, nop at 3: finished at 4; mem_w0 at 1
    RunEnd("icu_only_queue", ".queue vxm0\nnop 3\nnop 7\n.queue mem_w0\nread 0, e0, 1\n", 4),
    # nothing to do: finished at once
    RunEnd("empty", "", 0),
)


def run_end_programs(cfg: ChipConfig) -> list[tuple[RunEnd, Program]]:
    """Every case with its program for `cfg`."""
    return [(r, r.program(cfg)) for r in RUN_ENDS]
