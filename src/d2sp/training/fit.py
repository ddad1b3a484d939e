"""The trainer: one run of backbone + head + purifier, with a run folder.

The run folder holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON
object per epoch), ``ledger.npz`` (every sample's record and state per epoch),
``last.pt`` and ``best.pt`` checkpoints (each with the config) and ``summary.json``.

Started by ``torchrun`` (``WORLD_SIZE > 1``), one run trains on every process with
DistributedDataParallel: ``optim.batch_size`` stays the global batch, each process trains
and records its share of every batch, the purifier's records are combined at the end of
each epoch so that every process takes the same decisions (:mod:`d2sp.training.replicas`),
and only rank 0 writes files and prints.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from d2sp.config import PurifyConfig, RunConfig, resolve_workers
from d2sp.training.build import Run, build_run
from d2sp.training.callbacks import (
    Callback,
    ConsoleLines,
    ProgressBar,
    PurificationGuard,
    RunFolderWriter,
)
from d2sp.training.checkpoint import restore_checkpoint, resume_source
from d2sp.training.checks import RunInterrupted, check_processes, validate_config
from d2sp.training.distributed import (
    broadcast_object,
    check_batch_size,
    distributed_session,
    launch_info,
    process_device,
)
from d2sp.training.epoch import rescore, train_epoch
from d2sp.training.folder import check_run_folder, remove_run_files, stopped_before_first_epoch
from d2sp.training.inference import evaluate_loader, heldout_probabilities
from d2sp.training.loaders import make_loader, seed_everything
from d2sp.training.metrics import war_uar
from d2sp.training.replicas import align_replicas, check_decisions, records_reduce


@dataclass
class RunResult:
    """What a finished run reports; the same figures are in ``summary.json``."""

    run_dir: Path
    war: float | None  # None (and best_war, best_uar) when no epoch ran (optim.epochs=0)
    uar: float | None
    best_war: float | None
    best_uar: float | None
    best_epoch: int
    pruned: int
    corrected: int
    purifier: object  # the run's Purifier
    class_names: tuple[str, ...]
    seconds: float
    model: torch.nn.Module | None = None  # the final model (not the best one)
    heldout_probs: np.ndarray | None = None  # (M, K) with train(heldout=...)
    skipped: int = 0  # rows skipped as bad (load time and during training), each once


def train(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    console: Console | None = None,
    subset: np.ndarray | None = None,
    heldout: np.ndarray | None = None,
    verbose: bool | None = None,
) -> RunResult:
    """Train one run as configured into ``run_dir`` (default ``out_dir/name``); returns its
    :class:`RunResult`.

    A folder that already holds a run (config, metrics, checkpoints) is refused
    (:class:`~d2sp.training.folder.RunExistsError`) unless ``resume=True`` or
    ``overwrite=True`` (which first removes that run's files, nothing else in the folder);
    a run that stopped before finishing its first epoch is started again (its files
    removed, a mode's own resumable folder kept).
    With ``resume=True`` the run continues from ``run_dir/last.pt`` (model, optimizer,
    scheduler, purifier, ledger, RNG state, epoch) and ends as the uninterrupted run would
    (a fresh start when there is no checkpoint yet); its saved config may differ only in
    ``optim.epochs``, and more epochs than planned extend the run (said on the console,
    recorded in ``summary.json`` as ``extended`` and in the first extended epoch's metrics
    as ``extended_from``).
    A mode that decides its training set before training (``cleanlab``, ``oracle``) does so
    first (:meth:`d2sp.purify.Purifier.select`). ``subset`` (``(N,)`` bool) trains a plain
    model on those training samples only, and ``heldout`` (``(M,)`` indices) then also
    returns its probabilities on those samples (cross-validation).

    ``progress`` shows progress bars; ``verbose`` (default: ``progress``) prints the split
    sizes and one line per epoch. An interrupt (Ctrl-C) raises
    :class:`~d2sp.training.checks.RunInterrupted` (a ``KeyboardInterrupt``) saying where the
    run stopped and the command that continues it.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this with the same config:
    the process group is opened here (and closed on the way out), each process trains its
    share of every global batch of ``optim.batch_size``, and only rank 0 writes the run
    folder and prints; every process returns the same result.
    """
    console = console or Console()
    validate_config(cfg)
    info = launch_info()
    check_processes(cfg, info.world_size)
    check_batch_size(cfg.optim.batch_size, info.world_size)
    device = process_device(cfg.device, info)
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.out_dir) / cfg.name
    check_run_folder(cfg, run_dir, resume=resume, overwrite=overwrite)
    verbose = progress if verbose is None else verbose
    restart = not (resume or overwrite) and stopped_before_first_epoch(run_dir)
    if (overwrite or restart) and info.is_main:
        removed = remove_run_files(run_dir, own_folders=overwrite)
        what = "overwriting the run" if overwrite else (
            "starting again the run that stopped before its first epoch"
        )  # fmt: skip
        if removed and (progress or verbose):
            console.print(f"{what} in {run_dir}: removed {', '.join(removed)}", soft_wrap=True)
    with distributed_session(device, info):
        if not info.is_main:
            console, progress, verbose = Console(quiet=True), False, False
        try:
            return _train(
                cfg, info, device, run_dir, resume, (progress, verbose), console, subset, heldout
            )
        except KeyboardInterrupt as e:  # before training, or in a run this one started
            if isinstance(e, RunInterrupted) and e.run_dir == run_dir:
                raise
            raise RunInterrupted(run_dir, epoch=None, saved=0, epochs=cfg.optim.epochs) from None


def _train(cfg, info, device, run_dir, resume, shown, console, subset, heldout) -> RunResult:
    """The body of :func:`train`, on one process of ``info``'s world; ``shown`` is
    ``(progress bars, epoch lines)``."""
    progress, verbose = shown
    start = time.perf_counter()
    seed_everything(cfg.seed)
    source = resume_source(run_dir) if resume else None
    source = broadcast_object(source)  # rank 0's view of the folder
    extra = None if subset is None else {"keep": np.asarray(subset, dtype=bool)}
    run = build_run(
        cfg, info, device, run_dir, console, progress=progress,
        heldout_probs=_cross_validation(cfg, progress, console), extra_options=extra,
    )  # fmt: skip
    best, last, start_epoch = {"war": -1.0, "uar": 0.0, "epoch": 0}, {"war": 0.0, "uar": 0.0}, 0
    if source is not None:
        start_epoch, best, last = restore_checkpoint(run, source)
        _note_extension(run, start_epoch)
    bar = ProgressBar(run, progress)
    callbacks: list[Callback] = [bar, ConsoleLines(verbose), PurificationGuard()]
    if info.is_main:
        callbacks.append(RunFolderWriter())
    run.extras["saved_epoch"] = start_epoch
    try:
        last, best = fit(run, callbacks, start_epoch, best, last)
    except KeyboardInterrupt:
        raise RunInterrupted(
            run_dir, epoch=run.extras.get("epoch"), saved=run.extras["saved_epoch"],
            epochs=cfg.optim.epochs,
        ) from None  # fmt: skip
    finally:
        bar.stop()
        run.loaders.close()
    return _finish(run, callbacks, last, best, time.perf_counter() - start, heldout)


def fit(run: Run, callbacks: list[Callback], start_epoch: int, best: dict, last: dict):
    """The epochs of a run from ``start_epoch``; returns ``(last epoch's metrics, best)``.

    The next epoch's training batches are planned, and their first ones read, once this
    epoch's decision is taken (during its test pass; see :mod:`d2sp.training.passes`)."""
    cfg, purifier = run.cfg, run.purifier
    for cb in callbacks:
        cb.on_run_start(run, start_epoch)
    for epoch in range(start_epoch, cfg.optim.epochs):
        t0 = time.perf_counter()
        run.extras["epoch"] = epoch + 1
        run.train_ds.set_epoch(epoch)
        run.bad_clips.epoch = epoch
        loader = run.loaders.train(epoch, run.bad_clips.keep("train", purifier.train_indices()))
        for cb in callbacks:
            cb.on_epoch_start(run, epoch, len(loader))
        stats = train_epoch(run, epoch, loader, lambda: [cb.on_step() for cb in callbacks])
        sync_bad_clips(run, callbacks)
        align_replicas(run.model, purifier.modules())
        rescore(run)
        sync_bad_clips(run, callbacks)
        counts = purifier.end_epoch(reduce=records_reduce())
        check_decisions(purifier.keep_mask, purifier.current_labels)
        for cb in callbacks:
            cb.on_decision(run, epoch, counts)
        if epoch + 1 < cfg.optim.epochs:
            run.loaders.prefetch(epoch + 1, run.bad_clips.keep("train", purifier.train_indices()))
        cm, _ = evaluate_loader(run.model, run.loaders.test(), run.device, run.autocast)
        sync_bad_clips(run, callbacks)
        war, uar = war_uar(cm)
        last = {
            "epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"], "loss": stats.loss,
            "train_acc": stats.train_acc, "trained": stats.trained, "war": war, "uar": uar,
            **counts, "seconds": time.perf_counter() - t0, "confusion": cm.tolist(),
        }  # fmt: skip
        if epoch == start_epoch and "extended_from" in run.extras:
            last["extended_from"] = run.extras["extended_from"]
        improved = war > best["war"]
        if improved:
            best = {"war": war, "uar": uar, "epoch": epoch + 1}
        for cb in callbacks:
            cb.on_epoch_end(run, last, best, improved)
    return last, best


def sync_bad_clips(run: Run, callbacks: list[Callback]) -> None:
    """Skip the clips every process met unreadable since the last call (or stop with the
    first one, without ``data.skip_bad``) and tell the callbacks; later passes leave them
    out (:class:`~d2sp.training.passes.RunLoaders`)."""
    lines = run.bad_clips.sync()
    for cb in callbacks if lines else []:
        cb.on_skipped(run, lines)


def _finish(run: Run, callbacks, last: dict, best: dict, seconds: float, heldout) -> RunResult:
    final = run.purifier.ledger.final_counts() if run.purifier.ledger is not None else {}
    if best["epoch"] == 0:  # no epoch ran (optim.epochs=0): no figure to report
        last, best = {"war": None, "uar": None}, {"war": None, "uar": None, "epoch": 0}
    summary = {
        "war": last["war"], "uar": last["uar"], "best_war": best["war"], "best_uar": best["uar"],
        "best_epoch": best["epoch"], "pruned": final.get("pruned", 0),
        "corrected": final.get("corrected", 0), "train_samples": len(run.train_ds),
        "test_samples": len(run.test_ds), "skipped": len(run.skipped),
        "skipped_during_training": len(run.bad_clips.lines), "notes": list(run.notes),
        "seconds": seconds,
    }  # fmt: skip
    if run.extras.get("extended"):
        summary["extended"] = run.extras["extended"]
    for cb in callbacks:
        cb.on_run_end(run, summary)
    probs = None if heldout is None else _predict_heldout(run, np.asarray(heldout))
    return RunResult(
        run_dir=run.run_dir, war=last["war"], uar=last["uar"], best_war=best["war"],
        best_uar=best["uar"], best_epoch=best["epoch"], pruned=summary["pruned"],
        corrected=summary["corrected"], purifier=run.purifier, class_names=run.class_names,
        seconds=seconds, model=run.model, heldout_probs=probs, skipped=summary["skipped"],
    )  # fmt: skip


def _note_extension(run: Run, start_epoch: int) -> None:
    """A resume with more epochs than its checkpoint was planned for extends the run: say
    so, and keep the record (``run.extras``: ``extended`` goes into the checkpoints and
    ``summary.json``, ``extended_from`` into the next epoch's metrics)."""
    planned, epochs = run.extras.get("planned_epochs"), run.cfg.optim.epochs
    if planned is None or epochs <= planned:
        return
    run.extras["extended"].append(
        {"from_epochs": planned, "to_epochs": epochs, "after_epoch": start_epoch}
    )
    run.extras["extended_from"] = planned
    run.console.print(
        f"extending the run {run.run_dir} from {planned} to {epochs} epochs (after epoch "
        f"{start_epoch}; the LR schedule now runs to epoch {epochs})"
    )


def _predict_heldout(run: Run, heldout: np.ndarray) -> np.ndarray:
    """``(M, K)`` softmax of the final model on un-augmented views of ``heldout`` samples."""
    loader = make_loader(
        run.eval_train_ds, heldout, batch_size=run.cfg.optim.batch_size, shuffle=False,
        seed=run.cfg.seed, workers=resolve_workers(run.cfg.data.workers), info=run.info,
        on_failed=run.bad_clips.handler("train"),
    )  # fmt: skip
    row_of = {int(i): r for r, i in enumerate(heldout)}
    return heldout_probabilities(run.model, loader, len(heldout), row_of, run.device, run.autocast)


def _cross_validation(cfg: RunConfig, progress: bool, console: Console):
    """The ``heldout_probs`` a selecting mode trains its fold models with: plain CE runs of
    this config on a subset, each in its own resumable run folder."""

    def heldout_probs(train_mask, heldout, *, run_dir: Path, seed: int, epochs: int) -> np.ndarray:
        fold = copy.deepcopy(cfg)
        fold.name, fold.seed = f"{cfg.name}-{Path(run_dir).name}", seed
        fold.optim.epochs = epochs
        fold.purify = dataclasses.replace(PurifyConfig(), mode="ce")
        result = train(  # continues what the folder holds (a fresh start when nothing)
            fold, run_dir=run_dir, resume=True, progress=progress, console=console,
            subset=train_mask, heldout=heldout,
        )  # fmt: skip
        return result.heldout_probs

    return heldout_probs
