"""The benchmark-only mode ``d2sp+`` (``benchmarks/quality/d2sp_plus.py``, a row of the suite):
its rules on hand-made arrays, the purifier, hooks, the factory once the suite has registered
it, and a plain loop where it corrects flipped labels and prunes junk."""

import importlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from d2sp.purify import CORRECTED, KEPT, PRUNED, coarse_grained_pruning, create_purifier
from d2sp.purify.losses import rank_regularization
from d2sp.purify.paper import PaperPurifier
from d2sp.purify.teacher import EmaTeacher

K = 3


pytestmark = pytest.mark.usefixtures("d2sp_plus")  # registered for this module's tests only


def dp():
    """The mode's module, imported when a test runs (at collection it would add ``d2sp+`` to
    what other test files parametrize over)."""
    return importlib.import_module("benchmarks.quality.d2sp_plus")


def logits_for(*probs):
    """Logits whose softmax is exactly the given probability rows."""
    return torch.log(torch.tensor(probs, dtype=torch.float64)).float()


# ---- class-relative pruning -------------------------------------------------------------


def test_class_relative_threshold_just_inside_and_outside():
    # class 0: median 0.8 -> threshold 0.5 * 0.8 = 0.4
    score = torch.tensor([0.8, 0.8, 0.8, 0.4 + 1e-3, 0.4 - 1e-3])
    cls = torch.zeros(5, dtype=torch.long)
    keep, thr = dp().class_relative_pruning(
        score, cls, torch.ones(5, dtype=torch.bool), lam=0.5, num_classes=2
    )
    assert keep.tolist() == [True, True, True, True, False]
    assert thr[0].item() == pytest.approx(0.4)
    exact, _ = dp().class_relative_pruning(
        torch.tensor([0.8, 0.8, 0.4]), torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.bool),
        lam=0.5, num_classes=1,
    )  # fmt: skip
    assert exact.tolist() == [True, True, True]  # at the threshold is kept


def test_hard_class_is_not_thinned_out():
    # class 1 is hard: every score is low; a global λ = 0.5 would prune all of it
    score = torch.tensor([0.9, 0.95, 0.9, 0.3, 0.32, 0.3, 0.1])
    cls = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    decided = torch.ones(7, dtype=torch.bool)
    keep, _ = dp().class_relative_pruning(score, cls, decided, lam=0.5, num_classes=2)
    assert keep.tolist() == [True, True, True, True, True, True, False]
    # the paper's global rule on the same scores prunes the whole hard class
    paper_keep, _ = coarse_grained_pruning(
        torch.ones(7, 1), score.unsqueeze(1), torch.ones(7, dtype=torch.long), lam=0.5, t=1
    )
    assert paper_keep.tolist() == [True, True, True, False, False, False, False]


def test_undecided_samples_are_kept_and_do_not_count_in_the_median():
    score = torch.tensor([1.0, 1.0, 0.0, 0.45])
    decided = torch.tensor([True, True, False, True])
    med = dp().class_medians(score, torch.zeros(4, dtype=torch.long), decided, num_classes=1)
    assert med.item() == 1.0
    keep, _ = dp().class_relative_pruning(
        score, torch.zeros(4, dtype=torch.long), decided, lam=0.5, num_classes=1
    )
    assert keep.tolist() == [True, True, True, False]


def test_empty_class_falls_back_to_the_overall_median():
    med = dp().class_medians(
        torch.tensor([0.2, 0.6, 1.0]), torch.tensor([0, 0, 0]), torch.ones(3, dtype=torch.bool),
        num_classes=2,
    )  # fmt: skip
    assert med.tolist() == pytest.approx([0.6, 0.6])


