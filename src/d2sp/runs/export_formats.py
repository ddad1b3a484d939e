"""The cleaned annotation in the official formats that have no list or csv form: FERV39k's
split files (``<Scene>/<Emotion>/<id> <Emotion>``) and MAFW's fold split files with its
``single_label.txt``; and how each input format writes a label (for ``issues.csv`` and the
``*_input`` columns of ``ledger.csv``).

Rows are rewritten in place: the same lines, separators and captions (MAFW's captions are
copied as bytes, never decoded), only the label token changed to the final label, spelled
the way the row spelled it (a name keeps its case; MAFW's 1-based official ids stay ids).
Rows are kept, flagged, removed or commented out as :func:`row_fate` says. Every file keeps
its input's line endings (:func:`newline_of`): LF stays LF, CRLF stays CRLF.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

from d2sp.data.labels import DFEW_OFFICIAL_NAMES, MAFW_CLASSES, MAFW_OFFICIAL_ORDER

_TOKENS = re.compile(rb"^(\s*[^\s,]+)([\s,]+)([^\s,]+)(.*)$", re.S)  # first field, separator, label, rest


def row_fate(i: int, decisions: dict, flag_pruned: bool, counts: dict) -> str:
    """What becomes of training sample ``i``'s row, counted in ``counts``: ``"skipped"``
    (unreadable during training: commented out), ``"removed"`` (pruned), ``"flagged"``
    (pruned, kept after a comment with ``flag_pruned``) or ``"kept"``."""
    if decisions["skipped"][i]:
        counts["rows_skipped"] += 1
        return "skipped"
    if decisions["pruned"][i]:
        key = "rows_flagged" if flag_pruned else "rows_removed"
        counts[key] += 1
        return "flagged" if flag_pruned else "removed"
    return "kept"


def newline_of(path: str | Path) -> str:
    """The line ending of a text file: CRLF when its first line ends so, else LF."""
    with open(path, "rb") as f:
        first = f.readline()
    return "\r\n" if first.endswith(b"\r\n") else "\n"


def flag_comment(i: int, decisions: dict, end: str = "\n") -> str:
    """The comment line written before a flagged (pruned) row."""
    score, weight = decisions["score"][i], decisions["weight"][i]
    return f"# d2sp: pruned (score {float(score):.4f}, weight {float(weight):.4f}): next row{end}"


def skip_comment(text: str, end: str = "\n") -> str:
    """A row of a clip found unreadable during training, commented out."""
    return f"# d2sp: skipped (unreadable during training): {text.strip()}{end}"


def same_case(name: str, like: str) -> str:
    """``name`` in the letter case of ``like`` (``anger``/``Anger``/``ANGER``)."""
    if like.isupper():
        return name.upper()
    if like.islower():
        return name.lower()
    return name[:1].upper() + name[1:].lower()


def mafw_token(k: int, like: str) -> str:
    """Class ``k`` of :data:`MAFW_CLASSES` written like ``like`` (an official id or a name)."""
    name = MAFW_CLASSES[k]
    if like.strip().isdigit():
        return str(MAFW_OFFICIAL_ORDER.index(name) + 1)
    return same_case(name, like)


def ferv39k_token(k: int, like: str) -> str:
    """Class ``k`` as a FERV39k emotion name (``Happy`` … ``Fear``) in the case of ``like``."""
    return same_case(DFEW_OFFICIAL_NAMES[k], like) if like else DFEW_OFFICIAL_NAMES[k]


def _relabel(line: bytes, token: str, newline: bytes = b"\n") -> bytes:
    """``line`` with its second field replaced by ``token`` (appended when it has none)."""
    m = _TOKENS.match(line.rstrip(b"\r\n"))
    end = line[len(line.rstrip(b"\r\n")) :] or newline
    if m is None:
        return line.rstrip(b"\r\n") + b" " + token.encode() + end
    return m.group(1) + m.group(2) + token.encode() + m.group(4) + end


def _label_token(line: bytes) -> str:
    m = _TOKENS.match(line.rstrip(b"\r\n"))
    return m.group(3).decode("ascii", "replace") if m else ""


def rewrite_rows(source: Path, path: Path, rows: dict[int, int], decisions, flag_pruned, counts,
                 *, token: Callable[[int, str], str], header: Callable[[bytes], bool]) -> None:  # fmt: skip
    """Rewrite ``source`` row by row into ``path`` (bytes): rows of training samples
    (``rows``: line number -> sample index) get their final label ``token(k, old token)``;
    a row without a label field gets one only when its label changed. Blank lines,
    comments and a first line that ``header`` calls a header stay; any other row becomes a
    ``# d2sp: not in the run:`` comment (it was skipped as bad)."""
    out, end = [], newline_of(source)
    nl = end.encode()
    for number, line in enumerate(source.read_bytes().splitlines(keepends=True), start=1):
        text = line.strip()
        line = line if line.endswith(b"\n") else line + nl
        i = rows.get(number)
        if i is None:
            if text and not text.startswith(b"#") and not (number == 1 and header(text)):
                out.append(b"# d2sp: not in the run: " + text + nl)
                counts["rows_not_in_run"] += 1
            else:
                out.append(line)
            continue
        fate = row_fate(i, decisions, flag_pruned, counts)
        if fate == "removed":
            continue
        if fate == "skipped":
            out.append(skip_comment(text.decode("utf-8", "replace"), end).encode())
            continue
        old, k = _label_token(line), int(decisions["label"][i])
        if old or k != int(decisions["given"][i]):
            line = _relabel(line, token(k, old), nl)
        if fate == "flagged":
            out.append(flag_comment(i, decisions, end).encode())
        out.append(line)
    path.write_bytes(b"".join(out))


