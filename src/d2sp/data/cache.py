"""A packed clip cache: every clip's frames resized once, stored as JPEG bytes (or raw pixels)
in a few large shard files, read back with one or a few ``pread`` calls per clip.

Training from frame folders opens tens of small files per clip and decodes full-size
frames; from videos it decodes whole GOPs. The cache turns any :class:`DatasetSplit` into
a handful of ~256 MB files, with frames already at training size, so a DataLoader worker
reads few large files and decodes small JPEGs, or, with ``codec="raw"``, decodes nothing.

Layout of ``out_dir``::

    manifest.json     format version, parameters, source fingerprint, counts (written last)
    samples.json      the split's samples in order (path, label, num_frames, source, meta)
    clips.npy         (N + 1,) int64: clip i's frames are rows clips[i]:clips[i+1] of frames.npy
    frames.npy        (F,) records (shard uint16, offset uint64, length uint32) per stored frame
    shapes.npy        (N, 2) int32 frame height and width of each clip (``codec="raw"`` only)
    shard-00000.bin … concatenated JPEG bytes, or raw frames

Frames are resized with ``resize="short"`` (default: the short side to ``size``, aspect
kept, never upscaled; DFEW's square 224² frames become 112²) or ``resize="square"``
(exactly ``size × size``, as the test-time transform would), with antialiased bilinear
interpolation, then stored with ``codec``:

- ``"jpeg"`` (default): each frame JPEG-encoded (``quality``, 4:2:0), a few KB per 112²
  frame depending on content; reading decodes it (~0.1-0.4 ms per 112² frame).
- ``"raw"``: each clip's frames as one contiguous uint8 ``(N, h, w, 3)`` block, exactly the
  resized pixels (no JPEG loss); reading copies only the sampled frames' bytes, with no
  decode at all. It costs ``h · w · 3`` bytes per frame, i.e. ``N · h · w · 3`` per clip:
  37,632 B per 112² frame, 1.5 MB for a 40-frame clip, about 8-15× the JPEG cache
  (``max_frames`` bounds it: 32 frames at 112² are 1.2 MB a clip).

Which codec (``benchmarks/speed/loader_table.py``, ``benchmarks/results/loader_table_cpu.md``: a
20,000-clip dataset of 40-frame clips, read cold and warm by one loader worker): a worker
core delivers about 1,100 clips/s from the raw cache and 520-550 from the JPEG cache, but a
clip read cold costs 638 KiB from the disk in the raw cache against 106 KiB in the JPEG
one. A GPU training R18-LSTM at ~2,800 clips/s therefore needs ~1.9 GB/s of random reads
from a raw cache that is not in the page cache (28 GiB for those 20,000 clips; DFEW and
FERV39k are of that order), ~0.3 GB/s from a JPEG cache (2 GiB, which stays in the page
cache after its first epoch), and from the JPEG cache about 5.5 worker cores where its
cores are as fast as these (14 workers of a 16-core machine are 2.5× that). Hence the
default, ``"jpeg"``; ``"raw"`` pays where loader cores are few and the raw cache fits in
memory.

Every frame of a clip is kept (``max_frames`` keeps at most that many, evenly spaced), so
segment sampling over the cache draws the same frame positions as over the source: with the
same seed, training from the cache sees the same samples, labels, order and frame choices,
only resized (and, with JPEG, re-encoded).

The manifest's fingerprint hashes the annotation files' contents, every sample's path and
label, and the size and mtime of every frame folder or video file (one ``stat`` per clip:
adding, removing or renaming frames changes a folder's mtime; rewriting a frame in place
does not, so use ``force=True`` after such an edit). :func:`prepare_cache` rebuilds when
the fingerprint, a parameter or the format version changed, and reuses the cache otherwise.
Only ``out_dir`` is ever written, and in it only the files above.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import simplejpeg
import torch
import torch.nn.functional as F

from d2sp.data.annotations import Sample
from d2sp.data.common import DatasetSplit
from d2sp.data.dataset import FolderSource
from d2sp.data.frames import DataError
from d2sp.data.sampling import segment_indices
from d2sp.data.video import AutoSource

FORMAT = "d2sp-clip-cache"
FORMAT_VERSION = 1
SHARD_BYTES = 256 * 2**20
RESIZE_MODES = ("short", "square")
CODECS = ("jpeg", "raw")
DEFAULT_CODEC = "jpeg"  # chosen by benchmarks/speed/loader_table.py: see the module docstring
READ_GAP = 32 * 1024  # frames of a clip at most this far apart are read with one call
_MAX_RUN = 400  # frames per call (a preadv takes at most IOV_MAX = 1024 buffers)
FRAME_DTYPE = np.dtype([("shard", "<u2"), ("offset", "<u8"), ("length", "<u4")])
_OURS = re.compile(
    r"^(manifest\.json|samples\.json|clips\.npy|frames\.npy|shapes\.npy|shard-\d{5}\.bin)$"
)
_BUILDING = re.compile(r"^\.building-\d+$")


@dataclass
class CacheReport:
    """What :func:`prepare_cache` did."""

    out_dir: str
    built: bool  # False: an up-to-date cache was reused
    reason: str  # why it was (re)built, or "up to date"
    num_clips: int
    num_frames: int
    bytes: int
    shards: int
    seconds: float
    skipped: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- fingerprint


def fingerprint_split(split: DatasetSplit) -> str:
    """A cheap hash of what a cache is built from (see the module docstring)."""
    h = hashlib.sha256()
    head = {"class_names": list(split.class_names), "n": len(split.samples)}
    h.update(json.dumps(head, sort_keys=True).encode())
    for name in sorted(split.annotation_files):
        h.update(f"\0file {name}\0".encode())
        try:
            with open(name, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            h.update(b"<unreadable>")
    for s in split.samples:
        try:
            st = os.stat(s.path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{s.path}\t{s.label}\t{stamp}\n".encode())
    return h.hexdigest()


_DEFAULTS = {"size": 112, "codec": DEFAULT_CODEC, "quality": 90, "resize": "short", "max_frames": None}


def _params(
    size: int, quality: int | None, resize: str, max_frames: int | None, codec: str = "jpeg"
) -> dict:
    """The parameters a cache is built with (the JPEG quality is moot, so None, for raw)."""
    return {
        "size": size,
        "codec": codec,
        "quality": None if codec == "raw" else quality,
        "resize": resize,
        "max_frames": max_frames,
    }


def _codec(manifest: dict) -> str:
    return (manifest.get("params") or {}).get("codec", "jpeg")  # caches without it are JPEG


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        with open(out_dir / "manifest.json", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cache_status(split: DatasetSplit, out_dir: str | PathLike, **params) -> str | None:
    """Why the cache in ``out_dir`` must be (re)built for ``split``, or None if current.

    ``params`` are :func:`prepare_cache`'s ``size``, ``codec``, ``quality``, ``resize``,
    ``max_frames``.
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest is None:
        return "no cache yet"
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        return f"format version {manifest.get('version')} -> {FORMAT_VERSION}"
    wanted = _params(**{**_DEFAULTS, **params})
    have = {"codec": "jpeg", **(manifest.get("params") or {})}
    changed = [f"{k} {have.get(k)!r} -> {v!r}" for k, v in wanted.items() if have.get(k) != v]
    if changed:
        return "parameters changed: " + ", ".join(changed)
    for shard in manifest.get("shards", []):
        p = out_dir / shard["name"]
        if not p.is_file() or p.stat().st_size != shard["bytes"]:
            return f"shard {shard['name']} missing or changed"
    needed = ("samples.json", "clips.npy", "frames.npy")
    for name in needed + (("shapes.npy",) if wanted["codec"] == "raw" else ()):
        if not (out_dir / name).is_file():
            return f"{name} missing"
    if manifest.get("fingerprint") != fingerprint_split(split):
        return "source changed (annotation files, sample paths or frame folders)"
    return None


