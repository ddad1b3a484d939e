"""The trainer: one run of backbone + head + purifier, with a run folder.

The run folder holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON
object per epoch), ``ledger.npz`` (every sample's record and state per epoch),
``last.pt`` and ``best.pt`` checkpoints (each with the config) and ``summary.json``.

Started by ``torchrun`` (``WORLD_SIZE > 1``), one run trains on every process with
DistributedDataParallel: ``optim.batch_size`` stays the global batch, each process trains
and records its share of every batch (:class:`d2sp.distributed.ShardedBatchSampler`), the
purifier's records are combined at the end of each epoch so that every process takes the
same decisions, and only rank 0 writes files and prints.
"""

from __future__ import annotations

import json
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from d2sp.config import RunConfig, config_to_dict, save_config
from d2sp.data.dataset import ClipDataset, normalize_clips
from d2sp.data.registry import class_counts
from d2sp.data.splits import load_split
from d2sp.distributed import (
    SINGLE,
    DistInfo,
    ShardedBatchSampler,
    all_reduce_min,
    all_reduce_sum,
    broadcast_buffers,
    broadcast_object,
    check_batch_size,
    check_replicas,
    check_same,
    current_info,
    distributed_session,
    launch_info,
    main_process_first,
    process_device,
)
from d2sp.losses import weighted_cross_entropy
from d2sp.metrics import confusion_matrix, war_uar
from d2sp.models import create_model
from d2sp.purify import Ledger
from d2sp.purify.baselines import FixedPurifier, cleanlab_label_issues, stratified_folds
from d2sp.purify.factory import create_purifier
from d2sp.purify.improved import training_hooks


@dataclass
class RunResult:
    """What a finished run reports; the same figures are in ``summary.json``."""

    run_dir: Path
    war: float
    uar: float
    best_war: float
    best_uar: float
    best_epoch: int
    pruned: int
    corrected: int
    purifier: object  # Purifier, ImprovedPurifier, ScnPurifier or FixedPurifier
    class_names: tuple[str, ...]
    seconds: float
    model: torch.nn.Module | None = None  # the final model (not the best one)


# modes that decide the training set before training instead of learning it
PROCEDURES = ("cleanlab", "oracle")
CLEANLAB_OPTIONS = ("folds", "fold_epochs", "filter_by")


