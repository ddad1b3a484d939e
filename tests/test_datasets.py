"""Dataset loaders on tiny trees in the real layouts: labels, folds, scenes, bad input."""

import hashlib
import os
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg
import torch

from d2sp.data.dataset import ClipDataset
from d2sp.data.frames import DataError
from d2sp.data.labels import (
    DFER_CLASSES,
    MAFW_CLASSES,
    class_index,
    dfew_label,
    ferv39k_label,
    mafw_label,
)
from d2sp.data.registry import DATASETS, class_counts, create_dataset, list_datasets
from d2sp.data.validate import DataWarning
from d2sp.data.video import VideoSource, probe_video

# ------------------------------------------------------------------------------ helpers


def frame(i: int, size: int = 16, tint: int = 0) -> np.ndarray:
    """A smooth frame whose brightness encodes ``i``."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.clip(i * 12 + xx * 2 + yy, 0, 255)
    return np.stack([base, base, np.full_like(base, tint)], -1).astype(np.uint8)


def write_clip(folder: Path, n: int, *, size: int = 16, prefix: str = "") -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        data = simplejpeg.encode_jpeg(frame(i, size), quality=95)
        (folder / f"{prefix}{i + 1:05d}.jpg").write_bytes(data)
    return folder


def write_video(path: Path, n: int, *, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(frame(i, size), format="rgb24")
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def tree_hash(root: Path) -> dict:
    """Every file under ``root`` with its content hash, and every folder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.join(dirpath, d)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


# ---------------------------------------------------------------------------- DFEW


def make_dfew(root: Path, rows=((1, 1, 5), (2, 4, 3), (3, 7, 4)), *, official=True) -> Path:
    """DFEW tree: ``rows`` of (video_name, 1-based label, frames); fold 1."""
    if official:
        labels, frames = root / "label", root / "clip_224x224"
        train, test = labels / "single_trainset_1.csv", labels / "single_testset_1.csv"
    else:  # the distribution's layout
        labels, frames = root / "EmoLabel_DataSplit", root / "Clip" / "clip_224x224"
        train = labels / "train(single-labeled)" / "set_1.csv"
        test = labels / "test(single-labeled)" / "set_1.csv"
    train.parent.mkdir(parents=True, exist_ok=True)
    test.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{v},{y}\n" for v, y, _ in rows)
    bom = "" if official else "\ufeff"
    train.write_text(bom + "video_name,label\n" + body, encoding="utf-8")
    test.write_text("video_name,label\n99,3\n")
    for v, _, n in rows:
        write_clip(frames / f"{v:05d}", n, prefix=f"{v:05d}_")
    write_clip(frames / "00099", 2, prefix="00099_")
    return root


