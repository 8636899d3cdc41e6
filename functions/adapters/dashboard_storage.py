"""Optuna's storage of katuna's studies as ``katuna optuna-dashboard`` serves it: read whole,
written only where katuna never looks: the notes.

optuna-dashboard writes to the storage it is given: it creates, renames and deletes studies,
tells trials their end, sets trials' user attributes, and keeps notes and preference choices in
a study's system attributes.
katuna keeps its studies and trials in its own tables and Optuna's copy in the journal, and
the two must agree: a study deleted from the journal cannot be resumed (its next trial is told
to a study Optuna no longer has), a trial told from the dashboard can no longer be told its
real end, and a study created there takes a name a katuna study may need. User attributes and
preferences are the dashboard's way of telling a trial's result by hand, which katuna's trials
report themselves (and Optuna refuses them on a finished trial). So only notes are written
(study system attributes under ``dashboard:``, which no sampler reads); every other write raises
the refusal it is given, naming what was refused and why, before anything is written. A note
the database cannot take (busy past the busy timeout, read-only, full) raises the answer it is
given for that, ``503`` with the reason, which optuna-dashboard's page shows: optuna-dashboard
answers any other error of its storage ``500`` "internal server error", the reason only on the
console, with a traceback. :func:`functions.adapters.web.whole_writes.whole_writes` makes the
writes of one note a single transaction.

Its trials are in katuna's states. A trial asked for ahead of a free slot (``KATUNA_LOOKAHEAD``)
is running to Optuna from its ask, but waits in katuna until a slot frees: it is shown waiting,
not started. One katuna discarded, never started (the study ended first), is no trial of the
study: Optuna keeps it failed and marked :data:`~functions.core.records.DISCARDED`, and it is left
out, as katuna's own listings and counts leave it out.

Each study is shown with its objectives named by their metrics, as Optuna's
``study.set_metric_names`` names them (its system attribute ``study:metric_names``, which
optuna-dashboard titles charts and tables by, where it would write "Objective 0", "Objective 1"):
added as the study is read, from katuna's record of it, and never written.

Renaming a study is refused before optuna-dashboard sees the request
(:meth:`DashboardStorage.refused_request`): its handler creates the new study inside an
``except Exception`` that catches the storage's refusal, then fails on its own (optuna-dashboard
0.21.0 answers 500), so the refusal raised here would never reach the page.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Container, Sequence
from contextlib import AbstractContextManager
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from functions.core.errors import KatunaError
from functions.core.optuna_compat import FrozenStudy
from functions.core.records import DISCARDED

METRIC_NAMES = "study:metric_names"
"""The study system attribute Optuna's ``set_metric_names`` keeps the objectives' names in."""
NOTES = "dashboard:"
"""The prefix of the study system attributes optuna-dashboard keeps its notes in."""
RENAME = re.compile(r"/api/studies/(\d+)/rename")
"""optuna-dashboard's path for renaming study ``<id>`` (``POST``)."""
NOTE = re.compile(r"/api/studies/\d+(?:/\d+)?/note/*")
"""optuna-dashboard's paths for saving the note of a study or of one of its trials (``PUT``)."""
REFUSED, UNAVAILABLE = 403, 503
"""The statuses of a write refused (katuna owns the studies) and of a note the database cannot take now."""
NOT_SAVED = "the note was not saved"
"""What the reason for a note the database cannot take begins with."""


def _reason(what: str) -> str:
    return (f"katuna optuna-dashboard may not {what}: katuna owns these studies and keeps them in step with its "
            "own records. Run, stop or delete studies with katuna (katuna run, katuna stop, DELETE /studies/NAME "
            "of katuna serve); only notes can be written here")


