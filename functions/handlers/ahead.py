"""Look-ahead: trials asked for before a slot frees, so that a freed slot is refilled at once.

With a look-ahead of L (``Deps.lookahead``), a study holds up to ``parallelism + L`` active
trials: at most ``parallelism`` run, the others wait, prepared. A prepared trial was asked of
the sampler while the others ran (TPE's constant liar counts it as running) and is stored
``WAITING``; it counts against ``maxTrials`` like any trial created. When a trial ends, the
handling of its end starts the lowest-numbered waiting trials in the free slots itself, once
the outcome is stored and told and no stop rule fires: no event stands between a slot freeing
and its refill. Only then, in the same handling, is the sampler asked for the trials that top
the look-ahead up, while the started trials run.

Where a handling frees slots without a trial's end (the first trials asked, a continuation),
the waiting trials are released as ``trial.suggested`` events, and the ``spawn`` handler
launches a trial only into a free slot, so however events race, no more than ``parallelism``
trials run; a trial it held back waits for the next trial's end. Each release is a decision of
the handling that made it, recorded with it, so its events get fresh ids: a redelivered event
is answered with the same ones, and a held-back trial is released again under a new id. A
prepared trial the study no longer needs (a goal reached, a time budget used, a stop) never
ran, so it is no trial of the study: the ``stop`` handler discards it
(:meth:`functions.core.store_port.Store.discard_trial`) while it stops the study's running trials, and
listings, counts, Katib's status and ``maxTrials`` know only the trials that ran.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from functions.core.events import Event, run_field, trial_suggested
from functions.core.records import WAITING, Counts, StudyRecord, TrialRecord
from functions.handlers import turns
from functions.handlers.turns import Turn

if TYPE_CHECKING:
    from functions.handlers.deps import Deps

CONTINUED = "continued"
"""The field of a continuation's ``study.created`` data: how many trials the study had when
it was sent."""


def startable(record: StudyRecord, deps: Deps, counts: Counts) -> list[TrialRecord]:
    """The lowest-numbered waiting trials that fit the study's free slots and whose turn it is to
    take room among the trials katuna runs at once (``Deps.running_trials``,
    :mod:`functions.handlers.turns`): those a trial's end starts itself. A waiting trial past
    that room keeps its ``trial.suggested`` delivered again, which notes in its reason why it
    waits (:func:`functions.handlers.spawn.waits`)."""
    waiting = releasable(record, deps, counts)
    if deps.running_trials is None or not waiting:
        return waiting
    return turns.in_turn(record, deps, waiting, deps.running_trials)[0]


def taking(record: StudyRecord, deps: Deps,
           counts: Counts) -> tuple[list[TrialRecord], list[Turn], turns.Room | None]:
    """As :func:`startable`, with the turns of the other studies' trials that take the rest of
    the room left (their own study starts them), and the room read (None without a bound): what
    a trial's end gives its freed room to."""
    waiting = releasable(record, deps, counts)
    if deps.running_trials is None:
        return waiting, [], None
    return turns.in_turn(record, deps, waiting, deps.running_trials)


def releasable(record: StudyRecord, deps: Deps, counts: Counts) -> list[TrialRecord]:
    """The lowest-numbered waiting trials that fit the study's free slots."""
    free = record.spec.parallelism - counts.running
    if free <= 0 or counts.waiting == 0:
        return []
    return sorted(deps.store.trials(record.name, (WAITING,)), key=lambda trial: trial.number)[:free]


def release(record: StudyRecord, deps: Deps, counts: Counts) -> list[Event]:
    """The ``trial.suggested`` of the lowest-numbered waiting trials that fit the free slots."""
    return [replace(trial_suggested(record.name, record.uid, trial.number, trial.attempt), id=str(uuid.uuid4()))
            for trial in releasable(record, deps, counts)]


def continued(record: StudyRecord, created: int) -> dict[str, object]:
    """The data of a continuation of the study's current run, sent with ``created`` trials made."""
    return {"study": record.name, "uid": record.uid, CONTINUED: created, **run_field(record.restarts)}
