"""Checkpoints of a run: ``best.pt`` (model) and ``last.pt`` (everything a resume needs, the
previous one kept as ``prev.pt``), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from d2sp.config import config_to_dict
from d2sp.purify import Ledger
from d2sp.training.build import Run


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` through a temporary file, so that ``path`` is never half written."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def resume_source(run_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``last.pt``, or ``prev.pt`` when a kill between moving
    ``last.pt`` away and writing the new one left only that."""
    return next((p for p in (run_dir / "last.pt", run_dir / "prev.pt") if p.is_file()), None)


def save_checkpoints(run: Run, epoch: int, metrics: dict, best: dict, improved: bool) -> None:
    """``best.pt`` when ``improved``, and ``last.pt`` after epoch ``epoch`` (1-based)."""
    ckpt = {
        "model": run.model.state_dict(),
        "config": config_to_dict(run.cfg),
        "class_names": list(run.class_names),
        "epoch": epoch,
        "metrics": {"war": metrics["war"], "uar": metrics["uar"]},
    }
    if improved:
        save_atomic(ckpt, run.run_dir / "best.pt")
    ckpt.update(
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        purifier=run.purifier.state_dict(),
        bad_clips=run.bad_clips.state_dict(),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        best=best,
        extended=run.extras.get("extended", []),
    )
    last = run.run_dir / "last.pt"
    if last.is_file():  # keep the previous one too
        os.replace(last, run.run_dir / "prev.pt")
    save_atomic(ckpt, last)


def restore_checkpoint(run: Run, path: Path) -> tuple[int, dict, dict]:
    """Load ``path`` (a ``last.pt``) into the run's objects; returns ``(epochs done, best,
    metrics of the last epoch)``. The ledger is cut back to the checkpoint's epoch;
    ``run.extras`` gets ``planned_epochs`` (the checkpoint's ``optim.epochs``) and
    ``extended`` (the run's earlier extensions)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    saved_n, n = len(ckpt["purifier"]["keep_mask"]), len(run.train_ds)
    if saved_n != n:
        raise ValueError(
            f"cannot resume {run.run_dir}: its checkpoint trained on {saved_n} training "
            f"samples but the training split now has {n} (rows skipped as bad when the data "
            "was read, or a changed annotation); start the run again with --overwrite"
        )
    epoch = int(ckpt["epoch"])
    run.extras["planned_epochs"] = int(ckpt["config"]["optim"]["epochs"])
    run.extras["extended"] = [dict(e) for e in ckpt.get("extended", [])]
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.purifier.load_state_dict(ckpt["purifier"])
    run.bad_clips.load_state_dict(ckpt.get("bad_clips", {}))
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    ledger_path = run.run_dir / "ledger.npz"
    if run.purifier.ledger is not None and ledger_path.is_file():
        ledger = Ledger.load(ledger_path)
        ledger.rows = {k: v[:epoch] for k, v in ledger.rows.items()}  # drop rows after ckpt
        run.purifier.ledger = ledger
    return epoch, dict(ckpt["best"]), dict(ckpt["metrics"])
