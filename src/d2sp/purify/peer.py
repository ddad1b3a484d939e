"""A second network that a purifier mode trains beside the user's model (``coteach``,
``dividemix``): built, optimised and saved by the mode.

The peer has the model's architecture: a deep copy of the model with its parameters drawn
afresh (every sub-module's ``reset_parameters``), or a network the caller builds the same
way (the trainer builds it as it builds the model, so that a pretrained encoder is loaded
into both). Its optimiser is of the user's optimiser's class, with the same parameter groups
and hyper-parameters; before each of its steps it takes the hyper-parameters the user's
groups had when the batch was computed, so that the user's learning-rate schedule applies to
both networks. Its gradients come from the same ``loss.backward()`` that the loop calls on
the loss the mode returns (the two networks share no parameter); the mode steps it in
``after_step``.

A peer is not synchronised across processes: a multi-process run of such a mode is refused.
"""

from __future__ import annotations

import copy
import inspect

import torch
import torch.nn.functional as F
from torch import nn


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with its parameters re-initialised (every sub-module's
    ``reset_parameters``, or ``_reset_parameters`` as ``nn.MultiheadAttention`` names it;
    parameters no such method covers, e.g. a learnt position embedding, stay copies). Drawn
    from torch's global generator, so the same seed gives the same peer."""
    peer = copy.deepcopy(model)
    with torch.no_grad():
        for m in peer.modules():
            reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
            if callable(reset):
                reset()
    return peer


def check_same_architecture(model: nn.Module, peer: nn.Module) -> None:
    """ValueError unless ``peer`` has ``model``'s parameters, in order and shape."""
    shapes = [tuple(p.shape) for p in model.parameters()]
    peer_shapes = [tuple(p.shape) for p in peer.parameters()]
    if shapes != peer_shapes:
        raise ValueError(
            f"peer: expected the model's architecture ({len(shapes)} parameters of the same "
            f"shapes), got {len(peer_shapes)} parameters"
            + ("" if len(shapes) != len(peer_shapes) else " of other shapes")
        )


def optimizer_like(
    optimizer: torch.optim.Optimizer, model: nn.Module, peer: nn.Module
) -> torch.optim.Optimizer:
    """An optimiser of ``optimizer``'s class over ``peer``'s parameters, group by group as
    ``optimizer`` holds ``model``'s (same hyper-parameters; fresh state). A parameter frozen
    in ``model`` is frozen in ``peer``."""
    check_same_architecture(model, peer)
    pairs = list(zip(model.parameters(), peer.parameters(), strict=True))
    peer_of = {id(p): q for p, q in pairs}
    for p, q in pairs:
        q.requires_grad_(p.requires_grad)
    groups = []
    for g in optimizer.param_groups:
        missing = [p for p in g["params"] if id(p) not in peer_of]
        if missing:
            raise ValueError(
                f"optimizer: expected the model's parameters only, got {len(missing)} that "
                "are not the model's (the peer could not mirror them)"
            )
        groups.append({**_hyper(g), "params": [peer_of[id(p)] for p in g["params"]]})
    cls = type(optimizer)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    defaults = {k: v for k, v in optimizer.defaults.items() if takes_any or k in params}
    return cls(groups, **defaults)


def _hyper(group: dict) -> dict:
    """A parameter group's hyper-parameters (everything but its parameters)."""
    return {k: v for k, v in group.items() if k != "params"}


