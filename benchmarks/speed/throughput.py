#!/usr/bin/env python
"""Training throughput of each backbone from memory: plain CE vs D2SP, side by side.

The compute ceiling of the training step: a fixed random batch already on the device (no
data loading), SGD (momentum 0.9), bf16 autocast and channels_last on CUDA. Two variants
share one backbone and one optimizer and are timed in alternating blocks in the same run,
so clocks, caches and thermals treat them alike:

- ``CE``: backbone + linear head, ``F.cross_entropy`` (the paper's "Original" row);
- ``D2SP``: backbone + head with the weight branch, the purifier's loss (weighted CE on its
  current labels, recording the batch: ``purifier.batch_loss(model, clips, idx)``) and its per-step
  update (``purifier.after_step()``), for the purification mode ``--mode`` (default
  ``paper``; a mode with a teacher updates it there).

Examples::

    python benchmarks/speed/throughput.py                      # all backbones, paper input sizes
    python benchmarks/speed/throughput.py --models r18_lstm,vit_lstm --steps 60 --compile
    python benchmarks/speed/throughput.py --mode scn            # another purification mode
    python benchmarks/speed/throughput.py --device cpu --tiny  # quick smoke run

Prints a Markdown table (clips/s per variant, D2SP time overhead, peak memory).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

SRC = Path(__file__).resolve().parents[2] / "src"  # the checkout's


def _bootstrap() -> None:
    """Import ``d2sp`` from ``src/`` without its top-level ``__init__`` (no data deps)."""
    if "d2sp" not in sys.modules:
        pkg = types.ModuleType("d2sp")
        pkg.__path__ = [str(SRC / "d2sp")]
        sys.modules["d2sp"] = pkg


_bootstrap()
from d2sp.models import DFERModel, create_backbone, list_backbones  # noqa: E402
from d2sp.models.heads import ClassifierHead  # noqa: E402
from d2sp.purify import create_purifier, purifier_class  # noqa: E402

# name -> (backbone kwargs, frame size, clips per batch) at the paper's input (16 frames)
PRESETS: dict[str, tuple[dict, int, int]] = {
    "r18_lstm": ({}, 112, 64),
    "r50_lstm": ({}, 112, 32),
    "vgg13_lstm": ({}, 112, 32),
    "vgg16_lstm": ({}, 112, 32),
    "former_dfer": ({}, 112, 32),
    "vit_lstm": ({}, 224, 16),
    "clip_vit": ({}, 224, 16),  # ViT-B/16 at CLIP's resolution, DFER-CLIP's setting
}
# --tiny: small widths for a CPU smoke run
TINY: dict[str, tuple[dict, int, int]] = {
    "r18_lstm": ({"width": 8, "lstm_hidden": 64}, 64, 4),
    "r50_lstm": ({"width": 8, "lstm_hidden": 64}, 64, 4),
    "vgg13_lstm": ({"width": 8, "lstm_hidden": 64}, 64, 4),
    "vgg16_lstm": ({"width": 8, "lstm_hidden": 64}, 64, 4),
    "former_dfer": ({"width": 8, "heads": 4, "img_size": 64}, 64, 4),
    "vit_lstm": ({"img_size": 64, "dim": 64, "depth": 2, "heads": 4, "lstm_hidden": 64}, 64, 4),
    "clip_vit": (
        {"img_size": 64, "patch_size": 16, "width": 64, "layers": 2, "heads": 4, "output_dim": 32},
        64,
        4,
    ),
}
DEFAULT_PRESET = ({}, 112, 16)
TINY_DEFAULT = ({"width": 8}, 64, 4)


class Timer:
    """Accumulates device time of blocks (CUDA events, or wall clock on CPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.total = 0.0

    def __enter__(self):
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.total += self.start.elapsed_time(self.end) / 1000.0
        else:
            self.total += time.perf_counter() - self.t0


def make_batch(
    b: int,
    t: int,
    size: int,
    n: int,
    device: torch.device,
    channels_last: bool,
    num_batches: int = 4,
):
    """A few fixed batches: clips ``(B, T, 3, S, S)`` (frame views channels_last on request),
    sample indices ``(B,)`` and labels; plus the dataset-wide labels ``(N,)``."""
    g = torch.Generator().manual_seed(0)
    if channels_last:  # (B, T, S, S, 3) storage: every (B*T, 3, S, S) frame view is NHWC
        clips = torch.randn(b, t, size, size, 3, generator=g).to(device).permute(0, 1, 4, 2, 3)
    else:
        clips = torch.randn(b, t, 3, size, size, generator=g).to(device)
    idx = [torch.randint(n, (b,), generator=g).to(device) for _ in range(num_batches)]
    return clips, idx


def bench_model(name: str, args, device: torch.device) -> dict:
    presets = TINY if args.tiny else PRESETS
    kwargs, size, batch = presets.get(name, TINY_DEFAULT if args.tiny else DEFAULT_PRESET)
    batch = args.batch or batch
    size = args.size or size
    frames = args.frames
    cuda = device.type == "cuda"
    channels_last = cuda and not args.no_channels_last
    amp = cuda and not args.no_amp
    k = args.num_classes

    torch.manual_seed(0)
    backbone = create_backbone(name, **kwargs)
    d = backbone.num_features
    ce_model = DFERModel(backbone, ClassifierHead(d, k, weight_branch=False))
    d2sp_model = DFERModel(backbone, ClassifierHead(d, k, weight_branch=True))
    modules = torch.nn.ModuleList([ce_model, d2sp_model]).to(device)
    if channels_last:
        modules.to(memory_format=torch.channels_last)
    modules.train()
    params = list(dict.fromkeys(modules.parameters()))  # shared backbone once
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    n_params = sum(p.numel() for p in backbone.parameters())

    n = args.num_samples
    labels = torch.randint(k, (n,), generator=torch.Generator().manual_seed(1))
    purifier = create_purifier(args.mode, labels, num_classes=k, model=d2sp_model, device=device)
    clips, idx_batches = make_batch(batch, frames, size, n, device, channels_last)
    ce_labels = [labels.to(device)[i] for i in idx_batches]

    ce_fwd, d2sp_fwd = ce_model, d2sp_model
    if args.compile:
        ce_fwd, d2sp_fwd = torch.compile(ce_model), torch.compile(d2sp_model)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext

    def ce_step(j: int) -> None:
        with autocast():
            logits, _ = ce_fwd(clips)  # (B, K)
            loss = F.cross_entropy(logits.float(), ce_labels[j])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def d2sp_step(j: int) -> None:
        idx = idx_batches[j]
        with autocast():  # runs the model: (B, K) logits, (B,) weights; WCE on ỹ; records
            loss = purifier.batch_loss(d2sp_fwd, clips, idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        purifier.after_step()

    variants = {"CE": ce_step, "D2SP": d2sp_step}
    nb = len(idx_batches)
    for step in variants.values():  # warm-up (and compilation)
        for j in range(args.warmup):
            step(j % nb)
    if cuda:
        torch.cuda.synchronize()

    syncs = None
    if cuda and not args.compile:  # does a D2SP step synchronise the host with the GPU?
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                d2sp_step(0)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(c.message) for c in caught)
        torch.cuda.synchronize()

    timers = {v: Timer(device) for v in variants}
    peak = dict.fromkeys(variants, 0.0)
    per_block = max(1, args.steps // args.rounds)
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for v in order:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            with timers[v]:
                for j in range(per_block):
                    variants[v](j % nb)
            if cuda:
                peak[v] = max(peak[v], torch.cuda.max_memory_allocated(device) / 2**30)
    steps = per_block * args.rounds
    rate = {v: steps * batch / timers[v].total for v in variants}
    return {
        "model": name,
        "input": f"{frames}x{size}²",
        "batch": batch,
        "params_M": n_params / 1e6,
        "ce_clips_s": rate["CE"],
        "d2sp_clips_s": rate["D2SP"],
        "overhead_pct": (timers["D2SP"].total / timers["CE"].total - 1) * 100,
        "peak_gib_ce": peak["CE"] if cuda else None,
        "peak_gib_d2sp": peak["D2SP"] if cuda else None,
        "syncs_per_d2sp_step": syncs,
        "steps": steps,
    }


def fmt_row(r: dict) -> str:
    if "error" in r:
        return (
            f"| {r['model']} | {r.get('input', '-')} | {r.get('batch', '-')} | {r['error']} | | | |"
        )
    mem = "-"
    if r["peak_gib_ce"] is not None:
        mem = f"{r['peak_gib_ce']:.1f} / {r['peak_gib_d2sp']:.1f}"
    return (
        f"| {r['model']} | {r['input']} | {r['batch']} | {r['ce_clips_s']:.1f} | "
        f"{r['d2sp_clips_s']:.1f} | {r['overhead_pct']:+.1f} | {mem} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Training throughput: plain CE vs D2SP.")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--models", default=None, help="comma-separated backbone names (default: all registered)"
    )
    ap.add_argument("--batch", type=int, default=None, help="clips per batch (all models)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (16; tiny: 4)")
    ap.add_argument("--size", type=int, default=None, help="frame size (default per model)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per variant")
    ap.add_argument("--rounds", type=int, default=4, help="alternating timed blocks")
    ap.add_argument("--num-classes", type=int, default=7)
    ap.add_argument("--num-samples", type=int, default=31088, help="N for the purifier")
    ap.add_argument("--mode", default="paper", help="purification mode of the D2SP variant")
    ap.add_argument("--compile", action="store_true", help="torch.compile both variants")
    ap.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="tiny models for a smoke run")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--target-overhead", type=float, default=None,
                    help="print whether each model's D2SP overhead is at most this %%")
    args = ap.parse_args(argv)
    args.frames = args.frames or (4 if args.tiny else 16)
    args.steps = args.steps or (8 if args.tiny else 40)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 10)
    args.rounds = max(1, min(args.rounds, args.steps))

    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device(
            "cuda", torch.cuda.current_device() if device.index is None else device.index
        )
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        purifier_class(args.mode)
    except (KeyError, ValueError) as e:
        ap.error(str(e))
    names = args.models.split(",") if args.models else list_backbones()
    unknown = [m for m in names if m not in list_backbones()]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {', '.join(list_backbones())}")

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    amp = device.type == "cuda" and not args.no_amp
    print(
        f"# throughput from memory — {dev_name}, torch {torch.__version__}, mode {args.mode}, "
        f"{'bf16 autocast' if amp else 'fp32'}, "
        f"channels_last={device.type == 'cuda' and not args.no_channels_last}, "
        f"compile={args.compile}, {args.steps} steps x 2 variants in {args.rounds} "
        f"alternating blocks, warm-up {args.warmup}\n",
        flush=True,
    )
    rows = []
    for name in names:
        try:
            rows.append(bench_model(name, args, device))
        except torch.cuda.OutOfMemoryError:
            rows.append({"model": name, "error": "OOM (try --batch)"})
        except Exception as exc:  # keep going: one backbone failing is a row, not a crash
            rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}"[:120]})
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"  {name}: done", file=sys.stderr, flush=True)

    print(
        "| model | input | batch | CE clips/s | D2SP clips/s | D2SP overhead % "
        "| peak GiB CE / D2SP |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(fmt_row(r))
    syncs = {
        r["model"]: r["syncs_per_d2sp_step"]
        for r in rows
        if r.get("syncs_per_d2sp_step") is not None
    }
    if syncs:
        print(f"\nhost-GPU synchronisations in one D2SP step: {syncs}")
    if args.target_overhead is not None:
        ok = [r for r in rows if "error" not in r]
        over = [f"{r['model']} {r['overhead_pct']:+.1f}%" for r in ok
                if r["overhead_pct"] > args.target_overhead]
        met = "met" if ok and not over and len(ok) == len(rows) else "NOT met"
        if over or not ok:
            detail = ", ".join(over) or "no backbone measured"
        else:
            detail = f"largest {max(r['overhead_pct'] for r in ok):+.1f}%"
        print(f"\ntarget: D2SP overhead <= {args.target_overhead:g}% for every backbone: {met} "
              f"({detail}{'' if len(ok) == len(rows) else '; some backbones failed'})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
