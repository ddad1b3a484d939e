"""Exporting the cleaned annotation and the ledger table of hand-made run folders."""

import csv
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from d2sp.commands.export import export
from d2sp.config import config_from_dict
from d2sp.data.annotations import read_list_file
from d2sp.data.registry import create_dataset
from d2sp.purify import create_purifier
from d2sp.purify.ledger import PRUNED, Ledger
from d2sp.runs.export import export_run
from d2sp.runs.folder import RunFolderError
from d2sp.runs.issues import ISSUE_COLUMNS
from d2sp.runs.ledger_table import LEDGER_COLUMNS
from tests.test_report import make_ledger, make_run, write_clip

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
    files = export_run(run, out_dir=tmp_path / "out")
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
    files = export_run(run, out_dir=tmp_path / "flagged", flag_pruned=True)
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
    files = export_run(run, out_dir=tmp_path / "out")
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

    flagged = export_run(run, out_dir=tmp_path / "flag", flag_pruned=True)
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
    files = export_run(run, out_dir=tmp_path / "out")
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
    from d2sp import train

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
        export_run(run, out_dir=tmp_path / "data" / "cleaned")
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


# ------------------------------------------------- official formats, skips, the issues list


def make_ferv39k_run(tmp_path: Path, *, split_file: bool = True) -> tuple[Path, Path]:
    """``make_run``'s ledger over a FERV39k tree of 6 clips (3 frames each): the official
    split file ``train_All.csv`` (rows ``<Scene>/<Emotion>/<id> <Emotion>``, a header line),
    or only the ``train/<Scene>/<Emotion>/<id>/`` folder tree."""
    run = make_run(tmp_path)
    root = tmp_path / "ferv"
    emotions = ["Happy", "Sad", "Neutral", "Happy", "Sad", "Neutral"]  # labels 0 1 2 0 1 2
    rows = [f"Action/{e}/{i:04d}" for i, e in enumerate(emotions)]
    base = root / "2_ClipsforFaceCrop" if split_file else root / "train"
    for i, rel in enumerate(rows):
        write_clip(base / rel, 3, tint=30 * i)
    if split_file:
        setups = root / "4_setups" / "All_scenes"
        setups.mkdir(parents=True)
        body = "".join(f"{rel} {e}\n" for rel, e in zip(rows, emotions, strict=True))
        (setups / "train_All.csv").write_text("clip label\n" + body)
        (setups / "test_All.csv").write_text("Action/Happy/0000 Happy\n")
    set_data(run, dataset="ferv39k", root=str(root), options={})
    (run / "class_counts.json").unlink()
    return run, root


def test_ferv39k_split_file_export_keeps_its_format(tmp_path):
    run, root = make_ferv39k_run(tmp_path)
    before = tree_hash(root)
    files = export_run(run, out_dir=tmp_path / "out")
    assert tree_hash(root) == before
    assert files["annotation"].name == "train_All.csv"
    assert files["annotation"].read_text().splitlines() == [
        "clip label",
        "Action/Happy/0000 Happy",
        "Action/Neutral/0002 Neutral",
        "Action/Happy/0003 Neutral",  # corrected 0 -> 2, the folder stays where it is
        "Action/Neutral/0005 Happy",  # corrected 2 -> 0
    ]
    split = create_dataset("ferv39k", root=root, split="train", split_file=str(files["annotation"]))
    assert [s.label for s in split.samples] == KEPT_LABELS
    summary = json.loads(files["summary"].read_text())
    assert summary["format"] == "ferv39k" and summary["rows_removed"] == 2


def test_ferv39k_folder_tree_is_converted_with_real_frame_counts(tmp_path):
    run, root = make_ferv39k_run(tmp_path, split_file=False)
    files = export_run(run, out_dir=tmp_path / "out")
    samples = read_list_file(files["annotation"])
    assert [s.label for s in samples] == KEPT_LABELS
    assert [s.num_frames for s in samples] == [3, 3, 3, 3], "frame counts: expected the folders'"
    summary = json.loads(files["summary"].read_text())
    assert summary["format"] == "converted"
    assert any("real frame count" in note for note in summary["notes"]), summary["notes"]


