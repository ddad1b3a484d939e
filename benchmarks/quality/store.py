"""The suite's results: one JSON line a run, appended to ``results.jsonl`` as each run ends,
so that an interrupted suite resumes where it stopped (a run already there is skipped).

A run is named by its cell's key (:func:`benchmarks.quality.cells.cell_key`: the cell, the
loop and a digest of the settings), its row and its seed; a later line for the same run
replaces an earlier one.
"""

from __future__ import annotations

import json
from pathlib import Path

RunId = tuple[str, str, int]  # (cell key, row, seed)


class Results:
    """The runs in ``folder/results.jsonl``."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "results.jsonl"

    def load(self) -> dict[RunId, dict]:
        """``{(cell key, row, seed): run}``; a torn last line (a run killed while writing) is
        left out."""
        out: dict[RunId, dict] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text().splitlines():
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[(run["key"], run["row"], run["seed"])] = run
        return out

    def append(self, run: dict) -> None:
        """Add one run (it holds ``key``, ``row`` and ``seed``) as one line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(run) + "\n")
