"""The board: the chip behind its UART bridge (:class:`BoardCore`), and the ULX3S top.

:class:`BoardCore` is what goes on the FPGA and what the simulated board
(:mod:`lpu.sim.board`) runs: the chip (:class:`lpu.hdl.chip.Chip`, no trace port), the
bridge (:class:`lpu.hdl.bridge.Bridge`) on its host bus, and eight status outputs for
LEDs, all in the ``sync`` domain.

========  ===============================================================
``leds``  meaning
========  ===============================================================
0         heartbeat: toggles every ``heartbeat`` cycles (about 1 Hz on the board)
1         the chip is running (STATUS.RUNNING, as the bridge last read it)
2         the last run is done (STATUS.DONE)
3         the chip raised an error (STATUS.ERROR, sticky until the next START)
4         the bridge is receiving, executing or answering a request
5         the bridge's last acknowledgement carried an error status
6         the serial line's receive input is low (data arriving)
7         (board top) the PLL is locked
========  ===============================================================

:class:`Ulx3sTop` puts a :class:`BoardCore` on the ULX3S (amaranth-boards'
``ULX3S_85F_Platform`` and its pin names: the 25 MHz oscillator ``clk25``, the FTDI
USB serial port ``uart`` (the board's receive pin ``rx``, transmit ``tx``), ``led``
0-7). The ``sync`` clock is the oscillator itself when the config's ``clock_mhz`` is 25,
otherwise an ECP5 PLL (``EHXPLLL``, dividers from :func:`pll_dividers`); the domain is
held in reset until the PLL locks. The UART's clocks per bit are the clock frequency
divided by the baud rate, which must divide it exactly (to 0.5 %) with at least 4 cycles
per bit.
"""


from amaranth.hdl import Cat, ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from lpu import config as cfgmod
from lpu.board import BOARD_TIMEOUT_S, DEFAULT_BAUD
from lpu.config import ChipConfig
from lpu.framing import DEFAULT_MAX_WORDS
from lpu.hostmap import RegisterMap

from .bridge import Bridge
from .chip import Chip

__all__ = ["BoardCore", "Ulx3sTop", "pll_dividers", "uart_divisor", "ulx3s_platform",
           "OSCILLATOR_HZ"]

#: The ULX3S's oscillator.
OSCILLATOR_HZ = 25_000_000


