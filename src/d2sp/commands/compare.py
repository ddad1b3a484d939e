"""``d2sp compare``: methods side by side (plain CE, D2SP's modes, baselines).

d2sp compare -c demo --methods ce,paper,adaptive --seeds 0,1,2   # -> runs/compare/table.md
d2sp compare -c demo-paper --methods ce,scn,cleanlab,paper --jobs 2 optim.epochs=30
"""

from __future__ import annotations

import typer

from d2sp.commands.common import fail, parse_list, resolve_config
from d2sp.commands.grid import grid_title, run_grid


def compare(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as optim.epochs=30"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    methods: str = typer.Option(
        "ce,scn,cleanlab,d2sp", help="Comma-separated modes: adaptive, paper, ce, scn, cleanlab, oracle, gce, elr, coteach, dividemix"
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
    title = grid_title("Comparison", config, seed_list, overrides)
    run_grid(cfg, plan, out=out, jobs=jobs, progress=not no_progress, title=title)
