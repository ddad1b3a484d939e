"""Mode ``d2sp+``: an earlier variant of the paper's rules, a benchmark-only mode: a row of the
suite (importing this module registers it), not part of the package.

It keeps the paper's idea (a learned per-sample weight, dynamic pruning recomputed every
epoch, correction of stably mispredicted samples) and changes the rules; each change is one
option:

- ``rank_reg`` (off by default: its ablation row did not earn it a place): rank
  regularisation of the weights (a loss term, from the end of warm-up);
- ``class_relative``: the pruning score is compared with ``lam`` times the median score of
  the samples annotated with the same class, not with one global λ;
- ``teacher``: decisions come from an EMA copy of the model scoring un-augmented samples
  without gradient, not from the training pass; a kept sample is re-scored every
  ``rescore_every`` epochs (pruned ones every epoch);
- ``agree``: a correction needs the same prediction ``ŷ ≠ y`` in ``agree`` consecutive
  records taken while the sample was kept;
- ``rejoin``: hysteresis: a pruned sample comes back only when its score exceeds ``rejoin``
  times its class median;
- ``expire_after`` (off by default): a correction lapses after that many epochs; the sample
  is held out until ``agree`` fresh records earn it again.

Shapes: ``N`` samples, ``K`` classes, ``W`` records kept per sample, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.losses import rank_regularization
from d2sp.purify.registry import register_purifier
from d2sp.purify.teacher import WithTeacher

# ---- pure rules over arrays ---------------------------------------------------------------


def window_mean(values: torch.Tensor, count: torch.Tensor, n: int) -> torch.Tensor:
    """``(N,)`` mean of the newest ``n`` columns of ``values (N, W)``; NaN where ``count < n``."""
    mean = values[:, :n].float().mean(dim=1)  # (N,)
    return torch.where(count >= n, mean, torch.full_like(mean, float("nan")))


def class_medians(
    score: torch.Tensor, cls: torch.Tensor, valid: torch.Tensor, *, num_classes: int
) -> torch.Tensor:
    """``(K,)`` median of ``score (N,)`` over the valid samples of each class ``cls (N,)``
    (the lower middle value for an even count, as ``torch.median``).

    A class with no valid sample gets the median over all valid samples (NaN if none).
    """
    out = torch.full((num_classes,), float("nan"), dtype=score.dtype, device=score.device)
    if not bool(valid.any()):
        return out
    overall = score[valid].median()
    for k in range(num_classes):
        m = valid & (cls == k)  # (N,)
        out[k] = score[m].median() if bool(m.any()) else overall
    return out


def class_relative_pruning(
    score: torch.Tensor,
    cls: torch.Tensor,
    decided: torch.Tensor,
    *,
    lam: float | torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep ``{i : S_i ≥ lam_i · median_{j decided, cls_j = cls_i} S_j}``; undecided are kept.

    Args:
        score: ``(N,)`` window-mean score ``S`` (any finite value where undecided).
        cls: ``(N,)`` int class whose median each sample is compared with (all zeros for one
            global reference).
        decided: ``(N,)`` bool, the sample has a full window.
        lam: relative threshold, a float or ``(N,)`` per sample (hysteresis).
        num_classes: ``K``.

    Returns:
        ``keep (N,) bool`` and ``threshold (N,) float`` (the threshold each sample faced).
    """
    med = class_medians(score, cls, decided, num_classes=num_classes)  # (K,)
    threshold = lam * med[cls.long()]  # (N,)
    keep = ~decided | (score >= threshold)  # (N,)
    return keep, threshold


