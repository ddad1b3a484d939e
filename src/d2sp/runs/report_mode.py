"""The run report's "Purification mode" section: what the mode is and does in its own words
(:meth:`d2sp.purify.Purifier.describe`), its resolved options, and its decisions in words
(``events.txt``) as a timeline."""

from __future__ import annotations

import html

from d2sp.runs.folder import RunFolder, purify_options, read_events
from d2sp.runs.report_html import option_value, table


def mode_description(run: RunFolder) -> list[str]:
    """The mode's own lines about this run's resolved options; for a mode not registered here,
    a line that says so."""
    from d2sp.purify import purifier_class

    mode = run.config.purify.mode
    try:
        cls = purifier_class(mode)
    except ValueError:
        return [
            f"Mode {mode!r} is not registered in this installation (a mode of your own: import "
            "it before writing the report to have its description and defaults)."
        ]
    return cls.describe(purify_options(run.config))


def option_rows(run: RunFolder) -> list[tuple[str, str, str]]:
    """``(option, value, where from)`` of every option of the mode: the resolved value, and
    whether the config set it or it is the mode's default."""
    resolved = purify_options(run.config)
    given = run.config.purify.options
    if not resolved:  # a mode not known here: what the config gives
        return [(k, option_value(v), "config") for k, v in given.items()]
    return [
        (k, option_value(v), "config" if given.get(k) is not None else "default")
        for k, v in resolved.items()
    ]


def section_mode(run: RunFolder):
    """``(id, title, html)`` of the section."""
    mode = run.config.purify.mode
    words = "".join(f"<li>{html.escape(line)}</li>" for line in mode_description(run))
    rows = option_rows(run)
    set_here = sum(1 for _, _, src in rows if src == "config")
    if rows:
        options = table(
            ["option", "value", "from"],
            [[html.escape(k), html.escape(v), src] for k, v, src in rows],
            left=2,
        )
        options = (
            f"<details><summary>{len(rows)} option(s): {set_here} set by the config, the rest "
            f"the mode's defaults (auto: the mode chooses)</summary>{options}</details>"
        )
    else:
        options = '<p class="muted">The mode has no options.</p>'
    return (
        "mode",
        "Purification mode",
        f"<p>Mode <b>{html.escape(mode)}</b>, in its own words:</p>"
        f'<ul class="mode">{words}</ul>{options}<h3>What it did</h3>{_events(run)}',
    )


def _events(run: RunFolder) -> str:
    """The mode's decisions in words (``events.txt``), one row each, in the order taken."""
    events = read_events(run.path)
    if not events:
        return (
            '<p class="muted">No events: the run folder has no <code>events.txt</code> (the mode '
            "wrote no decision in words; its decisions per sample are in the timeline below)."
            "</p>"
        )
    rows = [["–" if e is None else str(e), html.escape(text)] for e, text in events]
    return (
        f'<p class="muted">{len(events)} event(s) from <code>events.txt</code>, in the order '
        "the mode wrote them, each at the end of its epoch.</p>"
        + table(["epoch", "event"], rows, left=2)
    )
