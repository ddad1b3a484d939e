"""Mode ``heldout``: a benchmark-only mode (a row of the suite; importing this module registers
it), measured as a candidate for the recommended mode and not adopted (docs/research-log.md,
2026-12-08).

Every epoch an exponential-moving-average teacher of the model scores every sample on its
un-augmented view, and the decisions for the next epoch are taken from that score:

1. **Temporal ensemble.** The teacher's probabilities are averaged over epochs
   (``ens_momentum``): ``P (N, K)``; the sample's loss ``ℓ = −log P[y]``.
2. **Warm-up.** No decision before ``warmup`` of the run has passed (at least
   ``min_warmup`` epochs): the model first learns the patterns shared by most samples.
3. **A division that follows the data.** A two-component Gaussian mixture is fitted to
   ``ℓ`` of every sample (held-out ones included). A sample is flagged when its
   probability of belonging to the high-loss component exceeds one half *and* the ensemble
   assigns it to another class ``ŷ`` confidently: ``P[ŷ]`` at least the mean of ``P[ŷ]``
   over the samples annotated ``ŷ`` (cleanlab's per-class threshold).
4. **Nothing to purify** (``min_noise``): when fewer than that share are flagged, no
   decision is taken (a clean set is trained as plain cross-entropy).
5. **Held out, then judged out of sample.** A flagged sample is pruned: not trained, but
   scored every epoch, so the teacher's view of it no longer fits its label. It rejoins when
   the division no longer flags it. It is corrected to the teacher's prediction ``ŷ`` when,
   for ``agree`` consecutive epochs while held out, ``log P[ŷ] − log P[y] ≥ log_odds`` and
   ``P[ŷ]`` is at least the median confidence of the samples trained on ``ŷ``; a correction
   holds while the teacher prefers ``ŷ`` to ``y``. A flagged sample the teacher is not
   confident about (an unusable clip, an ambiguous expression) stays pruned.
6. **Collapse guard** (``max_pruned``): at most that share of the set, and of any annotated
   class, is left out; the most suspicious samples are kept out first and the run says so.

Suspicion: ``1 − P[y]`` (out of sample for held-out samples); suggested label: ``argmax P``.
No weight branch: the model is the plain classifier.

Shapes: ``N`` samples, ``K`` classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.registry import register_purifier
from d2sp.purify.teacher import EmaTeacher

# ---- pure rules over arrays ---------------------------------------------------------------


def high_loss_posterior(loss: np.ndarray, fit: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``(N,)`` posterior of the high-mean component of a two-component Gaussian mixture
    fitted to ``loss[fit]`` (``loss (N,)``, ``fit (N,)`` bool), evaluated on every sample
    (1 above the high component's mean).

    Zeros when fewer than 20 samples fit or the mixture cannot separate them."""
    from sklearn.mixture import GaussianMixture

    x = loss[fit].reshape(-1, 1)
    if len(x) < 20 or float(x.std()) < 1e-6:
        return np.zeros(len(loss))
    gmm = GaussianMixture(n_components=2, max_iter=100, tol=1e-3, reg_covar=5e-4, random_state=seed)
    gmm.fit(x)
    high = int(np.argmax(gmm.means_.ravel()))
    post = gmm.predict_proba(loss.reshape(-1, 1))[:, high]
    # a wider low component would claim the far tail: above the high mean is high
    return np.where(loss >= gmm.means_.ravel()[high], 1.0, post)


def class_confidence(probs: torch.Tensor, labels: torch.Tensor, members: torch.Tensor, *, reduce: str) -> torch.Tensor:
    """``(K,)`` the ``reduce`` (``"mean"`` or ``"median"``) of ``probs[i, labels_i]`` over the
    ``members (N,)`` of each class (``probs (N, K)``, ``labels (N,)``); 1 for a class with no
    member (no sample reaches it)."""
    k = probs.shape[1]
    conf = probs.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
    out = torch.ones(k, dtype=probs.dtype, device=probs.device)
    for c in range(k):
        m = members & (labels == c)
        if bool(m.any()):
            out[c] = conf[m].mean() if reduce == "mean" else conf[m].median()
    return out


