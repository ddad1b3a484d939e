"""The run report: one self-contained HTML page about a run folder.

>>> from d2sp.runs.report import write_report
>>> write_report("runs/demo/d2sp")  # -> runs/demo/d2sp/report.html

The page holds the run's config, its purification mode in the mode's own words
(:meth:`d2sp.purify.Purifier.describe`) with its resolved options and its decisions in words
(``events.txt``), its training curves (loss, train accuracy, test WAR/UAR), the confusion
matrices of the best and the final epoch, the weight and score distributions of the samples
by their final state (kept, undecided, corrected, pruned), the per-class and per-epoch counts
of pruned and corrected samples, frame strips of the pruned clips (lowest score first) and of
the corrected clips (largest Δp first) and, for SynthDFER, the precision and recall of the
purification against the generator's ground truth. Every image is an inline PNG, so the page
opens offline and can be mailed as one file.

A run folder is what :func:`d2sp.train` writes: ``config.yaml``, ``metrics.jsonl``,
``ledger.npz`` (needed here) and ``summary.json``, ``class_counts.json`` (used when present).
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import numpy as np
import yaml

from d2sp.config import RunConfig
from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED, UNDECIDED, Ledger
from d2sp.runs.folder import (
    RunFolder,
    RunFolderError,
    last_recorded,
    met_in_training,
    purify_options,
    read_run,
    read_skipped,
)
from d2sp.runs.report_html import (
    COLORS,
    CSS,
    band_caption,
    cards,
    count_axis,
    duration,
    epoch_axis,
    figure,
    fmt,
    img_tag,
    no_decision_band,
    pct,
    png,
    shade_band,
    table,
)
from d2sp.runs.report_mode import section_mode

STATE_GROUPS = {"kept": KEPT, "undecided": UNDECIDED, "corrected": CORRECTED, "pruned": PRUNED}
GALLERY_LIMIT = 24
STRIP_FRAMES = 6
STRIP_HEIGHT = 64


# ------------------------------------------------------------------------------ selection


def select_gallery(ledger: Ledger, *, kind: str, limit: int = GALLERY_LIMIT) -> np.ndarray:
    """Indices of the samples shown in a gallery, at the final epoch, best examples first.

    ``kind="pruned"``: pruned samples, lowest score first; ``kind="corrected"``: corrected
    samples, largest Δp first. NaN values go last; ties keep the sample order.
    """
    if kind not in ("pruned", "corrected"):
        raise ValueError(f"kind: expected 'pruned' or 'corrected', got {kind!r}")
    if ledger.num_epochs == 0:
        return np.zeros(0, dtype=np.int64)
    state = ledger.column("state")[-1]
    if kind == "pruned":
        idx = np.flatnonzero(state == PRUNED)
        key = ledger.column("score")[-1][idx].astype(np.float64)
    else:
        idx = np.flatnonzero(state == CORRECTED)
        key = -ledger.column("delta_p")[-1][idx].astype(np.float64)
    key = np.where(np.isnan(key), np.inf, key)
    return idx[np.argsort(key, kind="stable")][: max(0, limit)]


# ------------------------------------------------------------------------------ rendering


def write_report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run folder; returns its path.

    Args:
        run_dir: the run folder (``config.yaml``, ``metrics.jsonl``, ``ledger.npz``).
        out: the HTML file to write; default ``RUN_DIR/report.html``.

    Raises:
        RunFolderError: ``run_dir`` is not a run folder (the message names what is missing).
    """
    run = read_run(run_dir)
    target = Path(out) if out is not None else run.path / "report.html"
    page = render_report(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


def render_report(run: RunFolder) -> str:
    """The report of a :class:`RunFolder` as one HTML string (no external resources)."""
    notes: list[str] = []
    split = None
    try:
        split = run.load_train_split()
    except RunFolderError as e:
        notes.append(f"Clip galleries and ground truth are left out: {e}")
    if split is not None:
        run.class_names = tuple(split.class_names)
    truth = _ground_truth(run, split, notes)
    sections = [
        _section_overview(run),
        _section_config(run),
        section_mode(run),
        _section_curves(run),
        _section_confusion(run),
        _section_timeline(run),
        _section_distributions(run),
        _section_classes(run),
        _section_truth(run, truth),
        _section_skipped(run),
        _section_gallery(run, split, truth, kind="pruned"),
        _section_gallery(run, split, truth, kind="corrected"),
    ]
    sections = [s for s in sections if s[1]]  # a section with no title does not apply
    title = f"d2sp report: {run.config.name}"
    notes_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    toc = "".join(f'<a href="#{sid}">{html.escape(name)}</a>' for sid, name, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{html.escape(name)}</h2>{content}</section>'
        for sid, name, content in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{html.escape(title)}</h1><p class="sub">{html.escape(str(run.path))}</p>'
        f"<nav>{toc}</nav>{notes_html}{body}</main></body></html>\n"
    )


def _lam(cfg: RunConfig) -> float | None:
    """λ of a paper-mode run (an absolute threshold on the score); None for other modes."""
    options = purify_options(cfg)
    if cfg.purify.mode != "paper" or not options.get("cgp"):
        return None
    return float(options["lam"])


def _state_counts(ledger: Ledger) -> dict[str, np.ndarray]:
    state = ledger.column("state")  # (E, N)
    return {
        "kept": (state == KEPT).sum(axis=1),
        "corrected": (state == CORRECTED).sum(axis=1),
        "pruned": (state == PRUNED).sum(axis=1),
        "undecided": (state == UNDECIDED).sum(axis=1),
    }


# ------------------------------------------------------------------------------- sections


def _section_overview(run: RunFolder):
    m, s, cfg = run.metrics, run.summary, run.config
    last = m[-1] if m else {}
    best_epoch = _best_epoch(run)
    best = m[best_epoch - 1] if best_epoch else {}
    counts = run.ledger.final_counts() if run.ledger is not None else {}
    n = len(run.ledger.labels) if run.ledger is not None else s.get("train_samples")
    seconds = s.get("seconds") or sum(r.get("seconds", 0.0) for r in m)
    status = "finished" if s else "in progress (no summary.json yet)"
    items = [
        ("final WAR", pct(last.get("war"))),
        ("final UAR", pct(last.get("uar"))),
        (f"best WAR (epoch {best_epoch})", pct(best.get("war"))),
        ("best UAR", pct(best.get("uar"))),
        ("purification mode", html.escape(cfg.purify.mode)),
        ("training clips", str(n) if n is not None else "–"),
        ("pruned (final)", str(counts.get("pruned", "–"))),
        ("corrected (final)", str(counts.get("corrected", "–"))),
        ("skipped rows", str(s["skipped"]) if "skipped" in s else "–"),
        ("epochs", f"{len(m)}/{cfg.optim.epochs}"),
        ("time", duration(seconds)),
    ]
    return (
        "overview",
        "Overview",
        f'<p class="muted">Run {status}.</p><div class="cards">{cards(items)}</div>',
    )


def _best_epoch(run: RunFolder) -> int:
    best = run.summary.get("best_epoch")
    if isinstance(best, int) and 1 <= best <= len(run.metrics):
        return best
    if not run.metrics:
        return 0
    wars = [r.get("war", -1.0) for r in run.metrics]
    return int(np.argmax(wars)) + 1


def _section_config(run: RunFolder):
    cfg = run.config
    d, mo, p, o = cfg.data, cfg.model, cfg.purify, cfg.optim
    rows = [
        ["dataset", f"{d.dataset}" + (f" (fold {d.fold})" if d.fold is not None else "")],
        ["data root", d.root or "(default)"],
        ["data options", json.dumps(d.options) if d.options else "–"],
        ["frames × size", f"{d.num_frames} × {d.size}px"],
        ["model", mo.name + (f" {json.dumps(mo.options)}" if mo.options else "")],
        ["pretrained", mo.pretrained or "no (random initialisation)"],
        ["purification", f"mode {p.mode} (its options: Purification mode, below)"],
        [
            "optimiser",
            f"SGD lr {o.lr}, momentum {o.momentum}, wd {o.weight_decay}, "
            f"{o.schedule} schedule, batch {o.batch_size}, {o.epochs} epochs",
        ],
        ["seed, device, amp", f"{cfg.seed}, {cfg.device}, {cfg.amp}"],
    ]
    settings = table(
        ["setting", "value"], [[html.escape(k), html.escape(str(v))] for k, v in rows], left=2
    )
    try:
        text = (run.path / "config.yaml").read_text(encoding="utf-8")
    except OSError:
        text = yaml.safe_dump({})
    full = f"<details><summary>config.yaml</summary><pre>{html.escape(text)}</pre></details>"
    return "config", "Config", settings + full


def curve_series(metrics: list[dict]) -> dict[str, np.ndarray]:
    """``(E,)`` arrays of the curves: ``epoch``, ``loss``, ``train_acc``, ``war``, ``uar``
    and ``untrained`` (bool). An epoch that trained no sample (every sample pruned) has no
    loss or training accuracy (NaN), but it was still evaluated: WAR and UAR go on."""
    untrained = np.array([not r.get("trained", 1) for r in metrics], dtype=bool)

    def series(key, *, trained_only: bool):
        values = np.array([float(r.get(key, float("nan"))) for r in metrics], dtype=float)
        return np.where(untrained, np.nan, values) if trained_only else values

    return {
        "epoch": np.array([r.get("epoch", i + 1) for i, r in enumerate(metrics)]),
        "loss": series("loss", trained_only=True),
        "train_acc": series("train_acc", trained_only=True),
        "war": series("war", trained_only=False),
        "uar": series("uar", trained_only=False),
        "untrained": untrained,
    }


def _epoch_ranges(epochs: np.ndarray, mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive ``epochs`` where ``mask`` holds, as ``(first, last)``."""
    out: list[tuple[int, int]] = []
    for e, m in zip(epochs.tolist(), mask.tolist(), strict=True):
        if m and out and out[-1][1] == e - 1:
            out[-1] = (out[-1][0], e)
        elif m:
            out.append((e, e))
    return out


def _section_curves(run: RunFolder):
    c = curve_series(run.metrics)
    epochs, gaps = c["epoch"], _epoch_ranges(c["epoch"], c["untrained"])
    band = no_decision_band(run.ledger)
    fig = figure(13, 3.4)
    axes = fig.subplots(1, 3)
    axes[0].plot(epochs, c["loss"], marker=".", color="#333")
    axes[0].set_title("training loss")
    axes[1].plot(epochs, 100 * c["train_acc"], marker=".", color="#333")
    axes[1].set_title("training accuracy (%) on trained samples")
    axes[2].plot(epochs, 100 * c["war"], marker=".", label="WAR")
    axes[2].plot(epochs, 100 * c["uar"], marker=".", label="UAR")
    best = _best_epoch(run)
    if best:
        axes[2].axvline(best, color="#c44", linewidth=0.8, linestyle="--", label="best epoch")
    axes[2].set_title("test WAR / UAR (%)")
    axes[2].legend(fontsize=8)
    last = max(int(epochs.max()) if len(epochs) else 1, run.config.optim.epochs)
    for ax in axes:
        epoch_axis(ax, last)
        ax.grid(alpha=0.3)
        for first, end in gaps:
            ax.axvspan(first - 0.5, end + 0.5, color="#d33", alpha=0.07, linewidth=0)
        shade_band(ax, band)
    caption = (
        f'<p class="muted">{band_caption(run.ledger)} Training accuracy is on the samples '
        "trained that epoch, against their training labels. Dashed red line: the epoch of the "
        "best test WAR.</p>"
    )
    if gaps:
        spans = ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in gaps)
        caption += (
            f'<p class="note">Red band: epoch(s) {spans} trained no sample (every sample '
            "pruned): no training loss or accuracy there; the model was still evaluated.</p>"
        )
    return "curves", "Training curves", png(fig, alt="training curves") + caption


SKIPPED_SHOWN = 500


def _section_skipped(run: RunFolder):
    lines = read_skipped(run.path)
    if not lines:
        return "skipped", "", ""
    met = [line for line in lines if met_in_training(line)]
    head = (
        f"<p>{len(lines)} row(s) skipped as bad input (<code>data.skip_bad</code>): "
        f"{len(lines) - len(met)} when the data was read, {len(met)} met unreadable during "
        "training (left out from then on). None of them was trained on or tested; they "
        f"are listed in <code>{html.escape(str(run.path / 'skipped.txt'))}</code>.</p>"
    )
    rows = [
        [str(i), html.escape(line), "training" if line in met else "loading"]
        for i, line in enumerate(lines[:SKIPPED_SHOWN], start=1)
    ]
    more = (
        f'<p class="muted">… and {len(lines) - SKIPPED_SHOWN} more.</p>'
        if len(lines) > SKIPPED_SHOWN
        else ""
    )
    listing = table(["#", "row: reason", "found"], rows, left=2)
    return "skipped", "Skipped rows", head + listing + more


def _section_confusion(run: RunFolder):
    names = run.class_names
    best = _best_epoch(run)
    picks = (
        [("best", best), ("final", len(run.metrics))]
        if best != len(run.metrics)
        else [("best = final", best)]
    )
    panels = [(t, e, run.metrics[e - 1].get("confusion")) for t, e in picks]
    panels = [(t, e, np.asarray(cm, dtype=np.float64)) for t, e, cm in panels if cm]
    if not panels:
        return (
            "confusion",
            "Confusion matrices",
            '<p class="muted">No confusion matrix recorded.</p>',
        )
    k = panels[0][2].shape[0]
    labels = list(names) if len(names) == k else [str(i) for i in range(k)]
    side = max(4.2, 0.5 * k + 2.2)
    fig = figure(side * len(panels), side)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, epoch, cm) in zip(axes, panels, strict=True):
        support = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
        ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "#222",
                )
        ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        war = run.metrics[epoch - 1].get("war", float("nan"))
        uar = run.metrics[epoch - 1].get("uar", float("nan"))
        ax.set_title(f"{title}: epoch {epoch} (WAR {pct(war)}, UAR {pct(uar)})", fontsize=10)
    caption = '<p class="muted">Test split, rows normalised to the true class.</p>'
    return "confusion", "Confusion matrices", png(fig, alt="confusion matrices") + caption


def _section_timeline(run: RunFolder):
    ledger = run.ledger
    counts = _state_counts(ledger)
    epochs = np.arange(1, ledger.num_epochs + 1)
    state = ledger.column("state")
    label = ledger.column("label")
    out = (state == PRUNED).astype(np.int8)
    moved = np.zeros(len(epochs), dtype=np.int64)
    if len(epochs) > 1:
        moved[1:] = ((out[1:] != out[:-1]) | (label[1:] != label[:-1])).sum(axis=1)
    band = no_decision_band(ledger)
    fig = figure(13, 3.4)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    for values, style in (
        (counts["pruned"], dict(marker=".", color=COLORS["pruned"], label="pruned")),
        (counts["corrected"], dict(marker=".", color=COLORS["corrected"], label="corrected")),
        (moved, dict(linestyle="--", color="#777", label="changed since previous epoch")),
    ):
        ax.plot(epochs, values, clip_on=False, zorder=3, **style)
    ax.set_title("pruned and corrected samples per epoch")
    count_axis(ax, np.concatenate([counts["pruned"], counts["corrected"], moved]))
    ax.legend(fontsize=8)
    if not (counts["pruned"].any() or counts["corrected"].any() or moved.any()):
        ax.text(0.5, 0.5, "no sample pruned or corrected in any epoch", transform=ax.transAxes,
                ha="center", color="#777")  # fmt: skip
    ax = axes[1]
    bottom = np.zeros(len(epochs))
    for key in ("kept", "corrected", "pruned", "undecided"):
        ax.bar(epochs, counts[key], bottom=bottom, color=COLORS[key], label=key, width=0.85)
        bottom += counts[key]
    ax.set_title("state of every training sample at the end of each epoch")
    count_axis(ax, bottom)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for a in axes:
        epoch_axis(a, len(epochs))
        a.grid(alpha=0.3, axis="y")
        shade_band(a, band)
    rows = [
        [str(e)]
        + [str(counts[k][i]) for k in ("kept", "corrected", "pruned", "undecided")]
        + [str(moved[i])]
        for i, e in enumerate(epochs)
    ]
    counts_table = table(["epoch", "kept", "corrected", "pruned", "undecided", "changed"], rows)
    details = f"<details><summary>per-epoch counts</summary>{counts_table}</details>"
    nothing = (
        ""
        if (counts["pruned"].any() or counts["corrected"].any())
        else (" No sample was pruned or corrected in any epoch.")
    )
    fixed = _selects_before_training(run.config.purify.mode)
    when = (
        f" Mode {run.config.purify.mode} fixed its kept set and labels before training."
        if fixed
        else " A decision taken at the end of epoch e governs epoch e + 1."
    )
    caption = (
        f'<p class="muted">{band_caption(ledger)}{nothing}{when} States (from the ledger): '
        "kept — decided and trained with its annotation; corrected — trained with another label; pruned — left out of the next "
        "epoch; undecided — no decision for the sample yet. “changed” counts samples that "
        "entered or left the pruned set or changed label.</p>"
    )
    return (
        "timeline",
        "Purification timeline",
        png(fig, alt="purification timeline") + caption + details,
    )


def _section_distributions(run: RunFolder):
    ledger = run.ledger
    state = ledger.column("state")[-1]
    weights = ledger.column("weight").astype(np.float64)  # (E, N)
    weight = last_recorded(weights)
    score = ledger.column("score")[-1].astype(np.float64)
    score[(ledger.column("pred") < 0).all(axis=0)] = np.nan  # never recorded: no score
    groups = {name: state == code for name, code in STATE_GROUPS.items()}
    branch = has_weight_branch(weights)
    fig = _weight_histograms(
        weight, score, groups, lam=_lam(run.config), score_title=_score_title(run), branch=branch
    )
    recorded = np.isfinite(weights[-1])
    groups_table = _weight_table(weight, score, groups, recorded=recorded, branch=branch)
    lam = _lam(run.config)
    marks = (
        f" The dashed line is λ = {lam:g}: a sample scoring at or below it is pruned."
        if lam is not None
        else ""
    )
    caption = (
        f'<p class="muted">Groups by the state at the final epoch. Weight w: each sample\'s '
        f"last recorded weight. Score S: the score the mode wrote to the ledger at the final epoch "
        f"(what its decision looked at; none for a sample never recorded).{marks} “no record in the final epoch”: samples the mode neither recorded "
        "while training nor re-scored in that epoch (e.g. pruned samples it does not re-score, "
        "or samples outside the share it re-scores that epoch); their w is from an earlier "
        "epoch.</p>"
    )
    return (
        "distributions",
        "Weights and scores at the final epoch",
        png(fig, alt="weight and score histograms") + caption + groups_table,
    )


def _weight_histograms(weight, score, groups: dict, *, lam, score_title: str, branch: bool):
    """Histograms of the weight (left) and score (right) of each group, λ marked."""
    fig = figure(13, 3.4)
    axes = fig.subplots(1, 2)
    panels = (
        (axes[0], weight, "weight w", "weight w (last record of each sample)"),
        (axes[1], score, "score S", score_title),
    )
    for ax, values, xlabel, title in panels:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        if ax is axes[0] and not branch:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "this mode trains without a weight branch (w = 1)",
                    transform=ax.transAxes, ha="center", color="#777")  # fmt: skip
            continue
        _histogram(ax, values, groups, marks=[lam] if lam is not None and ax is axes[1] else [])
    if lam is not None and axes[1].get_legend_handles_labels()[0]:
        axes[1].axvline(lam, color="#c44", linestyle="--", linewidth=1)
        axes[1].text(
            lam, axes[1].get_ylim()[1] * 0.95, f" λ = {lam:g}", color="#c44", fontsize=8, va="top"
        )
    return fig


def _weight_table(weight, score, groups: dict, *, recorded, branch: bool) -> str:
    """Per group: size, mean and median weight, mean score, samples with no final record."""
    rows = []
    for key, mask in groups.items():
        w = weight[mask & np.isfinite(weight)] if branch else np.zeros(0)
        s = score[mask & np.isfinite(score)]
        rows.append(
            [
                key,
                str(int(mask.sum())),
                fmt(np.mean(w)) if w.size else "–",
                fmt(np.median(w)) if w.size else "–",
                fmt(np.mean(s)) if s.size else "–",
                str(int((mask & ~recorded).sum())),
            ]
        )
    header = ["group (final state)", "samples", "mean w", "median w", "mean S"]
    return table([*header, "no record in the final epoch"], rows)


def _section_classes(run: RunFolder):
    ledger, names = run.ledger, run.class_names
    k = len(names)
    given = ledger.labels.astype(np.int64)
    state = ledger.column("state")[-1]
    final = ledger.column("label")[-1].astype(np.int64)
    pruned = state == PRUNED
    corrected = state == CORRECTED
    counts = {
        "total": np.bincount(given, minlength=k)[:k],
        "pruned": np.bincount(given[pruned], minlength=k)[:k],
        "away": np.bincount(given[corrected], minlength=k)[:k],
        "into": np.bincount(final[corrected], minlength=k)[:k],
    }
    share = np.divide(counts["pruned"], counts["total"], out=np.zeros(k), where=counts["total"] > 0)
    if pruned.any() or corrected.any():
        chart = png(_class_figure(names, counts, share), alt="per-class counts")
    else:
        chart = '<p class="muted">No sample is pruned or corrected at the final epoch.</p>'
    class_table = _class_table(names, counts, share)
    matrix = _correction_matrix(names, given[corrected], final[corrected])
    return "classes", "Per-class counts (final epoch)", chart + class_table + matrix


def _class_figure(names, counts: dict, share):
    """Bars of pruned and corrected samples per given class, and the share of each pruned."""
    k = len(names)
    x = np.arange(k)
    fig = figure(13, 3.6)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    ax.bar(x - 0.2, counts["pruned"], width=0.4, color=COLORS["pruned"], label="pruned")
    ax.bar(x + 0.2, counts["away"], width=0.4, color=COLORS["corrected"], label="corrected")
    ax.set_title("pruned and corrected samples per given class")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    count_axis(ax, np.concatenate([counts["pruned"], counts["away"]]))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.bar(x, 100 * share, color=COLORS["pruned"])
    ax.set_title("share of each given class pruned (%)")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, axis="y")
    return fig


def _class_table(names, counts: dict, share) -> str:
    """Per class (and all): given, pruned, corrected away and into, kept with the label."""
    total, n_pruned, away, into = (counts[c] for c in ("total", "pruned", "away", "into"))
    rows = [
        [
            html.escape(names[i]),
            str(total[i]),
            str(n_pruned[i]),
            pct(share[i]) if total[i] else "–",
            str(away[i]),
            str(into[i]),
            str(total[i] - n_pruned[i] - away[i] + into[i]),
        ]
        for i in range(len(names))
    ]
    rows.append(
        [
            "<b>all</b>",
            str(total.sum()),
            str(n_pruned.sum()),
            pct(n_pruned.sum() / max(1, total.sum())),
            str(away.sum()),
            str(into.sum()),
            str(total.sum() - n_pruned.sum()),
        ]
    )
    return table(
        [
            "class",
            "given",
            "pruned",
            "pruned %",
            "corrected away",
            "corrected into",
            "not pruned, with this label",
        ],
        rows,
    )


def _correction_matrix(names, given, new) -> str:
    """Collapsible given → new label counts of the corrected samples; empty without any."""
    if not len(given):
        return ""
    k = len(names)
    flows = np.zeros((k, k), dtype=np.int64)
    np.add.at(flows, (given, new), 1)
    mrows = [
        [html.escape(names[i])] + [str(v) if v else "·" for v in flows[i]]
        for i in range(k)
        if flows[i].any()
    ]
    return (
        "<details><summary>corrections: given label (rows) → new label (columns)</summary>"
        + table(["given \\ new", *names], mrows)
        + "</details>"
    )


def _ground_truth(run: RunFolder, split, notes: list[str]) -> dict | None:
    if split is None or split.ground_truth is None:
        return None
    gt = split.ground_truth
    if len(gt["index"]) != len(run.ledger.labels):
        notes.append("SynthDFER ground truth does not match the ledger's size; left out")
        return None
    return gt


def _section_truth(run: RunFolder, gt: dict | None):
    if gt is None:
        return "truth", "", ""
    from d2sp.training.metrics import purification_scores

    ledger = run.ledger
    state = ledger.column("state")
    labels = ledger.column("label")
    rows = [
        purification_scores(
            state[e],
            labels[e],
            low_quality=gt["low_quality"],
            true_label=gt["true_label"],
            given_label=gt["given_label"],
        )
        for e in range(ledger.num_epochs)
    ]
    noise_table = _truth_table(gt, state[-1], labels[-1])
    fig = _truth_figure(run, rows)
    n = len(ledger.labels)
    caption = (
        f'<p class="muted">Final epoch, {n} training clips. Chance: a random prune hits a '
        f"low-quality clip {pct(gt['low_quality'].mean())} of the time. A correction is right "
        "when the new label is the true one; correction recall is over all wrong labels. "
        "Precision is left out (no point) in an epoch with nothing pruned or corrected.</p>"
    )
    band = band_caption(ledger)
    figure_caption = f'<p class="muted">{band}</p>' if band else ""
    return (
        "truth",
        "Against SynthDFER ground truth",
        f'<div class="cards">{_truth_cards(rows[-1], gt)}</div>{caption}{noise_table}'
        + png(fig, alt="precision and recall per epoch")
        + figure_caption,
    )


def _truth_cards(final: dict, gt: dict) -> str:
    """Cards of the final precision and recall and of the amount of injected noise."""
    return cards(
        [
            ("pruning precision", pct(final["prune_precision"])),
            ("pruning recall", pct(final["prune_recall"])),
            ("correction precision", pct(final["correct_precision"])),
            ("correction recall", pct(final["correct_recall"])),
            (
                "low-quality clips",
                f"{int(gt['low_quality'].sum())} ({pct(gt['low_quality'].mean())})",
            ),
            ("wrong labels", f"{int(gt['mislabeled'].sum())} ({pct(gt['mislabeled'].mean())})"),
            ("wrong labels pruned", str(final["pruned_mislabeled"])),
        ]
    )


def _truth_table(gt: dict, final_state, final_label) -> str:
    """Per ground-truth noise kind: samples, how many were pruned, corrected, corrected right."""
    kinds = []
    for kind in sorted(set(gt["noise"].tolist()), key=lambda x: (x != "none", x)):
        mask = gt["noise"] == kind
        pr = int((mask & (final_state == PRUNED)).sum())
        co = int((mask & (final_state == CORRECTED)).sum())
        right = int((mask & (final_state == CORRECTED) & (final_label == gt["true_label"])).sum())
        kinds.append(
            [
                html.escape(kind),
                str(int(mask.sum())),
                str(pr),
                pct(pr / mask.sum()),
                str(co),
                str(right),
            ]
        )
    return table(
        ["ground-truth noise", "samples", "pruned", "pruned %", "corrected", "corrected to truth"],
        kinds,
    )


def _truth_figure(run: RunFolder, rows: list[dict]):
    """Precision and recall of pruning (left) and correction (right) per epoch."""
    epochs = np.arange(1, len(rows) + 1)
    band = no_decision_band(run.ledger)
    fig = figure(13, 3.2)
    axes = fig.subplots(1, 2)
    for ax, what, title in (
        (axes[0], "prune", "pruning vs low quality"),
        (axes[1], "correct", "correction vs wrong labels"),
    ):
        ax.plot(epochs, [100 * r[f"{what}_precision"] for r in rows], marker=".", label="precision")
        ax.plot(epochs, [100 * r[f"{what}_recall"] for r in rows], marker=".", label="recall")
        ax.set_ylim(-2, 102)
        ax.set_title(f"{title} (%)")
        epoch_axis(ax, len(epochs))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        shade_band(ax, band)
    return fig


def _section_gallery(run: RunFolder, split, gt: dict | None, *, kind: str):
    ledger = run.ledger
    title = "Pruned clips" if kind == "pruned" else "Corrected clips"
    sid = f"gallery-{kind}"
    state = ledger.column("state")[-1]
    total = int((state == (PRUNED if kind == "pruned" else CORRECTED)).sum())
    idx = select_gallery(ledger, kind=kind)
    order = _gallery_order(ledger, idx, kind=kind)
    head = (
        f'<p class="muted">{total} {kind} at the final epoch; showing {len(idx)}, {order}. '
        f"{STRIP_FRAMES} frames per clip.</p>"
    )
    if total == 0:
        return sid, title, f'<p class="muted">No {kind} clips at the final epoch.</p>'
    if split is None:
        return (
            sid,
            title,
            head + '<p class="note">Frames unavailable (training data not readable).</p>',
        )
    columns = _gallery_columns(ledger)
    items = []
    for i in idx.tolist():
        sample = split.samples[i]
        cap = _clip_caption(run, columns, i, sample, gt, kind=kind)
        items.append(f'<div class="clip" data-index="{i}">{_frame_strip(split, sample)}{cap}</div>')
    return sid, title, head + f'<div class="gallery">{"".join(items)}</div>'


def _short_source(sample) -> str:
    """``file:row`` with the file's folder left out (the full path is in the tooltip)."""
    file, sep, row = sample.source.rpartition(":")
    if sep and row.isdigit():
        return f"{Path(file).name}:{row}"
    return Path(sample.source).name if sample.source else ""


def _name(names, k: int) -> str:
    return names[k] if 0 <= k < len(names) else str(k)


def _since(states: np.ndarray, target: int) -> int:
    """First epoch (1-based) of the final run of ``target`` states."""
    e = len(states)
    while e > 0 and states[e - 1] == target:
        e -= 1
    return e + 1


def _frame_strip(split, sample) -> str:
    """An inline PNG of ``STRIP_FRAMES`` frames side by side, or a note when unreadable."""
    from PIL import Image

    try:
        frames = split.source.read(sample, num_segments=STRIP_FRAMES, train=False, rng=None)
    except Exception as e:  # noqa: BLE001 - any reader failure is shown, not raised
        return f'<p class="note">frames not readable: {html.escape(str(e))}</p>'
    tiles = []
    for frame in np.asarray(frames, dtype=np.uint8):
        img = Image.fromarray(frame)
        width = max(1, round(img.width * STRIP_HEIGHT / max(1, img.height)))
        tiles.append(img.resize((width, STRIP_HEIGHT), Image.BILINEAR))
    gap = 2
    strip = Image.new(
        "RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), STRIP_HEIGHT), (255, 255, 255)
    )
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + gap
    buf = io.BytesIO()
    strip.save(buf, format="PNG", optimize=True)
    return img_tag(buf.getvalue(), alt=f"frames of {Path(sample.path).name}")


def has_weight_branch(weights: np.ndarray) -> bool:
    """Whether the recorded weights come from a weight branch (a mode without one records
    w = 1 for every sample)."""
    finite = weights[np.isfinite(weights)]
    return bool(finite.size) and not np.all(finite == 1.0)


def _selects_before_training(mode: str) -> bool:
    from d2sp.purify import purifier_class

    try:
        return bool(purifier_class(mode).selects_before_training)
    except ValueError:
        return False


def _score_title(run: RunFolder) -> str:
    """What the score S is, for the histogram's title (the paper mode's definition is known)."""
    if run.config.purify.mode == "paper":
        options = purify_options(run.config)
        p = "p[ŷ]" if options.get("score", "max") == "max" else "p[y]"
        return f"score S = mean w·{p} over the last t = {options.get('t')} records, final epoch"
    return f"score S that mode {run.config.purify.mode} recorded, final epoch"


def _histogram(ax, values, groups: dict, *, marks: list[float]) -> None:
    """One histogram per group of the finite ``values``; a note when there is none."""
    finite = values[np.isfinite(values)]
    span = np.concatenate([finite, marks]) if finite.size or marks else np.array([0.0, 1.0])
    lo, hi = float(span.min()), float(span.max())
    pad = max(0.02, 0.05 * (hi - lo))
    bins = np.linspace(max(0.0, lo - pad), max(min(1.0, hi + pad), hi), 41)
    for key, mask in groups.items():
        v = values[mask & np.isfinite(values)]
        if v.size:
            ax.hist(v, bins=bins, color=COLORS[key], alpha=0.55, label=f"{key} ({v.size})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        count_axis(ax, [ax.get_ylim()[1] / 1.08])
        ax.legend(fontsize=8)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no value recorded", transform=ax.transAxes, ha="center", color="#777")


def _gallery_order(ledger: Ledger, idx: np.ndarray, *, kind: str) -> str:
    """How the shown clips are ordered, as :func:`select_gallery` ordered them: by score or Δp
    where those differ, else in the training list's order."""
    never = (ledger.column("pred")[:, idx] < 0).all(axis=0)
    key = ledger.column("score" if kind == "pruned" else "delta_p")[-1][idx].astype(np.float64)
    key = key[~never & np.isfinite(key)]
    if key.size > 1 and np.ptp(key) > 0:
        return "lowest score first" if kind == "pruned" else "largest Δp first"
    what = "score" if kind == "pruned" else "Δp"
    why = f"none has a recorded {what}" if key.size == 0 else f"all have the same {what}"
    return f"in the training list's order ({why})"


def _gallery_columns(ledger: Ledger) -> dict[str, np.ndarray]:
    """Per sample: last recorded weight and prediction (-1: never recorded), the final score,
    Δp and label, and every epoch's state; ``branch``: whether the weights are a branch's."""
    weights = ledger.column("weight")
    preds = ledger.column("pred")  # (E, N), -1 where not recorded
    seen = preds >= 0
    last = len(preds) - 1 - seen[::-1].argmax(axis=0)
    return {
        "weight": last_recorded(weights),
        "branch": np.array(has_weight_branch(weights.astype(np.float64))),
        "pred": np.where(seen.any(axis=0), preds[last, np.arange(preds.shape[1])], -1),
        "score": ledger.column("score")[-1],
        "delta": ledger.column("delta_p")[-1],
        "final": ledger.column("label")[-1],
        "state": ledger.column("state"),
    }


def _clip_caption(run: RunFolder, columns: dict, i: int, sample, gt, *, kind: str) -> str:
    """The caption under one clip's frames: where it is, its labels, what the ledger holds."""
    names = run.class_names
    given, new = int(run.ledger.labels[i]), int(columns["final"][i])
    label_txt = html.escape(_name(names, given))
    if kind == "corrected":
        label_txt = f"{label_txt} → <b>{html.escape(_name(names, new))}</b>"
    since = _since(columns["state"][:, i], PRUNED if kind == "pruned" else CORRECTED)
    p = int(columns["pred"][i])
    if p < 0:
        record = "never recorded (neither trained on nor re-scored in any epoch)"
    else:
        w = f"w {fmt(columns['weight'][i])} · " if bool(columns["branch"]) else ""
        record = (
            f"last prediction {html.escape(_name(names, p))} · {w}S {fmt(columns['score'][i])}"
            f" · Δp {fmt(columns['delta'][i])}"
        )
    truth = ""
    if gt is not None:
        true = int(gt["true_label"][i])
        good = bool(gt["low_quality"][i]) if kind == "pruned" else new == true
        truth = (
            f'<div><span class="tag {"ok" if good else "bad"}">true label '
            f"{html.escape(_name(names, true))} · noise: {html.escape(str(gt['noise'][i]))}"
            "</span></div>"
        )
    return (
        f'<div class="cap"><div class="path" title="{html.escape(sample.path)}">#{i} '
        f"{html.escape(Path(sample.path).name)} · {html.escape(_short_source(sample))}</div>"
        f"<div>label {label_txt} · {kind} since epoch {since}</div>"
        f"<div>{record}</div>{truth}</div>"
    )
