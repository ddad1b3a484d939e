"""A bad file met before training, not after an epoch; a run that stopped early is started
again; an interrupt says where the run stopped and how to continue (issue 28, item 3)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from d2sp.cli import app
from d2sp.data import validate
from d2sp.data.registry import create_dataset
from d2sp.training.checkpoint import resume_source
from tests.conftest import TINY_TREE
from tests.test_bad_input import bad_tree
from tests.test_datasets import write_video

CSV = "data.options={csv_file: '{split}.csv', num_classes: 3}"


def video_tree(root: Path, *, bad_test: bool = True) -> Path:
    """6 training and 3 test videos in ``{split}.csv`` files; test row 3 (``t1.mp4``) is
    not a video at all when ``bad_test`` (non-empty, so a listing or ``stat`` passes it)."""
    for i in range(6):
        write_video(root / "clips" / f"c{i}.mp4", 5)
    for i in range(3):
        write_video(root / "clips" / f"t{i}.mp4", 5)
    if bad_test:
        (root / "clips" / "t1.mp4").write_bytes(b"\0" * 64 + b"these bytes are no video")
    (root / "train.csv").write_text(
        "path,label\n" + "".join(f"clips/c{i}.mp4,{i % 3}\n" for i in range(6))
    )
    (root / "test.csv").write_text(
        "path,label\n" + "".join(f"clips/t{i}.mp4,{i % 3}\n" for i in range(3))
    )
    return root


def cli(tmp_path: Path, root: Path, name: str, *extra: str, dataset: str = "csv", options=CSV):
    args = ["train", "--dataset", dataset, "--root", str(root), "--out-dir",
            str(tmp_path / "runs"), "--name", name, "--no-progress", options, *TINY_TREE,
            *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def flat(result) -> str:
    return " ".join(result.output.split())


def test_an_unreadable_test_video_stops_the_run_before_training_or_is_skipped(tmp_path):
    root = video_tree(tmp_path / "data")
    started = time.perf_counter()
    result = cli(tmp_path, root, "stop")
    assert result.exit_code == 2, result.output
    out = flat(result)
    assert f"{root / 'test.csv'}:3: " in out and "t1.mp4: cannot open video" in out, out
    assert "met at epoch" not in out and "Traceback" not in out, out
    assert not (tmp_path / "runs" / "stop").exists(), "nothing is written before training"
    assert time.perf_counter() - started < 30

    result = cli(tmp_path, root, "skip", "--skip-bad")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "skip"
    lines = (run / "skipped.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{root / 'test.csv'}:3: "), lines
    assert "(met at epoch" not in lines[0], "found before training, not during it"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["skipped"], summary["skipped_during_training"]) == (1, 0), summary
    assert (summary["train_samples"], summary["test_samples"]) == (6, 2)

    # check=list (one stat per clip) still finds it only while the run reads it
    listed = CSV.replace("num_classes: 3", "num_classes: 3, check: list")
    result = cli(tmp_path, root, "listed", options=listed)
    assert result.exit_code == 2 and "met at epoch 1" in flat(result), result.output


def test_the_preflight_check_remembers_clips_by_file_stat(tmp_path, monkeypatch):
    root = video_tree(tmp_path / "data", bad_test=False)
    for i in range(3):  # and frame folders
        from tests.test_datasets import write_clip

        write_clip(root / "frames" / f"f{i}", 4)
    (root / "mixed.csv").write_text(
        "path,label\n"
        + "".join(f"clips/c{i}.mp4,0\n" for i in range(6))
        + "".join(f"frames/f{i},1\n" for i in range(3))
    )
    opened, decoded = [], []
    probe, image = validate.probe_video, validate.check_image
    monkeypatch.setattr(validate, "probe_video", lambda p, **kw: opened.append(p) or probe(p, **kw))
    monkeypatch.setattr(validate, "check_image", lambda p: decoded.append(p) or image(p))

    def build():
        opened.clear(), decoded.clear()
        started = time.perf_counter()
        split = create_dataset("csv", root=root, split="train", csv_file="mixed.csv")
        return split, time.perf_counter() - started

    split, first = build()
    assert (len(opened), len(decoded)) == (6, 3), "every video opened, every folder's first frame"
    assert [s.num_frames for s in split.samples] == [5] * 6 + [4] * 3
    split, again = build()
    assert (opened, decoded) == ([], []), "a second check of unchanged clips decodes nothing"
    assert [s.num_frames for s in split.samples] == [5] * 6 + [4] * 3
    write_video(root / "clips" / "c4.mp4", 7)  # replaced: checked again
    frame = root / "frames" / "f2" / "00001.jpg"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    split, _ = build()
    assert [Path(p).name for p in opened] == ["c4.mp4"] and decoded == [str(frame)]
    assert split.samples[4].num_frames == 7
    (root / "clips" / "c1.mp4").write_bytes(b"\0" * 100)  # broken after it passed
    with pytest.raises(validate.DataError, match=r"mixed.csv:3: .*c1.mp4: cannot open video"):
        create_dataset("csv", root=root, split="train", csv_file="mixed.csv")
    print(f"pre-flight check of 9 clips: {1000 * first:.1f} ms, again {1000 * again:.1f} ms")


def test_a_run_that_stopped_in_its_first_epoch_starts_again_and_resumes_skipping(tmp_path):
    root = bad_tree(tmp_path / "data")  # training clip c2 (row 3) has a truncated 2nd frame
    options = "data.options={list_file: '{split}.txt', num_classes: 3}"
    result = cli(tmp_path, root, "r", dataset="list", options=options)
    assert result.exit_code == 2 and "met at epoch 1" in flat(result), result.output
    run = tmp_path / "runs" / "r"
    for command in (["report", str(run)], ["export", str(run)]):
        result = CliRunner().invoke(app, command)
        out = flat(result)
        assert result.exit_code == 2 and "not a run folder" not in out, out
        assert "stopped before finishing its first epoch" in out and "--resume" in out, out

    # the same --name again: not refused, started again (and it stops again at clip c2)
    result = cli(tmp_path, root, "r", dataset="list", options=options)
    out = flat(result)
    assert "already holds a run" not in out and "starting again the run" in out, out
    assert result.exit_code == 2 and "met at epoch 1" in out, out
    # --resume --skip-bad: accepted; with no checkpoint yet it starts from the beginning
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--skip-bad", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "train.txt:3: " in (run / "skipped.txt").read_text()

    # a run with checkpoints that meets a bad clip later: --resume --skip-bad goes on
    (root / "clips" / "c2" / "00002.jpg").write_bytes(
        (root / "clips" / "c2" / "00001.jpg").read_bytes()
    )
    result = cli(tmp_path, root, "later", dataset="list", options=options)
    assert result.exit_code == 0, result.output
    (root / "clips" / "c5" / "00003.jpg").write_bytes(b"\xff\xd8 cut")
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "runs" / "later"),
                                      "--skip-bad", "--no-progress", "optim.epochs=3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "later" / "skipped.txt").read_text().splitlines()
    assert len(lines) == 1 and "train.txt:6: " in lines[0] and "(met at epoch 3)" in lines[0]


def test_a_finished_run_is_still_refused(tmp_path):
    root = bad_tree(tmp_path / "data")
    (root / "clips" / "c2" / "00002.jpg").write_bytes(
        (root / "clips" / "c2" / "00001.jpg").read_bytes()
    )
    options = "data.options={list_file: '{split}.txt', num_classes: 3}"
    assert cli(tmp_path, root, "done", dataset="list", options=options).exit_code == 0
    result = cli(tmp_path, root, "done", dataset="list", options=options)
    assert result.exit_code == 2 and "already holds a run" in flat(result), result.output


@pytest.mark.slow
def test_sigint_says_where_the_run_stopped_and_the_resume_command(tmp_path):
    root = video_tree(tmp_path / "data", bad_test=False)
    args = [sys.executable, "-m", "d2sp", "train", "--dataset", "csv", "--root", str(root),
            "--out-dir", str(tmp_path / "runs"), "--name", "int", "--no-progress", CSV,
            *TINY_TREE, "purify.lam=0.0", "optim.epochs=200"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metrics = tmp_path / "runs" / "int" / "metrics.jsonl"
    deadline = time.time() + 600  # (a loaded machine: the test waits for the epochs, not a clock)
    while time.time() < deadline and proc.poll() is None:  # after two checkpoints
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(metrics.read_text().splitlines()) >= 2, "no two epochs"
    proc.send_signal(signal.SIGINT)
    out = " ".join(proc.communicate(timeout=60)[0].decode().split())
    assert proc.returncode == 130, out
    run = tmp_path / "runs" / "int"
    source = resume_source(run)  # last.pt, or prev.pt when the interrupt fell between the two
    assert source is not None, out
    saved = torch.load(source, map_location="cpu", weights_only=True)["epoch"]
    stopped = re.search(r"interrupted in epoch (\d+)/200 of (\S+);", out)
    assert stopped and stopped.group(2) == str(run), out
    assert int(stopped.group(1)) in (saved, saved + 1) and saved >= 1, out
    assert f"its last.pt holds epoch {saved}/200" in out, out
    assert f"Continue with: d2sp train --resume {run}" in out, out
    assert "Traceback" not in out, out


@pytest.mark.slow
def test_videos_checked_in_the_main_thread_are_read_by_forked_workers(tmp_path):
    # the check decodes in this process; a cache build then forks workers that decode too
    script = f"""
import sys
from pathlib import Path
from d2sp.data.video import probe_video
from d2sp.data.registry import create_dataset
from tests.test_preflight import video_tree
root = video_tree(Path({str(tmp_path)!r}) / "data", bad_test=False)
probe_video(str(root / "clips" / "c0.mp4"), decode="first")
split = create_dataset("csv", root=root, csv_file="train.csv", check="sampled", workers=1,
                       cache_dir=root.parent / "cache", cache_size=8)
print(len(split))
"""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.split()[-1] == "6", done.stdout + done.stderr
