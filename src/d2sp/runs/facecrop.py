"""Optional face crop of raw video frames: OpenCV's bundled Haar cascade, one box per clip.

Models trained on face-cropped DFER data expect face crops. :class:`FaceCropSource` wraps a
frame source: it looks for faces on a few of a clip's sampled frames, keeps the largest one,
enlarges it a little to a square, and crops every frame of the clip to that one box. It
needs OpenCV, an optional extra: ``pip install 'd2sp[face]'`` (opencv-python-headless).
"""

from __future__ import annotations

import os

import numpy as np

from d2sp.data.frames import DataError

FACE_EXTRA = "pip install 'd2sp[face]' (opencv-python-headless<5)"
CASCADE = "haarcascade_frontalface_default.xml"


class FaceCropUnavailableError(ImportError):
    """Face cropping was asked for but OpenCV is not installed."""


def require_cv2():
    """The ``cv2`` module, or :class:`FaceCropUnavailableError` naming the extra to install."""
    try:
        import cv2
    except ImportError:
        raise FaceCropUnavailableError(
            f"--face-crop needs OpenCV, which is not installed here: {FACE_EXTRA}"
        ) from None
    if not hasattr(cv2, "CascadeClassifier"):
        raise FaceCropUnavailableError(
            f"--face-crop needs OpenCV's CascadeClassifier, which OpenCV {cv2.__version__} does "
            f"not have (OpenCV 5 moved it out): {FACE_EXTRA}"
        )
    return cv2


def haar_detector():
    """OpenCV's frontal-face Haar cascade, from the files OpenCV ships (``cv2.data``)."""
    cv2 = require_cv2()
    path = os.path.join(cv2.data.haarcascades, CASCADE)
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise RuntimeError(f"{path}: OpenCV could not load its face cascade")
    return detector


def to_gray(frame: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8 luma (ITU-R 601 weights)."""
    luma = frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def largest_face(frames: np.ndarray, detector, *, probes: int = 3):
    """The largest face box ``(x, y, w, h)`` found on ``probes`` evenly spaced frames of
    ``frames (T, H, W, 3)``, or None."""
    t, h, w = frames.shape[:3]
    picks = np.unique(np.linspace(0, t - 1, min(probes, t)).round().astype(int))
    side = max(20, min(h, w) // 8)
    best = None
    for i in picks:
        found = detector.detectMultiScale(
            to_gray(frames[i]), scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
        )
        for x, y, bw, bh in np.asarray(found, dtype=np.int64).reshape(-1, 4).tolist():
            if best is None or bw * bh > best[2] * best[3]:
                best = (x, y, bw, bh)
    return best


def enlarge_box(box, height: int, width: int, *, margin: float = 0.25) -> tuple[int, int, int, int]:
    """A square ``(top, left, side, side)`` around ``box (x, y, w, h)``, ``1 + margin``
    times its larger side, moved inside the frame (and no larger than it)."""
    x, y, w, h = box
    side = min(int(round(max(w, h) * (1 + margin))), height, width)
    cx, cy = x + w / 2, y + h / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return top, left, side, side


class FaceCropSource:
    """A frame source whose clips are cropped to the clip's largest face.

    Args:
        inner: the source that reads the frames (``read(sample, *, num_segments, train,
            rng) -> (T, H, W, 3)``).
        probes: frames of the clip the detector looks at.
        margin: the face box is enlarged by this share of its side.
        detector: anything with OpenCV's ``detectMultiScale(gray)`` (default: the Haar
            cascade, loaded once per process).
    """

    def __init__(self, inner, *, probes: int = 3, margin: float = 0.25, detector=None):
        self.inner, self.probes, self.margin = inner, probes, margin
        self._detector, self._given = detector, detector is not None

    def __getstate__(self):
        state = dict(self.__dict__)
        if not self._given:  # a cascade does not pickle: each worker loads its own
            state["_detector"] = None
        return state

    def read(self, sample, *, num_segments: int, train: bool, rng) -> np.ndarray:
        """``(T, side, side, 3)`` uint8 frames cropped to the clip's face box."""
        frames = self.inner.read(sample, num_segments=num_segments, train=train, rng=rng)
        if self._detector is None:
            self._detector = haar_detector()
        box = largest_face(frames, self._detector, probes=self.probes)
        if box is None:
            raise DataError(
                f"{sample.path}: no face found on {min(self.probes, len(frames))} of its frames "
                "(--face-crop); predict it without --face-crop, or crop it yourself"
            )
        top, left, h, w = enlarge_box(box, frames.shape[1], frames.shape[2], margin=self.margin)
        return np.ascontiguousarray(frames[:, top : top + h, left : left + w])
