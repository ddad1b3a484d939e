"""The purification-quality suite (DESIGN §5): one command, resumable, one table.

Datasets digits, Fashion-MNIST and SynthDFER (video backbone) × noise dual / heavy / clean
× short / long training × seeds (``benchmarks/suite_data.py`` has the details). Rows: plain
CE, cleanlab (4 fold models trained for the short regime → ``find_label_issues`` → CE on
the rest; its ranking is ``cleanlab.rank.get_label_quality_scores`` of the same
probabilities), oracle (true labels, unusable samples removed; on request ``prune-oracle``:
every noisy sample removed, the annotation kept; ``prune-wrong``: only the wrong labels
removed; ``prune-nonsink``: the wrong labels removed except those in the class most of them
went to; ``rank-cleanlab`` / ``rank-adaptive``: as many samples as are noisy removed from the
start, the most suspicious first by cleanlab's ranking or by the ranking ``adaptive`` ends its
own run with — what a ranking is worth when the noise rate is known and there is time to
retrain; ``retrain-adaptive``: CE trained again on what a run of ``adaptive`` kept, with its
labels), the paper mode (λ=0.6,
τ=0.4, t=2, warm-up 5), the recommended mode ``adaptive`` and its ablations. Every row
trains through the package's plug-and-play API — one purifier, the six calls of the
README — in the same loop. Columns: WAR, UAR (last epoch, clean test set), share of the
CE→oracle gap closed, cost (per-sample passes, a training step 3 units and a no-grad
re-scoring pass 1, relative to CE; cleanlab's fold models included), prune and correction
precision/recall against the ground truth, labels changed, smallest trained share over the
run, suspicion AUROC (against wrong-label or unusable samples) beside cleanlab's. A second
table gives the spread over seeds: the standard deviation of WAR and the mode's difference to
CE and to cleanlab paired by seed.

    python benchmarks/suite.py run --jobs 2                        # the whole suite (resumable)
    python benchmarks/suite.py table --out benchmarks/results/suite.md
    python benchmarks/suite.py run --datasets digits --noises dual --regimes short \\
        --seeds 100 --rows CE adaptive "adaptive -probes"          # one cell, development seeds

Runs are cached as JSON under ``runs/suite/`` (``--cache``); ``run`` skips what is there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from suite_data import PAPER, REGIMES, Data, Loop, build_model, make_data  # (puts src/ on the path)

from d2sp.purify import CORRECTED, PRUNED, create_purifier

ABLATIONS = {  # row -> adaptive options
    "adaptive": {},
    "adaptive -probes": dict(probes=False),
    "adaptive -teacher": dict(teacher=False),
    "adaptive -heldout": dict(heldout=False),
    "adaptive -calib": dict(log_odds=3.0),
    "adaptive -quiet": dict(min_noise=0.0),
    "adaptive -cgp": dict(cgp=False),
    "adaptive -guard": dict(max_pruned=1.0, max_pruned_class=1.0),
}
DEV_ROWS: dict[str, dict] = {}  # adaptive variants under development, run only when asked for
MAIN_ROWS = ["CE", "cleanlab", "oracle", "paper", "adaptive"]
# rows that need noise (all but the first only with --rows)
ORACLES = ("oracle", "prune-oracle", "prune-wrong", "prune-nonsink", "rank-cleanlab", "rank-adaptive")
TWO_RUNS = ("retrain-adaptive",)  # a second CE run on what a run of the mode kept, only with --rows
DEFAULT_CACHE = Path("runs/suite")


def known_rows() -> list[str]:
    """Every row ``--rows`` accepts, each once."""
    return list(dict.fromkeys([*MAIN_ROWS, *ORACLES[1:], *TWO_RUNS, *ABLATIONS, *DEV_ROWS]))


class Counter:
    """Per-sample passes: a training step 3 units per sample, a no-grad re-scoring pass 1."""

    def __init__(self):
        self.units = 0

    def add(self, train: int = 0, rescore: int = 0) -> None:
        self.units += 3 * train + rescore


def fit(data: Data, epochs: int, seed: int, *, loop: str, mode: str, options: dict, count: Counter):
    """Train one model with ``mode``'s purifier through the six calls; returns it and the purifier."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = Loop.for_data(data, loop)
    pur = create_purifier(mode, data.y_noisy, num_classes=data.num_classes, **options)
    model = build_model(data, weight_branch=pur.weight_branch)
    pur.bind(model)
    opt = cfg.optimizer(model)
    sched = None
    if cfg.schedule:
        total = max(1, epochs * (len(pur.train_indices()) // cfg.batch_size))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / total))))
    for _ in range(epochs):
        model.train()
        train = torch.as_tensor(pur.train_indices())
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, max(1, len(order) - cfg.batch_size + 1), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]  # (B,)
            if len(idx) < 2:
                continue
            logits, w = model(cfg.augment(data.x_train[idx], gen, data.video))
            loss = pur.loss(logits, w, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            pur.after_step()
            count.add(train=len(idx))
        again = torch.as_tensor(pur.rescore_indices())
        for i in range(0, len(again), 512):
            idx = again[i : i + 512]
            pur.rescore(idx, data.x_train[idx])  # un-augmented views
            count.add(rescore=len(idx))
        pur.end_epoch()
    return model, pur


@torch.no_grad()
def predict(model, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch])[0] for i in range(0, len(x), batch)])  # (M, K)


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    score = np.asarray(score, dtype=float)
    finite = np.isfinite(score)
    low = score[finite].min() - 1.0 if finite.any() else 0.0
    score = np.where(finite, score, low)  # never scored: least suspicious
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, score))


