"""The study as the charts read it, and the even samples a chart of a large study draws.

Apart from :mod:`functions.adapters.web.plots`, which builds each chart: which trials a chart
draws once a study holds more than it can show (the best ones always, the rest spread evenly)
is a question of its own, answered without copying a trial, and the same for every chart.
"""

from __future__ import annotations

import operator

import optuna
from optuna.trial import FrozenTrial

from functions.core.pareto_search import pareto_front
from functions.core.spec import Study
from functions.core.spread import spread

HISTORY_POINTS = 5_000
"""Trials the optimization history and slice charts draw, each a point (20,000 trials made a 1 MB
history and a 1.7 MB slice). Beyond this many, a chart draws an even sample of them with the
best trials and, in the history, the trials where the best value so far changes, those just
before them and the last (so its best-so-far line is drawn as it is, or where the best changes
more than 2,499 times, at an even sample of its changes, the first and the best among them),
and says so."""


class ReadOnlyStudy(optuna.Study):
    """The study as the charts read it: trials without Optuna's defensive deep copies, which cost
    seconds at 10,000 trials (the visualizations only read them); for the Pareto front, only its
    own, from number ``own_from`` on (the known results of a warm start come first, and the
    front katuna shows is of the study's own trials). The other charts take every trial:
    Optuna's history and its kin index their values by trial number."""

    own_from = 0
    shown: frozenset[int] | None = None
    """The numbers of the trials a sampled chart draws (:func:`thinned`); None: every trial."""

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        trials = super().get_trials(deepcopy=False, states=states)
        if self.own_from:
            trials = [t for t in trials if t.number >= self.own_from]
        return trials if self.shown is None else [t for t in trials if t.number in self.shown]


def sample(study: ReadOnlyStudy, spec: Study, limit: int) -> tuple[ReadOnlyStudy, str | None]:
    """``study`` showing at most ``limit`` of its completed trials (all where it has no more):
    its best trials (as many as fit: those tied on the best value, or the Pareto front as
    katuna's tables show it), and the others spread evenly over the study; and what the chart
    says of it. As :func:`thinned`, it copies nothing: copying 25,000 trials into a study of
    their own took seconds, and so did Optuna's ``best_trials`` of 100,000."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) <= limit:
        return study, None
    best = set(pareto_front(spec, [(t.number, t.values) for t in complete if t.values]))
    chosen = [t.number for t in complete if t.number in best][:limit]
    rest = [t.number for t in complete if t.number not in best]
    room = limit - len(chosen)
    chosen += [rest[int(i * len(rest) / room)] for i in range(room)]
    study.shown = frozenset(chosen)
    return study, f"from {limit:,} of {len(complete):,} completed trials"


def thinned(study: ReadOnlyStudy, states: tuple[optuna.trial.TrialState, ...] | None, noun: str,
             spec: Study, corners: bool = False) -> str | None:
    """Where ``study`` has more than :data:`HISTORY_POINTS` trials in ``states`` (None: any), has
    it show only that many of them (more where :func:`_kept` holds more): those :func:`_kept`
    names, then completed trials (the points drawn) spread evenly over the study, then, where
    room is left, the others (which only carry the best-so-far line); and what the chart says of
    it. Unlike :func:`sample` it copies nothing, and the trials keep their numbers, which these
    charts show."""
    trials = study.get_trials(deepcopy=False, states=states)
    if len(trials) <= HISTORY_POINTS:
        return None
    kept = _kept(study, trials, spec, corners)
    shown = set(kept)
    for completed in (True, False):
        rest = [t.number for t in trials
                if (t.state == optuna.trial.TrialState.COMPLETE) == completed and t.number not in kept]
        shown |= set(spread(rest, HISTORY_POINTS - len(shown)))
    study.shown = frozenset(shown)
    return f"from {len(study.shown):,} of {len(trials):,} {noun}"


def _kept(study: optuna.Study, trials: list[FrozenTrial], spec: Study, corners: bool) -> set[int]:
    """The numbers of the ``trials`` a sample draws whatever it holds, at most
    :data:`HISTORY_POINTS`: the best trials (the Pareto front as katuna's tables show it, where
    the study has several objectives: :func:`~functions.core.pareto_search.pareto_front`, where
    Optuna's takes seconds for three objectives at 20,000 trials; else each completed trial
    better than every one before it, the best trial the last of them), spread evenly along the
    front or over the improvements where they are more, both ends (the first improvement and
    the best) among them; with ``corners``, the trial before each of those and the last too,
    where the optimization history's best-so-far line turns and ends, so a sample draws that
    line as it is, or as it is at the improvements drawn."""
    if spec.multi_objective:
        scored = [(t.number, t.values) for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values]
        return set(spread(pareto_front(spec, scored), HISTORY_POINTS))
    better = operator.lt if study.direction == optuna.study.StudyDirection.MINIMIZE else operator.gt
    best: float | None = None
    improvements: list[tuple[int, ...]] = []
    for before, trial in zip([None, *trials], trials, strict=False):
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        if value is None or (best is not None and not better(value, best)):
            continue
        best = value
        improvements.append((trial.number, before.number) if corners and before else (trial.number,))
    room = (HISTORY_POINTS - 1) // 2 if corners else HISTORY_POINTS
    kept = {number for numbers in spread(improvements, room) for number in numbers}
    return kept | {trials[-1].number} if corners else kept
