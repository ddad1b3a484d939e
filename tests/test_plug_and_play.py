"""The plug-and-play loop (README) on a tiny model, for every mode: the same six calls; and
real behaviour where a mode purifies: flipped labels get corrected, unusable samples pruned."""

import numpy as np
import pytest
import torch
from torch import nn

from d2sp import ClassifierHead, create_purifier, list_modes


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


def train_plain_loop(mode, epochs=20, **options):
    """The README loop: one purifier object, six calls."""
    torch.manual_seed(0)
    x, given, true, junk, flipped = noisy_blobs()
    purifier = create_purifier(mode, given.numpy(), num_classes=4, **options)
    model = Tiny(weight_branch=purifier.weight_branch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    purifier.bind(model, optimizer=opt)  # (a mode with a second network steps it like the model)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        train = torch.as_tensor(purifier.train_indices())
        for idx in train[torch.randperm(len(train), generator=gen)].split(32):
            x_aug = x[idx] + 0.1 * torch.randn(len(idx), 16, generator=gen)  # augmented
            loss = purifier.batch_loss(model, x_aug, idx)  # runs the model: logits, w = model(x_aug)
            opt.zero_grad()
            loss.backward()
            opt.step()
            purifier.after_step()
        for idx in torch.as_tensor(purifier.rescore_indices()).split(64):
            purifier.rescore(idx, x[idx])  # un-augmented views
        purifier.end_epoch()
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
