"""Data purification: the contract every mode implements, the registered modes, the paper's
stages as pure functions, the records and the ledger.

Importing this package registers every shipped mode: ``adaptive`` (the recommended mode),
``paper`` (the method as published), the baselines ``scn``, ``ce``, ``oracle``,
``cleanlab``, and the noisy-label methods ``gce``, ``elr``, ``coteach`` and ``dividemix``.
"""

from d2sp.purify import (  # noqa: F401, I001  (registration, in this order)
    adaptive,
    paper,
    scn,
    fixed,
    confident,
    gce,
    elr,
    coteach,
    dividemix,
)
from d2sp.purify.base import Decision, OptionError, Purifier
from d2sp.purify.loop import run_epoch
from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED, STATE_NAMES, UNDECIDED, Ledger
from d2sp.purify.records import Records
from d2sp.purify.registry import (
    PURIFIERS,
    create_purifier,
    list_modes,
    purifier_class,
    register_purifier,
)
from d2sp.purify.stages import coarse_grained_pruning, fine_grained_correction, weighted_scores

__all__ = [
    "CORRECTED",
    "KEPT",
    "PRUNED",
    "PURIFIERS",
    "STATE_NAMES",
    "UNDECIDED",
    "Decision",
    "Ledger",
    "OptionError",
    "Purifier",
    "Records",
    "coarse_grained_pruning",
    "create_purifier",
    "fine_grained_correction",
    "list_modes",
    "purifier_class",
    "register_purifier",
    "run_epoch",
    "weighted_scores",
]
