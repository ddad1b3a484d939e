"""``d2sp ablate``: the paper-mode ablation (stages; λ, τ and t sweeps) over seeds.

d2sp ablate -c demo-paper --seeds 0,1,2                     # -> runs/ablate/table.md
d2sp ablate -c demo-paper --tables stages,t --ts 1,2,3 --jobs 2 optim.epochs=30
"""

from __future__ import annotations

import typer

from d2sp.commands.common import fail, flag_overrides, parse_list, resolve_config, run_flags
from d2sp.commands.grid import grid_title, run_grid


def ablate(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as optim.epochs=30"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    dataset: str = typer.Option(None, help="Dataset name (data.dataset)"),
    root: str = typer.Option(None, help="Dataset root folder (data.root)"),
    fold: int = typer.Option(None, help="Fold for datasets that have them (data.fold)"),
    model: str = typer.Option(None, help="Backbone name (model.name)"),
    pretrained: str = typer.Option(None, help="Frame-encoder weights (model.pretrained)"),
    epochs: int = typer.Option(None, help="optim.epochs"),
    skip_bad: bool = typer.Option(None, "--skip-bad/--no-skip-bad", help="Skip bad samples"),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds"),
    tables: str = typer.Option("stages,lam,tau,t", help="Tables to run: stages, lam, tau, t"),
    lams: str = typer.Option(None, help="λ values of the lam table [0.5,0.6,0.7,0.8]"),
    taus: str = typer.Option(None, help="τ values of the tau table [0.2,0.3,0.4,0.5]"),
    ts: str = typer.Option(None, help="t values of the t table [1,2,3,4]"),
    out: str = typer.Option("runs/ablate", help="Folder for the run folders and the tables"),
    jobs: int = typer.Option(1, help="Runs trained at a time (separate processes when > 1)"),
    no_progress: bool = typer.Option(False, help="No progress bar"),
) -> None:
    """Ablate CGP/FGC and sweep λ, τ, t (paper mode); resumable, one folder per run."""
    from d2sp.config import ConfigError
    from d2sp.experiments.plan import plan_ablation

    flags = run_flags(
        dataset=dataset, root=root, fold=fold, model=model, pretrained=pretrained,
        epochs=epochs, skip_bad=skip_bad,
    )  # fmt: skip
    try:
        cfg = resolve_config(config, overrides, flags)
        seed_list = parse_list(seeds, int, "--seeds")
        table_list = parse_list(tables, str, "--tables")
        plan = plan_ablation(
            cfg,
            tables=table_list,
            lams=None if lams is None else parse_list(lams, float, "--lams"),
            taus=None if taus is None else parse_list(taus, float, "--taus"),
            ts=None if ts is None else parse_list(ts, int, "--ts"),
            seeds=seed_list,
        )
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    title = grid_title("Ablation (paper mode)", config, seed_list, flag_overrides(flags, overrides))
    run_grid(cfg, plan, out=out, jobs=jobs, progress=not no_progress, title=title)
