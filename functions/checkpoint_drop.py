"""The program of the Job that deletes a deleted study's checkpoints from the shared claim
(``python -I -m functions.checkpoint_drop``, in katuna's image: :mod:`functions.core.checkpoint_drop`).

Its working directory is the whole claim; ``STUDY_FOLDER`` names the study's folder in it, its
uid, checked to be one. The folder is deleted with all in it by folder descriptors, following
no link (:func:`functions.adapters.local_checkpoints.removed`): a link a trial planted is
deleted, never followed, and a link where the study's folder is goes, its target left. Exit
codes: 0 deleted (or not there: nothing to do, so a pod run again, or a Job asked for twice,
finds it done), :data:`UNUSABLE` the variable is no study uid, :data:`LEFT` something could
not be deleted (a trial's pod still writing as it ends, a folder its user may not empty: the
reason on standard error, which the kubelet keeps as the termination message); the Job runs
the pod again. Where ``TRIAL_FOLDERS`` names trials' folders (their numbers, comma-separated),
only those are deleted from the study's folder, the same way (a prune Job:
:func:`functions.core.checkpoint_drop.prune_job`); a name that is no number is :data:`UNUSABLE`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from functions.adapters.local_checkpoints import pruned, removed
from functions.core.checkpoint_drop import MOST_FOLDERS, STUDY_ENV, TRIALS_ENV, valid_uid

UNUSABLE = 2
"""The variable names no study uid."""
LEFT = 3
"""The study's folder could not be deleted whole."""


def drop(environ: Mapping[str, str], claim: Path) -> int:
    """Delete the study's folder ``environ`` names from the ``claim``; the exit code."""
    uid = environ.get(STUDY_ENV, "")
    if not valid_uid(uid):
        print(f"katuna checkpoints: {STUDY_ENV} must be a study's uid, got {uid!r}", file=sys.stderr)
        return UNUSABLE
    if TRIALS_ENV in environ:
        return _prune(uid, environ[TRIALS_ENV], claim)
    try:
        found = removed(claim, uid)
    except OSError as exc:
        print(f"katuna checkpoints: the checkpoints of study {uid} could not all be deleted from the claim "
              f"(its folder {uid}), as user {os.getuid()} (groups {', '.join(map(str, _groups()))}): {exc}",
              file=sys.stderr)
        return LEFT
    print(f"katuna checkpoints: the checkpoints of study {uid} were deleted" if found
          else f"katuna checkpoints: study {uid} has no checkpoints on the claim")
    return 0


def _prune(uid: str, named: str, claim: Path) -> int:
    """Delete the trials' folders ``named`` from the study ``uid``'s folder of the ``claim``; the exit code."""
    folders = named.split(",")
    if not 0 < len(folders) <= MOST_FOLDERS or not all(f.isascii() and f.isdigit() and len(f) < 10 for f in folders):
        print(f"katuna checkpoints: {TRIALS_ENV} must be 1 to {MOST_FOLDERS} trial numbers, comma-separated, got "
              f"{named[:100]!r}", file=sys.stderr)
        return UNUSABLE
    try:
        gone = pruned(claim, Path(uid), [int(f) for f in folders])
    except OSError as exc:
        print(f"katuna checkpoints: the checkpoint folders {named} of study {uid} could not all be deleted from the "
              f"claim, as user {os.getuid()} (groups {', '.join(map(str, _groups()))}): {exc}", file=sys.stderr)
        return LEFT
    print(f"katuna checkpoints: of study {uid}, the checkpoint folders {', '.join(map(str, gone)) or 'none'} "
          "were there and deleted")
    return 0


def _groups() -> list[int]:
    """The process's group and its supplementary groups (``runAsGroup``, ``fsGroup``,
    ``supplementalGroups``), which decide what it may delete as much as its user."""
    return sorted({os.getgid(), *os.getgroups()})


def main() -> None:
    sys.exit(drop(os.environ, Path.cwd()))


if __name__ == "__main__":
    main()
