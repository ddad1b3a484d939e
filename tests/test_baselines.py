"""The baselines' cleaning rules on hand-made numbers, and each baseline through the trainer."""

import json

import numpy as np
import pytest
import torch

from d2sp import train
from d2sp.models.heads import WeightBranch
from d2sp.purify import Ledger
from d2sp.purify.confident import cleanlab_label_issues, stratified_folds
from d2sp.purify.fixed import FixedPurifier
from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED, UNDECIDED
from d2sp.purify.scn import ScnPurifier, scn_relabel
from d2sp.training.checks import validate_config
from tests.conftest import tiny_config


def _onehot_probs(pred, k, p):
    probs = np.full((len(pred), k), (1.0 - p) / (k - 1))
    probs[np.arange(len(pred)), pred] = p
    return torch.tensor(probs, dtype=torch.float32)


# ---- SCN ----------------------------------------------------------------------------------


def test_scn_relabels_only_low_weight_samples_above_the_margin():
    # 10 samples, ratio 0.7 -> the 3 lowest weights form the low group
    current = torch.zeros(10, dtype=torch.long)
    pred = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    probs = _onehot_probs(pred, 3, 0.9)  # gap p_max - p[0] = 0.85 where pred = 1
    probs[3] = torch.tensor([0.45, 0.55, 0.0])  # gap 0.10 < margin
    weights = torch.tensor([0.1, 0.2, 0.9, 0.3, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8])
    seen = torch.ones(10, dtype=torch.bool)
    new, gap = scn_relabel(probs, weights, current, seen, ratio=0.7, margin=0.2)
    # low group = samples 0, 1, 3; 0 and 1 pass the margin, 3 does not; 2 is high-weight
    assert new.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert gap[3] == pytest.approx(0.10, abs=1e-6)


def test_scn_relabel_ignores_samples_not_recorded():
    current = torch.zeros(4, dtype=torch.long)
    probs = _onehot_probs(torch.tensor([1, 1, 0, 0]), 2, 0.95)
    weights = torch.tensor([0.0, 0.9, 0.9, 0.9])  # sample 0 lowest but unseen
    seen = torch.tensor([False, True, True, True])
    new, _ = scn_relabel(probs, weights, current, seen, ratio=0.6, margin=0.2)
    # 3 seen, ceil(0.6*3)=2 high -> one low sample among the seen: sample 1 (weights tie,
    # argsort puts the first of the ties first)
    assert new[0] == 0 and new[1] == 1


def test_scn_purifier_relabels_after_warmup_and_accumulates():
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    pur = ScnPurifier(labels, num_classes=3, warmup_epochs=2, rank_ratio=0.7)
    logits = torch.zeros(10, 3)
    logits[:, 0] = 4.0
    logits[9] = torch.tensor([0.0, 4.0, 0.0])  # sample 9 (label 2) predicted 1
    w = torch.full((10,), 0.9)
    w[9] = 0.1
    idx = torch.arange(10)
    pur.record(idx, logits, w)
    first = pur.end_epoch()
    assert first["undecided"] == 10 and pur.current_labels[9] == 2  # warm-up
    pur.record(idx, logits, w)
    pur.end_epoch()
    assert pur.current_labels[9] == 1 and pur.corrected_indices().tolist() == [9]
    assert pur.ledger.column("state")[-1][9] == CORRECTED
    assert len(pur.kept_indices()) == 10  # SCN never prunes
    # a later epoch compares with the current label (1): the prediction agrees, it stays
    pur.record(idx, logits, w)
    pur.end_epoch()
    assert pur.current_labels[9] == 1


def test_scn_extra_loss_is_the_rank_regulariser():
    pur = ScnPurifier(torch.zeros(4, dtype=torch.long), num_classes=2, rank_weight=2.0)
    flat = torch.full((10,), 0.5)
    spread = torch.tensor([0.9] * 7 + [0.1] * 3)
    assert float(pur.extra_loss(flat)) == pytest.approx(2 * 0.15)
    assert float(pur.extra_loss(spread)) == 0.0


def test_scn_refuses_bad_options():
    with pytest.raises(ValueError, match="rank_ratio: expected a value in \\(0, 1\\)"):
        ScnPurifier(torch.zeros(3, dtype=torch.long), num_classes=2, rank_ratio=1.5)


def test_one_layer_weight_branch():
    branch = WeightBranch(8, hidden=0)
    assert branch.fc1 is None and branch.fc2.in_features == 8
    assert branch(torch.randn(5, 8)).shape == (5,)
    assert WeightBranch(8).fc1.out_features == 32


# ---- cleanlab -----------------------------------------------------------------------------


def test_stratified_folds_balance_every_class():
    labels = np.repeat(np.arange(3), [40, 20, 12])
    fold_of = stratified_folds(labels, folds=4, seed=1)
    for c in range(3):
        counts = np.bincount(fold_of[labels == c], minlength=4)
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(fold_of, stratified_folds(labels, folds=4, seed=2))
    with pytest.raises(ValueError, match="folds: expected an integer >= 2"):
        stratified_folds(labels, folds=1)


def test_cleanlab_flags_confidently_contradicted_labels():
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(3), 30)
    given = true.copy()
    flipped = np.array([3, 17, 40, 71])
    given[flipped] = (true[flipped] + 1) % 3
    probs = np.full((90, 3), 0.05) + rng.uniform(0, 0.02, (90, 3))
    probs[np.arange(90), true] = 0.9  # the model believes the true class
    issues = cleanlab_label_issues(given, probs)
    assert set(np.flatnonzero(issues)) == set(flipped)


