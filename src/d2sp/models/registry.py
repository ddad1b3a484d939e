"""Backbone registry: a plain dict from a stable name to a builder.

A builder takes explicit keyword arguments only and returns a backbone: an ``nn.Module``
with ``forward_features(clips (B, T, C, H, W)) -> (B, D)`` and ``num_features = D``.

>>> from d2sp.models import create_model
>>> model = create_model("r18_lstm", num_classes=7, width=8, lstm_hidden=64)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from os import PathLike

import torch
from torch import nn

from d2sp.models.dfer import DFERModel
from d2sp.models.heads import ClassifierHead

BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a backbone builder under ``name`` (must be new)."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES and BACKBONES[name] is not fn:
            raise ValueError(f"backbone {name!r} is already registered")
        BACKBONES[name] = fn
        return fn

    return decorator


def list_backbones() -> list[str]:
    """Sorted names of the registered backbones."""
    return sorted(BACKBONES)


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build the backbone registered under ``name`` with the builder's keyword arguments.

    Raises:
        ValueError: unknown ``name`` (the message lists the known names).
    """
    try:
        builder = BACKBONES[name]
    except KeyError:
        known = ", ".join(list_backbones()) or "(none)"
        raise ValueError(f"unknown backbone {name!r}; known backbones: {known}") from None
    return builder(**kwargs)


def create_model(
    name: str,
    *,
    num_classes: int,
    weight_branch: bool = True,
    weight_hidden: int | None = None,
    dropout: float = 0.0,
    pretrained: str | PathLike | Mapping[str, torch.Tensor] | None = None,
    **backbone_kwargs,
) -> DFERModel:
    """Backbone ``name`` plus a :class:`~d2sp.models.heads.ClassifierHead`.

    ``model(clips (B, T, C, H, W)) -> (logits (B, K), weights (B,) or None)``.

    Args:
        name: registered backbone name (see :func:`list_backbones`).
        num_classes: K.
        weight_branch: add the D2SP weight branch (False gives the plain "Original" head).
        weight_hidden: hidden width of the weight branch (default ``max(32, D // 4)``).
        dropout: dropout before the linear classifier.
        pretrained: weights for the frame encoder, loaded with
            :func:`~d2sp.models.pretrained.load_pretrained`: ``"imagenet"`` (ResNet, VGG,
            ViT backbones) or ``"clip"`` (``clip_vit``) fetch the published weights through
            torchvision / timm / open_clip (``pip install 'd2sp[pretrained]'``); a path or
            a state dict loads saved weights; a d2sp run's ``best.pt`` (or its folder) loads
            that run's whole backbone, the head starting new. Missing or unexpected keys warn.
        **backbone_kwargs: passed to the backbone builder.

    Raises:
        ValueError: unknown name, or weights that do not fit the encoder; the message
            starts with the backbone name.
        PretrainedUnavailableError: (``ImportError`` and ``RuntimeError``) ``"imagenet"`` /
            ``"clip"`` without the library; the message names the backbone and the extra.
        PretrainedDownloadError: (``RuntimeError``) the library failed to fetch the weights.
    """
    backbone = create_backbone(name, **backbone_kwargs)
    head = ClassifierHead(
        backbone.num_features,
        num_classes,
        weight_branch=weight_branch,
        weight_hidden=weight_hidden,
        dropout=dropout,
    )
    model = DFERModel(backbone, head)
    if pretrained is not None:
        from d2sp.models.pretrained import load_pretrained
        from d2sp.models.pretrained_sources import (
            PretrainedDownloadError,
            PretrainedUnavailableError,
        )

        own = (ValueError, PretrainedUnavailableError, PretrainedDownloadError)
        try:
            load_pretrained(model, pretrained)
        except own as exc:
            if type(exc) not in own:  # a library's subclass: re-raised as it is
                raise
            raise type(exc)(f"{name}: {exc}") from exc
    return model
