"""Chip configuration: one frozen, validated object that sizes everything.

The HDL, the golden model, the assembler, the compiler and the builds take only a
:class:`ChipConfig`. It is loaded from a YAML preset shipped with the package
(``tiny``, ``small``, ``fpga``, ``groq``) or from a user file that may start from a
preset (``base: small``) and override keys.

Derived values
--------------
``vl``
    Vector length in bytes, ``superlanes * lanes``.
``positions``
    The floorplan, west to east: ``MXM_W, SXM_W, MEM_W{n-1} .. MEM_W0, VXM,
    MEM_E0 .. MEM_E{n-1}, SXM_E, MXM_E``. Each position has one stream register per
    stream and direction.
``queues``
    Every instruction queue, in a fixed order: one per MEM slice, one per VXM ALU,
    one per MXM plane, one per SXM.
``hash``
    A short hash of the geometry (not of the name); programs carry it.

C2C (chip-to-chip links, ISA 1.3)
---------------------------------
``c2c_links`` numbered links leave the chip, even ones at the west edge (served by
the C2C slice ``c2c_w``, at the position of ``sxm_w``), odd ones at the east edge
(``c2c_e``, at ``sxm_e``); a vector sent at cycle ``t`` arrives at the link's other
end at ``t + c2c_latency``; one ``send`` or ``recv`` moves up to ``c2c_width``
vectors. A config without links (``c2c_links: 0``, every shipped preset) has no C2C
queues and the hash it had before C2C existed: the C2C keys count in the hash only
when there are links.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .errors import LpuError

__all__ = ["ChipConfig", "ConfigError", "Position", "Queue", "load", "preset_names",
           "from_mapping"]


class ConfigError(LpuError, ValueError):
    """A configuration file or value is invalid. The message names the file and key."""


# key: (type, minimum, maximum, extra check or None, description)
_PARAMS = {
    "superlanes": (int, 1, 32, None, "superlanes stacked north-south (the stagger)"),
    "lanes": (int, 1, 64, None, "lanes (bytes) per superlane"),
    "streams": (int, 4, 32, None, "stream registers per direction at each position"),
    "mem_slices": (int, 1, 64, None, "MEM slices per hemisphere"),
    "mem_words": (int, 2, 16384, "pow2", "addresses per MEM slice (two banks of half each)"),
    "vxm_alus": (int, 1, 16, None, "VXM ALUs, each with its own instruction queue"),
    "mxm_planes": (int, 1, 2, None, "MXM planes per hemisphere"),
    "mxm_acc_slots": (int, 1, 16, None, "int32 accumulator vectors per MXM plane"),
    "imem_words": (int, 16, 1 << 20, "pow2", "instruction memory words per queue (HDL)"),
    "clock_mhz": (float, 1.0, 5000.0, None, "clock frequency used for projections (MHz)"),
}

# the C2C keys (docs/timing.md, "C2C"): apart from _PARAMS, since they join the hash
# only when c2c_links > 0
_C2C_PARAMS = {
    "c2c_links": (int, 0, 7, None, "chip-to-chip links (0: none; even ones west, odd east)"),
    "c2c_latency": (int, 1, 4096, None, "cycles from a send to its arrival at the link's "
                    "other end"),
    "c2c_width": (int, 1, 4, None, "vectors one send or recv moves over a link in a cycle"),
}
_C2C_DEFAULTS = {"c2c_links": 0, "c2c_latency": 16, "c2c_width": 1}

_MAX_VL = 512  # SXM shift and MXM row fields are sized for this


@dataclass(frozen=True)
class Position:
    """One slice position on the floorplan (index 0 is the west edge)."""

    index: int
    name: str  # e.g. "mem_w0", "vxm", "mxm_e"
    kind: str  # "mem" | "vxm" | "mxm" | "sxm"
    hemisphere: str  # "w", "e" or "c" (centre)


@dataclass(frozen=True)
class Queue:
    """One instruction queue: the slice unit it drives and where that sits."""

    index: int
    name: str  # e.g. "mem_w0", "vxm1", "mxm_e0", "sxm_w"
    kind: str  # "mem" | "vxm" | "mxm" | "sxm"
    position: int  # index into ChipConfig.positions
    unit: int  # slice number within its kind and hemisphere (MEM slice, ALU, plane)


@dataclass(frozen=True)
class ChipConfig:
    """A validated chip geometry. Build it with :func:`load`, not directly."""

    name: str
    superlanes: int
    lanes: int
    streams: int
    mem_slices: int
    mem_words: int
    vxm_alus: int
    mxm_planes: int
    mxm_acc_slots: int
    imem_words: int
    clock_mhz: float
    # SECDED check bits on every SRAM word (lpu.ecc); not part of the hash: a program
    # runs the same with or without them
    ecc: bool = True
    c2c_links: int = 0
    c2c_latency: int = 16
    c2c_width: int = 1
    source: str = field(default="<memory>", compare=False)

    # -- derived values ---------------------------------------------------------------
    @property
    def vl(self) -> int:
        """Vector length in bytes (lanes across all superlanes)."""
        return self.superlanes * self.lanes

    @property
    def bank_words(self) -> int:
        """Addresses per SRAM bank; bank = address // bank_words."""
        return self.mem_words // 2

    @property
    def addr_bits(self) -> int:
        return max(1, (self.mem_words - 1).bit_length())

    def params(self) -> dict:
        """The geometry: every parameter key, and the C2C keys if the chip has links."""
        out = {k: getattr(self, k) for k in _PARAMS}
        if self.c2c_links:
            out.update({k: getattr(self, k) for k in _C2C_PARAMS})
        return out

    @property
    def hash(self) -> str:
        """12 hex digits identifying the geometry (the name does not count; nor do the
        C2C keys of a chip without links)."""
        blob = json.dumps(self.params(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def positions(self) -> tuple[Position, ...]:
        return _positions(self)

    @property
    def queues(self) -> tuple[Queue, ...]:
        return _queues(self)

    def link_queue(self, link: int) -> str:
        """The C2C queue that serves link `link`: ``c2c_w`` for an even link (the west
        edge), ``c2c_e`` for an odd one (the east edge)."""
        return "c2c_e" if link % 2 else "c2c_w"

    def queue(self, name: str) -> Queue:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)

    def position(self, name: str) -> Position:
        for p in self.positions:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def mem_bytes(self) -> int:
        """Total SRAM bytes on the chip."""
        return 2 * self.mem_slices * self.mem_words * self.vl

    def replace(self, **changes) -> ChipConfig:
        """A validated copy with some parameters changed."""
        values = self.params() | {k: getattr(self, k) for k in _C2C_PARAMS} | changes
        return _build(values, name=changes.get("name", self.name), source="<replace>")

    def describe(self) -> str:
        return (
            f"{self.name}: {self.superlanes}x{self.lanes} (VL {self.vl} B), "
            f"{self.streams} streams/dir, {self.mem_slices}x{self.mem_words} words MEM per "
            f"hemisphere ({self.mem_bytes // 1024} KiB), {self.vxm_alus} VXM ALUs, "
            f"{self.mxm_planes} MXM plane(s)/hemisphere"
            + (f", {self.c2c_links} C2C link(s) ({self.c2c_latency} cycles, "
               f"{self.c2c_width} vector(s)/cycle)" if self.c2c_links else "")
            + f", hash {self.hash}"
        )


_POS_CACHE: dict = {}
_Q_CACHE: dict = {}


def _positions(cfg: ChipConfig) -> tuple[Position, ...]:
    key = cfg.params()["mem_slices"]
    if key in _POS_CACHE:
        return _POS_CACHE[key]
    n = cfg.mem_slices
    specs = [("mxm_w", "mxm", "w"), ("sxm_w", "sxm", "w")]
    specs += [(f"mem_w{i}", "mem", "w") for i in reversed(range(n))]
    specs += [("vxm", "vxm", "c")]
    specs += [(f"mem_e{i}", "mem", "e") for i in range(n)]
    specs += [("sxm_e", "sxm", "e"), ("mxm_e", "mxm", "e")]
    out = tuple(Position(i, nm, kd, hs) for i, (nm, kd, hs) in enumerate(specs))
    _POS_CACHE[key] = out
    return out


def _queues(cfg: ChipConfig) -> tuple[Queue, ...]:
    key = (cfg.mem_slices, cfg.vxm_alus, cfg.mxm_planes, bool(cfg.c2c_links))
    if key in _Q_CACHE:
        return _Q_CACHE[key]
    pos = {p.name: p.index for p in _positions(cfg)}
    specs = []
    for h in "we":
        specs += [(f"mem_{h}{i}", "mem", pos[f"mem_{h}{i}"], i) for i in range(cfg.mem_slices)]
    specs += [(f"vxm{i}", "vxm", pos["vxm"], i) for i in range(cfg.vxm_alus)]
    for h in "we":
        specs += [(f"mxm_{h}{i}", "mxm", pos[f"mxm_{h}"], i) for i in range(cfg.mxm_planes)]
    specs += [("sxm_w", "sxm", pos["sxm_w"], 0), ("sxm_e", "sxm", pos["sxm_e"], 0)]
    if cfg.c2c_links:  # after every other queue: the queues of a chip without links keep
        specs += [("c2c_w", "c2c", pos["sxm_w"], 0), ("c2c_e", "c2c", pos["sxm_e"], 0)]
    out = tuple(Queue(i, *s) for i, s in enumerate(specs))
    _Q_CACHE[key] = out
    return out


# -- loading ----------------------------------------------------------------------------


def preset_names() -> list[str]:
    files = resources.files("lpu").joinpath("presets").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps
    the last silently), and turns a value its constructors cannot read (``!!float
    text``, a bad ``!!timestamp``: a ValueError, AttributeError, ... inside PyYAML)
    into a located YAML error."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError, KeyError):
            what = str(node.tag).rsplit(":", 1)[-1]
            value = node.value if isinstance(node.value, str) else "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {value[:40]!r} as a {what}", node.start_mark) from None


