"""Check one HDL slice against the golden model on Amaranth's simulator, cycle by cycle.

The golden chip runs the whole program and records what arrives at the slice's
position (``Chip.run(arrivals=(p,))``, in skewed time). The harness then drives the
HDL component alone, as the stream fabric and the ICU would:

* in real cycle ``t``, superlane ``k`` of ``rd.e`` / ``rd.w`` (and their valid bits)
  carries row ``t - k`` of the recorded arrivals (invalid outside the recorded range);
* ``dispatch[i]`` presents, in the cycle the golden ICU dispatches it, each
  instruction of the ``i``-th queue at that position (queue order of ``cfg.queues``),
  with the word as issued (a repeat's copies with their stepped address);

and after the inputs of a cycle settle it samples ``wr.*`` (and, through an optional
callback, slice-specific trace ports such as the MEM's SRAM writes). Each
write-enabled ``(superlane, stream, direction)`` becomes an
``Event(t, "sr", p, dir, stream, superlane, bytes)``; the set of events of each cycle
must equal the golden events of that cycle that belong to the slice (``sr`` at
position ``p``; ``sram`` of its MEM slice; ``wload`` / ``install`` / ``acc`` of its
MXM planes). The first difference raises :class:`SliceMismatch`, whose message
names the cycle, the kind, the superlane, the stream or address, the expected and
actual bytes (and the lanes that differ) and the instructions in flight.

``error.valid`` must stay low for a legal program. For an illegal one, pass
``expect_error=ExpectedError(code, cycle)``: the golden model must raise (run
without the static checker) with the rule of that code, events must match up to the
golden error cycle, and the first cycle with ``error.valid`` high must be ``cycle``
with that code. (The golden model stops at its error, so nothing arrives after that
skewed cycle: keep the offending instruction the last one that reads streams.)

Dispatches come from the ICU timeline (:func:`lpu.golden.schedule.timeline`), which is
what the golden model dispatches; for a legal program the harness also checks them
against the golden ``dispatch`` events.

Usage::

    dut = MemSlice(cfg, "w", init=...)
    check_slice(cfg, builder, "mem_w0", dut, mem={"mem_w0": {0: words}},
                preload=..., extra_events=sram_trace_events(cfg, dut.sram, unit=0))

Speed: one async testbench; inputs and outputs are set and read as whole arrays
(one integer each), never signal by signal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from lpu.config import ChipConfig
from lpu.config import load as load_config
from lpu.golden.chip import Chip, ChipError
from lpu.golden.schedule import Dispatch, max_delay, timeline
from lpu.hdl.interface import ErrorCode
from lpu.isa import encode
from lpu.program import Program

from .trace import sram_events

__all__ = ["ExpectedError", "SliceMismatch", "SliceResult", "GoldenSlice", "golden_slice",
           "check_slice", "sram_trace_events", "RULE_CODES"]

#: golden rule name -> the HDL error code that reports it
RULE_CODES = {
    "empty-read": ErrorCode.EMPTY_READ,
    "two-writers": ErrorCode.TWO_WRITERS,
    "bank": ErrorCode.BANK,
    "range": ErrorCode.RANGE,
    "link": ErrorCode.LINK,
}

#: event kinds that belong to a slice kind, besides its stream writes
_SLICE_KINDS = {"mem": ("sram",), "mxm": ("wload", "install", "acc"), "vxm": (), "sxm": ()}


class SliceMismatch(AssertionError):
    """The HDL slice differs from the golden model; the message is the full report."""

    def __init__(self, message, *, cycle=None, kind=None, superlane=None):
        self.cycle, self.kind, self.superlane = cycle, kind, superlane
        super().__init__(message)


@dataclass(frozen=True)
class ExpectedError:
    """An illegal program's expected first HDL error: its code and real cycle (and
    optionally the superlane that reports it)."""

    code: ErrorCode
    cycle: int
    superlane: int | None = None


@dataclass
class SliceResult:
    cycles: int  # real cycles simulated
    events: int  # golden events compared (all matched)
    error: tuple | None = None  # (cycle, code, superlane) of the first HDL error, if any


@dataclass
class GoldenSlice:
    """What the golden model says about one position (see :func:`golden_slice`)."""

    cfg: ChipConfig
    position: int
    queues: list  # the config's Queue objects at that position, in dispatch-port order
    dispatches: list[Dispatch]  # of those queues, by cycle
    arrivals: tuple[np.ndarray, np.ndarray]  # data [T, 2, streams, VL], valid [T, 2, streams]
    events: dict[int, dict[tuple, bytes]]  # real cycle -> (kind, unit, dir, index, k) -> data
    cycles: int  # real cycles until the last golden event, inclusive
    image: np.ndarray | None  # initial SRAM of the MEM slice there [mem_words, VL]
    error: ChipError | None = None
    units: dict[str, tuple[int, ...]] = field(default_factory=dict)  # kind -> unit numbers


def _program(cfg, program) -> Program:
    if hasattr(program, "program"):
        program = program.program()
    if not isinstance(program, Program):
        raise TypeError(f"Expected a Program or a ProgramBuilder, not {program!r}")
    return program


def _slice_units(cfg: ChipConfig, p: int) -> dict[str, tuple[int, ...]]:
    """Unit numbers of the events that belong to the slice at p (trace.py numbering)."""
    mems = [q for q in cfg.queues if q.kind == "mem"]
    mxms = [q for q in cfg.queues if q.kind == "mxm"]
    units = {"sram": tuple(i for i, q in enumerate(mems) if q.position == p)}
    planes = tuple(i for i, q in enumerate(mxms) if q.position == p)
    for kind in ("wload", "install", "acc"):
        units[kind] = planes
    return units


def golden_slice(cfg: ChipConfig | str, program, position: str,
                 mem: Mapping | None = None, *, expect_error: bool = False) -> GoldenSlice:
    """Run the golden chip and keep what concerns the slice at `position`.

    mem: initial SRAM contents, ``{slice name: {address: words [n, VL]}}`` (or
    ``{slice name: words}`` for words at address 0).
    expect_error: run without the static checker and catch the :class:`ChipError`;
    arrivals and events are then those before it.
    """
    cfg = load_config(cfg)
    prog = _program(cfg, program)
    pos = cfg.position(position)
    p = pos.index
    chip = Chip(cfg)
    for name, content in (mem or {}).items():
        if not isinstance(content, Mapping):
            content = {0: content}
        for addr, words in content.items():
            chip.write_mem(name, addr, np.asarray(words))
    image = None
    if pos.kind == "mem":
        image = chip.read_mem(pos.name, 0, cfg.mem_words)
    queues = [q for q in cfg.queues if q.position == p]
    qidx = {q.index: i for i, q in enumerate(queues)}
    tl = timeline(cfg, prog)
    dispatches = [d for d in tl.dispatches if d.queue in qidx]
    error = None
    if not expect_error:
        chip.load(prog)
        res = chip.run(trace=True, arrivals=(p,))
        arrivals = res.arrivals[p]
        events, cycles = res.events, res.cycles
        want = [(e.cycle, e.index, e.data) for e in events
                if e.kind == "dispatch" and e.unit in qidx]
        have = [(d.t, d.index, encode(d.instr).to_bytes(4, "little")) for d in dispatches]
        if sorted(want) != sorted(have):  # pragma: no cover - the two share schedule.py
            raise AssertionError("golden dispatch events differ from the ICU timeline")
    else:
        chip.load(prog, check_first=False)
        rows_d, rows_v = [], []
        NS, VL = cfg.streams, cfg.vl
        try:
            while not chip.done:
                dat = np.zeros((2, NS, VL), dtype=np.uint8)
                val = np.zeros((2, NS), dtype=bool)
                for dr, src in ((0, p - 1), (1, p + 1)):
                    if not 0 <= src < len(cfg.positions):
                        continue
                    for s in range(NS):
                        v = chip.peek(dr, s, src) if chip.cycle else None
                        if v is not None:
                            dat[dr, s], val[dr, s] = v, True
                rows_d.append(dat)
                rows_v.append(val)
                chip.step(trace=True)
        except ChipError as e:
            error = e
        if error is None:
            raise AssertionError("expected the golden model to raise an error, but the "
                                 "program ran to completion")
        arrivals = (np.stack(rows_d), np.stack(rows_v))
        events = [e for e in chip.take_events() if e.cycle < error.cycle]
        cycles = error.cycle
    units = _slice_units(cfg, p)
    kinds = _SLICE_KINDS[pos.kind]
    by_cycle: dict[int, dict[tuple, bytes]] = {}
    for e in events:
        if e.kind == "sr":
            if e.unit != p:
                continue
        elif e.kind not in kinds or e.unit not in units[e.kind]:
            continue
        by_cycle.setdefault(e.cycle, {})[(e.kind, e.unit, e.dir, e.index, e.superlane)] = e.data
    return GoldenSlice(cfg, p, queues, dispatches, arrivals, by_cycle, cycles, image, error,
                       units)


def sram_trace_events(cfg: ChipConfig, port, unit: int) -> Callable:
    """A callback for :func:`check_slice` that turns a MEM slice's SRAM-write trace port
    (``[superlane][i] -> {we, addr, data}``, see :mod:`lpu.hdl.mem`) into ``sram``
    events of MEM slice number `unit` (:func:`lpu.sim.trace.sram_events`)."""
    return lambda ctx, t: sram_events(ctx, port, unit, t, cfg.lanes)


def _lane_diff(cfg, key, want: bytes | None, have: bytes | None) -> str:
    if want is None or have is None or len(want) != len(have) or key[0] == "acc":
        return ""
    lanes = [key[4] * cfg.lanes + i for i in range(len(want)) if want[i] != have[i]]
    return f" (vector lanes {lanes} differ)" if lanes else ""


def _describe_key(cfg, key) -> str:
    kind, unit, dr, index, k = key
    mems = [q.name for q in cfg.queues if q.kind == "mem"]
    planes = [q.name for q in cfg.queues if q.kind == "mxm"]
    if kind == "sr":
        where = f"{cfg.positions[unit].name} stream {'ew'[dr]}{index}"
    elif kind == "sram":
        where = f"{mems[unit]} address {index}"
    elif kind == "wload":
        where = f"{planes[unit]} row {index}"
    elif kind == "acc":
        where = f"{planes[unit]} slot {index}"
    else:
        where = planes[unit]
    return f"{kind} {where} superlane {k}"


def _in_flight(g: GoldenSlice, t: int) -> str:
    cfg = g.cfg
    window = max_delay(cfg) + cfg.superlanes + 2
    lines = [f"  {cfg.queues[d.queue].name}[{d.index}] '{d.instr.text()}' dispatched at "
             f"cycle {d.t}" for d in g.dispatches if t - window <= d.t <= t]
    return "\n".join(lines) if lines else "  (none)"


def _mismatch(g: GoldenSlice, t: int, want: dict, have: dict) -> SliceMismatch:
    cfg = g.cfg
    keys = sorted(set(want) | set(have), key=lambda k: (k[0] != "sr", k))
    bad = [k for k in keys if want.get(k) != have.get(k)]
    first = bad[0]
    lines = [f"slice {cfg.positions[g.position].name} differs from the golden model at "
             f"cycle {t}:"]
    for k in bad[:8]:
        w, h = want.get(k), have.get(k)
        lines.append(f"  {_describe_key(cfg, k)}: expected "
                     f"{'nothing' if w is None else w.hex()}, got "
                     f"{'nothing' if h is None else h.hex()}{_lane_diff(cfg, k, w, h)}")
    if len(bad) > 8:
        lines.append(f"  ... and {len(bad) - 8} more")
    lines.append("instructions in flight:")
    lines.append(_in_flight(g, t))
    return SliceMismatch("\n".join(lines), cycle=t, kind=first[0], superlane=first[4])


def _row_parts(cfg: ChipConfig, data: np.ndarray, valid: np.ndarray, dr: int):
    """Per skewed row and superlane, the bits of rd.<dir> and rd.<dir>_valid that
    superlane contributes (already shifted to its place)."""
    S, L, NS = cfg.superlanes, cfg.lanes, cfg.streams
    T = data.shape[0]
    d = data[:, dr].reshape(T, NS, S, L).transpose(0, 2, 1, 3)  # [T, k, s, lane]
    v = valid[:, dr]
    dparts, vparts = [], []
    for r in range(T):
        dparts.append([int.from_bytes(d[r, k].tobytes(), "little") << (k * NS * L * 8)
                       for k in range(S)])
        vbits = sum(1 << s for s in range(NS) if v[r, s])
        vparts.append([vbits << (k * NS) for k in range(S)])
    return dparts, vparts


def check_slice(cfg: ChipConfig | str, program, position: str, dut, *,
                mem: Mapping | None = None, preload: Callable | None = None,
                extra_events: Callable | None = None,
                expect_error: ExpectedError | None = None,
                cycles: int | None = None, vcd: str | None = None) -> SliceResult:
    """Run `dut` (the slice at `position`) against the golden model; see the module doc.

    Parameters
    ----------
    program : Program or ProgramBuilder
    dut : a component with the members of :func:`lpu.hdl.interface.SlicePorts`.
    mem : initial SRAM contents of the golden chip (see :func:`golden_slice`).
    preload : how the HDL slice gets the same SRAM contents (MEM positions only):
        ``preload(dut, image)`` before the simulator is built (e.g. memory init), or an
        ``async preload(ctx, dut, image)`` run at the start of the testbench (e.g.
        through the host port; the cycles it takes do not count). ``image`` is uint8
        ``[mem_words, VL]``.
    extra_events : ``extra_events(ctx, t) -> iterable of Event``, sampled each cycle
        after the inputs settle: the slice's own trace (SRAM writes, MXM loads, ...).
    expect_error : the first HDL error of an illegal program.
    cycles : real cycles to simulate (default: until every golden event and every
        possible result of the last dispatch has passed).
    vcd : write a waveform of the run to this file.

    Raises
    ------
    SliceMismatch
        At the first cycle whose events differ, or on an unexpected (or missing) error.
    """
    cfg = load_config(cfg)
    g = golden_slice(cfg, program, position, mem, expect_error=expect_error is not None)
    S, NS = cfg.superlanes, cfg.streams
    if expect_error is not None:
        want_rule = RULE_CODES.get(g.error.rule)
        if want_rule != expect_error.code:
            raise SliceMismatch(f"the golden model raised rule {g.error.rule!r} "
                                f"({want_rule}), not {expect_error.code}: {g.error}")
        if expect_error.cycle < g.error.cycle:
            raise SliceMismatch(f"expected HDL error cycle {expect_error.cycle} is before the "
                                f"golden error cycle {g.error.cycle}: {g.error}")
    if preload is not None and g.image is not None and not inspect.iscoroutinefunction(preload):
        preload(dut, g.image)

    last_d = max((d.t for d in g.dispatches), default=0)
    if cycles is None:
        if expect_error is not None:
            cycles = expect_error.cycle + 1
        else:
            cycles = max(g.cycles, last_d + max_delay(cfg) + S + 1) + 1
    data, valid = g.arrivals
    T = data.shape[0]
    e_parts, ev_parts = _row_parts(cfg, data, valid, 0)
    w_parts, wv_parts = _row_parts(cfg, data, valid, 1)
    by_t: dict[int, list] = {}
    for d in g.dispatches:
        port = [q.index for q in g.queues].index(d.queue)
        by_t.setdefault(d.t, []).append((port, encode(d.instr)))
    n_ports = len(g.queues)
    lane_bytes = cfg.lanes
    seg = NS * lane_bytes  # bytes per superlane in a stream-data array
    result = SliceResult(cycles, 0)
    failure: list[BaseException] = []

    rd_e, rd_ev = dut.rd.e.as_value(), dut.rd.e_valid.as_value()
    rd_w, rd_wv = dut.rd.w.as_value(), dut.rd.w_valid.as_value()
    wr_e, wr_ew = dut.wr.e.as_value(), dut.wr.e_we.as_value()
    wr_w, wr_ww = dut.wr.w.as_value(), dut.wr.w_we.as_value()
    d_valid = [dut.dispatch[i].valid for i in range(n_ports)]
    d_word = [dut.dispatch[i].word.as_value() for i in range(n_ports)]
    err = dut.error
    p = g.position

    def sample_sr(ctx, out):
        for dr, (dv, wv) in enumerate(((wr_e, wr_ew), (wr_w, wr_ww))):
            we = ctx.get(wv)
            if not we:
                continue
            raw = ctx.get(dv).to_bytes(S * seg, "little")
            for k in range(S):
                for s in range(NS):
                    if (we >> (k * NS + s)) & 1:
                        off = k * seg + s * lane_bytes
                        out[("sr", p, dr, s, k)] = raw[off:off + lane_bytes]

    async def testbench(ctx):
        if preload is not None and g.image is not None and inspect.iscoroutinefunction(preload):
            await preload(ctx, dut, g.image)
        first_error = None
        for t in range(cycles):
            e = ev = w = wv = 0
            for k in range(S):
                r = t - k
                if 0 <= r < T:
                    e |= e_parts[r][k]
                    ev |= ev_parts[r][k]
                    w |= w_parts[r][k]
                    wv |= wv_parts[r][k]
            ctx.set(rd_e, e)
            ctx.set(rd_ev, ev)
            ctx.set(rd_w, w)
            ctx.set(rd_wv, wv)
            now = dict(by_t.get(t, ()))
            for i in range(n_ports):
                if i in now:
                    ctx.set(d_valid[i], 1)
                    ctx.set(d_word[i], now[i])
                else:
                    ctx.set(d_valid[i], 0)
            have: dict[tuple, bytes] = {}
            sample_sr(ctx, have)
            if extra_events is not None:
                for ev_ in extra_events(ctx, t):
                    have[(ev_.kind, ev_.unit, ev_.dir, ev_.index, ev_.superlane)] = ev_.data
            if ctx.get(err.valid) and first_error is None:
                first_error = (t, ErrorCode(ctx.get(err.code)), ctx.get(err.superlane))
            compare = expect_error is None or t < g.error.cycle
            if compare:
                want = g.events.get(t, {})
                if want != have:
                    failure.append(_mismatch(g, t, want, have))
                    return
                result.events += len(want)
            if first_error is not None:
                ft, code, k = first_error
                if expect_error is None:
                    failure.append(SliceMismatch(
                        f"slice {cfg.positions[p].name} raised error {code.name} on superlane "
                        f"{k} at cycle {ft} in a legal program\ninstructions in flight:\n"
                        + _in_flight(g, ft), cycle=ft, kind="error", superlane=k))
                    return
                break
            await ctx.tick()
        result.error = first_error
        if expect_error is not None:
            want = (expect_error.cycle, expect_error.code)
            got = None if first_error is None else first_error[:2]
            ok = got == want and (expect_error.superlane is None
                                  or first_error[2] == expect_error.superlane)
            if not ok:
                failure.append(SliceMismatch(
                    f"slice {cfg.positions[p].name}: expected error {expect_error.code.name} "
                    f"at cycle {expect_error.cycle}"
                    + ("" if expect_error.superlane is None
                       else f" on superlane {expect_error.superlane}")
                    + (", but no error was raised" if first_error is None else
                       f", got {first_error[1].name} at cycle {first_error[0]} on superlane "
                       f"{first_error[2]}")
                    + f"\ngolden: {g.error}\ninstructions in flight:\n"
                    + _in_flight(g, expect_error.cycle), cycle=expect_error.cycle,
                    kind="error"))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    if failure:
        raise failure[0]
    return result
