"""The synthetic DFEW-like tree the speed benchmarks read (``loader_table.py``,
``train_from_disk.py``): clips of random-ish JPEG frames (a smooth texture, a blob drifting
across it, sensor noise; about the file sizes of DFEW's ``clip_224x224``), the official split
csv, an H.264 copy of every clip; and a clip cache tiled to any number of clips with the
cache's own shard writer."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import simplejpeg
import torch
import torch.nn.functional as F

from d2sp.data.cache import CacheSource, _install, _ShardWriter, load_cache
from d2sp.data.common import DatasetSplit


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour texture ``(size, size, 3)`` float32 in [0, 255]."""
    grid = torch.from_numpy(rng.uniform(30, 220, (1, 3, 6, 6)).astype(np.float32))
    up = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False)
    return up[0].permute(1, 2, 0).numpy()


def _clip_frames(seed: int, n: int, size: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8: a texture, a blob drifting across it, sensor noise."""
    rng = np.random.default_rng(seed)
    base = _texture(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    vy, vx = rng.normal(0, 0.01, 2) * size
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        d2 = (yy - cy - vy * i) ** 2 + (xx - cx - vx * i) ** 2
        blob = np.exp(-d2 / (2 * (0.15 * size) ** 2))[..., None]
        img = base * (1 - blob) + colour * blob + rng.normal(0, 4, (size, size, 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _write_clip(task: tuple[Path, int, int, int, bool]) -> int:
    root, vid, n, size, videos = task
    frames = _clip_frames(vid, n, size)
    folder = root / "clip_224x224" / f"{vid:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, img in enumerate(frames):
        data = simplejpeg.encode_jpeg(img, quality=90, colorsubsampling="420")
        (folder / f"{vid:05d}_{i + 1:05d}.jpg").write_bytes(data)
        written += len(data)
    if not videos:
        return written
    with av.open(str(root / "videos" / f"{vid:05d}.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "23", "preset": "fast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return written


def make_tree(
    root: Path, clips: int, frames: int, size: int, workers: int, videos: bool = True
) -> dict:
    """The synthetic DFEW-like tree (with an H.264 copy of every clip unless not ``videos``);
    returns sizes on disk."""
    (root / "label").mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(exist_ok=True)
    ids = list(range(1, clips + 1))
    labels = np.random.default_rng(0).integers(1, 8, clips)
    rows = "".join(f"{v},{y}\n" for v, y in zip(ids, labels, strict=True))
    (root / "label" / "single_trainset_1.csv").write_text("video_name,label\n" + rows)
    (root / "videos.csv").write_text(
        "path,label\n"
        + "".join(f"videos/{v:05d}.mp4,{y - 1}\n" for v, y in zip(ids, labels, strict=True))
    )
    tasks = [(root, v, frames, size, videos) for v in ids]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context().Pool(workers) as pool:
            jpeg_bytes = sum(pool.map(_write_clip, tasks, chunksize=4))
    else:
        jpeg_bytes = sum(map(_write_clip, tasks))
    video_bytes = sum(p.stat().st_size for p in (root / "videos").iterdir())  # (none: 0)
    return {"jpeg_bytes": jpeg_bytes, "video_bytes": video_bytes}


def tile_cache(pool_dir: Path, out: Path, n: int) -> None:
    """A cache of ``n`` clips: the clips of the cache in ``pool_dir`` repeated (sample paths
    made distinct), written with the cache's own shard writer and index."""
    pool = load_cache(pool_dir)
    src: CacheSource = pool.source
    src._open()
    payloads = []
    for i in range(len(pool.samples)):
        start, end = int(src._clips[i]), int(src._clips[i + 1])
        if src.codec == "raw":
            payloads.append(src.read_all(pool.samples[i]))  # (N, h, w, 3) uint8
        else:
            rows = src._frames[start:end].tolist()
            payloads.append([os.pread(src._fd(int(s)), int(n_), int(o)) for s, o, n_ in rows])
    manifest = json.loads((pool_dir / "manifest.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tmp = out / f".building-{os.getpid()}"
    tmp.mkdir()
    writer = _ShardWriter(tmp, 256 * 2**20)
    samples = []
    for k in range(n):
        j = k % len(payloads)
        writer.add(payloads[j])
        s = pool.samples[j]
        samples.append(replace(s, path=f"{s.path}@{k}", source=f"tile:{k}", meta={}))
    writer.close()
    split = DatasetSplit(name=pool.name, root=pool.root, split=pool.split, fold=pool.fold,
                         samples=samples, class_names=pool.class_names, source=None)  # fmt: skip
    _install(out, tmp, split, manifest["params"], samples, [], writer.shards, writer.clip_rows,
             writer.frame_rows, writer.shapes)  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
