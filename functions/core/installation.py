"""Which katuna installation made a trial workload: a label on every workload it creates, whose
value outlives the database, so that a sweep can tell its own workloads of a study the store no
longer holds (a database lost, a backup restored over a newer state, a create that landed
after its trial was discarded) from another installation's sharing the namespace with another
database, and from one an older katuna made without the label (those are left).

The value is ``KATUNA_INSTALLATION`` where set (a label value), else derived from what stays
the same when the database is lost: on Knative, the service's namespace and name (``K_SERVICE``);
elsewhere, the host's name and the database's absolute path. A derived text that is no label value (too long, or
with a ``/``) keeps its readable part and a digest of the whole.
"""

from __future__ import annotations

import hashlib
import re

from functions.core.labels import MAX_NAME, valid_value

INSTALLATION_LABEL = "katuna.dev/installation"
"""The label of every trial workload katuna creates, valued with its installation's identity."""

ORPHAN_GRACE = 1800.0
"""Seconds a workload of the installation whose study the store does not hold is left after its
creation (``KATUNA_ORPHAN_GRACE``): longer than any handling that creates a workload may last
before its transaction commits (Knative's request timeout is 300 s), so a workload whose study
or launch is not committed yet is never taken for an orphan."""

MIN_ORPHAN_GRACE = 300.0
"""The shortest grace the setting takes: Knative's request timeout, which bounds a handling."""

EXPECTED = ("a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', beginning and ending with a "
            "letter or digit")

_DIGEST = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_EDGES = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def label_value(text: str) -> str:
    """``text`` where it is a non-empty label value, else its label-safe part (cut to leave room)
    and a digest of the whole ``text``: two texts that differ never share a value."""
    if text and valid_value(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]
    readable = _EDGES.sub("", _UNSAFE.sub("-", text))[:MAX_NAME - _DIGEST - 1]
    readable = _EDGES.sub("", readable)
    return f"{readable}-{digest}" if readable else digest


def identity(given: str | None, service: str | None, namespace: str | None, database: str, host: str) -> str:
    """The installation's identity: ``given`` (``KATUNA_INSTALLATION``, a label value already),
    else the Knative ``service`` in ``namespace``, else the ``host``'s name and the ``database``'s
    absolute path: two machines with the same path (notebook servers' ``/home/jovyan/katuna.db``
    in one namespace) are two installations, neither taking the other's trials for orphans."""
    if given:
        return given
    if service:
        return label_value(f"{namespace}.{service}" if namespace else service)
    return label_value(f"{host}:{database}")
