"""How many values Optuna's storage holds for one study, against ``KATUNA_MAX_HISTORY_CELLS``.

A process serving a study (its next suggestion, a pruning decision) first loads the study's
whole Optuna history, and what that costs grows with each trial's values as much as with its
trials: a parameter's value takes about 0.7 KB loaded, so 4,000 trials of 256 parameters took
1.3 s of CPU and 680 MB, where ``KATUNA_MAX_HISTORY`` (a count of trials) let them all in. So a
study is also refused at submission when the values its history may hold would go past the
limit: each of its ``maxTrials`` trials holds its parameters and objective values, and with
``earlyStopping`` its intermediate values too, and a warm start's known results hold their
parameters and objective values. A restarted study (a raised budget, an edited resource) counts
what its history holds already, a journal record a value, and the trials it may add.

A trial's intermediate values are bounded by its study's share of the limit: with
``earlyStopping``, each trial keeps as many steps as the limit leaves each of the study's
``maxTrials`` trials, at most :data:`~functions.core.metrics.MAX_STEPS` and at least
:data:`MIN_STEPS` (a study whose trials would keep fewer is refused). A study without
``maxTrials`` (ended by ``timeBudget``, a goal or the grid) runs at most the trials that fit
(:mod:`functions.core.trial_cap`, :func:`most_trials`), each keeping its share of them alike.
"""

from __future__ import annotations

from functions.core.errors import Problem
from functions.core.history import named_studies
from functions.core.limits import PREFIX
from functions.core.metrics import MAX_STEPS
from functions.core.parameters import CategoricalParameter, DiscreteParameter, Parameter
from functions.core.spec import Study

MIN_STEPS = 100
"""The fewest intermediate values each trial of a study with ``earlyStopping`` keeps: an epoch a
step, a hundred epochs is a long training, and a rule judging fewer steps than a trial reports
would stop judging it partway. A study whose trials the limit would leave fewer is refused."""

VALUE_BYTES = 700
"""About what one value of a study's history takes in a process that loaded it, a parameter's
being the costliest (680 MB for 4,000 trials of 256 parameters; an intermediate value about a
tenth of that): ``benchmarks/history_load.py``."""

CHOICES_PER_VALUE = 8
"""The choices of a categorical or discrete parameter that take as much loaded as one value:
Optuna stores a trial's value of such a parameter with its distribution, the whole list of
choices, and a process that loads the history holds a list of its own for each trial (about 90
bytes a choice: 2,000 trials of one categorical of 10,000 choices took 1.8 GB loaded, and 380 MB
in the database). Counted so, that parameter's value counts 1,251 values and such a study holds
about 400 trials, where counted as one value it was admitted 100,000 (``KATUNA_MAX_HISTORY``)
and the load of its 2,300th passed 2 GB whatever its algorithm."""


def trial_values(spec: Study) -> int:
    """The values one trial of the study holds besides its intermediate values: its parameters
    and its objective values (a known result of a warm start holds as many), a parameter of a
    list of values counting its choices too (:func:`parameter_values`)."""
    return sum(map(parameter_values, spec.parameters)) + len(spec.objectives)


def parameter_values(parameter: Parameter) -> int:
    """The values one trial's value of ``parameter`` counts for in the history: one, and for a
    parameter of a list of values (categorical, discrete) one more for each
    :data:`CHOICES_PER_VALUE` of its choices, which Optuna stores with every trial's value."""
    if isinstance(parameter, CategoricalParameter | DiscreteParameter):
        return 1 + len(parameter.values) // CHOICES_PER_VALUE
    return 1


def steps_kept(spec: Study, limit: int, known: int = 0, cap: int | None = None) -> int:
    """The intermediate values each trial of the study stores (and its rule judges) at most,
    under a limit of ``limit`` values, ``known`` of the study's trials known results of its warm
    start: none without ``earlyStopping``; the limit's share of each of ``maxTrials`` trials
    (``cap`` for a study without it), from :data:`MIN_STEPS` to
    :data:`~functions.core.metrics.MAX_STEPS` (that most for a study stored with neither)."""
    return _steps(spec, spec.max_trials if spec.max_trials is not None else cap, limit, known)


def _steps(spec: Study, trials: int | None, limit: int, known: int) -> int:
    """:func:`steps_kept` of the study were its ``maxTrials`` ``trials``."""
    if spec.early_stopping is None:
        return 0
    if trials is None:
        return MAX_STEPS
    width = trial_values(spec)
    share = (limit - known * width) // max(trials, 1) - width
    return min(MAX_STEPS, max(MIN_STEPS, share))


