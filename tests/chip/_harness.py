"""Small program fixtures for golden-model tests on the tiny config (no model code here:
expected values are computed by the tests with numpy)."""

import numpy as np

from lpu import config
from lpu.golden.chip import Chip
from lpu.isa import BY_MNEMONIC, E, W
from lpu.program import ProgramBuilder

TINY = config.load("tiny")


def run_vxm(mnemonic, a, b=None, c=None, *, imm=None, cfg=TINY, trace=False):
    """Run one VXM instruction on vectors from MEM and return its result vector.

    a, b, c: arrays [VL] of int32/uint32/float32 (or uint8/int8 for one-stream operands).
    a comes from mem_w0 on east streams 0.., b from mem_e0 on west streams 0..,
    c from mem_w1 on east streams 4..7; the result is stored by mem_e0 at address 16.
    """
    info = BY_MNEMONIC[mnemonic]
    chip = Chip(cfg)
    bld = ProgramBuilder(cfg)
    t_vxm = 3
    ops = {o.name: o for o in info.operands}
    srcs = [o for o in info.operands if o.kind == "sr"]
    args = []
    for o in info.operands:
        if o.name == "dst":
            args.append((0, E))
        elif o.kind == "sr":
            k = srcs.index(o)
            if k == 0:
                chip.write_tensor("mem_w0", 0, np.asarray(a).reshape(1, -1))
                bld.at("mem_w0", t_vxm - 2, "read", 0, (0, E), o.width)
                args.append((0, E))
            elif k == 1:
                chip.write_tensor("mem_e0", 0, np.asarray(b).reshape(1, -1))
                bld.at("mem_e0", t_vxm - 2, "read", 0, (0, W), o.width)
                args.append((0, W))
            else:
                chip.write_tensor("mem_w1", 0, np.asarray(c).reshape(1, -1))
                bld.at("mem_w1", t_vxm - 3, "read", 0, (4, E), o.width)
                args.append((4, E))
        else:
            args.append(imm)
    bld.at("vxm0", t_vxm, mnemonic, *args)
    d = info.d(cfg.superlanes)
    wd = ops["dst"].width
    bld.at("mem_e0", t_vxm + d + 1, "write", 16, (0, E), wd)
    chip.load(bld.program())
    res = chip.run(trace=trace)
    dt = np.uint8 if wd == 1 else np.uint32
    out = chip.read_tensor("mem_e0", 16, 1, dt)[0]
    return (out, res) if trace else out


def new_chip(cfg=TINY):
    return Chip(cfg), ProgramBuilder(cfg)
