"""A trained run's model on any split, evaluated with the run's own sampling.

    result = evaluate_run("runs/dfew")                                  # best.pt, its test split
    result = evaluate_run("runs/dfew", checkpoint="last", fold=2)       # another DFEW fold
    result = evaluate_run("runs/dfew", dataset="ferv39k", root="/data/FERV39k")

The clips are sampled and batched as the run evaluated (:mod:`d2sp.runs.model`): the run's
own test split with ``checkpoint="last"`` gives
the final WAR/UAR of ``metrics.jsonl`` exactly, and ``"best"`` the ``best_war`` of
``summary.json``.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from d2sp.config import DataConfig
from d2sp.runs.model import LoadedModel, load_run_model, progress_bar


def eval_data_config(
    data: DataConfig,
    *,
    dataset: str | None = None,
    root: str | Path | None = None,
    fold: int | None = None,
    options: dict | None = None,
    skip_bad: bool | None = None,
) -> DataConfig:
    """The data to evaluate on: the run's ``data`` section, or another dataset.

    Another ``dataset`` starts from its own defaults (the run's dataset options and clip
    cache do not carry over); the run's dataset with another ``root``, ``fold`` or
    ``options`` keeps the run's options (updated by ``options``) and reads the clips
    themselves rather than the run's clip cache.
    """
    data = copy.deepcopy(data)
    if dataset is not None and dataset != data.dataset:
        data.dataset, data.root, data.fold = dataset, root, fold
        data.options, data.cache = dict(options or {}), None
    elif root is not None or fold is not None or options:
        data.root = str(root) if root is not None else data.root
        data.fold = fold if fold is not None else data.fold
        data.options, data.cache = {**data.options, **(options or {})}, None
    if data.root is not None:
        data.root = str(data.root)
    if skip_bad is not None:
        data.skip_bad = skip_bad
    return data


def eval_name(checkpoint: str, data: DataConfig, split: str) -> str:
    """Folder name of an evaluation under ``RUN_DIR/eval``: ``best-dfew-fold2-test``."""
    fold = f"-fold{data.fold}" if data.fold is not None else ""
    return f"{checkpoint}-{data.dataset}{fold}-{split}"


def check_classes(loaded: LoadedModel, split) -> list[str]:
    """Refuse a split whose class count differs from the model's; notes (names that differ)
    otherwise.

    Raises:
        ValueError: naming both class lists.
    """
    ours, theirs = loaded.class_names, tuple(split.class_names)
    where = f"{split.name} {split.split}" + (f" fold {split.fold}" if split.fold else "")
    if len(ours) != len(theirs):
        raise ValueError(
            f"classes: the run's model predicts {len(ours)} classes ({', '.join(ours)}) but "
            f"{where} has {len(theirs)} ({', '.join(theirs)}); evaluate on data with the "
            "same classes"
        )
    if [n.lower() for n in ours] != [n.lower() for n in theirs]:
        return [f"class names differ: the run's {', '.join(ours)}; {where}'s {', '.join(theirs)} "
                "(compared by index)"]  # fmt: skip
    return []


def evaluate_run(
    run_dir: str | Path,
    *,
    checkpoint: str = "best",
    dataset: str | None = None,
    root: str | Path | None = None,
    fold: int | None = None,
    split: str = "test",
    options: dict | None = None,
    skip_bad: bool | None = None,
    out: str | Path | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> dict:
    """Evaluate a run's ``checkpoint`` model on ``split`` of its dataset (or another one).

    Writes into ``out`` (default ``RUN_DIR/eval/<checkpoint>-<dataset>[-fold<k>]-<split>``):
    ``metrics.json`` (this dict), ``confusion.csv`` (K x K, rows true), ``per_class.csv``
    (support and recall per class), ``predictions.csv`` (one row per clip: index, path,
    label, prediction, K probabilities) and ``confusion.png``.

    Returns:
        A dict with ``war``, ``uar``, ``per_class_recall`` ({name: recall or None when the
        class has no clip}), ``support``, ``confusion`` (K x K list), ``class_names``,
        ``samples``, ``skipped``, the checkpoint (``checkpoint``, ``epoch``,
        ``recorded``: its WAR/UAR recorded at training time), the data (``dataset``,
        ``root``, ``fold``, ``split``), ``notes`` and ``files`` (name -> path).

    Raises:
        RunFolderError: no run or checkpoint there. ValueError: a split the model cannot be
        evaluated on (class count), an unknown dataset or option. DataError: bad input.
    """
    from d2sp.data.splits import load_split

    loaded = load_run_model(run_dir, checkpoint=checkpoint)
    data = eval_data_config(
        loaded.cfg.data, dataset=dataset, root=root, fold=fold, options=options, skip_bad=skip_bad
    )
    data_split = load_split(data, split, progress=progress)
    notes = check_classes(loaded, data_split)
    probs = _predict_split(loaded, data_split, batch_size=batch_size, progress=progress,
                           console=console)  # (M, K)  # fmt: skip
    labels = data_split.labels  # (M,)
    result = _scores(probs, labels, loaded.class_names)
    result.update(
        run_dir=str(loaded.run_dir), checkpoint=checkpoint, epoch=loaded.epoch,
        recorded=loaded.metrics, dataset=data.dataset, root=data_split.root, fold=data.fold,
        split=split, samples=len(labels), skipped=data_split.skipped, notes=notes,
    )  # fmt: skip
    if out is None:
        out = loaded.run_dir / "eval" / eval_name(checkpoint, data, split)
    out = Path(out)
    result["files"] = write_evaluation(result, probs, data_split, out)
    return result


def _predict_split(loaded: LoadedModel, data_split, *, batch_size, progress, console) -> np.ndarray:
    """``(M, K)`` float32 probabilities of the clips of ``data_split``, in its order, sampled
    and batched as the run evaluated."""
    from d2sp.training.inference import predict_loader

    ds = loaded.clips(data_split.samples, data_split.source)
    loader = loaded.loader(ds, batch_size)
    with progress_bar(console, progress, "evaluating") as bar:
        task = bar.add_task("batches", total=len(loader))
        probs, _, indices = predict_loader(
            loaded.model, loader, loaded.device, loaded.autocast, on_batch=lambda: bar.advance(task)
        )
    assert torch.equal(indices, torch.arange(len(ds))), "the loader kept the split's order"
    return probs.numpy()


def _scores(probs: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """WAR, UAR, per-class recall and support, confusion matrix of ``probs (M, K)``."""
    from d2sp.training.metrics import confusion_matrix, war_uar

    k = len(class_names)
    cm = confusion_matrix(torch.from_numpy(probs).argmax(1), torch.from_numpy(labels), k)  # (K, K)
    war, uar = war_uar(cm)
    support = cm.sum(axis=1)
    recall = {
        name: (float(cm[i, i] / support[i]) if support[i] else None)
        for i, name in enumerate(class_names)
    }
    return {
        "war": war, "uar": uar, "per_class_recall": recall,
        "support": {n: int(s) for n, s in zip(class_names, support, strict=True)},
        "confusion": cm.tolist(), "class_names": list(class_names),
    }  # fmt: skip


def write_evaluation(result: dict, probs: np.ndarray, data_split, out: Path) -> dict[str, str]:
    """Write the files of :func:`evaluate_run` into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    names, cm = result["class_names"], np.array(result["confusion"])
    files = {k: str(out / f) for k, f in [
        ("metrics", "metrics.json"), ("confusion", "confusion.csv"), ("per_class", "per_class.csv"),
        ("predictions", "predictions.csv"), ("plot", "confusion.png"),
    ]}  # fmt: skip
    with open(files["confusion"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *names])
        w.writerows([name, *map(int, row)] for name, row in zip(names, cm, strict=True))
    with open(files["per_class"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "support", "recall"])
        for name in names:
            r = result["per_class_recall"][name]
            w.writerow([name, result["support"][name], "" if r is None else f"{r:.6f}"])
    write_sample_predictions(files["predictions"], probs, data_split, names)
    plot_confusion(cm, names, files["plot"], title=_plot_title(result))
    Path(files["metrics"]).write_text(json.dumps({**result, "files": files}, indent=1))
    return files


