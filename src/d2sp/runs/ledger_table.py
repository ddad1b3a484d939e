"""A run's ledger as one row per training sample: its given and final label and state, the
epochs it was first pruned or corrected, its weights and scores (``ledger.csv`` and
``ledger.parquet`` of :func:`d2sp.runs.export.export_run`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from d2sp.purify.ledger import CORRECTED, PRUNED, STATE_NAMES, Ledger
from d2sp.runs.folder import last_recorded

LEDGER_COLUMNS = (
    "index",  # position in the training annotation (the dataset index of the run)
    "path",  # the clip's frame folder or video file
    "source",  # annotation "file:row"
    "given_label",  # annotated label (0-based class index, whatever the input's numbering)
    "given_name",
    "final_label",  # training label after the final epoch (0-based class index)
    "final_name",
    "final_state",  # undecided / kept / pruned / corrected at the final epoch
    "first_pruned_epoch",  # 1-based; empty when never pruned
    "first_corrected_epoch",  # 1-based; empty when never corrected
    "last_change_epoch",  # last epoch that pruned, un-pruned or relabelled it; empty if none
    "epochs_pruned",
    "epochs_corrected",
    "mean_weight",  # over the epochs with a record
    "final_weight",  # the last recorded weight
    "final_delta_p",
    "final_score",
    "given_input",  # given_label as the input annotation writes it (DFEW: 1-based id; FERV39k,
    "final_input",  # MAFW: the emotion name; csv: as the file writes it; list: 0-based index)
)


def ledger_table(ledger: Ledger, samples, class_names, *, spell=str) -> dict[str, list]:
    """The per-sample history of a ledger as columns (:data:`LEDGER_COLUMNS`).

    Epochs are 1-based; an epoch that never happened is None; a value never recorded is
    NaN. ``samples`` gives the paths and sources (``len(samples) == N``). Labels are
    0-based class indices, and also written as the input writes them (``spell(k)``, in
    ``given_input`` and ``final_input``: DFEW's 1-based ids, FERV39k and MAFW names).
    """
    n = len(ledger.labels)
    if len(samples) != n:
        raise ValueError(f"{len(samples)} samples for a ledger of {n}")
    given = ledger.labels.astype(np.int64)
    state = ledger.column("state")  # (E, N)
    label = ledger.column("label").astype(np.int64)  # (E, N)
    weight = ledger.column("weight").astype(np.float64)
    pruned = state == PRUNED
    corrected = state == CORRECTED
    prev_pruned = np.vstack([np.zeros((1, n), dtype=bool), pruned[:-1]])
    prev_label = np.vstack([given[None, :], label[:-1]])
    changed = (pruned != prev_pruned) | (label != prev_label)  # (E, N)

    finite = np.isfinite(weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_w = np.where(
            finite.any(axis=0),
            np.where(finite, weight, 0.0).sum(axis=0) / finite.sum(axis=0),
            np.nan,
        )
    final_state = state[-1]
    final_label = label[-1]

    def name(k):
        return class_names[k] if 0 <= k < len(class_names) else str(k)

    def written(k):
        return spell(k) if 0 <= k < len(class_names) else str(k)

    return {
        "index": list(range(n)),
        "path": [s.path for s in samples],
        "source": [s.source for s in samples],
        "given_label": given.tolist(),
        "given_name": [name(int(k)) for k in given],
        "final_label": final_label.tolist(),
        "final_name": [name(int(k)) for k in final_label],
        "final_state": [STATE_NAMES.get(int(s), str(int(s))) for s in final_state],
        "first_pruned_epoch": _first_epoch(pruned),
        "first_corrected_epoch": _first_epoch(corrected),
        "last_change_epoch": _last_epoch(changed),
        "epochs_pruned": pruned.sum(axis=0).tolist(),
        "epochs_corrected": corrected.sum(axis=0).tolist(),
        "mean_weight": mean_w.tolist(),
        "final_weight": last_recorded(weight).tolist(),
        "final_delta_p": ledger.column("delta_p")[-1].astype(np.float64).tolist(),
        "final_score": ledger.column("score")[-1].astype(np.float64).tolist(),
        "given_input": [written(int(k)) for k in given],
        "final_input": [written(int(k)) for k in final_label],
    }


def _first_epoch(mask: np.ndarray) -> list[int | None]:
    """Per column of an ``(E, N)`` mask: the first 1-based epoch where it holds, or None."""
    any_ = mask.any(axis=0)
    return [int(e) + 1 if a else None for e, a in zip(mask.argmax(axis=0), any_, strict=True)]


def _last_epoch(mask: np.ndarray) -> list[int | None]:
    """Per column of an ``(E, N)`` mask: the last 1-based epoch where it holds, or None."""
    any_ = mask.any(axis=0)
    e_last = mask.shape[0] - 1 - mask[::-1].argmax(axis=0)
    return [int(e) + 1 if a else None for e, a in zip(e_last, any_, strict=True)]


def write_ledger_csv(table: dict[str, list], path: str | Path) -> Path:
    """Write a :func:`ledger_table` as CSV (None and NaN as empty cells)."""
    path = Path(path)

    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.6g}"
        return v

    columns = list(table)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in zip(*(table[c] for c in columns), strict=True):
            writer.writerow([cell(v) for v in row])
    return path


def write_ledger_parquet(table: dict[str, list], path: str | Path) -> Path | None:
    """Write a :func:`ledger_table` as Parquet; None (nothing written) without pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    path = Path(path)
    pq.write_table(pa.table({c: pa.array(v) for c, v in table.items()}), path)
    return path
