"""The trace recorder: the chip's packed trace, every cycle with an event, written by
the simulator itself, and read back in blocks.

Contract
--------
:func:`bench_top` returns the Verilog of a thin bench top, :data:`TOPLEVEL`, around the
chip top (``lpu_top``, :func:`lpu.hdl.chip.to_verilog` with its trace port, whose
members are ports of their own). It has the ports the cocotb bench uses (``clk``,
``rst``, the host bus ``bus__*``, ``trace_bits``: the trace ports packed as
:func:`lpu.hdl.chip.trace_fields` packs them, and ``trace__running``) and a recorder.
Started with the plusarg ``+lpu_trace=PATH`` (:data:`PLUSARG`), the recorder opens PATH
at time 0 and, at the falling clock edge of every cycle while ``trace__running`` is high
(the values a per-cycle bench samples there, after the cycle's inputs settle), writes one *record*
if any event bit of ``trace_bits`` is set (:func:`lpu.sim.trace.event_mask`). When
``trace__running`` falls (the run ended, or the chip was reset) it writes an *end
record* and flushes the file. Without the plusarg it writes nothing, so one build
serves the per-cycle bench and the recording one.

A record is :func:`record_bytes` bytes, written with ``$fwrite("%u")`` (Verilator and
Icarus agree: each value as 32-bit words, least significant first, little-endian):

========  ======  =====================================================================
bytes     field   meaning
========  ======  =====================================================================
0..3      cycle   the run's cycle of the record (0: the cycle after the START write);
                  in an end record the number of cycles the run was running
4         flags   bit 0: end record
5..7      run     runs recorded before this one since the simulator started
8..       trace   ``trace_bits``, little-endian, padded to 32 bits (in an end record:
                  of no meaning)
========  ======  =====================================================================

:class:`Pipe` is the reading side: a named pipe (FIFO) the simulator writes into,
opened before the simulator starts so the recorder's open never waits. It hands out
whole records in blocks (:meth:`Pipe.records`), so the simulator runs ahead of the
reader by at most the pipe's buffer (the reader's pace bounds the simulator's, and
neither side holds more than a block in memory) and a long run needs no disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import select
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape, Value

from lpu.hdl.chip import Chip, trace_fields

from .trace import event_mask

__all__ = ["TOPLEVEL", "CHIP_TOP", "PLUSARG", "HEADER_BYTES", "bench_top", "record_bytes",
           "Pipe", "Block", "RecorderError", "DPI_FILE"]

#: The module cocotb runs: the chip top inside the recorder.
TOPLEVEL = "lpu_bench"
#: The chip top's module name in the converted Verilog.
CHIP_TOP = "lpu_top"
#: ``+lpu_trace=PATH`` turns the recorder on.
PLUSARG = "lpu_trace"
HEADER_BYTES = 8
_F_SETPIPE_SZ = 1031  # linux/fcntl.h
_PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for by default
_SWITCH = 0.0005  # s: the interpreter's switch interval while a pipe is read
_IDLE = 0.003  # s: a pause in the records that ends a block


class RecorderError(RuntimeError):
    """The recording could not be read (the simulator stopped without finishing a run,
    or wrote something that is not a record)."""


def record_bytes(width: int) -> int:
    """Bytes of one record of a ``trace_bits`` of `width` bits."""
    return HEADER_BYTES + 4 * -(-width // 32)


def bench_top(chip: Chip, simulator: str) -> tuple[str, dict[str, str]]:
    """The Verilog of :data:`TOPLEVEL` for `chip` (built with ``trace=True``): the chip
    top :data:`CHIP_TOP` and the recorder (see the module docstring), and the other
    source files it needs (name -> text, to build beside it).

    On Verilator the recorder hands each record to a DPI-C function (:data:`DPI_SOURCE`)
    that writes it with ``fwrite``: measured on ``tiny``, ``$fwrite("%u")`` of the
    13,000-bit trace took about 8 us a record (Verilator formats it a byte at a time),
    about as long as simulating the cycle; through DPI it costs next to nothing.
    Icarus has no DPI and writes the same bytes with ``$fwrite("%u")``."""
    width = len(chip.trace_bits)
    words = -(-width // 32)
    mask = event_mask(chip)
    bus = []
    for path, member in chip.signature.members.flatten():
        if member.is_port and path[0] == "bus":
            bus.append(("__".join(str(x) for x in path),
                        "input" if member.flow.name == "In" else "output",
                        Shape.cast(member.shape).width))
    # the trace ports as the Verilog names them (arrays element by element), packed
    # in trace_fields order
    trace = [("__".join(str(x) for x in path), "output", len(Value.cast(value)))
             for path, _, value in chip.signature.flatten(chip) if path[0] == "trace"]
    if [w for _, _, w in trace] != [w for _, _, w in trace_fields(chip)]:
        raise RuntimeError("the chip's trace ports are not in trace_fields order")

    def decl(direction, w, name):
        return f"  {direction} {'' if w == 1 else f'[{w - 1}:0] '}{name};"

    names = ["clk", "rst", *(n for n, _, _ in bus), "trace_bits", "trace__running"]
    chip_ports = ["clk", "rst", *(n for n, _, _ in bus), *(n for n, _, _ in trace)]
    lines = [f"module {TOPLEVEL}({', '.join(names)});",
             decl("input", 1, "clk"), decl("input", 1, "rst"),
             *(decl(d, w, n) for n, d, w in bus),
             decl("output", width, "trace_bits"), decl("output", 1, "trace__running"),
             *(decl("wire", w, n) for n, _, w in trace if n != "trace__running"),
             f"  {CHIP_TOP} chip ({', '.join(f'.{n}({n})' for n in chip_ports)});",
             "  // the trace ports packed as lpu.hdl.chip.trace_fields packs them",
             f"  assign trace_bits = {{{', '.join(n for n, _, _ in reversed(trace))}}};",
             "  // the recorder (lpu.sim.recorder)",
             f"  localparam [{width - 1}:0] EVENTS = {width}'h{mask:x};",
             "  reg rec_was = 1'b0;",
             "  reg [31:0] rec_cycle = 32'd0;",
             "  reg [23:0] rec_run = 24'd0;",
             "  wire [31:0] rec_now = rec_was ? rec_cycle : 32'd0;"]
    files = {}
    if simulator == "verilator":
        src = DPI_SOURCE.format(words=words)
        files[DPI_FILE] = src
        lines += ['  import "DPI-C" function int lpu_rec_open(input string path);',
                  '  import "DPI-C" function void lpu_rec_write(input int cycle, input int '
                  f'flags, input bit [{width - 1}:0] bits);',
                  '  import "DPI-C" function void lpu_rec_flush();',
                  f"  // {DPI_FILE}: sha256 {hashlib.sha256(src.encode()).hexdigest()[:16]}",
                  "  integer rec_on = 0;",
                  "  string rec_path;",
                  "  initial begin",
                  f'    if ($value$plusargs("{PLUSARG}=%s", rec_path))',
                  "      rec_on = lpu_rec_open(rec_path);",
                  "  end"]
        write = "lpu_rec_write({cycle}, {flags}, {bits});"
        flush = "lpu_rec_flush();"
    else:
        lines += ["  integer rec_on = 0;",
                  "  reg [8*4096-1:0] rec_path;",
                  "  initial begin",
                  f'    if ($value$plusargs("{PLUSARG}=%s", rec_path))',
                  '      rec_on = $fopen(rec_path, "wb");',
                  "  end"]
        write = '$fwrite(rec_on, "%u%u%u", {cycle}, {flags}, {bits});'
        flush = "$fflush(rec_on);"
    lines += ["  always @(negedge clk) begin",
              "    if (rec_on != 0) begin",
              "      if (trace__running) begin",
              "        if (|(trace_bits & EVENTS))",
              "          " + write.format(cycle="rec_now", flags="{rec_run, 8'd0}",
                                          bits="trace_bits"),
              "        rec_cycle <= rec_now + 32'd1;",
              "        rec_was <= 1'b1;",
              "      end else if (rec_was) begin",
              "        " + write.format(cycle="rec_cycle", flags="{rec_run, 8'd1}",
                                        bits="trace_bits"),
              "        " + flush,
              "        rec_run <= rec_run + 24'd1;",
              "        rec_was <= 1'b0;",
              "      end",
              "    end",
              "  end",
              "endmodule", ""]
    return "\n".join(lines), files


#: The Verilator recorder's C++ side (DPI-C), for ``trace_bits`` of ``words`` 32-bit
#: words: a record's header and bits as Verilator hands them over (32-bit words, least
#: significant first), through stdio with a 1 MiB buffer (as large as the pipe).
DPI_FILE = "lpu_recorder.cpp"
DPI_SOURCE = """// lpu.sim.recorder: the trace recorder's writer (generated)
#include <cstdint>
#include <cstdio>
#include "svdpi.h"

