"""The HDL's SECDED encoder and decoder (the code: :mod:`lpu.ecc`), as XOR trees.

Combinational: :func:`encode` gives the check word of a ``k``-bit data word; :func:`decode`
the corrected data, whether a single error was corrected or an uncorrectable one
detected, and the decode report. :class:`EccEncoder` and :class:`EccDecoder` wrap them as
components (the formal proofs, ``lpu formal --check ecc-32`` / ``ecc-64`` / ``ecc-128``,
and unit tests drive those). Written apart from the golden model's numpy decoder
(:mod:`lpu.golden.ecc`); tests compare the two.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.ecc import check_bits, data_positions, hamming_bits, hamming_masks

__all__ = ["encode", "decode", "EccEncoder", "EccDecoder"]


def _xor(bits):
    return Cat(*bits).xor() if bits else Const(0, 1)


def _hamming(data, k):
    masks = hamming_masks(k)
    return [_xor([data[j] for j in range(k) if mask >> j & 1]) for mask in masks]


def encode(data, k: int):
    """Check word (``check_bits(k)`` bits) of `data` (a ``k``-bit value): the Hamming bits,
    then the parity of the data and the Hamming bits."""
    ham = _hamming(data, k)
    overall = _xor([data[j] for j in range(k)] + ham)
    return Cat(*ham, overall)


def decode(m: Module, data, check, k: int, name: str = "ecc"):
    """Decode a stored ``(data, check)``: returns ``(corrected data, corrected,
    detected, report)`` signals (`report` = syndrome | parity << r, :mod:`lpu.ecc`)."""
    r = hamming_bits(k)
    syn = Signal(r, name=f"{name}_syndrome")
    par = Signal(name=f"{name}_parity")
    ham = _hamming(data, k)
    m.d.comb += [syn.eq(Cat(*ham) ^ check[:r]),
                 par.eq(_xor([data[j] for j in range(k)] + [check[i] for i in range(r + 1)]))]
    out = Signal(k, name=f"{name}_data")
    pos = data_positions(k)
    m.d.comb += out.eq(data ^ Cat(*(par & (syn == p) for p in pos)))
    corrected = Signal(name=f"{name}_corrected")
    detected = Signal(name=f"{name}_detected")
    in_code = syn <= k + r  # 0, a check bit's or a data bit's position
    m.d.comb += [corrected.eq(par & in_code),
                 detected.eq((~par & (syn != 0)) | (par & ~in_code))]
    report = Signal(r + 1, name=f"{name}_report")
    m.d.comb += report.eq(Cat(syn, par))
    return out, corrected, detected, report


class EccEncoder(wiring.Component):
    """``check`` = the check word of ``data`` (``k`` bits), combinationally.

    Ports
    -----
    data : In(k)
    check : Out(check_bits(k))
    """

    def __init__(self, k: int):
        self.k = k
        super().__init__({"data": In(k), "check": Out(check_bits(k))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.check.eq(encode(self.data, self.k))
        return m


class EccDecoder(wiring.Component):
    """Decodes a stored ``(data, check)``, combinationally.

    Ports
    -----
    data : In(k), check : In(check_bits(k))
        As stored (possibly with flipped bits).
    out : Out(k)
        The data, a single flipped data bit flipped back.
    corrected : Out(1), detected : Out(1)
        A single error was corrected; an uncorrectable error was detected.
    report : Out(hamming_bits(k) + 1)
        Syndrome | parity << r.
    """

    def __init__(self, k: int):
        self.k = k
        super().__init__({"data": In(k), "check": In(check_bits(k)), "out": Out(k),
                          "corrected": Out(1), "detected": Out(1),
                          "report": Out(hamming_bits(k) + 1)})

    def elaborate(self, platform):
        m = Module()
        out, cor, det, rep = decode(m, self.data, self.check, self.k)
        m.d.comb += [self.out.eq(out), self.corrected.eq(cor), self.detected.eq(det),
                     self.report.eq(rep)]
        return m
