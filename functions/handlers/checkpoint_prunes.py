"""Deleting, while a study of population-based training runs, the checkpoint folders no later
trial can copy (``KATUNA_PRUNE_CHECKPOINTS``; Katib's service keeps every one while its
Experiment lives, as katuna does by default).

Whose folders may go is decided by :func:`functions.core.pbt.never_copied`, and a folder can
only become one at some trial's end: its own, a child's (the last that could still copy it),
or the success that closed a newer generation (its own is no longer drawn from). So when a
trial ends, once its verdict is committed (:meth:`~functions.core.store_port.Store.after_commit`;
no I/O in the write transaction), a pass reads those candidates (the trial, its parent, and
where the trial succeeded in the newest full generation, the previous one's succeeded trials)
with their children, and deletes the folders chosen. The newest full generation is read first:
a child made after the reads could only be of a parent of a later generation, or a failed
child run again, which the reads held. Deleting is safe to repeat, so a pass made twice (an
event delivered again) deletes nothing more; a pass lost to a crash leaves folders until the
study is deleted, never one a trial copies.
"""

from __future__ import annotations

import logging
from functools import partial

from functions.core import pbt
from functions.core.launch import trial_launch
from functions.core.log_context import about
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.store_port import stored_study
from functions.handlers.deps import Deps
from functions.handlers.population import member

log = logging.getLogger("katuna.checkpoints")


def prune_after(record: StudyRecord, deps: Deps, trial: TrialRecord) -> None:
    """Once the caller's transaction, which ends ``trial``, commits, delete the checkpoint
    folders its end freed: where the service prunes checkpoints, for population-based training."""
    if deps.checkpoint_prunes is not None and record.spec.algorithm.name == pbt.NAME:
        deps.store.after_commit(partial(_pass_logged, deps, record.name, record.uid, trial.number))


def _pass_logged(deps: Deps, study: str, uid: str, number: int) -> None:
    """:func:`prune_pass`; a failure is logged (the folders stay until the study is deleted)."""
    try:
        prune_pass(deps, study, uid, number)
    except Exception as exc:  # a folder left is no error of the trial's end, already stored
        log.warning("deleting checkpoint folders freed by the end of trial %d of study %s: %s; they stay until "
                    "the study is deleted", number, study, exc, extra=about(study))


def prune_pass(deps: Deps, study: str, uid: str, number: int) -> list[int]:
    """Delete the checkpoint folders that the end of trial ``number`` of the study (that very
    study: ``uid``) freed; the numbers of the trials chosen."""
    record = stored_study(deps.store, study, uid)
    if record is None or deps.checkpoint_prunes is None:
        return []
    settings = pbt.settings_of(dict(record.spec.algorithm.settings))
    pool = [member(record, t) for t in deps.store.population_trials(study, settings.n_population)]
    newest = pbt.newest_pool(settings, pool)
    ended = deps.store.get_trial(study, number)
    if ended is None:
        return []
    older = newest - 1 if newest and ended.state == COMPLETE and ended.generation == newest else None
    numbers = [number] if ended.parent is None else [number, ended.parent]
    candidates, children = deps.store.population_family(study, numbers, older)
    chosen = pbt.never_copied(newest, [member(record, t) for t in candidates], [member(record, t) for t in children])
    if chosen:
        deps.checkpoint_prunes(trial_launch(record, ended), chosen)
    return chosen
