"""The cleaned annotation of a run: its training annotation minus pruned rows, labels corrected.

>>> from d2sp.runs.export import export_run
>>> export_run("runs/demo/d2sp")  # -> {"annotation": .../export/train_list.txt, ...}

What is written (default folder ``RUN_DIR/export``; the dataset folder and the original
annotation are never written):

- the training annotation, in the format it came in, under its original file name:

  - list format (``path num_frames label``; datasets ``list``, ``synthdfer``, ``ferv39k``
    with ``list_file=``): pruned rows removed, corrected labels applied. With
    ``flag_pruned`` a pruned row stays, preceded by a ``# d2sp: pruned ...`` comment line.
    Rows the run did not use (skipped as bad) are kept as ``# d2sp: not in the run: ...``
    comments.
  - csv (``csv``: ``path,label`` and any other columns; ``dfew``: ``video_name,label``,
    1-based): same columns, pruned rows removed, corrected labels written the way the file
    writes them (an index, a class name, or DFEW's 1-based id). With ``flag_pruned`` every
    row stays and a ``pruned`` column (0/1) is added. Rows the run did not use are left
    out.
  - FERV39k's official split file (``<Scene>/<Emotion>/<id> <Emotion>``) and MAFW's fold
    split file: the same lines, only the label token changed, spelled as the file spells
    it (``Happy``, ``anger`` or MAFW's 1-based id); MAFW also gets a copy of the
    ``single_label.txt`` the run read with the training clips' final labels (the two go
    together). Pruned, flagged and unused rows as in list files.
  - a layout without a row-level file (FERV39k's folder tree, another dataset) becomes a
    list file ``train_list.txt`` with each clip's real frame count, and a note says so.

  A clip found unreadable during training (a ``(met at epoch E)`` line of the run's
  ``skipped.txt``) is left out (commented out where the format has comments).
  Clip paths (list rows, the ``path`` column) are written absolute, so the file loads from
  anywhere; DFEW's ``video_name`` stays as it is (load it with ``split_file=``).
- ``ledger.csv``: one row per training sample (:mod:`d2sp.runs.ledger_table`; labels are
  0-based class indices, ``given_input``/``final_input`` the labels as the input writes
  them, e.g. DFEW's 1-based ids), and ``ledger.parquet`` with the same table when
  ``pyarrow`` is importable.
- ``issues.csv``: the samples ranked by suspicion, most suspicious first, with a suggested
  label (:mod:`d2sp.runs.issues`; ``issues=N`` keeps the first N).
- ``skipped.txt``: the rows the run skipped as bad input (when there are any).
- ``export.json``: counts (``skipped`` and ``skipped_during_training`` among them), the files
  written, ``notes`` (e.g. a conversion), ``warnings`` (an export with no usable row, rows
  skipped) and, where it can be said, the ``data`` config section that trains on the
  cleaned annotation.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from d2sp.data.frames import DataError, list_frames
from d2sp.data.video import VideoSource, is_video
from d2sp.purify.ledger import CORRECTED, PRUNED, Ledger
from d2sp.runs.export_formats import (
    ferv39k_header,
    ferv39k_token,
    flag_comment,
    label_speller,
    mafw_header,
    mafw_token,
    newline_of,
    rewrite_label_file,
    rewrite_rows,
    row_fate,
    skip_comment,
)
from d2sp.runs.folder import (
    RunFolder,
    RunFolderError,
    last_recorded,
    met_in_training,
    read_run,
    read_skipped,
)
from d2sp.runs.issues import issues_table, write_issues_csv
from d2sp.runs.ledger_table import ledger_table, write_ledger_csv, write_ledger_parquet

LIST_FORMAT_DATASETS = ("list", "synthdfer")
FLAG_COLUMN = "pruned"


def export_run(
    run_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    flag_pruned: bool = False,
    issues: int | None = None,
) -> dict[str, Path]:
    """Write the cleaned training annotation, the per-sample ledger table and the ranked
    issues list of a run.

    Args:
        run_dir: the run folder (needs ``config.yaml`` and ``ledger.npz``, and the run's
            training data, which gives the paths and annotation rows).
        out_dir: where to write; default ``RUN_DIR/export``. Must not lie inside the
            dataset folder.
        flag_pruned: keep pruned rows, flagged (a comment line in list files, a ``pruned``
            column in csv files), instead of removing them.
        issues: rows of ``issues.csv`` (the most suspicious first); None: every sample.

    Returns:
        The files written: ``annotation`` (more than one annotation file:
        ``annotation_1``, ``annotation_2`` …), ``ledger_csv``, ``ledger_parquet`` (when
        pyarrow is importable), ``issues``, ``skipped`` (when the run skipped rows) and
        ``summary`` (``export.json``).

    Raises:
        RunFolderError: not a run folder, the data is unreadable or no longer matches the
            ledger, or ``out_dir`` would write into the dataset or over an annotation file.
    """
    run = read_run(run_dir, require=("config.yaml", "ledger.npz"))
    if run.ledger is None or run.ledger.num_epochs == 0:
        raise RunFolderError(f"{run.path / 'ledger.npz'}: the ledger has no epoch yet")
    split = run.load_train_split()
    names = tuple(split.class_names)
    out = Path(out_dir) if out_dir is not None else run.path / "export"
    _check_out_dir(out, split, run.path)
    out.mkdir(parents=True, exist_ok=True)
    skipped_lines = read_skipped(run.path)
    decisions = _decisions(run.ledger, split.samples, skipped_lines)
    kind = _annotation_kind(run, split)
    counts = {"rows_removed": 0, "rows_flagged": 0, "rows_not_in_run": 0, "rows_skipped": 0}
    notes: list[str] = []
    kind, written = _write_annotations(
        kind, split, out, decisions, names, flag_pruned, counts, notes
    )
    files: dict[str, Path] = {}
    if len(written) == 1:
        files["annotation"] = written[0]
    else:
        files.update({f"annotation_{i}": p for i, p in enumerate(written, start=1)})
    spell = label_speller(kind, names, annotation=_first_annotation(split))
    files.update(_write_tables(run.ledger, split.samples, names, spell, out, decisions, issues))
    if skipped_lines:
        files["skipped"] = out / "skipped.txt"
        files["skipped"].write_text("\n".join(skipped_lines) + "\n", encoding="utf-8")
    summary = _summary(run, split, kind, decisions, flag_pruned, counts, written, skipped_lines)
    summary["notes"], summary["warnings"] = notes, _warnings(summary, decisions)
    files["summary"] = out / "export.json"
    files["summary"].write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return files


def _decisions(ledger: Ledger, samples, skipped_lines: list[str]) -> dict[str, np.ndarray]:
    """Per training sample at the final epoch: ``pruned``, ``label`` (final), ``given``,
    ``score``, ``weight``, and ``skipped`` (found unreadable during training)."""
    state = ledger.column("state")[-1]
    given = ledger.labels.astype(np.int64)
    return {
        "pruned": state == PRUNED,
        # a label other than the annotation only where the run corrected it (a mode may train
        # some samples on other labels for its own purposes, e.g. adaptive's probes)
        "label": np.where(state == CORRECTED, ledger.column("label")[-1].astype(np.int64), given),
        "given": ledger.labels.astype(np.int64),
        "score": ledger.column("score")[-1],
        "weight": last_recorded(ledger.column("weight")),
        "skipped": skipped_during_training(samples, skipped_lines),
    }


def skipped_during_training(samples, lines: list[str]) -> np.ndarray:
    """``(N,)`` bool: samples whose ``source`` begins a ``… (met at epoch E)`` line of
    ``skipped.txt`` (clips found unreadable during training)."""
    index = {s.source: i for i, s in enumerate(samples) if s.source}
    out = np.zeros(len(samples), dtype=bool)
    for line in lines:
        if not met_in_training(line):
            continue
        at = line.find(": ")
        while at != -1:
            i = index.get(line[:at])
            if i is not None:
                out[i] = True
                break
            at = line.find(": ", at + 1)
    return out


def _first_annotation(split) -> str | None:
    files = [s.source.rpartition(":")[0] for s in split.samples[:1]]
    return files[0] if files and files[0] else None


def _write_tables(ledger, samples, names, spell, out: Path, decisions, issues) -> dict[str, Path]:
    """``ledger.csv`` (and ``ledger.parquet``) and ``issues.csv``."""
    files: dict[str, Path] = {}
    table = ledger_table(ledger, samples, names, spell=spell)
    files["ledger_csv"] = write_ledger_csv(table, out / "ledger.csv")
    parquet = write_ledger_parquet(table, out / "ledger.parquet")
    if parquet is not None:
        files["ledger_parquet"] = parquet
    ranked = issues_table(ledger, samples, names, spell, limit=issues, skipped=decisions["skipped"])
    files["issues"] = write_issues_csv(ranked, out / "issues.csv")
    return files


def _summary(run, split, kind, decisions, flag_pruned, counts, written, skipped_lines) -> dict:
    state_pruned = decisions["pruned"]
    corrected = run.ledger.column("state")[-1] == CORRECTED
    met = [line for line in skipped_lines if met_in_training(line)]
    return {
        "run": str(run.path.resolve()),
        "dataset": run.config.data.dataset,
        "format": kind,
        "epoch": run.ledger.num_epochs,
        "samples": int(len(state_pruned)),
        "pruned": int(state_pruned.sum()),
        "corrected": int(corrected.sum()),
        "kept_rows": int((~state_pruned & ~decisions["skipped"]).sum()),
        "flag_pruned": flag_pruned,
        **counts,
        "skipped": len(skipped_lines),
        "skipped_during_training": len(met),
        "class_names": list(split.class_names),
        "source_annotation": sorted(
            {s.source.rpartition(":")[0] for s in split.samples if s.source.rpartition(":")[0]}
        ),
        "annotation": [str(p.resolve()) for p in written],
        "data": _train_with(run, split, written, kind),
    }


def _warnings(summary: dict, decisions) -> list[str]:
    """What the user must know about the export: an empty cleaned annotation, rows left out
    as bad input."""
    out = []
    if summary["kept_rows"] == 0:
        out.append(
            f"the cleaned annotation has no usable row: all {summary['samples']} training "
            f"samples were pruned (or skipped) at epoch {summary['epoch']}; the purifier "
            "kept nothing, so this file cannot train a model (look at the run's report)"
        )
    if summary["skipped"]:
        out.append(
            f"{summary['skipped']} row(s) were skipped as bad input "
            f"({summary['skipped_during_training']} of them unreadable during training) and "
            "are not in the cleaned annotation; they are listed in skipped.txt"
        )
    return out


def _write_annotations(kind, split, out, decisions, names, flag_pruned, counts, notes):
    """Write the cleaned annotation file(s) in the input's format (one per source file);
    returns ``(format, files written)``."""
    groups = _group_by_file(split.samples) if kind != "converted" else None
    if groups is None:
        path = out / "train_list.txt"
        _refuse_original(path, split)
        _write_converted(path, split, decisions, flag_pruned, counts)
        notes.append(
            f"the {split.name} training data has no row-level annotation file to edit (a "
            "folder tree or another layout): it was written as a list file (path "
            "num_frames label, 0-based labels) with each clip's real frame count"
        )
        return "converted", [path]
    written, used = [], set()
    for number, (source_file, rows) in enumerate(groups.items(), start=1):
        name = Path(source_file).name
        if name in used:
            name = f"{number}_{name}"
        used.add(name)
        path = out / name
        _refuse_original(path, split)
        _write_one(kind, Path(source_file), path, rows, split.samples, decisions, names,
                   flag_pruned, counts)  # fmt: skip
        written.append(path)
    if kind == "mafw":
        written += _write_mafw_labels(split, out, decisions, notes)
    return kind, written


def _write_one(kind, source, path, rows, samples, decisions, names, flag_pruned, counts) -> None:
    """Rewrite one annotation file of ``kind`` into ``path``."""
    if kind == "list":
        _write_list(source, path, rows, samples, decisions, flag_pruned, counts)
    elif kind == "ferv39k":
        rewrite_rows(source, path, rows, decisions, flag_pruned, counts,
                     token=ferv39k_token, header=ferv39k_header)  # fmt: skip
    elif kind == "mafw":
        rewrite_rows(source, path, rows, decisions, flag_pruned, counts,
                     token=mafw_token, header=mafw_header)  # fmt: skip
    else:
        _write_csv(source, path, rows, samples, decisions, names, flag_pruned, counts,
                   dfew=kind == "dfew")  # fmt: skip


def _write_mafw_labels(split, out: Path, decisions, notes: list[str]) -> list[Path]:
    """A cleaned copy of the ``single_label.txt`` the run read (the training clips with
    their final labels), so that it agrees with the cleaned split file."""
    split_files = {s.source.rpartition(":")[0] for s in split.samples}
    label_files = [Path(f) for f in split.annotation_files if f not in split_files]
    if not label_files:
        return []
    final = {
        s.meta["video_id"]: int(decisions["label"][i])
        for i, s in enumerate(split.samples)
        if "video_id" in s.meta
    }
    path = out / label_files[0].name
    _refuse_original(path, split)
    changed = rewrite_label_file(label_files[0], path, final)
    notes.append(
        f"{path.name} is a copy of {label_files[0]} with the final labels of the training "
        f"clips ({changed} row(s) relabelled): load the cleaned split file with "
        f"label_file={str(path.resolve())!r}, or the original labels would disagree with it"
    )
    return [path]


# ------------------------------------------------------------------------- the annotation


def _annotation_kind(run: RunFolder, split) -> str:
    """``list``, ``csv``, ``dfew`` (a csv with 1-based labels) or ``converted``."""
    name = run.config.data.dataset
    if name in LIST_FORMAT_DATASETS:
        return "list"
    if name == "ferv39k" and run.config.data.options.get("list_file"):
        return "list"
    if name in ("csv", "dfew", "mafw"):
        return name
    if name == "ferv39k" and split.annotation_files:  # the official split files
        return "ferv39k"
    return "converted"


def _group_by_file(samples) -> dict[str, dict[int, int]] | None:
    """``{annotation file: {row: sample index}}``; None when a source is not ``file:row``."""
    groups: dict[str, dict[int, int]] = {}
    for i, s in enumerate(samples):
        file, sep, row = s.source.rpartition(":")
        if not sep or not row.isdigit() or not os.path.isfile(file):
            return None
        groups.setdefault(file, {})[int(row)] = i
    return groups


def _is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _check_out_dir(out: Path, split, run_dir: Path) -> None:
    """Refuse an output folder inside the dataset folder (unless inside the run folder)."""
    root = Path(split.root) if split.root else None
    if root is None or not root.is_dir() or _is_inside(out, run_dir):
        return
    if _is_inside(out, root):
        raise RunFolderError(
            f"{out}: inside the dataset folder {root}; export elsewhere (the dataset folder "
            "is never written)"
        )


def _refuse_original(path: Path, split) -> None:
    originals = {Path(f).resolve() for f in split.annotation_files}
    originals |= {
        Path(s.source.rpartition(":")[0]).resolve()
        for s in split.samples
        if s.source.rpartition(":")[0]
    }
    if path.resolve() in originals:
        raise RunFolderError(f"{path}: this is an original annotation file; export elsewhere")


def _write_list(source, path, rows, samples, decisions, flag_pruned, counts) -> None:
    """Rewrite a list file row by row: same rows, absolute paths, final labels."""
    lines = source.read_text(encoding="utf-8").splitlines()
    out, end = [], newline_of(source)
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        i = rows.get(number)
        if i is None:
            if text and not text.startswith("#"):
                out.append(f"# d2sp: not in the run: {text}{end}")
                counts["rows_not_in_run"] += 1
            else:
                out.append(line + end)
            continue
        fate = row_fate(i, decisions, flag_pruned, counts)
        if fate == "removed":
            continue
        if fate == "skipped":
            out.append(skip_comment(text, end))
            continue
        parts = text.split()
        num_frames = parts[-2] if len(parts) >= 3 else str(samples[i].num_frames or 0)
        label = int(decisions["label"][i])
        if fate == "flagged":
            out.append(flag_comment(i, decisions, end))
        out.append(f"{os.path.abspath(samples[i].path)} {num_frames} {label}{end}")
    path.write_text("".join(out), encoding="utf-8", newline="")


def frame_count(sample) -> int | None:
    """The real frame count of a sample's clip (its folder listing or its video's count);
    None when the clip cannot be read."""
    if sample.num_frames:
        return int(sample.num_frames)
    try:
        if is_video(sample.path):
            return VideoSource().num_frames(sample.path)
        return len(list_frames(sample.path))
    except DataError:
        return None


def _write_converted(path, split, decisions, flag_pruned, counts) -> None:
    """A list file of every sample (the source layout has no row-level file to edit), with
    each clip's real frame count."""
    out = []
    for i, s in enumerate(split.samples):
        fate = row_fate(i, decisions, flag_pruned, counts)
        if fate == "removed":
            continue
        n = frame_count(s)
        row = f"{os.path.abspath(s.path)} {n if n is not None else 0} {int(decisions['label'][i])}"
        if fate == "skipped" or n is None:
            counts["rows_skipped"] += int(fate != "skipped")
            out.append(skip_comment(row))
            continue
        if fate == "flagged":
            out.append(flag_comment(i, decisions))
        out.append(row + "\n")
    path.write_text("".join(out), encoding="utf-8")


