"""The purification stages and the purifier, on hand-built histories (no model)."""

import math

import numpy as np
import pytest
import torch

from d2sp.purify import (
    CORRECTED,
    KEPT,
    PRUNED,
    UNDECIDED,
    Ledger,
    coarse_grained_pruning,
    fine_grained_correction,
)
from d2sp.purify.paper import PaperPurifier as Purifier
from d2sp.purify.records import Records

K = 3


def logits_for(*probs):
    """Logits whose softmax is exactly the given probability rows."""
    return torch.log(torch.tensor(probs, dtype=torch.float64)).float()


def feed(purifier, idx, probs, weights):
    purifier.record(torch.tensor(idx), logits_for(*probs), torch.tensor(weights))


# ---- CGP as a pure function -------------------------------------------------------------


def test_cgp_threshold_just_below_and_above_lambda():
    lam = 0.6
    weights = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    probs = torch.tensor([[0.6 - 1e-4, 0.6 - 1e-4], [0.6 + 1e-4, 0.6 + 1e-4]])
    keep, score = coarse_grained_pruning(weights, probs, torch.tensor([2, 2]), lam=lam, t=2)
    assert keep.tolist() == [False, True]
    assert score[0] < lam < score[1]


def test_cgp_score_is_mean_of_weighted_probability():
    # w·p = 0.9*0.8=0.72 and 0.5*0.9=0.45 -> mean 0.585 < 0.6 although both p are high
    weights = torch.tensor([[0.9, 0.5]])
    probs = torch.tensor([[0.8, 0.9]])
    keep, score = coarse_grained_pruning(weights, probs, torch.tensor([2]), lam=0.6, t=2)
    assert math.isclose(score.item(), 0.585, rel_tol=1e-6)
    assert not keep.item()


def test_cgp_exactly_lambda_is_pruned():
    keep, _ = coarse_grained_pruning(
        torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([1]), lam=0.5, t=1
    )
    assert not keep.item()  # kept set is S > λ, strictly


def test_cgp_undecided_without_t_records():
    keep, score = coarse_grained_pruning(
        torch.tensor([[0.1, 0.0]]), torch.tensor([[0.1, 0.0]]), torch.tensor([1]), lam=0.6, t=2
    )
    assert keep.item() and math.isnan(score.item())


# ---- FGC as a pure function -------------------------------------------------------------


def _fgc(preds, p_pred, p_label, labels, tau, keep=None, count=None, t=None):
    preds = torch.tensor(preds)
    t = t or preds.shape[1]
    n = preds.shape[0]
    return fine_grained_correction(
        preds,
        torch.tensor(p_pred),
        torch.tensor(p_label),
        torch.tensor(count or [t] * n),
        torch.tensor(labels),
        torch.tensor(keep or [True] * n),
        tau=tau,
        t=t,
    )


def test_fgc_delta_p_just_below_and_above_tau():
    tau = 0.4
    # sample 0: Δp = 0.4 - 1e-3 ; sample 1: Δp = 0.4 + 1e-3 ; both stably predict class 1, labelled 0
    new, dp = _fgc(
        preds=[[1, 1], [1, 1]],
        p_pred=[[0.65, 0.65], [0.65, 0.65]],
        p_label=[[0.251, 0.251], [0.249, 0.249]],
        labels=[0, 0],
        tau=tau,
    )
    assert new.tolist() == [0, 1]
    assert dp[0] < tau < dp[1]


def test_fgc_needs_same_prediction_in_every_record():
    new, dp = _fgc(
        preds=[[1, 2, 1]], p_pred=[[0.9, 0.9, 0.9]], p_label=[[0.05] * 3], labels=[0], tau=0.2
    )
    assert new.tolist() == [0] and dp.item() == 0.0


def test_fgc_only_on_kept_samples_and_not_when_prediction_equals_label():
    new, _ = _fgc(
        preds=[[1, 1], [0, 0]],
        p_pred=[[0.9, 0.9], [0.9, 0.9]],
        p_label=[[0.05, 0.05], [0.9, 0.9]],
        labels=[0, 0],
        keep=[False, True],
        tau=0.2,
    )
    assert new.tolist() == [0, 0]


