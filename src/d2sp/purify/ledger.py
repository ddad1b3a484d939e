"""The ledger: every sample's record and purification state, epoch by epoch.

Row ``e`` holds what was recorded during epoch ``e`` and the decision taken at its end,
which governs epoch ``e + 1``. The cleaned-annotation export, the report and the final
pruned/corrected counts (paper table 3) all come from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

UNDECIDED, KEPT, PRUNED, CORRECTED = 0, 1, 2, 3
STATE_NAMES = {UNDECIDED: "undecided", KEPT: "kept", PRUNED: "pruned", CORRECTED: "corrected"}


def state_codes(decided, keep, corrected):
    """``(N,)`` int8 states from ``(N,)`` bool tensors: undecided, pruned, corrected, else kept."""
    import torch

    state = torch.full(keep.shape, KEPT, dtype=torch.int8, device=keep.device)
    state[~decided] = UNDECIDED
    state[~keep] = PRUNED
    state[keep & corrected] = CORRECTED
    return state


def count_states(state, seen) -> dict[str, int]:
    """Counts of an epoch: ``recorded`` (from ``seen``), ``kept``, ``pruned``, ``corrected``,
    ``undecided`` (from ``state``)."""
    state = state.cpu()
    return {
        "recorded": int(seen.sum()),
        "kept": int((state == KEPT).sum()),
        "pruned": int((state == PRUNED).sum()),
        "corrected": int((state == CORRECTED).sum()),
        "undecided": int((state == UNDECIDED).sum()),
    }


def epoch_records(seen, records: dict) -> dict:
    """Ledger arrays of this epoch's records ``{weight, pred, p_pred, p_label}`` (``(N,)``
    tensors each): NaN (``-1`` for ``pred``) where the sample was not recorded."""
    import torch

    out = {}
    for f in ("weight", "p_pred", "p_label"):
        v = torch.where(seen, records[f], torch.full_like(records[f], float("nan")))
        out[f] = v.cpu().numpy().astype(np.float16)
    pred = records["pred"]
    out["pred"] = torch.where(seen, pred, torch.full_like(pred, -1)).cpu().numpy()
    return out


@dataclass
class Ledger:
    """Append-only per-epoch arrays over ``N`` samples, kept on the CPU."""

    labels: np.ndarray  # (N,) original annotation
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)

    COLUMNS = (
        "weight", "pred", "p_pred", "p_label", "score", "delta_p", "state", "label",
        "suspicion", "suggested",
    )  # fmt: skip

    def append(self, **arrays: np.ndarray) -> None:
        """Add one epoch; each keyword is an ``(N,)`` array named in ``COLUMNS``."""
        missing = set(self.COLUMNS) - set(arrays)
        if missing:
            raise ValueError(f"ledger row is missing columns {sorted(missing)}")
        for name in self.COLUMNS:
            self.rows.setdefault(name, []).append(np.asarray(arrays[name]))

    @property
    def num_epochs(self) -> int:
        return len(self.rows.get("state", []))

    def column(self, name: str) -> np.ndarray:
        """``(E, N)`` stacked array of one column."""
        if name not in self.COLUMNS:
            raise KeyError(f"unknown ledger column {name!r}; known: {', '.join(self.COLUMNS)}")
        if not self.rows.get(name):
            return np.zeros((0, len(self.labels)))
        return np.stack(self.rows[name])

    def final_counts(self) -> dict[str, int]:
        """Pruned and corrected counts at the last epoch (paper table 3)."""
        if self.num_epochs == 0:
            return {"pruned": 0, "corrected": 0, "kept": len(self.labels)}
        state = self.rows["state"][-1]
        return {
            "pruned": int((state == PRUNED).sum()),
            "corrected": int((state == CORRECTED).sum()),
            "kept": int(((state == KEPT) | (state == UNDECIDED)).sum()),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``labels`` and every column as ``(E, N)`` arrays to an ``.npz`` file."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, labels=self.labels, **{c: self.column(c) for c in self.COLUMNS})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        """Read a ledger written by :meth:`save` (one without suspicion columns, from an
        older version, gets NaN scores and its labels as the suggestions)."""
        with np.load(path) as data:
            ledger = cls(labels=data["labels"])
            for c in cls.COLUMNS:
                if c in data:
                    ledger.rows[c] = list(data[c])
            epochs = ledger.num_epochs
            if "suspicion" not in data:
                ledger.rows["suspicion"] = [np.full(len(ledger.labels), np.nan, np.float32)] * epochs
                ledger.rows["suggested"] = list(data["label"])
        return ledger
