"""``study.created``: start or resume a study.

Every delivery reconciles, so a duplicate is harmless and a re-run resumes: attempts whose run
the executor no longer has are given a fresh attempt, then free parallel slots get new trials.
"""

from __future__ import annotations

from functions.core.events import Event, trial_suggested
from functions.core.records import ACTIVE_STATES, RUNNING, WAITING
from functions.handlers.base import Deps, ask_trials, check_stop, complete, trial_launch, warm_start


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    record = store.get_study(event.data["study"])
    if record.terminal or not record.owns(event.data):
        return []
    if record.started_at is None:
        store.update_study(record.name, started_at=deps.clock())
        record = store.get_study(record.name)
        warm_start(record, deps)
    events = []
    for trial in store.trials(record.name, ACTIVE_STATES):
        if trial.state == RUNNING and not deps.executor.exists(trial_launch(record, trial)):
            store.update_trial(record.name, trial.number, attempt=trial.attempt + 1, state=WAITING)
            events.append(trial_suggested(record.name, record.uid, trial.number, trial.attempt + 1))
        elif trial.state != RUNNING:
            events.append(trial_suggested(record.name, record.uid, trial.number, trial.attempt))
    decision = check_stop(record, deps)
    if decision is not None:
        return complete(record, deps, decision)
    return events + ask_trials(record, deps)
