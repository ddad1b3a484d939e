"""The tables of a grid: mean and std over seeds per (table, row), and the files
``results.csv``, ``summary.csv`` and ``table.md``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from d2sp.experiments.results import QUALITY_COLUMNS

_TEXT_COLUMNS = ("table", "row", "seed", "run_dir", "status", "error")


def _numeric_columns(rows: Sequence[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k in _TEXT_COLUMNS or k in cols:
                continue
            if isinstance(v, int | float | np.number) and not isinstance(v, bool):
                cols.append(k)
    return cols


def summarize(results: Sequence[dict]) -> list[dict]:
    """Per (table, row), in first-seen order: ``n`` (runs that finished), ``failed``, and
    ``<col>_mean`` / ``<col>_std`` over seeds of every numeric column.

    Failed runs and undefined values (NaN, e.g. precision with nothing pruned) are left out
    of a column; a column with no value left is NaN. The std is the population std (ddof=0),
    as the tables before it used.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["table"], r["row"]), []).append(r)
    cols = _numeric_columns(results)
    out = []
    for (table, row), rows in groups.items():
        ok = [r for r in rows if r.get("status") != "failed"]
        entry: dict[str, Any] = {"table": table, "row": row, "n": len(ok)}
        entry["failed"] = len(rows) - len(ok)
        for c in cols:
            v = np.array([float(r[c]) for r in ok if c in r], dtype=float)
            v = v[np.isfinite(v)]
            entry[f"{c}_mean"] = float(v.mean()) if v.size else math.nan
            entry[f"{c}_std"] = float(v.std()) if v.size else math.nan
        out.append(entry)
    return out


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            )


def _pm(entry: dict, col: str, *, pct: bool) -> str:
    mean, std = entry.get(f"{col}_mean", math.nan), entry.get(f"{col}_std", math.nan)
    if mean is None or not math.isfinite(mean):
        return "–"
    scale = 100.0 if pct else 1.0
    return f"{scale * mean:.1f} ± {scale * std:.1f}"


_MD_COLUMNS = (  # header, column, in %
    ("WAR", "war", True),
    ("UAR", "uar", True),
    ("train size", "train_size", False),
    ("pruned", "pruned", False),
    ("corrected", "corrected", False),
)
_MD_QUALITY = (
    ("prune P", "prune_precision"),
    ("prune R", "prune_recall"),
    ("correct P", "correct_precision"),
    ("correct R", "correct_recall"),
    ("removed P", "removed_precision"),
)


def markdown_tables(
    results: Sequence[dict], summary: Sequence[dict], *, title: str, notes: Sequence[str] = ()
) -> str:
    """The Markdown text of :func:`write_results` (one table per table name)."""
    quality = any(k in r for r in results for k in QUALITY_COLUMNS)
    header = [h for h, _, _ in _MD_COLUMNS] + ([h for h, _ in _MD_QUALITY] if quality else [])
    header += ["s/run", "n"]
    lines = [f"# {title}", ""]
    lines.append(
        "Final epoch; WAR/UAR in % on the test split; train size = samples trained in the final "
        "epoch; pruned/corrected = final counts"
        + (
            "; P/R in % against the SynthDFER ground truth (removed P: share of the pruned "
            "clips that are low-quality or mislabelled; – where undefined)"
            if quality
            else ""
        )
        + "; mean ± std over seeds."
    )
    tables: dict[str, list[dict]] = {}
    for entry in summary:
        tables.setdefault(entry["table"], []).append(entry)
    for name, entries in tables.items():
        lines += ["", f"## {name}", ""]
        lines.append("| row | " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * len(header))
        for e in entries:
            cells = [_pm(e, c, pct=pct) for _, c, pct in _MD_COLUMNS]
            if quality:
                cells += [_pm(e, c, pct=True) for _, c in _MD_QUALITY]
            secs = e.get("seconds_mean", math.nan)
            cells.append(f"{secs:.0f}" if math.isfinite(secs) else "–")
            n = f"{e['n']}" + (f" ({e['failed']} failed)" if e.get("failed") else "")
            cells.append(n)
            lines.append(f"| {e['row']} | " + " | ".join(cells) + " |")
    failed = [r for r in results if r.get("status") == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""]
        seen = set()
        for r in failed:
            if r["run_dir"] not in seen:
                seen.add(r["run_dir"])
                lines.append(f"- `{r['run_dir']}` ({r['table']} / {r['row']}): {r['error']}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_results(
    results: Sequence[dict],
    summary: Sequence[dict],
    out_dir: str | Path,
    *,
    title: str,
    notes: Sequence[str] = (),
) -> str:
    """Write ``results.csv``, ``summary.csv`` and ``table.md`` into ``out_dir``.

    Returns the Markdown text (``notes`` are appended as a list under the tables).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "results.csv", results)
    _write_csv(out_dir / "summary.csv", summary)
    text = markdown_tables(results, summary, title=title, notes=notes)
    (out_dir / "table.md").write_text(text)
    return text
