"""``d2sp train``: one run, its folder holding the config, metrics, ledger and checkpoints.

    d2sp train -c dfew --root /data/DFEW --fold 1 --model r18_lstm
    d2sp train -c demo purify.mode=paper optim.epochs=20
    d2sp train --resume runs/dfew                 # continue a killed or interrupted run
    d2sp train --resume runs/dfew --skip-bad      # ... skipping the clips it meets unreadable
    d2sp train --resume runs/dfew optim.epochs=150  # extend a run to more epochs
    d2sp train -c demo --overwrite                # replace the run in runs/demo
    d2sp train -c dfew --root /data/DFEW --folds 1-5 --jobs 2   # runs/dfew/fold1..5, folds.md
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from d2sp.commands.common import console, fail, flag_overrides, resolve_config, run_flags
from d2sp.config import ConfigError, load_config


def train(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as purify.lam=0.7"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    dataset: str = typer.Option(None, help="Dataset name (data.dataset)"),
    root: str = typer.Option(None, help="Dataset root folder (data.root)"),
    fold: int = typer.Option(None, help="Fold for datasets that have them (data.fold)"),
    folds: str = typer.Option(
        None, help="Train each of these folds (1-5, 1,3) in out_dir/name/fold<k>; resumable"
    ),
    jobs: int = typer.Option(1, help="With --folds: folds trained at a time (processes)"),
    model: str = typer.Option(None, help="Backbone name (model.name)"),
    pretrained: str = typer.Option(
        None,
        help="Weights to start from: imagenet, clip, a state-dict file, or a d2sp run's best.pt "
        "(its backbone, with a new head) (model.pretrained)",
    ),
    epochs: int = typer.Option(None, help="optim.epochs"),
    name: str = typer.Option(None, help="Run name (folder under out_dir)"),
    out_dir: str = typer.Option(None, help="Folder holding run folders"),
    skip_bad: bool = typer.Option(None, "--skip-bad/--no-skip-bad", help="Skip bad samples"),
    resume: str = typer.Option(
        None, help="Continue the run in this folder from last.pt (more epochs extend it)"
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Remove the files of a run already in the run folder, then start again"
    ),
    no_progress: bool = typer.Option(False, help="No progress bars (the epoch lines stay)"),
) -> None:
    """Train one run; its folder gets the config, metrics, ledger and checkpoints."""
    from d2sp.training.checks import RunInterrupted
    from d2sp.training.fit import train as run_training

    flags = run_flags(
        dataset=dataset, root=root, fold=fold, model=model, pretrained=pretrained,
        epochs=epochs, name=name, out_dir=out_dir, skip_bad=skip_bad,
    )  # fmt: skip
    if folds is not None:
        _train_folds(config, overrides, flags, folds, fold=fold, resume=resume, jobs=jobs,
                     overwrite=overwrite, progress=not no_progress)  # fmt: skip
        return
    cfg = None
    try:
        cfg, run_dir = _run_config(config, overrides, flags, resume)
        result = run_training(
            cfg, run_dir=run_dir, resume=resume is not None, overwrite=overwrite,
            progress=not no_progress, console=console, verbose=True,
        )  # fmt: skip
    except RunInterrupted as e:
        console.print(f"[bold yellow]{escape(e.describe())}[/]", soft_wrap=True)
        raise typer.Exit(130) from None
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        fail(str(e) + _go_on_hint(e, resume, cfg))
    console.print(final_line(cfg.name, result), soft_wrap=True)


def _go_on_hint(error: Exception, resume: str | None, cfg) -> str:
    """How to go on after a clip met unreadable during training stopped a run."""
    if "(met at epoch " not in str(error) or cfg is None:
        return ""
    run_dir = Path(resume) if resume else Path(cfg.out_dir) / cfg.name
    if not (run_dir / "config.yaml").is_file():
        return ""
    return (
        f". The run in {run_dir} continues with: d2sp train --resume {run_dir} --skip-bad "
        "(or starts again with the same command and --skip-bad, if it stopped in its first epoch)"
    )


def final_line(name: str, result) -> str:
    """The closing line of a run: its figures, or what a run of no epoch did."""
    if result.war is None:
        return (
            f"[bold]{name}[/]: no epoch trained (optim.epochs=0); the data was read and "
            f"checked: skipped {result.skipped} (d2sp check lists the problems) -> {result.run_dir}"
        )
    return (
        f"[bold]{name}[/]: WAR {100 * result.war:.2f}  UAR {100 * result.uar:.2f}  "
        f"(best WAR {100 * result.best_war:.2f} at epoch {result.best_epoch})  "
        f"pruned {result.pruned}  corrected {result.corrected}  skipped {result.skipped}  "
        f"-> {result.run_dir}"
    )


def _run_config(config, overrides, flags, resume):
    """``(config, run folder or None)`` of one run: with ``--resume`` the run's own saved
    config (or ``-c``'s, checked against it by the trainer) with the flags and overrides."""
    if resume is None:
        return resolve_config(config, overrides, flags), None
    run_dir = Path(resume)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"{run_dir}: no run to resume there (no config.yaml); a run stopped while its data "
            "was read and checked writes nothing: start it again with the command that started it"
        )
    if config is not None:
        return resolve_config(config, overrides, flags), run_dir
    given = flag_overrides(flags, overrides)
    return load_config(run_dir / "config.yaml", given), run_dir


def _train_folds(config, overrides, flags, folds, *, fold, resume, jobs, overwrite, progress):
    """``--folds``: one run per fold, then the fold table; exit 1 if a fold failed."""
    from d2sp.experiments.folds import parse_folds, run_folds
    from d2sp.experiments.runner import ExperimentError

    if fold is not None:
        fail("--folds and --fold: give one of them (--folds 1-5 trains every fold)")
    if resume is not None:
        fail("--folds and --resume: --folds continues interrupted folds by itself")
    if jobs < 1:
        fail(f"--jobs: expected an integer >= 1, got {jobs}")
    try:
        fold_list = parse_folds(folds)
        cfg = resolve_config(config, overrides, flags)
        console.print(f"{len(fold_list)} fold(s) -> {Path(cfg.out_dir) / cfg.name}/fold<k>")
        result = run_folds(
            cfg, fold_list, jobs=jobs, overwrite=overwrite, progress=progress, console=console
        )
    except KeyboardInterrupt:
        console.print(
            "[bold yellow]interrupted[/]: run the same command again; --folds reads back the "
            "finished folds and continues the interrupted ones", soft_wrap=True,
        )  # fmt: skip
        raise typer.Exit(130) from None
    except (ConfigError, ExperimentError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    text = Path(result["files"]["markdown"]).read_text()
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    files = result["files"]
    console.print(f"tables: {files['markdown']} ({files['csv']})", soft_wrap=True)
    failed = len(result["rows"]) - result["finished"]
    if failed:
        console.print(f"[bold red]{failed} of {len(result['rows'])} folds failed[/] (see above)")
        raise typer.Exit(1)