def test_fgc_undecided_with_fewer_than_t_records():
    new, dp = _fgc(
        preds=[[1, 1]], p_pred=[[0.9, 0.9]], p_label=[[0.05] * 2], labels=[0], tau=0.2, count=[1]
    )
    assert new.tolist() == [0] and math.isnan(dp.item())


# ---- the purifier over epochs ---------------------------------------------------------------


def make(labels=(0, 0), **kw):
    opts = dict(num_classes=K, lam=0.6, tau=0.4, t=2, warmup_epochs=0)
    opts.update(kw)
    return Purifier(np.array(labels), **opts)


def test_window_t_respected_only_last_t_records_count():
    pur = make(labels=[0], t=2)
    # epoch 1: very low score, epochs 2-3: high scores -> the first record falls out of the window
    feed(pur, [0], [(0.2, 0.4, 0.4)], [0.2])
    pur.end_epoch()
    feed(pur, [0], [(0.9, 0.05, 0.05)], [1.0])
    pur.end_epoch()
    assert pur.kept_indices().tolist() == []  # mean(0.08, 0.9)=0.49 <= 0.6
    feed(pur, [0], [(0.9, 0.05, 0.05)], [1.0])
    pur.end_epoch()
    assert pur.kept_indices().tolist() == [0]  # mean(0.9, 0.9)


def test_warmup_respected_no_decision_during_warmup():
    # epochs 1-2 train on everything; the first decision is taken at the end of epoch 2
    # and governs epoch 3, although a window of t=1 was full after epoch 1
    pur = make(labels=[0, 0], warmup_epochs=2, t=1)
    for epoch in range(2):
        # sample 0 always unusable, sample 1 always confidently predicted as class 1
        feed(pur, [0, 1], [(0.34, 0.33, 0.33), (0.02, 0.96, 0.02)], [0.3, 1.0])
        counts = pur.end_epoch()
        if epoch == 0:
            assert pur.kept_indices().tolist() == [0, 1]
            assert pur.current_labels.tolist() == [0, 0]
            assert counts["undecided"] == 2
    assert pur.pruned_indices().tolist() == [0]
    assert pur.current_labels.tolist() == [0, 1]
    states = pur.ledger.column("state")
    assert states.tolist() == [[UNDECIDED, UNDECIDED], [PRUNED, CORRECTED]]


def test_correction_undone_when_it_stops_holding():
    pur = make(labels=[0], t=2, tau=0.4, lam=0.5)
    for _ in range(2):
        feed(pur, [0], [(0.05, 0.9, 0.05)], [1.0])
        pur.end_epoch()
    assert pur.current_labels.tolist() == [1]
    assert pur.corrected_indices().tolist() == [0]
    # the model changes its mind: class 2 once -> prediction no longer stable -> back to y
    feed(pur, [0], [(0.05, 0.05, 0.9)], [1.0])
    pur.end_epoch()
    assert pur.current_labels.tolist() == [0]
    assert pur.labels.tolist() == [0]  # the annotation itself never changes
    assert pur.ledger.column("state")[:, 0].tolist() == [UNDECIDED, CORRECTED, KEPT]


def test_pruned_sample_reenters_when_revisits_score_high():
    pur = make(labels=[0, 1], t=2, lam=0.6, fgc=False)
    for _ in range(2):
        feed(pur, [0, 1], [(0.4, 0.3, 0.3), (0.1, 0.8, 0.1)], [0.5, 0.9])
        pur.end_epoch()
    assert pur.pruned_indices().tolist() == [0]
    # the trainer revisits pruned samples with a no-grad pass; they now score high
    for _ in range(2):
        feed(pur, [0, 1], [(0.95, 0.03, 0.02), (0.1, 0.8, 0.1)], [0.95, 0.9])
        pur.end_epoch()
    assert pur.pruned_indices().tolist() == []
    assert pur.ledger.column("state")[:, 0].tolist() == [UNDECIDED, PRUNED, PRUNED, KEPT]


