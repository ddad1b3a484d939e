"""The purification-quality suite: what a DFER user meets, in one command, resumable, in one
table.

Cells: Fashion-MNIST (12,000 noisy training images at 16×16, a small CNN) and SynthDFER
clips (a narrow R18-LSTM) × noise dual / heavy / clean × regime short / long (from scratch)
/ pretrained (an encoder trained with plain CE on a disjoint clean split, then fine-tuned on
the noisy set) × seeds (``benchmarks/quality/cells.py`` has the sizes and epochs,
``data.py`` the data and noise). Rows (``rows.py``): ``CE``, ``oracle``, ``cleanlab``, any
registered mode with its defaults — the peers ``gce``, ``elr``, ``coteach``, ``dividemix``,
the paper mode ``paper``, the benchmark-only ``d2sp+`` — the package's default mode (the
recommended one) and its ablations ``"<mode> key=value ..."``. Every row trains through
:func:`d2sp.run_epoch`, the optimiser given to its purifier. Cost: per-sample passes
through every network of a run (a forward with gradient 3 units, without 1), relative to CE.

    python benchmarks/quality/suite.py run --jobs 2            # default rows, every cell, 3 seeds
    python benchmarks/quality/suite.py table                   # -> benchmarks/results/suite.md
    python benchmarks/quality/suite.py run --jobs 2 --rows cleanlab gce elr coteach dividemix paper d2sp+
    python benchmarks/quality/suite.py run --datasets fashion --noises dual --regimes short \\
        --seeds 100 --rows CE adaptive "adaptive teacher=false" --set fashion.short=3

Runs are cached as JSON under ``runs/suite/`` (``--cache``), one file a run, by cell, seed
and row, under a digest of the settings (``--set`` changes them); ``run`` skips what is
there. ``--rows`` also takes ``default`` (CE, oracle, the recommended mode) and ``peers``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / d) for d in ("src", "")]  # the checkout

import torch  # noqa: E402

from benchmarks.helpers import ROOT, log  # noqa: E402
from benchmarks.quality import cells as grid  # noqa: E402
from benchmarks.quality import tables  # noqa: E402
from benchmarks.quality.data import make_data  # noqa: E402
from benchmarks.quality.rows import DEFAULT_ROWS, PEERS, RECOMMENDED, UnknownRow, parse_row, run_row  # noqa: E402
from benchmarks.quality.train import pretrain  # noqa: E402

DEFAULT_CACHE = Path("runs/suite")
COST_PER_SAMPLE = {"fashion": 1.0, "digits": 1.0, "synth": 15.0}  # rough, to start long runs first


def expand_rows(rows: list[str] | None) -> list[str]:
    """``--rows`` with ``default`` and ``peers`` expanded, each once; UnknownRow for a row
    that is neither the suite's nor a registered mode."""
    out = []
    for r in rows or ["default"]:
        out += list(DEFAULT_ROWS) if r == "default" else list(PEERS) if r == "peers" else [r]
    out = list(dict.fromkeys(out))
    for r in out:
        parse_row(r)
    return out


def tasks_of(args) -> list[tuple]:
    """Every run asked for: ``(row, cell, seed)``; rows that know the noise skip clean cells."""
    cells = grid.cells_of(args.datasets, args.noises, args.regimes, args.settings)
    return [(r, c, s) for s in args.seeds for c in cells for r in args.rows
            if not (parse_row(r).needs_noise and c[1] == "clean")]  # fmt: skip


def _estimate(task, settings) -> float:
    row, (d, _, rg), _ = task
    s = settings[d]
    return COST_PER_SAMPLE[d] * s.get("train", 1200) * s[rg] * (4 if "cleanlab" in row else 1)


def do_task(job: tuple) -> None:
    """One run, cached as JSON (written whole, then renamed)."""
    (row, cell, seed), args = job
    torch.set_num_threads(1)
    path = grid.run_path(args.cache, cell, row, seed, args.loop, args.settings)
    if path.exists():
        return
    res = run_row(row, cell, seed, args.loop, args.cache, args.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(res))
    tmp.replace(path)
    log(f"{'/'.join(cell):>26} s{seed:<3} {args.loop:>4} {row:<28} WAR {100 * res['war']:5.1f} "
        f"AUROC {res['auroc']:.3f} relabel P {res['corr_p']:.2f} changed {res['changed']:.3f} "
        f"pruned {res['pruned_share']:.3f} cost {res['units']:.2f} {res['cpu']:.0f}s CPU")  # fmt: skip


def prepare(job: tuple) -> None:
    """Render a SynthDFER cell's clips, or pretrain an encoder (cached)."""
    (what, dataset, noise, seed), args = job
    torch.set_num_threads(1)
    s = args.settings[dataset]
    if what == "data":
        make_data(dataset, noise, seed, s, args.cache)
        return
    path = grid.encoder_path(args.cache, dataset, seed, args.loop, args.settings)
    if not path.exists():
        state = pretrain(make_data(dataset, "clean", seed, s, args.cache), s, args.loop, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path.with_suffix(f".{os.getpid()}.tmp"))
        path.with_suffix(f".{os.getpid()}.tmp").replace(path)


