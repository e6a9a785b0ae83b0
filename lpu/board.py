"""The host driver of a board: :class:`Board`, over any byte :class:`Transport`.

The same driver code runs against a real board (:class:`SerialTransport`, pyserial: the
ULX3S's USB serial port) and against the simulated one (:class:`lpu.sim.board.SimLink`:
the chip, the bridge and the UART line on Amaranth's simulator). It speaks the framing
of :mod:`lpu.framing` to the bridge :mod:`lpu.hdl.bridge` and drives the chip through
its register map (:class:`lpu.hostmap.RegisterMap`): load a program, write and read SRAM
words, start, wait for DONE, read CYCLE and the sticky error registers.

Time: a transport has its own clock (:meth:`Transport.now`): the wall clock for a
serial port, the simulated time at the config's clock for the simulator. Every wait
of the driver (an acknowledgement, DONE) is measured on it, so a timeout means the same
on both.

Errors are :class:`BoardError` subclasses with a message naming the problem:
:class:`LinkError` (no port, no answer, a damaged or out-of-step acknowledgement, the
wrong bridge or chip), :class:`BridgeError` (the bridge refused a request: its status
code), :class:`RunTimeout` (the chip did not finish).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lpu import framing
from lpu.config import ChipConfig
from lpu.errors import LpuError
from lpu.framing import Command, Status
from lpu.hostmap import RegisterMap
from lpu.program import Program

__all__ = ["Board", "BoardError", "BridgeError", "BridgeInfo", "LinkError", "RunTimeout",
           "RunReport", "SerialTransport", "Transport", "DEFAULT_BAUD", "BOARD_TIMEOUT_S"]

#: The board's serial rate unless built otherwise (an exact divisor of 50 MHz and of
#: the FTDI chip's 3 MHz).
DEFAULT_BAUD = 1_000_000
#: The board bridge's quiet time (its ``timeout``) in seconds: USB delivers a host's
#: bytes in packets, with gaps of a millisecond or more between them.
BOARD_TIMEOUT_S = 0.02


class BoardError(LpuError):
    """A board (real or simulated) could not do what was asked."""


class LinkError(BoardError):
    """The serial link failed: no port, no answer, a damaged acknowledgement."""


class BridgeError(BoardError):
    """The bridge answered a request with an error status (:attr:`status`)."""

    def __init__(self, message: str, status: Status):
        super().__init__(message)
        self.status = status


class RunTimeout(BoardError):
    """The chip did not report DONE in time."""


class Transport(Protocol):
    """A byte link to a bridge, with its own clock.

    Attributes
    ----------
    baud : float
        Bits per second of the line (ten bits a byte, 8N1).
    latency : float
        The longest extra delay of an answer beyond its bytes (USB buffering; a
        simulated bridge's discard time), in the transport's seconds: what the driver
        waits for an acknowledgement before it knows the bridge's own timeout.
    name : str
        What to call the link in messages (the port's name).
    """

    baud: float
    latency: float
    name: str

    def write(self, data: bytes) -> None:
        """Send the bytes (returns when they are queued)."""
        ...

    def read(self, n: int, timeout: float) -> bytes:
        """Up to `n` bytes: fewer if `timeout` seconds pass first."""
        ...

    def now(self) -> float:
        """The transport's clock, in seconds."""
        ...

    def discard_input(self) -> None:
        """Drop every byte received and not yet read."""
        ...

    def close(self) -> None:
        ...


class SerialTransport:
    """A serial port through pyserial (``pip install 'lpu[fpga]'``)."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD, *, latency: float = 0.25):
        try:
            import serial  # optional: pyserial, in the fpga extra
        except ImportError:
            raise LinkError("pyserial is not installed: pip install pyserial (the project's "
                            "'fpga' extra)") from None
        self.name, self.baud, self.latency = port, baud, latency + BOARD_TIMEOUT_S
        try:
            self._port = serial.Serial(port, baudrate=baud, timeout=0)
        except (serial.SerialException, ValueError, OSError) as e:
            raise LinkError(f"serial port {port}: cannot open it ({e})") from None
        self._error = serial.SerialException

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (self._error, OSError) as e:
            raise LinkError(f"serial port {self.name}: write failed ({e})") from None

    def read(self, n: int, timeout: float) -> bytes:
        out = bytearray()
        end = time.monotonic() + timeout
        try:
            while len(out) < n:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._port.timeout = left
                out += self._port.read(n - len(out))
        except (self._error, OSError) as e:
            raise LinkError(f"serial port {self.name}: read failed ({e})") from None
        return bytes(out)

    def now(self) -> float:
        return time.monotonic()

    def discard_input(self) -> None:
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()


@dataclass(frozen=True)
class BridgeInfo:
    """What a PING reports."""

    max_words: int
    divisor: int  # clock cycles per bit
    timeout_cycles: int
    clock_hz: float  # the chip's clock: divisor * baud

    @property
    def timeout_s(self) -> float:
        return self.timeout_cycles / self.clock_hz


@dataclass
class RunReport:
    """What :meth:`Board.run` returns."""

    end_cycle: int  # the CYCLE register after DONE: the run's last cycle
    status: int
    error: dict | None  # the sticky error registers, None without an error
    error_text: str | None
    words: dict  # {(slice name, address): bytes} read back
    seconds: float  # on the transport's clock
    bytes_sent: int
    bytes_received: int
    imem_words: int = 0  # instruction words written (the program's differences)


class Board:
    """The chip of config `cfg` behind a bridge on `transport`.

    ``Board(transport, cfg)`` only records them; :meth:`connect` pings the bridge and
    checks that the chip is the one of `cfg` (ID and config hash).
    """

    def __init__(self, transport: Transport, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            raise TypeError(f"Board needs a ChipConfig, not {cfg!r}")
        self.t = transport
        self.cfg = cfg
        self.regs = RegisterMap(cfg)
        self.info: BridgeInfo | None = None
        self.bytes_sent = self.bytes_received = 0
        self.exchanges = 0  # requests answered (each one round trip on the line)
        #: What each queue's instruction memory holds from this driver's earlier loads
        #: (queue name -> words), so that a program is loaded as its differences.
        self.imem: dict[str, list[int]] = {}

    # -- frames --------------------------------------------------------------------------
    def _wait(self, n_bytes: int) -> float:
        """How long to wait for an answer of `n_bytes` (and the request's bytes)."""
        line = 10 * n_bytes / self.t.baud
        quiet = self.info.timeout_s if self.info else 0.0
        return 2 * line + quiet + self.t.latency

    def exchange(self, command: Command, address: int = 0, count: int = 0,
                 words=()) -> list[int]:
        """Send one request and return the words of its acknowledgement; raise
        :class:`BridgeError` for an error status, :class:`LinkError` for no or a bad
        answer (after which the link is resynchronized)."""
        frame = framing.request(command, address, count, words)
        ok_len = framing.ack_length(command, Status.OK, count)
        self.t.write(frame)
        self.bytes_sent += len(frame)
        self.exchanges += 1
        wait = self._wait(len(frame) + ok_len)
        head = self.t.read(2, wait)
        self.bytes_received += len(head)
        what = f"{command.name} of {count} word(s) at 0x{address:x}"
        if len(head) < 2:
            self._resync()
            raise LinkError(f"{self.t.name}: no acknowledgement for {what} within "
                            f"{wait:.3g} s: is the board programmed with the lpu bitstream, "
                            f"the port right and the baud rate {self.t.baud:g}?")
        cmd, status = head
        if cmd != command and status not in (Status.LINE_ERROR, Status.OVERRUN):
            self._resync()
            raise LinkError(f"{self.t.name}: the acknowledgement of {what} names command "
                            f"0x{cmd:02x}: the link is out of step (resynchronized)")
        n_rest = framing.ack_length(command, status, count) - 2
        rest = self.t.read(n_rest, wait)
        self.bytes_received += len(rest)
        if len(rest) < n_rest:
            self._resync()
            raise LinkError(f"{self.t.name}: the acknowledgement of {what} stopped after "
                            f"{2 + len(rest)} of {2 + n_rest} bytes")
        if framing.crc8(head + rest) != 0:  # the check byte makes the CRC of all zero
            self._resync()
            raise LinkError(f"{self.t.name}: the acknowledgement of {what} has a bad check "
                            "byte (noise on the line?)")
        try:
            status = Status(status)
        except ValueError:
            raise LinkError(f"{self.t.name}: unknown status {status} in the acknowledgement "
                            f"of {what}") from None
        if status != Status.OK:
            raise BridgeError(f"{self.t.name}: the bridge refused {what}: {status.name} "
                              f"({status.meaning})", status)
        data = rest[:-1]
        return list(struct.unpack(f"<{len(data) // 4}I", data))

    def _resync(self):
        """Wait until the bridge has given up on whatever it was receiving, drop what
        arrived."""
        self.t.read(1 << 20, (self.info.timeout_s if self.info else 0) + self.t.latency)
        self.t.discard_input()

    # -- the bridge and the chip ---------------------------------------------------------
    def ping(self) -> BridgeInfo:
        words = self.exchange(Command.PING)
        if words[0] != framing.BRIDGE_ID:
            raise LinkError(f"{self.t.name}: the bridge reports ID 0x{words[0]:08x}, not "
                            f"0x{framing.BRIDGE_ID:08x} (another framing version?)")
        self.info = BridgeInfo(max_words=words[1], divisor=words[2], timeout_cycles=words[3],
                               clock_hz=words[2] * self.t.baud)
        return self.info

    def connect(self) -> BridgeInfo:
        """Ping the bridge and check the chip's ID and config hash against `cfg`."""
        self.imem = {}  # whatever the board holds, this driver did not write it
        info = self.ping()
        ident, lo, hi = self.read(self.regs.ID, 3)
        if ident != self.regs.id_value:
            raise LinkError(f"{self.t.name}: the chip's ID register reads 0x{ident:08x}, not "
                            f"0x{self.regs.id_value:08x} (another ISA version?)")
        got = f"{(hi << 32 | lo):012x}"
        if got != self.cfg.hash:
            raise LinkError(f"{self.t.name}: the board's chip has config hash {got}, not "
                            f"{self.cfg.hash} of config {self.cfg.name}: choose the config "
                            "it was built for (--config), or rebuild the bitstream")
        return info

    def write(self, address: int, words) -> None:
        """Write consecutive registers (in requests of at most ``max_words``)."""
        words = list(words)
        step = self.info.max_words if self.info else 1
        for i in range(0, len(words), step):
            chunk = words[i:i + step]
            self.exchange(Command.WRITE, address + i, len(chunk), chunk)

    def read(self, address: int, n: int = 1) -> list[int]:
        out = []
        step = self.info.max_words if self.info else 1
        for i in range(0, n, step):
            k = min(step, n - i)
            out += self.exchange(Command.READ, address + i, k)
        return out

    def load_program(self, program: Program) -> int:
        """Write every queue's instruction words and length (other queues get 0): of a
        queue this driver loaded before (:attr:`imem`), only the runs of words that
        differ. Returns the instruction words written."""
        rm, cfg = self.regs, self.cfg
        program.check_config(cfg)
        lengths, written = [], 0
        for q in cfg.queues:
            words = list(program.queues.get(q.name, []))
            if len(words) > cfg.imem_words:
                raise BoardError(f"queue {q.name}: {len(words)} words do not fit the "
                                 f"instruction memory ({cfg.imem_words})")
            held = self.imem.pop(q.name, None)  # unknown until every write went through
            for lo, hi in _changed_runs(words, held):
                self.write(rm.imem(q.index, lo), words[lo:hi])
                written += hi - lo
            if words or held is not None:
                self.imem[q.name] = words + (held or [])[len(words):]
            lengths.append(len(words))
        self.write(rm.qlen(0), lengths)
        return written

    def write_word(self, mem_slice: str | int, address: int, word: bytes) -> None:
        """One VL-byte SRAM word: the word buffer, then SRAM_WRITE."""
        rm = self.regs
        chunks = rm.word_chunks(bytes(word))
        self.write(chunks[0][0], [v for _, v in chunks])
        self.write(rm.SRAM_WRITE, [rm.sram_target(mem_slice, address)])

    def read_word(self, mem_slice: str | int, address: int) -> bytes:
        rm = self.regs
        self.write(rm.SRAM_READ, [rm.sram_target(mem_slice, address)])
        return rm.chunks_word(self.read(rm.wbuf(0, 0), self.cfg.superlanes * rm.chunks))

    def write_sram(self, mem_slice: str, address: int, words) -> None:
        """Vectors ``[n, VL]`` of 8-bit values at ``address ..``."""
        for i, w in enumerate(np.asarray(words, dtype=np.uint8).reshape(-1, self.cfg.vl)):
            self.write_word(mem_slice, address + i, bytes(w))

    def read_sram(self, mem_slice: str, address: int, n: int = 1) -> np.ndarray:
        """``[n, VL]`` uint8."""
        return np.array([list(self.read_word(mem_slice, address + i)) for i in range(n)],
                        dtype=np.uint8).reshape(n, self.cfg.vl)

    def start(self) -> None:
        self.write(self.regs.CTRL, [self.regs.CTRL_START])

    def status(self) -> int:
        return self.read(self.regs.STATUS)[0]

    def cycle(self) -> int:
        return self.read(self.regs.CYCLE)[0]

    def wait_done(self, timeout: float = 10.0) -> int:
        """Poll STATUS until DONE (at most `timeout` seconds on the transport's clock);
        return CYCLE, the run's last cycle."""
        end = self.t.now() + timeout
        polls = 0
        while True:
            status = self.status()
            polls += 1
            if status & self.regs.STATUS_DONE:
                return self.cycle()
            if self.t.now() > end:
                parked = self.read(self.regs.PARKED)[0]
                queues = [q.name for q in self.cfg.queues if parked >> q.index & 1]
                raise RunTimeout(f"{self.t.name}: the chip did not finish within {timeout:g} s "
                                 f"({polls} polls; STATUS 0x{status:x}"
                                 + (f", parked at a sync: {', '.join(queues)}" if queues
                                    else "") + ")")

    def error(self) -> dict | None:
        """The sticky error registers, or None without an error."""
        if not self.status() & self.regs.STATUS_ERROR:
            return None
        return self.error_registers()

    def error_registers(self) -> dict:
        """ERR_CYCLE .. ERR_QUEUE, whatever STATUS says."""
        rm = self.regs
        values = self.read(rm.ERR_CYCLE, rm.ERR_QUEUE - rm.ERR_CYCLE + 1)
        return dict(zip(("cycle", "code", "position", "superlane", "unit", "queue"), values,
                        strict=True))

    def run(self, program: Program, words: dict, read_back, *,
            timeout: float = 10.0) -> RunReport:
        """Write the SRAM words ``{(slice, address): bytes}``, load and start the program,
        wait for DONE, and read back the words at `read_back` (``(slice, address)``)."""
        t0, s0, r0 = self.t.now(), self.bytes_sent, self.bytes_received
        for (sl, addr), word in sorted(words.items()):
            self.write_word(sl, addr, word)
        loaded = self.load_program(program)
        self.start()
        end = self.wait_done(timeout)
        status = self.status()
        err = self.error_registers() if status & self.regs.STATUS_ERROR else None
        back = {key: self.read_word(*key) for key in sorted(read_back)}
        return RunReport(end_cycle=end, status=status, error=err,
                         error_text=None if err is None else self.regs.describe_error(err),
                         words=back, seconds=self.t.now() - t0,
                         bytes_sent=self.bytes_sent - s0,
                         bytes_received=self.bytes_received - r0, imem_words=loaded)

    def close(self) -> None:
        self.t.close()


def _changed_runs(words: list, held: list | None) -> list[tuple[int, int]]:
    """``[(lo, hi)]``: the runs of positions where `words` differ from `held` (all of
    them when `held` is None: nothing known)."""
    if held is None:
        return [(0, len(words))] if words else []
    runs, lo = [], None
    for i, w in enumerate(words):
        same = i < len(held) and held[i] == w
        if not same and lo is None:
            lo = i
        elif same and lo is not None:
            runs.append((lo, i))
            lo = None
    if lo is not None:
        runs.append((lo, len(words)))
    return runs