def cells_problem(spec: Study, limit: int, held: int = 0, made: int = 0, known: int = 0) -> Problem | None:
    """Why the study's history, holding ``held`` values, would go past ``limit`` values once
    its trials beyond the ``made`` it has finished (0 for a new study; one still running may add
    intermediate values, so it counts as one to come) and its ``known`` results of a warm start
    are in it; None when it fits. At ``maxTrials``, with the largest ``maxTrials`` that fits; a
    study without ``maxTrials`` is refused when not one trial more fits (it runs the trials that
    do: :mod:`functions.core.trial_cap`)."""
    if spec.max_trials is None:
        if most_trials(spec, limit, held, made, known, made + 1) > made:
            return None
        return Problem("maxTrials", f"{_limited(limit)}, and {_no_room(spec, limit, held, made, known)}{_cost(limit)}")
    if _fits(spec, spec.max_trials, limit, held, made, known):
        return None
    most = most_trials(spec, limit, held, made, known, spec.max_trials)
    asked = _asked(spec, trial_values(spec) + steps_kept(spec, limit, known), held, made, known)
    return Problem("maxTrials", f"{_limited(limit)}, and {asked}{_cost(limit)}. {_advice(spec, most, made)}")


def steps_problem(spec: Study, limit: int, known: int = 0, cap: int | None = None) -> Problem | None:
    """Why the study's early-stopping rule would never judge a trial: it judges one at a count of
    steps (:meth:`~functions.core.early_stopping.EarlyStopping.judged_at`, medianstop's
    ``start_step``) past the steps each trial keeps (:func:`steps_kept`, with ``cap`` as there),
    so every trial would run to its end unjudged; None when it judges within them."""
    judged = spec.early_stopping.judged_at() if spec.early_stopping is not None else None
    kept = steps_kept(spec, limit, known, cap)
    share = f"its share of the {limit:,} values {PREFIX}MAX_HISTORY_CELLS allows" if kept < MAX_STEPS else \
        f"{MAX_STEPS:,} at most"
    if judged is None or judged <= kept:
        return _rungs_problem(spec, kept, share)
    return Problem("earlyStopping.settings.start_step",
                   f"expected at most {kept:,}, the steps each trial of this study keeps ({share}): the rule judges "
                   f"a trial at its start_step-th step, which no trial would reach, so none would ever be stopped; "
                   f"got {judged:,}")


def _rungs_problem(spec: Study, kept: int, share: str) -> Problem | None:
    """Why Hyperband, its ``max_resource`` a number, would never judge a trial at some of its
    rungs: a rung below it past the steps each trial keeps (``kept``, ``share`` saying why), where
    every report is the next step (``metricsCollector.steps: reports``, as a Katib Experiment
    counts them), so no trial's step reaches that rung; None where every rung is kept (or steps
    are named, which may go past the count kept)."""
    rungs = spec.early_stopping.rungs() if spec.early_stopping is not None else ()
    past = [rung for rung in rungs if rung > kept]
    if not past or spec.metrics_collector.steps != "reports":
        return None
    most = dict(spec.early_stopping.settings)["max_resource"] if spec.early_stopping is not None else 0
    return Problem("earlyStopping.settings.max_resource",
                   f"expected at most {past[0]:,}, the first of Hyperband's rungs past the {kept:,} steps each trial "
                   f"of this study keeps ({share}): each report is the next step, so no trial would reach the rungs "
                   f"at steps {', '.join(f'{rung:,}' for rung in past)} and none would be stopped there; got {most:,}")


def _fits(spec: Study, trials: int, limit: int, held: int, made: int, known: int) -> bool:
    """Whether the history fits under ``limit`` were the study's ``maxTrials`` ``trials``."""
    per = trial_values(spec) + _steps(spec, trials, limit, known)
    return held + known * trial_values(spec) + max(trials - made, 0) * per <= limit


def most_trials(spec: Study, limit: int, held: int, made: int, known: int, upper: int) -> int:
    """The largest ``maxTrials`` up to ``upper`` whose history fits under ``limit``, with
    ``held``, ``made`` and ``known`` as :func:`cells_problem` takes them: from ``made`` (no trial
    more fits) up."""
    if upper <= made or _fits(spec, upper, limit, held, made, known):
        return max(upper, made)
    fits, too_many = made, upper
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if _fits(spec, middle, limit, held, made, known) else (fits, middle)
    return fits


