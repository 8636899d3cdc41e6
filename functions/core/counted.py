"""A count of things as a reason reads it: "1 trial", "2 trials"."""

from __future__ import annotations


def counted(count: int, thing: str, spec: str = "") -> str:
    """``count`` (written by the format ``spec``: ``","`` groups its thousands) and ``thing``,
    in the plural but for 1."""
    return f"{count:{spec}} {thing}{'' if count == 1 else 's'}"
