"""Attempts that run while the store no longer wants them, found and stopped.

An attempt is unwanted when its study is not stored under its uid any more (deleted, or made
again under its name), has ended, or when its trial ended or moved on to a later attempt. The
handlers stop what they know of; these are what they cannot know of: a local attempt of a trial
whose end another process reported, and a trial Job the API server stored after answering its
create 504 (its request timed out, the create went on), once the study had ended and discarded
the trial, which never started. The watcher (queue mode) and the PingSource's tick (Knative)
sweep them: the executor lists what it runs (on a cluster, by katuna's labels, the Jobs of each
namespace a stored study's trials run in, and there the workloads of each other kind a stored
study's ``trialSpec`` is: a PyTorchJob, a JobSet, a Workflow) and stops each unwanted one that
has not ended, a Job of a study that ``retain``s its trials' Jobs suspended and kept, as its end
keeps them, a workload of another kind deleted, as a stopped trial's is.

Only the attempts of a study name the store holds are taken for its own by those: a Job of a
name it does not hold may be another katuna's, sharing the namespace with another database.
A workload labelled with this installation's identity whose study the store does not hold
(a database lost, or restored from a backup) is its own orphan, stopped once older than a grace
(:mod:`functions.adapters.kubernetes_orphans`), so no launch a handling has not committed yet is
taken. So is a node pool it made for a study whose use the store does not hold
(:mod:`functions.handlers.pool_orphans`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from functions.core import trial_kinds
from functions.core.errors import KatunaError, StudyNotFound
from functions.core.ports import Place
from functions.core.records import ACTIVE_STATES, StudyRecord, TrialRecord
from functions.core.store_port import Store
from functions.core.study_brief import StudyBrief
from functions.handlers.deps import Deps
from functions.handlers.pool_orphans import release_orphans

log = logging.getLogger("katuna.strays")


class Wanted:
    """Whether the store still wants an attempt, each study read once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._studies: dict[str, StudyRecord | None] = {}
        self._active: dict[str, dict[int, TrialRecord]] = {}

    def study(self, name: str) -> StudyRecord | None:
        """The study stored under ``name``, or None."""
        if name not in self._studies:
            try:
                self._studies[name] = self._store.get_study(name)
            except StudyNotFound:
                self._studies[name] = None
            active = self._store.trials(name, ACTIVE_STATES) if self._studies[name] else []
            self._active[name] = {trial.number: trial for trial in active}
        return self._studies[name]

    def unwanted(self, study: str, uid: str, number: int, attempt: int) -> bool:
        """Whether attempt ``attempt`` of trial ``number`` of the study ``study`` of ``uid`` is
        one the store does not want running: its study deleted, made again, or ended, or its
        trial ended or on a later attempt."""
        record = self.study(study)
        if record is None or record.uid != uid or record.terminal:
            return True
        trial = self._active[study].get(number) or self._store.get_trial(study, number)
        return trial is not None and (trial.attempt > attempt or (trial.attempt == attempt and trial.finished))

    def stray(self, study: str, uid: str, number: int, attempt: int) -> bool:
        """Whether the attempt is unwanted by a study of its name the store holds
        (:meth:`unwanted`; an attempt of a study name the store does not hold is left)."""
        return self.study(study) is not None and self.unwanted(study, uid, number, attempt)

    def orphan(self, study: str, uid: str) -> bool:
        """Whether the store holds no study ``study`` of ``uid``: none of the name (deleted, a
        database lost or restored from before it), or one made again under it."""
        record = self.study(study)
        return record is None or record.uid != uid

    def retained(self, study: str, uid: str) -> bool:
        """Whether the study ``study`` of ``uid`` is stored and keeps its trials' workloads (``retain``)."""
        record = self.study(study)
        return record is not None and record.uid == uid and record.spec.trial_template.retain

    def ended(self, study: str, uid: str, workload: Mapping[str, Any]) -> bool:
        """Whether the trial workload has ended, by the conditions of the study stored under
        ``uid`` (an earlier study's of the name: by its kind's)."""
        record = self.study(study)
        own = record.spec.trial_template if record is not None and record.uid == uid else None
        return trial_kinds.ended(workload, own.success_condition if own else None,
                                 own.failure_condition if own else None)


def sweep(deps: Deps, studies: list[StudyBrief]) -> None:
    """Stop the trial workloads the store does not want, in the namespaces the trials of
    ``studies`` (every stored study, in brief: no spec rebuilt) run in (and the executor's own),
    of the kinds they run as, and delete the node pools the installation made that no stored
    study uses (:mod:`functions.handlers.pool_orphans`); a failure is logged, and the next sweep
    tries again."""
    places = [Place(brief.namespace, brief.trial_kind) for brief in studies]
    try:
        deps.executor.stop_strays(Wanted(deps.store), places)
    except KatunaError as exc:
        log.warning("stopping the trial workloads no study wants: %s", exc)
    release_orphans(deps, studies)
