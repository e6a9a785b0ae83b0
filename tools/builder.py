"""Build programs by placing instructions at absolute cycles.

The compiler and the tests think in cycles: "mem_w0 reads at cycle 5, the VXM adds
at cycle 8". :class:`ProgramBuilder` turns such placements into per-queue
instruction lists, filling the gaps with ``nop``. Timing helpers say when a value
written at one position can be read at another (docs/timing.md section 3).
"""

from __future__ import annotations

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.errors import LpuError
from lpu.isa import Instr, Opcode, make
from lpu.program import Program

__all__ = ["ProgramBuilder", "arrival", "read_cycle"]

_ICU = (Opcode.NOP, Opcode.REPEAT, Opcode.SYNC, Opcode.NOTIFY)


def arrival(cfg: ChipConfig, src: str, dst: str, t_write: int) -> int:
    """Cycle in which the slice at position `dst` reads a value that the slice at
    `src` wrote at cycle `t_write` (positions by name, e.g. "mem_w0", "vxm")."""
    p = cfg.position(src).index
    q = cfg.position(dst).index
    if p == q:
        raise LpuError(f"{src} and {dst} are the same position")
    return t_write + abs(q - p)


def read_cycle(cfg: ChipConfig, src: str, dst: str, t_read: int) -> int:
    """Cycle at which `src` must write so that `dst` reads the value in cycle `t_read`."""
    p = cfg.position(src).index
    q = cfg.position(dst).index
    return t_read - abs(q - p)


class ProgramBuilder:
    """Place instructions at absolute dispatch cycles, one queue at a time.

    >>> b = ProgramBuilder("tiny")
    >>> b.at("mem_w0", 3, "read", 0, (0, 0))
    >>> prog = b.program()
    """

    def __init__(self, cfg: ChipConfig | str):
        self.cfg = load_config(cfg)
        self._q: dict[str, dict[int, Instr]] = {}
        self._names = {q.name for q in self.cfg.queues}

    def at(self, queue: str, cycle: int, mnemonic: str | Instr, *operands, **kw) -> None:
        if queue not in self._names:
            raise LpuError(f"unknown queue {queue!r}")
        ins = mnemonic if isinstance(mnemonic, Instr) else make(mnemonic, *operands, **kw)
        if cycle < 0:
            raise LpuError(f"queue {queue}: negative cycle {cycle}")
        lst = self._q.setdefault(queue, {})
        if cycle in lst:
            raise LpuError(f"queue {queue}: cycle {cycle} already has '{lst[cycle].text()}'")
        lst[cycle] = ins

    def last_cycle(self, queue: str) -> int:
        lst = self._q.get(queue)
        return max(lst) if lst else -1

    def busy(self, queue: str, cycle: int) -> bool:
        return cycle in self._q.get(queue, {})

    def instrs(self) -> dict[str, list[Instr]]:
        """Per-queue instruction lists. A ``repeat`` is placed at the cycle after the
        instruction it repeats; the queue is then busy until that instruction's cycle
        plus ``n * d`` (docs/timing.md section 1)."""
        out = {}
        for q, lst in self._q.items():
            seq: list[Instr] = []
            t = 0
            prev = None
            for cycle, ins in sorted(lst.items()):
                if cycle < t:
                    raise LpuError(f"queue {q}: cycle {cycle} ('{ins.text()}') is taken by the "
                                   f"copies of a repeat until cycle {t - 1}")
                if ins.op == Opcode.REPEAT:
                    if prev is None or cycle != prev + 1:
                        raise LpuError(f"queue {q}: the repeat at cycle {cycle} must directly "
                                       "follow the instruction it repeats")
                    seq.append(ins)
                    t = prev + ins.n * ins.d + 1
                    prev = None
                    continue
                gap = cycle - t
                while gap > 0:
                    n = min(gap, (1 << 20) - 1)
                    seq.append(make("nop", n))
                    gap -= n
                seq.append(ins)
                t = cycle + 1
                prev = cycle if ins.op not in _ICU else None
            out[q] = seq
        return out

    def program(self) -> Program:
        return Program.from_instrs(self.cfg, self.instrs())
