"""Mode ``adaptive``: each rule on hand-made arrays, then the mode driven through the loop
calls with records from a simulated model (a known flipped label is corrected, a collapsing
decision is refused, clean data is left alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d2sp.purify import CORRECTED, KEPT, PRUNED, create_purifier
from d2sp.purify.adaptive import (
    agreement_ready,
    calibrate_log_odds,
    cap_pruning,
    class_relative_low,
    class_thresholds,
    flag_issues,
    held_out_decision,
    make_probes,
    probe_separation,
    separation_ready,
    separation_stalled,
    wilson_lower,
)
from d2sp.purify.base import OptionError

# ---- the rules ----------------------------------------------------------------------------------


def test_probe_separation_is_the_auroc_of_the_others_above_the_probes():
    assert probe_separation(torch.tensor([0.8, 0.9]), torch.tensor([0.1, 0.2])) == 1.0
    assert probe_separation(torch.tensor([0.1, 0.2]), torch.tensor([0.8, 0.9])) == 0.0
    assert probe_separation(torch.tensor([0.5, 0.5]), torch.tensor([0.5])) == 0.5
    # 3 of the 4 (rest, probe) pairs ordered: 0.75
    assert probe_separation(torch.tensor([0.3, 0.9]), torch.tensor([0.2, 0.5])) == 0.75


def test_readiness_waits_for_a_high_separation_that_stopped_rising():
    rising = [0.6, 0.7, 0.8, 0.9]
    assert not separation_ready(rising, min_epochs=3, gain=0.01, floor=0.75)
    assert separation_ready([*rising, 0.905], min_epochs=3, gain=0.01, floor=0.75)
    assert not separation_ready([0.6, 0.65, 0.652], min_epochs=3, gain=0.01, floor=0.75)  # weak
    assert not separation_ready([0.9, 0.9], min_epochs=3, gain=0.01, floor=0.75)  # too early
    fast_then_flat = [0.2, 0.5, 0.7, 0.8, 0.85, 0.86]
    assert agreement_ready(fast_then_flat, min_epochs=3, floor=0.5)
    assert not agreement_ready(fast_then_flat[:3], min_epochs=3, floor=0.5)


def test_giving_up_needs_a_separation_stalled_below_the_floor():
    # the first epoch scores high before the probes are fitted: it does not count
    stalled = [0.73, 0.62, 0.64, 0.66, 0.65, 0.63, 0.64]  # best from epoch 3 on: 0.66, epoch 4
    assert not separation_stalled(stalled[:6], min_epochs=3, patience=3, floor=0.75)
    assert separation_stalled(stalled, min_epochs=3, patience=3, floor=0.75)
    # counted from epoch 1, the unfitted first epoch would make it give up 5 epochs later
    assert separation_stalled(stalled[:6], min_epochs=1, patience=5, floor=0.75)
    assert not separation_stalled(stalled[:6], min_epochs=3, patience=5, floor=0.75)
    assert not separation_stalled([0.6, 0.62, 0.64, 0.66, 0.68, 0.70], min_epochs=3, patience=3, floor=0.75)
    assert not separation_stalled([0.5, 0.8, 0.76, 0.76, 0.76, 0.76], min_epochs=2, patience=3, floor=0.75)
    assert not separation_stalled([0.7, 0.6], min_epochs=3, patience=1, floor=0.75)  # nothing counted yet


def test_probes_have_a_wrong_label_and_a_bounded_share():
    labels = torch.arange(400) % 5
    probe, fake = make_probes(labels, 5, share=0.04, seed=3)
    assert int(probe.sum()) == 16  # 4% of 400
    assert bool((fake[probe] != labels[probe]).all()) and bool((fake[probe] < 5).all())
    assert bool((fake[~probe] == -1).all())
    assert int(make_probes(labels[:20], 5, share=0.04, seed=3)[0].sum()) == 5  # at most N/4
    again = make_probes(labels, 5, share=0.04, seed=3)
    assert torch.equal(again[0], probe) and torch.equal(again[1], fake)


def test_class_thresholds_and_confident_issues():
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.8, 0.2]])
    labels = torch.tensor([0, 0, 1, 1])
    thr = class_thresholds(probs, labels)
    assert torch.allclose(thr, torch.tensor([0.8, 0.5]))
    issue, cls = flag_issues(probs, labels, thr)
    assert issue.tolist() == [False, False, False, True]  # the last sample: confidently a 0
    assert cls[3] == 0


def test_class_relative_low_score_is_against_the_class_median():
    score = torch.tensor([1.0, 0.9, 0.3, 0.1, 0.1, 0.04])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    low = class_relative_low(score, labels, ratio=0.5, k=2)
    assert low.tolist() == [False, False, True, False, False, True]


def test_a_collapsing_decision_is_cut_and_said():
    labels = torch.tensor([0] * 10 + [1] * 10)
    prune = torch.ones(20, dtype=torch.bool)  # everything
    suspicion = torch.arange(20, dtype=torch.float)
    out, msgs = cap_pruning(prune, suspicion, labels, max_share=0.5, max_class_share=0.5, k=2)
    assert int(out.sum()) == 10 and int(out[:10].sum()) == 5 and int(out[10:].sum()) == 5
    assert out[5:10].all() and out[15:].all()  # the most suspicious of each class stay pruned
    assert len(msgs) == 2 and "class 0: 10 of 10" in msgs[0] and "capped at 5" in msgs[0]
    fine, none = cap_pruning(prune & (suspicion < 3), suspicion, labels, max_share=0.5, max_class_share=0.5, k=2)
    assert int(fine.sum()) == 3 and none == []


def test_held_out_samples_rejoin_are_corrected_or_stay_out():
    probs = torch.tensor([
        [0.90, 0.05, 0.05],  # predicts its label: rejoins
        [0.02, 0.95, 0.03],  # stably another class: corrected to 1
        [0.30, 0.40, 0.30],  # unsure: stays out
        [0.02, 0.95, 0.03],  # another class, but only one record so far
    ])  # fmt: skip
    labels = torch.tensor([0, 0, 0, 0])
    thr = torch.tensor([0.5, 0.5, 0.5])
    streak = torch.tensor([0, 2, 2, 1])
    typical = torch.tensor([0.8, 0.8, 0.8])
    flagged_as = torch.tensor([-1, 1, -1, 1])
    rejoin, correct, target = held_out_decision(
        probs, labels, thr, streak, typical, flagged_as, agree=2, margin=0.5, log_odds=2.0
    )
    assert rejoin.tolist() == [True, False, False, False]
    assert correct.tolist() == [False, True, False, False] and int(target[1]) == 1
    never = held_out_decision(probs, labels, thr, streak, typical, flagged_as, agree=2, margin=0.5, log_odds=float("inf"))
    assert not never[1].any()
    other = held_out_decision(probs, labels, thr, streak, typical, torch.full((4,), 2), agree=2, margin=0.5, log_odds=2.0)
    assert not other[1].any()  # flagged as class 2, predicted 1: not corrected


def test_wilson_lower_bound_and_the_calibrated_threshold():
    assert wilson_lower(0.8, 10, z=0.0) == pytest.approx(0.8)
    assert wilson_lower(0.8, 10, z=1.0) == pytest.approx(0.649, abs=1e-3)
    assert wilson_lower(0.8, 40, z=1.0) > wilson_lower(0.8, 10, z=1.0)
    assert np.isnan(wilson_lower(0.5, 0, z=1.0))
    # 40 probes; at log-odds 0 all are corrected (half right), at 1 the 24 right ones and 2
    # wrong ones, from 2 on 10 right ones only
    right = torch.arange(40) < 24
    correct_at = torch.zeros(40, 8, dtype=torch.bool)
    correct_at[:, 0] = True
    correct_at[:26, 1] = True
    correct_at[:10, 2:] = True
    chosen, shown = calibrate_log_odds(correct_at, right, precision=0.8, min_count=4, z=0.0)
    assert chosen == 1.0 and shown.startswith("0: 40 at 0.60, 1: 26 at 0.92")
    # with one standard error: 24/26 (lower bound 0.86) still passes
    assert calibrate_log_odds(correct_at, right, precision=0.8, min_count=4, z=1.0)[0] == 1.0
    few = torch.zeros(40, 8, dtype=torch.bool)
    few[20:25] = True  # 5 corrected at every threshold, 4 of them right: 0.8 seen, 0.58 bound
    assert calibrate_log_odds(few, right, precision=0.8, min_count=4, z=1.0)[0] is None
    assert calibrate_log_odds(few, right, precision=0.8, min_count=4, z=0.0)[0] == 0.0


# ---- the mode through the loop calls ------------------------------------------------------------

N, K = 1200, 4
TRUTH = np.arange(N) % K


def noisy_labels(share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flipped = rng.random(N) < share
    return np.where(flipped, (TRUTH + 1 + rng.integers(0, K - 1, N)) % K, TRUTH), flipped


def simulated_logits(pur, epoch: int, predict: np.ndarray, ease: np.ndarray) -> torch.Tensor:
    """``(N, K)``: a model that has learned to predict ``predict``, with a per-sample
    confidence (``ease`` in [0, 1]), whatever labels it is trained on."""
    g = torch.Generator().manual_seed(epoch)
    logits = 0.1 * torch.randn(N, K, generator=g)
    logits[torch.arange(N), torch.as_tensor(predict)] += torch.as_tensor(3.0 + 3.0 * ease, dtype=torch.float)
    return logits


def drive(pur, predict: np.ndarray, epochs: int, ease: np.ndarray | None = None) -> None:
    ease = (np.arange(N) * 0.618) % 1.0 if ease is None else ease
    for epoch in range(epochs):
        logits = simulated_logits(pur, epoch, predict, ease)
        w = torch.full((N,), 0.9)
        for batch in np.array_split(pur.train_indices(), 5):
            idx = torch.as_tensor(batch)
            pur.loss(logits[idx].clone().requires_grad_(True), w[idx], idx)
            pur.after_step()
        idx = torch.as_tensor(pur.rescore_indices())
        pur.record(idx, logits[idx], w[idx], rescored=True)
        pur.end_epoch()


def test_known_flipped_labels_are_corrected_and_clean_ones_kept():
    labels, flipped = noisy_labels(0.1)
    pur = create_purifier("adaptive", labels, num_classes=K, teacher=False, min_epochs=2)
    ease = np.full(N, 0.5)  # every sample as clear an example of its class
    drive(pur, TRUTH, epochs=12, ease=ease)
    state = pur.ledger.column("state")[-1]
    final = pur.current_labels.cpu().numpy()
    assert pur.ready and any("correction log-odds threshold" in e for e in pur.events)
    assert (state[flipped] == CORRECTED).mean() > 0.8  # flipped labels given back ...
    assert (final[state == CORRECTED] == TRUTH[state == CORRECTED]).all()
    assert (state[flipped] != KEPT).all()  # ... or, not yet, held out
    assert (state[~flipped] == KEPT).all() and (final[~flipped] == labels[~flipped]).all()
    susp = pur.ledger.column("suspicion")[-1]
    assert susp[flipped].min() > susp[~flipped].max()  # the ranking puts every flip first


def test_clean_data_is_left_alone():
    pur = create_purifier("adaptive", TRUTH, num_classes=K, teacher=False, min_epochs=2)
    drive(pur, TRUTH, epochs=10)
    assert pur.ready and any("no purification" in e for e in pur.events)
    assert (pur.ledger.column("state")[-1] == KEPT).all()
    assert (pur.current_labels.cpu().numpy() == TRUTH).all()


def test_a_model_that_cannot_tell_the_probes_apart_gives_up_and_says_so():
    labels, _ = noisy_labels(0.2)
    predict = np.random.default_rng(1).integers(0, K, N)  # a model that learned nothing
    pur = create_purifier("adaptive", labels, num_classes=K, teacher=False, min_epochs=2, patience=3)
    drive(pur, predict, epochs=12)
    gave_up = [e for e in pur.events if "probes train on their own labels again" in e]
    assert len(gave_up) == 1 and pur.run["gave_up"] and pur.run["theta"] is None
    states = pur.ledger.column("state")
    assert not np.isin(states, [PRUNED, CORRECTED]).any() and (states[-1] == KEPT).all()  # no decision
    assert (pur.labels_for(torch.arange(N)).numpy() == labels).all()  # probes included
    never = create_purifier("adaptive", labels, num_classes=K, teacher=False, min_epochs=2, patience=0)
    drive(never, predict, epochs=12)
    assert not never.ready and (never.labels_for(torch.arange(N)).numpy() != labels).sum() == int(never.probe.sum())


def test_a_decision_that_would_prune_most_of_the_set_is_refused():
    labels, _ = noisy_labels(0.0)
    predict = (TRUTH + 1) % K  # the model disagrees with every label
    predict[:30] = TRUTH[:30]
    pur = create_purifier("adaptive", labels, num_classes=K, teacher=False, min_epochs=2, ready_floor=0.0)
    drive(pur, predict, epochs=8)
    states = pur.ledger.column("state")
    assert pur.ready
    assert max(int((s == PRUNED).sum()) for s in states) <= N // 2  # never more than half
    assert all(((s == PRUNED) & (labels == c)).sum() <= (labels == c).sum() // 2 for s in states for c in range(K))
    assert any("not applied" in e and "capped" in e for e in pur.events)
    assert len(pur.train_indices()) >= N // 2


# ---- the packaged configs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dfew", "ferv39k", "mafw", "demo"])
def test_packaged_configs_use_the_recommended_mode_with_its_defaults(name):
    from d2sp.commands.common import packaged_config
    from d2sp.config import load_config

    cfg = load_config(packaged_config(name))
    assert cfg.purify.mode == "adaptive" and not cfg.purify.options
    paper = load_config(packaged_config(f"{name}-paper"))
    assert paper.purify.mode == "paper" and paper.data == cfg.data
    assert paper.model.name == cfg.model.name and paper.model.options == cfg.model.options
    if name == "demo":  # the real datasets' -paper configs have the paper's schedule and weights
        assert paper.optim == cfg.optim and paper.model == cfg.model


def test_a_model_that_is_not_a_module_is_refused_with_what_to_do():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module .* got function"):
        create_purifier("adaptive", TRUTH, num_classes=K, model=lambda x: x)


def test_switches_must_be_booleans():
    labels, _ = noisy_labels(0.0)
    with pytest.raises(OptionError, match=r"probes: expected true/false, got 'no'"):
        create_purifier("adaptive", labels, num_classes=K, probes="no")
