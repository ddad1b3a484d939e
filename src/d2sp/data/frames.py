"""Frame folders: listing and fast decoding of the images of one clip."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DataError(ValueError):
    """Bad input data; the message names the file (and row where there is one)."""


def _natural_key(name: str) -> list:
    """Sort key ordering ``2.jpg`` before ``10.jpg``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_frames(folder: str | Path) -> list[str]:
    """Image file names inside a clip's frame folder, in natural order (``2`` before ``10``)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise DataError(f"{folder}: frame folder not found") from None
    except NotADirectoryError:
        raise DataError(f"{folder}: expected a folder of frame images, found a file") from None
    frames = sorted((n for n in names if n.lower().endswith(IMAGE_SUFFIXES)), key=_natural_key)
    if not frames:
        raise DataError(f"{folder}: frame folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    return frames


def decode_image(path: str | Path) -> np.ndarray:
    """Decode one frame to an ``(H, W, 3)`` uint8 RGB array (simplejpeg for JPEG)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read frame ({e.strerror or e})") from None
    if path.lower().endswith((".jpg", ".jpeg")):
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB")
        except (ValueError, RuntimeError, OSError):
            pass  # fall back to Pillow, which tolerates more variants
    try:
        from io import BytesIO

        with Image.open(BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad frame
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def read_frames(folder: str | Path, names: list[str], indices: np.ndarray) -> np.ndarray:
    """Decode frames ``names[indices]`` of a folder into ``(T, H, W, 3)`` uint8.

    A frame used twice (padding) is decoded once.
    """
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in indices.tolist():
        if i not in cache:
            cache[i] = decode_image(os.path.join(folder, names[i]))
        out.append(cache[i])
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise DataError(f"{folder}: frames have different sizes {sorted(shapes)}")
    return np.stack(out)  # (T, H, W, 3)
