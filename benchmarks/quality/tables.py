"""The suite's tables (Markdown). :func:`war_table` is the one the suite prints: mean WAR
per row per cell, and each row's mean over the noisy and over the clean cells. The report
file adds the targets of the recommended mode, every row's purification figures, the spread
over seeds, the ablations, and the time the runs took.

``res``: ``{(cell, row, seed): figures}``; a cell is ``(dataset, noise, regime)``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.quality.cells import name
from benchmarks.quality.rows import METHODS, PEERS, parse_row

NAN = float("nan")


def mean(res, cell, row, seeds, key="war") -> float:
    """Mean of ``key`` over the seeds run (NaN where none, or where every value is NaN)."""
    v = [res[(cell, row, s)].get(key) for s in seeds if (cell, row, s) in res]
    v = [x for x in v if x is not None and not np.isnan(x)]
    return float(np.mean(v)) if v else NAN


def pct(x: float, digits: int = 1) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.{digits}f}"


def num(x: float, digits: int = 2) -> str:
    return "–" if np.isnan(x) else f"{x:.{digits}f}"


def cost_ratio(res, cell, row, seeds) -> float:
    return mean(res, cell, row, seeds, "units") / mean(res, cell, "CE", seeds, "units")


def gap_closed(res, cell, row, seeds) -> float:
    ce, orc = mean(res, cell, "CE", seeds), mean(res, cell, "oracle", seeds)
    return (mean(res, cell, row, seeds) - ce) / (orc - ce) if orc != ce else NAN


def relabel_precision(res, cells, row, seeds) -> tuple[float, int]:
    """Pooled precision of the relabels listed at the last epoch over every run of ``row``
    in ``cells``, and how many there were."""
    runs = [res[(c, row, s)] for c in cells for s in seeds if (c, row, s) in res]
    n, right = sum(r["corrected"] for r in runs), sum(r["corrected_right"] for r in runs)
    return (right / n if n else NAN), n


def cells_with(res, cells, row, seeds) -> list:
    return [c for c in cells if any((c, row, s) in res for s in seeds)]


def peer_means(res, noisy, seeds) -> tuple[dict[str, float], list[str]]:
    """Mean WAR over ``noisy`` of each peer that ran in all of them; the peers that did not."""
    done = {p: float(np.mean([mean(res, c, p, seeds) for c in noisy])) for p in PEERS
            if noisy and all(not np.isnan(mean(res, c, p, seeds)) for c in noisy)}  # fmt: skip
    return done, [p for p in PEERS if p not in done]


def targets(res, cells, seeds, mode) -> list[str]:
    """The issue's targets of the recommended mode ``mode``, measured, met or not."""
    noisy = [c for c in cells_with(res, cells, mode, seeds) if c[1] != "clean"]
    clean = [c for c in cells_with(res, cells, mode, seeds) if c[1] == "clean"]
    lines = ["| target | measured | met |", "|---|---|---|"]

    def add(target, measured, ok):
        lines.append(f"| {target} | {measured} | {'–' if ok is None else '✓' if ok else '✗'} |")

    me = float(np.mean([mean(res, c, mode, seeds) for c in noisy])) if noisy else NAN
    peers, missing = peer_means(res, noisy, seeds)
    best = max(peers, key=peers.get) if peers else None
    note = f"; not run: {', '.join(missing)}" if missing else ""
    add(f"noisy cells ({len(noisy)}): mean WAR ≥ best peer's + 1",
        f"{pct(me)} vs {best} {pct(peers[best])}{note}" if best else f"{pct(me)}; no peer ran in every noisy cell",
        (me >= peers[best] + 0.01) if best else None)  # fmt: skip
    below = [(mean(res, c, mode, seeds) - mean(res, c, "CE", seeds), c) for c in noisy]
    worst = min(below, default=(NAN, None))
    add("no noisy cell more than 0.5 below CE",
        f"{sum(d >= -0.005 for d, _ in below)} of {len(below)}; lowest {pct(worst[0])} ({name(worst[1]) if worst[1] else '–'})",
        all(d >= -0.005 for d, _ in below) if below else None)  # fmt: skip
    gaps = [g for g in (gap_closed(res, c, mode, seeds) for c in noisy) if not np.isnan(g)]
    gap = float(np.mean(gaps)) if gaps else NAN
    add("mean share of the CE→oracle gap closed ≥ 50%", f"{pct(gap, 0)}%", gap >= 0.5 if gaps else None)
    ok = [mean(res, c, mode, seeds) >= mean(res, c, "CE", seeds) - 0.003 and mean(res, c, mode, seeds, "changed") < 0.01 for c in clean]
    add("clean controls: WAR ≥ CE − 0.3 and < 1% labels changed", f"{sum(ok)} of {len(ok)}", all(ok) if ok else None)
    prec, n = relabel_precision(res, cells, mode, seeds)
    add("relabels listed for the user ≥ 0.75 precise (all runs, pooled)", f"{num(prec)} ({n} relabels)", prec >= 0.75 if n else None)
    both = [c for c in noisy if not np.isnan(mean(res, c, "cleanlab", seeds, "auroc"))]
    au = [float(np.mean([mean(res, c, r, seeds, "auroc") for c in both])) if both else NAN for r in (mode, "cleanlab")]
    add(f"suspicion AUROC ≥ cleanlab's, mean over noisy cells ({len(both)})", f"{num(au[0], 3)} vs {num(au[1], 3)}",
        au[0] >= au[1] if both else None)  # fmt: skip
    costs = [cost_ratio(res, c, mode, seeds) for c in cells_with(res, cells, mode, seeds)]
    add("cost ≤ 1.5 × CE (every cell)", f"max {num(max(costs, default=NAN))}, mean {num(np.mean(costs) if costs else NAN)}",
        max(costs) <= 1.5 if costs else None)  # fmt: skip
    return lines