# ---------------------------------------------------------------------------- encoding


def resize_frames(frames: np.ndarray, *, size: int, mode: str) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> resized ``(N, h, w, 3)`` uint8 (see the module docstring)."""
    n, h, w, _ = frames.shape
    if mode == "square":
        th, tw = size, size
    else:
        scale = size / min(h, w)
        if scale >= 1:
            return frames
        th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    if (th, tw) == (h, w):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    y = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    return y.permute(0, 2, 3, 1).contiguous().numpy()  # (N, th, tw, 3)


def read_all_frames(source, sample: Sample) -> np.ndarray:
    """Every frame of a clip, ``(N, H, W, 3)`` uint8, from any shipped source."""
    if hasattr(source, "read_all"):
        return source.read_all(sample)
    if isinstance(source, FolderSource):
        return AutoSource().read_all(sample)
    raise TypeError(
        f"source: expected a frame source with read_all(sample) (AutoSource, VideoSource, "
        f"FolderSource, CacheSource), got {type(source).__name__}"
    )


_WORKER: dict = {}


def _init_worker(source, params: dict, single_thread: bool = True) -> None:
    if single_thread:
        torch.set_num_threads(1)  # one process per core already
    _WORKER["source"], _WORKER["params"] = source, params


def _encode_clip(task: tuple[int, Sample]):
    """``(i, payload or None, error or None)`` for clip ``i``; the payload is a list of JPEG
    bytes per frame, or (raw) the contiguous ``(N, h, w, 3)`` uint8 frames."""
    i, sample = task
    p = _WORKER["params"]
    try:
        frames = read_all_frames(_WORKER["source"], sample)  # (N, H, W, 3)
        if p["max_frames"] is not None and len(frames) > p["max_frames"]:
            keep = segment_indices(len(frames), p["max_frames"], train=False)
            frames = frames[keep]
        frames = resize_frames(frames, size=p["size"], mode=p["resize"])
        if p["codec"] == "raw":
            return i, np.ascontiguousarray(frames, dtype=np.uint8), None
        jpegs = [
            simplejpeg.encode_jpeg(
                np.ascontiguousarray(f),
                quality=p["quality"],
                colorspace="RGB",
                colorsubsampling="420",
            )
            for f in frames
        ]
        return i, jpegs, None
    except DataError as e:
        return i, None, str(e)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, *args, **kwargs) -> None:
        pass


def _progress(enabled: bool, total: int):
    if not enabled:
        return _NoProgress(), None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]caching[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} clips/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return progress, progress.add_task("caching", total=total, rate="-")


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir: expected a folder, got the file {str(out_dir)!r}")
    if not out_dir.is_dir():
        return
    foreign = [
        p.name for p in out_dir.iterdir() if not (_OURS.match(p.name) or _BUILDING.match(p.name))
    ]
    if foreign:
        raise ValueError(
            f"out_dir: expected an empty folder or a d2sp clip cache, but {str(out_dir)!r} "
            f"holds other files ({', '.join(sorted(foreign)[:5])}); choose another folder"
        )


def _check_options(split, *, size, codec, quality, resize, max_frames) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive integer, got {size!r}")
    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {', '.join(CODECS)}, got {codec!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality: expected 1..100, got {quality!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize: expected one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames: expected None or >= 1, got {max_frames!r}")
    if not split.samples:
        raise ValueError("split: expected at least one sample, got none")


def _reused(out_dir: Path, started: float) -> CacheReport:
    """The report for an up-to-date cache, from its manifest."""
    manifest = _read_manifest(out_dir)
    return CacheReport(
        out_dir=str(out_dir), built=False, reason="up to date",
        num_clips=manifest["num_clips"], num_frames=manifest["num_frames"],
        bytes=sum(s["bytes"] for s in manifest["shards"]), shards=len(manifest["shards"]),
        seconds=time.perf_counter() - started, skipped=list(manifest.get("skipped", [])),
    )  # fmt: skip


def prepare_cache(
    split: DatasetSplit,
    out_dir: str | PathLike,
    *,
    size: int = 112,
    codec: str = DEFAULT_CODEC,
    quality: int = 90,
    resize: str = "short",
    max_frames: int | None = None,
    workers: int | None = None,
    shard_bytes: int = SHARD_BYTES,
    skip_bad: bool = False,
    force: bool = False,
    progress: bool = True,
) -> CacheReport:
    """Pack ``split`` into a clip cache in ``out_dir`` (or reuse the one there if current).

    Args:
        split: any dataset split (its source must read whole clips: the shipped sources do).
        out_dir: the cache folder; created; must be empty or hold a d2sp cache.
        size: target frame size (see ``resize``).
        codec: ``"jpeg"`` (compact; decoded on read) or ``"raw"`` (the resized uint8 pixels,
            ``frames · h · w · 3`` bytes per clip, 37,632 B per 112² frame: about 8-15× the
            JPEG cache, but read with no decode and no loss). See the module docstring.
        quality: JPEG quality 1-100 (not used by ``"raw"``).
        resize: ``"short"`` (short side to ``size``, never upscaled) or ``"square"``.
        max_frames: keep at most this many evenly spaced frames per clip (None: all).
        workers: decode/encode processes (default: all CPUs; 0 or 1: in this process).
        shard_bytes: target shard size.
        skip_bad: drop clips that fail to decode (recorded in ``skipped``; the cache's
            split then lacks them) instead of raising.
        force: rebuild even if the cache is current.
        progress: show a progress bar.

    Returns:
        A :class:`CacheReport`. Open the cache with :func:`load_cache`.

    Raises:
        DataError: a clip failed to decode (naming its file and row), unless ``skip_bad``.
    """
    _check_options(
        split, size=size, codec=codec, quality=quality, resize=resize, max_frames=max_frames
    )
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    params = _params(size, quality, resize, max_frames, codec)
    started = time.perf_counter()
    reason = "forced" if force else cache_status(split, out_dir, **params)
    if reason is None:
        return _reused(out_dir, started)
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in out_dir.iterdir():
        if _BUILDING.match(p.name):
            shutil.rmtree(p)  # left by an interrupted build
    tmp = out_dir / f".building-{os.getpid()}"
    tmp.mkdir()
    try:
        kept, skipped, shards, clip_rows, frame_rows, shapes = _build(
            split, tmp, params, workers=workers, shard_bytes=shard_bytes,
            skip_bad=skip_bad, progress=progress,
        )  # fmt: skip
        _install(out_dir, tmp, split, params, kept, skipped, shards, clip_rows, frame_rows, shapes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CacheReport(
        out_dir=str(out_dir), built=True, reason=reason, num_clips=len(kept),
        num_frames=len(frame_rows), bytes=sum(b for _, b in shards), shards=len(shards),
        seconds=time.perf_counter() - started, skipped=split.skipped + skipped,
    )  # fmt: skip


class _ShardWriter:
    """Appends clips to shard files of about ``shard_bytes`` in ``folder``; keeps the index."""

    def __init__(self, folder: Path, shard_bytes: int):
        self.folder, self.shard_bytes = folder, shard_bytes
        self.shards: list[tuple[str, int]] = []  # (name, bytes)
        self.clip_rows = [0]
        self.frame_rows: list[tuple[int, int, int]] = []  # (shard, offset, length)
        self.shapes: list[tuple[int, int]] = []  # (h, w) per raw clip
        self._file, self._size = None, 0

    def add(self, payload) -> None:
        """Append one clip: JPEG bytes per frame, or (raw) its ``(N, h, w, 3)`` uint8 frames."""
        if isinstance(payload, np.ndarray):  # raw: (N, h, w, 3) uint8, contiguous
            n, h, w, _ = payload.shape
            frame_bytes = h * w * 3
            chunks = [memoryview(payload).cast("B")]
            lengths = [frame_bytes] * n
            self.shapes.append((h, w))
        else:
            chunks, lengths = payload, [len(j) for j in payload]
        clip_bytes = sum(lengths)
        if self._file is None or (self._size and self._size + clip_bytes > self.shard_bytes):
            self.close()
            name = f"shard-{len(self.shards):05d}.bin"
            self._file, self._size = open(self.folder / name, "wb"), 0
            self.shards.append((name, 0))
        for length in lengths:
            self.frame_rows.append((len(self.shards) - 1, self._size, length))
            self._size += length
        for chunk in chunks:
            self._file.write(chunk)
        self.clip_rows.append(len(self.frame_rows))

    def close(self) -> None:
        """Close the current shard, recording its size."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self.shards[-1] = (self.shards[-1][0], self._size)


