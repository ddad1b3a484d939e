"""d2sp: train video facial-expression classifiers while purifying their training data.

The method (D2SP, framework SCIU) adds a weight branch on the clip embedding, prunes
low-quality clips (Coarse-Grained Pruning) and corrects wrong labels (Fine-Grained
Correction), recomputed every epoch. The plug-and-play pieces are importable from here::

    from d2sp import ClassifierHead, create_purifier

and a training loop drives one purifier object with six calls (see :mod:`d2sp.purify.base`).
"""

from d2sp.models.heads import ClassifierHead, WeightBranch
from d2sp.purify import (
    Ledger,
    Purifier,
    coarse_grained_pruning,
    create_purifier,
    fine_grained_correction,
    list_modes,
    register_purifier,
)
from d2sp.purify.losses import weighted_cross_entropy

__version__ = "0.1.0"

__all__ = [
    "ClassifierHead",
    "Ledger",
    "Purifier",
    "WeightBranch",
    "coarse_grained_pruning",
    "create_purifier",
    "fine_grained_correction",
    "list_modes",
    "register_purifier",
    "weighted_cross_entropy",
]
