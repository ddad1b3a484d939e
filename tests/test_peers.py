"""The noisy-label methods as modes (gce, elr, coteach, dividemix): each one's defining rule on
hand-made numbers, the second network's exchange and bookkeeping, the six-call loop on noisy
blobs, and an exact resume through the trainer."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from d2sp import run_epoch, train
from d2sp.purify import Ledger, create_purifier, purifier_class
from d2sp.purify import dividemix as dm
from d2sp.purify.coteach import forget_rate_at, small_loss_selection
from d2sp.purify.elr import elr_regulariser, elr_target_update
from d2sp.purify.gce import gce_loss
from d2sp.purify.ledger import KEPT, PRUNED
from d2sp.purify.peer import fresh_copy, optimizer_like
from d2sp.training.checks import check_processes
from tests.conftest import tiny_config
from tests.test_plug_and_play import blob_batches, noisy_blobs

PEERS = ["gce", "elr", "coteach", "dividemix"]


class Mlp(nn.Module):
    """``x (B, 16) -> (logits (B, 4), None)``."""

    def __init__(self, dim=16, k=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, k))

    def forward(self, x):
        return self.body(x), None


def with_model(mode, labels, k=4, lr=0.05, **options):
    torch.manual_seed(0)
    model = Mlp(k=k)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    pur = create_purifier(mode, labels, num_classes=k, model=model, optimizer=opt, **options)
    return pur, model, opt


# ---- GCE ------------------------------------------------------------------------------------


def test_gce_loss_is_one_minus_p_y_to_the_q_over_q():
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    y = torch.tensor([0, 2, 2])
    logits = probs.log()
    want = [(1 - 0.5**0.7) / 0.7, (1 - 0.3**0.7) / 0.7, (1 - 0.6**0.7) / 0.7]
    assert gce_loss(logits, y, q=0.7).tolist() == pytest.approx(want, rel=1e-5)
    assert gce_loss(logits, y, q=1.0).tolist() == pytest.approx([0.5, 0.7, 0.4], rel=1e-5)  # MAE/2
    pur = create_purifier("gce", y.numpy(), num_classes=3)  # the mode's default q = 0.7
    assert pur.loss(logits, None, torch.arange(3)).item() == pytest.approx(np.mean(want), rel=1e-5)
    assert pur.end_epoch()["recorded"] == 3 and not pur.weight_branch


def test_gce_gradient_is_the_ce_gradient_scaled_by_p_y_to_the_q():
    z = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.1, 2.0]], requires_grad=True)
    y = torch.tensor([1, 2])
    (g_gce,) = torch.autograd.grad(gce_loss(z, y, q=0.7).sum(), z)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), z)
    p_y = torch.softmax(z, 1).detach()[torch.arange(2), y]
    torch.testing.assert_close(g_gce, g_ce * p_y.pow(0.7)[:, None])


def test_gce_suspicion_is_one_minus_p_y_and_suggests_the_prediction():
    pur = create_purifier("gce", [0, 1, 1], num_classes=2)
    pur.loss(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), None, torch.arange(3))
    pur.end_epoch()
    score, suggested = pur.suspicion()
    p1 = torch.softmax(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), 1)[:, 1]
    want = [1 - (1 - p1[0].item()), 1 - p1[1].item(), 1 - p1[2].item()]
    assert score.tolist() == pytest.approx(want, rel=1e-5)
    assert suggested.tolist() == [0, 1, 0]
    assert (pur.ledger.column("state")[-1] == KEPT).all()


# ---- ELR ------------------------------------------------------------------------------------


def test_elr_targets_after_two_updates_are_the_hand_computed_moving_average():
    beta, lam = 0.7, 3.0
    z1 = torch.tensor([[20.0, 0.0, 0.0], [0.0, 1.0, 0.5]])  # row 0 saturates: the clamp acts
    z2 = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])

    def p_hat(z):
        p = torch.softmax(z, 1).clamp(1e-4, 1 - 1e-4)
        return p / p.sum(1, keepdim=True)

    pur = create_purifier("elr", y.numpy(), num_classes=3)  # defaults β = 0.7, λ = 3
    pur.loss(z1, None, torch.arange(2))
    torch.testing.assert_close(pur.targets, (1 - beta) * p_hat(z1))  # t starts at 0
    loss = pur.loss(z2, None, torch.arange(2))
    t2 = beta * (1 - beta) * p_hat(z1) + (1 - beta) * p_hat(z2)
    torch.testing.assert_close(pur.targets, t2)
    p2 = torch.softmax(z2, 1).clamp(1e-4, 1 - 1e-4)
    want = F.cross_entropy(z2, y) + lam * torch.log(1 - (t2 * p2).sum(1)).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    # the pure functions give the same
    torch.testing.assert_close(
        elr_target_update(torch.zeros(2, 3), torch.softmax(z1, 1), beta=beta),
        (1 - beta) * p_hat(z1),
    )
    torch.testing.assert_close(
        elr_regulariser(torch.softmax(z2, 1), t2), torch.log(1 - (t2 * p2).sum(1))
    )
    pur.end_epoch()
    score, suggested = pur.suspicion()
    t_y = (t2 / t2.sum(1, keepdim=True))[torch.arange(2), y]
    assert score.tolist() == pytest.approx((1 - t_y).tolist(), rel=1e-5)
    assert suggested.tolist() == t2.argmax(1).tolist()


def test_elr_regulariser_pulls_the_prediction_towards_the_target():
    t = torch.tensor([[0.9, 0.05, 0.05]])
    z = torch.zeros(1, 3, requires_grad=True)
    (g,) = torch.autograd.grad(elr_regulariser(torch.softmax(z, 1), t).sum(), z)
    assert g[0, 0] < 0 < g[0, 1]  # descending raises p[0], the target's class


def test_elr_leaves_its_targets_for_a_batch_not_recorded():
    pur = create_purifier("elr", [0, 1], num_classes=2)
    pur.loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), None, torch.arange(2), record=False)
    assert pur.targets.abs().sum() == 0
    pur.end_epoch()
    assert np.isnan(pur.suspicion()[0]).all()  # no evidence, no score


# ---- Co-teaching ----------------------------------------------------------------------------


def test_forget_rate_ramps_over_num_gradual_epochs():
    rates = [forget_rate_at(e, forget_rate=0.2, num_gradual=10) for e in (0, 5, 10, 30)]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.2])
    assert small_loss_selection(torch.tensor([0.3, 0.1, 0.9, 0.2]), 0.5).tolist() == [1, 3]


class OneHot(nn.Module):
    """``x (B, 4) -> (x · Wᵀ, None)``: on one-hot inputs, sample ``i``'s logits are ``W[:, i]``."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        return self.fc(x), None


