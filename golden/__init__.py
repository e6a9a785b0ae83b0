"""``lpu.golden``: the chip's golden model in numpy, exact to the cycle and the bit.

``chip`` (the model: :class:`~lpu.golden.chip.Chip`), ``schedule`` (the ICU's
dispatch timeline and each instruction's effects), ``check`` (the static schedule
checker) and ``numerics`` (the chip's arithmetic). The network that runs on it, in
numpy, is :mod:`lpu.golden.model`. Imports only the contract (``lpu.*``).
"""

__all__ = ["chip", "check", "model", "numerics", "schedule"]
