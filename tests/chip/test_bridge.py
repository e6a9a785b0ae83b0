"""The UART host bridge, its driver and the board top.

* The framing on the simulator (:class:`lpu.hdl.bridge.Bridge` alone, its bus on a
  model of registers, its serial line simulated bit by bit by :class:`lpu.sim.board.
  SimLink`): good PING / WRITE / READ frames, a bad checksum (nothing written), an
  unknown command, addresses out of range, bad lengths, a truncated frame (TIMEOUT, then
  idle again), a UART framing error and an overrun. Expected acknowledgements are built
  here from the framing as docs/fpga.md states it, with a CRC-8 written independently
  of :func:`lpu.framing.crc8` (checked against the catalogue's check value).
* The driver (:class:`lpu.board.Board`) against the same line: PING, multi-request
  writes and reads, errors as :class:`~lpu.board.BridgeError`, a dead link as
  :class:`~lpu.board.LinkError`.
* One example program through the whole simulated board (the ``fpga`` chip behind its
  bridge, ``lpu board run --sim``): the same SRAM words and run's last cycle as the
  golden model, and the sum numpy computes.
* The ULX3S top elaborates and converts to RTLIL with its PLL and the board's pins; the
  PLL dividers and UART divisors.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from lpu import cli, config
from lpu.asm import assemble
from lpu.board import Board, BridgeError, LinkError
from lpu.framing import DEFAULT_MAX_WORDS, Status, crc8
from lpu.golden.chip import Chip as GoldenChip
from lpu.hdl.board import pll_dividers, uart_divisor
from lpu.hdl.bridge import Bridge
from lpu.hostmap import RegisterMap
from lpu.sim.board import SimLink

pytestmark = pytest.mark.chip

FPGA = config.load("fpga")
WBUF_WORDS = RegisterMap(FPGA).chunks * FPGA.superlanes  # the word buffer's registers
EX = Path(__file__).resolve().parents[2] / "examples"
DIV = 4
TIMEOUT = 20 * DIV * 2  # four byte times
MAX = 8
CLOCK = 50e6
PING, WRITE, READ = 0x01, 0x02, 0x03
STATUS_VALUE = 0b110  # what the register model's STATUS reads


def ref_crc(data: bytes) -> int:
    """CRC-8, poly 0x07, init 0: long division of the message followed by 8 zero bits."""
    reg = 0
    bits = [(b >> (7 - i)) & 1 for b in data for i in range(8)] + [0] * 8
    for bit in bits:
        top = reg & 0x80
        reg = ((reg << 1) | bit) & 0xFF
        if top:
            reg ^= 0x07
    return reg


def ref_request(cmd, addr=0, count=0, words=()) -> bytes:
    body = bytes([cmd]) + addr.to_bytes(4, "little") + count.to_bytes(2, "little")
    body += b"".join(w.to_bytes(4, "little") for w in words)
    return body + bytes([ref_crc(body)])


def ref_ack(cmd, status, words=()) -> bytes:
    body = bytes([cmd, status]) + b"".join(w.to_bytes(4, "little") for w in words)
    return body + bytes([ref_crc(body)])


def test_crc8_is_the_catalogue_crc():
    assert ref_crc(b"123456789") == 0xF4 == crc8(b"123456789")
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 40):
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        assert crc8(data) == ref_crc(data)


class RegisterModel:
    """The chip side of the bus: a dict of registers, STATUS reading STATUS_VALUE; every
    write recorded with its cycle."""

    def __init__(self, bus, regs):
        self.bus, self.regs = bus, regs
        self.values, self.writes = {}, []

    async def testbench(self, ctx):
        bus, cycle = self.bus, 0
        async for _, _, addr, w_en, w_data, r_en in ctx.tick().sample(
                bus.addr, bus.w_en, bus.w_data, bus.r_en):
            if w_en:
                self.values[addr] = w_data
                self.writes.append((cycle, addr, w_data))
            value = STATUS_VALUE if addr == self.regs.STATUS else self.values.get(addr, 0)
            ctx.set(bus.r_data, value if r_en else 0)
            cycle += 1


@pytest.fixture(scope="module")
def line():
    regs = RegisterMap(FPGA)
    bridge = Bridge(regs, divisor=DIV, timeout=TIMEOUT, max_words=MAX)
    model = RegisterModel(bridge.bus, regs)
    link = SimLink(bridge, divisor=DIV, clock_hz=CLOCK, latency=2 * TIMEOUT / CLOCK,
                   testbenches=[model.testbench])
    return link, model, regs, bridge


def exchange(link, frame, n_ack, *, within=None):
    """Send `frame`, return the acknowledgement bytes (at most `n_ack`) and how many
    cycles after the frame's last bit they were complete."""
    link.write(frame)
    sent = link.cycle + 10 * DIV * len(frame)
    got = link.read(n_ack, (10 * DIV * (len(frame) + n_ack) + 3 * TIMEOUT) / CLOCK)
    return got, link.cycle - sent


