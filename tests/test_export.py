"""Exporting the cleaned annotation and the ledger table of hand-made run folders."""

import csv
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from d2sp.commands.export import export
from d2sp.config import config_from_dict
from d2sp.data.annotations import read_list_file
from d2sp.data.registry import create_dataset
from d2sp.export import LEDGER_COLUMNS, export_run
from d2sp.report import RunFolderError
from tests.test_report import make_run, write_clip

KEPT_INDICES = [0, 2, 3, 5]  # 1 and 4 are pruned at the final epoch
KEPT_LABELS = [0, 2, 2, 0]  # 3: cross -> cross (2), 5: cross -> calm (0)


def tree_hash(root: Path) -> dict:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def clip_path(tmp_path: Path, i: int) -> str:
    return str((tmp_path / "data" / "clips" / f"c{i}").resolve())


def set_data(run: Path, **data) -> None:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"] = dict(cfg["data"], **data)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_list_export_drops_pruned_and_applies_corrections(tmp_path):
    run = make_run(tmp_path)
    before = tree_hash(tmp_path / "data")
    files = export_run(run)
    assert tree_hash(tmp_path / "data") == before  # the dataset is never written
    assert files["annotation"] == run / "export" / "train.txt"
    assert files["ledger_csv"] == run / "export" / "ledger.csv"
    samples = read_list_file(files["annotation"], num_classes=3)
    assert [s.path for s in samples] == [clip_path(tmp_path, i) for i in KEPT_INDICES]
    assert [s.label for s in samples] == KEPT_LABELS
    assert [s.num_frames for s in samples] == [8] * 4
    text = files["annotation"].read_text()
    assert text.startswith("# my annotation\n")  # comments and blank lines stay
    summary = json.loads(files["summary"].read_text())
    assert summary["pruned"] == 2 and summary["corrected"] == 2 and summary["rows_removed"] == 2
    # the data section it proposes loads the cleaned train split and the original test split
    data = summary["data"]
    split = create_dataset(data["dataset"], root=data["root"], split="train", **data["options"])
    assert [s.label for s in split.samples] == KEPT_LABELS
    assert split.class_names == ("calm", "glad", "cross")
    test = create_dataset(data["dataset"], root=data["root"], split="test", **data["options"])
    assert len(test.samples) == 6


