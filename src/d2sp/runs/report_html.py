"""The run report's building blocks: the page style, figures as inline PNGs, tables, number
formats, and the epoch and sample-count axes every figure shares.

The report (:mod:`d2sp.runs.report`) assembles its sections from these.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np

from d2sp.purify.ledger import UNDECIDED, Ledger

COLORS = {"kept": "#4c72b0", "corrected": "#55a868", "pruned": "#dd8452", "undecided": "#b0b0b0"}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
margin:0;background:#f6f7f9;color:#1f2328;font-size:14px}
main{max-width:1300px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:12px 0 6px}
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
ul.mode{margin:4px 0 8px;padding-left:20px}
details pre{background:#f6f8fa;padding:8px;border-radius:4px;font-size:12px;overflow:auto}
"""


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig, *, alt: str, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return img_tag(buf.getvalue(), alt=alt, cls="fig")


def img_tag(data: bytes, *, alt: str, cls: str = "") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``–`` for None or NaN."""
    if x is None:
        return "–"
    try:
        value = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def pct(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * float(x):.1f}%"


def duration(seconds: float | None) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``; ``–`` when unknown."""
    if not seconds:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def option_value(value) -> str:
    """A mode option as a config file writes it: ``true``/``false``, ``auto`` for a null (the
    mode chooses), else the value."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(header: list[str], rows: list[list], *, left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned. Cells are HTML."""

    def cell(tag, i, v):
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{v}</{tag}>"

    head = "".join(cell("th", i, html.escape(str(h))) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cards(items: list[tuple[str, str]]) -> str:
    """Value cards, ``(label, value)`` each (value is HTML)."""
    return "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{html.escape(k)}</div></div>'
        for k, v in items
    )


# ------------------------------------------------------------------------------------ axes


def epoch_axis(ax, epochs: int) -> None:
    """Whole epochs 1..``epochs`` on the x axis."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0.5, max(1, int(epochs)) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def count_axis(ax, values) -> None:
    """Sample counts on the y axis: from 0, whole numbers, room above the largest."""
    from matplotlib.ticker import MaxNLocator

    values = np.asarray(values, dtype=float)
    top = float(np.nanmax(values)) if values.size and np.isfinite(values).any() else 0.0
    ax.set_ylim(0, max(1.0, top * 1.08))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_ylabel("samples")


def epoch_span(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}–{last}"


# ------------------------------------------------------------------------ before decisions


def undecided_epochs(ledger: Ledger) -> int:
    """How many epochs, from the first, end with every sample undecided in the ledger (the
    mode took no decision in them)."""
    state = ledger.column("state")  # (E, N)
    decided = (state != UNDECIDED).any(axis=1)
    return int(decided.argmax()) if decided.any() else len(state)


def no_decision_band(ledger: Ledger) -> tuple[int, int] | None:
    """``(1, last)``: the epochs trained before the mode's first decision took effect, when
    the ledger shows at least one whole epoch without a decision; else None."""
    undecided, epochs = undecided_epochs(ledger), ledger.num_epochs
    if undecided == 0 or epochs == 0:
        return None
    return 1, min(undecided + 1, epochs)


def shade_band(ax, band: tuple[int, int] | None) -> None:
    if band is not None:
        ax.axvspan(band[0] - 0.5, band[1] + 0.5, color="#888", alpha=0.12, linewidth=0)


def band_caption(ledger: Ledger) -> str:
    """The sentence that explains :func:`no_decision_band` (empty without a band)."""
    band = no_decision_band(ledger)
    if band is None:
        return ""
    undecided, epochs = undecided_epochs(ledger), ledger.num_epochs
    if undecided >= epochs:
        return (
            f"Grey band: {epoch_span(1, epochs)}: the mode took no decision in this run (the "
            "ledger shows every sample undecided at the end of every epoch)."
        )
    return (
        f"Grey band: {epoch_span(*band)}, trained before the mode's first decision took "
        f"effect: the ledger shows every sample undecided through epoch {undecided}, and the "
        f"first decision, at the end of epoch {undecided + 1}, governs the epochs after it."
    )