def validate_config(cfg: RunConfig) -> None:
    """Refuse a config that makes no sense before anything starts (ValueError, with the reason)."""
    from d2sp.data.registry import list_datasets
    from d2sp.models import list_backbones
    from d2sp.purify.factory import PURIFIERS

    p, o = cfg.purify, cfg.optim
    problems = []
    if cfg.model.name not in list_backbones():
        problems.append(
            f"model.name: unknown backbone {cfg.model.name!r}; known: {', '.join(list_backbones())}"
        )
    datasets = ["synthdfer", *list_datasets()]
    if cfg.data.dataset not in datasets:
        problems.append(
            f"data.dataset: unknown dataset {cfg.data.dataset!r}; known: {', '.join(datasets)}"
        )
    modes = (*PURIFIERS, *PROCEDURES)
    if p.mode not in modes:
        problems.append(f"purify.mode: expected one of {', '.join(modes)}, got {p.mode!r}")
    if p.mode == "oracle" and cfg.data.dataset != "synthdfer":
        problems.append(
            "purify.mode: oracle trains on the ground truth, which only synthdfer has; "
            f"got data.dataset {cfg.data.dataset!r}"
        )
    if p.mode in ("scn", *PROCEDURES):
        set_here = [k for k in ("lam", "tau", "t") if getattr(p, k) is not None]
        if set_here:
            problems.append(
                f"purify.{'/'.join(set_here)}: mode {p.mode} has no such threshold; leave it "
                "empty (null)" + (" and set purify.options instead" if p.mode == "scn" else "")
            )
    if p.mode in PROCEDURES:
        allowed = CLEANLAB_OPTIONS if p.mode == "cleanlab" else ()
        unknown = sorted(set(p.options) - set(allowed))
        if unknown:
            problems.append(
                f"purify.options: {p.mode} takes {', '.join(allowed) or 'no options'}, "
                f"got {', '.join(unknown)}"
            )
        folds = p.options.get("folds", 4)
        if p.mode == "cleanlab" and (not isinstance(folds, int) or folds < 2):
            problems.append(f"purify.options.folds: expected an integer >= 2, got {folds!r}")
    if p.lam is not None and not 0.0 <= p.lam <= 1.0:
        problems.append(f"purify.lam: expected a value in [0, 1], got {p.lam}")
    if p.tau is not None and not -1.0 <= p.tau <= 1.0:
        problems.append(f"purify.tau: expected a value in [-1, 1], got {p.tau}")
    if p.t is not None and p.t < 1:
        problems.append(f"purify.t: expected an integer >= 1, got {p.t}")
    if (p.cgp or p.fgc) and o.epochs > 0 and p.mode not in PROCEDURES:
        t = p.t if p.t is not None else 2
        if p.warmup_epochs >= o.epochs:
            problems.append(
                f"purify.warmup_epochs ({p.warmup_epochs}) >= optim.epochs ({o.epochs}): "
                "no purification decision would ever be taken"
            )
        elif t > o.epochs:
            problems.append(f"purify.t ({t}) > optim.epochs ({o.epochs}): no window ever fills")
    if o.epochs < 0 or o.batch_size < 1 or o.lr <= 0:
        problems.append(
            f"optim: expected epochs >= 0, batch_size >= 1 and lr > 0, got "
            f"{o.epochs}, {o.batch_size}, {o.lr}"
        )
    if cfg.data.num_frames < 1 or cfg.data.size < 8:
        problems.append(
            f"data: expected num_frames >= 1 and size >= 8, got {cfg.data.num_frames}, "
            f"{cfg.data.size}"
        )
    if problems:
        raise ValueError("config refused:\n  " + "\n  ".join(problems))


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(name: str, info: DistInfo = SINGLE) -> torch.device:
    """The device for a config's ``device`` (``cuda:LOCAL_RANK`` for a process of a CUDA run
    of several)."""
    return process_device(name, info)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _loader(
    dataset,
    indices,
    *,
    batch_size,
    shuffle,
    seed,
    workers,
    drop_last=False,
    info: DistInfo = SINGLE,
    pad_empty=False,
):
    """This process's batches over ``dataset`` (or its ``indices``): its share of global
    batches of ``batch_size`` in one seeded order (:class:`ShardedBatchSampler`)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(dataset) if indices is None else len(indices)
    batches = ShardedBatchSampler(
        n,
        batch_size,
        rank=info.rank,
        world_size=info.world_size,
        shuffle=shuffle,
        generator=gen,
        drop_last=drop_last,
        pad_empty=pad_empty,
    )
    return DataLoader(
        Subset(dataset, indices.tolist()) if indices is not None else dataset,
        batch_sampler=batches,
        generator=gen,  # the loader draws its worker seed from it before the first batch
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
    )


def _lr_lambda(cfg, steps_per_epoch: int):
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


def _inputs(clips: torch.Tensor, model, device) -> torch.Tensor:
    """uint8 clips of a batch -> normalised clips ``(B, T, C, H, W)`` in the model's dtype."""
    dtype = next(model.parameters()).dtype
    return normalize_clips(clips.to(device, non_blocking=True), dtype)  # (B, T, C, H, W)


@torch.no_grad()
def evaluate(model, loader, device, autocast) -> tuple[np.ndarray, torch.Tensor]:
    """Confusion matrix ``(K, K)`` and predictions ``(M,)`` over a loader (eval mode).

    In a distributed run the matrix is summed over the processes (each evaluates its share
    of the loader's samples); the predictions are this process's.
    """
    model.eval()
    num_classes = model.head.fc.out_features
    preds, targets = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    for clips, labels, _ in loader:
        with autocast():
            logits, _ = model(_inputs(clips, model, device))  # (B, K)
        preds.append(logits.argmax(1).cpu())
        targets.append(labels)
    preds_t, targets_t = torch.cat(preds), torch.cat(targets)
    cm = confusion_matrix(preds_t, targets_t, num_classes)  # (K, K)
    if current_info().enabled:
        cm = all_reduce_sum(torch.from_numpy(cm)).numpy()
    return cm, preds_t


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    console: Console | None = None,
    subset: np.ndarray | None = None,
) -> RunResult:
    """Train one run as configured; returns its :class:`RunResult`.

    With ``resume=True`` the run continues from ``run_dir/last.pt`` (model, optimizer,
    scheduler, purifier, ledger, RNG state, epoch) and ends as the uninterrupted run would.

    ``purify.mode`` ``cleanlab`` first trains ``folds`` plain models on the other folds
    (run folders under ``run_dir/cleanlab/``), drops the label issues that their
    out-of-sample probabilities reveal and trains a plain model on the rest; ``oracle``
    trains a plain model on the ground truth (synthdfer) without its low-quality clips.
    ``subset`` (``(N,)`` bool) trains a plain model on those training samples only.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this with the same config:
    the process group is opened here (and closed on the way out), each process trains its
    share of every global batch of ``optim.batch_size``, and only rank 0 writes the run
    folder and prints; every process returns the same result.
    """
    console = console or Console()
    validate_config(cfg)
    info = launch_info()
    check_batch_size(cfg.optim.batch_size, info.world_size)
    device = resolve_device(cfg.device, info)
    with distributed_session(device, info):
        if not info.is_main:
            console, progress = Console(quiet=True), False
        return _train(cfg, info, device, run_dir, resume, progress, console, subset)


