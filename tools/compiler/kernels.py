"""Kernels: tensor operations lowered onto the chip through the scheduler
(:class:`~lpu.tools.compiler.sched.Scheduler`).

A :class:`Tensor` is ``n`` vectors of VL lanes in one MEM slice: int8 tensors take one
word per vector, int32/fp32 tensors four (byte planes, least significant first), as
``Chip.write_tensor`` lays them out. Every kernel here has an *LPU-exact* numpy
reference (in :mod:`lpu.golden.model.exact`, same order of operations, same numerics)
that its tests compare with bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpu.isa import BY_MNEMONIC, E, W

from .sched import SchedError, Scheduler

__all__ = ["Tensor", "MemAlloc", "elementwise", "write_image", "WORDS"]

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


def write_image(chip, image, fill: dict | None = None) -> None:
    """Write an SRAM image ``[(Tensor, array)]`` into a golden ``Chip`` as the host
    would; a tensor in ``fill`` is written as that one value in every lane instead
    (the per-token copies of a compiled step)."""
    fill = fill or {}
    for t, arr in image:
        a = np.asarray(arr)
        if t in fill:
            a = np.full(a.shape, fill[t], dtype=np.uint32)
        if t.dtype == "i8":
            chip.write_mem(t.slice, t.addr, a.astype(np.uint8))
        else:
            chip.write_tensor(t.slice, t.addr, a.astype(np.uint32))


class MemAlloc:
    """Bump allocation of words per MEM slice and bank, reusing freed words (holes).

    Holes are kept in the order they were made (a hole cut from the front keeps its
    place, a merged one goes last): among equally good holes the oldest is taken. They
    are indexed by slice and by both ends, so freeing merges with the neighbours in one
    lookup each; no two holes of one bank ever touch."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.bank_words = cfg.bank_words
        self.mem = [q.name for q in cfg.queues if q.kind == "mem"]
        self.next = {(m, b): b * cfg.bank_words for m in self.mem for b in (0, 1)}
        self._rr = 0
        self._id = 0  # the next hole's number: hole dicts iterate in the order made
        self._holes: dict[int, tuple[str, int, int]] = {}  # id -> (slice, addr, words)
        self._by_slice: dict[str, dict[int, None]] = {m: {} for m in self.mem}
        self._starts: dict[tuple[str, int], int] = {}  # (slice, first address) -> id
        self._ends: dict[tuple[str, int], int] = {}  # (slice, last address + 1) -> id
        self.free_at = None  # callback: (slice, addr, words) -> cycle the words are free
        self.high = 0  # most words ever in use

    @property
    def holes(self) -> list[tuple[str, int, int]]:
        """The freed words not yet reused: (slice, addr, words), oldest first."""
        return list(self._holes.values())

    def _add_hole(self, m: str, a: int, w: int) -> None:
        k = self._id
        self._id += 1
        self._holes[k] = (m, a, w)
        self._by_slice[m][k] = None
        self._starts[(m, a)] = k
        self._ends[(m, a + w)] = k

    def _drop_hole(self, k: int) -> None:
        m, a, w = self._holes.pop(k)
        del self._by_slice[m][k]
        del self._starts[(m, a)]
        del self._ends[(m, a + w)]

    def free(self, t: Tensor) -> None:
        """Return words to the allocator, merging with adjacent free words of its bank."""
        m, a, w = t.slice, t.addr, t.n * t.words
        bank = a // self.bank_words
        left = self._ends.get((m, a))
        if left is not None and self._holes[left][1] // self.bank_words == bank:
            la = self._holes[left][1]
            self._drop_hole(left)
            a, w = la, w + (a - la)
        right = self._starts.get((m, a + w))
        if right is not None and (a + w) // self.bank_words == bank:
            rw = self._holes[right][2]
            self._drop_hole(right)
            w += rw
        self._add_hole(m, a, w)

    def alloc(self, n: int, dtype: str, slice: str | None = None, bank: int | None = None,
              hemisphere: str | None = None, fresh: bool = False, exclude=(),
              when: int | None = None) -> Tensor:
        """n vectors of dtype; `fresh`: never reuse freed words (for data the host
        writes before the run, which must not have been used by anything scheduled);
        `when`: the cycle the value will be written from, to prefer words free by then
        (through the `free_at(slice, addr, words)` callback, when set)."""
        words = n * WORDS[dtype]
        bw = self.bank_words
        cands = [m for m in self.mem if slice in (None, m) and m not in exclude
                 and (hemisphere is None or m.startswith(f"mem_{hemisphere}"))]
        banks = (0, 1) if bank is None else (bank,)
        order = cands[self._rr % len(cands):] + cands[:self._rr % len(cands)] if cands else []
        if fresh or not cands:
            keys = ()
        elif slice is not None:
            keys = self._by_slice[slice]
        else:
            keys = self._holes
        holes = self._holes
        fits = []  # (hole id, slice, addr, words), oldest first
        for k in keys:
            m, a, w = holes[k]
            if w >= words and m in order and a // bw in banks:
                fits.append((k, m, a, w))
        best = None
        late = None
        if fits and when is not None and self.free_at is not None:
            # reusing words that an op scheduled later still reads would make this
            # value wait for it: prefer the smallest (then oldest) hole free by `when`,
            # else fresh words, else the hole free first
            # (fast path: the holes of the smallest fitting size come first in that order)
            wmin = min(f[3] for f in fits)
            for k, m, a, w in fits:
                if w == wmin and self.free_at(m, a, words) <= when:
                    return self._take((k, m, a, w), words, n, dtype)
            timed = []
            for i, (k, m, a, w) in sorted(enumerate(fits), key=lambda x: x[1][3]):
                ft = self.free_at(m, a, words)
                if ft <= when:
                    best = (k, m, a, w)
                    break
                timed.append((ft, w, i, k, m, a))
            else:
                _, w, _, k, m, a = min(timed)
                late = (k, m, a, w)
        elif fits:
            k, m, a, w = min(fits, key=lambda x: x[3])
            best = (k, m, a, w)
        if best is not None:
            return self._take(best, words, n, dtype)
        for m in order:
            for b in banks:
                start = self.next[(m, b)]
                if start + words <= (b + 1) * bw:
                    self.next[(m, b)] = start + words
                    self._rr += 1
                    return Tensor(m, start, n, dtype)
        if late is not None:
            return self._take(late, words, n, dtype)
        raise SchedError(f"out of SRAM: no bank has {words} free words "
                         f"(slice={slice}, bank={bank}, hemisphere={hemisphere}); "
                         f"{self.free_words()} words free in all")

    def _take(self, hole, words, n, dtype) -> Tensor:
        """The first `words` of a hole; the rest stays a hole in the same place."""
        k, m, a, w = hole
        del self._starts[(m, a)]
        if w == words:
            del self._ends[(m, a + w)]
            del self._holes[k]
            del self._by_slice[m][k]
        else:
            self._holes[k] = (m, a + words, w - words)
            self._starts[(m, a + words)] = k
        self._rr += 1
        return Tensor(m, a, n, dtype)

    def free_words(self) -> int:
        used = sum(nxt - b * self.bank_words for (_, b), nxt in self.next.items())
        return (len(self.mem) * self.cfg.mem_words - used
                + sum(w for _, _, w in self._holes.values()))