def _label_cell(original: str, k: int, names, *, dfew: bool) -> str:
    """Write class ``k`` the way the original cell wrote its label."""
    if dfew:
        return str(k + 1)
    text = original.strip()
    if text.lstrip("+-").isdigit():
        return str(k)
    return names[k]


def _write_csv(source, path, rows, samples, decisions, names, flag_pruned, counts, *, dfew):
    """Rewrite a csv row by row: same columns (plus ``pruned`` when flagging)."""
    with open(source, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        columns = [h.strip().lower() for h in header]
        il = columns.index("label")
        ip = columns.index("path") if "path" in columns and not dfew else None
        flag = FLAG_COLUMN if FLAG_COLUMN not in columns else f"d2sp_{FLAG_COLUMN}"
        out_rows = [header + [flag] if flag_pruned else header]
        for row in reader:
            i = rows.get(reader.line_num)
            if i is None:
                if any(cell.strip() for cell in row):
                    counts["rows_not_in_run"] += 1
                continue
            fate = row_fate(i, decisions, flag_pruned, counts)
            if fate in ("removed", "skipped"):
                continue
            pruned = fate == "flagged"
            row = list(row)
            row[il] = _label_cell(row[il], int(decisions["label"][i]), names, dfew=dfew)
            if ip is not None:
                row[ip] = os.path.abspath(samples[i].path)
            if flag_pruned:
                row.append("1" if pruned else "0")
            out_rows.append(row)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator=newline_of(source)).writerows(out_rows)


