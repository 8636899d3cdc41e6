"""The steps of a trial's attempt several handlers take: starting it (a refused launch fails the
trial, not the study), looking at it while it runs, and going on after a trial ended (the study
ends, or the freed slots are filled). Shared by the event handlers, so that every attempt is
started and looked at the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from functions.core import start_failures
from functions.core.admission import noted, without_note
from functions.core.disruptions import Disruption
from functions.core.errors import InvalidStudy, QuotaFull, RefusedFile, RefusedWorkload
from functions.core.events import Event, trial_finished
from functions.core.launch import trial_launch
from functions.core.records import FAIL, FAILED, RUNNING, StudyRecord, TrialRecord
from functions.core.remade_pods import Remade
from functions.core.stop import Decision
from functions.core.store_port import Store, has_study
from functions.handlers import ahead, turns
from functions.handlers.asking import ask_counted, check_stop, complete, tell
from functions.handlers.checkpoint_prunes import prune_after
from functions.handlers.deps import Deps


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
        prune_after(record, deps, trial)
        return replace(trial, **failed)
    if trial.state != RUNNING:
        deps.store.update_trial(record.name, trial.number, state=RUNNING, started_at=deps.clock(),
                                reason=without_note(trial.reason))
    return None


def _refusal(refused: RefusedWorkload | RefusedFile) -> str:
    """The reason of a trial whose launch was refused."""
    if isinstance(refused, RefusedFile):
        return start_failures.refusal(str(refused))
    problems = "; ".join(str(problem) for problem in refused.problems)
    return f"katuna refused the workload its parameters make: {problems}"


def go_on(record: StudyRecord, deps: Deps, ended: TrialRecord | None) -> list[Event]:
    """After a trial ended (its outcome stored and told): end the study if a stop rule fires,
    else fill the freed slots. ``ended`` is checked against the goals when it completed. With
    look-ahead, or a bound on the trials katuna runs at once (which holds trials back waiting),
    the waiting trials that fit the free slots start now, in this handling, so no event (nor
    its back-off) stands between a slot freeing and its refill; only then, in the same
    transaction and while they run, is the sampler asked for the trials that top the look-ahead up, as a
    continuation of the study would: the counts read again (a start refused for the trial's
    workload failed it, which a stop rule may count), the study ended if a rule fires. So a
    trial's end takes one write transaction, not a second one with its own event,
    processed-event record and read of the study. Under the bound, the freed room goes first
    to whichever trial waited longest, of any study served here (:mod:`~functions.handlers.turns`):
    the other studies' trials whose turn it is are sent on (:func:`~functions.handlers.turns.handed`).
    A launch refused as every trial's would be (:class:`InvalidStudy`: a study stored before the
    service's settings changed, its trial kind no longer among ``KATUNA_TRIAL_KINDS``) fails the
    study at once, the trial's end that freed the slot stored with it (:func:`_start_waiting`)."""
    if record.terminal:
        return handed_over(record, deps)
    counts = deps.store.count_trials(record.name)
    decision = check_stop(record, deps, ended, counts)
    others: list[turns.Turn] = []
    now: turns.Room | None = None
    if decision is None and (deps.lookahead or deps.running_trials is not None):
        waiting, others, now = ahead.taking(record, deps, counts)
        decision = _start_waiting(record, waiting, deps)
        if waiting and decision is None:
            counts = deps.store.count_trials(record.name)
            decision = check_stop(record, deps, counts=counts)
    if decision is not None:
        return finish(record, deps, decision)
    asked, counts = ask_counted(record, deps, counts)
    bound = deps.running_trials
    handed = [] if now is None or bound is None else \
        turns.to_service(record, deps, turns.since(now, record, deps, counts, bound))
    return asked + turns.handed(others) + turns.handed(handed)


def finish(record: StudyRecord, deps: Deps, decision: Decision) -> list[Event]:
    """End the study now (:func:`~functions.handlers.asking.complete`), and hand the room its
    trials held to the other studies' trials whose turn it is (:func:`handed_over`)."""
    return complete(record, deps, decision) + handed_over(record, deps)


def handed_over(record: StudyRecord, deps: Deps) -> list[Event]:
    """The ``trial.suggested`` of the other studies' trials whose turn it is to take the room
    left (:mod:`~functions.handlers.turns`), where a study's end, or a trial's end in a study
    that ended, frees it and no trial of its own takes it."""
    if deps.running_trials is None:
        return []
    _, others, now = turns.in_turn(record, deps, [], deps.running_trials, at_once=True)
    return turns.handed(others + turns.to_service(record, deps, now))


def _start_waiting(record: StudyRecord, waiting: list[TrialRecord], deps: Deps) -> Decision | None:
    """Start the ``waiting`` trials into the freed slots, in order, until one is held
    (:func:`_started_or_held`); the study's failure where a launch is refused as every trial's
    would be (:class:`InvalidStudy`), else None. Raised, the refusal would undo the handling of
    the trial's end that freed the slot, delivered again until the study failed for the count
    (:mod:`functions.handlers.failures`), that trial then stopped as the study ended, its own end
    never stored."""
    for trial in waiting:
        try:
            if not _started_or_held(record, trial, deps):
                break
        except InvalidStudy as refused:
            return refused_study(trial, refused)
    return None


