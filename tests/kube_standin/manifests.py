"""The repository's manifests as the stand-in reads them: each file parsed once per process (a
stand-in is made for nearly every cluster test) and handed out as a fresh copy to change."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml


def documents(path: Path) -> list:
    """The YAML documents of ``path``, a copy the caller may change."""
    return copy.deepcopy(_parsed(path.resolve(), path.stat().st_mtime_ns))


def document(path: Path):
    """The one YAML document of ``path``, a copy the caller may change."""
    [only] = documents(path)
    return only


@functools.cache
def _parsed(path: Path, modified: int) -> list:
    return list(yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader))
