"""Command line: ``d2sp demo``, ``d2sp train`` and friends."""

from __future__ import annotations

import copy
import math
import sys
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from d2sp.config import ConfigError, RunConfig, load_config

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train DFER models while purifying their training data (D2SP).",
    pretty_exceptions_enable=False,
)
console = Console()


def packaged_config(name: str) -> Path:
    """Path of a YAML config shipped with the package (``demo``, ``dfew``, ...)."""
    path = resources.files("d2sp") / "configs" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in (resources.files("d2sp") / "configs").iterdir())
        raise ConfigError(f"no packaged config {name!r}; known: {', '.join(known)}")
    return Path(str(path))


def _resolve_config(config: str | None, overrides: list[str], flags: dict) -> RunConfig:
    path = None
    if config is not None:
        path = Path(config) if Path(config).suffix in (".yaml", ".yml") else packaged_config(config)
    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    return load_config(path, [*extra, *(overrides or [])])


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command()
def train(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as purify.lam=0.7"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    dataset: str = typer.Option(None, help="Dataset name (data.dataset)"),
    root: str = typer.Option(None, help="Dataset root folder (data.root)"),
    fold: int = typer.Option(None, help="Fold for datasets that have them (data.fold)"),
    model: str = typer.Option(None, help="Backbone name (model.name)"),
    pretrained: str = typer.Option(None, help="State dict for the frame encoder"),
    epochs: int = typer.Option(None, help="optim.epochs"),
    name: str = typer.Option(None, help="Run name (folder under out_dir)"),
    out_dir: str = typer.Option(None, help="Folder holding run folders"),
    skip_bad: bool = typer.Option(None, "--skip-bad/--no-skip-bad", help="Skip bad samples"),
    resume: str = typer.Option(None, help="Continue the run in this folder from last.pt"),
    no_progress: bool = typer.Option(False, help="No progress bars"),
) -> None:
    """Train one run; its folder gets the config, metrics, ledger and checkpoints."""
    from d2sp.train import train as run_training

    flags = {
        "data.dataset": dataset,
        "data.root": root,
        "data.fold": fold,
        "model.name": model,
        "model.pretrained": pretrained,
        "optim.epochs": epochs,
        "name": name,
        "out_dir": out_dir,
        "data.skip_bad": None if skip_bad is None else str(skip_bad).lower(),
    }
    try:
        if resume is not None:
            run_dir = Path(resume)
            if not (run_dir / "config.yaml").is_file():
                raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
            cfg = load_config(run_dir / "config.yaml", overrides)
            result = run_training(
                cfg, run_dir=run_dir, resume=True, progress=not no_progress, console=console
            )
        else:
            cfg = _resolve_config(config, overrides, flags)
            result = run_training(cfg, progress=not no_progress, console=console)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        _fail(str(e))
    console.print(
        f"[bold]{cfg.name}[/]: WAR {100 * result.war:.2f}  UAR {100 * result.uar:.2f}  "
        f"(best WAR {100 * result.best_war:.2f} at epoch {result.best_epoch})  "
        f"pruned {result.pruned}  corrected {result.corrected}  -> {result.run_dir}"
    )


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


@app.command()
def demo(
    out_dir: str = typer.Option("runs/demo", help="Where the two run folders go"),
    config: str = typer.Option("demo", help="YAML file or packaged name"),
    overrides: list[str] = typer.Argument(None, help="Config overrides such as optim.epochs=5"),
    no_progress: bool = typer.Option(False, help="No progress bars"),
) -> None:
    """Generate SynthDFER (once), train plain CE and D2SP with one seed, compare them."""
    from d2sp.data.splits import load_split
    from d2sp.data.synth import load_ground_truth
    from d2sp.metrics import purification_scores
    from d2sp.train import train as run_training

    try:
        base_cfg = _resolve_config(config, overrides, {})
        split = load_split(base_cfg.data, "train", progress=not no_progress)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    console.print(f"SynthDFER at [bold]{split.root}[/] ({len(split.samples)} training clips)")
    gt = load_ground_truth(split.root, split="train")
    rows = []
    for label, cgp, fgc in [("plain CE", False, False), ("D2SP", True, True)]:
        cfg = copy.deepcopy(base_cfg)
        cfg.purify.cgp, cfg.purify.fgc = cgp, fgc
        cfg.name = "d2sp" if cgp or fgc else "baseline"
        cfg.out_dir = out_dir
        try:
            result = run_training(cfg, progress=not no_progress, console=console)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
        ledger = result.purifier.ledger
        scores = purification_scores(
            ledger.column("state")[-1],
            ledger.column("label")[-1],
            low_quality=gt["low_quality"],
            true_label=gt["true_label"],
            given_label=gt["given_label"],
        )
        rows.append((label, result, scores, cgp or fgc))
    table = Table(title=f"SynthDFER demo (seed {base_cfg.seed}, test split)")
    for col in ("method", "WAR", "UAR", "pruned", "relabelled", "prune P", "prune R",
                "relabel P", "relabel R", "time"):  # fmt: skip
        table.add_column(col, justify="right" if col != "method" else "left", no_wrap=True)
    for label, r, s, purifying in rows:
        pr = [
            _pct(s[k]) if purifying else "–"
            for k in ("prune_precision", "prune_recall", "correct_precision", "correct_recall")
        ]
        table.add_row(
            label,
            f"{100 * r.war:.1f}",
            f"{100 * r.uar:.1f}",
            str(r.pruned),
            str(r.corrected),
            *pr,
            f"{r.seconds:.0f}s",
        )
    Console(width=max(console.width, 110)).print(table)  # never squeeze the columns
    low, bad = gt["low_quality"].mean(), gt["mislabeled"].mean()
    k = len(split.class_names)
    console.print(
        f"Chance: a random prune hits a low-quality clip {100 * low:.1f}% of the time; "
        f"{100 * bad:.1f}% of the training labels are wrong and a random relabel of a random "
        f"clip fixes one {100 * bad / (k - 1):.1f}% of the time. "
        f"Run folders: {out_dir}/baseline, {out_dir}/d2sp (d2sp report DIR for the details)"
    )


def _register_commands() -> None:
    from d2sp.commands.ablate import ablate
    from d2sp.commands.compare import compare
    from d2sp.commands.export import export
    from d2sp.commands.prepare import prepare
    from d2sp.commands.report import report

    app.command("prepare")(prepare)
    app.command("report")(report)
    app.command("export")(export)
    app.command("ablate")(ablate)
    app.command("compare")(compare)


_register_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
