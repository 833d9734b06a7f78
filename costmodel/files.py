"""Writing the files the program makes: whole or not at all.

A write goes to a temporary file in the same folder, then replaces the target with one rename
(``os.replace``, atomic on POSIX and Windows), so a failure midway (a full disk, an interrupt)
leaves the old file as it was. A failure is a :class:`~costmodel.errors.ConfigError` that names the
file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | Path, text: str, *, mode: int = 0o644) -> Path:
    """Write ``text`` to ``path`` through a temporary file and one rename; returns the path."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.",
                                   suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return path
