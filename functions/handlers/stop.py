"""``study.completed``: record the final status and stop the trials still running: each is
``PRUNED`` with a reason beginning :data:`~functions.core.records.STOPPED_AT_END` (Katib's Trial
shows it ``Killed``, :mod:`functions.core.katib_trials`), and its workload stopped once that is
stored (:mod:`functions.handlers.stopping`); a template with ``retain`` keeps its Job, suspended,
unless the study ended because its resource was deleted: then, once those stops are made, every
workload ``retain`` kept is deleted, as with a deleted Katib Experiment
(:func:`~functions.handlers.stopping.drop_once_stopped`).

A trial asked for that never started (prepared ahead of a free slot, or suggested just before
the study ended) is no trial of the study: it is discarded, not counted or listed as pruned.

Under ``KATUNA_MAX_RUNNING_TRIALS`` the room the stopped trials held, and the places in line the
discarded ones stood in, go at once to the other studies' trials whose turn it is
(:func:`~functions.handlers.starting.handed_over`), however the study ended: its last trial's
end, a stop rule found on a tick or resume, a stop, handler failures past their count, a dead
letter, its node pool refused or failed, its resource deleted. Each ends it with this event.
The end of an earlier run of a study reopened since (:mod:`functions.core.resume`) changes nothing.
"""

from __future__ import annotations

from functools import partial

from functions.core.events import Event, of_this_run
from functions.core.launch import trial_launch
from functions.core.records import ACTIVE_STATES, PRUNED, STOPPED_AT_END
from functions.core.resources import DELETED
from functions.handlers.asking import discard, tell
from functions.handlers.deps import Deps
from functions.handlers.starting import handed_over
from functions.handlers.stopping import drop_once_stopped, may_keep, stop_once_stored


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    record = store.get_study(event.data["study"])
    if not record.owns(event.data) or not of_this_run(event.data, record.restarts):
        return []
    if not record.terminal:
        store.update_study(record.name, status=event.data["status"], reason=event.data["reason"],
                           completed_at=deps.clock())
        record = store.get_study(record.name)
    stopped, discarded = [], False
    for trial in store.trials(record.name, ACTIVE_STATES):
        if trial.started_at is None and not deps.executor.exists(trial_launch(record, trial)):
            discard(record, deps, trial.number)
            discarded = True
        else:
            stopped.append(trial)
    for trial in stopped:
        store.update_trial(record.name, trial.number, state=PRUNED, finished_at=deps.clock(),
                           reason=f"{STOPPED_AT_END} ({record.reason})")
        tell(record, deps, trial.number, PRUNED)
    stop_once_stored(record, stopped, deps)
    if record.reason == DELETED and may_keep(record, deps):
        deps.store.after_commit(partial(drop_once_stopped, deps, record.name, record.uid))
    return handed_over(record, deps) if stopped or discarded else []
