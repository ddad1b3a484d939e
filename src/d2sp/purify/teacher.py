"""An exponential-moving-average teacher of the model being trained, owned by a purifier mode.

A teacher scores samples without gradient from parameters averaged over the last epochs,
which are steadier than the model's own at any one step (used by ``adaptive`` through
:class:`WithTeacher`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def paired(mine, theirs) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """The tensors of ``mine`` and ``theirs`` (same order, same shapes) as list pairs of one
    device and dtype each, what a multi-tensor op takes in one call."""
    groups: dict[tuple, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for a, b in zip(mine, theirs, strict=True):
        pair = groups.setdefault((a.device, a.dtype, b.device, b.dtype), ([], []))
        pair[0].append(a)
        pair[1].append(b)  # (read under no_grad)
    return list(groups.values())


class EmaTeacher:
    """An exponential moving average of a model's parameters (buffers copied), in eval mode.

    The per-step decay follows a time constant in epochs once the number of steps per epoch
    is known, ``1 − 1 / (epochs · steps)``, and ramps up to it as ``(1 + s) / (10 + s)``
    after ``s`` steps so that the random initialisation is forgotten fast.
    """

    def __init__(self, model: nn.Module, *, time_constant_epochs: float = 2.0):
        if not isinstance(model, nn.Module):
            raise TypeError(
                "model: expected a torch.nn.Module (the teacher is a moving average of its "
                f"parameters; wrap the encoder and head in one, e.g. nn.Sequential), got {type(model).__name__}"
            )
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.time_constant_epochs = float(time_constant_epochs)
        self.steps = 0
        self.steps_per_epoch: int | None = None  # learnt from the first full epoch
        self._epoch_seen = 0
        self._steps_this_epoch = 0
        self._pairs: tuple | None = None  # (model, parameter pairs, buffer pairs) of update()

    def decay(self) -> float:
        ramp = (1.0 + self.steps) / (10.0 + self.steps)
        if self.steps_per_epoch is None:
            return ramp
        return min(ramp, 1.0 - 1.0 / max(1.0, self.time_constant_epochs * self.steps_per_epoch))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average ``model``'s parameters in and copy its buffers: a few multi-tensor ops
        per step (one per device and dtype), not one op (a kernel on a GPU) per tensor.
        The tensors are looked up once per epoch (see :meth:`step`) or model: walking the
        modules of a transformer costs the host more than the update's launches."""
        d = self.decay()
        if self._pairs is None or self._pairs[0] is not model:
            params = paired(self.model.parameters(), model.parameters())
            self._pairs = (model, params, paired(self.model.buffers(), model.buffers()))
        _, params, buffers = self._pairs
        for mine, theirs in params:
            torch._foreach_lerp_(mine, theirs, 1.0 - d)
        for mine, theirs in buffers:
            if hasattr(torch, "_foreach_copy_"):
                torch._foreach_copy_(mine, theirs)
            else:  # (torch < 2.1)
                for bt, b in zip(mine, theirs, strict=True):
                    bt.copy_(b)
        self.steps += 1

    def step(self, model: nn.Module, epoch: int) -> None:
        """One optimiser step of ``model`` was taken during epoch ``epoch`` (0-based count of
        epochs ended): follow it, learning the steps per epoch on the way."""
        if epoch != self._epoch_seen:
            if self.steps_per_epoch is None and self._steps_this_epoch:
                self.steps_per_epoch = self._steps_this_epoch
            self._epoch_seen, self._steps_this_epoch = epoch, 0
            self._pairs = None  # a model moved or changed between epochs: look again
        self._steps_this_epoch += 1
        self.update(model)

    @torch.no_grad()
    def __call__(self, *args, **kwargs):
        self.model.eval()
        return self.model(*args, **kwargs)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "steps": self.steps,
            "steps_per_epoch": self.steps_per_epoch,
            "epoch_seen": self._epoch_seen,
            "steps_this_epoch": self._steps_this_epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.steps = int(state["steps"])
        self.steps_per_epoch = state["steps_per_epoch"]
        self._epoch_seen = int(state["epoch_seen"])
        self._steps_this_epoch = int(state["steps_this_epoch"])


class WithTeacher:
    """Purifier mixin (listed before :class:`~d2sp.purify.base.Purifier`): with the option
    ``teacher`` on, an :class:`EmaTeacher` (time constant ``teacher_epochs``) is built when
    the model is bound, updated after every training step, scores the re-scored samples and
    is returned by ``modules()``. The mode saves ``self.teacher.state_dict()`` itself."""

    teacher: EmaTeacher | None = None

    def bind(self, model: nn.Module, **kwargs) -> None:
        super().bind(model, **kwargs)
        if self.options["teacher"]:
            self.teacher = EmaTeacher(model, time_constant_epochs=self.options["teacher_epochs"])

    def on_step(self) -> None:
        if self.teacher is not None:
            self.teacher.step(self._bound_model(), self.epoch)

    def score_batch(self, inputs):
        if self.teacher is not None:
            return self.teacher(inputs)
        return super().score_batch(inputs)

    def modules(self) -> list[nn.Module]:
        return [] if self.teacher is None else [self.teacher.model]