def confident_disagreement(probs: torch.Tensor, labels: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the prediction ``ŷ = argmax probs`` is another class than ``labels`` and
    ``probs[ŷ]`` reaches ``ŷ``'s mean self-confidence over the ``members`` (cleanlab's
    per-class threshold)."""
    p_hat, y_hat = probs.max(dim=1)  # (N,), (N,)
    thr = class_confidence(probs, labels, members, reduce="mean")  # (K,)
    return (y_hat != labels) & (p_hat >= thr[y_hat])


def cap_left_out(out: torch.Tensor, suspicion: torch.Tensor, labels: torch.Tensor, *, share: float, num_classes: int) -> torch.Tensor:
    """``out (N,)`` bool cut to at most ``share`` of the set and of each annotated class,
    keeping out the samples of highest ``suspicion (N,)``."""
    capped = torch.zeros_like(out)
    order = torch.argsort(suspicion, descending=True)  # (N,)
    for c in range(num_classes):
        in_c = labels[order] == c
        cand = order[in_c & out[order]]
        limit = int(share * int(in_c.sum()))
        capped[cand[:limit]] = True
    total = int(share * len(out))
    if int(capped.sum()) > total:
        cand = order[capped[order]]
        capped = torch.zeros_like(out)
        capped[cand[:total]] = True
    return capped


# ---- the mode -----------------------------------------------------------------------------


@register_purifier("heldout")
class HeldOutPurifier(Purifier):
    """Teacher-scored purification, ``mode: heldout``: samples in the
    high-loss component of the loss mixture that the teacher confidently assigns to another
    class are held out, judged out of sample, and corrected only when the teacher is
    confident; see the module docstring for each mechanism."""

    @dataclass(frozen=True)
    class Options:
        teacher_epochs: float = 2.0
        ens_momentum: float = 0.5
        warmup: float = 0.15
        min_warmup: int = 2
        epochs: int | None = None
        min_noise: float = 0.05
        agree: int = 2
        log_odds: float = 3.0
        max_pruned: float = 0.5
        seed: int = 0

    rescore_view = "eval"
    teacher: EmaTeacher | None = None

    @classmethod
    def check(cls, o) -> list[str]:
        p: list[str] = []
        expect(p, "min_warmup", o["min_warmup"], o["min_warmup"] >= 0, "an integer >= 0")
        expect(p, "agree", o["agree"], o["agree"] >= 1, "an integer >= 1")
        for name in ("warmup", "min_noise", "max_pruned"):
            expect(p, name, o[name], 0.0 <= o[name] <= 1.0, "a value in [0, 1]")
        expect(p, "ens_momentum", o["ens_momentum"], 0.0 <= o["ens_momentum"] < 1.0, "a value in [0, 1)")
        expect(p, "teacher_epochs", o["teacher_epochs"], o["teacher_epochs"] > 0, "a positive number")
        expect(p, "log_odds", o["log_odds"], o["log_odds"] >= 0, "a number >= 0")
        if o["epochs"] is not None:
            expect(p, "epochs", o["epochs"], o["epochs"] >= 1, "None or an integer >= 1 (the run length)")
        return p

    @classmethod
    def schedule_problems(cls, o, *, epochs: int, dataset: str) -> list[str]:
        warm = cls.warmup_for(o, epochs)
        if 0 < epochs <= warm:
            return [
                f"optim.epochs ({epochs}) <= the warm-up of mode 'heldout' ({warm} epochs): no "
                "purification decision would ever be taken; train longer or lower purify.min_warmup"
            ]
        return []

    @staticmethod
    def warmup_for(o, epochs: int | None) -> int:
        """Epochs before the first decision: ``warmup`` of the run, at least ``min_warmup``
        (``min_warmup + 1`` when the run length is unknown)."""
        if epochs is None:
            return int(o["min_warmup"]) + 1
        return max(int(o["min_warmup"]), math.ceil(o["warmup"] * epochs))

    def setup(self) -> None:
        n, k = self.num_samples, self.num_classes
        self.ens = torch.zeros(n, k, dtype=torch.float32, device=self.device)  # (N, K)
        self.streak = torch.zeros(n, dtype=torch.int64, device=self.device)  # (N,)
        self.held = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,) pruned or corrected
        self.quiet = False  # the last decision found nothing to purify

    # ---- the teacher ----------------------------------------------------------------------

    def bind(self, model, **kwargs) -> None:
        super().bind(model, **kwargs)
        self.teacher = EmaTeacher(model, time_constant_epochs=self.options["teacher_epochs"])

    def on_step(self) -> None:
        if self.teacher is not None:
            self.teacher.step(self._bound_model(), self.epoch)

    def score_batch(self, inputs):
        return self.teacher(inputs) if self.teacher is not None else super().score_batch(inputs)

    def modules(self) -> list:
        return [] if self.teacher is None else [self.teacher.model]

    @property
    def weight_branch(self) -> bool:
        return False

    @property
    def train_records(self) -> bool:
        return False

    def rescore_indices(self) -> np.ndarray:
        """Every sample, every epoch (the teacher's view of all of them)."""
        return np.arange(self.num_samples, dtype=np.int64)

    # ---- decisions ------------------------------------------------------------------------

    def decide(self, seen: torch.Tensor) -> Decision:
        y = self._labels_dev
        m = self.options["ens_momentum"] if self.epoch > 1 else 0.0
        probs = self.records.probs.clamp_min(1e-8)  # (N, K) the teacher's, this epoch
        self.ens = torch.where(seen[:, None], m * self.ens + (1 - m) * probs, self.ens)
        p_y = self.ens.gather(1, y.view(-1, 1)).squeeze(1)  # (N,)
        p_hat, y_hat = self.ens.max(dim=1)  # (N,), (N,)
        suspicion = 1.0 - p_y
        if self.epoch < self.warmup_for(self.options, self.options["epochs"]):
            none = torch.zeros_like(self.held)
            return Decision(keep=~none, labels=y.clone(), decided=none, score=p_y,
                            delta_p=torch.full_like(p_y, float("nan")), suspicion=suspicion, suggested=y_hat)  # fmt: skip
        flagged = self._flag(p_y, suspicion)
        keep, labels, corrected = self._judge(flagged, p_y, p_hat, y_hat)
        self.held = ~keep | corrected
        return Decision(keep=keep, labels=labels, decided=torch.ones_like(keep), score=p_y,
                        delta_p=p_hat - p_y, suspicion=suspicion, suggested=y_hat, corrected=corrected)  # fmt: skip

    def _flag(self, p_y: torch.Tensor, suspicion: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the samples in the high-loss component of the loss mixture that the
        teacher confidently assigns to another class; none when fewer than ``min_noise``."""
        y = self._labels_dev
        loss = (-p_y.clamp_min(1e-8).log()).double().cpu().numpy()  # (N,)
        every = np.ones(len(loss), dtype=bool)  # held-out samples too: they keep the split
        high = high_loss_posterior(loss, every, seed=self.options["seed"]) > 0.5
        every_t = torch.ones_like(self.held)
        flagged = torch.from_numpy(high).to(self.device) & confident_disagreement(self.ens, y, every_t)
        share = float(flagged.float().mean())
        if share < self.options["min_noise"]:
            if not self.quiet:
                self.events.append(
                    f"epoch {self.epoch}: {share:.1%} of the samples look mislabelled "
                    f"(below min_noise={self.options['min_noise']:g}): nothing to purify, all trained"
                )
            self.quiet = True
            return torch.zeros_like(flagged)
        if self.quiet or not self.events:
            self.events.append(f"epoch {self.epoch}: {int(flagged.sum())} samples ({share:.1%}) flagged and held out")
        self.quiet = False
        capped = cap_left_out(flagged, suspicion, y, share=self.options["max_pruned"], num_classes=self.num_classes)
        if int(capped.sum()) < int(flagged.sum()):
            self.events.append(
                f"epoch {self.epoch}: {int(flagged.sum())} samples flagged, more than "
                f"max_pruned={self.options['max_pruned']:g} of the set or of a class: "
                f"the {int(capped.sum())} most suspicious held out"
            )
        return capped

    def _judge(self, flagged, p_y, p_hat, y_hat) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep mask, training labels and corrections ``(N,)`` each, from the flags and the
        held-out evidence."""
        o, y = self.options, self._labels_dev
        medians = class_confidence(self.ens, y, ~flagged & ~self.held, reduce="median")  # (K,)
        log_odds = p_hat.clamp_min(1e-8).log() - p_y.clamp_min(1e-8).log()  # (N,)
        evidence = flagged & (log_odds >= o["log_odds"]) & (p_hat >= medians[y_hat])
        self.streak = torch.where(evidence & self.held, self.streak + 1, torch.zeros_like(self.streak))
        prev = self._current_dev
        holding = (prev != y) & (y_hat == prev)  # a correction the teacher still prefers
        corrected = (self.streak >= o["agree"]) | holding
        keep = ~flagged | corrected
        labels = torch.where(corrected, y_hat, y)
        return keep, labels, corrected

    # ---- state ----------------------------------------------------------------------------

    def mode_state_dict(self) -> dict:
        return {
            "ens": self.ens.cpu(),
            "streak": self.streak.cpu(),
            "held": self.held.cpu(),
            "quiet": self.quiet,
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
        }

    def load_mode_state_dict(self, state: dict) -> None:
        self.ens = state["ens"].to(self.device).float()
        self.streak = state["streak"].to(self.device).long()
        self.held = state["held"].to(self.device).bool()
        self.quiet = bool(state["quiet"])
        if self.teacher is not None and state.get("teacher") is not None:
            self.teacher.load_state_dict(state["teacher"])
