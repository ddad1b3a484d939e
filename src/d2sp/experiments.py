"""Experiment grids: ablations and method comparisons over seeds, resumable, one folder a run.

A grid is a list of :class:`Cell` (table, row, config overrides, seed). Cells that ask for
the same run (same overrides, same seed) share one run folder and are trained once; the
run is reported in every table that asked for it.

    plan = plan_ablation(base_cfg, seeds=(0, 1, 2))        # stages, λ, τ, t tables
    results = run_cells(base_cfg, plan, out_dir="runs/ablate", jobs=2)
    summary = summarize(results)
    markdown = write_results(results, summary, "runs/ablate", title="Ablation")

Layout of ``out_dir``::

    runs/<slug>/       one run folder per distinct run (see :func:`d2sp.train`)
    results.csv        one line per (cell, seed): table, row, seed, run folder, figures
    summary.csv        per (table, row): mean and std over seeds of every figure
    table.md           one Markdown table per table name

Figures of a run are read back from its folder (``summary.json``, ``metrics.jsonl``,
``ledger.npz``), so a finished run found on disk reports the same figures as a fresh one.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.markup import escape

from d2sp.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)

_NAMED_KEYS = ("lam", "tau", "t", "warmup_epochs", "score", "cgp", "fgc", "revisit_pruned")


def method_overrides(method: str, base_cfg: RunConfig) -> tuple[str, ...]:
    """Config overrides that turn ``base_cfg`` into a run of purifier mode ``method``: the
    mode, and, for a mode other than the base config's, its own defaults (the base's
    purification keys and options emptied)."""
    from d2sp.purify import purifier_class

    purifier_class(method)  # ValueError listing the known modes
    p = base_cfg.purify
    if method == p.mode:
        return (f"purify.mode={method}",)
    reset = [f"purify.{k}=null" for k in _NAMED_KEYS if getattr(p, k) is not None]
    return (f"purify.mode={method}", *reset, *(["purify.options={}"] if p.options else []))


ABLATION_TABLES = ("stages", "lam", "tau", "t")
DEFAULT_SWEEPS = {"lam": (0.5, 0.6, 0.7, 0.8), "tau": (0.2, 0.3, 0.4, 0.5), "t": (1, 2, 3, 4)}
STAGE_ROWS = {"none": (False, False), "CGP": (True, False), "FGC": (False, True)}
STAGE_ROWS["CGP+FGC"] = (True, True)
_SWEEP_SYMBOL = {"lam": "λ", "tau": "τ", "t": "t"}

QUALITY_COLUMNS = (
    "prune_precision",
    "prune_recall",
    "correct_precision",
    "correct_recall",
    "removed_precision",
)
FIGURE_COLUMNS = ("war", "uar", "best_war", "pruned", "corrected", "train_size", "seconds")
_TEXT_COLUMNS = ("table", "row", "seed", "run_dir", "status", "error")


class ExperimentError(ValueError):
    """A grid that cannot run as asked (a run folder holding a different config, ...)."""


# ---------------------------------------------------------------- cells and run folders


def _format_value(value: Any) -> str:
    """A YAML value written back the same way whatever its spelling was (``0.60`` → ``0.6``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, sort_keys=True)


def canonical_overrides(overrides: Iterable[str]) -> tuple[str, ...]:
    """``key=value`` strings sorted by key, the last one of a key winning, values normalised.

    Two override lists that configure the same run give the same tuple.
    """
    values: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. purify.lam=0.7")
        try:
            parsed = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from None
        values[key] = _format_value(parsed)
    return tuple(f"{k}={values[k]}" for k in sorted(values))


def run_slug(overrides: Iterable[str], seed: int) -> str:
    """Run-folder name for (overrides, seed): readable, and equal exactly for equal runs."""
    canon = canonical_overrides(overrides)
    digest = hashlib.sha1(("\n".join(canon) + f"\nseed={seed}").encode()).hexdigest()[:8]
    parts = []
    for item in canon:
        key, _, value = item.partition("=")
        value = {"true": "1", "false": "0", "null": "none"}.get(value, value)
        parts.append(re.sub(r"[^A-Za-z0-9.+-]", "", key.rsplit(".", 1)[-1] + value))
    readable = "_".join(p for p in parts if p)[:80] or "base"
    return f"{readable}_s{seed}_{digest}"