def make_mafw_run(tmp_path: Path) -> tuple[Path, Path]:
    """``make_run``'s ledger over a MAFW fold of 6 clips: ``single_label.txt`` with captions
    that are not UTF-8, and a ``no_caption`` split file ``<id>.mp4 <emotion>``."""
    run = make_run(tmp_path)
    root = tmp_path / "mafw"
    names = ["happiness", "sadness", "neutral", "happiness", "sadness", "neutral"]
    caption = "一个女生眼含着泪水".encode("gbk")
    root.mkdir()
    (root / "single_label.txt").write_bytes(b"".join(
        f"{i:05d}.mp4\t{n}\t".encode() + caption + b"\n" for i, n in enumerate(names)
    ))  # fmt: skip
    fold = root / "Train & Test Set" / "single" / "no_caption" / "set_1"
    fold.mkdir(parents=True)
    (fold / "train.txt").write_text("".join(f"{i:05d}.mp4 {n}\n" for i, n in enumerate(names)))
    (fold / "test.txt").write_text("00000.mp4 happiness\n")
    for i in range(6):
        write_clip(root / "data" / "frames" / f"{i:05d}", 3, tint=30 * i)
    set_data(run, dataset="mafw", root=str(root), fold=1, options={})
    (run / "class_counts.json").unlink()
    return run, root


def test_mafw_export_keeps_its_split_file_and_a_matching_label_file(tmp_path):
    run, root = make_mafw_run(tmp_path)
    before = tree_hash(root)
    files = export_run(run, out_dir=tmp_path / "out")
    assert tree_hash(root) == before
    train, labels = files["annotation_1"], files["annotation_2"]
    assert (train.name, labels.name) == ("train.txt", "single_label.txt")
    assert train.read_text().splitlines() == [
        "00000.mp4 happiness", "00002.mp4 neutral", "00003.mp4 neutral", "00005.mp4 happiness",
    ]  # fmt: skip
    lines = labels.read_bytes().splitlines()
    caption = "一个女生眼含着泪水".encode("gbk")
    assert lines[3] == b"00003.mp4\tneutral\t" + caption  # relabelled, caption as it was
    assert lines[1].startswith(b"00001.mp4\tsadness")
    split = create_dataset("mafw", root=root, split="train", fold=1, split_file=str(train),
                           label_file=str(labels))  # fmt: skip
    assert [s.label for s in split.samples] == KEPT_LABELS
    summary = json.loads(files["summary"].read_text())
    assert summary["format"] == "mafw" and any("label_file=" in n for n in summary["notes"])


