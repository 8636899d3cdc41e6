"""The tick: what lost events left behind, found and moved on.

On Knative a PingSource sends ``dev.knative.sources.ping`` once a minute and this function
takes it; in queue mode the watcher (:mod:`functions.watch`) runs the same functions every
few seconds, so the two cannot drift (the ticks the watcher sends while node pools wait reach
this function too, which sends nothing new: each event below is named by its fact). Events get lost on a cluster (an ApiServerSource drops
changes after a relist or a failed send; a Trigger gives up after its retries), so nothing may
wait on one. A tick compares what the store believes with what the executor and the cluster
say, and sends the event that was missing:

1. a running attempt whose Job ended or vanished: its ``trial.finished``; and, in a study that
   is not stalled (step 4), a running local attempt that no live process runs any more (the
   ``katuna serve`` worker that ran it died): its recorded end, or its run lost;
2. node-pool operations: the ``provision`` function takes the same tick;
3. a stop rule that fires with no event to check it (a ``timeBudget`` running out):
   ``study.completed``; a study that ended with trials never stopped: its ``study.completed``
   again;
4. a stalled study (free slots, trials left, no attempt alive): a ``study.created`` that
   resumes it; a study whose Jobs wait for a node is not stalled, its Jobs exist. In a study
   that is not stalled, a waiting trial that fits a free slot and was suggested
   :data:`IN_FLIGHT` seconds ago or more: its ``trial.suggested`` again (the first was lost, or
   given up), so the trial starts while the study's other trials run;
5. a study resource the store does not know (or knows under another uid, or at an older
   generation): the ApiServerSource event its change would have sent; a running study whose
   resource is gone (or being deleted, held by finalizers), or an ended one whose workloads
   ``retain`` kept are still to be deleted with it
   (:func:`~functions.handlers.stopping.kept_behind`): the resource's delete event; an ended
   study whose resource shows another status than the store's (its last write-back given up)
   and which ended :data:`IN_FLIGHT` seconds ago or more: its ``study.completed`` again, which
   ``writeback`` takes (:mod:`functions.handlers.resource_check`). Skipped where there is no
   cluster. Where the Katib overlay is enabled, Katib's own Experiments and
   StudyJobs of every namespace too;
6. a running cluster trial: the observations of its log kept as they are read, and, in a study
   with early stopping, the ``trial.progress`` of each report of the objective its log holds
   that no handled event brought (:mod:`functions.handlers.progress_scan`);
7. an ended trial whose workload is still marked to stop (its handler's process died after the
   verdict was stored, or the stop failed): stopped now (:mod:`functions.handlers.stopping`);
8. a trial workload still running that the store does not want (its create answered 504 and
   its Job stored after its study ended): deleted, or suspended where ``retain`` keeps it
   (:mod:`functions.handlers.strays`); a node pool this installation made for a study the store
   does not hold, that no stored study uses: deleted (:mod:`functions.handlers.pool_orphans`).

A tick only reads and sends (but for the observations step 6 keeps, each read stored once, in a
transaction of its own, see :mod:`functions.handlers.progress_scan`, the stops of step 7, each
with its mark cleared in a transaction of its own, and the workloads and pools step 8 deletes, which no
handler knows of); the handlers do the work, each once: every event it sends has an
id derived from the fact it stands for, so two ticks at once, or a tick racing the event it
stands in for, change nothing twice: a ``trial.suggested`` or ``study.completed`` sent again
has the id of the one it stands in for, so whichever of the two comes second is a duplicate
its handlers have recorded (``writeback``, which records none, writes the same status again).
A tick is bounded: :data:`MAX_STUDIES` studies, :data:`MAX_ATTEMPTS` attempts and
:data:`~functions.handlers.resource_check.MAX_STATUS_CHECKS` resources' statuses looked at, a
different slice of each every minute when there are more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from functions.core.events import Event, study_completed, study_stalled, trial_suggested
from functions.core.launch import trial_launch
from functions.core.log_context import about
from functions.core.records import ACTIVE_STATES, LOCAL, RUNNING, StudyRecord, TrialRecord, runs_away
from functions.core.rotation import rotated
from functions.core.store_port import stored_study
from functions.core.study_brief import StudyBrief
from functions.handlers.ahead import startable
from functions.handlers.asking import check_stop
from functions.handlers.deps import Deps, served_here
from functions.handlers.failures import count_failure, temporary
from functions.handlers.progress_scan import scan
from functions.handlers.resource_check import IN_FLIGHT, resource_events
from functions.handlers.starting import gone, look
from functions.handlers.stopping import finish_marked
from functions.handlers.strays import sweep

log = logging.getLogger("katuna.reconcile")

MAX_STUDIES = 100
"""Studies one tick looks at: the running ones first, then those that ended most recently."""

MAX_ATTEMPTS = 200
"""Running attempts one tick asks the executor about (each a Job read on a cluster)."""

SLICE_EVERY = 60.0
"""Seconds each slice of studies and attempts is looked at before the next (a PingSource's period)."""


class Budget:
    """How many more attempts a tick may ask the executor about."""

    def __init__(self, size: int = MAX_ATTEMPTS) -> None:
        self.left = size

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


Settled = Callable[[Callable[[], bool]], bool]
"""Whether a study may be nudged, given a way to ask whether any of its attempts is alive."""


def handle(event: Event, deps: Deps) -> list[Event]:
    """The tick: the events that move on every study the slice holds, and the resources'."""
    finish_marked(deps)
    briefs = deps.store.study_briefs()
    unended = [brief.whole for brief in briefs if brief.whole is not None]
    running = [record for record in served_here(deps, unended) if not record.terminal]
    window = int(deps.clock() // SLICE_EVERY)
    budget = Budget()
    events: list[Event] = []
    for record in _slice(deps, running, briefs, window):
        events += guarded(deps, record, partial(reconcile_study, record, deps, budget, window=window))
    sweep(deps, briefs)
    return events + resource_events(deps, briefs, window) + scan(deps, running, window)


def _slice(deps: Deps, running: Sequence[StudyRecord], briefs: Sequence[StudyBrief], window: int) -> list[StudyRecord]:
    """The studies this tick looks at: running ones (a rotating slice when there are more than
    :data:`MAX_STUDIES`), then, while room is left, the latest to end whose trials run here,
    chosen by their briefs and only those read whole."""
    ended = sorted((brief for brief in briefs if brief.terminal and not runs_away(brief.runs_on, deps.runs_on)),
                   key=lambda brief: brief.completed_at or 0.0, reverse=True)
    room = ended[:max(0, MAX_STUDIES - len(running))]
    latest = [record for brief in room if (record := stored_study(deps.store, brief.name, brief.uid)) is not None]
    return (rotated(running, window, MAX_STUDIES) + latest)[:MAX_STUDIES]


def guarded(deps: Deps, record: StudyRecord, work: Callable[[], list[Event]]) -> list[Event]:
    """The events of ``work`` on a study's behalf. A temporary failure is logged (the next tick
    tries again); any other counts against the study (:mod:`functions.handlers.failures`)."""
    try:
        return work()
    except Exception as exc:
        if temporary(exc):
            log.warning("reconciling study %s: %s", record.name, exc, extra=about(record.name))
            return []
        return count_failure(deps, record.name, record.uid, "reconciling", exc) or []


def nothing_alive(alive: Callable[[], bool]) -> bool:
    """A tick's rule: a study is stalled when no attempt of it is alive."""
    return not alive()


def reconcile_study(record: StudyRecord, deps: Deps, budget: Budget, settled: Settled = nothing_alive,
                    poll: bool = True, window: int = 0) -> list[Event]:
    """The events that move one study on where no event did (steps 1, 3 and 4 above).

    ``settled`` says whether the study may be nudged (the watcher also waits for its queue to
    be empty); ``poll`` whether to ask about its running attempts now. The stop rules are judged
    on the study as stored once its attempts are looked at (an edit may have raised
    ``maxFailedTrials`` meanwhile), and nothing more is done for one deleted, replaced or ended since.
    """
    if record.terminal:
        return _unstopped(record, deps) if settled(lambda: False) else []
    running = deps.store.trials(record.name, (RUNNING,))
    ended = _ended(record, deps, rotated(running, window, budget.left), budget) if poll else []
    current = stored_study(deps.store, record.name, record.uid)
    if current is None or current.terminal:
        return ended
    decision = check_stop(current, deps)
    if decision is not None:
        return [*ended, study_completed(current.name, current.uid, decision.status, decision.reason, current.restarts)]
    if ended:
        return ended
    if settled(lambda: _alive(current, deps, running, budget)):
        return [_stalled(current, deps)]
    return (_gone_beside_live(current, deps, running, budget) if poll else []) + _unsuggested(current, deps)


def _ended(record: StudyRecord, deps: Deps, running: Iterable[TrialRecord], budget: Budget) -> list[Event]:
    """The ``trial.finished`` of each running attempt that ended without a word, the attempts
    read together (:meth:`~functions.core.ports.Executor.together`)."""
    looked = [trial for trial in running if budget.take()]
    with deps.executor.together([trial_launch(record, trial) for trial in looked]):
        return [finished for trial in looked if (finished := look(record, trial, deps)) is not None]


def _gone_beside_live(record: StudyRecord, deps: Deps, running: Iterable[TrialRecord], budget: Budget) -> list[Event]:
    """Where trials are local processes, the ends of the running attempts that no live process
    runs any more (the ``katuna serve`` worker that ran them died, and they with it), while
    another attempt of the study lives (:func:`~functions.handlers.starting.gone`). Only the
    process that runs a local attempt hears of its end (:meth:`~functions.core.ports.Executor.poll`
    answers for its own), so such a trial held its slot while any other attempt of its study
    lived, and ran again only once the study stalled. A study none of whose attempts lives is
    resumed as stalled instead (step 4), which also discards the trials a ``katuna run`` prepared
    beyond its parallelism. On a cluster, :func:`look` finds a Job gone already."""
    if deps.runs_on != LOCAL:
        return []
    looked = [trial for trial in running if budget.take()]
    lost = [trial for trial in looked if not deps.executor.exists(trial_launch(record, trial))]
    if len(lost) == len(looked):
        return []
    return [gone(record, trial, deps, "while its study ran") for trial in lost]


def _alive(record: StudyRecord, deps: Deps, running: Iterable[TrialRecord], budget: Budget) -> bool:
    """Whether an attempt of the study still runs (or waits for a node); when the budget runs
    out before one is found, it is taken to be alive: the study is looked at again later."""
    return any(not budget.take() or deps.executor.exists(trial_launch(record, trial)) for trial in running)


def _unsuggested(record: StudyRecord, deps: Deps) -> list[Event]:
    """The ``trial.suggested`` again of each waiting trial that fits a free slot, and the room
    left among the trials katuna runs at once (:func:`~functions.handlers.ahead.startable`),
    and was suggested :data:`IN_FLIGHT` seconds ago or more: its event was lost, so the trial
    waits for nothing. ``spawn`` launches its attempt unless one exists, and marks it running
    either way; the event has the id of the lost one, so that one, arriving late, is a
    duplicate. A trial waiting past that room is sent nothing: its own event is delivered again
    meanwhile, and one more at every tick would pile up in a queue for as long as it waits.
    Store reads only (the free slots count the trials stored running), so no budget is taken."""
    counts = deps.store.count_trials(record.name)
    due = deps.clock() - IN_FLIGHT
    return [trial_suggested(record.name, record.uid, trial.number, trial.attempt)
            for trial in startable(record, deps, counts) if trial.suggested_since <= due]


def _stalled(record: StudyRecord, deps: Deps) -> Event:
    """The ``study.created`` that resumes a stalled study, named by the state it found."""
    active = sorted((t.number, t.attempt, t.state) for t in deps.store.trials(record.name, ACTIVE_STATES))
    return study_stalled(record.name, record.uid, (deps.store.count_trials(record.name), active), record.restarts)


def _unstopped(record: StudyRecord, deps: Deps) -> list[Event]:
    """An ended study whose trials are still active never had its ``study.completed``
    handled: send it again (its id is the study's, so a handled one changes nothing)."""
    if deps.store.count_trials(record.name).active == 0:
        return []
    return [study_completed(record.name, record.uid, record.status, record.reason, record.restarts)]