@dataclass(frozen=True)
class Cell:
    """One entry of a grid: ``row`` of ``table``, trained with ``overrides`` and ``seed``
    (in the run folder ``folder`` when given, else one named by :func:`run_slug`)."""

    table: str
    row: str
    overrides: tuple[str, ...]
    seed: int
    folder: str | None = None

    @property
    def slug(self) -> str:
        """Run-folder name; cells asking for the same run share it."""
        return self.folder or run_slug(self.overrides, self.seed)


class Plan(list):
    """A list of :class:`Cell` with ``skipped``: one line per requested row left out, and why."""

    def __init__(self, cells: Iterable[Cell] = (), skipped: Iterable[str] = ()):
        super().__init__(cells)
        self.skipped = list(skipped)


def cell_config(
    base_cfg: RunConfig, cell: Cell, *, out_dir: str | Path | None = None, runs_dir: str = "runs"
) -> RunConfig:
    """The config a cell runs: the base config with the cell's overrides and seed.

    With ``out_dir`` the run is named by the cell's slug under ``out_dir/runs_dir``.
    """
    values = apply_overrides(copy.deepcopy(config_to_dict(base_cfg)), list(cell.overrides))
    values["seed"] = cell.seed
    cfg = config_from_dict(values)
    if out_dir is not None:
        cfg.name = cell.slug
        cfg.out_dir = str(Path(out_dir) / runs_dir)
    return cfg


# ---------------------------------------------------------------- plans


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds, got {list(seeds)}")
    return seeds


def _ablation_overrides(base: dict, cgp: bool, fgc: bool, **thresholds) -> tuple[str, ...]:
    """Overrides of one paper-mode ablation run: both stage switches and all three thresholds."""
    values = {**base, **thresholds}
    return canonical_overrides(
        [
            "purify.mode=paper",
            f"purify.cgp={_format_value(cgp)}",
            f"purify.fgc={_format_value(fgc)}",
            *(f"purify.{k}={_format_value(v)}" for k, v in values.items()),
        ]
    )


