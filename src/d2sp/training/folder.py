"""A run folder before a run starts in it: a new folder, a run to continue, or a run to
replace. A folder that already holds a run is never written over by accident; one whose run
stopped before its first epoch (a bad clip met in it, an interrupt) holds nothing of value
and is started again."""

from __future__ import annotations

import shutil
from pathlib import Path

from d2sp.config import ConfigError, RunConfig, config_to_dict, load_config

RUN_FILES = (
    "config.yaml", "metrics.jsonl", "ledger.npz", "summary.json", "class_counts.json",
    "skipped.txt", "events.txt", "best.pt", "last.pt", "prev.pt", "best.pt.tmp", "last.pt.tmp",
)  # fmt: skip
RUN_DIRS = ("cleanlab",)  # a mode's own files inside the run folder (cleanlab's fold runs)
MARKERS = (
    "config.yaml", "metrics.jsonl", "ledger.npz", "summary.json", "best.pt", "last.pt", "prev.pt",
)  # fmt: skip
RESUMABLE_KEYS = (  # may differ on a resume
    "optim.epochs", "out_dir", "data.workers", "data.skip_bad",
)  # fmt: skip
PROGRESS = ("ledger.npz", "summary.json", "best.pt", "last.pt", "prev.pt")  # an epoch got done


class RunExistsError(ValueError):
    """The run folder already holds a run and neither resume nor overwrite was asked for."""


def existing_run(run_dir: str | Path) -> list[str]:
    """The files in ``run_dir`` that mark a run (config, metrics, ledger, summary,
    checkpoints); empty when there is none."""
    run_dir = Path(run_dir)
    return [name for name in MARKERS if (run_dir / name).is_file()]


def stopped_before_first_epoch(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run that stopped before finishing its first epoch: its
    config (and an empty ``metrics.jsonl``), but no recorded epoch, ledger, checkpoint or
    summary."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return False
    if any((run_dir / name).is_file() for name in PROGRESS):
        return False
    metrics = run_dir / "metrics.jsonl"
    return not metrics.is_file() or not metrics.read_text(encoding="utf-8").strip()


def config_changes(saved: RunConfig, asked: RunConfig) -> list[str]:
    """``"key: saved X, asked Y"`` for every config key whose value differs."""

    def walk(a: dict, b: dict, prefix: str) -> list[str]:
        out = []
        for key in sorted(set(a) | set(b), key=str):
            x, y, path = a.get(key), b.get(key), f"{prefix}{key}"
            if isinstance(x, dict) and isinstance(y, dict):
                out += walk(x, y, path + ".")
            elif x != y:
                out.append(f"{path}: saved {x!r}, asked {y!r}")
        return out

    return walk(config_to_dict(saved), config_to_dict(asked), "")


def check_run_folder(cfg: RunConfig, run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start where a run already is, unless asked to continue it or replace it.

    A run that stopped before its first epoch (:func:`stopped_before_first_epoch`) is
    not refused: the trainer starts it again (its files removed first).

    Raises:
        RunExistsError: ``run_dir`` holds a run that finished an epoch and neither
            ``resume`` nor ``overwrite``; the message names the folder, what it holds and
            both ways out.
        ValueError: ``resume`` and ``overwrite`` together; or, on a resume, a saved config
            that differs in anything but ``optim.epochs`` (the keys named), or fewer epochs
            than the run was planned for.
    """
    if resume and overwrite:
        raise ValueError(
            "resume and overwrite: expected at most one of them (--resume, --overwrite)"
        )
    found = existing_run(run_dir)
    if not found or overwrite:
        return
    if not resume and stopped_before_first_epoch(run_dir):
        return
    if not resume:
        raise RunExistsError(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with "
            f"--resume {run_dir} (train(..., resume=True)), or remove its files and start "
            "again with --overwrite (train(..., overwrite=True))"
        )
    if (run_dir / "config.yaml").is_file():
        check_resume_config(cfg, run_dir)


def check_resume_config(cfg: RunConfig, run_dir: Path) -> None:
    """A resume may only change ``optim.epochs`` (upwards) of the run in ``run_dir``
    (and ``out_dir``, ``data.workers``, which do not change what is trained, and
    ``data.skip_bad``: a clip met unreadable from then on is skipped instead of stopping
    the run)."""
    try:
        saved = load_config(run_dir / "config.yaml")
    except ConfigError as e:
        raise ValueError(f"{run_dir / 'config.yaml'}: cannot read the run's config: {e}") from None
    changes = [
        c for c in config_changes(saved, cfg) if c.split(":", 1)[0] not in RESUMABLE_KEYS
    ]  # fmt: skip
    if changes:
        keys = ", ".join(c.split(":", 1)[0] for c in changes)
        raise ValueError(
            f"cannot resume {run_dir}: its config differs in {keys} ({'; '.join(changes)}); "
            "a resume continues the same run and may only change optim.epochs (to extend it)"
        )
    if cfg.optim.epochs < saved.optim.epochs:
        raise ValueError(
            f"optim.epochs: the run in {run_dir} is planned for {saved.optim.epochs} epochs; "
            f"a resume can extend it, not shorten it (got {cfg.optim.epochs})"
        )


def remove_run_files(run_dir: Path, *, own_folders: bool = True) -> list[str]:
    """Remove the files a run wrote into ``run_dir`` (config, metrics, ledger, summary,
    checkpoints and, with ``own_folders``, a mode's own folder, e.g. cleanlab's resumable
    fold runs) and nothing else; returns the names removed."""
    removed = []
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            (run_dir / name).unlink()
            removed.append(name)
    for name in RUN_DIRS if own_folders else ():
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)
            removed.append(name + "/")
    return removed
