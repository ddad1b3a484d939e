"""``d2sp check``: read and check the data a config names (both splits), train nothing, and
print one table of every problem.

    d2sp check -c my.yaml                                   # every bad row, by file:row
    d2sp check -c dfew --root /data/DFEW --fold 1 --level sampled

Exit status: 0 when the data has no problem, 1 when it has (each a row of the table), 2
when the config itself is refused.
"""

from __future__ import annotations

import copy
import re
import warnings

import typer
from rich.markup import escape

from d2sp.commands.common import console, fail, resolve_config, run_flags

_WHERE = re.compile(r"^(.*?:\d+): (.*)$", re.S)


def check(
    overrides: list[str] = typer.Argument(None, help="Config overrides such as data.fold=2"),
    config: str = typer.Option(None, "--config", "-c", help="YAML file or packaged name"),
    dataset: str = typer.Option(None, help="Dataset name (data.dataset)"),
    root: str = typer.Option(None, help="Dataset root folder (data.root)"),
    fold: int = typer.Option(None, help="Fold for datasets that have them (data.fold)"),
    level: str = typer.Option(
        None,
        help="Check level: list, first, sampled, full [the config's data.options.check, "
        "else auto: first]",
    ),  # fmt: skip
) -> None:
    """Check the data of a config (both splits, every clip), train nothing; a table of every
    problem (file:row and what is wrong)."""
    from d2sp.config import ConfigError

    try:
        cfg = resolve_config(config, overrides, run_flags(dataset=dataset, root=root, fold=fold))
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    data = copy.deepcopy(cfg.data)
    data.skip_bad, data.cache = True, None  # every problem listed; no cache packed
    if level is not None:
        data.options = {**data.options, "check": level}
    rows, notes, sizes = check_data(data)
    print_problems(rows, notes, sizes, data)
    if rows:
        raise typer.Exit(1)


def check_data(data) -> tuple[list[tuple[str, str, str]], list[str], dict[str, int | None]]:
    """``(problems, notes, clips per split)`` of a data config: one ``(splits, where,
    problem)`` row per bad row (a row read by both splits once), the notes of reading it
    (num_frames that differ, ...), and the clips each split keeps (None: unreadable)."""
    from d2sp.data.frames import DataError
    from d2sp.data.splits import SharedTestError, check_shared_test, load_split

    found: dict[tuple[str, str], list[str]] = {}
    notes: list[str] = []
    splits, sizes = {}, {}
    try:
        check_shared_test(data, None, None)
    except SharedTestError as e:
        found.setdefault(("data.options", str(e)), []).append("train, test")
    for split in ("train", "test"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                splits[split] = load_split(data, split, progress=False)
            except DataError as e:
                lines = [str(e)]
            except ValueError as e:
                fail(str(e))
            else:
                lines = splits[split].skipped
        notes += data_notes(caught)
        sizes[split] = len(splits[split]) if split in splits else None
        for line in lines:
            found.setdefault(split_line(line), []).append(split)
    if len(splits) == 2:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_shared_test(data, splits["train"], splits["test"])
            notes += data_notes(caught)
        except SharedTestError as e:
            found.setdefault(("data", str(e)), []).append("train, test")
    rows = [(", ".join(dict.fromkeys(s)), where, problem) for (where, problem), s in found.items()]
    return rows, list(dict.fromkeys(notes)), sizes


def split_line(line: str) -> tuple[str, str]:
    """``("file:row", "reason")`` of a ``"file:row: reason"`` line (else at its first ``": "``)."""
    m = _WHERE.match(line)
    if m:
        return m.group(1), m.group(2)
    where, _, problem = line.partition(": ")
    return (where, problem) if problem else ("", line)


def data_notes(caught) -> list[str]:
    """The messages of the data warnings among ``caught``."""
    from d2sp.data.validate import DataWarning

    return [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def print_problems(rows, notes: list[str], sizes: dict, data) -> None:
    """The problem table (markdown: split, where, problem), the notes and a closing count."""
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    where = f"{data.dataset} {data.root or ''}".strip()
    kept = ", ".join(f"{s} {n if n is not None else 'unreadable'}" for s, n in sizes.items())
    if not rows:
        console.print(f"{where}: no problem found (clips kept: {kept})")
        return
    table = ["| split | where | problem |", "|---|---|---|"]
    table += [f"| {s} | {w} | {p.replace('|', '/')} |" for s, w, p in rows]
    console.print("\n".join(table), markup=False, highlight=False)
    console.print(
        f"{where}: {len(rows)} problem(s) (clips kept: {kept}); a run stops at the first one, "
        "or skips and lists them with --skip-bad"
    )
