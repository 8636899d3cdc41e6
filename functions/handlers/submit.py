"""Storing a submitted study: under a fresh uid, or as the stored one when the same study is
submitted again, or restarting an ended study (a Katib Experiment, or a native study) whose
budget it raises (within the Optuna history's limits, as a new study). The HTTP API,
``katuna run`` and the study resources all submit here; a warm start's results, the node
pools held and the study's Optuna history are checked in the same transaction, so concurrent
submissions cannot slip past them.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, NoReturn

from functions.core import pbt, resume
from functions.core.conflicts import study_conflict
from functions.core.errors import InvalidStudy, Problem, RestartThroughResource, StudyConflict, TooManyStudies
from functions.core.initial_trials import covered_problems
from functions.core.job import CHECKPOINT_SETTING, runs_as_job
from functions.core.limits import PREFIX
from functions.core.pool_count import HOLDING, held_pools, pools_full
from functions.core.records import LOCAL, StudyRecord, TrialCap, runs_elsewhere
from functions.core.report_token import new_key
from functions.core.spec import KnownResult, Study, known_results
from functions.core.store_port import has_study, stored_study
from functions.core.trial_cap import admit, covered_problem, grid_covered
from functions.core.warm import missing_study, nothing_taken, over_limit, unseen_study
from functions.handlers.asking import earlier_results, reopen
from functions.handlers.deps import Deps


def store_study(deps: Deps, spec: Study, definition: dict[str, Any],
                origin: dict[str, Any] | None = None) -> tuple[StudyRecord, bool]:
    """Store a submitted study under a fresh uid: the stored record, and whether it is new.

    Submitting the identical study again returns the stored one (``StudyConflict`` when the
    name holds a different definition; :class:`~functions.core.errors.StudyRunsElsewhere` when
    it runs, and its trials run where this service does not run them). Both the HTTP API and
    the study resources submit here. The results of the study a warm start names are taken in
    the same transaction (:func:`warm_results`), so none can be deleted or added in between; so
    are the node pools held (:func:`_check_pool_room`), so concurrent submissions never hold
    more than allowed.
    """
    uid = uuid.uuid4().hex[:12]
    with deps.store.transaction():
        stored_already = has_study(deps.store, spec.name)
        taken, cap = None, None
        if not stored_already:
            _check_runs_here(deps, spec, definition)
            _check_study_room(deps)
            _check_pool_room(deps, spec)
            taken = warm_results(deps, spec, origin)
            _check_grid_left(spec, definition, taken)
            cap = _check_history_room(deps, spec, definition, taken)
        record = StudyRecord(spec, definition, os.path.abspath(deps.workdir), uid, created_at=deps.clock(),
                             origin=origin, warm_results=taken, report_key=new_key(), trial_cap=cap,
                             runs_on=deps.runs_on)
        stored = deps.store.add_study(record)
        if not stored.terminal and stored.runs_away_from(deps.runs_on):
            raise runs_elsewhere(stored, deps.runs_on)
    return stored, stored.uid == uid


def store_or_restart(deps: Deps, spec: Study, definition: dict[str, Any]) -> tuple[StudyRecord, bool]:
    """Store a submitted study as :func:`store_study` does; where its name holds an ended study
    that the definition restarts (its trial budget raised, nothing else changed:
    :mod:`functions.core.resume`), restart that study instead. ``StudyConflict`` otherwise,
    saying why an ended study does not restart; :class:`RestartThroughResource` for one that came
    from a cluster resource, which restarts only through it. The record, and whether it is new."""
    try:
        return store_study(deps, spec, definition)
    except StudyConflict as exc:
        with deps.store.transaction():
            stored = deps.store.get_study(spec.name)
            if not resume.asks_restart(stored, definition):
                hint = resume.budget_hint(stored, definition, deps.store.count_trials(stored.name).created)
                if hint is None:
                    raise
                raise study_conflict(stored, spec, definition, hint) from exc
            if not stored.terminal:
                raise study_conflict(stored, spec, definition, "it has not ended (an interrupted study resumes as it "
                                     "was stored), and a raised budget restarts an ended study only: submit it "
                                     "again once it has ended") from exc
            refused = resume.refusals(stored, definition, deps.store.count_trials(stored.name).created)
            if refused:
                raise study_conflict(stored, spec, definition, f"it has ended ({stored.status}: {stored.reason}) and does "
                                     f"not restart: {'; '.join(refused)}") from exc
            through = resume.resource_refusal(stored)
            if through is not None:
                raise RestartThroughResource(through, exc.changed) from exc
            return restart(deps, stored, spec, definition), False


def restart(deps: Deps, stored: StudyRecord, spec: Study, definition: dict[str, Any],
            origin: dict[str, Any] | None = None) -> StudyRecord:
    """Reopen the ended study with the budget ``spec`` gives it, searching as it began
    (:func:`~functions.core.resume.as_begun`), its raised budget checked against its Optuna
    history as a new study's is (:class:`InvalidStudy` at the budget, with the definition's
    path, and nothing changed): the trials it may add load into every process that serves it.
    In one transaction, so concurrent submissions cannot slip past the check."""
    spec = resume.as_begun(stored.spec, spec)
    with deps.store.transaction():
        _check_study_room(deps)
        cap = raised_budget(deps, stored, spec, definition)
        return reopen(stored, deps, spec, definition, origin, cap)


def _check_runs_here(deps: Deps, spec: Study, definition: dict[str, Any]) -> None:
    """Refuse population-based training where trials run as Kubernetes Jobs and the service
    has no claim for their checkpoints (``KATUNA_CHECKPOINT_CLAIM``), or where its trials would
    run as another kind of workload (:class:`InvalidStudy` at ``algorithm.name``, a Katib
    Experiment's ``spec.algorithm.algorithmName``): each trial starts from a copy of its parent's
    checkpoint folder, which Jobs on any node reach only on such a claim, mounted in their pod
    (:mod:`functions.core.checkpoint_volume`)."""
    if spec.algorithm.name != pbt.NAME or deps.runs_on == LOCAL:
        return
    if deps.trial_defaults.checkpoints is None:
        _refuse(definition, Problem("algorithm.name", f"pbt runs where trials run as Kubernetes Jobs only with a "
                                                      f"shared claim for its checkpoints: {CHECKPOINT_SETTING} "
                                                      f"(each trial starts from a copy of its parent's checkpoint "
                                                      f"folder); or run it with local trials (katuna run, or katuna "
                                                      f"serve with KATUNA_EXECUTOR=local)"))
    if not runs_as_job(spec.trial_template.trial_spec):
        _refuse(definition, Problem("algorithm.name", "pbt runs its trials on Kubernetes as Jobs only (katuna's own, "
                                                      "or a trialSpec of kind batch/v1 Job), whose pod mounts the "
                                                      "trial's checkpoint folder from KATUNA_CHECKPOINT_CLAIM"))


def _check_study_room(deps: Deps) -> None:
    """Refuse a study that would be one more than the studies not ended ``KATUNA_MAX_STUDIES``
    allows (:class:`TooManyStudies` at ``name``): each costs the service work at every tick while
    it runs or waits. Called in the write transaction that stores or reopens it, so concurrent
    submissions cannot slip past."""
    held, limit = deps.store.unended_count(), deps.limits.studies
    if held >= limit:
        raise TooManyStudies(f"the database holds {held:,} studies that have not ended, the most it may hold at once "
                             f"(set by {PREFIX}MAX_STUDIES)")


def _check_pool_room(deps: Deps, spec: Study) -> None:
    """Refuse a new study whose node pool would be one more than ``KATUNA_MAX_POOLS`` allows
    (:class:`~functions.core.errors.TooManyPools` at ``nodePool``: room that frees as studies
    end and give their pools back, as :func:`_check_study_room`'s does). Only for a name not
    stored yet: a study stored under it holds its pool already, and submitted again it is the
    stored one (or a conflict)."""
    pool = spec.node_pool
    if pool is None:
        return
    running = [r.spec.node_pool for r in deps.store.list_studies() if r.spec.node_pool is not None and not r.terminal]
    full = pools_full(pool, held_pools(deps.store.pool_uses(HOLDING), running), deps.limits.pools)
    if full is not None:
        raise full


def raised_budget(deps: Deps, stored: StudyRecord, spec: Study, definition: dict[str, Any]) -> TrialCap | None:
    """Refuse a budget ``spec`` (raised or edited, ``definition`` as submitted) gives the stored
    study whose history would not hold the trials it may add to those it has made, in trials
    (``KATUNA_MAX_HISTORY``) or else in values (``KATUNA_MAX_HISTORY_CELLS``, counting the values
    it holds), or that leaves a study without ``maxTrials`` no trial more to run
    (:class:`InvalidStudy` at ``maxTrials``, nothing changed). The trial cap of a study without
    ``maxTrials`` (:mod:`functions.core.trial_cap`); None for one with it."""
    counts = deps.store.count_trials(stored.name)
    return _admitted(deps, stored.name, spec, definition, len(known_results(spec, stored.warm_results)),
                     counts.created, counts.finished)


def _check_grid_left(spec: Study, definition: dict[str, Any], taken: tuple[KnownResult, ...] | None) -> None:
    """Refuse a new grid study whose warm start's known results (inline, from a file, and
    ``taken`` from an earlier study) cover every point of its grid (:class:`InvalidStudy` at
    ``warmStart``): its trials visit only the points left, and not one would run. Refused
    rather than completed at once, as a budget that leaves nothing to run is: a study without
    a trial of its own has no result to show. So is one whose ``initialTrials`` give a point they
    cover (at ``initialTrials[i]``): the grid does not visit it again, and running it would take
    a trial from a point left."""
    covered = grid_covered(spec, taken)
    if covered is None:
        return
    problem = covered_problem(spec, covered)
    if problem is not None:
        _refuse(definition, problem)
    if spec.initial_trials:
        problems = covered_problems(spec.initial_trials, spec.parameters, covered)
        if problems:
            _refuse(definition, *problems)


def _check_history_room(deps: Deps, spec: Study, definition: dict[str, Any],
                        taken: tuple[KnownResult, ...] | None) -> TrialCap | None:
    """Refuse a new study whose ``maxTrials`` would take its Optuna history past either limit
    (:class:`InvalidStudy` at ``maxTrials``, a Katib Experiment's ``spec.maxTrialCount``): every
    process that serves a study loads its whole history first, and past the limits that load
    could outlast a worker's timeout (its trials, ``KATUNA_MAX_HISTORY``) or take hundreds of
    megabytes (its values, ``KATUNA_MAX_HISTORY_CELLS``: with its warm start's known results,
    inline and ``taken`` from an earlier study). A name Optuna holds a study of already (made
    through Optuna directly) counts what that study holds. The trial cap of a study without
    ``maxTrials``, which those limits set (:mod:`functions.core.trial_cap`); None for one with it."""
    return _admitted(deps, spec.name, spec, definition, len(known_results(spec, taken)))


def _admitted(deps: Deps, name: str, spec: Study, definition: dict[str, Any], known: int, made: int = 0,
              finished: int = 0) -> TrialCap | None:
    """The trial cap :func:`~functions.core.trial_cap.admit` gives ``spec`` over the Optuna
    history stored under ``name``, or its refusal raised at its path in ``definition``."""
    cap, problem = admit(spec, deps.limits, deps.store.optuna_history(name), deps.store.optuna_version(name),
                         made, finished, known)
    if problem is None:
        return cap
    _refuse(definition, problem)


def _refuse(definition: dict[str, Any], *problems: Problem) -> NoReturn:
    """Raise ``problems`` as :class:`InvalidStudy`, each at its path's line in ``definition``."""
    # Imported here: formats brings YAML, which a trial's end (handled with this module loaded)
    # never needs in a fresh process.
    from functions.core.formats import in_definition

    raise InvalidStudy(in_definition(definition, list(problems)))


def warm_results(deps: Deps, spec: Study, origin: dict[str, Any] | None = None) -> tuple[KnownResult, ...] | None:
    """The completed trials of the study ``spec``'s warm start names that fit its space, to be
    kept with it; None where it names none. A study the database lacks, one none of whose
    trials can be taken, or more results than ``KATUNA_MAX_WARM_START`` with those given inline,
    is refused (:class:`InvalidStudy` at ``warmStart.study``): it would start cold without a word. Only for a name not stored yet: a
    study stored under it, submitted again to resume it, keeps what it took at first (and is not
    refused if that earlier study was deleted since); a different one is a conflict. A study of
    a cluster resource (its ``origin``) takes them only from a study of a resource of its own
    namespace (:func:`~functions.core.warm.unseen_study`)."""
    warm = spec.warm_start
    if warm is None or warm.study is None:
        return None
    earlier = stored_study(deps.store, warm.study)
    problem = missing_study(warm, earlier is not None) if origin is None else \
        unseen_study(warm, origin["namespace"], _namespace(earlier) == origin["namespace"])
    if problem is not None:
        raise InvalidStudy([problem])
    taken = earlier_results(deps, spec, warm.study, most=deps.limits.warm_start - len(warm.trials) + 1)
    problem = over_limit(warm, len(taken), deps.limits.warm_start) or \
        nothing_taken(warm, len(taken), [o.metric for o in spec.objectives])
    if problem is not None:
        raise InvalidStudy([problem])
    return taken


def _namespace(record: StudyRecord | None) -> str | None:
    """The namespace of the cluster resource ``record`` follows; None for one sent with the API
    token or ``katuna run``, or for no study."""
    origin = record.origin if record is not None else None
    return origin.get("namespace") if origin else None