def in_pool(fn, jobs: list, n: int) -> None:
    if n > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n, len(jobs)), mp_context=mp.get_context("fork")) as pool:
            list(pool.map(fn, jobs))
    else:
        for job in jobs:
            fn(job)


def main_run(args) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    tasks = tasks_of(args)
    todo = [t for t in tasks if not grid.run_path(args.cache, t[1], t[0], t[2], args.loop, args.settings).exists()]
    log(f"{len(tasks)} runs, {len(todo)} to do -> {args.cache}")
    start, cpu0 = time.perf_counter(), time.process_time()
    renders = sorted({("data", c[0], c[1], s) for _, c, s in todo if c[0] == "synth"}
                     | {("data", c[0], "clean", s) for _, c, s in todo if c[0] == "synth" and c[2] == "pretrained"})  # fmt: skip
    in_pool(prepare, [(j, args) for j in renders], args.jobs)
    encoders = sorted({("encoder", c[0], "clean", s) for _, c, s in todo if c[2] == "pretrained"})
    in_pool(prepare, [(j, args) for j in encoders], args.jobs)
    todo.sort(key=lambda t: -_estimate(t, args.settings))
    in_pool(do_task, [(t, args) for t in todo], args.jobs)
    wall = time.perf_counter() - start
    log(f"done in {wall / 60:.1f} min")
    if todo:
        entry = {"command": "python benchmarks/quality/suite.py " + shlex.join(args.argv), "runs": len(todo),
                 "jobs": args.jobs, "wall_s": wall, "main_cpu_s": time.process_time() - cpu0,
                 "when": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
        with open(args.cache / "timings.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")


def load(args) -> dict:
    """``{(cell, row, seed): figures}`` of the cached runs of these cells, settings and loop."""
    res = {}
    for cell in grid.cells_of(args.datasets, args.noises, args.regimes, args.settings):
        folder = args.cache / "runs" / grid.cell_key(cell, args.loop, args.settings)
        for seed in args.seeds:
            for path in sorted((folder / f"s{seed}").glob("*.json")):
                run = json.loads(path.read_text())
                res[(cell, run["row"], seed)] = run
    return res


def main_table(args) -> None:
    res = load(args)
    cells = grid.cells_of(args.datasets, args.noises, args.regimes, args.settings)
    cells = [c for c in cells if any(k[0] == c for k in res)]
    rows = tables.order_rows({k[1] for k in res})
    mode, seeds = RECOMMENDED, args.seeds
    sizes = "; ".join(f"{d}: " + ", ".join(f"{k} {v}" for k, v in args.settings[d].items()) for d in args.datasets)
    timings = [json.loads(x) for x in (args.cache / "timings.jsonl").read_text().splitlines()] if (args.cache / "timings.jsonl").exists() else []
    out = [
        f"Seeds {', '.join(map(str, seeds))}; loop `{args.loop}`; WAR in % at the last epoch on clean test sets, "
        f"mean over seeds; the recommended mode is the package's default, `{mode}`. Settings: {sizes}. "
        "`python benchmarks/quality/suite.py table` writes this file from the runs cached by "
        "`python benchmarks/quality/suite.py run`.",
        "", f"## Targets of the recommended mode (`{mode}`)", "", *tables.targets(res, cells, seeds, mode),
        "", "## Cells (WAR %)", "", *tables.cell_table(res, cells, seeds, mode, rows),
        "", "## Rows over the cells they ran in", "", *tables.row_table(res, cells, seeds, [r for r in rows if not tables.is_ablation(r)]),
        "", "## Spread over seeds (WAR, percentage points)", "", *tables.spread_table(res, cells, seeds, mode),
    ]  # fmt: skip
    ablations = [r for r in rows if tables.is_ablation(r)]
    if ablations:
        out += ["", "## Ablations (WAR %)", "", *tables.ablation_table(res, cells, seeds, ablations)]
    out += ["", "## Time", "", *tables.time_lines(res, cells, seeds, timings)]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="rows: " + ", ".join(DEFAULT_ROWS) + " by default")
    p.add_argument("what", choices=("run", "table"))
    p.add_argument("--datasets", nargs="+", default=list(grid.DATASETS), choices=list(grid.SETTINGS))
    p.add_argument("--noises", nargs="+", default=list(grid.NOISES), choices=[*grid.NOISES, "gen"])
    p.add_argument("--regimes", nargs="+", default=list(grid.REGIMES), choices=list(grid.REGIMES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=None, help="rows (default: CE, oracle and the package's default mode; "
                   "'default' and 'peers' expand; a mode with options: \"<mode> key=value ...\")")  # fmt: skip
    p.add_argument("--loop", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--set", nargs="+", default=[], metavar="DATASET.KEY=VALUE", help="change a dataset's settings (cells.py)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/suite.md"), help="table: write it here ('-': only print it)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.rows = expand_rows(args.rows)
        args.settings = grid.settings_with(args.set)
    except (UnknownRow, ValueError) as err:
        p.error(str(err))
    (main_run if args.what == "run" else main_table)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
