"""The packed clip cache: round trip, reuse and rebuild, DataLoader workers, bad clips."""

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg
import torch
from torch.utils.data import DataLoader

from d2sp.data.cache import (
    CacheSource,
    cache_status,
    load_cache,
    prepare_cache,
    read_all_frames,
    resize_frames,
)
from d2sp.data.dataset import ClipDataset
from d2sp.data.frames import DataError
from d2sp.data.registry import create_dataset
from d2sp.data.sampling import segment_indices


def frame(i: int, size: int, tint: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.clip(40 + i * 6 + xx * 2 + yy, 0, 255)
    return np.stack([base, 255 - base, np.full_like(base, tint)], -1).astype(np.uint8)


def make_dfew(root: Path, clips=((1, 1, 20), (2, 4, 5), (3, 7, 12)), size: int = 32) -> Path:
    (root / "label").mkdir(parents=True)
    rows = "".join(f"{v},{y}\n" for v, y, _ in clips)
    (root / "label" / "single_trainset_1.csv").write_text("video_name,label\n" + rows)
    for v, _, n in clips:
        d = root / "clip_224x224" / f"{v:05d}"
        d.mkdir(parents=True)
        for i in range(n):
            img = frame(i, size, tint=v * 50)
            (d / f"{v:05d}_{i + 1:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(img, quality=95))
    return root


def tree_hash(root: Path) -> dict:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def assert_same_clips(a: ClipDataset, b: ClipDataset, *, mean_tol=0.03, max_tol=0.35):
    """Same labels and indices, clips equal up to JPEG re-encoding (normalised units)."""
    for i in range(len(a)):
        (xa, ya, ia), (xb, yb, ib) = a[i], b[i]
        assert (ya, ia) == (yb, ib) and xa.shape == xb.shape
        diff = (xa - xb).abs()
        assert float(diff.mean()) < mean_tol and float(diff.max()) < max_tol, (i, diff.max())


def test_round_trip_same_samples_labels_order_and_clips(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    before = tree_hash(root)
    split = create_dataset("dfew", root=root, split="train", fold=1)
    report = prepare_cache(split, tmp_path / "cache", size=16, workers=0, progress=False)
    assert report.built and report.num_clips == 3 and report.num_frames == 37
    assert report.shards == 1 and report.bytes == (tmp_path / "cache" / "shard-00000.bin").stat().st_size
    cached = load_cache(tmp_path / "cache")
    assert [asdict(s) for s in cached.samples] == [asdict(s) for s in split.samples]
    assert (cached.name, cached.split, cached.fold, cached.class_names) == (
        "dfew", "train", 1, split.class_names,
    )  # fmt: skip
    assert isinstance(cached.source, CacheSource)
    assert cached.source.num_frames(cached.samples[0]) == 20  # every frame kept
    frames = cached.source.read(cached.samples[0], num_segments=4, train=False, rng=None)
    assert frames.shape == (4, 16, 16, 3)  # 32² frames stored at 16²
    kw = dict(num_frames=8, size=16, train=False)
    assert_same_clips(
        ClipDataset(split.samples, source=split.source, **kw),
        ClipDataset(cached.samples, source=cached.source, **kw),
    )
    # training draws the same frame positions from the cache as from the source
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a = split.source.read(split.samples[0], num_segments=8, train=True, rng=rng_a)
    b = cached.source.read(cached.samples[0], num_segments=8, train=True, rng=rng_b)
    assert np.abs(a[:, ::2, ::2].astype(int).mean((1, 2, 3)) - b.astype(int).mean((1, 2, 3))).max() < 3
    assert tree_hash(root) == before


def test_reused_when_current_rebuilt_when_parameters_or_source_change(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    out = tmp_path / "cache"
    split = create_dataset("dfew", root=root, split="train", fold=1)
    assert prepare_cache(split, out, size=16, workers=0, progress=False).built
    stamp = (out / "manifest.json").stat().st_mtime_ns
    again = prepare_cache(split, out, size=16, workers=0, progress=False)
    assert not again.built and again.reason == "up to date" and again.num_clips == 3
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    changed = prepare_cache(split, out, size=16, quality=70, workers=0, progress=False)
    assert changed.built and changed.reason == "parameters changed: quality 90 -> 70"
    assert cache_status(split, out, size=16, quality=70) is None
    assert cache_status(split, out, size=24, quality=70).startswith("parameters changed: size")
    # a frame added to a clip changes the folder; an edited annotation changes its content
    time.sleep(0.01)
    img = simplejpeg.encode_jpeg(frame(0, 32, 0), quality=95)
    (root / "clip_224x224" / "00002" / "00002_00006.jpg").write_bytes(img)
    split = create_dataset("dfew", root=root, split="train", fold=1)
    rebuilt = prepare_cache(split, out, size=16, quality=70, workers=0, progress=False)
    assert rebuilt.built and rebuilt.reason.startswith("source changed")
    assert load_cache(out).source.num_frames(split.samples[1]) == 6
    csv = root / "label" / "single_trainset_1.csv"
    csv.write_text(csv.read_text().replace("2,4", "2,5"))
    split = create_dataset("dfew", root=root, split="train", fold=1)
    assert cache_status(split, out, size=16, quality=70).startswith("source changed")
    assert prepare_cache(split, out, size=16, quality=70, workers=0, progress=False).built
    assert [s.label for s in load_cache(out).samples] == [0, 4, 6]
    assert sorted(p.name for p in out.iterdir()) == [
        "clips.npy", "frames.npy", "manifest.json", "samples.json", "shard-00000.bin",
    ]  # fmt: skip


def test_worker_processes_shards_and_dataloader_workers(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    split = create_dataset("dfew", root=root, split="train", fold=1)
    report = prepare_cache(split, tmp_path / "c2", size=16, workers=2, shard_bytes=4000,
                           progress=False)  # fmt: skip
    assert report.shards >= 2 and report.num_clips == 3
    single = prepare_cache(split, tmp_path / "c1", size=16, workers=0, progress=False)
    assert single.bytes == report.bytes  # same bytes, whatever the process count
    manifest = json.loads((tmp_path / "c2" / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["params"]["size"] == 16
    assert manifest["params"]["codec"] == "jpeg"
    cached = load_cache(tmp_path / "c2")
    ds = ClipDataset(cached.samples, num_frames=8, size=16, train=True, source=cached.source)
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert [tuple(b[2].tolist()) for b in batches] == [(0, 1), (2,)]
    assert batches[0][0].shape == (2, 8, 3, 16, 16)
    assert torch.equal(batches[0][0][1], ds[1][0])  # the same draws in a worker


def test_video_clips_and_create_dataset_cache_dir(tmp_path):
    (tmp_path / "v").mkdir()
    for name, n in (("a.mp4", 9), ("b.mkv", 4)):
        with av.open(str(tmp_path / "v" / name), "w") as out:
            stream = out.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.bit_rate = 32, 24, 4_000_000
            for i in range(n):
                vf = av.VideoFrame.from_ndarray(frame(i, 32, 90)[:24], format="rgb24")
                for packet in stream.encode(vf):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    (tmp_path / "train.csv").write_text("path,label\nv/a.mp4,happy\nv/b.mkv,fear\n")
    split = create_dataset("csv", root=tmp_path, csv_file="train.csv")
    cached = create_dataset("csv", root=tmp_path, csv_file="train.csv", cache_dir=tmp_path / "c",
                            cache_size=12)  # fmt: skip
    assert isinstance(cached.source, CacheSource) and [s.label for s in cached.samples] == [0, 6]
    frames = cached.source.read_all(cached.samples[0])
    assert frames.shape == (9, 12, 16, 3)  # short side 24 -> 12, aspect kept
    kw = dict(num_frames=6, size=12, train=False)
    assert_same_clips(
        ClipDataset(split.samples, source=split.source, **kw),
        ClipDataset(cached.samples, source=cached.source, **kw),
        mean_tol=0.06, max_tol=0.6,
    )  # fmt: skip
    square = prepare_cache(split, tmp_path / "sq", size=8, resize="square", max_frames=4,
                           workers=0, progress=False)  # fmt: skip
    assert square.num_frames == 4 + 4
    assert load_cache(tmp_path / "sq").source.read_all(split.samples[0]).shape == (4, 8, 8, 3)


def test_raw_codec_is_exact_and_reads_only_sampled_frames(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    split = create_dataset("dfew", root=root, split="train", fold=1)
    report = prepare_cache(split, tmp_path / "raw", size=16, codec="raw", shard_bytes=4000,
                           workers=0, progress=False)  # fmt: skip
    assert report.num_frames == 37 and report.shards == 3  # one clip per shard here
    assert report.bytes == 37 * 16 * 16 * 3  # frames · h · w · 3, no container
    cached = load_cache(tmp_path / "raw")
    assert cached.source.codec == "raw"
    assert [asdict(s) for s in cached.samples] == [asdict(s) for s in split.samples]
    kw = dict(num_frames=8, size=16, train=False, output="uint8")
    test_mode = ClipDataset(cached.samples, source=cached.source, **kw)
    for i, s in enumerate(split.samples):
        ref = resize_frames(read_all_frames(split.source, s), size=16, mode="short")
        assert np.array_equal(cached.source.read_all(s), ref)  # the resized pixels, no loss
        idx = segment_indices(len(ref), 8, train=False)
        assert np.array_equal(cached.source.read(s, num_segments=8, train=False, rng=None),
                              ref[idx])  # fmt: skip
        x, y, j = test_mode[i]  # test-mode clip: exactly the source's resized frames
        assert (y, j) == (s.label, i)
        assert torch.equal(x, torch.from_numpy(ref[idx]).permute(0, 3, 1, 2))
        # training draws (repeats when the clip is short) read the same frames as the source
        idx = segment_indices(len(ref), 24, train=True, rng=np.random.default_rng(i))
        got = cached.source.read(s, num_segments=24, train=True, rng=np.random.default_rng(i))
        assert np.array_equal(got, ref[idx])
    # the float path agrees with the JPEG cache up to its re-encoding
    prepare_cache(split, tmp_path / "jpeg", size=16, workers=0, progress=False)
    jpeg = load_cache(tmp_path / "jpeg")
    kw = dict(num_frames=8, size=16, train=True, seed=2)
    assert_same_clips(ClipDataset(jpeg.samples, source=jpeg.source, **kw),
                      ClipDataset(cached.samples, source=cached.source, **kw))  # fmt: skip
    # in DataLoader workers, from several shards
    ds = ClipDataset(cached.samples, num_frames=8, size=16, train=True, source=cached.source,
                     output="uint8")  # fmt: skip
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=2)))
    assert batch[0].dtype == torch.uint8
    assert all(torch.equal(batch[0][i], ds[i][0]) for i in range(3))
    # a truncated shard is reported, not returned as garbage
    shard = tmp_path / "raw" / "shard-00002.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    fresh = load_cache(tmp_path / "raw")
    with pytest.raises(DataError, match="truncated"):
        fresh.source.read_all(fresh.samples[2])
    assert cache_status(split, tmp_path / "raw", size=16, codec="raw").startswith("shard")


def test_codec_change_rebuilds_and_old_manifests_read_as_jpeg(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    out = tmp_path / "cache"
    split = create_dataset("dfew", root=root, split="train", fold=1)
    jpeg = prepare_cache(split, out, size=16, workers=0, progress=False)
    assert cache_status(split, out, size=16) is None
    assert cache_status(split, out, size=16, codec="raw").startswith(
        "parameters changed: codec 'jpeg' -> 'raw'"
    )
    raw = prepare_cache(split, out, size=16, codec="raw", workers=0, progress=False)
    assert raw.built
    assert raw.reason == "parameters changed: codec 'jpeg' -> 'raw', quality 90 -> None"
    assert raw.bytes == 37 * 16 * 16 * 3 > jpeg.bytes
    assert json.loads((out / "manifest.json").read_text())["params"]["codec"] == "raw"
    assert (out / "shapes.npy").is_file() and load_cache(out).source.codec == "raw"
    again = prepare_cache(split, out, size=16, codec="raw", quality=50, workers=0, progress=False)
    assert not again.built  # the JPEG quality does not matter to a raw cache
    (out / "shapes.npy").unlink()
    assert cache_status(split, out, size=16, codec="raw") == "shapes.npy missing"
    back = prepare_cache(split, out, size=16, codec="jpeg", workers=0, progress=False)
    assert back.built and back.reason.startswith("parameters changed: codec 'raw' -> 'jpeg'")
    assert back.bytes == jpeg.bytes and not (out / "shapes.npy").exists()
    # a manifest written before codecs existed is a JPEG cache, still current
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["params"]["codec"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert cache_status(split, out, size=16) is None and load_cache(out).source.codec == "jpeg"
    assert cache_status(split, out, size=16, codec="raw").startswith("parameters changed: codec")
    with pytest.raises(ValueError, match="codec: expected one of jpeg, raw, got 'png'"):
        prepare_cache(split, out, size=16, codec="png", progress=False)


def test_bad_clips_out_dir_safety_and_missing_cache(tmp_path):
    root = make_dfew(tmp_path / "DFEW")
    bad = root / "clip_224x224" / "00002" / "00002_00003.jpg"
    bad.write_bytes(b"broken")
    split = create_dataset("dfew", root=root, split="train", fold=1)  # listing only: passes
    with pytest.raises(DataError, match=r"single_trainset_1.csv:3: .*00002_00003.jpg: cannot decode"):
        prepare_cache(split, tmp_path / "c", size=16, workers=0, progress=False)
    assert not (tmp_path / "c" / "manifest.json").exists()
    report = prepare_cache(split, tmp_path / "c", size=16, workers=0, skip_bad=True, progress=False)
    assert report.num_clips == 2 and len(report.skipped) == 1
    cached = load_cache(tmp_path / "c")
    assert [s.meta["video_id"] for s in cached.samples] == ["00001", "00003"]
    assert cached.skipped == report.skipped
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files \\(notes.txt\\)"):
        prepare_cache(split, tmp_path / "mine", workers=0, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="no clip cache here"):
        load_cache(tmp_path / "mine")
    with pytest.raises(ValueError, match="resize: expected one of short, square, got 'crop'"):
        prepare_cache(split, tmp_path / "x", resize="crop", progress=False)


def test_uint8_output_matches_float_output_after_device_normalisation(tmp_path):
    from d2sp.data.dataset import normalize_clips

    root = make_dfew(tmp_path / "DFEW")
    split = create_dataset("dfew", root=root, split="train", fold=1, cache_dir=tmp_path / "c",
                           cache_size=24)  # fmt: skip
    for train in (True, False):
        kw = dict(num_frames=8, size=16, train=train, seed=5, source=split.source)
        f32 = ClipDataset(split.samples, **kw)
        u8 = ClipDataset(split.samples, output="uint8", **kw)
        for i in range(len(split)):
            xf, yf, jf = f32[i]
            xu, yu, ju = u8[i]
            assert xu.dtype == torch.uint8 and xu.shape == xf.shape and (yu, ju) == (yf, jf)
            assert float((normalize_clips(xu) - xf).abs().max()) < 0.05  # rounding only
    batch = next(iter(DataLoader(u8, batch_size=3)))[0]
    assert batch.dtype == torch.uint8 and batch.shape == (3, 8, 3, 16, 16)
    with pytest.raises(ValueError, match="output: expected one of float, uint8, got 'half'"):
        ClipDataset(split.samples, train=True, output="half")


def test_prepare_command_builds_then_reuses(tmp_path):
    import typer
    from typer.testing import CliRunner

    from d2sp.commands.prepare import parse_options, prepare

    assert parse_options(["frames=clip_112x112", "workers=4", "x=true", "y=none"]) == {
        "frames": "clip_112x112", "workers": 4, "x": True, "y": None,
    }  # fmt: skip
    app = typer.Typer()
    app.command()(prepare)
    app.callback()(lambda: None)
    root = make_dfew(tmp_path / "DFEW")
    before = tree_hash(root)
    args = ["prepare", "dfew", str(root), str(tmp_path / "c"), "--fold", "1", "--size", "16",
            "--workers", "0", "--quiet"]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "3 clips" in first.output and "built: no cache yet" in first.output
    second = CliRunner().invoke(app, [*args, "-o", "frames=clip_224x224"])
    assert second.exit_code == 0 and "reused: up to date" in second.output
    raw = CliRunner().invoke(app, [*args, "--codec", "raw"])
    assert raw.exit_code == 0, raw.output
    assert "built: parameters changed: codec 'jpeg' -> 'raw'" in raw.output
    assert "in 1 shard(s), raw, 9 KiB per clip" in raw.output  # 37 · 16² · 3 B / 3
    assert load_cache(tmp_path / "c").source.codec == "raw"
    bad = CliRunner().invoke(app, args[:4] + ["--size", "16"])
    assert bad.exit_code == 2 and "fold is required" in bad.output
    assert tree_hash(root) == before


@pytest.mark.parametrize("codec", ["jpeg", "raw"])
def test_reads_are_the_same_however_frames_are_grouped_into_calls(tmp_path, codec):
    """One read per frame, the default grouping (frames up to 32 KiB apart in one call) and
    one call per clip give the same frames, repeats (a short clip) included."""
    root = make_dfew(tmp_path / "DFEW")
    split = create_dataset("dfew", root=root, split="train", fold=1)
    prepare_cache(split, tmp_path / "c", size=16, codec=codec, shard_bytes=4000, workers=0,
                  progress=False)  # fmt: skip
    sources = [
        CacheSource(tmp_path / "c", max_gap=-1, advise_random=False),
        CacheSource(tmp_path / "c"),
        CacheSource(tmp_path / "c", max_gap=2**30),
    ]
    assert sources[1].max_gap == 32 * 1024 and sources[1].advise_random
    for s in split.samples:
        whole = [src.read_all(s) for src in sources]
        assert all(np.array_equal(whole[0], w) for w in whole[1:])
        for seed in range(3):
            got = [src.read(s, num_segments=24, train=True, rng=np.random.default_rng(seed))
                   for src in sources]  # fmt: skip
            assert got[0].shape == (24, 16, 16, 3)
            assert all(np.array_equal(got[0], g) for g in got[1:])
    # a shard cut short is named whatever the grouping
    shard = tmp_path / "c" / "shard-00000.bin"
    shard.write_bytes(shard.read_bytes()[:100])
    for kw in ({}, {"max_gap": -1}):
        with pytest.raises(DataError, match="truncated|corrupt"):
            CacheSource(tmp_path / "c", **kw).read_all(split.samples[0])


def test_the_default_codec_everywhere_and_data_cache_codec(tmp_path):
    """``prepare_cache``, ``d2sp prepare`` and ``data.cache`` share one default codec (JPEG,
    chosen by ``benchmarks/speed/loader_table.py``); ``data.cache_codec`` picks another."""
    import inspect

    from d2sp.commands.prepare import prepare
    from d2sp.config import load_config
    from d2sp.data.cache import DEFAULT_CODEC
    from d2sp.data.splits import load_split

    assert DEFAULT_CODEC == "jpeg"
    assert inspect.signature(prepare_cache).parameters["codec"].default == DEFAULT_CODEC
    assert inspect.signature(prepare).parameters["codec"].default.default == DEFAULT_CODEC
    root = make_dfew(tmp_path / "DFEW")
    base = ["data.dataset=dfew", f"data.root={root}", "data.fold=1", "data.size=16"]
    for codec, want in ((None, "jpeg"), ("raw", "raw"), ("jpeg", "jpeg")):
        extra = [] if codec is None else [f"data.cache_codec={codec}"]
        cfg = load_config(None, [*base, f"data.cache={tmp_path / 'c'}", *extra])
        split = load_split(cfg.data, "train", progress=False)
        assert split.source.codec == want
        assert json.loads((tmp_path / "c" / "train" / "manifest.json").read_text())["version"] == 1