def test_dfew_official_layout_maps_labels_and_folds(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    before = tree_hash(root)
    split = create_dataset("dfew", root=root, split="train", fold=1)
    assert [s.label for s in split.samples] == [0, 3, 6]  # Happy, Angry, Fear
    assert [Path(s.path).name for s in split.samples] == ["00001", "00002", "00003"]
    assert [s.num_frames for s in split.samples] == [5, 3, 4]
    assert split.class_names == DFER_CLASSES and split.fold == 1 and split.name == "dfew"
    assert split.samples[1].source.endswith("single_trainset_1.csv:3")
    assert split.annotation_files == [str(root / "label" / "single_trainset_1.csv")]
    assert class_counts(split) == dict.fromkeys(DFER_CLASSES, 0) | {
        "happiness": 1, "anger": 1, "fear": 1,
    }  # fmt: skip
    test = create_dataset("dfew", root=root, split="test", fold=1)
    assert [s.label for s in test.samples] == [2] and test.split == "test"
    clip, label, index = ClipDataset(split.samples, num_frames=4, size=8, train=False,
                                     source=split.source)[2]  # fmt: skip
    assert clip.shape == (4, 3, 8, 8) and (label, index) == (6, 2)
    for fold in (None, 0, 6):
        with pytest.raises(ValueError, match="fold"):
            create_dataset("dfew", root=root, split="train", fold=fold)
    with pytest.raises(DataError, match="split file for train fold 2 not found"):
        create_dataset("dfew", root=root, split="train", fold=2)
    assert tree_hash(root) == before


def test_dfew_distribution_layout_with_bom_and_112_frames(tmp_path):
    root = make_dfew(tmp_path / "DFEW", official=False)
    split = create_dataset("dfew", root=root, split="train", fold=1)
    assert [s.label for s in split.samples] == [0, 3, 6]
    assert "Clip" in split.samples[0].path
    write_clip(root / "Clip" / "clip_112x112" / "00001", 2)
    with pytest.raises(DataError, match="00002: frame folder not found"):
        create_dataset("dfew", root=root, split="train", fold=1, frames="clip_112x112")
    with pytest.raises(DataError, match="frames folder 'nope' not found"):
        create_dataset("dfew", root=root, split="train", fold=1, frames="nope")


@pytest.mark.parametrize(
    "row, message",
    [
        ("4,0", "label 0 out of range: expected 1..7 (1 Happy"),
        ("4,8", "label 8 out of range"),
        ("4,happy", "expected a DFEW label 1..7, got 'happy'"),
        ("abc,1", "expected a numeric video_name, got 'abc'"),
        ("4", "expected 2 columns, got 1"),
        ("1,2", "duplicate clip '00001' (first at"),
    ],
)
def test_dfew_bad_rows_name_file_and_row(tmp_path, row, message):
    root = make_dfew(tmp_path)
    csv = root / "label" / "single_trainset_1.csv"
    csv.write_text(csv.read_text() + row + "\n")
    with pytest.raises(DataError) as err:
        create_dataset("dfew", root=root, split="train", fold=1)
    assert "single_trainset_1.csv:5" in str(err.value) and message in str(err.value)


def test_dfew_bad_clips_raise_or_are_skipped_and_counted(tmp_path):
    rows = ((1, 1, 5), (2, 2, 4), (3, 3, 4), (4, 4, 4), (5, 5, 3))
    root = make_dfew(tmp_path, rows)
    frames = root / "clip_224x224"
    os.rename(frames / "00002", frames / "moved")  # missing folder
    for f in (frames / "00003").iterdir():  # empty folder
        f.unlink()
    truncate(frames / "00004" / "00004_00002.jpg")  # truncated JPEG (a sampled frame)
    before = tree_hash(root)
    with pytest.raises(DataError, match=r"single_trainset_1.csv:3: .*00002: frame folder not found"):
        create_dataset("dfew", root=root, split="train", fold=1)
    (frames / "00002").mkdir()
    with pytest.raises(DataError, match=r"single_trainset_1.csv:3: .*has no images"):
        create_dataset("dfew", root=root, split="train", fold=1)
    (frames / "00002").rmdir()
    # the listing and the first frames do not reach frame 2: it fails at training time
    for check in ("list", "auto", "first"):
        split = create_dataset("dfew", root=root, split="train", fold=1, skip_bad=True,
                               check=check)  # fmt: skip
        assert len(split.samples) == 3 and len(split.skipped) == 2
    with pytest.raises(DataError, match=r"single_trainset_1.csv:5: .*cannot decode image"):
        ClipDataset(split.samples, num_frames=4, size=8, train=False)[1]
    # the sampled check decodes the frames testing samples
    split = create_dataset("dfew", root=root, split="train", fold=1, skip_bad=True, check="sampled")
    assert [s.meta["video_id"] for s in split.samples] == ["00001", "00005"]
    assert [s.label for s in split.samples] == [0, 4]
    assert len(split.skipped) == 3
    assert split.skipped[0].endswith("00002: frame folder not found")
    assert "single_trainset_1.csv:4:" in split.skipped[1] and "has no images" in split.skipped[1]
    assert "single_trainset_1.csv:5:" in split.skipped[2]
    assert "truncated JPEG (no end-of-image marker)" in split.skipped[2]
    assert tree_hash(root) == before


def test_full_check_decodes_every_frame(tmp_path):
    root = make_dfew(tmp_path, ((1, 1, 40), (2, 2, 5)))
    bad = root / "clip_224x224" / "00001" / "00001_00005.jpg"  # not a test-time centre
    bad.write_bytes(b"\xff\xd8garbage\xff\xd9")
    split = create_dataset("dfew", root=root, split="train", fold=1, skip_bad=True, check="sampled")
    assert len(split.samples) == 2  # the sampled check does not read frame 4
    split = create_dataset("dfew", root=root, split="train", fold=1, skip_bad=True, check="full")
    assert len(split.samples) == 1 and "00001_00005.jpg: cannot decode image" in split.skipped[0]


# -------------------------------------------------------------------------- FERV39k


def make_ferv39k(root: Path) -> Path:
    clips = root / "2_ClipsforFaceCrop"
    rows = [("Action", "Happy", "0001", 3), ("Action", "Sad", "0002", 4),
            ("Crime", "Fear", "0001", 2), ("DailyLife", "Neutral", "0007", 3)]  # fmt: skip
    for scene, emotion, clip, n in rows:
        write_clip(clips / scene / emotion / clip, n)
    setups = root / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    (setups / "train_All.csv").write_text(
        "".join(f"{s}/{e}/{c} {e}\n" for s, e, c, _ in rows[:3])
    )
    (setups / "test_All.csv").write_text("DailyLife/Neutral/0007 Neutral\n")
    return root


def test_ferv39k_official_split_files_keep_scenes(tmp_path):
    root = make_ferv39k(tmp_path / "FERV39k")
    before = tree_hash(root)
    split = create_dataset("ferv39k", root=root, split="train")
    assert [s.label for s in split.samples] == [0, 1, 6]
    assert [s.meta["scene"] for s in split.samples] == ["Action", "Action", "Crime"]
    assert split.samples[2].meta["video_id"] == "Crime/Fear/0001"
    assert split.samples[0].source.endswith("train_All.csv:1")
    test = create_dataset("ferv39k", root=root, split="test")
    assert [s.label for s in test.samples] == [2] and test.samples[0].meta["scene"] == "DailyLife"
    with pytest.raises(ValueError, match="ferv39k: has no folds"):
        create_dataset("ferv39k", root=root, split="train", fold=1)
    assert tree_hash(root) == before


def test_ferv39k_list_format_warns_once_on_frame_counts(tmp_path):
    root = make_ferv39k(tmp_path)
    (root / "ferv_train.txt").write_text(
        "2_ClipsforFaceCrop/Action/Happy/0001 9 0\n"
        "2_ClipsforFaceCrop/Crime/Fear/0001 7 6\n"
        "2_ClipsforFaceCrop/Action/Sad/0002 4 1\n"
    )
    with pytest.warns(DataWarning, match=r"2 of 3 rows give a num_frames") as record:
        split = create_dataset("ferv39k", root=root, split="train", list_file="ferv_{split}.txt")
    assert len(record) == 1
    assert [s.num_frames for s in split.samples] == [3, 2, 4]  # the folder wins
    assert [s.meta["scene"] for s in split.samples] == ["Action", "Crime", "Action"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (root / "ferv_test.txt").write_text("2_ClipsforFaceCrop/DailyLife/Neutral/0007 3 2\n")
        create_dataset("ferv39k", root=root, split="test", list_file="ferv_{split}.txt")


def test_ferv39k_split_folder_tree_and_bad_names(tmp_path):
    root = tmp_path / "ferv"
    write_clip(root / "train" / "Action" / "Happy" / "0001", 2)
    write_clip(root / "train" / "War" / "Angry" / "0003", 2)
    split = create_dataset("ferv39k", root=root, split="train")
    assert [(s.meta["scene"], s.label) for s in split.samples] == [("Action", 0), ("War", 3)]
    with pytest.raises(DataError, match="no test split found"):
        create_dataset("ferv39k", root=root, split="test")
    write_clip(root / "train" / "War" / "Happyy" / "0004", 2)
    with pytest.raises(DataError, match="unknown emotion 'Happyy': expected one of Happy, Sad"):
        create_dataset("ferv39k", root=root, split="train")
    split = create_dataset("ferv39k", root=root, split="train", skip_bad=True)
    assert len(split.samples) == 2 and len(split.skipped) == 1
    root2 = make_ferv39k(tmp_path / "f2")
    with open(root2 / "4_setups" / "All_scenes" / "train_All.csv", "a") as f:
        f.write("Action/Happy/0001 Happy\n")
    with pytest.raises(DataError, match=r"train_All.csv:4: duplicate clip 'Action/Happy/0001'"):
        create_dataset("ferv39k", root=root2, split="train")


# ----------------------------------------------------------------------------- MAFW


def make_mafw(root: Path, *, videos: bool = False) -> Path:
    clips = {"00025": ("anger", 4), "00026": ("contempt", 3), "00027": ("happiness", 5),
             "00028": ("disappointment", 2)}  # fmt: skip
    caption = "一个女生眼含着泪水".encode("gbk")  # captions are not UTF-8 in the official files
    lines = [f"{c}.mp4\t{e}\t".encode() + caption + b"\tA girl shouts.\n"
             for c, (e, _) in clips.items()]  # fmt: skip
    root.mkdir(parents=True)
    (root / "single_label.txt").write_bytes(b"".join(lines))
    fold = root / "Train & Test Set" / "single" / "no_caption" / "set_1"
    fold.mkdir(parents=True)
    (fold / "train.txt").write_text("00025.mp4 anger\n00026.mp4 contempt\n00028.mp4 disappointment\n")
    (fold / "test.txt").write_text("00027.mp4 happiness\n")
    for c, (_, n) in clips.items():
        write_clip(root / "data" / "frames" / c, n)
        if videos:
            write_video(root / "data" / "clips" / f"{c}.mp4", n)
    return root


def test_mafw_official_folds_and_eleven_classes(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    before = tree_hash(root)
    split = create_dataset("mafw", root=root, split="train", fold=1)
    assert split.class_names == MAFW_CLASSES and len(MAFW_CLASSES) == 11
    assert [split.class_names[s.label] for s in split.samples] == [
        "anger", "contempt", "disappointment",
    ]  # fmt: skip
    assert [s.label for s in split.samples] == [3, 7, 10]
    assert split.annotation_files[1].endswith("single_label.txt")
    test = create_dataset("mafw", root=root, split="test", fold=1)
    assert [s.label for s in test.samples] == [0]
    with pytest.raises(ValueError, match="mafw: fold is required"):
        create_dataset("mafw", root=root, split="train")
    assert tree_hash(root) == before


def test_mafw_id_only_split_files_take_labels_from_single_label(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    (root / "my_splits").mkdir()
    (root / "my_splits" / "train_1.txt").write_text("00027\n00025.mp4\n")
    split = create_dataset(
        "mafw", root=root, split="train", fold=1, split_file="my_splits/{split}_{fold}.txt"
    )
    assert [s.label for s in split.samples] == [0, 3]
    (root / "my_splits" / "train_1.txt").write_text("00027 fear\n")
    with pytest.raises(DataError, match=r"train_1.txt:1: label 'fear' disagrees with .*single_label.txt:3"):
        create_dataset("mafw", root=root, split="train", fold=1,
                       split_file="my_splits/{split}_{fold}.txt")  # fmt: skip
    (root / "my_splits" / "train_1.txt").write_text("00099\n00025 sorrow\n00027\n")
    split = create_dataset("mafw", root=root, split="train", fold=1, skip_bad=True,
                           split_file="my_splits/{split}_{fold}.txt")  # fmt: skip
    assert [s.label for s in split.samples] == [0] and len(split.skipped) == 2
    assert "has no label here" in split.skipped[0]
    assert "unknown class name 'sorrow'" in split.skipped[1]


def test_mafw_from_mp4_files(tmp_path):
    root = make_mafw(tmp_path / "MAFW", videos=True)
    before = tree_hash(root)
    split = create_dataset("mafw", root=root, split="train", fold=1, media="video",
                           check="sampled")  # fmt: skip
    assert split.samples[0].path.endswith("00025.mp4") and split.samples[0].num_frames == 4
    ds = ClipDataset(split.samples, num_frames=6, size=8, train=True, source=split.source)
    clip, label, index = ds[0]
    assert clip.shape == (6, 3, 8, 8) and (label, index) == (3, 0)
    with pytest.raises(DataError, match="videos= or media='frames'"):
        create_dataset("mafw", root=root, split="train", fold=1, media="video", videos="nope")
    assert tree_hash(root) == before


def test_mafw_duplicate_label_row_is_skipped_with_skip_bad(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    with open(root / "single_label.txt", "ab") as f:
        f.write(b"00025.mp4\tsadness\tcaption\n")  # row 5 repeats row 1's clip
    pattern = r"train.txt:1: .*'00025': 2 rows \(.*single_label.txt:1, .*single_label.txt:5\)"
    with pytest.raises(DataError, match=pattern):
        create_dataset("mafw", root=root, split="train", fold=1)
    split = create_dataset("mafw", root=root, split="train", fold=1, skip_bad=True)
    assert [s.meta["video_id"] for s in split.samples] == ["00026", "00028"]
    assert len(split.skipped) == 1 and "single_label.txt:5" in split.skipped[0]
    test = create_dataset("mafw", root=root, split="test", fold=1)  # never uses 00025
    assert [s.label for s in test.samples] == [0] and test.skipped == []


def test_mafw_bad_label_row_stops_only_the_split_that_uses_it(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    text = (root / "single_label.txt").read_bytes()
    text = text.replace(b"00027.mp4\thappiness", b"00027.mp4\tglee")
    (root / "single_label.txt").write_bytes(text + b"\xff\xfe.mp4 anger\n")
    with pytest.warns(DataWarning, match=r"1 row\(s\) of the label file name no readable clip"):
        train = create_dataset("mafw", root=root, split="train", fold=1)  # 00027 unused here
    assert [s.label for s in train.samples] == [3, 7, 10] and train.skipped == []
    with pytest.warns(DataWarning), pytest.raises(
        DataError, match=r"test.txt:1: .*single_label.txt:3: unknown class name 'glee'"
    ):
        create_dataset("mafw", root=root, split="test", fold=1)
    split = create_dataset("mafw", root=root, split="train", fold=1, skip_bad=True)
    assert len(split.samples) == 3 and len(split.skipped) == 1  # the stray row, listed
    assert "single_label.txt:5: expected '<id>.mp4 <emotion>'" in split.skipped[0]


def test_duplicate_rows_name_both_and_are_skipped_with_skip_bad(tmp_path):
    for name in ("a", "b"):
        write_clip(tmp_path / "clips" / name, 4)
    (tmp_path / "train.txt").write_text("clips/a 4 1\nclips/b 4 2\nclips/a 4 3\n")
    with pytest.raises(DataError, match=r"train.txt:3: duplicate clip .*a' \(first at .*txt:1\)"):
        create_dataset("list", root=tmp_path, list_file="train.txt")
    split = create_dataset("list", root=tmp_path, list_file="train.txt", skip_bad=True)
    assert [s.label for s in split.samples] == [2]  # which label of a is meant is unknown
    assert [line.split(": ")[0][-11:] for line in split.skipped] == ["train.txt:1", "train.txt:3"]
    root = make_dfew(tmp_path / "DFEW", rows=((1, 1, 5), (2, 4, 3)))
    with open(root / "label" / "single_trainset_1.csv", "a") as f:
        f.write("00001,2\n")
    split = create_dataset("dfew", root=root, split="train", fold=1, skip_bad=True)
    assert [s.meta["video_id"] for s in split.samples] == ["00002"] and len(split.skipped) == 2


# ------------------------------------------------------------------------ list / csv


def test_list_dataset_with_class_names_and_skips(tmp_path):
    write_clip(tmp_path / "clips" / "a", 4)
    write_clip(tmp_path / "clips" / "b", 4)
    (tmp_path / "train.txt").write_text("clips/a 4 10\nclips/b 4 1\nclips/c 4 1\nclips/a 4\n")
    split = create_dataset("list", root=tmp_path, list_file="{split}.txt", num_classes=11,
                           skip_bad=True)  # fmt: skip
    assert [s.label for s in split.samples] == [10, 1] and split.class_names == MAFW_CLASSES
    assert len(split.skipped) == 2 and "train.txt:4: expected 'path num_frames label'" in split.skipped[0]
    assert "train.txt:3: " in split.skipped[1] and "frame folder not found" in split.skipped[1]
    with pytest.raises(DataError, match=r"train.txt:1: label 10 out of range \[0, 7\)"):
        create_dataset("list", root=tmp_path, list_file="train.txt")
    split = create_dataset("list", root=tmp_path, train_list="train.txt", class_names="a,b,c,d,e,f,g,h,i,j,k",
                           skip_bad=True)  # fmt: skip
    assert split.class_names[10] == "k"
    with pytest.raises(ValueError, match="give list_file="):
        create_dataset("list", root=tmp_path)


def test_csv_of_folders_and_videos_with_names_and_ints(tmp_path):
    write_clip(tmp_path / "frames" / "a", 5)
    write_video(tmp_path / "videos" / "b.mp4", 7)
    write_video(tmp_path / "videos" / "c.avi", 3)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"\x00\x00\x00 not a video at all")
    (tmp_path / "train.csv").write_text(
        "Path,Label,Actor\nframes/a,Happy,x\nvideos/b.mp4,6,y\nvideos/c.avi,surprise,z\n"
    )
    before = tree_hash(tmp_path)
    split = create_dataset("csv", root=tmp_path, csv_file="train.csv")
    assert [s.label for s in split.samples] == [0, 6, 4]
    assert split.samples[1].meta == {"actor": "y"}
    ds = ClipDataset(split.samples, num_frames=8, size=8, train=False, source=split.source)
    for i in range(3):
        assert ds[i][0].shape == (8, 3, 8, 8)
    assert torch.equal(ds[2][0][-1], ds[2][0][-2])  # a 3-frame video is padded
    with open(tmp_path / "train.csv", "a") as f:
        f.write("videos/broken.mp4,0,w\nframes/a,joyful,v\n")
    before = tree_hash(tmp_path)
    with pytest.raises(DataError, match=r"train.csv:6: unknown class name 'joyful'"):
        create_dataset("csv", root=tmp_path, csv_file="train.csv")
    split = create_dataset("csv", root=tmp_path, csv_file="train.csv", skip_bad=True)
    assert len(split.samples) == 3 and len(split.skipped) == 2
    skipped = sorted(split.skipped)
    assert "train.csv:5: " in skipped[0] and "broken.mp4: cannot open video" in skipped[0]
    assert "train.csv:6: unknown class name 'joyful'" in skipped[1]
    split = create_dataset("csv", root=tmp_path, csv_file="train.csv", skip_bad=True,
                           class_names=["joyful", "calm"])  # fmt: skip
    assert [s.label for s in split.samples] == [0]
    assert tree_hash(tmp_path) == before


def test_video_source_reads_the_right_frames(tmp_path):
    path = write_video(tmp_path / "v.mp4", 20)
    assert probe_video(path) == 20 and probe_video(path, decode="all") == 20
    from d2sp.data.annotations import Sample

    src = VideoSource()
    frames = src.read(Sample(path=str(path), label=0), num_segments=5, train=False, rng=None)
    assert frames.shape == (5, 16, 16, 3) and frames.dtype == np.uint8
    # segment centres 2, 6, 10, 14, 18: brightness grows by 12 per frame
    expected = np.array([frame(i)[..., 0].mean() for i in (2, 6, 10, 14, 18)])
    assert np.abs(frames[..., 0].mean(axis=(1, 2)) - expected).max() < 6
    assert src.read_all(Sample(path=str(path), label=0)).shape == (20, 16, 16, 3)
    with pytest.raises(DataError, match="video file not found"):
        src.read(Sample(path=str(tmp_path / "nope.mp4"), label=0), num_segments=2, train=False,
                 rng=None)  # fmt: skip


# ---------------------------------------------------------------- registry and labels


def test_registry_names_options_and_errors(tmp_path):
    shipped = ["csv", "dfew", "ferv39k", "list", "mafw", "synthdfer"]
    assert list_datasets() == shipped == sorted(DATASETS)
    with pytest.raises(ValueError, match="data.root: dataset 'dfew' needs a root folder"):
        create_dataset("dfew", root=None, fold=1)
    with pytest.raises(ValueError, match="unknown dataset 'dfw'; known datasets: csv, dfew"):
        create_dataset("dfw", root=tmp_path)
    with pytest.raises(ValueError, match="dataset 'dfew' has no option 'frame'; its options: frames"):
        create_dataset("dfew", root=tmp_path, fold=1, frame="x")
    with pytest.raises(ValueError, match="split: expected one of train, test, got 'val'"):
        create_dataset("dfew", root=tmp_path, split="val", fold=1)
    with pytest.raises(ValueError, match="root: expected an existing folder"):
        create_dataset("dfew", root=tmp_path / "missing", fold=1)
    with pytest.raises(ValueError, match="check: expected 'auto' or one of list, first, sampled, full"):
        make_dfew(tmp_path / "d")
        create_dataset("dfew", root=tmp_path / "d", fold=1, check="deep")


def test_label_mapping_is_the_documented_order():
    assert [DFER_CLASSES[dfew_label(i)] for i in range(1, 8)] == [
        "happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear",
    ]  # fmt: skip
    names = ["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]
    assert [ferv39k_label(n) for n in names] == list(range(7))
    official = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
                "contempt", "anxiety", "helplessness", "disappointment"]  # fmt: skip
    assert [MAFW_CLASSES[mafw_label(n)] for n in official] == official
    assert [MAFW_CLASSES[mafw_label(str(i))] for i in range(1, 12)] == official
    assert class_index("HAPPY", DFER_CLASSES) == 0 and class_index("3", DFER_CLASSES) == 3
    with pytest.raises(ValueError, match=r"label 7 out of range \[0, 7\)"):
        class_index(7, DFER_CLASSES)