def test_cleanlab_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"probs: expected shape \(3, K\)"):
        cleanlab_label_issues([0, 1, 0], np.ones((2, 2)))


# ---- fixed selections ---------------------------------------------------------------------


def test_fixed_purifier_keeps_its_selection_and_logs_states():
    labels = torch.tensor([0, 1, 1, 0])
    keep = np.array([True, True, False, True])
    targets = np.array([0, 0, 1, 0])  # sample 1 relabelled 1 -> 0
    pur = FixedPurifier(labels, num_classes=2, keep=keep, targets=targets)
    assert pur.kept_indices().tolist() == [0, 1, 3]
    assert pur.labels_for(torch.tensor([1, 2])).tolist() == [0, 1]
    pur.record(torch.tensor([0, 1, 3]), torch.randn(3, 2))
    counts = pur.end_epoch()
    assert pur.ledger.column("state")[-1].tolist() == [KEPT, CORRECTED, PRUNED, KEPT]
    assert counts["pruned"] == 1 and counts["corrected"] == 1 and counts["recorded"] == 3


# ---- through the trainer ------------------------------------------------------------------


def test_scn_trains_with_a_one_layer_branch(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "name=scn", "purify.mode=scn", "purify.warmup_epochs=2")
    result = train(cfg, progress=False)
    assert result.model.head.weight.fc1 is None
    states = Ledger.load(tmp_path / "scn" / "ledger.npz").column("state")
    assert (states[0] == UNDECIDED).all() and (states[1:] != UNDECIDED).all()
    assert not (states == PRUNED).any()


def test_oracle_trains_on_ground_truth_without_low_quality(tmp_path, synth_root):
    from d2sp.data.splits import load_split
    from d2sp.data.synth import load_ground_truth

    cfg = tiny_config(
        tmp_path,
        synth_root,
        "name=oracle",
        "purify.mode=oracle",
    )
    result = train(cfg, progress=False)
    gt = load_ground_truth(load_split(cfg.data, "train").root, split="train")
    pur = result.purifier
    assert np.array_equal(pur.pruned_indices(), np.flatnonzero(gt["low_quality"]))
    assert np.array_equal(pur.current_labels.numpy(), gt["true_label"])
    assert result.model.head.weight is None  # a plain model
    trained = json.loads((tmp_path / "oracle" / "metrics.jsonl").read_text().splitlines()[-1])
    assert trained["trained"] <= int((~gt["low_quality"]).sum())


def test_oracle_needs_ground_truth(tmp_path, synth_root):
    cfg = tiny_config(
        tmp_path,
        synth_root,
        "purify.mode=oracle",
        "data.dataset=dfew",
    )
    with pytest.raises(ValueError, match="oracle trains on the ground truth"):
        validate_config(cfg)


def test_cleanlab_cross_validates_drops_issues_and_resumes(tmp_path, synth_root):
    cfg = tiny_config(
        tmp_path,
        synth_root,
        "name=cl",
        "purify.mode=cleanlab",
        "purify.options={folds: 2, fold_epochs: 2}",
    )
    result = train(cfg, progress=False)
    run = tmp_path / "cl"
    probs = np.load(run / "cleanlab" / "out_of_sample_probs.npy")
    issues = np.load(run / "cleanlab" / "label_issues.npy")
    assert probs.shape == (48, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-4)
    for k in range(2):  # every fold is a full run folder, trained on the other fold only
        rows = (run / "cleanlab" / f"fold{k}" / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == 2 and json.loads(rows[0])["trained"] <= 24
    assert np.array_equal(result.purifier.pruned_indices(), np.flatnonzero(issues))
    assert result.model.head.weight is None
    # a second run over the same folder reuses the fold models' probabilities
    mtimes = [
        (run / "cleanlab" / f"fold{k}" / "heldout_probs.npy").stat().st_mtime_ns for k in (0, 1)
    ]
    train(cfg, run_dir=run, resume=True, progress=False)
    again = [
        (run / "cleanlab" / f"fold{k}" / "heldout_probs.npy").stat().st_mtime_ns for k in (0, 1)
    ]
    assert again == mtimes


def test_cleanlab_refuses_unknown_options(tmp_path, synth_root):
    with pytest.raises(ValueError, match="purify.lam=0.5.: purify.lam: mode .cleanlab. has no option .lam."):
        tiny_config(tmp_path, synth_root, "purify.mode=cleanlab", "purify.lam=0.5")
    cfg = tiny_config(tmp_path, synth_root, "purify.mode=cleanlab")
    cfg.purify.options = {"k": 3}
    with pytest.raises(ValueError, match="purify.k: mode .cleanlab. has no option .k.; its options: .*folds"):
        validate_config(cfg)
    cfg.purify.options = {"folds": 1}
    with pytest.raises(ValueError, match="purify.folds: expected an integer >= 2, got 1"):
        validate_config(cfg)


def _issues_in_worker(labels, probs):
    return cleanlab_label_issues(labels, probs)


@pytest.mark.slow
def test_cleanlab_rule_runs_inside_a_spawned_worker():
    # d2sp compare --jobs N trains in spawned processes; cleanlab's own pool failed there
    import concurrent.futures as cf
    import multiprocessing as mp

    labels = np.repeat(np.arange(3), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), labels] = 0.9
    labels[5] = 1  # one contradicted label
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        issues = pool.submit(_issues_in_worker, labels, probs).result()
    assert np.flatnonzero(issues).tolist() == [5]
