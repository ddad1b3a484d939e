"""A run folder that holds a run is refused unless resumed or overwritten; a resume may only
extend the run (more epochs), and says so."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from d2sp import train
from d2sp.cli import app
from d2sp.training.folder import RunExistsError
from tests.conftest import TINY_DATA, tiny_config

CE = ["purify.mode=ce", "optim.epochs=2"]


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_second_run_in_the_same_folder_is_refused_then_overwritten(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "name=r", *CE)
    train(cfg, progress=False)
    run = tmp_path / "r"
    (run / "notes.txt").write_text("mine")
    (run / "cleanlab").mkdir()  # a mode's own folder counts as the run's
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    with pytest.raises(RunExistsError) as err:
        train(cfg, progress=False)
    message = str(err.value)
    assert str(run) in message and "config.yaml" in message and "last.pt" in message
    assert "--resume" in message and "--overwrite" in message
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before

    train(cfg, overwrite=True, progress=False)
    assert [r["epoch"] for r in rows(run)] == [1, 2]
    assert (run / "notes.txt").read_text() == "mine" and not (run / "cleanlab").exists()
    with pytest.raises(ValueError, match="at most one"):
        train(cfg, resume=True, overwrite=True, progress=False)


def test_cli_refuses_an_existing_run_and_overwrites_on_request(tmp_path, synth_root):
    args = ["train", *TINY_DATA, *CE, f"data.root={synth_root}", f"out_dir={tmp_path}", "name=c",
            "--no-progress"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)
    out = " ".join(again.output.split())
    assert again.exit_code == 2 and "Traceback" not in out
    assert f"{tmp_path / 'c'} already holds a run" in out and "--overwrite" in out
    done = CliRunner().invoke(app, [*args, "--overwrite"])
    assert done.exit_code == 0, done.output


def test_resume_with_more_epochs_extends_the_run_and_records_it(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "name=x", *CE)
    train(cfg, progress=False)
    run = tmp_path / "x"
    args = ["train", "--resume", str(run), "optim.epochs=3", "--no-progress"]
    result = CliRunner().invoke(app, args)
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"extending the run {run} from 2 to 3 epochs" in out
    assert [r["epoch"] for r in rows(run)] == [1, 2, 3] and rows(run)[2]["extended_from"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["extended"] == [{"from_epochs": 2, "to_epochs": 3, "after_epoch": 2}]
    assert summary["war"] == rows(run)[-1]["war"]


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root, "name=y", *CE)
    train(cfg, progress=False)
    run = tmp_path / "y"
    result = CliRunner().invoke(
        app, ["train", "--resume", str(run), "optim.lr=0.5", "data.size=16", "--no-progress"]
    )
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in out
    assert f"cannot resume {run}: its config differs in data.size, optim.lr" in out
    shorter = tiny_config(tmp_path, synth_root, "name=y", "purify.mode=ce", "optim.epochs=1")
    with pytest.raises(ValueError, match="planned for 2 epochs; a resume can extend it, not"):
        train(shorter, resume=True, progress=False)
    assert len(rows(run)) == 2


def test_grids_continue_a_run_killed_before_its_first_checkpoint(tmp_path):
    from d2sp.experiments.cells import Cell
    from d2sp.experiments.runner import run_cells
    from tests.test_experiments import base_config, calls, fake_runner

    cfg, out = base_config(tmp_path), tmp_path / "out"
    cells = [Cell("t", "a", ("purify.lam=0.5",), 0)]
    first = run_cells(cfg, cells, out_dir=out, runner=fake_runner, progress=False)
    started = Path(first[0]["run_dir"])
    (started / "summary.json").unlink()  # config.yaml and metrics written, no checkpoint
    run_cells(cfg, cells, out_dir=out, runner=fake_runner, progress=False)
    assert calls(out) == [f"{started.name} 0", f"{started.name} 1"]  # resume=True: no refusal