def write_sample_predictions(path, probs: np.ndarray, data_split, names) -> None:
    """One row per clip: index, path, label, predicted class, correct, K probabilities."""
    preds = probs.argmax(1)  # (M,)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "label", "label_name", "predicted_index", "predicted",
                    "correct", *(f"p_{n}" for n in names)])  # fmt: skip
        for i, (sample, p, row) in enumerate(zip(data_split.samples, preds, probs, strict=True)):
            w.writerow([i, sample.path, sample.label, names[sample.label], int(p), names[p],
                        int(p == sample.label), *(f"{x:.6f}" for x in row)])  # fmt: skip


def _plot_title(result: dict) -> str:
    fold = f" fold {result['fold']}" if result["fold"] is not None else ""
    return (
        f"{result['dataset']}{fold} {result['split']} ({result['checkpoint']}.pt, epoch "
        f"{result['epoch']}): WAR {100 * result['war']:.1f}, UAR {100 * result['uar']:.1f}"
    )


def plot_confusion(cm: np.ndarray, names, path, *, title: str) -> None:
    """A PNG of the confusion matrix ``(K, K)``: colour = share of the true class, numbers =
    clips (matplotlib, no display needed)."""
    from matplotlib.figure import Figure

    k = len(names)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # (K, K) row-normalised
    fig = Figure(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
