"""The run report: one self-contained HTML page about a run folder.

>>> from d2sp.runs.report import write_report
>>> write_report("runs/demo/d2sp")  # -> runs/demo/d2sp/report.html

The page holds the run's config, its training curves (loss, train accuracy, test WAR/UAR),
the confusion matrices of the best and the final epoch, the weight and score distributions
of kept, corrected and pruned samples at the final epoch, the per-class and per-epoch counts
of pruned and corrected samples, frame strips of the pruned clips (lowest score first) and of
the corrected clips (largest Δp first) and, for SynthDFER, the precision and recall of the
purification against the generator's ground truth. Every image is an inline PNG, so the page
opens offline and can be mailed as one file.

A run folder is what :func:`d2sp.train` writes: ``config.yaml``, ``metrics.jsonl``,
``ledger.npz`` (needed here) and ``summary.json``, ``class_counts.json`` (used when present).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
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

GALLERY_LIMIT = 24
STRIP_FRAMES = 6
STRIP_HEIGHT = 64
COLORS = {"kept": "#4c72b0", "corrected": "#55a868", "pruned": "#dd8452", "undecided": "#b0b0b0"}


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
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{html.escape(title)}</h1><p class="sub">{html.escape(str(run.path))}</p>'
        f"<nav>{toc}</nav>{notes_html}{body}</main></body></html>\n"
    )


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
margin:0;background:#f6f7f9;color:#1f2328;font-size:14px}
main{max-width:1300px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:0 0 10px}
.sub{color:#667;margin:0 0 10px;font-family:ui-monospace,monospace;font-size:12px}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;margin:0 0 14px}
nav a{color:#3a5ba0;text-decoration:none}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 18px;
margin:0 0 14px}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{padding:3px 10px;border-bottom:1px solid #eceef1;text-align:right}
th{background:#f2f4f7;font-weight:600}
td.l,th.l{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #dde1e6;border-radius:6px;padding:6px 12px;min-width:96px}
.card .v{font-size:20px;font-weight:600}.card .k{color:#667;font-size:12px}
.cols{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
img.fig{max-width:100%;height:auto}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
.clip{border:1px solid #dde1e6;border-radius:5px;padding:6px;width:392px;background:#fafbfc}
.clip img{display:block;max-width:100%;height:auto}
.clip .cap{font-size:12px;margin-top:4px;line-height:1.35}
.clip .path{font-family:ui-monospace,monospace;font-size:11px;color:#556;
overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tag{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;margin-right:4px}
.ok{background:#dff3e4;color:#1d6b34}.bad{background:#fbe3d6;color:#8a3b12}
.note{color:#6b5a00;background:#fff8d6;border:1px solid #f0e0a0;border-radius:4px;
padding:6px 10px}
.muted{color:#667}
details pre{background:#f6f8fa;padding:8px;border-radius:4px;font-size:12px;overflow:auto}
"""


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _png(fig, *, alt: str, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return _img_tag(buf.getvalue(), alt=alt, cls="fig")


def _img_tag(png: bytes, *, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    try:
        value = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _pct(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * float(x):.1f}%"


def _table(header: list[str], rows: list[list], *, left: int = 1) -> str:
    def cell(tag, i, v):
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{v}</{tag}>"

    head = "".join(cell("th", i, html.escape(str(h))) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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


def _warmup_line(ax, cfg: RunConfig, epochs: int) -> None:
    """Shade the warm-up epochs (trained on every sample, no decision yet)."""
    options = purify_options(cfg)
    warm = options.get("warmup_epochs") or 0
    if (options.get("cgp") or options.get("fgc")) and 0 < warm < epochs:
        ax.axvspan(0.5, warm + 0.5, color="#888", alpha=0.08, linewidth=0)
        ax.text(
            0.6,
            0.99,
            "warm-up",
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            color="#777",
            va="top",
        )


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
    cards = [
        ("final WAR", _pct(last.get("war"))),
        ("final UAR", _pct(last.get("uar"))),
        (f"best WAR (epoch {best_epoch})", _pct(best.get("war"))),
        ("best UAR", _pct(best.get("uar"))),
        ("training clips", str(n) if n is not None else "–"),
        ("pruned (final)", str(counts.get("pruned", "–"))),
        ("skipped rows", str(s["skipped"]) if "skipped" in s else "–"),
        ("corrected (final)", str(counts.get("corrected", "–"))),
        ("epochs", f"{len(m)}/{cfg.optim.epochs}"),
        ("time", f"{seconds / 60:.1f} min" if seconds else "–"),
    ]
    html_cards = "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{html.escape(k)}</div></div>'
        for k, v in cards
    )
    return (
        "overview",
        "Overview",
        f'<p class="muted">Run {status}.</p><div class="cards">{html_cards}</div>',
    )


def _best_epoch(run: RunFolder) -> int:
    best = run.summary.get("best_epoch")
    if isinstance(best, int) and 1 <= best <= len(run.metrics):
        return best
    if not run.metrics:
        return 0
    wars = [r.get("war", -1.0) for r in run.metrics]
    return int(np.argmax(wars)) + 1


def _mode_options(run: RunFolder) -> str:
    """The mode's resolved options, ``name=value``, those set by the config marked ``*``."""
    resolved = purify_options(run.config)
    given = run.config.purify.options
    return ", ".join(f"{k}={v}{'*' if k in given else ''}" for k, v in resolved.items()) or "(none)"


def _section_config(run: RunFolder):
    cfg = run.config
    d, mo, p, o = cfg.data, cfg.model, cfg.purify, cfg.optim
    rows = [
        ["dataset", f"{d.dataset}" + (f" (fold {d.fold})" if d.fold is not None else "")],
        ["data root", d.root or "(default)"],
        ["data options", json.dumps(d.options) if d.options else "–"],
        ["frames × size", f"{d.num_frames} × {d.size}px"],
        ["model", mo.name + (f" {json.dumps(mo.options)}" if mo.options else "")],
        ["purification", p.mode],
        ["mode options", _mode_options(run)],
        [
            "optimiser",
            f"SGD lr {o.lr}, momentum {o.momentum}, wd {o.weight_decay}, "
            f"{o.schedule} schedule, batch {o.batch_size}, {o.epochs} epochs",
        ],
        ["seed, device, amp", f"{cfg.seed}, {cfg.device}, {cfg.amp}"],
    ]
    table = _table(
        ["setting", "value"], [[html.escape(k), html.escape(v)] for k, v in rows], left=2
    )
    try:
        text = (run.path / "config.yaml").read_text(encoding="utf-8")
    except OSError:
        text = yaml.safe_dump({})
    full = f"<details><summary>config.yaml</summary><pre>{html.escape(text)}</pre></details>"
    return "config", "Config", table + full


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
    fig = _figure(13, 3.4)
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
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(epochs):
            ax.set_xlim(0.5, max(int(epochs.max()), run.config.optim.epochs) + 0.5)
        for first, last in gaps:
            ax.axvspan(first - 0.5, last + 0.5, color="#d33", alpha=0.07, linewidth=0)
        _warmup_line(ax, run.config, len(run.metrics))
    caption = (
        '<p class="muted">Grey band: warm-up epochs (every sample trained, no decision). '
        "Training accuracy is on the samples trained that epoch, against their training "
        "labels.</p>"
    )
    if gaps:
        spans = ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in gaps)
        caption += (
            f'<p class="note">Red band: epoch(s) {spans} trained no sample (every sample '
            "pruned): no training loss or accuracy there; the model was still evaluated.</p>"
        )
    return "curves", "Training curves", _png(fig, alt="training curves") + caption


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
    table = _table(["#", "row: reason", "found"], rows, left=2)
    return "skipped", "Skipped rows", head + table + more


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
    fig = _figure(side * len(panels), side)
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
        ax.set_title(f"{title}: epoch {epoch} (WAR {_pct(war)}, UAR {_pct(uar)})", fontsize=10)
    caption = '<p class="muted">Test split, rows normalised to the true class.</p>'
    return "confusion", "Confusion matrices", _png(fig, alt="confusion matrices") + caption


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
    fig = _figure(13, 3.4)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    ax.plot(epochs, counts["pruned"], marker=".", color=COLORS["pruned"], label="pruned")
    ax.plot(epochs, counts["corrected"], marker=".", color=COLORS["corrected"], label="corrected")
    ax.plot(epochs, moved, linestyle="--", color="#777", label="changed since previous epoch")
    ax.set_title("pruned and corrected samples per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    bottom = np.zeros(len(epochs))
    for key in ("kept", "corrected", "pruned", "undecided"):
        ax.bar(epochs, counts[key], bottom=bottom, color=COLORS[key], label=key, width=0.85)
        bottom += counts[key]
    ax.set_title("state of every training sample at the end of each epoch")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for a in axes:
        _warmup_line(a, run.config, len(epochs))
    rows = [
        [
            str(e),
            str(counts["kept"][i]),
            str(counts["corrected"][i]),
            str(counts["pruned"][i]),
            str(counts["undecided"][i]),
            str(moved[i]),
        ]
        for i, e in enumerate(epochs)
    ]
    table = _table(["epoch", "kept", "corrected", "pruned", "undecided", "changed"], rows)
    details = f"<details><summary>per-epoch counts</summary>{table}</details>"
    caption = (
        '<p class="muted">A decision taken at the end of epoch e governs epoch e + 1; '
        "“changed” counts samples that entered or left the pruned set or changed label.</p>"
    )
    return (
        "timeline",
        "Purification timeline",
        _png(fig, alt="purification timeline") + caption + details,
    )


def _section_distributions(run: RunFolder):
    ledger = run.ledger
    state = ledger.column("state")[-1]
    weights = ledger.column("weight").astype(np.float64)  # (E, N)
    weight = last_recorded(weights)
    score = ledger.column("score")[-1].astype(np.float64)
    groups = {
        "kept": (state == KEPT) | (state == UNDECIDED),
        "corrected": state == CORRECTED,
        "pruned": state == PRUNED,
    }
    fig = _weight_histograms(weight, score, groups, lam=_lam(run.config))
    table = _weight_table(weight, score, groups, recorded=np.isfinite(weights[-1]))
    return (
        "distributions",
        "Weights of kept and pruned samples",
        _png(fig, alt="weight histograms") + table,
    )


def _weight_histograms(weight, score, groups: dict, *, lam: float | None):
    """Histograms of the weight (left) and score (right) of each group, λ marked."""
    fig = _figure(13, 3.4)
    axes = fig.subplots(1, 2)
    panels = (
        (axes[0], weight, "weight w", "weight w (last record of each sample)"),
        (axes[1], score, "score S", "score S = mean w·p over the window, final epoch"),
    )
    for ax, values, xlabel, title in panels:
        finite = values[np.isfinite(values)]
        marks = [lam] if lam is not None and ax is axes[1] else []
        span = np.concatenate([finite, marks]) if finite.size or marks else np.array([0.0, 1.0])
        lo, hi = float(span.min()), float(span.max())
        pad = max(0.02, 0.05 * (hi - lo))
        bins = np.linspace(max(0.0, lo - pad), max(min(1.0, hi + pad), hi), 41)
        for key, mask in groups.items():
            v = values[mask & np.isfinite(values)]
            if v.size:
                ax.hist(v, bins=bins, color=COLORS[key], alpha=0.55, label=f"{key} ({v.size})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("samples")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5, 0.5, "no value recorded", transform=ax.transAxes, ha="center", color="#777"
            )
    if lam is not None:
        axes[1].axvline(lam, color="#c44", linestyle="--", linewidth=1)
        axes[1].text(
            lam, axes[1].get_ylim()[1] * 0.95, f" λ = {lam:g}", color="#c44", fontsize=8, va="top"
        )
    return fig


def _weight_table(weight, score, groups: dict, *, recorded) -> str:
    """Per group: size, mean and median weight, mean score, samples not recorded last epoch."""
    rows = []
    for key, mask in groups.items():
        w = weight[mask & np.isfinite(weight)]
        s = score[mask & np.isfinite(score)]
        rows.append(
            [
                key,
                str(int(mask.sum())),
                _fmt(np.mean(w)) if w.size else "–",
                _fmt(np.median(w)) if w.size else "–",
                _fmt(np.mean(s)) if s.size else "–",
                str(int((mask & ~recorded).sum())),
            ]
        )
    return _table(
        [
            "group (final state)",
            "samples",
            "mean w",
            "median w",
            "mean S",
            "not recorded in the final epoch",
        ],
        rows,
    )


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
    fig, share = _class_figure(names, counts)
    table = _class_table(names, counts, share)
    matrix = _correction_matrix(names, given[corrected], final[corrected])
    return (
        "classes",
        "Per-class counts (final epoch)",
        _png(fig, alt="per-class counts") + table + matrix,
    )


def _class_figure(names, counts: dict):
    """Bars of pruned and corrected samples per class, and the share pruned; (figure, share)."""
    k = len(names)
    total, n_pruned, away = counts["total"], counts["pruned"], counts["away"]
    x = np.arange(k)
    fig = _figure(13, 3.6)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    ax.bar(x - 0.2, n_pruned, width=0.4, color=COLORS["pruned"], label="pruned")
    ax.bar(x + 0.2, away, width=0.4, color=COLORS["corrected"], label="corrected (given label)")
    ax.set_title("pruned and corrected samples per given class")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("samples")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax = axes[1]
    share = np.divide(n_pruned, total, out=np.zeros(k), where=total > 0)
    ax.bar(x, 100 * share, color=COLORS["pruned"])
    ax.set_title("share of each class pruned (%)")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, axis="y")
    return fig, share


def _class_table(names, counts: dict, share) -> str:
    """Per class (and all): given, pruned, corrected away and into, kept with the label."""
    total, n_pruned, away, into = (counts[c] for c in ("total", "pruned", "away", "into"))
    rows = [
        [
            html.escape(names[i]),
            str(total[i]),
            str(n_pruned[i]),
            _pct(share[i]) if total[i] else "–",
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
            _pct(n_pruned.sum() / max(1, total.sum())),
            str(away.sum()),
            str(into.sum()),
            str(total.sum() - n_pruned.sum()),
        ]
    )
    return _table(
        [
            "class",
            "given",
            "pruned",
            "pruned %",
            "corrected away",
            "corrected into",
            "kept with this label",
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
        + _table(["given \\ new", *names], mrows)
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
    rows = []
    for e in range(ledger.num_epochs):
        s = purification_scores(
            state[e],
            labels[e],
            low_quality=gt["low_quality"],
            true_label=gt["true_label"],
            given_label=gt["given_label"],
        )
        rows.append(s)
    html_cards = _truth_cards(rows[-1], gt)
    table = _truth_table(gt, state[-1], labels[-1])
    fig = _truth_figure(run, rows)
    n = len(ledger.labels)
    caption = (
        f'<p class="muted">Final epoch, {n} training clips. Chance: a random prune hits a '
        f"low-quality clip {_pct(gt['low_quality'].mean())} of the time. A correction is right "
        "when the new label is the true one; correction recall is over all wrong labels.</p>"
    )
    return (
        "truth",
        "Against SynthDFER ground truth",
        f'<div class="cards">{html_cards}</div>{caption}{table}'
        + _png(fig, alt="precision and recall per epoch"),
    )


def _truth_cards(final: dict, gt: dict) -> str:
    """Cards of the final precision and recall and of the amount of injected noise."""
    cards = [
        ("pruning precision", _pct(final["prune_precision"])),
        ("pruning recall", _pct(final["prune_recall"])),
        ("correction precision", _pct(final["correct_precision"])),
        ("correction recall", _pct(final["correct_recall"])),
        ("low-quality clips", f"{int(gt['low_quality'].sum())} ({_pct(gt['low_quality'].mean())})"),
        ("wrong labels", f"{int(gt['mislabeled'].sum())} ({_pct(gt['mislabeled'].mean())})"),
        ("wrong labels pruned", str(final["pruned_mislabeled"])),
    ]
    return "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{html.escape(k)}</div></div>'
        for k, v in cards
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
                _pct(pr / mask.sum()),
                str(co),
                str(right),
            ]
        )
    return _table(
        ["ground-truth noise", "samples", "pruned", "pruned %", "corrected", "corrected to truth"],
        kinds,
    )


def _truth_figure(run: RunFolder, rows: list[dict]):
    """Precision and recall of pruning (left) and correction (right) per epoch."""
    epochs = np.arange(1, len(rows) + 1)
    fig = _figure(13, 3.2)
    axes = fig.subplots(1, 2)
    for ax, what, title in (
        (axes[0], "prune", "pruning vs low quality"),
        (axes[1], "correct", "correction vs wrong labels"),
    ):
        ax.plot(epochs, [100 * r[f"{what}_precision"] for r in rows], marker=".", label="precision")
        ax.plot(epochs, [100 * r[f"{what}_recall"] for r in rows], marker=".", label="recall")
        ax.set_ylim(-2, 102)
        ax.set_title(f"{title} (%)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _warmup_line(ax, run.config, len(epochs))
    return fig


def _section_gallery(run: RunFolder, split, gt: dict | None, *, kind: str):
    ledger, names = run.ledger, run.class_names
    title = "Pruned clips" if kind == "pruned" else "Corrected clips"
    sid = f"gallery-{kind}"
    state = ledger.column("state")[-1]
    total = int((state == (PRUNED if kind == "pruned" else CORRECTED)).sum())
    order = "lowest score first" if kind == "pruned" else "largest Δp first"
    idx = select_gallery(ledger, kind=kind)
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
    weight = last_recorded(ledger.column("weight"))
    score = ledger.column("score")[-1]
    delta = ledger.column("delta_p")[-1]
    final = ledger.column("label")[-1]
    preds = ledger.column("pred")  # (E, N), -1 where not recorded
    seen = preds >= 0
    last = len(preds) - 1 - seen[::-1].argmax(axis=0)
    pred = np.where(seen.any(axis=0), preds[last, np.arange(preds.shape[1])], -1)
    status = ledger.column("state")
    items = []
    for i in idx.tolist():
        sample = split.samples[i]
        strip = _frame_strip(split, sample)
        w_last = weight[i]
        given = int(ledger.labels[i])
        new = int(final[i])
        since = _since(status[:, i], PRUNED if kind == "pruned" else CORRECTED)
        label_txt = html.escape(_name(names, given))
        if kind == "corrected":
            label_txt = f"{label_txt} → <b>{html.escape(_name(names, new))}</b>"
        p = int(pred[i])
        pred_txt = html.escape(_name(names, p)) if p >= 0 else "–"
        truth = ""
        if gt is not None:
            noise = str(gt["noise"][i])
            true = int(gt["true_label"][i])
            if kind == "pruned":
                good = bool(gt["low_quality"][i])
            else:
                good = new == true
            cls = "ok" if good else "bad"
            truth = (
                f'<div><span class="tag {cls}">true label {html.escape(_name(names, true))} · '
                f"noise: {html.escape(noise)}</span></div>"
            )
        cap = (
            f'<div class="cap"><div class="path" title="{html.escape(sample.path)}">#{i} '
            f"{html.escape(Path(sample.path).name)} · {html.escape(_short_source(sample))}</div>"
            f"<div>label {label_txt} · pred {pred_txt}</div>"
            f"<div>w {_fmt(w_last)} · S {_fmt(score[i])} · Δp {_fmt(delta[i])} · "
            f"{kind} since epoch {since}</div>{truth}</div>"
        )
        items.append(f'<div class="clip" data-index="{i}">{strip}{cap}</div>')
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
    return _img_tag(buf.getvalue(), alt=f"frames of {Path(sample.path).name}")
