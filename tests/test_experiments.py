"""Experiment grids: planning, dedup, resumability, aggregation, output files, CLI."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from d2sp.cli import app
from d2sp.config import load_config, save_config
from d2sp.experiments.cells import Cell, canonical_overrides, run_slug
from d2sp.experiments.plan import plan_ablation, plan_comparison
from d2sp.experiments.runner import ExperimentError, run_cells
from d2sp.experiments.tables import summarize, write_results
from tests.conftest import TINY


def base_config(tmp_path, *extra):
    """A config the fake runner never reads data for (a 'list' dataset that does not exist)."""
    return load_config(
        None,
        [
            "data.dataset=list",
            f"data.root={tmp_path / 'no-data'}",
            "optim.epochs=3",
            "purify.mode=paper",
            "purify.warmup_epochs=2",
            *extra,
        ],
    )


def fake_runner(cfg, *, run_dir, resume, progress, console=None):
    """Writes a run folder with figures derived from the config; λ = 0.7 fails."""
    run_dir = Path(run_dir)
    with open(run_dir.parent.parent / "calls.txt", "a") as f:
        f.write(f"{run_dir.name} {int(resume)}\n")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    o = cfg.purify.options
    if o.get("lam") == 0.7:
        raise RuntimeError("loss diverged (fake)")
    pruned = 10 * bool(o.get("cgp"))
    corrected = 5 * bool(o.get("fgc"))
    war = 0.5 + 0.1 * cfg.seed
    rows = [{"epoch": 1, "trained": 100}, {"epoch": 2, "trained": 100 - pruned}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"war": war, "uar": war - 0.05, "best_war": war + 0.01, "pruned": pruned}
    summary.update(corrected=corrected, seconds=1.5)
    (run_dir / "summary.json").write_text(json.dumps(summary))


def calls(out_dir):
    path = Path(out_dir) / "calls.txt"
    return path.read_text().splitlines() if path.is_file() else []


def test_ablation_plan_sizes_dedup_and_skipped_values(tmp_path):
    cfg = base_config(tmp_path)  # epochs 3: t = 4 can never fill its window
    plan = plan_ablation(cfg, seeds=[0, 1])
    rows = {}
    for c in plan:
        rows.setdefault(c.table, []).append(c.row)
    assert {t: len(r) // 2 for t, r in rows.items()} == {"stages": 4, "lam": 4, "tau": 4, "t": 3}
    assert rows["stages"][::2] == ["none", "CGP", "FGC", "CGP+FGC"]
    assert rows["t"][::2] == ["t=1", "t=2", "t=3"]
    assert plan.skipped == [
        "t: t=4 left out (purify.t (4) > optim.epochs (3): no window ever fills)"
    ]
    both = {c.slug for c in plan if c.row == "CGP+FGC"}
    for row in ("λ=0.6", "τ=0.4", "t=2"):  # the paper defaults: the same run as CGP+FGC
        assert {c.slug for c in plan if c.row == row} == both
    assert len({c.slug for c in plan}) == 2 * (15 - 3)

    results = run_cells(cfg, plan, out_dir=tmp_path / "out", runner=fake_runner, progress=False)
    assert len(calls(tmp_path / "out")) == 24  # every distinct run trained once
    assert len(results) == len(plan) == 30
    by = {(r["table"], r["row"], r["seed"]): r for r in results}
    shared, lam = by[("stages", "CGP+FGC", 1)], by[("lam", "λ=0.6", 1)]
    assert shared["run_dir"] == lam["run_dir"] and shared["war"] == lam["war"] == pytest.approx(0.6)
    assert by[("stages", "none", 0)]["pruned"] == 0 and by[("stages", "CGP", 0)]["pruned"] == 10
    assert by[("stages", "CGP", 0)]["train_size"] == 90


def test_ablation_sweeps_around_the_base_values_and_refuses_what_the_trainer_refuses(tmp_path):
    cfg = base_config(tmp_path, "purify.lam=0.7")
    plan = plan_ablation(cfg, tables=["stages", "lam", "t"], lams=[0.5, 0.7, 1.5], ts=[1, 2.5])
    assert {c.slug for c in plan if c.row == "λ=0.7"} == {
        c.slug for c in plan if c.row == "CGP+FGC"
    }
    assert "purify.lam=0.7" in next(c for c in plan if c.row == "CGP").overrides
    assert [s.split(" left out")[0] for s in plan.skipped] == ["lam: λ=1.5", "t: 2.5"]
    assert "purify.lam: expected a value in [0, 1], got 1.5" in plan.skipped[0]
    with pytest.raises(ValueError, match="tables: expected some of stages, lam, tau, t, got x"):
        plan_ablation(cfg, tables=["x"])
    with pytest.raises(ValueError, match=r"base config .* refused: purify.warmup_epochs \(3\)"):
        plan_ablation(base_config(tmp_path, "purify.warmup_epochs=3"))


def test_slug_is_the_same_for_the_same_run_however_written():
    a = run_slug(["purify.lam=0.60", "purify.cgp=true", "purify.cgp=True"], 0)
    assert a == run_slug(["purify.cgp=true", "purify.lam=0.6"], 0)
    assert a != run_slug(["purify.cgp=true", "purify.lam=0.6"], 1)
    assert canonical_overrides(["b.x=1", "a.y= null"]) == ("a.y=null", "b.x=1")
    assert Cell("t", "r", ("purify.lam=0.6",), 3).slug == run_slug(["purify.lam=0.6"], 3)


def test_resumable_reused_resumed_and_refused(tmp_path):
    cfg, out = base_config(tmp_path), tmp_path / "out"
    plan = plan_ablation(cfg, tables=["stages"], seeds=[0])
    first = run_cells(cfg, plan, out_dir=out, runner=fake_runner, progress=False)
    assert len(calls(out)) == 4 and {r["status"] for r in first} == {"trained"}

    again = run_cells(cfg, plan, out_dir=out, runner=fake_runner, progress=False)
    assert len(calls(out)) == 4  # nothing retrained
    assert {r["status"] for r in again} == {"reused"}
    assert [r["war"] for r in again] == [r["war"] for r in first]

    killed = Path(first[1]["run_dir"])  # a run killed after a checkpoint
    (killed / "summary.json").unlink()
    (killed / "last.pt").write_bytes(b"")
    resumed = run_cells(cfg, plan, out_dir=out, runner=fake_runner, progress=False)
    assert calls(out)[4:] == [f"{killed.name} 1"]
    assert [r["status"] for r in resumed] == ["reused", "resumed", "reused", "reused"]

    changed = base_config(tmp_path, "optim.lr=0.05")
    with pytest.raises(ExperimentError, match="optim.lr: saved 0.01, asked 0.05"):
        run_cells(changed, plan, out_dir=out, runner=fake_runner, progress=False)
    assert len(calls(out)) == 5  # refused before anything ran


def test_a_failing_run_is_recorded_and_the_others_complete(tmp_path):
    cfg, out = base_config(tmp_path), tmp_path / "out"
    plan = plan_ablation(cfg, tables=["lam"], lams=[0.6, 0.7], seeds=[0, 1])
    results = run_cells(cfg, plan, out_dir=out, runner=fake_runner, progress=False)
    bad = [r for r in results if r["row"] == "λ=0.7"]
    assert [r["status"] for r in bad] == ["failed", "failed"]
    assert "RuntimeError: loss diverged (fake)" in bad[0]["error"] and math.isnan(bad[0]["war"])
    assert {r["status"] for r in results if r["row"] == "λ=0.6"} == {"trained"}
    summary = summarize(results)
    assert [(s["row"], s["n"], s["failed"]) for s in summary] == [("λ=0.6", 2, 0), ("λ=0.7", 0, 2)]
    text = write_results(results, summary, out, title="t")
    assert "| λ=0.7 | – | – |" in text and "0 (2 failed)" in text
    assert "Failed runs:" in text and "loss diverged (fake)" in text
    # a second call retries only the failed runs
    run_cells(cfg, plan, out_dir=out, runner=fake_runner, progress=False)
    assert len(calls(out)) == 4 + 2


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results(tmp_path):
    cfg = base_config(tmp_path)
    plan = plan_ablation(cfg, tables=["lam"], lams=[0.6, 0.7], seeds=[0])
    results = run_cells(
        cfg, plan, out_dir=tmp_path / "o", runner=fake_runner, jobs=2, progress=False
    )
    assert [r["status"] for r in results] == ["trained", "failed"]
    assert results[0]["war"] == pytest.approx(0.5) and "loss diverged" in results[1]["error"]


def test_summarize_mean_and_std_over_seeds():
    nan = float("nan")
    results = [
        {"table": "a", "row": "x", "seed": 0, "status": "trained", "war": 0.5, "pruned": 10},
        {"table": "a", "row": "x", "seed": 1, "status": "reused", "war": 0.7, "pruned": 20},
        {"table": "a", "row": "x", "seed": 2, "status": "failed", "war": nan, "pruned": nan},
        {"table": "b", "row": "x", "seed": 0, "status": "trained", "war": 0.9, "pruned": nan},
    ]
    a, b = summarize(results)
    assert (a["table"], a["n"], a["failed"]) == ("a", 2, 1)
    assert a["war_mean"] == pytest.approx(0.6) and a["war_std"] == pytest.approx(0.1)
    assert a["pruned_mean"] == 15 and a["pruned_std"] == 5
    assert "seed_mean" not in a
    assert b["war_mean"] == pytest.approx(0.9) and b["war_std"] == 0
    assert math.isnan(b["pruned_mean"])


def test_csv_and_markdown_files(tmp_path):
    cfg = base_config(tmp_path)
    plan = plan_ablation(cfg, tables=["stages", "tau"], taus=[0.4], seeds=[0, 1])
    results = run_cells(cfg, plan, out_dir=tmp_path, runner=fake_runner, progress=False)
    text = write_results(results, summarize(results), tmp_path, title="Ablation test")
    assert (tmp_path / "table.md").read_text() == text
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and rows[0]["table"] == "stages" and rows[0]["row"] == "none"
    assert {"seed", "run_dir", "war", "uar", "pruned", "corrected", "train_size"} <= set(rows[0])
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [s["row"] for s in summary] == ["none", "CGP", "FGC", "CGP+FGC", "τ=0.4"]
    assert float(summary[1]["war_mean"]) == pytest.approx(0.55) and summary[1]["n"] == "2"
    assert text.startswith("# Ablation test\n") and "## stages" in text and "## tau" in text
    assert "| row | WAR | UAR | train size | pruned | corrected | s/run | n |" in text
    assert "| CGP | 55.0 ± 5.0 | 50.0 ± 5.0 | 90.0 ± 0.0 | 10.0 ± 0.0 | 0.0 ± 0.0 |" in text
    assert "prune P" not in text  # no ground truth for this dataset


def ledger_runner(cfg, *, run_dir, resume, progress, console=None):
    """A run whose final ledger prunes 2 low-quality, 1 mislabelled and 1 clean clip and
    corrects 1 mislabelled clip rightly and 1 clean clip wrongly (mode ``ce``: nothing)."""
    from d2sp.data.synth import load_ground_truth
    from d2sp.purify import Ledger
    from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED

    fake_runner(cfg, run_dir=run_dir, resume=resume, progress=progress)
    gt = load_ground_truth(cfg.data.root)
    low, bad = np.flatnonzero(gt["low_quality"]), np.flatnonzero(gt["mislabeled"])
    clean = np.flatnonzero(~gt["low_quality"] & ~gt["mislabeled"])
    state = np.full(len(low) + len(bad) + len(clean), KEPT, dtype=np.int8)
    label = gt["given_label"].copy()
    state[[low[0], low[1], bad[0], clean[0]]] = PRUNED
    state[[bad[1], clean[1]]] = CORRECTED
    label[bad[1]] = gt["true_label"][bad[1]]
    label[clean[1]] = (label[clean[1]] + 1) % 7
    if cfg.purify.mode == "ce":  # plain training removes and relabels nothing
        state, label = np.full_like(state, KEPT), gt["given_label"].copy()
    ledger = Ledger(labels=gt["given_label"])
    zeros = np.zeros(len(state))
    named = {"state": state, "label": label}
    ledger.append(**{c: zeros for c in Ledger.COLUMNS if c not in named}, **named)
    ledger.save(Path(run_dir) / "ledger.npz")


def test_ground_truth_precision_recall_of_what_was_removed(tmp_path, synth_root):
    cfg = load_config(None, [*TINY, f"data.root={synth_root}"])
    plan = plan_comparison(cfg, methods=["paper", "ce"], seeds=[0])
    d2sp, ce = run_cells(cfg, plan, out_dir=tmp_path, runner=ledger_runner, progress=False)
    assert d2sp["prune_precision"] == pytest.approx(0.5)
    assert d2sp["removed_precision"] == pytest.approx(0.75)  # low-quality or mislabelled
    assert d2sp["correct_precision"] == pytest.approx(0.5)
    assert 0 < d2sp["prune_recall"] < 1 and 0 < d2sp["correct_recall"] < 1
    assert all(math.isnan(ce[k]) for k in ("prune_precision", "removed_precision"))


def test_methods_are_the_registered_modes_and_unknown_ones_are_refused(tmp_path):
    from d2sp.purify import list_modes

    base = base_config(tmp_path, "purify.mode=paper", "purify.lam=0.3")
    plan = plan_comparison(base, methods=["ce", "scn", "paper"], seeds=[0, 1])
    assert [(c.row, c.seed) for c in plan][:4] == [("ce", 0), ("ce", 1), ("scn", 0), ("scn", 1)]
    assert "purify.options=null" in plan[2].overrides and "purify.mode=scn" in plan[2].overrides
    assert plan[4].overrides == ("purify.mode=paper",)  # the base's own mode keeps its λ
    with pytest.raises(ValueError) as err:
        plan_comparison(base, methods=["ce", "mixup"], seeds=[0])
    assert str(err.value) == f"methods: unknown 'mixup'; known: {', '.join(list_modes())}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "--methods", "ce,mixup"], "methods: unknown 'mixup'; known:"),
        (["compare", "--seeds", "0,one"], "--seeds: expected comma-separated integers"),
        (["ablate", "--lams", "0.5,x"], "--lams: expected comma-separated numbers"),
        (["ablate", "--tables", "stages,lr"], "tables: expected some of stages, lam, tau, t"),
        (["ablate", "purify.nope=1"], "override 'purify.nope=1': purify.nope: mode 'adaptive' has no option 'nope'"),
        (["compare", "-c", "nosuchconfig"], "no packaged config 'nosuchconfig'"),
    ],
)
def test_cli_errors_are_clear(tmp_path, args, message):
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_cli_compare_end_to_end(tmp_path, synth_root):
    out = tmp_path / "cmp"
    args = ["compare", "--methods", "ce,paper", "--seeds", "0", "--out", str(out)]
    args += ["--no-progress", *TINY, f"data.root={synth_root}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"runs", "results.csv", "summary.csv", "table.md"}
    assert len(list((out / "runs").iterdir())) == 2
    text = (out / "table.md").read_text()
    assert "## compare" in text and "| ce |" in text and "| paper |" in text
    assert "prune P" in text and "removed P" in text  # SynthDFER has ground truth
    with open(out / "results.csv") as f:
        rows = {r["row"]: r for r in csv.DictReader(f)}
    assert float(rows["ce"]["pruned"]) == 0 and float(rows["ce"]["corrected"]) == 0
    assert float(rows["ce"]["train_size"]) > 0 and 0 <= float(rows["paper"]["war"]) <= 1
    again = CliRunner().invoke(app, args)  # the saved configs match: nothing is retrained
    assert again.exit_code == 0, again.output
    assert again.output.count("(reused,") == 2


def test_cli_exits_non_zero_when_a_run_failed(tmp_path, synth_root):
    args = ["compare", "--methods", "paper", "--seeds", "0", "--out", str(tmp_path), "--no-progress"]
    args += [*TINY, f"data.root={synth_root}", "purify.warmup_epochs=3"]  # refused by the trainer
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "purify.warmup_epochs (3) >= optim.epochs (3)" in text and "1 of 1 runs failed" in text
    assert "Failed runs:" in (tmp_path / "table.md").read_text()
