"""``lpu.hdl``: the chip in Amaranth HDL, sized by one :class:`~lpu.config.ChipConfig`.

One module per block: the slices (``mem``, ``vxm`` with ``vxm_alu`` and ``fp32``,
``mxm``, ``sxm``), the stream ``fabric``, the ``icu``, the ``host`` register block,
the shared ports (``interface``), the chip top (``chip``) and a synthesis ``pins``
wrapper. It imports nothing of the project but the contract (``lpu.config``,
``lpu.isa``); turning its trace port into events is :mod:`lpu.sim.trace`'s job.
"""

__all__ = ["chip", "fabric", "fp32", "host", "icu", "interface", "mem", "mxm", "pins", "sxm",
           "vxm", "vxm_alu"]
