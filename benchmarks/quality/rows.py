"""The suite's rows, and one run of a row in a cell.

A row is one of the suite's own (:data:`SUITE_ROWS`), or any registered purification mode
with its defaults, or a mode with option overrides — ``"<mode> key=value ..."``, values
read as YAML (``"adaptive teacher=false"``): an ablation row of that mode. Every row trains
through :func:`d2sp.run_epoch` (see :mod:`benchmarks.quality.train`).

The suite's rows: ``CE`` (plain cross-entropy on the annotation); ``oracle`` (true labels,
unusable samples removed); ``cleanlab`` (4 fold models trained like the cell's short regime →
``find_label_issues`` → CE on the rest; its ranking ``get_label_quality_scores`` of the same
probabilities); research rows, only when asked for: ``prune-oracle`` (every noisy sample
left out, annotation kept), ``prune-wrong`` (the wrong labels left out), ``prune-nonsink``
(the wrong labels left out but those of the class most of them went to), ``rank-cleanlab``
and ``rank-<mode>`` (as many samples as are noisy left out from the start, the most
suspicious first by cleanlab's ranking or by the one a whole run of the mode ends with),
``retrain-<mode>`` (CE trained again on what a run of the mode kept, with its labels).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.helpers import auroc, war_uar
from benchmarks.quality import d2sp_plus, heldout
from benchmarks.quality.cells import encoder_key
from benchmarks.quality.data import make_data
from benchmarks.quality.train import Cost, fit, predict
from d2sp.config import PurifyConfig
from d2sp.purify import CORRECTED, PRUNED, PURIFIERS, OptionError, list_modes, purifier_class
from d2sp.purify.confident import cleanlab_label_issues, stratified_folds
from d2sp.training.metrics import purification_scores

# the benchmark-only modes are rows whether or not their modules were imported before
PURIFIERS.setdefault("d2sp+", d2sp_plus.ImprovedPurifier)
PURIFIERS.setdefault("heldout", heldout.HeldOutPurifier)

RECOMMENDED = PurifyConfig().mode  # the package's default mode, whatever its name
# What the recommended mode is measured against: plain CE, cleanlab, the standard noisy-label
# methods, the paper's mode and the benchmark-only d2sp+ and heldout (a mode added here joins
# every group).
PEERS = ("CE", "cleanlab", "gce", "elr", "coteach", "dividemix", "paper", "d2sp+", "heldout")
METHODS = (*PEERS, RECOMMENDED, "oracle")  # the suite's rows, in the table's order
GROUPS = {
    "default": ("CE", "oracle", RECOMMENDED),  # what a change to the recommended mode reruns
    "peers": PEERS,
    "all": METHODS,
}
SUITE_ROWS = ("CE", "oracle", "cleanlab", "prune-oracle", "prune-wrong", "prune-nonsink", "rank-cleanlab")
NEEDS_NOISE = ("oracle", "prune-oracle", "prune-wrong", "prune-nonsink", "rank-cleanlab", "rank")


class UnknownRow(ValueError):
    """A row that is neither the suite's nor a registered mode (or its options are wrong)."""


@dataclass(frozen=True)
class Row:
    """A parsed row: ``kind`` is a suite row's name, ``"mode"``, ``"rank"`` or ``"retrain"``;
    ``mode`` and ``options`` the mode trained (or ranked with) and its overrides."""

    text: str
    kind: str
    mode: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def needs_noise(self) -> bool:
        """Rows that know the ground truth (or the noise count): no clean cells."""
        return self.kind in NEEDS_NOISE


def parse_row(text: str) -> Row:
    """The row named ``text``; :class:`UnknownRow` listing what is known otherwise."""
    head, *rest = text.split()
    if head in SUITE_ROWS and not rest:
        return Row(text, head)
    kind, mode = "mode", head
    for prefix in ("rank-", "retrain-"):
        if head.startswith(prefix) and head[len(prefix) :] in list_modes():
            kind, mode = prefix[:-1], head[len(prefix) :]
    if mode not in list_modes():
        raise UnknownRow(
            f"unknown row {text!r}: expected one of the suite's rows ({', '.join(SUITE_ROWS)}), "
            f"a registered mode ({', '.join(list_modes())}), '<mode> key=value ...', "
            "'rank-<mode>' or 'retrain-<mode>'"
        )
    options = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep:
            raise UnknownRow(f"row {text!r}: expected key=value after the mode, got {item!r}")
        options[key] = yaml.safe_load(value)
    try:
        purifier_class(mode).resolve(options)
    except OptionError as err:
        raise UnknownRow(f"row {text!r}: {err}") from None
    return Row(text, kind, mode, options)


def cleanlab_selection(data, settings, loop, cv_epochs, seed, cost, encoder):
    """4-fold out-of-sample probabilities -> ``(issues (N,) bool, quality (N,))``."""
    from cleanlab.rank import get_label_quality_scores

    n = len(data.y_noisy)
    probs = np.zeros((n, data.num_classes))
    fold_of = stratified_folds(data.y_noisy, folds=4, seed=seed)  # (N,)
    for f in range(4):
        held = fold_of == f
        model, _ = fit(data, settings, loop, cv_epochs, seed * 100 + f, mode="ce", options={"keep": ~held},
                       cost=cost, encoder_state=encoder)  # fmt: skip
        cost.watch([model])
        probs[held] = torch.softmax(predict(model, data.x_train[held]), 1).double().numpy()
        cost.release()
    return cleanlab_label_issues(data.y_noisy, probs), get_label_quality_scores(data.y_noisy, probs)


