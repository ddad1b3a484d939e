"""The dual-noise injector: rates, ground truth, determinism."""

import numpy as np
import pytest

from d2sp.data.noise import (
    LABEL_NOISE_KINDS,
    UNUSABLE_KINDS,
    degrade,
    faint_version,
    inject_dual_noise,
    make_faint,
)

N, K, SINK = 600, 5, 2


def clean_set(seed=0, n=N):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 1.0, (n, 8, 8)).astype(np.float32)
    images[:, :2] = 0.0  # a dark background so that the median is meaningful
    labels = rng.integers(0, K, n)
    return images, labels


def inject(seed=0, **kw):
    images, labels = clean_set()
    opts = dict(num_classes=K, sink_class=SINK, seed=seed)
    opts.update(kw)
    return images, labels, inject_dual_noise(images, labels, **opts)


def test_rates_are_exact_counts():
    _, _, noisy = inject(unusable_rate=0.15, label_noise_rate=0.2, sink_share=0.4)
    assert noisy.unusable.sum() == round(0.15 * N)
    assert noisy.mislabelled.sum() == round(0.2 * N)
    assert (noisy.label_noise_kind == "sink").sum() == round(0.4 * round(0.2 * N))
    kinds, counts = np.unique(noisy.unusable_kind[noisy.unusable], return_counts=True)
    assert set(kinds) == set(UNUSABLE_KINDS) and counts.max() - counts.min() <= 1
    summary = noisy.summary()
    assert summary["unusable"] == pytest.approx(0.15) and summary["mislabelled"] == pytest.approx(
        0.2
    )


def test_ground_truth_is_consistent_and_the_sets_are_disjoint():
    images, labels, noisy = inject()
    np.testing.assert_array_equal(noisy.true_labels, labels)
    wrong = noisy.label_noise_kind != "none"
    np.testing.assert_array_equal(wrong, noisy.labels != noisy.true_labels)
    assert not (wrong & noisy.unusable).any()
    assert set(noisy.label_noise_kind[wrong]) <= set(LABEL_NOISE_KINDS)
    # unusable images keep their label; clean images keep label and pixels
    np.testing.assert_array_equal(noisy.labels[noisy.unusable], labels[noisy.unusable])
    clean = ~wrong & ~noisy.unusable & ~noisy.faint
    np.testing.assert_array_equal(noisy.images[clean], images[clean])
    assert not np.array_equal(noisy.images[noisy.unusable], images[noisy.unusable])
    assert noisy.images.min() >= 0.0 and noisy.images.max() <= 1.0


def test_sink_errors_are_faint_images_of_other_classes():
    _, _, noisy = inject(faint_clean_rate=0.05)
    sink = noisy.label_noise_kind == "sink"
    assert (noisy.labels[sink] == SINK).all() and (noisy.true_labels[sink] != SINK).all()
    assert noisy.faint[sink].all()
    faint_clean = noisy.faint & ~sink
    assert faint_clean.sum() == round(0.05 * N)
    assert (noisy.labels[faint_clean] == noisy.true_labels[faint_clean]).all()


def test_confirmation_runs_copy_an_earlier_label_of_the_same_annotation_batch():
    batch = 20
    _, _, noisy = inject(annotation_batch=batch, sink_share=0.0)
    runs = np.flatnonzero(noisy.label_noise_kind == "run")
    assert len(runs) == round(0.2 * N)
    for i in runs:
        start = (i // batch) * batch
        earlier = noisy.true_labels[start:i]
        assert (earlier == noisy.labels[i]).any(), i  # copied from an anchor in the batch


def test_determinism():
    _, _, a = inject(seed=3)
    _, _, b = inject(seed=3)
    _, _, c = inject(seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.unusable_kind, b.unusable_kind)
    assert not np.array_equal(a.labels, c.labels)


def test_faint_towards_sink_uses_the_sink_class_mean():
    images, labels, noisy = inject(faint_towards="sink", faint_clean_rate=0.0)
    base = images[labels == SINK].mean(axis=0)
    np.testing.assert_allclose(noisy.base, base, rtol=1e-6)
    i = np.flatnonzero(noisy.faint)[0]
    # faint = base + c · (x − base) with c in the contrast range
    moved = np.abs(images[i] - base) > 0.1
    c = (noisy.images[i] - base)[moved] / (images[i] - base)[moved]
    assert 0.15 - 1e-4 <= c.min() and c.max() <= 0.35 + 1e-4 and np.ptp(c) < 1e-3


def test_make_faint_for_a_test_split():
    images, _ = clean_set()
    out, mask = make_faint(images, rate=0.1, seed=1)
    assert mask.sum() == round(0.1 * N)
    np.testing.assert_array_equal(out[~mask], images[~mask])
    # lower contrast: the spread of each faint image shrinks
    assert (out[mask].std(axis=(1, 2)) < images[mask].std(axis=(1, 2))).all()
    out2, mask2 = make_faint(images, rate=0.1, seed=1)
    np.testing.assert_array_equal(out, out2)


def test_degradations_destroy_the_content():
    rng = np.random.default_rng(0)
    image = np.zeros((16, 16), np.float32)
    image[4:12, 7:9] = 1.0  # a bar
    assert degrade(image, "blur", rng).max() < 0.5
    assert degrade(image, "dark", rng).mean() < 0.1
    occluded = degrade(image, "occlusion", rng)
    assert np.isclose(occluded, occluded[8, 8]).mean() > 0.6  # most of it one flat gray
    noise = degrade(image, "noise", rng)
    assert abs(np.corrcoef(noise.ravel(), image.ravel())[0, 1]) < 0.3
    assert faint_version(image, 0.5).max() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="kind: expected one of"):
        degrade(image, "rain", rng)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(unusable_rate=0.6), "unusable_rate: expected a value in [0, 0.5], got 0.6"),
        (dict(sink_class=9), "sink_class: expected a class in [0, 5), got 9"),
        (dict(faint_towards="up"), "faint_towards: expected one of"),
        (dict(annotation_batch=1), "annotation_batch: expected an integer >= 2, got 1"),
        (
            dict(unusable_rate=0.5, label_noise_rate=0.5),
            "unusable_rate + label_noise_rate + faint_clean_rate: expected <= 0.8",
        ),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        inject(**kwargs)
    assert message in str(err.value)


def test_bad_images_and_labels_are_refused():
    images, labels = clean_set()
    with pytest.raises(ValueError, match=r"images: expected a non-empty \(N, H, W\)"):
        inject_dual_noise(images[0], labels, num_classes=K, sink_class=0, seed=0)
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 5\)"):
        inject_dual_noise(images, labels + 3, num_classes=K, sink_class=0, seed=0)
