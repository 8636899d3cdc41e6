"""A child trial's checkpoint folder made before its attempt starts
(:func:`~functions.adapters.local_checkpoints.made`), waiting for space while a full disk cuts
the copy short: the trial did nothing wrong, so it fails only once the waits run out.

Kept apart from the attempts' steps: the waits and their bound are the one policy here.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path

from functions.adapters import local_checkpoints
from functions.adapters.local_checkpoint_copies import CopyStopped
from functions.adapters.local_run import LocalRun
from functions.core.errors import StorageFull
from functions.core.log_context import about

log = logging.getLogger("katuna.executor")


SPACE_WAITS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds waited before each new try of copying a child trial's checkpoint folder that a full
disk cut short, the last one repeated until space is freed, or :data:`SPACE_WAIT` runs out."""

SPACE_WAIT = 3600.0
"""Seconds of waits for space, in all, after which a child trial whose checkpoint copy a full
disk keeps cutting short fails saying so (as a Kubernetes trial's pod that cannot start within
``KATUNA_K8S_START_ALLOWANCE``, 3600 s by default, fails): a disk nobody frees holds no slot of
the study for ever, and the study goes on (its failed trial runs again, as any failed one)."""


def checkpoint_made(run: LocalRun, log_dir: Path, max_bytes: int, space_wait: float,
                    given_up: Callable[[], bool]) -> Exception | None:
    """Make the attempt's checkpoint folder, where it has one
    (:func:`~functions.adapters.local_checkpoints.made`): what kept it from being made, or
    None. A full disk fails nothing at first (the trial did nothing wrong; a launch that met
    it in the handling was retried): the copy is made again after each of
    :data:`SPACE_WAITS` (the last repeated) until space is freed, the attempt existing
    meanwhile, unless ``given_up`` (the attempt stopped, or the executor closed), which also
    gives up a copy under way; once the waits add up to ``space_wait`` (:data:`SPACE_WAIT`), the
    full disk is what kept the folder from being made, and the attempt fails naming it."""
    checkpoint = run.launch.checkpoint
    if checkpoint is None:
        return None
    waits = itertools.chain(SPACE_WAITS, itertools.repeat(SPACE_WAITS[-1]))
    waited = 0.0
    while not given_up():
        try:
            local_checkpoints.made(log_dir, checkpoint, max_bytes, given_up)
            return None
        except CopyStopped:
            return None
        except StorageFull as full:
            wait = min(next(waits), space_wait - waited)
            if wait <= 0:
                return StorageFull(f"the disk holding the trial logs {log_dir} is full, and stayed full "
                                   f"through {space_wait:g} s of waiting for space")
            waited += wait
            log.warning("could not copy the checkpoint folder of %s trial %d attempt %d, trying again in %gs: %s",
                        run.launch.study, run.launch.number, run.launch.attempt, wait, full,
                        extra=about(run.launch.study, run.launch.number))
            run.woken.wait(wait)
        except Exception as exc:  # whatever kept the folder from being made fails the attempt, as a start would
            return exc
    return None
