"""``d2sp demo``: SynthDFER generated once, plain CE and D2SP trained with one seed, compared
against the generator's ground truth."""

from __future__ import annotations

import copy
import math

import typer
from rich.console import Console
from rich.table import Table

from d2sp.commands.common import console, fail, resolve_config
from d2sp.config import ConfigError, PurifyConfig


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def demo(
    out_dir: str = typer.Option("runs/demo", help="Where the two run folders go"),
    config: str = typer.Option("demo", help="YAML file or packaged name"),
    overrides: list[str] = typer.Argument(None, help="Config overrides such as optim.epochs=5"),
    no_progress: bool = typer.Option(False, help="No progress bars"),
) -> None:
    """Generate SynthDFER (once), train plain CE and D2SP with one seed, compare them."""
    from d2sp.data.splits import load_split
    from d2sp.training.fit import train as run_training
    from d2sp.training.metrics import purification_scores

    try:
        base_cfg = resolve_config(config, overrides, {})
        split = load_split(base_cfg.data, "train", progress=not no_progress)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    gt = split.ground_truth
    if gt is None:
        fail(f"the demo needs a dataset with a ground truth (synthdfer), got {base_cfg.data.dataset!r}")
    console.print(f"SynthDFER at [bold]{split.root}[/] ({len(split.samples)} training clips)")
    rows = []
    for label, name, purifying in [("plain CE", "baseline", False), ("D2SP", "d2sp", True)]:
        cfg = copy.deepcopy(base_cfg)
        if not purifying:
            cfg.purify = PurifyConfig(mode="ce")
        cfg.name, cfg.out_dir = name, out_dir
        try:
            result = run_training(  # the demo's own folders: trained again each time
                cfg, overwrite=True, progress=not no_progress, console=console
            )
        except (ValueError, FileNotFoundError) as e:
            fail(str(e))
        ledger = result.purifier.ledger
        scores = purification_scores(
            ledger.column("state")[-1],
            ledger.column("label")[-1],
            low_quality=gt["low_quality"],
            true_label=gt["true_label"],
            given_label=gt["given_label"],
        )
        rows.append((label, result, scores, purifying))
    table = Table(title=f"SynthDFER demo (seed {base_cfg.seed}, test split)")
    for col in ("method", "WAR", "UAR", "pruned", "relabelled", "prune P", "prune R",
                "removed P", "relabel P", "relabel R", "time"):  # fmt: skip
        table.add_column(col, justify="right" if col != "method" else "left", no_wrap=True)
    for label, r, s, purifying in rows:
        pr = [
            _pct(s[k]) if purifying else "–"
            for k in ("prune_precision", "prune_recall", "removed_precision", "correct_precision", "correct_recall")
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
    Console(width=max(console.width, 124)).print(table)  # never squeeze the columns
    low, bad = gt["low_quality"].mean(), gt["mislabeled"].mean()
    k = len(split.class_names)
    console.print(
        f"prune P/R: against the low-quality clips; removed P: share of the pruned clips that "
        f"are low quality or mislabelled. Chance: a random prune hits a low-quality clip "
        f"{100 * low:.1f}% of the time (either kind {100 * (gt['low_quality'] | gt['mislabeled']).mean():.1f}%); "
        f"{100 * bad:.1f}% of the training labels are wrong and a random relabel of a random "
        f"clip fixes one {100 * bad / (k - 1):.1f}% of the time. "
        f"Run folders: {out_dir}/baseline, {out_dir}/d2sp (d2sp report DIR for the details)"
    )