def refused_study(trial: TrialRecord, refused: InvalidStudy) -> Decision:
    """The study's failure where ``trial``'s launch is refused as every trial's would be
    (:class:`InvalidStudy`), its reason naming the refusal and the trial: at once, never after a
    count of deliveries (:mod:`functions.handlers.failures`), as no delivery would fare better."""
    return Decision(FAILED, f"{type(refused).__name__}: {refused} (trial {trial.number}'s launch refused it)")


def _started_or_held(record: StudyRecord, trial: TrialRecord, deps: Deps) -> bool:
    """Start a waiting trial in a freed slot (:func:`start`); False where its namespace's quota
    has no room for its Job now (:class:`QuotaFull`): it stays waiting, its reason saying so, and
    the trial's end that freed the slot is stored all the same. A later end, or the tick once no
    attempt of the study runs, starts it again."""
    try:
        start(record, trial, deps)
    except QuotaFull as full:
        deps.store.update_trial(record.name, trial.number, reason=noted(trial.reason, quota_wait(full)))
        return False
    return True


def quota_wait(full: QuotaFull) -> str:
    """Why a trial whose Job its namespace's quota has no room for waits (a reason's note)."""
    return f"{turns.QUOTA_HELD}: {full.why or full}; katuna tries again as Jobs end"


def look(record: StudyRecord, trial: TrialRecord, deps: Deps) -> Event | None:
    """The ``trial.finished`` of the running trial's attempt if it ended (:meth:`~functions.core.ports.Executor.poll`).
    Where attempts may wait to be admitted (:attr:`Deps.admissions`), the trial's reason says
    why its attempt waits while it does, and drops that once it runs (:mod:`functions.core.admission`);
    the pods its attempt lost to disruptions are kept with the trial, and counted at the next
    look with those seen then (:mod:`functions.core.disruptions`)."""
    kept = deps.store.lost_pods(record.name, trial.number)
    launch = replace(trial_launch(record, trial), lost_pods=kept.of(trial.attempt),
                     running_pods=kept.running_of(trial.attempt), remade_pods=kept.remade_of(trial.attempt))
    if deps.admissions is None:
        return deps.executor.poll(launch)
    seen = deps.admissions.look(launch)
    if (seen.lost and set(seen.lost) - set(launch.lost_pods)) or (
            seen.running is not None and seen.running != launch.running_pods) or (
            seen.remade is not None and seen.remade != launch.remade_pods):
        _keep_lost(record, trial, deps, seen.lost or {}, seen.running, seen.remade)
    if seen.finished is None:
        _note_held(record, trial, deps, seen.held)
    return seen.finished


def gone(record: StudyRecord, trial: TrialRecord, deps: Deps, found: str) -> Event:
    """The end of the running trial's attempt of which no process or Job exists any more: the end
    its executor recorded (:meth:`~functions.core.ports.Executor.recorded_end`: it ended on its
    own, its handling given up), else a run lost (:func:`lost_run`, ``found`` saying when). Either
    event's id is the attempt's, so its own end, or another look that found it gone, changes
    nothing twice."""
    return deps.executor.recorded_end(trial_launch(record, trial)) or lost_run(record, trial, found)


def lost_run(record: StudyRecord, trial: TrialRecord, found: str) -> Event:
    """The ``preempted`` end of a running attempt of which nothing runs any more, as found
    ``found``: ``collect`` runs the trial again as its next attempt, saying so in its reason, or
    fails it once it lost ``trialTemplate.maxAttempts`` runs."""
    return trial_finished(record.name, record.uid, trial.number, trial.attempt, outcome="preempted",
                          message=f"its run was lost: no process or Job of it was found {found}")


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
               running: frozenset[str] | None, remade: Remade | None) -> None:
    """Keep the pods the trial's attempt lost with those kept before (the controllers delete a
    disrupted pod soon after, so the count grows only from what was seen), those running
    now (one gone at a later look was lost too), and the pods of its ``ExitCode`` replicas seen
    with those kept (a pod made again is deleted as soon), while the attempt is still the trial's."""
    with deps.store.transaction():
        if current_attempt(deps.store, record, trial, running=False) is None:
            return
        kept = deps.store.lost_pods(record.name, trial.number)
        now = kept.running_of(trial.attempt) if running is None else running
        pods = None if remade is None else kept.remade_of(trial.attempt).merged(remade)
        deps.store.set_lost_pods(record.name, trial.number, kept.seen(trial.attempt, lost, now, pods))


def _note_held(record: StudyRecord, trial: TrialRecord, deps: Deps, held: str | None) -> None:
    """Put ``held`` in the reason of the trial, while its attempt is still the one running."""
    with deps.store.transaction():
        current = current_attempt(deps.store, record, trial)
        if current is None:
            return
        reason = noted(current.reason, held)
        if reason != current.reason:
            deps.store.update_trial(record.name, trial.number, reason=reason)
