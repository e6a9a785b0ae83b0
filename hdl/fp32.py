"""IEEE-754 binary32 and integer conversion datapaths, bit-exact with :mod:`lpu.golden.numerics`.

Every block here is a :class:`wiring.Component` whose ports carry raw 32-bit patterns
(fp32 or int32 two's complement; int8 values in 8-bit ports). The rules are those of
:mod:`lpu.golden.numerics`:

* round to nearest, ties to even;
* subnormal inputs are read as zero of the same sign (DAZ);
* a result that is subnormal *after* IEEE rounding with gradual underflow becomes zero
  of the same sign (FTZ). For addition the exact result is then already subnormal. For
  multiplication the products in ``[2^-126 - 2^-150, 2^-126)`` round up to the
  smallest normal ``2^-126`` under gradual underflow and are therefore kept, while
  every smaller product is flushed;
* every NaN result is the canonical quiet NaN ``0x7FC00000``.

Timing
------
The arithmetic blocks take a ``stages`` argument: the number of pipeline registers
placed inside the block, at fixed cut points between its steps (listed per class). With
``stages=0`` the block is purely combinational; with ``stages=k`` its ``result`` is valid
``k`` cycles after its operands (``latency == k``). The registers have no enable: the
pipelines never stall, as nothing in the chip does. Callers carry their own side-band
(valid bits, opcodes) through the same number of registers.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "CANONICAL_NAN", "Fp32Add", "Fp32Mul", "Fp32Compare", "Fp32NegAbs", "Int32ToFp32",
    "Fp32ToInt", "Fp32ToInt8Scaled", "Int32ToInt8", "Int8ToInt32",
]

CANONICAL_NAN = 0x7FC00000
_SIGN = 0x80000000
_INF = 0x7F800000
_MIN_NORMAL = 0x00800000


# -- small helpers on Values ----------------------------------------------------------------


def _fields(bits):
    """Sign, biased exponent and mantissa fields of an fp32 pattern."""
    return bits[31], bits[23:31], bits[0:23]


def _is_nan(bits):
    return (bits[23:31] == 0xFF) & (bits[0:23] != 0)


def _is_inf(bits):
    return (bits[23:31] == 0xFF) & (bits[0:23] == 0)


def _daz(bits):
    """The pattern with a subnormal replaced by zero of the same sign."""
    return Mux(bits[23:31] == 0, bits & _SIGN, bits)


def _significand(bits):
    """24-bit significand with the hidden bit; zero for zeros and (DAZ) subnormals."""
    normal = bits[23:31] != 0
    return Mux(normal, Cat(bits[0:23], Const(1, 1)), 0)


def _shift_right_sticky(x, amount):
    """``(x >> amount, sticky)``: sticky is 1 when any set bit was shifted out.

    ``amount`` is an unsigned Value; amounts of ``len(x)`` or more give ``(0, x != 0)``.
    """
    width = len(x)
    kept = (Const((1 << width) - 1, width) << amount)[:width]  # a thermometer decoder
    return x >> amount, (x & ~kept) != 0


def _clamp(value, limit):
    """Unsigned ``min(value, limit)`` as a Value wide enough for ``limit``."""
    return Mux(value > limit, limit, value)[: max(limit.bit_length(), 1)]


def _normalize(m, x, name):
    """Left-shift ``x`` until its top bit is set; returns ``(shifted, count)``.

    A logarithmic shifter: 16, 8, 4, 2, 1 places, each taken when that many leading
    bits are zero. For ``x == 0`` the shifted value is 0 and the count meaningless.
    """
    width = len(x)
    steps = [k for k in (16, 8, 4, 2, 1) if k < width]
    cur = x
    taken = []
    for k in steps:
        nxt = Signal(width, name=f"{name}_n{k}")
        take = cur[width - k:] == 0
        m.d.comb += nxt.eq(Mux(take, cur << k, cur)[:width])
        taken.append((k, take))
        cur = nxt
    count = Signal(range(sum(steps) + 1), name=f"{name}_lz")
    m.d.comb += count.eq(sum(Mux(take, k, 0) for k, take in taken))
    return cur, count


class _Stages:
    """The step boundaries of one block; a boundary either registers or passes through."""

    def __init__(self, m, registered):
        self._m = m
        self._registered = registered
        self._index = 0

    def cut(self, **values):
        """Carry ``values`` over the next boundary; returns the signals on its far side."""
        reg = self._index in self._registered
        domain = self._m.d.sync if reg else self._m.d.comb
        out = []
        for name, value in values.items():
            value = Value.cast(value)
            sig = Signal(value.shape(), name=f"s{self._index}_{name}")
            domain += sig.eq(value)
            out.append(sig)
        self._index += 1
        return out[0] if len(out) == 1 else tuple(out)


class _Pipelined(wiring.Component):
    """Base of the blocks with a ``stages`` parameter.

    ``_CUTS`` lists the block's step boundaries in the order they receive a register:
    ``stages=k`` registers the first ``k`` of them.
    """

    _CUTS: tuple[int, ...] = ()

    def __init__(self, signature=None, *, stages=0):
        if not isinstance(stages, int) or isinstance(stages, bool) \
                or not 0 <= stages <= len(self._CUTS):
            self._MustUse__silence = True  # not a design that was forgotten: it never was one
            raise TypeError(f"{type(self).__name__} stages must be an integer from 0 to "
                            f"{len(self._CUTS)}, not {stages!r}")
        self._stages = stages
        if signature is None:
            super().__init__()
        else:
            super().__init__(signature)

    @property
    def latency(self) -> int:
        """Cycles from operands to ``result`` (the number of internal registers)."""
        return self._stages

    def _pipeline(self, m):
        return _Stages(m, set(self._CUTS[: self._stages]))


# -- add / subtract -------------------------------------------------------------------------


class Fp32Add(_Pipelined):
    """``result = a + b`` (``sub = 0``) or ``a - b`` (``sub = 1``), binary32.

    Steps: (0) unpack, order by magnitude, align the smaller significand with guard,
    round and sticky bits; (1) add or subtract, normalize; (2) round to nearest even,
    flush, pack. ``stages`` (0-2) registers the boundaries after steps 0 and 1.

    The sum of two normal numbers below ``2^-126`` in magnitude is exact (both are
    multiples of ``2^-149``), so a result whose normalized exponent is below the normal
    range is flushed to zero with the sign of the exact sum. An exact zero sum is
    ``+0`` unless both addends are ``-0`` (after DAZ).
    """

    _CUTS = (0, 1)

    a: In(32)
    b: In(32)
    sub: In(1)
    result: Out(32)

    def elaborate(self, platform):
        m = Module()
        p = self._pipeline(m)
        a, b = self.a, self.b
        sa, ea, _ = _fields(a)
        sb = b[31] ^ self.sub
        eb = b[23:31]

        # step 0: specials, order by magnitude, align
        a_nan, b_nan = _is_nan(a), _is_nan(b)
        a_inf, b_inf = _is_inf(a), _is_inf(b)
        nan = a_nan | b_nan | (a_inf & b_inf & (sa != sb))
        inf = a_inf | b_inf
        inf_sign = Mux(a_inf, sa, sb)
        zero_sign = sa & sb
        mag_a = Cat(Mux(ea == 0, 0, a[0:23]), ea)
        mag_b = Cat(Mux(eb == 0, 0, b[0:23]), eb)
        swap = mag_b > mag_a
        big_s = Mux(swap, sb, sa)
        big_e = Mux(swap, eb, ea)
        big_sig = Mux(swap, _significand(b), _significand(a))
        small_e = Mux(swap, ea, eb)
        small_sig = Mux(swap, _significand(a), _significand(b))
        eff_sub = sa ^ sb
        # 27-bit frames: 24-bit significand, then guard, round and sticky bits
        small_frame = Cat(Const(0, 3), small_sig)
        diff = (big_e - small_e)[:8]
        shifted, sticky = _shift_right_sticky(small_frame, _clamp(diff, 31))
        aligned = shifted | sticky
        (nan, inf, inf_sign, zero_sign, big_s, big_e, big_frame, aligned, eff_sub) = p.cut(
            nan=nan, inf=inf, inf_sign=inf_sign, zero_sign=zero_sign, big_s=big_s,
            big_e=big_e, big_frame=Cat(Const(0, 3), big_sig), aligned=aligned,
            eff_sub=eff_sub)

        # step 1: add or subtract (|big| >= |small|, so no negative result), normalize
        total = Signal(28)
        m.d.comb += total.eq(Mux(eff_sub, big_frame - aligned, big_frame + aligned))
        carry = total[27]
        left, lz = _normalize(m, total[0:27], "add")
        # on a carry, shift right by one and keep the lost bit as sticky
        norm = Mux(carry, Cat(total[0] | total[1], total[2:28]), left)
        exp_big = Signal(signed(10))
        exp = Signal(signed(10))
        m.d.comb += exp_big.eq(big_e)
        m.d.comb += exp.eq(Mux(carry, exp_big + 1, exp_big - lz))
        (nan, inf, inf_sign, zero_sign, sign, is_zero, norm, exp) = p.cut(
            nan=nan, inf=inf, inf_sign=inf_sign, zero_sign=zero_sign, sign=big_s,
            is_zero=total == 0, norm=norm, exp=exp)

        # step 2: round to nearest even, flush, pack
        sig = norm[3:27]
        guard = norm[2]
        rest = norm[0:2] != 0
        rounded = Signal(25)
        m.d.comb += rounded.eq(sig + (guard & (rest | sig[0])))
        exp_r = Signal(signed(11))
        m.d.comb += exp_r.eq(exp + rounded[24])
        with m.If(nan):
            m.d.comb += self.result.eq(CANONICAL_NAN)
        with m.Elif(inf):
            m.d.comb += self.result.eq(Cat(Const(_INF, 31), inf_sign))
        with m.Elif(is_zero):
            m.d.comb += self.result.eq(Cat(Const(0, 31), zero_sign))
        with m.Elif(exp <= 0):
            m.d.comb += self.result.eq(Cat(Const(0, 31), sign))
        with m.Elif(exp_r >= 255):
            m.d.comb += self.result.eq(Cat(Const(_INF, 31), sign))
        with m.Else():
            m.d.comb += self.result.eq(Cat(rounded[0:23], exp_r[0:8], sign))
        return m


# -- multiply -------------------------------------------------------------------------------


class Fp32Mul(_Pipelined):
    """``result = a * b``, binary32.

    Steps: (0) unpack and the 24 x 24 significand product; (1) normalize and round to
    nearest even; (2) flush, overflow, specials, pack. ``stages`` (0-2) registers the
    boundaries after steps 0 and 1.

    Gradual underflow then flush: a product whose normalized biased exponent is 0 (in
    ``[2^-127, 2^-126)``) would be rounded to a multiple of ``2^-149``; that rounds up
    to ``2^-126`` exactly when its 24-bit significand is all ones (then the guard bit
    at that precision is 1 and the kept bits odd, or the tie goes to the even
    ``2^-126``), and otherwise stays subnormal and is flushed.
    """

    _CUTS = (0, 1)

    a: In(32)
    b: In(32)
    result: Out(32)

    def elaborate(self, platform):
        m = Module()
        p = self._pipeline(m)
        a, b = self.a, self.b
        a_zero, b_zero = a[23:31] == 0, b[23:31] == 0
        a_inf, b_inf = _is_inf(a), _is_inf(b)
        nan = _is_nan(a) | _is_nan(b) | (a_inf & b_zero) | (b_inf & a_zero)
        inf = a_inf | b_inf
        zero = a_zero | b_zero
        sign = a[31] ^ b[31]
        exp_sum = Signal(signed(10))
        exp = Signal(signed(10))
        m.d.comb += exp_sum.eq(a[23:31] + b[23:31])
        m.d.comb += exp.eq(exp_sum - 127)
        product = Signal(48)
        m.d.comb += product.eq(Cat(a[0:23], Const(1, 1)) * Cat(b[0:23], Const(1, 1)))
        nan, inf, zero, sign, exp, product = p.cut(
            nan=nan, inf=inf, zero=zero, sign=sign, exp=exp, product=product)

        # step 1: normalize (the product of two [1, 2) significands is in [1, 4)), round
        hi = product[47]
        sig = Mux(hi, product[24:48], product[23:47])
        guard = Mux(hi, product[23], product[22])
        rest = Mux(hi, product[0:23] != 0, product[0:22] != 0)
        exp_n = Signal(signed(11))
        m.d.comb += exp_n.eq(exp + hi)
        rounded = Signal(25)
        m.d.comb += rounded.eq(sig + (guard & (rest | sig[0])))
        exp_r = Signal(signed(11))
        m.d.comb += exp_r.eq(exp_n + rounded[24])
        to_min_normal = (exp_n == 0) & (sig == 0xFFFFFF)
        nan, inf, zero, sign, to_min_normal, exp_r, mant = p.cut(
            nan=nan, inf=inf, zero=zero, sign=sign, to_min_normal=to_min_normal,
            exp_r=exp_r, mant=rounded[0:23])

        # step 2: specials, flush, overflow, pack
        with m.If(nan):
            m.d.comb += self.result.eq(CANONICAL_NAN)
        with m.Elif(inf):
            m.d.comb += self.result.eq(Cat(Const(_INF, 31), sign))
        with m.Elif(zero):
            m.d.comb += self.result.eq(Cat(Const(0, 31), sign))
        with m.Elif(to_min_normal):
            m.d.comb += self.result.eq(Cat(Const(_MIN_NORMAL, 31), sign))
        with m.Elif(exp_r <= 0):
            m.d.comb += self.result.eq(Cat(Const(0, 31), sign))
        with m.Elif(exp_r >= 255):
            m.d.comb += self.result.eq(Cat(Const(_INF, 31), sign))
        with m.Else():
            m.d.comb += self.result.eq(Cat(mant, exp_r[0:8], sign))
        return m


# -- comparisons, min / max, sign operations ------------------------------------------------


class Fp32Compare(wiring.Component):
    """Combinational comparisons of two binary32 values (after DAZ).

    ``eq``, ``lt``, ``le``: false when either is NaN; ``-0 == +0``.
    ``min``, ``max``: canonical NaN when either is NaN; ``min(-0, +0) = -0``,
    ``max(-0, +0) = +0``; otherwise the smaller / larger operand, with a subnormal
    operand returned as zero of its sign.
    """

    a: In(32)
    b: In(32)
    eq: Out(1)
    lt: Out(1)
    le: Out(1)
    min: Out(32)
    max: Out(32)

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(32), Signal(32)
        m.d.comb += [a.eq(_daz(self.a)), b.eq(_daz(self.b))]
        nan = _is_nan(a) | _is_nan(b)
        both_zero = (a[0:31] == 0) & (b[0:31] == 0)
        sa, sb = a[31], b[31]
        mag_lt, mag_gt = a[0:31] < b[0:31], a[0:31] > b[0:31]
        eq, lt, gt = Signal(), Signal(), Signal()
        m.d.comb += [
            eq.eq(~nan & (both_zero | (a == b))),
            lt.eq(~nan & ~both_zero & Mux(sa != sb, sa, Mux(sa, mag_gt, mag_lt))),
            gt.eq(~nan & ~both_zero & Mux(sa != sb, sb, Mux(sa, mag_lt, mag_gt))),
        ]
        m.d.comb += [
            self.eq.eq(eq),
            self.lt.eq(lt),
            self.le.eq(lt | eq),
            self.min.eq(Mux(nan, CANONICAL_NAN, Mux(lt, a, Mux(eq, a | b, b)))),
            self.max.eq(Mux(nan, CANONICAL_NAN, Mux(gt, a, Mux(eq, a & b, b)))),
        ]
        return m


class Fp32NegAbs(wiring.Component):
    """Combinational ``neg = -a`` and ``abs = |a|`` (DAZ; NaN gives the canonical NaN)."""

    a: In(32)
    neg: Out(32)
    abs: Out(32)

    def elaborate(self, platform):
        m = Module()
        a = _daz(self.a)
        nan = _is_nan(self.a)
        m.d.comb += [
            self.neg.eq(Mux(nan, CANONICAL_NAN, a ^ _SIGN)),
            self.abs.eq(Mux(nan, CANONICAL_NAN, a & ~Const(_SIGN, 32))),
        ]
        return m


# -- conversions ----------------------------------------------------------------------------


class Int32ToFp32(_Pipelined):
    """int32 to binary32, round to nearest even (never subnormal, never overflows).

    Steps: (0) magnitude and normalization; (1) round and pack. ``stages`` (0-1)
    registers the boundary between them.
    """

    _CUTS = (0,)

    a: In(32)
    result: Out(32)

    def elaborate(self, platform):
        m = Module()
        p = self._pipeline(m)
        sign = self.a[31]
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(sign, -self.a, self.a))  # 0x80000000 -> 2^31 unsigned
        norm, lz = _normalize(m, mag, "i2f")
        sign, zero, norm, lz = p.cut(sign=sign, zero=self.a == 0, norm=norm, lz=lz)

        sig = norm[8:32]
        guard = norm[7]
        rest = norm[0:7] != 0
        rounded = Signal(25)
        m.d.comb += rounded.eq(sig + (guard & (rest | sig[0])))
        exp = Signal(8)
        m.d.comb += exp.eq(127 + 31 - lz + rounded[24])
        m.d.comb += self.result.eq(Mux(zero, 0, Cat(rounded[0:23], exp, sign)))
        return m


class Fp32ToInt(_Pipelined):
    """binary32 to a signed ``width``-bit integer: round to nearest even, saturate, NaN 0.

    Subnormal inputs read as zero; infinities saturate. Steps: (0) shift the
    significand to one fraction bit plus a sticky bit; (1) round, negate, saturate.
    ``stages`` (0-1) registers the boundary between them.

    Parameters
    ----------
    width : int
        Result width in bits, 2 to 32 (32 for int32, 8 for int8).
    """

    _CUTS = (0,)

    def __init__(self, width=32, *, stages=0):
        if not isinstance(width, int) or isinstance(width, bool) or not 2 <= width <= 32:
            self._MustUse__silence = True
            raise TypeError(f"Integer width must be an integer from 2 to 32, not {width!r}")
        self._width = width
        super().__init__({"a": In(32), "result": Out(width)}, stages=stages)

    @property
    def width(self) -> int:
        return self._width

    def elaborate(self, platform):
        m = Module()
        p = self._pipeline(m)
        w = self._width
        a = self.a
        sign, e, _ = _fields(a)
        nan = _is_nan(a)
        zero = e == 0
        big = e >= 127 + w - 1  # |a| >= 2^(w-1), infinities included
        # value * 2 = sig24 * 2^(E - 22), E = e - 127; for E <= w - 2 a right shift of
        # frame = sig24 << pad by 22 + pad - E gives floor(2 * |a|): integer, then guard
        pad = max(0, w - 2 - 22)
        frame = Cat(Const(0, pad), a[0:23], Const(1, 1)) if pad else Cat(a[0:23], Const(1, 1))
        limit = (1 << max(len(frame), 1).bit_length()) - 1  # shifts everything out
        amount = Signal(range(limit + 1))
        e_s = Signal(signed(10))
        raw = Signal(signed(10))
        m.d.comb += e_s.eq(e)
        m.d.comb += raw.eq(22 + pad + 127 - e_s)
        m.d.comb += amount.eq(Mux(raw < 0, 0, Mux(raw > limit, limit, raw[: len(amount)])))
        half_units, sticky = _shift_right_sticky(frame, amount)
        sign, nan, zero, big, half_units, sticky = p.cut(
            sign=sign, nan=nan, zero=zero, big=big, half_units=half_units[: w], sticky=sticky)

        int_part = half_units[1:w]
        guard = half_units[0]
        mag = Signal(w)
        m.d.comb += mag.eq(int_part + (guard & (sticky | int_part[0])))
        top = 1 << (w - 1)
        with m.If(nan | zero):
            m.d.comb += self.result.eq(0)
        with m.Elif(~sign & (big | (mag >= top))):
            m.d.comb += self.result.eq(top - 1)
        with m.Elif(sign & (big | (mag > top))):
            m.d.comb += self.result.eq(top)
        with m.Else():
            m.d.comb += self.result.eq(Mux(sign, -mag, mag))
        return m


class Fp32ToInt8Scaled(_Pipelined):
    """``result = int8(round(a * scale))``: :class:`Fp32Mul` (with its flushing), then
    :class:`Fp32ToInt` to 8 bits (nearest even, saturated to -128..127, NaN gives 0).

    ``stages`` (0-3): the first two go inside the multiplier, the third between the
    multiplier and the conversion.
    """

    _CUTS = (0, 1, 2)

    a: In(32)
    scale: In(32)
    result: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = Fp32Mul(stages=min(self._stages, 2))
        m.submodules.cvt = cvt = Fp32ToInt(8)
        m.d.comb += [mul.a.eq(self.a), mul.b.eq(self.scale)]
        domain = m.d.sync if self._stages == 3 else m.d.comb
        domain += cvt.a.eq(mul.result)
        m.d.comb += self.result.eq(cvt.result)
        return m


class Int32ToInt8(wiring.Component):
    """Combinational int32 to int8, saturated to -128..127."""

    a: In(32)
    result: Out(8)

    def elaborate(self, platform):
        m = Module()
        v = self.a.as_signed()
        m.d.comb += self.result.eq(Mux(v > 127, 127, Mux(v < -128, -128, self.a[0:8])))
        return m


class Int8ToInt32(wiring.Component):
    """Combinational int8 to int32, sign-extended."""

    a: In(8)
    result: Out(32)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.result.eq(self.a.as_signed())
        return m

