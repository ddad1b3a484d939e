"""The report says what ran: the mode in its own words, its resolved options and its events,
figures whose captions match them; a tiny run of every registered mode, and each report in
headless Chromium."""

import html as htmllib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from d2sp.purify import list_modes, purifier_class
from d2sp.purify.ledger import KEPT, PRUNED, UNDECIDED
from d2sp.runs import report as report_module
from d2sp.runs.folder import read_events, read_run
from d2sp.runs.report import render_report, write_report
from tests.conftest import tiny_config, tiny_mode_overrides
from tests.test_report import make_ledger, make_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "screenshot_report.sh"


@pytest.fixture(scope="module")
def mode_runs(tmp_path_factory, synth_root):
    """``{mode: run folder}``: a 4-epoch run of every registered mode on the tiny SynthDFER
    (a mode that needs data SynthDFER lacks is left out, with the reason)."""
    from d2sp import train

    out = tmp_path_factory.mktemp("mode_runs")
    runs, skipped = {}, {}
    for mode in list_modes():
        cfg = tiny_config(out, synth_root, f"name={mode}", *tiny_mode_overrides(mode))
        try:
            runs[mode] = train(cfg, progress=False).run_dir
        except ValueError as e:  # e.g. a mode that needs another dataset's ground truth
            skipped[mode] = str(e)
    assert runs, f"no mode could train on SynthDFER: {skipped}"
    return runs


def section(page: str, sid: str) -> str:
    found = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert found is not None, f"report: expected a section {sid!r}"
    return found.group(1)


def text_of(fragment: str) -> str:
    """The visible text of an HTML fragment (images and tags left out)."""
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))


# ---- the mode, its options, its events --------------------------------------------------------


def test_describe_defaults_to_the_docstring_and_the_options():
    cls = purifier_class("paper")
    lines = cls.describe(cls.resolve({"lam": 0.7}))
    assert lines[0].startswith("Dynamic data purification") and "``" not in lines[0]
    assert "lam=0.7" in lines[1] and "cgp=true" in lines[1] and "True" not in lines[1]
    cleanlab = purifier_class("cleanlab")
    assert "fold_epochs=auto" in cleanlab.describe(cleanlab.resolve({}))[1]  # None: the mode chooses
    assert purifier_class("ce").describe({}) == [purifier_class("ce").describe({})[0]]  # no options


def test_every_mode_report_states_its_mode_options_and_no_raw_none(mode_runs):
    for mode, run_dir in mode_runs.items():
        page = write_report(run_dir).read_text(encoding="utf-8")
        words = text_of(section(page, "mode"))
        cls = purifier_class(mode)
        resolved = cls.resolve(read_run(run_dir).config.purify.options)
        for line in cls.describe(resolved):
            assert " ".join(line.split()) in " ".join(words.split()), f"{mode}: {line!r}"
        for name in resolved:
            assert name in words, f"{mode}: option {name!r} not in the report"
        visible = text_of(re.sub(r'src="data:[^"]*"', "", page))
        assert "None" not in visible, f"{mode}: a raw None in the report"
        assert "off (plain CE)" not in visible


def test_events_are_shown_as_a_timeline(tmp_path):
    run = make_run(tmp_path)
    (run / "events.txt").write_text(
        "epoch 2: ready to judge (agreement 0.812)\nepoch 3: flag threshold θ = 0.21\nnote\n"
    )
    assert read_events(run) == [
        (2, "ready to judge (agreement 0.812)"), (3, "flag threshold θ = 0.21"), (None, "note"),
    ]  # fmt: skip
    rows = re.findall(r"<tr><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td></tr>", section(
        render_report(read_run(run)), "mode"))  # fmt: skip
    assert [(e, htmllib.unescape(t)) for e, t in rows][-3:] == [
        ("2", "ready to judge (agreement 0.812)"), ("3", "flag threshold θ = 0.21"), ("–", "note"),
    ]  # fmt: skip
    (run / "events.txt").unlink()
    assert "no <code>events.txt</code>" in section(render_report(read_run(run)), "mode")


# ---- figures and captions ---------------------------------------------------------------------


def capture_figures(monkeypatch) -> list:
    """Figures the report draws, kept as they are saved into the page."""
    from matplotlib.figure import Figure

    figures = []
    real = Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def visible_ticks(ax, which: str) -> np.ndarray:
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = np.asarray(axis.get_ticklocs(), dtype=float)
    return ticks[(ticks >= lo - 1e-9) & (ticks <= hi + 1e-9)]


def test_epoch_and_count_axes_are_whole_and_never_negative(monkeypatch, mode_runs):
    for mode, run_dir in mode_runs.items():
        figures = capture_figures(monkeypatch)
        render_report(read_run(run_dir))
        axes = [ax for fig in figures for ax in fig.axes if ax.axison]
        epoch_axes = [ax for ax in axes if ax.get_xlabel() == "epoch"]
        count_axes = [ax for ax in axes if ax.get_ylabel() == "samples"]
        assert epoch_axes and count_axes, mode
        for ax in epoch_axes:
            ticks = visible_ticks(ax, "x")
            assert len(ticks) and np.all(ticks == np.round(ticks)), (mode, ax.get_title(), ticks)
            assert ticks.min() >= 1
        for ax in count_axes:
            ticks = visible_ticks(ax, "y")
            assert ax.get_ylim()[0] >= 0, (mode, ax.get_title())
            assert np.all(ticks == np.round(ticks)), (mode, ax.get_title(), ticks)


