"""Bad input end to end: a test split that is the training split, a clip that breaks during
training, skips that stay visible (issue 13)."""

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from d2sp.cli import app
from d2sp.config import load_config
from d2sp.data.splits import SharedTestError
from d2sp.data.validate import DataWarning
from d2sp.training.build import load_splits
from tests.test_datasets import make_ferv39k, make_mafw, write_clip

TINY = [
    "data.num_frames=4",
    "data.size=16",
    "data.workers=0",
    "model.options={width: 4, lstm_hidden: 8}",
    "optim.epochs=2",
    "optim.batch_size=2",
    "purify.warmup_epochs=1",
    "purify.t=1",
]


def list_tree(root: Path, n: int = 6) -> Path:
    """``n`` frame folders ``clips/c<i>`` (4 frames each) and no annotation yet."""
    for i in range(n):
        write_clip(root / "clips" / f"c{i}", 4)
    return root


def data_config(root: Path, dataset: str, options: str, *extra):
    return load_config(None, [f"data.dataset={dataset}", f"data.root={root}",
                              f"data.options={options}", *TINY, *extra])  # fmt: skip


# ------------------------------------------------------------------ train split = test split


def test_an_option_without_split_is_refused_before_any_file_is_read(tmp_path):
    # no annotation file exists: the options alone are refused, before anything is read
    cfg = data_config(tmp_path, "list", "{list_file: all.txt}")
    with pytest.raises(SharedTestError) as info:
        load_splits(cfg, progress=False)
    message = str(info.value)
    for needed in ("data.options.list_file='all.txt' has no '{split}'", "all_{split}.txt",
                   "train_list= and test_list=", "data.allow_shared_test=true"):  # fmt: skip
        assert needed in message, f"message: expected {needed!r}, got {message!r}"
    cfg = data_config(tmp_path, "ferv39k", "{list_file: 'ferv_{split}.txt', split_file: x.csv}")
    with pytest.raises(Exception) as other:  # list_file has {split}; split_file is not read
        load_splits(cfg, progress=False)
    assert not isinstance(other.value, SharedTestError), f"got {other.value!r}"
    cfg = data_config(tmp_path, "mafw", "{split_file: my_split.txt}", "data.fold=1")
    with pytest.raises(SharedTestError, match=r"split_file='my_split.txt' has no '\{split\}'"):
        load_splits(cfg, progress=False)
    cfg = data_config(tmp_path, "csv", "{train_csv: a.csv, test_csv: a.csv}")
    with pytest.raises(SharedTestError, match=r"\(train_csv, test_csv\) are the same file 'a.csv'"):
        load_splits(cfg, progress=False)


def test_the_same_clips_under_two_names_are_refused_and_a_few_warn(tmp_path):
    root = list_tree(tmp_path)
    rows = [f"clips/c{i} 4 {i % 3}\n" for i in range(6)]
    (root / "train.txt").write_text("".join(rows[:4]))
    (root / "test.txt").write_text("".join(rows[:3]))  # all 3 test clips are training clips
    cfg = data_config(root, "list", "{list_file: '{split}.txt'}")
    with pytest.raises(SharedTestError, match=r"3 of the 3 test clips are also training clips"):
        load_splits(cfg, progress=False)
    (root / "test.txt").write_text("".join(rows[3:]))  # 1 of 3 shared: a warning
    with pytest.warns(DataWarning, match=r"1 of the 3 test clips are also training clips"):
        train, test = load_splits(cfg, progress=False)
    assert (len(train), len(test)) == (4, 3)
    (root / "test.txt").write_text("".join(rows[:3]))
    cfg = data_config(root, "list", "{list_file: '{split}.txt'}", "data.allow_shared_test=true")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, test = load_splits(cfg, progress=False)
    assert (len(train), len(test)) == (4, 3)


def test_cli_refuses_a_shared_test_split_and_writes_nothing(tmp_path):
    root = make_ferv39k(tmp_path / "FERV39k")
    (root / "all.txt").write_text(
        "2_ClipsforFaceCrop/Action/Happy/0001 3 0\n2_ClipsforFaceCrop/Action/Sad/0002 4 1\n"
    )
    args = ["train", "--dataset", "ferv39k", "--root", str(root), "--out-dir",
            str(tmp_path / "runs"), "--name", "shared", "--no-progress", *TINY]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "data.options={list_file: all.txt}"])
    assert result.exit_code == 2, result.output
    assert "list_file='all.txt' has no '{split}'" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    ok = [*args, "data.options={list_file: all.txt}", "data.allow_shared_test=true"]
    result = CliRunner().invoke(app, ok)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "runs" / "shared" / "summary.json").read_text())
    assert (summary["train_samples"], summary["test_samples"]) == (2, 2)


def test_mafw_split_files_of_every_fold_need_split(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    fold = root / "Train & Test Set" / "single" / "no_caption" / "set_1"
    cfg = data_config(root, "mafw", f"{{split_file: '{fold / 'train.txt'}'}}", "data.fold=1")
    with pytest.raises(SharedTestError, match="has no '{split}'"):
        load_splits(cfg, progress=False)
    cfg = data_config(root, "mafw", "{split_file: 'Train & Test Set/single/no_caption/set_{fold}/{split}.txt'}",
                      "data.fold=1")  # fmt: skip
    train, test = load_splits(cfg, progress=False)
    assert (len(train), len(test)) == (3, 1)
