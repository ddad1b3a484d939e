"""The benchmark-only mode ``heldout``: its rules on hand-made numbers, the six-call loop on noisy
and clean blobs (known flipped labels corrected, a clean set left alone), and an exact resume."""

import importlib

import numpy as np
import pytest
import torch
from torch import nn

import d2sp
from d2sp.purify import create_purifier, purifier_class
from d2sp.purify.ledger import CORRECTED, UNDECIDED
from tests.test_plug_and_play import noisy_blobs

pytestmark = pytest.mark.usefixtures("heldout_mode")  # registered for this module's tests only


def ho():
    """The mode's module, imported when a test runs (at collection it would register
    ``heldout`` for every module's tests)."""
    return importlib.import_module("benchmarks.quality.heldout")


def test_the_mixture_puts_the_high_loss_cluster_in_its_high_component():
    rng = np.random.default_rng(0)
    loss = np.concatenate([rng.normal(0.2, 0.05, 200), rng.normal(3.0, 0.3, 50)])
    post = ho().high_loss_posterior(loss, np.ones(250, bool))
    assert (post[:200] < 0.01).all() and (post[200:] > 0.99).all()
    # fitted on a subset, evaluated on every sample; too few samples: no component at all
    assert ho().high_loss_posterior(loss, np.arange(250) >= 240).max() == 0.0


def test_a_flag_needs_another_class_at_its_mean_self_confidence():
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.35, 0.65]])
    labels = torch.tensor([0, 0, 1, 1, 0])
    members = torch.tensor([True, True, True, False, False])
    # thresholds: class 0 mean(0.9, 0.7) = 0.8; class 1: 0.8 (sample 2 only)
    flagged = ho().confident_disagreement(probs, labels, members)
    assert flagged.tolist() == [False, False, False, False, False]  # 0.6 < 0.8, 0.65 < 0.8
    probs[4] = torch.tensor([0.1, 0.9])
    assert ho().confident_disagreement(probs, labels, members).tolist() == [False, False, False, False, True]


def test_the_collapse_guard_keeps_out_the_most_suspicious_within_each_class():
    labels = torch.tensor([0] * 10 + [1] * 10)
    out = torch.tensor([True] * 8 + [False] * 2 + [True] * 2 + [False] * 8)
    suspicion = torch.arange(20, dtype=torch.float32)
    capped = ho().cap_left_out(out, suspicion, labels, share=0.5, num_classes=2)
    assert capped[:10].sum() == 5 and capped[3:8].all()  # class 0: its 5 most suspicious
    assert capped[10:12].all() and capped.sum() == 7


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.body(x), None


def blob_run(flip, epochs=12, seed=0, **options):
    """The six calls (``d2sp.run_epoch``) on Gaussian blobs with ``flip`` of the labels
    flipped; returns the purifier, the true labels and the flipped mask."""
    torch.manual_seed(seed)
    x, given, true, _, flipped = noisy_blobs(n=480, flip=flip, junk=0.0, seed=seed)
    model = Mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    pur = create_purifier("heldout", given.numpy(), num_classes=4, model=model, optimizer=opt, epochs=epochs, **options)
    gen = torch.Generator().manual_seed(seed)

    def train_batches(ids):
        ids = torch.as_tensor(ids)
        for idx in ids[torch.randperm(len(ids), generator=gen)].split(32):
            yield x[idx] + 0.3 * torch.randn(len(idx), 16, generator=gen), idx

    def rescore_batches(ids):
        for idx in torch.as_tensor(ids).split(128):
            yield x[idx], idx

    for _ in range(epochs):
        d2sp.run_epoch(pur, model, opt, train_batches=train_batches, rescore_batches=rescore_batches)
    return pur, true, flipped


def test_known_flipped_labels_are_corrected_to_their_true_class():
    pur, true, flipped = blob_run(flip=0.3)
    corrected = pur.corrected_indices()
    assert len(corrected) >= 0.3 * flipped.sum()  # the confident part of the flips found
    labels = pur.labels_for(torch.as_tensor(corrected)).numpy()
    assert (labels == true[corrected]).mean() >= 0.95  # and put right
    assert flipped[corrected].mean() >= 0.95  # hardly a clean label changed
    assert flipped[pur.pruned_indices()].mean() >= 0.9  # held out: the flips not yet judged
    state = pur.ledger.column("state")
    assert (state[0] == UNDECIDED).all()  # no decision during the warm-up
    assert (state[-1][corrected] == CORRECTED).all()
    suspicion, suggested = pur.suspicion()
    assert suspicion[flipped].mean() > 3 * suspicion[~flipped].mean()
    assert (suggested[flipped] == true[flipped]).mean() > 0.8
    assert (pur.labels.numpy() != true).sum() == flipped.sum()  # the annotation is never changed


def test_a_clean_set_is_trained_as_it_is_and_the_run_says_why():
    pur, true, _ = blob_run(flip=0.0)
    assert len(pur.corrected_indices()) == 0 and len(pur.pruned_indices()) == 0
    assert any("nothing to purify" in e for e in pur.events)


def test_the_warm_up_follows_the_run_length_and_a_too_short_run_is_refused():
    cls = purifier_class("heldout")
    o = cls.resolve({})
    assert cls.warmup_for(o, 60) == 9 and cls.warmup_for(o, 10) == 2 and cls.warmup_for(o, None) == 3
    assert cls.schedule_problems(o, epochs=2, dataset="dfew")
    assert not cls.schedule_problems(o, epochs=15, dataset="dfew")


def test_it_resumes_exactly_from_its_state(tmp_path):
    a, *_ = blob_run(flip=0.3, epochs=6)
    path = tmp_path / "purifier.pt"
    torch.save(a.state_dict(), path)
    b = create_purifier("heldout", a.labels.numpy(), num_classes=4, model=Mlp(), epochs=6)
    b.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(a.ens, b.ens) and torch.equal(a.held, b.held) and torch.equal(a.streak, b.streak)
    for p, q in zip(a.teacher.model.parameters(), b.teacher.model.parameters(), strict=True):
        assert torch.equal(p, q)
    np.testing.assert_array_equal(a.kept_indices(), b.kept_indices())


@pytest.mark.parametrize("bad", [{"agree": 0}, {"log_odds": -1.0}, {"max_pruned": 1.5}])
def test_bad_options_are_named(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        create_purifier("heldout", [0, 1], num_classes=2, **bad)
