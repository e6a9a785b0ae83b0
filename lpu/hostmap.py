"""The host register map: the contract between the chip's host block and every host.

The chip's register block (:mod:`lpu.hdl.host`) implements this map on its bus (one
32-bit register per word address); the simulators' bus drivers (:mod:`lpu.sim.hostbus`)
and the board driver (:mod:`lpu.board`, through the UART bridge :mod:`lpu.hdl.bridge`)
use it. :class:`RegisterMap` computes every address below for one config; it is pure
Python.

Register map
------------
``Q`` = ``len(cfg.queues)`` (queue indices in config order), ``M`` = ``2 *
cfg.mem_slices`` MEM slices (``mem_w0 .. mem_w{n-1}, mem_e0 .. mem_e{n-1}``), ``S`` =
superlanes, ``C`` = ``ceil(lanes / 4)`` chunks per superlane.

===========================  ====  =====================================================
address                      acc.  register
===========================  ====  =====================================================
``0x000`` ID                 R     ``0x4C505500 | ISA major`` ("LPU", version)
``0x001`` HASH_LO            R     config hash (48 bits), bits 0-31
``0x002`` HASH_HI            R     config hash, bits 32-47
``0x003`` CTRL               W     bit 0 START: the cycle of this write is cycle -1,
                                   every queue starts from instruction 0 and cycle 0 is
                                   the next cycle; clears DONE, the cycle counter and the
                                   error registers. bit 1 CLEAR: clears the error
                                   registers only
``0x004`` STATUS             R     bit 0 RUNNING, bit 1 DONE, bit 2 ERROR (sticky)
``0x005`` CYCLE              R     while running, the current cycle (0 in cycle 0);
                                   after DONE, the run's last cycle (the drain
                                   included; DONE reads 1 from the cycle after it)
``0x006`` PARKED             R     bit ``q``: queue ``q`` parked at a sync (q < 32)
``0x007`` ECC_CORRECTED      R     SRAM ECC words read with a single-bit error, each
                                   corrected (:mod:`lpu.ecc`; reads by instructions and
                                   by SRAM_READ) since START/CLEAR (wraps at 2**32)
``0x008`` ERR_CYCLE          R     cycle of the first illegal event since START/CLEAR
                                   (the real cycle, on ERR_SUPERLANE: the golden
                                   model's skewed cycle is ERR_CYCLE - ERR_SUPERLANE)
``0x009`` ERR_CODE           R     its :class:`ErrorCode` (0: none)
``0x00A`` ERR_POSITION       R     position index of the slice that raised it
``0x00B`` ERR_SUPERLANE      R     its superlane
``0x00C`` ERR_UNIT           R     its unit (VXM ALU, MXM plane; 0 elsewhere)
``0x00D`` ERR_QUEUE          R     queue index of (position, unit): the unit-th queue
                                   of that position
``0x00E`` ERR_ADDRESS        R     for an ``ECC`` error: the SRAM address of the word
                                   (ERR_POSITION its MEM slice, ERR_SUPERLANE its ECC
                                   word); 0 otherwise
``0x010`` SRAM_WRITE         W     ``slice << 16 | addr``: write the word buffer to SRAM
                                   word ``addr`` of MEM slice ``slice`` (the whole
                                   vector, every superlane)
``0x011`` SRAM_READ          W     ``slice << 16 | addr``: load that SRAM word into the
                                   word buffer; readable from the next cycle on
``0x100 + q``  QLEN[q]       W     program length (words) of queue ``q``
``0x200 + k*C + c`` WBUF     RW    word buffer, superlane ``k``, chunk ``c``: lanes
                                   ``4c .. 4c+3`` of the superlane (lane ``4c`` in bits
                                   0-7; bytes past ``lanes`` read 0)
``0x8000_0000 + q*imem_words + i``  W  instruction word ``i`` of queue ``q``
===========================  ====  =====================================================

Loading SRAM word ``a`` of slice ``m``: write every WBUF chunk, then SRAM_WRITE. Reading
it: SRAM_READ, then read the chunks. SRAM accesses are meant for an idle chip (the
slices give their instructions precedence). The word buffer holds the word an SRAM_READ
loaded from the next cycle on, for a read of its chunks and for an SRAM_WRITE alike.

A write outside the map has no effect: an address in no region (:meth:`RegisterMap.
regions`; every address bit is decoded, nothing aliases), a queue index at or past
``Q`` in QLEN or IMEM, and an SRAM_WRITE or SRAM_READ whose slice (bits 16-31) is not
below ``M`` or whose address (bits 0-15) is not below ``mem_words``. Reading an
unmapped or write-only address gives 0. (``lpu formal --check host-map`` proves it.)

Errors: the first cycle in which any slice raises ``SliceError`` is recorded (the
lowest position wins within a cycle), with the slice's code, superlane and unit; later
errors are ignored until START or CLEAR. An uncorrectable ECC error (code ``ECC``) is
raised in the cycle the word is read out (an instruction's read: the cycle it goes onto
the streams; SRAM_READ: the next cycle, ERR_CYCLE then reading the CYCLE register).

Run control (docs/timing.md, "The end of a run"): START pulses every dispatcher's
``start``; RUNNING stays high from cycle 0 until every queue is finished (cycle ``F``)
and :func:`lpu.isa.drain_cycles` more cycles have passed: high in cycles
``0 .. F + drain``, DONE from the cycle after, CYCLE then reading ``F + drain``.
"""

