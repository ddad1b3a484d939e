"""The run config: one dataclass tree, loadable from YAML, overridable as ``a.b=value``.

The resolved config is saved as ``config.yaml`` in every run folder and inside every
checkpoint, so a run can always be reproduced from its own folder.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    """Which data to train and test on, and how clips are sampled."""

    dataset: str = "synthdfer"  # registered dataset name
    root: str | None = None  # dataset root (synthdfer: None = the user cache folder)
    fold: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # passed to the dataset builder
    num_frames: int = 16
    size: int = 112
    crop_scale: tuple[float, float] = (0.8, 1.0)
    workers: int | str = "auto"  # DataLoader processes; auto: CPUs - 2 (CPUs - 1 up to 4), <= 32
    skip_bad: bool = False
    cache: str | None = None  # pack each split into a clip cache under this folder
    cache_codec: str | None = None  # that cache's codec: jpeg or raw (None: d2sp prepare's)
    allow_shared_test: bool = False  # train although the test split repeats training clips


@dataclass
class ModelConfig:
    """Backbone name and its keyword arguments; the head is added by the trainer."""

    name: str = "r18_lstm"
    options: dict[str, Any] = field(default_factory=dict)  # passed to the backbone builder
    pretrained: str | None = None  # a state-dict file, or imagenet / clip (d2sp[pretrained])
    weight_hidden: int | None = None  # default max(32, D // 4)
    dropout: float = 0.0
    encoder_lr_scale: float = 1.0  # learning-rate factor of the frame encoder
    freeze_encoder: bool = False  # train everything but the frame encoder


@dataclass
class PurifyConfig:
    """Purification: the mode and its options.

    ``mode`` names a registered purifier (``d2sp list-modes`` lists them). ``options`` are
    the mode's own, typed and checked by the mode's options schema; a key left empty (null)
    takes the mode's default, and a key the mode does not take is refused. A mode's option
    may also be written directly under ``purify`` (``purify.lam=0.7`` is
    ``purify.options.lam=0.7``).
    """

    mode: str = "adaptive"
    options: dict[str, Any] = field(default_factory=dict)  # the mode's options
    max_prune_fraction: float = 0.5  # warn when more of the data is pruned
    stop_on_overprune: bool = False  # stop instead of warning (also when a class is emptied)


@dataclass
class OptimConfig:
    """SGD with momentum, linear LR warm-up then cosine decay, per step."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_warmup_epochs: float = 1.0
    schedule: str = "cosine"  # cosine | constant
    label_smoothing: float = 0.0


