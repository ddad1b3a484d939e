"""SynthDFER: the embedded default dataset, procedural face-like expression clips with known noise.

Each clip is a short video of a cartoon face: identity (face shape, skin tone, hair, feature
spacing), pose (rotation, translation, scale, head jitter), lighting (gain and a linear
gradient) and background (colour and texture) vary per clip; the expression evolves from
neutral through an onset to an apex that is held (sometimes with a slight offset). The seven
classes are displacements of ten facial action parameters (brow raise and tilt, eye
openness, mouth curvature, opening and width, lip press, upper-lip raise, nose wrinkle,
cheek raise) from a neutral face, scaled by a per-clip intensity.

The train split carries injected noise with ground truth: low-quality clips (heavy blur,
darkness, occlusion, no face) whose annotation is right but whose frames carry no usable
signal, and annotation errors on good clips (confirmation-bias runs inside annotation
batches; low-intensity expressions annotated as neutral). The two sets are disjoint. The
test split is clean and good quality. Everything is deterministic from the seed.

On disk (paths relative to the root)::

    frames/{train,test}/<clip_id>/00001.jpg ...   one RGB JPEG per frame, size x size
    train_list.txt     "frames/train/<clip_id> <num_frames> <label>", given (noisy) labels
    test_list.txt      same format, clean labels
    ground_truth.csv   split,index,path,given_label,true_label,quality,noise,intensity
    meta.json          version, parameters, class names, counts (written last)
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, replace
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import simplejpeg

from d2sp.data.labels import DFER_CLASSES
from d2sp.data.noise import confirmation_runs

CLASS_NAMES = DFER_CLASSES
NEUTRAL = 2
SYNTH_VERSION = 3  # bump whenever the bytes written for given parameters change
LOW_QUALITY_KINDS = ("blur", "dark", "occlusion", "no_face")
LABEL_NOISE_KINDS = ("confirmation_bias", "neutral_sink")
NOISE_KINDS = ("none", *LOW_QUALITY_KINDS, *LABEL_NOISE_KINDS)
GROUND_TRUTH_COLUMNS = (
    "split",
    "index",
    "path",
    "given_label",
    "true_label",
    "quality",
    "noise",
    "intensity",
)
JPEG_QUALITY = 92

# Mild class imbalance (happiness and neutral a little more common, disgust a little rarer).
_CLASS_WEIGHTS = np.array([1.15, 1.0, 1.15, 1.0, 0.95, 0.8, 0.95])
_CLEAN_LOW_INTENSITY_SHARE = 0.2
_EXPRESSIVENESS = 1.5  # scales every action displacement: higher = easier to tell apart

# Facial action parameters; each class is a displacement of them from a neutral face.
(
    _BROW_RAISE,
    _BROW_TILT,
    _EYE_OPEN,
    _MOUTH_CURVE,
    _MOUTH_OPEN,
    _MOUTH_WIDTH,
    _LIP_PRESS,
    _UPPER_LIP,
    _NOSE_WRINKLE,
    _CHEEK,
) = range(10)
_NUM_ACTIONS = 10
_TARGETS = np.zeros((len(CLASS_NAMES), _NUM_ACTIONS))
_TARGETS[0, [_MOUTH_CURVE, _CHEEK, _MOUTH_WIDTH, _EYE_OPEN, _MOUTH_OPEN]] = [
    1.0,
    1.0,
    0.35,
    -0.35,
    0.25,
]
_TARGETS[1, [_MOUTH_CURVE, _BROW_TILT, _BROW_RAISE, _EYE_OPEN, _MOUTH_WIDTH, _LIP_PRESS]] = [
    -0.85,
    1.0,
    0.15,
    -0.3,
    -0.15,
    0.3,
]
_TARGETS[3, [_BROW_RAISE, _BROW_TILT, _LIP_PRESS, _MOUTH_WIDTH, _MOUTH_CURVE, _EYE_OPEN]] = [
    -0.9,
    -0.9,
    1.0,
    -0.25,
    -0.25,
    0.15,
]
_TARGETS[4, [_BROW_RAISE, _EYE_OPEN, _MOUTH_OPEN, _MOUTH_WIDTH]] = [1.0, 0.9, 1.0, -0.35]
_TARGETS[
    5, [_NOSE_WRINKLE, _UPPER_LIP, _BROW_RAISE, _BROW_TILT, _MOUTH_CURVE, _EYE_OPEN, _CHEEK]
] = [1.0, 1.0, -0.45, -0.3, -0.35, -0.35, 0.35]
_TARGETS[6, [_BROW_RAISE, _BROW_TILT, _EYE_OPEN, _MOUTH_OPEN, _MOUTH_WIDTH, _MOUTH_CURVE]] = [
    0.65,
    0.6,
    0.9,
    0.45,
    0.45,
    -0.2,
]


@dataclass(frozen=True)
class ClipParams:
    """What defines one clip: the rest (identity, pose, lighting, motion) follows from `seed`.

    `degradation` is "none" or one of LOW_QUALITY_KINDS; `intensity` is 0 for neutral clips.
    """

    label: int
    intensity: float
    num_frames: int
    degradation: str
    seed: int


# ----------------------------------------------------------------------------- rendering


def _alpha(d, px):
    return np.clip(np.float32(0.5) - d * np.float32(1.0 / px), 0.0, 1.0, dtype=np.float32)


def _ellipse(x, y, cx, cy, a, b):
    return (np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2) - 1.0) * np.minimum(a, b)


def _segment(x, y, x0, y0, x1, y1, r):
    dx, dy = x1 - x0, y1 - y0
    h = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
    return np.hypot(x - x0 - h * dx, y - y0 - h * dy) - r


def _paint(img, alpha, colour):
    idx = np.nonzero(alpha)
    colour = np.asarray(colour, dtype=np.float32)
    colour = colour[idx] if colour.ndim > 1 else colour
    img[idx] += alpha[idx][:, None] * (colour - img[idx])


def _smoothstep(z):
    z = np.clip(z, 0.0, 1.0)
    return z * z * (3.0 - 2.0 * z)


def _smooth_walk(rng, steps, dims, scale):
    walk = np.cumsum(rng.normal(size=(steps, dims)), axis=0)
    return (walk - walk.mean(axis=0)) * (scale / np.sqrt(steps))


def _bilinear_matrix(size, knots):
    pos = (np.arange(size) + 0.5) / size * (knots - 1)
    lo = np.minimum(pos.astype(int), knots - 2)
    frac = pos - lo
    m = np.zeros((size, knots))
    m[np.arange(size), lo] = 1.0 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def _gaussian_matrix(size, sigma):
    idx = np.arange(size)
    k = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2)
    return k / k.sum(axis=1, keepdims=True)


def _blur_axis(img, k):
    t, h, w, c = img.shape
    return np.matmul(k, img.reshape(t, h, w * c)).reshape(t, h, w, c)


def _action_track(params, rng):
    """Per-frame facial actions, shape (T, 10): rest pose + drift + intensity * envelope."""
    t_count = params.num_frames
    t = np.arange(t_count, dtype=float)
    span = max(t_count - 1, 1)
    rest = rng.normal(0.0, 0.08, _NUM_ACTIONS)
    drift = _smooth_walk(rng, t_count, _NUM_ACTIONS, 0.05)
    target = _TARGETS[params.label] * (1.0 + rng.normal(0.0, 0.2, _NUM_ACTIONS))
    target = target + rng.normal(0.0, 0.05, _NUM_ACTIONS)
    onset = rng.uniform(0.0, 0.35) * span
    duration = max(rng.uniform(0.15, 0.4) * span, 1.0)
    if onset + duration > 0.75 * span:
        onset = max(0.75 * span - duration, 0.0)
    envelope = _smoothstep((t - onset) / duration)
    offset_on, decay = rng.random() < 0.3, rng.uniform(0.1, 0.35)
    if offset_on and onset + duration + 2 < span:
        start = rng.uniform(onset + duration + 1, span - 1)
        envelope = envelope * (1.0 - decay * _smoothstep((t - start) / max(span - start, 1.0)))
    neutral_strength = rng.uniform(0.3, 1.0)  # drawn for every label: same seed, same scene
    strength = params.intensity if params.label != NEUTRAL else neutral_strength
    return rest + drift + _EXPRESSIVENESS * strength * envelope[:, None] * target[None, :]


def _look(rng):
    """Identity, pose, lighting and background draws for one clip (fixed order)."""
    lk = {}
    tone = rng.uniform(0.0, 1.0)
    light, dark = np.array([0.96, 0.8, 0.68]), np.array([0.42, 0.28, 0.2])
    lk["skin"] = (light + tone * (dark - light)) * rng.uniform(0.93, 1.07, 3)
    lk["fa"], lk["fb"] = rng.uniform(0.58, 0.72), rng.uniform(0.8, 0.95)
    lk["ex"], lk["ey"] = rng.uniform(0.25, 0.31), rng.uniform(-0.2, -0.1)
    lk["ew"], lk["eh"] = rng.uniform(0.115, 0.14), rng.uniform(0.05, 0.065)
    lk["iris"] = rng.choice([[0.25, 0.15, 0.08], [0.15, 0.25, 0.4], [0.2, 0.3, 0.15]])
    lk["gaze"] = rng.uniform(-0.03, 0.03, 2)
    lk["brow_gap"], lk["brow_r"] = rng.uniform(0.13, 0.17), rng.uniform(0.028, 0.042)
    lk["my"], lk["mw"] = rng.uniform(0.4, 0.5), rng.uniform(0.2, 0.26)
    lk["lt"] = rng.uniform(0.028, 0.042)
    lk["lip"] = lk["skin"] * np.array([0.78, 0.45, 0.45])
    lk["hair"] = rng.choice(
        [
            [0.1, 0.07, 0.05],
            [0.3, 0.18, 0.1],
            [0.75, 0.6, 0.35],
            [0.6, 0.6, 0.6],
            [0.45, 0.15, 0.05],
        ]
    ) * rng.uniform(0.85, 1.15)
    lk["bald"] = rng.random() < 0.15
    lk["hairline"] = rng.uniform(-0.8, -0.55)
    lk["cloth"] = rng.uniform(0.05, 0.9, 3)
    lk["scale"] = rng.uniform(1.0, 1.15)
    lk["centre"] = rng.uniform(-0.05, 0.05, 2) - np.array([0.0, 0.12])
    lk["angle"] = float(np.clip(rng.normal(0.0, 0.08), -0.2, 0.2))
    lk["gain"], lk["grad"] = rng.uniform(0.8, 1.1), rng.uniform(0.0, 0.3)
    lk["grad_dir"] = rng.uniform(0.0, 2 * np.pi)
    lk["bg"] = rng.uniform(0.1, 0.9, 3)
    lk["bg_tex"] = rng.normal(0.0, 1.0, (5, 5, 3)) * rng.uniform(0.04, 0.12)
    lk["stripes"] = rng.random() < 0.3
    lk["stripe_freq"], lk["stripe_dir"] = rng.uniform(4, 12), rng.uniform(0, np.pi)
    return lk


def _background(lk, u, v, rng):
    size = u.shape[0]
    m = _bilinear_matrix(size, 5)
    tex = np.einsum("ikc,lk->ilc", np.einsum("ij,jkc->ikc", m, lk["bg_tex"]), m)
    img = lk["bg"][None, None, :] + tex
    if lk["stripes"]:
        phase = u * np.cos(lk["stripe_dir"]) + v * np.sin(lk["stripe_dir"])
        img = img + 0.05 * np.sin(np.pi * lk["stripe_freq"] * phase)[..., None]
    img = img + rng.normal(0.0, 0.02, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _crop(x, y, half_width, top, bottom):
    inside = ((np.abs(x) < half_width) & (y > top) & (y < bottom)).any(axis=0)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return None
    return np.s_[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _draw_face(img, x, y, px, act, lk):
    """Paint the figure in face coordinates x, y (T, S, S) with actions act (T, 10), in place."""
    skin, fa, fb = lk["skin"], lk["fa"], lk["fb"]
    _paint(img, _alpha(_ellipse(x, y, 0.0, fb + 1.05, 1.35, 0.8), px), lk["cloth"])
    neck = np.maximum(np.abs(x) - 0.3 * fa - 0.05, 0.5 * fb - y)
    _paint(img, _alpha(neck, px), skin * 0.78)
    head = _crop(x, y, fa + 0.12, -fb - 0.2, fb + 0.05)
    if head is None:
        return
    hx, hy, himg = x[head], y[head], img[head]
    egg = hx * (1.0 + 0.18 * np.clip(hy / fb, 0.0, 1.0))
    shade = 1.06 - 0.25 * ((hx / fa) ** 2 + (hy / fb) ** 2)
    _paint(
        himg,
        _alpha(_ellipse(egg, hy, 0.0, 0.0, fa, fb), px),
        skin.astype(np.float32) * shade[..., None],
    )
    inner = _crop(x, y, 0.7, -0.9, 0.85)
    a = [act[:, k, None, None].astype(np.float32) for k in range(_NUM_ACTIONS)]
    if inner is not None:
        _draw_skin_marks(img[inner], x[inner], y[inner], px, a, lk)
    if not lk["bald"]:
        hair_d = np.maximum(
            _ellipse(hx, hy, 0.0, -0.06, fa + 0.06, fb + 0.1),
            hy - lk["hairline"] - 0.3 * (hx / fa) ** 2,
        )
        _paint(himg, _alpha(hair_d, px), lk["hair"])
    if inner is not None:
        _draw_features(img[inner], x[inner], y[inner], px, a, lk)


def _draw_skin_marks(img, x, y, px, a, lk):
    skin, ax = lk["skin"], np.abs(x)
    ey, my = lk["ey"], lk["my"]
    crease = skin * 0.6
    cheek = np.clip(a[_CHEEK], 0.0, 1.5)
    cheek_d = _ellipse(ax, y, 0.38, 0.16 - 0.07 * cheek, 0.13, 0.11)
    _paint(img, 0.45 * cheek * _alpha(cheek_d, px) ** 2, np.minimum(skin * 1.15 + [0.05, 0, 0], 1))
    brow_y = ey - lk["brow_gap"] - 0.14 * a[_BROW_RAISE]
    lines = np.clip(a[_BROW_RAISE], 0.0, 1.5) * 0.6
    for dy in (0.1, 0.17):
        d = _segment(x, y, -0.28, brow_y - dy, 0.28, brow_y - dy, 0.012)
        _paint(img, lines * _alpha(d, px), crease)
    furrow = np.clip(-a[_BROW_TILT], 0.0, 1.5) * 0.7
    d = _segment(ax, y, 0.035, brow_y - 0.03, 0.035, brow_y + 0.07, 0.012)
    _paint(img, furrow * _alpha(d, px), crease)
    nose_y = my - 0.17
    _paint(
        img,
        0.4 * _alpha(_segment(x, y, 0.0, ey + 0.05, 0.0, nose_y - 0.02, 0.014), px),
        skin * 0.75,
    )
    _paint(img, 0.7 * _alpha(_segment(x, y, -0.06, nose_y, 0.06, nose_y, 0.018), px), skin * 0.6)
    wrinkle = np.clip(a[_NOSE_WRINKLE], 0.0, 1.5) * 0.8
    for dy in (0.05, 0.1):
        d = _segment(ax, y, 0.0, ey + dy + 0.02, 0.075, ey + dy, 0.012)
        _paint(img, wrinkle * _alpha(d, px), crease)
    fold = np.clip(np.maximum(a[_CHEEK], 0.6 * a[_NOSE_WRINKLE]), 0.0, 1.5) * 0.6
    mw = lk["mw"] * (1.0 + 0.3 * a[_MOUTH_WIDTH])
    d = _segment(ax, y, 0.1, nose_y, mw + 0.04, my + 0.03, 0.013)
    _paint(img, fold * _alpha(d, px), crease)


def _draw_features(img, x, y, px, a, lk):
    skin, ax, sx = lk["skin"], np.abs(x), np.sign(x)
    ex, ey, ew = lk["ex"], lk["ey"], lk["ew"]
    eh = lk["eh"] * np.clip(1.0 + 0.8 * a[_EYE_OPEN], 0.08, 2.2) * lk["blink"][:, None, None]
    _paint(img, _alpha(_ellipse(ax, y, ex, ey, ew + 0.018, eh + 0.018), px), skin * 0.35)
    sclera = _ellipse(ax, y, ex, ey, ew, eh)
    _paint(img, _alpha(sclera, px), [0.93, 0.92, 0.88])
    iris = np.hypot(ax - ex - sx * lk["gaze"][0], y - ey - lk["gaze"][1]) - 0.055
    _paint(img, _alpha(np.maximum(iris, sclera), px), lk["iris"])
    brow_y = ey - lk["brow_gap"] - 0.14 * a[_BROW_RAISE]
    inner_y = brow_y - 0.1 * a[_BROW_TILT]
    outer_y = brow_y + 0.025 * a[_BROW_TILT]
    brow_d = _segment(ax, y, ex - ew - 0.03, inner_y, ex + ew + 0.06, outer_y, lk["brow_r"])
    brow_c = lk["hair"] * 0.7 if not lk["bald"] else skin * 0.3
    _paint(img, _alpha(brow_d, px), brow_c)
    my, mw = lk["my"], lk["mw"] * (1.0 + 0.3 * a[_MOUTH_WIDTH])
    q = np.clip((x / mw) ** 2, 0.0, 1.0)
    h = np.sqrt(1.0 - q)
    yc = my - 0.19 * a[_MOUTH_CURVE] * q
    gap = 0.3 * np.clip(a[_MOUTH_OPEN], 0.0, 1.5)
    yu = yc - 0.35 * gap * h - 0.07 * np.clip(a[_UPPER_LIP], 0.0, 1.5) * np.sqrt(h)
    yl = yc + 0.65 * gap * h
    lt = lk["lt"] * np.clip(1.0 - 0.75 * a[_LIP_PRESS], 0.2, 1.5) * np.sqrt(h)
    inside = ax - mw
    upper_d = np.maximum(np.maximum(yu - lt - y, y - yu), inside)
    lower_d = np.maximum(np.maximum(yl - y, y - yl - 1.3 * lt), inside)
    _paint(img, _alpha(upper_d, px), lk["lip"])
    _paint(img, _alpha(lower_d, px), lk["lip"])
    cavity = np.maximum(np.maximum(yu - 0.014 - y, y - yl - 0.014), ax - 0.95 * mw)
    _paint(img, _alpha(cavity, px), [0.25, 0.06, 0.06])
    teeth = np.maximum(
        np.maximum(yu - 0.01 - y, y - yu - np.minimum(0.35 * gap, 0.05)),
        np.maximum(ax - 0.7 * mw, 0.02 - gap),
    )
    _paint(img, _alpha(teeth, px), [0.92, 0.9, 0.82])


def _draw_occluder(img, x, y, px, rng, lk):
    if rng.random() < 0.5:
        colour = lk["skin"] * rng.uniform(0.85, 1.1, 3)
        d = _ellipse(x, y, 0.0, 0.3, lk["fa"] + 0.1, 0.68)
        for fx in (-0.45, -0.15, 0.15, 0.45):
            d = np.minimum(d, _segment(x, y, fx, 0.0, fx * 1.1, -0.75, 0.16))
    else:
        colour = rng.uniform(0.05, 0.9, 3)
        d = np.maximum(np.abs(x) - lk["fa"] - 0.12, np.abs(y - 0.25) - 0.97)
    _paint(img, _alpha(d, px), colour)


def render_clip(params: ClipParams, size: int) -> np.ndarray:
    """Render one clip: uint8 array of shape (T, size, size, 3), RGB, deterministic from params.

    Two ClipParams that differ only in `degradation` render the same scene, so a degraded
    clip can be compared with its clean counterpart.
    """
    if not isinstance(params, ClipParams):
        raise ValueError(f"params must be a ClipParams, got {type(params).__name__}")
    if params.degradation not in ("none", *LOW_QUALITY_KINDS):
        raise ValueError(
            f"degradation must be 'none' or one of {LOW_QUALITY_KINDS}, got {params.degradation!r}"
        )
    if not 0 <= params.label < len(CLASS_NAMES) or params.num_frames < 1:
        raise ValueError(
            f"label must be in [0, {len(CLASS_NAMES) - 1}] and num_frames >= 1, "
            f"got label={params.label}, num_frames={params.num_frames}"
        )
    _int_arg("size", size, 16, 512)
    rng = np.random.default_rng(params.seed)
    lk = _look(rng)
    act = _action_track(params, rng)
    t_count = params.num_frames
    blink = np.ones(t_count)
    if rng.random() < 0.5:
        bt = int(rng.integers(t_count))
        blink[bt] = 0.1
        blink[max(bt - 1, 0)] = min(blink[max(bt - 1, 0)], 0.5)
        blink[min(bt + 1, t_count - 1)] = min(blink[min(bt + 1, t_count - 1)], 0.5)
    lk["blink"] = blink
    jitter = _smooth_walk(rng, t_count, 3, 1.0) * np.array([0.015, 0.015, 0.03])
    flicker = 1.0 + rng.normal(0.0, 0.01, t_count)
    grid = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    v, u = np.meshgrid(grid, grid, indexing="ij")
    background = _background(lk, u, v, rng)
    extra = np.random.default_rng([params.seed, 1])
    centre, scale = lk["centre"], lk["scale"]
    draw_face = True
    if params.degradation == "no_face":
        if extra.random() < 0.5:
            draw_face = False
        else:
            side = int(extra.integers(4))
            dist = (1.0 + extra.uniform(0.66, 0.8) * scale) * (1 if side % 2 else -1)
            centre = np.array([dist, extra.uniform(-0.3, 0.3)])
            centre = centre if side < 2 else centre[::-1]
    img = np.repeat(background[None], t_count, axis=0)
    cx = (centre[0] + jitter[:, 0])[:, None, None]
    cy = (centre[1] + jitter[:, 1])[:, None, None]
    theta = (lk["angle"] + jitter[:, 2])[:, None, None]
    dx, dy = u[None] - cx, v[None] - cy
    x = ((np.cos(theta) * dx + np.sin(theta) * dy) / scale).astype(np.float32)
    y = ((-np.sin(theta) * dx + np.cos(theta) * dy) / scale).astype(np.float32)
    px = 2.0 / (size * scale)
    if draw_face:
        _draw_face(img, x, y, px, act, lk)
    if params.degradation == "occlusion":
        _draw_occluder(img, x, y, px, extra, lk)
    light = lk["gain"] * (
        1.0 + lk["grad"] * (u * np.cos(lk["grad_dir"]) + v * np.sin(lk["grad_dir"]))
    )
    img *= (light[None] * flicker[:, None, None])[..., None].astype(np.float32)
    if params.degradation == "blur":
        k = _gaussian_matrix(size, extra.uniform(0.1, 0.15) * size).astype(np.float32)
        img = _blur_axis(_blur_axis(img, k).transpose(0, 2, 1, 3), k).transpose(0, 2, 1, 3)
    noise_sd = 0.008
    if params.degradation == "dark":
        img *= extra.uniform(0.05, 0.15)
        noise_sd = extra.uniform(0.025, 0.05)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise_sd)
    return np.ascontiguousarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


# ----------------------------------------------------------------------------- planning


def _class_counts(n):
    share = _CLASS_WEIGHTS / _CLASS_WEIGHTS.sum() * n
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _plan_split(n, rng, *, noisy, cfg):
    """Per-clip ClipParams, given and true labels (N,), noise kinds (N,) for one split."""
    true = np.repeat(np.arange(len(CLASS_NAMES)), _class_counts(n))
    rng.shuffle(true)
    frames = rng.integers(cfg["min_frames"], cfg["max_frames"] + 1, n)
    noise = np.full(n, "none", dtype=object)
    given = true.copy()
    if noisy:
        n_low = round(cfg["low_quality_rate"] * n)
        low = rng.permutation(n)[:n_low]
        noise[low] = np.array(LOW_QUALITY_KINDS, dtype=object)[np.arange(n_low) % 4]
        n_wrong = round(cfg["label_noise_rate"] * n)
        n_sink = round(cfg["neutral_sink_share"] * n_wrong)
        candidates = np.flatnonzero((noise == "none") & (true != NEUTRAL))
        if n_sink > len(candidates):
            raise ValueError(
                f"need {n_sink} non-neutral good clips for neutral-sink errors, only "
                f"{len(candidates)} exist; lower label_noise_rate or neutral_sink_share"
            )
        sink = rng.permutation(candidates)[:n_sink]
        noise[sink] = "neutral_sink"
        given[sink] = NEUTRAL
        eligible = noise == "none"
        given_cb, wrong = confirmation_runs(
            true, eligible, cfg["annotation_batch"], n_wrong - n_sink, rng
        )
        given[wrong] = given_cb[wrong]
        noise[wrong] = "confirmation_bias"
    low_share = rng.random(n) < _CLEAN_LOW_INTENSITY_SHARE
    intensity = np.where(low_share, rng.uniform(0.15, 0.4, n), rng.uniform(0.4, 1.0, n))
    intensity = np.where(noise == "neutral_sink", rng.uniform(0.15, 0.35, n), intensity)
    intensity = np.where(true == NEUTRAL, 0.0, np.round(intensity, 4))
    seeds = rng.integers(0, 2**62, n)
    params = [
        ClipParams(
            label=int(true[i]),
            intensity=float(intensity[i]),
            num_frames=int(frames[i]),
            degradation=noise[i] if noise[i] in LOW_QUALITY_KINDS else "none",
            seed=int(seeds[i]),
        )
        for i in range(n)
    ]
    return params, given, true, noise


# ----------------------------------------------------------------------------- writing


def _encode_clip(task):
    folder, params, size = task
    frames = render_clip(params, size)
    return folder, [
        simplejpeg.encode_jpeg(f, quality=JPEG_QUALITY, colorspace="RGB") for f in frames
    ]


def _write_clip(encoded):
    folder, jpegs = encoded
    os.makedirs(folder, exist_ok=True)
    for t, data in enumerate(jpegs):
        with open(os.path.join(folder, f"{t + 1:05d}.jpg"), "wb") as fh:
            fh.write(data)


def _write_text(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _run_tasks(tasks, workers, progress):
    # Workers render and encode; this process alone writes (parallel file creation contends).
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        bar = Progress("[bold]SynthDFER", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        job = bar.add_task("clips", total=len(tasks))
        bar.start()
    pool = None
    try:
        if workers > 1 and len(tasks) > 1:
            pool = multiprocessing.get_context().Pool(workers)
            encoded = pool.imap_unordered(_encode_clip, tasks, chunksize=8)
        else:
            encoded = map(_encode_clip, tasks)
        for item in encoded:
            _write_clip(item)
            if bar is not None:
                bar.advance(job)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.stop()


# ----------------------------------------------------------------------------- validation


def _int_arg(name, value, low, high=None):
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(
            f"{name} must be an integer {span}, got {value!r} ({type(value).__name__})"
        )
    return int(value)


def _rate_arg(name, value, high):
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if not ok or not 0.0 <= float(value) <= high:
        raise ValueError(
            f"{name} must be a number in [0, {high}], got {value!r} ({type(value).__name__})"
        )
    return float(value)


def _bool_arg(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def _check_params(
    *,
    num_train,
    num_test,
    size,
    min_frames,
    max_frames,
    low_quality_rate,
    label_noise_rate,
    neutral_sink_share,
    annotation_batch,
    seed,
):
    """The checked dataset parameters, as recorded in meta.json."""
    cfg = {
        "num_train": _int_arg("num_train", num_train, 1),
        "num_test": _int_arg("num_test", num_test, 1),
        "size": _int_arg("size", size, 16, 512),
        "min_frames": _int_arg("min_frames", min_frames, 1, 1000),
        "max_frames": _int_arg("max_frames", max_frames, 1, 1000),
        "low_quality_rate": _rate_arg("low_quality_rate", low_quality_rate, 0.5),
        "label_noise_rate": _rate_arg("label_noise_rate", label_noise_rate, 0.5),
        "neutral_sink_share": _rate_arg("neutral_sink_share", neutral_sink_share, 1.0),
        "annotation_batch": _int_arg("annotation_batch", annotation_batch, 2),
        "seed": _int_arg("seed", seed, 0),
    }
    if cfg["max_frames"] < cfg["min_frames"]:
        raise ValueError(
            f"max_frames must be >= min_frames, got max_frames={max_frames} < "
            f"min_frames={min_frames}"
        )
    if cfg["low_quality_rate"] + cfg["label_noise_rate"] > 0.7:
        raise ValueError(
            f"low_quality_rate + label_noise_rate must be <= 0.7 (the noise sets are disjoint), "
            f"got {low_quality_rate} + {label_noise_rate}"
        )
    return cfg


# ----------------------------------------------------------------------------- dataset files


def _reuse_or_clear(root, cfg, *, overwrite):
    """True if `root` holds this very dataset; else clear the old one (refused unless overwrite)."""
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == SYNTH_VERSION and meta.get("params") == cfg:
            return True
        if not overwrite:
            old = meta.get("params", {})
            diff = {k: (old.get(k), v) for k, v in cfg.items() if old.get(k) != v}
            if meta.get("version") != SYNTH_VERSION:
                diff["version"] = (meta.get("version"), SYNTH_VERSION)
            shown = ", ".join(f"{k}: on disk {a!r}, requested {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"{root} already holds a SynthDFER dataset with other parameters "
                f"({shown}); pass overwrite=True to regenerate it"
            )
        meta_path.unlink()
    for split in ("train", "test"):
        shutil.rmtree(root / "frames" / split, ignore_errors=True)
    return False


def _layout(root, plans, cfg):
    """Render tasks, list-file text per split and ground-truth rows, in clip-number order."""
    width = max(5, len(str(cfg["num_train"] + cfg["num_test"])))
    tasks, lists, rows, number = [], {}, [], 0
    for split, (params, given, true, noise) in plans.items():
        lines = []
        for i, p in enumerate(params):
            number += 1
            rel = f"frames/{split}/s{number:0{width}d}"
            tasks.append((str(root / rel), p, cfg["size"]))
            lines.append(f"{rel} {p.num_frames} {int(given[i])}\n")
            quality = "low" if noise[i] in LOW_QUALITY_KINDS else "good"
            rows.append(
                [
                    split,
                    i,
                    rel,
                    int(given[i]),
                    int(true[i]),
                    quality,
                    noise[i],
                    f"{p.intensity:.4f}",
                ]
            )
        lists[split] = "".join(lines)
    return tasks, lists, rows


def _write_index(root, lists, rows):
    """Write the list files and ground_truth.csv (each via a temporary file)."""
    for split, text in lists.items():
        _write_text(root / f"{split}_list.txt", text)
    tmp = root / "ground_truth.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(GROUND_TRUTH_COLUMNS)
        writer.writerows(rows)
    os.replace(tmp, root / "ground_truth.csv")


def _meta(cfg, plans, tasks):
    """The content of meta.json: version, parameters, class names and counts."""
    train_noise = plans["train"][3]
    return {
        "name": "SynthDFER",
        "version": SYNTH_VERSION,
        "params": cfg,
        "class_names": list(CLASS_NAMES),
        "counts": {
            "train": cfg["num_train"],
            "test": cfg["num_test"],
            "frames": int(sum(t[1].num_frames for t in tasks)),
            "noise": {k: int(np.sum(train_noise == k)) for k in NOISE_KINDS},
            "true_labels": {
                split: {name: int(np.sum(plan[2] == k)) for k, name in enumerate(CLASS_NAMES)}
                for split, plan in plans.items()
            },
        },
    }


# ----------------------------------------------------------------------------- public API


def generate_synthdfer(
    root: str | os.PathLike,
    *,
    num_train: int = 840,
    num_test: int = 350,
    size: int = 48,
    min_frames: int = 10,
    max_frames: int = 24,
    low_quality_rate: float = 0.15,
    label_noise_rate: float = 0.20,
    neutral_sink_share: float = 0.4,
    annotation_batch: int = 24,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the SynthDFER dataset under `root` and return `root` as a Path.

    Train clips carry `low_quality_rate` low-quality clips (blur, dark, occlusion, no face,
    split evenly; their labels are right) and `label_noise_rate` wrongly annotated good clips
    (a `neutral_sink_share` of them low-intensity expressions annotated neutral, the rest
    confirmation-bias runs inside batches of `annotation_batch` clips). Test clips are clean.
    Each clip has between `min_frames` and `max_frames` frames of size x size RGB.

    Idempotent: if `root/meta.json` records the same version and parameters, nothing is
    written. Different parameters raise ValueError unless `overwrite=True`. `workers` (default
    min(4, cpu count)) and `progress` (a rich progress bar) do not change the output.
    """
    if not isinstance(root, str | os.PathLike):
        raise ValueError(f"root must be a path, got {root!r} ({type(root).__name__})")
    cfg = _check_params(
        num_train=num_train, num_test=num_test, size=size, min_frames=min_frames,
        max_frames=max_frames, low_quality_rate=low_quality_rate,
        label_noise_rate=label_noise_rate, neutral_sink_share=neutral_sink_share,
        annotation_batch=annotation_batch, seed=seed,
    )  # fmt: skip
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    workers = _int_arg("workers", workers, 1)
    _bool_arg("progress", progress)
    _bool_arg("overwrite", overwrite)

    root = Path(root)
    if _reuse_or_clear(root, cfg, overwrite=overwrite):
        return root
    seq = np.random.SeedSequence(cfg["seed"])
    train_rng, test_rng = (np.random.default_rng(s) for s in seq.spawn(2))
    plans = {
        "train": _plan_split(cfg["num_train"], train_rng, noisy=True, cfg=cfg),
        "test": _plan_split(cfg["num_test"], test_rng, noisy=False, cfg=cfg),
    }
    tasks, lists, rows = _layout(root, plans, cfg)
    root.mkdir(parents=True, exist_ok=True)
    _run_tasks(tasks, workers, progress)
    _write_index(root, lists, rows)
    _write_text(root / "meta.json", json.dumps(_meta(cfg, plans, tasks), indent=2) + "\n")
    return root


