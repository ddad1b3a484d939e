"""``d2sp evaluate``: a trained run's model on its test split, another fold or another dataset.

    d2sp evaluate runs/dfew                               # best.pt on the run's test split
    d2sp evaluate runs/dfew --checkpoint last --fold 2    # last.pt on DFEW fold 2's test split
    d2sp evaluate runs/dfew --dataset ferv39k --root /data/FERV39k
    d2sp evaluate runs/demo/d2sp --split train            # on the (noisy) training split
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from d2sp.commands.common import console, fail


def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder (config.yaml, best.pt / last.pt)"),
    checkpoint: str = typer.Option("best", help="best (best WAR) or last (final epoch)"),
    dataset: str = typer.Option(None, help="Another registered dataset [the run's]"),
    root: str = typer.Option(None, help="Its root folder [the run's]"),
    fold: int = typer.Option(None, help="Fold, for datasets that have them [the run's]"),
    split: str = typer.Option("test", help="test or train"),
    option: list[str] = typer.Option(
        None, "--option", "-o", help="Dataset option KEY=VALUE, repeatable (csv_file=x.csv)"
    ),
    skip_bad: bool = typer.Option(None, "--skip-bad/--no-skip-bad", help="Skip bad samples"),
    out: Path = typer.Option(None, "--out", help="Output folder [RUN_DIR/eval/<name>]"),
    batch_size: int = typer.Option(None, help="Clips per batch [the run's optim.batch_size]"),
    no_progress: bool = typer.Option(False, help="No progress bar"),
) -> None:
    """Evaluate a run's model: WAR, UAR, per-class recall, confusion matrix (JSON, CSV, PNG)."""
    from d2sp.commands.prepare import parse_options
    from d2sp.config import ConfigError
    from d2sp.data.frames import DataError
    from d2sp.runs.evaluation import evaluate_run
    from d2sp.runs.folder import RunFolderError

    try:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"--batch-size: expected an integer >= 1, got {batch_size}")
        result = evaluate_run(
            run_dir, checkpoint=checkpoint, dataset=dataset, root=root, fold=fold, split=split,
            options=parse_options(option), skip_bad=skip_bad, out=out, batch_size=batch_size,
            progress=not no_progress, console=console,
        )  # fmt: skip
    except (RunFolderError, ConfigError, DataError, ValueError, OSError) as e:
        fail(str(e))
    print_evaluation(result)


def print_evaluation(result: dict) -> None:
    """WAR, UAR, per-class recall and the confusion matrix on the console."""
    fold = f" fold {result['fold']}" if result["fold"] is not None else ""
    console.print(
        f"[bold]{result['dataset']}{fold} {result['split']}[/] ({result['samples']} clips), "
        f"{result['checkpoint']}.pt (epoch {result['epoch']}): "
        f"[bold]WAR {100 * result['war']:.2f}  UAR {100 * result['uar']:.2f}[/]",
        soft_wrap=True,
    )
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    if result["skipped"]:
        console.print(f"[yellow]skipped {len(result['skipped'])} bad row(s)[/]")
    names = result["class_names"]
    recall = Table(show_edge=False)
    for col in ("#", "class", "clips", "recall %"):
        recall.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(names):
        r = result["per_class_recall"][name]
        cell = "–" if r is None else f"{100 * r:.1f}"
        recall.add_row(str(i), name, str(result["support"][name]), cell)
    console.print(recall)
    console.print("confusion matrix (rows: true class #, columns: predicted class #)")
    confusion = Table(show_edge=False)
    confusion.add_column("#", justify="right")
    for j in range(len(names)):
        confusion.add_column(str(j), justify="right")
    for i, row in enumerate(result["confusion"]):
        confusion.add_row(str(i), *(str(v) for v in row))
    console.print(confusion)
    console.print(f"written: {Path(result['files']['metrics']).parent}", soft_wrap=True)
