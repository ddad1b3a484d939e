"""The purification-quality suite (``benchmarks/quality/suite.py``): picking cells and rows,
the results file it resumes from, its table, and a tiny run end to end (two epochs of two
rows on scikit-learn's digits), run again to show that it skips what is done."""

import importlib
import json

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("d2sp_plus")  # the suite registers d2sp+; undone after


def bench(name: str):
    """A module of the suite, imported when a test runs (importing the rows registers
    ``d2sp+``; at collection it would add the mode to what other test files parametrize)."""
    return importlib.import_module(f"benchmarks.quality.{name}")


def test_cells_by_pattern_in_the_grids_order():
    cells = bench("cells")
    settings = cells.settings_with([])
    assert [cells.name(c) for c in cells.select_cells(None, settings)] == [
        cells.name(c) for c in cells.all_cells(settings) if cells.name(c) in cells.GRID
    ]
    assert len(cells.select_cells(None, settings)) == len(cells.GRID)
    picked = cells.select_cells(["fashion/*/long", "fashion/dual/short"], settings)
    assert [cells.name(c) for c in picked] == ["fashion/dual/short", *(f"fashion/{n}/long" for n in cells.NOISES)]
    with pytest.raises(ValueError, match="'digits/dual/pretrained' matches no cell"):
        cells.select_cells(["digits/dual/pretrained"], settings)  # digits has no pretrained regime
    assert cells.select_cells(["digits/dual/pretrained"], cells.settings_with(["digits.pretrained=3"]))


def test_settings_change_the_cell_key_only_where_they_shape_the_cell():
    cells = bench("cells")
    base, other = cells.settings_with([]), cells.settings_with(["fashion.long=31"])
    short, long = ("fashion", "dual", "short"), ("fashion", "dual", "long")
    assert cells.cell_key(short, "sgd", base) == cells.cell_key(short, "sgd", other)
    assert cells.cell_key(long, "sgd", base) != cells.cell_key(long, "sgd", other)
    assert cells.cell_key(long, "sgd", base) != cells.cell_key(long, "adam", base)
    with pytest.raises(ValueError, match="expected dataset.key=value"):
        cells.settings_with(["fashion.epochs=3"])


def test_methods_groups_expand_once_and_unknown_rows_are_refused():
    suite, rows = bench("suite"), bench("rows")
    assert suite.expand_methods(None) == list(rows.GROUPS["default"])
    assert suite.expand_methods(["CE", "all", "gce"]) == list(rows.METHODS)
    assert rows.RECOMMENDED in rows.METHODS and "d2sp+" in rows.PEERS
    ablation = rows.parse_row("paper lam=0.5")
    assert (ablation.kind, ablation.mode, ablation.options) == ("mode", "paper", {"lam": 0.5})
    with pytest.raises(rows.UnknownRow, match="unknown row 'nope'"):
        suite.expand_methods(["nope"])
    with pytest.raises(rows.UnknownRow, match="has no option 'nope'"):
        rows.parse_row("paper nope=1")


def test_results_file_keeps_the_last_line_of_a_run_and_skips_a_torn_one(tmp_path):
    store = bench("store").Results(tmp_path)
    assert store.load() == {}
    store.append({"key": "c", "row": "CE", "seed": 0, "war": 0.5})
    store.append({"key": "c", "row": "CE", "seed": 0, "war": 0.6})
    store.append({"key": "c", "row": "CE", "seed": 1, "war": 0.7})
    with open(store.path, "a") as f:
        f.write('{"key": "c", "row": "gce", "se')  # a run killed while writing
    runs = store.load()
    assert sorted(runs) == [("c", "CE", 0), ("c", "CE", 1)] and runs[("c", "CE", 0)]["war"] == 0.6


def test_the_table_holds_the_mean_war_per_row_and_cell_and_the_noisy_cells_mean():
    tables = bench("tables")
    a, b, clean = ("fashion", "dual", "short"), ("fashion", "heavy", "short"), ("fashion", "clean", "short")
    res = {(a, "CE", 0): {"war": 0.70}, (a, "CE", 1): {"war": 0.72}, (b, "CE", 0): {"war": 0.60},
           (clean, "CE", 0): {"war": 0.80}, (a, "gce", 0): {"war": 0.75}}  # fmt: skip
    lines = tables.war_table(res, [a, b, clean], [0, 1], "gce", ["CE", "gce"])
    assert lines[0] == "| cell | CE | gce |"
    assert lines[2] == "| fashion/dual/short | 71.0 | **75.0** |"
    assert lines[3] == "| fashion/heavy/short | 60.0 | **–** |"
    assert lines[5] == "| **mean, 2 noisy cells** | 65.5 | 75.0 (1 of 2) |"
    assert lines[6] == "| **mean, 1 clean cell** | 80.0 | – |"


def test_a_tiny_run_is_stored_resumed_and_tabled(tmp_path, capsys):
    suite = bench("suite")
    argv = ["--cells", "digits/dual/short", "digits/clean/short", "--methods", "CE", "oracle", "--seeds", "0",
            "--set", "digits.short=2", "--cache", str(tmp_path)]  # fmt: skip
    suite.main(["run", *argv])
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    runs = [json.loads(x) for x in lines]
    assert sorted((r["cell"], r["row"]) for r in runs) == [
        ("digits/clean/short", "CE"), ("digits/dual/short", "CE"), ("digits/dual/short", "oracle")
    ]  # the oracle needs the noise: no clean cell
    assert all(0.0 < r["war"] <= 1.0 and r["epochs"] == 2 for r in runs)
    printed = capsys.readouterr().out
    assert "| digits/dual/short |" in printed and "**mean, 1 noisy cell**" in printed
    suite.main(["run", *argv])  # resumed: nothing to do
    assert (tmp_path / "results.jsonl").read_text().splitlines() == lines
    out = tmp_path / "suite.md"
    suite.main(["table", *argv, "--out", str(out)])
    text = out.read_text()
    assert "## WAR (%)" in text and "## Targets of the recommended mode" in text
    war = {r["row"]: r["war"] for r in runs if r["cell"] == "digits/dual/short"}
    assert f"| digits/dual/short | {100 * war['CE']:.1f} | {100 * war['oracle']:.1f} |" in text
    assert np.isfinite(runs[0]["cpu"])