def load_ground_truth(root: str | os.PathLike, *, split: str = "train") -> dict[str, np.ndarray]:
    """Read `root/ground_truth.csv` for one split ("train" or "test"), rows in list-file order.

    Returns arrays of length N (the split's size): "index" (int64), "path" (str),
    "given_label" and "true_label" (int64), "quality" ("good"/"low"), "noise" (str, one of
    NOISE_KINDS), "intensity" (float64), plus the masks "low_quality" and "mislabeled" (bool).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(root) / "ground_truth.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no SynthDFER ground truth at {path}; run generate_synthdfer")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != GROUND_TRUTH_COLUMNS:
            raise ValueError(
                f"{path}: expected header {','.join(GROUND_TRUTH_COLUMNS)}, got "
                f"{','.join(reader.fieldnames or ())}"
            )
        rows = [r for r in reader if r["split"] == split]
    out = {
        "index": np.array([int(r["index"]) for r in rows], dtype=np.int64),
        "path": np.array([r["path"] for r in rows], dtype=str),
        "given_label": np.array([int(r["given_label"]) for r in rows], dtype=np.int64),
        "true_label": np.array([int(r["true_label"]) for r in rows], dtype=np.int64),
        "quality": np.array([r["quality"] for r in rows], dtype=str),
        "noise": np.array([r["noise"] for r in rows], dtype=str),
        "intensity": np.array([float(r["intensity"]) for r in rows], dtype=np.float64),
    }
    order = np.argsort(out["index"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    out["low_quality"] = out["quality"] == "low"
    out["mislabeled"] = out["given_label"] != out["true_label"]
    return out


def clean_counterpart(params: ClipParams) -> ClipParams:
    """The same clip without its degradation (for comparing a low-quality clip with its source)."""
    return replace(params, degradation="none")
