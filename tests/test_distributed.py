"""Training on several processes (torchrun, gloo on the CPU) gives the single-process run.

The end-to-end test trains one tiny SynthDFER run with ``torch.distributed.run`` on two
processes and once on one process, and compares their ledgers, metrics, models and whatever
the mode keeps beside the model (e.g. a teacher). It runs the paper mode set to prune and
correct within the run (a training pass, a re-scoring pass, a decision per epoch) and the
package's default mode with its own defaults (``PurifyConfig().mode``, whatever its name);
the purifiers of every mode are compared record by record in-process in
``tests/test_contract.py``.
The comparison is fair by construction: the backbone (ViT + LSTM) has no BatchNorm, whose
statistics would come from each process's half of a batch; both runs use one thread and
float64 (``tests/float64_cli.py``), so that adding the same gradients in another order moves
nothing near a decision threshold; and the config prunes and corrects samples.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from d2sp.config import PurifyConfig
from d2sp.purify import CORRECTED, PRUNED, Ledger
from d2sp.training.distributed import DistInfo, ShardedBatchSampler, check_batch_size, launch_info
from d2sp.training.loaders import make_loader

ENTRY = Path(__file__).with_name("float64_cli.py")

# ---- the sharded sampler -------------------------------------------------------------------


@pytest.mark.parametrize("n, batch, world", [(37, 8, 2), (37, 12, 4), (40, 8, 2), (5, 8, 4)])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_union_of_rank_batches_is_the_single_process_batch(n, batch, world, drop_last, shuffle):
    def batches(rank, world_size):
        gen = torch.Generator().manual_seed(7)
        return list(
            ShardedBatchSampler(
                n, batch, rank=rank, world_size=world_size, shuffle=shuffle,
                generator=gen, drop_last=drop_last, pad_empty=True,
            )
        )  # fmt: skip

    single = batches(0, 1)
    shards = [batches(r, world) for r in range(world)]
    assert all(len(s) == len(single) for s in shards)
    for k, whole in enumerate(single):
        assert len(whole) == (batch if drop_last else min(batch, n - k * batch))
        for r in range(world):
            mine, total = ShardedBatchSampler(
                n, batch, rank=r, world_size=world, drop_last=drop_last
            ).share_sizes(k)
            assert total == len(whole) and mine == len(whole[r::world])
            assert shards[r][k] == (whole[r::world] or whole[:1])  # an empty share: a stand-in
        union = [i for r in range(world) for i in shards[r][k][: len(whole[r::world])]]
        assert sorted(union) == sorted(whole)
    every = [i for whole in single for i in whole]
    assert len(every) == len(set(every))  # each index at most once per epoch ...
    assert len(every) == (n - n % batch if drop_last else n)  # ... and all but the dropped


@pytest.mark.parametrize("drop_last", [False, True])
def test_single_process_loader_is_the_plain_shuffled_dataloader(drop_last):
    """The trainer's loader over a subset gives the batches that
    ``DataLoader(shuffle=True, generator=...)`` gives (the trainer's order before sharding)."""
    data = [(torch.zeros(1), 0, i) for i in range(50)]
    kept = np.arange(3, 50, 2)  # (24,)
    ours = make_loader(data, kept, batch_size=8, shuffle=True, seed=5, workers=0, drop_last=drop_last)
    plain = DataLoader(
        torch.utils.data.Subset(data, kept.tolist()),
        batch_size=8,
        shuffle=True,
        generator=torch.Generator().manual_seed(5),
        drop_last=drop_last,
    )
    plain = [b[2].tolist() for b in plain]  # one pass: the generator moves on
    assert [b[2].tolist() for b in ours] == plain
    shards = [
        [b[2].tolist() for b in make_loader(
            data, kept, batch_size=8, shuffle=True, seed=5, workers=0, drop_last=drop_last,
            info=DistInfo(rank=r, local_rank=r, world_size=2),
        )]
        for r in range(2)
    ]  # fmt: skip
    for k, whole in enumerate(plain):
        assert shards[0][k] + shards[1][k] == whole[0::2] + whole[1::2]


def test_global_batch_must_divide_by_the_number_of_processes():
    assert check_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match=r"optim.batch_size \(30\) is the global batch"):
        check_batch_size(30, 4)


