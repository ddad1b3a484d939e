"""``data.workers: auto``: the loader processes follow the machine, resolved at run time."""

import os

import numpy as np
import pytest
import yaml

from d2sp.commands.common import packaged_config
from d2sp.config import ConfigError, RunConfig, load_config, resolve_workers
from d2sp.runs.folder import read_run


def test_auto_is_the_default_and_resolves_to_the_cpus(monkeypatch):
    assert RunConfig().data.workers == "auto"
    for cpus, want in [(1, 0), (2, 1), (4, 3), (5, 3), (16, 14), (64, 32), (None, 0)]:
        monkeypatch.setattr(os, "cpu_count", lambda c=cpus: c)
        assert resolve_workers("auto") == want
    assert resolve_workers(3) == 3


@pytest.mark.parametrize("name", ["dfew", "ferv39k", "mafw"])
def test_packaged_configs_ask_for_auto_and_demo_keeps_zero(name):
    assert yaml.safe_load(packaged_config(name).read_text())["data"]["workers"] == "auto"
    assert load_config(packaged_config(name)).data.workers == "auto"
    assert load_config(packaged_config("demo")).data.workers == 0


def test_explicit_integers_stay_and_nonsense_is_refused():
    assert load_config(None, ["data.workers=5"]).data.workers == 5
    for bad in ("data.workers=-1", "data.workers=many", "data.workers=1.5", "data.workers=true"):
        with pytest.raises(ConfigError, match="data.workers: expected auto or an integer >= 0"):
            load_config(None, [bad])


def test_auto_workers_train_the_run_of_the_main_process(tmp_path, synth_root, monkeypatch):
    """``data.workers: auto`` resolves at run time (here 2 loader processes) and loading in
    worker processes changes nothing: every epoch's figures and every decision are the
    same as with the main process loading."""
    from d2sp import train
    from tests.conftest import tiny_config

    monkeypatch.setattr(os, "cpu_count", lambda: 3)  # auto -> 2 worker processes
    assert resolve_workers("auto") == 2
    for name, workers in (("main", 0), ("auto", "auto")):
        train(tiny_config(tmp_path, synth_root, f"name={name}", f"data.workers={workers}"),
              progress=False)  # fmt: skip
    saved = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert saved["data"]["workers"] == "auto"
    main, auto = (read_run(tmp_path / name) for name in ("main", "auto"))
    figures = [[{k: v for k, v in row.items() if k != "seconds"} for row in run.metrics]
               for run in (main, auto)]  # fmt: skip
    assert len(figures[0]) == 3 and figures[0] == figures[1]
    for column in ("state", "label", "weight", "score"):
        assert np.array_equal(main.ledger.column(column), auto.ledger.column(column), equal_nan=True)


def test_workers_reuse_their_shared_batch_buffers_when_asked():
    """``CheckedCollate(reuse=R)``: each worker stacks clips into R shared buffers it made
    once (what the trainer's pinned loaders use), and the batches are the same as without."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from d2sp.data.frames import DataError
    from d2sp.training.badclips import CheckedCollate, CheckedItems, Failure

    class Clips(Dataset):
        def __len__(self):
            return 90

        def __getitem__(self, i):
            if i == 13:
                raise DataError("bad")
            return torch.full((2, 3, 4, 4), i, dtype=torch.uint8), i % 7, i

    def batches(reuse):
        loader = DataLoader(CheckedItems(Clips()), batch_size=8, num_workers=2, prefetch_factor=2,
                            collate_fn=CheckedCollate(reuse))  # fmt: skip
        out, buffers = [], set()
        for clips, labels, idx, failed in loader:
            fd, _ = clips.untyped_storage()._share_fd_cpu_()
            buffers.add(os.fstat(fd).st_ino)
            out.append((clips.clone(), labels.tolist(), idx.tolist(), failed))
        return out, buffers

    plain, fresh = batches(0)
    reused, ring = batches(4)
    # one buffer per batch without reuse; with it 4 per worker, plus one made again for the
    # batch that lost a clip (another shape) and one for the batch after it in that slot
    assert len(fresh) == len(plain) == 12 and len(ring) <= 2 * 4 + 2
    for (a, la, ia, fa), (b, lb, ib, fb) in zip(plain, reused, strict=True):
        assert torch.equal(a, b) and (la, ia, fa) == (lb, ib, fb)
        assert torch.equal(a[:, 0, 0, 0, 0], torch.tensor(ia, dtype=torch.uint8))
    assert plain[1][3] == [(13, "bad")] and len(plain[1][2]) == 7  # a failed item left out
    items = [Failure(3, "x")]
    assert CheckedCollate(4)(items)[0].shape == (0,)  # in the main process: as usual


class EpochClips:
    """Items ``(clip filled with index + 100·epoch, label, index)``; index 13 unreadable; the
    worker's pid in the label."""

    def __init__(self, n=60):
        self.n, self.epoch = n, 0

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        import torch

        from d2sp.data.frames import DataError

        if i == 13:
            raise DataError("bad")
        return torch.full((2, 3, 4, 4), i + 100 * self.epoch, dtype=torch.int32), os.getpid(), i


def test_pass_loaders_keep_their_workers_and_read_what_a_loader_per_pass_reads():
    """The run's loaders (``d2sp.training.passes``): the workers stay up from pass to pass,
    and each pass reads what a new ``make_loader`` would (its seeded order, its epoch's
    items, the unreadable items handed over); a pass prefetched for other samples is
    dropped."""
    from d2sp.config import load_config
    from d2sp.training.badclips import BadClips
    from d2sp.training.distributed import SINGLE
    from d2sp.training.loaders import make_loader
    from d2sp.training.passes import RunLoaders

    def read(loader):
        return [(c[:, 0, 0, 0, 0].tolist(), i.tolist(), set(p.tolist())) for c, p, i in loader]

    cfg = load_config(None, ["optim.batch_size=8", "data.workers=2", "seed=3"])
    bad = BadClips(skip_bad=True)
    ds, test = EpochClips(), EpochClips(21)
    loaders = RunLoaders(cfg, SINGLE, bad, train_ds=ds, rescore_ds=ds, test_ds=test)
    rng = np.random.default_rng(0)
    pids = set()
    try:
        for epoch in range(3):
            others = rng.choice(np.delete(np.arange(len(ds)), 13), 49 - 5 * epoch, replace=False)
            indices = np.sort(np.append(others, 13))  # with the unreadable one
            if epoch == 1:  # prefetched for other samples: planned again
                loaders.prefetch(epoch, indices[1:])
            ds.set_epoch(epoch)
            got = read(loaders.train(epoch, indices))
            failed = []
            want = read(make_loader(ds, indices, batch_size=8, shuffle=True, seed=3000 + epoch,
                                    workers=2, drop_last=True, pad_empty=True,
                                    on_failed=failed.extend))  # fmt: skip
            assert [g[:2] for g in got] == [w[:2] for w in want] and len(got) == len(indices) // 8
            assert all(c == [i + 100 * epoch for i in idx] for c, idx, _ in got)
            pids |= {p for *_, ps in got for p in ps}
            loaders.prefetch(epoch + 1, indices)  # (the last one is never run)
            assert read(loaders.test())[0][:2] == (list(range(8)), list(range(8)))
            assert [i for i, _ in failed] == [13]
        bad.sync()
        assert bad.excluded == {"train": {13}, "test": {13}}
    finally:
        loaders.close()
    assert len(pids) == 2  # the same two worker processes read every pass
