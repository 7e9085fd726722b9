"""Atomic writes: a temporary file beside the target, fsynced, then renamed over it.

A reader (or a process that resumes after a crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path beside `path` for a writer that needs a file name (Keras, converters); on leaving
    the block without error it fsyncs that file and renames it to `path`; on an error it removes it.
    `suffix` is the temporary file's suffix (Keras and ONNX tools want their own extension)."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{suffix}" if suffix != ".tmp" else path.name + ".tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(data: bytes, path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(text: str, path) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj, path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", path)


def atomic_save_model(model, path, before_rename: Callable[[Path], None] | None = None) -> None:
    """`model.save` through a temporary `.keras` file; `before_rename(tmp)` runs once it is written (a test hook)."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
        if before_rename is not None:
            before_rename(tmp)