def _build(split, tmp: Path, params, *, workers, shard_bytes, skip_bad, progress):
    """Encode every clip into shards in ``tmp``; returns what the index needs."""
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    tasks = list(enumerate(split.samples))
    kept: list[Sample] = []
    skipped: list[str] = []
    writer = _ShardWriter(tmp, shard_bytes)

    def consume(results, bar, task):
        t0, done = time.perf_counter(), 0
        for i, payload, error in results:
            sample = split.samples[i]
            done += 1
            bar.update(task, advance=1, rate=f"{done / max(time.perf_counter() - t0, 1e-9):.0f}")
            if error is not None:
                where = sample.source or sample.path
                if not skip_bad:
                    raise DataError(f"{where}: {error}")
                skipped.append(f"{where}: {error}")
                continue
            writer.add(payload)
            kept.append(sample)

    pool = None
    if workers > 1 and len(tasks) > 1:
        # the pool forks before the progress bar starts its refresh thread
        pool = mp.get_context().Pool(
            min(workers, len(tasks)), initializer=_init_worker, initargs=(split.source, params)
        )
    bar, task = _progress(progress, len(tasks))
    try:
        with bar:
            if pool is None:
                _init_worker(split.source, params, single_thread=False)
                consume(map(_encode_clip, tasks), bar, task)
            else:
                consume(pool.imap(_encode_clip, tasks, chunksize=2), bar, task)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _WORKER.clear()
        writer.close()
    if not kept:
        raise DataError(f"no clip of the split could be cached ({len(skipped)} failed)")
    return kept, skipped, writer.shards, writer.clip_rows, writer.frame_rows, writer.shapes


