"""Where a trial of population-based training keeps its checkpoint, and how it is told.

On Katib, the suggestion service keeps a folder per trial, ``<experiment>/<trial>`` on a
volume it shares with the trials, seeded with a copy of the parent trial's folder, and the
trial's primary container finds its own folder mounted at the path the Experiment's
``suggestion_trial_dir`` setting names (``/var/log/katib/checkpoints/``), which its command
passes to the program (``--checkpoint=/var/log/katib/checkpoints/``). A local trial has no
mounts: its folder is ``checkpoints/<trial number>`` in the study's folder of trial logs, and
the path ``suggestion_trial_dir`` names, where it opens an argument of the trial's command or a
value of its environment, or follows ``=`` in one (alone or followed by ``/``), is replaced with
that folder's. So the program reads and writes where it is told, as on Katib. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FOLDER = "checkpoints"
"""The folder of the study's trial checkpoints, in its folder of trial logs."""
MAX_FILES = 10_000
"""Files and folders a checkpoint folder may hold, at most, for a child's copy of it."""
MAX_DEPTH = 32
"""Folders one in the next a checkpoint folder may hold, at most, for a child's copy of it
(a framework's checkpoint nests a few: a step's folder, an item's, a shard's)."""


@dataclass(frozen=True)
class Checkpoint:
    """A trial's checkpoint folder and its parent's, each under the logs folder, and the path
    the study's trials are told it is at (``suggestion_trial_dir``)."""

    mount: str
    folder: str
    parent: str | None = None
    trial: int = 0
    """The trial's number: its folder's name, on a shared claim (:mod:`functions.core.checkpoint_volume`)."""
    parent_trial: int | None = None
    """The parent trial's number (None in generation 0)."""


def of_trial(settings: Mapping[str, Any], log_folder: str, number: int, parent: int | None) -> Checkpoint:
    """The checkpoint of trial ``number`` of a study whose trial logs go to ``log_folder``."""
    base = f"{log_folder}/{FOLDER}"
    return Checkpoint(str(settings["suggestion_trial_dir"]), f"{base}/{number}",
                      None if parent is None else f"{base}/{parent}", number, parent)

REFUSED_COPY = "was not given its parent's checkpoint"
"""What the reason of a child trial whose parent's checkpoint folder katuna refused to copy
says (:func:`refused_copy`): the same copy would be refused again, so the child is not run
again (:mod:`functions.core.pbt`)."""


def refused_copy(trial: str, why: str) -> str:
    """Why trial ``trial`` (its folder's name, the trial number) was not started: its parent's
    checkpoint folder was refused for ``why`` (too large, a FIFO in it, a file it cannot read)."""
    return f"trial {trial} {REFUSED_COPY}: {why}"


def refused(reason: str | None) -> bool:
    """Whether a failed trial's ``reason`` says its parent's checkpoint folder was refused, as a
    local executor or a cluster's seed init container says it (its termination message)."""
    return reason is not None and f" {REFUSED_COPY}: " in reason


def told(text: str, mount: str, real: str) -> str:
    """``text`` with the path ``mount`` replaced by ``real`` where it opens it, alone or
    followed by ``/`` (``--checkpoint=`` before it is kept: the path opens the value)."""
    path = mount.rstrip("/")
    return re.sub(rf"(?:(?<=^)|(?<==)){re.escape(path)}(?=/|$)", lambda _: real, text)
