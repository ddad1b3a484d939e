"""Backbones: a registry of clip encoders, the paper's six backbones and a CLIP one.

Importing this package registers every shipped backbone:
``r18_lstm``, ``r50_lstm``, ``vgg13_lstm``, ``vgg16_lstm``, ``former_dfer``, ``vit_lstm``,
``clip_vit``.
"""

from d2sp.models import clip_vit, former_dfer, resnet, vgg, vit  # noqa: F401  (registration)
from d2sp.models.dfer import DFERModel
from d2sp.models.finetune import parameter_groups
from d2sp.models.pretrained import load_pretrained
from d2sp.models.pretrained_sources import PretrainedDownloadError, PretrainedUnavailableError
from d2sp.models.registry import (
    BACKBONES,
    create_backbone,
    create_model,
    list_backbones,
    register_backbone,
)

__all__ = [
    "BACKBONES",
    "DFERModel",
    "create_backbone",
    "create_model",
    "list_backbones",
    "load_pretrained",
    "parameter_groups",
    "PretrainedDownloadError",
    "PretrainedUnavailableError",
    "register_backbone",
]
