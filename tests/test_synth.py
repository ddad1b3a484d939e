"""SynthDFER generator: layout, determinism, ground truth, noise rates, degradations, arguments."""

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from d2sp.data.synth import (
    CLASS_NAMES,
    GROUND_TRUTH_COLUMNS,
    LOW_QUALITY_KINDS,
    NOISE_KINDS,
    SYNTH_VERSION,
    ClipParams,
    generate_synthdfer,
    load_ground_truth,
    render_clip,
)

SMALL = dict(num_train=60, num_test=20, size=32, min_frames=3, max_frames=6,
             progress=False, workers=1)


def _read_list(root, split):
    return [line.split(" ") for line in (root / f"{split}_list.txt").read_text().splitlines()]


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_synthdfer(tmp_path_factory.mktemp("synth") / "data", **SMALL)


def test_layout_and_list_format(small):
    assert (small / "meta.json").is_file()
    for split, n in (("train", 60), ("test", 20)):
        text = (small / f"{split}_list.txt").read_text()
        assert text.endswith("\n")
        rows = _read_list(small, split)
        assert len(rows) == n
        for rel, num, label in rows:
            assert re.fullmatch(rf"frames/{split}/s\d{{5}}", rel)
            assert re.fullmatch(r"\d+", num) and re.fullmatch(r"\d", label)
            assert 0 <= int(label) < len(CLASS_NAMES)
            jpgs = sorted(p.name for p in (small / rel).iterdir())
            assert jpgs == [f"{t:05d}.jpg" for t in range(1, int(num) + 1)]
            assert 3 <= int(num) <= 6
        first = simplejpeg.decode_jpeg((small / rows[0][0] / "00001.jpg").read_bytes())
        assert first.shape == (32, 32, 3) and first.dtype == np.uint8
    ids = [r[0].rsplit("/", 1)[1] for s in ("train", "test") for r in _read_list(small, s)]
    assert len(set(ids)) == 80
    meta = json.loads((small / "meta.json").read_text())
    assert meta["version"] == SYNTH_VERSION
    assert meta["class_names"] == list(CLASS_NAMES)
    assert meta["params"]["num_train"] == 60 and meta["params"]["seed"] == 0
    assert set(meta["counts"]["noise"]) == set(NOISE_KINDS)
    assert sum(meta["counts"]["noise"].values()) == 60
    with open(small / "ground_truth.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == GROUND_TRUTH_COLUMNS


def test_ground_truth_matches_lists(small):
    for split in ("train", "test"):
        gt, rows = load_ground_truth(small, split=split), _read_list(small, split)
        assert gt["index"].tolist() == list(range(len(rows)))
        assert gt["path"].tolist() == [r[0] for r in rows]
        assert gt["given_label"].tolist() == [int(r[2]) for r in rows]
        assert set(gt["noise"]) <= set(NOISE_KINDS)
        clean = gt["noise"] == "none"
        assert np.array_equal(gt["given_label"][clean], gt["true_label"][clean])
        sink = gt["noise"] == "neutral_sink"
        assert np.all(gt["given_label"][sink] == 2) and np.all(gt["true_label"][sink] != 2)
        cb = gt["noise"] == "confirmation_bias"
        assert np.all(gt["given_label"][cb] != gt["true_label"][cb])
        low = np.isin(gt["noise"], LOW_QUALITY_KINDS)
        assert np.array_equal(low, gt["quality"] == "low") and np.array_equal(low, gt["low_quality"])
        assert np.array_equal(gt["given_label"][low], gt["true_label"][low])
        assert np.array_equal(gt["mislabeled"], sink | cb)
        assert np.all(gt["intensity"][gt["true_label"] == 2] == 0.0)
    test = load_ground_truth(small, split="test")
    assert np.all(test["noise"] == "none") and not test["mislabeled"].any()
    train = load_ground_truth(small, split="train")
    assert train["low_quality"].any() and train["mislabeled"].any()


def test_deterministic_from_seed(tmp_path):
    kw = dict(SMALL, num_train=14, num_test=7, size=16)
    a = _snapshot(generate_synthdfer(tmp_path / "a", **kw))
    b = _snapshot(generate_synthdfer(tmp_path / "b", **dict(kw, workers=2)))
    c = _snapshot(generate_synthdfer(tmp_path / "c", **dict(kw, seed=1)))
    assert a == b
    assert a["train_list.txt"] != c["train_list.txt"] or a["ground_truth.csv"] != c[
        "ground_truth.csv"]
    frames = [k for k in a if k.endswith(".jpg") and k in c]
    assert any(a[k] != c[k] for k in frames)


def test_noise_rates_on_moderate_set(tmp_path):
    root = generate_synthdfer(tmp_path / "d", num_train=500, num_test=1, size=16, min_frames=1,
                              max_frames=1, progress=False, workers=1, seed=3)
    gt = load_ground_truth(root)
    n = 500
    assert abs(gt["low_quality"].mean() - 0.15) <= 0.02
    assert abs(gt["mislabeled"].mean() - 0.20) <= 0.02
    assert not (gt["low_quality"] & gt["mislabeled"]).any()
    kinds = [int(np.sum(gt["noise"] == k)) for k in LOW_QUALITY_KINDS]
    assert max(kinds) - min(kinds) <= 1
    sink = gt["noise"] == "neutral_sink"
    assert abs(sink.sum() / gt["mislabeled"].sum() - 0.4) <= 0.05
    assert np.all(gt["intensity"][sink] <= 0.35)
    clean_low = (gt["noise"] == "none") & (gt["true_label"] != 2) & (gt["intensity"] < 0.4)
    assert clean_low.sum() >= 10
    for i in np.flatnonzero(gt["noise"] == "confirmation_bias"):
        # A run member repeats the label of the clip before it, inside one annotation batch.
        assert i % 24 != 0 and gt["given_label"][i] == gt["given_label"][i - 1]
    counts = np.bincount(gt["true_label"], minlength=7)
    assert counts.min() >= 0.6 * n / 7 and counts.max() <= 1.4 * n / 7


def test_idempotent_and_parameter_mismatch(tmp_path):
    kw = dict(SMALL, num_train=10, num_test=3, size=16)
    root = generate_synthdfer(tmp_path / "e", **kw)
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert generate_synthdfer(root, **dict(kw, workers=2)) == root
    assert (root / "meta.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"seed: on disk 0, requested 5.*overwrite=True"):
        generate_synthdfer(root, **dict(kw, seed=5))
    generate_synthdfer(root, **dict(kw, seed=5, num_train=12), overwrite=True)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["params"]["seed"] == 5 and len(_read_list(root, "train")) == 12
    assert len(list((root / "frames" / "train").iterdir())) == 12


def test_interrupted_generation_is_redone(tmp_path):
    kw = dict(SMALL, num_train=8, num_test=3, size=16)
    root = generate_synthdfer(tmp_path / "f", **kw)
    before = _snapshot(root)
    (root / "meta.json").unlink()
    (root / "frames" / "train" / "s99999").mkdir()
    next((root / "frames" / "train").glob("s*/00001.jpg")).write_bytes(b"broken")
    generate_synthdfer(root, **kw)
    assert _snapshot(root) == before


def _high_frequency(clip):
    g = clip.astype(np.float64).mean(-1)
    return np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=2)).mean()