def test_hysteresis_per_sample_threshold():
    # the same score 0.7 of the class median 1.0: a kept sample stays (0.7 > 0.5), a pruned
    # one does not come back (0.7 <= rejoin 1.0)
    score = torch.tensor([1.0, 1.0, 1.0, 0.7, 0.7])
    lam = torch.tensor([0.5, 0.5, 0.5, 0.5, 1.0])
    keep, _ = dp().class_relative_pruning(
        score, torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.bool), lam=lam,
        num_classes=1,
    )  # fmt: skip
    assert keep.tolist() == [True, True, True, True, False]


def test_window_mean_reads_the_newest_columns():
    values = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    out = dp().window_mean(values, torch.tensor([3, 1]), 2)
    assert out[0].item() == 0.75 and math.isnan(out[1].item())


# ---- correction with agreeing records ---------------------------------------------------


def _correct(preds, fresh, tau=0.2, agree=3, eligible=None):
    preds = torch.tensor(preds)
    n, w = preds.shape
    return dp().agreeing_correction(
        preds,
        torch.full((n, w), 0.9),
        torch.full((n, w), 0.05),
        torch.tensor(fresh),
        torch.zeros(n, dtype=torch.long),
        torch.ones(n, dtype=torch.bool) if eligible is None else torch.tensor(eligible),
        agree=agree,
        tau=tau,
    )


def test_correction_needs_k_agreeing_records():
    correct, target, dp = _correct([[1, 1, 1], [1, 1, 2], [1, 1, 1]], fresh=[3, 3, 2])
    # row 1: the third record disagrees; row 2: only 2 records since its last reset
    assert correct.tolist() == [True, False, False]
    assert target.tolist() == [1, 0, 0]
    assert dp[0].item() == pytest.approx(0.85) and math.isnan(dp[1].item())


def test_correction_margin_tau_binds():
    c, _, _ = _correct([[1, 1, 1]], fresh=[3], tau=0.84)
    assert c.tolist() == [True]  # Δp = 0.85
    c, _, _ = _correct([[1, 1, 1]], fresh=[3], tau=0.86)
    assert c.tolist() == [False]


def test_correction_only_on_eligible_and_not_towards_the_annotation():
    c, _, _ = _correct([[1, 1, 1], [0, 0, 0]], fresh=[3, 3], eligible=[False, True])
    assert c.tolist() == [False, False]


def test_expired_corrections():
    since = torch.tensor([-1, 0, 5, 9])
    assert dp().expired_corrections(since, 10, expire_after=5).tolist() == [False, True, True, False]
    assert not dp().expired_corrections(since, 10, expire_after=0).any()


def test_rescore_turn_rotates_through_the_samples():
    turns = np.stack([dp().rescore_turn(6, e, 3) for e in range(3)])
    assert (turns.sum(axis=0) == 1).all()  # each sample once every 3 epochs


# ---- rank regularisation ------------------------------------------------------------------


def test_rank_regularization_value_and_gradient_direction():
    w = torch.tensor([0.9, 0.45, 0.8, 0.5], requires_grad=True)
    loss = rank_regularization(w, margin=0.5, ratio=0.5)
    # high group {0.9, 0.8} mean 0.85, low group {0.5, 0.45} mean 0.475: 0.5 − 0.375
    assert loss.item() == pytest.approx(0.125)
    loss.backward()
    # descending the gradient raises the high group and lowers the low group
    assert w.grad.tolist() == pytest.approx([-0.5, 0.5, -0.5, 0.5])