def _no_duplicates(loader, node, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a name, not a {type(key).__name__}",
                key_node.start_mark) from None
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (first on line {seen[key]})", mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


def _bounded_int(loader, node):
    """An integer; one too long for Python to read from text (over 4,300 digits) is a
    located YAML error, not a ValueError."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"the integer {str(node.value)[:20]}... ({len(str(node.value))} "
            "characters) is too long to read", node.start_mark) from None


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


def _read_text(path: Path) -> str:
    """A config file's text; unreadable or non-UTF-8 files are a located ConfigError."""
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        line = blob[:e.start].count(b"\n") + 1
        col = e.start - (blob.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(f"{path}:{line}:{col}: not UTF-8 text; a config is a YAML file "
                          "in UTF-8") from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is allowed


def _read_yaml(text: str, source: str) -> dict:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, ...)
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise ConfigError(f"{source}:{line}:{col}: not valid YAML: character "
                          f"{e.character!r} is not allowed in a YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, "
                          f"got {type(data).__name__}")
    return data


def _preset_raw(name: str) -> tuple[dict, str]:
    res = resources.files("lpu").joinpath("presets", f"{name}.yaml")
    if not res.is_file():
        raise ConfigError(
            f"unknown preset {name!r}; presets are: {', '.join(preset_names())} "
            "(or give a path to a YAML file)"
        )
    src = f"preset {name}"
    return _read_yaml(res.read_text(), src), src