def cleanlab_selection(data: Data, cv_epochs: int, seed: int, loop: str, count: Counter):
    """4-fold out-of-sample probabilities -> ``(issues (N,) bool, quality (N,))``."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.model_selection import StratifiedKFold

    n = len(data.y_noisy)
    probs = np.zeros((n, data.num_classes))
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=seed)
    for f, (tr, ho) in enumerate(folds.split(np.zeros(n), data.y_noisy)):
        keep = np.isin(np.arange(n), tr)
        model, _ = fit(data, cv_epochs, seed * 100 + f, loop=loop, mode="ce", options={"keep": keep}, count=count)
        probs[ho] = torch.softmax(predict(model, data.x_train[ho]), 1).double().numpy()
        count.add(rescore=len(ho))
    issues = find_label_issues(data.y_noisy, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    return np.asarray(issues, bool), get_label_quality_scores(data.y_noisy, probs)


def without_most_suspicious(suspicion: np.ndarray, count: int) -> np.ndarray:
    """``keep (N,) bool``: every sample but the ``count`` with the highest ``suspicion (N,)``
    (never scored, nan: least suspicious)."""
    order = np.argsort(-np.nan_to_num(suspicion, nan=-np.inf), kind="stable")
    keep = np.ones(len(suspicion), dtype=bool)
    keep[order[:count]] = False
    return keep


def row_setup(row: str, data: Data, regime: tuple[int, int], seed: int, loop: str, count: Counter) -> tuple[str, dict, dict]:
    """The mode and options a row trains with (``regime``: the short regime's epochs and this
    run's), and figures known before training."""
    short, epochs = regime
    if row == "CE":
        return "ce", {}, {}
    if row == "oracle":
        return "ce", {"keep": ~data.unusable, "targets": data.y_true}, {}
    if row == "prune-oracle":  # every noisy sample left out from the start, nothing relabelled
        return "ce", {"keep": ~data.noisy}, {}
    if row in ("prune-wrong", "prune-nonsink"):  # only wrong labels left out (unusable samples kept)
        wrong = (data.y_noisy != data.y_true) & ~data.unusable
        if row == "prune-nonsink" and wrong.any():  # ... except those in the class most wrong labels go to
            wrong &= data.y_noisy != np.bincount(data.y_noisy[wrong]).argmax()
        return "ce", {"keep": ~wrong}, {}
    if row == "cleanlab":
        issues, quality = cleanlab_selection(data, short, seed, loop, count)
        return "ce", {"keep": ~issues, "suspicion": 1.0 - quality}, {}
    if row in ("rank-cleanlab", "rank-adaptive", "retrain-adaptive"):
        if row == "rank-cleanlab":
            suspicion = 1.0 - cleanlab_selection(data, short, seed, loop, count)[1]
        else:  # the ranking (and list) a whole run of the mode ends with
            pur = fit(data, epochs, seed, loop=loop, mode="adaptive", options={"seed": seed}, count=count)[1]
            suspicion, led = pur.suspicion()[0], pur.ledger
            if row == "retrain-adaptive":  # the run's own list
                keep, labels = led.column("state")[-1] != PRUNED, led.column("label")[-1].astype(np.int64)
                return "ce", {"keep": keep, "targets": labels, "suspicion": suspicion}, {}
        # told how many samples are noisy
        return "ce", {"keep": without_most_suspicious(suspicion, int(data.noisy.sum())), "suspicion": suspicion}, {}
    if row == "paper":
        return "paper", dict(PAPER), {}
    if row in ABLATIONS or row in DEV_ROWS:
        return "adaptive", {"seed": seed, **ABLATIONS.get(row, DEV_ROWS.get(row))}, {}
    raise ValueError(f"row: expected one of {', '.join(known_rows())}, got {row!r}")


def purification_figures(pur, data: Data) -> dict:
    """Final-epoch precision/recall of pruning and correction, labels changed, the smallest
    trained share over the run, suspicion AUROC."""
    led = pur.ledger
    state, label = led.column("state")[-1], led.column("label")[-1].astype(np.int64)
    pruned, corrected = state == PRUNED, state == CORRECTED
    wrong = data.y_noisy != data.y_true
    fixed = corrected & (label == data.y_true)

    def ratio(a, b):
        return float(a.sum() / b.sum()) if b.any() else float("nan")

    out = {
        "prune_p": ratio(pruned & data.unusable, pruned), "prune_r": ratio(pruned & data.unusable, data.unusable),
        "corr_p": ratio(fixed, corrected), "corr_r": ratio(fixed, wrong),
        "changed": float(corrected.mean()), "pruned_share": float(pruned.mean()),
        "min_trained_share": float((led.column("state") != PRUNED).mean(1).min()),
        "events": pur.events[-12:], "auroc": auroc(pur.suspicion()[0], data.noisy),
    }  # fmt: skip
    return out


def run_row(row: str, dataset: str, noise: str, regime: str, seed: int, loop: str, cache: Path) -> dict:
    """Train one row of one cell; its figures."""
    data = make_data(dataset, noise, seed, cache)
    short, long_ = REGIMES[dataset]
    epochs = short if regime == "short" else long_
    count = Counter()
    cpu0, t0 = time.process_time(), time.perf_counter()
    mode, options, known = row_setup(row, data, (short, epochs), seed, loop, count)
    model, pur = fit(data, epochs, seed, loop=loop, mode=mode, options=options, count=count)
    pred = predict(model, data.x_test).argmax(1).numpy()
    war = float((pred == data.y_test).mean())
    uar = float(np.mean([(pred[data.y_test == c] == c).mean() for c in np.unique(data.y_test)]))
    res = {"war": war, "uar": uar, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}
    res["units"] = count.units / (3 * len(data.y_noisy) * epochs)
    res.update(purification_figures(pur, data) | known)  # (cleanlab: its ranking's AUROC)
    return res


def run_path(cache: Path, task: tuple) -> Path:
    row, dataset, noise, regime, seed, loop = task
    safe = row.replace(" ", "_").replace("+", "p").replace("-", "m")
    return cache / "runs" / f"{dataset}_{noise}_{regime}_{seed}_{loop}" / f"{safe}.json"


def do_task(job: tuple) -> None:
    task, cache = job
    torch.set_num_threads(1)
    path = run_path(cache, task)
    if path.exists():
        return
    res = run_row(*task, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))
    row, dataset, noise, regime, seed, loop = task
    print(
        f"{dataset:>7} {noise:>5} {regime:>5} s{seed:<3} {loop:>4} {row:<20} WAR {100 * res['war']:5.1f} "
        f"AUROC {res['auroc']:.3f} corrP {res['corr_p']:.2f} changed {res['changed']:.3f} "
        f"pruned {res['pruned_share']:.3f} units {res['units']:.2f} {res['seconds']:.0f}s",
        flush=True,
    )


