"""lpu: a parameterizable model of Groq's LPU (Tensor Streaming Processor).

The contract every room shares lives here: ``lpu.config`` (chip geometry),
``lpu.isa`` (the instruction set), ``lpu.program`` (programs and ProgramBuilder),
``lpu.asm`` (assembler and disassembler), ``lpu.loaders`` (input files),
``lpu.trace`` (events) and ``lpu.vectors`` (byte planes). The rooms above it:
``lpu.hdl`` (Amaranth HDL), ``lpu.golden`` (numpy golden models), ``lpu.sim`` (the
RTL beside the golden model), ``lpu.tools`` (compiler, builds, benchmarks) and
``lpu.commands`` (the ``lpu`` command line). docs/architecture.md has the map.
"""

__version__ = "0.1.0"

__all__ = ["asm", "config", "errors", "isa", "loaders", "program", "trace", "vectors",
           "__version__"]
