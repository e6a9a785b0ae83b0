"""The host bus driven from Amaranth's simulator: :class:`SimBus`.

Testbench code for :class:`lpu.hdl.host.Host` (register map
:class:`lpu.hdl.host.RegisterMap`): one bus access per clock edge, inputs set before
the edge and read data sampled after it, as the host block's docstring specifies.
Used by the chip tests, :class:`lpu.sim.lockstep.AmaranthBackend` and ``lpu bench rtl``.
"""

from __future__ import annotations

from lpu.hdl.host import RegisterMap
from lpu.hostmap import ErrorCode

__all__ = ["SimBus"]


class SimBus:
    """Drives a :class:`Bus` from an Amaranth async testbench (``ctx``), one access per
    cycle, through a :class:`RegisterMap`.

    Every method returns in the cycle after its last access; :meth:`start` returns in
    cycle 0 of the run.
    """

    def __init__(self, bus, regs: RegisterMap):
        self.bus, self.regs = bus, regs

    async def write(self, ctx, addr: int, value: int) -> None:
        bus = self.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.w_data, value & 0xFFFFFFFF)
        ctx.set(bus.w_en, 1)
        await ctx.tick()
        ctx.set(bus.w_en, 0)

    async def read(self, ctx, addr: int) -> int:
        bus = self.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.r_en, 1)
        await ctx.tick()
        ctx.set(bus.r_en, 0)
        return ctx.get(bus.r_data)

    async def load_program(self, ctx, program, loaded: dict | None = None) -> int:
        """Write every queue's words and length (queues the program omits get 0); the
        bus writes. `loaded` (queue name -> the words its instruction memory holds from
        an earlier run; updated here): only words that differ are written (a reset does
        not clear instruction memory)."""
        rm = self.regs
        writes = 0
        for q in rm.cfg.queues:
            words = program.queues.get(q.name, [])
            if len(words) > rm.cfg.imem_words:
                raise ValueError(f"queue {q.name}: {len(words)} words do not fit the "
                                 f"instruction memory ({rm.cfg.imem_words})")
            old = loaded.get(q.name, []) if loaded is not None else []
            for i, w in enumerate(words):
                if i >= len(old) or old[i] != w:
                    await self.write(ctx, rm.imem(q.index, i), w)
                    writes += 1
            await self.write(ctx, rm.qlen(q.index), len(words))
            writes += 1
            if loaded is not None:
                loaded[q.name] = list(words) + list(old[len(words):])
        return writes

    async def write_word(self, ctx, mem_slice, addr: int, word: bytes) -> None:
        """Write one VL-byte SRAM word."""
        rm = self.regs
        for reg, value in rm.word_chunks(bytes(word)):
            await self.write(ctx, reg, value)
        await self.write(ctx, rm.SRAM_WRITE, rm.sram_target(mem_slice, addr))

    async def read_word(self, ctx, mem_slice, addr: int) -> bytes:
        """Read one VL-byte SRAM word."""
        rm = self.regs
        await self.write(ctx, rm.SRAM_READ, rm.sram_target(mem_slice, addr))
        values = []
        for k in range(rm.cfg.superlanes):
            for c in range(rm.chunks):
                values.append(await self.read(ctx, rm.wbuf(k, c)))
        return rm.chunks_word(values)

    async def start(self, ctx) -> None:
        """Start the program; returns in cycle 0."""
        await self.write(ctx, self.regs.CTRL, self.regs.CTRL_START)

    async def status(self, ctx) -> int:
        return await self.read(ctx, self.regs.STATUS)

    async def wait_done(self, ctx, max_polls: int = 100_000) -> int:
        """Poll STATUS until DONE; returns CYCLE."""
        for _ in range(max_polls):
            if await self.status(ctx) & self.regs.STATUS_DONE:
                return await self.read(ctx, self.regs.CYCLE)
        raise TimeoutError("the chip did not finish (a queue parked at a sync?)")

    async def error(self, ctx) -> dict | None:
        """The recorded first error, or None: ``{"cycle", "code", "position",
        "superlane", "unit", "queue"}``, and ``"address"`` for an ``ECC`` error."""
        rm = self.regs
        if not await self.status(ctx) & rm.STATUS_ERROR:
            return None
        out = {name: await self.read(ctx, getattr(rm, "ERR_" + name.upper()))
               for name in ("cycle", "code", "position", "superlane", "unit", "queue")}
        if out["code"] == ErrorCode.ECC.value:
            out["address"] = await self.read(ctx, rm.ERR_ADDRESS)
        return out
