"""The chip's build cache key (lpu.sim.cocotb_runner.design_key): it changes with the
ISA version, the config and the HDL sources, and only with what the Verilog depends on."""

import lpu.isa
from lpu import config
from lpu.hdl.mem import MemFault
from lpu.sim import cocotb_runner as cr

TINY, SMALL = config.load("tiny"), config.load("small")


def test_key_is_stable():
    assert cr.design_key(TINY) == cr.design_key(TINY)


def test_key_changes_with_the_isa_version(monkeypatch):
    before = cr.design_key(TINY)
    major, minor = lpu.isa.ISA_VERSION
    monkeypatch.setattr(lpu.isa, "ISA_VERSION", (major, minor + 1))
    assert cr.design_key(TINY) != before


def test_key_changes_with_the_config_and_the_trace_port():
    assert TINY.hash != SMALL.hash
    assert cr.design_key(TINY) != cr.design_key(SMALL)
    assert cr.design_key(TINY, trace=False) != cr.design_key(TINY)


def test_key_changes_with_the_amaranth_version(monkeypatch):
    before = cr.design_key(TINY)
    monkeypatch.setattr(cr.amaranth, "__version__", "0.0.0")
    assert cr.design_key(TINY) != before


def test_verilog_folder_is_named_by_config_hash_and_key(tmp_path, monkeypatch):
    """chip_verilog converts once into a folder named by both, and later calls read it."""
    monkeypatch.setenv("LPU_BUILD_DIR", str(tmp_path))
    calls = []

    def fake(cfg, trace, name, mem_faults=()):
        calls.append((cfg.name, trace, name))
        return f"module {name}; endmodule\n", {}

    monkeypatch.setattr(cr, "to_verilog", fake)
    first = cr.chip_verilog(TINY)
    assert cr.chip_verilog(TINY) == first == "module lpu_top; endmodule\n"
    assert calls == [("tiny", True, "lpu_top")]
    d = tmp_path / f"chip-verilog-{TINY.hash}-{cr.design_key(TINY)}"
    assert (d / "lpu_top.v").read_text() == first


def test_built_in_faults_are_a_design_of_their_own():
    """SRAM faults built into the Verilog (ECC tests) change the key; equal lists agree."""
    f1, f2 = MemFault("mem_w0", 1, 5, 1, 0), MemFault("mem_w0", 1, 6, 1, 0)
    plain = cr.design_key(TINY)
    assert cr.design_key(TINY, True, ()) == plain
    assert cr.design_key(TINY, True, [f1]) == cr.design_key(TINY, True, (f1,)) != plain
    assert cr.design_key(TINY, True, [f1]) != cr.design_key(TINY, True, [f2])
