"""``lpu.tools``: what produces artifacts: the compiler (:mod:`lpu.tools.compiler`),
Verilog (``verilog``), FPGA builds (``synth``), benchmarks (``bench``), the ISA
document (``isadoc``) and the model trainer (``train_model``, needs torch).
"""

__all__ = ["bench", "compiler", "isadoc", "synth", "verilog"]
