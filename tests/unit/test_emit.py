"""lpu.hdl.emit: all-zero memory initializations become one loop each, with the same
meaning (checked on Icarus against Amaranth's own Verilog), and nothing else changes."""

import re
import shutil
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.hdl import emit

DEPTHS = {"zero8": (8, 16, []), "zero32": (32, 12, []), "zero1": (1, 5, []),
          "some": (4, 8, [0, 3, 0, 9, 1, 0, 0, 15])}


class Mems(wiring.Component):
    """One read port per memory of :data:`DEPTHS`, all on one address."""

    def __init__(self):
        super().__init__({"addr": In(5), **{n: Out(w) for n, (w, _, _) in DEPTHS.items()}})

    def elaborate(self, platform):
        m = Module()
        for name, (width, depth, init) in DEPTHS.items():
            mem = m.submodules[name] = Memory(shape=width, depth=depth, init=init)
            rp = mem.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(self.addr), getattr(self, name).eq(rp.data)]
            wp = mem.write_port()  # never enabled: the memory stays as initialized
            m.d.comb += wp.en.eq(Signal())
        return m


def test_zero_memories_become_loops_and_the_rest_is_unchanged():
    plain = verilog.convert(Mems(), name="mems", emit_src=False)
    text = emit.compact_zero_init(plain)
    loops = re.findall(r"initial for \((\S+ ?) = 0; \1 < (\d+);", text)
    assert sorted(int(n) for _, n in loops) == sorted(d for n, (_, d, _) in DEPTHS.items()
                                                      if n != "some")
    assert re.search(r"some\S* \[3\] = 4'h9;", text)  # a non-zero memory keeps its lines
    # outside the rewritten blocks the text is the same
    def rest(t):  # the lines about other things than the zero memories' contents
        return [ln for ln in t.splitlines()
                if "zero" not in ln and ln not in ("  initial begin", "  end")]
    assert rest(plain) == rest(text)
    assert len(text) < len(plain)
    assert emit.compact_zero_init(text) == text


def test_escaped_memory_names():
    src = ("  reg [7:0] \\a.b  [1:0];\n  initial begin\n    \\a.b [0] = 8'h00;\n"
           "    \\a.b [1] = 8'h00;\n  end\n")
    out = emit.compact_zero_init(src)
    assert out == ("  reg [7:0] \\a.b  [1:0];\n  integer \\a.b__zi ;\n"
                   "  initial for (\\a.b__zi  = 0; \\a.b__zi  < 2; \\a.b__zi  = \\a.b__zi  + 1) "
                   "\\a.b [\\a.b__zi ] = 8'h0;\n")


@pytest.mark.parametrize("words", [[1], [0, 0, 0]])
def test_incomplete_or_nonzero_blocks_are_kept(words):
    body = "".join(f"    m[{i}] = 8'h{w:02x};\n" for i, w in enumerate(words))
    src = f"  reg [7:0] m [1:0];\n  initial begin\n{body}  end\n"
    assert emit.compact_zero_init(src) == src


def _icarus_words(tmp_path, text, tag):
    """Every memory's every word as Icarus reads it through the read ports."""
    rows = max(d for _, d, _ in DEPTHS.values())
    shows = " ".join(f'$write("%0d={n}:%h ", a, {n});' for n in DEPTHS)
    tb = (f"module tb; reg [4:0] a; wire [7:0] zero8; wire [31:0] zero32; wire zero1; "
          f"wire [3:0] some; mems dut(.clk(1'b0), .rst(1'b0), .addr(a), .zero8(zero8), "
          f".zero32(zero32), .zero1(zero1), .some(some)); integer i; initial begin "
          f"for (i = 0; i < {rows}; i = i + 1) begin a = i; #1; {shows} end "
          f"$finish; end endmodule\n")
    src, out = tmp_path / f"{tag}.v", tmp_path / f"{tag}.vvp"
    src.write_text(text + tb)
    subprocess.run(["iverilog", "-g2012", "-o", str(out), str(src)], check=True)
    res = subprocess.run(["vvp", "-n", str(out)], check=True, capture_output=True, text=True)
    return {w.split(":")[0]: w.split(":")[1] for w in res.stdout.split()
            if ":" in w and int(w.split("=")[0]) < DEPTHS[w.split("=")[1].split(":")[0]][1]}


def test_same_contents_on_icarus(tmp_path):
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("Icarus Verilog not installed")
    plain = verilog.convert(Mems(), name="mems", emit_src=False)
    before = _icarus_words(tmp_path, plain, "plain")
    after = _icarus_words(tmp_path, emit.compact_zero_init(plain), "compact")
    assert after == before
    expected = {f"{a}={n}": format(init[a] if init else 0, f"0{-(-w // 4)}x")
                for n, (w, d, init) in DEPTHS.items() for a in range(d)}
    assert after == expected


class Inc(wiring.Component):
    """y <= a + k, registered."""

    def __init__(self, k):
        self.k = k
        super().__init__({"a": In(4), "y": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + self.k)
        return m


class Chain(wiring.Component):
    """Four Inc stages in a row: three of k=1 (shared), one of k=2 (not)."""

    def __init__(self):
        super().__init__({"a": In(4), "y": Out(4)})

    def elaborate(self, platform):
        m = Module()
        prev = self.a
        for i, k in enumerate((1, 2, 1, 1)):
            stage = m.submodules[f"s{i}"] = Inc(k)
            m.d.comb += stage.a.eq(prev)
            prev = stage.y
        m.d.comb += self.y.eq(prev)
        return m


def _share_inc1(component):
    return ("inc1", lambda: Inc(1)) if isinstance(component, Inc) and component.k == 1 \
        else None


def test_shared_components_are_one_module():
    text = emit.convert(Chain(), "chain", share=_share_inc1)
    modules = re.findall(r"^module (\S+) ?\(", text, re.M)
    assert sorted(modules) == ["\\chain.s1", "chain", "chain__inc1"]
    assert len(re.findall(r"^  chain__inc1 s[023] \(", text, re.M)) == 3


def _icarus_chain(tmp_path, text, tag):
    tb = ("module tb; reg clk = 0, rst = 1; reg [3:0] a = 0; wire [3:0] y; "
          "chain dut(.clk(clk), .rst(rst), .a(a), .y(y)); integer i; initial begin "
          "#1 clk = 1; #1 clk = 0; rst = 0; for (i = 0; i < 12; i = i + 1) begin "
          'a = i * 3; #1 clk = 1; #1 clk = 0; $write("%h ", y); end $finish; end endmodule\n')
    src, out = tmp_path / f"{tag}.v", tmp_path / f"{tag}.vvp"
    src.write_text(text + tb)
    subprocess.run(["iverilog", "-g2012", "-o", str(out), str(src)], check=True)
    return subprocess.run(["vvp", "-n", str(out)], check=True, capture_output=True,
                          text=True).stdout.split()


def test_shared_components_behave_the_same_on_icarus(tmp_path):
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("Icarus Verilog not installed")
    shared = _icarus_chain(tmp_path, emit.convert(Chain(), "chain", share=_share_inc1), "s")
    plain = _icarus_chain(tmp_path, emit.convert(Chain(), "chain"), "p")
    # y is a, four cycles ago, plus 5 (mod 16); the first three outputs follow the reset
    expected = [format((3 * (i - 3) + 5) % 16, "x") for i in range(3, 12)]
    assert shared == plain
    assert shared[3:] == expected