def _train(cfg, info, device, run_dir, resume, progress, console, subset) -> RunResult:
    """The body of :func:`train`, on one process of ``info``'s world."""
    start = time.perf_counter()
    seed_everything(cfg.seed)
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    main = info.is_main

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext()

    with main_process_first():  # a dataset generated or cached once, by rank 0
        train_split = load_split(cfg.data, "train", progress=main)
        test_split = load_split(cfg.data, "test", progress=main)
    class_names = tuple(train_split.class_names)
    num_classes = len(class_names)
    common = dict(num_frames=cfg.data.num_frames, size=cfg.data.size, seed=cfg.seed)
    train_ds = ClipDataset(
        train_split.samples,
        train=True,
        crop_scale=cfg.data.crop_scale,
        source=train_split.source,
        output="uint8",
        **common,
    )
    test_ds = ClipDataset(
        test_split.samples, train=False, source=test_split.source, output="uint8", **common
    )
    rescore_ds = ClipDataset(  # un-augmented views of the training clips
        train_split.samples, train=False, source=train_split.source, output="uint8", **common
    )
    if progress:
        for split in (train_split, test_split):
            counts = ", ".join(f"{k} {v}" for k, v in class_counts(split).items())
            console.print(f"[dim]{split.split}: {len(split.samples)} clips ({counts})[/]")
            for line in split.skipped:
                console.print(f"[yellow]skipped[/] {line}")

    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.out_dir) / cfg.name
    metrics_path = run_dir / "metrics.jsonl"
    ckpt_path = run_dir / "last.pt"
    # a kill between moving last.pt to prev.pt and writing the new last.pt leaves only prev.pt
    resume_from = next((p for p in (ckpt_path, run_dir / "prev.pt") if p.is_file()), None)
    resume = resume and resume_from is not None
    resume, resume_from = broadcast_object((resume, resume_from))  # rank 0's view of the folder
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        if not resume:
            metrics_path.write_text("")
        counts = {"train": class_counts(train_split), "test": class_counts(test_split)}
        (run_dir / "class_counts.json").write_text(json.dumps(counts, indent=1))
        if train_split.skipped or test_split.skipped:
            (run_dir / "skipped.txt").write_text(
                "\n".join(train_split.skipped + test_split.skipped) + "\n"
            )

    selection = None  # (keep (N,) bool, targets (N,) or None) fixed before training
    if subset is not None:
        selection = (np.asarray(subset, dtype=bool), None)
    elif cfg.purify.mode == "oracle":
        selection = _oracle_selection(train_split)
    elif cfg.purify.mode == "cleanlab":
        selection = _cleanlab_selection(
            cfg, train_ds, rescore_ds, num_classes, run_dir, device, autocast, progress, console
        )
    purifying = (cfg.purify.cgp or cfg.purify.fgc) and selection is None
    weight_hidden = cfg.model.weight_hidden
    if weight_hidden is None and cfg.purify.mode == "scn":
        weight_hidden = 0  # one linear layer, as in Self-Cure
    model = create_model(
        cfg.model.name,
        num_classes=num_classes,
        weight_branch=purifying,
        weight_hidden=weight_hidden,
        dropout=cfg.model.dropout,
        pretrained=cfg.model.pretrained,
        **cfg.model.options,
    ).to(device)
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if selection is None:
        purifier = build_purifier(cfg, train_ds.labels, num_classes, device)
    else:
        keep, targets = selection
        purifier = FixedPurifier(
            train_ds.labels, num_classes=num_classes, keep=keep, targets=targets, device=device
        )
    hooks = training_hooks(purifier, model)  # (an EMA teacher copies the bare model)
    net = model  # what the training step calls: the model, or its DDP wrapper
    if info.enabled:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
    )
    steps_per_epoch = max(1, len(train_ds) // cfg.optim.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps_per_epoch))
    test_loader = _loader(
        test_ds,
        None,
        batch_size=cfg.optim.batch_size,
        shuffle=False,
        seed=cfg.seed,
        workers=cfg.data.workers,
        info=info,
    )

    best = {"war": -1.0, "uar": 0.0, "epoch": 0}
    war = uar = 0.0
    start_epoch = 0
    if resume:
        start_epoch, best, war, uar = _restore(
            resume_from, model, optimizer, scheduler, purifier, hooks, metrics_path, run_dir, main
        )
        console.print(f"resuming {run_dir} after epoch {start_epoch}")
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
        disable=not progress,
    )
    with bar:
        for epoch in range(start_epoch, cfg.optim.epochs):
            t0 = time.perf_counter()
            train_ds.set_epoch(epoch)
            kept = purifier.kept_indices()
            if len(kept) == 0:
                console.print(
                    f"[bold yellow]warning:[/] epoch {epoch + 1}: every sample is pruned; "
                    "this epoch only re-scores them (lower purify.lam?)"
                )
            loader = (
                _loader(
                    train_ds,
                    kept,
                    batch_size=cfg.optim.batch_size,
                    shuffle=True,
                    seed=cfg.seed * 1000 + epoch,
                    workers=cfg.data.workers,
                    drop_last=len(kept) > cfg.optim.batch_size,
                    info=info,
                    pad_empty=True,  # every process takes part in every step
                )
                if len(kept)
                else []
            )
            task = bar.add_task(
                f"{cfg.name} epoch {epoch + 1}/{cfg.optim.epochs}", total=len(loader), info=""
            )
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            first_bad = torch.full((), -1, dtype=torch.long, device=device)
            seen = 0
            for step, (clips, _, idx) in enumerate(loader):
                mine, total = loader.batch_sampler.share_sizes(step)  # samples here, in all
                clips = _inputs(clips, model, device)  # (B, T, C, H, W)
                labels = purifier.labels_for(idx).to(device, non_blocking=True)  # (B,)
                with autocast():
                    logits, w = net(clips)  # (B, K), (B,) or None
                if purifying:
                    loss = weighted_cross_entropy(
                        logits, w, labels, label_smoothing=cfg.optim.label_smoothing
                    )
                    loss = loss + hooks.extra_loss(w)
                else:
                    loss = F.cross_entropy(
                        logits.float(), labels, label_smoothing=cfg.optim.label_smoothing
                    )
                # first non-finite batch, tracked on the device (no sync per step)
                bad = ~torch.isfinite(loss.detach()) & (first_bad < 0)
                first_bad = torch.where(bad, torch.full_like(first_bad, step), first_bad)
                optimizer.zero_grad(set_to_none=True)
                if info.enabled:
                    # DDP averages the processes' gradients: weight each share's mean loss by
                    # its size so that the result is the gradient of the whole batch's mean
                    (loss * (mine * info.world_size / total)).backward()
                else:
                    loss.backward()
                optimizer.step()
                scheduler.step()
                hooks.after_step()
                if mine:  # not a stand-in for an empty share
                    purifier.record(idx, logits.detach(), None if w is None else w.detach())
                    loss_sum += loss.detach() * len(idx)
                    correct += (logits.detach().argmax(1) == labels).sum()
                    seen += len(idx)
                bar.update(task, advance=1)
            if info.enabled:
                never = torch.full_like(first_bad, 2**62)
                first_bad = all_reduce_min(torch.where(first_bad < 0, never, first_bad))
                first_bad = torch.where(first_bad == never, -1, first_bad)
                loss_sum, correct = all_reduce_sum(loss_sum), all_reduce_sum(correct)
                seen = int(all_reduce_sum(torch.tensor(seen, device=device)))
            if int(first_bad) >= 0:
                raise NonFiniteLossError(
                    f"loss became NaN or infinite at epoch {epoch + 1}, batch "
                    f"{int(first_bad) + 1}: stopped; the last good checkpoint is "
                    f"{run_dir / 'last.pt'} (lower optim.lr?)"
                )
            if info.enabled:  # the replicas must agree before they score anything
                teacher = () if hooks.teacher is None else (hooks.teacher.model,)
                for m in (model, *teacher):
                    broadcast_buffers(m)  # per-process batch statistics -> rank 0's
                check_replicas(model, *teacher, what="model and teacher")
            rescore = hooks.rescore_indices() if cfg.purify.revisit_pruned and purifying else []
            if purifying and len(rescore):
                view = train_ds if cfg.purify.mode == "paper" else rescore_ds
                _rescore(hooks, view, rescore, purifier, cfg, device, autocast, info)
            if info.enabled:
                purifier.combine_staged(all_reduce_sum)
            summary = purifier.end_epoch()
            if info.enabled:  # the next epoch's steps must be the same on every process
                decided = torch.cat([purifier.keep_mask.long(), purifier.current_labels])  # (2N,)
                check_same(decided, "the kept samples and their labels")
            _guard_purification(purifier, class_names, cfg, epoch, console)
            cm, _ = evaluate(model, test_loader, device, autocast)
            war, uar = war_uar(cm)
            bar.remove_task(task)
            row = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                "loss": float(loss_sum) / max(1, seen),
                "train_acc": float(correct) / max(1, seen),
                "trained": seen,
                "war": war,
                "uar": uar,
                **summary,
                "seconds": time.perf_counter() - t0,
                "confusion": cm.tolist(),
            }
            improved = war > best["war"]
            if improved:
                best = {"war": war, "uar": uar, "epoch": epoch + 1}
            if main:
                _save_epoch(
                    row, cfg, class_names, run_dir, model, optimizer, scheduler, purifier,
                    hooks, best, improved,
                )  # fmt: skip
            if progress:
                console.print(
                    f"[dim]{cfg.name}[/] epoch {epoch + 1:>3}/{cfg.optim.epochs}  "
                    f"loss {row['loss']:.3f}  WAR {100 * war:5.1f}  UAR {100 * uar:5.1f}  "
                    f"trained {seen}  pruned {summary['pruned']}  corrected {summary['corrected']}"
                    f"  ({row['seconds']:.1f}s)"
                )
    final = purifier.ledger.final_counts() if purifier.ledger is not None else {}
    seconds = time.perf_counter() - start
    result = RunResult(
        run_dir=run_dir,
        war=war,
        uar=uar,
        best_war=best["war"],
        best_uar=best["uar"],
        best_epoch=best["epoch"],
        pruned=final.get("pruned", 0),
        corrected=final.get("corrected", 0),
        purifier=purifier,
        class_names=class_names,
        seconds=seconds,
        model=model,
    )
    if main:
        (run_dir / "summary.json").write_text(
            json.dumps(
                {
                    "war": war,
                    "uar": uar,
                    "best_war": best["war"],
                    "best_uar": best["uar"],
                    "best_epoch": best["epoch"],
                    "pruned": result.pruned,
                    "corrected": result.corrected,
                    "train_samples": len(train_ds),
                    "test_samples": len(test_ds),
                    "skipped": len(train_split.skipped) + len(test_split.skipped),
                    "seconds": seconds,
                },
                indent=1,
            )
        )
    return result