def order_rows(rows) -> list[str]:
    """The suite's rows in :data:`~benchmarks.quality.rows.METHODS` order (the peers, the
    recommended mode, the oracle), then the rest (ablations last)."""
    first = [r for r in METHODS if r in rows]
    rest = sorted((r for r in rows if r not in first), key=lambda r: (len(r.split()) > 1, r))
    return first + rest


def is_ablation(row: str) -> bool:
    return len(row.split()) > 1


def war_table(res, cells, seeds, mode, rows) -> list[str]:
    """Mean WAR (%) over the seeds of each row (a column) in each cell (a line; the
    recommended ``mode`` in bold), then each row's mean over the noisy cells and over the
    clean ones (``(k of n)`` where it ran in only k of them)."""
    lines = ["| cell | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for c in cells:
        wars = [mean(res, c, r, seeds) for r in rows]
        if not all(np.isnan(w) for w in wars):
            lines.append(f"| {name(c)} | " + " | ".join(f"**{pct(w)}**" if r == mode else pct(w) for r, w in zip(rows, wars, strict=True)) + " |")
    for label, group in (("noisy", [c for c in cells if c[1] != "clean"]), ("clean", [c for c in cells if c[1] == "clean"])):
        if not group:
            continue
        out = []
        for r in rows:
            v = [w for w in (mean(res, c, r, seeds) for c in group) if not np.isnan(w)]
            out.append("–" if not v else pct(float(np.mean(v))) + ("" if len(v) == len(group) else f" ({len(v)} of {len(group)})"))
        lines.append(f"| **mean, {len(group)} {label} cell{'s' * (len(group) > 1)}** | " + " | ".join(out) + " |")
    return lines


def mode_table(res, cells, seeds, mode) -> list[str]:
    """The recommended ``mode``'s purification figures per cell it ran in: the share of the
    CE→oracle gap closed, labels changed, relabel precision, suspicion AUROC (and
    cleanlab's), cost relative to CE."""
    lines = ["| cell | gap closed % | changed % | relabel P | AUROC (mode / cleanlab) | cost × CE |", "|---|---|---|---|---|---|"]
    for c in cells_with(res, cells, mode, seeds):
        prec, _ = relabel_precision(res, [c], mode, seeds)
        figures = [pct(gap_closed(res, c, mode, seeds), 0), pct(mean(res, c, mode, seeds, "changed"), 2), num(prec),
                   f"{num(mean(res, c, mode, seeds, 'auroc'), 3)} / {num(mean(res, c, 'cleanlab', seeds, 'auroc'), 3)}",
                   num(cost_ratio(res, c, mode, seeds))]  # fmt: skip
        lines.append(f"| {name(c)} | " + " | ".join(figures) + " |")
    return lines


def row_table(res, cells, seeds, rows) -> list[str]:
    """Each row over the cells it ran in: mean WAR (noisy / clean cells), gap closed, cost,
    suspicion AUROC, relabel precision and labels changed."""
    lines = ["| row | noisy cells | mean WAR, noisy | mean WAR, clean | gap closed % | cost × CE (mean / max) "
             "| AUROC, noisy | relabel P (relabels) | changed % |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ran = cells_with(res, cells, r, seeds)
        noisy, clean = [c for c in ran if c[1] != "clean"], [c for c in ran if c[1] == "clean"]

        def avg(vals):
            vals = [v for v in vals if not np.isnan(v)]
            return float(np.mean(vals)) if vals else NAN

        costs = [cost_ratio(res, c, r, seeds) for c in ran]
        prec, n = relabel_precision(res, ran, r, seeds)
        lines.append(
            f"| {r} | {len(noisy)} | {pct(avg([mean(res, c, r, seeds) for c in noisy]))} "
            f"| {pct(avg([mean(res, c, r, seeds) for c in clean]))} | {pct(avg([gap_closed(res, c, r, seeds) for c in noisy]), 0)} "
            f"| {num(avg(costs))} / {num(max(costs, default=NAN))} | {num(avg([mean(res, c, r, seeds, 'auroc') for c in noisy]), 3)} "
            f"| {num(prec)} ({n}) | {pct(avg([mean(res, c, r, seeds, 'changed') for c in ran]), 2)} |"
        )
    return lines


def paired(res, cell, row, other, seeds) -> str:
    """``mean ± standard error (higher in n of m seeds)`` of ``row − other`` paired by seed."""
    d = np.array([res[(cell, row, s)]["war"] - res[(cell, other, s)]["war"] for s in seeds
                  if (cell, row, s) in res and (cell, other, s) in res])  # fmt: skip
    if len(d) < 2:
        return "–"
    se = d.std(ddof=1) / np.sqrt(len(d))
    return f"{100 * d.mean():+.1f} ± {100 * se:.1f} ({(d > 0).sum()} of {len(d)})"


def spread_table(res, cells, seeds, mode) -> list[str]:
    """Per cell: the standard deviation of WAR over seeds (CE, oracle, the mode); oracle − CE
    (whether the network learns the classes beyond the seed spread), the mode − CE and the
    mode − the cell's best peer, paired by seed (mean ± standard error)."""
    lines = [f"| cell | sd CE | sd oracle | sd {mode} | oracle − CE | {mode} − CE | {mode} − best peer |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        sd = []
        for r in ("CE", "oracle", mode):
            v = [res[(c, r, s)]["war"] for s in seeds if (c, r, s) in res]
            sd.append(pct(float(np.std(v, ddof=1))) if len(v) > 1 else "–")
        if sd[0] == "–" and sd[2] == "–":
            continue
        ran = {p: mean(res, c, p, seeds) for p in PEERS if not np.isnan(mean(res, c, p, seeds))}
        best = max(ran, key=ran.get) if ran else None
        vs_best = f"{paired(res, c, mode, best, seeds)} vs {best}" if best else "–"
        lines.append(f"| {name(c)} | " + " | ".join([*sd, paired(res, c, "oracle", "CE", seeds), paired(res, c, mode, "CE", seeds), vs_best]) + " |")
    return lines


def ablation_table(res, cells, seeds, rows) -> list[str]:
    """Each ablation row (``<mode> key=value ...``) per cell it ran in, its mean difference to
    its mode's defaults, and its relabels."""
    cells = [c for c in cells if any((c, r, s) in res for r in rows for s in seeds)]
    lines = ["| row | " + " | ".join(map(name, cells)) + " | mean Δ WAR | better / worse cells | relabel P | changed % |",
             "|---|" + "---|" * (len(cells) + 4)]  # fmt: skip
    for r in rows:
        base = parse_row(r).mode
        vals = {c: mean(res, c, r, seeds) for c in cells}
        d = np.array([vals[c] - mean(res, c, base, seeds) for c in cells if not np.isnan(vals[c] - mean(res, c, base, seeds))])
        tail = f"{100 * d.mean():+.2f} | {(d > 0.002).sum()} / {(d < -0.002).sum()}" if len(d) else "– | –"
        prec, n = relabel_precision(res, cells, r, seeds)
        ch = [mean(res, c, r, seeds, "changed") for c in cells if not np.isnan(vals[c])]
        lines.append(f"| {r} | " + " | ".join(pct(vals[c]) for c in cells) + f" | {tail} | {num(prec)} ({n}) | {pct(float(np.mean(ch)) if ch else NAN, 2)} |")
    return lines


def time_lines(res, cells, seeds, timings: list[dict]) -> list[str]:
    """CPU time of the runs in the table by row, and the wall time of the recent ``run``s."""
    lines = ["| row | runs | CPU minutes |", "|---|---|---|"]
    rows = order_rows({k[1] for k in res if k[0] in cells})
    for r in rows:
        runs = [res[(c, r, s)] for c in cells for s in seeds if (c, r, s) in res]
        lines.append(f"| {r} | {len(runs)} | {sum(x['cpu'] for x in runs) / 60:.1f} |")
    for t in timings[-5:]:
        lines.append(f"\n`{t['command']}`: {t['runs']} runs in {t['wall_s'] / 60:.1f} min wall ({t['jobs']} jobs, {t['when']})")
    return lines
