"""JSON objects read with each key once: JSON's own reading keeps the last of a key given twice
and silently drops the first, where the writer meant one of them (which ``id``? which study?)."""

from __future__ import annotations

from typing import Any


class DuplicateKey(ValueError):
    """An object of the JSON gives ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}; each key may appear once in an object")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: the object as a dict; :class:`DuplicateKey`
    naming a key given twice."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found