def _save_epoch(
    row, cfg, class_names, run_dir, model, optimizer, scheduler, purifier, hooks, best, improved
) -> None:
    """Append the epoch's metrics, save the ledger, ``best.pt`` (if ``improved``) and
    ``last.pt`` (the previous one kept as ``prev.pt``)."""
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    if purifier.ledger is not None:
        purifier.ledger.save(run_dir / "ledger.npz")
    ckpt = {
        "model": model.state_dict(),
        "config": config_to_dict(cfg),
        "class_names": list(class_names),
        "epoch": row["epoch"],
        "metrics": {"war": row["war"], "uar": row["uar"]},
    }
    if improved:
        _save_atomic(ckpt, run_dir / "best.pt")
    ckpt.update(
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        purifier=purifier.state_dict(),
        hooks=_hooks_state(hooks),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        best=best,
    )
    ckpt_path = run_dir / "last.pt"
    if ckpt_path.is_file():  # keep the previous one too
        os.replace(ckpt_path, run_dir / "prev.pt")
    _save_atomic(ckpt, ckpt_path)


class PurificationGuardError(RuntimeError):
    """Purification removed more than the config allows and ``stop_on_overprune`` is set."""


def _guard_purification(purifier, class_names, cfg, epoch, console) -> None:
    """Warn (or stop) when a class is pruned away or too much of the data is pruned."""
    keep = purifier.keep_mask.numpy()
    labels = purifier.labels.numpy()
    problems = []
    share = 1.0 - keep.mean()
    if share > cfg.purify.max_prune_fraction:
        problems.append(
            f"{100 * share:.1f}% of the training samples are pruned "
            f"(purify.max_prune_fraction = {cfg.purify.max_prune_fraction})"
        )
    emptied = [class_names[k] for k in np.unique(labels) if not keep[labels == k].any()]
    if emptied:
        problems.append(f"every sample of class {', '.join(emptied)} is pruned")
    if not problems:
        return
    message = f"epoch {epoch + 1}: " + "; ".join(problems)
    if cfg.purify.stop_on_overprune:
        raise PurificationGuardError(message + " (stopping: purify.stop_on_overprune)")
    console.print(f"[bold yellow]warning:[/] {message}")


