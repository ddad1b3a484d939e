"""The cells of an experiment grid: which run a table row asks for (config overrides and a
seed), and the run folder it gets. Cells asking for the same run share one folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from d2sp.config import ConfigError, RunConfig, apply_overrides, config_from_dict, config_to_dict


def format_value(value: Any) -> str:
    """A YAML value written back the same way whatever its spelling was (``0.60`` → ``0.6``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, sort_keys=True)


def canonical_overrides(overrides: Iterable[str]) -> tuple[str, ...]:
    """``key=value`` strings sorted by key, the last one of a key winning, values normalised.

    Two override lists that configure the same run give the same tuple.
    """
    values: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. purify.lam=0.7")
        try:
            parsed = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from None
        values[key] = format_value(parsed)
    return tuple(f"{k}={values[k]}" for k in sorted(values))


def run_slug(overrides: Iterable[str], seed: int) -> str:
    """Run-folder name for (overrides, seed): readable, and equal exactly for equal runs."""
    canon = canonical_overrides(overrides)
    digest = hashlib.sha1(("\n".join(canon) + f"\nseed={seed}").encode()).hexdigest()[:8]
    parts = []
    for item in canon:
        key, _, value = item.partition("=")
        value = {"true": "1", "false": "0", "null": "none"}.get(value, value)
        parts.append(re.sub(r"[^A-Za-z0-9.+-]", "", key.rsplit(".", 1)[-1] + value))
    readable = "_".join(p for p in parts if p)[:80] or "base"
    return f"{readable}_s{seed}_{digest}"


@dataclass(frozen=True)
class Cell:
    """One entry of a grid: ``row`` of ``table``, trained with ``overrides`` and ``seed``
    (in the run folder ``folder`` when given, else one named by :func:`run_slug`)."""

    table: str
    row: str
    overrides: tuple[str, ...]
    seed: int
    folder: str | None = None

    @property
    def slug(self) -> str:
        """Run-folder name; cells asking for the same run share it."""
        return self.folder or run_slug(self.overrides, self.seed)


class Plan(list):
    """A list of :class:`Cell` with ``skipped``: one line per requested row left out, and why."""

    def __init__(self, cells: Iterable[Cell] = (), skipped: Iterable[str] = ()):
        super().__init__(cells)
        self.skipped = list(skipped)


def cell_config(
    base_cfg: RunConfig, cell: Cell, *, out_dir: str | Path | None = None, runs_dir: str = "runs"
) -> RunConfig:
    """The config a cell runs: the base config with the cell's overrides and seed.

    With ``out_dir`` the run is named by the cell's slug under ``out_dir/runs_dir``.
    """
    values = apply_overrides(copy.deepcopy(config_to_dict(base_cfg)), list(cell.overrides))
    values["seed"] = cell.seed
    cfg = config_from_dict(values)
    if out_dir is not None:
        cfg.name = cell.slug
        cfg.out_dir = str(Path(out_dir) / runs_dir)
    return cfg
