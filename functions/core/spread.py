"""An even sample of a long ordered sequence (a Pareto front), for views that must stay bounded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_Item = TypeVar("_Item")


def spread(front: Sequence[_Item], most: int) -> list[_Item]:
    """At most ``most`` items of ``front``, evenly spaced along it, its two ends included (its
    first alone for one): a sample of the whole trade-off, where the first ``most`` would show
    one end."""
    if len(front) <= most:
        return list(front)
    if most < 2:
        return list(front[:max(most, 0)])
    return [front[round(i * (len(front) - 1) / (most - 1))] for i in range(most)]