def _hooks_state(hooks) -> dict:
    return {
        "hooks": hooks.state_dict(),
        "epoch_seen": hooks._epoch_seen,
        "steps_this_epoch": hooks._steps_this_epoch,
    }


def _restore(
    ckpt_path, model, optimizer, scheduler, purifier, hooks, metrics_path, run_dir, main=True
):
    """Load ``last.pt`` into the run's objects; returns (epoch, best, war, uar). The main
    process also drops the metrics rows written after the checkpoint."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    epoch = int(ckpt["epoch"])
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    purifier.load_state_dict(ckpt["purifier"])
    hooks.load_state_dict(ckpt["hooks"]["hooks"])
    hooks._epoch_seen = ckpt["hooks"]["epoch_seen"]
    hooks._steps_this_epoch = ckpt["hooks"]["steps_this_epoch"]
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    if purifier.ledger is not None and (run_dir / "ledger.npz").is_file():
        ledger = Ledger.load(run_dir / "ledger.npz")
        ledger.rows = {k: v[:epoch] for k, v in ledger.rows.items()}  # drop rows after ckpt
        purifier.ledger = ledger
    if main:
        lines = metrics_path.read_text().splitlines()[:epoch]
        metrics_path.write_text("".join(line + "\n" for line in lines))
    return epoch, dict(ckpt["best"]), ckpt["metrics"]["war"], ckpt["metrics"]["uar"]


def build_purifier(cfg: RunConfig, labels, num_classes: int, device):
    """The purifier a run config asks for (``purify.mode``), on ``device``."""
    p = cfg.purify
    options = dict(warmup_epochs=p.warmup_epochs, cgp=p.cgp, fgc=p.fgc, device=device, **p.options)
    options.update({k: getattr(p, k) for k in ("lam", "tau", "t") if getattr(p, k) is not None})
    if p.mode == "paper":
        options["score"] = p.score
    return create_purifier(p.mode, labels, num_classes=num_classes, **options)


@torch.no_grad()
def _rescore(hooks, dataset, indices, purifier, cfg, device, autocast, info=SINGLE) -> None:
    """Score samples without gradient (pruned ones, or all for a teacher) for the purifier;
    each process scores its share of ``indices``."""
    loader = _loader(
        dataset,
        np.asarray(indices),
        batch_size=cfg.optim.batch_size,
        shuffle=False,
        seed=cfg.seed,
        workers=cfg.data.workers,
        info=info,
    )
    for clips, _, idx in loader:
        clips = _inputs(clips, hooks.model, device)  # (B, T, C, H, W)
        with autocast():
            logits, w = hooks.scorer(clips)  # (B, K), (B,)
        hooks.record_rescored(idx, logits, w)


def _oracle_selection(train_split) -> tuple[np.ndarray, np.ndarray]:
    """SynthDFER's ground truth: keep the usable clips, train on their true labels."""
    from d2sp.data.synth import load_ground_truth

    gt = load_ground_truth(train_split.root, split="train")
    if len(gt["true_label"]) != len(train_split.samples):
        raise ValueError(
            f"{train_split.root}: ground truth has {len(gt['true_label'])} rows for "
            f"{len(train_split.samples)} training clips"
        )
    return ~np.asarray(gt["low_quality"], dtype=bool), np.asarray(gt["true_label"])


