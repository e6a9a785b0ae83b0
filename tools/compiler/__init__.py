"""``lpu.tools.compiler``: a Llama model scheduled statically onto the chip.

``sched`` (the resource-aware scheduler and its claims on queues, stream registers
and SRAM banks), ``kernels`` (tensor operations and the SRAM allocator), ``chipops``
(the LPU-exact algorithms' primitives scheduled on the chip), ``lower`` (one step
program per token position, and the analytic bound), ``decode`` (the host decode
loop) and ``timeline`` (a schedule drawn as text). Imports the contract and
``lpu.golden``.
"""

from .decode import DecodeResult, decode
from .lower import ChipDecoder, CompiledStep, compile_step

__all__ = ["ChipDecoder", "CompiledStep", "DecodeResult", "compile_step", "decode"]
