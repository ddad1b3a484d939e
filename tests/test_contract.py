"""The purifier contract, for every registered mode: record, end an epoch, the kept set and
labels, the ledger and suspicion, a state round trip, combining two processes' records, and
the six loop calls; plus a mode added in one file (tests/example_mode.py)."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from d2sp.purify import (
    CORRECTED,
    PRUNED,
    UNDECIDED,
    Ledger,
    create_purifier,
    list_modes,
    purifier_class,
)

N, K = 60, 4
LABELS = np.random.default_rng(0).integers(0, K, N)
SELECTED = np.arange(N) % 5 != 0  # a selection made before training
OPTIONS = {  # options that make each mode decide within a few epochs
    "adaptive": dict(min_epochs=2, ready_floor=0.5, ready_gain=0.5, min_noise=0.0),
    "paper": dict(lam=0.45, tau=0.1, t=2, warmup_epochs=1),
    "scn": dict(warmup_epochs=1, relabel_margin=0.1),
    "ce": dict(keep=SELECTED, targets=(LABELS + 1) % K),
    "oracle": dict(keep=SELECTED, targets=LABELS, suspicion=(~SELECTED).astype(np.float32)),
    "cleanlab": dict(keep=SELECTED, suspicion=np.linspace(0, 1, N), suggested=LABELS),
    "dividemix": dict(warmup_epochs=1),
}
MODES = list_modes()


class Linear(nn.Module):
    """``x (B, 8) -> (logits (B, K), w (B,))``, with BatchNorm so that eval mode matters."""

    def __init__(self):
        super().__init__()
        self.bn, self.fc, self.w = nn.BatchNorm1d(8), nn.Linear(8, K), nn.Linear(8, 1)

    def forward(self, x):
        h = self.bn(x)
        return self.fc(h), torch.sigmoid(self.w(h)).squeeze(1)


class Replay(nn.Module):
    """``x (B, K + 1) -> (x[:, :K] · s, x[:, K])`` with ``s`` a learnt scale (1 at first): a
    model that gives back the records it is fed, for a mode that runs the model itself."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x[:, :K] * self.scale, x[:, K]


def make(mode, **extra):
    torch.manual_seed(0)
    if purifier_class(mode).trains_peer and "model" in extra:  # it runs the model and a peer
        extra["model"] = Replay()
        extra["optimizer"] = torch.optim.SGD(extra["model"].parameters(), lr=0.1)
    return create_purifier(mode, LABELS, num_classes=K, **{**OPTIONS.get(mode, {}), **extra})