def test_rank_regularization_is_zero_once_the_groups_are_apart():
    w = torch.tensor([0.95, 0.9, 0.2, 0.1], requires_grad=True)
    loss = rank_regularization(w, margin=0.15, ratio=0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert (w.grad == 0).all()
    single = rank_regularization(torch.tensor([0.3], requires_grad=True))
    assert single.item() == 0.0 and single.requires_grad


def test_rank_regularization_refuses_bad_options():
    with pytest.raises(ValueError, match=r"ratio: expected a value in \(0, 1\), got 1.0"):
        rank_regularization(torch.rand(4), ratio=1.0)


# ---- the purifier over epochs -------------------------------------------------------------


def make(labels, **kw):
    opts = dict(num_classes=K, t=1, agree=2, warmup_epochs=0, teacher=False, rejoin=None)
    opts.update(kw)
    return dp().ImprovedPurifier(np.array(labels), **opts)


def epoch(pur, probs, weights=None):
    n = len(probs)
    w = torch.ones(n) if weights is None else torch.tensor(weights)
    pur.record(torch.arange(n), logits_for(*probs), w)
    return pur.end_epoch()


GOOD0 = (0.9, 0.05, 0.05)  # confidently class 0
GOOD1 = (0.05, 0.9, 0.05)
JUNK = (0.34, 0.33, 0.33)


def test_correction_after_agree_records_and_not_before():
    pur = make([0, 0, 0, 0], agree=2)
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])
    assert pur.corrected_indices().tolist() == []  # one record only
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])
    assert pur.corrected_indices().tolist() == [3]
    assert pur.labels_for(torch.tensor([3])).tolist() == [1]
    assert pur.labels.tolist() == [0, 0, 0, 0]  # the annotation never changes


def test_returning_sample_is_not_corrected_at_once():
    pur = make([0, 0, 0, 0], agree=2, fgc=True)
    for _ in range(2):
        epoch(pur, [GOOD0, GOOD0, GOOD0, JUNK])
    assert pur.pruned_indices().tolist() == [3]
    # it is now confidently predicted as class 1: it comes back, but with its annotation
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])
    assert pur.kept_indices().tolist() == [0, 1, 2, 3]
    assert pur.corrected_indices().tolist() == []
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])  # still a single record while kept
    assert pur.corrected_indices().tolist() == []
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])
    assert pur.corrected_indices().tolist() == [3]


def test_rejoin_hysteresis_keeps_a_pruned_sample_out():
    # sample 3 scores 2/3 of the median after being pruned: enough to stay, not to return
    mid = (0.6, 0.2, 0.2)
    pur = make([0, 0, 0, 0], rejoin=1.0, fgc=False)
    epoch(pur, [GOOD0, GOOD0, GOOD0, JUNK])
    assert pur.pruned_indices().tolist() == [3]
    epoch(pur, [GOOD0, GOOD0, GOOD0, mid])
    assert pur.pruned_indices().tolist() == [3]
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD0])  # now as typical as its class: back
    assert pur.pruned_indices().tolist() == []
    epoch(pur, [GOOD0, GOOD0, GOOD0, mid])  # kept samples only need lam: stays
    assert pur.pruned_indices().tolist() == []


def test_a_correction_that_expires_is_held_out_and_must_be_earned_again():
    pur = make([0, 0, 0, 0], agree=2, expire_after=2)
    states = []
    for _ in range(7):
        epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])
        states.append(pur.ledger.column("state")[-1][3])
    # corrected at epoch 2, lapses at epoch 4 (held out, shown as pruned) until 2 fresh
    # records (epochs 5 and 6) earn it again at epoch 6; it lapses again at epoch 8
    assert states == [KEPT, CORRECTED, CORRECTED, PRUNED, PRUNED, CORRECTED, CORRECTED]
    epoch(pur, [GOOD0, GOOD0, GOOD0, GOOD1])
    assert pur.ledger.column("state")[-1][3] == PRUNED
    assert pur.current_labels[3].item() == 0  # held out: back to its annotation
    assert pur.pruned_indices().tolist() == [3]


def test_warmup_takes_no_decision():
    pur = make([0, 0, 0], warmup_epochs=2, agree=1)
    epoch(pur, [GOOD0, GOOD1, GOOD0])
    assert pur.corrected_indices().tolist() == [] and pur.kept_indices().tolist() == [0, 1, 2]
    assert pur.ledger.column("state")[0].tolist() == [0, 0, 0]  # undecided in warm-up
    epoch(pur, [GOOD0, GOOD1, GOOD0])
    assert pur.corrected_indices().tolist() == [1]  # the first decision, at the end of epoch 2
    assert pur.ledger.column("state")[1].tolist() == [KEPT, CORRECTED, KEPT]


