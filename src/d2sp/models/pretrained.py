"""Load torchvision (ResNet, VGG) or timm (ViT) ImageNet weights into a frame encoder.

The frame encoders keep torchvision's / timm's parameter names, so a state dict saved by
``torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)`` or by
``torch.save(timm.create_model("vit_small_patch16_224", pretrained=True).state_dict(), path)``
loads directly. The ImageNet classifier (``fc.*``, ``classifier.6.*``, ``head.*``) is
skipped: the DFER head is trained from scratch.
"""

from __future__ import annotations

import logging
import math
import warnings
from os import PathLike

import torch
from torch import nn

from d2sp.models.transformer import resample_pos_embed

log = logging.getLogger(__name__)

_SHOW = 5  # key names shown in a report


def frame_encoder_of(obj: nn.Module) -> nn.Module:
    """The frame encoder inside a :class:`~d2sp.heads.DFERModel`, a backbone, or itself."""
    if hasattr(obj, "backbone") and isinstance(obj.backbone, nn.Module):
        obj = obj.backbone
    enc = getattr(obj, "encoder", None)
    return enc if isinstance(enc, nn.Module) else obj


def _read_state_dict(path: str | PathLike) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        while k.startswith("module."):
            k = k[len("module.") :]
        out[k] = v
    return out


def _is_classifier_key(key: str, encoder: nn.Module) -> bool:
    if key.startswith(("fc.", "head.")) or key.startswith("classifier.6."):
        return True
    return key.startswith("classifier.") and getattr(encoder, "classifier", None) is None


def _names(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def load_pretrained(
    backbone_or_model: nn.Module, path: str | PathLike, *, strict: bool = False
) -> tuple[list[str], list[str]]:
    """Load a torchvision/timm state dict file into the frame encoder of a model or backbone.

    The file may hold the state dict itself or wrap it under ``"state_dict"`` or
    ``"model"``; a ``module.`` prefix (DataParallel/DDP) is stripped. Classifier weights
    (``fc.*``, ``head.*``, ``classifier.6.*``, or every ``classifier.*`` when the encoder
    has no classifier) are skipped. A ViT ``pos_embed`` of another image size is resampled
    to the encoder's grid.

    Args:
        backbone_or_model: a :class:`~d2sp.heads.DFERModel`, a backbone with an ``encoder``
            attribute, or a frame encoder itself.
        path: the state dict file (``torch.load(..., weights_only=True)``).
        strict: raise if any encoder key is missing or any file key is unused.

    Returns:
        ``(missing, unexpected)``: encoder keys not in the file, file keys not in the encoder
        (classifier keys excluded on both sides).

    Raises:
        ValueError: nothing matched (a file for another architecture), a shape mismatch
            (names the key and both shapes), or ``strict`` and keys differ.
    """
    encoder = frame_encoder_of(backbone_or_model)
    target = encoder.state_dict()
    src = {k: v for k, v in _read_state_dict(path).items() if not _is_classifier_key(k, encoder)}

    if "pos_embed" in src and "pos_embed" in target:
        old, new = src["pos_embed"], target["pos_embed"]
        if old.shape != new.shape and old.shape[-1] == new.shape[-1]:
            prefix = int(getattr(encoder, "num_prefix_tokens", 1))
            n_old = old.shape[1] - prefix
            side = math.isqrt(n_old)
            if side * side != n_old:
                raise ValueError(
                    f"{path}: pos_embed with {n_old} patch tokens is not a square grid"
                )
            grid = tuple(getattr(encoder, "grid_size", (math.isqrt(new.shape[1] - prefix),) * 2))
            src["pos_embed"] = resample_pos_embed(old, grid, (side, side), num_prefix=prefix)
            log.info("resampled pos_embed %s -> %s", tuple(old.shape), tuple(new.shape))

    matched = [k for k in src if k in target]
    if not matched:
        raise ValueError(
            f"{path}: no parameter matched the {type(encoder).__name__} frame encoder "
            f"(is this a file for another architecture?). File keys: {_names(list(src))}; "
            f"encoder keys: {_names(list(target))}"
        )
    for k in matched:
        if src[k].shape != target[k].shape:
            raise ValueError(
                f"{path}: shape mismatch for {k!r}: file {tuple(src[k].shape)} vs "
                f"encoder {tuple(target[k].shape)} (another architecture or width?)"
            )
    # the encoder's own classifier (if built) is deliberately left at its initialisation
    missing = [k for k in target if k not in src and not _is_classifier_key(k, encoder)]
    unexpected = [k for k in src if k not in target]
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path}: strict load failed: {len(missing)} missing ({_names(missing)}), "
            f"{len(unexpected)} unexpected ({_names(unexpected)})"
        )
    encoder.load_state_dict({k: src[k] for k in matched}, strict=False)
    msg = f"loaded {len(matched)}/{len(target)} tensors from {path}"
    if missing or unexpected:
        msg += (
            f"; {len(missing)} missing (kept at init: {_names(missing)})"
            f"; {len(unexpected)} unexpected (ignored: {_names(unexpected)})"
        )
        warnings.warn(msg, stacklevel=2)
    log.info(msg)
    return missing, unexpected
