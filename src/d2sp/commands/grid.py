"""What ``d2sp ablate`` and ``d2sp compare`` share: running a planned grid of runs, printing
and writing its tables (:mod:`d2sp.experiments`)."""

from __future__ import annotations

from pathlib import Path

import typer

from d2sp.commands.common import console, fail


def grid_title(kind: str, config: str | None, seeds: list[int], overrides: list[str] | None) -> str:
    """The tables' title: what was run, with which config, seeds and overrides."""
    return (
        f"{kind} — config {config or 'defaults'}, seeds {','.join(map(str, seeds))}, "
        f"overrides {' '.join(overrides or []) or 'none'}"
    )


def run_grid(cfg, plan, *, out: str, jobs: int, progress: bool, title: str) -> None:
    """Run a planned grid, print and write its tables; exit 1 if a run failed, 2 on errors."""
    from d2sp.config import ConfigError
    from d2sp.experiments.runner import ExperimentError, run_cells
    from d2sp.experiments.tables import summarize, write_results

    if jobs < 1:
        fail(f"--jobs: expected an integer >= 1, got {jobs}")
    for line in getattr(plan, "skipped", []):
        console.print(f"[yellow]skipped[/] {line}", soft_wrap=True)
    runs = len({c.slug for c in plan})
    console.print(f"{len(plan)} cells, {runs} distinct runs -> {Path(out) / 'runs'}")
    try:
        results = run_cells(cfg, plan, out_dir=out, jobs=jobs, progress=progress, console=console)
    except (ExperimentError, ConfigError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    summary = summarize(results)
    notes = [f"skipped: {line}" for line in getattr(plan, "skipped", [])]
    text = write_results(results, summary, out, title=title, notes=notes)
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(f"tables: {Path(out) / 'table.md'} (results.csv, summary.csv)", soft_wrap=True)
    failed = {r["run_dir"] for r in results if r["status"] == "failed"}
    if failed:
        console.print(f"[bold red]{len(failed)} of {runs} runs failed[/] (see above)")
        raise typer.Exit(1)
