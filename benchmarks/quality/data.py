"""The suite's datasets and noise settings; every dataset is held in memory.

- ``fashion``: Fashion-MNIST at 16×16 (Debian's ``dataset-fashion-mnist``, read from
  ``/usr/share/datasets/fashion-mnist``): per seed, ``train`` images drawn from the 60,000 training images,
  a disjoint clean ``pretrain`` split drawn after them (the pretrained regime's), and the
  first ``test`` images of the official test set;
- ``synth``: SynthDFER clips rendered in memory (``train`` noisy training clips, ``test``
  clean test clips, and with the clean cell ``pretrain`` clean clips rendered separately),
  a narrow R18-LSTM;
- ``digits``: scikit-learn's digits at 16×16 (1198 train / 599 test, no pretrained regime),
  a quick development set.

Noise settings: ``dual`` (the documented dual noise of :mod:`d2sp.data.noise` and SynthDFER:
15% unusable, 20% wrong labels, 40% of them faint images sent to a sink class, the rest
confirmation-bias runs), ``heavy`` (20% unusable, 40% wrong), ``clean`` (none); ``gen``,
another injector the defaults were never tuned on (12% class-pair flips, 10% symmetric
flips, 12% corrupted images: salt-and-pepper, cut-outs, binary noise). Test sets are clean;
the image test sets hold the training set's share of faint images, correctly labelled.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from d2sp.data.noise import inject_dual_noise, make_faint

NOISES = {
    "dual": dict(unusable_rate=0.15, label_noise_rate=0.20),
    "heavy": dict(unusable_rate=0.20, label_noise_rate=0.40),
    "clean": dict(unusable_rate=0.0, label_noise_rate=0.0),
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


@dataclass
class Data:
    """One noisy training set with its ground truth, a clean test set and, where the dataset
    has one, a clean pretraining split disjoint from both."""

    name: str
    x_train: torch.Tensor  # (N, ...) float in [0, 1]
    y_noisy: np.ndarray  # (N,) annotation
    y_true: np.ndarray  # (N,)
    unusable: np.ndarray  # (N,) bool
    x_test: torch.Tensor  # (M, ...)
    y_test: np.ndarray  # (M,)
    num_classes: int
    video: bool
    x_pre: torch.Tensor | None = None  # (P, ...) clean pretraining split
    y_pre: np.ndarray | None = None  # (P,)

    @property
    def noisy(self) -> np.ndarray:
        """``(N,)`` bool: the samples a purifier should flag (wrong label or unusable)."""
        return self.unusable | (self.y_noisy != self.y_true)


def make_data(dataset: str, noise: str, seed: int, settings: dict, cache: Path) -> Data:
    """The training, test and pretraining sets of one cell (``settings``: the dataset's, see
    :data:`benchmarks.quality.cells.SETTINGS`; SynthDFER renders are cached in ``cache``)."""
    if dataset == "synth":
        return _synth(noise, seed, settings, cache)
    if dataset == "fashion":
        x, y, pre, x_test, y_test = _fashion_split(seed, settings)
    elif dataset == "digits":
        from sklearn.model_selection import train_test_split

        xa, ya = load_digits_images(settings["size"])
        tr, te = train_test_split(np.arange(len(ya)), test_size=1 / 3, stratify=ya, random_state=seed)
        x, y, pre, x_test, y_test = xa[tr], ya[tr], None, xa[te], ya[te]
    else:
        raise ValueError(f"dataset: expected fashion, synth or digits, got {dataset!r}")
    k = int(y.max()) + 1
    if noise == "gen":
        xt, given, unusable = other_injector(x, y, k, seed)
    else:
        noisy = inject_dual_noise(
            x, y, num_classes=k, sink_class=0, seed=seed,
            annotation_batch=64 if noise == "heavy" else 32, **NOISES[noise],
        )  # fmt: skip
        xt, given, unusable = noisy.images, noisy.labels, noisy.unusable
        x_test, _ = make_faint(x_test, rate=float(noisy.faint.mean()), seed=seed + 10_000)

    def tensor(a):
        return torch.tensor(a, dtype=torch.float32).unsqueeze(1)  # (N, 1, S, S)

    return Data(
        dataset, tensor(xt), np.asarray(given, np.int64), y.astype(np.int64),
        np.asarray(unusable, bool), tensor(x_test), y_test.astype(np.int64), k, False,
        None if pre is None else tensor(pre[0]), None if pre is None else pre[1].astype(np.int64),
    )  # fmt: skip


def _fashion_split(seed: int, s: dict):
    """``(x (N, S, S), y (N,), (x_pre, y_pre), x_test, y_test)`` of one seed."""
    x_all, y_all, x_te, y_te = load_fashion()
    order = np.random.default_rng(seed).permutation(len(y_all))
    tr, pre = order[: s["train"]], order[s["train"] : s["train"] + s["pretrain"]]
    if len(pre) < s["pretrain"]:
        raise ValueError(f"fashion: train + pretrain must be at most {len(y_all)}, got {s['train']} + {s['pretrain']}")

    def resize(x):
        return _resize(x, s["size"])

    return resize(x_all[tr]), y_all[tr], (resize(x_all[pre]), y_all[pre]), resize(x_te[: s["test"]]), y_te[: s["test"]]


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W)`` in [0, 1] -> ``(N, size, size)`` (bilinear)."""
    t = torch.as_tensor(x).unsqueeze(1)  # (N, 1, H, W)
    if t.shape[-1] != size:
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t.squeeze(1).clamp(0, 1).numpy()