def test_stage_switches():
    for cgp, fgc, pruned, corrected in [(True, True, [3], [2]), (False, True, [], [2])]:
        pur = make([0, 0, 0, 0], cgp=cgp, fgc=fgc, agree=1)
        epoch(pur, [GOOD0, GOOD0, GOOD1, JUNK])
        assert pur.pruned_indices().tolist() == pruned, (cgp, fgc)
        assert pur.corrected_indices().tolist() == corrected, (cgp, fgc)
    pur = make([0, 0, 0, 0], fgc=False, agree=1)
    epoch(pur, [GOOD0, GOOD0, GOOD1, JUNK])
    assert pur.corrected_indices().tolist() == []


def test_state_dict_round_trip():
    pur = make([0, 0, 0, 0], agree=1)
    epoch(pur, [GOOD0, GOOD0, GOOD1, JUNK])
    other = make([0, 0, 0, 0], agree=1)
    other.load_state_dict(pur.state_dict())
    assert other.kept_indices().tolist() == pur.kept_indices().tolist()
    assert other.corrected_indices().tolist() == pur.corrected_indices().tolist()
    assert torch.equal(other.records.pred, pur.records.pred)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lam=1.5), "lam: expected a value in [0, 1], got 1.5"),
        (dict(agree=0), "agree: expected an integer >= 1, got 0"),
        (dict(rejoin=0.1), "rejoin: expected None or a value in [lam=0.5, 2], got 0.1"),
        (dict(rescore_every=0), "rescore_every: expected an integer >= 1, got 0"),
        (dict(rank_ratio=0.0), "rank_ratio: expected a value in (0, 1), got 0.0"),
        (dict(score="label"), "score: mode 'd2sp+' has no option 'score'"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        make([0, 1], lam=kwargs.pop("lam", 0.5), **kwargs)
    assert message in str(err.value)


def test_bad_logits_are_refused():
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, 3\)"):
        make([0, 1]).record(torch.tensor([0]), torch.zeros(1, 4))


# ---- teacher records and the loop hooks ---------------------------------------------------


def test_with_a_teacher_only_rescored_records_count():
    model = Tiny()
    pur = make([0, 0], teacher=True, agree=1, model=model)
    assert not pur.train_records
    out = pur.loss(logits_for(GOOD1, GOOD1), torch.ones(2), torch.arange(2))  # training pass
    assert out.ndim == 0
    pur.record(torch.arange(2), logits_for(GOOD0, GOOD1), torch.ones(2), rescored=True)
    pur.end_epoch()
    assert pur.records.pred[:, 0].tolist() == [0, 1]
    assert pur.records.count.tolist() == [1, 1]


def test_without_a_teacher_a_rescored_record_overrides_the_training_pass():
    pur = make([0, 0], teacher=False, agree=1)
    pur.loss(logits_for(GOOD1, GOOD1), torch.ones(2), torch.arange(2))
    pur.record(torch.tensor([1]), logits_for(GOOD0), torch.ones(1), rescored=True)
    pur.end_epoch()
    assert pur.records.pred[:, 0].tolist() == [1, 0]


def test_rescore_indices():
    pur = make([0] * 6, teacher=True, rescore_every=3, agree=1)
    pur.bind(Tiny())
    pur.keep_mask = torch.tensor([True, True, True, True, True, False])
    assert pur.rescore_indices().tolist() == [0, 3, 5]  # its turn, or pruned
    assert make([0] * 6).rescore_indices().tolist() == []  # no teacher: the pruned only


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, K)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x):
        return self.fc(self.bn(x)), torch.sigmoid(x.sum(1))


