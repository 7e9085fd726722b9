"""Atomic writes: a temporary file beside the target, fsynced, then renamed over it.

A reader (or a process that resumes after a crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path


class WriteError(OSError):
    """A file or folder could not be written (disk full, no permission, read-only); the message names the path and
    says that the previous file is intact."""


def _write_error(e: OSError, path: Path) -> WriteError:
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        why = "no space left on the device"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"not writable ({e.strerror})"
    else:
        why = e.strerror or str(e)
    return WriteError(e.errno, f"{path}: could not write it: {why}; the previous {path.name}, if there was one, is "
                               "intact")


def make_dir(path) -> Path:
    """`mkdir -p`, with an error naming the folder when it cannot be made."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if isinstance(e, FileExistsError):
            raise WriteError(e.errno, f"{path}: exists and is not a folder") from None
        raise _write_error(e, path) from None
    return path


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path beside `path` for a writer that needs a file name (Keras, converters); on leaving
    the block without error it fsyncs that file and renames it to `path`; on an error it removes it.
    `suffix` is the temporary file's suffix (Keras and ONNX tools want their own extension)."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{suffix}" if suffix != ".tmp" else path.name + ".tmp")
    try:
        try:
            yield tmp
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except WriteError:
            raise
        except OSError as e:
            if isinstance(e, FileNotFoundError) and not path.parent.is_dir():
                raise WriteError(e.errno, f"{path}: could not write it: its folder {path.parent} does not exist") \
                    from None
            raise _write_error(e, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(data: bytes, path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(text: str, path) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


# a list of numbers as json.dumps(indent=2) writes it: "[", newline, one number per line, "]" (a string value holds
# no raw newline, so this never matches inside one)
_NUMBER_LIST = re.compile(r"\[\n\s*(-?[\d.eE+-]+(?:,\n\s*-?[\d.eE+-]+)*)\n\s*\]")


def atomic_write_json(obj, path) -> None:
    """Indented JSON, with lists of numbers on one line (id rows, ranges, matrices stay readable and small)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    atomic_write_text(text + "\n", path)


def atomic_save_model(model, path, before_rename: Callable[[Path], None] | None = None) -> None:
    """`model.save` through a temporary `.keras` file; `before_rename(tmp)` runs once it is written (a test hook)."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
        if before_rename is not None:
            before_rename(tmp)