def agreeing_prediction(
    preds: torch.Tensor, fresh: torch.Tensor, *, agree: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether the newest ``agree`` predictions agree, and on what.

    Args:
        preds: ``(N, W)`` int predictions, newest first, ``W >= agree``.
        fresh: ``(N,)`` records taken since the sample's agreement was last reset.
        agree: number of agreeing records needed.

    Returns:
        ``agreed (N,) bool`` and ``label (N,) int64`` (the newest prediction).
    """
    newest = preds[:, 0].long()  # (N,)
    same = (preds[:, :agree].long() == newest.unsqueeze(1)).all(dim=1)  # (N,)
    return same & (fresh >= agree), newest


def agreeing_correction(
    preds: torch.Tensor,
    p_pred: torch.Tensor,
    p_label: torch.Tensor,
    fresh: torch.Tensor,
    labels: torch.Tensor,
    eligible: torch.Tensor,
    *,
    agree: int,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Correct ``i`` to ``ŷ`` when its newest ``agree`` records (all taken since its last
    reset) predict ``ŷ ≠ y_i`` and ``Δp = mean(p[ŷ]) − mean(p[y_i]) > τ`` over them.

    Args:
        preds, p_pred, p_label: ``(N, W)`` records, newest first.
        fresh: ``(N,)`` records since the sample's agreement was last reset.
        labels: ``(N,)`` int64 annotation ``y``.
        eligible: ``(N,)`` bool samples that may be corrected (the kept ones).
        agree: records that must agree.
        tau: margin τ on ``Δp``.

    Returns:
        ``correct (N,) bool``, ``target (N,) int64`` (``ŷ`` where corrected, else ``y``) and
        ``delta_p (N,) float`` (NaN where the records do not agree).
    """
    agreed, newest = agreeing_prediction(preds, fresh, agree=agree)
    delta_p = p_pred[:, :agree].float().mean(1) - p_label[:, :agree].float().mean(1)  # (N,)
    correct = eligible & agreed & (newest != labels) & (delta_p > tau)  # (N,)
    target = torch.where(correct, newest, labels)  # (N,)
    delta_p = torch.where(agreed, delta_p, torch.full_like(delta_p, float("nan")))
    return correct, target, delta_p


def expired_corrections(
    corrected_since: torch.Tensor, epoch: int, *, expire_after: int
) -> torch.Tensor:
    """``(N,)`` bool: corrections in force for ``expire_after`` epochs or more (0 = never).

    ``corrected_since`` is ``(N,)`` int64, the epoch a correction started, ``-1`` for none.
    """
    if expire_after <= 0:
        return torch.zeros_like(corrected_since, dtype=torch.bool)
    return (corrected_since >= 0) & (epoch - corrected_since >= expire_after)


def rescore_turn(num_samples: int, epoch: int, every: int) -> np.ndarray:
    """``(N,)`` bool: the kept samples whose turn it is to be re-scored this epoch."""
    return (np.arange(num_samples) + epoch) % every == 0


# ---- the mode -----------------------------------------------------------------------------


@register_purifier("d2sp+")
class ImprovedPurifier(WithTeacher, Purifier):
    """Dynamic purification, ``mode: d2sp+``.

    Per epoch, over the newest records (from the teacher when ``teacher``):

    1. score ``S = mean_t(w · p[pred])``; a kept sample is pruned when ``S < lam · m_c``, a
       pruned one comes back when ``S ≥ rejoin · m_c``, ``m_c`` the median score of the
       decided samples annotated with its class ``c`` (of all samples without
       ``class_relative``);
    2. a kept sample whose newest ``agree`` records, all taken while it was kept, predict the
       same ``ŷ ≠ y`` with ``Δp > tau`` trains on ``ŷ``; recomputed from the annotation every
       epoch;
    3. with ``expire_after``, a correction in force that long lapses and the sample is held
       out (shown as pruned) until ``agree`` fresh records earn it again.

    Options:
        lam: relative pruning threshold in [0, 1]. tau: correction margin in [-1, 1].
        t: records the pruning score is averaged over. agree: agreeing records for a
        correction. warmup_epochs: epochs before the first decision. class_relative,
        rank_reg (with rank_margin, rank_ratio), teacher (with teacher_epochs, its time
        constant in epochs), rescore_every, rejoin (None: lam), expire_after (0: never),
        cgp, fgc: see the module docstring.
    """

    @dataclass(frozen=True)
    class Options:
        lam: float = 0.5
        tau: float = 0.2
        t: int = 2
        agree: int = 3
        warmup_epochs: int = 5
        class_relative: bool = True
        rank_reg: bool = False
        rank_margin: float = 0.15
        rank_ratio: float = 0.7
        teacher: bool = True
        teacher_epochs: float = 2.0
        rescore_every: int = 3
        rejoin: float | None = 1.0
        expire_after: int = 0
        cgp: bool = True
        fgc: bool = True
    rescore_view = "eval"

    @classmethod
    def check(cls, o) -> list[str]:
        p: list[str] = []
        expect(p, "lam", o["lam"], 0.0 <= o["lam"] <= 1.0, "a value in [0, 1]")
        expect(p, "tau", o["tau"], -1.0 <= o["tau"] <= 1.0, "a value in [-1, 1] (Δp is a difference)")
        for name in ("t", "agree", "rescore_every"):
            expect(p, name, o[name], int(o[name]) == o[name] and o[name] >= 1, "an integer >= 1")
        for name in ("warmup_epochs", "expire_after"):
            expect(p, name, o[name], int(o[name]) == o[name] and o[name] >= 0, "an integer >= 0")
        for name in ("rank_margin", "rank_ratio"):
            expect(p, name, o[name], 0.0 < o[name] < 1.0, "a value in (0, 1)")
        expect(p, "teacher_epochs", o["teacher_epochs"], o["teacher_epochs"] > 0, "a positive number")
        rejoin = o["lam"] if o["rejoin"] is None else o["rejoin"]
        expect(p, "rejoin", o["rejoin"], o["lam"] <= rejoin <= 2.0, f"None or a value in [lam={o['lam']}, 2]")
        return p

    @classmethod
    def schedule_problems(cls, o, *, epochs: int, dataset: str) -> list[str]:
        if (o["cgp"] or o["fgc"]) and 0 < epochs <= o["warmup_epochs"]:
            return [
                f"purify.warmup_epochs ({o['warmup_epochs']}) >= optim.epochs ({epochs}): "
                "no purification decision would ever be taken"
            ]
        return []

    def setup(self) -> None:
        o = self.options
        self.lam, self.tau, self.t, self.agree = float(o["lam"]), float(o["tau"]), int(o["t"]), int(o["agree"])
        self.warmup_epochs = int(o["warmup_epochs"])
        self.rejoin = float(o["lam"] if o["rejoin"] is None else o["rejoin"])
        self.cgp, self.fgc = bool(o["cgp"]), bool(o["fgc"])
        n = self.num_samples
        self.fresh = torch.zeros(n, dtype=torch.int64, device=self.device)  # (N,) records since reset
        self.corrected_since = torch.full((n,), -1, dtype=torch.int64, device=self.device)  # (N,)
        self.held_out = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)

    @property
    def window(self) -> int:
        return max(int(self.options["t"]), int(self.options["agree"]))

    @property
    def weight_branch(self) -> bool:
        return bool(self.options["cgp"] or self.options["fgc"])

    @property
    def train_records(self) -> bool:
        return not self.options["teacher"]

    @property
    def deciding(self) -> bool:
        """Whether the epoch that has just ended took (or will take) decisions."""
        return self.epoch >= self.warmup_epochs and (self.cgp or self.fgc)

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """Rank regularisation of the batch's weights after warm-up (``rank_reg``)."""
        if not self.options["rank_reg"] or weights is None or self.epoch < self.warmup_epochs:
            return 0.0
        o = self.options
        return rank_regularization(weights, margin=o["rank_margin"], ratio=o["rank_ratio"])

    def rescore_indices(self) -> np.ndarray:
        """With the teacher, the pruned samples and the kept ones whose turn it is; else the
        pruned ones."""
        if not self.options["teacher"]:
            return self.pruned_indices()
        turn = rescore_turn(self.num_samples, self.epoch, self.options["rescore_every"])
        return np.flatnonzero(turn | ~self.keep_mask.numpy())

    def decide(self, seen: torch.Tensor) -> Decision:
        r, y = self.records, self._labels_dev
        self.fresh[seen] += 1
        decided = r.count >= self.t  # (N,)
        score = window_mean(r.weight * r.p_pred, r.count, self.t)  # (N,)
        cls = y if self.options["class_relative"] else torch.zeros_like(y)  # (N,)
        was_pruned = ~self.keep_mask.to(self.device) & ~self.held_out  # (N,) by CGP
        lam = torch.where(was_pruned, self.rejoin, self.lam)  # (N,) hysteresis
        keep, _ = class_relative_pruning(
            torch.nan_to_num(score), cls, decided, lam=lam, num_classes=self.num_classes
        )
        if not (self.cgp and self.deciding):
            keep = torch.ones_like(keep)
        if not self.deciding:
            decided = torch.zeros_like(decided)
        # a correction needs `agree` records taken while kept: a sample pruned in this epoch
        # (or still pruned) starts counting again
        self.fresh[~keep | was_pruned] = 0
        correct, target, delta_p = agreeing_correction(
            r.pred, r.p_pred, r.p_label, self.fresh, y, keep, agree=self.agree, tau=self.tau
        )
        if not (self.fgc and self.deciding):
            correct = torch.zeros_like(correct)
        correct = self._expire(correct)
        self.corrected_since = torch.where(
            correct & (self.corrected_since < 0), torch.full_like(self.corrected_since, self.epoch),
            torch.where(correct, self.corrected_since, torch.full_like(self.corrected_since, -1)),
        )  # fmt: skip
        labels = torch.where(correct, target, y)  # (N,)
        keep = keep & ~self.held_out
        return Decision(keep=keep, labels=labels, decided=decided, score=score, delta_p=delta_p)

    def _expire(self, correct: torch.Tensor) -> torch.Tensor:
        """Corrections in force ``expire_after`` epochs lapse: held out until re-earned."""
        lapse = expired_corrections(
            self.corrected_since, self.epoch, expire_after=self.options["expire_after"]
        )
        self.fresh[lapse] = 0
        self.held_out = (self.held_out | lapse) & (self.fresh < self.agree)
        self.corrected_since[lapse] = -1  # a correction earned again starts a new period
        return correct & ~self.held_out

    def mode_state_dict(self) -> dict:
        return {
            "fresh": self.fresh.cpu(),
            "corrected_since": self.corrected_since.cpu(),
            "held_out": self.held_out.cpu(),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
        }

    def load_mode_state_dict(self, state: dict) -> None:
        self.fresh = state["fresh"].to(self.device).long()
        self.corrected_since = state["corrected_since"].to(self.device).long()
        self.held_out = state["held_out"].to(self.device).bool()
        if self.teacher is not None and state.get("teacher") is not None:
            self.teacher.load_state_dict(state["teacher"])
