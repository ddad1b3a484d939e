"""d2sp: train video facial-expression classifiers while purifying their training data.

The method (D2SP, framework SCIU) adds a weight branch on the clip embedding, prunes
low-quality clips (Coarse-Grained Pruning) and corrects wrong labels (Fine-Grained
Correction), recomputed every epoch. The public API is flat::

    from d2sp import load_config, train, evaluate_run, predict_clips, export_run, write_report

    cfg = load_config("my-data.yaml", ["optim.epochs=20"])
    result = train(cfg)                           # a run folder: RUN_DIR = out_dir/name
    evaluate_run(result.run_dir, split="test")    # the run's model on any split
    rows, names = predict_clips(result.run_dir, ["clip.mp4"])
    export_run(result.run_dir)                    # the cleaned annotation
    write_report(result.run_dir)                  # RUN_DIR/report.html

and the plug-and-play pieces for one's own training loop (a loop drives one purifier
object with six calls, see :mod:`d2sp.purify.base`)::

    from d2sp import ClassifierHead, create_model, create_purifier, list_modes

The package's parts: :mod:`d2sp.data` (datasets and noise), :mod:`d2sp.models` (backbones
and heads), :mod:`d2sp.purify` (the purifier modes and their losses), :mod:`d2sp.training`
(the trainer), :mod:`d2sp.runs` (a finished run folder: report, export, evaluation,
prediction), :mod:`d2sp.experiments` (grids of runs and folds) and :mod:`d2sp.commands`
(the command line, :mod:`d2sp.cli`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from d2sp.config import ConfigError, RunConfig, load_config, save_config
from d2sp.models import create_model, list_backbones, register_backbone
from d2sp.models.heads import ClassifierHead, WeightBranch
from d2sp.purify import (
    Ledger,
    Purifier,
    coarse_grained_pruning,
    create_purifier,
    fine_grained_correction,
    list_modes,
    register_purifier,
    run_epoch,
)
from d2sp.purify.losses import weighted_cross_entropy

if TYPE_CHECKING:
    from d2sp.data.registry import create_dataset, list_datasets, register_dataset
    from d2sp.experiments.folds import run_folds
    from d2sp.runs.evaluation import evaluate_run
    from d2sp.runs.export import export_run
    from d2sp.runs.folder import RunFolder, RunFolderError, read_run
    from d2sp.runs.model import load_run_model
    from d2sp.runs.prediction import predict_clips, write_predictions
    from d2sp.runs.report import write_report
    from d2sp.training.fit import RunResult, train

__version__ = "0.1.0"

# loaded on first use, so that `import d2sp` (and with it every command) stays light
_LAZY = {
    "create_dataset": "d2sp.data.registry",
    "list_datasets": "d2sp.data.registry",
    "register_dataset": "d2sp.data.registry",
    "run_folds": "d2sp.experiments.folds",
    "evaluate_run": "d2sp.runs.evaluation",
    "export_run": "d2sp.runs.export",
    "RunFolder": "d2sp.runs.folder",
    "RunFolderError": "d2sp.runs.folder",
    "read_run": "d2sp.runs.folder",
    "load_run_model": "d2sp.runs.model",
    "predict_clips": "d2sp.runs.prediction",
    "write_predictions": "d2sp.runs.prediction",
    "write_report": "d2sp.runs.report",
    "RunResult": "d2sp.training.fit",
    "train": "d2sp.training.fit",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'd2sp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ClassifierHead",
    "ConfigError",
    "Ledger",
    "Purifier",
    "RunConfig",
    "RunFolder",
    "RunFolderError",
    "RunResult",
    "WeightBranch",
    "coarse_grained_pruning",
    "create_dataset",
    "create_model",
    "create_purifier",
    "evaluate_run",
    "export_run",
    "fine_grained_correction",
    "list_backbones",
    "list_datasets",
    "list_modes",
    "load_config",
    "load_run_model",
    "predict_clips",
    "read_run",
    "register_backbone",
    "register_dataset",
    "register_purifier",
    "run_epoch",
    "run_folds",
    "save_config",
    "train",
    "weighted_cross_entropy",
    "write_predictions",
    "write_report",
]
