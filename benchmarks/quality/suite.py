"""The purification-quality suite: what a DFER user meets, in one command, resumable, in one
table.

Cells (``cells.py``): Fashion-MNIST (10,000 real noisy training images at 16×16, a small CNN)
and SynthDFER clips (a narrow R18-LSTM), under the dual and heavy noise settings and clean
(the controls), in three regimes: ``short`` and ``long`` training from scratch, and
``pretrained`` (an encoder trained with plain CE on a disjoint clean split, then fine-tuned
on the noisy set). Rows (``rows.py``): ``CE``, ``oracle``, ``cleanlab``, any registered mode
with its defaults — the peers ``gce``, ``elr``, ``coteach``, ``dividemix``, the paper mode
``paper``, the benchmark-only ``d2sp+`` — the package's default mode (the recommended one)
and its ablations ``"<mode> key=value ..."``. Every row trains through
:func:`d2sp.run_epoch`.

    python benchmarks/quality/suite.py run --jobs 2                  # CE, oracle, the default mode; 11 cells, 3 seeds (~45 min)
    python benchmarks/quality/suite.py run --jobs 2 --methods all    # every row (~4 h)
    python benchmarks/quality/suite.py run --quick                   # 2 cells, seed 0 (a few minutes)
    python benchmarks/quality/suite.py run --cells 'fashion/*/long' --methods CE gce "paper cgp=false" --seeds 0 1
    python benchmarks/quality/suite.py table                         # -> benchmarks/results/suite.md

Each run is appended to ``runs/suite/results.jsonl`` (``--cache``) as it ends, named by its
cell, row, seed and a digest of the settings (``--set`` changes them); ``run`` skips the runs
already there, so an interrupted suite resumes, and prints the table of its selection.
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
from benchmarks.quality.rows import GROUPS, METHODS, RECOMMENDED, UnknownRow, parse_row, run_row  # noqa: E402
from benchmarks.quality.store import Results  # noqa: E402
from benchmarks.quality.train import pretrain  # noqa: E402

DEFAULT_CACHE = Path("runs/suite")
COST_PER_SAMPLE = {"fashion": 1.0, "digits": 1.0, "synth": 15.0}  # rough, to start long runs first
ROW_COST = {"cleanlab": 4, "coteach": 2, "dividemix": 3}


def expand_methods(methods: list[str] | None) -> list[str]:
    """``--methods`` with the groups (``default``, ``peers``, ``all``) expanded, each row
    once; UnknownRow for a row that is neither the suite's nor a registered mode."""
    out = []
    for m in methods or ["default"]:
        out += list(GROUPS.get(m, [m]))
    out = list(dict.fromkeys(out))
    for r in out:
        parse_row(r)
    return out


def tasks_of(args) -> list[tuple]:
    """Every run asked for: ``(row, cell, seed)``; rows that know the noise skip clean cells."""
    return [(r, c, s) for s in args.seeds for c in args.cells for r in args.methods
            if not (parse_row(r).needs_noise and c[1] == "clean")]  # fmt: skip


def run_id(task: tuple, args) -> tuple[str, str, int]:
    row, cell, seed = task
    return grid.cell_key(cell, args.loop, args.settings), row, seed


def _estimate(task, settings) -> float:
    row, (d, _, rg), _ = task
    s = settings[d]
    return COST_PER_SAMPLE[d] * s.get("train", 1200) * s[rg] * ROW_COST.get(row.split()[0], 1)


def do_task(job: tuple) -> dict:
    """One run: its figures, named by its cell key, row and seed."""
    task, args = job
    row, cell, seed = task
    torch.set_num_threads(1)
    res = run_row(row, cell, seed, args.loop, args.cache, args.settings)
    log(f"{grid.name(cell):>26} s{seed:<3} {args.loop:>4} {row:<28} WAR {100 * res['war']:5.1f} "
        f"AUROC {res['auroc']:.3f} relabel P {res['corr_p']:.2f} changed {res['changed']:.3f} "
        f"pruned {res['pruned_share']:.3f} cost {res['units']:.2f} {res['cpu']:.0f}s CPU")  # fmt: skip
    return {"key": run_id(task, args)[0], "cell": grid.name(cell)} | res


def prepare(job: tuple) -> None:
    """Render a SynthDFER cell's clips, or pretrain an encoder (kept under ``--cache``)."""
    (what, dataset, noise, seed), args = job
    torch.set_num_threads(1)
    s = args.settings[dataset]
    if what == "data":
        make_data(dataset, noise, seed, s, args.cache)
        return
    path = args.cache / "pretrained" / grid.encoder_key(dataset, seed, args.loop, args.settings)
    if not path.exists():
        state = pretrain(make_data(dataset, "clean", seed, s, args.cache), s, args.loop, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path.with_suffix(f".{os.getpid()}.tmp"))
        path.with_suffix(f".{os.getpid()}.tmp").replace(path)


def in_pool(fn, jobs: list, n: int, done=None) -> None:
    """``fn`` over ``jobs``, ``n`` processes at a time; ``done(result)`` in this process as
    each job ends."""
    if n > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(min(n, len(jobs)), mp_context=mp.get_context("fork")) as pool:
            for fut in as_completed([pool.submit(fn, j) for j in jobs]):
                result = fut.result()
                if done is not None:
                    done(result)
    else:
        for job in jobs:
            result = fn(job)
            if done is not None:
                done(result)


