"""The init container that makes a trial's checkpoint folder on the shared claim
(``python -I -m functions.checkpoint_seed``, in katuna's image: :mod:`functions.core.checkpoint_volume`).

Its working directory is the claim's folder of the study. ``TRIAL_FOLDER`` names the trial's
folder in it and ``PARENT_FOLDER`` its parent's (absent in generation 0), both trial numbers;
``KATUNA_MAX_CHECKPOINT`` the most bytes copied. It runs as the trial's user where the trial
names one (:func:`functions.core.checkpoint_volume.run_as`). The folder is made as a local
trial's is (:func:`functions.adapters.local_checkpoints.made`): a copy made beside it and renamed
once whole, nothing done where it exists; the copy's name is this run's own (a random
:data:`COPIER_BYTES` bytes), as two pods of one trial's Job may seed it at once. The copy keeps
each file's mode, and, run as root, its owner (:mod:`functions.adapters.local_checkpoint_copies`);
a folder it makes empty is writable by every user (umask 0), since the trial's image may run as
a user katuna does not know; only this trial's pod mounts the folder, and the study's init
containers the study's.
Exit codes: 0 made (or there already), :data:`REFUSED` the parent's folder is refused (over
the size, too many files, a FIFO: the reason on standard error, which the kubelet keeps as the
termination message, which says the trial "was not given its parent's checkpoint"
(:data:`~functions.core.checkpoints.REFUSED_COPY`): such a child is not run again),
:data:`UNUSABLE` the variables are wrong or the claim cannot be written.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from functions.adapters.local_checkpoints import made
from functions.core.checkpoint_volume import MAX_ENV, PARENT_ENV, TRIAL_ENV
from functions.core.checkpoints import Checkpoint
from functions.core.errors import InvalidSetting, RefusedFile
from functions.settings import Settings

REFUSED = 3
"""The parent's checkpoint folder is more than katuna copies, or holds what it copies not."""
UNUSABLE = 2
"""The trial or parent named is no trial number, or the claim's folder cannot be written."""
COPIER_BYTES = 8
"""Random bytes naming a run's copy apart from another pod's of the same trial."""


def seed(environ: Mapping[str, str], study_folder: Path) -> int:
    """Make the trial's folder in ``study_folder`` as ``environ`` names it; the exit code."""
    trial, parent = environ.get(TRIAL_ENV, ""), environ.get(PARENT_ENV)
    if not trial.isdigit() or not (parent is None or parent.isdigit()):
        print(f"katuna checkpoint: {TRIAL_ENV} and {PARENT_ENV} must be trial numbers, got {trial!r} and "
              f"{parent!r}", file=sys.stderr)
        return UNUSABLE
    try:
        max_bytes = Settings.from_env({MAX_ENV: environ.get(MAX_ENV, "")}).max_checkpoint
        folder = made(study_folder, Checkpoint("", trial, parent), max_bytes,
                      copier=secrets.token_hex(COPIER_BYTES))
    except InvalidSetting as exc:
        print(f"katuna checkpoint: {exc}", file=sys.stderr)
        return UNUSABLE
    except RefusedFile as exc:
        print(f"katuna checkpoint: {exc}", file=sys.stderr)
        return REFUSED
    except OSError as exc:
        print(f"katuna checkpoint: trial {trial}'s checkpoint folder cannot be made in the claim: {exc}",
              file=sys.stderr)
        return UNUSABLE
    print(f"katuna checkpoint: trial {trial}'s folder {folder.name} is ready"
          + ("" if parent is None else f" (from trial {parent}'s)"))
    return 0


def main() -> None:
    os.umask(0)
    sys.exit(seed(os.environ, Path.cwd()))


if __name__ == "__main__":
    main()
