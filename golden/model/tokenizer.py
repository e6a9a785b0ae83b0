"""The tokenizer of the byte-level models (the shipped one and those the trainer makes):
one token per UTF-8 byte, vocabulary 0..255."""

from __future__ import annotations

__all__ = ["encode_bytes", "decode_bytes"]


def encode_bytes(text: str) -> list[int]:
    """Tokens of the byte-level models: the UTF-8 bytes of ``text``."""
    return list(text.encode("utf-8"))


def decode_bytes(tokens) -> str:
    """Text of byte tokens (invalid UTF-8 shown as U+FFFD)."""
    return bytes(int(t) for t in tokens).decode("utf-8", errors="replace")
