"""``d2sp export``: the cleaned training annotation of a run, and its per-sample ledger.

    d2sp export runs/demo/d2sp                        # -> runs/demo/d2sp/export/
    d2sp export runs/demo/d2sp --out cleaned --flag-pruned

Pruned rows are removed (``--flag-pruned``: kept and flagged) and corrected labels
applied, in the annotation's own format; ``ledger.csv`` (and ``ledger.parquet`` with
pyarrow) has one row per training sample; ``issues.csv`` ranks the samples most suspicious
first with a suggested label (``--issues N``: the first N); ``skipped.txt`` lists the rows
the run skipped as bad input. The dataset folder is never written.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from d2sp.commands.common import console, fail


def export(
    run_dir: Path = typer.Argument(..., help="A run folder (config.yaml, ledger.npz)"),
    out: Path = typer.Option(None, "--out", "-o", help="Folder to write [RUN_DIR/export]"),
    flag_pruned: bool = typer.Option(
        False, "--flag-pruned", help="Keep pruned rows, flagged, instead of removing them"
    ),
    issues: int = typer.Option(
        None, "--issues", min=0, help="Rows of issues.csv, most suspicious first [all]"
    ),
) -> None:
    """Export the cleaned annotation (pruned rows out, labels corrected), ledger.csv and the
    ranked issues list (issues.csv)."""
    from d2sp.runs.export import export_run
    from d2sp.runs.folder import RunFolderError

    try:
        files = export_run(run_dir, out_dir=out, flag_pruned=flag_pruned, issues=issues)
    except (RunFolderError, ValueError, OSError) as e:
        fail(str(e))
    summary = json.loads(files["summary"].read_text(encoding="utf-8"))
    action = "flagged" if flag_pruned else "removed"
    console.print(
        f"{summary['samples']} samples: {summary['pruned']} pruned ({action}), "
        f"{summary['corrected']} corrected (epoch {summary['epoch']}), "
        f"{summary['skipped']} skipped as bad input"
    )
    for line in summary.get("notes", []):
        console.print(f"note: {line}", soft_wrap=True)
    for line in summary.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {line}", soft_wrap=True)
    for key, path in files.items():
        console.print(f"  {key}: {path}", soft_wrap=True)