def test_ping(line):
    link, _, _, bridge = line
    got, _ = exchange(link, ref_request(PING), 19)
    assert got == ref_ack(PING, 0, [0x4C504201, MAX, DIV, TIMEOUT])
    assert bridge.info_words == [0x4C504201, MAX, DIV, TIMEOUT]


def test_write_then_read(line):
    link, model, regs, _ = line
    base = regs.IMEM + 5
    words = [0x01020304, 0xA5A5A5A5, 0xFFFFFFFF, 0]
    model.writes.clear()
    got, _ = exchange(link, ref_request(WRITE, base, 4, words), 3)
    assert got == ref_ack(WRITE, 0)
    # written in order, on consecutive bus cycles
    assert [(a, v) for _, a, v in model.writes] == [(base + i, w) for i, w in enumerate(words)]
    cycles = [c for c, _, _ in model.writes]
    assert cycles == list(range(cycles[0], cycles[0] + 4))
    got, _ = exchange(link, ref_request(READ, base + 1, 3), 3 + 12)
    assert got == ref_ack(READ, 0, words[1:])
    got, _ = exchange(link, ref_request(READ, regs.STATUS, 1), 7)
    assert got == ref_ack(READ, 0, [STATUS_VALUE])


def test_bad_checksum_writes_nothing(line):
    link, model, regs, _ = line
    frame = bytearray(ref_request(WRITE, regs.IMEM, 2, [7, 8]))
    frame[-1] ^= 0x10
    model.writes.clear()
    got, after = exchange(link, bytes(frame), 3)
    assert got == ref_ack(WRITE, Status.BAD_CHECKSUM)
    assert model.writes == []
    assert after >= TIMEOUT + 30 * DIV  # answered once the line was quiet for the timeout
    frame = bytearray(ref_request(WRITE, regs.IMEM, 2, [7, 8]))
    frame[9] ^= 0x01  # a data bit flipped on the line
    got, _ = exchange(link, bytes(frame), 3)
    assert got == ref_ack(WRITE, Status.BAD_CHECKSUM) and model.writes == []


def test_unknown_command(line):
    link, _, _, _ = line
    got, _ = exchange(link, bytes([0x7E, 1, 2, 3, 4, 5, 6, 7, 8]), 3 + 3)
    assert got == ref_ack(0x7E, Status.UNKNOWN_COMMAND)  # one ack for the whole frame


@pytest.mark.parametrize("cmd, addr, count", [
    (READ, 0x300, 1),                    # between the regions
    (READ, 0x012, 1),                    # just past the control registers
    (READ, 0x100 + 8, 2),                # runs past the last QLEN (9 queues)
    (WRITE, 0x200 + WBUF_WORDS - 1, 2),  # runs past the word buffer
    (READ, 0x8000_0000 - 1, 2),          # starts before the instruction memories
    (WRITE, 0x8000_0000 + len(FPGA.queues) * FPGA.imem_words, 1),  # past the last IMEM
    (READ, 0xFFFF_FFFF, 2),              # wraps around
])
def test_address_out_of_range(line, cmd, addr, count):
    link, model, regs, _ = line
    assert not any(a <= addr and addr + count - 1 <= b for a, b, _ in regs.regions())
    model.writes.clear()
    words = [1] * count if cmd == WRITE else []
    got, _ = exchange(link, ref_request(cmd, addr, count, words), 3)
    assert got == ref_ack(cmd, Status.BAD_ADDRESS)
    assert model.writes == []


@pytest.mark.parametrize("count", [0, MAX + 1, 0xFFFF])
def test_bad_length(line, count):
    link, _, regs, _ = line
    got, _ = exchange(link, ref_request(READ, regs.IMEM, count), 3)
    assert got == ref_ack(READ, Status.BAD_LENGTH)