@dataclass
class RunConfig:
    """Everything a run needs. ``device: auto`` picks CUDA when present."""

    name: str = "run"
    seed: int = 0
    out_dir: str = "runs"
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 | off
    channels_last: bool = True  # on CUDA
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    purify: PurifyConfig = field(default_factory=PurifyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


class ConfigError(ValueError):
    """A config key or value that does not fit the schema; ``key`` is its dotted path (None
    when the error is not about one key)."""

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


def resolve_workers(value: int | str) -> int:
    """DataLoader worker processes for ``data.workers``: an integer as given, or ``"auto"``:
    every CPU but two (one for the main process driving the device, one for its pinning
    thread and the system), every CPU but one up to 4 CPUs, at most 32, at least 0 (resolved
    where the run starts). On a 16-core GPU machine: 14, which a GPU training at ~2,800
    clips/s needs (``benchmarks/results/loader_table_cpu.md``)."""
    if value == "auto":
        cpus = os.cpu_count() or 1
        return max(0, min(32, cpus - 1 if cpus <= 4 else cpus - 2))
    return int(value)


def _coerce_workers(value, path: str):
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ConfigError(f"{path}: expected auto or an integer >= 0, got {value!r}", key=path)


def _build(cls, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise ConfigError(
            f"{where or 'config'}: expected a mapping, got {type(values).__name__}", key=where or None
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(f"unknown config key {path!r}; known: {', '.join(fields)}", key=path)
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value or {}, path)
        else:
            kwargs[key] = _coerce(value, default, path)
    return cls(**kwargs)


_OPTIONAL = {"cache_codec": str}  # keys whose default is None, by type


def _coerce(value, default, path):
    if path == "data.workers":
        return _coerce_workers(value, path)
    try:
        return _coerce_value(value, default, path)
    except ConfigError as e:
        raise ConfigError(str(e), key=path) from None


def _coerce_value(value, default, path):
    kind = _OPTIONAL.get(path.rsplit(".", 1)[-1]) if default is None else None
    if kind in (bool, str) and value is not None:
        if not isinstance(value, kind):
            raise ConfigError(f"{path}: expected {'true/false' if kind is bool else 'a string'}, got {value!r}")
        return value
    if kind is not None and value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if kind is int and float(value) != int(value):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return kind(value)
    if value is None or default is None or isinstance(default, dict):
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise ConfigError(f"{path}: expected a list of {len(default)} numbers, got {value!r}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{path}: expected a list of {len(default)} numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if isinstance(default, int | float) and not isinstance(value, int | float):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int) and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(default, str) and not isinstance(value, str):
        return str(value)
    return value


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from nested plain values, refusing unknown keys."""
    return _build(RunConfig, _mode_options_in_place(values or {}), "")


def _mode_options_in_place(values: dict[str, Any]) -> dict[str, Any]:
    """``purify.X`` for a key ``X`` that is not a field of :class:`PurifyConfig` is the
    mode's option ``purify.options.X`` (the mode checks it); a null one is dropped."""
    purify = values.get("purify")
    if not isinstance(purify, dict):
        return values
    own = {f.name for f in dataclasses.fields(PurifyConfig)}
    moved = {k: v for k, v in purify.items() if k not in own}
    if not moved:
        return values
    options = purify.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"purify.options: expected a mapping, got {options!r}", key="purify.options")
    kept = {k: v for k, v in purify.items() if k in own}
    merged = {**{k: v for k, v in moved.items() if v is not None}, **options}
    return {**values, "purify": {**kept, "options": merged}}


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Nested plain values (tuples as lists) for YAML or a checkpoint."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to nested plain values.

    A value that starts with a file-name template (``{split}.txt``, ``{fold}/{split}.csv``),
    which YAML would read as a mapping or refuse, is taken as the string it is.

    Raises:
        ConfigError: an override that is not ``key=value``, a value that is not valid YAML,
            or a key through a non-section; the message starts with ``override '...'``.
    """
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. purify.lam=0.7")
        value = _override_value(item, raw)
        node = values
        key = _canonical_key(key.strip())
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        if key == "purify.options":  # the mode's options add up; null empties them
            old = node.get("options")
            if value is None:
                value = {}
            elif isinstance(value, dict) and isinstance(old, dict):
                value = {**old, **value}
        node[parts[-1]] = value
    return values


_TEMPLATE = re.compile(r"^\s*\{(split|fold)\}")
QUOTE_HINT = (
    "a value holding {split} or {fold} is quoted inside a YAML mapping: "
    "data.options={list_file: '{split}.txt'}"
)
FILE_QUOTE_HINT = (
    "; in a YAML file, quote a value that starts with {split} or {fold}: "
    "list_file: '{split}.txt'"
)


def _override_value(item: str, raw: str):
    """The YAML value of an override's ``raw`` text (a leading ``{split}``/``{fold}``
    template: the string itself)."""
    if _TEMPLATE.match(raw):
        return raw.strip()
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        reason = " ".join(str(getattr(e, "problem", None) or e).split())
        hint = f"; {QUOTE_HINT}" if re.search(r"\{(split|fold)\}", raw) else ""
        raise ConfigError(
            f"override {item!r}: the value {raw!r} is not valid YAML ({reason}){hint}"
        ) from None


def _override_key(item: str) -> str:
    return _canonical_key(item.partition("=")[0].strip())


def _canonical_key(key: str) -> str:
    """``purify.X`` for a mode option ``X`` is ``purify.options.X``."""
    parts = key.split(".")
    own = {f.name for f in dataclasses.fields(PurifyConfig)}
    if len(parts) >= 2 and parts[0] == "purify" and parts[1] not in own:
        return ".".join(["purify", "options", *parts[1:]])
    return key


def _blame(error: ConfigError, path: Path | None, overrides: list[str]) -> str:
    """The message of a schema error, attributed to the last override that set its key (or a
    key above or below it), else to the YAML file."""
    key = error.key
    if key is not None:
        for item in reversed(overrides):
            k = _override_key(item)
            if k == key or k.startswith(key + ".") or key.startswith(k + "."):
                return f"override {item!r}: {error}"
    return f"{path}: {error}" if path is not None else str(error)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from the defaults) and apply overrides.

    Raises:
        ConfigError: naming the override at fault (``override 'key=value': ...``) or, for a
            key the overrides do not touch, the YAML file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        text = path.read_text()
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            hint = FILE_QUOTE_HINT if re.search(r"\{(split|fold)\}", text) else ""
            raise ConfigError(f"{path}: not valid YAML ({e}){hint}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    overrides = list(overrides or [])
    values = apply_overrides(_mode_options_in_place(copy.deepcopy(values)), overrides)
    try:
        cfg = config_from_dict(values)
        _check_mode_options(cfg)
    except ConfigError as e:
        raise ConfigError(_blame(e, path, overrides), key=e.key) from None
    return cfg


def _check_mode_options(cfg: RunConfig) -> None:
    """The mode's options schema refuses ``purify.options`` (its first problem, named by key)."""
    from d2sp.purify import OptionError, purifier_class

    try:
        purifier_class(cfg.purify.mode).resolve(cfg.purify.options)
    except OptionError as e:
        name = e.problems[0].split(":", 1)[0]
        raise ConfigError(f"purify.{e.problems[0]}", key=f"purify.options.{name}") from None
    except ValueError:
        return  # an unknown mode: the trainer's check lists the known ones


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
