"""Shared fixtures: one tiny SynthDFER for the whole session, and the tiny run configs."""

import os

import pytest

from d2sp.config import load_config

TINY_SYNTH = "{num_train: 48, num_test: 21, size: 32, min_frames: 4, max_frames: 8, workers: 1}"
TINY_DATA = [
    f"data.options={TINY_SYNTH}",
    "data.num_frames=4",
    "data.size=32",
    "data.workers=0",
    "model.options={width: 4, lstm_hidden: 16}",
    "optim.epochs=3",
    "optim.batch_size=8",
]
TINY = [*TINY_DATA, "purify.mode=paper", "purify.warmup_epochs=2", "purify.t=1", "purify.lam=0.0"]
# runs on the tiny real-layout trees of tests/test_datasets.py (any --dataset)
TINY_TREE = [
    "data.num_frames=4",
    "data.size=16",
    "data.workers=0",
    "model.options={width: 4, lstm_hidden: 8}",
    "optim.epochs=2",
    "optim.batch_size=2",
    "purify.mode=paper",
    "purify.warmup_epochs=1",
    "purify.t=1",
]


def tiny_config(tmp_path, synth_root, *extra):
    """A 3-epoch run on the tiny SynthDFER: paper mode with a 2-epoch warm-up (t=1, λ=0) unless
    ``extra`` names another ``purify.mode``, which then keeps its own defaults."""
    modes = [e for e in extra if e.startswith("purify.mode=")]
    base = TINY if not modes or modes[-1] == "purify.mode=paper" else TINY_DATA
    return load_config(None, [*base, f"data.root={synth_root}", f"out_dir={tmp_path}", *extra])


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The user cache folder (``$D2SP_CACHE``: the record of checked clips, generated data)
    is a temporary folder, never the user's own; subprocesses inherit it."""
    old = os.environ.get("D2SP_CACHE")
    os.environ["D2SP_CACHE"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if old is None:
        os.environ.pop("D2SP_CACHE", None)
    else:
        os.environ["D2SP_CACHE"] = old


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny SynthDFER (48 training clips with noise and ground truth, 21 test clips),
    generated once per session."""
    from d2sp.data.splits import load_split

    root = tmp_path_factory.mktemp("synth")
    load_split(tiny_config(root, root).data, "train", progress=False)
    return root


def tiny_mode_overrides(mode: str, epochs: int = 4) -> list[str]:
    """Overrides for a short run of ``mode`` on the tiny SynthDFER that takes decisions: one
    warm-up epoch and a window of one where the mode has them, two one-epoch folds for a mode
    that trains fold models, and ``epochs`` epochs (more when the mode needs them to decide)."""
    from d2sp.purify import purifier_class

    cls = purifier_class(mode)
    set_ = {k: v for k, v in {"warmup_epochs": 1, "t": 1, "folds": 2, "fold_epochs": 1}.items()
            if k in cls.defaults}  # fmt: skip
    options = cls.resolve(set_)
    while cls.schedule_problems(options, epochs=epochs, dataset="synthdfer") and epochs < 16:
        epochs *= 2
    return [f"purify.mode={mode}", f"optim.epochs={epochs}", *(f"purify.{k}={v}" for k, v in set_.items())]


@pytest.fixture(scope="module")
def d2sp_plus():
    """The benchmark-only mode ``d2sp+`` (``benchmarks/quality/d2sp_plus.py``), registered
    for the tests of one module and unregistered after them, so that tests which run every
    registered mode see only the package's."""
    import importlib

    from d2sp.purify import PURIFIERS

    before = PURIFIERS.get("d2sp+")  # (registered already when the suite's rows were imported)
    module = importlib.import_module("benchmarks.quality.d2sp_plus")
    PURIFIERS["d2sp+"] = module.ImprovedPurifier
    yield module
    restore_registration("d2sp+", before)


@pytest.fixture(scope="module")
def heldout_mode():
    """The benchmark-only mode ``heldout`` (``benchmarks/quality/heldout.py``), registered for
    the tests of one module and unregistered after them."""
    import importlib

    from d2sp.purify import PURIFIERS

    before = PURIFIERS.get("heldout")  # (registered already when the suite's rows were imported)
    module = importlib.import_module("benchmarks.quality.heldout")
    PURIFIERS["heldout"] = module.HeldOutPurifier
    yield module
    restore_registration("heldout", before)


def restore_registration(mode: str, before) -> None:
    """Put the registry's entry for ``mode`` back as it was before a fixture registered it."""
    from d2sp.purify import PURIFIERS

    if before is None:
        PURIFIERS.pop(mode, None)
    else:
        PURIFIERS[mode] = before