def without_most_suspicious(suspicion: np.ndarray, count: int) -> np.ndarray:
    """``keep (N,) bool``: every sample but the ``count`` with the highest ``suspicion (N,)``
    (never scored, nan: least suspicious)."""
    order = np.argsort(-np.nan_to_num(suspicion, nan=-np.inf), kind="stable")
    keep = np.ones(len(suspicion), dtype=bool)
    keep[order[:count]] = False
    return keep


def row_setup(row: Row, data, ctx: dict) -> tuple[str, dict]:
    """The mode and options (a ``ce`` row's selection included) ``row`` trains with;
    ``ctx``: settings, loop, epochs, cv_epochs, seed, cost, encoder of the run."""
    if row.kind == "mode":
        return row.mode, dict(row.options)
    if row.kind == "CE":
        return "ce", {}
    if row.kind == "oracle":
        return "ce", {"keep": ~data.unusable, "targets": data.y_true}
    if row.kind == "prune-oracle":
        return "ce", {"keep": ~data.noisy}
    if row.kind in ("prune-wrong", "prune-nonsink"):
        wrong = (data.y_noisy != data.y_true) & ~data.unusable
        if row.kind == "prune-nonsink" and wrong.any():
            wrong &= data.y_noisy != np.bincount(data.y_noisy[wrong]).argmax()
        return "ce", {"keep": ~wrong}
    c = ctx
    if row.kind in ("cleanlab", "rank-cleanlab"):
        issues, quality = cleanlab_selection(data, c["settings"], c["loop"], c["cv_epochs"], c["seed"], c["cost"], c["encoder"])
        keep = ~issues if row.kind == "cleanlab" else without_most_suspicious(1.0 - quality, int(data.noisy.sum()))
        return "ce", {"keep": keep, "suspicion": 1.0 - quality}
    pur = fit(data, c["settings"], c["loop"], c["epochs"], c["seed"], mode=row.mode, options=row.options,
              cost=c["cost"], encoder_state=c["encoder"])[1]  # fmt: skip
    suspicion = pur.suspicion()[0]
    if row.kind == "retrain":  # the run's own list
        state, labels = pur.ledger.column("state")[-1], pur.ledger.column("label")[-1].astype(np.int64)
        return "ce", {"keep": state != PRUNED, "targets": labels, "suspicion": suspicion}
    return "ce", {"keep": without_most_suspicious(suspicion, int(data.noisy.sum())), "suspicion": suspicion}


def purification_figures(pur, data) -> dict:
    """Final-epoch precision/recall of pruning (against unusable samples) and of the
    relabels listed for the user (the ledger's corrected set), labels changed, the smallest
    trained share over the run, suspicion AUROC against the noisy samples."""
    led = pur.ledger
    state, label = led.column("state")[-1], led.column("label")[-1].astype(np.int64)
    s = purification_scores(state, label, low_quality=data.unusable, true_label=data.y_true, given_label=data.y_noisy)
    corrected = state == CORRECTED
    return {
        "prune_p": s["prune_precision"], "prune_r": s["prune_recall"], "removed_p": s["removed_precision"],
        "corr_p": s["correct_precision"], "corr_r": s["correct_recall"],
        "corrected": int(corrected.sum()), "corrected_right": int((corrected & (label == data.y_true)).sum()),
        "changed": float(corrected.mean()), "pruned_share": float((state == PRUNED).mean()),
        "min_trained_share": float((led.column("state") != PRUNED).mean(1).min()),
        "events": pur.events[-12:], "auroc": auroc(pur.suspicion()[0], data.noisy),
    }  # fmt: skip


def run_row(row: str, cell: tuple[str, str, str], seed: int, loop: str, cache: Path, settings: dict) -> dict:
    """Train one row in one cell; its figures. ``units``: the run's passes (see
    :class:`~benchmarks.quality.train.Cost`) per nominal CE pass, ``3 · N · epochs``;
    ``cpu``: CPU seconds of the run (data and pretrained encoder made beforehand)."""
    dataset, noise, regime = cell
    s = settings[dataset]
    data = make_data(dataset, noise, seed, s, cache)
    epochs = s[regime]
    encoder = None
    if regime == "pretrained":
        encoder = torch.load(cache / "pretrained" / encoder_key(dataset, seed, loop, settings), weights_only=True)
    cost = Cost()
    ctx = dict(settings=s, loop=loop, epochs=epochs, cv_epochs=s["short"] if regime == "long" and s.get("short") else epochs,
               seed=seed, cost=cost, encoder=encoder)  # fmt: skip
    cpu0, t0 = time.process_time(), time.perf_counter()
    mode, options = row_setup(parse_row(row), data, ctx)
    model, pur = fit(data, s, loop, epochs, seed, mode=mode, options=options, cost=cost, encoder_state=encoder)
    pred = predict(model, data.x_test).argmax(1).numpy()
    war, uar = war_uar(pred, data.y_test, data.num_classes)
    res = {"row": row, "dataset": dataset, "noise": noise, "regime": regime, "seed": seed, "loop": loop,
           "war": war, "uar": uar, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0,
           "units": cost.units / (3 * len(data.y_noisy) * epochs), "epochs": epochs}  # fmt: skip
    return res | purification_figures(pur, data)
