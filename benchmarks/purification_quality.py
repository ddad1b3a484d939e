"""Purification quality on SynthDFER: plain CE vs CGP-only vs FGC-only vs both.

Every variant trains the same backbone on the same generated data with the same seeds;
the table gives WAR/UAR on the clean test split and the precision/recall of pruning
(vs the low-quality ground truth) and of correction (vs the annotation-error ground
truth) at the final epoch, as mean ± std over seeds.

    python benchmarks/purification_quality.py --seeds 0 1 2 [--config demo-paper] [--jobs 2] [key=value ...]

``--jobs N`` trains N runs at a time in separate processes (one thread each).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from d2sp import train  # noqa: E402
from d2sp.commands.common import resolve_config  # noqa: E402
from d2sp.config import PurifyConfig  # noqa: E402
from d2sp.data.splits import load_split  # noqa: E402
from d2sp.training.metrics import purification_scores  # noqa: E402

VARIANTS = {  # name: (cgp, fgc, mode)
    "plain CE": (False, False, "paper"),
    "CGP only": (True, False, "paper"),
    "FGC only": (False, True, "paper"),
    "CGP + FGC": (True, True, "paper"),
    "d2sp+": (True, True, "d2sp+"),  # the improved mode with its own defaults
}
DEFAULT_VARIANTS = "plain CE,CGP only,FGC only,CGP + FGC"
COLUMNS = (
    "war",
    "uar",
    "pruned",
    "corrected",
    "prune_precision",
    "prune_recall",
    "correct_precision",
    "correct_recall",
    "seconds",
)


def fmt(values, pct=True):
    v = np.array([x for x in values if x is not None and not np.isnan(x)], dtype=float)
    if v.size == 0:
        return "–"
    scale = 100 if pct else 1
    return f"{scale * v.mean():.1f} ± {scale * v.std():.1f}"


def run_one(cfg, gt, threads):
    """Train one variant and score its final purification against the ground truth."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    r = train(cfg, progress=False, overwrite=True)  # each run of the benchmark trains again
    led = r.purifier.ledger
    s = purification_scores(
        led.column("state")[-1],
        led.column("label")[-1],
        low_quality=gt["low_quality"],
        true_label=gt["true_label"],
        given_label=gt["given_label"],
    )
    return cfg.name, {"war": r.war, "uar": r.uar, **s, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="demo-paper", help="YAML file or packaged config name")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"of: {', '.join(VARIANTS)}")
    ap.add_argument("--out", default="runs/purification_quality")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at a time")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. optim.epochs=30")
    args = ap.parse_args()
    base = resolve_config(args.config, args.overrides)
    gt = load_split(base.data, "train").ground_truth
    jobs = []
    for name in args.variants.split(","):
        cgp, fgc, mode = VARIANTS[name]
        for seed in args.seeds:
            cfg = copy.deepcopy(base)
            cfg.seed, cfg.purify.cgp, cfg.purify.fgc = seed, cgp, fgc
            if mode != cfg.purify.mode:  # the other mode keeps its own defaults
                cfg.purify = PurifyConfig(mode=mode, cgp=cgp, fgc=fgc)
            cfg.name = f"{name.replace(' ', '').replace('+', 'plus')}-seed{seed}"
            cfg.out_dir = args.out
            jobs.append((name, cfg))
    results: dict[str, list[dict]] = {name: [] for name, _ in jobs}
    threads = 1 if args.jobs > 1 else None
    with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, cfg, gt, threads): name for name, cfg in jobs}
        for fut in cf.as_completed(futures):
            run_name, row = fut.result()
            results[futures[fut]].append(row)
            print(
                f"{run_name}: " + json.dumps({k: round(float(row[k]), 4) for k in COLUMNS}),
                flush=True,
            )
    header = (
        "| variant | WAR | UAR | pruned | corrected | prune P | prune R | correct P | "
        "correct R | s/run |"
    )
    lines = [
        f"SynthDFER purification quality — config {args.config}, seeds {args.seeds}, "
        f"overrides {args.overrides or 'none'}; mean ± std; P/R in %",
        "",
        header,
        "|" + "---|" * 10,
    ]
    for name, rows in results.items():
        purifying = any(VARIANTS[name][:2])
        col = {k: [r[k] for r in rows] for k in COLUMNS}
        pr = [
            fmt(col[k]) if purifying else "–"
            for k in ("prune_precision", "prune_recall", "correct_precision", "correct_recall")
        ]
        lines.append(
            f"| {name} | {fmt(col['war'])} | {fmt(col['uar'])} | "
            f"{fmt(col['pruned'], False)} | {fmt(col['corrected'], False)} | "
            + " | ".join(pr)
            + f" | {np.mean(col['seconds']):.0f} |"
        )
    lines.append("")
    lines.append(
        f"chance: low-quality share {100 * gt['low_quality'].mean():.1f}%, "
        f"wrong labels {100 * gt['mislabeled'].mean():.1f}%"
    )
    table = "\n".join(lines)
    print(table)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