def cells_warning(over: list[tuple[str, int]], count: int, limit: int) -> str | None:
    """What to tell the operator of a database in which studies' histories hold more values
    than ``limit`` already (stored before the limit was lowered): ``count`` of them, the largest
    ``over`` (``(name, values)``, largest first), and what becomes of them; None when there are
    none. Such a study is served on: it runs to its ``maxTrials`` (or the cap it was admitted
    with), its trials with ``earlyStopping`` keep the steps the limit leaves each now (at least
    :data:`MIN_STEPS`), and a restart or an edit that adds trials is refused."""
    if not over:
        return None
    name, held = over[0]
    load = f"{_megabytes(held)}{' for the largest' if count > 1 else ''}"
    fate = (f"served on: each worker that serves one loads its whole history first ({load}); a running one runs on to "
            "its maxTrials (or the cap it was admitted with), its trials with earlyStopping keeping only the steps the "
            f"limit leaves each (at least {MIN_STEPS}); a restart or an edit that would add trials is refused")
    if count == 1:
        return (f"the study {name!r} holds {held:,} values in its Optuna history, past {PREFIX}MAX_HISTORY_CELLS "
                f"({limit:,}), and is {fate}")
    return (f"{count:,} studies hold more values in their Optuna history than {PREFIX}MAX_HISTORY_CELLS ({limit:,}): "
            f"{named_studies(over, count)}; they are {fate}")


def _megabytes(values: int) -> str:
    """About what ``values`` values take loaded, in words: never "about 0 MB"."""
    size = values * VALUE_BYTES / 1e6
    return "under a megabyte" if size < 0.5 else f"about {size:,.0f} MB"


def _limited(limit: int) -> str:
    return f"a study's Optuna history holds at most {limit:,} values (set by {PREFIX}MAX_HISTORY_CELLS)"


def _cost(limit: int) -> str:
    return (": every process that serves the study first loads its whole history, whose values take up to about "
            f"{limit * VALUE_BYTES / 1e6:,.0f} MB at the limit")


def _asked(spec: Study, per: int, held: int, made: int, known: int) -> str:
    """What the study would put in its history, in words."""
    trials = spec.max_trials or 0
    parts = [_counted(len(spec.parameters), "parameter"), _counted(len(spec.objectives), "objective value")]
    choices = sum(map(parameter_values, spec.parameters)) - len(spec.parameters)
    if choices:
        parts.insert(1, f"{choices:,} for the choices of its categorical and discrete parameters, one for every "
                        f"{CHOICES_PER_VALUE} of them, which Optuna stores with each trial's value")
    if spec.early_stopping is not None:
        parts.append(f"{_counted(per - trial_values(spec), 'intermediate value')} for earlyStopping")
    each = f"of {per:,} values each ({', '.join(parts)})"
    warm = f" and take {_counted(known, 'known result')} (warmStart)" if known else ""
    if made:
        return (f"this study, with maxTrials {trials:,} after {_counted(made, 'finished trial')}, holds {held:,} values and "
                f"may add {_counted(max(trials - made, 0), 'trial')} {each}{warm}")
    holds = f"this study's holds {held:,} and it" if held else "this study"
    return f"{holds} may create {_counted(trials, 'trial')} (maxTrials) {each}{warm}"


def _no_room(spec: Study, limit: int, held: int, made: int, known: int) -> str:
    """What leaves a study without ``maxTrials`` no room for one trial more, in words."""
    per = trial_values(spec) + _steps(spec, made + 1, limit, known)
    warm = f"takes {_counted(known, 'known result')} (warmStart) of {trial_values(spec):,} values each" if known else ""
    if not held and not warm:
        return f"not one trial of this study, of {per:,} values, fits"
    subject = " and it ".join(part for part in (f"this study's holds {held:,}" if held else "", warm) if part)
    return f"{subject if held else 'this study ' + subject}, leaving no room for one trial more of {per:,} values"


def _counted(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def _advice(spec: Study, most: int, made: int) -> str:
    shape = _counted(len(spec.parameters), "parameter") + (" with earlyStopping" if spec.early_stopping else "")
    if most <= made:
        return f"No more trials fit for {shape}"
    fewer = "parameters or choices" if trial_values(spec) > len(spec.parameters) + len(spec.objectives) else "parameters"
    return (f"At most {_counted(most, 'trial')} {'fits' if most == 1 else 'fit'} for {shape}: run it as several "
            f"studies (warmStart carries the results of one into the next), or with fewer {fewer}")