class DashboardStorage(BaseStorage):
    """``storage()`` (the store's Optuna storage as it is now: one whose transaction failed is
    replaced) for optuna-dashboard: every read passes, the trials in katuna's states; a write
    other than a note raises ``answer(403, reason)``, and a note the database cannot take, which
    ``writing()`` raises katuna's error for, ``answer(503, reason)``. ``prepared(study_name)``
    gives the numbers of the study's trials katuna holds asked for and not started;
    ``metrics(study_name)`` its objectives' metrics, in order (None for a study katuna does not
    hold)."""

    def __init__(self, storage: Callable[[], BaseStorage], answer: Callable[[int, str], Exception],
                 prepared: Callable[[str], Container[int]], writing: Callable[[], AbstractContextManager[object]],
                 metrics: Callable[[str], list[str] | None] = lambda name: None) -> None:
        self._current = storage
        self._answer = answer
        self._prepared = prepared
        self._writing = writing
        self._metrics = metrics

    @property
    def _storage(self) -> BaseStorage:
        return self._current()

    def _refused(self, what: str) -> Exception:
        return self._answer(REFUSED, _reason(what))

    @staticmethod
    def note_write(method: str, path: str) -> bool:
        """Whether a request saves a note (whose writes :func:`~functions.adapters.web.whole_writes.whole_writes`
        holds in one transaction)."""
        return method == "PUT" and NOTE.fullmatch(path) is not None

    def _study(self, study_id: int) -> str:
        return repr(self._storage.get_study_name_from_id(study_id))

    def refused_request(self, method: str, path: str) -> str | None:
        """Why a request is refused before optuna-dashboard sees it (renaming a study), or None."""
        found = RENAME.fullmatch(path)
        if method != "POST" or found is None:
            return None
        try:
            study = self._study(int(found.group(1)))
        except KeyError:
            return None  # optuna-dashboard answers 404 for a study it does not have
        return _reason(f"rename the study {study}")

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        raise self._refused(f"create the study {study_name!r} (or rename a study)")

    def delete_study(self, study_id: int) -> None:
        raise self._refused(f"delete the study {self._study(study_id)}")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise self._refused(f"set the user attribute {key!r} of the study {self._study(study_id)}")

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if not key.startswith(NOTES):
            raise self._refused(f"set {key!r} of the study {self._study(study_id)} (only notes are kept)")
        try:
            with self._writing():
                self._storage.set_study_system_attr(study_id, key, value)
        except KatunaError as exc:
            raise self._answer(UNAVAILABLE, f"{NOT_SAVED}: {exc}") from None

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        raise self._refused(f"add a trial to the study {self._study(study_id)}")

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        raise self._refused(f"set the parameter {param_name!r} of a trial")

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        trial = self._storage.get_trial(trial_id)
        raise self._refused(f"end trial {trial.number} as {state.name} (katuna records each trial's end itself)")

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        raise self._refused("report an intermediate value of a trial")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refused(f"set the user attribute {key!r} of a trial")

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refused(f"set {key!r} of a trial")

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._storage.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._named(self._storage.get_study_name_from_id(study_id),
                           self._storage.get_study_system_attrs(study_id))

    def get_all_studies(self) -> list[FrozenStudy]:
        return [_with_attrs(study, self._named(study.study_name, study.system_attrs))
                for study in self._storage.get_all_studies()]

    def _named(self, study_name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """``attrs`` with the study's objectives named by their metrics, where neither Optuna
        nor katuna left them unnamed."""
        metrics = None if METRIC_NAMES in attrs else self._metrics(study_name)
        return attrs if metrics is None else {**attrs, METRIC_NAMES: metrics}

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._storage.get_trial_number_from_id(trial_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._storage.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        """The study's trials in katuna's states (see the module): none it discarded, and one
        it holds prepared as waiting (so asked for among Optuna's running ones when waiting
        ones are asked for)."""
        asked = states if states is None or TrialState.WAITING not in states else None
        trials = [t for t in self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=asked)
                  if not t.system_attrs.get(DISCARDED)]
        if any(t.state == TrialState.RUNNING for t in trials):
            prepared = self._prepared(self._storage.get_study_name_from_id(study_id))
            trials = [_waiting(t) if t.state == TrialState.RUNNING and t.number in prepared else t for t in trials]
        return trials if states is None else [t for t in trials if t.state in states]


def _with_attrs(study: FrozenStudy, attrs: dict[str, Any]) -> FrozenStudy:
    """A copy of ``study`` with the system attributes ``attrs`` (the storage's own object left as it is)."""
    if attrs is study.system_attrs:
        return study
    shown = copy.copy(study)
    shown.system_attrs = attrs
    return shown


def _waiting(trial: FrozenTrial) -> FrozenTrial:
    """A copy of a trial asked for and not started: waiting, with no start (as Optuna's own
    waiting trials), the storage's own object left as it is."""
    shown = copy.copy(trial)
    shown.state = TrialState.WAITING
    shown.datetime_start = None
    return shown
