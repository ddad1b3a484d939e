"""The figures of a grid's run, read back from its run folder (``summary.json``,
``metrics.jsonl``, ``ledger.npz``), so that a finished run found on disk reports the same
figures as a fresh one; with a ground truth (SynthDFER) also the precision and recall of
what was pruned and relabelled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from d2sp.config import RunConfig, config_to_dict

QUALITY_COLUMNS = (
    "prune_precision",
    "prune_recall",
    "correct_precision",
    "correct_recall",
    "removed_precision",
)
FIGURE_COLUMNS = ("war", "uar", "best_war", "pruned", "corrected", "train_size", "seconds")


def ground_truth(cfg: RunConfig, cache: dict) -> dict | None:
    """The ground truth of the run's training split (SynthDFER; generated once if missing)."""
    from d2sp.data.registry import has_ground_truth

    if not has_ground_truth(cfg.data.dataset):
        return None
    key = json.dumps(config_to_dict(cfg)["data"], sort_keys=True)
    if key not in cache:
        from d2sp.data.splits import load_split

        cache[key] = load_split(cfg.data, "train", progress=False).ground_truth
    return cache[key]


def run_figures(run_dir: str | Path, gt: dict | None = None) -> dict[str, float]:
    """Figures of a finished run folder: final WAR/UAR, best WAR, final pruned/corrected,
    ``train_size`` (samples trained in the final epoch), seconds (of the last ``train``
    call, as in ``summary.json``) and, given the ground truth ``gt``, the precision/recall
    of what was pruned and relabelled at the end.
    """
    from d2sp.runs.folder import read_run

    run = read_run(run_dir, require=("config.yaml", "metrics.jsonl", "summary.json"))
    summary, last = run.summary, (run.metrics[-1] if run.metrics else {})
    out = {
        "war": float(summary["war"]),
        "uar": float(summary["uar"]),
        "best_war": float(summary.get("best_war", math.nan)),
        "pruned": float(summary.get("pruned", 0)),
        "corrected": float(summary.get("corrected", 0)),
        "train_size": float(last.get("trained", math.nan)),
        "seconds": float(summary.get("seconds", math.nan)),
    }
    if gt is not None:
        out.update(_quality(run.ledger, gt))
    return out


def _quality(ledger, gt: dict) -> dict[str, float]:
    """Final-epoch precision/recall of pruning and relabelling against the ground truth."""
    from d2sp.training.metrics import purification_scores

    scores = dict.fromkeys(QUALITY_COLUMNS, math.nan)
    if ledger is None or not ledger.num_epochs or len(ledger.labels) != len(gt["true_label"]):
        return scores
    state, label = ledger.column("state")[-1], ledger.column("label")[-1]
    s = purification_scores(
        state, label, low_quality=gt["low_quality"], true_label=gt["true_label"],
        given_label=gt["given_label"],
    )  # fmt: skip
    scores.update({k: s[k] for k in QUALITY_COLUMNS if k in s})
    return scores
