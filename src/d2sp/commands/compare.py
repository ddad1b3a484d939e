"""``d2sp compare``: methods side by side (plain CE, D2SP, its improved mode, baselines).

d2sp compare -c demo --methods ce,paper,d2sp+,adaptive --seeds 0,1,2   # -> runs/compare/table.md
d2sp compare -c demo-paper --methods ce,scn,cleanlab,paper --jobs 2 optim.epochs=30
"""

from __future__ import annotations

from pathlib import Path

import typer

from d2sp.commands.common import console, fail, parse_list, resolve_config


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


def compare(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as optim.epochs=30"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    methods: str = typer.Option(
        "ce,scn,cleanlab,d2sp", help="Comma-separated: ce, d2sp, d2sp+, scn, cleanlab, oracle"
    ),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds"),
    out: str = typer.Option("runs/compare", help="Folder for the run folders and the tables"),
    jobs: int = typer.Option(1, help="Runs trained at a time (separate processes when > 1)"),
    no_progress: bool = typer.Option(False, help="No progress bar"),
) -> None:
    """Compare methods: WAR, UAR, train size and (SynthDFER) P/R of what each removed or relabelled.

    Resumable: one folder per run under OUT/runs; finished runs are read back, not retrained.
    """
    from d2sp.config import ConfigError
    from d2sp.experiments.plan import plan_comparison

    try:
        cfg = resolve_config(config, overrides, {})
        seed_list = parse_list(seeds, int, "--seeds")
        plan = plan_comparison(cfg, methods=parse_list(methods, str, "--methods"), seeds=seed_list)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    title = (
        f"Comparison — config {config or 'defaults'}, seeds {','.join(map(str, seed_list))}, "
        f"overrides {' '.join(overrides or []) or 'none'}"
    )
    run_grid(cfg, plan, out=out, jobs=jobs, progress=not no_progress, title=title)
