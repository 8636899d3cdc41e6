"""``study.completed``: record the final status and stop the trials still running."""

from __future__ import annotations

from functions.core.events import Event
from functions.core.launch import trial_launch
from functions.core.records import ACTIVE_STATES, PRUNED
from functions.handlers.base import Deps, tell


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    record = store.get_study(event.data["study"])
    if not record.owns(event.data):
        return []
    if not record.terminal:
        store.update_study(record.name, status=event.data["status"], reason=event.data["reason"],
                           completed_at=deps.clock())
        record = store.get_study(record.name)
    for trial in store.trials(record.name, ACTIVE_STATES):
        deps.executor.stop(trial_launch(record, trial))
        ended = "stopped" if trial.started_at is not None else "never started"
        store.update_trial(record.name, trial.number, state=PRUNED, finished_at=deps.clock(),
                           reason=f"{ended}: the study ended before the trial did ({record.reason})")
        tell(record, deps, trial.number, PRUNED)
    return []