def test_paper_mode_adds_nothing_and_rescores_pruned_samples_with_the_model():
    model = Tiny()
    pur = PaperPurifier(np.array([0, 0]), num_classes=K, model=model)
    assert pur.extra_loss(torch.rand(4)) == 0.0 and pur.modules() == []
    assert pur.rescore_indices().tolist() == pur.pruned_indices().tolist()
    model.train()
    x = torch.rand(2, 2)
    pur.rescore(torch.arange(2), x)
    assert model.training  # the model's mode is restored
    model.eval()
    want = torch.softmax(model(x)[0], 1).max(1).values
    assert pur.end_epoch()["recorded"] == 2
    assert torch.allclose(pur.records.p_pred[:, 0], want)  # scored by the model in eval mode


def test_after_step_updates_the_ema_teacher_and_loss_adds_the_rank_term():
    torch.manual_seed(0)
    model = Tiny()
    pur = make([0, 0], teacher=True, warmup_epochs=0, rank_reg=True, model=model)
    before = pur.teacher.model.fc.weight.clone()
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    pur.after_step()
    after = pur.teacher.model.fc.weight
    d = 1.0 - EmaTeacher(model).decay()  # first step: (1 + 0) / (10 + 0) -> moves 0.9
    assert torch.allclose(after, before + d * 1.0, atol=1e-6)
    assert not pur.teacher.model.fc.weight.requires_grad
    assert pur.modules() == [pur.teacher.model]
    logits = logits_for(GOOD0, GOOD0, GOOD0, GOOD0)
    w = torch.tensor([0.5, 0.5, 0.5, 0.5])
    plain = torch.nn.functional.cross_entropy(logits * 0.5, torch.zeros(4, dtype=torch.long))
    total = pur.loss(logits, w, torch.tensor([0, 1, 0, 1]))
    assert total.item() == pytest.approx(plain.item() + 0.15, abs=1e-5)  # WCE + rank term
    x = torch.rand(2, 2)
    pur.rescore(torch.arange(2), x)  # scored by the teacher, not the model
    want = torch.softmax(pur.teacher.model(x)[0], 1).max(1).values
    assert pur.end_epoch()["recorded"] == 2
    assert torch.allclose(pur.records.p_pred[:, 0], want)


# ---- the registry ---------------------------------------------------------------------------


def test_registry_builds_the_mode_once_the_suite_registers_it_and_refuses_unknown_ones():
    labels = np.array([0, 1, 2])
    assert type(create_purifier("paper", labels, num_classes=K, lam=0.6)) is PaperPurifier
    mode = dp().ImprovedPurifier  # the suite registers it (here: the d2sp_plus fixture)
    assert type(create_purifier("d2sp+", labels, num_classes=K, lam=0.6)) is mode
    with pytest.raises(ValueError) as err:
        create_purifier("d2sp++", np.array([0, 1]), num_classes=2)
    assert "purify.mode: expected one of" in str(err.value) and "'d2sp++'" in str(err.value)
    with pytest.raises(ValueError, match="rank_reg: mode 'paper' has no option 'rank_reg'"):
        create_purifier("paper", np.array([0, 1]), num_classes=2, rank_reg=True)


def test_in_a_plain_loop_it_corrects_flips_and_prunes_junk():
    from tests.test_plug_and_play import train_plain_loop

    dp()
    purifier, true, junk, flipped, given = train_plain_loop("d2sp+", warmup_epochs=4)
    corrected, pruned = purifier.corrected_indices(), purifier.pruned_indices()
    labels = purifier.current_labels.numpy()
    right = (labels[corrected] == true[corrected]) & flipped[corrected]
    assert right.mean() >= 0.8  # corrections restore the true label
    assert right.sum() >= 0.8 * flipped.sum()  # and find most of the flipped labels
    assert len(pruned) > 0 and junk[pruned].mean() >= 0.8  # pruning hits the pure-noise samples
    assert (purifier.labels.numpy() == given.numpy()).all()  # the annotation is never changed