def load_digits_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits: ``(x (N, size, size) in [0, 1], y (N,))``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _resize((d.images / 16.0).astype(np.float32), size), d.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def load_fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST ``(x_train (60000, 28, 28), y_train, x_test (10000, 28, 28), y_test)``,
    in [0, 1]."""
    if not FASHION_DIR.exists():
        raise SystemExit(
            f"the fashion cells read Fashion-MNIST from {FASHION_DIR}: install Debian's "
            "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), or put "
            "the four idx files (train-images-idx3-ubyte.gz, ...) there"
        )
    files = {p.name: p for p in FASHION_DIR.rglob("*") if p.is_file()}

    def read(stem: str) -> np.ndarray:
        path = next((p for name, p in files.items() if name.startswith(stem)), None)
        if path is None:
            raise FileNotFoundError(f"{stem}* not found under {FASHION_DIR}")
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(dims)

    def images(stem):
        return read(stem).astype(np.float32) / 255.0

    return (images("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte").astype(np.int64),
            images("t10k-images-idx3-ubyte"), read("t10k-labels-idx1-ubyte").astype(np.int64))  # fmt: skip


def other_injector(x: np.ndarray, y: np.ndarray, k: int, seed: int):
    """The generalisation check's noise: ``(images, given labels, unusable)``."""
    rng = np.random.default_rng(seed + 777)
    xt, given = x.copy(), y.astype(np.int64).copy()
    n = len(y)
    order = rng.permutation(n)
    n_pair, n_sym, n_bad = round(0.12 * n), round(0.10 * n), round(0.12 * n)
    bad, pair = order[:n_bad], order[n_bad : n_bad + n_pair]
    sym = order[n_bad + n_pair : n_bad + n_pair + n_sym]
    perm = rng.permutation(k)
    partner = np.empty(k, np.int64)
    partner[perm] = np.roll(perm, 1)  # a fixed other class per class
    given[pair] = partner[y[pair]]
    given[sym] = (y[sym] + rng.integers(1, k, len(sym))) % k
    h, w = xt.shape[-2:]
    for j, i in enumerate(bad):
        if j % 3 == 0:  # salt and pepper
            m = rng.random((h, w))
            xt[i] = np.where(m < 0.3, 0.0, np.where(m > 0.7, 1.0, xt[i]))
        elif j % 3 == 1:  # a cut-out over 78% of each side
            bh, bw = int(0.78 * h), int(0.78 * w)
            t0, l0 = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            xt[i, t0 : t0 + bh, l0 : l0 + bw] = rng.uniform(0, 1)
        else:  # binary noise
            xt[i] = (rng.random((h, w)) < 0.5) * 1.0
    return xt, given, np.isin(np.arange(n), bad)


def _synth(noise: str, seed: int, s: dict, cache: Path) -> Data:
    from d2sp.data.synth import _plan_split, render_clip

    tag = f"n{s['train']}t{s['test']}p{s['pretrain']}s{s['size']}f{s['frames']}"
    path = cache / "data" / f"synth_{noise}_{seed}_{tag}.pt"
    if path.exists():
        return Data(**torch.load(path, weights_only=False))
    rates = NOISES[noise]
    cfg = dict(
        low_quality_rate=rates["unusable_rate"], label_noise_rate=rates["label_noise_rate"],
        neutral_sink_share=0.4, annotation_batch=48 if noise == "heavy" else 24,
        min_frames=s["frames"], max_frames=s["frames"],
    )  # fmt: skip
    rngs = [np.random.default_rng(r) for r in np.random.SeedSequence(seed).spawn(3)]
    ptr, given, true, kind = _plan_split(s["train"], rngs[0], noisy=True, cfg=cfg)
    pte, _, ttrue, _ = _plan_split(s["test"], rngs[1], noisy=False, cfg=cfg)
    pre = s["pretrain"] if noise == "clean" else 0  # (the pretraining reads the clean cell's)
    ppre, _, ptrue, _ = _plan_split(pre, rngs[2], noisy=False, cfg=cfg) if pre else ([], 0, np.zeros(0), 0)

    def render(params):
        arr = np.stack([render_clip(p, s["size"]) for p in params])  # (N, T, S, S, 3)
        return torch.tensor(arr).permute(0, 1, 4, 2, 3).float().div(255.0)  # (N, T, 3, S, S)

    d = dict(
        name="synth", x_train=render(ptr), y_noisy=given.astype(np.int64),
        y_true=true.astype(np.int64), unusable=np.isin(kind, ("blur", "dark", "occlusion", "no_face")),
        x_test=render(pte), y_test=ttrue.astype(np.int64), num_classes=7, video=True,
        x_pre=render(ppre) if len(ppre) else None, y_pre=ptrue.astype(np.int64) if len(ppre) else None,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(d, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return Data(**d)
