"""Running a grid: every distinct run of its cells trained once (serially or ``jobs`` at a
time in spawned processes), a finished run folder read back, an interrupted one continued,
a folder holding another config refused; one result row per cell.
"""

from __future__ import annotations

import copy
import math
import os
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from d2sp.config import ConfigError, RunConfig, config_from_dict, config_to_dict
from d2sp.experiments.cells import Cell, cell_config
from d2sp.experiments.results import FIGURE_COLUMNS, QUALITY_COLUMNS, ground_truth, run_figures


class ExperimentError(ValueError):
    """A grid that cannot run as asked (a run folder holding a different config, ...)."""


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


def _run_states(runs: dict[str, tuple[RunConfig, Path]], elsewhere: str) -> dict[str, str]:
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
            f"run folders hold runs of a different config (not overwritten; {elsewhere} "
            "or remove them):\n  " + "\n  ".join(conflicts)
        )
    return state


def _ground_truths(runs: dict[str, tuple[RunConfig, Path]], console: Console) -> dict:
    """Ground truth of each run's training split, or None (with a warning when unreadable)."""
    gt_cache: dict = {}
    gts: dict[str, dict | None] = {}
    for slug, (cfg, _) in runs.items():  # before any worker starts: generates SynthDFER once
        try:
            gts[slug] = ground_truth(cfg, gt_cache)
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
            figures = run_figures(run_dir, gt)
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
    elsewhere: str = "use another --out",
) -> list[dict]:
    """Train every distinct run of ``cells`` (once each) and return one result per cell.

    Each distinct run gets ``out_dir/<runs_dir>/<slug>`` (``runs_dir=""``: ``out_dir/<slug>``;
    a cell's ``folder`` is its slug when given). A folder with ``summary.json`` and the
    same config is read back, not retrained; one with ``last.pt`` but no summary is
    continued (``resume=True``); one whose saved config differs raises
    :class:`ExperimentError` before anything is trained (``elsewhere`` says in it how to
    name another folder, e.g. ``"use another --out"``). ``jobs > 1`` trains that many
    runs at a time in spawned processes, each with ``cpu_count // jobs`` torch threads.
    ``runner(cfg, run_dir=, resume=, progress=, console=)`` does the training (default
    :func:`train_runner`); it must be a module-level function when ``jobs > 1``.

    A result holds table, row, seed, run_dir, status (trained / resumed / reused /
    failed), error (text of a failed run, else empty) and the figures of
    :func:`~d2sp.experiments.results.run_figures`
    (NaN for a failed run). A failing run does not stop the others.
    """
    console = console or Console()
    runner = runner or train_runner
    if jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs}")
    out_dir = Path(out_dir)
    runs = _distinct_runs(base_cfg, cells, out_dir, runs_dir)
    state = _run_states(runs, elsewhere)
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
