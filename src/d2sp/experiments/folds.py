"""The k-fold protocol: one run per fold and the table of their figures with mean ± std.

    results = run_folds(cfg, [1, 2, 3, 4, 5], jobs=2)     # DFEW's five folds

Each fold trains in its own run folder ``out_dir/<name>/fold<k>`` (the config with
``data.fold=k``), through :func:`d2sp.experiments.runner.run_cells`: a finished fold is read back,
an interrupted one continued, a folder holding another config refused; ``jobs > 1`` trains
folds in parallel processes. ``out_dir/<name>/folds.md`` and ``folds.csv`` get per fold the
final and best WAR/UAR and the final pruned and corrected counts, and their mean ± std over
the folds that finished.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
from rich.console import Console

from d2sp.config import DataConfig, RunConfig

NATIVE_FOLDS = {"dfew": 5, "mafw": 5}  # datasets whose official protocol has folds
NO_FOLDS = ("ferv39k", "synthdfer")  # datasets that refuse a fold
COLUMNS = ("war", "uar", "best_war", "best_uar", "best_epoch", "pruned", "corrected")


def parse_folds(text: str) -> list[int]:
    """``"1-5"`` -> ``[1, 2, 3, 4, 5]``; ``"1,3"`` -> ``[1, 3]``; ranges and lists mix.

    Raises:
        ValueError: naming ``--folds`` and what was given.
    """
    folds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"--folds: expected fold numbers such as 1-5 or 1,3, got {text!r}")
        last = int(m.group(2) or m.group(1))
        folds += [k for k in range(int(m.group(1)), last + 1) if k not in folds]
    return folds


def folds_problem(data: DataConfig, folds: list[int]) -> str | None:
    """Why ``data`` cannot be trained fold by fold on ``folds`` (None when it can): its dataset
    must take a fold, officially (DFEW, MAFW: folds 1-5) or through a ``{fold}`` in a file
    option (``list``, ``csv``: ``list_file=set_{fold}_{split}.txt``)."""
    name = data.dataset
    if name in NATIVE_FOLDS:
        bad = [k for k in folds if k > NATIVE_FOLDS[name]]
        if bad:
            return f"--folds: {name} has folds 1-{NATIVE_FOLDS[name]}, got {bad}"
        return None
    templated = any("{fold}" in str(v) for v in data.options.values())
    if name in NO_FOLDS or not templated:
        return (
            f"--folds: dataset {name!r} has no folds (DFEW and MAFW have; a list or csv "
            "dataset has them when a file option holds {fold}, e.g. "
            "list_file=set_{fold}_{split}.txt)"
        )
    return None


def run_folds(
    cfg: RunConfig,
    folds: list[int],
    *,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict:
    """Train (or read back, or continue) one run per fold and write the fold table.

    ``overwrite`` first removes the runs already in the fold folders (their files only).

    Returns:
        ``{"rows": [one dict per fold: fold, run_dir, status, error, and the figures of
        COLUMNS], "mean": {column: mean}, "std": {column: std}, "finished": n,
        "files": {"markdown": path, "csv": path}}``; WAR/UAR as fractions, the std over the
        finished folds with ddof=0.

    Raises:
        ValueError: a dataset without folds, or a config the trainer refuses.
        ExperimentError: a fold folder that holds a run of another config.
    """
    from d2sp.experiments.cells import Cell, Plan, cell_config
    from d2sp.experiments.runner import run_cells
    from d2sp.training.checks import validate_config
    from d2sp.training.folder import remove_run_files

    problem = folds_problem(cfg.data, folds)
    if problem:
        raise ValueError(problem)
    out = Path(cfg.out_dir) / cfg.name
    plan = Plan(
        Cell("folds", f"fold{k}", (f"data.fold={k}",), cfg.seed, folder=f"fold{k}") for k in folds
    )
    for cell in plan:
        validate_config(cell_config(cfg, cell, out_dir=out, runs_dir=""))
    if overwrite:
        for k in folds:
            remove_run_files(out / f"fold{k}")
    results = run_cells(
        cfg, plan, out_dir=out, runs_dir="", jobs=jobs, progress=progress, console=console,
        elsewhere="give another --name or --out-dir, replace them with --overwrite,",
    )
    rows = [_fold_row(k, r) for k, r in zip(folds, results, strict=True)]
    summary = fold_summary(rows)
    summary["files"] = write_fold_tables(rows, summary, out, title=_title(cfg, folds))
    return summary


def _fold_row(fold: int, result: dict) -> dict:
    """One fold's figures, read back from its ``summary.json`` (NaN when it failed)."""
    from d2sp.runs.folder import RunFolderError, read_run

    row = {"fold": fold, "run_dir": result["run_dir"], "status": result["status"]}
    row.update({"error": result["error"], **dict.fromkeys(COLUMNS, math.nan)})
    if result["status"] != "failed":
        try:
            run = read_run(result["run_dir"], require=("config.yaml", "summary.json"))
            summary = run.summary
            row.update({k: float(summary.get(k, math.nan)) for k in COLUMNS})
        except (RunFolderError, TypeError, ValueError) as e:
            row.update(status="failed", error=f"run folder unreadable: {e}")
    return row