def test_truncated_frame_times_out_and_the_bridge_is_idle_again(line):
    link, model, regs, _ = line
    model.writes.clear()
    for cut in (1, 5, 7 + 6):  # in the header, at its end, in the data
        frame = ref_request(WRITE, regs.IMEM, 2, [5, 6])[:cut]
        got, after = exchange(link, frame, 3)
        assert got == ref_ack(WRITE, Status.TIMEOUT), cut
        # answered a quiet timeout after the last byte (the ack itself takes 3 bytes)
        assert TIMEOUT + 30 * DIV <= after <= TIMEOUT + 40 * DIV, after
        got, _ = exchange(link, ref_request(PING), 19)
        assert got[:2] == bytes([PING, 0])
    assert model.writes == []


def test_framing_error(line):
    link, _, _, _ = line
    link.send_levels([0] * 12)  # a break: the stop bit reads 0
    got = link.read(3, 4 * TIMEOUT / CLOCK)
    assert got == ref_ack(0, Status.LINE_ERROR)
    got, _ = exchange(link, ref_request(PING), 19)
    assert got[:2] == bytes([PING, 0])


def test_overrun(line):
    link, _, regs, _ = line
    # a byte sent right after a READ arrives while the bridge answers: the READ is
    # answered, then the stray byte is reported
    frame = ref_request(READ, regs.IMEM + 5, 4)
    got, _ = exchange(link, frame + b"\x55", 19 + 3)
    assert got[:19] == ref_ack(READ, 0, [0xA5A5A5A5 if i == 1 else v for i, v in
                                         enumerate([0x01020304, 0xA5A5A5A5, 0xFFFFFFFF, 0])])
    assert got[19:] == ref_ack(0, Status.OVERRUN)


def test_driver_on_the_bridge(line):
    link, model, regs, _ = line
    board = Board(link, FPGA)
    info = board.ping()
    assert (info.max_words, info.divisor, info.timeout_cycles) == (MAX, DIV, TIMEOUT)
    assert info.clock_hz == CLOCK
    words = list(range(100, 100 + 3 * MAX + 1))  # four requests
    board.write(regs.IMEM, words)
    assert board.read(regs.IMEM, len(words)) == words
    with pytest.raises(BridgeError) as e:
        board.read(0x300)
    assert e.value.status == Status.BAD_ADDRESS and "BAD_ADDRESS" in str(e.value)
    assert board.status() == STATUS_VALUE


class DeadLink:
    """A transport whose far end never answers."""

    baud, latency, name = 1e6, 0.01, "dead link"

    def __init__(self):
        self.t = 0.0

    def write(self, data):
        pass

    def read(self, n, timeout):
        self.t += timeout
        return b""

    def now(self):
        return self.t

    def discard_input(self):
        pass

    def close(self):
        pass


def test_a_board_that_does_not_answer():
    board = Board(DeadLink(), FPGA)
    with pytest.raises(LinkError, match="no acknowledgement for PING .*programmed"):
        board.connect()