def test_launch_info_reads_torchrun_environment():
    assert not launch_info({}).enabled
    info = launch_info({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (info.rank, info.local_rank, info.world_size, info.is_main) == (2, 0, 4, False)
    with pytest.raises(ValueError, match="RANK"):
        launch_info({"WORLD_SIZE": "2"})


# ---- end to end: torchrun on two CPU processes -----------------------------------------------

TINY_DDP = [
    "data.options={num_train: 48, num_test: 21, size: 32, min_frames: 4, max_frames: 8, "
    "workers: 1}",
    "data.num_frames=4",
    "data.size=32",
    "data.workers=0",
    "model.name=vit_lstm",  # no BatchNorm (see tests/test_models.py TINY)
    "model.options={img_size: 32, dim: 32, depth: 2, heads: 4, lstm_hidden: 16}",
    "device=cpu",
    "optim.epochs=5",
    "optim.batch_size=8",
    "optim.lr=0.05",
]
# the paper mode set to prune and correct within 5 epochs (this near-chance model scores
# w·p ≈ 0.1-0.2: λ = 0.15 prunes some clips and keeps others, which τ = 0.01 relabels); the
# default mode as it is
MODES = {
    "paper": ["purify.mode=paper", "purify.warmup_epochs=2", "purify.t=1", "purify.lam=0.15", "purify.tau=0.01"],
    "default": [f"purify.mode={PurifyConfig().mode}"],
}


def d2sp(*args, processes: int = 1) -> str:
    """Run ``tests/float64_cli.py`` (the d2sp command line in float64) on ``processes``
    processes; returns its output, failing the test on a non-zero exit."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(
        [*launcher, str(ENTRY), "train", *args, "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


def run_folder(run: Path):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows, Ledger.load(run / "ledger.npz")


def tensors(state, prefix=""):
    """``{dotted name: tensor}`` of every tensor in a nested state (dicts and lists)."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    return {k: v for key, value in items for k, v in tensors(value, f"{prefix}.{key}").items()}


@pytest.fixture(scope="module")
def two_runs(request, tmp_path_factory):
    """The same run of mode ``request.param`` (a key of :data:`MODES`) on two processes
    (first: it generates SynthDFER on rank 0) and on one."""
    tmp = tmp_path_factory.mktemp(f"ddp-{request.param}")
    common = [*TINY_DDP, *MODES[request.param], f"data.root={tmp / 'synth'}", f"out_dir={tmp}"]
    out = d2sp(*common, "name=two", processes=2)
    d2sp(*common, "name=one")
    return tmp, out, request.param


@pytest.mark.slow
@pytest.mark.parametrize("two_runs", list(MODES), indirect=True)
def test_two_processes_train_the_single_process_run(two_runs):
    tmp, out, mode = two_runs
    assert out.count("two: WAR") == 1, out  # only rank 0 prints
    rows_two, ledger_two = run_folder(tmp / "two")
    rows_one, ledger_one = run_folder(tmp / "one")
    state = ledger_one.column("state")
    if mode == "paper":  # the equality means something
        assert (state == PRUNED).any() and (state == CORRECTED).any()
    for col in ("state", "label", "pred"):
        np.testing.assert_array_equal(ledger_two.column(col), ledger_one.column(col), col)
    for col in ("weight", "p_pred", "p_label", "score", "delta_p"):
        np.testing.assert_allclose(
            ledger_two.column(col).astype(np.float64),
            ledger_one.column(col).astype(np.float64),
            rtol=1e-3,
            atol=1e-3,  # float16 columns: one rounding step
            equal_nan=True,
            err_msg=col,
        )
    assert len(rows_two) == len(rows_one) == 5
    for two, one in zip(rows_two, rows_one, strict=True):
        # the loss is a float32 mean over a different number of terms per process
        assert two.pop("loss") == pytest.approx(one.pop("loss"), rel=1e-6)
        assert two == one  # WAR, UAR, confusion, counts, LR, accuracy
    ckpt_two = torch.load(tmp / "two" / "last.pt", weights_only=True)
    ckpt_one = torch.load(tmp / "one" / "last.pt", weights_only=True)
    # the model, and what the mode keeps beside it (e.g. a teacher), kept in step by every process
    for two, one in [(tensors(ckpt_two["model"]), tensors(ckpt_one["model"])),
                     (tensors(ckpt_two["purifier"]["mode_state"]), tensors(ckpt_one["purifier"]["mode_state"]))]:  # fmt: skip
        assert two.keys() == one.keys()
        for name, value in one.items():
            torch.testing.assert_close(two[name], value, rtol=1e-9, atol=1e-9, msg=name)
    for name in ("config.yaml", "summary.json", "class_counts.json", "best.pt", "prev.pt"):
        assert (tmp / "two" / name).is_file(), name


@pytest.mark.slow
@pytest.mark.parametrize("two_runs", ["default"], indirect=True)
def test_two_processes_resume_a_killed_run(two_runs):
    """A copy of the 2-process run that lost its last checkpoint (a kill while saving epoch
    5) resumes from epoch 4 on two processes and ends as the uninterrupted run."""
    tmp, _, _ = two_runs
    killed = tmp / "killed"
    shutil.copytree(tmp / "two", killed)
    (killed / "last.pt").unlink()
    out = d2sp("--resume", str(killed), processes=2)
    assert "resuming" in out and out.count("resuming") == 1
    rows, ledger = run_folder(killed)
    rows_full, ledger_full = run_folder(tmp / "two")
    assert rows == rows_full
    for col in Ledger.COLUMNS:
        np.testing.assert_array_equal(ledger.column(col), ledger_full.column(col), col)
