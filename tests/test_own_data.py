"""What a user meets on their own data: templates in overrides, options a refusal suggests,
own class names, notes on the data, the grid commands' data flags, the data check command,
console lines, lists that are no list, devices, and what export writes (issue 28, item 4)."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from d2sp.cli import app
from d2sp.config import load_config, save_config
from d2sp.data.frames import DataError
from d2sp.data.registry import create_dataset, dataset_options
from d2sp.data.splits import SharedTestError
from d2sp.training.build import load_splits
from tests.conftest import TINY_TREE
from tests.test_datasets import make_dfew, make_ferv39k, make_mafw, truncate, write_clip

DOCS = Path(__file__).resolve().parents[1] / "docs"


def list_tree(root: Path, *, frames=(4, 4, 4, 4, 4, 4), annotated=None) -> Path:
    """Clips ``c<i>`` with ``frames[i]`` frames in ``train.txt`` (all but the last two) and
    ``test.txt`` (the last two); ``annotated`` gives the rows' num_frames (default: true)."""
    annotated = annotated or frames
    rows = [f"clips/c{i} {annotated[i]} {i % 3}\n" for i in range(len(frames))]
    for i, n in enumerate(frames):
        write_clip(root / "clips" / f"c{i}", n)
    (root / "train.txt").write_text("".join(rows[:-2]))
    (root / "test.txt").write_text("".join(rows[-2:]))
    return root


def train(tmp_path, root, name, *extra, dataset="list", options=None):
    options = options or "data.options={list_file: '{split}.txt', num_classes: 3}"
    args = ["train", "--dataset", dataset, "--root", str(root), "--out-dir",
            str(tmp_path / "runs"), "--name", name, "--no-progress", options, *TINY_TREE,
            "purify.lam=0.0", *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def flat(result) -> str:
    return " ".join(result.output.split())


def test_a_split_template_in_braces_is_taken_as_the_file_name(tmp_path):
    root = list_tree(tmp_path / "data")
    result = train(tmp_path, root, "braces", "data.options.num_classes=3",
                   options="data.options.list_file={split}.txt")  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "runs" / "braces" / "config.yaml")
    assert cfg.data.options["list_file"] == "{split}.txt"
    mine = tmp_path / "mine.yaml"
    mine.write_text("data:\n  dataset: list\n  options:\n    list_file: {split}.txt\n")
    result = CliRunner().invoke(app, ["train", "-c", str(mine), "--no-progress"])
    assert result.exit_code == 2 and "quote a value that starts with {split}" in flat(result)
    text = (DOCS / "datasets.md").read_text()
    assert "list_file: '{split}.txt'" in text and "data.options.list_file={split}.txt" in text


def test_the_ferv39k_refusal_suggests_only_options_ferv39k_takes(tmp_path):
    root = make_ferv39k(tmp_path / "FERV39k")
    cfg = load_config(None, ["data.dataset=ferv39k", f"data.root={root}",
                             "data.options={list_file: all.txt}"])  # fmt: skip
    with pytest.raises(SharedTestError) as info:
        load_splits(cfg, progress=False)
    message = str(info.value)
    suggested = set(re.findall(r"\b(\w+)=", message)) - {"allow_shared_test"}
    assert suggested and suggested <= set(dataset_options("ferv39k")), message
    assert "train_list" not in message, message


def test_own_class_names_are_documented_and_the_error_points_there(tmp_path):
    root = tmp_path / "mine"
    for i in range(4):
        write_clip(root / "clips" / f"c{i}", 4)
    (root / "train.csv").write_text(
        "path,label\nclips/c0,positive\nclips/c1,negative\nclips/c2,positive\n"
    )
    with pytest.raises(DataError) as info:
        create_dataset("csv", root=root, csv_file="train.csv")
    message = str(info.value)
    assert "train.csv:2: unknown class name 'positive'" in message, message
    assert "data.options.class_names=" in message and "docs/datasets.md#your-own-classes" in message
    split = create_dataset(
        "csv", root=root, csv_file="train.csv", class_names=["negative", "positive"]
    )
    assert split.class_names == ("negative", "positive") and split.labels.tolist() == [1, 0, 1]
    text = (DOCS / "datasets.md").read_text()
    assert "## Your own classes" in text and "class_names=[" in text