def epoch_records(epoch):
    """Per-sample logits ``(2, N, K)`` and weights ``(2, N)`` of an epoch (training pass and
    re-scoring differ), the same whichever process records them."""
    g = torch.Generator().manual_seed(epoch)
    logits = 2.0 * torch.randn(2, N, K, generator=g)
    logits[:, : N // 3, 1] += 4.0  # a third of the samples stably predicted as class 1
    weights = torch.rand(2, N, generator=g) * 0.5 + 0.5
    weights[:, N // 2 : N // 2 + 8] *= 0.2  # a few low-weight samples to prune
    return logits, weights


def run_epoch(purifier, epoch, share=lambda b: b, reduce=None):
    """One epoch through the loop calls, with the records of :func:`epoch_records` (the last
    few training samples dropped, as with drop_last); ``share`` picks this process's part."""
    logits, weights = epoch_records(epoch)
    for batch in np.array_split(purifier.train_indices()[:-3], 4):
        idx = torch.as_tensor(share(batch))
        z = logits[0, idx].clone().requires_grad_(True)
        if purifier.trains_peer:  # through the model: the records fed to a Replay model
            loss = purifier.batch_loss(purifier.model, torch.cat([z, weights[0, idx, None]], 1), idx)
        else:
            loss = purifier.loss(z, weights[0, idx], idx)
        if len(idx):
            loss.backward()
            assert z.grad is not None and torch.isfinite(loss)
        purifier.after_step()
    for batch in np.array_split(purifier.rescore_indices(), 3):
        idx = torch.as_tensor(share(batch))
        if purifier.trains_peer:
            purifier.rescore(idx, torch.cat([logits[1, idx], weights[1, idx, None]], 1))
        else:
            purifier.record(idx, logits[1, idx], weights[1, idx], rescored=True)
    return purifier.end_epoch(reduce=reduce)


@pytest.mark.parametrize("mode", MODES)
def test_epochs_give_a_consistent_kept_set_labels_ledger_and_suspicion(mode):
    pur = make(mode, model=Linear())
    for epoch in range(5):
        counts = run_epoch(pur, epoch)
        assert sum(counts[k] for k in ("kept", "pruned", "corrected", "undecided")) == N
        kept, pruned = pur.kept_indices(), pur.pruned_indices()
        assert sorted([*kept, *pruned]) == list(range(N)) and counts["pruned"] == len(pruned)
        assert np.array_equal(pur.labels_for(torch.arange(N)).numpy(), pur.current_labels.numpy())
        changed = np.flatnonzero(pur.current_labels.numpy() != LABELS)
        corrected = pur.corrected_indices()  # (a mode may train some on other labels: probes)
        assert set(corrected) <= set(changed)
        state = pur.ledger.column("state")[-1]
        assert np.array_equal(np.flatnonzero(state == CORRECTED), corrected)
        assert np.array_equal(pur.labels.numpy(), LABELS)  # the annotation never changes
    ledger = pur.ledger
    assert ledger.num_epochs == 5 and all(ledger.column(c).shape == (5, N) for c in Ledger.COLUMNS)
    state = ledger.column("state")[-1]
    assert np.array_equal(state == PRUNED, ~pur.keep_mask.numpy())
    score, suggested = pur.suspicion()
    recorded = pur.records.count.numpy() > 0
    assert score.shape == (N,) and np.isfinite(score[recorded]).all()
    if mode not in ("oracle", "cleanlab"):  # (those know their scores before training)
        assert np.isnan(score[~recorded]).all()  # no evidence, no score
    assert ((suggested >= 0) & (suggested < K)).all()
    corrected = state == CORRECTED
    assert np.array_equal(suggested[corrected], pur.current_labels.numpy()[corrected])


@pytest.mark.parametrize("mode", MODES)
def test_state_round_trip_continues_identically(mode):
    a, b = make(mode, model=Linear()), make(mode, model=Linear())
    for epoch in range(3):
        run_epoch(a, epoch)
    b.load_state_dict(a.state_dict())
    assert b.epoch == a.epoch and torch.equal(b.keep_mask, a.keep_mask)
    assert torch.equal(b.current_labels, a.current_labels)
    b.ledger = Ledger(labels=LABELS.copy())
    for epoch in (3, 4):
        assert run_epoch(a, epoch) == run_epoch(b, epoch)
        assert torch.equal(a.keep_mask, b.keep_mask)
        assert torch.equal(a.current_labels, b.current_labels)


def combine_on_two_ranks(ranks, epoch):
    """One epoch on two in-process "ranks" (a thread each), each recording its half of every
    batch, whose reduce returns the sum of both ranks' tensors, as an all-reduce would."""
    barrier = threading.Barrier(2, timeout=30)
    slots = [None, None]

    def reducer(rank):
        def reduce(t):
            slots[rank] = t.clone()
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()  # both have read the slots before they are overwritten
            return total

        return reduce

    def work(r):
        return run_epoch(ranks[r], epoch, share=lambda b: b[r::2], reduce=reducer(r))

    with ThreadPoolExecutor(2) as pool:
        return [f.result() for f in [pool.submit(work, r) for r in (0, 1)]]


@pytest.mark.parametrize("mode", MODES)
def test_records_combined_across_two_processes_give_one_process_decisions(mode):
    if purifier_class(mode).trains_peer:
        pytest.skip("a mode with a second network refuses multi-process runs")
    one = make(mode)
    ranks = [make(mode), make(mode)]
    for epoch in range(6):
        expected = run_epoch(one, epoch)
        assert combine_on_two_ranks(ranks, epoch) == [expected, expected]
        for p in ranks:
            assert torch.equal(p.keep_mask, one.keep_mask)
            assert torch.equal(p.current_labels, one.current_labels)
    for p in ranks:
        for col in Ledger.COLUMNS:
            np.testing.assert_array_equal(p.ledger.column(col), one.ledger.column(col))
    state = one.ledger.column("state")
    if mode == "paper":
        assert (state == PRUNED).any() and (state == CORRECTED).any()
    if mode == "scn":
        assert (state == CORRECTED).any()


def test_a_sample_recorded_by_two_processes_is_refused():
    ranks = [make("paper"), make("paper")]
    logits, weights = epoch_records(0)
    for p in ranks:
        p.record(torch.arange(5), logits[0, :5], weights[0, :5])

    def share(b):  # both ranks record the same samples
        return b

    with pytest.raises(RuntimeError, match="recorded by more than one process"):
        barrier = threading.Barrier(2, timeout=30)
        slots = [None, None]

        def reducer(rank):
            def reduce(t):
                slots[rank] = t.clone()
                barrier.wait()
                total = slots[0] + slots[1]
                barrier.wait()
                return total

            return reduce

        with ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(p.end_epoch, reducer(r)) for r, p in enumerate(ranks)]:
                f.result()


@pytest.mark.parametrize("mode", MODES)
def test_rescore_scores_with_the_mode_scorer_without_changing_the_model(mode):
    pur = make(mode, model=Linear())
    model = pur.model
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 8)
    pur.rescore(torch.arange(6), x)
    assert model.training  # the model's mode is restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert pur.end_epoch()["recorded"] == 6


def test_unknown_options_and_bad_values_name_the_mode_and_the_key():
    with pytest.raises(ValueError, match="lam: mode 'scn' has no option 'lam'"):
        make("scn", lam=0.5)
    with pytest.raises(ValueError, match=r"lam: expected a value in \[0, 1\], got 2"):
        make("paper", lam=2)
    with pytest.raises(ValueError) as err:
        make("scn", lam=0.5, nope=1)
    again = pickle.loads(pickle.dumps(err.value))  # as a worker process hands it back
    assert str(again) == str(err.value) and again.problems == err.value.problems
    assert len(again.problems) == 2 and again.problems[0].startswith("lam: mode 'scn'")


# ---- a mode in one file ----------------------------------------------------------------------


def test_a_mode_in_one_file_registers_and_runs_the_same_loop():
    import tests.example_mode  # noqa: F401  (registration)

    assert "drop-doubtful" in list_modes()
    pur = create_purifier("drop-doubtful", LABELS, num_classes=K, floor=0.2)
    run_epoch(pur, 0)
    logits, _ = epoch_records(0)
    p_label = torch.softmax(logits[0], 1)[torch.arange(N), torch.as_tensor(LABELS)]
    want = ~((p_label.numpy() < 0.2) & (np.arange(N) < N - 3))
    assert np.array_equal(pur.keep_mask.numpy(), want)
    assert pur.ledger.column("state")[0][N - 1] == UNDECIDED  # never recorded
    with pytest.raises(ValueError, match=r"floor: expected a value in \[0, 1\), got 2"):
        create_purifier("drop-doubtful", LABELS, num_classes=K, floor=2)