def test_example_through_the_simulated_board(tmp_path, capsys):
    """``lpu board run --sim`` of examples/vector_add.s on the fpga chip behind its
    bridge: the words it writes and the run's last cycle equal the golden model's."""
    src = (EX / "vector_add.s").read_text().replace(".config tiny", ".config fpga")
    prog_path = tmp_path / "vector_add.s"
    prog_path.write_text(src)
    rng = np.random.default_rng(11)
    a = rng.integers(-(1 << 31), 1 << 31, (1, FPGA.vl)).astype(np.int32)
    b = rng.integers(-(1 << 31), 1 << 31, (1, FPGA.vl)).astype(np.int32)
    np.savez(tmp_path / "in.npz", mem_w0=a, mem_e0=b)
    golden = GoldenChip(FPGA)
    golden.write_tensor("mem_w0", 0, a)
    golden.write_tensor("mem_e0", 0, b)
    golden.load(assemble(src, FPGA))
    res = golden.run()
    rc = cli.main(["board", "run", str(prog_path), "--sim", "--mem-in",
                   str(tmp_path / "in.npz"), "--mem-out", str(tmp_path / "out.npz"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"], out
    assert out["end_cycle"] == res.end_cycle == golden.end_cycle
    assert out["error"] is None and out["mismatches"] == []
    with np.load(tmp_path / "out.npz") as got:
        c = got["mem_e1@8"]
        assert c.shape == (4, FPGA.vl)
        assert np.array_equal(c, golden.read_mem("mem_e1", 8, 4))
        want = ((a.astype(np.int64) + b) & 0xFFFFFFFF).astype("<u4")
        planes = np.stack([(want[0] >> (8 * k)) & 0xFF for k in range(4)]).astype(np.uint8)
        assert np.array_equal(c, planes)  # the sum, as byte planes
        assert sorted(got.files) == ["mem_e1@8"]  # only the words the program writes


def test_pll_and_uart_divisors():
    # nextpnr's ecppll: 25 -> 50 MHz is CLKI_DIV 1, CLKFB_DIV 2, CLKOP_DIV 12, CPHASE 5
    assert pll_dividers(25e6, 50e6) == {"CLKI_DIV": 1, "CLKFB_DIV": 2, "CLKOP_DIV": 12,
                                        "CLKOP_CPHASE": 5, "fout_hz": 50e6}
    p = pll_dividers(25e6, 100e6)
    assert 25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"] == 100e6
    assert 400e6 <= 100e6 * p["CLKOP_DIV"] <= 800e6
    with pytest.raises(ValueError, match="no ECP5 PLL setting makes 2000 MHz"):
        pll_dividers(25e6, 2e9)
    with pytest.raises(ValueError, match="no ECP5 PLL setting makes 1 MHz"):
        pll_dividers(25e6, 1e6)  # the VCO's 400 MHz over the largest output divider, 128

    assert uart_divisor(50e6, 1_000_000) == 50
    assert uart_divisor(50e6, 115200) == 434
    with pytest.raises(ValueError, match="3000000 baud"):
        uart_divisor(50e6, 3_000_000)
    with pytest.raises(ValueError, match="at least 4"):
        Bridge(RegisterMap(FPGA), divisor=2, timeout=1000, max_words=DEFAULT_MAX_WORDS)


def test_the_ulx3s_top_elaborates():
    pytest.importorskip("amaranth_boards", reason="amaranth-boards is not installed "
                        "(pip install amaranth-boards, the fpga extra)")
    from lpu.tools.synth import board_design
    files = board_design(FPGA)
    top = files["top"]
    assert top.pll["CLKOP_DIV"] == 12 and top.divisor == 50
    assert "EHXPLLL" in files["il"] and "lpu_ulx3s" in files["il"]
    lpf = files["lpf"]
    # the ULX3S's 25 MHz oscillator, FTDI serial pins and LEDs (its schematic)
    for port, site in [("clk25_0__io", "G2"), ("uart_0__rx__io", "M1"),
                       ("uart_0__tx__io", "L4"), ("led_0__io", "B2"), ("led_7__io", "H3")]:
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf, port
    assert "50000000.0 HZ" in lpf


@pytest.mark.parametrize("divisor", [4, 5, 16])
def test_uart_timing(divisor):
    """The receiver's byte and framing error in the cycles its docstring states; the
    transmitter's bits, divisor cycles each, bytes back to back."""
    from amaranth.sim import Simulator

    from lpu.hdl.uart import UartRx, UartTx
    D = divisor
    rx, tx = UartRx(D), UartTx(D)
    got = {"bytes": [], "errors": [], "line": []}

    async def receive(ctx):
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(3)
        cycle = 0
        for b, stop in ((0xA7, 1), (0x3C, 0)):
            for level in [0] + [(b >> i) & 1 for i in range(8)] + [stop, 1, 1]:
                ctx.set(rx.rx, level)
                for _ in range(D):
                    await ctx.tick()
                    if ctx.get(rx.data.valid):
                        got["bytes"].append((cycle, ctx.get(rx.data.payload)))
                    if ctx.get(rx.error):
                        got["errors"].append(cycle)
                    cycle += 1

    async def transmit(ctx):
        queue = [0x81, 0x42]
        for _ in range(2 * 10 * D + 4):
            ctx.set(tx.data.valid, bool(queue))
            ctx.set(tx.data.payload, queue[0] if queue else 0)
            taken = queue and ctx.get(tx.data.ready)
            await ctx.tick()
            if taken:
                queue.pop(0)
            got["line"].append(ctx.get(tx.tx))

    for dut, tb in ((rx, receive), (tx, transmit)):
        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(tb)
        sim.run()
    first = D // 2 + 9 * D + 1  # counted from the first cycle with the line low
    assert got["bytes"] == [(first, 0xA7)]
    assert got["errors"] == [12 * D + first]
    bits = [lv for b in (0x81, 0x42) for lv in [0] + [(b >> i) & 1 for i in range(8)] + [1]]
    line = got["line"]
    start = line.index(0)
    assert line[start:start + 20 * D] == [lv for lv in bits for _ in range(D)]