# ---- the grid -----------------------------------------------------------------------------------

DATASETS, NOISES, REGIME_NAMES = ("digits", "fashion", "synth"), ("dual", "heavy", "clean"), ("short", "long")


ABLATION_CELLS = dict(datasets=("digits", "fashion"), regimes=("short",))  # by default (CPU time)


def tasks_of(args) -> list[tuple]:
    """Every run asked for: the main rows in every cell; without ``--rows``, the ablation
    rows in the cells of :data:`ABLATION_CELLS`."""
    ablations = [r for r in ABLATIONS if r != "adaptive"]
    out = []
    for seed in args.seeds:
        for d in args.datasets:
            for nz in args.noises:
                for rg in args.regimes:
                    rows = args.rows or MAIN_ROWS
                    if not args.rows and d in ABLATION_CELLS["datasets"] and rg in ABLATION_CELLS["regimes"]:
                        rows = [*rows, *ablations]
                    out += [(r, d, nz, rg, seed, args.loop) for r in rows if not (r in ORACLES and nz == "clean")]
    return out


def main_run(args) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    todo = [t for t in tasks_of(args) if not run_path(args.cache, t).exists()]
    print(f"{len(tasks_of(args))} runs, {len(todo)} to do -> {args.cache}", flush=True)
    for seed in args.seeds:  # SynthDFER renders once, before the workers start
        for nz in args.noises:
            if "synth" in args.datasets:
                make_data("synth", nz, seed, args.cache)
    jobs = [(t, args.cache) for t in sorted(todo, key=lambda t: -REGIMES[t[1]][t[3] == "long"])]
    start = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
            list(pool.map(do_task, jobs))
    else:
        for job in jobs:
            do_task(job)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


