"""``d2sp report``: a self-contained HTML page about a run folder.

d2sp report runs/demo/d2sp                   # -> runs/demo/d2sp/report.html
d2sp report runs/demo/d2sp --out d2sp.html
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def report(
    run_dir: Path = typer.Argument(
        ..., help="A run folder (config.yaml, metrics.jsonl, ledger.npz)"
    ),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write [RUN_DIR/report.html]"),
) -> None:
    """Write an HTML report of a run: curves, confusion, purification, clip galleries."""
    from d2sp.report import RunFolderError, write_report

    try:
        path = write_report(run_dir, out)
    except (RunFolderError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"report: {path}", soft_wrap=True)