@pytest.mark.parametrize("seed", [11, 12])
def test_low_quality_clips_are_degraded(seed):
    base = ClipParams(label=4, intensity=0.9, num_frames=6, degradation="none", seed=seed)
    clean = render_clip(base, 48).astype(np.float64)
    assert clean.shape == (6, 48, 48, 3)
    dark = render_clip(replace(base, degradation="dark"), 48).astype(np.float64)
    assert dark.mean() < 0.25 * clean.mean()
    blur = render_clip(replace(base, degradation="blur"), 48)
    assert _high_frequency(blur) < 0.35 * _high_frequency(clean)
    centre = np.s_[:, 14:38, 14:38]
    occluded = render_clip(replace(base, degradation="occlusion"), 48).astype(np.float64)
    changed = np.abs(occluded[centre] - clean[centre]).max(-1) > 20
    assert changed.mean() > 0.5
    gone = render_clip(replace(base, degradation="no_face"), 48).astype(np.float64)
    assert (np.abs(gone[centre] - clean[centre]).max(-1) > 20).mean() > 0.5


def test_dark_clips_on_disk_are_dark(small):
    gt = load_ground_truth(small)

    def brightness(path):
        return np.mean([simplejpeg.decode_jpeg(p.read_bytes()).mean()
                        for p in sorted((small / path).iterdir())])

    dark = [brightness(p) for p in gt["path"][gt["noise"] == "dark"]]
    good = [brightness(p) for p in gt["path"][gt["quality"] == "good"]]
    assert dark and max(dark) < 0.3 * np.median(good)


