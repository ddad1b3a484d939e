"""Exact resume: a run killed with SIGKILL and resumed ends as the uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from d2sp.purify import Ledger

TINY = [
    "data.options={num_train: 40, num_test: 14, size: 32, min_frames: 4, max_frames: 8, "
    "workers: 1}",
    "data.num_frames=4",
    "data.size=32",
    "data.workers=0",
    "model.options={width: 4, lstm_hidden: 16}",
    "model.dropout=0.2",  # exercises the global RNG state
    "optim.epochs=6",
    "optim.batch_size=8",
    "purify.warmup_epochs=2",
    "purify.t=2",
    "purify.lam=0.15",
    "purify.tau=0.1",
]


def d2sp(*args, **kw):
    cmd = [sys.executable, "-m", "d2sp", "train", *args, "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def comparable(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows, Ledger.load(run / "ledger.npz")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["paper", "adaptive"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, mode):
    common = [
        *TINY,
        f"data.root={tmp_path / 'synth'}",
        f"out_dir={tmp_path}",
        f"purify.mode={mode}",
    ]
    if mode == "adaptive":  # decides from epoch 2 on these 40 clips (probes, teacher, guard)
        common = [c for c in common if not c.startswith(("purify.lam", "purify.tau", "purify.t=",
                                                          "purify.warmup"))]  # fmt: skip
        common += ["purify.options={min_epochs: 2, ready_floor: 0.5, ready_gain: 1.0, min_noise: 0.0}"]
    full = d2sp(*common, "name=full")
    assert full.wait(timeout=300) == 0, full.stdout.read().decode()

    killed = d2sp(*common, "name=killed")
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it during epoch 4 (after three checkpoints)
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(metrics.read_text().splitlines()) < 6, "the run finished before it was killed"

    resumed = d2sp("--resume", str(tmp_path / "killed"))
    out = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, out
    assert "resuming" in out

    rows_full, ledger_full = comparable(tmp_path / "full")
    rows_res, ledger_res = comparable(tmp_path / "killed")
    assert rows_res == rows_full
    assert (ledger_full.column("state") >= 2).any()  # something was pruned or corrected
    for col in Ledger.COLUMNS:
        np.testing.assert_array_equal(ledger_res.column(col), ledger_full.column(col))
    assert (tmp_path / "killed" / "prev.pt").is_file()
