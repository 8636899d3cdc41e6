"""Stop rules: when a study ends, with which status and why; and how many trials to ask for now."""

from __future__ import annotations

from dataclasses import dataclass

from functions.core.counted import counted
from functions.core.durations import format_duration
from functions.core.records import COMPLETED, FAIL, FAILED, Counts, TrialCap, TrialRecord
from functions.core.spec import Study

LATEST_FAILURE_CHARS = 300
"""The most of a failed trial's reason a study's reason quotes."""
NONE_SUCCEEDED = "; no trial succeeded"
"""How the reason of a study that ran out of trials (its ``maxTrials``, its grid, its time)
with none completed ends: katuna fails such a study, where Katib marks an Experiment that ran
out of trials Succeeded whatever they ended as (:func:`ran_out_failing`); then why the trial that
ended last failed (:data:`LATEST`), so that the study says why its trials fail."""
LATEST = "; the latest, trial "
"""What leads the latest failed trial's reason in a study's reason."""


@dataclass(frozen=True)
class Decision:
    """The end of a study: its final status and a reason a person can read."""

    status: str
    reason: str


def _goal_reached(study: Study, trial: TrialRecord | None) -> str | None:
    if trial is None or trial.values is None:
        return None
    goals = [o for o in study.objectives if o.goal is not None]
    values = dict(zip(study.objectives, trial.values))
    if not goals or not all(o.reached(values[o]) for o in goals):
        return None
    met = ", ".join(f"{o.metric}={values[o]:g} (goal {o.goal:g})" for o in goals)
    return f"goal reached by trial {trial.number}: {met}"


def _capacity_left(cap: TrialCap, counts: Counts, grid_size: int | None) -> int:
    most = cap.trials if grid_size is None else min(cap.trials, grid_size)
    return most - counts.created


def decide(
    study: Study,
    counts: Counts,
    trial: TrialRecord | None,
    elapsed: float,
    grid_size: int | None = None,
    *,
    cap: TrialCap,
    covered: int = 0,
    failed_limit: str | None = None,
) -> Decision | None:
    """The stop rule that fires now, if any.

    ``trial`` is the trial that just completed, checked against the goals; ``grid_size`` is set
    for the grid algorithm, whose space runs out: the points its own trials visit, the grid's
    less the ``covered`` ones its warm start's known results lie on; ``cap`` is the most trials the study creates:
    its ``maxTrials``, or the cap it was admitted with
    (:func:`functions.core.trial_cap.study_cap`). It has no default, so no caller lets a study
    create trials without end, nor past the cap its limits set. ``failed_limit`` names the
    failure limit as its user wrote it, where that is not ``maxFailedTrials`` (a Katib
    Experiment's: :func:`functions.core.katib_trials.failure_limit`).
    """
    if study.max_failed_trials is not None and counts.failed > study.max_failed_trials:
        limit = f"at most {study.max_failed_trials} allowed" if failed_limit is None else f"{failed_limit} reached"
        return Decision(FAILED, f"too many failed trials: {counts.failed} failed, {limit}{_latest_failure(trial)}")
    goal = _goal_reached(study, trial)
    if goal:
        return Decision(COMPLETED, goal)
    if study.time_budget is not None and elapsed >= study.time_budget:
        return _final(counts, f"time budget of {format_duration(study.time_budget)} used", trial)
    if counts.active == 0 and _capacity_left(cap, counts, grid_size) <= 0:
        exhausted = grid_size is not None and counts.created >= grid_size
        if counts.created >= cap.trials and not (exhausted and cap.setting is not None):
            return _final(counts, cap.reached, trial)
        known = f", the grid's other {covered:,} points known from the warm start" if covered else ""
        return _final(counts, f"search space exhausted after {counted(counts.created, 'trial')}{known}", trial)
    return None


def _latest_failure(trial: TrialRecord | None) -> str:
    """Why the trial that just failed did, its reason's first line (at most
    :data:`LATEST_FAILURE_CHARS`, without the "last lines:" that leads to the output the trial's
    own reason shows), to follow the count of failed trials; "" for any other trial."""
    if trial is None or trial.state != FAIL or not trial.reason:
        return ""
    first = trial.reason.split("\n", 1)[0].removesuffix("; last lines:")
    cut = first if len(first) <= LATEST_FAILURE_CHARS else first[:LATEST_FAILURE_CHARS - 3] + "..."
    return f"{LATEST}{trial.number}: {cut}"


def _final(counts: Counts, reason: str, trial: TrialRecord | None) -> Decision:
    if counts.complete == 0:
        return Decision(FAILED, reason + NONE_SUCCEEDED + _latest_failure(trial))
    return Decision(COMPLETED, reason)


def ran_out_failing(status: str, reason: str) -> bool:
    """Whether a study failed only because it ran out of trials with none succeeded: Katib's
    controller marks such an Experiment Succeeded (``UpdateExperimentStatusCondition``: its
    ``maxTrialCount`` reached, or its suggestion's end), as it checks only
    ``maxFailedTrialCount`` for failures."""
    return status == FAILED and reason.partition(LATEST)[0].endswith(NONE_SUCCEEDED)


def trials_to_ask(study: Study, counts: Counts, grid_size: int | None = None, ahead: int = 0, *,
                  cap: TrialCap) -> int:
    """How many new trials to suggest now: free parallel slots, and ``ahead`` trials prepared
    beyond them, within the remaining budget (``cap`` as :func:`decide` takes it)."""
    return max(0, min(study.parallelism + ahead - counts.active, _capacity_left(cap, counts, grid_size)))
