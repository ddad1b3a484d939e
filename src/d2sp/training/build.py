"""Building a run from its config: datasets, purifier, model, optimiser, schedule, loaders."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from d2sp.config import RunConfig
from d2sp.data.common import DatasetSplit
from d2sp.data.dataset import ClipDataset
from d2sp.data.splits import check_shared_test, load_split
from d2sp.data.validate import DataWarning
from d2sp.models import create_model, parameter_groups
from d2sp.purify import Purifier, purifier_class
from d2sp.purify.selection import SelectionContext
from d2sp.training.badclips import BadClips
from d2sp.training.checks import purifier_options
from d2sp.training.distributed import DistInfo, broadcast_object, main_process_first
from d2sp.training.passes import RunLoaders


@dataclass
class Run:
    """Everything one training run works with; built by :func:`build_run`."""

    cfg: RunConfig
    info: DistInfo
    device: torch.device
    run_dir: Path
    console: Console
    train_split: DatasetSplit
    test_split: DatasetSplit
    train_ds: ClipDataset  # augmented training views
    eval_train_ds: ClipDataset  # un-augmented views of the training clips (re-scoring)
    test_ds: ClipDataset
    purifier: Purifier
    model: torch.nn.Module  # the bare model
    net: torch.nn.Module  # what a training step calls: the model or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loaders: RunLoaders  # the batches of its passes (training, re-scoring, test)
    use_amp: bool = False
    extras: dict = field(default_factory=dict)
    bad_clips: BadClips = field(default_factory=BadClips)  # clips found unreadable on the way
    notes: list[str] = field(default_factory=list)  # what reading the data repaired or noted

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.train_split.class_names)

    def autocast(self):
        """bf16 autocast on the run's device when ``amp`` asks for it, else nothing."""
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @property
    def skipped(self) -> list[str]:
        """Every row the run skipped, each once: the splits' load-time skips (train and test
        may read one label file), then the clips met unreadable during training."""
        return list(dict.fromkeys(self.train_split.skipped + self.test_split.skipped)) + list(
            self.bad_clips.lines
        )

    def rescore_dataset(self) -> ClipDataset:
        """The views the purifier re-scores: augmented training views or plain ones."""
        return self.train_ds if self.purifier.rescore_view == "train" else self.eval_train_ds


