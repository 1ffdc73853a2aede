"""Trained model files (the resolver's, the asked-fact model's): written whole, so a server that
reads one while `make train` writes it never sees half a file, and read again only when they
change."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path, document: dict, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=indent), encoding="utf-8")
    tmp.replace(path)


def modified(path: Path, missing: Exception) -> float:
    """The file's modification time, the key of a loaded model's cache (a retrained model is
    read again); `missing` is raised when there is no file."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError as error:
        raise missing from error
