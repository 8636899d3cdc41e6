"""TPE's ``n_ei_candidates`` against the history it scores them on.

At every suggestion, made in the database's write lock, Optuna's TPE (multivariate by default
since Optuna 5) scores each of its ``n_ei_candidates`` samples against every trial of the
study's history in every parameter, holding a few arrays of candidates x trials x parameters
floats at once: about 25 bytes a cell at the peak (1,000 candidates over 10,000 trials of four
parameters added 990 MB; over 100,000 trials, or 1,876 of 256 parameters, it asked for 3 to 3.6
GB in one array and failed). :data:`~functions.core.sampler_settings.EI_CANDIDATES` bounds the setting
alone, which does not bound that product, so a study of ``tpe`` or ``multivariate-tpe`` is
refused at submission, naming the setting, when its candidates times the trials its history may
hold (its ``maxTrials``, else the most its limits let it run, with its warm start's known
results) times its parameters would pass :data:`CANDIDATE_CELLS`. Optuna's default of 24 stays
within it under the default limits, whose ``KATUNA_MAX_HISTORY_CELLS`` bounds trials times
parameters to 500,000.
"""

from __future__ import annotations

from functions.core.errors import Problem
from functions.core.history_cells import trial_values
from functions.core.limits import Limits
from functions.core.spec import Study

TPE = ("tpe", "multivariate-tpe")
DEFAULT_CANDIDATES = 24
"""Optuna's ``n_ei_candidates`` where a study gives none."""

CANDIDATE_CELLS = 32_000_000
"""Candidates x trials x parameters of one suggestion at most: about 0.8 GB at the peak, which
leaves room under a 2 GiB service for the history a process holds loaded (up to about 460 MB)."""


def history_trials(study: Study, limits: Limits) -> tuple[int, int]:
    """The most trials of its own the study's history may hold (its ``maxTrials``, else the
    fewest its limits let it run) and the known results of its warm start it holds beside them
    (as many as a study's may give where it takes them from a study named)."""
    warm = study.warm_start
    known = 0 if warm is None else limits.warm_start if warm.study else len(warm.trials)
    if study.max_trials is not None:
        return study.max_trials, known
    return min(limits.trials, limits.history, limits.history_cells // trial_values(study)), known


def candidate_problems(study: Study, limits: Limits) -> list[Problem]:
    """Why one suggestion of the study's TPE would score more than :data:`CANDIDATE_CELLS`
    candidate values at once (none for another algorithm)."""
    if study.algorithm.name not in TPE or not study.parameters:
        return []
    settings = dict(study.algorithm.settings)
    candidates = settings.get("n_ei_candidates") or DEFAULT_CANDIDATES
    own, known = history_trials(study, limits)
    trials, width = own + known, len(study.parameters)
    cells = candidates * trials * width
    if cells <= CANDIDATE_CELLS:
        return []
    given = "" if "n_ei_candidates" in settings else f" (Optuna's default, {DEFAULT_CANDIDATES})"
    held = "its maxTrials" if study.max_trials is not None else "the most its limits let it run"
    most, fit = CANDIDATE_CELLS // (trials * width), CANDIDATE_CELLS // (candidates * width) - known
    advice = " or ".join([*([f"at most {most:,} candidates"] if most else []),
                          *([f"a maxTrials of at most {fit:,}"] if fit > 0 else []), "fewer parameters"])
    return [Problem("algorithm.settings.n_ei_candidates",
                    f"TPE scores its {candidates:,} candidates{given} against every trial of the study's history, up "
                    f"to {trials:,} ({held}, with its warm start's known results), in each of its {width:,} "
                    f"parameters at every suggestion, made in the database's write lock: {cells:,} values at once, "
                    f"about {cells * 25 / 1e9:.1f} GB; expected at most {CANDIDATE_CELLS:,}: {advice}")]
