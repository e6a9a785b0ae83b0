"""cocotb testbench for the Verilog of lpu.hdl.vxm_alu.VxmAlu (run by
tests/slice/test_cocotb_vxm_alu.py through lpu.sim.verilator).

A random VXM opcode is issued every cycle (a few idle cycles among them), with operands
shaped to reach the corner cases (fp32 specials, int32 extremes); every result port
``results__{d-1}`` is checked in every cycle against lpu.golden.numerics at the
opcode's functional delay ``d`` (from lpu.isa.OPS), and the merged ``result`` port
against the result of the largest delay landing in that cycle.

Driver, Monitor, Model and Scoreboard are small classes; the expected values come from
the model at run time. Environment: LPU_TB_SEED (default: cocotb's random seed),
LPU_TB_CYCLES (default 3000), LPU_TB_SUPERLANES (default: none, as VxmAlu()).
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from lpu.golden import numerics as nm
from lpu.isa import OPS, VXM_OPCODES, Opcode

O = Opcode
U32 = np.uint32

FP_SPECIALS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
               0x7F800001, 0x00000001, 0x807FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF,
               0xFF7FFFFF, 0x3F800000, 0x3F000000, 0x4F000000, 0xCF000000, 0x42FF0000]
INT_SPECIALS = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 127, 128, 0xFFFFFF80, 255, 31, 32]


class Model:
    """The golden arithmetic of one VXM lane (lpu.golden.numerics, numpy int32)."""

    def __init__(self, superlanes):
        self.delay = {op: OPS[op].d(superlanes or 0) for op in VXM_OPCODES}

    @staticmethod
    def result(op, a, b, c, imm) -> int:
        a, b, c = (np.array([x], dtype=U32) for x in (a, b, c))
        sa, sb = a.view(np.int32), b.view(np.int32)
        sh = (b & 31).astype(U32)
        t = U32(0xFFFFFFFF)
        table = {
            O.ADD: lambda: a + b, O.SUB: lambda: a - b,
            O.MUL: lambda: (a.astype(np.uint64) * b.astype(np.uint64)) & 0xFFFFFFFF,
            O.MIN: lambda: np.where(sa < sb, a, b), O.MAX: lambda: np.where(sa > sb, a, b),
            O.AND: lambda: a & b, O.OR: lambda: a | b, O.XOR: lambda: a ^ b,
            O.SHL: lambda: a << sh, O.SHR: lambda: a >> sh,
            O.SRA: lambda: (sa >> sh.astype(np.int32)).view(U32),
            O.SHLI: lambda: a << U32(imm), O.SHRI: lambda: a >> U32(imm),
            O.SRAI: lambda: (sa >> imm).view(U32),
            O.EQ: lambda: np.where(a == b, t, 0), O.LT: lambda: np.where(sa < sb, t, 0),
            O.LE: lambda: np.where(sa <= sb, t, 0), O.SEL: lambda: np.where(c != 0, a, b),
            O.FADD: lambda: nm.fadd(a, b), O.FSUB: lambda: nm.fsub(a, b),
            O.FMUL: lambda: nm.fmul(a, b), O.FMIN: lambda: nm.fmin(a, b),
            O.FMAX: lambda: nm.fmax(a, b), O.FEQ: lambda: nm.feq(a, b),
            O.FLT: lambda: nm.flt(a, b), O.FLE: lambda: nm.fle(a, b),
            O.FNEG: lambda: nm.fneg(a), O.FABS: lambda: nm.fabs(a),
            O.CVT_I8_I32: lambda: nm.cvt_i8_i32((a & 0xFF).astype(np.uint8)),
            O.CVT_I32_I8: lambda: nm.cvt_i32_i8(a), O.CVT_I32_F32: lambda: nm.cvt_i32_f32(a),
            O.CVT_F32_I32: lambda: nm.cvt_f32_i32(a), O.CVT_F32_I8: lambda: nm.cvt_f32_i8(a, b),
            O.MOV: lambda: a & 0xFF, O.MOV32: lambda: a,
        }
        with np.errstate(all="ignore"):
            return int(np.asarray(table[op]()).astype(U32)[0])


class Stimulus:
    """Random issues: one opcode per cycle (or idle), operands for its corner cases."""

    def __init__(self, rng):
        self.rng = rng

    def fp32(self):
        r = self.rng
        if r.random() < 0.25:
            return int(r.choice(FP_SPECIALS))
        exp = int(r.integers(0, 256)) if r.random() < 0.3 else int(r.integers(110, 150))
        return int(r.integers(0, 2)) << 31 | exp << 23 | int(r.integers(0, 1 << 23))

    def int32(self):
        r = self.rng
        if r.random() < 0.2:
            return int(r.choice(INT_SPECIALS))
        if r.random() < 0.3:
            return int(r.integers(-300, 300)) & 0xFFFFFFFF
        return int(r.integers(0, 1 << 32))

    def issue(self):
        r = self.rng
        if r.random() < 0.05:
            return None
        op = VXM_OPCODES[int(r.integers(0, len(VXM_OPCODES)))]
        gen = self.fp32 if OPS[op].dtype == "f32" else self.int32
        a, b = gen(), gen()
        if OPS[op].dtype == "f32" and r.random() < 0.25:  # near neighbours: ties, cancels
            b = (a + int(r.integers(-2, 3))) & 0xFFFFFFFF ^ (int(r.integers(0, 2)) << 31)
        if op == O.CVT_F32_I8 and r.random() < 0.5:
            b = 0x3F800000
            a = int(np.float32(int(r.integers(-280, 280)) * 0.5).view(U32))
        c = 0 if r.random() < 0.5 else self.int32()
        return op, a, b, c, int(r.integers(0, 32))


class Driver:
    def __init__(self, dut):
        self.dut = dut

    def drive(self, issue):
        dut = self.dut
        if issue is None:
            dut.valid.value = 0
            dut.op.value = O.NOP.value
            return
        op, a, b, c, imm = issue
        dut.valid.value = 1
        dut.op.value = op.value
        dut.a.value = a
        dut.b.value = b
        dut.c.value = c
        dut.imm.value = imm


def _u(handle) -> int:
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


class Monitor:
    """Samples every result port: {delay: (valid, value)} and the merged port."""

    def __init__(self, dut, max_delay):
        self.ports = [(getattr(dut, f"results_valid__{d}"), getattr(dut, f"results__{d}"))
                      for d in range(max_delay)]
        self.merged = (dut.result_valid, dut.result)

    def sample(self):
        per = {d + 1: (_u(v), _u(x)) for d, (v, x) in enumerate(self.ports)}
        return per, (_u(self.merged[0]), _u(self.merged[1]))


class Scoreboard:
    def __init__(self, model, log):
        self.model = model
        self.log = log
        self.due = {}  # (cycle, delay) -> (op, issue cycle, operands, value)
        self.errors = []
        self.checked = 0

    def expect(self, t, issue):
        op, a, b, c, imm = issue
        d = self.model.delay[op]
        self.due[(t + d, d)] = (op, t, issue, self.model.result(op, a, b, c, imm))

    def check(self, t, per, merged):
        best = None
        for d, (valid, value) in per.items():
            want = self.due.pop((t, d), None)
            if want is None:
                if valid or value:
                    self.errors.append(f"cycle {t}: results[{d - 1}] valid={valid} "
                                       f"0x{value:08x} with nothing due")
                continue
            op, t0, issue, exp = want
            self.checked += 1
            best = (d, exp)
            if not valid or value != exp:
                _, a, b, c, imm = issue
                self.errors.append(f"cycle {t}: {op.name} issued at {t0} (a=0x{a:08x} "
                                   f"b=0x{b:08x} c=0x{c:08x} imm={imm}) delay {d}: got "
                                   f"valid={valid} 0x{value:08x}, expected 0x{exp:08x}")
        mv, mx = merged
        want_m = (0, 0) if best is None else (1, best[1])
        if (mv, mx) != want_m:
            self.errors.append(f"cycle {t}: merged result valid={mv} 0x{mx:08x}, expected "
                               f"valid={want_m[0]} 0x{want_m[1]:08x}")


@cocotb.test()
async def random_ops_every_cycle(dut):
    seed = int(os.environ.get("LPU_TB_SEED", cocotb.RANDOM_SEED))
    cycles = int(os.environ.get("LPU_TB_CYCLES", "3000"))
    sl = os.environ.get("LPU_TB_SUPERLANES")
    model = Model(int(sl) if sl else None)
    max_delay = max(model.delay.values())
    dut._log.info(f"seed {seed}, {cycles} cycles, delays up to {max_delay}")
    rng = np.random.default_rng(seed)
    stim, drv, mon = Stimulus(rng), Driver(dut), Monitor(dut, max_delay)
    board = Scoreboard(model, dut._log)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    drv.drive(None)
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    for t in range(cycles + max_delay):
        issue = stim.issue() if t < cycles else None
        drv.drive(issue)
        if issue is not None:
            board.expect(t, issue)
        await RisingEdge(dut.clk)
        await ReadOnly()
        per, merged = mon.sample()
        board.check(t + 1, per, merged)
        if len(board.errors) >= 20:
            break
        await FallingEdge(dut.clk)
    assert not board.errors, (f"seed {seed}: {len(board.errors)} wrong cycles:\n"
                              + "\n".join(board.errors[:10]))
    assert board.checked > 0.8 * cycles, board.checked
    dut._log.info(f"seed {seed}: {board.checked} results checked")
