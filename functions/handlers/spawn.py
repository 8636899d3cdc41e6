"""``trial.suggested``: launch the trial's attempt, once.

The trial is marked running even when its attempt exists already (launched by a delivery whose
record was lost), so the attempt's end is never ignored; it is marked after the launch, in the
same transaction, so the launch waits for nothing else. A trial marked running already (a
trial's end that freed a slot started it, while its own event waited for room) is left as it
is: its attempt was launched when it was marked, and its end, or its loss, comes from its
executor or the tick. Launched again where its process is not this one's (a ``katuna serve``
restarted since), it would run a second time over the log of a run that may have ended, whose
result was then lost. With look-ahead
(:mod:`functions.handlers.ahead`) a trial is launched only into a free slot; one held back waits,
prepared, until a trial's end starts it. A trial whose parameters make a workload katuna
refuses fails at its launch, and the study goes on as after any trial's end. A launch refused as
every trial's would be (:class:`InvalidStudy`: a study stored before ``KATUNA_TRIAL_KINDS`` dropped
its kind, or before a Secret, account or claim it names was reserved) fails the study at once,
its reason naming the refusal and the trial, as such a refusal in a trial's end does
(:func:`~functions.handlers.starting.refused_study`); delivered again, the study has ended.

Where katuna bounds the trials running at once across every study (``Deps.running_trials``,
``KATUNA_MAX_RUNNING_TRIALS``: by default as many as this machine's CPUs where trials are its
processes), a launch past it is refused for now (:class:`ServiceBusy`, a temporary error): the
handling changes nothing, the trial stays waiting, its reason saying why (:func:`waits`), and
the event is delivered again with back-off. Room goes first come, first served across the
studies served here (:mod:`functions.handlers.turns`): a launch that would take room a trial
waiting longer is due is refused the same way, and the trial's end that frees room starts the
trial whose turn it is at once. A study's ``parallelism`` above the bound is no error: its
trials past it wait their turn.

A launch its namespace's ResourceQuota refuses for now (:class:`QuotaFull`: ``count/jobs.batch``
full, as finished Jobs count until deleted) is a temporary error too, retried the same way; the
trial waits, its reason saying which quota (:func:`waits`), and never counts as failed.
"""

from __future__ import annotations

from functions.core.admission import noted
from functions.core.counted import counted
from functions.core.errors import InvalidStudy, QuotaFull, ServiceBusy
from functions.core.events import Event
from functions.core.launch import trial_launch
from functions.core.records import RUNNING, WAITING, StudyRecord, TrialRecord
from functions.core.store_port import has_study
from functions.handlers.deps import Deps, study_here
from functions.handlers.starting import finish, go_on, quota_wait, refused_study, start
from functions.handlers.turns import ahead_of


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    study, number, attempt = event.data["study"], event.data["trial"], event.data["attempt"]
    record = study_here(deps, study)
    trial = store.get_trial(study, number)
    if record.terminal or not record.owns(event.data) or trial is None or trial.finished or trial.attempt != attempt \
            or trial.state == RUNNING:
        return []
    if deps.lookahead and store.count_trials(study).running >= record.spec.parallelism \
            and not deps.executor.exists(trial_launch(record, trial)):
        return []
    _check_room(record, trial, deps)
    try:
        failed = start(record, trial, deps)
    except InvalidStudy as refused:
        return finish(record, deps, refused_study(trial, refused))
    return [] if failed is None else go_on(record, deps, failed)


def waits(event: Event, deps: Deps, exc: Exception) -> None:
    """Note in the trial's reason that its launch waits for room in its namespace's quota
    (:class:`QuotaFull`: the Job refused for now) or among the trials katuna runs at once
    (:class:`ServiceBusy`), in a transaction of its own, while the trial still waits at the
    event's attempt; the note goes once the trial runs (:func:`~functions.handlers.starting.start`)."""
    if isinstance(exc, QuotaFull):
        note = quota_wait(exc)
    elif isinstance(exc, ServiceBusy) and deps.running_trials is not None:
        note = room_wait(deps.running_trials, deps.running_trials_set_by)
    else:
        return
    study, number, attempt = event.data["study"], event.data["trial"], event.data["attempt"]
    with deps.store.transaction():
        if not has_study(deps.store, study, event.data["uid"]):
            return
        trial = deps.store.get_trial(study, number)
        if trial is None or trial.state != WAITING or trial.attempt != attempt:
            return
        reason = noted(trial.reason, note)
        if reason != trial.reason:
            deps.store.update_trial(study, number, reason=reason)


def room_wait(bound: int, set_by: str) -> str:
    """Why a trial waits for room among the trials katuna runs at once (a reason's note)."""
    return (f"katuna runs at most {counted(bound, 'trial')} at once ({set_by}); it starts as soon as one of those running "
            "ends and the trials waiting longer, of any study, have started")


def _check_room(record: StudyRecord, trial: TrialRecord, deps: Deps) -> None:
    """Refuse for now a launch that would take the trials running past ``deps.running_trials``
    (those of :func:`~functions.handlers.deps.loads_here`), or take room a trial that waited longer is
    due (:func:`~functions.handlers.turns.ahead_of`); a trial whose attempt exists takes no room
    more. The count and the launch are in one write transaction, so no two workers both take the
    last room."""
    bound = deps.running_trials
    if bound is None:
        return
    running, ahead = ahead_of(record, trial, deps, bound)
    if running + ahead >= bound and not deps.executor.exists(trial_launch(record, trial)):
        runs = "runs" if running == 1 else "run"
        before = f" and {counted(ahead, 'trial')} waited longer" if ahead else ""
        raise ServiceBusy(f"{counted(running, 'trial')} {runs} now{before}, as many as katuna runs at once across every "
                          f"study ({deps.running_trials_set_by}: {bound}): trial {trial.number} of {record.name} waits "
                          "for its turn")
