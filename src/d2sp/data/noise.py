"""Dual-noise injection into a labelled image set, with ground truth.

The two kinds of noise that D2SP attacks are injected into clean labelled images, and every
injected change is recorded, so that pruning and correction can be scored against the truth:

1. **Unusable images** (``unusable_rate`` of the samples, label kept): the content no
   longer carries the class. Four kinds in equal shares, assigned round-robin:

   - ``blur``: a heavy Gaussian blur (σ = ``blur_sigma`` × the shorter side);
   - ``dark``: intensity scaled to at most ``dark_gain`` of the original, plus sensor noise;
   - ``occlusion``: a block over ``occlusion_area`` of the image, filled with flat gray;
   - ``noise``: the image is replaced by uniform noise.

2. **Wrong labels** (``label_noise_rate`` of the samples, all on usable images):

   - ``sink``: a ``sink_share`` of them are low-intensity (faint, low-contrast) versions of
     images of other classes, annotated as the ``sink_class`` (as low-intensity expressions
     get annotated *neutral*);
   - ``run``: the rest are confirmation-bias runs. The samples are annotated in their
     stored order in batches of ``annotation_batch``; inside a batch an annotator who has
     just labelled a sample ``k`` labels the next 1–6 samples ``k`` as well. Only the
     followers whose true class differs count (and are recorded) as errors.

   A further ``faint_clean_rate`` of the samples are made faint but keep their true label,
   so faintness alone does not predict the sink class (the test split should get the same
   share of faint images, see :func:`make_faint`).

The sets are disjoint: an image is unusable, or wrongly labelled, or neither. Images are
float arrays in ``[0, 1]`` of shape ``(N, H, W)`` or ``(N, C, H, W)``; everything is
deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNUSABLE_KINDS = ("blur", "dark", "occlusion", "noise")
LABEL_NOISE_KINDS = ("run", "sink")
FAINT_TOWARDS = ("flat", "sink")


@dataclass
class DualNoise:
    """Noisy images and annotation with the ground truth of every injected change.

    Attributes:
        images: ``(N, ..., H, W)`` float32 images after injection.
        labels: ``(N,)`` int64 annotation as a noisy annotator gave it.
        true_labels: ``(N,)`` int64 clean labels.
        unusable_kind: ``(N,)`` object array, ``"none"`` or one of :data:`UNUSABLE_KINDS`.
        label_noise_kind: ``(N,)`` object array, ``"none"`` or one of :data:`LABEL_NOISE_KINDS`.
        faint: ``(N,)`` bool, the image was made low-intensity (sink errors and clean faint).
        base: ``(..., H, W)`` image the faint ones were weakened towards, or ``None`` (flat).
    """

    images: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    unusable_kind: np.ndarray
    label_noise_kind: np.ndarray
    faint: np.ndarray
    base: np.ndarray | None = None

    @property
    def unusable(self) -> np.ndarray:
        """``(N,)`` bool ground truth for pruning."""
        return self.unusable_kind != "none"

    @property
    def mislabelled(self) -> np.ndarray:
        """``(N,)`` bool ground truth for correction (``labels != true_labels``)."""
        return self.labels != self.true_labels

    def summary(self) -> dict[str, float]:
        """Shares of each kind of noise over the ``N`` samples."""
        n = len(self.labels)
        out = {
            "unusable": float(self.unusable.mean()),
            "mislabelled": float(self.mislabelled.mean()),
        }
        for kind in UNUSABLE_KINDS:
            out[f"unusable_{kind}"] = float((self.unusable_kind == kind).sum() / n)
        for kind in LABEL_NOISE_KINDS:
            out[f"wrong_{kind}"] = float((self.label_noise_kind == kind).sum() / n)
        out["faint"] = float(self.faint.mean())
        return out


def _check_rate(name: str, value: float, upper: float = 1.0) -> float:
    if not 0.0 <= float(value) <= upper:
        raise ValueError(f"{name}: expected a value in [0, {upper}], got {value}")
    return float(value)


def _check_images(images) -> np.ndarray:
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim not in (3, 4) or arr.shape[0] == 0:
        raise ValueError(
            f"images: expected a non-empty (N, H, W) or (N, C, H, W) array, got shape {arr.shape}"
        )
    return arr


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes of one image ``(..., H, W)``."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    out = image.astype(np.float32)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(
            k[j] * np.take(padded, np.arange(j, j + n), axis=axis) for j in range(len(k))
        ).astype(np.float32)
    return out


def faint_version(image: np.ndarray, contrast: float, base: np.ndarray | None = None) -> np.ndarray:
    """Low-intensity version of one image: ``base + contrast · (x − base)``.

    ``base`` is the image the expression is weakened towards: the sink class's mean image
    (a weak expression looks like a neutral face), or, when ``None``, the image's own median
    (a flat, low-contrast image).
    """
    bg = np.median(image) if base is None else base
    return (bg + contrast * (image - bg)).astype(np.float32)


def degrade(
    image: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    *,
    blur_sigma: float = 0.25,
    dark_gain: float = 0.05,
    occlusion_area: float = 0.8,
) -> np.ndarray:
    """One image ``(..., H, W)`` made unusable by ``kind`` (one of :data:`UNUSABLE_KINDS`)."""
    h, w = image.shape[-2:]
    if kind == "blur":
        out = gaussian_blur(image, blur_sigma * min(h, w))
    elif kind == "dark":
        out = image * rng.uniform(0.0, dark_gain) + rng.normal(0.0, 0.04, image.shape)
    elif kind == "occlusion":
        side = np.sqrt(occlusion_area)
        bh, bw = max(1, round(side * h)), max(1, round(side * w))
        top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        out = image.copy()
        out[..., top : top + bh, left : left + bw] = rng.uniform(0.3, 0.7)
    elif kind == "noise":
        out = rng.uniform(0.0, 1.0, image.shape)
    else:
        raise ValueError(f"kind: expected one of {UNUSABLE_KINDS}, got {kind!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def make_faint(
    images,
    *,
    rate: float,
    seed: int,
    contrast: tuple[float, float] = (0.15, 0.35),
    base: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a ``rate`` share of ``images`` low-intensity (labels untouched), e.g. for a test split.

    ``base`` is what they are weakened towards (see :func:`faint_version`); pass
    :attr:`DualNoise.base` to match a training split. Returns the new ``(N, ..., H, W)`` float32 images and the ``(N,)`` bool mask of faint ones.
    """
    arr = _check_images(images).copy()
    rate = _check_rate("rate", rate)
    rng = np.random.default_rng(seed)
    n = len(arr)
    chosen = rng.permutation(n)[: round(rate * n)]
    for i in chosen:
        arr[i] = faint_version(arr[i], rng.uniform(*contrast), base)
    mask = np.zeros(n, bool)
    mask[chosen] = True
    return arr, mask