def test_coteach_trains_each_network_on_the_samples_the_other_selects():
    y = torch.zeros(4, dtype=torch.long)
    model = OneHot()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pur = create_purifier("coteach", y.numpy(), num_classes=4, model=model, optimizer=opt,
                          forget_rate=0.25, num_gradual=0)  # fmt: skip
    peer = pur.peer.net
    assert not torch.equal(peer.fc.weight, model.fc.weight)  # drawn afresh
    with torch.no_grad():  # every sample predicted as its label 0, but one under each network
        for net, bad in ((model, 0), (peer, 1)):
            w = torch.zeros(4, 4)
            w[0] = 2.0
            w[0, bad], w[1, bad] = 0.0, 2.0
            net.fc.weight.copy_(w)
    x = torch.eye(4)
    loss = pur.batch_loss(model, x, torch.arange(4))
    by_model, by_peer = pur.last_selection  # a batch of 4, a quarter left out
    assert sorted(by_model.tolist()) == [1, 2, 3] and sorted(by_peer.tolist()) == [0, 2, 3]
    opt.zero_grad()
    loss.backward()
    (want_model,) = torch.autograd.grad(
        F.cross_entropy(model(x[[0, 2, 3]])[0], y[:3]), [model.fc.weight]
    )
    (want_peer,) = torch.autograd.grad(
        F.cross_entropy(peer(x[[1, 2, 3]])[0], y[:3]), [peer.fc.weight]
    )
    torch.testing.assert_close(
        model.fc.weight.grad, want_model
    )  # the model learns from the peer's choice
    torch.testing.assert_close(peer.fc.weight.grad, want_peer)  # and the peer from the model's
    assert model.fc.weight.grad[:, 1].abs().sum() == 0  # sample 1, doubted by the peer, left out
    assert peer.fc.weight.grad[:, 0].abs().sum() == 0


