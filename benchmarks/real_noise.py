"""Purification quality on real images with injected dual noise (DESIGN §5).

Data: real labelled images available offline, scikit-learn's bundled digits (1797 8×8
images, upsampled to 16×16; the default) or, with ``--dataset fashion``, a 4500-image subset
of Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (installed with apt-get
when missing). Two thirds train, one third test (stratified, per seed). The training split
gets the documented dual noise of :mod:`d2sp.data.noise` with ground truth: 15% unusable images
(blur, darkness, occlusion, pure noise; label kept) and 20% wrong labels (60%
confirmation-bias runs inside annotation batches of 32, 40% faint images of other classes
annotated as the sink class 0), plus 5% faint images with their true label. The test split
is clean and has the same share (13%) of faint images, correctly labelled.

Training (every row the same): a small CNN (two conv blocks + a dense layer, 128-d
embedding) with the plug-and-play head (``ClassifierHead``; a weight branch only where a
purifier runs), SGD momentum 0.9, lr 0.05 cosine, batch 64, no weight decay, random
shifts (±2 px) and contrast jitter as augmentation; the short regime trains 15 epochs, the
long one 150 (where plain CE memorises the wrong labels). The loop is the one the README
shows: train on ``kept_indices()`` with ``labels_for``, record, re-score
``rescore_indices()`` without gradient on un-augmented views, ``end_epoch``. Rows:

- ``CE``: plain cross-entropy on the noisy annotation;
- ``oracle``: plain CE on the clean labels with the unusable images removed (upper bound);
- ``cleanlab``: 4-fold out-of-sample probabilities (fold models trained like the row's
  regime) -> ``cleanlab.filter.find_label_issues`` -> drop the issues -> retrain with CE;
  ``cleanlab-cv-short``: the same with fold models trained only for the short regime;
- ``paper``: ``mode: paper`` with the DFEW defaults λ=0.6, τ=0.4, t=2 and a 5-epoch warm-up;
- ``d2sp+``: the improved mode with its defaults (5-epoch warm-up), and ablations
  (``-X``: improvement X off; ``+X``: an idea that is off by default, switched on).

Columns: WAR and UAR at the last epoch (no test-set model selection), the share of the
CE→oracle WAR gap closed, the training cost relative to the CE run of the same seed (wall
time, and CPU time of the process, which other work on a shared machine inflates less),
the precision/recall of the final pruned set against the unusable images and of the final
corrections against the wrong labels (a correction counts when the new label is the true
one). Mean ± std over seeds.

    python benchmarks/real_noise.py --seeds 0 1 --jobs 2 --out benchmarks/results/real_noise_digits.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d2sp.data.noise import inject_dual_noise, make_faint
from d2sp.models.heads import ClassifierHead
from d2sp.purify import create_purifier
from d2sp.purify.ledger import CORRECTED, PRUNED

# ---- data -----------------------------------------------------------------------------------


@dataclass
class Data:
    name: str
    x_train: torch.Tensor  # (N, 1, H, W) noisy images
    y_noisy: np.ndarray  # (N,) annotation
    y_true: np.ndarray  # (N,) clean labels
    unusable: np.ndarray  # (N,) bool
    x_test: torch.Tensor  # (M, 1, H, W)
    y_test: torch.Tensor  # (M,)
    num_classes: int


def load_digits_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # (N, 1, S, S)
    return x.squeeze(1).clamp(0, 1).numpy(), d.target.astype(np.int64)


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def _read_idx(path: Path) -> np.ndarray:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_images(size: int, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not FASHION_DIR.exists():
        print("installing Debian's dataset-fashion-mnist (31 MB) ...", file=sys.stderr)
        try:
            subprocess.run(["apt-get", "install", "-y", "dataset-fashion-mnist"], check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            raise SystemExit(
                f"--dataset fashion needs Debian's dataset-fashion-mnist package under "
                f"{FASHION_DIR} (apt-get install -y dataset-fashion-mnist): {err}"
            ) from None
    files = {p.name: p for p in FASHION_DIR.rglob("*") if p.is_file()}

    def find(stem):
        for name, p in files.items():
            if name.startswith(stem):
                return p
        raise FileNotFoundError(f"{stem}* not found under {FASHION_DIR}")

    x = _read_idx(find("train-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = _read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    pick = np.random.default_rng(seed).permutation(len(y))[:limit]
    xt = torch.tensor(x[pick]).unsqueeze(1)
    if size != 28:
        xt = F.interpolate(xt, size=size, mode="bilinear", align_corners=False)
    return xt.squeeze(1).clamp(0, 1).numpy(), y[pick]


def make_data(
    name: str, seed: int, *, size: int, limit: int, contrast=(0.15, 0.35), towards="flat"
) -> tuple[Data, dict]:
    from sklearn.model_selection import train_test_split

    if name == "digits":
        x, y = load_digits_images(size)
    elif name == "fashion":
        x, y = load_fashion_images(size, limit, seed=12345)
    else:
        raise ValueError(f"--dataset: expected digits or fashion, got {name!r}")
    k = int(y.max()) + 1
    tr, te = train_test_split(np.arange(len(y)), test_size=1 / 3, stratify=y, random_state=seed)
    noisy = inject_dual_noise(
        x[tr],
        y[tr],
        num_classes=k,
        sink_class=0,
        seed=seed,
        faint_contrast=contrast,
        faint_towards=towards,
    )
    faint_rate = float(noisy.faint.mean())
    x_test, _ = make_faint(
        x[te], rate=faint_rate, seed=seed + 10_000, contrast=contrast, base=noisy.base
    )
    data = Data(
        name=name,
        x_train=torch.tensor(noisy.images).unsqueeze(1),
        y_noisy=noisy.labels,
        y_true=noisy.true_labels,
        unusable=noisy.unusable,
        x_test=torch.tensor(x_test).unsqueeze(1),
        y_test=torch.tensor(y[te]),
        num_classes=k,
    )
    return data, noisy.summary()


# ---- model ----------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """Two conv blocks and a dense layer: images ``(B, 1, S, S)`` -> embedding ``(B, D)``."""

    def __init__(self, size: int, width: int = 16, num_features: int = 128):
        super().__init__()
        self.num_features = num_features
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, num_features),
            nn.ReLU(),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, D)


class Net(nn.Module):
    def __init__(self, size: int, num_classes: int, weight_branch: bool):
        super().__init__()
        self.backbone = SmallCNN(size)
        self.head = ClassifierHead(128, num_classes, weight_branch=weight_branch)

    def forward(self, x):
        return self.head(self.backbone.forward_features(x))  # (B, K), (B,) or None


def random_shift(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Per-image random translation by up to ``pad`` pixels: ``(B, 1, H, W)`` -> same."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))  # (B, 1, H+2p, W+2p)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
    return xp[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)  # (B, 1, H, W)


def random_contrast(
    x: torch.Tensor, gen: torch.Generator, low: float = 0.15, p: float = 0.5
) -> torch.Tensor:
    """Per-image contrast jitter towards the image median, factor in ``[low, 1]`` with
    probability ``p``: ``(B, 1, H, W)`` -> same (the pipeline's intensity augmentation)."""
    b = x.shape[0]
    med = x.flatten(1).median(dim=1).values.view(b, 1, 1, 1)  # (B, 1, 1, 1)
    c = low + (1 - low) * torch.rand(b, generator=gen)  # (B,)
    c = torch.where(torch.rand(b, generator=gen) < p, c, torch.ones_like(c)).view(b, 1, 1, 1)
    return med + c * (x - med)  # (B, 1, H, W)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return random_contrast(random_shift(x, gen), gen)  # (B, 1, H, W)


@dataclass
class Schedule:
    epochs: int
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0


@torch.no_grad()
def predict(model, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    model.eval()
    out = [model(x[i : i + batch])[0] for i in range(0, len(x), batch)]
    return torch.cat(out)  # (M, K)


def war_uar(pred: np.ndarray, true: np.ndarray, k: int) -> tuple[float, float]:
    war = float((pred == true).mean())
    recalls = [float((pred[true == c] == c).mean()) for c in range(k) if (true == c).any()]
    return war, float(np.mean(recalls))


def fit(
    data: Data,
    sched: Schedule,
    seed: int,
    *,
    labels: np.ndarray,
    subset: np.ndarray | None = None,
    mode: str | None = None,
    options: dict | None = None,
    x_eval: torch.Tensor | None = None,
):
    """Train one model; returns ``(model, purifier or None, seconds)``.

    ``mode=None`` is plain CE on ``labels`` over ``subset`` (all samples if None); otherwise
    the purifier of ``mode`` drives which samples are trained on with which labels.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = len(labels) if subset is None else len(subset)
    pool = np.arange(len(labels)) if subset is None else np.asarray(subset)
    model = Net(data.x_train.shape[-1], data.num_classes, weight_branch=mode is not None)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=sched.lr,
        momentum=sched.momentum,
        weight_decay=sched.weight_decay,
    )
    total = max(1, sched.epochs * (n // sched.batch_size))
    lr_at = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + np.cos(np.pi * min(1.0, s / total)))
    )
    x_all = data.x_train
    y_all = torch.as_tensor(labels)
    purifier = None
    if mode is not None:
        purifier = create_purifier(
            mode, labels, num_classes=data.num_classes, model=model, **(options or {})
        )
    start = time.perf_counter()
    for _ in range(sched.epochs):
        model.train()
        kept = pool if purifier is None else purifier.train_indices()
        order = torch.as_tensor(kept)[torch.randperm(len(kept), generator=gen)]
        for i in range(0, max(1, len(order) - sched.batch_size + 1), sched.batch_size):
            idx = order[i : i + sched.batch_size]  # (B,)
            if len(idx) < 2:
                continue
            x = augment(x_all[idx], gen)  # (B, 1, H, W)
            logits, w = model(x)  # (B, K), (B,) or None
            if purifier is None:
                loss = F.cross_entropy(logits, y_all[idx])
            else:
                loss = purifier.loss(logits, w, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_at.step()
            if purifier is not None:
                purifier.after_step()
        if purifier is not None:
            again = torch.as_tensor(purifier.rescore_indices())
            for i in range(0, len(again), 1024):
                idx = again[i : i + 1024]
                purifier.rescore(idx, x_all[idx])  # un-augmented views
            purifier.end_epoch()
    return model, purifier, time.perf_counter() - start


def cleanlab_subset(data: Data, sched_cv: Schedule, seed: int, folds: int) -> np.ndarray:
    """Indices kept by cleanlab: K-fold out-of-sample probabilities -> find_label_issues."""
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold

    n = len(data.y_noisy)
    probs = np.zeros((n, data.num_classes), dtype=np.float64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (tr, ho) in enumerate(skf.split(np.zeros(n), data.y_noisy)):
        model, _, _ = fit(data, sched_cv, seed * 100 + f, labels=data.y_noisy, subset=tr)
        probs[ho] = torch.softmax(predict(model, data.x_train[ho]), 1).double().numpy()
    issues = find_label_issues(data.y_noisy, probs, filter_by="prune_by_noise_rate")
    return np.flatnonzero(~issues)


def purification_quality(state, label, data: Data) -> dict[str, float]:
    pruned = state == PRUNED
    corrected = state == CORRECTED
    wrong = data.y_noisy != data.y_true
    fixed = corrected & (label == data.y_true)

    def ratio(a, b):
        return float(a / b) if b else float("nan")

    return {
        "prune_p": ratio((pruned & data.unusable).sum(), pruned.sum()),
        "prune_r": ratio((pruned & data.unusable).sum(), data.unusable.sum()),
        "corr_p": ratio(fixed.sum(), corrected.sum()),
        "corr_r": ratio(fixed.sum(), wrong.sum()),
    }


def evaluate(model, data: Data) -> tuple[float, float]:
    pred = predict(model, data.x_test).argmax(1).numpy()
    return war_uar(pred, data.y_test.numpy(), data.num_classes)


# ---- the rows ---------------------------------------------------------------------------------

PAPER = dict(lam=0.6, tau=0.4, t=2, warmup_epochs=5)
IMPROVED = dict(warmup_epochs=5)
ABLATIONS = {
    "d2sp+": {},
    "d2sp+ +rank_reg": dict(rank_reg=True),
    "d2sp+ -class_relative": dict(class_relative=False),
    "d2sp+ -teacher": dict(teacher=False),
    "d2sp+ -sparse_rescore": dict(rescore_every=1),
    "d2sp+ -agree": dict(agree=1),
    "d2sp+ -rejoin": dict(rejoin=None),
    "d2sp+ +expire": dict(expire_after=15),
}
ROWS = ["CE", "oracle", "cleanlab", "cleanlab-cv-short", "paper", *ABLATIONS]


def run_row(row: str, data: Data, sched: Schedule, seed: int, args) -> dict:
    nan = float("nan")
    quality = {"prune_p": nan, "prune_r": nan, "corr_p": nan, "corr_r": nan}
    cpu_start = time.process_time()
    if row == "CE":
        model, _, secs = fit(data, sched, seed, labels=data.y_noisy)
    elif row == "oracle":
        keep = np.flatnonzero(~data.unusable)
        model, _, secs = fit(data, sched, seed, labels=data.y_true, subset=keep)
    elif row in ("cleanlab", "cleanlab-cv-short"):
        start = time.perf_counter()
        cv_epochs = sched.epochs if row == "cleanlab" else args.short
        cv = Schedule(epochs=cv_epochs, batch_size=sched.batch_size)
        keep = cleanlab_subset(data, cv, seed, args.folds)
        model, _, _ = fit(data, sched, seed, labels=data.y_noisy, subset=keep)
        secs = time.perf_counter() - start
        dropped = np.ones(len(data.y_noisy), bool)
        dropped[keep] = False
        state = np.where(dropped, PRUNED, 1)
        quality = purification_quality(state, data.y_noisy, data)
        quality["corr_p"] = quality["corr_r"] = nan
    else:
        if row == "paper":
            mode, options = "paper", dict(PAPER)
        else:
            mode, options = "d2sp+", {**IMPROVED, **ABLATIONS[row]}
        model, pur, secs = fit(data, sched, seed, labels=data.y_noisy, mode=mode, options=options)
        ledger = pur.ledger
        quality = purification_quality(
            ledger.column("state")[-1], ledger.column("label")[-1].astype(np.int64), data
        )
        if args.diagnose:
            diagnose(row, pur, data)
    cpu = time.process_time() - cpu_start  # CPU time of this process: training (+ trace)
    war, uar = evaluate(model, data)
    return {"war": war, "uar": uar, "seconds": secs, "cpu": cpu, **quality}


def diagnose(row: str, pur, data: Data) -> None:
    led = pur.ledger
    state = led.column("state")
    label = led.column("label").astype(np.int64)
    wrong = data.y_noisy != data.y_true
    sink = wrong & (data.y_noisy == 0)
    groups = {
        "clean": ~wrong & ~data.unusable,
        "unusable": data.unusable,
        "run": wrong & ~sink,
        "sink": sink,
    }
    print(f"  [{row}] epoch: pruned/unusable-pruned/corrected/right-corrections", file=sys.stderr)
    for e in sorted({*range(0, led.num_epochs, max(1, led.num_epochs // 8)), led.num_epochs - 1}):
        s, lab = state[e], label[e]
        c = s == CORRECTED
        print(
            f"    e{e + 1:>3} pruned {int((s == PRUNED).sum()):>4} "
            f"(unusable {int(((s == PRUNED) & data.unusable).sum()):>3}, "
            f"wrong {int(((s == PRUNED) & wrong).sum()):>3})  corrected {int(c.sum()):>4} "
            f"(right {int((c & (lab == data.y_true)).sum()):>4}, "
            + ", ".join(f"{g} {int((c & m).sum())}" for g, m in groups.items())
            + ")",
            file=sys.stderr,
        )
    w = led.column("weight")[-1].astype(np.float32)
    pp = led.column("p_pred")[-1].astype(np.float32)
    for g, m in groups.items():
        print(
            f"    {g:>8}: w {np.nanmean(w[m]):.3f}±{np.nanstd(w[m]):.3f}  "
            f"p[pred] {np.nanmean(pp[m]):.3f}",
            file=sys.stderr,
        )


# ---- tables -----------------------------------------------------------------------------------


def fmt(values, scale=100.0, digits=1):
    v = np.asarray(values, dtype=float) * scale
    if np.all(np.isnan(v)):
        return "–"
    return f"{np.nanmean(v):.{digits}f} ± {np.nanstd(v):.{digits}f}"


def table(title: str, rows: dict[str, list[dict]]) -> str:
    ce = np.array([r["war"] for r in rows["CE"]])
    oracle = np.array([r["war"] for r in rows["oracle"]])
    ce_time = np.array([r["seconds"] for r in rows["CE"]])
    ce_cpu = np.array([r["cpu"] for r in rows["CE"]])
    lines = [
        f"### {title}",
        "",
        "| method | WAR | UAR | gap closed % | cost × CE (wall) | cost × CE (CPU) "
        "| prune P | prune R | corr P | corr R |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        war = np.array([r["war"] for r in rs])
        gap = (war - ce) / np.where(oracle - ce == 0, np.nan, oracle - ce)
        cost = np.array([r["seconds"] for r in rs]) / ce_time
        cost_cpu = np.array([r["cpu"] for r in rs]) / ce_cpu
        lines.append(
            f"| {name} | {fmt(war)} | {fmt([r['uar'] for r in rs])} | {fmt(gap, 100, 0)} "
            f"| {fmt(cost, 1, 2)} | {fmt(cost_cpu, 1, 2)} | {fmt([r['prune_p'] for r in rs], 1, 2)} "
            f"| {fmt([r['prune_r'] for r in rs], 1, 2)} | {fmt([r['corr_p'] for r in rs], 1, 2)} "
            f"| {fmt([r['corr_r'] for r in rs], 1, 2)} |"
        )
    return "\n".join(lines)


def run_seed(job: tuple) -> tuple[int, dict[str, dict], dict]:
    """All rows of one regime for one seed, in one process (so the timings compare)."""
    seed, epochs, rows, args = job
    torch.set_num_threads(args.threads)
    sched = Schedule(epochs=epochs)
    data, noise = make_data(args.dataset, seed, size=args.size, limit=args.limit)
    # warm torch up (first-call initialisation) so that it is not charged to the first row
    fit(data, Schedule(epochs=1), seed, labels=data.y_noisy, subset=np.arange(128))
    out = {}
    for r in rows:
        res = run_row(r, data, sched, seed, args)
        out[r] = res
        print(
            f"{epochs:>4} epochs seed {seed} {r:<24} WAR {100 * res['war']:5.1f} "
            f"UAR {100 * res['uar']:5.1f} {res['seconds']:6.1f}s "
            f"prune P/R {res['prune_p']:.2f}/{res['prune_r']:.2f} "
            f"corr P/R {res['corr_p']:.2f}/{res['corr_r']:.2f}",
            file=sys.stderr,
            flush=True,
        )
    return seed, out, noise


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("digits", "fashion"), default="digits")
    p.add_argument("--size", type=int, default=16, help="image side after resizing")
    p.add_argument("--limit", type=int, default=4500, help="fashion: images used (train+test)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--short", type=int, default=15, help="epochs of the short regime (0 = skip)")
    p.add_argument("--long", type=int, default=150, help="epochs of the long regime (0 = skip)")
    p.add_argument("--folds", type=int, default=4, help="cleanlab cross-validation folds")
    p.add_argument("--rows", nargs="+", default=None, help=f"rows to run (default all: {ROWS})")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    p.add_argument("--diagnose", action="store_true", help="per-epoch purification trace")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown tables here")
    args = p.parse_args(argv)
    chosen = args.rows or ROWS
    for r in chosen:
        if r not in ROWS:
            p.error(f"--rows: unknown row {r!r}; known: {', '.join(ROWS)}")
    chosen = [r for r in ROWS if r in chosen or r in ("CE", "oracle")]
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    out = [
        f"Dataset {args.dataset} ({args.size}x{args.size}), seeds {args.seeds}, "
        f"{args.threads} torch thread(s) per process, {args.jobs} process(es). "
        "cost × CE = time of the row / time of the CE run of the same seed, in the same "
        "process (wall time, and the process's CPU time, which other work on a shared machine "
        f"inflates less). cleanlab: {args.folds}-fold CV with the regime's epochs; "
        f"cleanlab-cv-short: CV folds trained for the short regime's {args.short} epochs.\n"
    ]
    total_start = time.perf_counter()
    for regime, epochs in (("short", args.short), ("long", args.long)):
        if epochs <= 0:
            continue
        rows_here = [r for r in chosen if not (r == "cleanlab-cv-short" and epochs == args.short)]
        jobs = [(seed, epochs, rows_here, args) for seed in args.seeds]
        regime_start = time.perf_counter()
        if args.jobs > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork")
            with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
                results = list(pool.map(run_seed, jobs))
        else:
            results = [run_seed(j) for j in jobs]
        rows: dict[str, list[dict]] = {r: [] for r in rows_here}
        results.sort(key=lambda x: x[0])
        for _, res, _ in results:
            for r in rows_here:
                rows[r].append(res[r])
        noise = results[-1][2]
        wall = time.perf_counter() - regime_start
        noise_line = ", ".join(f"{k} {100 * v:.1f}%" for k, v in noise.items())
        title = f"{regime} regime: {epochs} epochs, wall time {wall / 60:.1f} min"
        text = table(title, rows) + f"\n\nInjected noise (last seed): {noise_line}.\n"
        print(text, flush=True)
        out.append(text)
    print(f"total wall time {(time.perf_counter() - total_start) / 60:.1f} min", file=sys.stderr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
