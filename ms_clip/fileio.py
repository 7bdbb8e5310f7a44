"""Small file helpers with one home each: reading YAML, and writing files atomically.

Atomic means: the data goes to a temporary file in the destination's directory, is flushed, and is
renamed over the final name (``os.replace``, atomic on POSIX and Windows). A crash or SIGKILL at any
moment leaves either the old file or the new one under the final name, never half of one; the
temporary file is removed on any error.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import IO, Any, Dict, Iterator, Mapping

import yaml

from ms_clip.errors import MsClipError

__all__ = ["YamlError", "read_yaml", "atomic_write", "atomic_path", "write_yaml", "write_json", "sha256_file", "TMP_PREFIX"]

# Temporary files start with this, so a cleanup pass can find the leftovers of killed writers.
TMP_PREFIX = ".tmp-"


class YamlError(MsClipError, ValueError):
    """A YAML file is missing, not YAML, or not a mapping; the message names the file."""


def read_yaml(path: str, what: str = "YAML file", allow_empty: bool = False) -> Dict[str, Any]:
    """A YAML file's top-level mapping, read with ``safe_load`` (no ``!!python`` tags run code).

    Raises YamlError naming the file when it is missing, unreadable, not YAML or not a mapping.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise YamlError(f"{what} not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except UnicodeDecodeError as err:
        raise YamlError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise YamlError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if data is None and allow_empty:
        return {}
    if not isinstance(data, Mapping):
        raise YamlError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return dict(data)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """``with atomic_write(path) as f: f.write(...)`` -- the file appears under ``path`` only when complete.

    ``mode`` is ``"w"`` (text) or ``"wb"``; ``path`` may also be filled by a writer that needs a file
    *name* (e.g. ``mindspore.save_checkpoint``): use ``atomic_path`` for that.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary file name beside ``path``; renamed onto ``path`` when the block exits without error."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix or os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_yaml(path: str, data: Mapping[str, Any]) -> str:
    """Write ``data`` as YAML (key order kept), atomically. Returns ``path``."""
    with atomic_write(path) as f:
        yaml.safe_dump(dict(data), f, sort_keys=False, allow_unicode=True)
    return os.fspath(path)


def write_json(path: str, data: Any, indent: int = 2) -> str:
    """Write ``data`` as JSON, atomically. Returns ``path``."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=indent, ensure_ascii=False)
    return os.fspath(path)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
