"""Decoding through a board (``lpu decode --board sim|/dev/ttyUSB0``): every step program
of a decode runs on the chip behind the board's UART bridge, driven by the host driver
:class:`lpu.board.Board`, on a real board (a serial port) or the simulated one
(:class:`lpu.sim.board.RtlLink`: the whole chip and bridge as Verilog, the serial line
simulated bit by bit), and is checked against the golden model step by step.

Contract
--------
:class:`BoardDecoder` is :class:`lpu.tools.compiler.lower.ChipDecoder` (the same
compiled step programs, from the same cache) with a board beside the golden chip. For
each step, the host loop

1. applies the step's SRAM image (weights, constants, the token's copies) to the golden
   chip's SRAM, which is what the board holds after the step before; it writes to the
   board the words that image changed, and on the first step every word the image
   covers and every non-zero word (the weights: on the simulated board, and on a board
   just programmed, SRAM starts at zero; on a board used before, the words a step
   program reads before it writes them are all in the image, which a test checks);
2. loads the step program (only the instruction words that differ from what each
   queue's instruction memory holds from the step before: consecutive positions
   differ in a few words), writes START, polls STATUS until DONE, reads CYCLE and the
   sticky error registers;
3. reads the logits back, word by word, through the bridge.

The golden model runs the same step from the same SRAM. The board's run must end in the
golden model's last cycle, raise no error, and give the golden logits bit for bit;
otherwise :class:`BoardMismatch` (an :class:`~lpu.errors.LpuError`) stops the decode,
naming the step and what differs. The KV cache stays in the board's SRAM across steps,
as on the golden chip.

:meth:`BoardDecoder.stats` counts what crossed the line (bytes each way, requests,
instruction and SRAM words written) and the cycles the chip ran; :func:`line_cost`
turns them into the tokens per second a board would reach at a given clock and baud
rate, the line's time included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lpu.board import DEFAULT_BAUD, Board, SerialTransport
from lpu.errors import LpuError
from lpu.golden.chip import Chip
from lpu.sim.board import RtlLink
from lpu.tools.compiler.decode import DecodeResult
from lpu.tools.compiler.decode import decode as _decode
from lpu.tools.compiler.kernels import write_image
from lpu.tools.compiler.lower import ChipDecoder, StepResult
from lpu.tools.rtl_decode import Heartbeat

__all__ = ["BoardDecoder", "BoardMismatch", "decode", "line_cost", "SIM"]

#: ``--board`` for the simulated board.
SIM = "sim"
#: Seconds of simulated time (at the config's clock) a step may take to report DONE.
STEP_TIMEOUT_S = 1.0


class BoardMismatch(LpuError):
    """A decode step on the board differs from the golden model's."""

    def __init__(self, message: str, *, step: int, pos: int):
        super().__init__(message)
        self.step, self.pos = step, pos


def covered_words(cfg, image, fill) -> np.ndarray:
    """bool ``[slices, mem_words]``: the SRAM words an image writes (zeros included)."""
    a, b = Chip(cfg), Chip(cfg)
    b.mem[...] = 0xFF
    write_image(a, image, fill)
    write_image(b, image, fill)
    return ((a.mem != 0) | (b.mem != 0xFF)).any(axis=2)


