"""One Optuna journal of many studies, split into one journal per study.

Optuna's journal storage replays every record of its journal, every study's, so a process
serving one study of a shared journal loads the whole database's history. Split, each study's
records form a journal of their own in which it is the only study: its study id is 0 and its
trials' ids count from 0 in the order they were created, as Optuna's replay numbers them. The
records keep their order and their content but for those ids, so each study replays to the same
state (trials, their numbers, parameters, values, states, attributes), and a study deleted from
the shared journal leaves nothing (Optuna forgot it, and kept its trials only as dead weight).

The split follows Optuna's replay (``JournalStorageReplayResult``): a study is created unless a
live study has its name; a record about a study or trial that does not exist then changes
nothing and is dropped, as are records Optuna ignores (``DISCARD_TRIALS``, written only by
other implementations). Trial ids that Optuna's genetic samplers keep in a study system attribute
are renumbered too (:func:`functions.core.optuna_compat.trial_ids_in`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from functions.core.optuna_compat import (
    CREATE_STUDY,
    CREATE_TRIAL,
    DELETE_STUDY,
    STUDY_RECORDS,
    TRIAL_RECORDS,
    trial_ids_in,
)


@dataclass(frozen=True)
class Created:
    """The study ``study`` (its id in the shared journal) begins a journal of its own."""

    study: int
    name: str


@dataclass(frozen=True)
class Kept:
    """The next record of study ``study``'s own journal."""

    study: int
    record: dict[str, Any]


@dataclass(frozen=True)
class Deleted:
    """The study ``study`` was deleted: its own journal goes."""

    study: int


@dataclass
class _Study:
    name: str
    trials: dict[int, int] = field(default_factory=dict)
    """The shared journal's id of each of its trials, to the id it has in its own journal."""
    deleted: bool = False


def split(records: Iterable[dict[str, Any]]) -> Iterator[Created | Kept | Deleted]:
    """What becomes of ``records``, one at a time: the journals of the studies still alive at
    their end are what remains of those created and kept, in order."""
    studies: dict[int, _Study] = {}
    trials: dict[int, tuple[int, _Study]] = {}
    created = 0
    for record in records:
        op = record["op_code"]
        if op == CREATE_STUDY:
            if record["study_name"] not in {s.name for s in studies.values()}:
                studies[created] = _Study(record["study_name"])
                yield Created(created, record["study_name"])
                yield Kept(created, record)
                created += 1
        elif op == DELETE_STUDY and record["study_id"] in studies:
            studies.pop(record["study_id"]).deleted = True
            yield Deleted(record["study_id"])
        elif op == CREATE_TRIAL and record["study_id"] in studies:
            study = studies[record["study_id"]]
            study.trials[len(trials)] = len(study.trials)
            trials[len(trials)] = (record["study_id"], study)
            yield Kept(record["study_id"], {**record, "study_id": 0})
        elif op in STUDY_RECORDS and record["study_id"] in studies:
            yield Kept(record["study_id"], _renumbered_attribute({**record, "study_id": 0}, studies[record["study_id"]]))
        elif op in TRIAL_RECORDS and record["trial_id"] in trials and not trials[record["trial_id"]][1].deleted:
            study_id, study = trials[record["trial_id"]]
            yield Kept(study_id, {**record, "trial_id": study.trials[record["trial_id"]]})


def _renumbered_attribute(record: dict[str, Any], study: _Study) -> dict[str, Any]:
    """A study system attribute that holds trial ids, with the ids they have in the study's own
    journal (one of another study's trial, which Optuna never puts there, is left out)."""
    attribute = record.get("system_attr")
    if not attribute:
        return record
    ((key, value),) = attribute.items()
    if not trial_ids_in(key, value):
        return record
    return {**record, "system_attr": {key: [study.trials[v] for v in value if v in study.trials]}}
