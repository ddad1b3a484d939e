"""A trained run's model loaded back from its checkpoint, with what feeds it as the run did:
the clips sampled at segment centres (``ClipDataset(train=False)``) with the run's
``num_frames``, ``size`` and normalisation, batched by the run's ``optim.batch_size`` on its
device and precision. :mod:`d2sp.runs.evaluation` and :mod:`d2sp.runs.prediction` use it.

    loaded = load_run_model("runs/dfew", checkpoint="last")
    loader = loaded.loader(loaded.clips(samples, source))
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from d2sp.config import RunConfig, config_from_dict, resolve_workers

CHECKPOINTS = ("best", "last")


@dataclass
class LoadedModel:
    """A run's model in eval mode, with what is needed to feed it as the run did.

    Attributes:
        run_dir: the run folder.
        cfg: the run's config (from the checkpoint).
        model: ``model(clips (B, T, 3, S, S)) -> (logits (B, K), weights (B,) or None)``.
        class_names: the ``K`` class names the model predicts.
        checkpoint: ``"best"`` or ``"last"``.
        epoch: the epoch the checkpoint was taken after (1-based).
        metrics: ``war``/``uar`` recorded for that epoch on the run's test split.
        device: where the model is.
        use_amp: bf16 autocast, as the run evaluated.
    """

    run_dir: Path
    cfg: RunConfig
    model: torch.nn.Module
    class_names: tuple[str, ...]
    checkpoint: str
    epoch: int
    metrics: dict
    device: torch.device
    use_amp: bool

    def autocast(self):
        """bf16 autocast when the run used it, else nothing."""
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def clips(self, samples, source):
        """A ``ClipDataset`` of ``samples`` read through ``source``, sampled as the run
        evaluated: ``(clip (T, 3, S, S) uint8, label, index)``."""
        from d2sp.data.dataset import ClipDataset

        cfg = self.cfg
        return ClipDataset(
            samples, train=False, num_frames=cfg.data.num_frames, size=cfg.data.size,
            seed=cfg.seed, output="uint8", source=source,
        )  # fmt: skip

    def loader(self, dataset, batch_size: int | None = None):
        """Batches of ``dataset`` in its order (``batch_size`` default: the run's)."""
        from d2sp.training.loaders import make_loader

        cfg = self.cfg
        return make_loader(
            dataset, None, batch_size=batch_size or cfg.optim.batch_size, shuffle=False,
            seed=cfg.seed, workers=resolve_workers(cfg.data.workers),
        )  # fmt: skip


def load_run_model(
    run_dir: str | Path, *, checkpoint: str = "best", device: str | None = None
) -> LoadedModel:
    """Build the run's backbone and head and load ``RUN_DIR/<checkpoint>.pt`` into it.

    The head (weight branch or not, its width, ``K``) is read from the saved weights, so any
    purification mode's model loads. ``device`` defaults to the run's (CPU when it asked
    for CUDA and there is none).

    Raises:
        d2sp.runs.folder.RunFolderError: no such folder or checkpoint, or an unreadable one.
        ValueError: ``checkpoint`` not ``best`` or ``last``.
    """
    from d2sp.runs.folder import RunFolderError
    from d2sp.training.distributed import SINGLE, process_device

    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        known = ", ".join(CHECKPOINTS)
        raise ValueError(f"checkpoint: expected one of {known}, got {checkpoint!r}")
    path = run_dir / f"{checkpoint}.pt"
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such folder (expected a run folder)")
    if not path.is_file():
        held = ", ".join(sorted(p.name for p in run_dir.glob("*.pt"))) or "no checkpoint"
        raise RunFolderError(f"{path}: no such checkpoint (the run folder holds {held})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        cfg = config_from_dict(ckpt["config"])
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise RunFolderError(f"{path}: cannot read the checkpoint ({e})") from None
    if device is None:
        device = cfg.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
    dev = process_device(device, SINGLE)
    model = _model_from_state(cfg, ckpt["model"]).to(dev)
    if dev.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and dev.type == "cuda")
    return LoadedModel(
        run_dir=run_dir, cfg=cfg, model=model, class_names=tuple(ckpt["class_names"]),
        checkpoint=checkpoint, epoch=int(ckpt["epoch"]), metrics=dict(ckpt.get("metrics", {})),
        device=dev, use_amp=use_amp,
    )  # fmt: skip


def _model_from_state(cfg: RunConfig, state: dict) -> torch.nn.Module:
    """The run's model shaped after its saved weights ``state``, loaded."""
    from d2sp.models import create_model

    weight_branch = any(k.startswith("head.weight.") for k in state)
    hidden = state["head.weight.fc1.weight"].shape[0] if "head.weight.fc1.weight" in state else 0
    model = create_model(
        cfg.model.name, num_classes=int(state["head.fc.weight"].shape[0]),
        weight_branch=weight_branch, weight_hidden=hidden if weight_branch else None,
        dropout=cfg.model.dropout, **cfg.model.options,
    )  # fmt: skip
    model.load_state_dict(state)
    return model


def progress_bar(console: Console | None, enabled: bool, label: str) -> Progress:
    """A transient rich bar for batches (``label``, done/total, elapsed time)."""
    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not enabled,
    )  # fmt: skip
