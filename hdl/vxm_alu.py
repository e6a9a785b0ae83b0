"""The VXM ALU of one lane: the int32, fp32 and conversion datapath of every VXM opcode.

Timing contract
---------------
Operands presented in cycle ``t`` with ``valid`` high give ``results[d - 1]`` with
``results_valid[d - 1]`` high in cycle ``t + d``, where ``d = OPS[op].d(superlanes)`` is
the opcode's functional delay from :data:`lpu.isa.OPS`. A new operation may be issued
every cycle, whatever its delay; each result leaves at its own delay, on the port of
that delay, so results of different delays may land in the same cycle (a queue may
issue ``fadd`` at ``t`` and ``add`` at ``t + 2`` to other streams: both land at
``t + 3``). ``result`` / ``result_valid`` merge the ports: the result of the largest
delay that lands in the cycle. Outside those cycles the valid bits are low and the
results 0. Ops with an int8 result put it in the low byte, upper bytes 0; ops
with an int8 operand read the low byte of ``a``.

Datapath
--------
Every opcode runs on one unit of a fixed *latency* (the cycles its logic needs, last
register included; :data:`DATAPATH`):

=====================  ==========================================================  =====
unit                   opcodes                                                     cycles
=====================  ==========================================================  =====
logic (combinational)  add sub min max and or xor shl shr sra shli shri srai eq     1
                       lt le sel fmin fmax feq flt fle fneg fabs cvt.i8.i32
                       cvt.i32.i8 mov mov32
imul                   mul: three 16 x 16 partial products | sum                    2
i2f                    cvt.i32.f32: abs, normalize | round, pack                     2
f2i                    cvt.f32.i32: align | round, negate, saturate                  2
fadd                   fadd fsub: align | add, normalize | round, pack               3
fmul                   fmul: 24 x 24 product | normalize, round | pack               3
fmul + f2i8            cvt.f32.i8: the fmul unit, then | round, saturate to int8     4
=====================  ==========================================================  =====

(``|`` is a pipeline register.) The last step of every unit feeds a short *result
line* of registers, one line per delay, whose head is the ``results`` port of that
delay. A unit's result for an opcode of delay ``d`` enters the line of ``d``
``d - latency`` registers from its head, so a delay larger than the unit's latency
costs nothing but that slot; a delay smaller than the latency is refused at
construction. With the ISA's delays every opcode enters at the head, and each line is
one register.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpu.isa import OPS, VXM_OPCODES, Opcode

from .fp32 import (
    Fp32Add,
    Fp32Compare,
    Fp32Mul,
    Fp32NegAbs,
    Fp32ToInt,
    Int8ToInt32,
    Int32ToFp32,
    Int32ToInt8,
)
from .interface import delayed

__all__ = ["VxmAlu", "DATAPATH", "Int32MulLow"]

O = Opcode

#: Every opcode the VXM executes, from the ISA table.

_LOGIC = (O.ADD, O.SUB, O.MIN, O.MAX, O.AND, O.OR, O.XOR, O.SHL, O.SHR, O.SRA, O.SHLI,
          O.SHRI, O.SRAI, O.EQ, O.LT, O.LE, O.SEL, O.FMIN, O.FMAX, O.FEQ, O.FLT, O.FLE,
          O.FNEG, O.FABS, O.CVT_I8_I32, O.CVT_I32_I8, O.MOV, O.MOV32)

#: unit name -> (latency in cycles, opcodes it executes)
DATAPATH: dict[str, tuple[int, tuple[Opcode, ...]]] = {
    "logic": (1, _LOGIC),
    "imul": (2, (O.MUL,)),
    "i2f": (2, (O.CVT_I32_F32,)),
    "f2i": (2, (O.CVT_F32_I32,)),
    "fadd": (3, (O.FADD, O.FSUB)),
    "fmul": (3, (O.FMUL,)),
    "f2i8": (4, (O.CVT_F32_I8,)),
}


class Int32MulLow(wiring.Component):
    """``result = (a * b) mod 2^32`` from three 16 x 16 products.

    ``a_lo * b_lo + ((a_lo * b_hi + a_hi * b_lo) << 16)``, low 32 bits: the high halves
    of the cross products and ``a_hi * b_hi`` never reach the low word. ``stages`` (0-1)
    registers the partial products.
    """

    a: In(32)
    b: In(32)
    result: Out(32)

    def __init__(self, *, stages=0):
        if stages not in (0, 1) or isinstance(stages, bool):
            self._MustUse__silence = True
            raise TypeError(f"Int32MulLow stages must be 0 or 1, not {stages!r}")
        self._stages = stages
        super().__init__()

    @property
    def latency(self) -> int:
        return self._stages

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        lo, cross_1, cross_2 = Signal(32), Signal(16), Signal(16)
        domain = m.d.sync if self._stages else m.d.comb
        domain += [
            lo.eq(a[0:16] * b[0:16]),
            cross_1.eq(a[0:16] * b[16:32]),
            cross_2.eq(a[16:32] * b[0:16]),
        ]
        m.d.comb += self.result.eq(lo + Cat(Const(0, 16), cross_1 + cross_2))
        return m



def _any(values):
    result = Const(0, 1)
    for v in values:
        result = result | v
    return result


class VxmAlu(wiring.Component):
    """One lane of the VXM: every VXM opcode, pipelined to its functional delay.

    Parameters
    ----------
    superlanes : int, optional
        The chip's superlane count. Needed only if a VXM delay in :data:`lpu.isa.OPS`
        depends on it (none does in ISA 1.0).

    Ports
    -----
    op : In(Opcode)
        The opcode issued this cycle (ignored unless ``valid``; opcodes of other slices
        give no result).
    a, b, c : In(32)
        Operands (``b`` is the scale of ``cvt.f32.i8``, ``c`` the condition of ``sel``).
    imm : In(5)
        The shift amount of ``shli``, ``shri``, ``srai``.
    valid : In(1)
        An operation is issued this cycle.
    result : Out(32), result_valid : Out(1)
        The result of the operation issued ``d`` cycles ago (the largest such ``d``).
    results : Out(32).array(D), results_valid : Out(1).array(D)
        ``results[d - 1]``: the result of the operation of delay ``d`` issued ``d``
        cycles ago; ``D`` is the largest VXM delay (:attr:`max_delay`).
    """

    def __init__(self, *, superlanes=None):
        if superlanes is not None and (not isinstance(superlanes, int)
                                       or isinstance(superlanes, bool) or superlanes < 1):
            self._MustUse__silence = True
            raise TypeError(f"Superlane count must be a positive integer, not {superlanes!r}")
        latency = {op: lat for lat, ops in DATAPATH.values() for op in ops}
        delays = {}
        for op in VXM_OPCODES:
            info = OPS[op]
            if op not in latency:
                self._MustUse__silence = True
                raise ValueError(f"VXM opcode {op.name} has no datapath in VxmAlu")
            if info.delay[1] and superlanes is None:
                self._MustUse__silence = True
                raise TypeError(f"The delay of VXM opcode {op.name} depends on the superlane "
                                f"count; pass superlanes=")
            d = info.d(superlanes or 0)
            if d < latency[op]:
                self._MustUse__silence = True
                raise ValueError(f"VXM opcode {op.name} has functional delay {d}, but its "
                                 f"datapath needs {latency[op]} cycles")
            delays[op] = d
        self._delays = delays
        self._latency = latency
        self.superlanes = superlanes
        n = max(delays.values())
        super().__init__({
            "op": In(Opcode), "a": In(32), "b": In(32), "c": In(32), "imm": In(5),
            "valid": In(1), "result": Out(32), "result_valid": Out(1),
            "results": Out(32).array(n), "results_valid": Out(1).array(n),
        })

    @property
    def max_delay(self) -> int:
        """The largest functional delay of a VXM opcode (the length of ``results``)."""
        return max(self._delays.values())

    @property
    def delays(self) -> dict[Opcode, int]:
        """The functional delay of each VXM opcode, as this ALU implements it."""
        return dict(self._delays)

    def elaborate(self, platform):
        m = Module()
        op, a, b, c = self.op, self.a, self.b, self.c
        ops_of = {name: ops for name, (_, ops) in DATAPATH.items()}

        def issued(unit):
            return self.valid & _any(op == o for o in ops_of[unit])

        # each source: (latency, valid, opcode and result at the unit's last step, ops)
        sources = []

        # -- logic: combinational -------------------------------------------------------
        m.submodules.fcmp = fcmp = Fp32Compare()
        m.submodules.fsign = fsign = Fp32NegAbs()
        m.submodules.i32_i8 = i32_i8 = Int32ToInt8()
        m.submodules.i8_i32 = i8_i32 = Int8ToInt32()
        m.d.comb += [fcmp.a.eq(a), fcmp.b.eq(b), fsign.a.eq(a), i32_i8.a.eq(a),
                     i8_i32.a.eq(a[0:8])]
        sa, sb = a.as_signed(), b.as_signed()
        true = Const(0xFFFFFFFF, 32)
        logic = Signal(32)
        # shared by several opcodes (area: one adder, one comparator, two shifters)
        sub = Signal()
        add_sub = Signal(32)
        lt, eq = Signal(), Signal()
        amount = Signal(5)
        arith = Signal()
        left, right = Signal(32), Signal(32)
        m.d.comb += [
            sub.eq(op == O.SUB),
            add_sub.eq(a + Mux(sub, ~b, b) + sub),
            lt.eq(sa < sb),
            eq.eq(a == b),
            amount.eq(Mux(_any(op == o for o in (O.SHLI, O.SHRI, O.SRAI)), self.imm, b[0:5])),
            arith.eq((op == O.SRA) | (op == O.SRAI)),
            left.eq(a << amount),
            right.eq(Cat(a, a[31] & arith).as_signed() >> amount),
        ]
        results = {
            O.ADD: add_sub,
            O.SUB: add_sub,
            O.MIN: Mux(lt, a, b),
            O.MAX: Mux(lt | eq, b, a),
            O.AND: a & b,
            O.OR: a | b,
            O.XOR: a ^ b,
            O.SHL: left,
            O.SHR: right,
            O.SRA: right,
            O.SHLI: left,
            O.SHRI: right,
            O.SRAI: right,
            O.EQ: Mux(eq, true, 0),
            O.LT: Mux(lt, true, 0),
            O.LE: Mux(lt | eq, true, 0),
            O.SEL: Mux(c != 0, a, b),
            O.FMIN: fcmp.min,
            O.FMAX: fcmp.max,
            O.FEQ: Mux(fcmp.eq, true, 0),
            O.FLT: Mux(fcmp.lt, true, 0),
            O.FLE: Mux(fcmp.le, true, 0),
            O.FNEG: fsign.neg,
            O.FABS: fsign.abs,
            O.CVT_I8_I32: i8_i32.result,
            O.CVT_I32_I8: i32_i8.result,
            O.MOV: a[0:8],
            O.MOV32: a,
        }
        assert set(results) == set(_LOGIC)
        with m.Switch(op):
            for opc, value in results.items():
                with m.Case(opc):
                    m.d.comb += logic.eq(value)
        sources.append((1, self.valid, op, logic, _LOGIC))

        # -- pipelined units --------------------------------------------------------------
        def unit(name, block, inputs):
            lat = DATAPATH[name][0]
            m.submodules[name] = block
            m.d.comb += [getattr(block, port).eq(v) for port, v in inputs.items()]
            assert block.latency == lat - 1
            valid = delayed(m, lat - 1, f"{name}_valid", issued(name))
            opc = delayed(m, lat - 1, f"{name}_op", op)
            sources.append((lat, valid, opc, block.result, ops_of[name]))
            return valid, opc

        unit("imul", Int32MulLow(stages=1), {"a": a, "b": b})
        unit("i2f", Int32ToFp32(stages=1), {"a": a})
        unit("f2i", Fp32ToInt(32, stages=1), {"a": a})
        unit("fadd", Fp32Add(stages=2), {"a": a, "b": b, "sub": op == O.FSUB})

        # fmul and cvt.f32.i8 share the multiplier; the conversion is one more stage
        m.submodules.fmul = fmul = Fp32Mul(stages=2)
        m.d.comb += [fmul.a.eq(a), fmul.b.eq(b)]
        fmul_lat = DATAPATH["fmul"][0]
        assert fmul.latency == fmul_lat - 1 == DATAPATH["f2i8"][0] - 2
        mul_valid = delayed(m, fmul_lat - 1, "fmul_valid",
                             self.valid & ((op == O.FMUL) | (op == O.CVT_F32_I8)))
        mul_op = delayed(m, fmul_lat - 1, "fmul_op", op)
        sources.append((fmul_lat, mul_valid, mul_op, fmul.result, ops_of["fmul"]))
        m.submodules.f2i8 = f2i8 = Fp32ToInt(8)
        m.d.sync += f2i8.a.eq(fmul.result)
        sources.append((fmul_lat + 1, delayed(m, 1, "f2i8_valid", mul_valid),
                        delayed(m, 1, "f2i8_op", mul_op), f2i8.result, ops_of["f2i8"]))

        # -- result lines: one per delay ------------------------------------------------
        for d in range(1, self.max_delay + 1):
            feeds = [(lat, valid, opc, value, [o for o in ops if self._delays[o] == d])
                     for lat, valid, opc, value, ops in sources]
            feeds = [f for f in feeds if f[4]]
            if not feeds:
                continue
            depth = max(d - lat + 1 for lat, *_ in feeds)
            line_valid = [Signal(name=f"line{d}_{j}_valid") for j in range(depth)]
            line_data = [Signal(32, name=f"line{d}_{j}_data") for j in range(depth)]
            for j in range(depth):
                if j + 1 < depth:
                    m.d.sync += [line_valid[j].eq(line_valid[j + 1]),
                                 line_data[j].eq(line_data[j + 1])]
                else:
                    m.d.sync += [line_valid[j].eq(0), line_data[j].eq(0)]
                for lat, valid, opc, value, here in feeds:
                    if d - lat == j:
                        with m.If(valid & _any(opc == o for o in here)):
                            m.d.sync += [line_valid[j].eq(1), line_data[j].eq(value)]
            m.d.comb += [self.results[d - 1].eq(line_data[0]),
                         self.results_valid[d - 1].eq(line_valid[0])]
        merged, merged_valid = Const(0, 32), Const(0, 1)
        for d in range(1, self.max_delay + 1):
            v = self.results_valid[d - 1]
            merged = Mux(v, self.results[d - 1], merged)
            merged_valid = merged_valid | v
        m.d.comb += [self.result.eq(merged), self.result_valid.eq(merged_valid)]
        return m
