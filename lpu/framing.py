"""The UART bridge's framing: the contract between :mod:`lpu.hdl.bridge` and its hosts.

The bridge (on the board, or simulated) turns frames received on a UART line (8N1) into
accesses of the chip's host bus (:mod:`lpu.hdl.host`, addresses :class:`lpu.hostmap.
RegisterMap`) and answers every request with one acknowledgement. This module is the one
definition of the codes, the sizes and the checksum; :mod:`lpu.board` is a driver built
on it, and docs/fpga.md describes the same framing for writers of other drivers.

Request (host to bridge)
------------------------
Multi-byte fields are little-endian.

======  ========  =================================================================
offset  bytes     field
======  ========  =================================================================
0       1         command: ``0x01`` PING, ``0x02`` WRITE, ``0x03`` READ
1       4         address: the first host-bus word address
5       2         count: words to write or read, ``1 .. max_words`` (PING: ignored)
7       4*count   WRITE only: the words, each little-endian, for addresses
                  ``address .. address + count - 1``
last    1         check: :func:`crc8` of every byte before it in the frame
======  ========  =================================================================

Acknowledgement (bridge to host)
--------------------------------
======  ========  =================================================================
offset  bytes     field
======  ========  =================================================================
0       1         the request's command byte (0 for LINE_ERROR or OVERRUN outside a
                  frame)
1       1         status (:class:`Status`): 0 OK
2       4*k       data, only with status OK: READ ``k = count`` words read from
                  ``address ..`` in order; PING ``k = 4``: ``BRIDGE_ID``,
                  ``max_words``, clocks per bit, timeout (clock cycles); WRITE none
last    1         check: :func:`crc8` of every byte before it in the acknowledgement
======  ========  =================================================================

Rules
-----
* A request is all or nothing: WRITE data is held in the bridge until the check byte
  has been verified, then written on consecutive bus cycles; READ words are read one
  bus access each as the acknowledgement is sent.
* Errors are found in this order: the command (byte 0), then count and address (after
  byte 6: ``count`` must be ``1 .. max_words`` and ``address .. address + count - 1``
  must lie in one region of :meth:`lpu.hostmap.RegisterMap.regions`), then the check
  byte. A UART framing error (a stop bit read as 0, a break) is LINE_ERROR.
* After an error the bridge discards every byte until the line has been quiet (no
  byte received) for ``timeout`` clock cycles, then sends the error acknowledgement and
  is idle again. A frame whose bytes stop arriving for ``timeout`` cycles is
  truncated: TIMEOUT. So every request, good or bad, gets exactly one acknowledgement
  and the bridge never hangs.
* The host sends the next request only after the whole acknowledgement has arrived;
  bytes received while the bridge executes or answers a request are an overrun:
  after its acknowledgement the bridge discards until quiet and sends OVERRUN.
* An acknowledgement of a good request starts a few clock cycles after its check
  byte (a WRITE: after its ``count`` bus writes).
"""

from __future__ import annotations

import enum
import struct

__all__ = ["Command", "Status", "crc8", "request", "ack_length", "FRAMING_VERSION",
           "BRIDGE_ID", "HEADER_BYTES", "PING_WORDS", "DEFAULT_MAX_WORDS"]

#: Version of this framing; the low byte of :data:`BRIDGE_ID`.
FRAMING_VERSION = 1
#: The first word of a PING's data: "LPB" and the framing version.
BRIDGE_ID = 0x4C504200 | FRAMING_VERSION
#: Bytes of a request before its data: command, address, count.
HEADER_BYTES = 7
#: Words in a PING's data: BRIDGE_ID, max_words, clocks per bit, timeout cycles.
PING_WORDS = 4
#: The bridge's largest ``count`` unless built otherwise (one block RAM of words).
DEFAULT_MAX_WORDS = 64


class Command(enum.IntEnum):
    """The request's command byte."""

    PING = 0x01
    WRITE = 0x02
    READ = 0x03


class Status(enum.IntEnum):
    """The acknowledgement's status byte."""

    OK = 0
    BAD_CHECKSUM = 1     # the check byte does not match the frame
    UNKNOWN_COMMAND = 2  # byte 0 is not a command
    BAD_LENGTH = 3       # count is 0 or more than max_words
    BAD_ADDRESS = 4      # address .. address + count - 1 is not inside one region
    TIMEOUT = 5          # the frame stopped arriving: truncated
    LINE_ERROR = 6       # a UART framing error (stop bit 0, break)
    OVERRUN = 7          # bytes arrived while the bridge executed or answered

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_MEANING = {
    Status.OK: "done",
    Status.BAD_CHECKSUM: "the frame's check byte did not match (noise on the line?)",
    Status.UNKNOWN_COMMAND: "the first byte is not a command",
    Status.BAD_LENGTH: "the word count is 0 or more than the bridge's maximum",
    Status.BAD_ADDRESS: "the addresses are outside the register map's regions",
    Status.TIMEOUT: "the frame was truncated (the line went quiet mid-frame)",
    Status.LINE_ERROR: "a UART framing error (wrong baud rate? a break?)",
    Status.OVERRUN: "bytes arrived while the bridge was answering",
}


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8 with polynomial ``x^8 + x^2 + x + 1`` (0x07), initial value 0, no
    reflection, no final XOR (the "CRC-8/SMBUS" of the CRC catalogues: ``crc8(b"123456789")
    == 0xF4``), continued from `crc`."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def request(command: int, address: int = 0, count: int = 0, words=()) -> bytes:
    """One request frame, check byte included (no range checks: tests send bad ones)."""
    body = struct.pack("<BIH", command & 0xFF, address & 0xFFFFFFFF, count & 0xFFFF)
    body += b"".join(struct.pack("<I", w & 0xFFFFFFFF) for w in words)
    return body + bytes([crc8(body)])


def ack_length(command: int, status: int, count: int) -> int:
    """Bytes of the acknowledgement of a request (command, status, count)."""
    data = 0
    if status == Status.OK:
        if command == Command.READ:
            data = 4 * count
        elif command == Command.PING:
            data = 4 * PING_WORDS
    return 3 + data