def earliest_write(sched: Scheduler, x: Tensor, i: int) -> int:
    """First cycle a write of vector i of x may dispatch: after every scheduled read of
    the old contents and after the last scheduled write (SRAM order)."""
    a0 = x.vec(i)
    t = 0
    for a in range(a0, a0 + x.words):
        t = max(t, sched.lastread.get((x.slice, a), -1), sched.ready.get((x.slice, a), 0) - 1)
    return t


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
    bw = cfg.bank_words
    srcinfo = []
    for x in ins:
        p = sched.qpos[x.slice]
        srcinfo.append((x, p, 1 + abs(vxm - p)))
    t_out = d + abs(p_out - vxm)
    for i in range(out.n):
        placed = False
        t_first = max(t0, earliest_write(sched, out, i) - t_out)
        for t in range(t_first, t_first + max_wait):
            # cheap checks first: the slices' dispatch slots, banks and data readiness
            feasible = True
            for x, _p, lead in srcinfo:
                tr = t - lead
                a = x.vec(i if x.n > 1 else 0)
                if (tr < 0 or (x.slice, tr) in sched.qbusy
                        or not sched.bank_ok(x.slice, a // bw, tr, "r")
                        or sched.ready.get((x.slice, a), 0) > tr):
                    feasible = False
                    break
            tw = t + t_out
            oa = out.vec(i)
            if not feasible or (out.slice, tw) in sched.qbusy or not sched.bank_ok(
                    out.slice, oa // bw, tw + 1, "w"):
                continue
            if any(sched.lastread.get((out.slice, a), -1) >= tw + 1
                   or sched.ready.get((out.slice, a), 0) > tw + 1
                   for a in range(oa, oa + out.words)):
                continue
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
                        x.slice, x.vec(i if x.n > 1 else 0), o.width, tr, dirn, grp, [vxm])
                    if f is None:
                        ok = False
                        break
                    flows[o.name] = f
                if ok:
                    fixed = {"imm": imm} if imm is not None else None
                    ok, res = sched.try_unit(alu, t, mnemonic, flows,
                                             _toward(sched, vxm, p_out), [p_out], dst_w,
                                             fixed=fixed)
                    ok = ok and sched.try_write(out.slice, out.vec(i), res)
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


def fetch(sched: Scheduler, x: Tensor, i: int, dest_pos: int, t: int, readers=None):
    """Read vector i of x so that it arrives at `dest_pos` in cycle t (None if impossible)."""
    p = sched.qpos[x.slice]
    if p == dest_pos:
        return None
    dirn = _toward(sched, p, dest_pos)
    tr = t - 1 - abs(dest_pos - p)
    if tr < 0:
        return None
    readers = readers or [dest_pos]
    grp = sched.free_group(dirn, x.words, p, tr + 1, readers)
    if grp is None:
        return None
    return sched.try_read(x.slice, x.vec(i), x.words, tr, dirn, grp, readers)


def lane_reduce(sched: Scheduler, mnemonic: str, out: Tensor, x: Tensor, alloc: MemAlloc,
                t0: int = 0, max_wait: int = 4000) -> int:
    """out[i] = every lane of x[i] combined with `mnemonic` (fadd, fmax, add, ...), the
    result in all lanes: log2(VL) steps of cur = op(cur, rot(cur, 2^j)) with the SXM.
    VL must be a power of two. Returns the last cycle used."""
    cfg = sched.cfg
    vl = cfg.vl
    if vl & (vl - 1):
        raise SchedError(f"lane_reduce needs a power-of-two vector length, not {vl}")
    steps = vl.bit_length() - 1
    vxm = sched.posi["vxm"]
    alus = [q.name for q in cfg.queues if q.kind == "vxm"]
    d_op = BY_MNEMONIC[mnemonic].d(cfg.superlanes)
    d_rot = BY_MNEMONIC["rot"].d(cfg.superlanes)
    last = t0
    for i in range(x.n):
        cur, ci = x, i
        for j in range(steps):
            dst = out if j == steps - 1 else alloc.alloc(1, x.dtype, when=t0)
            di = i if j == steps - 1 else 0
            p_cur = sched.qpos[cur.slice]
            sxm = "sxm_w" if p_cur <= vxm else "sxm_e"
            p_sxm = sched.qpos[sxm]
            p_dst = sched.qpos[dst.slice]
            placed = False
            lead = d_rot + abs(vxm - p_sxm) + d_op + abs(p_dst - vxm)
            t_first = max(t0, earliest_write(sched, dst, di) - lead)
            for ts in range(t_first, t_first + max_wait):
                tv = ts + d_rot + abs(vxm - p_sxm)
                if not sched.queue_free(sxm, ts):
                    continue
                for alu in alus:
                    if not sched.queue_free(alu, tv):
                        continue
                    sched.begin()
                    f1 = fetch(sched, cur, ci, p_sxm, ts)
                    rot = None if f1 is None else sched.try_unit(
                        sxm, ts, "rot", {"src": f1}, _toward(sched, p_sxm, vxm), [vxm],
                        x.words, fixed={"n": 1 << j, "count": x.words})[1]
                    f2 = None if rot is None else fetch(sched, cur, ci, vxm, tv)
                    res = None if f2 is None else sched.try_unit(
                        alu, tv, mnemonic, {"a": f2, "b": rot}, _toward(sched, vxm, p_dst),
                        [p_dst], x.words)[1]
                    if res is not None and sched.try_write(dst.slice, dst.vec(di), res):
                        sched.commit()
                        placed = True
                        last = max(last, tv + d_op + abs(p_dst - vxm) + 1)
                        break
                    sched.rollback()
                if placed:
                    break
            if not placed:
                raise SchedError(f"lane_reduce: could not place step {j} of vector {i}")
            if cur is not x:
                alloc.free(cur)  # its reads are scheduled; the scheduler orders reuse
            cur, ci = dst, di
    return last


def spread_blocks(alloc: MemAlloc, w, vl: int, hemi_of=lambda kt, nt: "we"[kt % 2]) -> dict:
    """Place an int8 matrix W [K, N] as VL x VL blocks spread over VL/4 MEM slices of a
    hemisphere (four words each, rows of the block in order): the layout matvec_t reads
    transposed in one cycle, and that matvec reads as ordinary weights. Returns
    {(kt, nt): ([(slice, addr) per four rows], rows uint8 [VL, VL])}."""
    K_, N_ = w.shape
    out = {}
    for kt in range(K_ // vl):
        for nt in range(N_ // vl):
            blk = w[kt * vl:(kt + 1) * vl, nt * vl:(nt + 1) * vl]
            hemi = hemi_of(kt, nt)
            parts = []
            for c in range(vl // 4):
                t = alloc.alloc(4, "i8", slice=f"mem_{hemi}{c}", fresh=True)
                parts.append((t.slice, t.addr))
            out[(kt, nt)] = (parts, blk.astype(np.int8).view(np.uint8))
    return out


def weight_blocks(alloc: MemAlloc, w, vl: int) -> dict:
    """Place an int8 matrix W [K, N] (K, N multiples of VL) as VL x VL blocks: block
    (kt, nt) is VL words, row r = W[kt*VL + r, nt*VL:(nt+1)*VL]. Returns
    {(kt, nt): (Tensor, rows uint8 [VL, VL])} for the host image."""
    K_, N_ = w.shape
    out = {}
    for nt in range(N_ // vl):
        for kt in range(K_ // vl):
            blk = w[kt * vl:(kt + 1) * vl, nt * vl:(nt + 1) * vl]
            t = alloc.alloc(vl, "i8", fresh=True)
            out[(kt, nt)] = (t, blk.astype(np.int8).view(np.uint8))
    return out


def matvec(sched: Scheduler, out: Tensor, x: Tensor, blocks: dict, t0: int = 0,
           max_wait: int = 4000) -> int:
    """out (int32 [N/VL]) = x (int8 [K/VL]) @ W on the MXM planes, W given as placed
    blocks (weight_blocks). Per output tile: for each K tile, the block's rows go into
    a plane's shadow buffer four at a time, are installed, and x's tile is multiplied
    (mm, then mmacc); the last K tile sends the int32 result to `out`."""
    cfg = sched.cfg
    vl = cfg.vl
    planes = [q.name for q in cfg.queues if q.kind == "mxm"]
    kts = sorted({k for k, _ in blocks})
    nts = sorted({n for _, n in blocks})
    if len(kts) != x.n or len(nts) != out.n:
        raise SchedError(f"matvec: x has {x.n} tiles and out {out.n}, W has {len(kts)} x "
                         f"{len(nts)} blocks")
    free_at = {p: max(t0, sched.unit_free_at.get(p, 0)) for p in planes}
    last = t0
    for nt in nts:
        plane = min(planes, key=lambda p: free_at[p])
        pm = sched.qpos[plane]
        p_out = sched.qpos[out.slice]
        t = free_at[plane]
        for kt in kts:
            blk = blocks[(kt, nt)]
            blk = blk[0] if isinstance(blk, tuple) else blk
            # 1. rows into the shadow buffer, four per lw
            for j in range(0, vl, 4):
                cnt = min(4, vl - j)
                if isinstance(blk, Tensor):
                    b_slice, b_addr = blk.slice, blk.addr + j
                else:  # spread block: four words per part
                    b_slice, b_addr = blk[j // 4]
                pb = sched.qpos[b_slice]
                dirn = _toward(sched, pb, pm)
                for tl in range(t, t + max_wait):
                    if not sched.queue_free(plane, tl):
                        continue
                    tr = tl - 1 - abs(pm - pb)
                    if tr < 0:
                        continue
                    sched.begin()
                    grp = sched.free_group(dirn, cnt, pb, tr + 1, [pm])
                    f = None if grp is None else sched.try_read(
                        b_slice, b_addr, cnt, tr, dirn, grp, [pm])
                    if f is not None and sched.try_unit(
                            plane, tl, "lw", {"src": f}, None, [], 0,
                            fixed={"row": j, "count": cnt})[0]:
                        sched.commit()
                        t = tl + 1
                        break
                    sched.rollback()
                else:
                    raise SchedError(f"matvec: could not load block ({kt}, {nt})")
            # 2. install (the last lw wrote the shadow at t; iw from t + 1 on)
            ti = t + 1
            while not sched.queue_free(plane, ti):
                ti += 1
            sched._emit(plane, ti, "iw")
            t = ti + 1
            # 3. multiply x's tile
            emit = kt == kts[-1]
            mn = "mm" if kt == kts[0] else "mmacc"
            for tm in range(t, t + max_wait):
                if not sched.queue_free(plane, tm):
                    continue
                sched.begin()
                fx = fetch(sched, x, kt, pm, tm)
                ok, res = False, None
                if fx is not None:
                    ok, res = sched.try_unit(plane, tm, mn, {"src": fx},
                                             _toward(sched, pm, p_out) if emit else None,
                                             [p_out] if emit else [], 4, fixed={"slot": 0})
                if ok and emit:
                    ok = sched.try_write(out.slice, out.vec(nt), res)
                if ok:
                    sched.commit()
                    t = tm + 1
                    if emit:
                        last = max(last, res.arrives(p_out) + 2)
                    break
                sched.rollback()
            else:
                raise SchedError(f"matvec: could not multiply tile ({kt}, {nt})")
        free_at[plane] = t
        sched.unit_free_at[plane] = t  # the plane's state is ours until here
    return last


def sxm_unary(sched: Scheduler, mnemonic: str, out: Tensor, x: Tensor, n: int, t0: int = 0,
              max_wait: int = 4000) -> int:
    """out[i] = SXM op (rot, shift by n; bcast of lane n) of x[i]: MEM -> SXM -> MEM."""
    last = t0
    d = BY_MNEMONIC[mnemonic].d(sched.cfg.superlanes)
    p_out = sched.qpos[out.slice]
    for i in range(out.n):
        p_x = sched.qpos[x.slice]
        sxm = "sxm_w" if p_x <= sched.posi["vxm"] else "sxm_e"
        p_s = sched.qpos[sxm]
        if p_out == p_s or p_x == p_s:
            raise SchedError("sxm_unary: tensors cannot sit at the SXM's position")
        for ts in range(t0, t0 + max_wait):
            if not sched.queue_free(sxm, ts):
                continue
            sched.begin()
            f = fetch(sched, x, i if x.n > 1 else 0, p_s, ts)
            ok, res = (False, None) if f is None else sched.try_unit(
                sxm, ts, mnemonic, {"src": f}, _toward(sched, p_s, p_out), [p_out], x.words,
                fixed={"n": n, "lane": n, "count": x.words})
            if ok and sched.try_write(out.slice, out.vec(i), res):
                sched.commit()
                last = max(last, ts + d + abs(p_out - p_s) + 2)
                break
            sched.rollback()
        else:
            raise SchedError(f"{mnemonic}: could not place vector {i}")
    return last


def matvec_t(sched: Scheduler, out: Tensor, x: Tensor, kblocks: dict, t0: int = 0,
             max_wait: int = 4000) -> int:
    """out[nt] (int32) = sum over kt of x[kt] (int8) @ B(kt, nt)^T, for natural blocks
    B (VL words: rows = output lanes, lanes = input index) spread over VL/4 MEM slices
    of one hemisphere, four words each: kblocks[(kt, nt)] = [(slice, addr), ...]. Each
    block is read onto VL streams so that it meets at the SXM, transposed, loaded into
    an MXM plane's shadow in one lw, installed, and multiplied (mm, then mmacc)."""
    cfg = sched.cfg
    vl = cfg.vl
    if cfg.streams < vl:
        raise SchedError(f"matvec_t needs streams >= VL ({cfg.streams} < {vl})")
    d_tr = BY_MNEMONIC["transpose"].d(cfg.superlanes)
    kts = sorted({k for k, _ in kblocks})
    nts = sorted({n for _, n in kblocks})
    if len(kts) != x.n or len(nts) != out.n:
        raise SchedError(f"matvec_t: x has {x.n} tiles and out {out.n}, blocks "
                         f"{len(kts)} x {len(nts)}")
    last = t0
    t = t0
    p_out = sched.qpos[out.slice]
    for nt in nts:
        for kt in kts:
            parts = kblocks[(kt, nt)]
            west = parts[0][0].startswith("mem_w")
            if any(kblocks[(k, nt)][0][0][4] != parts[0][0][4] for k in kts):
                raise SchedError("matvec_t: the blocks of one output tile must sit in one "
                                 "hemisphere (one MXM plane accumulates them)")
            sxm, plane = ("sxm_w", "mxm_w0") if west else ("sxm_e", "mxm_e0")
            p_s, p_m = sched.qpos[sxm], sched.qpos[plane]
            dir_in = _toward(sched, sched.qpos[parts[0][0]], p_s)
            dir_mx = _toward(sched, p_s, p_m)
            emit = kt == kts[-1]
            mn = "mm" if kt == kts[0] else "mmacc"
            placed = False
            # the plane is ours alone from its first lw: start after its last user
            t = max(t, sched.unit_free_at.get(plane, 0) - d_tr - abs(p_m - p_s))
            for ts in range(t, t + max_wait):
                tl = ts + d_tr + abs(p_m - p_s)
                if not sched.queue_free(sxm, ts) or not sched.queue_free(plane, tl):
                    continue
                sched.begin()
                flows = {}
                for c, (sl, addr) in enumerate(parts):
                    p = sched.qpos[sl]
                    tr = ts - 1 - abs(p_s - p)
                    f = None if tr < 0 else sched.try_read(sl, addr, 4, tr, dir_in, 4 * c,
                                                           [p_s])
                    if f is None:
                        break
                    flows["src" if c == 0 else f"_part{c}"] = f
                ok = len(flows) == len(parts)
                tf = None
                if ok:
                    ok, tf = sched.try_unit(sxm, ts, "transpose", flows, dir_mx, [p_m], vl)
                ok = ok and sched.try_unit(plane, tl, "lw", {"src": tf}, None, [], 0,
                                           fixed={"row": 0, "count": vl})[0]
                if not ok:
                    sched.rollback()
                    continue
                ti = tl + 2
                while not sched.queue_free(plane, ti):
                    ti += 1
                sched._emit(plane, ti, "iw")
                done = False
                for tm in range(ti + 1, ti + 1 + max_wait):
                    if not sched.queue_free(plane, tm):
                        continue
                    sched.begin()
                    fx = fetch(sched, x, kt, p_m, tm)
                    ok2, res = (False, None) if fx is None else sched.try_unit(
                        plane, tm, mn, {"src": fx},
                        _toward(sched, p_m, p_out) if emit else None,
                        [p_out] if emit else [], 4, fixed={"slot": 0})
                    if ok2 and (not emit or sched.try_write(out.slice, out.vec(nt), res)):
                        sched.commit()
                        done = True
                        if emit:
                            last = max(last, res.arrives(p_out) + 2)
                        t = tm + 1
                        break
                    sched.rollback()
                if done:
                    sched.commit()
                    placed = True
                    sched.unit_free_at[plane] = t
                    break
                sched.rollback()
            if not placed:
                raise SchedError(f"matvec_t: could not place block ({kt}, {nt})")
    return last
