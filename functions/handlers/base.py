"""What every handler shares: its dependencies, and the steps several handlers take.

A handler is ``handle(event, deps) -> list[Event]``: it reads state through the store, acts
through the executor, and returns the events to emit. It never talks HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import TrialState

from functions.core import start_failures
from functions.core.admission import noted
from functions.core.cluster import Cluster
from functions.core.disruptions import Disruption
from functions.core.errors import Problem, RefusedFile, RefusedWorkload
from functions.core.events import STUDY_CREATED, Event, derived_id, study_completed, trial_suggested
from functions.core.katib_trials import trial_name, trials_owner
from functions.core.launch import trial_launch
from functions.core.limits import DEFAULTS, Limits
from functions.core.node_hours import LOOK_EVERY
from functions.core.ports import Admissions, Clock, Executor, NodePools, Nodes, Resources, RunnerClaims, RunningLogs
from functions.core.records import (
    COMPLETE,
    FAIL,
    FAILED,
    LOCAL,
    RUNNING,
    STUDY_RUNNING,
    WAITING,
    Counts,
    StudyRecord,
    TrialCap,
    TrialRecord,
    run_by_another,
    runs_elsewhere,
)
from functions.core.samplers import grid_size, sampler_for
from functions.core.space import distribution, sample, sampler_params, values
from functions.core.spec import KnownResult, Study
from functions.core.stop import Decision, decide, trials_to_ask
from functions.core.store_port import Store, has_study
from functions.core.timeouts import POOL_WAIT
from functions.core.trial_cap import study_cap
from functions.core.warm import lost_study, study_results
from functions.handlers import ahead
from functions.handlers.parsed import ParsedOutput


@dataclass(frozen=True)
class Deps:
    """The ports a handler acts through."""

    store: Store
    executor: Executor
    clock: Clock
    node_pools: NodePools | None = None
    """The cluster's node pools in its cloud; None where no provider is configured."""
    resources: Resources | None = None
    """Study resources on Kubernetes, where the service watches them."""
    workdir: str = "."
    """Where relative trial working directories of submitted studies start."""
    limits: Limits = DEFAULTS
    """What a submitted study may ask of the service."""
    trial_defaults: Cluster = Cluster()
    """What trial Jobs get where a study says nothing (the service's settings)."""
    nodes: Nodes | None = None
    """The cluster's Node objects, for a study's measured node-hours; None where no cluster is asked."""
    node_look_seconds: float = LOOK_EVERY
    """How often at most a pool's nodes are listed."""
    pool_wait: float = POOL_WAIT
    """Seconds a study's pool may be refused for now before the study fails."""
    lookahead: int = 0
    """Trials asked for ahead of a free slot (:mod:`functions.handlers.ahead`); 0: none."""
    running_trials: int | None = None
    """The most trials the service runs at once across every study (``KATUNA_MAX_RUNNING_TRIALS``,
    :mod:`functions.handlers.spawn`); None: no bound but each study's ``parallelism``."""
    logs: RunningLogs | None = None
    """Running trials' logs, where progress is read from them (:mod:`functions.handlers.progress_scan`)."""
    admissions: Admissions | None = None
    """Where launched attempts may wait to be admitted (:func:`look`): the trial Jobs of a cluster."""
    template_namespaces: tuple[str, ...] = ()
    """Where shared trial templates are kept, which a study resource may name besides its own
    namespace and katuna's (:mod:`functions.core.cluster_templates`)."""
    access_refusal: Callable[[Study], Problem | None] | None = None
    """Why katuna may not create a study's trial workloads where they would run, asked of the
    cluster (``InvalidStudy`` where it refuses the first trial's ``trialSpec`` workload as
    invalid); None where trials do not run on one."""
    parsed: ParsedOutput | None = None
    """The output of the attempt the handling ends, parsed before its transaction by the
    dispatcher (:mod:`functions.handlers.parsed`); None when it was not."""
    runs_on: str = LOCAL
    """Where this service runs trials (``KATUNA_EXECUTOR``): a study whose trials run elsewhere
    is left alone (:func:`study_here`)."""
    runner: RunnerClaims | None = None
    """This process, where trials are its processes (None: Jobs on a cluster): a study that
    another live process claimed (a ``katuna run`` of it) is left to it."""


def study_here(deps: Deps, name: str) -> StudyRecord:
    """The stored study ``name``, to be run by this service: :class:`StudyRunsElsewhere` where
    its trials run elsewhere (:meth:`~functions.core.records.StudyRecord.runs_away_from`) or
    another live process runs it (:attr:`~functions.core.records.StudyRecord.runner`), which the
    dispatcher drops, as nothing here is to act on it."""
    record = deps.store.get_study(name)
    if record.runs_away_from(deps.runs_on):
        raise runs_elsewhere(record, deps.runs_on)
    other = _other_runner(deps, record)
    if other is not None:
        raise run_by_another(record, other)
    return record


