"""``lpu.sim``: running the RTL beside the golden model.

``trace`` (all trace-port to event decoding), ``lockstep`` (the checker and its
backends), ``slice_harness`` (one slice against the golden model), ``hostbus`` (the
host bus from Amaranth's simulator), ``verilator`` (Verilog builds and runs under
cocotb on Verilator or Icarus), ``cocotb_runner`` (the Python side of cocotb
lockstep) and ``cocotb_bench`` (the cocotb module inside the simulator), and
``programs`` (directed and random programs). Imports the contract, ``lpu.hdl`` and
``lpu.golden``.
"""

__all__ = ["cocotb_runner", "hostbus", "lockstep", "programs", "slice_harness", "trace",
           "verilator"]