def test_the_peer_steps_after_the_model_with_the_users_learning_rate_at_that_batch():
    pur, model, opt = with_model("coteach", np.zeros(8, dtype=int), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    x = torch.randn(8, 16)
    for step in range(2):
        before = [p.detach().clone() for p in pur.peer.net.parameters()]
        loss = pur.batch_loss(model, x, torch.arange(8))
        opt.zero_grad()
        loss.backward()
        grads = [p.grad.clone() for p in pur.peer.net.parameters()]
        opt.step()
        sched.step()  # the loop's schedule moves on before after_step
        pur.after_step()
        lr = 0.1 * 0.5**step
        for b, g, p in zip(before, grads, pur.peer.net.parameters(), strict=True):
            torch.testing.assert_close(p.detach(), b - lr * g)
        assert all(p.grad is None for p in pur.peer.net.parameters())


def test_a_two_network_mode_needs_the_optimiser_and_refuses_logits_alone():
    for mode in ("coteach", "dividemix"):
        with pytest.raises(
            ValueError, match=f"mode '{mode}' trains a second network: give the optimiser"
        ):
            create_purifier(mode, [0, 1], num_classes=2, model=Mlp(k=2))
        pur = with_model(mode, np.array([0, 1]), k=2)[0]
        with pytest.raises(RuntimeError, match="call purifier.batch_loss"):
            pur.loss(torch.zeros(2, 2), None, torch.arange(2))


def test_the_peer_optimiser_mirrors_the_users_groups_class_and_frozen_parameters():
    model = Mlp()
    model.body[0].weight.requires_grad_(False)
    rest = [model.body[0].bias, *model.body[2].parameters()]
    opt = torch.optim.Adam(
        [{"params": rest[:1], "lr": 0.01}, {"params": rest[1:], "lr": 0.1}], betas=(0.8, 0.9)
    )
    peer = fresh_copy(model)
    peer_opt = optimizer_like(opt, model, peer)
    assert type(peer_opt) is torch.optim.Adam
    assert [g["lr"] for g in peer_opt.param_groups] == [0.01, 0.1]
    assert all(g["betas"] == (0.8, 0.9) for g in peer_opt.param_groups)
    assert peer_opt.param_groups[0]["params"][0] is peer.body[0].bias
    assert not peer.body[0].weight.requires_grad
    with pytest.raises(ValueError, match="expected the model's architecture"):
        optimizer_like(opt, model, Mlp(dim=8))


def test_the_trainer_refuses_a_two_network_mode_in_several_processes(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "purify.mode=coteach")
    with pytest.raises(
        ValueError, match="'coteach' trains a second network that is not synchronised"
    ):
        check_processes(cfg, 2)
    check_processes(cfg, 1)
    check_processes(tiny_config(tmp_path, synth_root, "purify.mode=gce"), 2)
    assert purifier_class("dividemix").trains_peer and not purifier_class("elr").trains_peer


# ---- DivideMix ------------------------------------------------------------------------------


def test_gmm_split_puts_the_low_loss_cluster_in_the_labelled_set():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.2, 0.05, 80), rng.normal(2.5, 0.3, 20)
    losses = np.concatenate([low, high, [np.nan]])
    prob = dm.gmm_clean_probability(losses)
    assert (prob[:80] > 0.5).all() and (prob[80:100] < 0.5).all() and np.isnan(prob[100])
    np.testing.assert_allclose(
        dm.gmm_clean_probability(losses * 7 + 3)[:100], prob[:100], atol=1e-6
    )  # normalised
    assert (dm.gmm_clean_probability(np.ones(5)) == 1).all()  # nothing to divide


