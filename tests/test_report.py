"""The HTML run report on hand-made run folders (no training)."""

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

from d2sp.commands.report import report
from d2sp.config import config_to_dict, load_config
from d2sp.purify.ledger import CORRECTED, KEPT, PRUNED, UNDECIDED, Ledger
from d2sp.runs.folder import RunFolderError, read_run
from d2sp.runs.report import curve_series, render_report, select_gallery, write_report

NAMES = ("calm", "glad", "cross")
U, K, P, C = UNDECIDED, KEPT, PRUNED, CORRECTED


def write_clip(folder: Path, n: int, tint: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.full((16, 16, 3), (tint, 10 * i, 255 - tint), dtype=np.uint8)
        (folder / f"{i + 1:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(img, quality=95))


def make_ledger() -> Ledger:
    """6 samples, 3 epochs: 1 and 4 pruned, 3 (→ cross) and 5 (→ calm) corrected at the end."""
    labels = np.array([0, 1, 2, 0, 1, 2])
    ledger = Ledger(labels=labels)
    nan = np.full(6, np.nan, dtype=np.float32)
    rows = [
        dict(weight=[0.5] * 6, score=nan, delta_p=np.zeros(6), state=[U] * 6, label=labels),
        dict(
            weight=[0.6] * 6,
            score=[0.9, 0.2, 0.8, 0.7, 0.6, 0.6],
            delta_p=[0, 0, 0, 0.4, 0, 0.1],
            state=[K, P, K, C, K, K],
            label=[0, 1, 2, 2, 1, 2],
        ),
        dict(
            weight=[0.7, 0.7, 0.7, 0.7, np.nan, 0.7],
            score=[0.9, 0.3, 0.8, 0.7, 0.1, 0.6],
            delta_p=[0, 0, 0, 0.5, 0, 0.8],
            state=[K, P, K, C, P, C],
            label=[0, 1, 2, 2, 1, 0],
        ),
    ]
    for row in rows:
        ledger.append(
            weight=np.asarray(row["weight"], dtype=np.float16),
            pred=np.array([0, 0, 2, 2, 1, 0]),
            p_pred=np.full(6, 0.8, dtype=np.float16),
            p_label=np.full(6, 0.5, dtype=np.float16),
            score=np.asarray(row["score"], dtype=np.float32),
            delta_p=np.asarray(row["delta_p"], dtype=np.float32),
            state=np.asarray(row["state"], dtype=np.int8),
            label=np.asarray(row["label"], dtype=np.int16),
            suspicion=1.0 - np.asarray(row["score"], dtype=np.float32),
            suggested=np.asarray(row["label"], dtype=np.int16),
        )
    return ledger


def make_run(tmp_path: Path, *, ledger: Ledger | None = None) -> Path:
    """A run folder over a 6-clip list dataset, as the trainer would leave it."""
    data = tmp_path / "data"
    for i in range(6):
        write_clip(data / "clips" / f"c{i}", 8, tint=40 * i)
    given = [0, 1, 2, 0, 1, 2]
    rows = [f"clips/c{i} 8 {y}" for i, y in enumerate(given)]
    (data / "train.txt").write_text(
        "# my annotation\n" + "\n".join(rows[:3]) + "\n\n" + "\n".join(rows[3:]) + "\n"
    )
    for i in range(6):
        write_clip(data / "clips" / f"t{i}", 8, tint=40 * i + 10)
    (data / "test.txt").write_text("".join(f"clips/t{i} 8 {y}\n" for i, y in enumerate(given)))
    cfg = load_config(
        None,
        [
            "name=fake",
            "data.dataset=list",
            f"data.root={data}",
            "data.options={train_list: train.txt, test_list: test.txt, class_names: [calm, glad, cross]}",
            "data.num_frames=4",
            "data.size=16",
            "data.workers=0",
            "model.options={width: 4, lstm_hidden: 8}",
            "optim.epochs=3",
            "optim.batch_size=2",
            "purify.mode=paper",
            "purify.warmup_epochs=1",
            "purify.t=1",
            "purify.lam=0.5",
            "purify.tau=0.2",
        ],
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    cms = [
        [[2, 0, 0], [1, 1, 0], [0, 0, 2]],
        [[2, 0, 0], [0, 2, 0], [0, 1, 1]],
        [[1, 1, 0], [0, 2, 0], [0, 0, 2]],
    ]
    with open(run / "metrics.jsonl", "w") as f:
        for e in range(3):
            f.write(
                json.dumps(
                    {
                        "epoch": e + 1,
                        "lr": 0.01,
                        "loss": 1.0 - 0.2 * e,
                        "train_acc": 0.3 + 0.1 * e,
                        "trained": 6,
                        "war": [0.5, 0.8, 0.6][e],
                        "uar": [0.5, 0.7, 0.6][e],
                        "recorded": 6,
                        "kept": 4,
                        "pruned": [0, 1, 2][e],
                        "corrected": [0, 1, 2][e],
                        "undecided": 0,
                        "seconds": 1.0,
                        "confusion": cms[e],
                    }
                )
                + "\n"
            )
    (ledger or make_ledger()).save(run / "ledger.npz")
    (run / "class_counts.json").write_text(
        json.dumps(
            {
                "train": {"calm": 2, "glad": 2, "cross": 2},
                "test": {"calm": 2, "glad": 2, "cross": 2},
            }
        )
    )
    (run / "summary.json").write_text(
        json.dumps(
            {
                "war": 0.6,
                "uar": 0.6,
                "best_war": 0.8,
                "best_uar": 0.7,
                "best_epoch": 2,
                "pruned": 2,
                "corrected": 2,
                "train_samples": 6,
                "test_samples": 6,
                "seconds": 3.0,
            }
        )
    )
    return run


def gallery_indices(page: str, kind: str) -> list[int]:
    section = re.search(rf'<section id="gallery-{kind}">(.*?)</section>', page, re.S)
    assert section is not None, f"no {kind} gallery"
    return [int(i) for i in re.findall(r'class="clip" data-index="(\d+)"', section.group(1))]


def test_report_is_self_contained_with_every_section(tmp_path):
    run = make_run(tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert 'src="http' not in page and "<script" not in page and "<link" not in page
    for sid in (
        "overview",
        "config",
        "curves",
        "confusion",
        "timeline",
        "distributions",
        "classes",
        "gallery-pruned",
        "gallery-corrected",
    ):
        assert f'<section id="{sid}">' in page
    assert "truth" not in re.findall(r'<section id="([^"]+)"', page)  # no ground truth here
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 5 + 4  # 5 figures, 4 frame strips
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.verify()
    for name in NAMES:
        assert name in page
    assert "best WAR (epoch 2)" in page and "80.0%" in page


def test_galleries_show_the_right_samples_in_order(tmp_path):
    run = make_run(tmp_path)
    page = write_report(run, out=tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert gallery_indices(page, "pruned") == [4, 1]  # lowest score first
    assert gallery_indices(page, "corrected") == [5, 3]  # largest Δp first
    clip5 = re.search(r'data-index="5">(.*?)</div></div></div>', page, re.S).group(1)
    assert "cross → <b>calm</b>" in clip5 and "Δp 0.800" in clip5
    clip4 = re.search(r'data-index="4">(.*?)</div></div></div>', page, re.S).group(1)
    assert "w 0.600" in clip4  # not recorded in the last epoch: its last record is shown
    assert "pruned since epoch 3" in clip4
    strip = re.search(r'src="data:image/png;base64,([^"]+)"', clip4).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(strip))).size == (6 * 64 + 5 * 2, 64)


def test_select_gallery_caps_and_orders(tmp_path):
    ledger = make_ledger()
    assert select_gallery(ledger, kind="pruned").tolist() == [4, 1]
    assert select_gallery(ledger, kind="corrected", limit=1).tolist() == [5]
    with pytest.raises(ValueError, match="kind"):
        select_gallery(ledger, kind="kept")


def test_report_without_the_data_still_renders(tmp_path):
    run = make_run(tmp_path)
    for clip in (tmp_path / "data" / "clips").iterdir():
        for f in clip.iterdir():
            f.unlink()
        clip.rmdir()
    (tmp_path / "data" / "train.txt").unlink()
    page = render_report(read_run(run))
    assert "Clip galleries and ground truth are left out" in page
    assert gallery_indices(page, "pruned") == []
    assert "calm" in page  # class names from class_counts.json


def test_missing_files_are_named(tmp_path):
    run = make_run(tmp_path)
    (run / "ledger.npz").unlink()
    (run / "metrics.jsonl").unlink()
    with pytest.raises(RunFolderError, match=r"missing metrics.jsonl .*ledger.npz"):
        write_report(run)
    with pytest.raises(RunFolderError, match="no such folder"):
        write_report(tmp_path / "nope")
    (run / "metrics.jsonl").write_text("")
    make_ledger().save(run / "ledger.npz")
    with pytest.raises(RunFolderError, match="no finished epoch"):
        write_report(run)


def test_cli_report_errors_exit_2_without_traceback(tmp_path):
    app = typer.Typer()
    app.command()(report)
    result = CliRunner().invoke(app, [str(tmp_path)])
    assert result.exit_code == 2
    assert "config.yaml" in result.output and "Traceback" not in result.output
    run = make_run(tmp_path)
    result = CliRunner().invoke(app, [str(run), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").is_file()


def test_report_lists_the_skipped_rows(tmp_path):
    run = make_run(tmp_path)
    assert '<section id="skipped">' not in render_report(read_run(run))  # none skipped
    lines = ["/d/train.txt:7: label 9 out of range [0, 3)",
             "/d/train.txt:3: /d/c2/00002.jpg: cannot decode image (met at epoch 2)"]  # fmt: skip
    (run / "skipped.txt").write_text("\n".join(lines) + "\n")
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "skipped": 2}))
    page = render_report(read_run(run))
    section = re.search(r'<section id="skipped">(.*?)</section>', page, re.S)
    assert section is not None, "report: expected a skipped-rows section"
    text = section.group(1)
    assert "2 row(s) skipped" in text and "1 when the data was read, 1 met unreadable" in text
    for line in lines:
        assert line in text, f"skipped section: expected {line!r}"
    assert '<div class="v">2</div><div class="k">skipped rows</div>' in page


def test_curves_go_on_through_epochs_that_trained_nothing(tmp_path):
    run = make_run(tmp_path)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows[1:]:
        r.update(trained=0, loss=0.0, train_acc=0.0)  # every sample pruned after epoch 1
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = curve_series(rows)
    assert np.isfinite(curves["war"]).all() and np.isfinite(curves["uar"]).all()
    assert np.isfinite(curves["loss"]).tolist() == [True, False, False]
    page = render_report(read_run(run))
    assert "epoch(s) 2–3 trained no sample" in page


def test_synthdfer_run_gets_ground_truth_scores(tmp_path):
    from d2sp.data.synth import generate_synthdfer, load_ground_truth

    opts = dict(num_train=20, num_test=3, size=16, min_frames=4, max_frames=6, seed=0, workers=1)
    root = generate_synthdfer(tmp_path / "synth", progress=False, **opts)
    gt = load_ground_truth(root, split="train")
    n = len(gt["index"])
    low = np.flatnonzero(gt["low_quality"])
    bad = np.flatnonzero(gt["mislabeled"])
    assert len(low) and len(bad)
    state = np.full(n, KEPT, dtype=np.int8)
    state[low] = PRUNED
    state[bad] = CORRECTED
    label = gt["given_label"].copy()
    label[bad] = gt["true_label"][bad]
    ledger = Ledger(labels=gt["given_label"])
    ledger.append(
        weight=np.full(n, 0.5, np.float16),
        pred=label,
        p_pred=np.ones(n, np.float16),
        p_label=np.ones(n, np.float16),
        score=np.linspace(0, 1, n, dtype=np.float32),
        delta_p=np.full(n, 0.5, np.float32),
        state=state,
        label=label.astype(np.int16),
        suspicion=np.zeros(n, np.float32),
        suggested=label.astype(np.int16),
    )
    run = make_run(tmp_path / "x", ledger=ledger)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"] = dict(cfg["data"], dataset="synthdfer", root=str(root), options=opts)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "class_counts.json").unlink()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][:1]
    rows[0]["confusion"] = np.eye(7, dtype=int).tolist()
    (run / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (run / "summary.json").unlink()
    page = write_report(run).read_text(encoding="utf-8")
    assert '<section id="truth">' in page
    found = re.findall(r'<div class="v">([^<]*)</div><div class="k">([^<]*)</div>', page)
    precision = {k: v for v, k in found}
    assert precision["pruning precision"] == "100.0%"
    assert precision["pruning recall"] == "100.0%"
    assert precision["correction precision"] == "100.0%"
    assert "happiness" in page  # SynthDFER class names from the split
