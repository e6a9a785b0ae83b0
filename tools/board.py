"""``lpu board run`` as a library: a program and its SRAM image through a board's UART
bridge, on a real board (a serial port) or the simulated one, checked against the
golden model.

:func:`board_run` loads the program (assembly or ``.bin``, :func:`lpu.loaders.
load_program`) and the SRAM image (``--mem-in``, the format of ``lpu run``), runs the
golden model first (which also checks the program and tells which SRAM words it writes),
then drives the board with :class:`lpu.board.Board`: connect (PING, ID, config hash),
write the image's words, load the program, START, wait for DONE, read STATUS, the sticky
error registers and every word the program writes (the golden model's ``sram`` events;
each word costs about 34 bytes on the line, so only these are read). The result compares
the board with the golden model: the run's last cycle (the CYCLE register against
``RunResult.end_cycle``) and each word read back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lpu import config as cfgmod
from lpu.board import DEFAULT_BAUD, Board, SerialTransport
from lpu.errors import LpuError
from lpu.golden.chip import Chip as GoldenChip
from lpu.loaders import imem_problem, load_mem_npz, load_program
from lpu.sim.board import SimLink

__all__ = ["board_run", "BoardRun", "open_board", "words_npz"]


@dataclass
class BoardRun:
    """The outcome of :func:`board_run`."""

    program: str
    config: str
    link: str
    end_cycle: int  # the board's CYCLE after DONE
    golden_end_cycle: int
    status: int
    error: str | None  # the sticky error registers as text
    words: dict  # {(slice, address): bytes} read from the board
    mismatches: list  # [(slice, address, board bytes, golden bytes)]
    seconds: float  # on the link's clock (simulated seconds for --sim)
    wall_seconds: float
    bytes_sent: int
    bytes_received: int

    @property
    def ok(self) -> bool:
        return (not self.mismatches and self.end_cycle == self.golden_end_cycle
                and self.error is None)

    def to_json(self) -> dict:
        return {
            "program": self.program, "config": self.config, "link": self.link,
            "ok": self.ok, "end_cycle": self.end_cycle,
            "golden_end_cycle": self.golden_end_cycle, "status": self.status,
            "error": self.error, "words_read": len(self.words),
            "mismatches": [{"slice": s, "address": a, "board": b.hex(), "golden": g.hex()}
                           for s, a, b, g in self.mismatches],
            "seconds": round(self.seconds, 6), "wall_seconds": round(self.wall_seconds, 2),
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
        }


class _Recorder:
    """A golden chip that also records which SRAM words an image writes."""

    def __init__(self, chip: GoldenChip):
        self.chip, self.cfg, self.keys = chip, chip.cfg, set()

    def write_tensor(self, slice_name, address, array):
        n = self.chip.write_tensor(slice_name, address, array)
        self.keys |= {(slice_name, address + i) for i in range(n)}
        return n


def open_board(cfg, *, port: str | None = None, sim: bool = False,
               baud: int = DEFAULT_BAUD) -> Board:
    """A connected :class:`Board`: the simulated one, or the one on serial `port`."""
    cfg = cfgmod.load(cfg)
    if sim == (port is not None):
        raise LpuError("give either a serial port (--port /dev/ttyUSB0) or --sim")
    link = SimLink.chip(cfg) if sim else SerialTransport(port, baud)
    board = Board(link, cfg)
    try:
        board.connect()
    except BaseException:
        board.close()
        raise
    return board


def board_run(program_path, *, config="fpga", mem_in=None, port: str | None = None,
              sim: bool = False, baud: int = DEFAULT_BAUD, timeout: float = 10.0,
              board: Board | None = None) -> BoardRun:
    """Run the program at `program_path` on a board (see the module docstring); `board`
    an already connected :class:`Board` (else one is opened from `port` / `sim`)."""
    cfg = cfgmod.load(config)
    prog = load_program(program_path, cfg)
    too_long = imem_problem(prog, cfg, str(program_path))
    if too_long:
        raise LpuError(too_long)
    golden = GoldenChip(cfg)
    rec = _Recorder(golden)
    if mem_in:
        load_mem_npz(rec, mem_in)
    words = {key: bytes(golden.read_mem(*key)[0]) for key in sorted(rec.keys)}
    golden.load(prog, name=str(program_path))
    res = golden.run(trace=True)
    written = {(golden.mem_names[e.unit], e.index) for e in res.events if e.kind == "sram"}
    t0 = time.perf_counter()
    own = board is None
    if own:
        board = open_board(cfg, port=port, sim=sim, baud=baud)
    try:
        rep = board.run(prog, words, sorted(written), timeout=timeout)
    finally:
        if own:
            board.close()
    mismatches = []
    for (sl, addr), got in rep.words.items():
        want = bytes(golden.read_mem(sl, addr)[0])
        if got != want:
            mismatches.append((sl, addr, got, want))
    return BoardRun(program=str(program_path), config=cfg.name, link=board.t.name,
                    end_cycle=rep.end_cycle, golden_end_cycle=res.end_cycle,
                    status=rep.status, error=rep.error_text, words=rep.words,
                    mismatches=mismatches, seconds=rep.seconds,
                    wall_seconds=time.perf_counter() - t0, bytes_sent=rep.bytes_sent,
                    bytes_received=rep.bytes_received)


def words_npz(words: dict) -> dict:
    """Words ``{(slice, address): bytes}`` as the arrays of an SRAM image (``lpu run
    --mem-in``): one uint8 array ``SLICE@FIRST`` of shape ``[n, VL]`` per run of
    consecutive addresses."""
    out, run = {}, []
    for key in sorted(words) + [None]:
        if run and (key is None or key[0] != run[-1][0] or key[1] != run[-1][1] + 1):
            out[f"{run[0][0]}@{run[0][1]}"] = np.array([list(words[k]) for k in run],
                                                        dtype=np.uint8)
            run = []
        if key is not None:
            run.append(key)
    return out
