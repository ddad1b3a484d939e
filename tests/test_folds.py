"""``d2sp train --folds``: every fold of a k-fold protocol in its own run folder, resumable,
and a table whose mean is the mean of the fold runs."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from d2sp.cli import app
from d2sp.experiments.folds import parse_folds
from tests.test_datasets import write_clip
from tests.test_train_datasets import TINY


def make_dfew_folds(root, clips=15, folds=5):
    """A DFEW tree with five folds: clip v is in the test set of fold (v % 5) + 1."""
    labels = root / "label"
    labels.mkdir(parents=True)
    rows = [(v, v % 7 + 1) for v in range(1, clips + 1)]
    for v, _ in rows:
        write_clip(root / "clip_224x224" / f"{v:05d}", 4 + v % 3, prefix=f"{v:05d}_")
    for k in range(1, folds + 1):
        test = [(v, y) for v, y in rows if v % folds + 1 == k]
        train = [(v, y) for v, y in rows if v % folds + 1 != k]
        for split, part in (("train", train), ("test", test)):
            body = "".join(f"{v},{y}\n" for v, y in part)
            (labels / f"single_{split}set_{k}.csv").write_text("video_name,label\n" + body)
    return root


def run(*args):
    result = CliRunner().invoke(app, ["train", *map(str, args), "--no-progress"])
    return result, " ".join(result.output.split())


def test_five_folds_train_resume_and_their_mean_is_the_mean_of_the_runs(tmp_path):
    root = make_dfew_folds(tmp_path / "DFEW")
    args = ["--dataset", "dfew", "--root", root, "--out-dir", tmp_path / "runs", "--name", "cv",
            "--folds", "1-5", *TINY]  # fmt: skip
    result, out = run(*args)
    assert result.exit_code == 0, result.output
    cv = tmp_path / "runs" / "cv"
    summaries = [json.loads((cv / f"fold{k}" / "summary.json").read_text()) for k in range(1, 6)]
    assert [s["test_samples"] for s in summaries] == [3] * 5
    with open(cv / "folds.csv", newline="") as f:
        rows = {r["fold"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["1", "2", "3", "4", "5", "mean", "std"]
    for key in ("war", "uar", "best_war", "best_uar", "pruned", "corrected"):
        values = [s[key] for s in summaries]
        assert float(rows["mean"][key]) == pytest.approx(np.mean(values), abs=1e-12)
        assert float(rows["std"][key]) == pytest.approx(np.std(values), abs=1e-12)
        assert [float(rows[str(k)][key]) for k in range(1, 6)] == values
    table = (cv / "folds.md").read_text()
    war = np.array([s["war"] for s in summaries])
    assert f"| **mean ± std** | {100 * war.mean():.2f} ± {100 * war.std():.2f} |" in table
    assert "mean ± std" in out and "dfew folds 1,2,3,4,5" in out

    stamp = (cv / "fold2" / "last.pt").stat().st_mtime_ns
    (cv / "fold4" / "summary.json").unlink()  # as if fold 4 had been interrupted at the end
    again, out = run(*args)
    assert again.exit_code == 0, again.output
    assert (cv / "fold2" / "last.pt").stat().st_mtime_ns == stamp  # read back, not retrained
    assert out.count("(reused") == 4 and out.count("(resumed") == 1


@pytest.mark.slow
def test_folds_in_parallel_processes_and_a_subset(tmp_path):
    root = make_dfew_folds(tmp_path / "DFEW")
    result, out = run("--dataset", "dfew", "--root", root, "--out-dir", tmp_path / "runs",
                      "--name", "two", "--folds", "1,3", "--jobs", "2", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(tmp_path / "runs" / "two" / "folds.csv", newline="") as f:
        assert [r["fold"] for r in csv.DictReader(f)] == ["1", "3", "mean", "std"]
    assert not (tmp_path / "runs" / "two" / "fold2").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "demo", "--folds", "1-2"], "--folds: dataset 'synthdfer' has no folds"),
        (["-c", "dfew", "--root", ".", "--folds", "1-5", "--fold", "2"], "--folds and --fold"),
        (["-c", "dfew", "--root", ".", "--folds", "1-6"], "dfew has folds 1-5, got [6]"),
        (["-c", "dfew", "--folds", "one"], "--folds: expected fold numbers such as 1-5 or 1,3"),
        (["-c", "dfew", "--folds", "1-2", "--resume", "runs/x"], "--folds and --resume"),
    ],
)
def test_folds_are_refused_where_they_make_no_sense(tmp_path, args, message):
    result, out = run(*args, f"out_dir={tmp_path}")
    assert result.exit_code == 2 and "Traceback" not in out
    assert message in out
    assert not any(tmp_path.iterdir())


def test_parse_folds():
    assert parse_folds("1-5") == [1, 2, 3, 4, 5]
    assert parse_folds("1,3") == [1, 3] and parse_folds("2-3,1,3") == [2, 3, 1]
    for bad in ("", "0", "3-1", "a", "1;2"):
        with pytest.raises(ValueError, match="--folds"):
            parse_folds(bad)