def ferv39k_header(text: bytes) -> bool:
    """A first line of a FERV39k split file that is no ``<Scene>/<Emotion>/<id>`` row."""
    return len(text.split()[0].strip(b"/").split(b"/")) < 3 if text.split() else True


def mafw_header(text: bytes) -> bool:
    """A first line of a MAFW file that names no numeric clip id."""
    first = text.split()[0] if text.split() else b""
    return not (first[:-4] if first.lower().endswith(b".mp4") else first).isdigit()


def rewrite_label_file(source: Path, path: Path, final: dict[str, int]) -> int:
    """A copy of MAFW's ``single_label.txt`` with the clips of ``final`` (clip id -> final
    label) relabelled, every other byte as it was; returns the rows changed."""
    out, changed = [], 0
    for line in source.read_bytes().splitlines(keepends=True):
        fields = line.split(None, 2)
        clip = fields[0].decode("ascii", "replace") if fields else ""
        clip = clip[:-4] if clip.lower().endswith(".mp4") else clip
        if clip in final and len(fields) > 1:
            old = _label_token(line)
            new = mafw_token(final[clip], old)
            if new != old:
                line, changed = _relabel(line, new), changed + 1
        out.append(line)
    path.write_bytes(b"".join(out))
    return changed


def csv_label_style(path: str | Path) -> str:
    """``"index"`` when every label cell of a ``path,label`` csv is an integer, else
    ``"name"``."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, None) or []]
        if "label" not in header:
            return "index"
        il = header.index("label")
        cells = [row[il].strip() for row in reader if len(row) > il and row[il].strip()]
    return "index" if all(c.lstrip("+-").isdigit() for c in cells) else "name"


def label_speller(kind: str, names, *, annotation: str | None = None) -> Callable[[int], str]:
    """How the input annotation of ``kind`` writes class ``k``: DFEW 1-based ids, FERV39k
    and MAFW names as in their files (MAFW ids where its file uses ids), csv files as they
    write them, list files 0-based indices."""
    if kind == "dfew":
        return lambda k: str(k + 1)
    if kind == "ferv39k":
        return lambda k: DFEW_OFFICIAL_NAMES[k]
    if kind == "mafw":
        ids = annotation is not None and _mafw_uses_ids(Path(annotation))
        return lambda k: mafw_token(k, "1" if ids else "x")
    if kind == "csv" and annotation is not None and csv_label_style(annotation) == "name":
        return lambda k: names[k]
    return str


def _mafw_uses_ids(path: Path) -> bool:
    for line in path.read_bytes().splitlines():
        token = _label_token(line)
        if token:
            return token.isdigit()
    return False
