"""Deterministic names for the objects a trial creates, valid as Kubernetes names."""

from __future__ import annotations

import hashlib

MAX_NAME = 63
OWN, EARLIER, OTHER = "own", "earlier", "other"
"""Whose is an object found holding a name katuna gives (names carry no study uid): the one
katuna is about to make's own, one katuna made for an earlier study of the same name, or
another's."""


def job_name(study: str, number: int, attempt: int = 1) -> str:
    """``<study>-<trial>`` (``-a<attempt>`` after the first), shortened with a hash past 63 characters."""
    suffix = f"-{number}" + (f"-a{attempt}" if attempt > 1 else "")
    if len(study) + len(suffix) <= MAX_NAME:
        return study + suffix
    digest = hashlib.sha256(study.encode()).hexdigest()[:6]
    head = study[: MAX_NAME - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}{suffix}"


def indexed_excess(study: str, trials: int, attempts: int, completions: int) -> int:
    """How many characters the study's name must lose for the last pod of every trial's Indexed
    Job (``<job name>-<completions-1>``, its hostname) to be a DNS-1123 label: the longest Job
    name is the last trial's last attempt's, unshortened; 0 when it fits."""
    longest = len(study) + len(f"-{trials - 1}") + (len(f"-a{attempts}") if attempts > 1 else 0)
    return max(0, longest + len(f"-{completions - 1}") - MAX_NAME)