def test_every_sample_pruned_gives_an_empty_export_with_a_warning(tmp_path):
    ledger = make_ledger()
    ledger.rows["state"][-1] = np.full(6, PRUNED, dtype=np.int8)
    run = make_run(tmp_path, ledger=ledger)
    app = typer.Typer()
    app.command()(export)
    result = CliRunner().invoke(app, [str(run)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "warning: the cleaned annotation has no usable row: all 6 training samples" in out, out
    summary = json.loads((run / "export" / "export.json").read_text())
    assert summary["kept_rows"] == 0 and len(summary["warnings"]) == 1, summary


def test_skipped_rows_are_listed_counted_and_left_out(tmp_path):
    run = make_run(tmp_path)
    source = f"{tmp_path / 'data' / 'train.txt'}:4"  # sample 2 (row 1 is a comment)
    frame = f"{clip_path(tmp_path, 2)}/00002.jpg"
    lines = [f"{tmp_path / 'data' / 'test.txt'}:9: label 7 out of range [0, 3)",
             f"{source}: {frame}: cannot decode image (met at epoch 2)"]  # fmt: skip
    (run / "skipped.txt").write_text("\n".join(lines) + "\n")
    files = export_run(run, out_dir=tmp_path / "out")
    assert files["skipped"].read_text().splitlines() == lines
    samples = read_list_file(files["annotation"], num_classes=3)
    assert [s.path for s in samples] == [clip_path(tmp_path, i) for i in (0, 3, 5)]
    assert "# d2sp: skipped (unreadable during training): " in files["annotation"].read_text()
    summary = json.loads(files["summary"].read_text())
    counts = [summary[k] for k in ("skipped", "skipped_during_training", "rows_skipped")]
    assert counts == [2, 1, 1], summary
    assert any("listed in skipped.txt" in w for w in summary["warnings"]), summary["warnings"]
    with open(files["issues"], newline="") as f:
        states = {int(r["index"]): r["state"] for r in csv.DictReader(f)}
    assert states[2] == "skipped" and states[0] == "kept"


def flipped_label_ledger() -> Ledger:
    """A paper-mode purifier's ledger over 6 samples of 3 classes, 3 epochs: the model
    predicts every sample's label with confidence, except sample 3, annotated 0 (calm) but
    predicted 2 (cross) every epoch: a flipped label."""
    labels = np.array([0, 1, 2, 0, 1, 2])
    purifier = create_purifier("paper", labels, num_classes=3, warmup_epochs=1, t=1,
                               lam=0.1, tau=0.2)  # fmt: skip
    truth = labels.copy()
    truth[3] = 2
    for _ in range(3):
        logits = torch.full((6, 3), -2.0)
        logits[torch.arange(6), torch.from_numpy(truth)] = 3.0
        logits[1] = torch.tensor([0.5, 1.0, 0.2])  # right but unsure
        purifier.record(torch.arange(6), logits, torch.full((6,), 0.9))
        purifier.end_epoch()
    return purifier.ledger


def test_issues_list_ranks_a_flipped_label_first_in_the_input_numbering(tmp_path):
    run = make_run(tmp_path, ledger=flipped_label_ledger())
    files = export_run(run, out_dir=tmp_path / "out")
    with open(files["issues"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == ISSUE_COLUMNS and len(rows) == 6
    top = rows[0]
    assert [top[k] for k in ("rank", "index", "given_label", "suggested_label")] == [
        "1", "3", "0", "2"
    ], top
    assert (top["given_name"], top["suggested_name"]) == ("calm", "cross")
    assert top["source"].endswith("train.txt:6") and top["id"] == clip_path(tmp_path, 3)
    assert rows[1]["index"] == "1"  # the unsure one next
    suspicion = [float(r["suspicion"]) for r in rows]
    assert suspicion == sorted(suspicion, reverse=True)

    root = tmp_path / "dfew"  # the same ledger over DFEW: 1-based labels in issues.csv
    for i in range(6):
        write_clip(root / "clip_224x224" / f"{i + 1:05d}", 4, tint=30 * i)
    (root / "label").mkdir()
    (root / "label" / "single_trainset_1.csv").write_text(
        "video_name,label\n" + "".join(f"{i + 1},{y % 3 + 1}\n" for i, y in enumerate(range(6)))
    )
    set_data(run, dataset="dfew", root=str(root), fold=1, options={})
    (run / "class_counts.json").unlink()
    app = typer.Typer()
    app.command()(export)
    result = CliRunner().invoke(app, [str(run), "--out", str(tmp_path / "d"), "--issues", "2"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "d" / "issues.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2, rows
    assert [rows[0][k] for k in ("id", "given_label", "suggested_label")] == ["00004", "1", "3"]
    assert (rows[0]["given_name"], rows[0]["suggested_name"]) == ("happiness", "neutral")
    with open(tmp_path / "d" / "ledger.csv", newline="") as f:
        ledger_rows = list(csv.DictReader(f))
    assert (ledger_rows[3]["given_label"], ledger_rows[3]["given_input"]) == ("0", "1")
