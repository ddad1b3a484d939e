"""Mode ``paper``: D2SP exactly as published (docs/modes.md, "The method"), the reference for the paper's tables.

Per epoch, over the last ``t`` records of each sample (training pass; pruned samples
re-scored on their training view without gradient):

- CGP: keep ``{i : mean_t(w · p[pred]) > λ}`` (``score="label"``: ``w · p[y]``);
- FGC, on the kept samples: train ``i`` as ``ŷ`` when every one of its last ``t`` records
  predicts the same ``ŷ ≠ y_i`` and ``mean(p[ŷ]) − mean(p[y_i]) > τ``;
- recomputed from the annotation every epoch; the first ``warmup_epochs`` take no decision.

With both stages off the model is the plain backbone + linear head + CE (no weight branch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.registry import register_purifier
from d2sp.purify.stages import coarse_grained_pruning, fine_grained_correction, has_full_window

SCORES = ("max", "label")


@register_purifier("paper")
class PaperPurifier(Purifier):
    """Dynamic data purification, ``mode: paper``.

    Options:
        lam: CGP threshold λ in [0, 1] (paper: DFEW 0.6, FERV39k 0.7).
        tau: FGC threshold τ in [-1, 1] (paper: DFEW 0.4, FERV39k 0.2).
        t: records a decision looks back over (paper: DFEW 2, FERV39k 3).
        warmup_epochs: the first epochs train on every sample with the original labels; the
            first decision is taken at the end of epoch ``warmup_epochs`` (1-based) and
            governs the next one. Records taken during warm-up count towards the window.
        cgp, fgc: stage switches (paper table 2).
        score: ``"max"`` scores ``w · p[pred]``, ``"label"`` scores ``w · p[y]``.
        revisit_pruned: re-score the pruned samples every epoch (they can come back).
    """

    @dataclass(frozen=True)
    class Options:
        lam: float = 0.6
        tau: float = 0.4
        t: int = 2
        warmup_epochs: int = 5
        cgp: bool = True
        fgc: bool = True
        score: Literal["max", "label"] = "max"
        revisit_pruned: bool = True

    @classmethod
    def check(cls, o) -> list[str]:
        problems: list[str] = []
        expect(problems, "lam", o["lam"], 0.0 <= o["lam"] <= 1.0, "a value in [0, 1]")
        expect(
            problems, "tau", o["tau"], -1.0 <= o["tau"] <= 1.0,
            "a value in [-1, 1] (Δp is a difference of probabilities)",
        )  # fmt: skip
        expect(problems, "t", o["t"], int(o["t"]) == o["t"] and o["t"] >= 1, "an integer >= 1")
        expect(problems, "warmup_epochs", o["warmup_epochs"], o["warmup_epochs"] >= 0, "an integer >= 0")
        expect(problems, "score", o["score"], o["score"] in SCORES, f"one of {SCORES}")
        return problems

    @classmethod
    def schedule_problems(cls, o, *, epochs: int, dataset: str) -> list[str]:
        if not (o["cgp"] or o["fgc"]) or epochs <= 0:
            return []
        if o["warmup_epochs"] >= epochs:
            return [
                f"purify.warmup_epochs ({o['warmup_epochs']}) >= optim.epochs ({epochs}): "
                "no purification decision would ever be taken"
            ]
        if o["t"] > epochs:
            return [f"purify.t ({o['t']}) > optim.epochs ({epochs}): no window ever fills"]
        return []

    def setup(self) -> None:
        o = self.options
        self.lam, self.tau, self.t = float(o["lam"]), float(o["tau"]), int(o["t"])
        self.warmup_epochs = int(o["warmup_epochs"])
        self.cgp, self.fgc, self.score = bool(o["cgp"]), bool(o["fgc"]), o["score"]

    @property
    def window(self) -> int:
        return int(self.options["t"])

    @property
    def weight_branch(self) -> bool:
        return bool(self.options["cgp"] or self.options["fgc"])

    @property
    def deciding(self) -> bool:
        """Whether the epoch that has just ended took (or will take) decisions."""
        return self.epoch >= self.warmup_epochs and (self.cgp or self.fgc)

    def decide(self, seen: torch.Tensor) -> Decision:
        r = self.records
        y = self._labels_dev
        probs_for_score = r.p_pred if self.score == "max" else r.p_label
        keep, score = coarse_grained_pruning(r.weight, probs_for_score, r.count, lam=self.lam, t=self.t)
        eligible = keep if self.cgp else torch.ones_like(keep)
        new_labels, delta_p = fine_grained_correction(
            r.pred, r.p_pred, r.p_label, r.count, y, eligible, tau=self.tau, t=self.t
        )
        decided = has_full_window(r.count, self.t)
        if self.deciding:
            keep = eligible
            labels = new_labels if self.fgc else y
        else:
            keep, labels = torch.ones_like(keep), y
            decided = torch.zeros_like(decided)
        return Decision(keep=keep, labels=labels, decided=decided, score=score, delta_p=delta_p)
