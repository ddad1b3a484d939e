"""Bad input end to end: a test split that is the training split, a clip that breaks during
training, skips that stay visible (issue 13)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from d2sp.cli import app
from d2sp.config import load_config
from d2sp.data.splits import SharedTestError
from d2sp.data.validate import DataWarning
from d2sp.purify import Ledger
from d2sp.training.build import load_splits
from tests.conftest import TINY_TREE as TINY
from tests.test_datasets import make_ferv39k, make_mafw, truncate, write_clip
from tests.test_distributed import ENTRY


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
    template = "Train & Test Set/single/no_caption/set_{fold}/{split}.txt"
    cfg = data_config(root, "mafw", f"{{split_file: '{template}'}}", "data.fold=1")
    train, test = load_splits(cfg, progress=False)
    assert (len(train), len(test)) == (3, 1)


# ------------------------------------------------------------- a clip unreadable in training


def bad_tree(root: Path) -> Path:
    """8 training and 4 test clips of 4 frames in list files; the 2nd frame of training clip
    c2 (row 3) and of test clip t1 (row 2) is truncated, which ``check=list`` (one listing
    per clip) does not see."""
    for i in range(8):
        write_clip(root / "clips" / f"c{i}", 4)
    for i in range(4):
        write_clip(root / "clips" / f"t{i}", 4)
    (root / "train.txt").write_text("".join(f"clips/c{i} 4 {i % 3}\n" for i in range(8)))
    (root / "test.txt").write_text("".join(f"clips/t{i} 4 {i % 3}\n" for i in range(4)))
    truncate(root / "clips" / "c2" / "00002.jpg")
    return root


def train_cli(tmp_path: Path, root: Path, name: str, *extra: str):
    args = ["train", "--dataset", "list", "--root", str(root), "--out-dir", str(tmp_path / "runs"),
            "--name", name, "--no-progress",
            "data.options={list_file: '{split}.txt', check: list, num_classes: 3}",
            *TINY, "optim.epochs=3", *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_a_clip_unreadable_in_training_stops_with_its_row_and_no_worker_traceback(tmp_path):
    root = bad_tree(tmp_path / "data")
    result = train_cli(tmp_path, root, "stop", "data.workers=1")  # read in a worker process
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    for needed in ("error: ", "train.txt:3: ", "c2/00002.jpg: cannot decode image",
                   "(met at epoch 1)", "--skip-bad"):  # fmt: skip
        assert needed in out, f"output: expected {needed!r}, got {out!r}"
    for unwanted in ("Traceback", "worker process", "Original"):
        assert unwanted not in out, f"output: expected no {unwanted!r}, got {out!r}"


def test_a_clip_unreadable_in_training_is_skipped_recorded_and_left_out(tmp_path):
    root = bad_tree(tmp_path / "data")
    truncate(root / "clips" / "t1" / "00002.jpg")
    result = train_cli(tmp_path, root, "skip", "--skip-bad", "purify.lam=0.0")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "skipped 2 ->" in out, f"final line: expected 'skipped 2', got {out!r}"
    run = tmp_path / "runs" / "skip"
    lines = (run / "skipped.txt").read_text().splitlines()
    assert len(lines) == 2, f"skipped.txt: expected 2 lines, got {lines}"
    assert all(line.endswith("(met at epoch 1)") for line in lines), lines
    assert lines[0].startswith(f"{root / 'train.txt'}:3: ") and "c2/00002.jpg" in lines[0]
    assert lines[1].startswith(f"{root / 'test.txt'}:2: ") and "t1/00002.jpg" in lines[1]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["skipped"], summary["skipped_during_training"]) == (2, 2), summary
    ledger = Ledger.load(run / "ledger.npz")
    recorded = np.isfinite(ledger.column("p_pred").astype(float))  # (E, N)
    assert not recorded[:, 2].any(), "clip 2: expected never trained or re-scored"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # epoch 1: 4 batches of 2, one of them without clip 2; then 7 clips, the last one dropped
    assert [r["trained"] for r in rows] == [7, 6, 6], rows
    assert recorded.sum(1).tolist() == [7, 6, 6]
    assert all(sum(map(sum, r["confusion"])) == 3 for r in rows)  # the 4 test clips less t1


def test_a_damaged_cache_frame_is_skipped_or_named(tmp_path):
    root = bad_tree(tmp_path / "data")
    c2 = root / "clips" / "c2"
    (c2 / "00002.jpg").write_bytes((c2 / "00001.jpg").read_bytes())  # whole again: it caches
    cache = tmp_path / "cache"
    cfg = data_config(root, "list", "{list_file: '{split}.txt', check: list, num_classes: 3}",
                      f"data.cache={cache}")  # fmt: skip
    load_splits(cfg, progress=False)  # packs both splits
    clips = np.load(cache / "train" / "clips.npy")
    frames = np.load(cache / "train" / "frames.npy")
    with open(cache / "train" / "shard-00000.bin", "r+b") as f:
        for _shard, offset, length in frames[clips[2] : clips[3]].tolist():
            f.seek(offset)
            f.write(b"\0" * length)  # clip 2's frames are no JPEG any more, same file size
    result = train_cli(tmp_path, root, "cached", f"data.cache={cache}")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "train.txt:3: " in out and "corrupt cached frame" in out and "--skip-bad" in out, out
    result = train_cli(tmp_path, root, "cached-skip", f"data.cache={cache}", "--skip-bad")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "cached-skip" / "skipped.txt").read_text().splitlines()
    assert len(lines) == 1 and "train.txt:3: " in lines[0] and "(met at epoch 1)" in lines[0]


def torchrun_train(tmp_path: Path, root: Path, name: str, *extra: str):
    """``d2sp train`` on two CPU processes (torchrun, gloo); a deadlock fails by timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(ENTRY), "train", "--dataset", "list", "--root", str(root), "--out-dir",
            str(tmp_path / "runs"), "--name", name, "--no-progress",
            "data.options={list_file: '{split}.txt', check: list, num_classes: 3}", *TINY,
            "model.name=vit_lstm", "model.options={img_size: 16, dim: 16, depth: 1, heads: 2, "
            "lstm_hidden: 8}", "device=cpu", "optim.epochs=2", *extra]  # fmt: skip
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_two_processes_skip_the_same_clip_or_stop_together(tmp_path):
    root = bad_tree(tmp_path / "data")
    done = torchrun_train(tmp_path, root, "ddp-skip", "--skip-bad")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # with 2 processes and batches of 2, the process given clip 2 trains a stand-in
    run = tmp_path / "runs" / "ddp-skip"
    lines = (run / "skipped.txt").read_text().splitlines()
    assert len(lines) == 1 and "train.txt:3: " in lines[0], lines
    assert json.loads((run / "summary.json").read_text())["skipped_during_training"] == 1
    done = torchrun_train(tmp_path, root, "ddp-stop")
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "train.txt:3: " in out and "--skip-bad" in out, out
    assert "worker process" not in out, out


# ------------------------------------------------------------------------ skips stay visible


def test_a_bad_label_row_read_by_both_splits_counts_once_and_shows_without_progress(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    with open(root / "single_label.txt", "ab") as f:
        f.write(b"\xff\xfe.mp4 anger\n")  # row 5, read by the train and the test split
    args = ["train", "--dataset", "mafw", "--root", str(root), "--fold", "1", "--skip-bad",
            "--out-dir", str(tmp_path / "runs"), "--name", "m", "--no-progress", *TINY]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "warning: 1 bad row(s) skipped" in out, f"output: expected the count, got {out!r}"
    assert "single_label.txt:5: expected '<id>.mp4 <emotion>'" in out, out
    assert "skipped 1 ->" in out, f"final line: expected 'skipped 1', got {out!r}"
    run = tmp_path / "runs" / "m"
    assert len((run / "skipped.txt").read_text().splitlines()) == 1
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["skipped"], summary["skipped_during_training"]) == (1, 0), summary
