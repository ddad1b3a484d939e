#!/usr/bin/env python
"""Does the data pipeline keep the GPU fed? Clips/s delivered to the training loop from frame
folders, the packed clip cache and video files, against the R18-LSTM train step fed from
memory, in one run.

A synthetic DFEW-like tree is generated in a temporary folder (or ``--data``): ``--clips``
clips of ``--src-frames`` random-ish 224² JPEG frames (smooth texture, a moving blob and
noise, ~DFEW's ``clip_224x224`` file sizes), the official DFEW split csv, and an H.264
``.mp4`` copy of every clip. Then:

- loader rate: ``ClipDataset(train=True)`` (16 segment-sampled frames, random resized crop,
  flip, 112², normalised float32) in a ``DataLoader`` (batch 32, ``--workers`` processes,
  default all CPUs but two, which are left to the main process driving the GPU; persistent
  workers, ``--prefetch`` batches each, pinned memory on CUDA), timed over ``--batches``
  batches after a warm-up, per source: ``folder`` (the JPEG folders), ``cache``
  (``prepare_cache`` at 112 with JPEG frames, timed separately), ``cache-raw`` (the same with
  ``codec="raw"``: uint8 pixels, no decode) and ``video`` (PyAV decoding of the mp4s); each
  also as ``…-u8``: ``ClipDataset(output="uint8")``, the clip kept uint8 through crop and
  resize and normalised on the device;
- memory rate: the same model's train step (SGD momentum 0.9, weighted CE, bf16 autocast
  and channels_last on CUDA) on a fixed batch already on the device (the compute ceiling);
- fed rate: loader, non-blocking transfer and train step together (``--fed`` sources), as a
  % of the memory rate.

Each measurement draws all its batches from one loader iterator (a sampler running over the
synthetic clips as many times as needed), so no epoch boundary drains the prefetch queue
while timing, and starts timing only after a warm-up of one full prefetch queue
(``workers × prefetch`` batches) plus ``--warmup``, so batches prefetched before the clock
started do not inflate the rate. Reads are from a warm page cache (the tree was just
written). Examples::

    python benchmarks/dataloading.py --clips 512                                    # GPU
    python benchmarks/dataloading.py --device cpu --tiny --clips 64 --batch 8 \\
        --batches 8 --workers 1 --prefetch 2                                        # smoke

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

try:
    import d2sp  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import av  # noqa: E402
import simplejpeg  # noqa: E402
from torch.utils.data import DataLoader, RandomSampler  # noqa: E402

from d2sp.data.cache import load_cache, prepare_cache  # noqa: E402
from d2sp.data.dataset import ClipDataset, normalize_clips  # noqa: E402
from d2sp.data.registry import create_dataset  # noqa: E402

SOURCES = (
    "folder", "cache", "cache-raw", "video", "folder-u8", "cache-u8", "cache-raw-u8", "video-u8",
)  # fmt: skip


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------ synthetic tree


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


# ------------------------------------------------------------------------------ loading


def make_loader(dataset, args, device, num_batches: int) -> DataLoader:
    """A loader of ``num_batches`` shuffled batches in one pass (reshuffled each time the
    clips run out), so one iterator serves the whole measurement."""
    sampler = RandomSampler(
        dataset, num_samples=num_batches * args.batch, generator=torch.Generator().manual_seed(0)
    )
    kw = {}
    if args.workers > 0:
        kw = {"persistent_workers": True, "prefetch_factor": args.prefetch}
    return DataLoader(
        dataset, batch_size=args.batch, sampler=sampler, drop_last=True,
        num_workers=args.workers, pin_memory=device.type == "cuda", **kw,
    )  # fmt: skip


def to_device(clips: torch.Tensor, device, channels_last: bool) -> torch.Tensor:
    """Loader clips ``(B, T, 3, S, S)`` -> normalised float on the device (frame views NHWC
    when ``channels_last``); uint8 clips are normalised here."""
    x = clips.to(device, non_blocking=True)
    if x.dtype == torch.uint8:
        x = normalize_clips(x)
    if channels_last:
        x = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return x


def time_loader(loader, args) -> float:
    """Clips/s the loader delivers (batches consumed on the host)."""
    it = iter(loader)
    for _ in range(args.warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    return args.batches * args.batch / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------ training


def make_trainer(args, device):
    from d2sp.models import create_model
    from d2sp.purify.losses import weighted_cross_entropy

    kwargs = {"width": 8, "lstm_hidden": 64} if args.tiny else {}
    model = create_model("r18_lstm", num_classes=7, **kwargs).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext

    def step(clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with autocast():
            logits, weights = model(clips)
            loss = weighted_cross_entropy(logits.float(), weights.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_memory(step, args, device) -> float:
    """Train-step clips/s on a fixed batch already on the device."""
    g = torch.Generator().manual_seed(0)
    clips = torch.randn(args.batch, args.frames, 3, args.size, args.size, generator=g)
    clips = to_device(clips, device, device.type == "cuda")
    labels = torch.randint(7, (args.batch,), generator=g).to(device)
    for _ in range(args.warmup):
        step(clips, labels)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(clips, labels)
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - t0)


def time_fed(step, loader, args, device) -> float:
    """Clips/s of loader + transfer + train step together."""
    it = iter(loader)
    cl = device.type == "cuda"
    for _ in range(args.warmup):
        clips, labels, _ = next(it)
        step(to_device(clips, device, cl), labels.to(device, non_blocking=True))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        clips, labels, _ = next(it)
        step(to_device(clips, device, cl), labels.to(device, non_blocking=True))
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=256, help="synthetic clips")
    ap.add_argument("--src-frames", type=int, default=40, help="frames per synthetic clip")
    ap.add_argument("--src-size", type=int, default=224, help="synthetic frame size")
    ap.add_argument("--frames", type=int, default=16, help="frames per training clip")
    ap.add_argument("--size", type=int, default=112, help="training frame size (and cache size)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--workers", type=int, default=max(1, available_cpus() - 2),
        help="DataLoader processes (default: all CPUs but two, left to the main process)",
    )  # fmt: skip
    ap.add_argument("--prefetch", type=int, default=4, help="batches prefetched per worker")
    ap.add_argument(
        "--batches", type=int, default=None,
        help="timed loader batches (default: max(60, 2 × workers × prefetch))",
    )  # fmt: skip
    ap.add_argument("--steps", type=int, default=None, help="timed train steps (default: batches)")
    ap.add_argument(
        "--warmup", type=int, default=3,
        help="untimed batches/steps, after one full prefetch queue (workers × prefetch)",
    )  # fmt: skip
    ap.add_argument("--sources", default=",".join(SOURCES), help="loader sources to time")
    ap.add_argument("--fed", default=",".join(SOURCES), help="sources timed with the train step")
    ap.add_argument("--device", default="auto", help="auto, cuda or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny R18 widths (CPU smoke run)")
    ap.add_argument("--data", default=None, help="keep/reuse the synthetic tree here")
    args = ap.parse_args(argv)
    if args.workers < 0 or args.prefetch < 1:
        ap.error("--workers: expected >= 0; --prefetch: expected >= 1")
    queue = args.workers * args.prefetch  # batches the loader holds ahead of the consumer
    args.warmup += queue
    args.batches = args.batches or max(60, 2 * queue)
    args.steps = args.steps or args.batches
    sources = [s for s in args.sources.split(",") if s]
    fed = [s for s in args.fed.split(",") if s]
    for s in sources + fed:
        if s not in SOURCES:
            ap.error(f"unknown source {s!r}; known: {', '.join(SOURCES)}")
    if args.clips < args.batch * 2:
        ap.error(f"--clips: expected at least 2 batches ({2 * args.batch}), got {args.clips}")
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    torch.backends.cudnn.benchmark = True

    tmp = None
    if args.data:
        root = Path(args.data)
    else:
        tmp = tempfile.mkdtemp(prefix="d2sp-bench-")
        root = Path(tmp)
    try:
        return run(args, root, sources, fed, device)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, root: Path, sources, fed, device) -> int:
    gen_workers = available_cpus()  # generation and cache builds are not what is measured
    t0 = time.perf_counter()
    marker = root / "label" / "single_trainset_1.csv"
    if marker.is_file():
        sizes = {
            "jpeg_bytes": sum(f.stat().st_size for f in (root / "clip_224x224").rglob("*.jpg")),
            "video_bytes": sum(f.stat().st_size for f in (root / "videos").iterdir()),
        }
    else:
        sizes = make_tree(root, args.clips, args.src_frames, args.src_size, gen_workers)
    gen_s = time.perf_counter() - t0
    folder_split = create_dataset("dfew", root=root, split="train", fold=1, workers=gen_workers)
    video_split = create_dataset("csv", root=root, csv_file="videos.csv")
    splits = {"folder": folder_split, "video": video_split}
    builds = []
    rows = sources + fed
    for codec, name in (("jpeg", "cache"), ("raw", "cache-raw")):
        if not any(r.removesuffix("-u8") == name for r in rows):
            continue
        t0 = time.perf_counter()
        report = prepare_cache(
            folder_split, root / name, size=args.size, codec=codec, workers=gen_workers,
            progress=False, force=True,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        splits[name] = load_cache(root / name)
        builds.append(
            f"{codec} {report.bytes / 2**20:.1f} MiB ({report.bytes / report.num_clips / 2**10:.0f}"
            f" KiB/clip) in {report.shards} shard(s), built in {seconds:.1f} s "
            f"({report.num_clips / seconds:.0f} clips/s)"
        )

    def dataset(name: str):
        split = splits[name.removesuffix("-u8")]
        output = "uint8" if name.endswith("-u8") else "float"
        return ClipDataset(split.samples, num_frames=args.frames, size=args.size, train=True,
                           source=split.source, output=output)  # fmt: skip

    loader_rate = {}
    for name in sources:
        loader = make_loader(dataset(name), args, device, args.warmup + args.batches)
        loader_rate[name] = time_loader(loader, args)
        del loader
        print(f"loader {name}: {loader_rate[name]:.0f} clips/s", file=sys.stderr)

    step = make_trainer(args, device)
    memory_rate = time_memory(step, args, device)
    print(f"train step from memory: {memory_rate:.0f} clips/s", file=sys.stderr)
    fed_rate = {}
    for name in fed:
        loader = make_loader(dataset(name), args, device, args.warmup + args.steps)
        fed_rate[name] = time_fed(step, loader, args, device)
        del loader
        print(f"fed from {name}: {fed_rate[name]:.0f} clips/s", file=sys.stderr)

    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n**Data loading vs R18-LSTM{' (tiny)' if args.tiny else ''} training** — {dev}, "
        f"{os.cpu_count()} CPUs, {args.workers} DataLoader workers (prefetch {args.prefetch}), "
        f"batch {args.batch}, {args.frames} frames at {args.size}², augmentation on, "
        f"torch {torch.__version__}; {args.batches} timed loader batches, {args.steps} timed "
        f"train steps, each after {args.warmup} warm-up; {args.clips} synthetic clips of "
        f"{args.src_frames} frames at {args.src_size}² (JPEG {sizes['jpeg_bytes'] / 2**20:.1f} "
        f"MiB, H.264 {sizes['video_bytes'] / 2**20:.1f} MiB; generated in {gen_s:.0f} s). "
        f"Cache at {args.size}: {'; '.join(builds) or 'not built'} ({gen_workers} processes).\n"
    )
    print("| source | loader clips/s | train-fed clips/s | % of from-memory |")
    print("|---|---:|---:|---:|")
    print(f"| memory (fixed batch on device) | – | {memory_rate:.0f} | 100% |")
    for name in dict.fromkeys(sources + fed):
        lr = f"{loader_rate[name]:.0f}" if name in loader_rate else "–"
        fr = f"{fed_rate[name]:.0f}" if name in fed_rate else "–"
        pct = f"{100 * fed_rate[name] / memory_rate:.0f}%" if name in fed_rate else "–"
        print(f"| {name} | {lr} | {fr} | {pct} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