# the options naming a list or csv dataset's annotation files: any split, train, test
_FILE_OPTIONS = {
    "list": ("list_file", "train_list", "test_list"),
    "csv": ("csv_file", "train_csv", "test_csv"),
}


def _train_with(run: RunFolder, split, written: list[Path], kind: str) -> dict | None:
    """The ``data`` config section that trains on the export (None where it cannot be said)."""
    if kind in OFFICIAL and run.config.data.dataset == kind:
        return _train_with_official(run, split, written, kind)
    if len(written) != 1 or kind not in ("list", "csv", "converted"):
        return None
    data = run.config.data
    fmt = "csv" if data.dataset == "csv" else "list"
    files = _FILE_OPTIONS[fmt]
    keep = {k: v for k, v in data.options.items() if data.dataset == fmt and k not in files}
    if fmt == "list":
        keep.setdefault("class_names", list(split.class_names))
    exported = str(written[0].resolve())
    return {
        "dataset": fmt,
        "root": str(Path(split.root).resolve()),
        "options": {**keep, files[1]: exported, files[2]: _test_file(run, split, kind)},
    }


OFFICIAL = ("dfew", "mafw", "ferv39k")  # datasets read through their official split files


def _train_with_official(run: RunFolder, split, written: list[Path], kind: str) -> dict:
    """The run's own ``data`` section with the cleaned split file as its training split
    (``train_split_file=``; the test split read as the run read it) and, for MAFW, the
    cleaned copy of its label file."""
    data = run.config.data
    options = {k: v for k, v in data.options.items() if k != "train_split_file"}
    options["train_split_file"] = str(written[0].resolve())
    if kind == "mafw" and len(written) > 1:
        options["label_file"] = str(written[1].resolve())
    return {
        "dataset": kind, "root": str(Path(split.root).resolve()), "fold": data.fold,
        "options": options,
    }  # fmt: skip


def _test_file(run: RunFolder, split, kind: str) -> str | None:
    """The run's test annotation file, absolute, where the export's format can name it."""
    from d2sp.data.generic import pick_file

    data = run.config.data
    fmt = "csv" if data.dataset == "csv" else "list"
    test = None
    try:
        root = Path(split.root)
        if data.dataset == "synthdfer":
            test = root / "test_list.txt"
        elif data.dataset == "csv" or (data.dataset in ("list", "ferv39k") and kind == "list"):
            any_split, train_file, test_file = (data.options.get(k) for k in _FILE_OPTIONS[fmt])
            test = pick_file(fmt, root, "test", data.fold, any_split=any_split, train=train_file,
                             test=test_file, option=fmt)  # fmt: skip
    except (ValueError, OSError):
        test = None
    return str(Path(test).resolve()) if test is not None and Path(test).is_file() else None
