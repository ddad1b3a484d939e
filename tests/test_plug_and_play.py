"""The plug-and-play loop (README) on a tiny model, for every mode: the same six calls; and
real behaviour where a mode purifies: flipped labels get corrected, unusable samples pruned."""

import numpy as np
import pytest
import torch
from torch import nn

from d2sp import ClassifierHead, create_purifier, list_modes, run_epoch


def noisy_blobs(n=480, k=4, dim=16, flip=0.15, junk=0.15, seed=0):
    """Gaussian class blobs; ``flip`` share relabelled at random, ``junk`` share pure noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, dim)) * 3.0
    y = np.arange(n) % k
    x = centres[y] + rng.normal(0, 1.0, (n, dim))
    order = rng.permutation(n)
    junk_idx, flip_idx = order[: int(junk * n)], order[int(junk * n) : int((junk + flip) * n)]
    x[junk_idx] = rng.normal(0, 3.0, (len(junk_idx), dim))  # no class signal at all
    given = y.copy()
    given[flip_idx] = (y[flip_idx] + rng.integers(1, k, len(flip_idx))) % k
    return (torch.tensor(x, dtype=torch.float32), torch.tensor(given), y,
            np.isin(np.arange(n), junk_idx), np.isin(np.arange(n), flip_idx))  # fmt: skip


class Tiny(nn.Module):
    def __init__(self, weight_branch=True):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU())
        self.head = ClassifierHead(64, 4, weight_branch=weight_branch)

    def forward(self, x):
        return self.head(self.encoder(x))  # logits (B, 4), w (B,) or None


def blob_batches(x, gen, rescore_batch=64):
    """The loop's batches over the blobs ``x (N, 16)``: ``(train_batches, rescore_batches)``
    for :func:`d2sp.run_epoch`: training batches of 32 in a shuffled order with Gaussian
    jitter (the augmentation), re-scoring batches un-augmented."""

    def train_batches(indices):
        order = torch.as_tensor(indices)
        for idx in order[torch.randperm(len(order), generator=gen)].split(32):
            yield x[idx] + 0.1 * torch.randn(len(idx), 16, generator=gen), idx

    def rescore_batches(indices):
        for idx in torch.as_tensor(indices).split(rescore_batch):
            yield x[idx], idx

    return train_batches, rescore_batches


def train_plain_loop(mode, epochs=20, **options):
    """The README loop: one purifier object, six calls (:func:`d2sp.run_epoch`)."""
    torch.manual_seed(0)
    x, given, true, junk, flipped = noisy_blobs()
    purifier = create_purifier(mode, given.numpy(), num_classes=4, **options)
    model = Tiny(weight_branch=purifier.weight_branch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    purifier.bind(model, optimizer=opt)  # (a mode with a second network steps it like the model)
    train_batches, rescore_batches = blob_batches(x, torch.Generator().manual_seed(0))
    for _ in range(epochs):
        run_epoch(purifier, model, opt, train_batches=train_batches, rescore_batches=rescore_batches)
    return purifier, true, junk, flipped, given


@pytest.mark.parametrize("mode", list_modes())
def test_every_mode_runs_the_same_loop(mode):
    options = {"paper": dict(warmup_epochs=3), "scn": dict(warmup_epochs=3), "dividemix": dict(warmup_epochs=1)}.get(mode, {})
    if mode in ("oracle", "cleanlab"):  # selections a run makes before training, given here
        _, given, true, junk, _ = noisy_blobs()
        options = dict(keep=~junk, targets=true if mode == "oracle" else given.numpy())
    purifier, *_ = train_plain_loop(mode, epochs=6, **options)
    assert purifier.ledger.num_epochs == 6
    assert purifier.ledger.column("state").shape == (6, 480)
    score, _ = purifier.suspicion()
    assert np.isfinite(score[purifier.keep_mask.numpy()]).all()
