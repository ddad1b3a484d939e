"""Mode ``dividemix``: DivideMix (Li, Socher & Hoi, ICLR 2020), a noisy-label baseline with two
networks and semi-supervised learning on the samples judged noisy.

After a warm-up of plain CE, every epoch:

1. **co-divide**: each network's per-sample cross-entropy on un-augmented views of every
   training sample, normalised to [0, 1], is fitted by a 2-component Gaussian mixture; a
   sample's *clean probability* ``w`` is its posterior under the low-mean component. Each
   network trains on the division the *other* network made: labelled ``w > p_threshold``,
   the rest unlabelled;
2. **label refinement** of a labelled sample (``p``: the trained network's softmax averaged
   over the two views)::

       t_x = sharpen(w · y + (1 − w) · p, T),        sharpen(p, T) = p^{1/T} / Σ_k p_k^{1/T}

3. **co-guessing** for an unlabelled sample: ``t_u = sharpen(mean of both networks'
   softmax over both views, T)``;
4. **MixMatch**: both views of both parts, with their targets, mixed with a shuffled copy of
   themselves, ``λ ~ Beta(α, α)``, ``λ' = max(λ, 1 − λ)``:
   ``x̃ = λ' x_1 + (1 − λ') x_2``, ``t̃ = λ' t_1 + (1 − λ') t_2``; the loss

       L = −mean Σ_k t̃_k log p̃_k  (labelled)  +  λu(T) · mean (p̃ − t̃)²  (unlabelled)
           + Σ_k π_k log(π_k / mean p̃_k)         (uniform prior π = 1/K)

   with ``λu(T) = λu · clip((T − warm-up) / rampup, 0, 1)``, ``T`` the epoch with its
   fraction done (the authors' linear ramp).

Where the paper draws two augmentations of a sample, the loop gives one augmented view:
the second view is its horizontal flip (``x.flip(-1)``). The authors use separate labelled
and unlabelled loaders of one batch size each; here each batch of the loop is split by the
division, and both networks are updated on it (each on its own split).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.peer import WithPeer, pair_log_probs, per_sample_ce
from d2sp.purify.registry import register_purifier

PAPER_EPOCHS, PAPER_WARMUP, PAPER_RAMPUP = 300, 10, 16  # CIFAR-10: 300 epochs, 10 warm-up


def gmm_clean_probability(losses, *, seed: int = 0) -> np.ndarray:
    """``(N,)`` the clean probability of each sample from its loss: the losses ``(N,)``
    (NaN: not scored) normalised to [0, 1] and fitted by a 2-component Gaussian mixture
    (the authors' settings: ``max_iter=10, tol=1e-2, reg_covar=5e-4``); the posterior of the
    component with the smaller mean. NaN where the loss is NaN; 1 everywhere when fewer than
    two distinct losses leave nothing to divide."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    losses = np.asarray(losses, dtype=np.float64)
    out = np.full(losses.shape, np.nan)
    finite = np.isfinite(losses)
    values = losses[finite]
    if len(np.unique(values)) < 2:
        out[finite] = 1.0
        return out
    x = ((values - values.min()) / (values.max() - values.min()))[:, None]  # (M, 1)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 10 iterations, as the authors
        gmm.fit(x)
    out[finite] = gmm.predict_proba(x)[:, int(np.argmin(gmm.means_[:, 0]))]
    return out


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``(B, K)`` ``p^{1/T} / Σ_k p_k^{1/T}`` of ``probs (B, K)``."""
    p = probs ** (1.0 / temperature)
    return p / p.sum(dim=1, keepdim=True)


def refine_labels(
    labels: torch.Tensor, probs: torch.Tensor, clean: torch.Tensor, *, temperature: float
) -> torch.Tensor:
    """``(B, K)`` refined targets ``sharpen(w · y + (1 − w) · p, T)``: ``labels (B, K)`` the
    (one-hot) annotation, ``probs (B, K)`` the network's prediction, ``clean (B,)`` ``w``."""
    w = clean.unsqueeze(1).to(probs.dtype)  # (B, 1)
    return sharpen(w * labels + (1.0 - w) * probs, temperature)


def co_guess(probs: list[torch.Tensor], *, temperature: float) -> torch.Tensor:
    """``(B, K)`` ``sharpen(mean of the (B, K) predictions, T)``: both networks, both views."""
    return sharpen(torch.stack(probs).mean(dim=0), temperature)


def unlabelled_weight(progress: float, *, lambda_u: float, warmup: float, rampup: float) -> float:
    """``λu · clip((progress − warmup) / rampup, 0, 1)``; ``progress`` in epochs (fractional)."""
    return float(lambda_u) * float(np.clip((progress - warmup) / rampup, 0.0, 1.0))


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """``Σ_k π_k log(π_k / mean_i p_ik)``, ``π = 1/K``: penalises a batch ``(B, K)`` that
    predicts some classes much less than others."""
    k = logits.shape[1]
    mean = torch.softmax(logits.float(), dim=1).mean(dim=0)  # (K,)
    return (torch.log(torch.tensor(1.0 / k, device=mean.device) / mean) / k).sum()


def mixmatch_loss(
    forward, views_x, targets_x, views_u, targets_u, *, lam: float, perm, lambda_u: float
) -> torch.Tensor:
    """One network's MixMatch loss on one batch.

    Args:
        forward: ``x -> (M, K)`` logits of the network being trained.
        views_x: ``(x, x2)`` the labelled samples' two views, ``(L, ...)`` each.
        targets_x: ``(L, K)`` their refined targets.
        views_u: ``(u, u2)`` the unlabelled samples' two views, ``(U, ...)`` each.
        targets_u: ``(U, K)`` their co-guessed targets.
        lam: the mixing weight ``λ'`` in [0.5, 1].
        perm: ``(2L + 2U,)`` the shuffled partner of each mixed row.
        lambda_u: the unlabelled loss's weight now.
    """
    inputs = torch.cat([*views_x, *views_u])  # (2L + 2U, ...)
    targets = torch.cat([targets_x, targets_x, targets_u, targets_u])  # (2L + 2U, K)
    perm = perm.to(inputs.device)
    mixed = lam * inputs + (1.0 - lam) * inputs[perm]
    mixed_t = lam * targets + (1.0 - lam) * targets[perm.to(targets.device)]
    logits = forward(mixed).float()  # (2L + 2U, K)
    n_x = 2 * len(targets_x)
    loss = uniform_prior_penalty(logits)
    if n_x:
        loss = loss - (F.log_softmax(logits[:n_x], dim=1) * mixed_t[:n_x]).sum(dim=1).mean()
    if n_x < len(logits):
        probs_u = torch.softmax(logits[n_x:], dim=1)
        loss = loss + lambda_u * ((probs_u - mixed_t[n_x:]) ** 2).mean()
    return loss


def schedule(o: dict, epochs: int | None = None) -> tuple[int, int]:
    """``(warm-up, λu ramp-up)`` in epochs: as set, else the paper's 10 and 16 of 300 epochs
    scaled to the run's ``epochs`` (the option, else the argument; unknown: 10 and 16)."""
    run = o["epochs"] or epochs
    warm, ramp = o["warmup_epochs"], o["rampup_epochs"]
    if warm is None:
        warm = max(1, round(run * PAPER_WARMUP / PAPER_EPOCHS)) if run else PAPER_WARMUP
    if ramp is None:
        ramp = max(1, round(run * PAPER_RAMPUP / PAPER_EPOCHS)) if run else PAPER_RAMPUP
    return int(warm), int(ramp)


@register_purifier("dividemix")
class DivideMixPurifier(WithPeer, Purifier):
    """DivideMix (``mode: dividemix``): two networks co-dividing the data by a Gaussian mixture
    on the per-sample loss; each trains on the other's division by MixMatch, the samples
    judged noisy used without their labels.

    Options (the authors' CIFAR-10 defaults):
        alpha: Beta(α, α) of the mixup weight (4).
        lambda_u: weight λu of the unlabelled loss once ramped up (25; the paper uses
            0–150 by noise level, the authors' default is 25).
        p_threshold: clean probability above which a sample is labelled (0.5).
        temperature: the sharpening temperature T (0.5).
        warmup_epochs: epochs of plain CE before the first division; None: the paper's 10 of
            300 epochs scaled to the run, ``max(1, round(epochs · 10 / 300))``.
        rampup_epochs: epochs over which λu ramps up after the warm-up; None: the authors'
            16 of 300 scaled likewise.
        epochs: the run's length, for that scaling (the trainer gives ``optim.epochs``; in
            your own loop pass it, else the paper's 10 and 16 epochs apply).

    The second network is the mode's (see :mod:`d2sp.purify.peer`): give the optimiser and
    call ``batch_loss``. Every sample is trained every epoch; the ledger shows a sample that
    neither network labels as pruned (its label is not used: it trains as unlabelled data).
    Nothing is relabelled. Suspicion ``1 − w`` (the two networks' clean probabilities
    averaged); suggested label the co-guess, the pair's prediction on the un-augmented view.
    The model you evaluate is your own network (the authors average both networks' outputs).
    Cost per epoch after the warm-up: about 6× one CE run (four no-grad passes for the
    guesses, two networks trained on twice the batch, two no-grad passes over the data for
    the division); about 2.7× during the warm-up.
    """

    @dataclass(frozen=True)
    class Options:
        alpha: float = 4.0
        lambda_u: float = 25.0
        p_threshold: float = 0.5
        temperature: float = 0.5
        warmup_epochs: int | None = None
        rampup_epochs: int | None = None
        epochs: int | None = None

    rescore_view = "eval"

    @classmethod
    def check(cls, o) -> list[str]:
        p: list[str] = []
        expect(p, "alpha", o["alpha"], o["alpha"] > 0, "a number > 0")
        expect(p, "lambda_u", o["lambda_u"], o["lambda_u"] >= 0, "a number >= 0")
        expect(
            p, "p_threshold", o["p_threshold"], 0.0 <= o["p_threshold"] < 1.0, "a value in [0, 1)"
        )
        expect(
            p, "temperature", o["temperature"], 0.0 < o["temperature"] <= 1.0, "a value in (0, 1]"
        )
        for name, low in (("warmup_epochs", 0), ("rampup_epochs", 1), ("epochs", 1)):
            v = o[name]
            expect(p, name, v, v is None or v >= low, f"null or an integer >= {low}")
        return p

    @classmethod
    def schedule_problems(cls, o, *, epochs: int, dataset: str) -> list[str]:
        warm, _ = schedule(o, epochs)
        if 0 < epochs <= warm:
            return [
                f"purify.warmup_epochs ({warm}) >= optim.epochs ({epochs}): the networks "
                "would never be divided"
            ]
        return []

    def setup(self) -> None:
        n, dev = self.num_samples, self.device
        self.warmup, self.rampup = schedule(self.options)
        self.losses = torch.full((2, n), float("nan"), device=dev)  # (2, N) model, peer: CE
        self.clean = torch.ones(2, n, device=dev)  # (2, N) clean probability by each network
        self.steps, self.steps_per_epoch = 0, 0  # this epoch's, the last epoch's
        self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
        o = self.options
        if o["epochs"] is None and (o["warmup_epochs"] is None or o["rampup_epochs"] is None):
            self.events.append(
                f"dividemix: warm-up {self.warmup} epochs, λu ramp-up {self.rampup} epochs "
                "(the paper's, for 300 epochs; pass epochs= to scale them to the run)"
            )

    @property
    def weight_branch(self) -> bool:
        return False

    @property
    def dividing(self) -> bool:
        """Whether the epoch in progress trains on the division (the warm-up is over)."""
        return self.epoch >= self.warmup

    def train_indices(self) -> np.ndarray:
        return np.arange(self.num_samples, dtype=np.int64)  # every sample, labelled or not

    def rescore_indices(self) -> np.ndarray:
        return np.arange(self.num_samples, dtype=np.int64)  # the division needs every loss

    def batch_loss(
        self, model, inputs, indices, *, label_smoothing: float = 0.0, record: bool = True
    ) -> torch.Tensor:
        """Warm-up: CE on both networks. Then each network's MixMatch loss on the other's
        division of the batch; the sum of both networks' losses."""
        peer = self._bound_peer()
        idx = torch.as_tensor(indices)
        y = self.labels_for(idx).to(inputs.device, non_blocking=True)  # (B,)
        self.steps += 1
        if not self.dividing:
            logits, peer_logits = model(inputs)[0], peer.forward(model, inputs)  # (B, K) each
            loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
            loss = loss + F.cross_entropy(peer_logits.float(), y, label_smoothing=label_smoothing)
        else:
            loss, logits, peer_logits = self._divided_loss(
                model, peer, inputs, idx, y, label_smoothing
            )
        self.batch_logits = logits.detach()
        if record:
            self.record(idx, pair_log_probs(logits.detach(), peer_logits.detach()))
        return loss

    def _divided_loss(self, model, peer, inputs, idx, y, label_smoothing: float):
        """``(loss, model's logits (B, K), peer's logits (B, K))`` of one batch after the warm-up
        (the logits: no-grad, on the given view)."""
        o, flipped = self.options, inputs.flip(-1)  # the second view
        with torch.no_grad():
            z = [model(inputs)[0], model(flipped)[0]]  # (B, K) each
            zp = [peer.forward(model, inputs), peer.forward(model, flipped)]  # (B, K) each
        probs = [torch.softmax(v.float(), dim=1) for v in (*z, *zp)]  # (B, K) each
        guess = co_guess(probs, temperature=o["temperature"])  # (B, K)
        onehot = F.one_hot(y, self.num_classes).float()  # (B, K)
        onehot = onehot * (1.0 - label_smoothing) + label_smoothing / self.num_classes
        progress = self.epoch + (self.steps - 1) / max(
            1, self.steps_per_epoch
        )  # epoch + batch/batches
        weight_u = unlabelled_weight(
            progress, lambda_u=o["lambda_u"], warmup=self.warmup, rampup=self.rampup
        )
        rows = idx.to(self.device).long()
        loss = 0.0
        for forward, own, other in (
            (
                lambda x: model(x)[0],
                0.5 * (probs[0] + probs[1]),
                1,
            ),  # the model: the peer's division
            (lambda x: peer.forward(model, x), 0.5 * (probs[2] + probs[3]), 0),  # and vice versa
        ):
            w = self.clean[other, rows].to(inputs.device)  # (B,)
            lab = w > o["p_threshold"]  # (B,)
            targets_x = refine_labels(onehot[lab], own[lab], w[lab], temperature=o["temperature"])
            lam, perm = self._mix_draw(2 * len(idx))
            loss = loss + mixmatch_loss(
                forward, (inputs[lab], flipped[lab]), targets_x, (inputs[~lab], flipped[~lab]),
                guess[~lab], lam=lam, perm=perm, lambda_u=weight_u,
            )  # fmt: skip
        return loss, z[0], zp[0]

    def _mix_draw(self, n: int) -> tuple[float, torch.Tensor]:
        """``(λ' = max(λ, 1 − λ) with λ ~ Beta(α, α), a random permutation (n,))`` from the
        mode's own generator (saved with its state, so a resumed run draws the same)."""
        seed = int(torch.randint(0, 2**62, (), generator=self.generator))
        a = self.options["alpha"]
        lam = float(np.random.default_rng(seed).beta(a, a))
        return max(lam, 1.0 - lam), torch.randperm(n, generator=self.generator)

    @torch.no_grad()
    def rescore(self, indices, inputs) -> None:
        """Both networks' CE on the un-augmented views (for the division) and the pair's
        prediction (recorded)."""
        za, zb = self.pair_eval_logits(inputs)  # (B, K) each
        rows = torch.as_tensor(indices).to(self.device).long()  # (B,)
        y = self._labels_dev[rows]
        self.losses[0, rows] = per_sample_ce(za, y.to(za.device)).to(self.device)
        self.losses[1, rows] = per_sample_ce(zb, y.to(zb.device)).to(self.device)
        self.record(indices, pair_log_probs(za, zb), rescored=True)

    def end_epoch(self, reduce=None) -> dict[str, int]:
        if self.steps:
            self.steps_per_epoch, self.steps = self.steps, 0
        return super().end_epoch(reduce)

    def decide(self, seen: torch.Tensor) -> Decision:
        losses = self.losses.cpu().numpy()
        prob = torch.as_tensor(
            np.stack([gmm_clean_probability(v) for v in losses]), dtype=torch.float32
        )
        prob = prob.to(self.device)  # (2, N) NaN: never scored
        self.clean = torch.nan_to_num(prob, nan=1.0)  # no loss, no doubt
        scored = prob.isfinite().all(dim=0)  # (N,)
        mean = prob.mean(dim=0)  # (N,)
        labelled = self.clean > self.options["p_threshold"]  # (2, N)
        keep = labelled.any(dim=0) if self.dividing else torch.ones_like(scored)
        r = self.records
        suggested = torch.where(r.count > 0, r.pred[:, 0].long(), self._labels_dev)  # (N,)
        return Decision(
            keep=keep, labels=self._labels_dev, decided=scored & self.dividing, score=mean,
            delta_p=torch.full_like(mean, float("nan")), suspicion=1.0 - mean,
            suggested=suggested, corrected=torch.zeros_like(scored),
        )  # fmt: skip

    def mode_state_dict(self) -> dict:
        return {
            "peer": self.peer_state(),
            "losses": self.losses.cpu(),
            "clean": self.clean.cpu(),
            "steps": self.steps,
            "steps_per_epoch": self.steps_per_epoch,
            "generator": self.generator.get_state(),
        }

    def load_mode_state_dict(self, state: dict) -> None:
        self.load_peer_state(state.get("peer"))
        if "losses" in state:
            self.losses.copy_(state["losses"].to(self.device))
            self.clean.copy_(state["clean"].to(self.device))
            self.steps, self.steps_per_epoch = int(state["steps"]), int(state["steps_per_epoch"])
            self.generator.set_state(state["generator"])
