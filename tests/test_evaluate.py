"""``d2sp evaluate``: a run's checkpoint on its test split reproduces the run's own figures;
other splits and datasets, and a clear refusal when the classes do not match."""

import json

import pytest
from typer.testing import CliRunner

from d2sp import train
from d2sp.cli import app
from d2sp.config import PurifyConfig
from d2sp.purify import purifier_class
from d2sp.runs.evaluation import evaluate_run
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth_root):
    """A finished 3-epoch tiny run (paper mode: a decision at epoch 3)."""
    out = tmp_path_factory.mktemp("runs")
    train(tiny_config(out, synth_root, "name=e"), progress=False)
    return out / "e"


def test_last_and_best_checkpoints_reproduce_the_runs_figures_exactly(trained):
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((trained / "summary.json").read_text())
    last = evaluate_run(trained, checkpoint="last", progress=False)
    assert (last["war"], last["uar"]) == (rows[-1]["war"], rows[-1]["uar"])
    assert last["confusion"] == rows[-1]["confusion"] and last["epoch"] == 3
    best = evaluate_run(trained, checkpoint="best", progress=False)
    assert (best["war"], best["uar"]) == (summary["best_war"], summary["best_uar"])
    assert best["epoch"] == summary["best_epoch"]
    out = trained / "eval" / "best-synthdfer-test"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["war"] == best["war"] and saved["samples"] == 21
    assert sum(saved["support"].values()) == 21 and len(saved["per_class_recall"]) == 7
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    header = (out / "confusion.csv").read_text().splitlines()[0]
    assert header.startswith("true \\ predicted,happiness")
    assert len((out / "predictions.csv").read_text().splitlines()) == 1 + 21


def test_cli_evaluates_the_training_split_and_prints_the_figures(trained, tmp_path):
    result = CliRunner().invoke(
        app, ["evaluate", str(trained), "--checkpoint", "last", "--split", "train",
              "--out", str(tmp_path / "ev"), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "synthdfer train (48 clips), last.pt (epoch 3): WAR" in " ".join(result.output.split())
    assert "recall" in result.output and "happiness" in result.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["samples"] == 48


def test_another_dataset_with_other_classes_is_refused_clearly(trained, tmp_path, synth_root):
    clips = sorted(p for p in (synth_root / "frames" / "test").iterdir() if p.is_dir())[:3]
    data = tmp_path / "mine"
    data.mkdir()
    (data / "clips.csv").write_text(
        "path,label\n" + "".join(f"{c},{i}\n" for i, c in enumerate(clips))
    )
    args = ["evaluate", str(trained), "--dataset", "csv", "--root", str(data),
            "-o", "csv_file=clips.csv", "-o", "class_names=calm,glad,cross",
            "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in out
    assert "the run's model predicts 7 classes (happiness, sadness" in out
    assert "but csv test has 3 (calm, glad, cross)" in out
    seven = ["-o", "csv_file=clips.csv", "--out", str(tmp_path / "csv")]
    ok = CliRunner().invoke(app, [*args[:6], *seven, "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "csv" / "metrics.json").read_text())["samples"] == 3


def test_missing_checkpoint_is_named(tmp_path):
    (tmp_path / "r").mkdir()
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "r"), "--checkpoint", "last"])
    assert result.exit_code == 2 and "last.pt: no such checkpoint" in result.output


@pytest.mark.parametrize("mode", sorted({"scn", PurifyConfig().mode}))
def test_every_head_loads_back(tmp_path, synth_root, mode):
    # scn: a one-layer weight branch; the default mode: whatever it keeps beside the model
    # (e.g. a teacher, not evaluated)
    warmup = ["purify.warmup_epochs=1"] if "warmup_epochs" in purifier_class(mode).defaults else []
    mode_cfg = [f"purify.mode={mode}", *warmup]
    cfg = tiny_config(tmp_path, synth_root, "name=m", *mode_cfg)
    train(cfg, progress=False)
    rows = (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()
    last = evaluate_run(tmp_path / "m", checkpoint="last", progress=False)
    assert last["confusion"] == json.loads(rows[-1])["confusion"]