def test_label_refinement_co_guessing_and_sharpening_match_their_formulas():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    torch.testing.assert_close(dm.sharpen(p, 0.5), torch.tensor([[0.36, 0.09, 0.01]]) / 0.46)
    y = torch.tensor([[0.0, 1.0, 0.0]])
    mixed = torch.tensor([[0.3, 0.65, 0.05]])  # 0.5 · y + 0.5 · p
    torch.testing.assert_close(
        dm.refine_labels(y, p, torch.tensor([0.5]), temperature=0.5), dm.sharpen(mixed, 0.5)
    )
    torch.testing.assert_close(
        dm.refine_labels(y, p, torch.tensor([1.0]), temperature=0.5), y
    )  # clean: the label
    q = [p, torch.tensor([[0.2, 0.2, 0.6]]), p, torch.tensor([[1.0, 0.0, 0.0]])]
    torch.testing.assert_close(
        dm.co_guess(q, temperature=0.5), dm.sharpen(torch.tensor([[0.6, 0.2, 0.2]]), 0.5)
    )


def test_unlabelled_weight_ramps_and_the_prior_penalty_is_the_kl_to_uniform():
    assert dm.unlabelled_weight(10.0, lambda_u=25, warmup=10, rampup=16) == 0.0
    assert dm.unlabelled_weight(14.0, lambda_u=25, warmup=10, rampup=16) == pytest.approx(6.25)
    assert dm.unlabelled_weight(40.0, lambda_u=25, warmup=10, rampup=16) == 25.0
    assert dm.uniform_prior_penalty(torch.zeros(3, 4)).item() == pytest.approx(0.0, abs=1e-7)
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    mean = torch.softmax(logits, 1).mean(0)
    want = 0.5 * math.log(0.5 / mean[0].item()) + 0.5 * math.log(0.5 / mean[1].item())
    assert dm.uniform_prior_penalty(logits).item() == pytest.approx(want, rel=1e-6)


def test_warm_up_scales_to_the_run_length():
    o = dict(purifier_class("dividemix").defaults)
    assert dm.schedule(o) == (10, 16)  # the paper's, for its 300 epochs
    assert dm.schedule({**o, "epochs": 60}) == (2, 3)
    assert dm.schedule({**o, "epochs": 15}) == (1, 1)
    assert dm.schedule({**o, "epochs": 15, "warmup_epochs": 4}) == (4, 1)
    assert "pass epochs=" in create_purifier("dividemix", [0, 1], num_classes=2).events[0]
    assert not create_purifier("dividemix", [0, 1], num_classes=2, epochs=20).events
    problems = purifier_class("dividemix").schedule_problems(o, epochs=1, dataset="dfew")
    assert problems and "would never be divided" in problems[0]


def test_each_network_trains_on_the_division_of_the_other(monkeypatch):
    n = 20
    pur, model, _ = with_model("dividemix", np.arange(n) % 4, warmup_epochs=0)
    # hand-made losses: the model doubts samples 0-3, the peer samples 4-7
    losses = torch.full((2, n), 0.1) + 0.01 * torch.arange(n)
    losses[0, :4], losses[1, 4:8] = 3.0, 3.0
    pur.losses.copy_(losses)
    pur.end_epoch()
    model_labelled, peer_labelled = (pur.clean > 0.5).tolist()
    assert not any(model_labelled[:4]) and all(model_labelled[4:])
    assert not any(peer_labelled[4:8]) and all(peer_labelled[:4] + peer_labelled[8:])
    state = pur.ledger.column("state")[-1]
    assert (state == KEPT).all()  # each sample is labelled by one network at least
    score, _ = pur.suspicion()
    assert (score[:8] > 0.4).all() and (score[8:] < 0.1).all()
    seen = []

    def spy(forward, views_x, targets_x, views_u, targets_u, **kw):
        seen.append((len(views_x[0]), len(views_u[0])))
        return torch.zeros(()) + 0.0 * forward(views_x[0]).sum()

    monkeypatch.setattr(dm, "mixmatch_loss", spy)
    x = torch.randn(n, 16)
    pur.batch_loss(model, x, torch.arange(n))
    assert seen == [(16, 4), (16, 4)]  # the model: the peer's division (4 unlabelled), and back
    x_idx = torch.tensor([0, 1, 4, 5, 9])
    seen.clear()
    pur.batch_loss(model, x[x_idx], x_idx)
    assert seen == [(3, 2), (3, 2)]  # model: 4, 5 unlabelled; peer: 0, 1 unlabelled