def pair_log_probs(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` log of the two networks' mean softmax ``(p_a + p_b) / 2``: logits whose
    softmax is the pair's prediction (what a two-network mode records)."""
    p = 0.5 * (torch.softmax(logits_a.float(), 1) + torch.softmax(logits_b.float(), 1))  # (B, K)
    return p.clamp_min(1e-12).log()


def per_sample_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` cross-entropy of each sample (float32)."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


class PeerNetwork:
    """The second network and its optimiser.

    Args:
        model: the model being trained (bare, not a distributed wrapper).
        optimizer: the user's optimiser of ``model``.
        net: the peer, built as the model is (default: :func:`fresh_copy` of ``model``).
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, net: nn.Module | None = None
    ):
        self.user_optimizer = optimizer
        self.net = fresh_copy(model) if net is None else net
        self.optimizer = optimizer_like(optimizer, model, self.net)
        self._hyper: list[dict] | None = None  # the user's groups when the batch was computed

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` the peer's logits on ``inputs``, in ``model``'s train/eval mode; notes
        the user's hyper-parameters for the coming step."""
        self.net.train(model.training)
        self._hyper = [_hyper(g) for g in self.user_optimizer.param_groups]
        return self.net(inputs)[0]

    def step(self) -> None:
        """One optimiser step of the peer on the gradients of the last batch (none pending:
        nothing), with the user's hyper-parameters of that batch."""
        if self._hyper is None:
            return
        for g, hyper in zip(self.optimizer.param_groups, self._hyper, strict=True):
            g.update(hyper)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._hyper = None

    @torch.no_grad()
    def eval_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` the peer's logits in eval mode (its mode restored)."""
        was_training = self.net.training
        self.net.eval()
        try:
            return self.net(inputs)[0]
        finally:
            self.net.train(was_training)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def refuse_multiprocess(mode: str) -> None:
    """RuntimeError inside a process group of more than one process."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise RuntimeError(
            f"mode {mode!r} trains a second network that is not synchronised across "
            "processes: run it in one process (not under torchrun)"
        )


class WithPeer:
    """Purifier mixin (listed before :class:`~d2sp.purify.base.Purifier`) for a mode that
    trains a second network: :attr:`peer` is built when the model is bound (the optimiser
    is required), stepped in ``after_step``, returned by ``modules()`` and saved in the
    mode's state. A mode calls :meth:`peer_state` / :meth:`load_peer_state` from its own
    ``mode_state_dict`` / ``load_mode_state_dict``.

    Besides the common arguments the mode takes ``peer``: the second network, built as the
    model is (default: a copy of the model with its parameters drawn afresh).
    """

    trains_peer = True
    peer: PeerNetwork | None = None
    _peer_net: nn.Module | None = None
    _pending_peer_state: dict | None = None

    def __init__(self, labels, *, peer: nn.Module | None = None, **kwargs):
        self._peer_net = peer
        super().__init__(labels, **kwargs)

    def bind(self, model: nn.Module, *, optimizer: torch.optim.Optimizer | None = None,
             peer: nn.Module | None = None) -> None:  # fmt: skip
        if optimizer is None:
            raise ValueError(
                f"mode {self.mode!r} trains a second network: give the optimiser, "
                f"create_purifier(..., optimizer=opt) or purifier.bind(model, optimizer=opt)"
            )
        refuse_multiprocess(self.mode)
        super().bind(model, optimizer=optimizer)
        self.peer = PeerNetwork(model, optimizer, peer if peer is not None else self._peer_net)
        if self._pending_peer_state is not None:
            self.peer.load_state_dict(self._pending_peer_state)
            self._pending_peer_state = None

    def loss(self, logits, weights, indices, **kwargs) -> torch.Tensor:
        raise RuntimeError(
            f"mode {self.mode!r} trains two networks and runs them itself: call "
            "purifier.batch_loss(model, inputs, indices), not loss(logits, ...)"
        )

    def _bound_peer(self) -> PeerNetwork:
        if self.peer is None:
            raise RuntimeError(
                f"mode {self.mode!r}: no model bound; call purifier.bind(model, optimizer=opt) "
                "(or pass model= and optimizer= to create_purifier)"
            )
        return self.peer

    def on_step(self) -> None:
        if self.peer is not None:
            self.peer.step()

    def modules(self) -> list[nn.Module]:
        return [] if self.peer is None else [self.peer.net]

    @torch.no_grad()
    def pair_eval_logits(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, K)`` logits of the model and of the peer, both in eval mode."""
        model = self._bound_model()
        was_training = model.training
        model.eval()
        try:
            za = model(inputs)[0]
        finally:
            model.train(was_training)
        return za, self._bound_peer().eval_logits(inputs)

    def score_batch(self, inputs):
        """The pair's prediction (log of the mean softmax) in eval mode; no weights."""
        return pair_log_probs(*self.pair_eval_logits(inputs)), None

    def peer_state(self) -> dict | None:
        if self.peer is None:
            return self._pending_peer_state
        return self.peer.state_dict()

    def load_peer_state(self, state: dict | None) -> None:
        if state is None:
            return
        if self.peer is None:  # loaded before the model is bound: applied at bind
            self._pending_peer_state = state
        else:
            self.peer.load_state_dict(state)