def _check_value(key: str, value, source: str):
    typ, lo, hi, extra, desc = _PARAMS.get(key) or _C2C_PARAMS[key]
    where = f"{source}: key {key!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {desc} must be a number from {lo} to {hi}, not {value!r}")
    if typ is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: {desc} must be a whole number, not {value!r}")
        value = int(value)
    else:
        value = float(value)
    if not (lo <= value <= hi):
        raise ConfigError(f"{where}: {desc} must be from {lo} to {hi}, not {value!r}")
    if extra == "pow2" and value & (value - 1):
        raise ConfigError(f"{where}: {desc} must be a power of two, not {value!r}")
    return value


def _build(values: dict, *, name: str, source: str) -> ChipConfig:
    for key in _PARAMS:
        if key not in values:
            raise ConfigError(f"{source}: missing key {key!r} ({_PARAMS[key][4]})")
    clean = {k: _check_value(k, values[k], source) for k in _PARAMS}
    vl = clean["superlanes"] * clean["lanes"]
    if vl > _MAX_VL:
        raise ConfigError(
            f"{source}: keys 'superlanes' x 'lanes': vector length {vl} exceeds {_MAX_VL} bytes"
        )
    if vl < 4:
        raise ConfigError(f"{source}: keys 'superlanes' x 'lanes': vector length {vl} is below 4")
    ecc = values.get("ecc", True)
    if not isinstance(ecc, bool):
        raise ConfigError(f"{source}: key 'ecc': SECDED check bits on the SRAM words must "
                          f"be true or false, not {ecc!r}")
    c2c = {k: _check_value(k, values.get(k, _C2C_DEFAULTS[k]), source) for k in _C2C_PARAMS}
    return ChipConfig(name=name, source=source, ecc=ecc, **clean, **c2c)