def test_expression_unfolds_over_time():
    # Same seed, same scene: the first frame is the neutral onset for every class, the apex
    # differs from the neutral clip by the expression only.
    clips = [render_clip(ClipParams(label=k, intensity=1.0, num_frames=12, degradation="none",
                                    seed=7), 48).astype(np.float64) for k in range(7)]
    for k, clip in enumerate(clips):
        assert np.abs(clip[0] - clips[2][0]).mean() < 0.5
        if k != 2:
            assert np.abs(clip[-1] - clips[2][-1]).mean() > 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_train=0), r"num_train must be an integer >= 1, got 0"),
        (dict(num_train=2.5), r"num_train must be an integer >= 1, got 2.5 \(float\)"),
        (dict(num_test=True), r"num_test must be an integer >= 1, got True \(bool\)"),
        (dict(size=8), r"size must be an integer in \[16, 512\], got 8"),
        (dict(min_frames=0), r"min_frames must be an integer"),
        (dict(min_frames=5, max_frames=4), r"max_frames must be >= min_frames"),
        (dict(low_quality_rate=-0.1), r"low_quality_rate must be a number in \[0, 0.5\]"),
        (dict(label_noise_rate="0.2"), r"label_noise_rate must be a number .* \(str\)"),
        (dict(low_quality_rate=0.4, label_noise_rate=0.4), r"must be <= 0.7"),
        (dict(neutral_sink_share=1.5), r"neutral_sink_share must be a number in \[0, 1.0\]"),
        (dict(annotation_batch=1), r"annotation_batch must be an integer >= 2, got 1"),
        (dict(seed=-1), r"seed must be an integer >= 0, got -1"),
        (dict(workers=0), r"workers must be an integer >= 1, got 0"),
        (dict(progress="yes"), r"progress must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_synthdfer(tmp_path / "g", **dict(SMALL, **kwargs))
    assert not (tmp_path / "g").exists()


def test_bad_root_and_ground_truth_errors(tmp_path):
    with pytest.raises(ValueError, match="root must be a path, got 3"):
        generate_synthdfer(3)
    with pytest.raises(FileNotFoundError, match="ground_truth.csv"):
        load_ground_truth(tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_ground_truth(tmp_path, split="val")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(degradation="fog"), r"degradation must be 'none' or one of .*got 'fog'"),
        (dict(label=7), r"label must be in \[0, 6\].*got label=7"),
        (dict(num_frames=0), r"num_frames >= 1, got .*num_frames=0"),
    ],
)
def test_render_clip_rejects_bad_params(changes, message):
    base = ClipParams(label=0, intensity=0.5, num_frames=2, degradation="none", seed=0)
    with pytest.raises(ValueError, match=message):
        render_clip(replace(base, **changes), 32)
    with pytest.raises(ValueError, match=r"size must be an integer in \[16, 512\], got 4"):
        render_clip(base, 4)


def test_root_accepts_str(tmp_path):
    root = generate_synthdfer(str(tmp_path / "h"), **dict(SMALL, num_train=7, num_test=2,
                                                              size=16))
    assert isinstance(root, Path) and (root / "meta.json").is_file()
