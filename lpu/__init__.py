"""lpu: a parameterizable model of Groq's LPU (Tensor Streaming Processor).

Subpackages: ``lpu.hdl`` (Amaranth HDL), ``lpu.golden`` (numpy golden models),
``lpu.sim`` (RTL simulation and lockstep checking), ``lpu.tools`` (assembler,
compiler, builds, benchmarks). The contract they share lives here:
``lpu.config`` (chip geometry), ``lpu.isa`` (instruction set), ``lpu.program``.
"""

__version__ = "0.1.0"
