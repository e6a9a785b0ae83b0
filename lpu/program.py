"""Programs: one list of instruction words per queue, bound to one chip config.

:class:`Program` is the loaded form (per-queue instruction words, the ISA version and
the config hash it was built for). :class:`ProgramBuilder` builds one by placing
instructions at absolute dispatch cycles (filling the gaps with ``nop``), the way the
compiler and the tests think: "mem_w0 reads at cycle 5, the VXM adds at cycle 8";
:func:`arrival` and :func:`read_cycle` say when a value written at one position can be
read at another (docs/timing.md section 3).

Binary format (little-endian), version 1::

    magic      4 bytes  b"LPUP"
    isa        2 x u16  ISA_VERSION (major, minor)
    cfg_hash   12 bytes ASCII hex, the config's hash
    n_queues   u16
    per queue: u8 name length, name (ASCII), u32 word count, words (u32 each)

A program names only the queues it uses; every other queue is empty. Loading is
strict (:meth:`Program.from_bytes`): every field is checked and every word decoded
as :func:`decode_word` decodes it (the disassembler's rule), each error naming the
byte offset, the queue and the word index.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .config import ChipConfig
from .config import load as load_config
from .errors import LpuError
from .isa import ICU_OPCODES, ISA_VERSION, NOP_MAX, Instr, IsaError, Opcode, decode, encode, make

__all__ = ["Program", "ProgramError", "MAGIC", "ProgramBuilder", "arrival", "read_cycle",
           "decode_word"]

MAGIC = b"LPUP"
#: A queue name in a program file: what ``.queue NAME`` can spell.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_HASH = re.compile(r"[0-9a-f]{12}\Z")


class ProgramError(LpuError, ValueError):
    """A program file is malformed or does not fit the chip it is loaded on."""


def decode_word(word: int) -> Instr:
    """The instruction of one program word, decoded strictly: an unknown opcode, or bits
    set outside the instruction's fields (which would be lost: the word would not
    assemble back to itself), is an :class:`~lpu.isa.IsaError`. The one rule for the
    program loader and the disassembler."""
    ins = decode(word)
    try:
        again = encode(ins)
    except IsaError:
        again = None
    if again != word:
        extra = f" (0x{word ^ again:08x})" if again is not None else ""
        raise IsaError(f"0x{word:08x} ({ins.text()}) has bits set outside its fields{extra}; "
                       "it would not assemble back to the same word")
    return ins


@dataclass
class Program:
    """Instruction words per queue name, plus the config hash and ISA version."""

    config_hash: str
    queues: dict[str, list[int]] = field(default_factory=dict)
    isa_version: tuple[int, int] = ISA_VERSION
    # Optional source positions: queue -> list of (file, line) per word, for messages.
    source: dict[str, list[tuple[str, int]]] = field(default_factory=dict, repr=False)
    # The file it was loaded from (Program.load), named in messages when `source` is empty.
    origin: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_instrs(cls, cfg: ChipConfig, queues: dict[str, list[Instr]]) -> Program:
        return cls(cfg.hash, {q: [encode(i) for i in ins] for q, ins in queues.items()})

    def instrs(self, queue: str) -> list[Instr]:
        return [decode(w) for w in self.queues.get(queue, [])]

    def where(self, queue: str, index: int) -> str:
        """'file:line' of instruction `index` of `queue`; for a loaded program file,
        'file: queue Q word I'; else 'queue[index]'."""
        src = self.source.get(queue)
        if src and 0 <= index < len(src):
            f, line = src[index]
            return f"{f}:{line}"
        if self.origin:
            return f"{self.origin}: queue {queue} word {index}"
        return f"{queue}[{index}]"

    def check_config(self, cfg: ChipConfig, name: str = "program") -> None:
        """Refuse a program built for another config, or for an ISA this one cannot run.

        ISA versions: a program of the same major version and an older or equal minor
        version runs unchanged (1.1 only added held reads, in bits 1.0 kept zero; 1.2
        only added ``lwi``, an opcode 1.1 did not have; 1.3 only added ``send`` and
        ``recv``): a 1.0 program whose words set held-read flags, a 1.0 or 1.1 program
        with an ``lwi``, or a program before 1.3 with a ``send`` or ``recv``, is refused.
        Another major version, or a newer minor one, is refused."""
        major, minor = (int(v) for v in self.isa_version)
        if major != ISA_VERSION[0] or minor > ISA_VERSION[1]:
            raise ProgramError(
                f"{name}: built for ISA {major}.{minor}, this is ISA "
                f"{ISA_VERSION[0]}.{ISA_VERSION[1]} (it runs programs of ISA "
                f"{ISA_VERSION[0]}.0 to {ISA_VERSION[0]}.{ISA_VERSION[1]})"
            )
        if minor < 3:
            for qname, words in self.queues.items():
                for i, w in enumerate(words):
                    try:
                        ins = decode(w)
                    except IsaError:
                        continue  # reported where the words are decoded
                    if ins.op in (Opcode.SEND, Opcode.RECV):
                        raise ProgramError(
                            f"{name}: queue {qname} word {i}: 0x{w:08x} is a "
                            f"{ins.info.mnemonic}, which ISA {major}.{minor} does not have "
                            "(ISA 1.3 added send and recv); assemble the program again for "
                            "ISA 1.3")
                    if minor < 2 and ins.op == Opcode.LWI:
                        raise ProgramError(
                            f"{name}: queue {qname} word {i}: 0x{w:08x} is an lwi, which "
                            f"ISA {major}.{minor} does not have (ISA 1.2 added it); "
                            "assemble the program again for ISA 1.2")
                    if minor < 1 and any(ins.args.get(f) for f in ins.info.held_flags):
                        raise ProgramError(
                            f"{name}: queue {qname} word {i}: 0x{w:08x} sets a held-read "
                            "flag, which ISA 1.0 does not have (its bits were zero); "
                            "assemble the program again for ISA 1.1")
        if self.config_hash != cfg.hash:
            raise ProgramError(
                f"{name}: built for config hash {self.config_hash}, but config "
                f"{cfg.name!r} has hash {cfg.hash}; assemble it again for this config"
            )
        names = {q.name for q in cfg.queues}
        for q in self.queues:
            if q not in names:
                raise ProgramError(f"{name}: queue {q!r} does not exist on config {cfg.name!r}")

    # -- binary ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        out += struct.pack("<HH", *self.isa_version)
        h = self.config_hash.encode("ascii")
        if len(h) != 12:
            raise ProgramError(f"config hash {self.config_hash!r} is not 12 characters")
        out += h
        out += struct.pack("<H", len(self.queues))
        for q, words in self.queues.items():
            nb = q.encode("ascii")
            out += struct.pack("<B", len(nb)) + nb
            out += struct.pack("<I", len(words))
            out += struct.pack(f"<{len(words)}I", *words)
        return bytes(out)

    @classmethod
    def from_bytes(cls, blob: bytes, name: str = "program") -> Program:
        def need(n, what):
            if pos + n > len(blob):
                raise ProgramError(f"{name}: truncated at byte {pos} (expected {what})")

        pos = 0
        need(4, "magic")
        if blob[:4] != MAGIC:
            raise ProgramError(f"{name}: not an LPU program (bad magic {blob[:4]!r})")
        pos = 4
        need(4 + 12 + 2, "header")
        major, minor = struct.unpack_from("<HH", blob, pos)
        pos += 4
        try:
            h = blob[pos:pos + 12].decode("ascii")
        except UnicodeDecodeError:
            raise ProgramError(f"{name}: byte {pos}: config hash is not ASCII") from None
        if not _HASH.match(h):
            raise ProgramError(f"{name}: byte {pos}: config hash {h!r} is not 12 lowercase "
                               "hex digits")
        pos += 12
        (nq,) = struct.unpack_from("<H", blob, pos)
        pos += 2
        queues = {}
        for _ in range(nq):
            need(1, "queue name length")
            (ln,) = struct.unpack_from("<B", blob, pos)
            pos += 1
            need(ln + 4, "queue name and word count")
            try:
                qname = blob[pos:pos + ln].decode("ascii")
            except UnicodeDecodeError:
                raise ProgramError(f"{name}: byte {pos}: queue name is not ASCII") from None
            if not _QUEUE_NAME.match(qname):
                raise ProgramError(f"{name}: byte {pos}: queue name {qname!r} is not a name "
                                   "(letters, digits and _)")
            if qname in queues:
                raise ProgramError(f"{name}: byte {pos}: queue {qname} is given twice")
            pos += ln
            (n,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            need(4 * n, f"{n} words of queue {qname}")
            words = list(struct.unpack_from(f"<{n}I", blob, pos))
            for i, w in enumerate(words):
                try:
                    decode_word(w)
                except IsaError as e:
                    raise ProgramError(f"{name}: byte {pos + 4 * i}: queue {qname} word {i}: "
                                       f"{e}") from None
            pos += 4 * n
            queues[qname] = words
        if pos != len(blob):
            raise ProgramError(f"{name}: byte {pos}: {len(blob) - pos} bytes of trailing "
                               "garbage after the last queue")
        return cls(h, queues, (major, minor))

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Program:
        p = Path(path)
        try:
            blob = p.read_bytes()
        except OSError as e:
            raise ProgramError(f"{p}: cannot read: {e.strerror}") from None
        prog = cls.from_bytes(blob, str(p))
        prog.origin = str(p)
        return prog


# -- building programs by cycle -------------------------------------------------------------

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
                    n = min(gap, NOP_MAX)
                    seq.append(make("nop", n))
                    gap -= n
                seq.append(ins)
                t = cycle + 1
                prev = cycle if ins.op not in ICU_OPCODES else None
            out[q] = seq
        return out

    def program(self) -> Program:
        return Program.from_instrs(self.cfg, self.instrs())