def test_ledger_csv_holds_each_samples_history(tmp_path):
    run = make_run(tmp_path)
    files = export_run(run, tmp_path / "out")
    with open(files["ledger_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == LEDGER_COLUMNS
    assert [r["index"] for r in rows] == [str(i) for i in range(6)]
    assert rows[0]["path"] == clip_path(tmp_path, 0)
    assert rows[0]["source"].endswith("train.txt:2")  # row 1 is a comment
    assert rows[4]["source"].endswith("train.txt:7")  # after the blank line (row 5)
    r0, r1, r3, r4, r5 = rows[0], rows[1], rows[3], rows[4], rows[5]
    assert (r0["final_state"], r0["first_pruned_epoch"], r0["last_change_epoch"]) == (
        "kept",
        "",
        "",
    )
    assert (r1["final_state"], r1["first_pruned_epoch"], r1["last_change_epoch"]) == (
        "pruned",
        "2",
        "2",
    )
    assert r1["epochs_pruned"] == "2" and r1["final_score"] == "0.3"
    assert (r3["given_name"], r3["final_label"], r3["final_name"]) == ("calm", "2", "cross")
    assert (r3["first_corrected_epoch"], r3["epochs_corrected"], r3["final_delta_p"]) == (
        "2",
        "2",
        "0.5",
    )
    assert (r4["first_pruned_epoch"], r4["last_change_epoch"]) == ("3", "3")
    assert float(r4["mean_weight"]) == pytest.approx(0.55, abs=1e-3)  # epoch 3 not recorded
    assert float(r4["final_weight"]) == pytest.approx(0.6, abs=1e-3)
    assert (r5["given_label"], r5["final_label"], r5["final_state"]) == ("2", "0", "corrected")
    assert (r5["first_corrected_epoch"], r5["last_change_epoch"]) == ("3", "3")
    if importlib.util.find_spec("pyarrow") is None:
        assert "ledger_parquet" not in files and not (tmp_path / "out" / "ledger.parquet").exists()
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(files["ledger_parquet"])
        assert table.column_names == list(LEDGER_COLUMNS)
        assert table.column("first_pruned_epoch").to_pylist() == [None, 2, None, None, 3, None]


def test_flag_pruned_keeps_the_rows(tmp_path):
    run = make_run(tmp_path)
    files = export_run(run, tmp_path / "flagged", flag_pruned=True)
    samples = read_list_file(files["annotation"], num_classes=3)
    assert [s.label for s in samples] == [0, 1, 2, 2, 1, 0]
    lines = files["annotation"].read_text().splitlines()
    flagged = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("# d2sp: pruned")]
    assert [row.split()[0] for row in flagged] == [clip_path(tmp_path, 1), clip_path(tmp_path, 4)]


def test_csv_export_keeps_columns_and_label_style(tmp_path):
    run = make_run(tmp_path)
    data = tmp_path / "data"
    names = ["calm", "glad", "cross"]
    rows = [[names[y], f"clips/c{i}", f"n{i}"] for i, y in enumerate([0, 1, 2, 0, 1, 2])]
    with open(data / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([["Label", "path", "note"], *rows])
    set_data(
        run,
        dataset="csv",
        options={"train_csv": "train.csv", "test_csv": "train.csv", "class_names": names},
    )
    files = export_run(run, tmp_path / "out")
    assert files["annotation"].name == "train.csv"
    with open(files["annotation"], newline="") as f:
        out = list(csv.reader(f))
    assert out[0] == ["Label", "path", "note"]
    assert [r[0] for r in out[1:]] == ["calm", "cross", "cross", "calm"]
    assert [r[2] for r in out[1:]] == [f"n{i}" for i in KEPT_INDICES]
    split = create_dataset(
        "csv", root=tmp_path, split="train", csv_file=str(files["annotation"]), class_names=names
    )
    assert [s.label for s in split.samples] == KEPT_LABELS
    assert [s.path for s in split.samples] == [clip_path(tmp_path, i) for i in KEPT_INDICES]

    flagged = export_run(run, tmp_path / "flag", flag_pruned=True)
    with open(flagged["annotation"], newline="") as f:
        out = list(csv.reader(f))
    assert out[0] == ["Label", "path", "note", "pruned"]
    assert [r[3] for r in out[1:]] == ["0", "1", "0", "0", "1", "0"]


def test_dfew_export_writes_one_based_labels(tmp_path):
    run = make_run(tmp_path)
    root = tmp_path / "dfew"
    for i in range(6):
        write_clip(root / "clip_224x224" / f"{i + 1:05d}", 4, tint=30 * i)
    (root / "label").mkdir()
    given = [0, 1, 2, 0, 1, 2]
    (root / "label" / "single_trainset_1.csv").write_text(
        "video_name,label\n" + "".join(f"{i + 1},{y + 1}\n" for i, y in enumerate(given))
    )
    set_data(run, dataset="dfew", root=str(root), fold=1, options={})
    (run / "class_counts.json").unlink()
    files = export_run(run, tmp_path / "out")
    assert files["annotation"].read_text().splitlines() == [
        "video_name,label",
        "1,1",
        "3,3",
        "4,3",
        "6,1",
    ]
    split = create_dataset(
        "dfew", root=root, split="train", fold=1, split_file=str(files["annotation"])
    )
    assert [s.label for s in split.samples] == KEPT_LABELS


def test_exported_list_trains(tmp_path):
    from d2sp.training import train

    run = make_run(tmp_path)
    files = export_run(run)
    data = json.loads(files["summary"].read_text())["data"]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"] = dict(cfg["data"], **data)
    cfg.update(name="cleaned", out_dir=str(tmp_path / "runs"), device="cpu")
    cfg["optim"]["epochs"] = 1
    cfg["purify"].update(cgp=False, fgc=False)  # plain training on the cleaned annotation
    result = train(config_from_dict(cfg), progress=False)
    assert json.loads((result.run_dir / "summary.json").read_text())["train_samples"] == 4
    assert result.class_names == ("calm", "glad", "cross")


def test_export_refuses_the_dataset_folder_and_names_missing_files(tmp_path):
    run = make_run(tmp_path)
    before = tree_hash(tmp_path / "data")
    with pytest.raises(RunFolderError, match="inside the dataset folder"):
        export_run(run, tmp_path / "data" / "cleaned")
    assert tree_hash(tmp_path / "data") == before
    assert not (tmp_path / "data" / "cleaned").exists()
    (run / "ledger.npz").unlink()
    with pytest.raises(RunFolderError, match=r"missing ledger.npz \(the purification ledger\)"):
        export_run(run)
    app = typer.Typer()
    app.command()(export)
    result = CliRunner().invoke(app, [str(run)])
    assert result.exit_code == 2
    assert "ledger.npz" in result.output and "Traceback" not in result.output


def test_cli_export_writes_and_lists_the_files(tmp_path):
    run = make_run(tmp_path)
    app = typer.Typer()
    app.command()(export)
    result = CliRunner().invoke(app, [str(run), "--out", str(tmp_path / "o"), "--flag-pruned"])
    assert result.exit_code == 0, result.output
    assert "2 pruned (flagged)" in result.output
    assert (tmp_path / "o" / "train.txt").is_file() and (tmp_path / "o" / "ledger.csv").is_file()
