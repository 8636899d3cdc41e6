"""Places in a parsed document (YAML or JSON): a path of mapping keys and list indexes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Path = tuple[str | int, ...]
"""Where a value is in a document: mapping keys and list indexes, outermost first."""


def value_at(data: Any, path: Path) -> Any:
    """The value at ``path`` of ``data``, None where there is none (a merge key's path)."""
    for step in path:
        if isinstance(data, Mapping) and isinstance(step, str):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and step < len(data):
            data = data[step]
        else:
            return None
    return data
