"""Load torchvision (ResNet, VGG), timm (ViT) or open_clip (CLIP ViT) weights into a
frame encoder: by name (``"imagenet"``, ``"clip"``), from a file, or from a state dict.

The frame encoders keep torchvision's / timm's / open_clip's parameter names, so a state
dict saved by ``torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)``,
by ``torch.save(timm.create_model("vit_small_patch16_224", pretrained=True).state_dict(),
path)`` or by ``torch.save(open_clip.create_model("ViT-B-16", pretrained="openai")
.state_dict(), path)`` loads directly. The ImageNet classifier (``fc.*``,
``classifier.6.*``, ``head.*``) is skipped: the DFER head is trained from scratch.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from d2sp.models.pretrained_sources import KINDS, fetch_state_dict
from d2sp.models.transformer import resample_pos_embed

log = logging.getLogger(__name__)

_SHOW = 5  # key names shown in a report
_WRAPPERS = (DataParallel, DistributedDataParallel)


def backbone_of(obj: nn.Module) -> nn.Module:
    """The backbone of a :class:`~d2sp.models.dfer.DFERModel` (else ``obj`` itself).

    A ``DistributedDataParallel``/``DataParallel`` wrapper (``.module``) or a
    ``torch.compile`` wrapper (``._orig_mod``) is looked through.
    """
    while True:
        inner = getattr(obj, "_orig_mod", None)
        if not isinstance(inner, nn.Module) and isinstance(obj, _WRAPPERS):
            inner = obj.module
        if not isinstance(inner, nn.Module):
            break
        obj = inner
    if hasattr(obj, "backbone") and isinstance(obj.backbone, nn.Module):
        obj = obj.backbone
    return obj


def frame_encoder_of(obj: nn.Module) -> nn.Module:
    """The frame encoder inside a :class:`~d2sp.models.dfer.DFERModel`, a backbone, or itself
    (wrappers looked through as by :func:`backbone_of`)."""
    obj = backbone_of(obj)
    enc = getattr(obj, "encoder", None)
    return enc if isinstance(enc, nn.Module) else obj


def _clean_state_dict(sd: object, label: str) -> dict[str, torch.Tensor]:
    """Unwrap ``"state_dict"``/``"model"``, strip ``module.``, keep the tensors."""
    for key in ("state_dict", "model"):
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise ValueError(f"{label}: expected a state dict, got {type(sd).__name__}")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        while k.startswith("module."):
            k = k[len("module.") :]
        out[k] = v
    return out


WHAT = (
    "expected imagenet, clip, a state-dict file, or a d2sp run's checkpoint "
    "(runs/NAME/best.pt, or the run folder)"
)


def is_run_checkpoint(obj: object) -> bool:
    """Whether ``obj`` (a loaded file) is a d2sp run's checkpoint (``best.pt``/``last.pt``:
    the whole model's state under ``"model"`` with the run's ``"config"``)."""
    return isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and isinstance(
        obj.get("config"), Mapping
    )


def read_weights(source: str | PathLike) -> tuple[str, object]:
    """``(label, what the file holds)`` of a weights file (a run folder: its ``best.pt``).

    Raises:
        ValueError: no such file, or one torch cannot read as weights (a text file, a
            truncated download), naming it and what is expected.
    """
    path = Path(source)
    if path.is_dir() and (path / "best.pt").is_file():
        path = path / "best.pt"
    if not path.is_file():
        raise ValueError(f"{source}: no such weights file; {WHAT}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise ValueError(f"{path}: not a weights file (torch.load failed: {reason}); {WHAT}") from None
    if is_run_checkpoint(obj):
        name = obj["config"].get("model", {}).get("name", "?")
        return f"{path} (a d2sp run checkpoint of {name})", obj
    return str(path), obj


def _resolve_source(
    source: str | PathLike | Mapping[str, torch.Tensor], encoder: nn.Module
) -> tuple[str, dict[str, torch.Tensor], bool]:
    """``(label for messages, cleaned state dict, whether it is a d2sp run's checkpoint)``
    from a path, a mapping or a kind."""
    if isinstance(source, Mapping):
        return "state dict", _clean_state_dict(source, "state dict"), False
    if isinstance(source, str) and source in KINDS:
        label, sd = fetch_state_dict(encoder, source)
        return label, _clean_state_dict(sd, label), False
    label, sd = read_weights(source)
    return label, _clean_state_dict(sd, label), is_run_checkpoint(sd)


def _is_classifier_key(key: str, encoder: nn.Module) -> bool:
    if key.startswith(("fc.", "head.")) or key.startswith("classifier.6."):
        return True
    return key.startswith("classifier.") and getattr(encoder, "classifier", None) is None


def _names(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _resample_vit_pos_embed(
    src: dict[str, torch.Tensor], target: dict[str, torch.Tensor], encoder: nn.Module, label: str
) -> None:
    """A timm ``pos_embed`` of another grid, resampled in place to the encoder's grid."""
    if "pos_embed" not in src or "pos_embed" not in target:
        return
    old, new = src["pos_embed"], target["pos_embed"]
    if old.shape == new.shape or old.shape[-1] != new.shape[-1]:
        return
    prefix = int(getattr(encoder, "num_prefix_tokens", 1))
    n_old = old.shape[1] - prefix
    side = math.isqrt(n_old)
    if side * side != n_old:
        raise ValueError(f"{label}: pos_embed with {n_old} patch tokens is not a square grid")
    grid = tuple(getattr(encoder, "grid_size", (math.isqrt(new.shape[1] - prefix),) * 2))
    src["pos_embed"] = resample_pos_embed(old, grid, (side, side), num_prefix=prefix)
    log.info("resampled pos_embed %s -> %s", tuple(old.shape), tuple(new.shape))


def _match(
    src: dict[str, torch.Tensor], target: dict[str, torch.Tensor], encoder: nn.Module, label: str
) -> tuple[list[str], list[str], list[str]]:
    """``(matched, missing, unexpected)`` keys; raises if nothing matches or a shape differs."""
    matched = [k for k in src if k in target]
    if not matched:
        raise ValueError(
            f"{label}: no parameter matched the {type(encoder).__name__} frame encoder "
            f"(weights of another architecture?). Source keys: {_names(list(src))}; "
            f"encoder keys: {_names(list(target))}"
        )
    for k in matched:
        if src[k].shape != target[k].shape:
            raise ValueError(
                f"{label}: shape mismatch for {k!r}: source {tuple(src[k].shape)} vs "
                f"encoder {tuple(target[k].shape)} (another architecture or width?)"
            )
    # the encoder's own classifier (if built) is deliberately left at its initialisation
    missing = [k for k in target if k not in src and not _is_classifier_key(k, encoder)]
    unexpected = [k for k in src if k not in target]
    return matched, missing, unexpected


def load_pretrained(
    backbone_or_model: nn.Module,
    source: str | PathLike | Mapping[str, torch.Tensor],
    *,
    strict: bool = False,
) -> tuple[list[str], list[str]]:
    """Load published or saved weights into the frame encoder of a model or backbone.

    ``source`` is one of:

    - ``"imagenet"`` or ``"clip"``: the published weights of the encoder's architecture,
      fetched through torchvision / timm / open_clip (the optional extra
      ``pip install 'd2sp[pretrained]'``; see :mod:`d2sp.models.pretrained_sources`);
    - a path (``str`` or ``PathLike``) of a state dict file (``torch.load(...,
      weights_only=True)``); a file literally named ``imagenet`` is ``"./imagenet"``;
    - a d2sp run's checkpoint (``runs/NAME/best.pt`` or ``last.pt``, or the run folder for
      its ``best.pt``): its whole backbone is loaded (frame encoder and temporal model),
      the head (classifier, weight branch) is not, so the new run may have another number
      of classes (train on DFEW, fine-tune on MAFW);
    - a state dict already in memory (a mapping of names to tensors).

    A file or mapping may hold the state dict itself or wrap it under ``"state_dict"`` or
    ``"model"``; a ``module.`` prefix (DataParallel/DDP) is stripped. An encoder with an
    ``adapt_state_dict`` method (CLIP) first maps the names to its own (e.g. strips
    ``visual.``). Classifier weights (``fc.*``, ``head.*``, ``classifier.6.*``, or every
    ``classifier.*`` when the encoder has no classifier) are skipped. A position table of
    another image size is resampled to the encoder's grid.

    Args:
        backbone_or_model: a :class:`~d2sp.models.dfer.DFERModel`, a backbone with an ``encoder``
            attribute, or a frame encoder itself.
        source: ``"imagenet"``, ``"clip"``, a path, or a state dict.
        strict: raise if any encoder key is missing or any source key is unused.

    Returns:
        ``(missing, unexpected)``: encoder keys not in the source, source keys not in the
        encoder (classifier keys excluded on both sides).

    Raises:
        ValueError: no such file or one torch cannot read, nothing matched (weights of
            another architecture), a shape mismatch (names the key and both shapes), no
            published weights of that kind for this encoder, or ``strict`` and keys differ.
        PretrainedUnavailableError: (an ``ImportError`` and a ``RuntimeError``)
            ``"imagenet"``/``"clip"`` without the library installed or importable.
        PretrainedDownloadError: (a ``RuntimeError``) the library failed to fetch them.
    """
    encoder = frame_encoder_of(backbone_or_model)
    label, src, whole = _resolve_source(source, encoder)
    if whole:  # a d2sp run: its whole backbone (frame encoder, temporal model); a new head
        encoder = backbone_of(backbone_or_model)
        target = encoder.state_dict()
        src = {k[len("backbone.") :]: v for k, v in src.items() if k.startswith("backbone.")}
    else:
        target = encoder.state_dict()
        adapt = getattr(encoder, "adapt_state_dict", None)
        if adapt is not None:
            src = adapt(src)
        src = {k: v for k, v in src.items() if not _is_classifier_key(k, encoder)}
        _resample_vit_pos_embed(src, target, encoder, label)

    matched, missing, unexpected = _match(src, target, encoder, label)
    if strict and (missing or unexpected):
        raise ValueError(
            f"{label}: strict load failed: {len(missing)} missing ({_names(missing)}), "
            f"{len(unexpected)} unexpected ({_names(unexpected)})"
        )
    encoder.load_state_dict({k: src[k] for k in matched}, strict=False)
    msg = f"loaded {len(matched)}/{len(target)} tensors from {label}"
    if missing or unexpected:
        msg += (
            f"; {len(missing)} missing (kept at init: {_names(missing)})"
            f"; {len(unexpected)} unexpected (ignored: {_names(unexpected)})"
        )
        warnings.warn(msg, stacklevel=2)
    log.info(msg)
    return missing, unexpected
