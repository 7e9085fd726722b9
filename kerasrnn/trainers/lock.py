"""One training run per output directory: a lock file naming the process that holds it.

`run_lock(output_dir)` creates `output_dir/.kerasrnn.lock` (`{"pid": ..., "host": ...}`) exclusively. A second run
pointed at the same directory is refused with the holder's process id. A lock whose process is gone (same host, no
such process: a run that was killed) is stale and taken over; a lock from another host cannot be checked and is
respected.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

LOCK_FILE = ".kerasrnn.lock"


class RunDirectoryLocked(ValueError):
    """Another live process trains into this output directory; the message names it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def run_lock(output_dir):
    path = Path(output_dir) / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None or (holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1)))):
                path.unlink(missing_ok=True)  # stale: its process is gone (or the file is unreadable)
                continue
            raise RunDirectoryLocked(
                f"{Path(output_dir)} is in use by process {holder.get('pid')} on {holder.get('host')} (lock file "
                f"{path}); wait for that run to finish, or choose another --output-dir") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    try:
        yield path
    finally:
        if _holder(path) == me:
            path.unlink(missing_ok=True)