def test_nothing_pruned_or_corrected_draws_no_empty_per_class_chart(tmp_path):
    ledger = make_ledger()
    for name in ("state",):
        ledger.rows[name] = [np.full(6, KEPT, dtype=np.int8) for _ in ledger.rows[name]]
    ledger.rows["label"] = [ledger.labels.astype(np.int16) for _ in ledger.rows["label"]]
    page = render_report(read_run(make_run(tmp_path, ledger=ledger)))
    classes = section(page, "classes")
    assert "<img" not in classes and "No sample is pruned or corrected" in classes


def grey_spans(fig) -> int:
    from matplotlib.patches import Polygon, Rectangle

    return sum(
        1
        for ax in fig.axes
        for p in ax.patches
        if isinstance(p, Polygon | Rectangle) and p.get_facecolor()[:3] == (136 / 255,) * 3
    )


def test_grey_band_caption_only_with_the_band_it_describes(monkeypatch, tmp_path):
    # the hand-made ledger: every sample undecided at the end of epoch 1, decisions from epoch 2
    figures = capture_figures(monkeypatch)
    page = render_report(read_run(make_run(tmp_path / "a")))
    curves = text_of(section(page, "curves"))
    assert "Grey band: epochs 1–2" in curves and "undecided through epoch 1" in curves
    assert grey_spans(figures[0]) == 3  # one band per panel of the curves
    # decisions from the first epoch on: no band, no caption about one
    ledger = make_ledger()
    ledger.rows["state"][0] = np.where(ledger.rows["state"][0] == UNDECIDED, KEPT, ledger.rows["state"][0]).astype(np.int8)
    figures.clear()
    page = render_report(read_run(make_run(tmp_path / "b", ledger=ledger)))
    assert "Grey band" not in text_of(page) and "warm-up" not in text_of(page)
    assert sum(grey_spans(f) for f in figures) == 0


def test_undecided_samples_are_not_shown_as_kept(tmp_path):
    ledger = make_ledger()
    final = ledger.rows["state"][-1].copy()
    final[[0, 2]] = UNDECIDED  # the ledger says: no decision for samples 0 and 2 yet
    ledger.rows["state"][-1] = final
    page = render_report(read_run(make_run(tmp_path, ledger=ledger)))
    rows = dict(re.findall(r"<tr><td[^>]*>(\w+)</td><td>(\d+)</td>", section(page, "distributions")))
    assert rows["undecided"] == "2" and rows["kept"] == str(int((final == KEPT).sum()))
    assert rows["pruned"] == str(int((final == PRUNED).sum()))


def test_samples_without_a_final_record_are_explained(tmp_path):
    page = render_report(read_run(make_run(tmp_path)))
    dist = text_of(section(page, "distributions"))
    assert "no record in the final epoch" in dist
    assert "neither recorded while training nor re-scored" in dist


def test_mode_without_weight_branch_says_so_and_shows_no_weights(mode_runs):
    if "ce" not in mode_runs:
        pytest.skip("mode ce is not registered")
    page = render_report(read_run(mode_runs["ce"]))
    dist = section(page, "distributions")
    assert "mean w" in dist
    rows = re.findall(r"<tr><td[^>]*>kept</td><td>\d+</td><td>([^<]*)</td>", dist)
    assert rows == ["–"]  # no weight branch: w = 1 is not a weight to show


def test_a_clip_never_recorded_says_so(mode_runs):
    if "oracle" not in mode_runs:
        pytest.skip("mode oracle is not registered or needs other data")
    page = render_report(read_run(mode_runs["oracle"]))
    pruned = text_of(section(page, "gallery-pruned"))
    assert "never recorded" in pruned and "S 0.000" not in pruned
    assert "in the training list's order (none has a recorded score)" in pruned  # not "lowest score first"


def test_overview_time_of_a_short_run_is_in_seconds(tmp_path):
    run = make_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "seconds": 3.0}))
    assert '<div class="v">3 s</div><div class="k">time</div>' in render_report(read_run(run))


# ---- in a real browser ------------------------------------------------------------------------


def chromium() -> str | None:
    return next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt-get install -y chromium)")
def test_every_mode_report_in_headless_chromium(mode_runs, tmp_path):
    for mode, run_dir in mode_runs.items():
        out = tmp_path / f"report-{mode}.png"
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable}
        env["PYTHONPATH"] = str(Path(report_module.__file__).parents[2])
        done = subprocess.run(
            ["bash", str(SCRIPT), str(run_dir), str(out), "1200", "3000"],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert done.returncode == 0, f"{mode}: {done.stderr}"
        image = Image.open(out).convert("RGB")
        assert image.size == (1200, 3000), mode
        small = np.asarray(image.resize((120, 300)), dtype=np.float64)
        assert small.std() > 10, f"{mode}: the screenshot is blank"
        top = np.asarray(image.crop((0, 0, 1200, 600)).convert("L"), dtype=np.float64)
        assert (top < 80).mean() > 0.002, f"{mode}: no text at the top of the page"
