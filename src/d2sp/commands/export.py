"""``d2sp export``: the cleaned training annotation of a run, and its per-sample ledger.

    d2sp export runs/demo/d2sp                        # -> runs/demo/d2sp/export/
    d2sp export runs/demo/d2sp --out cleaned --flag-pruned

Pruned rows are removed (``--flag-pruned``: kept and flagged) and corrected labels
applied, in the annotation's own format; ``ledger.csv`` (and ``ledger.parquet`` with
pyarrow) has one row per training sample. The dataset folder is never written.
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
) -> None:
    """Export the cleaned annotation (pruned rows out, labels corrected) and ledger.csv."""
    from d2sp.export import export_run
    from d2sp.runs import RunFolderError

    try:
        files = export_run(run_dir, out, flag_pruned=flag_pruned)
    except (RunFolderError, OSError) as e:
        fail(str(e))
    summary = json.loads(files["summary"].read_text(encoding="utf-8"))
    action = "flagged" if flag_pruned else "removed"
    console.print(
        f"{summary['samples']} samples: {summary['pruned']} pruned ({action}), "
        f"{summary['corrected']} corrected (epoch {summary['epoch']})"
    )
    for key, path in files.items():
        console.print(f"  {key}: {path}", soft_wrap=True)
