"""``d2sp compare``: methods side by side (plain CE, D2SP's modes, baselines).

d2sp compare -c demo --seeds 0,1,2      # the baselines and the recommended mode -> runs/compare/
d2sp compare -c demo --methods ce,paper,adaptive --seeds 0,1,2   # -> runs/compare/table.md
d2sp compare -c demo-paper --methods ce,scn,cleanlab,paper --jobs 2 optim.epochs=30
"""

from __future__ import annotations

import typer

from d2sp.commands.common import fail, flag_overrides, parse_list, resolve_config, run_flags
from d2sp.commands.grid import grid_title, run_grid


def compare(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as optim.epochs=30"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    dataset: str = typer.Option(None, help="Dataset name (data.dataset)"),
    root: str = typer.Option(None, help="Dataset root folder (data.root)"),
    fold: int = typer.Option(None, help="Fold for datasets that have them (data.fold)"),
    model: str = typer.Option(None, help="Backbone name (model.name)"),
    pretrained: str = typer.Option(None, help="Frame-encoder weights (model.pretrained)"),
    epochs: int = typer.Option(None, help="optim.epochs"),
    skip_bad: bool = typer.Option(None, "--skip-bad/--no-skip-bad", help="Skip bad samples"),
    methods: str = typer.Option(
        None,
        help="Comma-separated mode names (docs/modes.md) [the registered baselines among ce, "
        "scn, cleanlab, gce, elr, coteach, dividemix, then the recommended mode]",
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
    from d2sp.experiments.plan import default_methods, plan_comparison

    flags = run_flags(
        dataset=dataset, root=root, fold=fold, model=model, pretrained=pretrained,
        epochs=epochs, skip_bad=skip_bad,
    )  # fmt: skip
    try:
        cfg = resolve_config(config, overrides, flags)
        seed_list = parse_list(seeds, int, "--seeds")
        chosen = default_methods() if methods is None else parse_list(methods, str, "--methods")
        plan = plan_comparison(cfg, methods=chosen, seeds=seed_list)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    title = grid_title("Comparison", config, seed_list, flag_overrides(flags, overrides))
    run_grid(cfg, plan, out=out, jobs=jobs, progress=not no_progress, title=title)
