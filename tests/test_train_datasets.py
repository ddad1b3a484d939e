"""`d2sp train --dataset X --root R ...` end to end on tiny trees in the real layouts."""

import json

import pytest
from typer.testing import CliRunner

from d2sp.cli import app
from tests.conftest import TINY_TREE as TINY
from tests.test_datasets import make_dfew, make_ferv39k, make_mafw, tree_hash


@pytest.mark.parametrize(
    "name, make, fold, classes",
    [("dfew", make_dfew, 1, 7), ("ferv39k", make_ferv39k, None, 7), ("mafw", make_mafw, 1, 11)],
)
def test_train_on_real_layouts(tmp_path, name, make, fold, classes):
    root = make(tmp_path / name)
    before = tree_hash(root)
    args = [
        "train",
        "--dataset",
        name,
        "--root",
        str(root),
        "--model",
        "r18_lstm",
        "--out-dir",
        str(tmp_path / "runs"),
        "--name",
        name,
        "--no-progress",
        *TINY,
    ]
    if fold is not None:
        args += ["--fold", str(fold)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / name
    counts = json.loads((run / "class_counts.json").read_text())
    assert len(counts["train"]) == classes
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len(rows[0]["confusion"]) == classes
    assert tree_hash(root) == before  # nothing the user owns is written
