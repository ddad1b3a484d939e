"""End to end on a tiny SynthDFER: the trainer's run folder and the CLI."""

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from d2sp import train
from d2sp.cli import app
from d2sp.config import ConfigError, load_config
from d2sp.models import list_backbones
from d2sp.purify import CORRECTED, KEPT, Ledger, list_modes
from tests.conftest import TINY, TINY_DATA, tiny_config


def test_run_folder_holds_config_metrics_ledger_checkpoints(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "name=r")
    result = train(cfg, progress=False)
    run = tmp_path / "r"
    assert yaml.safe_load((run / "config.yaml").read_text())["purify"]["options"]["lam"] == 0.0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(0.0 <= r["war"] <= 1.0 and np.array(r["confusion"]).shape == (7, 7) for r in rows)
    assert rows[0]["undecided"] == 48 and rows[1]["undecided"] == 0  # warm-up of 2
    ledger = Ledger.load(run / "ledger.npz")
    assert ledger.column("state").shape == (3, 48)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["config"]["name"] == "r" and ckpt["epoch"] == 3
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "purifier"}
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["metrics"]["war"] == result.best_war
    assert json.loads((run / "summary.json").read_text())["train_samples"] == 48


def test_plain_baseline_has_no_weight_branch_and_never_purifies(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "name=ce", "purify.cgp=false", "purify.fgc=false")
    result = train(cfg, progress=False)
    ckpt = torch.load(tmp_path / "ce" / "best.pt", weights_only=True)
    assert not any(k.startswith("head.weight.") for k in ckpt["model"])
    assert result.pruned == 0 and result.corrected == 0


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'optim.epoch'"):
        load_config(None, ["optim.epoch=3"])
    with pytest.raises(ConfigError, match="optim.epochs: expected a number"):
        load_config(None, ["optim.epochs=many"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("purify: [1, 2]\n")
    with pytest.raises(ConfigError, match="bad.yaml: purify: expected a mapping"):
        load_config(bad)


def test_cli_train_reports_a_bad_config_without_traceback(tmp_path):
    result = CliRunner().invoke(app, ["train", "purify.nope=1"])
    assert result.exit_code == 2
    assert "purify.nope: mode 'adaptive' has no option 'nope'" in result.output
    assert "Traceback" not in result.output


def test_cli_train_runs(tmp_path, synth_root):
    args = ["train", *TINY, f"data.root={synth_root}", f"out_dir={tmp_path}", "name=cli"]
    result = CliRunner().invoke(app, [*args, "--no-progress", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "WAR" in result.output and (tmp_path / "cli" / "last.pt").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("purify.lam=1.5", "purify.lam: expected a value in [0, 1], got 1.5"),
        ("model.name=resnet9000", "model.name: unknown backbone 'resnet9000'; known:"),
        ("data.dataset=imagenet", "data.dataset: unknown dataset 'imagenet'; known:"),
        ("purify.warmup_epochs=5", "purify.warmup_epochs (5) >= optim.epochs (3)"),
        ("purify.t=9", "purify.t (9) > optim.epochs (3)"),
    ],
)
def test_senseless_config_refused_before_anything_starts(tmp_path, override, message):
    with pytest.raises(ValueError) as err:  # (refused when loaded, or when the run starts)
        train(tiny_config(tmp_path, tmp_path / "never-generated", override, "name=x"), progress=False)
    assert message in str(err.value)
    assert not (tmp_path / "never-generated").exists() and not (tmp_path / "x").exists()


def test_non_finite_loss_stops_naming_epoch_and_batch(tmp_path, synth_root, monkeypatch):
    import d2sp.purify.base as base
    from d2sp.training.checks import NonFiniteLossError

    calls = {"n": 0}
    real = base.weighted_cross_entropy

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 8 else loss  # epoch 2, batch 2 (6 per epoch)

    monkeypatch.setattr(base, "weighted_cross_entropy", flaky)
    cfg = tiny_config(tmp_path, synth_root, "name=nan")
    with pytest.raises(NonFiniteLossError, match="at epoch 2, batch 2"):
        train(cfg, progress=False)
    ckpt = torch.load(tmp_path / "nan" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1  # the last good checkpoint is kept
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_trains_through_the_same_trainer(tmp_path, synth_root, name):
    from tests.test_models import tiny

    kwargs, size = tiny(name)
    # paper mode deciding from epoch 1 on a window of one record: λ = 0 keeps every sample and
    # τ = -1 relabels every sample whose prediction is not its label, so the decisions are known
    cfg = tiny_config(
        tmp_path,
        synth_root,
        f"name={name}",
        f"model.name={name}",
        f"data.size={size}",
        "optim.epochs=2",
        "purify.mode=paper",
        "purify.warmup_epochs=1",
        "purify.t=1",
        "purify.lam=0",
        "purify.tau=-1",
    )
    cfg.model.options = kwargs
    result = train(cfg, progress=False)
    rows = [
        json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows] == [1, 2] and np.isfinite(rows[-1]["loss"])
    ledger = result.purifier.ledger
    state, label = ledger.column("state")[-1], ledger.column("label")[-1]  # (N,) final epoch
    delta_p = ledger.column("delta_p")[-1].astype(np.float64)  # p[prediction] - p[label]
    assert set(state.tolist()) <= {KEPT, CORRECTED} and (state == CORRECTED).any()
    np.testing.assert_array_equal(state == CORRECTED, delta_p != 0)  # predicted another class
    np.testing.assert_array_equal(state == CORRECTED, label != ledger.labels)
    assert rows[-1]["corrected"] == int((state == CORRECTED).sum())


def test_cli_demo_prints_the_figures_of_its_run_folders(tmp_path, synth_root):
    args = [
        "demo",
        "--out-dir",
        str(tmp_path),
        "--no-progress",
        *TINY_DATA,  # the demo config's own mode
        f"data.root={synth_root}",
        "optim.epochs=2",
    ]
    result = CliRunner().invoke(app, args, terminal_width=140)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "method" in line)
    assert table_cells(header)[:5] == ["method", "WAR", "UAR", "pruned", "relabelled"]
    printed = {}
    for line in result.output.splitlines():
        cells = table_cells(line)
        if cells and cells[0] in ("plain CE", "D2SP"):
            printed[cells[0]] = cells[1:5] + cells[-1:]
    for method, folder in (("plain CE", "baseline"), ("D2SP", "d2sp")):
        s = json.loads((tmp_path / folder / "summary.json").read_text())
        want = [f"{100 * s['war']:.1f}", f"{100 * s['uar']:.1f}", str(s["pruned"]),
                str(s["corrected"]), f"{s['seconds']:.0f}s"]  # fmt: skip
        assert printed[method] == want, (method, result.output)
    assert "removed P" in header


def table_cells(line: str) -> list[str]:
    """The cells of a row of a printed rich table (empty for a line of no row)."""
    cells = [c.strip() for c in line.replace("┃", "│").split("│")]
    return cells[1:-1] if len(cells) > 2 else []
@pytest.mark.parametrize("mode", list_modes())
def test_clip_backbone_trains_with_every_mode_and_fine_tuning_controls(tmp_path, synth_root, mode):
    from tests.test_models import tiny

    kwargs, size = tiny("clip_vit")
    extra = ["purify.options={folds: 2, fold_epochs: 1}"] if mode == "cleanlab" else []
    cfg = tiny_config(
        tmp_path, synth_root, f"name={mode}", "model.name=clip_vit", f"data.size={size}",
        "optim.epochs=2", f"purify.mode={mode}", "model.encoder_lr_scale=0.1",
        "model.freeze_encoder=" + ("true" if mode == "ce" else "false"), *extra,
    )  # fmt: skip
    if mode in ("paper", "scn"):
        cfg.purify.options["warmup_epochs"] = 1
    cfg.model.options = kwargs
    before = None
    if mode == "ce":  # a frozen encoder does not move
        from d2sp.models import create_model

        torch.manual_seed(cfg.seed)
        before = create_model("clip_vit", num_classes=7, weight_branch=False, **kwargs)
    result = train(cfg, progress=False)
    assert result.purifier.ledger.num_epochs == 2
    ckpt = torch.load(tmp_path / mode / "last.pt", weights_only=True)
    groups = ckpt["optimizer"]["param_groups"]
    if mode == "ce":
        assert len(groups) == 1  # the encoder is left out of the optimizer
        enc = {k: v for k, v in ckpt["model"].items() if k.startswith("backbone.encoder.")}
        ref = before.state_dict()
        assert enc and all(torch.equal(v, ref[k]) for k, v in enc.items())
    else:
        ratios = [g["initial_lr"] / groups[0]["initial_lr"] for g in groups]
        assert ratios == pytest.approx([1.0, 0.1])
