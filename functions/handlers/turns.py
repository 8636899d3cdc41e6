"""Whose turn it is to take room among the trials katuna runs at once (``Deps.running_trials``):
first come, first served across the studies this service runs.

A trial that waits for room stands in line from when its current attempt was suggested
(:attr:`~functions.core.records.TrialRecord.suggested_since`); room that frees goes to the trial
that has waited longest, whichever study it belongs to, so a study whose trials keep ending
cannot keep the room to itself while another study's trials wait. In line stand only the trials
room would start: those of the unfinished studies the process runs (:func:`room`: a
``katuna run`` beside a ``katuna serve`` on the database counts against the bound, but keeps its
own line, as only it starts its study's trials, and hands the room its own line leaves to the
service's trials in theirs: :func:`to_service`), within their study's free slots (a trial
prepared ahead of its study's ``parallelism`` waits for its study's slot, not for room), and
not held by their namespace's quota (room would not create their Job).

Both ways a trial takes room follow the line, in the write transaction that launches it, so
that however events race no trial overtakes one that waited longer: ``spawn`` launches a trial
only while fewer trials stand ahead of it than there is room (:func:`ahead_of`), and a trial's
end starts its own study's trials whose turn it is and hands the rest of the room to the other
studies' trials in turn (:func:`in_turn`), each by a ``trial.suggested`` of its own
(:func:`handed`), so it starts at once rather than at its own event's next delivery, up to 30
seconds of back-off later. Where no other study has a trial
waiting, or every trial in line fits the room left, nothing more than the counts is read: a
single study's trials start as they did, in its own order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from functions.core.admission import HELD
from functions.core.errors import StudyNotFound
from functions.core.events import Event, trial_suggested
from functions.core.records import Counts, StudyRecord, TrialRecord
from functions.core.trial_reads_port import StudyLoad
from functions.handlers.deps import Deps, counted_here, loads_here

QUOTA_HELD = "its Job cannot be created now"
"""How the note of a trial whose namespace's quota refused its Job begins
(:func:`functions.handlers.starting.quota_wait`)."""


@dataclass(frozen=True, order=True)
class Turn:
    """A waiting trial's place in line: the one waiting since longest first (then by study and
    number, which no two share)."""

    since: float
    study: str
    number: int
    attempt: int = field(compare=False)
    uid: str = field(compare=False)


@dataclass(frozen=True)
class Room:
    """The room left among the trials running at once, as one study sees it."""

    running: int
    left: int
    own: StudyLoad | None
    """The study's own trials running and waiting (None: it has none)."""
    others: tuple[StudyLoad, ...]
    """The other unfinished studies served here with trials waiting."""
    served: tuple[StudyLoad, ...] = ()
    """The unfinished studies a ``katuna serve`` runs (claimed by none) with trials waiting."""


def room(deps: Deps, record: StudyRecord, bound: int) -> Room:
    """The room left for the study's trials under ``bound``, from the kept counts alone. The
    other studies in line are those the same process runs: claimed by the same runner (none:
    those of ``katuna serve``), as the trials it hands room to are started by whoever runs them."""
    loads = loads_here(deps)
    running = sum(load.running for load in loads)
    own = next((load for load in loads if load.study == record.name), None)
    others = tuple(load for load in loads if load.study != record.name and load.waiting and not load.ended
                   and load.runner == record.runner)
    served = tuple(load for load in loads if load.runner is None and load.waiting and not load.ended)
    return Room(running, max(bound - running, 0), own, others, served)


def since(now: Room, record: StudyRecord, deps: Deps, counts: Counts, bound: int) -> Room:
    """The room ``now`` once the study's trials count ``counts``: read before the handling
    started or asked some (in its transaction, which changes no other study's), it is the room
    read again then, without the read."""
    if now.own is None and not counted_here(deps, record.runner):
        return now
    running = now.running - (0 if now.own is None else now.own.running) + counts.running
    own = StudyLoad(record.name, record.runner, record.terminal, counts.running, counts.waiting)
    return replace(now, running=running, left=max(bound - running, 0), own=own)


