"""Data purification: the stages (pure functions), the history, the purifier, the ledger."""

from d2sp.purify.factory import PURIFIERS, create_purifier
from d2sp.purify.history import History
from d2sp.purify.improved import ImprovedPurifier, training_hooks
from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED, STATE_NAMES, UNDECIDED, Ledger
from d2sp.purify.purifier import Purifier
from d2sp.purify.stages import coarse_grained_pruning, fine_grained_correction, weighted_scores

__all__ = [
    "CORRECTED",
    "KEPT",
    "PRUNED",
    "STATE_NAMES",
    "UNDECIDED",
    "History",
    "ImprovedPurifier",
    "PURIFIERS",
    "Ledger",
    "Purifier",
    "coarse_grained_pruning",
    "create_purifier",
    "fine_grained_correction",
    "training_hooks",
    "weighted_scores",
]
