"""Deterministic names for the objects a trial creates, valid as Kubernetes names."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""A DNS-1123 label, matched whole (``fullmatch``: ``$`` with ``match`` would also accept a
trailing newline); at most :data:`MAX_NAME` characters besides."""
LABEL_EXPECTED = ("a DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric, "
                  f"at most {MAX_NAME} characters")
OWN, EARLIER, OTHER = "own", "earlier", "other"
"""Whose is an object found holding a name katuna gives (names carry no study uid): the one
katuna is about to make's own, one katuna made for an earlier study of the same name, or
another's."""


def is_label(name: object) -> bool:
    """Whether ``name`` is a DNS-1123 label, as every study's name is."""
    return isinstance(name, str) and len(name) <= MAX_NAME and DNS1123_LABEL.fullmatch(name) is not None


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
    Job (``<job name>-<completions-1>``, its hostname) to be a DNS-1123 label; 0 when it fits."""
    return name_excess(study, trials, attempts, f"-{completions - 1}")


def name_excess(study: str, trials: int, attempts: int, tail: str) -> int:
    """How many characters the study's name must lose for ``tail`` after the name of every
    trial's Job (or workload) to fit :data:`MAX_NAME` characters: the longest name is the last
    trial's last attempt's, unshortened; 0 when it fits."""
    longest = len(study) + len(f"-{trials - 1}") + (len(f"-a{attempts}") if attempts > 1 else 0)
    return max(0, longest + len(tail) - MAX_NAME)
