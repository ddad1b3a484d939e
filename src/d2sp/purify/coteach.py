"""Mode ``coteach``: Co-teaching (Han et al., NeurIPS 2018), a noisy-label baseline with two
networks.

Two networks see every batch; each keeps the ``1 − R(T)`` share of the batch with the
smallest cross-entropy under it (small loss: probably a clean label) and the *other* network
is updated on that share — a network's own mistakes do not train it, its peer's choice does:

    R(T) = forget_rate · min(T / num_gradual, 1)          (T: epochs done, 0 in the first)
    S_a = the ⌊(1 − R(T)) · B⌋ samples of smallest CE under network a, likewise S_b
    L = CE(z_a[S_b], y[S_b]) + CE(z_b[S_a], y[S_a])

Nothing is pruned or relabelled: the selection is per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.peer import WithPeer, pair_log_probs, per_sample_ce
from d2sp.purify.registry import register_purifier


def forget_rate_at(epoch: int, *, forget_rate: float, num_gradual: int) -> float:
    """``R(T) = forget_rate · min(T / num_gradual, 1)`` for ``T = epoch`` epochs done (the
    share of each batch left out; 0 in the first epoch, ramping linearly)."""
    if num_gradual <= 0:
        return float(forget_rate)
    return float(forget_rate) * min(epoch / num_gradual, 1.0)


def small_loss_selection(losses: torch.Tensor, rate: float) -> torch.Tensor:
    """``(M,)`` positions of the ``M = max(1, ⌊(1 − rate) · B⌋)`` smallest of ``losses (B,)``,
    smallest first (ties: the first position first)."""
    keep = max(1, int((1.0 - rate) * len(losses)))
    return torch.argsort(losses.detach(), stable=True)[:keep]


def coteach_exchange(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    targets: torch.Tensor,
    *,
    rate: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Co-teaching's cross update on one batch.

    Args:
        logits_a, logits_b: ``(B, K)`` the two networks' logits, with gradient.
        targets: ``(B,)`` int64 labels.
        rate: the share ``R(T)`` of the batch left out.

    Returns:
        ``(loss, selected_by_a, selected_by_b)``: ``CE(z_a[S_b]) + CE(z_b[S_a])`` (each a mean
        over its share) and the positions ``S_a`` (small loss under a: trains b) and ``S_b``
        (small loss under b: trains a).
    """
    sel_a = small_loss_selection(per_sample_ce(logits_a, targets), rate)  # (M,)
    sel_b = small_loss_selection(per_sample_ce(logits_b, targets), rate)  # (M,)
    loss_a = F.cross_entropy(
        logits_a[sel_b].float(), targets[sel_b], label_smoothing=label_smoothing
    )
    loss_b = F.cross_entropy(
        logits_b[sel_a].float(), targets[sel_a], label_smoothing=label_smoothing
    )
    return loss_a + loss_b, sel_a, sel_b


@register_purifier("coteach")
class CoteachPurifier(WithPeer, Purifier):
    """Co-teaching (``mode: coteach``): two networks, each updated on the small-loss share of
    the batch that the other selects; no decision.

    Options:
        forget_rate: the share of each batch left out once the ramp is over, in [0, 1) (the
            paper sets it to the known noise rate; 0.2 here, the rate of its lightest
            setting, symmetric 20%).
        num_gradual: epochs over which the share ramps up from 0 (the paper's ``T_k = 10``).

    The second network is the mode's (see :mod:`d2sp.purify.peer`): give the optimiser
    (``create_purifier(..., model=model, optimizer=opt)``) and call ``batch_loss`` in the
    loop. The model you evaluate is your own network (the paper reports either network).
    Suspicion ``1 − p̄[y]`` of the pair's mean prediction ``p̄`` in the newest training pass;
    suggested label ``argmax p̄``. Cost: about 2× one CE run (two networks forward and
    backward on every batch); nothing re-scored.
    """

    @dataclass(frozen=True)
    class Options:
        forget_rate: float = 0.2
        num_gradual: int = 10

    @classmethod
    def check(cls, o) -> list[str]:
        problems: list[str] = []
        fr = o["forget_rate"]
        expect(problems, "forget_rate", fr, 0.0 <= fr < 1.0, "a value in [0, 1)")
        expect(problems, "num_gradual", o["num_gradual"], o["num_gradual"] >= 0, "an integer >= 0")
        return problems

    def setup(self) -> None:
        self.last_selection: tuple[torch.Tensor, torch.Tensor] | None = None  # sample indices

    @property
    def weight_branch(self) -> bool:
        return False

    @property
    def rate(self) -> float:
        """``R(T)`` of the epoch in progress."""
        o = self.options
        return forget_rate_at(
            self.epoch, forget_rate=o["forget_rate"], num_gradual=o["num_gradual"]
        )

    def batch_loss(
        self, model, inputs, indices, *, label_smoothing: float = 0.0, record: bool = True
    ) -> torch.Tensor:
        """Both networks on ``inputs``; each trained on the other's small-loss share. The
        sample indices each network selected are left in :attr:`last_selection`
        (``(selected by the model: train the peer, selected by the peer: train the model)``)."""
        peer = self._bound_peer()
        idx = torch.as_tensor(indices)
        logits = model(inputs)[0]  # (B, K)
        peer_logits = peer.forward(model, inputs)  # (B, K)
        targets = self.labels_for(idx).to(logits.device, non_blocking=True)  # (B,)
        loss, sel_a, sel_b = coteach_exchange(
            logits, peer_logits, targets, rate=self.rate, label_smoothing=label_smoothing
        )
        rows = idx.to(sel_a.device)
        self.last_selection = (rows[sel_a], rows[sel_b])
        self.batch_logits = logits.detach()
        if record:
            self.record(idx, pair_log_probs(logits.detach(), peer_logits.detach()))
        return loss

    def decide(self, seen: torch.Tensor) -> Decision:
        r = self.records
        recorded = r.count > 0  # (N,)
        nan = torch.full_like(r.p_label[:, 0], float("nan"))
        suspicion = torch.where(recorded, 1.0 - r.p_label[:, 0], nan)  # (N,) pair's 1 − p̄[y]
        suggested = torch.where(recorded, r.pred[:, 0].long(), self._labels_dev)  # (N,)
        return Decision(
            keep=torch.ones_like(recorded), labels=self._labels_dev, decided=recorded,
            score=torch.where(recorded, r.p_label[:, 0], nan), delta_p=nan,
            suspicion=suspicion, suggested=suggested,
        )  # fmt: skip

    def mode_state_dict(self) -> dict:
        return {"peer": self.peer_state()}

    def load_mode_state_dict(self, state: dict) -> None:
        self.load_peer_state(state.get("peer"))