def test_stage_switches():
    probs = [(0.34, 0.33, 0.33), (0.02, 0.96, 0.02)]
    for cgp, fgc, pruned, labels in [
        (True, True, [0], [0, 1]),
        (True, False, [0], [0, 0]),
        (False, True, [], [0, 1]),
        (False, False, [], [0, 0]),
    ]:
        pur = make(labels=[0, 0], t=1, cgp=cgp, fgc=fgc)
        feed(pur, [0, 1], probs, [0.3, 1.0])
        pur.end_epoch()
        assert pur.pruned_indices().tolist() == pruned, (cgp, fgc)
        assert pur.current_labels.tolist() == labels, (cgp, fgc)


def test_score_label_uses_probability_of_the_annotation():
    # confidently predicted as class 1 but labelled 0: max-score keeps it, label-score prunes it
    probs = [(0.05, 0.9, 0.05)]
    for score, pruned in [("max", []), ("label", [0])]:
        pur = make(labels=[0], t=1, score=score, fgc=False)
        feed(pur, [0], probs, [1.0])
        pur.end_epoch()
        assert pur.pruned_indices().tolist() == pruned


def test_one_record_per_epoch_even_if_recorded_twice():
    pur = make(labels=[0], t=2)
    feed(pur, [0], [(0.1, 0.8, 0.1)], [1.0])
    feed(pur, [0], [(0.9, 0.05, 0.05)], [1.0])  # last write in an epoch wins
    pur.end_epoch()
    assert pur.records.count.tolist() == [1]
    assert pur.ledger.column("pred")[0].tolist() == [0]


def test_labels_for_and_state_dict_round_trip():
    pur = make(labels=[0, 0], t=1, lam=0.5)
    feed(pur, [0, 1], [(0.34, 0.33, 0.33), (0.02, 0.96, 0.02)], [0.3, 1.0])
    pur.end_epoch()
    assert pur.labels_for(torch.tensor([1, 0])).tolist() == [1, 0]
    other = make(labels=[0, 0], t=1, lam=0.5)
    other.load_state_dict(pur.state_dict())
    assert other.kept_indices().tolist() == pur.kept_indices().tolist()
    assert other.current_labels.tolist() == pur.current_labels.tolist()
    assert torch.equal(other.records.count, pur.records.count)


def test_ledger_save_load(tmp_path):
    pur = make(labels=[0, 1, 2], t=1)
    feed(pur, [0, 1, 2], [(0.9, 0.05, 0.05)] * 3, [1.0, 0.2, 1.0])
    pur.end_epoch()
    path = pur.ledger.save(tmp_path / "ledger.npz")
    back = Ledger.load(path)
    assert back.final_counts() == pur.ledger.final_counts() == {
        "pruned": 1,
        "corrected": 1,
        "kept": 1,
    }
    np.testing.assert_array_equal(back.column("state"), pur.ledger.column("state"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lam=1.5), "lam: expected a value in [0, 1], got 1.5"),
        (dict(t=0), "t: expected an integer >= 1, got 0"),
        (dict(score="median"), "score: expected one of"),
        (dict(num_classes=1), "num_classes: expected an integer >= 2"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        make(**kwargs)
    assert message in str(err.value)


def test_bad_labels_and_shapes_are_refused():
    with pytest.raises(ValueError, match=r"expected values in \[0, 3\), got 5 at index 1"):
        Purifier(np.array([0, 5]), num_classes=3)
    pur = make()
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, 3\)"):
        pur.record(torch.tensor([0]), torch.zeros(1, 4))


def test_records_commit_shifts_history_whether_every_sample_or_some_were_recorded():
    labels = torch.tensor([0, 1, 2, 1])
    rec = Records(labels, 3, 2, device="cpu")
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    rec.stage(torch.arange(4), probs, torch.full((4,), 0.9), rescored=False)
    assert rec.commit().all()  # every sample: the whole-column path
    rec.stage(torch.tensor([1, 3]), probs[[2, 0]], torch.tensor([0.4, 0.3]), rescored=True)
    assert rec.commit().tolist() == [False, True, False, True]  # some: by index
    assert rec.count.tolist() == [1, 2, 1, 2]
    assert torch.allclose(rec.weight, torch.tensor([[0.9, 0.0], [0.4, 0.9], [0.9, 0.0], [0.3, 0.9]]))
    assert rec.pred.tolist() == [[0, 0], [2, 1], [2, 0], [0, 0]]
    assert torch.allclose(rec.p_label[:, 0], torch.tensor([0.7, 0.2, 0.6, 0.2]))  # p of each label
