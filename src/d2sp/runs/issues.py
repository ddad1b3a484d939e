"""The ranked list of suspicious training samples of a run (``issues.csv`` of ``d2sp export``).

Every purification mode gives each sample a suspicion score (higher = more likely a label
issue or an unusable clip) and a suggested label, per epoch, in the ledger. The list ranks
the samples by the final epoch's suspicion, most suspicious first; a sample never scored
(NaN) comes last; ties keep the annotation order.

Columns (:data:`ISSUE_COLUMNS`): ``rank`` (1-based), ``index`` (the sample's position in the
training annotation), ``id`` (the clip id, else its path), ``path``, ``source``
(``file:row``), ``given_label`` and ``suggested_label`` written the way the input
annotation writes labels (DFEW: 1-based ids; FERV39k and MAFW: emotion names as in their
files; csv: as the file writes them; list files: 0-based indices), ``given_name`` and
``suggested_name`` (the class names), ``suspicion`` (the score the ranking uses) and
``state`` at the final epoch (``kept``, ``pruned``, ``corrected``, ``undecided``, or
``skipped`` for a clip found unreadable during training).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from d2sp.purify.ledger import STATE_NAMES, Ledger

ISSUE_COLUMNS = (
    "rank", "index", "id", "path", "source", "given_label", "given_name", "suggested_label",
    "suggested_name", "suspicion", "state",
)  # fmt: skip


def rank_issues(ledger: Ledger) -> np.ndarray:
    """Sample indices, most suspicious first by the final epoch's ``suspicion`` (NaN last,
    ties in annotation order)."""
    suspicion = ledger.column("suspicion")[-1].astype(np.float64)  # (N,)
    key = np.where(np.isnan(suspicion), np.inf, -suspicion)
    return np.argsort(key, kind="stable")


def issues_table(
    ledger: Ledger,
    samples: Sequence,
    class_names: Sequence[str],
    spell: Callable[[int], str] = str,
    *,
    limit: int | None = None,
    skipped: np.ndarray | None = None,
) -> dict[str, list]:
    """The ranked issues as columns (:data:`ISSUE_COLUMNS`); ``spell(k)`` writes class ``k``
    as the input does, ``limit`` keeps the first rows, ``skipped`` ``(N,)`` bool marks the
    clips found unreadable during training."""
    n = len(ledger.labels)
    if len(samples) != n:
        raise ValueError(f"samples: expected {n} for the ledger, got {len(samples)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit: expected None or >= 0, got {limit}")
    order = rank_issues(ledger)[:limit]
    suspicion = ledger.column("suspicion")[-1].astype(np.float64)
    suggested = ledger.column("suggested")[-1].astype(np.int64)
    state = ledger.column("state")[-1]
    given = ledger.labels.astype(np.int64)
    skipped = np.zeros(n, dtype=bool) if skipped is None else np.asarray(skipped, dtype=bool)

    def name(k: int) -> str:
        return class_names[k] if 0 <= k < len(class_names) else str(k)

    def written(k: int) -> str:
        return spell(k) if 0 <= k < len(class_names) else str(k)

    rows = [int(i) for i in order]
    return {
        "rank": list(range(1, len(rows) + 1)),
        "index": rows,
        "id": [samples[i].meta.get("video_id") or samples[i].path for i in rows],
        "path": [samples[i].path for i in rows],
        "source": [samples[i].source for i in rows],
        "given_label": [written(int(given[i])) for i in rows],
        "given_name": [name(int(given[i])) for i in rows],
        "suggested_label": [written(int(suggested[i])) for i in rows],
        "suggested_name": [name(int(suggested[i])) for i in rows],
        "suspicion": [float(suspicion[i]) for i in rows],
        "state": [
            "skipped" if skipped[i] else STATE_NAMES.get(int(state[i]), str(int(state[i])))
            for i in rows
        ],
    }


def write_issues_csv(table: dict[str, list], path: str | Path) -> Path:
    """Write an :func:`issues_table` as CSV (NaN suspicion as an empty cell)."""
    path = Path(path)
    columns = list(table)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in zip(*(table[c] for c in columns), strict=True):
            writer.writerow(
                ["" if isinstance(v, float) and np.isnan(v) else f"{v:.6g}" if isinstance(v, float)
                 else v for v in row]  # fmt: skip
            )
    return path
