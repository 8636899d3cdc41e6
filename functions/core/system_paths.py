"""The system's own folders, where the service never reads a file a study names for its trials.

A trial run on this machine (the local executor) leaves its metrics file, its TensorFlow event
files and its output in files the service's own process reads back. Under ``/proc``, ``/sys``
and ``/dev`` there is no such file, only the service itself and its machine: ``/proc/self/environ``
opened by the service is the service's environment (its API token, its cloud credentials),
``/proc/self/fd/N`` its open files, and a study's own metric filters could move their characters
into stored metric values. So a study whose metrics path lies there is refused at submission
(:func:`local_problems`), and the local executor refuses any file that turns out to be there once
opened, however a link led to it (:mod:`functions.adapters.trial_files`). The root folder itself
is refused as a metrics path too: read as an event folder, it would have the machine's every file
walked at each attempt's start and end. A trial on a cluster reads its files inside its own pod,
where none of this applies.
"""

from __future__ import annotations

import posixpath

from functions.core.errors import Problem
from functions.core.spec import Study
from functions.core.trial_spec import local_folder

SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
"""Folders of processes, the kernel and devices: no trial's output lives there."""

SCRATCH = "/dev/shm"  # noqa: S108 (named to be let through the refusal, never written to)
"""The one folder of devices that holds plain files (memory-backed scratch space trials may
write their outputs to)."""


def system_root(path: str) -> str | None:
    """The folder of :data:`SYSTEM_ROOTS` the absolute ``path`` lies in (normalised first: a
    ``..`` or a doubled slash does not hide it), or None; None for a relative path too."""
    if not posixpath.isabs(path):
        return None
    normal = "/" + posixpath.normpath(path).lstrip("/")
    if normal == SCRATCH or normal.startswith(SCRATCH + "/"):
        return None
    return next((root for root in SYSTEM_ROOTS if normal == root or normal.startswith(root + "/")), None)


def local_problems(spec: Study) -> list[Problem]:
    """Where a study run by the local executor would have the service read a file under a system
    folder, or walk the root folder for event files: its metrics collector's path, from the
    folder the trial runs in (:func:`~functions.core.trial_spec.local_folder`)."""
    collector = spec.metrics_collector
    if collector.kind not in ("file", "tfevent") or collector.path is None:
        return []
    runs_in = local_folder(spec.trial_template)
    path = posixpath.join(runs_in.folder if runs_in else "", collector.path)
    where = "" if posixpath.isabs(collector.path) or runs_in is None else f" (from {runs_in.field} {runs_in.folder!r})"
    if posixpath.isabs(path) and posixpath.normpath(path).lstrip("/") == "":
        return [Problem("metricsCollector.path", f"{collector.path!r}{where} is the root folder: katuna would walk the "
                                                 f"machine's every file for the trial's event files, at each attempt's "
                                                 f"start and end; name the folder the trial writes its own to")]
    root = system_root(path)
    if root is None:
        return []
    return [Problem("metricsCollector.path", f"{collector.path!r}{where} lies under {root}, which holds the service's "
                                             f"own process, the kernel's and the machine's devices, never a trial's "
                                             f"files; trials run on this machine here, and katuna reads no file under "
                                             f"{', '.join(SYSTEM_ROOTS)} for them: name a file the trial writes")]
