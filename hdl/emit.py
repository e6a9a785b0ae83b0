"""Verilog text of an Amaranth design, with memories that start at zero made cheap.

Contract
--------
:func:`convert` is :func:`amaranth.back.verilog.convert` (``emit_src=False``) followed
by :func:`compact_zero_init`, which rewrites every memory whose initial contents are all
zero from Yosys' one assignment per word::

    reg [7:0] mem [255:0];
    initial begin
      mem[0] = 8'h00;
      ...
      mem[255] = 8'h00;
    end

into one loop over its words::

    reg [7:0] mem [255:0];
    integer mem__zi;
    initial for (mem__zi = 0; mem__zi < 256; mem__zi = mem__zi + 1) mem[mem__zi] = 8'h00;

The meaning is unchanged on every simulator (each word is zero at time 0: Icarus would
otherwise start an uninitialized memory at X, and the golden model assumes zero SRAM at
power-up); only the text shrinks. The chip's MEM slices are hundreds of per-lane byte
memories (per-lane addresses, for ``gather``), so for ``small`` this removes about a
quarter of the Verilog and the matching once-only initialization code Verilator
compiles. A memory with any non-zero word is left as Yosys wrote it.

Shared modules
--------------
Amaranth converts every instance of a component on its own: the chip's eight MEM
slices of ``small`` are eight copies of one module in the Verilog, its 64 VXM ALU lanes
64 copies of another, and each copy costs the conversion (Amaranth's netlist and RTLIL,
then Yosys) as much as the first. With ``share``, :func:`convert` asks
``share(component)`` of every subcomponent (depth first); when it answers a
``(suffix, make)``, that subcomponent is converted once, from ``make()`` (a fresh
component that elaborates the same), as the module ``<name>__<suffix>``, and every
instance with that answer becomes an instance of that module, its ports connected by
name (the signature path joined with ``__``, as Amaranth names a top's ports, plus
``clk`` and ``rst``). ``share`` must give one suffix to components that elaborate the
same only, and may share only components that use nothing of their parent but their
ports and the ``sync`` domain.
"""

from __future__ import annotations

import re

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Fragment, Instance, ResetSignal, Value
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring
from amaranth.lib.wiring import In

__all__ = ["convert", "compact_zero_init"]

# A memory declaration and the initial block right after it (Yosys' write_verilog):
# indent, word width, name (plain, or escaped: a backslash up to a space), depth - 1.
_MEMORY_INIT = re.compile(
    r"^(?P<ind>[ \t]*)reg (?:\[(?P<msb>\d+):0\] )?(?P<name>\\\S+ |[A-Za-z_][\w$]*) "
    r"\[(?P<last>\d+):0\];\n(?P=ind)initial begin\n(?P<body>(?:(?P=ind)[ \t]+.*\n)*?)"
    r"(?P=ind)end\n", re.M)


def compact_zero_init(text: str) -> str:
    """`text` (Yosys Verilog) with each all-zero memory initialization as one loop (see
    the module docstring); every other line unchanged."""

    def replace(m: re.Match) -> str:
        name, depth = m["name"], int(m["last"]) + 1
        width = int(m["msb"] or 0) + 1
        lines = m["body"].splitlines()
        if len(lines) != depth:
            return m[0]
        word = re.compile(rf"[ \t]+{re.escape(name)}\[(\d+)\] = {width}'[hbd]0+;")
        for i, line in enumerate(lines):
            w = word.fullmatch(line)
            if w is None or int(w[1]) != i:
                return m[0]
        ind = m["ind"]
        # an escaped identifier ends at its space: the counter's name goes before it
        i = f"{name[:-1]}__zi " if name.startswith("\\") else f"{name}__zi"
        decl = m[0][:m[0].index("\n") + 1]
        return (f"{decl}{ind}integer {i};\n"
                f"{ind}initial for ({i} = 0; {i} < {depth}; {i} = {i} + 1) "
                f"{name}[{i}] = {width}'h0;\n")

    return _MEMORY_INIT.sub(replace, text)


def convert(component, name: str, *, share=None, deep: bool = False) -> str:
    """Verilog of an Amaranth component, top module `name` (clock ``clk``, reset
    ``rst``), no source locations, zero memory initializations compacted, the
    subcomponents `share` names converted once each (see the module docstring); with
    `deep`, a shared module's own subcomponents are shared too (a system of chips: the
    chip once, and in it each shared block once; a chip: a VXM tile once, and in it its
    ALU lane once)."""
    if share is None:
        return compact_zero_init(verilog.convert(component, name=name, emit_src=False))
    fragment = Fragment.get(component, None)
    modules: dict[str, tuple[str, set[str]]] = {}  # suffix -> (Verilog, its port names)
    _share_below(fragment, name, share, modules, deep)
    text, _ = verilog.convert_fragment(fragment, _ports(component), name, emit_src=False)
    return compact_zero_init("\n".join([text, *(v for v, _ in modules.values())]))


def _ports(component) -> dict:
    """The ports :func:`amaranth.back.verilog.convert` gives a component's top."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        direction = PortDirection.Input if member.flow == In else PortDirection.Output
        ports["__".join(map(str, path))] = (Value.cast(value), direction)
    return ports


_HEADER = re.compile(r"^module (?P<name>\S+)\((?P<ports>[^)]*)\);", re.M)


def _share_below(fragment, top: str, share, modules: dict, deep: bool = False) -> None:
    for i, (sub, sub_name, src_loc) in enumerate(fragment.subfragments):
        origin = sub.origins[0] if sub.origins else None
        answer = share(origin) if isinstance(origin, wiring.Component) else None
        if answer is None:
            _share_below(sub, top, share, modules, deep)
            continue
        suffix, make = answer
        module = f"{top}__{suffix}"
        if suffix not in modules:
            if deep:
                text = convert(make(), module, share=share, deep=True)
            else:
                text = verilog.convert(make(), name=module, emit_src=False)
            header = next(m for m in _HEADER.finditer(text) if m["name"] == module)
            modules[suffix] = (text, {p.strip() for p in header["ports"].split(",")})
        names = modules[suffix][1]
        conns = [("i", clock, signal) for clock, signal in
                 (("clk", ClockSignal("sync")), ("rst", ResetSignal("sync"))) if clock in names]
        for port, (value, direction) in _ports(origin).items():
            if len(value) == 0:
                continue
            if port not in names:
                raise ValueError(f"shared module {module} has no port {port}")
            conns.append(("i" if direction == PortDirection.Input else "o", port, value))
        fragment.subfragments[i] = (Instance(module, *conns), sub_name, src_loc)