from __future__ import annotations

from amaranth.lib import enum

from lpu.config import ChipConfig
from lpu.isa import ISA_VERSION

__all__ = ["ErrorCode", "RegisterMap"]


class ErrorCode(enum.Enum, shape=3):
    """What ERR_CODE holds: the kind of a slice's illegal event (a slice's
    ``SliceError.code``, :mod:`lpu.hdl.interface`)."""

    NONE = 0
    EMPTY_READ = 1  # read a stream register that holds nothing
    TWO_WRITERS = 2  # two units at one position write one stream register in one cycle
    BANK = 3  # SRAM bank read and written in one cycle
    RANGE = 4  # data-dependent address / lane out of range (gather, perm)
    ECC = 5  # an SRAM word with an uncorrectable (double-bit) error was read (lpu.ecc)
    LINK = 6  # C2C (ISA 1.3): a recv with nothing arriving, or an arrival with no recv


class RegisterMap:
    """Addresses and data packing of the host registers for one config (pure Python)."""

    ID = 0x000
    HASH_LO = 0x001
    HASH_HI = 0x002
    CTRL = 0x003
    STATUS = 0x004
    CYCLE = 0x005
    PARKED = 0x006
    ECC_CORRECTED = 0x007
    ERR_CYCLE = 0x008
    ERR_CODE = 0x009
    ERR_POSITION = 0x00A
    ERR_SUPERLANE = 0x00B
    ERR_UNIT = 0x00C
    ERR_QUEUE = 0x00D
    ERR_ADDRESS = 0x00E
    SRAM_WRITE = 0x010
    SRAM_READ = 0x011
    QLEN = 0x100
    WBUF = 0x200
    IMEM = 0x8000_0000

    CTRL_START = 1 << 0
    CTRL_CLEAR = 1 << 1
    STATUS_RUNNING = 1 << 0
    STATUS_DONE = 1 << 1
    STATUS_ERROR = 1 << 2

    def __init__(self, cfg: ChipConfig):
        if not isinstance(cfg, ChipConfig):
            raise TypeError(f"RegisterMap needs a ChipConfig, not {cfg!r}")
        self.cfg = cfg
        self.chunks = (cfg.lanes + 3) // 4
        self.mem_slices = [q.name for q in cfg.queues if q.kind == "mem"]
        if len(cfg.queues) > 0x100:
            raise ValueError(f"{len(cfg.queues)} queues do not fit the QLEN registers (256)")
        if cfg.superlanes * self.chunks > 0x200:
            raise ValueError("the word buffer does not fit its 512 registers")

    @property
    def id_value(self) -> int:
        return 0x4C505500 | ISA_VERSION[0]

    @property
    def hash_value(self) -> int:
        return int(self.cfg.hash, 16)

    def qlen(self, queue: int) -> int:
        return self.QLEN + queue

    def imem(self, queue: int, index: int) -> int:
        if not 0 <= index < self.cfg.imem_words:
            raise ValueError(f"instruction index {index} is outside 0..{self.cfg.imem_words - 1}")
        return self.IMEM + queue * self.cfg.imem_words + index

    def wbuf(self, superlane: int, chunk: int) -> int:
        return self.WBUF + superlane * self.chunks + chunk

    def sram_target(self, mem_slice: int | str, addr: int) -> int:
        """The value to write to SRAM_WRITE / SRAM_READ."""
        if isinstance(mem_slice, str):
            mem_slice = self.mem_slices.index(mem_slice)
        if not 0 <= addr < self.cfg.mem_words:
            raise ValueError(f"address {addr} is outside 0..{self.cfg.mem_words - 1}")
        return mem_slice << 16 | addr

    def word_chunks(self, word: bytes) -> list[tuple[int, int]]:
        """A VL-byte word -> [(WBUF address, 32-bit value)] for every chunk."""
        cfg = self.cfg
        if len(word) != cfg.vl:
            raise ValueError(f"a word is {cfg.vl} bytes, not {len(word)}")
        out = []
        for k in range(cfg.superlanes):
            lanes = word[k * cfg.lanes:(k + 1) * cfg.lanes]
            for c in range(self.chunks):
                out.append((self.wbuf(k, c), int.from_bytes(lanes[4 * c:4 * c + 4], "little")))
        return out

    def chunks_word(self, values: list[int]) -> bytes:
        """The chunk values in WBUF order -> the VL-byte word."""
        cfg = self.cfg
        out = bytearray()
        for k in range(cfg.superlanes):
            lanes = b"".join(values[k * self.chunks + c].to_bytes(4, "little")
                             for c in range(self.chunks))
            out += lanes[:cfg.lanes]
        return bytes(out)

    def regions(self) -> list[tuple[int, int, str]]:
        """The mapped address ranges, ``(first, last, name)`` inclusive: the control and
        error registers, QLEN, WBUF and the instruction memories. A bus access of several
        words (the UART bridge's) must lie inside one of them."""
        cfg = self.cfg
        return [
            (self.ID, self.SRAM_READ, "registers"),
            (self.QLEN, self.QLEN + len(cfg.queues) - 1, "QLEN"),
            (self.WBUF, self.WBUF + cfg.superlanes * self.chunks - 1, "WBUF"),
            (self.IMEM, self.IMEM + len(cfg.queues) * cfg.imem_words - 1, "IMEM"),
        ]

    def describe_error(self, regs: dict) -> str:
        """The sticky error registers (``{"cycle", "code", "position", "superlane",
        "unit", "queue"}`` and, optionally, ``"address"``, as read after a run) as one
        line of text."""
        cfg = self.cfg
        try:
            code = ErrorCode(regs["code"]).name
        except ValueError:
            code = f"code {regs['code']}"
        pos, q = regs["position"], regs["queue"]
        where = cfg.positions[pos].name if pos < len(cfg.positions) else f"position {pos}"
        queue = cfg.queues[q].name if q < len(cfg.queues) else f"queue {q}"
        addr = f", address {regs['address']}" if regs.get("code") == ErrorCode.ECC.value \
            and "address" in regs else ""
        return (f"{code} at cycle {regs['cycle']} in {where} (queue {queue}, superlane "
                f"{regs['superlane']}, unit {regs['unit']}{addr})")