def _install(out_dir, tmp, split, params, kept, skipped, shards, clip_rows, frame_rows, shapes):
    """Write the index into ``tmp``, swap it into ``out_dir``, write the manifest last."""
    np.save(tmp / "clips.npy", np.asarray(clip_rows, dtype=np.int64))
    np.save(tmp / "frames.npy", np.array(frame_rows, dtype=FRAME_DTYPE))
    if params["codec"] == "raw":
        np.save(tmp / "shapes.npy", np.asarray(shapes, dtype=np.int32).reshape(-1, 2))
    with open(tmp / "samples.json", "w", encoding="utf-8") as f:
        json.dump([asdict(s) for s in kept], f)
    (out_dir / "manifest.json").unlink(missing_ok=True)  # the cache is invalid from here
    for p in out_dir.iterdir():
        if _OURS.match(p.name):
            p.unlink()
    for p in tmp.iterdir():
        os.replace(p, out_dir / p.name)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "params": params,
        "fingerprint": fingerprint_split(split),
        "dataset": {
            "name": split.name,
            "root": split.root,
            "split": split.split,
            "fold": split.fold,
            "class_names": list(split.class_names),
            "annotation_files": list(split.annotation_files),
        },
        "num_clips": len(kept),
        "num_frames": len(frame_rows),
        "shards": [{"name": n, "bytes": b} for n, b in shards],
        "skipped": list(split.skipped) + skipped,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with open(out_dir / "manifest.json.tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.replace(out_dir / "manifest.json.tmp", out_dir / "manifest.json")


# ----------------------------------------------------------------------------- reading


class CacheSource:
    """Frame source over a clip cache: ``read(sample, …) -> (T, h, w, 3)`` uint8.

    A sample is found by its path. Shard files are opened lazily, once per process (so a
    source created before DataLoader workers fork works in each of them); the index is
    memory-mapped. The frames a read needs are fetched with few calls: frames of a clip that
    lie at most ``max_gap`` bytes apart are read with one ``pread``/``preadv`` (the bytes in
    between land in a scratch buffer), so a JPEG clip's sampled frames usually come in one
    call, and raw frames (37,632 B each at 112²) each in their own, straight into the output
    array. ``max_gap=-1`` reads every frame on its own. With ``advise_random`` (default) the
    shard files are opened with ``POSIX_FADV_RANDOM``: the kernel reads what is asked and no
    read-ahead around it, which a cache read in random clip order would throw away. JPEG
    frames are decoded after the read; raw frames need no decode.
    """

    def __init__(
        self, out_dir: str | PathLike, *, max_gap: int = READ_GAP, advise_random: bool = True
    ):
        self.out_dir = Path(out_dir)
        manifest = _read_manifest(self.out_dir)
        self.codec = _codec(manifest) if manifest is not None else "jpeg"
        self.max_gap, self.advise_random = int(max_gap), bool(advise_random)
        with open(self.out_dir / "samples.json", encoding="utf-8") as f:
            paths = [s["path"] for s in json.load(f)]
        self._index = {p: i for i, p in enumerate(paths)}
        self._pid: int | None = None
        self._fds: dict[int, int] = {}
        self._clips = self._frames = self._shapes = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_pid=None, _fds={}, _clips=None, _frames=None, _shapes=None)
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def close(self) -> None:
        """Close this process's shard files."""
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fds = {}

    def _open(self) -> None:
        if self._pid != os.getpid():
            self._pid, self._fds = os.getpid(), {}
            self._clips = np.load(self.out_dir / "clips.npy", mmap_mode="r")
            self._frames = np.load(self.out_dir / "frames.npy", mmap_mode="r")
            if self.codec == "raw":
                self._shapes = np.load(self.out_dir / "shapes.npy", mmap_mode="r")

    def _fd(self, shard: int) -> int:
        fd = self._fds.get(shard)
        if fd is None:
            fd = os.open(self.out_dir / f"shard-{shard:05d}.bin", os.O_RDONLY)
            if self.advise_random and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            self._fds[shard] = fd
        return fd

    def _clip(self, sample: Sample) -> int:
        self._open()
        try:
            return self._index[sample.path]
        except KeyError:
            raise DataError(f"{sample.path}: clip not in the cache {self.out_dir}") from None

    def _rows(self, sample: Sample) -> tuple[int, int]:
        i = self._clip(sample)
        return int(self._clips[i]), int(self._clips[i + 1])

    def num_frames(self, sample: Sample) -> int:
        """Frames stored for ``sample``."""
        start, end = self._rows(sample)
        return end - start

    def _runs(self, rows: np.ndarray) -> list[tuple[int, list[tuple[int, int, int]]]]:
        """Sorted unique frame ``rows`` -> ``[(shard, [(k, offset, length), ...])]``: groups
        of frames read with one call (same shard, at most ``max_gap`` bytes apart)."""
        records = self._frames[rows].tolist()  # [(shard, offset, length)]
        runs: list[tuple[int, list[tuple[int, int, int]]]] = []
        end = None
        for k, (shard, offset, length) in enumerate(records):
            if (
                not runs
                or shard != runs[-1][0]
                or self.max_gap < 0
                or offset - end > self.max_gap
                or offset < end
                or len(runs[-1][1]) >= _MAX_RUN
            ):
                runs.append((shard, []))
            runs[-1][1].append((k, offset, length))
            end = offset + length
        return runs

    def _truncated(self, shard: int) -> DataError:
        return DataError(f"{self.out_dir}: shard {shard} is truncated; prepare again")

    def _read_jpeg(self, rows: np.ndarray) -> list[np.ndarray]:
        """Decoded frames ``(h, w, 3)`` at the sorted unique ``rows`` of ``frames.npy``."""
        out: list[np.ndarray] = [None] * len(rows)  # type: ignore[list-item]
        for shard, run in self._runs(rows):
            start = run[0][1]
            size = run[-1][1] + run[-1][2] - start
            data = os.pread(self._fd(int(shard)), size, start)
            if len(data) != size:
                raise self._truncated(int(shard))
            view = memoryview(data)
            for k, offset, length in run:
                try:
                    out[k] = simplejpeg.decode_jpeg(
                        view[offset - start : offset - start + length], colorspace="RGB"
                    )  # (h, w, 3)
                except ValueError as e:
                    raise DataError(
                        f"{self.out_dir}: corrupt cached frame {int(rows[k])} ({e})"
                    ) from None
        return out

    def _read_raw(self, clip: int, rows: np.ndarray) -> np.ndarray:
        """Raw frames at the sorted unique ``rows`` of ``frames.npy`` (all of clip ``clip``)
        -> ``(len(rows), h, w, 3)`` uint8, read straight into the output."""
        h, w = (int(v) for v in self._shapes[clip])
        out = np.empty((len(rows), h, w, 3), dtype=np.uint8)
        want = h * w * 3
        flat = out.reshape(len(rows), want)
        for shard, run in self._runs(rows):
            gaps = [n[1] - (p[1] + p[2]) for p, n in zip(run, run[1:], strict=False)]
            scratch = memoryview(bytearray(max(gaps, default=0)))  # bytes read, then dropped
            views = []
            end = run[0][1]
            for k, offset, length in run:
                if length != want:
                    raise DataError(
                        f"{self.out_dir}: cached frame {int(rows[k])} holds {length} bytes, "
                        f"expected {want} ({h}x{w}x3)"
                    )
                if offset > end:  # the bytes between two wanted frames
                    views.append(scratch[: offset - end])
                views.append(memoryview(flat[k]))
                end = offset + length
            if _preadv_full(self._fd(int(shard)), views, run[0][1]) != end - run[0][1]:
                raise self._truncated(int(shard))
        return out

    def _read_rows(self, clip: int, rows: np.ndarray) -> np.ndarray:
        """Frames at ``rows`` of ``frames.npy`` (any order, repeats allowed) -> ``(len(rows),
        h, w, 3)`` uint8; each distinct frame is read once."""
        unique, inverse = np.unique(rows, return_inverse=True)
        if self.codec == "raw":
            frames = self._read_raw(clip, unique)
            return frames if len(unique) == len(rows) else frames[inverse]
        decoded = self._read_jpeg(unique)
        if not decoded:
            raise DataError(f"{self.out_dir}: clip {clip} has no frames")
        return np.stack([decoded[i] for i in inverse.tolist()])

    def read(self, sample: Sample, *, num_segments: int, train: bool, rng) -> np.ndarray:
        """``(num_segments, h, w, 3)`` uint8 frames sampled by segments."""
        c = self._clip(sample)
        start, end = int(self._clips[c]), int(self._clips[c + 1])
        idx = segment_indices(end - start, num_segments, train=train, rng=rng)
        return self._read_rows(c, start + np.asarray(idx, dtype=np.int64))

    def read_all(self, sample: Sample) -> np.ndarray:
        """Every stored frame ``(N, h, w, 3)`` uint8."""
        c = self._clip(sample)
        start, end = int(self._clips[c]), int(self._clips[c + 1])
        return self._read_rows(c, np.arange(start, end, dtype=np.int64))


