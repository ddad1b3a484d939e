"""Segment sampling, frame decoding, the list format and the clip dataset."""

import numpy as np
import pytest
import simplejpeg
import torch

from d2sp.data.annotations import read_list_file
from d2sp.data.dataset import ClipDataset
from d2sp.data.frames import DataError
from d2sp.data.sampling import segment_indices


def write_clip(folder, num_frames, size=24, value_step=10):
    folder.mkdir(parents=True)
    for i in range(num_frames):
        img = np.full((size, size, 3), (i * value_step) % 256, dtype=np.uint8)
        (folder / f"{i + 1:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(img, quality=95))


def test_segment_centres_for_testing():
    assert segment_indices(32, 16, train=False).tolist() == list(range(1, 32, 2))
    assert segment_indices(16, 16, train=False).tolist() == list(range(16))


def test_segment_random_offsets_stay_inside_their_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        idx = segment_indices(48, 16, train=True, rng=rng)
        assert all(3 * s <= i < 3 * (s + 1) for s, i in enumerate(idx.tolist()))
        seen.add(tuple(idx.tolist()))
    assert len(seen) > 1


def test_short_clip_is_padded_with_its_last_frame():
    assert segment_indices(5, 8, train=True).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]


def test_list_file_and_dataset(tmp_path):
    write_clip(tmp_path / "clips" / "a", 20)
    write_clip(tmp_path / "clips" / "b", 6)
    (tmp_path / "list.txt").write_text("clips/a 20 3\n\n# comment\nclips/b 6 0\n")
    samples = read_list_file(tmp_path / "list.txt")
    assert [s.label for s in samples] == [3, 0]
    ds = ClipDataset(samples, num_frames=8, size=16, train=False)
    clip, label, index = ds[1]
    assert clip.shape == (8, 3, 16, 16) and clip.dtype == torch.float32
    assert (label, index) == (0, 1)
    # the 6-frame clip is padded with its last frame: the last three frames are identical
    assert torch.equal(clip[5], clip[7])
    assert not torch.equal(clip[0], clip[5])
    # testing is deterministic; training draws differ between epochs but not between calls
    assert torch.equal(ds[0][0], ds[0][0])
    train = ClipDataset(samples, num_frames=8, size=16, train=True, seed=1)
    a = train[0][0]
    assert torch.equal(a, train[0][0])
    train.set_epoch(1)
    assert not torch.equal(a, train[0][0])


@pytest.mark.parametrize(
    "row, message",
    [
        ("clips/a 20", "list.txt:2: expected 'path num_frames label', got 2 field(s)"),
        ("clips/a twenty 1", "list.txt:2: expected integer num_frames and label"),
        ("clips/a 20 7", "list.txt:2: label 7 out of range [0, 7)"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path, row, message):
    (tmp_path / "list.txt").write_text(f"clips/x 20 1\n{row}\n")
    with pytest.raises(DataError) as err:
        read_list_file(tmp_path / "list.txt")
    assert message in str(err.value)


def test_missing_empty_and_corrupt_frames_name_the_row(tmp_path):
    write_clip(tmp_path / "ok", 4)
    (tmp_path / "empty").mkdir()
    write_clip(tmp_path / "bad", 4)
    (tmp_path / "bad" / "00002.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "list.txt").write_text("missing 4 0\nempty 4 0\nbad 4 0\nok 4 0\n")
    ds = ClipDataset(read_list_file(tmp_path / "list.txt"), num_frames=4, size=8, train=False)
    for i, message in enumerate(["frame folder not found", "has no images", "cannot decode image"]):
        with pytest.raises(DataError) as err:
            ds[i]
        assert f"list.txt:{i + 1}" in str(err.value) and message in str(err.value)
    assert ds[3][0].shape == (4, 3, 8, 8)


def test_frames_in_natural_order(tmp_path):
    from d2sp.data.frames import list_frames

    write_clip(tmp_path / "c", 1)
    for i in (2, 10, 1):
        (tmp_path / "c" / f"{i}.jpg").write_bytes((tmp_path / "c" / "00001.jpg").read_bytes())
    (tmp_path / "c" / "00001.jpg").unlink()
    assert list_frames(tmp_path / "c") == ["1.jpg", "2.jpg", "10.jpg"]