def load(spec: str | Path | ChipConfig | None = None) -> ChipConfig:
    """Load a configuration.

    Parameters
    ----------
    spec
        A preset name (``"tiny"``), a path to a YAML file, or a :class:`ChipConfig`
        (returned unchanged). ``None`` means the default preset, ``small``.

    A YAML file holds the parameter keys; ``base: PRESET`` starts from a preset and
    the file's keys override it; ``name`` names the result.

    Raises
    ------
    ConfigError
        Naming the file, the key, the value and what is allowed.
    """
    if isinstance(spec, ChipConfig):
        return spec
    if spec is None:
        spec = "small"
    spec_s = str(spec)
    looks_like_path = isinstance(spec, Path) or spec_s.endswith((".yaml", ".yml")) or "/" in spec_s
    if not looks_like_path:
        raw, source = _preset_raw(spec_s)
        name = raw.pop("name", spec_s)
        return _build(raw, name=str(name), source=source)
    path = Path(spec_s)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    source = str(path)
    raw = _read_yaml(_read_text(path), source)
    return from_mapping(raw, source, path.stem)


def from_mapping(raw: dict, source: str, name: str) -> ChipConfig:
    """A config from the keys of a YAML mapping (what a config file holds: ``base``,
    ``name`` and parameter keys), read from `source` (named in errors); `name` unless
    the mapping names it."""
    raw = dict(raw)
    values: dict = {}
    if "base" in raw:
        base = raw.pop("base")
        if not isinstance(base, str):
            raise ConfigError(f"{source}: key 'base': must be a preset name, not {base!r}")
        try:
            base_raw, _ = _preset_raw(base)
        except ConfigError as e:
            raise ConfigError(f"{source}: key 'base': {e}") from None
        base_raw.pop("name", None)
        values.update(base_raw)
    if "name" in raw:
        name = raw.pop("name")
        if isinstance(name, bool) or not isinstance(name, (str, int)) or not str(name).strip():
            raise ConfigError(f"{source}: key 'name': must be a non-empty text, not {name!r}")
        name = str(name)
    for key in raw:
        if key not in _PARAMS and key not in _C2C_PARAMS and key != "ecc":
            raise ConfigError(
                f"{source}: unknown key {key!r}; known keys are: base, name, "
                + ", ".join(_PARAMS) + ", ecc, " + ", ".join(_C2C_PARAMS)
            )
    values.update(raw)
    return _build(values, name=name, source=source)


def param_table() -> list[tuple[str, str, str, str]]:
    """(key, type, range, description) for the docs."""
    out = []
    for k, (typ, lo, hi, extra, desc) in (_PARAMS | _C2C_PARAMS).items():
        rng = f"{lo} .. {hi}" + (", power of two" if extra == "pow2" else "")
        out.append((k, typ.__name__, rng, desc))
    return out


def as_dict(cfg: ChipConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d.pop("source")
    d.update(vl=cfg.vl, hash=cfg.hash)
    return d
