"""Mode ``adaptive``: the recommended purification mode, one set of defaults for any data.

It keeps the paper's idea — a learned per-sample weight ``w``, pruning recomputed every
epoch, correction of stably mispredicted samples — and replaces every constant the paper
tunes per dataset (warm-up length, λ, τ) by a quantity measured on the run itself:

1. **EMA teacher on un-augmented views.** An exponential moving average of the model
   (``teacher_epochs`` = 2) scores, without gradient, the pruned samples, the probes (while
   probing) and a rotating ``1 / rescore_every`` of the others every epoch; its
   probabilities feed a per-sample temporal ensemble (momentum ``ens_momentum``).
2. **Probes: what a wrong label looks like here** (``probe_share`` = 4%, at least ``2K``).
   A random share of the samples is trained with a known-wrong label (a random other class)
   until the model is ready. How the teacher scores them is the reference for a wrong label
   on this data, with this model, loop and augmentation.
3. **Readiness from the data.** Every epoch: the *separation* — the AUROC with which the
   teacher's probability of the trained label ranks the other samples above the probes. It
   rises while the model learns the patterns and falls when it starts memorising. The first
   decision comes once it is at least ``ready_floor`` and stops improving (gain below
   ``ready_gain``, at least ``min_epochs`` epochs). Then the flag threshold
   ``θ = quantile_q(p[fake] of the probes)`` (``probe_q``) is fixed, the noise share is
   estimated (``η̂``), and the probes get their own labels back. A model that never
   separates known-wrong labels that well never acts: once its best separation (counted
   from epoch ``min_epochs``: the first epochs, before the probes are fitted, do not count)
   is ``patience`` epochs old and below ``ready_floor``, the mode gives up, the probes train
   on their own labels again, and the run says so.
4. **Nothing to purify** (``min_noise``): with ``η̂`` below it, no decision is taken.
5. **Flag, then hold out.** A kept sample whose teacher probability of its label is ``≤ θ``
   in ``persist`` consecutive decisions is pruned: not trained, but scored every epoch, so
   the teacher's view of it is out of sample (the model no longer fits its label).
6. **Judge on held-out evidence.** A pruned sample rejoins when the teacher predicts its
   label confidently (``p[y] ≥ thr_y``, cleanlab's per-class mean self-confidence); it is
   corrected to ``ŷ`` after ``agree`` held-out records predicting the class it was flagged
   with, confidently (``p[ŷ] ≥ thr_ŷ``, at least the median confidence of the class's
   trained members, ``p[ŷ] − p[y] ≥ margin``, and a calibrated log-odds threshold); else it
   stays pruned. A correction holds while the teacher prefers ``ŷ`` to ``y``. A sample that
   looked unusable when pruned (weighted score ``w · max p`` under ``cgp_ratio`` times its
   class median: the paper's CGP score, class-relative) is never corrected.
7. **Corrections calibrated on the probes** (``calib_precision``). At readiness the probes
   are held out too and, ``agree`` epochs later, the correction rule runs on them as if
   their known-wrong label were the annotation; the smallest log-odds threshold that gives
   their annotation back often enough is kept — the Wilson lower bound ``calib_z`` standard
   errors below the observed share at least ``calib_precision`` (8 right of 10 is weaker
   evidence than 40 of 50), on at least 10 corrected probes (and 10% of them) — or
   corrections stay off for the run. Then the probes train
   again on their annotation as ordinary samples (at once when the data shows no noise, 4).
8. **Collapse guard** (``max_pruned``, ``max_pruned_class``): a decision that would leave
   out more of the set or of a class is cut to the most suspicious samples, and the run
   says so (:attr:`Purifier.events`).

Suspicion: ``1 − p[y]`` of the teacher's latest ensemble (out of sample for held-out
samples); suggested label: the teacher's prediction.

Shapes: ``N`` samples, ``K`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.registry import register_purifier
from d2sp.purify.teacher import WithTeacher

LOG_ODDS_GRID = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)

# ---- pure rules over tensors ----------------------------------------------------------------


def probe_separation(s_rest: torch.Tensor, s_probe: torch.Tensor) -> float:
    """AUROC with which ``s_rest (R,)`` ranks above ``s_probe (P,)`` (ties count half):
    0.5 = known-wrong labels look like the others, 1 = every one scores below every other."""
    if len(s_rest) == 0 or len(s_probe) == 0:
        return float("nan")
    rest, probe = s_rest.double().sort().values, s_probe.double()
    below = torch.searchsorted(rest, probe, right=False)  # rest strictly below each probe
    ties = torch.searchsorted(rest, probe, right=True) - below
    wins = len(rest) * len(probe) - below.sum() - 0.5 * ties.sum()
    return float(wins) / (len(rest) * len(probe))


def separation_ready(curve: list[float], *, min_epochs: int, gain: float, floor: float) -> bool:
    """The separation curve (one AUROC per epoch) is at least ``floor`` and no longer improving
    by ``gain``, after at least ``min_epochs`` epochs: its peak, before memorisation."""
    if len(curve) < max(2, min_epochs):
        return False
    return curve[-1] >= floor and (curve[-1] - curve[-2]) < gain


def counted_separation(curve: list[float], *, min_epochs: int) -> list[float]:
    """The separation curve from epoch ``min_epochs`` on: the first epochs, before the probes
    are fitted at all, score high for no reason and do not count."""
    return curve[max(0, min_epochs - 1) :]


def separation_stalled(curve: list[float], *, min_epochs: int, patience: int, floor: float) -> bool:
    """The separation curve has not reached ``floor`` and the best value of its
    :func:`counted_separation` is ``patience`` or more epochs old: the model is not getting any
    better at telling known-wrong labels apart."""
    tail = counted_separation(curve, min_epochs=min_epochs)
    if not tail or max(tail) >= floor:
        return False
    best = max(range(len(tail)), key=tail.__getitem__)
    return len(tail) - 1 - best >= patience


def agreement_ready(curve: list[float], *, min_epochs: int, floor: float) -> bool:
    """The annotation-agreement curve (one value per epoch) has passed its fast early phase:
    at least ``max(3, min_epochs)`` values, the last two-epoch gain at most a third of the
    largest so far, and the last value at least ``floor``."""
    if len(curve) < max(3, min_epochs):
        return False
    gains = [(curve[i] - curve[i - 2]) / 2.0 for i in range(2, len(curve))]
    return max(gains) > 0 and gains[-1] <= max(gains) / 3 and curve[-1] >= floor


def make_probes(labels: torch.Tensor, k: int, *, share: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``probe (N,) bool`` (``max(2K, round(share · N))`` random samples, at most N/4) and
    ``fake (N,) int64``: a random other class than the annotation for a probe, ``-1``
    elsewhere."""
    n = len(labels)
    gen = torch.Generator().manual_seed(seed)
    m = min(max(2 * k, round(share * n)), n // 4)
    idx = torch.randperm(n, generator=gen)[:m]
    probe = torch.zeros(n, dtype=torch.bool)
    probe[idx] = True
    fake = torch.full((n,), -1, dtype=torch.long)
    fake[idx] = (labels.cpu()[idx] + torch.randint(1, k, (m,), generator=gen)) % k
    return probe, fake


def class_thresholds(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(K,)`` cleanlab's per-class threshold: the mean self-confidence
    ``thr_j = mean_{i: y_i = j} probs[i, j]`` of ``probs (N, K)``; a class without samples gets
    the mean of the others."""
    k = probs.shape[1]
    self_conf = probs.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
    sums = torch.zeros(k, dtype=probs.dtype, device=probs.device).index_add_(0, labels, self_conf)
    counts = torch.bincount(labels, minlength=k).to(probs.dtype)  # (K,)
    thr = sums / counts.clamp(min=1)
    if bool((counts == 0).any()):
        thr = torch.where(counts > 0, thr, thr[counts > 0].mean())
    return thr


def flag_issues(probs: torch.Tensor, labels: torch.Tensor, thr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Confident-learning issues: ``(N,) bool`` where the most probable class among those with
    ``probs[i, j] ≥ thr_j`` is not ``y_i``, and that class ``(N,)`` (the argmax where none)."""
    above = probs >= thr.view(1, -1)  # (N, K)
    masked = torch.where(above, probs, torch.full_like(probs, -1.0))
    label = torch.where(above.any(1), masked.argmax(1), probs.argmax(1))  # (N,)
    return above.any(1) & (label != labels), label


def class_relative_low(score: torch.Tensor, labels: torch.Tensor, *, ratio: float, k: int) -> torch.Tensor:
    """``(N,) bool``: ``score_i < ratio · median_{j: y_j = y_i} score_j`` (the paper's CGP
    score made class-relative)."""
    med = torch.stack([
        score[labels == c].median() if bool((labels == c).any()) else score.median()
        for c in range(k)
    ])  # (K,)  # fmt: skip
    return score < ratio * med[labels]


def class_typicality(probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, *, q: float) -> torch.Tensor:
    """``(K,)`` per-class ``q``-quantile of ``probs[i, y_i]`` over the ``mask``ed samples (how
    confidently the model recognises a typical trained member)."""
    conf = probs.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
    overall = conf[mask].quantile(q) if bool(mask.any()) else conf.new_tensor(0.5)
    out = [
        conf[mask & (labels == c)].quantile(q) if int((mask & (labels == c)).sum()) >= 2 else overall
        for c in range(probs.shape[1])
    ]
    return torch.stack(out)  # (K,)


def cap_pruning(
    prune: torch.Tensor, suspicion: torch.Tensor, labels: torch.Tensor, *,
    max_share: float, max_class_share: float, k: int,
) -> tuple[torch.Tensor, list[str]]:  # fmt: skip
    """Collapse guard: at most ``max_share`` of all and ``max_class_share`` of each annotated
    class pruned, the least suspicious prunes dropped first. Returns the capped ``(N,)`` mask
    and one line per cut saying what was not applied."""
    out, msgs = prune.clone(), []
    groups = [(f"class {c}", labels == c, max_class_share) for c in range(k)]
    for name, members, share in [*groups, ("the set", torch.ones_like(prune), max_share)]:
        limit = int(share * int(members.sum()))
        sel = out & members
        if int(sel.sum()) > limit:
            idx = sel.nonzero().squeeze(1)
            order = idx[torch.argsort(suspicion[idx], descending=True)]
            out[order[limit:]] = False
            msgs.append(
                f"{name}: {int(sel.sum())} of {int(members.sum())} samples would be pruned; "
                f"capped at {limit} ({share:.0%})"
            )
    return out, msgs


def held_out_decision(
    probs: torch.Tensor, labels: torch.Tensor, thr: torch.Tensor, streak: torch.Tensor,
    typical: torch.Tensor, flagged_as: torch.Tensor, *, agree: int, margin: float,
    log_odds: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Decision for held-out samples from their teacher probabilities ``probs (N, K)``.

    Args:
        labels: ``(N,)`` annotation. thr: ``(K,)`` class thresholds. streak: ``(N,)``
            consecutive held-out records predicting the same class ``≠ y``. typical: ``(K,)``
            (a correction to ``ŷ`` needs ``probs[ŷ] ≥ typical[ŷ]``). flagged_as: ``(N,)`` the
            confident class when the sample was held out (``-1``: any); a correction needs
            the prediction to agree with it.
        agree: records needed. margin: ``probs[ŷ] − probs[y]`` needed. log_odds: ``log
            probs[ŷ] − log probs[y]`` needed (``inf``: no correction).

    Returns ``rejoin (N,) bool`` (the teacher predicts ``y`` with ``probs[y] ≥ thr[y]``),
    ``correct (N,) bool`` and ``target (N,) int64`` (the prediction).
    """
    pred = probs.argmax(1)  # (N,)
    py = probs.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
    pp = probs.gather(1, pred.view(-1, 1)).squeeze(1)  # (N,)
    rejoin = (pred == labels) & (py >= thr[labels])
    correct = (pred != labels) & (streak >= agree) & (pp >= thr[pred]) & (pp - py >= margin)
    correct &= (pp >= typical[pred]) & ((flagged_as < 0) | (flagged_as == pred))
    correct &= pp.clamp(min=1e-12).log() - py.clamp(min=1e-12).log() >= log_odds
    return rejoin, correct, pred


def wilson_lower(share: float, n: int, *, z: float) -> float:
    """Wilson score lower bound, ``z`` standard errors, of a share observed on ``n`` trials
    (``z = 0``: the share itself; ``n = 0``: nan). 8 right of 10 at ``z = 1`` gives 0.65,
    32 of 40 gives 0.73."""
    if n == 0:
        return float("nan")
    den = 1.0 + z * z / n
    centre = (share + z * z / (2 * n)) / den
    half = z * (share * (1 - share) / n + z * z / (4 * n * n)) ** 0.5 / den
    return centre - half


def calibrate_log_odds(
    correct_at: torch.Tensor, right: torch.Tensor, *, precision: float, min_count: int, z: float = 0.0
) -> tuple[float | None, str]:
    """The smallest threshold of :data:`LOG_ODDS_GRID` whose corrections of the probes
    (``correct_at (P, G) bool``) give their annotation back (``right (P,) bool``) often
    enough: on at least ``min_count`` probes, with the Wilson lower bound ``z`` standard
    errors below the observed share at least ``precision``. None when no threshold does.
    Also a line with the count and precision of every threshold."""
    chosen, shown = None, []
    for g, lo in enumerate(LOG_ODDS_GRID):
        c = correct_at[:, g]
        cnt = int(c.sum())
        prec = float((c & right).sum()) / cnt if cnt else float("nan")
        shown.append(f"{lo:g}: {cnt} at {prec:.2f}")
        if chosen is None and cnt >= min_count and wilson_lower(prec, cnt, z=z) >= precision:
            chosen = lo
    return chosen, ", ".join(shown)


# ---- the mode -----------------------------------------------------------------------------------


@register_purifier("adaptive")
class AdaptivePurifier(WithTeacher, Purifier):
    """The recommended mode (``mode: adaptive``; see the module docstring for each mechanism).

    Options (defaults in :attr:`defaults`): ``teacher``, ``teacher_epochs``, ``rescore_every``,
    ``ens_momentum``; ``probes``, ``probe_share``, ``probe_q``, ``ready_floor``, ``ready_gain``,
    ``min_epochs``, ``seed`` (of the probe draw), ``patience`` (0: never give up);
    ``min_noise``; ``persist``; ``cgp``, ``cgp_ratio``; ``fgc``, ``heldout`` (judge flagged
    samples held out; off: correct them in place with the confident class), ``agree``,
    ``margin``, ``log_odds`` (None: calibrated on the probes), ``calib_precision``,
    ``calib_z``; ``max_pruned``, ``max_pruned_class``.
    """

    @dataclass(frozen=True)
    class Options:
        teacher: bool = True
        teacher_epochs: float = 2.0
        rescore_every: int = 2
        ens_momentum: float = 0.5
        probes: bool = True
        probe_share: float = 0.04
        probe_q: float = 0.75
        ready_floor: float = 0.75
        ready_gain: float = 0.01
        min_epochs: int = 3
        seed: int = 0
        min_noise: float = 0.05
        persist: int = 1
        cgp: bool = True
        cgp_ratio: float = 0.5
        fgc: bool = True
        heldout: bool = True
        agree: int = 2
        margin: float = 0.5
        log_odds: float | None = None
        calib_precision: float = 0.8
        calib_z: float = 1.0
        max_pruned: float = 0.5
        max_pruned_class: float = 0.5
        patience: int = 5
    rescore_view = "eval"

    @classmethod
    def check(cls, o) -> list[str]:
        p: list[str] = []
        for name in ("rescore_every", "min_epochs", "persist", "agree"):
            v = o[name]
            expect(p, name, v, isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")
        v = o["patience"]
        expect(p, "patience", v, isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0 (0: never give up)")
        for name in ("probe_q", "ens_momentum", "calib_precision"):
            expect(p, name, o[name], 0.0 < o[name] < 1.0, "a value in (0, 1)")
        for name in ("max_pruned", "max_pruned_class", "ready_floor", "cgp_ratio", "min_noise"):
            expect(p, name, o[name], 0.0 <= o[name] <= 1.0, "a value in [0, 1]")
        expect(p, "probe_share", o["probe_share"], 0.0 < o["probe_share"] < 0.25, "a value in (0, 0.25)")
        expect(p, "teacher_epochs", o["teacher_epochs"], o["teacher_epochs"] > 0, "a positive number")
        expect(p, "calib_z", o["calib_z"], o["calib_z"] >= 0, "a number >= 0")
        expect(p, "margin", o["margin"], 0.0 <= o["margin"] <= 1.0, "a value in [0, 1]")
        for name in ("teacher", "probes", "cgp", "fgc", "heldout"):
            expect(p, name, o[name], isinstance(o[name], bool), "true or false")
        lo = o["log_odds"]
        expect(p, "log_odds", lo, lo is None or (isinstance(lo, int | float) and lo >= 0), "None or a number >= 0")
        return p

    @property
    def weight_branch(self) -> bool:
        return bool(self.options["cgp"] or self.options["fgc"])

    @property
    def train_records(self) -> bool:
        return False  # decisions read the teacher's re-scored records only

    def setup(self) -> None:
        n, k, dev, o = self.num_samples, self.num_classes, self.device, self.options
        self.ens = torch.full((n, k), 1.0 / k, device=dev)  # (N, K) teacher ensemble
        self.ens_seen = torch.zeros(n, dtype=torch.bool, device=dev)  # (N,) has an ensemble record
        self.w_avg = torch.ones(n, device=dev)  # (N,) running mean of w
        self.flag_count = torch.zeros(n, dtype=torch.long, device=dev)  # consecutive flags
        self.streak = torch.zeros(n, dtype=torch.long, device=dev)  # held-out records agreeing
        self.cand = torch.full((n,), -1, dtype=torch.long, device=dev)  # class of the streak
        self.flagged_as = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.lowconf = torch.zeros(n, dtype=torch.bool, device=dev)  # looked unusable when pruned
        self.pstreak = torch.zeros(n, dtype=torch.long, device=dev)  # probes while calibrating
        self.pcand = torch.full((n,), -1, dtype=torch.long, device=dev)
        probe, fake = make_probes(self.labels, k, share=o["probe_share"], seed=o["seed"])
        if not o["probes"]:
            probe, fake = torch.zeros_like(probe), torch.full_like(fake, -1)
        self.probe, self.fake = probe.to(dev), fake.to(dev)
        self._set_selection(self.keep_mask, torch.where(probe, fake, self.labels))
        self.run = {"ready_epoch": None, "theta": None, "noise_hat": 0.0, "quiet": False, "gave_up": False,
                    "log_odds": o["log_odds"], "calibrating": False, "fgc_on": True, "curve": []}  # fmt: skip
        if o["log_odds"] is None and not (o["probes"] and o["heldout"]):
            self.run["log_odds"] = 3.0

    @property
    def ready(self) -> bool:
        """Whether probing is over: the model has been judged ready to take decisions, or the
        mode gave up (``patience``) and takes none."""
        return self.run["ready_epoch"] is not None

    # ---- the loop's calls ---------------------------------------------------------------------

    def rescore_indices(self) -> np.ndarray:
        """The pruned samples, the probes while probing and a rotating share of the rest."""
        n = self.num_samples
        turn = (torch.arange(n) + self.epoch) % self.options["rescore_every"] == 0
        probing = self.probe.cpu() & (not self.ready)
        return (turn | ~self.keep_mask | probing).nonzero().squeeze(1).numpy()

    # ---- the decision -------------------------------------------------------------------------

    def decide(self, seen: torch.Tensor) -> Decision:
        probs, rescored = self._update_records(seen)  # (N, K), (N,)
        if not self.ready:
            self._readiness(probs)
        self._update_streaks(probs, rescored)
        y = self._labels_dev
        py = probs.gather(1, y.view(-1, 1)).squeeze(1)  # (N,)
        if not self.ready:
            nothing = torch.zeros_like(seen)
            return Decision(
                keep=self.keep_mask.to(self.device), labels=self._current_dev,
                decided=nothing, score=py, delta_p=torch.full_like(py, float("nan")),
                corrected=nothing, **self._suspicion(probs),
            )  # fmt: skip
        keep, labels, delta_p = self._judge(probs, py)
        return Decision(
            keep=keep, labels=labels, decided=torch.ones_like(seen), score=py, delta_p=delta_p,
            **self._suspicion(probs),
        )  # fmt: skip

    def _update_records(self, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fold this epoch's re-scored records into the ensemble and the running weight;
        returns the ensemble ``(N, K)`` (uniform where a sample was never scored) and the
        re-scored mask ``(N,)``."""
        r, m = self.records, self.options["ens_momentum"]
        rescored = r.last_rescored & seen
        fresh = (rescored & ~self.ens_seen).unsqueeze(1)
        mixed = torch.where(fresh, r.probs, m * self.ens + (1 - m) * r.probs)  # (N, K)
        self.ens = torch.where(rescored.unsqueeze(1), mixed, self.ens)
        self.ens_seen |= rescored
        self.w_avg = torch.where(rescored, 0.5 * self.w_avg + 0.5 * r.staged_weight, self.w_avg)
        return self.ens, rescored

    def _update_streaks(self, probs: torch.Tensor, rescored: torch.Tensor) -> None:
        """Consecutive held-out records predicting the same class other than the label (for
        the probes against their annotation while calibrating)."""
        y, pred = self._labels_dev, probs.argmax(1)
        held = ~self.keep_mask.to(self.device) & rescored
        same = held & (pred == self.cand) & (pred != y)
        self.streak = torch.where(same, self.streak + 1, (held & (pred != y)).long())
        self.cand = torch.where(held, pred, torch.full_like(pred, -1))
        if self.run["calibrating"]:
            pr = self.probe & held
            self.pstreak = torch.where(pr & (pred == self.pcand), self.pstreak + 1, pr.long())
            self.pcand = torch.where(pr, pred, torch.full_like(pred, -1))

    def _readiness(self, probs: torch.Tensor) -> None:
        """The separation of this epoch; at readiness fix θ and η̂ and give the probes back
        their labels (held out to calibrate the correction when that is still to do)."""
        o, run, y = self.options, self.run, self._labels_dev
        if not o["probes"]:  # ablation: readiness from the annotation-agreement curve
            run["curve"].append(float((probs.argmax(1) == y).float().mean()))
            share = float(torch.bincount(y, minlength=self.num_classes).max()) / len(y)
            if agreement_ready(run["curve"], min_epochs=o["min_epochs"], floor=share + 0.1 * (1 - share)):
                run["ready_epoch"] = self.epoch
                self.events.append(f"epoch {self.epoch}: ready to judge (agreement {run['curve'][-1]:.3f})")
            return
        s = probs.gather(1, self._current_dev.view(-1, 1)).squeeze(1)  # p of the trained label
        sep = probe_separation(s[~self.probe], s[self.probe])
        run["curve"].append(sep)
        if not separation_ready(run["curve"], min_epochs=o["min_epochs"], gain=o["ready_gain"], floor=o["ready_floor"]):
            self._give_up_if_stalled()
            return
        theta = float(s[self.probe].quantile(o["probe_q"]))
        below = float((s[~self.probe] <= theta).float().mean())
        run.update(ready_epoch=self.epoch, theta=theta, noise_hat=min(0.5, below / o["probe_q"]))
        self.events.append(
            f"epoch {self.epoch}: ready to judge (probe separation {sep:.3f}, θ = {theta:.4f}, "
            f"noise estimate {run['noise_hat']:.1%})"
        )
        if run["noise_hat"] < o["min_noise"]:
            run["quiet"] = True
            self.events.append(
                f"epoch {self.epoch}: no purification: only {below:.1%} of the samples score "
                f"like known-wrong labels (noise estimate below {o['min_noise']:.0%})"
            )
        keep = self.keep_mask.to(self.device)
        if run["log_odds"] is None and not run["quiet"]:  # hold the probes out to calibrate
            run["calibrating"] = True
            keep = keep & ~self.probe
        self._probes_back(keep)

    def _probes_back(self, keep: torch.Tensor) -> None:
        """The probes train on their own labels again (``keep (N,)``: the kept set from now)."""
        self._set_selection(keep, torch.where(self.probe, self._labels_dev, self._current_dev))

    def _give_up_if_stalled(self) -> None:
        """A separation stalled below ``ready_floor`` for ``patience`` epochs: no decision for
        the rest of the run, and the probes train on their own labels again."""
        o, run = self.options, self.run
        if not o["patience"] or not separation_stalled(
            run["curve"], min_epochs=o["min_epochs"], patience=o["patience"], floor=o["ready_floor"]
        ):
            return
        run.update(ready_epoch=self.epoch, quiet=True, gave_up=True)
        best = max(counted_separation(run["curve"], min_epochs=o["min_epochs"]))
        self.events.append(
            f"epoch {self.epoch}: no purification: the teacher has told known-wrong probe labels "
            f"from the others no better than {best:.3f} (AUROC; {o['ready_floor']:g} needed) for "
            f"{o['patience']} epochs; the probes train on their own labels again"
        )
        self._probes_back(self.keep_mask.to(self.device))

    def _judge(self, probs: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decision once ready: ``keep (N,)``, ``labels (N,)`` and ``Δp (N,)``."""
        o, run, y, k = self.options, self.run, self._labels_dev, self.num_classes
        thr = class_thresholds(probs, y)  # (K,)
        issue, cl = flag_issues(probs, y, thr)
        flag = (py <= run["theta"]) if run["theta"] is not None else issue
        flag = flag & ~torch.as_tensor(run["quiet"], device=self.device) & ~(self.probe & run["calibrating"])
        low = torch.zeros_like(flag)
        if o["cgp"]:
            low = class_relative_low(self.w_avg * probs.max(1).values, y, ratio=o["cgp_ratio"], k=k)
        self.flag_count = torch.where(flag, self.flag_count + 1, torch.zeros_like(self.flag_count))
        flag = flag & (self.flag_count >= o["persist"])
        was_kept, corrected = self.keep_mask.to(self.device), self._current_dev != y
        if o["heldout"]:
            prune, labels = self._held_out(probs, py, thr, flag, was_kept, corrected)
        else:  # ablation: a flagged sample with a confident other class is corrected in place
            fix = flag & issue & ~low & o["fgc"]
            labels, prune = torch.where(fix, cl, y), flag & ~fix
        prune, msgs = cap_pruning(prune, 1.0 - py, y, max_share=o["max_pruned"], max_class_share=o["max_pruned_class"], k=k)
        self.events += [f"epoch {self.epoch}: not applied: {m}" for m in msgs]
        self.lowconf = torch.where(was_kept, low & prune, self.lowconf & prune)
        self.flagged_as = torch.where(was_kept & prune, cl, torch.where(prune, self.flagged_as, -1))
        self.streak = torch.where(was_kept, torch.zeros_like(self.streak), self.streak)
        labels = torch.where(prune, y, labels)
        p_new = probs.gather(1, labels.view(-1, 1)).squeeze(1)
        delta_p = torch.where(labels != y, p_new - py, torch.full_like(py, float("nan")))
        return ~prune, labels, delta_p

    def _held_out(self, probs, py, thr, flag, was_kept, corrected):
        """Prune the newly flagged; rejoin, correct or keep out the held-out samples; hold a
        correction while ``ŷ`` beats ``y``. Returns ``prune (N,)`` and ``labels (N,)``."""
        o, run, y = self.options, self.run, self._labels_dev
        trained = torch.bincount(self._current_dev[was_kept], minlength=self.num_classes).float()
        prior = torch.bincount(y, minlength=self.num_classes).float() / trained.clamp(min=1)
        hp = probs * prior.view(1, -1)  # a class thinned out by pruning is not under-predicted
        hp = hp / hp.sum(1, keepdim=True)
        typical = class_typicality(probs, y, was_kept & ~corrected, q=0.5)
        released = torch.zeros_like(flag)
        if run["calibrating"] and self.epoch - run["ready_epoch"] >= o["agree"]:
            self._calibrate(hp, thr, typical)
            released = self.probe  # calibrated: the probes are ordinary training samples again
        lo = run["log_odds"] if run["log_odds"] is not None else float("inf")
        rejoin, correct, target = held_out_decision(
            hp, y, thr, self.streak, typical, self.flagged_as, agree=o["agree"], margin=o["margin"], log_odds=lo
        )
        prune = torch.where(was_kept & ~corrected, flag, ~rejoin & ~correct)
        on_probe = self.probe & run["calibrating"]
        new_corr = ~was_kept & correct & ~self.lowconf & ~on_probe & (o["fgc"] and run["fgc_on"])
        stay = corrected & (probs.gather(1, self._current_dev.view(-1, 1)).squeeze(1) > py)
        prune = torch.where(corrected & ~stay, torch.ones_like(prune), prune | on_probe)
        prune = prune & ~new_corr & ~stay & ~released
        return prune, torch.where(new_corr, target, torch.where(stay, self._current_dev, y))

    def _calibrate(self, hp: torch.Tensor, thr: torch.Tensor, typical: torch.Tensor) -> None:
        """Choose the correction's log-odds threshold on the held-out probes (a "correction"
        away from a probe's known-wrong label is right when it gives back its annotation);
        none precise enough: corrections stay off for the run."""
        o, run, p = self.options, self.run, self.probe
        fake, none = self.fake.clamp(min=0), torch.full_like(self.fake, -1)
        cols, target = [], None
        for lo in LOG_ODDS_GRID:
            _, c, target = held_out_decision(
                hp, fake, thr, self.pstreak, typical, none, agree=o["agree"], margin=o["margin"], log_odds=lo
            )
            cols.append(c)
        right = (target == self._labels_dev)[p]
        min_count = max(10, round(0.1 * int(p.sum())))
        chosen, shown = calibrate_log_odds(
            torch.stack(cols, 1)[p], right, precision=o["calib_precision"], min_count=min_count, z=o["calib_z"]
        )
        run["calibrating"] = False
        if chosen is None:
            run["fgc_on"] = False
            self.events.append(
                f"epoch {self.epoch}: corrections off: no log-odds threshold gives the probes "
                f"their labels back with precision >= {o['calib_precision']} (lower bound, "
                f"{o['calib_z']:g} standard error; at least {min_count} probes corrected) ({shown})"
            )
        else:
            run["log_odds"] = chosen
            self.events.append(f"epoch {self.epoch}: correction log-odds threshold {chosen:g} ({shown})")

    def _suspicion(self, probs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``1 − p[y]`` of the teacher's ensemble (out of sample for held-out samples) and
        the teacher's prediction."""
        py = probs.gather(1, self._labels_dev.view(-1, 1)).squeeze(1)  # (N,)
        return {"suspicion": 1.0 - py, "suggested": probs.argmax(1)}

    # ---- state --------------------------------------------------------------------------------

    _TENSORS = (
        "ens", "ens_seen", "w_avg", "flag_count", "streak",
        "cand", "flagged_as", "lowconf", "pstreak", "pcand", "probe", "fake",
    )  # fmt: skip

    def mode_state_dict(self) -> dict:
        state = {name: getattr(self, name).cpu() for name in self._TENSORS}
        state["run"] = {**self.run, "curve": list(self.run["curve"])}
        state["teacher"] = None if self.teacher is None else self.teacher.state_dict()
        return state

    def load_mode_state_dict(self, state: dict) -> None:
        for name in self._TENSORS:
            setattr(self, name, state[name].to(self.device))
        self.run = {**state["run"], "curve": list(state["run"]["curve"])}
        if self.teacher is not None and state.get("teacher") is not None:
            self.teacher.load_state_dict(state["teacher"])
