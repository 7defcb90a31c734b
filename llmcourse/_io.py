"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A write goes to a temp file next to its target, named ``.<name>.<pid>.<8 hex>.tmp``
(:func:`temp_path`), is flushed and fsynced, renamed over the target (``os.replace``, atomic on
POSIX and Windows), and the folder is fsynced so that the rename itself survives a crash. A
process killed in between leaves only such a temp file, which :func:`remove_stale_temps` finds
by its name and deletes.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_TEMP = re.compile(r"^\.(?P<name>.+)\.\d+\.[0-9a-f]{8}\.tmp$")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temp-file path next to ``path``: ``.<name>.<pid>.<8 hex>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file, or a folder (which makes a rename or a new entry in it durable).

    Folders cannot be opened for fsync on Windows, where ``os.replace`` is enough: that error
    is ignored for folders.
    """
    path = Path(path)
    is_dir = path.is_dir()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if is_dir:  # pragma: no cover - Windows
            return
        raise
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
        if not is_dir:
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (see the module docstring). On any
    error the temp file is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = temp_path(path)
    # os.open with mode 0o666 honours the umask, so the file gets the usual permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder: write, flush, fsync,
    then ``os.replace`` (atomic on POSIX and Windows), then fsync the folder so the rename
    itself survives a crash. On any error the temp file is removed and ``path`` is untouched."""
    return atomic_write_bytes(path, text.encode(encoding))


def remove_stale_temps(folder: str | os.PathLike, names: tuple[str, ...] | None = None) -> list[Path]:
    """Delete the temp files that killed atomic writes left in ``folder`` (not recursive).

    Only files named like :func:`temp_path`'s are touched, and with ``names`` only those of
    these targets (``names=("config.json",)`` removes ``.config.json.123.ab12cd34.tmp``).
    Returns what was removed. Call it where no other process writes into ``folder``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.iterdir()):
        m = _TEMP.match(p.name)
        if m and (names is None or m["name"] in names) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
