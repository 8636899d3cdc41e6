"""How many trials the Optuna history of a study of ``tpe`` or ``multivariate-tpe`` with three or
more objectives may hold: ``KATUNA_MAX_TPE_HISTORY``.

Optuna's TPE with several objectives takes the best tenth of the completed trials as its good
ones, at every suggestion: by non-domination rank, then, on the rank that does not fit whole,
by a greedy hypervolume subset selection (HSSP) of as many as are still wanted. For two
objectives Optuna has an exact, fast selection; for three or more its cost grows about as the
cube of the trials (CPU seconds of one split, a front of three objectives shaped as
``benchmarks/pareto_front.py``'s: 0.2 at 1,000 trials, 0.9 at 2,000, 4.3 at 4,000, 31 at
8,000; four objectives, all on the front: 2.0 at 1,000, 6.5 at 2,000). katuna asks the sampler
inside the event's write transaction, so past a few thousand trials one suggestion would hold
the database's write lock beyond ``KATUNA_BUSY_TIMEOUT``, and every other writer (other
studies, ``katuna stop``, the dashboard) would fail meanwhile. So such a study is refused at
submission when its history (its ``maxTrials``, with a warm start's known results) would pass
the limit, as one past ``KATUNA_MAX_HISTORY`` is, and one without ``maxTrials`` is capped there
(:mod:`functions.core.trial_cap`). ``nsga2`` (whose selection is a sort), ``nsga3`` (a niching by
reference points, bounded of its own: :mod:`functions.core.nsga3`) and two objectives take the
other limits alone.
"""

from __future__ import annotations

from functions.core.counted import counted
from functions.core.errors import Problem
from functions.core.limits import PREFIX
from functions.core.spec import Study

MAX_TPE_HISTORY = f"{PREFIX}MAX_TPE_HISTORY"
TPE = ("tpe", "multivariate-tpe")
OBJECTIVES = 3
"""The fewest objectives whose TPE split selects by Optuna's costly hypervolume subset selection."""


def bounded(spec: Study) -> bool:
    """Whether the study's history is bounded by ``KATUNA_MAX_TPE_HISTORY``."""
    return spec.algorithm.name in TPE and len(spec.objectives) >= OBJECTIVES


def room(spec: Study, limit: int, held: int, made: int = 0, known: int = 0) -> int | None:
    """The most ``maxTrials`` the study may have under ``limit`` (None where the limit does not
    bound it): its history holds ``held`` trials, ``made`` of them its own, and its warm start
    adds ``known`` results to it."""
    return max(limit - held - known + made, 0) if bounded(spec) else None


def tpe_problem(spec: Study, limit: int, held: int, made: int = 0, known: int = 0) -> Problem | None:
    """Why the study's history would pass ``limit`` (None where it fits, or is not bounded);
    a study without ``maxTrials`` is capped instead, unless not one trial fits."""
    fits = room(spec, limit, held, made, known)
    if fits is None or (spec.max_trials is None and fits > made) or (spec.max_trials is not None
                                                                     and spec.max_trials <= fits):
        return None
    holds = f"holds {counted(held, 'trial', ',')} in its history, {made:,} of them its own, and " if held else ""
    takes = f"takes {counted(known, 'known result', ',')} (warmStart) as trials of its history and " if known else ""
    asked = "not one trial more fits" if spec.max_trials is None else \
        f"this study {holds}{takes}may create {spec.max_trials:,} (maxTrials) where {fits:,} fit"
    return Problem("maxTrials", f"{spec.algorithm.name} of {OBJECTIVES} or more objectives holds at most "
                                f"{counted(limit, 'trial', ',')} in a study's Optuna history (set by {MAX_TPE_HISTORY}), "
                                f"and {asked}: at every suggestion, made in the database's write lock, it selects its "
                                "good trials by a hypervolume subset selection whose cost grows as the cube of the "
                                "trials. Use nsga2 or nsga3, or fewer objectives, for a longer study")
