"""Programs: one list of instruction words per queue, bound to one chip config.

Binary format (little-endian), version 1::

    magic      4 bytes  b"LPUP"
    isa        2 x u16  ISA_VERSION (major, minor)
    cfg_hash   12 bytes ASCII hex, the config's hash
    n_queues   u16
    per queue: u8 name length, name (ASCII), u32 word count, words (u32 each)

A program names only the queues it uses; every other queue is empty.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from .config import ChipConfig
from .errors import LpuError
from .isa import ISA_VERSION, Instr, IsaError, decode, encode

__all__ = ["Program", "ProgramError", "MAGIC"]

MAGIC = b"LPUP"


class ProgramError(LpuError, ValueError):
    """A program file is malformed or does not fit the chip it is loaded on."""


@dataclass
class Program:
    """Instruction words per queue name, plus the config hash and ISA version."""

    config_hash: str
    queues: dict[str, list[int]] = field(default_factory=dict)
    isa_version: tuple[int, int] = ISA_VERSION
    # Optional source positions: queue -> list of (file, line) per word, for messages.
    source: dict[str, list[tuple[str, int]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_instrs(cls, cfg: ChipConfig, queues: dict[str, list[Instr]]) -> Program:
        return cls(cfg.hash, {q: [encode(i) for i in ins] for q, ins in queues.items()})

    def instrs(self, queue: str) -> list[Instr]:
        return [decode(w) for w in self.queues.get(queue, [])]

    def where(self, queue: str, index: int) -> str:
        """'file:line' of instruction `index` of `queue`, or 'queue[index]'."""
        src = self.source.get(queue)
        if src and 0 <= index < len(src):
            f, line = src[index]
            return f"{f}:{line}"
        return f"{queue}[{index}]"

    def check_config(self, cfg: ChipConfig, name: str = "program") -> None:
        """Refuse a program built for another ISA version or another config."""
        if tuple(self.isa_version) != tuple(ISA_VERSION):
            raise ProgramError(
                f"{name}: built for ISA {self.isa_version[0]}.{self.isa_version[1]}, "
                f"this is ISA {ISA_VERSION[0]}.{ISA_VERSION[1]}"
            )
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
            pos += ln
            (n,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            need(4 * n, f"{n} words of queue {qname}")
            words = list(struct.unpack_from(f"<{n}I", blob, pos))
            for i, w in enumerate(words):
                try:
                    decode(w)
                except IsaError as e:
                    raise ProgramError(f"{name}: queue {qname} word {i}: {e}") from None
            pos += 4 * n
            queues[qname] = words
        if pos != len(blob):
            raise ProgramError(f"{name}: {len(blob) - pos} bytes of trailing garbage")
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
        return cls.from_bytes(blob, str(p))