@dataclass
class BoardDecoder(ChipDecoder):
    """:class:`~lpu.tools.compiler.lower.ChipDecoder` with every step on a board (see
    the module docstring): `port` a serial port, or :data:`SIM` for the simulated
    board; `baud` the line's rate on a real board; `log` a file for a line per step."""

    port: str = SIM
    baud: int = DEFAULT_BAUD
    log: object = None
    total: int | None = None  # steps the caller will run (progress lines only)
    _board: Board | None = field(default=None, repr=False)
    link_name: str = ""
    steps: int = 0
    cycles: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    exchanges: int = 0
    imem_words: int = 0
    sram_words: int = 0
    link_s: float = 0.0  # on the link's clock (simulated seconds on the simulated board)
    first: dict = field(default_factory=dict)  # the first step's share of the counts

    def _start(self) -> Board:
        if self._board is None:
            if self.port == SIM:
                if self.log:
                    print(f"board: the simulated {self.chip_cfg.name} board on Verilator "
                          "(built once per design, then cached; a minute the first time)",
                          file=self.log, flush=True)
                link = RtlLink(self.chip_cfg)
            else:
                link = SerialTransport(self.port, self.baud)
            board = Board(link, self.chip_cfg)
            try:
                board.connect()
            except BaseException:
                board.close()
                raise
            self._board = board
            self.link_name = link.name
            if self.log:
                print(f"board: {link.name}: bridge and chip of config {self.chip_cfg.name} "
                      f"(hash {self.chip_cfg.hash}) found", file=self.log, flush=True)
        return self._board

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
            self._board = None

    def stats(self) -> dict:
        """What crossed the line and ran on the board so far (see the module docstring);
        ``first_step``: the same counts for the first step alone (the weights)."""
        return {"board": self.link_name or self.port,
                "steps": self.steps, "cycles": self.cycles, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "requests": self.exchanges,
                "imem_words": self.imem_words, "sram_words": self.sram_words,
                "link_s": round(self.link_s, 6), "first_step": dict(self.first)}

    def step(self, token, pos: int) -> StepResult:
        tokens = self._tokens(token)
        cs = self.compiled(pos)
        board = self._start()
        t0 = time.perf_counter()
        chip, cfg = self._chip, self.chip_cfg
        held = chip.mem.copy()  # what the board holds: the golden SRAM after the last step
        self._apply(cs, tokens)
        changed = (chip.mem != held).any(axis=2)
        if self.steps == 0:
            changed |= (covered_words(cfg, cs.image, self._fill(cs, tokens))
                        | (chip.mem != 0).any(axis=2))
        words = {(chip.mem_names[m], int(a)): bytes(chip.mem[m, a])
                 for m, a in zip(*np.nonzero(changed), strict=True)}
        res, _ = self._run(cs, pos)  # the golden logits: compared word by word below
        outs = self.outputs(cs)
        # a tensor of n vectors is n words of int8, or 4n of float32 (a word a byte plane)
        back = [(o.slice, o.addr + k) for o in outs
                for k in range(o.n * (1 if o.dtype == "i8" else 4))]
        s0, r0, e0 = board.bytes_sent, board.bytes_received, board.exchanges
        of = f"/{self.total}" if self.total else ""
        beat = Heartbeat(self.log, f"board: step {self.steps + 1}{of} (position {pos})",
                          None) if self.log else None
        try:
            rep = board.run(cs.program, words, back, timeout=STEP_TIMEOUT_S)
        finally:
            if beat is not None:
                beat.stop()
        where = f"decode step {self.steps} (position {pos}) on the {board.t.name}"
        if rep.error is not None:
            raise BoardMismatch(f"{where}: the chip raised an error: {rep.error_text}",
                                step=self.steps, pos=pos)
        if rep.end_cycle != res.end_cycle:
            raise BoardMismatch(f"{where}: the run ended in cycle {rep.end_cycle}, the "
                                f"golden model's in cycle {res.end_cycle}",
                                step=self.steps, pos=pos)
        for (sl, addr), got in sorted(rep.words.items()):
            want = bytes(chip.read_mem(sl, addr)[0])
            if got != want:
                lane = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
                raise BoardMismatch(f"{where}: the logits read back from {sl} word {addr} "
                                    f"lane {lane} are 0x{got[lane]:02x}, the golden model's "
                                    f"0x{want[lane]:02x}", step=self.steps, pos=pos)
        scratch = Chip(cfg)  # the logits as the board gave them (the golden model's)
        for (sl, addr), got in rep.words.items():
            scratch.write_mem(sl, addr, np.frombuffer(got, np.uint8)[None])
        lgs = [scratch.read_tensor(o.slice, o.addr, o.n, np.float32).reshape(-1).copy()
               for o in outs]
        counts = {"bytes_sent": board.bytes_sent - s0,
                  "bytes_received": board.bytes_received - r0,
                  "requests": board.exchanges - e0, "sram_words": len(words),
                  "imem_words": rep.imem_words, "cycles": res.cycles}
        if self.steps == 0:
            self.first = dict(counts)
        self.steps += 1
        self.cycles += res.cycles
        self.bytes_sent += counts["bytes_sent"]
        self.bytes_received += counts["bytes_received"]
        self.exchanges += counts["requests"]
        self.imem_words += counts["imem_words"]
        self.sram_words += len(words)
        self.link_s += rep.seconds
        run_s = time.perf_counter() - t0
        if self.log:
            print(f"board: step {self.steps}{of} (position {pos}): {res.cycles} cycles, as the "
                  f"golden model; {len(words)} SRAM words and {counts['imem_words']} "
                  f"instruction words written, {counts['bytes_sent'] + counts['bytes_received']:,} "
                  f"bytes on the line in {counts['requests']} requests; {run_s:.1f} s",
                  file=self.log, flush=True)
        return StepResult(token, pos, lgs[0] if self.batch == 1 else lgs, res.cycles,
                          cs.compile_s, run_s, self._bound(pos))


def line_cost(stats: dict, *, clock_mhz: float, baud: float, exclude_first: bool = True) -> dict:
    """Seconds a token takes on a board at `clock_mhz` with its line at `baud` (8N1, ten
    bits a byte), from :meth:`BoardDecoder.stats`: the chip's cycles plus the bytes both
    ways on the line, averaged over the steps (without the first, which carries the
    weights, when `exclude_first` and there are others). Round-trip delays of the USB
    serial adapter are not in it: ``requests`` says how many there are."""
    n, keys = stats["steps"], ("cycles", "bytes_sent", "bytes_received", "requests")
    tot = {k: stats[k] for k in keys}
    if exclude_first and n > 1:
        tot = {k: tot[k] - stats["first_step"][k] for k in keys}
        n -= 1
    chip_s = tot["cycles"] / (clock_mhz * 1e6) / n
    line_s = 10 * (tot["bytes_sent"] + tot["bytes_received"]) / baud / n
    return {"steps": n, "chip_s": chip_s, "line_s": line_s,
            "requests": tot["requests"] / n, "tokens_per_s": 1 / (chip_s + line_s),
            "chip_only_tokens_per_s": 1 / chip_s}


def decode(model="builtin", *, board: str = SIM, baud: int = DEFAULT_BAUD, log=None,
           **kw) -> DecodeResult:
    """:func:`lpu.tools.compiler.decode.decode` with every step through a board (see
    the module docstring); the result's ``rtl`` holds :meth:`BoardDecoder.stats`."""

    def make(m, cfg, ctx, batch):
        return BoardDecoder(m, cfg, ctx, batch=batch, port=board, baud=baud, log=log)

    return _decode(model, backend="board", decoder=make, **kw)