def served_here(deps: Deps, records: list[StudyRecord]) -> list[StudyRecord]:
    """The studies of ``records`` this service runs: those whose trials run elsewhere, or that
    another live process runs, are left to it (:func:`study_here`)."""
    return [record for record in records
            if not record.runs_away_from(deps.runs_on) and _other_runner(deps, record) is None]


def _other_runner(deps: Deps, record: StudyRecord) -> int | None:
    """The pid of the live process other than this one that runs the unfinished study."""
    if deps.runner is None or record.terminal:
        return None
    return deps.runner.other(record.runner)


def earlier_results(deps: Deps, spec: Study, earlier: str) -> tuple[KnownResult, ...]:
    """The completed trials of the study ``earlier`` that fit ``spec``, as known results."""
    return study_results(spec.parameters, [o.metric for o in spec.objectives], deps.store.trials(earlier, (COMPLETE,)))


def optuna_study(record: StudyRecord, deps: Deps) -> optuna.Study:
    """The study's Optuna twin. Telling needs no particular sampler: results go to the storage,
    where every sampler reads them at its next ask (grid exhaustion is a stop rule of katuna's,
    not the sampler's); :func:`ask_trials` gives it each trial's own."""
    spec = record.spec
    return deps.store.optuna_study(spec.name, [o.direction for o in spec.objectives])


def warm_start(record: StudyRecord, deps: Deps) -> Decision | None:
    """Give the sampler the study's known results, once: before its first trial. Those of an
    earlier study are the ones taken when the study was stored; a study stored before katuna
    took them reads that study now, and fails (the decision returned) where it is gone."""
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
        for k in (*warm.trials, *(taken or ()))
    ])
    return None


def study_grid_size(record: StudyRecord) -> int | None:
    spec = record.spec
    return grid_size(spec.parameters) if spec.algorithm.name == "grid" else None


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
    return Event(STUDY_CREATED, {"study": record.name, "uid": record.uid, ahead.CONTINUED: created},
                 id=derived_id(ahead.CONTINUED, record.uid, asked), subject=record.name)


def ask_trials(record: StudyRecord, deps: Deps, counts: Counts | None = None) -> list[Event]:
    """Suggest trials into the free parallel slots (at most :data:`ASKS_PER_EVENT`, then a
    continuation), each with the sampler seed derived from its number in Optuna's study (past
    the warm start's known results, and the trials discarded, so no seed is drawn twice);
    ``counts`` are the study's trial counts, when the caller has them already."""
    spec = record.spec
    counts = deps.store.count_trials(spec.name) if counts is None else counts
    wanted = trials_to_ask(spec, counts, study_grid_size(record), deps.lookahead, cap=study_cap(record, deps.limits))
    if wanted == 0:
        return ahead.release(record, deps, counts) if deps.lookahead else []
    study = optuna_study(record, deps)
    first = deps.store.optuna_history(spec.name)
    asked = min(wanted, ASKS_PER_EVENT)
    events = []
    for offset in range(asked):
        study.sampler = sampler_for(study.sampler, record.algorithm, spec.parameters, first + offset)
        trial = sample(study, spec.parameters)
        deps.store.add_trial(
            TrialRecord(spec.name, trial.number, values(spec.parameters, trial.params), WAITING, created_at=deps.clock())
        )
        events.append(trial_suggested(spec.name, record.uid, trial.number, 1))
    if deps.lookahead:
        events = ahead.release(record, deps, replace(counts, waiting=counts.waiting + asked))
    if wanted > asked:
        events.append(continuation(record, counts.created + asked, first + asked))
    return events


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
    """Whether a stop rule fires now; ``finished`` is a trial that just completed. A trial that
    could not start for its study's image may also end the study
    (:func:`~functions.core.start_failures.unstartable`). The time budget counts from the
    study's latest restart, as Optuna's ``optimize`` called again gives its ``timeout`` afresh."""
    started = record.restarted_at or record.started_at or record.created_at
    counts = deps.store.count_trials(record.name) if counts is None else counts
    decision = decide(record.spec, counts, finished, deps.clock() - started, study_grid_size(record),
                      cap=study_cap(record, deps.limits))
    if decision is None and finished is not None and finished.state == FAIL \
            and finished.reason.startswith(f"{start_failures.PREFIX}: "):
        why = start_failures.unstartable(record.spec.trial_template, counts, deps.store.trials(record.name, (FAIL,)))
        decision = Decision(FAILED, why) if why else None
    return decision


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


