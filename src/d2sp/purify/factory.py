"""Build a purifier by mode name: ``"paper"`` (DESIGN §2, the reference), ``"d2sp+"`` (the
improved mode) or ``"scn"`` (the Self-Cure-style baseline)."""

from __future__ import annotations

from d2sp.purify.baselines import ScnPurifier
from d2sp.purify.improved import ImprovedPurifier
from d2sp.purify.purifier import Purifier

PURIFIERS = {"paper": Purifier, "d2sp+": ImprovedPurifier, "scn": ScnPurifier}


def create_purifier(mode: str, labels, *, num_classes: int, **options):
    """A purifier for ``mode`` over the annotation ``labels (N,)``.

    ``options`` are the keyword options of the mode's class (:class:`Purifier` for
    ``"paper"``, :class:`ImprovedPurifier` for ``"d2sp+"``, :class:`ScnPurifier` for ``"scn"``).
    All have the same public API
    (``record``, ``end_epoch``, ``labels_for``, ``kept_indices``, ``pruned_indices``,
    ``corrected_indices``, ``state_dict``, ``load_state_dict``, ``ledger``).
    """
    if mode not in PURIFIERS:
        raise ValueError(f"mode: expected one of {', '.join(PURIFIERS)}, got {mode!r}")
    cls = PURIFIERS[mode]
    try:
        return cls(labels, num_classes=num_classes, **options)
    except TypeError as err:
        raise ValueError(f"mode {mode!r}: {err}") from None