def test_a_num_frames_mismatch_is_a_counted_note_of_the_run(tmp_path):
    root = list_tree(tmp_path / "data", annotated=(4, 9, 4, 7, 4, 4))
    result = train(tmp_path, root, "frames")
    assert result.exit_code == 0, result.output
    out = flat(result)
    assert "note: 2 of 4 rows give a num_frames that differs" in out, out
    assert "DataWarning" not in result.output and "registry.py" not in result.output, out
    summary = json.loads((tmp_path / "runs" / "frames" / "summary.json").read_text())
    assert len(summary["notes"]) == 1 and summary["notes"][0].startswith("2 of 4 rows"), summary


def test_ablate_and_compare_take_the_data_flags_and_compare_defaults_to_modes(
    tmp_path, monkeypatch
):
    seen = []
    for command in ("ablate", "compare"):
        monkeypatch.setattr(
            f"d2sp.commands.{command}.run_grid",
            lambda cfg, plan, **kw: seen.append((cfg, plan, kw)),
        )
    root = make_dfew(tmp_path / "DFEW")
    for command, config in (("ablate", "dfew-paper"), ("compare", "dfew")):
        result = CliRunner().invoke(app, [command, "-c", config, "--root", str(root),
                                          "--fold", "2", "--seeds", "0", "--epochs", "40"])  # fmt: skip
        assert result.exit_code == 0, result.output
    for cfg, _, kw in seen:
        assert (cfg.data.root, cfg.data.fold, cfg.optim.epochs) == (str(root), 2, 40)
        assert f"data.root={root}" in kw["title"]
    from d2sp.purify import list_modes

    methods = list(dict.fromkeys(c.row for c in seen[1][1]))
    assert methods[-1] == "adaptive" and "ce" in methods and set(methods) <= set(list_modes())


def test_the_folds_refusal_names_out_dir(tmp_path):
    from d2sp.experiments.folds import run_folds
    from d2sp.experiments.runner import ExperimentError

    root = make_dfew(tmp_path / "DFEW")
    cfg = load_config(None, ["data.dataset=dfew", f"data.root={root}", f"out_dir={tmp_path}",
                             "name=f", *TINY_TREE])  # fmt: skip
    other = load_config(None, ["data.dataset=dfew", f"data.root={root}", "data.fold=1", "seed=7"])
    (tmp_path / "f" / "fold1").mkdir(parents=True)
    save_config(other, tmp_path / "f" / "fold1" / "config.yaml")
    with pytest.raises(ExperimentError) as info:
        run_folds(cfg, [1])
    message = str(info.value)
    assert "--out-dir" in message and "another --out " not in message, message


def test_epoch_lines_stay_without_progress_and_long_lines_stay_whole(tmp_path):
    root = list_tree(tmp_path / "data")
    result = train(tmp_path, root, "a-rather-long-run-name-for-a-line-wider-than-eighty-columns")
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.output.splitlines() if re.search(r" epoch +\d/2 ", line)]
    assert len(epochs) == 2, result.output
    assert all("WAR" in line and line.rstrip().endswith("s)") for line in epochs), epochs
    run = tmp_path / "runs" / "a-rather-long-run-name-for-a-line-wider-than-eighty-columns"
    assert any(line.rstrip().endswith(f"-> {run}") for line in result.output.splitlines())