def test_samples_neither_network_labels_are_shown_pruned_and_still_trained():
    n = 20
    pur, *_ = with_model("dividemix", np.arange(n) % 4, warmup_epochs=1)
    losses = torch.full((2, n), 0.1) + 0.01 * torch.arange(n)
    losses[:, :3] = 3.0  # both networks doubt samples 0-2
    pur.losses.copy_(losses)
    pur.end_epoch()  # the warm-up's last epoch: divided from the next one
    state = pur.ledger.column("state")[-1]
    assert (state[:3] == PRUNED).all() and (state[3:] == KEPT).all()
    assert len(pur.train_indices()) == n and pur.corrected_indices().size == 0


# ---- every peer: the loop, the ranking, the state ---------------------------------------------


def blob_loop(mode, n_epochs=6, **options):
    """The six calls on noisy Gaussian blobs (30% of the labels flipped, no junk)."""
    x, given, true, _, flipped = noisy_blobs(flip=0.3, junk=0.0)
    pur, model, opt = with_model(mode, given.numpy(), **options)
    train_batches, rescore_batches = blob_batches(x, torch.Generator().manual_seed(0), rescore_batch=128)
    for _ in range(n_epochs):
        run_epoch(pur, model, opt, train_batches=train_batches, rescore_batches=rescore_batches)
    return pur, model, x, true, flipped


@pytest.mark.parametrize("mode", PEERS)
def test_each_peer_ranks_the_flipped_labels_first_on_noisy_blobs(mode):
    run = {"epochs": 6} if mode == "dividemix" else {}  # (its run length)
    pur, model, x, true, flipped = blob_loop(mode, n_epochs=6, **run)
    score, suggested = pur.suspicion()
    assert np.isfinite(score).all()
    assert roc_auc_score(flipped, score) > 0.8
    assert (suggested[flipped] == true[flipped]).mean() > 0.6  # the suggested label is the true one
    assert (pur.labels.numpy() != true).sum() == flipped.sum()  # the annotation is never changed


@pytest.mark.parametrize("mode", ["coteach", "dividemix"])
def test_a_two_network_mode_resumes_exactly_from_its_state(tmp_path, mode):
    opts = {"epochs": 4} if mode == "dividemix" else {"num_gradual": 2}
    a, model_a, x, *_ = blob_loop(mode, n_epochs=2, **opts)
    b, model_b, *_ = blob_loop(mode, n_epochs=0, **opts)
    model_b.load_state_dict(model_a.state_dict())
    path = tmp_path / "purifier.pt"
    torch.save(a.state_dict(), path)  # as a checkpoint holds it
    b.load_state_dict(torch.load(path, weights_only=True))
    for pur, model in ((a, model_a), (b, model_b)):  # one more epoch, in order, un-augmented
        run_epoch(pur, model, pur.optimizer, train_batches=lambda _: ((x[i], i) for i in torch.arange(len(x)).split(64)),
                  rescore_batches=lambda idx: ((x[i], i) for i in torch.as_tensor(idx).split(128)))  # fmt: skip
    for p, q in zip(a.peer.net.parameters(), b.peer.net.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)
    np.testing.assert_array_equal(a.suspicion()[0], b.suspicion()[0])


@pytest.mark.parametrize("mode", ["coteach", "dividemix"])
def test_a_killed_run_of_a_two_network_mode_resumes_as_the_uninterrupted_one(
    tmp_path, synth_root, mode
):
    cfg = tiny_config(tmp_path, synth_root, f"purify.mode={mode}", "name=full")
    train(cfg, progress=False)
    full, cut = tmp_path / "full", tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.move(cut / "prev.pt", cut / "last.pt")  # as if killed during the last epoch
    result = train(cfg, run_dir=cut, resume=True, progress=False)
    assert result.purifier.peer is not None

    def rows(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    assert rows(cut) == rows(full)
    a, b = Ledger.load(full / "ledger.npz"), Ledger.load(cut / "ledger.npz")
    for col in Ledger.COLUMNS:
        np.testing.assert_array_equal(a.column(col), b.column(col))
