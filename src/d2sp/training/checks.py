"""Checks of a run config before anything starts, and the errors the trainer stops with."""

from __future__ import annotations

import inspect

from d2sp.config import RunConfig


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class PurificationGuardError(RuntimeError):
    """Purification removed more than the config allows and ``stop_on_overprune`` is set."""


def purifier_options(cfg: RunConfig) -> dict:
    """The purifier options a config sets (a mode's own defaults fill the rest)."""
    return dict(cfg.purify.options)


def _purify_problems(cfg: RunConfig) -> list[str]:
    from d2sp.purify import OptionError, purifier_class

    try:
        cls = purifier_class(cfg.purify.mode)
    except ValueError as e:
        return [str(e)]
    try:
        options = cls.resolve(purifier_options(cfg))
    except OptionError as e:  # each problem named by its config key
        return [f"purify.{p}" for p in e.problems]
    return cls.schedule_problems(options, epochs=cfg.optim.epochs, dataset=cfg.data.dataset)


_MODEL_OWN = {  # create_model's own arguments, which model.options cannot set
    "num_classes": "the dataset", "weight_branch": "purify.mode", "weight_hidden":
    "model.weight_hidden", "dropout": "model.dropout", "pretrained": "model.pretrained",
}  # fmt: skip


def _model_option_problems(cfg: RunConfig) -> list[str]:
    """``model.options`` the backbone's builder does not take (by its signature)."""
    from d2sp.models.registry import BACKBONES

    options = cfg.model.options
    if not isinstance(options, dict):
        return [f"model.options: expected a mapping, got {options!r}"]
    problems = [
        f"model.options.{k}: set by {_MODEL_OWN[k]}, not by model.options"
        for k in options if k in _MODEL_OWN
    ]  # fmt: skip
    builder = BACKBONES.get(cfg.model.name)
    if builder is None:
        return problems
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return problems
    known = [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [k for k in options if k not in known and k not in _MODEL_OWN]
    if unknown:
        usable = [k for k in known if k not in _MODEL_OWN]
        problems.append(
            f"model.options: backbone {cfg.model.name!r} has no option "
            f"{', '.join(map(repr, unknown))}; its options: {', '.join(usable) or '(none)'}"
        )
    return problems


def check_processes(cfg: RunConfig, world_size: int) -> None:
    """Refuse (ValueError) a mode that trains a second network in a run of more than one
    process: the second network is not synchronised across processes."""
    from d2sp.purify import purifier_class

    if world_size > 1 and purifier_class(cfg.purify.mode).trains_peer:
        raise ValueError(
            f"config refused:\n  purify.mode: {cfg.purify.mode!r} trains a second network that "
            f"is not synchronised across processes: run it in one process, not under torchrun "
            f"(got {world_size} processes)"
        )


def validate_config(cfg: RunConfig) -> None:
    """Refuse a config that makes no sense before anything starts (ValueError naming every
    problem): unknown backbone, dataset or purification mode, ``model.options`` the backbone's
    builder does not take, options the mode does not take or refuses, a schedule on which the mode can never decide, senseless optimiser or data
    settings."""
    from d2sp.data.registry import list_datasets
    from d2sp.models import list_backbones

    o, problems = cfg.optim, []
    if cfg.model.name not in list_backbones():
        problems.append(
            f"model.name: unknown backbone {cfg.model.name!r}; known: {', '.join(list_backbones())}"
        )
    if cfg.data.dataset not in list_datasets():
        problems.append(
            f"data.dataset: unknown dataset {cfg.data.dataset!r}; known: {', '.join(list_datasets())}"
        )
    problems += _model_option_problems(cfg)
    problems += _purify_problems(cfg)
    if o.epochs < 0 or o.batch_size < 1 or o.lr <= 0:
        problems.append(
            f"optim: expected epochs >= 0, batch_size >= 1 and lr > 0, got "
            f"{o.epochs}, {o.batch_size}, {o.lr}"
        )
    if not cfg.model.encoder_lr_scale > 0:
        problems.append(
            f"model.encoder_lr_scale: expected a number > 0, got {cfg.model.encoder_lr_scale}"
        )
    from d2sp.data.cache import CODECS

    if cfg.data.cache_codec is not None and cfg.data.cache_codec not in CODECS:
        problems.append(
            f"data.cache_codec: expected one of {', '.join(CODECS)} (or null: the default), "
            f"got {cfg.data.cache_codec!r}"
        )
    if cfg.data.num_frames < 1 or cfg.data.size < 8:
        problems.append(
            f"data: expected num_frames >= 1 and size >= 8, got {cfg.data.num_frames}, "
            f"{cfg.data.size}"
        )
    if problems:
        raise ValueError("config refused:\n  " + "\n  ".join(problems))