class BoardCore(wiring.Component):
    """The chip, its bridge and the status LEDs (see the module docstring).

    Parameters
    ----------
    cfg : ChipConfig or str
    divisor : int
        UART clock cycles per bit.
    timeout : int
        The bridge's quiet time in cycles (:class:`~lpu.hdl.bridge.Bridge`).
    max_words : int
        The bridge's largest request.
    heartbeat : int
        Cycles per half period of LED 0.

    Ports
    -----
    rx : In(1), tx : Out(1)
        The serial line.
    leds : Out(8)
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    leds: Out(8)

    def __init__(self, cfg: ChipConfig | str, *, divisor: int, timeout: int,
                 max_words: int = DEFAULT_MAX_WORDS, heartbeat: int = 1 << 24):
        self._MustUse__silence = True  # until the arguments are checked
        cfg = cfgmod.load(cfg)
        if not isinstance(heartbeat, int) or heartbeat < 1:
            raise ValueError(f"Heartbeat must be a positive number of cycles, not {heartbeat!r}")
        self.cfg = cfg
        self.regs = RegisterMap(cfg)
        self.chip = Chip(cfg, trace=False)
        self.bridge = Bridge(self.regs, divisor=divisor, timeout=timeout, max_words=max_words)
        self._heartbeat = heartbeat
        self._MustUse__silence = False
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.chip = chip = self.chip
        m.submodules.bridge = bridge = self.bridge
        wiring.connect(m, bridge.bus, chip.bus)
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
        beat = Signal(range(self._heartbeat))
        led0 = Signal()
        with m.If(beat == self._heartbeat - 1):
            m.d.sync += [beat.eq(0), led0.eq(~led0)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.leds.eq(Cat(led0, bridge.status, bridge.busy, bridge.failed, ~self.rx))
        return m


def pll_dividers(fin_hz: float, fout_hz: float) -> dict:
    """The ECP5 PLL's dividers for one output on CLKOP with feedback from CLKOP:
    ``fout = fin / CLKI_DIV * CLKFB_DIV``, the VCO at ``fout * CLKOP_DIV`` within
    400-800 MHz, the phase detector at ``fin / CLKI_DIV`` of at least 3.125 MHz. Returns
    ``{"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE", "fout_hz"}`` for the
    closest output within 0.1 % (among equals, the VCO nearest the middle of its range, 600 MHz, as
    nextpnr's ``ecppll`` chooses)."""
    best = None
    for clki in range(1, 129):
        fpfd = fin_hz / clki
        if fpfd < 3.125e6:
            break
        if fpfd > 400e6:
            continue
        for clkfb in range(1, 81):
            fout = fpfd * clkfb
            for clkop in range(1, 129):
                fvco = fout * clkop
                if not 400e6 <= fvco <= 800e6:
                    continue
                key = (abs(fout - fout_hz), abs(fvco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki, clkfb, clkop, fout)
    if best is None or abs(best[4] - fout_hz) > 1e-3 * fout_hz:
        closest = "" if best is None else f" (the closest is {best[4] / 1e6:g} MHz)"
        raise ValueError(f"no ECP5 PLL setting makes {fout_hz / 1e6:g} MHz from "
                         f"{fin_hz / 1e6:g} MHz{closest}")
    _, clki, clkfb, clkop, fout = best
    return {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
            "CLKOP_CPHASE": (clkop - 1) // 2, "fout_hz": fout}


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per UART bit for `baud` at `clock_hz` (exact to 0.5 %, at least 4)."""
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"Baud rate must be a positive integer, not {baud!r}")
    divisor = round(clock_hz / baud)
    if divisor < 4 or abs(clock_hz / divisor - baud) > 0.005 * baud:
        raise ValueError(f"{baud} baud is not {clock_hz / 1e6:g} MHz divided by a whole "
                         "number of at least 4 cycles per bit (within 0.5 %)")
    return divisor


def ulx3s_platform():
    """amaranth-boards' ULX3S 85F platform, without the debug Verilog that its build plan
    would otherwise write (slow for the whole chip, and not needed for synthesis)."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform  # optional: the fpga extra

    class Ulx3sPlatform(ULX3S_85F_Platform):
        @property
        def file_templates(self):
            return {name: text for name, text in super().file_templates.items()
                    if not name.endswith(".debug.v")}

    return Ulx3sPlatform()


class Ulx3sTop(Elaboratable):
    """The ULX3S top (see the module docstring): elaborate with :func:`ulx3s_platform`.

    Parameters
    ----------
    cfg : ChipConfig or str
    baud : int
        The serial line's baud rate.
    timeout_s : float
        The bridge's quiet time in seconds.
    """

    def __init__(self, cfg: ChipConfig | str, *, baud: int = DEFAULT_BAUD,
                 timeout_s: float = BOARD_TIMEOUT_S, max_words: int = DEFAULT_MAX_WORDS):
        self._MustUse__silence = True  # until the arguments are checked
        cfg = cfgmod.load(cfg)
        self.cfg = cfg
        want = cfg.clock_mhz * 1e6
        if abs(want - OSCILLATOR_HZ) < 1:
            self.pll, self.clock_hz = None, float(OSCILLATOR_HZ)
        else:
            try:
                self.pll = pll_dividers(OSCILLATOR_HZ, want)
            except ValueError as e:
                raise ValueError(f"config {cfg.name}, clock_mhz {cfg.clock_mhz:g}: {e}") from None
            self.clock_hz = self.pll["fout_hz"]
        self.baud = baud
        self.divisor = uart_divisor(self.clock_hz, baud)
        self.core = BoardCore(cfg, divisor=self.divisor,
                              timeout=max(20 * self.divisor, round(timeout_s * self.clock_hz)),
                              max_words=max_words, heartbeat=round(self.clock_hz / 2))
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.domains.sync = ClockDomain("sync")
        locked = Signal()
        if self.pll is None:
            m.d.comb += [ClockSignal("sync").eq(clk25.i), locked.eq(1)]
        else:
            p = self.pll
            clk = Signal()
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{OSCILLATOR_HZ / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{self.clock_hz / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
                p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                i_CLKI=clk25.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
                i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk, o_LOCK=locked,
            )
            m.d.comb += ClockSignal("sync").eq(clk)
            platform.add_clock_constraint(clk, self.clock_hz)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        m.submodules.core = core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        for i in range(8):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(locked if i == 7 else core.leds[i])
        return m
