"""Architectural events, as the golden model and the RTL report them each cycle.

An :class:`Event` is a tuple ``(cycle, kind, unit, dir, index, superlane, data)``:

========== ====================== ======= =========================== =====================
kind       unit                   dir     index                       data (bytes)
========== ====================== ======= =========================== =====================
dispatch   queue index            0       instruction index in queue  the word, 4 bytes LE
sr         position index         0 E/1 W stream                      the superlane's lanes
sram       MEM slice index [#]_   0       address                     the superlane's lanes
wload      MXM plane index [#]_   0       weight row                  the superlane's lanes
install    MXM plane index        0       0                           empty
acc        MXM plane index        0       accumulator slot            int32 lanes, LE
ecc        MEM slice index [#]_   0 / 1   address                     decode report, 2 B LE
========== ====================== ======= =========================== =====================

.. [#] MEM slices in queue order: mem_w0 .. mem_w{n-1}, mem_e0 .. mem_e{n-1}.
.. [#] MXM planes in queue order: mxm_w0 .., mxm_e0 ...
.. [#] An ``ecc`` event is a ``read`` of an SRAM word whose ECC word on that superlane
   had an error (:mod:`lpu.ecc`): ``dir`` 0 corrected, 1 detected (uncorrectable); at
   the cycle the word goes onto the stream (the ``sr`` event's cycle); ``data`` the
   decode report ``syndrome | parity << r``.

Cycles are real cycles: an event of superlane ``k`` caused by an instruction
dispatched at ``t`` is at ``t + k + dt``. ``dispatch`` events are at the cycle the
queue hands the instruction to superlane 0 (repeat copies included; nop, repeat,
sync and notify themselves are not reported). Stream writes of an int32 group are
four ``sr`` events, one per stream. The JSONL form (``lpu run --trace``) writes one
object per line with the same fields by name, ``data`` as hex.
"""

from __future__ import annotations

import json
from typing import NamedTuple

__all__ = ["Event", "KINDS", "to_json", "from_json", "write_jsonl", "read_jsonl"]

KINDS = ("dispatch", "sr", "sram", "wload", "install", "acc", "ecc")
_KORDER = {k: i for i, k in enumerate(KINDS)}


class Event(NamedTuple):
    cycle: int
    kind: str
    unit: int
    dir: int
    index: int
    superlane: int
    data: bytes

    def sort_key(self):
        return (self.cycle, _KORDER[self.kind], self.unit, self.dir, self.index, self.superlane)

    def describe(self, cfg) -> str:
        """Human-readable, with names from the config."""
        if self.kind == "sr":
            where = f"{cfg.positions[self.unit].name} stream {'ew'[self.dir]}{self.index}"
        elif self.kind == "ecc":
            names = [q.name for q in cfg.queues if q.kind == "mem"]
            what = ("corrected", "detected")[self.dir & 1]
            where = f"{names[self.unit]} address {self.index} {what}"
        elif self.kind == "sram":
            names = [q.name for q in cfg.queues if q.kind == "mem"]
            where = f"{names[self.unit]} address {self.index}"
        elif self.kind in ("wload", "install", "acc"):
            names = [q.name for q in cfg.queues if q.kind == "mxm"]
            what = {"wload": "row", "install": "", "acc": "slot"}[self.kind]
            where = f"{names[self.unit]} {what} {self.index}" if what else names[self.unit]
        else:
            where = f"{cfg.queues[self.unit].name}[{self.index}]"
        return (f"cycle {self.cycle} superlane {self.superlane} {self.kind} {where}: "
                f"{self.data.hex()}")


def to_json(ev: Event) -> dict:
    return {"cycle": ev.cycle, "kind": ev.kind, "unit": ev.unit, "dir": ev.dir,
            "index": ev.index, "superlane": ev.superlane, "data": ev.data.hex()}


def from_json(obj: dict) -> Event:
    return Event(int(obj["cycle"]), str(obj["kind"]), int(obj["unit"]), int(obj["dir"]),
                 int(obj["index"]), int(obj["superlane"]), bytes.fromhex(obj["data"]))


def write_jsonl(events, path) -> None:
    with open(path, "w") as f:
        for ev in events:
            f.write(json.dumps(to_json(ev)) + "\n")


def read_jsonl(path) -> list[Event]:
    with open(path) as f:
        return [from_json(json.loads(line)) for line in f if line.strip()]
