"""Datasets, noise settings, models and training loops of the purification suite
(``benchmarks/suite.py``); every dataset is held in memory.

- ``digits``: scikit-learn's digits at 16×16 (1198 train / 599 test);
- ``fashion``: a 3000-image Fashion-MNIST subset at 16×16 (2000 / 1000; Debian's
  ``dataset-fashion-mnist``, installed with apt-get when missing);
- ``synth``: SynthDFER clips rendered in memory (:data:`SYNTH`), a narrow R18-LSTM.

Noise settings: ``dual`` (the documented dual noise of :mod:`d2sp.data.noise` and SynthDFER:
15% unusable, 20% wrong labels, 40% of them faint images sent to a sink class, the rest
confirmation-bias runs), ``heavy`` (20% unusable, 40% wrong), ``clean`` (none); ``gen``,
another injector the defaults were never tuned on (12% class-pair flips, 10% symmetric
flips, 12% corrupted images: salt-and-pepper, cut-outs, binary noise). Test sets are clean.

Loops: ``sgd`` (the suite's: images SGD momentum 0.9, lr 0.05, batch 64, cosine, ±2 px
shifts and contrast jitter; clips Adam, see :data:`SYNTH`), and ``adam`` (another loop for
the generalisation check: Adam lr 1e-3, batch 128, no schedule, random erasing, pixel noise).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

# PAPER: the paper-mode row of suite.py (λ=0.6, τ=0.4, t=2, warm-up 5), imported here once src/ is on the path
from real_noise import PAPER, Net, load_digits_images, load_fashion_images  # noqa: E402, F401

from d2sp.data.noise import inject_dual_noise, make_faint  # noqa: E402
from d2sp.models import create_model  # noqa: E402

NOISES = {
    "dual": dict(unusable_rate=0.15, label_noise_rate=0.20),
    "heavy": dict(unusable_rate=0.20, label_noise_rate=0.40),
    "clean": dict(unusable_rate=0.0, label_noise_rate=0.0),
}
SYNTH = dict(
    num_train=720, num_test=480, size=48, frames=4,  # data
    width=8, lstm=64,  # model
    optim="adam", lr=2e-3, batch=32,  # loop
)  # fmt: skip
if os.environ.get("SUITE_SYNTH"):  # another SynthDFER setting (JSON), e.g. to explore
    SYNTH.update(json.loads(os.environ["SUITE_SYNTH"]))
REGIMES = {"digits": (15, 60), "fashion": (15, 60), "synth": (15, 30)}  # epochs: short, long


@dataclass
class Data:
    """One noisy training set with its ground truth, and a clean test set."""

    name: str
    x_train: torch.Tensor  # (N, ...) float in [0, 1]
    y_noisy: np.ndarray  # (N,) annotation
    y_true: np.ndarray  # (N,)
    unusable: np.ndarray  # (N,) bool
    x_test: torch.Tensor  # (M, ...)
    y_test: np.ndarray  # (M,)
    num_classes: int
    video: bool

    @property
    def noisy(self) -> np.ndarray:
        """``(N,)`` bool: the samples a purifier should flag (wrong label or unusable)."""
        return self.unusable | (self.y_noisy != self.y_true)


def make_data(dataset: str, noise: str, seed: int, cache: Path) -> Data:
    """The training and test sets of one cell (SynthDFER renders are cached in ``cache``)."""
    if dataset == "synth":
        return _synth(noise, seed, cache)
    from sklearn.model_selection import train_test_split

    x, y = load_digits_images(16) if dataset == "digits" else load_fashion_images(16, 3000, seed=12345)
    k = int(y.max()) + 1
    tr, te = train_test_split(np.arange(len(y)), test_size=1 / 3, stratify=y, random_state=seed)
    if noise == "gen":
        xt, given, unusable = other_injector(x[tr], y[tr], k, seed)
        x_test = x[te]
    else:
        noisy = inject_dual_noise(
            x[tr], y[tr], num_classes=k, sink_class=0, seed=seed,
            annotation_batch=64 if noise == "heavy" else 32, **NOISES[noise],
        )  # fmt: skip
        xt, given, unusable = noisy.images, noisy.labels, noisy.unusable
        x_test, _ = make_faint(x[te], rate=float(noisy.faint.mean()), seed=seed + 10_000)
    return Data(
        dataset, torch.tensor(xt, dtype=torch.float32).unsqueeze(1), np.asarray(given, np.int64),
        y[tr].astype(np.int64), np.asarray(unusable, bool),
        torch.tensor(x_test, dtype=torch.float32).unsqueeze(1), y[te].astype(np.int64), k, False,
    )  # fmt: skip


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


def _synth(noise: str, seed: int, cache: Path) -> Data:
    from d2sp.data.synth import _plan_split, render_clip

    tag = f"n{SYNTH['num_train']}t{SYNTH['num_test']}s{SYNTH['size']}f{SYNTH['frames']}"
    path = cache / "data" / f"synth_{noise}_{seed}_{tag}.pt"
    if path.exists():
        return Data(**torch.load(path, weights_only=False))
    rates = NOISES["dual" if noise == "gen" else noise]
    cfg = dict(
        low_quality_rate=rates["unusable_rate"], label_noise_rate=rates["label_noise_rate"],
        neutral_sink_share=0.4, annotation_batch=48 if noise == "heavy" else 24,
        min_frames=SYNTH["frames"], max_frames=SYNTH["frames"],
    )  # fmt: skip
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    ptr, given, true, kind = _plan_split(SYNTH["num_train"], train_rng, noisy=True, cfg=cfg)
    pte, _, ttrue, _ = _plan_split(SYNTH["num_test"], test_rng, noisy=False, cfg=cfg)

    def render(params):
        arr = np.stack([render_clip(p, SYNTH["size"]) for p in params])  # (N, T, S, S, 3)
        return torch.tensor(arr).permute(0, 1, 4, 2, 3).float().div(255.0)  # (N, T, 3, S, S)

    d = dict(
        name="synth", x_train=render(ptr), y_noisy=given.astype(np.int64),
        y_true=true.astype(np.int64), unusable=np.isin(kind, ("blur", "dark", "occlusion", "no_face")),
        x_test=render(pte), y_test=ttrue.astype(np.int64), num_classes=7, video=True,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(d, path)
    return Data(**d)


# ---- models -----------------------------------------------------------------------------------


class ClipNet(nn.Module):
    """The narrow R18-LSTM on clips ``(B, T, 3, S, S)`` in [0, 1] (normalised inside)."""

    def __init__(self, num_classes: int, weight_branch: bool):
        super().__init__()
        self.net = create_model(
            "r18_lstm", num_classes=num_classes, width=SYNTH["width"], lstm_hidden=SYNTH["lstm"],
            weight_branch=weight_branch,
        )  # fmt: skip

    def forward(self, x):
        return self.net((x - 0.5) / 0.25)


def build_model(data: Data, weight_branch: bool) -> nn.Module:
    if data.video:
        return ClipNet(data.num_classes, weight_branch)
    return Net(data.x_train.shape[-1], data.num_classes, weight_branch)  # SmallCNN + plug-and-play head


# ---- loops ------------------------------------------------------------------------------------


@dataclass
class Loop:
    """An optimiser, batch size, schedule and augmentation (see the module docstring)."""

    name: str
    optim: str
    batch_size: int
    lr: float
    schedule: bool = True

    @staticmethod
    def for_data(data: Data, name: str) -> Loop:
        if name == "adam":
            return Loop("adam", "adam", 128, 1e-3, schedule=False)
        if data.video:
            return Loop("sgd", SYNTH["optim"], SYNTH["batch"], SYNTH["lr"])
        return Loop("sgd", "sgd", 64, 0.05)

    def optimizer(self, model: nn.Module):
        if self.optim == "adam":
            return torch.optim.Adam(model.parameters(), lr=self.lr)
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)

    def augment(self, x: torch.Tensor, gen: torch.Generator, video: bool) -> torch.Tensor:
        if self.name == "adam":
            return _erase_and_noise(_flip(_shift(x, gen, 1), gen, video), gen)
        return _contrast(_flip(_shift(x, gen, 2), gen, video), gen)


def _shift(x: torch.Tensor, gen: torch.Generator, pad: int) -> torch.Tensor:
    """Random translation of ``(B, ..., H, W)`` by up to ``pad`` px (the same over frames)."""
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    flat = x.reshape(b, -1, h, w)  # (B, C', H, W)
    xp = F.pad(flat, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    ch = torch.arange(flat.shape[1])[None, :, None, None]
    return xp[torch.arange(b)[:, None, None, None], ch, rows, cols].reshape(x.shape)


def _flip(x: torch.Tensor, gen: torch.Generator, video: bool) -> torch.Tensor:
    if not video:
        return x
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(-1), x)


def _contrast(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Contrast towards the median, factor in [0.15, 1], half of the samples."""
    b = x.shape[0]
    shape = (b,) + (1,) * (x.ndim - 1)
    med = x.flatten(1).median(dim=1).values.view(shape)
    c = 0.15 + 0.85 * torch.rand(b, generator=gen)
    c = torch.where(torch.rand(b, generator=gen) < 0.5, c, torch.ones_like(c)).view(shape)
    return med + c * (x - med)


def _erase_and_noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A quarter-area block set to grey with probability 0.5, plus pixel noise σ = 0.05."""
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    bh, bw = h // 2, w // 2
    top = torch.randint(0, h - bh + 1, (b,), generator=gen)[:, None, None]
    left = torch.randint(0, w - bw + 1, (b,), generator=gen)[:, None, None]
    ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    box = (ys >= top) & (ys < top + bh) & (xs >= left) & (xs < left + bw)  # (B, H, W)
    box = (box & (torch.rand(b, generator=gen) < 0.5)[:, None, None]).view(b, *([1] * (x.ndim - 3)), h, w)
    return torch.where(box, torch.full_like(x, 0.5), x) + 0.05 * torch.randn(x.shape, generator=gen)