static std::FILE* rec_fp = nullptr;

extern "C" int lpu_rec_open(const char* path) {{
    rec_fp = std::fopen(path, "wb");
    if (!rec_fp) return 0;
    std::setvbuf(rec_fp, nullptr, _IOFBF, 1 << 20);
    return 1;
}}

extern "C" void lpu_rec_write(int cycle, int flags, const svBitVecVal* bits) {{
    const uint32_t head[2] = {{static_cast<uint32_t>(cycle), static_cast<uint32_t>(flags)}};
    std::fwrite(head, 4, 2, rec_fp);
    std::fwrite(bits, 4, {words}, rec_fp);
}}

extern "C" void lpu_rec_flush() {{
    if (rec_fp) std::fflush(rec_fp);
}}
"""


@dataclass
class Block:
    """Records of one run, in cycle order: ``cycles`` [n] and ``trace`` uint8 [n, bytes]
    (``trace_bits``, little-endian); ``end`` is the run's running cycles once its end
    record was read (the last block of a run), else None."""

    run: int
    cycles: np.ndarray
    trace: np.ndarray
    end: int | None = None


class Pipe:
    """The reading end of the recorder's named pipe at `path` (created here, removed by
    :meth:`close`), for ``trace_bits`` of `width` bits.

    A thread of its own reads the pipe as fast as the simulator writes it, into a buffer
    of at most `buffer` bytes, so the simulator runs on while the caller computes
    (the golden model's run, a comparison); when the buffer is full the thread stops
    reading, the pipe fills and the simulator waits. ``alive``: a callable that says
    whether the simulator may still write (polled while nothing comes); when it is false
    and the pipe is empty, a run that has not ended is a :class:`RecorderError`."""

    def __init__(self, path, width: int, alive, *, buffer: int = 256 << 20):
        self.path = Path(path)
        self.width = width
        self.size = record_bytes(width)
        self.alive = alive
        self.cap = max(buffer, 2 * _PIPE_BYTES)
        self.path.unlink(missing_ok=True)
        os.mkfifo(self.path)
        # read-write: the open does not wait for the simulator, and the recorder's open
        # (write-only) does not wait for a reader (Linux semantics of a FIFO)
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        self._buf = bytearray()  # what the caller has not taken yet
        self._chunks: deque = deque()  # what the thread read since
        self._held = 0  # bytes in _chunks
        self._done = False  # the simulator stopped and the pipe is empty
        self._stop = False
        self._cond = threading.Condition()
        self._run = 0
        self._thread = threading.Thread(target=self._read, name="lpu-recorder-pipe",
                                        daemon=True)
        # the reader needs the interpreter lock for each read: at the default switch
        # interval (5 ms) the caller's computing kept it from emptying the pipe (1 MiB,
        # a few ms of a fast simulator) in time, and the simulator waited
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, _SWITCH))
        self._thread.start()

    def _read(self):
        while True:
            with self._cond:
                while self._held >= self.cap and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            chunk = b""
            if ready:
                with contextlib.suppress(BlockingIOError):
                    chunk = os.read(self.fd, _PIPE_BYTES)
            elif not self.alive():
                with contextlib.suppress(BlockingIOError):
                    chunk = os.read(self.fd, _PIPE_BYTES)
                if not chunk:
                    with self._cond:
                        self._done = True
                        self._cond.notify_all()
                    return
            if chunk:
                with self._cond:
                    self._chunks.append(chunk)
                    self._held += len(chunk)
                    self._cond.notify_all()

    def close(self):
        if self.fd is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._thread.join()
            os.close(self.fd)  # a simulator still writing gets EPIPE and stops
            self.fd = None
            sys.setswitchinterval(self._switch)
        self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _take(self, want: int, most: int, gather: float = 0.0) -> bytes:
        """At least `want` bytes (waiting for them; fewer only if nothing more can come)
        and at most `most`, from the front of what was read; with `gather`, waiting up
        to that many seconds more while less than `most` has come and more keeps coming
        (a pause of :data:`_IDLE` ends it: the simulator finished a run)."""
        with self._cond:
            while len(self._buf) + self._held < want and not self._done:
                self._cond.wait()
            until = time.monotonic() + gather
            while len(self._buf) + self._held < most and not self._done:
                left = until - time.monotonic()
                had = self._held
                if left <= 0:
                    break
                self._cond.wait(min(left, _IDLE))
                if self._held == had:
                    break
            while self._chunks and len(self._buf) < most:
                chunk = self._chunks.popleft()
                self._held -= len(chunk)
                self._buf += chunk
            self._cond.notify_all()
        n = min(most, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]  # at most `most` plus one chunk left behind: cheap
        return out

    def _untake(self, data: bytes) -> None:
        """Put back bytes :meth:`_take` returned (another run's records)."""
        self._buf[:0] = data

    def records(self, block: int = 1024, gather: float = 0.05):
        """The records of the next run, as :class:`Block` s of at most `block` records;
        the last one carries the run's end. A block is handed out when it is full or
        `gather` seconds after its first record came (fewer, larger blocks: each costs
        the comparison a fixed time), or at the run's end."""
        run, size = self._run, self.size
        while True:
            data = self._take(size, block * size, gather)
            n = len(data) // size
            if not n:
                raise RecorderError(f"the simulator stopped before the end of run {run} "
                                    "was recorded")
            if len(data) > n * size:
                self._untake(data[n * size:])
            raw = np.frombuffer(data, dtype=np.uint8, count=n * size).reshape(n, size)
            head = raw[:, :HEADER_BYTES].copy().view("<u4")
            cycles, flags = head[:, 0].astype(np.int64), head[:, 1]
            ends = np.flatnonzero(flags & 1)
            mine = flags[:ends[0] + 1 if ends.size else n] >> 8  # this run's records
            if (mine != run % (1 << 24)).any():
                bad = int(mine[np.argmax(mine != run % (1 << 24))])
                raise RecorderError(f"a record of run {bad} where run {run} was expected")
            if ends.size:
                k = int(ends[0])
                if k + 1 < n:
                    self._untake(data[(k + 1) * size:n * size])
                self._run += 1
                yield Block(run, cycles[:k], raw[:k, HEADER_BYTES:], int(cycles[k]))
                return
            yield Block(run, cycles, raw[:, HEADER_BYTES:])