def main_run(args) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    store = Results(args.cache)
    have = store.load()
    tasks = tasks_of(args)
    todo = [t for t in tasks if run_id(t, args) not in have]
    log(f"{len(tasks)} runs, {len(todo)} to do -> {store.path}")
    start, cpu0 = time.perf_counter(), time.process_time()
    renders = sorted({("data", c[0], c[1], s) for _, c, s in todo if c[0] == "synth"}
                     | {("data", c[0], "clean", s) for _, c, s in todo if c[0] == "synth" and c[2] == "pretrained"})  # fmt: skip
    in_pool(prepare, [(j, args) for j in renders], args.jobs)
    encoders = sorted({("encoder", c[0], "clean", s) for _, c, s in todo if c[2] == "pretrained"})
    in_pool(prepare, [(j, args) for j in encoders], args.jobs)
    todo.sort(key=lambda t: -_estimate(t, args.settings))
    in_pool(do_task, [(t, args) for t in todo], args.jobs, done=store.append)
    wall = time.perf_counter() - start
    log(f"done in {wall / 60:.1f} min")
    if todo:
        entry = {"command": "python benchmarks/quality/suite.py " + shlex.join(args.argv), "runs": len(todo),
                 "jobs": args.jobs, "wall_s": wall, "main_cpu_s": time.process_time() - cpu0,
                 "when": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
        with open(args.cache / "timings.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
    print("\n".join(tables.war_table(load(args), args.cells, args.seeds, RECOMMENDED, args.methods)))


def load(args) -> dict:
    """``{(cell, row, seed): figures}`` of the stored runs of the selected cells and seeds
    (under these settings and loop)."""
    cell_of = {grid.cell_key(c, args.loop, args.settings): c for c in args.cells}
    return {(cell_of[k], row, seed): run for (k, row, seed), run in Results(args.cache).load().items()
            if k in cell_of and seed in args.seeds}  # fmt: skip


def report(args, res: dict, rows: list[str]) -> list[str]:
    """The report file: the WAR table, the recommended mode's targets and figures, every
    row over the cells, the spread over seeds, the ablations, the time."""
    cells, seeds, mode = [c for c in args.cells if any(k[0] == c for k in res)], args.seeds, RECOMMENDED
    sizes = "; ".join(f"{d}: " + ", ".join(f"{k} {v}" for k, v in args.settings[d].items()) for d in sorted({c[0] for c in cells}))
    path = args.cache / "timings.jsonl"
    timings = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    plain = [r for r in rows if not tables.is_ablation(r)]
    out = [
        f"Seeds {', '.join(map(str, seeds))}; loop `{args.loop}`; WAR in % at the last epoch on clean test sets, "
        f"mean over seeds; the recommended mode is the package's default, `{mode}`. Settings: {sizes}. "
        "`python benchmarks/quality/suite.py table` writes this file from the runs stored by "
        "`python benchmarks/quality/suite.py run`.",
        "", "## WAR (%)", "", *tables.war_table(res, cells, seeds, mode, plain),
        "", f"## Targets of the recommended mode (`{mode}`)", "", *tables.targets(res, cells, seeds, mode),
        "", f"## `{mode}` per cell", "", *tables.mode_table(res, cells, seeds, mode),
        "", "## Rows over the cells they ran in", "", *tables.row_table(res, cells, seeds, plain),
        "", "## Spread over seeds (WAR, percentage points)", "", *tables.spread_table(res, cells, seeds, mode),
    ]  # fmt: skip
    ablations = [r for r in rows if tables.is_ablation(r)]
    if ablations:
        out += ["", "## Ablations (WAR %)", "", *tables.ablation_table(res, cells, seeds, ablations)]
    return out + ["", "## Time", "", *tables.time_lines(res, cells, seeds, timings)]


def main_table(args) -> None:
    res = load(args)
    rows = args.methods if args.methods_given else tables.order_rows({k[1] for k in res})
    print("\n".join(tables.war_table(res, args.cells, args.seeds, RECOMMENDED, [r for r in rows if not tables.is_ablation(r)])))
    if args.out != "-":
        Path(args.out).write_text("\n".join(report(args, res, rows)) + "\n")
        log(f"report -> {args.out}")


def parse_args(argv=None) -> argparse.Namespace:
    groups = "; ".join(f"{g}: {' '.join(rows)}" for g, rows in GROUPS.items())
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"cells by default: {' '.join(grid.GRID)}\nmethod groups: {groups}")  # fmt: skip
    p.add_argument("what", choices=("run", "table"), help="run: train what is missing, print the table; table: print it, write the report")
    p.add_argument("--cells", nargs="+", metavar="DATASET/NOISE/REGIME", help="cells or patterns ('fashion/*/long'; default: the grid)")
    p.add_argument("--methods", "--rows", nargs="+", metavar="ROW", help="rows or groups (default: 'default' for run, every stored row for "
                   "table); a row is one of " + ", ".join(METHODS) + ", any registered mode, or \"<mode> key=value ...\"")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, help="default 0 1 2 (--quick: 0)")
    p.add_argument("--quick", action="store_true", help=f"cells {' '.join(grid.QUICK)} and seed 0, unless --cells / --seeds say otherwise")
    p.add_argument("--loop", default="sgd", choices=("sgd", "adam"), help="the training loop (loops.py)")
    p.add_argument("--set", nargs="+", default=[], metavar="DATASET.KEY=VALUE", help="change a dataset's settings (cells.py)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="results.jsonl, rendered clips and pretrained encoders")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/suite.md"), help="table: the report file ('-': none)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.methods_given = args.methods is not None
    try:
        args.methods = expand_methods(args.methods)
        args.settings = grid.settings_with(args.set)
        args.cells = grid.select_cells(args.cells or (grid.QUICK if args.quick else None), args.settings)
    except (UnknownRow, ValueError) as err:
        p.error(str(err))
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    (main_run if args.what == "run" else main_table)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