def load_splits_noted(cfg: RunConfig, progress: bool):
    """``(train, test, notes)``: :func:`load_splits`, its data warnings (a ``num_frames``
    that differs from the clip, a few test clips shared with training, ...) collected as
    notes for the run summary instead of shown as Python warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        train, test = load_splits(cfg, progress=progress)
    notes = []
    for w in caught:
        if issubclass(w.category, DataWarning):
            notes.append(str(w.message))
        else:  # not ours to record: warned as it would have been
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return train, test, list(dict.fromkeys(notes))


def load_splits(cfg: RunConfig, progress: bool) -> tuple[DatasetSplit, DatasetSplit]:
    """The run's train and test splits (generated or cached once, by rank 0 first).

    Refused (:class:`~d2sp.data.splits.SharedTestError`) when the test split is the training
    split or mostly its clips, unless ``data.allow_shared_test``: first from the options
    alone, before any file is read or cached, then from the clips of both splits.
    """
    check_shared_test(cfg.data, None, None)
    with main_process_first():
        train = load_split(cfg.data, "train", progress=progress)
        test = load_split(cfg.data, "test", progress=progress)
    check_shared_test(cfg.data, train, test)
    return train, test


def clip_datasets(cfg: RunConfig, train: DatasetSplit, test: DatasetSplit):
    """``(augmented train, plain train, plain test)`` clip datasets of uint8 clips."""
    common = dict(num_frames=cfg.data.num_frames, size=cfg.data.size, seed=cfg.seed, output="uint8")
    train_ds = ClipDataset(
        train.samples, train=True, crop_scale=cfg.data.crop_scale, source=train.source, **common
    )
    eval_train_ds = ClipDataset(train.samples, train=False, source=train.source, **common)
    test_ds = ClipDataset(test.samples, train=False, source=test.source, **common)
    return train_ds, eval_train_ds, test_ds


def build_purifier(
    cfg: RunConfig,
    split: DatasetSplit,
    device: torch.device,
    *,
    run_dir: Path,
    heldout_probs: Callable,
    log: Callable[[str], None],
    info: DistInfo,
    extra_options: dict | None = None,
) -> Purifier:
    """The purifier ``purify.mode`` names, with its options; a mode that decides its training
    set before training makes that selection first (:meth:`Purifier.select`)."""
    cls = purifier_class(cfg.purify.mode)
    options = {**cls.resolve(purifier_options(cfg)), **(extra_options or {})}
    if "epochs" in cls.defaults and options.get("epochs") is None:
        options["epochs"] = cfg.optim.epochs  # a mode that scales its schedule to the run
    if cls.selects_before_training:
        context = SelectionContext(
            labels=split.labels, num_classes=split.num_classes, seed=cfg.seed,
            epochs=cfg.optim.epochs, run_dir=run_dir, split=split, dataset=cfg.data.dataset,
            heldout_probs=heldout_probs, log=log, is_main=info.is_main, broadcast=broadcast_object,
        )  # fmt: skip
        options.update(cls.select(context, options))
    return cls(split.labels, num_classes=split.num_classes, device=device, **options)


def build_model(cfg: RunConfig, purifier: Purifier, num_classes: int, device) -> torch.nn.Module:
    """The configured backbone with a head shaped as the purifier wants it."""
    weight_hidden = cfg.model.weight_hidden
    if weight_hidden is None:
        weight_hidden = purifier.weight_hidden
    try:
        model = create_model(
            cfg.model.name,
            num_classes=num_classes,
            weight_branch=purifier.weight_branch,
            weight_hidden=weight_hidden,
            dropout=cfg.model.dropout,
            pretrained=cfg.model.pretrained,
            **cfg.model.options,
        )
    except TypeError as e:  # an option the backbone builder does not take
        raise ValueError(f"model.options: {e}") from None
    model = model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def lr_factor(cfg: RunConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Per-step LR factor: linear warm-up over ``lr_warmup_epochs``, then cosine (or constant)."""
    total = max(1, cfg.optim.epochs * steps_per_epoch)
    warm = int(cfg.optim.lr_warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.optim.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return float(0.5 * (1.0 + np.cos(np.pi * min(1.0, progress))))

    return factor


def build_optimizer(cfg: RunConfig, model: torch.nn.Module, num_train: int):
    """SGD with momentum and its per-step LR schedule; the frame encoder at
    ``model.encoder_lr_scale`` times the rate, or frozen (``model.freeze_encoder``)."""
    o, m = cfg.optim, cfg.model
    params = model.parameters()
    if m.encoder_lr_scale != 1.0 or m.freeze_encoder:
        params = parameter_groups(
            model, lr=o.lr, encoder_lr_scale=m.encoder_lr_scale, freeze_encoder=m.freeze_encoder
        )
    optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    steps_per_epoch = max(1, num_train // o.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps_per_epoch))
    return optimizer, scheduler


def build_run(
    cfg: RunConfig,
    info: DistInfo,
    device: torch.device,
    run_dir: Path,
    console: Console,
    *,
    progress: bool,
    heldout_probs: Callable,
    extra_options: dict | None = None,
) -> Run:
    """Every object of a run, ready to train (nothing written yet)."""
    train_split, test_split, notes = load_splits_noted(cfg, progress=progress and info.is_main)
    train_ds, eval_train_ds, test_ds = clip_datasets(cfg, train_split, test_split)
    log = console.print if progress else (lambda *_: None)
    purifier = build_purifier(
        cfg, train_split, device, run_dir=run_dir, heldout_probs=heldout_probs,
        log=log, info=info, extra_options=extra_options,
    )  # fmt: skip
    model = build_model(cfg, purifier, train_split.num_classes, device)
    optimizer, scheduler = build_optimizer(cfg, model, len(train_ds))  # (freezes before DDP)
    # a second network is built as the model is (a pretrained encoder loaded into both)
    peer = {"peer": build_model(cfg, purifier, train_split.num_classes, device)} if purifier.trains_peer else {}
    purifier.bind(model, optimizer=optimizer, **peer)  # (a teacher copies the bare model)
    net = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bad_clips = BadClips(skip_bad=cfg.data.skip_bad, info=info)
    rescore_ds = train_ds if purifier.rescore_view == "train" else eval_train_ds
    loaders = RunLoaders(cfg, info, bad_clips, train_ds=train_ds, rescore_ds=rescore_ds, test_ds=test_ds)
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    return Run(
        cfg=cfg, info=info, device=device, run_dir=run_dir, console=console,
        train_split=train_split, test_split=test_split, train_ds=train_ds,
        eval_train_ds=eval_train_ds, test_ds=test_ds, purifier=purifier, model=model, net=net,
        optimizer=optimizer, scheduler=scheduler, loaders=loaders, use_amp=use_amp,
        bad_clips=bad_clips, notes=notes,
    )  # fmt: skip

