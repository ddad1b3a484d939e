"""The suite's grid: the settings of each dataset (sizes, network, epochs of each regime),
its cells, the default grid, and the key that names a cell's runs.

A cell is ``(dataset, noise, regime)``, written ``dataset/noise/regime``. Regimes: ``short``
and ``long`` train from scratch for the dataset's ``short`` / ``long`` epochs;
``pretrained`` first trains the network with plain CE on the dataset's clean pretraining
split (``pretrain_epochs``), then fine-tunes it on the noisy training set for
``pretrained`` epochs (every row starts from the same encoder; the pretraining is not
counted in a row's cost). A regime whose epochs are 0 has no cells.

The default grid (:data:`GRID`) holds the cells where the network learns the classes well
beyond the spread over seeds, and the clean controls; ``--cells`` picks others by pattern
(``fashion/*/long``, ``digits/*/*``, ``*/gen/*``).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json

import yaml

SETTINGS: dict[str, dict] = {
    "fashion": dict(train=10000, pretrain=5000, test=10000, size=16,
                    short=12, long=30, pretrained=10, pretrain_epochs=10),
    "synth": dict(train=720, test=480, pretrain=720, size=48, frames=4, width=8, lstm=64,
                  short=15, long=30, pretrained=15, pretrain_epochs=15),
    "digits": dict(size=16, short=15, long=60, pretrained=0),
}  # fmt: skip
DATASETS = tuple(SETTINGS)
NOISES = ("dual", "heavy", "clean", "gen")
REGIMES = ("short", "long", "pretrained")
EPOCH_KEYS = (*REGIMES, "pretrain_epochs")

# The default grid: Fashion-MNIST (10k real training images) under both noise settings in
# every regime, with its clean controls; SynthDFER clips where the network learns the classes
# beyond the seed spread (heavy noise: oracle − CE ≈ 30 points, sd ≈ 1; in dual short noise
# the gap was within the spread), with its clean control. Sized so that the default rows
# (CE, oracle, the recommended mode) take well under an hour of a 2-core CPU with --jobs 2.
GRID: tuple[str, ...] = (
    "fashion/dual/short", "fashion/heavy/short", "fashion/clean/short",
    "fashion/dual/long", "fashion/heavy/long", "fashion/clean/long",
    "fashion/dual/pretrained", "fashion/heavy/pretrained", "fashion/clean/pretrained",
    "synth/heavy/short", "synth/clean/short",
)  # fmt: skip
QUICK: tuple[str, ...] = ("fashion/dual/short", "fashion/clean/short")  # --quick (seed 0)


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


def all_cells(settings: dict) -> list[tuple[str, str, str]]:
    """Every cell there is: each dataset × noise × regime whose regime has epochs (the other
    injector, ``gen``, works on images only)."""
    return [(d, nz, rg) for rg in REGIMES for d in DATASETS for nz in NOISES
            if settings[d].get(rg, 0) > 0 and not (d == "synth" and nz == "gen")]  # fmt: skip


def select_cells(patterns, settings: dict) -> list[tuple[str, str, str]]:
    """The cells matching ``patterns`` (``dataset/noise/regime``, shell wildcards; None: the
    default grid), in the grid's order; ValueError for a pattern that matches none."""
    every = all_cells(settings)
    out = []
    for pattern in patterns or GRID:
        hit = [c for c in every if fnmatch.fnmatchcase(name(c), pattern)]
        if not hit:
            raise ValueError(f"--cells: {pattern!r} matches no cell; cells are dataset/noise/regime with "
                             f"dataset in {', '.join(DATASETS)}, noise in {', '.join(NOISES)}, regime in "
                             f"{', '.join(REGIMES)} (a regime with 0 epochs has none)")  # fmt: skip
        out += hit
    chosen = set(out)
    return [c for c in every if c in chosen]


def name(cell) -> str:
    return "/".join(cell)


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def cell_key(cell: tuple[str, str, str], loop: str, settings: dict) -> str:
    """The name of a cell's runs: the cell, the loop and a digest of everything that shapes
    its runs (the dataset's settings, its regime's epochs), so that runs under other settings
    never mix with these in one table."""
    d, nz, rg = cell
    s = {k: v for k, v in settings[d].items() if k not in REGIMES or k == rg}
    return f"{d}-{nz}-{rg}-{loop}-{_digest(s)}"


def encoder_key(dataset: str, seed: int, loop: str, settings: dict) -> str:
    """The file name of the encoder pretrained for ``dataset`` and ``seed``."""
    s = {k: v for k, v in settings[dataset].items() if k not in REGIMES}
    return f"{dataset}-{loop}-{_digest(s)}-s{seed}.pt"
