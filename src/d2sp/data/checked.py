"""The clips that passed a build-time check, remembered by the stat of their files, so that
the next run checking the same clips decodes nothing.

The record is one SQLite file, ``checked-clips.sqlite`` in the user cache folder
(``$D2SP_CACHE`` or ``~/.cache/d2sp``). An entry is keyed by a clip's absolute path and the
check level, and holds a signature of what that check read: the size and modification time
(in ns) and the inode of the video file, or of every frame file it decoded together with the folder's
frame count. A clip whose signature changed (a file replaced, rewritten, added or removed)
is checked again. Only clips that passed are recorded; a bad clip is checked every time.

The record never stops a run: when its file cannot be read or written (a read-only home, a
database locked for too long), the clips are simply checked. Deleting the file forgets
every clip.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

FILE_NAME = "checked-clips.sqlite"
_CHUNK = 500  # paths per SELECT (under SQLite's limit on bound variables)


def user_cache_dir() -> Path:
    """The user cache folder: ``$D2SP_CACHE`` or ``~/.cache/d2sp``."""
    return Path(os.environ.get("D2SP_CACHE", Path.home() / ".cache" / "d2sp"))


def stat_signature(paths: Iterable[str], extra: str = "") -> str | None:
    """A short digest of the size and modification time of ``paths`` (and ``extra``); None
    when one of them cannot be stat-ed (the check then reads it and names the problem)."""
    digest = hashlib.sha1(extra.encode())
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        digest.update(
            f"|{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()
        )
    return digest.hexdigest()[:20]


class CheckRecord:
    """What one check of a split knows from earlier checks, and what it adds.

    ``lookup``/``add`` are safe to call from the checking threads; :meth:`load` and
    :meth:`save` run in the calling thread, before and after them.
    """

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        self._known: dict[tuple[str, str], tuple[str, int | None]] = {}
        self._new: list[tuple[str, str, str, int | None]] = []

    @classmethod
    def default(cls) -> CheckRecord:
        """The record in the user cache folder."""
        return cls(user_cache_dir() / FILE_NAME)

    @classmethod
    def disabled(cls) -> CheckRecord:
        """A record that remembers nothing (every clip is checked)."""
        return cls(None)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(
            "CREATE TABLE IF NOT EXISTS clips (path TEXT, level TEXT, signature TEXT, "
            "frames INTEGER, PRIMARY KEY (path, level))"
        )
        return db

    def load(self, paths: list[str], level: str) -> None:
        """Read what the record holds for ``paths`` at ``level``."""
        if self.path is None or not self.path.is_file():
            return
        paths = [os.path.abspath(p) for p in paths]
        try:
            db = self._connect()
            try:
                for start in range(0, len(paths), _CHUNK):
                    chunk = paths[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = db.execute(
                        f"SELECT path, signature, frames FROM clips WHERE level = ? "
                        f"AND path IN ({marks})",
                        [level, *chunk],
                    )
                    for path, signature, frames in rows:
                        self._known[(path, level)] = (signature, frames)
            finally:
                db.close()
        except (sqlite3.Error, OSError):
            self._known.clear()

    def lookup(self, path: str, level: str, signature: str | None) -> tuple[bool, int | None]:
        """``(True, frames)`` when ``path`` passed ``level`` with this signature before."""
        known = self._known.get((os.path.abspath(path), level))
        if signature is None or known is None or known[0] != signature:
            return False, None
        return True, known[1]

    def add(self, path: str, level: str, signature: str | None, frames: int | None) -> None:
        """``path`` passed ``level`` now (kept for :meth:`save`)."""
        if signature is not None and self.path is not None:
            self._new.append((os.path.abspath(path), level, signature, frames))

    def save(self) -> None:
        """Write the clips that passed since :meth:`load` (nothing on any error)."""
        if self.path is None or not self._new:
            return
        try:
            db = self._connect()
            try:
                with db:
                    db.executemany("INSERT OR REPLACE INTO clips VALUES (?, ?, ?, ?)", self._new)
            finally:
                db.close()
        except (sqlite3.Error, OSError):
            pass
        self._new = []
