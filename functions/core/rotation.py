"""A bounded share of a long list per pass, a different share each pass, so that repeated
passes (the reconcile tick, the log scan) reach every item without any one pass doing them all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def rotated(items: Sequence[T], window: int, size: int) -> list[T]:
    """``items`` starting at the ``window``-th slice of ``size``: all of them over enough windows."""
    if len(items) <= size:
        return list(items)
    start = (window * size) % len(items)
    return list(items[start:]) + list(items[:start])
