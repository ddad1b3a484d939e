"""Command line: ``d2sp train``, ``d2sp demo`` and friends, one command per module of
:mod:`d2sp.commands`."""

from __future__ import annotations

import sys
import warnings

import typer

from d2sp.commands.ablate import ablate
from d2sp.commands.check import check
from d2sp.commands.common import console
from d2sp.commands.compare import compare
from d2sp.commands.demo import demo
from d2sp.commands.evaluate import evaluate
from d2sp.commands.export import export
from d2sp.commands.predict import predict
from d2sp.commands.prepare import prepare
from d2sp.commands.report import report
from d2sp.commands.train import train

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train DFER models while purifying their training data (D2SP).",
    pretty_exceptions_enable=False,
)
for command in (train, check, evaluate, predict, demo, prepare, report, export, ablate, compare):
    app.command(command.__name__)(command)


def _show_data_warnings() -> None:
    """Data warnings (``DataWarning``: something in the data repaired or ignored) are printed
    as ``note:`` lines, not as Python warnings pointing into the package's source."""
    from rich.markup import escape

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__name__ == "DataWarning":
            console.print(f"[yellow]note:[/] {escape(str(message))}", soft_wrap=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    _show_data_warnings()
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
