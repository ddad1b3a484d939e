"""The improved purification mode ``d2sp+``: rules over arrays, the purifier, the loop hooks.

It keeps the paper's idea (a learned per-sample weight, dynamic pruning recomputed every
epoch, correction of stably mispredicted samples) and fixes what goes wrong on real images
with dual noise. Each fix is one keyword switch of :class:`ImprovedPurifier`:

- ``rank_reg`` (off by default: its ablation row did not earn it a place): rank
  regularisation of the weights (a loss term, from the end of warm-up) so that the weight
  branch spreads its weights instead of sitting near 1 for everything;
- ``class_relative``: the pruning score is compared with ``lam`` times the median score of
  the samples annotated with the same class, not with one global λ, so a hard class is not
  thinned out and the thresholds follow the model's confidence as training goes on;
- ``teacher``: decisions come from an EMA copy of the model scoring un-augmented samples
  without gradient, not from the training pass of the model being trained; a kept sample
  is re-scored every ``rescore_every`` epochs (pruned ones every epoch), which spaces the
  records out (slower, steadier decisions) and keeps the extra cost small;
- ``agree``: a correction needs the same prediction ``ŷ ≠ y`` in ``agree`` consecutive
  records taken while the sample was kept: a sample coming back from the pruned set is
  not corrected at once;
- ``rejoin``: hysteresis: a pruned sample comes back only when its score exceeds ``rejoin``
  times its class median (``lam`` to be pruned, ``rejoin ≥ lam`` to come back), because an
  unusable image that is not trained on drifts to confident predictions all the same;
- ``expire_after`` (off by default): a correction lapses after that many epochs; the sample
  is held out until ``agree`` fresh records earn it again.

Usable from any training loop with a few extra lines (see :class:`TrainingHooks`)::

    purifier = create_purifier("d2sp+", labels, num_classes=K, warmup_epochs=5)
    hooks = training_hooks(purifier, model)
    for epoch in range(epochs):
        for x, _, idx in loader_over(purifier.kept_indices()):
            logits, w = model(augment(x))
            loss = weighted_cross_entropy(logits, w, purifier.labels_for(idx))
            loss = loss + hooks.extra_loss(w)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            hooks.after_step()
            purifier.record(idx, logits.detach(), w.detach())
        for x, _, idx in loader_over(hooks.rescore_indices()):  # un-augmented views
            hooks.record_rescored(idx, *hooks.scorer(x))
        purifier.end_epoch()

The same loop runs the paper's :class:`~d2sp.purify.purifier.Purifier` unchanged: its
hooks add no loss, keep no teacher and re-score the pruned samples with the model.

Shapes: ``N`` samples, ``K`` classes, ``W`` records kept per sample, newest first.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from d2sp.losses_extra import rank_regularization
from d2sp.purify.history import FIELDS, reduce_staged
from d2sp.purify.ledger import Ledger, count_states, epoch_records, state_codes
from d2sp.purify.purifier import PurifierQueries, _as_label_tensor

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


# ---- records ------------------------------------------------------------------------------


class OrderedHistory:
    """The newest ``W`` records of ``N`` samples, column 0 the newest; one per epoch at most.

    Like :class:`d2sp.purify.history.History`, but kept in order so that windows of
    different lengths (``t`` for pruning, ``agree`` for correction) read one buffer.
    """

    def __init__(self, num_samples: int, width: int, *, device: torch.device | str = "cpu"):
        dev = torch.device(device)
        self.width = width
        self.weight = torch.zeros(num_samples, width, dtype=torch.float32, device=dev)  # (N, W)
        self.pred = torch.zeros(num_samples, width, dtype=torch.int16, device=dev)  # (N, W)
        self.p_pred = torch.zeros(num_samples, width, dtype=torch.float32, device=dev)  # (N, W)
        self.p_label = torch.zeros(num_samples, width, dtype=torch.float32, device=dev)  # (N, W)
        self.count = torch.zeros(num_samples, dtype=torch.int64, device=dev)  # (N,)

    def push(self, idx: torch.Tensor, **fields: torch.Tensor) -> None:
        """Shift one record per sample in as the newest column; every field is ``(M,)``."""
        for f in FIELDS:
            buf = getattr(self, f)
            rows = buf[idx]  # (M, W)
            new = fields[f].to(buf.dtype).unsqueeze(1)  # (M, 1)
            buf[idx] = torch.cat([new, rows[:, :-1]], dim=1)
        self.count[idx] += 1

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


class _Staging:
    """Records of the epoch in progress: probabilities ``(N, K)``, weights ``(N,)``, seen."""

    def __init__(self, n: int, k: int, device: torch.device):
        self.probs = torch.zeros(n, k, dtype=torch.float32, device=device)  # (N, K)
        self.weight = torch.zeros(n, dtype=torch.float32, device=device)  # (N,)
        self.seen = torch.zeros(n, dtype=torch.bool, device=device)  # (N,)

    def put(self, idx: torch.Tensor, probs: torch.Tensor, w: torch.Tensor) -> None:
        self.probs[idx] = probs
        self.weight[idx] = w
        self.seen[idx] = True


# ---- the purifier -------------------------------------------------------------------------


def _check(name: str, value, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


class ImprovedPurifier(PurifierQueries):
    """Dynamic purification, mode ``d2sp+``; the same public API as :class:`Purifier`.

    Per epoch, over the newest records (from the teacher when ``teacher``):

    1. score ``S = mean_t(w · p[pred])``; a kept sample is pruned when ``S < lam · m_c``, a
       pruned one comes back when ``S ≥ rejoin · m_c``, ``m_c`` the median score of the
       decided samples annotated with its class ``c`` (of all samples without
       ``class_relative``);
    2. a kept sample whose newest ``agree`` records, all taken while it was kept, predict the
       same ``ŷ ≠ y`` with ``Δp > tau`` trains on ``ŷ``; corrections are recomputed from the
       annotation every epoch, as in the paper;
    3. with ``expire_after``, a correction in force that long lapses and the sample is held
       out (shown as pruned) until ``agree`` fresh records earn it again.

    Args:
        labels: ``(N,)`` original annotation ``y`` (never changed).
        num_classes: ``K``.
        lam: relative pruning threshold in [0, 1].
        tau: correction margin τ on ``Δp`` in [-1, 1].
        t: records the pruning score is averaged over.
        agree: consecutive records that must agree for a correction.
        warmup_epochs: epochs that train on every sample before the first decision (the rank
            regularisation also starts after them).
        class_relative: per-class medians (else one median over all samples).
        rank_reg: add :func:`~d2sp.losses_extra.rank_regularization` of the weights to the
            loss (:meth:`extra_loss`), with ``rank_margin`` and ``rank_ratio``. Off by
            default: it spreads the weights, but forcing a share of every batch into the
            low group also pushes clean samples down, and pruning and correction got worse.
        teacher: take decisions from the records of an EMA teacher (see
            :class:`TrainingHooks`), ``teacher_epochs`` its time constant in epochs; the
            training-pass records are then ignored (used only if no re-scored record
            arrives in an epoch, i.e. when the loop does not call the hooks).
        rescore_every: a kept sample is re-scored by the teacher every that many epochs.
        rejoin: relative threshold a pruned sample must exceed to come back (``None``: lam).
        expire_after: a correction lapses after this many epochs (0 = never).
        cgp, fgc: stage switches.
        score: only ``"max"`` (accepted so that a loop can pass the paper's options as they
            are).
        device: where the records live; put them on the model's device.
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
        warmup_epochs: int = 5,
        class_relative: bool = True,
        rank_reg: bool = False,
        rank_margin: float = 0.15,
        rank_ratio: float = 0.7,
        teacher: bool = True,
        teacher_epochs: float = 2.0,
        rescore_every: int = 3,
        rejoin: float | None = 1.0,
        expire_after: int = 0,
        cgp: bool = True,
        fgc: bool = True,
        score: str = "max",
        device: torch.device | str = "cpu",
        keep_ledger: bool = True,
    ):
        _check(
            "score", score, score == "max",
            "'max' (d2sp+ scores w · p[pred]; w · p[y] prunes the mislabelled samples)",
        )  # fmt: skip
        _check("num_classes", num_classes, int(num_classes) >= 2, "an integer >= 2")
        _check("lam", lam, 0.0 <= lam <= 1.0, "a value in [0, 1]")
        _check("tau", tau, -1.0 <= tau <= 1.0, "a value in [-1, 1] (Δp is a difference)")
        _check("t", t, int(t) >= 1, "an integer >= 1")
        _check("agree", agree, int(agree) >= 1, "an integer >= 1")
        _check("warmup_epochs", warmup_epochs, int(warmup_epochs) >= 0, "an integer >= 0")
        _check("rank_margin", rank_margin, 0.0 < rank_margin < 1.0, "a value in (0, 1)")
        _check("rank_ratio", rank_ratio, 0.0 < rank_ratio < 1.0, "a value in (0, 1)")
        _check("teacher_epochs", teacher_epochs, teacher_epochs > 0, "a positive number")
        _check("rescore_every", rescore_every, int(rescore_every) >= 1, "an integer >= 1")
        rejoin = lam if rejoin is None else rejoin
        _check("rejoin", rejoin, lam <= rejoin <= 2.0, f"None or a value in [lam={lam}, 2]")
        _check("expire_after", expire_after, int(expire_after) >= 0, "an integer >= 0")
        self.num_classes = int(num_classes)
        self.lam, self.tau, self.t, self.agree = float(lam), float(tau), int(t), int(agree)
        self.warmup_epochs = int(warmup_epochs)
        self.class_relative, self.rank_reg = bool(class_relative), bool(rank_reg)
        self.rank_margin, self.rank_ratio = float(rank_margin), float(rank_ratio)
        self.teacher, self.teacher_epochs = bool(teacher), float(teacher_epochs)
        self.rescore_every = int(rescore_every)
        self.rejoin, self.expire_after = float(rejoin), int(expire_after)
        self.cgp, self.fgc = bool(cgp), bool(fgc)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.labels = _as_label_tensor(labels, self.num_classes)  # (N,) CPU
        self._labels_dev = self.labels.to(self.device)
        n = len(self.labels)
        self.history = OrderedHistory(n, max(self.t, self.agree), device=self.device)
        self._train_stage = _Staging(n, self.num_classes, self.device)
        self._rescore_stage = _Staging(n, self.num_classes, self.device)
        self.fresh = torch.zeros(n, dtype=torch.int64, device=self.device)  # (N,)
        self.corrected_since = torch.full((n,), -1, dtype=torch.int64, device=self.device)
        self.held_out = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)
        self.epoch = 0  # epochs ended so far
        self.keep_mask = torch.ones(n, dtype=torch.bool)  # (N,) CPU
        self.current_labels = self.labels.clone()  # (N,) CPU
        self._current_dev = self._labels_dev.clone()
        self.ledger = Ledger(labels=self.labels.numpy().copy()) if keep_ledger else None

    @property
    def deciding(self) -> bool:
        """Whether the epoch that has just ended took (or will take) decisions."""
        return self.epoch >= self.warmup_epochs and (self.cgp or self.fgc)

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """Loss term to add to the weighted cross-entropy: rank regularisation after warm-up."""
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
        """Record one batch: ``indices (B,)``, ``logits (B, K)`` (unweighted), ``weights (B,)``
        or ``None`` (treated as 1).

        ``rescore=True`` marks the end-of-epoch no-grad pass (:meth:`TrainingHooks.record_rescored`).
        The last record of a sample in an epoch wins.
        """
        idx, probs, w = self._batch_records(indices, logits, weights)  # (B,), (B, K), (B,)
        stage = self._rescore_stage if rescore else self._train_stage
        stage.put(idx, probs, w)

    def combine_staged(self, reduce) -> None:
        """Combine this epoch's records (training pass and re-scoring) across the processes of
        a distributed run, before :meth:`end_epoch`; ``reduce`` sums a tensor over the
        processes (see :meth:`Purifier.combine_staged <d2sp.purify.purifier.Purifier.combine_staged>`)."""
        for stage in (self._train_stage, self._rescore_stage):
            reduce_staged({"probs": stage.probs, "weight": stage.weight}, stage.seen, reduce)

    def _commit_records(self) -> torch.Tensor:
        """Push this epoch's records into the history; returns the ``(N,)`` recorded mask."""
        rescored = self._rescore_stage
        if self.teacher and bool(rescored.seen.any()):
            stage = rescored
        else:  # no teacher, or the loop does not re-score: the training pass decides
            stage = self._train_stage
            stage.put(*self._rescored_items())
        seen = stage.seen.clone()
        idx = seen.nonzero().squeeze(1)  # (M,)
        probs = stage.probs[idx]  # (M, K)
        p_pred, pred = probs.max(dim=1)  # (M,), (M,)
        p_label = probs.gather(1, self._labels_dev[idx].unsqueeze(1)).squeeze(1)  # (M,)
        self.history.push(idx, weight=stage.weight[idx], pred=pred, p_pred=p_pred, p_label=p_label)
        for s in (self._train_stage, self._rescore_stage):
            s.seen.zero_()
        return seen

    def _rescored_items(self):
        """Re-scored records (the pruned samples' revisit) to lay over the training pass."""
        r = self._rescore_stage
        idx = r.seen.nonzero().squeeze(1)  # (M,)
        return idx, r.probs[idx], r.weight[idx]

    def end_epoch(self) -> dict[str, int]:
        """Commit the epoch's records, recompute the kept set and labels, log the ledger.

        Returns counts for the epoch just ended: ``recorded``, ``kept``, ``pruned``,
        ``corrected``, ``undecided``.
        """
        h = self.history
        seen = self._commit_records()
        self.fresh[seen] += 1
        self.epoch += 1
        y = self._labels_dev
        decided = h.count >= self.t  # (N,)
        score = window_mean(h.weight * h.p_pred, h.count, self.t)  # (N,)
        cls = y if self.class_relative else torch.zeros_like(y)  # (N,)
        was_pruned = ~self.keep_mask.to(self.device) & ~self.held_out  # (N,) by CGP
        lam = torch.where(was_pruned, self.rejoin, self.lam)  # (N,) hysteresis
        keep, _ = class_relative_pruning(
            torch.nan_to_num(score), cls, decided, lam=lam, num_classes=self.num_classes
        )
        if not self.cgp:
            keep = torch.ones_like(keep)
        if not self.deciding:
            keep = torch.ones_like(keep)
            decided = torch.zeros_like(decided)
        # a correction needs `agree` records taken while kept: a sample pruned in this epoch
        # (or still pruned) starts counting again
        self.fresh[~keep | was_pruned] = 0
        correct, target, delta_p = agreeing_correction(
            h.pred, h.p_pred, h.p_label, self.fresh, y, keep, agree=self.agree, tau=self.tau
        )
        if not (self.fgc and self.deciding):
            correct = torch.zeros_like(correct)
        # corrections that lapse go back to y and are held out until re-earned
        lapse = expired_corrections(
            self.corrected_since, self.epoch, expire_after=self.expire_after
        )
        self.fresh[lapse] = 0
        self.held_out = (self.held_out | lapse) & (self.fresh < self.agree)
        correct = correct & ~self.held_out
        target = torch.where(correct, target, y)  # (N,)
        start = correct & ((self.corrected_since < 0) | lapse)
        since = torch.where(
            start, torch.full_like(self.corrected_since, self.epoch), self.corrected_since
        )
        self.corrected_since = torch.where(correct, since, torch.full_like(since, -1))
        keep = keep & ~self.held_out
        self._current_dev = target.clone()
        self.keep_mask = keep.cpu()
        self.current_labels = target.cpu()
        state = state_codes(decided, keep, correct)
        if self.ledger is not None:
            self.ledger.append(
                **epoch_records(seen, {f: getattr(self.history, f)[:, 0] for f in FIELDS}),
                score=score.cpu().numpy().astype(np.float32),
                delta_p=delta_p.cpu().numpy().astype(np.float32),
                state=state.cpu().numpy(),
                label=target.cpu().numpy().astype(np.int16),
            )
        return count_states(state, seen)

    def rescore_indices(self) -> np.ndarray:
        """Indices to score without gradient at the end of this epoch, int64: with the
        teacher, the pruned samples and the kept ones whose turn it is; else the pruned."""
        if not self.teacher:
            return self.pruned_indices()
        turn = rescore_turn(self.num_samples, self.epoch, self.rescore_every)
        return np.flatnonzero(turn | ~self.keep_mask.numpy())

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(
            fresh=self.fresh.cpu(),
            corrected_since=self.corrected_since.cpu(),
            held_out=self.held_out.cpu(),
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.fresh = state["fresh"].to(self.device).long()
        self.corrected_since = state["corrected_since"].to(self.device).long()
        self.held_out = state["held_out"].to(self.device).bool()


# ---- the loop hooks -----------------------------------------------------------------------


class EmaTeacher:
    """An exponential moving average of a model's parameters (buffers copied), in eval mode.

    The per-step decay follows a time constant in epochs once the number of steps per epoch
    is known, ``1 − 1 / (epochs · steps)``, and ramps up to it as ``(1 + s) / (10 + s)``
    after ``s`` steps so that the random initialisation is forgotten fast.
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
        return min(ramp, 1.0 - 1.0 / max(1.0, self.time_constant_epochs * self.steps_per_epoch))

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

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "steps": self.steps,
            "steps_per_epoch": self.steps_per_epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.steps = int(state["steps"])
        self.steps_per_epoch = state["steps_per_epoch"]


class TrainingHooks:
    """What a training loop calls besides the purifier, for either mode.

    - ``loss = loss + hooks.extra_loss(w)`` (rank regularisation; 0 for ``paper``);
    - ``hooks.after_step()`` after each ``optimizer.step()`` (EMA teacher update);
    - before ``purifier.end_epoch()``, for batches over ``hooks.rescore_indices()``
      (un-augmented, test-time views): ``hooks.record_rescored(idx, *hooks.scorer(x))``.
      ``scorer`` is the teacher, or the model in eval mode; for ``paper`` the indices are
      the pruned ones, exactly the paper's revisit.
    """

    def __init__(self, purifier, model: nn.Module):
        self.purifier = purifier
        self.model = model
        use_teacher = isinstance(purifier, ImprovedPurifier) and purifier.teacher
        self.teacher = (
            EmaTeacher(model, time_constant_epochs=purifier.teacher_epochs) if use_teacher else None
        )
        self._epoch_seen = getattr(purifier, "epoch", 0)
        self._steps_this_epoch = 0

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        fn = getattr(self.purifier, "extra_loss", None)
        return fn(weights) if fn is not None else 0.0

    def after_step(self) -> None:
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
        fn = getattr(self.purifier, "rescore_indices", None)
        return fn() if fn is not None else self.purifier.pruned_indices()

    def record_rescored(self, indices, logits: torch.Tensor, weights=None) -> None:
        if isinstance(self.purifier, ImprovedPurifier):
            self.purifier.record(indices, logits, weights, rescore=True)
        else:
            self.purifier.record(indices, logits, weights)

    @torch.no_grad()
    def scorer(self, *args, **kwargs):
        """Score a batch: the teacher, or the model in eval mode (its mode is restored)."""
        if self.teacher is not None:
            return self.teacher(*args, **kwargs)
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model(*args, **kwargs)
        finally:
            self.model.train(was_training)

    def state_dict(self) -> dict:
        return {"teacher": None if self.teacher is None else self.teacher.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.teacher is not None and state.get("teacher") is not None:
            self.teacher.load_state_dict(state["teacher"])


def training_hooks(purifier, model: nn.Module) -> TrainingHooks:
    """The loop hooks for ``purifier`` (either mode) and ``model``; see :class:`TrainingHooks`."""
    return TrainingHooks(purifier, model)
