"""``lpu.sim.programs``: programs that exercise the machine, with their expected results:
``directed`` (every opcode on its edge values; ``placer`` places them, ``reference``
computes what they must leave, independently of the golden model) and ``randprog``
(random legal programs).
"""

__all__ = ["directed", "placer", "randprog", "reference"]