def start(record: StudyRecord, trial: TrialRecord, deps: Deps) -> TrialRecord | None:
    """Launch the trial's attempt, unless it exists (launched by a handling whose record was
    lost), and mark the trial running: after the launch, in the caller's transaction, so the
    launch waits for nothing else, and an attempt's end is never ignored. A launch refused for
    what the trial's parameters made of its workload (:class:`RefusedWorkload`: a placeholder
    filled to reach the node, or to run as an account katuna keeps) fails that trial, told to
    the sampler, and the study goes on: the failed trial is returned (None when it runs). So does
    one refused for what an earlier trial left where the attempt would log (:class:`RefusedFile`:
    a link planted there). A refusal every trial would meet (:class:`InvalidStudy`) stands, and
    fails the study."""
    launch = trial_launch(record, trial)
    try:
        if not deps.executor.exists(launch):
            deps.executor.launch(launch)
    except (RefusedWorkload, RefusedFile) as refused:
        failed: dict[str, Any] = {"state": FAIL, "reason": _refusal(refused), "finished_at": deps.clock()}
        deps.store.update_trial(record.name, trial.number, **failed)
        tell(record, deps, trial.number, FAIL)
        return replace(trial, **failed)
    if trial.state != RUNNING:
        deps.store.update_trial(record.name, trial.number, state=RUNNING, started_at=deps.clock())
    return None


def _refusal(refused: RefusedWorkload | RefusedFile) -> str:
    """The reason of a trial whose launch was refused."""
    if isinstance(refused, RefusedFile):
        return f"katuna refused to start the attempt: {refused}"
    problems = "; ".join(str(problem) for problem in refused.problems)
    return f"katuna refused the workload its parameters make: {problems}"


def go_on(record: StudyRecord, deps: Deps, ended: TrialRecord | None) -> list[Event]:
    """After a trial ended (its outcome stored and told): end the study if a stop rule fires,
    else fill the freed slots. ``ended`` is checked against the goals when it completed. With
    look-ahead, the waiting trials that fit the free slots start now, in this handling, so no
    event stands between a slot freeing and its refill; the sampler is asked for the trials that
    top the look-ahead up in a continuation, while they run."""
    if record.terminal:
        return []
    counts = deps.store.count_trials(record.name)
    decision = check_stop(record, deps, ended, counts)
    if decision is not None:
        return complete(record, deps, decision)
    if deps.lookahead:
        waiting = ahead.releasable(record, deps, counts)
        for trial in waiting:
            start(record, trial, deps)
        if waiting:
            return [ahead.refill(record, counts)]
    return ask_trials(record, deps, counts)


def look(record: StudyRecord, trial: TrialRecord, deps: Deps) -> Event | None:
    """The ``trial.finished`` of the running trial's attempt if it ended (:meth:`Executor.poll`).
    Where attempts may wait to be admitted (:attr:`Deps.admissions`), the trial's reason says
    why its attempt waits while it does, and drops that once it runs (:mod:`functions.core.admission`);
    the pods its attempt lost to disruptions are kept with the trial, and counted at the next
    look with those seen then (:mod:`functions.core.disruptions`)."""
    kept = deps.store.lost_pods(record.name, trial.number)
    launch = replace(trial_launch(record, trial), lost_pods=kept.of(trial.attempt),
                     running_pods=kept.running_of(trial.attempt))
    if deps.admissions is None:
        return deps.executor.poll(launch)
    seen = deps.admissions.look(launch)
    if (seen.lost and set(seen.lost) - set(launch.lost_pods)) or (
            seen.running is not None and seen.running != launch.running_pods):
        _keep_lost(record, trial, deps, seen.lost or {}, seen.running)
    if seen.finished is None:
        _note_held(record, trial, deps, seen.held)
    return seen.finished


def current_attempt(store: Store, record: StudyRecord, trial: TrialRecord,
                    running: bool = True) -> TrialRecord | None:
    """The trial as stored now, while ``trial``'s attempt is still its own (and still runs, with
    ``running``) in the very study of ``record``, not one of its name made since; None
    otherwise. A tick writes from reads made before its transaction: it checks them so there."""
    if not has_study(store, record.name, record.uid):
        return None
    current = store.get_trial(record.name, trial.number)
    if current is None or current.attempt != trial.attempt or (running and current.state != RUNNING):
        return None
    return current


def _keep_lost(record: StudyRecord, trial: TrialRecord, deps: Deps, lost: Mapping[str, Disruption],
               running: frozenset[str] | None) -> None:
    """Keep the pods the trial's attempt lost with those kept before (the controllers delete a
    disrupted pod soon after, so the count grows only from what was seen), and those running
    now (one gone at a later look was lost too), while the attempt is still the trial's."""
    with deps.store.transaction():
        if current_attempt(deps.store, record, trial, running=False) is None:
            return
        kept = deps.store.lost_pods(record.name, trial.number)
        now = kept.running_of(trial.attempt) if running is None else running
        deps.store.set_lost_pods(record.name, trial.number, kept.seen(trial.attempt, lost, now))


def _note_held(record: StudyRecord, trial: TrialRecord, deps: Deps, held: str | None) -> None:
    """Put ``held`` in the reason of the trial, while its attempt is still the one running."""
    with deps.store.transaction():
        current = current_attempt(deps.store, record, trial)
        if current is None:
            return
        reason = noted(current.reason, held)
        if reason != current.reason:
            deps.store.update_trial(record.name, trial.number, reason=reason)
