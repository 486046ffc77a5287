"""Atomic file writes, shared by the robot side (memory snapshots) and the workstation
side (checkpoints, exported models): plain Python, no dependencies."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, fsync it, rename it
    over ``path`` and fsync the folder: a crash (or power loss) leaves either the old
    file or the new one, never half of one. The temporary file is named
    ``.<name>.<random>.tmp``; an interrupted write may leave one behind.

    The file gets the mode a plain ``open()`` would give it (0666 less the process's
    umask, so 0644 by default), not ``mkstemp``'s 0600: checkpoints, models and state
    files are read by other users (a container's non-root user on a bind mount). Set a
    stricter umask to keep them private."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)  # make the rename itself durable
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (the
    ``os.umask`` round trip below is not thread-safe, so it is only the fallback)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """fsync a folder (its entries), where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