def _sweep_rows(
    base_cfg: RunConfig, base: dict, table: str, values: Sequence, *, seed: int, skipped: list[str]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rows of one threshold sweep; values left out are explained in ``skipped``."""
    from d2sp.training.checks import validate_config

    kind = int if table == "t" else float
    rows, seen = [], set()
    for v in values:
        if kind is int and (isinstance(v, bool) or float(v) != int(v)):
            skipped.append(f"{table}: {v!r} left out (expected an integer)")
            continue
        v = kind(v)
        if v in seen:
            continue
        seen.add(v)
        row = f"{_SWEEP_SYMBOL[table]}={_format_value(v)}"
        ov = _ablation_overrides(base, True, True, **{table: v})
        try:
            validate_config(cell_config(base_cfg, Cell(table, row, ov, seed)))
        except ValueError as e:
            reason = " ".join(str(e).replace("config refused:", "").split())
            skipped.append(f"{table}: {row} left out ({reason})")
            continue
        rows.append((table, row, ov))
    return rows


def plan_ablation(
    base_cfg: RunConfig,
    *,
    tables: Sequence[str] = ABLATION_TABLES,
    lams: Sequence[float] | None = None,
    taus: Sequence[float] | None = None,
    ts: Sequence[int] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
) -> Plan:
    """The paper-mode ablation: stage table and one-factor sweeps of λ, τ and t.

    ``stages`` has the rows none / CGP / FGC / CGP+FGC; ``lam``, ``tau`` and ``t`` vary one
    threshold around the base config with both stages on. A base threshold left empty
    stands for the paper mode's default (0.6, 0.4, 2). Every cell pins the three thresholds,
    so the CGP+FGC row and the sweep rows at the base values are one run. Sweep values the
    trainer would refuse (e.g. t beyond the number of epochs) are left out and listed in
    the returned plan's ``skipped``; a base config the trainer refuses raises ValueError.
    """
    from d2sp.purify import purifier_class
    from d2sp.training.checks import validate_config

    seeds = _check_seeds(seeds)
    unknown = [t for t in tables if t not in ABLATION_TABLES]
    if unknown or not tables:
        raise ValueError(
            f"tables: expected some of {', '.join(ABLATION_TABLES)}, got {', '.join(tables) or 'none'}"
        )
    p, paper = base_cfg.purify, purifier_class("paper").defaults
    base = {
        k: getattr(p, k) if getattr(p, k) is not None else paper[k] for k in ("lam", "tau", "t")
    }
    sweeps = {"lam": lams, "tau": taus, "t": ts}

    both = _ablation_overrides(base, True, True)
    try:
        validate_config(cell_config(base_cfg, Cell("stages", "CGP+FGC", both, seeds[0])))
    except ValueError as e:
        reason = str(e).removeprefix("config refused:").strip()
        raise ValueError(
            f"the base config (paper mode, both stages) is refused: {reason}"
        ) from None

    rows: list[tuple[str, str, tuple[str, ...]]] = []
    skipped: list[str] = []
    for table in tables:
        if table == "stages":
            rows += [(table, n, _ablation_overrides(base, *on)) for n, on in STAGE_ROWS.items()]
            continue
        values = sweeps[table] if sweeps[table] is not None else DEFAULT_SWEEPS[table]
        rows += _sweep_rows(base_cfg, base, table, values, seed=seeds[0], skipped=skipped)
    cells = [Cell(t, r, ov, s) for t, r, ov in rows for s in seeds]
    return Plan(cells, skipped)


def plan_comparison(
    base_cfg: RunConfig,
    *,
    methods: Sequence[str] = ("ce", "paper"),
    seeds: Sequence[int] = (0, 1, 2),
) -> Plan:
    """One row per method (table ``compare``): each a registered purifier mode, run with the
    overrides of :func:`method_overrides` on ``base_cfg``, which supplies everything else
    (data, model, schedule; the base config's own mode keeps its thresholds).
    Unknown method names raise ValueError listing the known ones.
    """
    from d2sp.purify import list_modes

    seeds = _check_seeds(seeds)
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in list_modes()]
    if unknown or not methods:
        raise ValueError(
            f"methods: unknown {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known: {', '.join(list_modes())}"
        )
    cells = [
        Cell("compare", m, canonical_overrides(method_overrides(m, base_cfg)), s)
        for m in methods
        for s in seeds
    ]
    return Plan(cells)


# ---------------------------------------------------------------- running


Runner = Callable[..., Any]


def train_runner(cfg: RunConfig, *, run_dir: Path, resume: bool, progress: bool, console=None):
    """The default runner: :func:`d2sp.train` into ``run_dir``."""
    from d2sp.training.fit import train

    return train(cfg, run_dir=run_dir, resume=resume, progress=progress, console=console)


def _comparable(values: dict) -> dict:
    values = copy.deepcopy(values)
    values.pop("out_dir", None)
    return values


def _config_difference(saved_path: Path, cfg: RunConfig) -> list[str]:
    """Keys whose value in ``saved_path`` differs from ``cfg`` (``out_dir`` not counted)."""
    try:
        saved = config_to_dict(config_from_dict(yaml.safe_load(saved_path.read_text()) or {}))
    except (ConfigError, yaml.YAMLError, TypeError, ValueError) as e:
        return [f"unreadable ({e})"]
    want = config_to_dict(cfg)

    def walk(a, b, prefix=""):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}{key}"
            x, y = a.get(key), b.get(key)
            if isinstance(x, dict) and isinstance(y, dict):
                out += walk(x, y, path + ".")
            elif x != y:
                out.append(f"{path}: saved {x!r}, asked {y!r}")
        return out

    return walk(_comparable(saved), _comparable(want))


def _resume(run_dir: Path, state: str) -> bool:
    """Whether to train a run folder with ``resume=True``: it was interrupted after a
    checkpoint, or before one (it holds the config already checked to be the same)."""
    return state == "partial" or (run_dir / "config.yaml").is_file()


def _run_state(run_dir: Path) -> str:
    if (run_dir / "summary.json").is_file():
        return "done"
    if (run_dir / "last.pt").is_file() or (run_dir / "prev.pt").is_file():
        return "partial"
    return "new"


def _ground_truth(cfg: RunConfig, cache: dict) -> dict | None:
    """The ground truth of the run's training split (SynthDFER; generated once if missing)."""
    from d2sp.data.registry import has_ground_truth

    if not has_ground_truth(cfg.data.dataset):
        return None
    key = json.dumps(config_to_dict(cfg)["data"], sort_keys=True)
    if key not in cache:
        from d2sp.data.splits import load_split

        cache[key] = load_split(cfg.data, "train", progress=False).ground_truth
    return cache[key]


def read_run(run_dir: str | Path, cfg: RunConfig, gt: dict | None = None) -> dict[str, float]:
    """Figures of a finished run folder: final WAR/UAR, best WAR, final pruned/corrected,
    ``train_size`` (samples trained in the final epoch), seconds (of the last ``train``
    call, as in ``summary.json``) and, given the ground truth ``gt``, the precision/recall
    of what was pruned and relabelled at the end.
    """
    from d2sp.runs.folder import read_run as read_run_folder

    run = read_run_folder(run_dir, require=("config.yaml", "metrics.jsonl", "summary.json"))
    summary, last = run.summary, (run.metrics[-1] if run.metrics else {})
    out = {
        "war": float(summary["war"]),
        "uar": float(summary["uar"]),
        "best_war": float(summary.get("best_war", math.nan)),
        "pruned": float(summary.get("pruned", 0)),
        "corrected": float(summary.get("corrected", 0)),
        "train_size": float(last.get("trained", math.nan)),
        "seconds": float(summary.get("seconds", math.nan)),
    }
    if gt is not None:
        out.update(_quality(run.ledger, gt))
    return out


def _quality(ledger, gt: dict) -> dict[str, float]:
    """Final-epoch precision/recall of pruning and relabelling against the ground truth."""
    from d2sp.training.metrics import purification_scores

    scores = dict.fromkeys(QUALITY_COLUMNS, math.nan)
    if ledger is None or not ledger.num_epochs or len(ledger.labels) != len(gt["true_label"]):
        return scores
    state, label = ledger.column("state")[-1], ledger.column("label")[-1]
    s = purification_scores(
        state, label, low_quality=gt["low_quality"], true_label=gt["true_label"],
        given_label=gt["given_label"],
    )  # fmt: skip
    scores.update({k: s[k] for k in QUALITY_COLUMNS if k in s})
    return scores


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _work(runner: Runner, cfg: RunConfig, run_dir: Path, resume: bool) -> str | None:
    """Run one training in a worker process; the error text, or None on success."""
    try:
        runner(cfg, run_dir=run_dir, resume=resume, progress=False, console=None)
    except Exception as e:  # reported back, the grid goes on
        return _error_text(e)
    return None


def _error_text(e: BaseException) -> str:
    where = traceback.extract_tb(e.__traceback__)
    at = f" (at {Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""
    return f"{type(e).__name__}: {e}{at}"


def _distinct_runs(
    base_cfg: RunConfig, cells: Sequence[Cell], out_dir: Path, runs_dir: str
) -> dict[str, tuple[RunConfig, Path]]:
    """Config and run folder of every distinct run of ``cells``, by slug, in first-seen order."""
    runs: dict[str, tuple[RunConfig, Path]] = {}
    for cell in cells:
        if cell.slug not in runs:
            cfg = cell_config(base_cfg, cell, out_dir=out_dir, runs_dir=runs_dir)
            runs[cell.slug] = (cfg, out_dir / runs_dir / cell.slug)
    return runs


def _run_states(runs: dict[str, tuple[RunConfig, Path]]) -> dict[str, str]:
    """State of each run folder (see :func:`_run_state`); refuses folders of another config."""
    conflicts, state = [], {}
    for slug, (cfg, run_dir) in runs.items():
        if (run_dir / "config.yaml").is_file():
            diff = _config_difference(run_dir / "config.yaml", cfg)
            if diff:
                conflicts.append(f"{run_dir}: " + "; ".join(diff[:5]))
        state[slug] = _run_state(run_dir)
    if conflicts:
        raise ExperimentError(
            "run folders hold runs of a different config (not overwritten; use another "
            "--out or remove them):\n  " + "\n  ".join(conflicts)
        )
    return state


def _ground_truths(runs: dict[str, tuple[RunConfig, Path]], console: Console) -> dict:
    """Ground truth of each run's training split, or None (with a warning when unreadable)."""
    gt_cache: dict = {}
    gts: dict[str, dict | None] = {}
    for slug, (cfg, _) in runs.items():  # before any worker starts: generates SynthDFER once
        try:
            gts[slug] = _ground_truth(cfg, gt_cache)
        except (OSError, ValueError) as e:
            console.print(f"[yellow]warning:[/] no ground truth for {slug}: {e}")
            gts[slug] = None
    return gts


def _outcome(cfg: RunConfig, run_dir: Path, gt: dict | None, state: str, error: str | None) -> dict:
    """Status, error text and figures of one run once it is over (``error``: its failure)."""
    status = {"done": "reused", "partial": "resumed", "new": "trained"}[state]
    figures: dict[str, float] = {}
    if error is None:
        try:
            figures = read_run(run_dir, cfg, gt)
        except (OSError, ValueError, KeyError) as e:
            error = f"run folder unreadable after training: {_error_text(e)}"
    if error is not None:
        status = "failed"
    return {"status": status, "error": error or "", **figures}


def _outcome_line(outcome: dict) -> str:
    """One console line (rich markup) for an outcome of :func:`_outcome`."""
    if outcome["status"] == "failed":
        return f"[bold red]failed[/] {escape(outcome['error'])}"
    return (
        f"WAR {100 * outcome['war']:5.1f}  UAR {100 * outcome['uar']:5.1f}  "
        f"trained {outcome['train_size']:.0f}  pruned {outcome['pruned']:.0f}  "
        f"corrected {outcome['corrected']:.0f}  ({outcome['status']}, {outcome['seconds']:.0f}s)"
    )


def _train_runs(runner, runs, todo, state, *, jobs, finish, progress, console) -> None:
    """Train the runs ``todo`` (``jobs`` at a time) under a progress bar, calling ``finish``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not progress,
    )
    with bar:
        task = bar.add_task("runs", total=len(todo))
        if jobs == 1:
            _run_serial(runner, runs, todo, state, finish, lambda: bar.advance(task), console)
        else:
            _run_parallel(runner, runs, todo, state, jobs, finish, lambda: bar.advance(task))


def _run_serial(runner, runs, todo, state, finish, advance, console) -> None:
    for slug in todo:
        cfg, run_dir = runs[slug]
        try:
            runner(
                cfg,
                run_dir=run_dir,
                resume=_resume(run_dir, state[slug]),
                progress=False,
                console=console,
            )
            error = None
        except Exception as e:  # recorded; the grid goes on
            error = _error_text(e)
        finish(slug, error)
        advance()


def _cell_results(cells, runs, outcome, gts) -> list[dict]:
    """One result row per cell, from the outcome of its run."""
    results = []
    for cell in cells:
        cfg, run_dir = runs[cell.slug]
        row = {
            "table": cell.table,
            "row": cell.row,
            "seed": cell.seed,
            "run_dir": str(run_dir),
        }
        figures = outcome[cell.slug]
        columns = FIGURE_COLUMNS + (QUALITY_COLUMNS if gts[cell.slug] is not None else ())
        row.update({"status": figures["status"], "error": figures["error"]})
        row.update({k: figures.get(k, math.nan) for k in columns})
        results.append(row)
    return results


def run_cells(
    base_cfg: RunConfig,
    cells: Sequence[Cell],
    *,
    out_dir: str | Path,
    jobs: int = 1,
    runner: Runner | None = None,
    progress: bool = True,
    console: Console | None = None,
    runs_dir: str = "runs",
) -> list[dict]:
    """Train every distinct run of ``cells`` (once each) and return one result per cell.

    Each distinct run gets ``out_dir/<runs_dir>/<slug>`` (``runs_dir=""``: ``out_dir/<slug>``;
    a cell's ``folder`` is its slug when given). A folder with ``summary.json`` and the
    same config is read back, not retrained; one with ``last.pt`` but no summary is
    continued (``resume=True``); one whose saved config differs raises
    :class:`ExperimentError` before anything is trained. ``jobs > 1`` trains that many
    runs at a time in spawned processes, each with ``cpu_count // jobs`` torch threads.
    ``runner(cfg, run_dir=, resume=, progress=, console=)`` does the training (default
    :func:`train_runner`); it must be a module-level function when ``jobs > 1``.

    A result holds table, row, seed, run_dir, status (trained / resumed / reused /
    failed), error (text of a failed run, else empty) and the figures of :func:`read_run`
    (NaN for a failed run). A failing run does not stop the others.
    """
    console = console or Console()
    runner = runner or train_runner
    if jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs}")
    out_dir = Path(out_dir)
    runs = _distinct_runs(base_cfg, cells, out_dir, runs_dir)
    state = _run_states(runs)
    (out_dir / runs_dir).mkdir(parents=True, exist_ok=True)
    gts = _ground_truths(runs, console)

    outcome: dict[str, dict] = {}

    def finish(slug: str, error: str | None) -> None:
        outcome[slug] = _outcome(*runs[slug], gts[slug], state[slug], error)
        line = _outcome_line(outcome[slug])
        where = f"[{len(outcome)}/{len(runs)}] [bold]{slug}[/]"
        console.print(f"{where}  {line}", soft_wrap=True, highlight=False)

    for slug in runs:
        if state[slug] == "done":
            finish(slug, None)
    todo = [slug for slug in runs if state[slug] != "done"]
    if todo:
        _train_runs(
            runner, runs, todo, state, jobs=jobs, finish=finish, progress=progress, console=console
        )
    return _cell_results(cells, runs, outcome, gts)


def _run_parallel(runner, runs, todo, state, jobs, finish, advance) -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with cf.ProcessPoolExecutor(
        jobs, mp_context=mp.get_context("spawn"), initializer=_set_threads, initargs=(threads,)
    ) as pool:
        futures = {}
        for slug in todo:
            cfg, run_dir = runs[slug]
            fut = pool.submit(_work, runner, cfg, run_dir, _resume(run_dir, state[slug]))
            futures[fut] = slug
        try:
            for fut in cf.as_completed(futures):
                slug = futures[fut]
                try:
                    error = fut.result()
                except Exception as e:  # a worker that died, or an unpicklable runner
                    error = _error_text(e)
                finish(slug, error)
                advance()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ---------------------------------------------------------------- aggregation and output


def _numeric_columns(rows: Sequence[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k in _TEXT_COLUMNS or k in cols:
                continue
            if isinstance(v, int | float | np.number) and not isinstance(v, bool):
                cols.append(k)
    return cols


def summarize(results: Sequence[dict]) -> list[dict]:
    """Per (table, row), in first-seen order: ``n`` (runs that finished), ``failed``, and
    ``<col>_mean`` / ``<col>_std`` over seeds of every numeric column.

    Failed runs and undefined values (NaN, e.g. precision with nothing pruned) are left out
    of a column; a column with no value left is NaN. The std is the population std (ddof=0),
    as in ``benchmarks/purification_quality.py``.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["table"], r["row"]), []).append(r)
    cols = _numeric_columns(results)
    out = []
    for (table, row), rows in groups.items():
        ok = [r for r in rows if r.get("status") != "failed"]
        entry: dict[str, Any] = {"table": table, "row": row, "n": len(ok)}
        entry["failed"] = len(rows) - len(ok)
        for c in cols:
            v = np.array([float(r[c]) for r in ok if c in r], dtype=float)
            v = v[np.isfinite(v)]
            entry[f"{c}_mean"] = float(v.mean()) if v.size else math.nan
            entry[f"{c}_std"] = float(v.std()) if v.size else math.nan
        out.append(entry)
    return out


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            )


