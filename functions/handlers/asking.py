"""The steps of a study's Optuna twin several handlers take: its warm start, asking the sampler
for trials (at most :data:`ASKS_PER_EVENT` an event, then a continuation), telling it how they
ended, and the stop rules that end, or reopen, the study. Shared by the event handlers, so that
every handler asks and tells the same way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import TrialState

from functions.core import initial_trials, pbt, start_failures, unreported
from functions.core.events import STUDY_CREATED, Event, derived_id, study_completed, trial_suggested
from functions.core.katib_trials import failure_limit, trial_name, trials_owner
from functions.core.records import (
    FAIL,
    FAILED,
    STUDY_RUNNING,
    WAITING,
    Counts,
    StudyRecord,
    TrialCap,
    TrialRecord,
)
from functions.core.samplers import random_start, sampler_for
from functions.core.space import distribution, sample, sampler_params, values
from functions.core.spec import KnownResult, Study, known_results
from functions.core.stop import Decision, decide, trials_to_ask
from functions.core.store_port import has_study, trials_by_number
from functions.core.trial_cap import grid_cover, grid_points, study_cap
from functions.core.trial_query import TrialQuery
from functions.core.warm import lost_study, study_results
from functions.handlers import ahead, population
from functions.handlers.deps import Deps

EARLIER_PAGE = 500
"""Trials of an earlier study read at a time while its results are taken (fewer where fewer
are wanted)."""


def earlier_results(deps: Deps, spec: Study, earlier: str, most: int | None = None) -> tuple[KnownResult, ...]:
    """The completed trials of the study ``earlier`` that fit ``spec``, as known results: at most
    ``most`` of them, the first by number, read a page at a time and no further than they are
    needed, so a study of a hundred thousand trials costs no more to take ``most`` from (or to
    refuse for having more) than one of a few hundred."""
    page = EARLIER_PAGE if most is None else max(1, min(most, EARLIER_PAGE))
    return study_results(spec.parameters, [o.metric for o in spec.objectives],
                         trials_by_number(deps.store, earlier, page), most)


def optuna_study(record: StudyRecord, deps: Deps) -> optuna.Study:
    """The study's Optuna twin. Telling needs no particular sampler: results go to the storage,
    where every sampler reads them at its next ask (grid exhaustion is a stop rule of katuna's,
    not the sampler's); :func:`ask_trials` gives it each trial's own."""
    spec = record.spec
    return deps.store.optuna_study(spec.name, [o.direction for o in spec.objectives])


def warm_start(record: StudyRecord, deps: Deps) -> Decision | None:
    """Give the sampler the study's known results, once: before its first trial, so they are
    the first trials of its history (:func:`~functions.core.spec.known_results`, whose order
    :func:`~functions.core.samplers.build_sampler` relies on). Those of an earlier study are the
    ones taken when the study was stored; a study stored before katuna took them reads that
    study now, and fails (the decision returned) where it is gone."""
    warm = record.spec.warm_start
    study = optuna_study(record, deps)
    if warm is None or study.get_trials(deepcopy=False):
        return None
    taken = record.warm_results
    if taken is None and warm.study is not None:
        if not has_study(deps.store, warm.study):
            return Decision(FAILED, lost_study(warm))
        taken = earlier_results(deps, record.spec, warm.study)
    space = {p.name: distribution(p) for p in record.spec.parameters}
    study.add_trials([
        optuna.trial.create_trial(params=sampler_params(record.spec.parameters, k.params), distributions={n: space[n] for n in k.params},
                                  values=list(k.values))
        for k in known_results(record.spec, taken)
    ])
    return None


ASKS_PER_EVENT = 16
"""Trials one event asks the sampler for, at most. Asking happens inside the event's write
transaction, so a study with a large parallelism fills its slots over several events (see
:func:`continuation`) and no event holds the database's write lock for long."""


def continuation(record: StudyRecord, created: int, asked: int) -> Event:
    """The ``study.created`` that asks for the trials one event could not: its id follows from
    the study and the trials its sampler was ever asked for (``asked``: a count that never goes
    down, where the study's trial count does as trials never started are discarded), so a
    redelivery is recognised and no later continuation taken for one; it skips the resume
    checks (every active trial was just suggested)."""
    return Event(STUDY_CREATED, ahead.continued(record, created), id=derived_id(ahead.CONTINUED, record.uid, asked),
                 subject=record.name)


def ask_trials(record: StudyRecord, deps: Deps, counts: Counts | None = None) -> list[Event]:
    """Suggest trials into the free parallel slots (at most :data:`ASKS_PER_EVENT`, then a
    continuation), each with the sampler seed derived from its number in Optuna's study (past
    the warm start's known results, and the trials discarded, so no seed is drawn twice);
    ``counts`` are the study's trial counts, when the caller has them already."""
    return ask_counted(record, deps, deps.store.count_trials(record.name) if counts is None else counts)[0]


def ask_counted(record: StudyRecord, deps: Deps, counts: Counts) -> tuple[list[Event], Counts]:
    """As :func:`ask_trials`, with the study's trial counts ``counts`` once the trials asked wait."""
    spec = record.spec
    wanted = trials_to_ask(spec, counts, grid_points(record), _ahead(record, deps, counts),
                           cap=study_cap(record, deps.limits))
    if wanted == 0:
        return ahead.release(record, deps, counts) if deps.lookahead else [], counts
    study = optuna_study(record, deps)
    first = deps.store.optuna_history(spec.name)
    asked = min(wanted, ASKS_PER_EVENT)
    known = known_results(spec, record.warm_results)
    given = initial_trials.pending(len(spec.initial_trials), deps.store.initial_trials_held(spec.name)) \
        if spec.initial_trials else []
    events = []
    for offset in range(asked):
        trial, fields = _ask_one(record, deps, study, first + offset, known, given[0] if given else None)
        if fields.get("initial_trial") is not None:
            given.pop(0)
        deps.store.add_trial(TrialRecord(spec.name, trial.number, _trial_values(spec, trial, fields), WAITING,
                                         created_at=deps.clock(), **fields))
        events.append(trial_suggested(spec.name, record.uid, trial.number, 1))
    grown = replace(counts, waiting=counts.waiting + asked)
    if deps.lookahead:
        events = ahead.release(record, deps, grown)
    if wanted > asked:
        events.append(continuation(record, counts.created + asked, first + asked))
    return events, grown


def _ahead(record: StudyRecord, deps: Deps, counts: Counts) -> int:
    """The trials to prepare ahead now: none while the sampler is one result short of its
    random start's end (:func:`~functions.core.samplers.random_start`), so the trial that would
    be prepared at random is asked once the next trial ends, of a sampler that models the
    results as it would without look-ahead (Katib's ``tpe``, whose random start is one trial,
    so draws only its first ``parallelTrialCount`` trials at random); the look-ahead otherwise."""
    if not deps.lookahead:
        return 0
    start = random_start(record.algorithm)
    told = counts.complete + counts.pruned + len(known_results(record.spec, record.warm_results))
    return 0 if start is not None and told + 1 == start else deps.lookahead


def _ask_one(record: StudyRecord, deps: Deps, study: optuna.Study, seed_number: int, known: tuple[KnownResult, ...],
             entry: int | None) -> tuple[optuna.trial.Trial, dict[str, Any]]:
    """Ask the sampler for one trial, seeded by ``seed_number``; ``entry``, the first entry of
    the study's ``initialTrials`` no trial runs yet, is given to Optuna's storage as an enqueued
    trial (its values fixed, the rest drawn by the sampler, as Optuna's ``enqueue_trial``), which
    this ask takes. The trial and the fields of its record: under population-based training its
    generation and parent, and ``initial_trial`` where it runs the entry (pbt runs one only as a
    member of its first generation)."""
    spec = record.spec
    params = None if entry is None else sampler_params(spec.parameters, spec.initial_trials[entry])
    if spec.algorithm.name == pbt.NAME:
        asked = population.ask(record, deps, study, seed_number, known, params)
        return asked.trial, asked.lineage | ({"initial_trial": entry} if asked.given else {})
    if params is not None:
        study.enqueue_trial(params, skip_if_exists=False)
    study.sampler = sampler_for(study.sampler, record.algorithm, spec.parameters, seed_number, known,
                                initial=bool(spec.initial_trials))
    return sample(study, spec.parameters), {} if entry is None else {"initial_trial": entry}


def _trial_values(spec: Study, trial: optuna.trial.Trial, fields: dict[str, Any]) -> dict[str, Any]:
    """The values the trial gets: those the sampler holds, read back as the trial takes them
    (an initial trial's as :func:`~functions.core.initial_trials.as_given` gives them)."""
    drawn = values(spec.parameters, trial.params)
    entry = fields.get("initial_trial")
    return drawn if entry is None else initial_trials.as_given(spec.parameters, drawn, spec.initial_trials[entry])


def discard(record: StudyRecord, deps: Deps, number: int) -> None:
    """Forget trial ``number``, which never started, with the Katib Trial resource written for
    it when it was asked for: Katib, too, deletes the Trials it will not run. The resource goes
    first, so a failed delete leaves the trial to be discarded on the event's next delivery."""
    owner = trials_owner(record)
    if owner is not None and deps.resources is not None:
        deps.resources.delete_trials(owner.ref, owner.uid, [trial_name(owner.ref.name, number)])
    deps.store.discard_trial(record.name, number)


def tell(record: StudyRecord, deps: Deps, number: int, state: str, values: list[float] | None = None) -> None:
    """Tell the sampler how a trial ended; telling a finished trial again changes nothing."""
    study = optuna_study(record, deps)
    try:
        study.tell(number, values, state=TrialState[state], skip_if_finished=True)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def check_stop(record: StudyRecord, deps: Deps, finished: TrialRecord | None = None,
               counts: Counts | None = None) -> Decision | None:
    """Whether a stop rule fires now; ``finished`` is a trial that just ended. A failed one may
    also end the study where its trials fail alike (:func:`_failing_alike`). The time budget counts from the
    study's latest restart, as Optuna's ``optimize`` called again gives its ``timeout`` afresh."""
    started = record.restarted_at or record.started_at or record.created_at
    counts = deps.store.count_trials(record.name) if counts is None else counts
    grid = grid_cover(record.spec, record.warm_results)
    decision = decide(record.spec, counts, finished, deps.clock() - started, None if grid is None else grid.left,
                      cap=study_cap(record, deps.limits), covered=0 if grid is None else grid.covered,
                      failed_limit=failure_limit(record.definition))
    if decision is None and finished is not None and finished.state == FAIL:
        why = _failing_alike(record, deps, finished, counts)
        decision = Decision(FAILED, why) if why else None
    return decision


def _failing_alike(record: StudyRecord, deps: Deps, finished: TrialRecord, counts: Counts) -> str | None:
    """Why the study stops as the failed trial ``finished`` ends, where its trials fail for a
    cause every later one would meet: they could not start for what its template gives
    (:func:`~functions.core.start_failures.unstartable`), or the first to end never reported the
    objective while reporting other metrics (:func:`~functions.core.unreported.misreported`).
    Each rule reads the failed trials only once the counts and ``finished`` allow it; a trial's
    end delivered again changes no trial, so it is counted once."""
    if finished.reason.startswith(f"{start_failures.PREFIX}: ") and start_failures.may_be_unstartable(counts):
        return start_failures.unstartable(record.spec.trial_template, counts, deps.store.trials(record.name, (FAIL,)))
    if unreported.may_be_misreported(counts, finished):
        query = TrialQuery(states=(FAIL,), sort="finishedAt", limit=unreported.UNREPORTED_TRIALS)
        return unreported.misreported(deps.store.query_trials(record.name, query)[0], counts)
    return None


def complete(record: StudyRecord, deps: Deps, decision: Decision) -> list[Event]:
    """End the study now: later events see its final status at once."""
    deps.store.update_study(record.name, status=decision.status, reason=decision.reason,
                            completed_at=deps.clock())
    return [study_completed(record.name, record.uid, decision.status, decision.reason, record.restarts)]


def reopen(record: StudyRecord, deps: Deps, spec: Study, definition: dict[str, Any],
           origin: dict[str, Any] | None = None, cap: TrialCap | None = None) -> StudyRecord:
    """Run the ended study on under its edited definition (:mod:`functions.core.resume`):
    running again, its trials and the sampler's state kept, one more restart counted (the
    events of this run are told from the last one's by it), with ``cap`` its trial cap where
    ``spec`` gives no ``maxTrials`` (:mod:`functions.core.trial_cap`). The reopened record."""
    fields: dict[str, Any] = {"spec": spec, "definition": definition, "status": STUDY_RUNNING, "reason": "",
                              "completed_at": None, "restarts": record.restarts + 1, "restarted_at": deps.clock(),
                              "trial_cap": cap, "runs_on": deps.runs_on}
    if origin is not None:
        fields["origin"] = origin
    deps.store.update_study(record.name, **fields)
    return deps.store.get_study(record.name)
