"""Loading `.keras` files from elsewhere: our checks first, then Keras with safe_mode on."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

_UNSAFE_NAME_PARTS = ("/", "\\", "..", "\x00")


def check_keras_archive(path) -> None:
    """Refuses a `.keras` file that is not a zip with a JSON `config.json`, or whose layer names could act as
    paths inside the archive or on disk (`../x`, `a/b`): Keras maps names onto weight-file paths."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                raise ValueError(f"{path}: the archive member {bad!r} is corrupt")
            names = z.namelist()
            if "config.json" not in names:
                raise ValueError(f"{path}: not a .keras file (no config.json inside)")
            for member in names:
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ValueError(f"{path}: archive member {member!r} points outside the archive")
            config = json.loads(z.read("config.json"))
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a .keras file (not a zip archive)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: config.json is not valid JSON ({e})") from None
    for name in _names(config):
        if any(part in name for part in _UNSAFE_NAME_PARTS):
            raise ValueError(f"{path}: layer name {name!r} contains a path separator or '..'; refused")


def _names(obj):
    if isinstance(obj, dict):
        name = obj.get("name")
        if isinstance(name, str):
            yield name
        for value in obj.values():
            yield from _names(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _names(value)


def load_model(path):
    """`keras.saving.load_model(path, safe_mode=True)` after `check_keras_archive`; errors are ValueError naming
    the file."""
    import keras

    import kerasrnn  # noqa: F401  (registers the classes)

    check_keras_archive(path)
    try:
        return keras.saving.load_model(str(path), safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad archive
        raise ValueError(f"{path}: not a loadable kerasrnn .keras model: {e}") from None
