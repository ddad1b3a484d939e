"""The improved purification mode ``d2sp+``: rules over arrays, the purifier, the loop hooks.

It keeps the paper's idea (a learned per-sample weight, dynamic pruning recomputed every
epoch, correction of stably mispredicted samples) and fixes what goes wrong on real images
with dual noise; each fix is one keyword switch of :class:`ImprovedPurifier`:

- ``rank_reg``: rank regularisation of the weights (a loss term), so the weight branch
  separates samples instead of sitting near 1 for all;
- ``class_relative``: a sample is pruned when its score falls below ``lam`` times the median
  score of its predicted class, not below one global λ, so hard classes are not thinned;
- ``teacher``: the records that decisions are taken from come from a slowly moving EMA copy
  of the model scoring every sample without gradient, not from the model being trained;
- ``agree``: a correction needs the same prediction in ``agree`` consecutive records;
- ``expire_after``: a correction lapses after that many epochs and must be earned again.

Usable from any training loop with three extra lines (see :func:`training_hooks`)::

    purifier = create_purifier("d2sp+", labels, num_classes=K)
    hooks = training_hooks(purifier, model)
    for epoch in range(epochs):
        for x, _, idx in loader_over(purifier.kept_indices()):
            logits, w = model(augment(x))
            loss = weighted_cross_entropy(logits, w, purifier.labels_for(idx))
            loss = loss + hooks.extra_loss(w)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            hooks.after_step()
            purifier.record(idx, logits.detach(), w.detach())
        with torch.no_grad():
            for x, _, idx in loader_over(hooks.rescore_indices()):  # un-augmented views
                purifier.record(idx, *hooks.scorer(x))
        purifier.end_epoch()

Shapes: ``N`` samples, ``K`` classes, ``W`` records kept per sample, newest first.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from d2sp.losses_extra import rank_regularization
from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED, UNDECIDED, Ledger
from d2sp.purify.purifier import _as_label_tensor

FIELDS = ("weight", "pred", "p_pred", "p_label")
TEACHERS = ("predictions", "model", "off")

# ---- pure rules over arrays ---------------------------------------------------------------


def window_mean(values: torch.Tensor, count: torch.Tensor, n: int) -> torch.Tensor:
    """``(N,)`` mean of the newest ``n`` columns of ``values (N, W)``; NaN where ``count < n``."""
    mean = values[:, :n].float().mean(dim=1)  # (N,)
    return torch.where(count >= n, mean, torch.full_like(mean, float("nan")))


def class_medians(
    score: torch.Tensor, cls: torch.Tensor, valid: torch.Tensor, *, num_classes: int
) -> torch.Tensor:
    """``(K,)`` median of ``score (N,)`` over the valid samples of each class ``cls (N,)``.

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
    lam: float,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep ``{i : S_i > lam · median_{j : cls_j = cls_i} S_j}``; undecided samples are kept.

    Args:
        score: ``(N,)`` window-mean score ``S`` (any value where undecided).
        cls: ``(N,)`` int class each score is about (the predicted class for ``w · p[pred]``).
        decided: ``(N,)`` bool, the sample has a full window.
        lam: relative threshold in ``[0, 1]``.
        num_classes: ``K``.

    Returns:
        ``keep (N,) bool`` and ``threshold (N,) float`` (the threshold each sample faced).
    """
    med = class_medians(score, cls, decided, num_classes=num_classes)  # (K,)
    threshold = lam * med[cls.long()]  # (N,)
    keep = ~decided | (score > threshold)  # (N,)
    return keep, threshold


def global_pruning(score: torch.Tensor, decided: torch.Tensor, *, lam: float) -> torch.Tensor:
    """The paper's CGP rule on a precomputed score: keep ``{i : S_i > λ}``; ``(N,)`` bool."""
    return ~decided | (score > lam)


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
    """Correct ``i`` to ``ŷ`` when its newest ``agree`` records all predict ``ŷ ≠ y_i`` and
    ``Δp = mean(p[ŷ]) − mean(p[y_i]) > τ`` over them.

    Args:
        preds, p_pred, p_label: ``(N, W)`` records, newest first.
        fresh: ``(N,)`` records since the sample's agreement was last reset.
        labels: ``(N,)`` int64 annotation ``y``.
        eligible: ``(N,)`` bool samples that may be corrected.
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


# ---- records ------------------------------------------------------------------------------


class OrderedHistory:
    """The newest ``W`` records of ``N`` samples, column 0 the newest; one per epoch.

    Records are staged batch by batch (the last one of an epoch wins) and committed once per
    epoch, as in :class:`d2sp.purify.history.History`, but kept in order so that windows of
    different lengths can be read from one buffer.
    """

    def __init__(self, num_samples: int, width: int, *, device: torch.device | str = "cpu"):
        dev = torch.device(device)
        self.width = width
        self.weight = torch.zeros(num_samples, width, device=dev)  # (N, W)
        self.pred = torch.zeros(num_samples, width, dtype=torch.int16, device=dev)  # (N, W)
        self.p_pred = torch.zeros(num_samples, width, device=dev)  # (N, W)
        self.p_label = torch.zeros(num_samples, width, device=dev)  # (N, W)
        self.count = torch.zeros(num_samples, dtype=torch.int64, device=dev)  # (N,)
        self.stage = {f: torch.zeros_like(getattr(self, f)[:, 0]) for f in FIELDS}
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=dev)  # (N,)

    def stage_batch(self, indices, weight, pred, p_pred, p_label) -> None:
        """Stage one batch; every argument is ``(B,)`` on this device."""
        self.stage["weight"][indices] = weight.float()
        self.stage["pred"][indices] = pred.to(torch.int16)
        self.stage["p_pred"][indices] = p_pred.float()
        self.stage["p_label"][indices] = p_label.float()
        self.seen[indices] = True

    def commit(self) -> torch.Tensor:
        """Shift the staged records in as the newest column; returns the ``(N,)`` seen mask."""
        seen = self.seen.clone()
        idx = seen.nonzero().squeeze(1)  # (M,)
        for f in FIELDS:
            buf = getattr(self, f)
            rows = buf[idx]  # (M, W)
            buf[idx] = torch.cat([self.stage[f][idx].unsqueeze(1), rows[:, :-1]], dim=1)
        self.count[idx] += 1
        self.seen.zero_()
        return seen

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f: getattr(self, f).cpu() for f in (*FIELDS, "count")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for f in (*FIELDS, "count"):
            target = getattr(self, f)
            if state[f].shape != target.shape:
                raise ValueError(
                    f"history field {f!r}: expected shape {tuple(target.shape)}, "
                    f"got {tuple(state[f].shape)}"
                )
            target.copy_(state[f].to(target.device))


# ---- the purifier -------------------------------------------------------------------------


def _check(name: str, value, ok: bool, expected: str):
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


class ImprovedPurifier:
    """Dynamic purification, mode ``d2sp+``; the same public API as :class:`Purifier`.

    Args:
        labels: ``(N,)`` original annotation ``y`` (never changed).
        num_classes: ``K``.
        lam: pruning threshold: relative to the class median when ``class_relative`` (a
            sample is pruned when ``S ≤ lam · median``), else absolute as in the paper.
        tau: correction margin τ on ``Δp``.
        t: records the pruning score ``S = mean(w · p[pred])`` is averaged over.
        agree: consecutive records that must predict the same ``ŷ ≠ y`` for a correction.
        warmup_epochs: epochs that train on everything before the first decision.
        class_relative: class-relative pruning threshold (else the paper's global λ).
        rank_reg: add :func:`rank_regularization` of the weights to the loss
            (through :meth:`extra_loss`), with ``rank_margin`` and ``rank_ratio``.
        teacher: decisions come from an EMA teacher scoring every sample each epoch
            (through :func:`training_hooks`); ``teacher_epochs`` is its time constant.
        expire_after: a correction lapses after this many epochs (0 = never) and the sample
            is held out until ``agree`` fresh records earn it again.
        cgp, fgc: stage switches.
        device: where the records live.
        keep_ledger: keep every epoch's arrays in :attr:`ledger`.
    """

    mode = "d2sp+"

    def __init__(
        self,
        labels,
        *,
        num_classes: int,
        lam: float = 0.5,
        tau: float = 0.2,
        t: int = 2,
        agree: int = 3,
        warmup_epochs: int = 3,
        class_relative: bool = True,
        rank_reg: bool = True,
        rank_margin: float = 0.15,
        rank_ratio: float = 0.7,
        teacher: str = "predictions",
        teacher_epochs: float = 2.0,
        rescore_every: int = 2,
        expire_after: int = 0,
        rejoin: float | None = 1.0,
        cgp: bool = True,
        fgc: bool = True,
        device: torch.device | str = "cpu",
        keep_ledger: bool = True,
    ):
        _check("num_classes", num_classes, int(num_classes) >= 2, "an integer >= 2")
        _check("lam", lam, 0.0 <= lam <= 1.0, "a value in [0, 1]")
        _check("tau", tau, -1.0 <= tau <= 1.0, "a value in [-1, 1] (Δp is a difference)")
        _check("t", t, int(t) >= 1, "an integer >= 1")
        _check("agree", agree, int(agree) >= 1, "an integer >= 1")
        _check("warmup_epochs", warmup_epochs, int(warmup_epochs) >= 0, "an integer >= 0")
        _check("rank_margin", rank_margin, 0.0 < rank_margin < 1.0, "a value in (0, 1)")
        _check("rank_ratio", rank_ratio, 0.0 < rank_ratio < 1.0, "a value in (0, 1)")
        _check("teacher", teacher, teacher in TEACHERS, f"one of {TEACHERS}")
        _check("teacher_epochs", teacher_epochs, teacher_epochs >= 1, "a number >= 1")
        _check("expire_after", expire_after, int(expire_after) >= 0, "an integer >= 0")
        self.num_classes = int(num_classes)
        self.lam, self.tau, self.t, self.agree = float(lam), float(tau), int(t), int(agree)
        self.warmup_epochs = int(warmup_epochs)
        self.class_relative, self.rank_reg = bool(class_relative), bool(rank_reg)
        self.teacher = teacher
        self.rank_margin, self.rank_ratio = float(rank_margin), float(rank_ratio)
        self.teacher_epochs = float(teacher_epochs)
        _check("rescore_every", rescore_every, int(rescore_every) >= 1, "an integer >= 1")
        self.rescore_every = int(rescore_every)
        self.expire_after = int(expire_after)
        self.rejoin = self.lam if rejoin is None else float(rejoin)
        self.cgp, self.fgc = bool(cgp), bool(fgc)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.labels = _as_label_tensor(labels, self.num_classes)  # (N,) CPU
        self._labels_dev = self.labels.to(self.device)
        n = len(self.labels)
        self.history = OrderedHistory(n, max(self.t, self.agree), device=self.device)
        self.fresh = torch.zeros(n, dtype=torch.int64, device=self.device)  # (N,)
        self.corrected_since = torch.full((n,), -1, dtype=torch.int64, device=self.device)
        self.held_out = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)
        k = self.num_classes
        self._stage_probs = torch.zeros(n, k, device=self.device)  # (N, K)
        self._stage_weight = torch.zeros(n, device=self.device)  # (N,)
        self._seen = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)
        self._avg_probs = torch.zeros(n, k, device=self.device)  # (N, K)
        self._avg_weight = torch.zeros(n, device=self.device)  # (N,)
        self.epoch = 0
        self.keep_mask = torch.ones(n, dtype=torch.bool)  # (N,) CPU
        self.current_labels = self.labels.clone()  # (N,) CPU
        self._current_dev = self._labels_dev.clone()
        self.ledger = Ledger(labels=self.labels.numpy().copy()) if keep_ledger else None

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def deciding(self) -> bool:
        return self.epoch >= self.warmup_epochs and (self.cgp or self.fgc)

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """The loss term to add to the weighted cross-entropy (rank regularisation or 0)."""
        if not self.rank_reg or weights is None or self.epoch < self.warmup_epochs:
            return 0.0
        return rank_regularization(weights, margin=self.rank_margin, ratio=self.rank_ratio)

    def record(
        self,
        indices,
        logits: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        rescore: bool = False,
    ) -> None:
        """Record one batch: ``indices (B,)``, ``logits (B, K)``, ``weights (B,)`` or None.

        ``rescore`` marks a no-grad re-scoring pass (see :class:`TrainingHooks`). With
        ``teacher="model"`` only those count and training-pass records are ignored. A sample
        recorded twice in an epoch keeps the last record.
        """
        if self.teacher == "model" and not rescore:
            return
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits: expected shape (B, {self.num_classes}), got {tuple(logits.shape)}"
            )
        idx = torch.as_tensor(indices).to(self.device, non_blocking=True).long()  # (B,)
        if idx.shape != logits.shape[:1]:
            raise ValueError(
                f"indices: expected shape ({logits.shape[0]},) to match logits, "
                f"got {tuple(idx.shape)}"
            )
        with torch.no_grad():
            probs = torch.softmax(logits.detach().float(), dim=1).to(self.device)  # (B, K)
            if weights is None:
                w = torch.ones(len(idx), device=self.device)  # (B,)
            else:
                w = weights.detach().float().reshape(-1).to(self.device)  # (B,)
            self._stage_probs[idx] = probs
            self._stage_weight[idx] = w
            self._seen[idx] = True

    def _commit_records(self) -> torch.Tensor:
        """Turn the staged records into this epoch's history column; ``(N,)`` seen mask.

        With ``teacher="predictions"`` the record is the running average of the sample's
        probabilities and weights over epochs (``teacher_epochs`` its time constant).
        """
        seen = self._seen.clone()
        idx = seen.nonzero().squeeze(1)  # (M,)
        probs = self._stage_probs[idx]  # (M, K)
        w = self._stage_weight[idx]  # (M,)
        if self.teacher == "predictions":
            first = (self.history.count[idx] == 0).unsqueeze(1)  # (M, 1)
            a = 1.0 - 1.0 / self.teacher_epochs
            probs = torch.where(first, probs, a * self._avg_probs[idx] + (1 - a) * probs)
            w = torch.where(first[:, 0], w, a * self._avg_weight[idx] + (1 - a) * w)
            self._avg_probs[idx] = probs
            self._avg_weight[idx] = w
        p_pred, pred = probs.max(dim=1)  # (M,), (M,)
        p_label = probs.gather(1, self._labels_dev[idx].unsqueeze(1)).squeeze(1)  # (M,)
        self.history.stage_batch(idx, w, pred, p_pred, p_label)
        self._seen.zero_()
        return self.history.commit()

    def end_epoch(self) -> dict[str, int]:
        """Commit the epoch's records and recompute the kept set and the labels."""
        h = self.history
        seen = self._commit_records()
        self.fresh[seen] += 1
        self.epoch += 1
        y = self._labels_dev
        decided = h.count >= self.t  # (N,)
        score = window_mean(h.weight * h.p_pred, h.count, self.t)  # (N,)
        cls = y  # (N,) thresholds relative to the samples annotated with the same class
        was_pruned = ~self.keep_mask.to(self.device)  # (N,)
        lam = torch.where(was_pruned, self.rejoin, self.lam)  # (N,) hysteresis
        if self.class_relative:
            keep, _ = class_relative_pruning(
                torch.nan_to_num(score), cls, decided, lam=lam, num_classes=self.num_classes
            )
        else:
            keep = global_pruning(score, decided, lam=lam)
        if not self.cgp:
            keep = torch.ones_like(keep)
        correct, target, delta_p = agreeing_correction(
            h.pred, h.p_pred, h.p_label, self.fresh, y, keep,
            agree=self.agree, tau=self.tau,
        )  # fmt: skip
        if not self.fgc:
            correct = torch.zeros_like(correct)
        if not self.deciding:
            keep = torch.ones_like(keep)
            correct = torch.zeros_like(correct)
            decided = torch.zeros_like(decided)
        # corrections that lapse: back to y, held out until `agree` fresh records re-earn them
        was = self.corrected_since >= 0
        lapse = expired_corrections(self.corrected_since, self.epoch, expire_after=self.expire_after)
        self.fresh[lapse] = 0
        self.held_out = (self.held_out | lapse) & (self.fresh < self.agree)
        correct = correct & ~self.held_out
        target = torch.where(correct, target, y)
        start = correct & (~was | lapse)
        self.corrected_since = torch.where(
            correct, torch.where(start, self.epoch, self.corrected_since), -1
        )
        keep = keep & ~self.held_out
        # a pruned sample must be kept for `agree` epochs before it can be corrected
        self.fresh[~keep] = 0
        self._current_dev = target.clone()
        self.keep_mask = keep.cpu()
        self.current_labels = target.cpu()
        n = self.num_samples
        state = torch.full((n,), KEPT, dtype=torch.int8, device=self.device)
        state[~decided] = UNDECIDED
        state[~keep] = PRUNED
        state[keep & correct] = CORRECTED
        if self.ledger is not None:
            self.ledger.append(
                **self._newest_records(seen),
                score=score.cpu().numpy().astype(np.float32),
                delta_p=delta_p.cpu().numpy().astype(np.float32),
                state=state.cpu().numpy(),
                label=target.cpu().numpy().astype(np.int16),
            )
        state_cpu = state.cpu()
        return {
            "recorded": int(seen.sum()),
            "kept": int((state_cpu == KEPT).sum()),
            "pruned": int((state_cpu == PRUNED).sum()),
            "corrected": int((state_cpu == CORRECTED).sum()),
            "undecided": int((state_cpu == UNDECIDED).sum()),
        }

    def _newest_records(self, seen: torch.Tensor) -> dict[str, np.ndarray]:
        h = self.history
        out = {}
        for f in ("weight", "p_pred", "p_label"):
            col = getattr(h, f)[:, 0]
            v = torch.where(seen, col, torch.full_like(col, float("nan")))
            out[f] = v.cpu().numpy().astype(np.float16)
        pred = torch.where(seen, h.pred[:, 0], torch.full_like(h.pred[:, 0], -1))
        out["pred"] = pred.cpu().numpy()
        return out

    def labels_for(self, indices) -> torch.Tensor:
        """``(B,)`` int64 current training labels of these samples, on ``indices``' device."""
        idx = torch.as_tensor(indices)
        if idx.device == self.device:
            return self._current_dev[idx.long()]
        return self.current_labels[idx.cpu().long()].to(idx.device)

    def kept_indices(self) -> np.ndarray:
        """Indices of the samples to train on next epoch, int64."""
        return self.keep_mask.nonzero().squeeze(1).numpy()

    def pruned_indices(self) -> np.ndarray:
        """Indices of the samples not trained on next epoch (pruned or held out), int64."""
        return (~self.keep_mask).nonzero().squeeze(1).numpy()

    def corrected_indices(self) -> np.ndarray:
        """Indices whose current training label differs from the annotation."""
        return (self.current_labels != self.labels).nonzero().squeeze(1).numpy()

    def rescore_indices(self) -> np.ndarray:
        """Indices to score without gradient at the end of the epoch: every sample when the
        teacher decides, else the pruned ones (as the paper's revisit)."""
        if self.teacher != "model":
            return self.pruned_indices()
        turn = (np.arange(self.num_samples) + self.epoch) % self.rescore_every == 0
        return np.flatnonzero(turn | ~self.keep_mask.numpy())

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "history": self.history.state_dict(),
            "fresh": self.fresh.cpu(),
            "corrected_since": self.corrected_since.cpu(),
            "held_out": self.held_out.cpu(),
            "keep_mask": self.keep_mask.clone(),
            "current_labels": self.current_labels.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.history.load_state_dict(state["history"])
        self.fresh = state["fresh"].to(self.device).long()
        self.corrected_since = state["corrected_since"].to(self.device).long()
        self.held_out = state["held_out"].to(self.device).bool()
        self.keep_mask = state["keep_mask"].clone().bool()
        self.current_labels = state["current_labels"].clone().long()
        self._current_dev = self.current_labels.to(self.device)


# ---- the loop hooks -----------------------------------------------------------------------


class EmaTeacher:
    """An exponential moving average of a model's parameters (buffers copied), eval mode.

    ``decay`` per optimizer step is set from a time constant in epochs once the number of
    steps per epoch is known (``1 − 1 / (epochs · steps)``) and ramps up to it as
    ``(1 + step) / (10 + step)``, so that the teacher forgets the random initialisation fast.
    """

    def __init__(self, model: nn.Module, *, time_constant_epochs: float = 2.0):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.time_constant_epochs = float(time_constant_epochs)
        self.steps = 0
        self.steps_per_epoch: int | None = None

    def decay(self) -> float:
        ramp = (1.0 + self.steps) / (10.0 + self.steps)
        if self.steps_per_epoch is None:
            return ramp
        target = 1.0 - 1.0 / max(1.0, self.time_constant_epochs * self.steps_per_epoch)
        return min(ramp, target)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        for pt, p in zip(self.model.parameters(), model.parameters(), strict=True):
            pt.lerp_(p.detach(), 1.0 - d)
        for bt, b in zip(self.model.buffers(), model.buffers(), strict=True):
            bt.copy_(b)
        self.steps += 1

    @torch.no_grad()
    def __call__(self, *args, **kwargs):
        self.model.eval()
        return self.model(*args, **kwargs)


class TrainingHooks:
    """What a training loop calls besides the purifier: the extra loss, the teacher update,
    which samples to re-score at the end of an epoch and with which model.

    For the paper's :class:`Purifier` every hook is neutral: no extra loss, no teacher, the
    pruned samples are re-scored by the model itself.
    """

    def __init__(self, purifier, model: nn.Module):
        self.purifier = purifier
        self.model = model
        use_teacher = getattr(purifier, "teacher", "off") == "model"
        tc = getattr(purifier, "teacher_epochs", 2.0)
        self.teacher = EmaTeacher(model, time_constant_epochs=tc) if use_teacher else None
        self._epoch_seen = getattr(purifier, "epoch", 0)
        self._steps_this_epoch = 0

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """Add this to the loss (0 for the paper's mode)."""
        fn = getattr(self.purifier, "extra_loss", None)
        return fn(weights) if fn is not None else 0.0

    def after_step(self) -> None:
        """Call after each ``optimizer.step()``."""
        if self.teacher is None:
            return
        epoch = self.purifier.epoch
        if epoch != self._epoch_seen:
            if self.teacher.steps_per_epoch is None and self._steps_this_epoch:
                self.teacher.steps_per_epoch = self._steps_this_epoch
            self._epoch_seen, self._steps_this_epoch = epoch, 0
        self._steps_this_epoch += 1
        self.teacher.update(self.model)

    def rescore_indices(self) -> np.ndarray:
        """Samples to score without gradient before ``end_epoch`` (int64)."""
        fn = getattr(self.purifier, "rescore_indices", None)
        return fn() if fn is not None else self.purifier.pruned_indices()

    def record_rescored(self, indices, logits: torch.Tensor, weights=None) -> None:
        """Record a batch scored by :meth:`scorer` in the end-of-epoch pass."""
        if isinstance(self.purifier, ImprovedPurifier):
            self.purifier.record(indices, logits, weights, rescore=True)
        else:
            self.purifier.record(indices, logits, weights)

    @torch.no_grad()
    def scorer(self, *args, **kwargs):
        """Score a batch for the purifier: the teacher, or the model in eval mode."""
        if self.teacher is not None:
            return self.teacher(*args, **kwargs)
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model(*args, **kwargs)
        finally:
            self.model.train(was_training)


def training_hooks(purifier, model: nn.Module) -> TrainingHooks:
    """The loop hooks for ``purifier`` (either mode) and ``model``; see the module doc."""
    return TrainingHooks(purifier, model)
