"""The trainer, as small parts: building a run (:mod:`~d2sp.training.build`), one epoch
(:mod:`~d2sp.training.epoch`), evaluation (:mod:`~d2sp.training.evaluate`), checkpoints
(:mod:`~d2sp.training.checkpoint`), what observes a run (:mod:`~d2sp.training.callbacks`),
the distributed bookkeeping (:mod:`~d2sp.training.replicas`) and the loop
(:mod:`~d2sp.training.fit`)."""

from d2sp.training.checks import (
    NonFiniteLossError,
    PurificationGuardError,
    purifier_options,
    validate_config,
)
from d2sp.training.evaluate import evaluate, predict_loader
from d2sp.training.fit import RunResult, train

__all__ = [
    "NonFiniteLossError",
    "PurificationGuardError",
    "RunResult",
    "evaluate",
    "predict_loader",
    "purifier_options",
    "train",
    "validate_config",
]