def confirmation_runs(true, eligible, batch, target, rng):
    """Annotation after ``target`` confirmation-bias errors placed in runs; ``(N,)``, ``(N,)``.

    Walking the samples in annotation order, a run of 2–7 consecutive eligible samples inside
    one annotation batch of ``batch`` receives the label of the sample that started it; the
    members whose true label differs become errors. Shared by SynthDFER and :func:`inject_dual_noise`.
    """
    n = len(true)
    given, wrong, used = true.copy(), np.zeros(n, bool), np.zeros(n, bool)
    remaining = target
    for _ in range(200 * n + 1000):
        if remaining == 0 or n < 2:
            break
        start = int(rng.integers(n - 1))
        if not eligible[start] or used[start]:
            continue
        stop = min(start + int(rng.integers(2, 8)), (start // batch + 1) * batch, n)
        members, errors = [], 0
        for j in range(start + 1, stop):
            if not eligible[j] or used[j] or errors == remaining:
                break
            members.append(j)
            errors += int(true[j] != true[start])
        if errors == 0:
            continue
        used[start] = True
        used[members] = True
        given[members] = true[start]
        wrong[members] = true[members] != true[start]
        remaining -= errors
    if remaining:
        raise ValueError(
            f"could not place {target} confirmation-bias errors in annotation batches of "
            f"{batch} (placed {target - remaining}); lower the noise rates or raise "
            f"annotation_batch"
        )
    return given, wrong


def _check_labels(labels, n: int, *, num_classes: int, sink_class: int) -> np.ndarray:
    """``(N,)`` int64 clean labels, checked against ``num_classes`` and ``sink_class``."""
    y = np.asarray(labels)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(
            f"labels: expected an integer array of shape ({n},), got {y.dtype} {y.shape}"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels: expected values in [0, {num_classes}), got {y.min()}..{y.max()}")
    if not 0 <= sink_class < num_classes:
        raise ValueError(f"sink_class: expected a class in [0, {num_classes}), got {sink_class}")
    return y.astype(np.int64)


def _check_noise_options(
    *,
    unusable_rate,
    label_noise_rate,
    sink_share,
    faint_clean_rate,
    annotation_batch,
    faint_contrast,
    faint_towards,
) -> dict:
    """The options of :func:`inject_dual_noise` checked; the rates (as floats) and batch size."""
    unusable_rate = _check_rate("unusable_rate", unusable_rate, 0.5)
    label_noise_rate = _check_rate("label_noise_rate", label_noise_rate, 0.5)
    sink_share = _check_rate("sink_share", sink_share)
    faint_clean_rate = _check_rate("faint_clean_rate", faint_clean_rate, 0.5)
    if unusable_rate + label_noise_rate + faint_clean_rate > 0.8:
        raise ValueError(
            "unusable_rate + label_noise_rate + faint_clean_rate: expected <= 0.8 (the sets "
            f"are disjoint), got {unusable_rate} + {label_noise_rate} + {faint_clean_rate}"
        )
    if annotation_batch < 2:
        raise ValueError(f"annotation_batch: expected an integer >= 2, got {annotation_batch}")
    lo, hi = faint_contrast
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"faint_contrast: expected 0 <= low <= high <= 1, got {faint_contrast}")
    if faint_towards not in FAINT_TOWARDS:
        raise ValueError(f"faint_towards: expected one of {FAINT_TOWARDS}, got {faint_towards!r}")
    return {
        "unusable_rate": unusable_rate,
        "label_noise_rate": label_noise_rate,
        "sink_share": sink_share,
        "faint_clean_rate": faint_clean_rate,
        "annotation_batch": annotation_batch,
    }


def _draw_noise(
    true,
    rng,
    *,
    sink_class,
    unusable_rate,
    label_noise_rate,
    sink_share,
    faint_clean_rate,
    annotation_batch,
):
    """Who is unusable, wrongly annotated or faint: ``bad`` indices, then ``(N,)`` arrays."""
    n = len(true)
    given = true.copy()
    unusable_kind = np.full(n, "none", dtype=object)
    noise_kind = np.full(n, "none", dtype=object)
    faint = np.zeros(n, bool)

    n_unusable = round(unusable_rate * n)
    bad = rng.permutation(n)[:n_unusable]
    unusable_kind[bad] = np.array(UNUSABLE_KINDS, dtype=object)[np.arange(n_unusable) % 4]

    n_wrong = round(label_noise_rate * n)
    n_sink = round(sink_share * n_wrong)
    candidates = np.flatnonzero((unusable_kind == "none") & (true != sink_class))
    if n_sink > len(candidates):
        raise ValueError(
            f"need {n_sink} usable images outside the sink class for sink errors, only "
            f"{len(candidates)} exist; lower label_noise_rate or sink_share"
        )
    sink = rng.permutation(candidates)[:n_sink]
    noise_kind[sink] = "sink"
    given[sink] = sink_class
    faint[sink] = True

    eligible = (unusable_kind == "none") & (noise_kind == "none")
    given_run, wrong = confirmation_runs(true, eligible, annotation_batch, n_wrong - n_sink, rng)
    given[wrong] = given_run[wrong]
    noise_kind[wrong] = "run"

    clean = np.flatnonzero((unusable_kind == "none") & (noise_kind == "none"))
    n_faint_clean = min(round(faint_clean_rate * n), len(clean))
    faint[rng.permutation(clean)[:n_faint_clean]] = True
    return bad, unusable_kind, given, noise_kind, faint


def inject_dual_noise(
    images,
    labels,
    *,
    num_classes: int,
    sink_class: int,
    seed: int,
    unusable_rate: float = 0.15,
    label_noise_rate: float = 0.20,
    sink_share: float = 0.4,
    faint_clean_rate: float = 0.05,
    annotation_batch: int = 32,
    faint_contrast: tuple[float, float] = (0.15, 0.35),
    faint_towards: str = "flat",
    blur_sigma: float = 0.25,
    dark_gain: float = 0.05,
    occlusion_area: float = 0.8,
) -> DualNoise:
    """Inject unusable images and wrong labels into a clean labelled set (see module doc).

    Args:
        images: ``(N, H, W)`` or ``(N, C, H, W)`` float images in ``[0, 1]``.
        labels: ``(N,)`` int clean labels in ``[0, num_classes)``.
        num_classes: ``K``.
        sink_class: the class low-intensity images get wrongly annotated as.
        seed: everything drawn from ``numpy.random.default_rng(seed)``.
        unusable_rate: share of samples made unusable (their label is kept).
        label_noise_rate: share of samples wrongly annotated (usable ones only).
        sink_share: share of the wrong labels that are faint images sent to ``sink_class``.
        faint_clean_rate: share of samples made faint with their true label.
        annotation_batch: size of the annotation batches that runs stay inside.
        faint_contrast: range of the contrast factor of faint images.
        faint_towards: ``"sink"`` weakens faint images towards the mean clean image of the
            sink class (a weak expression looks neutral), ``"flat"`` towards their own
            median (a low-contrast image).
        blur_sigma, dark_gain, occlusion_area: strength of the unusable kinds.

    Returns:
        A :class:`DualNoise`; exact counts are ``round(rate · N)`` for each kind.
    """
    arr = _check_images(images).copy()
    true = _check_labels(labels, len(arr), num_classes=num_classes, sink_class=sink_class)
    options = _check_noise_options(
        unusable_rate=unusable_rate, label_noise_rate=label_noise_rate, sink_share=sink_share,
        faint_clean_rate=faint_clean_rate, annotation_batch=annotation_batch,
        faint_contrast=faint_contrast, faint_towards=faint_towards,
    )  # fmt: skip
    lo, hi = faint_contrast

    rng = np.random.default_rng(seed)
    base = arr[true == sink_class].mean(axis=0) if faint_towards == "sink" else None
    bad, unusable_kind, given, noise_kind, faint = _draw_noise(
        true, rng, sink_class=sink_class, **options
    )
    for i in np.flatnonzero(faint):
        arr[i] = faint_version(arr[i], rng.uniform(lo, hi), base)
    strength = {"blur_sigma": blur_sigma, "dark_gain": dark_gain, "occlusion_area": occlusion_area}
    for i in bad:
        arr[i] = degrade(arr[i], unusable_kind[i], rng, **strength)
    return DualNoise(
        images=arr, labels=given, true_labels=true, unusable_kind=unusable_kind,
        label_noise_kind=noise_kind, faint=faint, base=base,
    )  # fmt: skip