def in_turn(record: StudyRecord, deps: Deps, waiting: list[TrialRecord], bound: int,
            at_once: bool = False) -> tuple[list[TrialRecord], list[Turn], Room]:
    """Of ``waiting`` (the study's trials that fit its free slots, lowest-numbered first), those
    whose turn it is to take the room left under ``bound``, the turns of the other studies'
    trials that take the rest of it, and the room read. Where every trial in line fits that
    room, the others' are not read: room was short at no trial's end since they were refused
    it. That is not so where room frees ``at_once`` (a study's end stops its trials together)."""
    now = room(deps, record, bound)
    fits = sum(load.waiting for load in now.others) + len(waiting) < now.left and not at_once
    if not now.others or now.left == 0 or fits:
        return waiting[:now.left], [], now
    first = _first(deps, now, [turn(record, trial) for trial in waiting])
    mine = {each.number for each in first if each.study == record.name}
    return ([trial for trial in waiting if trial.number in mine], [each for each in first if each.study != record.name],
            now)


def ahead_of(record: StudyRecord, trial: TrialRecord, deps: Deps, bound: int) -> tuple[int, int]:
    """The trials running that count against ``bound``, and those standing in line ahead of
    ``trial`` that the room left would start first (at most as many as that room). Only the
    counts are read while every trial in line fits the room."""
    now = room(deps, record, bound)
    own = now.own or StudyLoad(record.name, None, False, 0, 0)
    if not now.others or sum(load.waiting for load in now.others) + own.waiting - 1 < now.left:
        return now.running, 0
    me = turn(record, trial)
    mine = [each for each in _line(deps, record, own, now.left + 1) if each.number != trial.number]
    return now.running, sum(1 for each in _first(deps, now, mine) if each < me)


def to_service(record: StudyRecord, deps: Deps, now: Room) -> list[Turn]:
    """Where the study is a ``katuna run``'s (claimed by its process), the turns of the waiting
    trials of the studies a ``katuna serve`` runs on the database (claimed by none) that take the
    room left (``now``, as :func:`room` reads it) once the run's own waiting trials that fit its
    study's free slots have theirs: the run starts no trial of the service's, so it hands that
    room on by a ``trial.suggested`` each, which its process sends to the service's queue in the
    database; the service's trials otherwise waited for their own refused event's back-off (up
    to 30 seconds). Nothing more is read unless the service's studies have trials waiting."""
    bound = deps.running_trials
    if bound is None or record.runner is None or not now.served:
        return []
    own = now.own
    taking = 0 if own is None or record.terminal else min(own.waiting, max(record.spec.parallelism - own.running, 0))
    left = bound - now.running - taking
    return _first(deps, Room(now.running, left, None, now.served), []) if left > 0 else []


def handed(turns: Sequence[Turn]) -> list[Event]:
    """The ``trial.suggested`` of each trial given room in its turn: its own event waits out a
    back-off where it was refused room, and there is none where look-ahead held the trial for
    its study's slot. A decision of the handling that gives the room, recorded with it, so each
    gets a fresh id (a redelivered handling answers with the same ones); ``spawn`` takes a
    trial started meanwhile as the duplicate it is. Only where trials stand in line for the
    room (:func:`in_turn`): at most one event for each place that room freed."""
    return [replace(trial_suggested(each.study, each.uid, each.number, each.attempt), id=str(uuid.uuid4()))
            for each in turns]


def turn(record: StudyRecord, trial: TrialRecord) -> Turn:
    """The place in line of the study's waiting ``trial``."""
    return Turn(trial.suggested_since, record.name, trial.number, trial.attempt, record.uid)


def _first(deps: Deps, now: Room, own: list[Turn]) -> list[Turn]:
    """The first turns in line that the room left takes: ``own`` and the other studies'."""
    turns = list(own)
    for load in now.others:
        try:
            other = deps.store.get_study(load.study)
        except StudyNotFound:
            continue
        turns += _line(deps, other, load, now.left)
    return sorted(turns)[:now.left]


def _line(deps: Deps, record: StudyRecord, load: StudyLoad, first: int) -> list[Turn]:
    """The ``first`` trials in line of the study: of its lowest-numbered waiting trials that fit
    its free slots, but those its namespace's quota holds, those that waited longest (no more
    can take the room left, however many wait)."""
    free = record.spec.parallelism - load.running
    if free <= 0:
        return []
    slots = free if free < load.waiting else None
    return [Turn(each.since, record.name, each.number, each.attempt, record.uid)
            for each in deps.store.waiting_line(record.name, slots, first, HELD + QUOTA_HELD)]