# ---- the table ----------------------------------------------------------------------------------


def load(cache: Path, loop: str) -> dict:
    """``{(dataset, noise, regime, row, seed): figures}`` of every cached run of ``loop``."""
    out = {}
    for path in (cache / "runs").glob(f"*_{loop}/*.json"):
        d, nz, rg, seed, _ = path.parent.name.split("_")
        row = path.stem.replace("_", " ").replace(" m", " -").replace(" p", " +")
        out[(d, nz, rg, row, int(seed))] = json.loads(path.read_text())
    return out


def _mean(res, cell, row, seeds, key="war") -> float:
    v = [res[(*cell, row, s)][key] for s in seeds if (*cell, row, s) in res]
    v = [x for x in v if x is not None and not np.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def _pct(x: float, digits: int = 1) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.{digits}f}"


def summary(res, cells, seeds, mode="adaptive") -> tuple[list[str], dict]:
    """One line per cell (CE, cleanlab, oracle, paper, the mode; the targets) and the checks."""
    lines = [
        f"| cell | CE | cleanlab | oracle | paper | {mode} | gap closed % | ≥ max(CE, cleanlab) + 1 "
        "| corr P | changed % | cost × CE | AUROC (mode / cleanlab) | min trained % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    checks = {"war": [], "clean": [], "gap": [], "corr_p": [], "cost": [], "auroc": [], "collapse": []}
    for cell in cells:
        ce, cl, orc, pa, me = (_mean(res, cell, r, seeds) for r in ("CE", "cleanlab", "oracle", "paper", mode))
        if np.isnan(me):
            continue
        corr_p, changed = _mean(res, cell, mode, seeds, "corr_p"), _mean(res, cell, mode, seeds, "changed")
        cost = _mean(res, cell, mode, seeds, "units") / _mean(res, cell, "CE", seeds, "units")
        au, au_cl = _mean(res, cell, mode, seeds, "auroc"), _mean(res, cell, "cleanlab", seeds, "auroc")
        trained = min((res[(*cell, mode, s)]["min_trained_share"] for s in seeds if (*cell, mode, s) in res), default=np.nan)
        if cell[1] == "clean":
            ok = me >= ce - 0.003 and changed < 0.01
            verdict, gap = ("✓" if ok else "✗") + " (clean: ≥ CE − 0.3, < 1% changed)", float("nan")
            checks["clean"].append(ok)
        else:
            ok = me >= max(ce, cl) + 0.01
            verdict, gap = "✓" if ok else "✗", (me - ce) / (orc - ce) if orc != ce else float("nan")
            checks["war"].append(ok)
            checks["gap"].append(gap)
            checks["auroc"].append(au >= au_cl)
        if not np.isnan(corr_p):
            checks["corr_p"].append(corr_p >= 0.75)
        checks["cost"].append(cost <= 1.3)
        checks["collapse"].append(trained >= 0.3)
        lines.append(
            f"| {'/'.join(cell)} | {_pct(ce)} | {_pct(cl)} | {_pct(orc)} | {_pct(pa)} | **{_pct(me)}** "
            f"| {_pct(gap, 0)} | {verdict} | {'–' if np.isnan(corr_p) else f'{corr_p:.2f}'} "
            f"| {_pct(changed, 2)} | {cost:.2f} | {au:.3f} / {au_cl:.3f} | {_pct(trained, 0)} |"
        )
    return lines, checks


def verdict(checks: dict) -> list[str]:
    """The targets of the recommended mode, met or not, over the cells of one table."""

    def share(v):
        return f"{sum(v)} of {len(v)}" if v else "–"

    gap = np.nanmean(checks["gap"]) if checks["gap"] else float("nan")
    return [
        "| target | cells meeting it |",
        "|---|---|",
        f"| noisy cells: WAR ≥ max(CE, cleanlab) + 1 | {share(checks['war'])} |",
        f"| clean control: WAR ≥ CE − 0.3 and < 1% labels changed | {share(checks['clean'])} |",
        f"| mean share of the CE→oracle gap closed ≥ 70% (noisy cells) | {_pct(gap, 0)}% |",
        f"| correction precision ≥ 0.75 where it corrects | {share(checks['corr_p'])} |",
        f"| cost ≤ 1.3 × CE | {share(checks['cost'])} |",
        f"| suspicion AUROC ≥ cleanlab's (noisy cells) | {share(checks['auroc'])} |",
        f"| smallest trained share ≥ 30% (no collapse) | {share(checks['collapse'])} |",
    ]


def ablation_table(res, cells, seeds, rows) -> list[str]:
    """WAR of each ablation per cell (the cells it ran in), its mean difference to the full
    mode, and its corrections: precision (mean over the cells where it corrects) and the
    share of labels changed (mean over the cells)."""
    cells = [c for c in cells if any((*c, r, s) in res for r in rows for s in seeds)]
    head = "| row | " + " | ".join("/".join(c) for c in cells)
    lines = [head + " | mean Δ WAR | better / worse cells | corr P | changed % |", "|---|" + "---|" * (len(cells) + 4)]
    base = {c: _mean(res, c, "adaptive", seeds) for c in cells}
    for r in ["adaptive", *rows]:
        vals = {c: _mean(res, c, r, seeds) for c in cells}
        d = np.array([vals[c] - base[c] for c in cells if not np.isnan(vals[c] - base[c])])
        tail = f" {100 * d.mean():+.2f} | {(d > 0.002).sum()} / {(d < -0.002).sum()} |" if len(d) and r != "adaptive" else " | |"
        cp = [x for x in (_mean(res, c, r, seeds, "corr_p") for c in cells) if not np.isnan(x)]
        ch = np.nanmean([_mean(res, c, r, seeds, "changed") for c in cells])
        tail += f" {np.mean(cp):.2f} |" if cp else " – |"
        lines.append(f"| {r} | " + " | ".join(_pct(vals[c]) for c in cells) + " |" + tail + f" {_pct(ch, 2)} |")
    return lines


def _paired(res, cell, row, other, seeds) -> str:
    """``mean ± standard error (higher in n of m seeds)`` of ``row − other`` paired by seed."""
    d = np.array([res[(*cell, row, s)]["war"] - res[(*cell, other, s)]["war"] for s in seeds
                  if (*cell, row, s) in res and (*cell, other, s) in res])  # fmt: skip
    if len(d) < 2:
        return "–"
    se = d.std(ddof=1) / np.sqrt(len(d))
    return f"{100 * d.mean():+.1f} ± {100 * se:.1f} ({(d > 0).sum()} of {len(d)})"


def spread_table(res, cells, seeds, mode="adaptive") -> list[str]:
    """Per cell: the standard deviation over seeds of the WAR of CE, cleanlab and the mode,
    and the mode's difference to CE and to cleanlab paired by seed (mean ± standard error,
    and on how many seeds the mode is higher)."""
    lines = [
        f"| cell | sd CE | sd cleanlab | sd {mode} | {mode} − CE | {mode} − cleanlab |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        sd = []
        for r in ("CE", "cleanlab", mode):
            v = [res[(*cell, r, s)]["war"] for s in seeds if (*cell, r, s) in res]
            sd.append(_pct(float(np.std(v, ddof=1))) if len(v) > 1 else "–")
        if sd[2] == "–":
            continue
        diffs = [_paired(res, cell, mode, o, seeds) for o in ("CE", "cleanlab")]
        lines.append(f"| {'/'.join(cell)} | " + " | ".join(sd + diffs) + " |")
    return lines


def main_table(args) -> None:
    res = load(args.cache, args.loop)
    cells = [(d, nz, rg) for rg in args.regimes for d in args.datasets for nz in args.noises]
    lines, checks = summary(res, cells, args.seeds)
    out = [
        f"Seeds {', '.join(map(str, args.seeds))}; loop `{args.loop}`; WAR/UAR in % at the last epoch on "
        "clean test sets, mean over seeds; `python benchmarks/suite.py table` writes this file.",
        "", "## Targets of the recommended mode", "", *verdict(checks), "", "## Cells", "", *lines,
        "", "## Spread over seeds (WAR, percentage points)", "", *spread_table(res, cells, args.seeds),
    ]  # fmt: skip
    abl = [r for r in [*ABLATIONS, *DEV_ROWS] if r != "adaptive" and any(k[3] == r for k in res)]
    if abl:
        out += ["", "## Ablations of `adaptive` (WAR)", "", *ablation_table(res, cells, args.seeds, abl)]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("run", "table"))
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--noises", nargs="+", default=list(NOISES))
    p.add_argument("--regimes", nargs="+", default=list(REGIME_NAMES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=None, help="default: the main rows, and every ablation in the short digits and Fashion cells")
    p.add_argument("--loop", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--out", default=None, help="table: also write it here")
    args = p.parse_args(argv)
    if args.rows and (bad := [r for r in args.rows if r not in known_rows()]):
        p.error(f"--rows: expected some of {', '.join(known_rows())}; got {', '.join(map(repr, bad))}")
    (main_run if args.what == "run" else main_table)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
