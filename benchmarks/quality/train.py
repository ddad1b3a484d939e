"""Training one row: a purifier and a network driven by the package's loop
(:func:`d2sp.run_epoch`), the optimiser given to the purifier; the cost of a run counted in
per-sample passes; pretraining an encoder on a clean split."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from benchmarks.quality.loops import Loop
from benchmarks.quality.models import build_model
from d2sp import run_epoch
from d2sp.purify import create_purifier, purifier_class


class Cost:
    """Per-sample passes through every network of a run (the trained model and every module
    its purifier owns, ``purifier.modules()``): a forward pass with gradient, and the
    backward it implies, 3 units a sample; a forward pass without gradient 1 unit a sample.
    Counted by forward hooks, so what a mode runs inside ``batch_loss`` (a second network,
    mixed inputs, a teacher) counts as it happens, without wall-clock noise."""

    def __init__(self):
        self.units = 0
        self._handles: list = []

    def _hook(self, module, args, output) -> None:
        n = len(args[0]) if args and hasattr(args[0], "__len__") else 0
        self.units += (3 if torch.is_grad_enabled() else 1) * n

    def watch(self, modules) -> None:
        """Count the forward passes of ``modules`` (each once, however often named)."""
        for m in modules:
            if self._hook not in m._forward_hooks.values():
                self._handles.append(m.register_forward_hook(self._hook))

    def release(self) -> None:
        """Stop counting (e.g. before the test set is predicted)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()


def run_options(mode: str, options: dict, *, seed: int, epochs: int) -> dict:
    """``options`` plus what a run gives a mode that takes it: its ``seed``, and the run's
    length ``epochs`` (a mode that scales its schedule to the run)."""
    defaults = purifier_class(mode).defaults
    out = dict(options)
    if "seed" in defaults and "seed" not in out:
        out["seed"] = seed
    if "epochs" in defaults and out.get("epochs") is None:
        out["epochs"] = epochs
    return out


def fit(data, settings: dict, loop_name: str, epochs: int, seed: int, *, mode: str, options: dict,
        cost: Cost, encoder_state: dict | None = None):  # fmt: skip
    """Train one network with ``mode``'s purifier for ``epochs`` epochs of
    :func:`d2sp.run_epoch`; returns ``(model, purifier)``. ``encoder_state``: the encoder's
    starting weights (the pretrained regime; a mode's second network starts from them too)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    loop = Loop.for_data(data, loop_name)
    pur = create_purifier(mode, data.y_noisy, num_classes=data.num_classes, **run_options(mode, options, seed=seed, epochs=epochs))
    model = build_model(data, settings, pur, encoder_state)
    opt = loop.optimizer(model)
    peer = {"peer": build_model(data, settings, pur, encoder_state)} if getattr(pur, "trains_peer", False) else {}
    pur.bind(model, optimizer=opt, **peer)
    sched = loop.scheduler(opt, epochs, len(pur.train_indices()))
    train_batches, rescore_batches = loop.batches(data.x_train, gen, data.video, pur.rescore_view)
    for _ in range(epochs):
        cost.watch([model, *pur.modules()])  # (a mode may build its modules as it goes)
        run_epoch(pur, model, opt, train_batches=train_batches, rescore_batches=rescore_batches, scheduler=sched)
    cost.release()
    return model, pur


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """``(M, K)`` logits of ``x (M, ...)`` in eval mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch])[0] for i in range(0, len(x), batch)])


def pretrain(data, settings: dict, loop_name: str, seed: int) -> dict:
    """The encoder's weights after plain CE on the clean pretraining split of ``data``
    (``settings["pretrain_epochs"]`` epochs of ``loop_name``)."""
    if data.x_pre is None:
        raise ValueError(f"{data.name}: no pretraining split (the pretrained regime needs one)")
    n = len(data.y_pre)
    clean = replace(data, x_train=data.x_pre, y_noisy=data.y_pre, y_true=data.y_pre, unusable=np.zeros(n, bool))
    model, _ = fit(clean, settings, loop_name, settings["pretrain_epochs"], seed + 50_000, mode="ce", options={}, cost=Cost())
    return {k: v.clone() for k, v in model.encoder().state_dict().items()}