def _pm(entry: dict, col: str, *, pct: bool) -> str:
    mean, std = entry.get(f"{col}_mean", math.nan), entry.get(f"{col}_std", math.nan)
    if mean is None or not math.isfinite(mean):
        return "–"
    scale = 100.0 if pct else 1.0
    return f"{scale * mean:.1f} ± {scale * std:.1f}"


_MD_COLUMNS = (  # header, column, in %
    ("WAR", "war", True),
    ("UAR", "uar", True),
    ("train size", "train_size", False),
    ("pruned", "pruned", False),
    ("corrected", "corrected", False),
)
_MD_QUALITY = (
    ("prune P", "prune_precision"),
    ("prune R", "prune_recall"),
    ("correct P", "correct_precision"),
    ("correct R", "correct_recall"),
    ("removed P", "removed_precision"),
)


def markdown_tables(
    results: Sequence[dict], summary: Sequence[dict], *, title: str, notes: Sequence[str] = ()
) -> str:
    """The Markdown text of :func:`write_results` (one table per table name)."""
    quality = any(k in r for r in results for k in QUALITY_COLUMNS)
    header = [h for h, _, _ in _MD_COLUMNS] + ([h for h, _ in _MD_QUALITY] if quality else [])
    header += ["s/run", "n"]
    lines = [f"# {title}", ""]
    lines.append(
        "Final epoch; WAR/UAR in % on the test split; train size = samples trained in the final "
        "epoch; pruned/corrected = final counts"
        + (
            "; P/R in % against the SynthDFER ground truth (removed P: share of the pruned "
            "clips that are low-quality or mislabelled; – where undefined)"
            if quality
            else ""
        )
        + "; mean ± std over seeds."
    )
    tables: dict[str, list[dict]] = {}
    for entry in summary:
        tables.setdefault(entry["table"], []).append(entry)
    for name, entries in tables.items():
        lines += ["", f"## {name}", ""]
        lines.append("| row | " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * len(header))
        for e in entries:
            cells = [_pm(e, c, pct=pct) for _, c, pct in _MD_COLUMNS]
            if quality:
                cells += [_pm(e, c, pct=True) for _, c in _MD_QUALITY]
            secs = e.get("seconds_mean", math.nan)
            cells.append(f"{secs:.0f}" if math.isfinite(secs) else "–")
            n = f"{e['n']}" + (f" ({e['failed']} failed)" if e.get("failed") else "")
            cells.append(n)
            lines.append(f"| {e['row']} | " + " | ".join(cells) + " |")
    failed = [r for r in results if r.get("status") == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""]
        seen = set()
        for r in failed:
            if r["run_dir"] not in seen:
                seen.add(r["run_dir"])
                lines.append(f"- `{r['run_dir']}` ({r['table']} / {r['row']}): {r['error']}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_results(
    results: Sequence[dict],
    summary: Sequence[dict],
    out_dir: str | Path,
    *,
    title: str,
    notes: Sequence[str] = (),
) -> str:
    """Write ``results.csv``, ``summary.csv`` and ``table.md`` into ``out_dir``.

    Returns the Markdown text (``notes`` are appended as a list under the tables).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "results.csv", results)
    _write_csv(out_dir / "summary.csv", summary)
    text = markdown_tables(results, summary, title=title, notes=notes)
    (out_dir / "table.md").write_text(text)
    return text
