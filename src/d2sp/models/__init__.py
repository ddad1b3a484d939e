"""Backbones: a registry of clip encoders and the paper's six backbones.

Importing this package registers every shipped backbone:
``r18_lstm``, ``r50_lstm``, ``vgg13_lstm``, ``vgg16_lstm``, ``former_dfer``, ``vit_lstm``.
"""

from d2sp.models import former_dfer, resnet, vgg, vit  # noqa: F401  (registration)
from d2sp.models.dfer import DFERModel
from d2sp.models.pretrained import load_pretrained
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
    "register_backbone",
]
