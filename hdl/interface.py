"""The ports every slice shares: stream fabric, dispatch, errors. Sized by the config.

Timing (docs/timing.md), as the HDL implements it
-------------------------------------------------
* The stream fabric (:mod:`lpu.hdl.fabric`) holds, for each position ``p``,
  superlane ``k``, stream ``s`` and direction, one register of ``lanes`` bytes plus a
  *valid* bit. At each clock edge ``E[p]`` takes the slice's write if its write
  enable is high in that cycle, else ``E[p-1]`` (``E[0]``: invalid); likewise
  ``W[p]`` from ``W[p+1]``.
* A slice at ``p`` sees, combinationally, the values *arriving* at it: ``E[p-1]`` and
  ``W[p+1]`` (:class:`StreamIn`), and drives, combinationally, what it writes in this
  cycle (:class:`StreamOut`); the fabric latches it at the edge that ends the cycle.
  So "written at cycle t" = write enable high during cycle t.
* A queue's dispatcher presents an instruction to superlane 0 of its slice during
  the dispatch cycle ``t`` (:class:`Dispatch`, ``valid`` high for one cycle). The
  slice passes it north one tile per cycle: tile ``k`` acts on it during ``t + k``,
  reading its operands then, and drives its result during ``t + k + d``.
* A slice that reads a register whose valid bit is low, or does anything else
  illegal, raises :class:`SliceError` for that cycle; the host interface keeps the
  first one (sticky).

Shapes: stream data is ``data.ArrayLayout(data.ArrayLayout(8 * lanes, streams),
superlanes)`` indexed ``[superlane][stream]``; lane ``i`` of a superlane is bits
``8*i .. 8*i+7``. Valid / write-enable bits are ``ArrayLayout(ArrayLayout(1,
streams), superlanes)``.
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lpu.config import ChipConfig
from lpu.hostmap import ErrorCode
from lpu.isa import Instruction

__all__ = ["stream_data", "stream_bits", "StreamIn", "StreamOut", "Dispatch", "ErrorCode",
           "SliceError", "SlicePorts", "delayed", "superlane_dispatch", "report_unit_errors"]


def stream_data(cfg: ChipConfig) -> data.ArrayLayout:
    """[superlane][stream] -> lanes bytes."""
    return data.ArrayLayout(data.ArrayLayout(unsigned(8 * cfg.lanes), cfg.streams),
                            cfg.superlanes)


def stream_bits(cfg: ChipConfig) -> data.ArrayLayout:
    """[superlane][stream] -> one bit."""
    return data.ArrayLayout(data.ArrayLayout(unsigned(1), cfg.streams), cfg.superlanes)


class StreamIn(wiring.Signature):
    """What arrives at a position this cycle: ``e`` = E[p-1], ``w`` = W[p+1]."""

    def __init__(self, cfg: ChipConfig):
        super().__init__({
            "e": Out(stream_data(cfg)), "e_valid": Out(stream_bits(cfg)),
            "w": Out(stream_data(cfg)), "w_valid": Out(stream_bits(cfg)),
        })


class StreamOut(wiring.Signature):
    """What a slice writes this cycle into E[p] / W[p] (latched at the edge)."""

    def __init__(self, cfg: ChipConfig):
        super().__init__({
            "e": Out(stream_data(cfg)), "e_we": Out(stream_bits(cfg)),
            "w": Out(stream_data(cfg)), "w_we": Out(stream_bits(cfg)),
        })


class Dispatch(wiring.Signature):
    """One instruction handed to superlane 0 of a slice; ``valid`` for one cycle."""

    def __init__(self):
        super().__init__({"valid": Out(1), "word": Out(Instruction)})


class SliceError(wiring.Signature):
    """An illegal event this cycle: ``code``, the superlane and the unit (ALU, plane);
    ``addr``, the SRAM address of an ``ECC`` error (MEM slices; 0 elsewhere)."""

    def __init__(self, cfg: ChipConfig):
        super().__init__({
            "valid": Out(1), "code": Out(ErrorCode),
            "superlane": Out(range(max(2, cfg.superlanes))),
            "unit": Out(range(16)),
            "addr": Out(cfg.addr_bits),
        })


def SlicePorts(cfg: ChipConfig, n_queues: int = 1) -> dict:
    """The members every slice component has (from the slice's point of view).

    ``dispatch`` is an array of ``n_queues`` dispatch inputs (VXM ALUs, MXM planes).
    """
    return {
        "rd": In(StreamIn(cfg)),
        "wr": Out(StreamOut(cfg)),
        "dispatch": In(Dispatch()).array(n_queues),
        "error": Out(SliceError(cfg)),
    }


def superlane_dispatch(m, dispatch, superlanes: int) -> tuple[list, list]:
    """The instruction as each superlane's tile sees it: ``(valid, ins)``, one entry a
    superlane, tile ``k`` registered ``k`` cycles after the dispatch (it moves north one
    tile a cycle; signals ``t{k}_valid`` / ``t{k}_ins`` in ``m``'s sync domain)."""
    valid, ins = [dispatch.valid], [dispatch.word]
    for k in range(1, superlanes):
        v = Signal(name=f"t{k}_valid")
        w = Signal(Instruction, name=f"t{k}_ins")
        m.d.sync += [v.eq(valid[-1]), w.eq(ins[-1])]
        valid.append(v)
        ins.append(w)
    return valid, ins


def delayed(m, n: int, name: str, value):
    """``value`` delayed by ``n`` registers (in ``m``'s sync domain)."""
    for i in range(n):
        reg = Signal.like(value, name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def report_unit_errors(m, error, empty, two, two_unit) -> None:
    """Drive a slice's ``error`` port from its units' checks, in one fixed priority:
    EMPTY_READ before TWO_WRITERS; then the lowest superlane; then the lowest unit.

    empty[k][u]: unit u read an empty register on superlane k; two[k]: two writers of
    one register on superlane k, ``two_unit[k]`` naming the second writer."""
    units = len(empty[0]) if empty else 0
    with m.If(Cat(*(e for row in empty for e in row)).any()):
        m.d.comb += [error.valid.eq(1), error.code.eq(ErrorCode.EMPTY_READ)]
        for k in reversed(range(len(empty))):
            for u in reversed(range(units)):
                with m.If(empty[k][u]):
                    m.d.comb += [error.superlane.eq(k), error.unit.eq(u)]
    with m.Elif(Cat(*two).any()):
        m.d.comb += [error.valid.eq(1), error.code.eq(ErrorCode.TWO_WRITERS)]
        for k in reversed(range(len(two))):
            with m.If(two[k]):
                m.d.comb += [error.superlane.eq(k), error.unit.eq(two_unit[k])]


def shift_words(value, amount, word_bits: int, out_words: int, *, right: bool = False):
    """``value << (amount * word_bits)`` (or ``>>`` with `right`), cut to `out_words`
    words, as a multiplexer over the values `amount` can take.

    A variable shift of a wide vector makes every output bit depend on every input
    bit: Amaranth's netlist checks then take time quadratic in the width (the stream
    placement of a MEM slice dominated the chip's Verilog conversion). Here each output
    bit depends on one input bit per shift amount."""
    value = Value.cast(value)
    amount = Value.cast(amount)
    width = out_words * word_bits
    choices = []
    for i in range(1 << len(amount)):
        if right:
            bits = value[i * word_bits:i * word_bits + width]
        else:
            bits = Cat(Const(0, i * word_bits), value)[:width] if i else value[:width]
        pad = width - len(bits)
        choices.append(Cat(bits, Const(0, pad)) if pad > 0 else bits)
    return Array(choices)[amount]


def mux_tree(index, entries):
    """``entries[index]`` as a tree of 2:1 muxes on the low bits of ``index`` (an index
    past the end gives one of the entries: the caller rules those out)."""
    level = list(entries)
    b = 0
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [Mux(index[b], level[i + 1], level[i]) for i in range(0, len(level), 2)]
        b += 1
    return level[0]
