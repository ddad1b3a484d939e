"""``d2sp report``: a self-contained HTML page about a run folder.

d2sp report runs/demo/d2sp                   # -> runs/demo/d2sp/report.html
d2sp report runs/demo/d2sp --out d2sp.html
"""

from __future__ import annotations

from pathlib import Path

import typer

from d2sp.commands.common import console, fail


def report(
    run_dir: Path = typer.Argument(
        ..., help="A run folder (config.yaml, metrics.jsonl, ledger.npz)"
    ),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write [RUN_DIR/report.html]"),
) -> None:
    """Write an HTML report of a run: curves, confusion, purification, clip galleries."""
    from d2sp.runs.folder import RunFolderError
    from d2sp.runs.report import write_report

    try:
        path = write_report(run_dir, out=out)
    except (RunFolderError, OSError) as e:
        fail(str(e))
    console.print(f"report: {path}", soft_wrap=True)