def fold_summary(rows: list[dict]) -> dict:
    """Mean and std (ddof=0) of every column over the folds that finished."""
    ok = [r for r in rows if r["status"] != "failed"]
    mean, std = {}, {}
    for c in COLUMNS:
        v = np.array([r[c] for r in ok], dtype=float)
        v = v[np.isfinite(v)]
        mean[c] = float(v.mean()) if v.size else math.nan
        std[c] = float(v.std()) if v.size else math.nan
    return {"rows": rows, "mean": mean, "std": std, "finished": len(ok)}


def _title(cfg: RunConfig, folds: list[int]) -> str:
    which = ",".join(map(str, folds))
    return f"{cfg.name}: {cfg.data.dataset} folds {which}, {cfg.model.name}, {cfg.purify.mode} mode"


_PERCENT = ("war", "uar", "best_war", "best_uar")


def _cell(column: str, x: float, *, digits: int = 0) -> str:
    """A figure of the fold table: WAR/UAR in %, counts as numbers, – when undefined."""
    if not math.isfinite(x):
        return "–"
    return f"{100 * x:.2f}" if column in _PERCENT else f"{x:.{digits}f}"


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def write_fold_tables(rows: list[dict], summary: dict, out: Path, *, title: str) -> dict:
    """``folds.csv`` (one line per fold, then ``mean`` and ``std``; WAR/UAR as fractions)
    and ``folds.md`` (WAR/UAR in %) in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    fields = ["fold", *COLUMNS, "status", "run_dir", "error"]
    with open(out / "folds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if _isnan(v) else v for k, v in r.items()})
        for name in ("mean", "std"):
            w.writerow({"fold": name, **summary[name], "status": f"{summary['finished']} folds"})
    m, s = summary["mean"], summary["std"]
    lines = [f"# {title}", "",
             "WAR/UAR in % on each fold's test split: final = last epoch, best = the epoch of best "
             "WAR; pruned/corrected at the final epoch; mean ± std (ddof=0) over the "
             f"{summary['finished']} finished fold(s).", "",
             "| fold | WAR | UAR | best WAR | best UAR | best epoch | pruned | corrected | run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        cells = [_cell(c, r[c]) for c in COLUMNS]
        where = f"`{Path(r['run_dir']).name}/`"  # (next to this table)
        where += f" failed: {r['error']}" if r["status"] == "failed" else ""
        lines.append(f"| {r['fold']} | " + " | ".join(cells) + f" | {where} |")
    pm = [f"{_cell(c, m[c], digits=1)} ± {_cell(c, s[c], digits=1)}" for c in COLUMNS]
    lines.append("| **mean ± std** | " + " | ".join(pm) + " | |")
    (out / "folds.md").write_text("\n".join(lines) + "\n")
    return {"markdown": str(out / "folds.md"), "csv": str(out / "folds.csv")}
