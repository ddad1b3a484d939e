"""Reading a run folder, once, for every command that looks at finished runs (report,
export, experiments, folds), and the helpers they share over what it holds.

A run folder is what :func:`d2sp.train` writes: ``config.yaml``, ``metrics.jsonl``,
``ledger.npz``, ``summary.json``, ``class_counts.json``, ``skipped.txt`` (rows skipped as
bad input), ``events.txt`` (the purifier's decisions in words) and the checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from d2sp.config import ConfigError, RunConfig, load_config
from d2sp.purify.ledger import Ledger

RUN_FILES = {
    "config.yaml": "the resolved run config",
    "metrics.jsonl": "the per-epoch metrics",
    "ledger.npz": "the purification ledger",
}


class RunFolderError(ValueError):
    """A folder that is not a (complete) run folder, or a run whose data cannot be read."""


@dataclass
class RunFolder:
    """What a run folder holds, read once.

    Attributes:
        path: the run folder.
        config: the resolved run config (``config.yaml``).
        metrics: one dict per finished epoch (``metrics.jsonl``), empty when not required.
        ledger: the purification ledger (``ledger.npz``), None when not required and absent.
        summary: ``summary.json`` (empty while the run is still going).
        class_names: the class names, from the train split or ``class_counts.json``.
    """

    path: Path
    config: RunConfig
    metrics: list[dict]
    ledger: Ledger | None
    summary: dict
    class_names: tuple[str, ...]
    _split: object = field(default=None, repr=False)

    @property
    def num_epochs(self) -> int:
        """Epochs in the ledger (or in the metrics when there is no ledger)."""
        return self.ledger.num_epochs if self.ledger is not None else len(self.metrics)

    def load_train_split(self):
        """The run's training split (same samples and order as in the run), read once.

        Raises:
            RunFolderError: the data cannot be read, or it no longer matches the ledger.
        """
        if self._split is None:
            from d2sp.data.frames import DataError
            from d2sp.data.splits import load_split

            try:
                split = load_split(self.config.data, "train", progress=False)
            except (DataError, ValueError, OSError) as e:
                raise RunFolderError(f"cannot read the run's training data: {e}") from None
            if self.ledger is not None and len(split.samples) != len(self.ledger.labels):
                raise RunFolderError(
                    f"the training data has {len(split.samples)} samples but the ledger "
                    f"{len(self.ledger.labels)}: the dataset changed since the run"
                )
            self._split = split
        return self._split


def read_run(run_dir: str | Path, *, require: tuple[str, ...] = tuple(RUN_FILES)) -> RunFolder:
    """Read a run folder; ``require`` names the files that must be there.

    Raises:
        RunFolderError: the folder is missing, or a required file is missing or unreadable;
            the message names the folder and every missing file.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunFolderError(f"{path}: no such folder (expected a run folder)")
    missing = [name for name in require if not (path / name).is_file()]
    if missing:
        what = ", ".join(f"{name} ({RUN_FILES.get(name, 'required')})" for name in missing)
        raise RunFolderError(f"{path}: not a run folder: missing {what}")
    try:
        config = load_config(path / "config.yaml")
    except ConfigError as e:
        raise RunFolderError(f"{path / 'config.yaml'}: cannot read the run config: {e}") from None
    metrics = _read_metrics(path / "metrics.jsonl") if (path / "metrics.jsonl").is_file() else []
    if "metrics.jsonl" in require and not metrics:
        raise RunFolderError(f"{path / 'metrics.jsonl'}: no finished epoch recorded yet")
    ledger = None
    if (path / "ledger.npz").is_file():
        try:
            ledger = Ledger.load(path / "ledger.npz")
        except (OSError, ValueError, KeyError) as e:
            raise RunFolderError(f"{path / 'ledger.npz'}: cannot read the ledger ({e})") from None
        if "ledger.npz" in require and ledger.num_epochs == 0:
            raise RunFolderError(f"{path / 'ledger.npz'}: the ledger has no epoch yet")
    summary = _read_json(path / "summary.json")
    run = RunFolder(path, config, metrics, ledger, summary, ())
    run.class_names = _class_names(run)
    return run


def _read_metrics(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise RunFolderError(f"{path}:{number}: not a JSON object ({e.msg})") from None
    return rows


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _class_names(run: RunFolder) -> tuple[str, ...]:
    counts = _read_json(run.path / "class_counts.json").get("train")
    if isinstance(counts, dict) and counts:
        return tuple(counts)
    from d2sp.data.labels import default_class_names

    k = 0
    if run.metrics and run.metrics[-1].get("confusion"):
        k = len(run.metrics[-1]["confusion"])
    elif run.ledger is not None and len(run.ledger.labels):
        k = int(run.ledger.labels.max()) + 1
    return default_class_names(max(k, 1))


def purify_options(cfg: RunConfig) -> dict:
    """The resolved options of a run's purifier mode (its defaults filled in); empty when
    the mode is not known here."""
    from d2sp.purify import purifier_class
    from d2sp.training.checks import purifier_options

    try:
        return purifier_class(cfg.purify.mode).resolve(purifier_options(cfg))
    except ValueError:
        return {}


def read_skipped(run_dir: str | Path) -> list[str]:
    """The lines of a run's ``skipped.txt`` (``"file:row: reason"``; ``… (met at epoch E)``
    for a clip found unreadable during training); empty when there is none."""
    path = Path(run_dir) / "skipped.txt"
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_events(run_dir: str | Path) -> list[tuple[int | None, str]]:
    """The purifier's decisions in words (``events.txt``), one ``(epoch, text)`` per line in
    the order written: ``epoch`` from a line's ``epoch N:`` prefix (None without one)."""
    path = Path(run_dir) / "events.txt"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        head, sep, rest = line.partition(":")
        words = head.split()
        if sep and len(words) == 2 and words[0] == "epoch" and words[1].isdigit():
            events.append((int(words[1]), rest.strip()))
        else:
            events.append((None, line.strip()))
    return events


def met_in_training(line: str) -> bool:
    """Whether a ``skipped.txt`` line is a clip found unreadable during training (``… (met
    at epoch E)``), not a row skipped when the data was read."""
    return line.endswith(")") and "(met at epoch " in line


def last_recorded(values: np.ndarray) -> np.ndarray:
    """``(E, N)`` -> ``(N,)``: each sample's last finite value over the epochs (NaN if none)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        return np.full(values.shape[-1] if values.ndim else 0, np.nan)
    finite = np.isfinite(values)
    last = values.shape[0] - 1 - finite[::-1].argmax(axis=0)
    out = values[last, np.arange(values.shape[1])]
    return np.where(finite.any(axis=0), out, np.nan)
