"""The suite's grid: the settings of each dataset (sizes, network, epochs of each regime),
its cells, and where each run and pretrained encoder is cached.

A cell is ``(dataset, noise, regime)``. Regimes: ``short`` and ``long`` train from scratch
for the dataset's ``short`` / ``long`` epochs; ``pretrained`` first trains the network with
plain CE on the dataset's clean pretraining split (``pretrain_epochs``), then fine-tunes it
on the noisy training set for ``pretrained`` epochs (every row starts from the same encoder;
the pretraining is not counted in a row's cost). A regime whose epochs are 0 has no cells.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import yaml

SETTINGS: dict[str, dict] = {
    "fashion": dict(train=12000, pretrain=6000, test=10000, size=16,
                    short=12, long=40, pretrained=12, pretrain_epochs=10),
    "synth": dict(train=720, test=480, pretrain=720, size=48, frames=4, width=8, lstm=64,
                  short=15, long=30, pretrained=15, pretrain_epochs=15),
    "digits": dict(size=16, short=15, long=60, pretrained=0),
}  # fmt: skip
DATASETS = ("fashion", "synth")  # the default grid (digits: --datasets digits)
NOISES = ("dual", "heavy", "clean")  # the default grid (gen: --noises gen)
REGIMES = ("short", "long", "pretrained")
EPOCH_KEYS = (*REGIMES, "pretrain_epochs")


def settings_with(overrides: list[str]) -> dict[str, dict]:
    """:data:`SETTINGS` with ``dataset.key=value`` overrides (e.g. ``fashion.train=2000``,
    ``synth.short=0``); ValueError naming a bad one."""
    out = copy.deepcopy(SETTINGS)
    for text in overrides:
        key, sep, value = text.partition("=")
        dataset, _, name = key.partition(".")
        if not sep or dataset not in out or name not in out[dataset]:
            known = ", ".join(f"{d}.{k}" for d, s in SETTINGS.items() for k in s)
            raise ValueError(f"--set: expected dataset.key=value with one of {known}; got {text!r}")
        out[dataset][name] = yaml.safe_load(value)
    return out


def cells_of(datasets, noises, regimes, settings: dict) -> list[tuple[str, str, str]]:
    """Every ``(dataset, noise, regime)`` asked for whose regime has epochs."""
    return [(d, nz, rg) for rg in regimes for d in datasets for nz in noises if settings[d].get(rg, 0) > 0]


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def cell_key(cell: tuple[str, str, str], loop: str, settings: dict) -> str:
    """The folder name of a cell's runs: the cell, the loop and a digest of everything that
    shapes its runs (the dataset's settings, its regime's epochs), so that other settings
    never mix with these in one table."""
    d, nz, rg = cell
    s = {k: v for k, v in settings[d].items() if k not in REGIMES or k == rg}
    return f"{d}-{nz}-{rg}-{loop}-{_digest(s)}"


def row_slug(row: str) -> str:
    """A file name for ``row`` (the row itself is stored in the file)."""
    return re.sub(r"[^A-Za-z0-9=.+-]+", "_", row)[:60] + "-" + _digest(row)[:6]


def run_path(cache: Path, cell, row: str, seed: int, loop: str, settings: dict) -> Path:
    return cache / "runs" / cell_key(cell, loop, settings) / f"s{seed}" / f"{row_slug(row)}.json"


def encoder_path(cache: Path, dataset: str, seed: int, loop: str, settings: dict) -> Path:
    """Where the encoder pretrained for ``dataset`` and ``seed`` is kept."""
    s = {k: v for k, v in settings[dataset].items() if k not in REGIMES}
    return cache / "pretrained" / f"{dataset}-{loop}-{_digest(s)}-s{seed}.pt"
