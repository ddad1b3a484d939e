"""Published weights by name: ``pretrained="imagenet"`` / ``"clip"`` fetched through
torchvision, timm or open_clip, the optional extra ``pip install 'd2sp[pretrained]'``.

A frame encoder names its architecture in its ``arch`` attribute (``"resnet18"``,
``"vgg16"``, ``"vit_small_patch16_224"``, ``"ViT-B-16"``...); :data:`SOURCES` maps a kind
and that name to the library call that returns the weights:

- ``imagenet``: ResNet-18/50 and VGG-13/16 from torchvision
  (``resnet18(weights="IMAGENET1K_V1")``...); ViT-S/16 and ViT-B/16 from timm
  (``create_model("vit_small_patch16_224", pretrained=True)``: timm's default tag,
  ImageNet-21k pretraining fine-tuned on ImageNet-1k).
- ``clip``: CLIP ViT-B/16 and ViT-L/14 from open_clip
  (``create_model("ViT-B-16", pretrained="openai").visual``: OpenAI's weights).

The libraries are imported only here and only when asked for; a missing or broken install
(e.g. a torchvision built for another torch) raises :class:`PretrainedUnavailableError`
naming the extra. Before anything is downloaded, the library builds the same model
without weights on the meta device and its parameter shapes are compared with the
encoder's, so options that change the architecture (``width=32``...) fail at once.
Downloads are cached by the libraries themselves (torch hub / Hugging Face cache).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import nn

log = logging.getLogger(__name__)

EXTRA = "pip install 'd2sp[pretrained]'"
TORCH_INDEX = "https://download.pytorch.org/whl"  # PyTorch's own builds: /cpu, /cu126, /rocm6.2...
KINDS = ("imagenet", "clip")
_POSITION_KEYS = ("pos_embed", "positional_embedding")  # resampled on load, any grid fits


class PretrainedUnavailableError(ImportError, RuntimeError):
    """The library that provides the requested weights is not installed or fails to import."""


class PretrainedDownloadError(RuntimeError):
    """The library could not fetch the weights (no network, hub error, corrupt cache)."""


@dataclass(frozen=True)
class Source:
    """Where published weights come from.

    Attributes:
        library: the module to import (``"torchvision"``, ``"timm"``, ``"open_clip"``).
        model: the library's model name.
        tag: the weights tag (torchvision enum name, timm's default, open_clip's tag).
    """

    library: str
    model: str
    tag: str

    def describe(self) -> str:
        return f"{self.library} {self.model} ({self.tag})"


SOURCES: dict[str, dict[str, Source]] = {
    "imagenet": {
        "resnet18": Source("torchvision", "resnet18", "IMAGENET1K_V1"),
        "resnet50": Source("torchvision", "resnet50", "IMAGENET1K_V1"),
        "vgg13": Source("torchvision", "vgg13", "IMAGENET1K_V1"),
        "vgg16": Source("torchvision", "vgg16", "IMAGENET1K_V1"),
        "vit_small_patch16_224": Source("timm", "vit_small_patch16_224", "default"),
        "vit_base_patch16_224": Source("timm", "vit_base_patch16_224", "default"),
    },
    "clip": {
        "ViT-B-16": Source("open_clip", "ViT-B-16", "openai"),
        "ViT-L-14": Source("open_clip", "ViT-L-14", "openai"),
    },
}


def _torchvision(lib: ModuleType, src: Source, weights: bool, device: str) -> nn.Module:
    return getattr(lib.models, src.model)(weights=src.tag if weights else None)


def _timm(lib: ModuleType, src: Source, weights: bool, device: str) -> nn.Module:
    return lib.create_model(src.model, pretrained=weights)


def _open_clip(lib: ModuleType, src: Source, weights: bool, device: str) -> nn.Module:
    model = lib.create_model(
        src.model, pretrained=src.tag if weights else None, device=device, force_quick_gelu=True
    )
    return model.visual


_BUILDERS: dict[str, Callable[[ModuleType, Source, bool, str], nn.Module]] = {
    "torchvision": _torchvision,
    "timm": _timm,
    "open_clip": _open_clip,
}


def source_for(encoder: nn.Module, kind: str) -> Source:
    """The :class:`Source` of ``kind`` weights for ``encoder`` (by its ``arch`` attribute).

    Raises:
        ValueError: unknown kind, or no published weights of that kind for this encoder.
    """
    if kind not in SOURCES:
        raise ValueError(f"pretrained: expected one of {', '.join(KINDS)} or a path, got {kind!r}")
    arch = getattr(encoder, "arch", None)
    if arch in SOURCES[kind]:
        return SOURCES[kind][arch]
    other = [k for k in KINDS if k != kind and arch in SOURCES[k]]
    hint = f" (use pretrained={other[0]!r} for it)" if other else ""
    raise ValueError(
        f"pretrained={kind!r}: expected a frame encoder with published {kind} weights "
        f"({', '.join(SOURCES[kind])}), got {type(encoder).__name__} "
        f"(arch {arch!r}){hint}"
    )


def install_line(version: str | None = None) -> str:
    """The command that installs the extra and keeps the torch installed here (``version``,
    default ``torch.__version__``): without the pin, pip may replace torch to satisfy the newest
    torchvision. A build from PyTorch's own index (``2.13.0+cpu``, ``+cu126``...) needs the
    torchvision of the same build, which only that index has: the line adds it."""
    version = torch.__version__ if version is None else str(version)
    line = f"{EXTRA} 'torch=={version}'"
    _, plus, build = version.partition("+")
    if plus and build:
        line += f" --extra-index-url {TORCH_INDEX}/{build}"
    return line


def import_library(name: str, purpose: str) -> ModuleType:
    """Import an optional library, turning any failure into :class:`PretrainedUnavailableError`.

    Not only ``ImportError``: a broken install fails at import with other errors (a
    torchvision built for another torch raises ``RuntimeError: operator torchvision::nms
    does not exist``).
    """
    try:
        return importlib.import_module(name)
    except Exception as exc:
        state = "is not installed" if isinstance(exc, ModuleNotFoundError) else "fails to import"
        raise PretrainedUnavailableError(
            f"{purpose} needs {name}, which {state} here ({type(exc).__name__}: {exc}); "
            f"install the optional extra, keeping this torch: {install_line()}"
        ) from exc


def reference_state_dict(lib: ModuleType, src: Source) -> dict[str, torch.Tensor]:
    """The library model's state dict built on the meta device: names and shapes of the
    published weights, nothing allocated or downloaded."""
    with torch.device("meta"):
        return _BUILDERS[src.library](lib, src, False, "meta").state_dict()


def check_shapes(encoder: nn.Module, reference: dict[str, torch.Tensor], what: str) -> None:
    """Raise ``ValueError`` when a parameter both have differs in shape, or none is shared.

    Position tables are not compared (the loader resamples them to the encoder's grid).
    """
    ref = {k: v for k, v in reference.items() if not k.endswith(_POSITION_KEYS)}
    adapt = getattr(encoder, "adapt_state_dict", None)
    if adapt is not None:
        ref = adapt(ref)
    own = encoder.state_dict()
    common = [k for k in ref if k in own and not k.endswith(_POSITION_KEYS)]
    if not common:
        raise ValueError(f"{what}: no parameter name in common with {type(encoder).__name__}")
    for k in common:
        if tuple(ref[k].shape) != tuple(own[k].shape):
            raise ValueError(
                f"{what}: {k!r}: expected the shape of the published model "
                f"{tuple(ref[k].shape)}, got {tuple(own[k].shape)} (width/depth options must "
                "keep their defaults to take published weights)"
            )


def fetch_state_dict(encoder: nn.Module, kind: str) -> tuple[str, dict[str, torch.Tensor]]:
    """Download (or take from the library's cache) the ``kind`` weights for ``encoder``.

    Args:
        encoder: a frame encoder with an ``arch`` attribute (see the module docstring).
        kind: ``"imagenet"`` or ``"clip"``.

    Returns:
        ``(label, state_dict)``: a description for messages, e.g. ``"imagenet weights
        (torchvision resnet18 (IMAGENET1K_V1))"``, and the library model's state dict (for
        open_clip, its visual tower's).

    Raises:
        ValueError: no such weights for this encoder, or its shapes differ from theirs.
        PretrainedUnavailableError: the library is missing or broken.
        PretrainedDownloadError: the library failed to fetch the weights.
    """
    src = source_for(encoder, kind)
    what = f"{kind} weights ({src.describe()})"
    lib = import_library(src.library, f"pretrained={kind!r} for {encoder.arch}")
    try:
        reference = reference_state_dict(lib, src)
    except Exception as exc:  # a library that cannot build on meta: checked after loading
        log.debug("shape check before download skipped (%r)", exc)
    else:
        check_shapes(encoder, reference, what)
    log.info("fetching %s", what)
    try:
        model = _BUILDERS[src.library](lib, src, True, "cpu")
    except Exception as exc:
        raise PretrainedDownloadError(
            f"{what}: could not be fetched ({type(exc).__name__}: {exc}). Without internet "
            "access, fetch them once on a machine that has it (the library caches them) and "
            "copy its cache, or save the state dict and pass its path as model.pretrained"
        ) from exc
    return what, {k: v.detach() for k, v in model.state_dict().items()}
