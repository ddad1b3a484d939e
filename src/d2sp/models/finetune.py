"""Optimizer parameter groups for fine-tuning a pretrained frame encoder.

CLIP-based DFER training (DFER-CLIP) trains the image encoder at a much smaller learning
rate than the parts trained from scratch (1e-5 against 1e-2: ``encoder_lr_scale=0.001``),
or keeps it frozen. The frame encoder is found with
:func:`~d2sp.models.pretrained.frame_encoder_of` (``model.backbone.encoder``); every
other parameter (temporal model, head, weight branch) is trained at ``lr``.

>>> groups = parameter_groups(model, lr=1e-2, encoder_lr_scale=1e-3)
>>> optimizer = torch.optim.SGD(groups, lr=1e-2, momentum=0.9)
"""

from __future__ import annotations

import math

from torch import nn

from d2sp.models.pretrained import frame_encoder_of


def _positive(name: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def parameter_groups(
    model: nn.Module,
    *,
    lr: float,
    encoder_lr_scale: float = 1.0,
    freeze_encoder: bool = False,
) -> list[dict]:
    """Parameter groups for a ``torch.optim`` optimizer: the frame encoder at
    ``lr · encoder_lr_scale``, everything else at ``lr``.

    Args:
        model: a :class:`~d2sp.models.dfer.DFERModel` (or a backbone; a DDP/DataParallel or
            ``torch.compile`` wrapper is looked through).
        lr: the base learning rate (> 0).
        encoder_lr_scale: factor on ``lr`` for the frame encoder (> 0; 1 = same rate).
        freeze_encoder: set ``requires_grad=False`` on every encoder parameter and leave
            them out of the groups. Batch-norm running statistics of a frozen CNN encoder
            still update while the model is in train mode.

    Returns:
        Non-empty groups, the rest first (so ``param_groups[0]["lr"]`` is the base rate):
        ``{"name": "rest", "params": [...], "lr": lr}`` and
        ``{"name": "encoder", "params": [...], "lr": lr * encoder_lr_scale}``. Parameters
        that already have ``requires_grad=False`` are left out. A learning-rate scheduler
        such as ``LambdaLR`` scales both groups alike.

    Raises:
        ValueError: ``lr`` or ``encoder_lr_scale`` not a number > 0, ``freeze_encoder`` not
            a bool, a scale or freeze asked of a model without a separate frame encoder,
            or nothing left to train.
    """
    lr = _positive("lr", lr)
    scale = _positive("encoder_lr_scale", encoder_lr_scale)
    if not isinstance(freeze_encoder, bool):
        raise ValueError(f"freeze_encoder: expected true or false, got {freeze_encoder!r}")
    encoder = frame_encoder_of(model)
    encoder_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids and p.requires_grad]
    if not rest and (freeze_encoder or scale != 1.0):
        raise ValueError(
            "encoder_lr_scale/freeze_encoder: expected a model with a frame encoder "
            f"(model.backbone.encoder) and other parameters, got {type(model).__name__}"
        )
    if freeze_encoder:
        encoder.requires_grad_(False)
    groups = []
    if rest:
        groups.append({"name": "rest", "params": rest, "lr": lr})
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    if trainable:
        groups.append({"name": "encoder", "params": trainable, "lr": lr * scale})
    if not groups:
        raise ValueError(
            f"parameter_groups: expected trainable parameters, got none in {type(model).__name__}"
        )
    return groups
