"""Kernels: tensor operations lowered onto the chip through :class:`~lpu.tools.sched.Scheduler`.

A :class:`Tensor` is ``n`` vectors of VL lanes in one MEM slice: int8 tensors take one
word per vector, int32/fp32 tensors four (byte planes, least significant first), as
``Chip.write_tensor`` lays them out. Every kernel here has an *LPU-exact* numpy
reference (in :mod:`lpu.golden.lpu_exact`, same order of operations, same numerics)
that its tests compare with bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpu.isa import BY_MNEMONIC

from .sched import E, SchedError, Scheduler, W

__all__ = ["Tensor", "MemAlloc", "elementwise", "WORDS"]

WORDS = {"i8": 1, "i32": 4, "f32": 4}


@dataclass(frozen=True)
class Tensor:
    slice: str  # MEM slice queue name, e.g. "mem_w0"
    addr: int
    n: int  # vectors
    dtype: str  # "i8" | "i32" | "f32"

    @property
    def words(self) -> int:
        return WORDS[self.dtype]

    def vec(self, i: int) -> int:
        """Address of vector i."""
        return self.addr + i * self.words


class MemAlloc:
    """Bump allocation of words per MEM slice and bank."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.mem = [q.name for q in cfg.queues if q.kind == "mem"]
        self.next = {(m, b): b * cfg.bank_words for m in self.mem for b in (0, 1)}
        self._rr = 0

    def alloc(self, n: int, dtype: str, slice: str | None = None, bank: int | None = None,
              hemisphere: str | None = None) -> Tensor:
        words = n * WORDS[dtype]
        cands = [m for m in self.mem if slice in (None, m)
                 and (hemisphere is None or m.startswith(f"mem_{hemisphere}"))]
        banks = (0, 1) if bank is None else (bank,)
        order = cands[self._rr % len(cands):] + cands[:self._rr % len(cands)] if cands else []
        for m in order:
            for b in banks:
                start = self.next[(m, b)]
                if start + words <= (b + 1) * self.cfg.bank_words:
                    self.next[(m, b)] = start + words
                    self._rr += 1
                    return Tensor(m, start, n, dtype)
        raise SchedError(f"out of SRAM: no bank has {words} free words "
                         f"(slice={slice}, bank={bank}, hemisphere={hemisphere})")


def _toward(sched: Scheduler, src_pos: int, dst_pos: int) -> int:
    return E if dst_pos > src_pos else W


def elementwise(sched: Scheduler, mnemonic: str, out: Tensor, *ins: Tensor, t0: int = 0,
                imm: int | None = None, max_wait: int = 4000) -> int:
    """out[i] = op(ins[0][i], ins[1][i], ...) for every vector i, on the VXM.

    Operands are read from their MEM slices so that they meet at the VXM in one
    cycle; the result is written to `out`. Returns the last cycle used.
    """
    cfg = sched.cfg
    info = BY_MNEMONIC[mnemonic]
    srcs = [o for o in info.operands if o.kind == "sr"]
    if len(srcs) != len(ins):
        raise SchedError(f"{mnemonic} takes {len(srcs)} stream operands, got {len(ins)}")
    vxm = sched.posi["vxm"]
    alus = [q.name for q in cfg.queues if q.kind == "vxm"]
    p_out = sched.qpos[out.slice]
    d = info.d(cfg.superlanes)
    dst_w = info.operands[0].width
    last = t0
    for i in range(out.n):
        placed = False
        for t in range(t0, t0 + max_wait):
            for alu in alus:
                if not sched.queue_free(alu, t):
                    continue
                sched.begin()
                ok = True
                flows = {}
                for o, x in zip(srcs, ins, strict=True):
                    p = sched.qpos[x.slice]
                    dirn = _toward(sched, p, vxm)
                    tr = t - 1 - abs(vxm - p)
                    grp = sched.free_group(dirn, o.width, p, tr + 1, [vxm]) if tr >= 0 else None
                    f = None if grp is None else sched.try_read(
                        x.slice, x.vec(i), o.width, tr, dirn, grp, [vxm])
                    if f is None:
                        ok = False
                        break
                    flows[o.name] = f
                if ok:
                    fixed = {"imm": imm} if imm is not None else None
                    res = sched.try_unit(alu, t, mnemonic, flows, _toward(sched, vxm, p_out),
                                         [p_out], dst_w, fixed=fixed)
                    ok = res is not None and sched.try_write(out.slice, out.vec(i), res)
                if ok:
                    sched.commit()
                    last = max(last, t + d + abs(p_out - vxm) + 1)
                    placed = True
                    break
                sched.rollback()
            if placed:
                break
        if not placed:
            raise SchedError(f"{mnemonic}: could not place vector {i} within {max_wait} cycles")
    return last