def _preadv_full(fd: int, views: list[memoryview], offset: int) -> int:
    """Read into the buffers ``views`` in order, from ``offset`` on (one ``preadv`` call
    unless the kernel returns less); bytes read, short only at the end of the file."""
    views = [v.cast("B") for v in views]
    total = sum(len(v) for v in views)
    got = 0
    while views:
        if hasattr(os, "preadv"):
            n = os.preadv(fd, views, offset + got)
        else:  # no preadv: one buffer at a time
            data = os.pread(fd, len(views[0]), offset + got)
            views[0][: len(data)] = data
            n = len(data)
        if n == 0:
            break
        got += n
        while views and n >= len(views[0]):  # drop the buffers filled
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
    return min(got, total)


def load_cache(out_dir: str | PathLike) -> DatasetSplit:
    """Open the cache in ``out_dir`` as a :class:`DatasetSplit` reading from it.

    The samples (paths, labels, order, sources, meta) are those the cache was built from,
    so indices match the source split; the source tree need not be present.

    Raises:
        DataError: no complete cache there, or one of another format version.
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest is None:
        raise DataError(f"{out_dir}: no clip cache here (manifest.json missing or unreadable)")
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise DataError(
            f"{out_dir}: cache format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r}, expected {FORMAT!r} version {FORMAT_VERSION}; "
            "prepare it again"
        )
    with open(out_dir / "samples.json", encoding="utf-8") as f:
        samples = [Sample(**s) for s in json.load(f)]
    info = manifest["dataset"]
    return DatasetSplit(
        name=info["name"],
        root=info["root"],
        split=info["split"],
        fold=info["fold"],
        samples=samples,
        class_names=tuple(info["class_names"]),
        source=CacheSource(out_dir),
        skipped=list(manifest.get("skipped", [])),
        annotation_files=list(info["annotation_files"]),
    )