def _cleanlab_selection(
    cfg, train_ds, rescore_ds, num_classes, run_dir, device, autocast, progress, console
):
    """Confident learning: K-fold out-of-sample probabilities -> label issues -> keep the rest.

    Each fold model is a plain run (folder ``run_dir/cleanlab/fold<k>``), resumable; its
    probabilities on its held-out fold are saved beside it, so a resumed run skips it. In a
    distributed run every process trains the folds together and rank 0 decides the issues.
    """
    import copy

    opts = cfg.purify.options
    folds = int(opts.get("folds", 4))
    labels = np.asarray(train_ds.labels)
    fold_of = stratified_folds(labels, folds=folds, seed=cfg.seed)  # (N,)
    probs = np.zeros((len(labels), num_classes), dtype=np.float64)  # (N, K)
    cv_dir = run_dir / "cleanlab"
    main = current_info().is_main
    for k in range(folds):
        out = cv_dir / f"fold{k}"
        saved = out / "heldout_probs.npy"
        held = np.flatnonzero(fold_of == k)
        if broadcast_object(saved.is_file() and (out / "summary.json").is_file()):
            fold_probs = np.load(saved)
        else:
            fold_cfg = copy.deepcopy(cfg)
            fold_cfg.name = f"{cfg.name}-cleanlab-fold{k}"
            fold_cfg.seed = cfg.seed * 100 + k
            fold_cfg.optim.epochs = int(opts.get("fold_epochs", cfg.optim.epochs))
            fold_cfg.purify.mode, fold_cfg.purify.cgp, fold_cfg.purify.fgc = "paper", False, False
            fold_cfg.purify.options = {}
            if progress:
                console.print(f"[bold]cleanlab[/]: fold {k + 1}/{folds} ({len(held)} held out)")
            result = train(
                fold_cfg,
                run_dir=out,
                resume=(out / "last.pt").is_file() or (out / "prev.pt").is_file(),
                progress=progress,
                console=console,
                subset=fold_of != k,
            )
            fold_probs = _predict_probs(result.model, rescore_ds, held, cfg, device, autocast)
            if main:
                np.save(saved, fold_probs)
        probs[held] = fold_probs
    issues = None
    if main:  # the same training set on every process: rank 0's
        issues = cleanlab_label_issues(
            labels, probs, filter_by=opts.get("filter_by", "prune_by_noise_rate")
        )
        np.save(cv_dir / "out_of_sample_probs.npy", probs.astype(np.float32))
        np.save(cv_dir / "label_issues.npy", issues)
    issues = broadcast_object(issues)
    if progress:
        console.print(f"[bold]cleanlab[/]: {int(issues.sum())} label issues dropped")
    return ~issues, None


@torch.no_grad()
def _predict_probs(model, dataset, indices, cfg, device, autocast) -> np.ndarray:
    """``(len(indices), K)`` softmax of ``model`` (eval mode) on these samples (each process
    predicts its share; every process gets them all)."""
    model.eval()
    info = current_info()
    indices = np.asarray(indices)
    loader = _loader(
        dataset,
        indices,
        batch_size=cfg.optim.batch_size,
        shuffle=False,
        seed=cfg.seed,
        workers=cfg.data.workers,
        info=info,
    )
    row_of = {int(i): r for r, i in enumerate(indices)}  # dataset index -> output row
    out = torch.zeros(len(indices), model.head.fc.out_features, dtype=torch.float64)  # (M, K)
    for clips, _, idx in loader:
        with autocast():
            logits, _ = model(_inputs(clips, model, device))  # (B, K)
        rows = torch.tensor([row_of[int(i)] for i in idx])  # (B,)
        out[rows] = torch.softmax(logits.float(), dim=1).cpu().double()  # (B, K)
    if info.enabled:  # each row was predicted by exactly one process
        out = all_reduce_sum(out)
    return out.numpy()