def test_the_data_check_lists_every_problem_and_trains_nothing(tmp_path):
    root = list_tree(tmp_path / "data", frames=(4, 4, 4, 4, 4, 4, 4))
    truncate(root / "clips" / "c1" / "00001.jpg")  # a first frame: the pre-flight check sees it
    rows = (root / "train.txt").read_text().splitlines()
    rows[2] = "clips/gone 4 1"
    rows.append("clips/c3 4 9")
    (root / "train.txt").write_text("\n".join(rows) + "\n")
    args = ["check", "--dataset", "list", "--root", str(root),
            "data.options={list_file: '{split}.txt', num_classes: 3}"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    table = [line for line in result.output.splitlines() if line.startswith("| train")]
    assert len(table) == 3, result.output
    for row, what in (
        (2, "c1/00001.jpg"),
        (3, "gone: frame folder not found"),
        (6, "label 9 out of range"),
    ):
        assert any(f"train.txt:{row} |" in line and what in line for line in table), (row, table)
    assert "3 problem(s)" in flat(result) and not (tmp_path / "runs").exists()
    clean = list_tree(tmp_path / "clean")
    result = CliRunner().invoke(app, [*args[:4], str(clean), args[5]])
    assert result.exit_code == 0 and "no problem found" in flat(result), result.output
    result = train(tmp_path, clean, "zero", "optim.epochs=0")
    assert result.exit_code == 0 and "-100" not in result.output, result.output
    assert "no epoch trained" in flat(result), result.output
    for command in ("report", "export"):
        result = CliRunner().invoke(app, [command, str(tmp_path / "runs" / "zero")])
        out = flat(result)
        assert result.exit_code == 2 and "a run of no epoch (optim.epochs=0" in out, out
        assert "not a run folder" not in out, out


def test_predict_refuses_a_text_file_that_is_no_list_with_its_line(tmp_path):
    root = list_tree(tmp_path / "data")
    assert train(tmp_path, root, "p").exit_code == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("# my notes\nre-check the sad clips tomorrow\nask about the labels\n")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "runs" / "p"), str(notes),
                                      "--out", str(tmp_path / "p.csv"), "--no-progress"])  # fmt: skip
    out = flat(result)
    assert (
        result.exit_code == 2 and f"{notes}:2: " in out and "no video file or frame folder" in out
    ), out
    assert not (tmp_path / "p.csv").exists()
    listed = tmp_path / "some.txt"
    listed.write_text(f"{root / 'clips' / 'c0'}\n{tmp_path / 'missing'}\n")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "runs" / "p"), str(listed),
                                      "--out", str(tmp_path / "q.csv"), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0 and f"{listed}:2: not found" in flat(result), result.output


def test_an_unknown_device_lists_the_valid_ones(tmp_path):
    root = list_tree(tmp_path / "data")
    result = train(tmp_path, root, "gpu", "device=gpu")
    out = flat(result)
    assert result.exit_code == 2 and "device: expected auto, cpu, cuda, cuda:N" in out, out
    assert "'gpu'" in out and "Expected one of" not in out and "Traceback" not in out, out


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_dfew_and_mafw_export_the_data_section_and_keep_line_endings(tmp_path, newline):
    dfew = make_dfew(tmp_path / "DFEW", ((1, 1, 5), (2, 4, 3), (3, 7, 4), (4, 2, 4)))
    mafw = make_mafw(tmp_path / "MAFW")
    for path in (
        dfew / "label" / "single_trainset_1.csv",
        mafw / "Train & Test Set" / "single" / "no_caption" / "set_1" / "train.txt",
    ):
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", newline.encode()))
    for name, root in (("dfew", dfew), ("mafw", mafw)):
        result = train(tmp_path, root, name, "--fold", "1", dataset=name, options="data.options={}")
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(app, ["export", str(tmp_path / "runs" / name)])
        assert result.exit_code == 0, result.output
        export = json.loads((tmp_path / "runs" / name / "export" / "export.json").read_text())
        data = export["data"]
        assert data is not None and data["dataset"] == name and data["fold"] == 1, export
        cleaned = Path(data["options"]["train_split_file"])
        body = cleaned.read_bytes()
        assert body.count(newline.encode()) == body.count(b"\n") > 0, body
        split = create_dataset(data["dataset"], root=data["root"], split="train",
                               fold=data["fold"], **data["options"])  # fmt: skip
        ledger = (tmp_path / "runs" / name / "export" / "ledger.csv").read_text().splitlines()
        assert len(split) == len(ledger) - 1, (split, ledger)
        test = create_dataset(data["dataset"], root=data["root"], split="test",
                              fold=data["fold"], **data["options"])  # fmt: skip
        assert len(test) == 1


def test_extended_from_is_documented_where_the_run_writes_it():
    texts = {p.name: p.read_text() for p in [DOCS.parent / "README.md", *DOCS.glob("*.md")]}
    mentions = [(name, line) for name, text in texts.items() for line in text.splitlines()
                if "extended_from" in line]  # fmt: skip
    assert mentions, "extended_from: expected it documented"
    for name, line in mentions:
        assert "metrics" in line, (name, line)
    for name, text in texts.items():
        assert not re.search(r"summary\.json[^.;|]*extended_from", text), name
