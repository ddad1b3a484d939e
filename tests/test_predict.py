"""``d2sp predict``: the same predictions as ``evaluate`` on the same clips; bad inputs get a
row with their error and never stop the others; the optional face crop."""

import csv
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from d2sp import train
from d2sp.cli import app
from d2sp.data.annotations import Sample
from d2sp.data.frames import DataError
from d2sp.runs.evaluation import evaluate_run
from d2sp.runs.facecrop import FaceCropSource, enlarge_box
from tests.conftest import tiny_config
from tests.test_datasets import write_video


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth_root):
    out = tmp_path_factory.mktemp("runs")
    train(tiny_config(out, synth_root, "name=p", "purify.mode=ce"), progress=False)
    return out / "p"


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def predict(*args):
    result = CliRunner().invoke(app, ["predict", *map(str, args), "--no-progress"])
    return result, " ".join(result.output.split())


def test_predict_agrees_with_evaluate_on_the_test_clips(trained, synth_root, tmp_path):
    evaluated = evaluate_run(trained, out=tmp_path / "ev", progress=False)
    expected = {r["path"]: r for r in read_rows(evaluated["files"]["predictions"])}
    result, out = predict(trained, synth_root / "test_list.txt", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert "21 of 21 clip(s) predicted, 0 failed" in out
    rows = read_rows(tmp_path / "p.csv")
    assert [r["path"] for r in rows] == list(expected)  # the list's order, its paths resolved
    names = evaluated["class_names"]
    for r in rows:
        e = expected[r["path"]]
        assert (r["predicted"], r["predicted_index"]) == (e["predicted"], e["predicted_index"])
        ours = np.array([float(r[f"p_{n}"]) for n in names])
        np.testing.assert_allclose(ours, [float(e[f"p_{n}"]) for n in names], atol=1e-6)
        assert r["error"] == "" and abs(ours.sum() - 1) < 1e-4


def test_bad_inputs_get_their_error_and_the_others_run(trained, synth_root, tmp_path):
    good = sorted((synth_root / "frames" / "test").iterdir())[0]
    video = write_video(tmp_path / "in" / "v.mp4", 6, size=24)
    broken = tmp_path / "in" / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    empty = tmp_path / "in" / "empty"
    empty.mkdir()
    listed = tmp_path / "in" / "more.csv"
    listed.write_text("path,label\nv.mp4,1\nmissing_clip,2\n")
    out_csv = tmp_path / "preds.csv"
    inputs = [good, tmp_path / "nope", empty, broken, video, listed]
    result, out = predict(trained, *inputs, "--out", out_csv)
    assert result.exit_code == 0, result.output
    assert "3 of 7 clip(s) predicted, 4 failed" in out
    assert "input(s) are videos; models trained on face-cropped DFER data" in out
    rows = {r["path"]: r for r in read_rows(out_csv)}
    assert rows[str(tmp_path / "nope")]["error"] == "not found"
    assert "folder without frame images" in rows[str(empty)]["error"]
    assert "cannot" in rows[str(broken)]["error"] and rows[str(broken)]["predicted"] == ""
    assert rows[str(tmp_path / "in" / "missing_clip")]["error"] == f"{listed}:3: not found"
    for ok in (good, video):
        assert rows[str(ok)]["error"] == "" and rows[str(ok)]["predicted"]
    again, out = predict(trained, good, "--out", out_csv)
    assert again.exit_code == 2 and "already exists (pass --overwrite" in out
    assert predict(trained, good, "--out", out_csv, "--overwrite")[0].exit_code == 0
    nothing, out = predict(trained, tmp_path / "nope", "--out", tmp_path / "none.csv")
    assert nothing.exit_code == 1 and "0 of 1 clip(s) predicted, 1 failed" in out


def test_face_crop_without_opencv_names_the_extra(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    result, out = predict(trained, tmp_path, "--face-crop", "--out", tmp_path / "f.csv")
    assert result.exit_code == 2 and "Traceback" not in out
    assert "--face-crop needs OpenCV" in out and "pip install 'd2sp[face]'" in out


class FakeDetector:
    """Faces by frame: frame 0 a small one, the last frame a larger one."""

    def detectMultiScale(self, gray, **kwargs):  # noqa: N802 - OpenCV's name
        return {0: [(10, 5, 10, 12)], 127: [(30, 8, 16, 16)]}.get(int(gray[0, 0]), [])


class Frames:
    def __init__(self, frames):
        self.frames = frames

    def read(self, sample, *, num_segments, train, rng):
        return self.frames


def test_face_crop_keeps_the_largest_face_enlarged_for_the_whole_clip():
    frames = np.zeros((4, 40, 60, 3), dtype=np.uint8)
    frames[-1] = 127  # the frame where the larger face is
    source = FaceCropSource(Frames(frames), probes=3, detector=FakeDetector())
    crop = source.read(Sample("clip", 0), num_segments=4, train=False, rng=None)
    assert crop.shape == (4, 20, 20, 3)  # 16 x 1.25, one box for every frame
    assert enlarge_box((30, 8, 16, 16), 40, 60) == (6, 28, 20, 20)
    assert enlarge_box((0, 0, 50, 50), 40, 60) == (0, 5, 40, 40)  # at most the frame
    nothing = FaceCropSource(Frames(frames[:3] * 0 + 5), detector=FakeDetector())
    with pytest.raises(DataError, match="no face found"):
        nothing.read(Sample("clip", 0), num_segments=3, train=False, rng=None)


def test_face_crop_with_opencv_finds_a_real_face(trained, tmp_path):
    pytest.importorskip("cv2")
    import matplotlib.cbook
    from PIL import Image

    from d2sp.runs.facecrop import haar_detector, largest_face

    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    face = np.asarray(Image.open(photo).convert("RGB").resize((128, 150)))  # (150, 128, 3)
    assert largest_face(np.full((3, 64, 64, 3), 128, np.uint8), haar_detector()) is None
    x, y, w, h = largest_face(face[None], haar_detector())
    assert 20 < x + w / 2 < 100 and 20 < y + h / 2 < 100 and w > 30  # her face, mid-frame
    clip = tmp_path / "hopper"
    clip.mkdir()
    for i in range(4):
        Image.fromarray(face).save(clip / f"{i:03d}.jpg")
    result, out = predict(trained, clip, "--face-crop", "--out", tmp_path / "f.csv")
    assert result.exit_code == 0 and "1 of 1 clip(s) predicted" in out
