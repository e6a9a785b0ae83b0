"""Systems of chips joined by C2C links: the topology, one validated object.

A :class:`SystemConfig` holds the chip config every chip of the system has (one
geometry, so one program hash), the number of chips, the topology's name and its
links: each a pair of ends ``(chip, link)`` joined by a cable. A link carries vectors
both ways; a vector sent at cycle ``t`` over one end arrives at the other end at
``t + c2c_latency`` (docs/timing.md, "C2C"). Link ``l`` of a chip leaves it at the
west edge if ``l`` is even, the east edge if odd (:meth:`ChipConfig.link_queue`).

Topologies (:data:`TOPOLOGIES`)
-------------------------------
``pairs``
    chips ``2i`` and ``2i+1`` joined east to west: ``(2i, 1) - (2i+1, 0)``; an even
    number of chips, two links a chip.
``ring``
    ``(i, 1) - (i+1 mod n, 0)`` for every chip: each chip's east edge to the next one's
    west edge; two or more chips, two links a chip.
``full``
    fully connected groups of ``group`` chips (2 to 8; default: all the chips): inside
    a group, chip ``i``'s link to chip ``j`` is link ``j`` if ``j < i`` else ``j - 1``
    (ranks inside the group); ``group - 1`` links a chip.
``rings``
    a pipeline of rings of ``group`` chips (2 to 8; default: all the chips, one ring):
    chip ``s * group + r`` is rank ``r`` of ring ``s``; inside a ring
    ``(s*group + r, 1) - (s*group + (r+1) mod group, 0)`` as in ``ring``, and between
    rings ``(s*group + r, 3) - ((s+1)*group + r, 2)``: rank ``r`` of each ring to rank
    ``r`` of the next, east edge to west edge. Two links a chip for one ring, four for
    more (a tensor-parallel group a ring, the rings a pipeline).

A system file (YAML) holds ``chip`` (a preset name, a config file, or a mapping of
config keys as a config file holds them), ``chips``, ``topology`` and, for ``full`` and
``rings``, ``group``. Every error names the file, the key and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import config as _config
from .config import ChipConfig, ConfigError

__all__ = ["SystemConfig", "SystemConfigError", "TOPOLOGIES", "MAX_GROUP", "MAX_CHIPS", "system",
           "load"]

TOPOLOGIES = ("pairs", "ring", "full", "rings")
MAX_GROUP = 8  # chips in a fully connected group, as in a GroqNode
MAX_CHIPS = 64

End = tuple[int, int]  # (chip, link)


class SystemConfigError(ConfigError):
    """A system file or topology is invalid: names the file, the key and the problem."""


@dataclass(frozen=True)
class SystemConfig:
    """A validated system: build it with :func:`system` or :func:`load`."""

    chip: ChipConfig
    chips: int
    topology: str
    group: int
    links: tuple[tuple[End, End], ...]
    source: str = field(default="<memory>", compare=False)
    _ends: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self):
        for a, b in self.links:
            self._ends[a], self._ends[b] = b, a

    def peer(self, chip: int, link: int) -> End | None:
        """The other end of link `link` of chip `chip`; None if it is not cabled."""
        return self._ends.get((chip, link))

    def describe(self) -> str:
        joined = ", ".join(f"{a[0]}.{a[1]}-{b[0]}.{b[1]}" for a, b in self.links)
        return (f"{self.chips} chips of {self.chip.name} ({self.chip.c2c_links} links, "
                f"latency {self.chip.c2c_latency}, width {self.chip.c2c_width}), "
                f"{self.topology}: {joined}")


def _links(topology: str, n: int, group: int) -> list[tuple[End, End]]:
    if topology == "pairs":
        return [((2 * i, 1), (2 * i + 1, 0)) for i in range(n // 2)]
    if topology == "ring":
        if n == 2:
            return [((0, 1), (1, 0)), ((1, 1), (0, 0))]
        return [((i, 1), ((i + 1) % n, 0)) for i in range(n)]
    out = []
    if topology == "rings":
        for g0 in range(0, n, group):
            if group == 2:
                out += [((g0, 1), (g0 + 1, 0)), ((g0 + 1, 1), (g0, 0))]
            else:
                out += [((g0 + r, 1), (g0 + (r + 1) % group, 0)) for r in range(group)]
        out += [((i, 3), (i + group, 2)) for i in range(n - group)]
        return out
    for g0 in range(0, n, group):
        for i in range(group):
            for j in range(i + 1, group):
                out.append(((g0 + i, j - 1), (g0 + j, i)))
    return out


def _need(topology: str, group: int, chips: int) -> int:
    if topology == "full":
        return group - 1
    if topology == "rings" and chips > group:
        return 4
    return 2


def system(chip: ChipConfig | str, chips: int, topology: str, *, group: int | None = None,
           source: str = "<memory>") -> SystemConfig:
    """A validated :class:`SystemConfig`: `chips` chips of config `chip` in `topology`."""
    where = source
    cfg = _config.load(chip)
    if isinstance(chips, bool) or not isinstance(chips, int) or not 2 <= chips <= MAX_CHIPS:
        raise SystemConfigError(f"{where}: key 'chips': the number of chips must be a whole number "
                                f"from 2 to {MAX_CHIPS}, not {chips!r}")
    if topology not in TOPOLOGIES:
        raise SystemConfigError(f"{where}: key 'topology': must be one of {', '.join(TOPOLOGIES)}, "
                                f"not {topology!r}")
    if topology in ("full", "rings"):
        g = chips if group is None else group
        what = "a fully connected group" if topology == "full" else "a ring"
        if isinstance(g, bool) or not isinstance(g, int) or not 2 <= g <= MAX_GROUP:
            raise SystemConfigError(f"{where}: key 'group': {what} has 2 to "
                                    f"{MAX_GROUP} chips, not {g!r}")
        if chips % g:
            raise SystemConfigError(f"{where}: key 'chips': {chips} chips do not make groups "
                                    f"of {g}")
    else:
        if group is not None:
            raise SystemConfigError(f"{where}: key 'group': only 'full' and 'rings' "
                                    f"topologies have groups (this one is {topology!r})")
        g = 2 if topology == "pairs" else chips
        if topology == "pairs" and chips % 2:
            raise SystemConfigError(f"{where}: key 'chips': pairs need an even number of chips, "
                                    f"not {chips}")
    need = _need(topology, g, chips)
    if cfg.c2c_links < need:
        what = (f"a fully connected group of {g}" if topology == "full" else
                f"a pipeline of rings of {g}" if topology == "rings" and chips > g else
                f"a {topology} topology")
        raise SystemConfigError(f"{where}: key 'topology': {what} needs {need} C2C links a "
                                f"chip, but config {cfg.name!r} has {cfg.c2c_links}; set "
                                f"c2c_links: {need} (or more) in the chip's config")
    return SystemConfig(cfg, chips, topology, g, tuple(_links(topology, chips, g)), source)


_KEYS = ("chip", "chips", "topology", "group")


def load(spec: str | Path | SystemConfig) -> SystemConfig:
    """A system from a YAML file (see the module docstring), or `spec` unchanged."""
    if isinstance(spec, SystemConfig):
        return spec
    path = Path(spec)
    if not path.is_file():
        raise SystemConfigError(f"{path}: no such system file")
    source = str(path)
    raw = _config._read_yaml(_config._read_text(path), source)
    for key in raw:
        if key not in _KEYS:
            raise SystemConfigError(f"{source}: unknown key {key!r}; a system file has the keys "
                                    f"{', '.join(_KEYS)}")
    for key in ("chip", "chips", "topology"):
        if key not in raw:
            raise SystemConfigError(f"{source}: missing key {key!r}")
    chip = raw["chip"]
    try:
        if isinstance(chip, dict):
            cfg = _config.from_mapping(chip, f"{source}: key 'chip'", path.stem)
        elif isinstance(chip, str):
            spec_c = chip if not chip.endswith((".yaml", ".yml")) else str(path.parent / chip)
            cfg = _config.load(spec_c)
        else:
            raise SystemConfigError(f"{source}: key 'chip': must be a preset name, a config "
                                    f"file or a mapping of config keys, not {chip!r}")
    except SystemConfigError:
        raise
    except ConfigError as e:
        raise SystemConfigError(f"{source}: key 'chip': {e}") from None
    return system(cfg, raw["chips"], raw["topology"], group=raw.get("group"), source=source)
