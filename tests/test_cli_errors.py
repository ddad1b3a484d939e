"""Config mistakes end as one clear ``error:`` line naming the culprit, never a traceback."""

from typer.testing import CliRunner

from d2sp.cli import app
from tests.conftest import TINY


def invoke(*args):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # rich wraps long lines


def test_model_option_typo_is_refused_before_anything_is_written(tmp_path):
    out = invoke(
        "train", *TINY, "model.options={widht: 8}", f"out_dir={tmp_path}", "name=typo",
        f"data.root={tmp_path / 'never'}", "--no-progress",
    )  # fmt: skip
    assert "model.options: backbone 'r18_lstm' has no option 'widht'" in out
    assert "its options: width, lstm_hidden" in out
    assert not (tmp_path / "typo").exists() and not (tmp_path / "never").exists()


def test_model_option_of_the_trainer_is_named(tmp_path):
    out = invoke("train", "-c", "demo", "model.options={dropout: 0.2}", f"out_dir={tmp_path}")
    assert "model.options.dropout: set by model.dropout" in out


def test_malformed_yaml_value_names_the_override(tmp_path):
    out = invoke("train", "-c", "demo", "optim.lr=[0.1", f"out_dir={tmp_path}")
    assert "error: override 'optim.lr=[0.1': the value '[0.1' is not valid YAML" in out


def test_override_typo_is_reported_against_the_override_not_the_yaml(tmp_path):
    out = invoke("train", "-c", "demo", "purify.lamda=0.5", f"out_dir={tmp_path}")
    assert "error: override 'purify.lamda=0.5': purify.lamda: mode 'adaptive' has no option 'lamda'" in out
    assert "demo.yaml" not in out
    out = invoke("train", "-c", "demo", "optim.epochs=many")
    assert "override 'optim.epochs=many': optim.epochs: expected a number" in out


def test_a_mistake_in_the_yaml_file_still_names_the_file(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("optim:\n  epoch: 3\n")
    out = invoke("train", "-c", str(cfg), "purify.lam=0.5")
    assert f"{cfg}: unknown config key 'optim.epoch'" in out
