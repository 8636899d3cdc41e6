"""Early stopping: a study's ``earlyStopping`` section and the Optuna pruner it names.

The pruner is rebuilt for every event (it is cheap to build); Optuna's pruners keep what they
need (intermediate values, rung markers) in the storage, so a fresh one decides as a warm one
would. ``medianstop`` is Katib's rule (:class:`MedianStop`), beside Optuna's own pruners;
``hyperband-medianstop`` (:class:`HyperbandMedianStop`) is both rules at once, as Katib runs a
``hyperband`` Experiment with ``medianstop`` early stopping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from functions.core import hyperband
from functions.core.early_stopping import HYPERBANDS, START_STEP, EarlyStopping
from functions.core.errors import Problem
from functions.core.limits import DEFAULTS, Limits
from functions.core.reader import Reader, join
from functions.core.typed_settings import convert_all, culprit, plain_settings


class MedianStop(optuna.pruners.BasePruner):
    """Katib's median stopping rule, as its early-stopping service and metrics collector apply it.

    Each step is a report of the objective (a Katib Experiment's study counts every report as
    the next step, as Katib's collector does: ``metricsCollector.steps: reports``; a native
    study's lines may name their steps). A trial is judged once, at its ``start_step``-th
    step: it is stopped when its best value so far is worse than the rule's value, the mean
    over completed trials of the average of each one's first ``start_step`` steps. Only trials
    completed before the judged trial started count (Katib gives a trial its rule when it
    creates it), and there is no rule until ``min_trials_required`` of them have completed.

    Reports may be handled in any order, and more than once. Where each report is the next
    step (counted: 1, 2, ...), the report judged (``counted_step``, set for each judgement by
    :func:`build_pruner`) says which: the trial is judged on steps 1 to ``start_step`` alone,
    once all of them are stored, by whichever of them completes the window (a later step
    handled first waits for it), so every order gives the same verdict, and a report handled
    again judges the same window again. Named steps (``counted_step`` None) carry no order:
    the trial is judged when it holds ``start_step`` steps, on those, so a step handled before
    an earlier one takes its place in the judgement.

    NaN is left aside where values are compared or averaged, as Optuna's median pruner leaves it
    aside (and Katib's collector, in the best value so far, leaves aside any NaN but a first
    report's). A trial whose reports at its judged step are all NaN is stopped, as Optuna's
    median pruner stops it: its objective would fail the trial anyway. Katib's comparisons with
    NaN are all false, so Katib lets such a trial run to its end.
    """

    def __init__(self, min_trials_required: int = 3, start_step: int = START_STEP) -> None:
        if min_trials_required < 1:
            raise ValueError(f"min_trials_required must be greater than zero, got {min_trials_required}")
        if start_step < 1:
            raise ValueError(f"start_step must be at least one, got {start_step}")
        self.min_trials_required = min_trials_required
        self.start_step = start_step
        self.counted_step: int | None = None
        """The counted step of the report judged; None where reports name their steps."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        reports = self.judged(trial.intermediate_values)
        if reports is None:
            return False
        rule = self.rule_value(study, trial)
        if rule is None:
            return False
        numbers = [value for value in reports.values() if not math.isnan(value)]
        if not numbers:
            return True
        if study.direction == StudyDirection.MINIMIZE:
            return min(numbers) > rule
        return max(numbers) < rule

    def judged(self, reports: Mapping[int, float]) -> Mapping[int, float] | None:
        """The reports the trial is judged on now; None where it is not judged now. Counted steps:
        steps 1 to ``start_step``, once all are stored and the report judged is one of them.
        Named steps: all of them, once there are ``start_step``."""
        if self.counted_step is None:
            return reports if len(reports) == self.start_step else None
        window = range(1, self.start_step + 1)
        if self.counted_step not in window or any(step not in reports for step in window):
            return None
        return {step: reports[step] for step in window}

    def rule_value(self, study: optuna.Study, trial: FrozenTrial) -> float | None:
        """The mean of the early averages of the trials completed before ``trial`` started, or
        None while fewer than ``min_trials_required`` have."""
        started = trial.datetime_start
        before = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if started is not None and t.datetime_complete is not None and t.datetime_complete <= started]
        averages = [average for average in map(self._early_average, before) if average is not None]
        if len(averages) < self.min_trials_required:
            return None
        return sum(averages) / len(averages)

    def _early_average(self, trial: FrozenTrial) -> float | None:
        """The average of the trial's first ``start_step`` reports that are not NaN; None when
        there are none."""
        values = trial.intermediate_values
        first = [values[step] for step in sorted(values)[:self.start_step] if not math.isnan(values[step])]
        return sum(first) / len(first) if first else None


class HyperbandMedianStop(optuna.pruners.BasePruner):
    """Hyperband (:func:`hyperband.build`) and Katib's median stop (:class:`MedianStop`) at once:
    a trial is pruned when either rule prunes it. Katib runs a ``hyperband`` Experiment's
    ``medianstop`` early stopping beside its Hyperband, and Optuna has no pruner of two rules.
    Both are asked at every report, since Hyperband records each rung a trial passes."""

    def __init__(self, min_resource: int = 1, max_resource: str | int = "auto", reduction_factor: int = 3,
                 bootstrap_count: int = 0, min_trials_required: int = 3, start_step: int = START_STEP) -> None:
        self.median = MedianStop(min_trials_required, start_step)
        self.rules = (hyperband.build(min_resource=min_resource, max_resource=max_resource,
                                      reduction_factor=reduction_factor, bootstrap_count=bootstrap_count),
                      self.median)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return any([rule.prune(study, trial) for rule in self.rules])


REGISTRY: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "medianstop": MedianStop,
    "hyperband-medianstop": HyperbandMedianStop,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "asha": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
}
PATH = "earlyStopping"


def parse_early_stopping(r: Reader, data: Any, n_objectives: int, limits: Limits = DEFAULTS) -> EarlyStopping | None:
    """The ``earlyStopping`` section, its settings converted to the types the pruner takes, or
    None; problems go to ``r``. Hyperband's settings are checked here (Optuna checks most of
    them only at its first ``prune``), and the pruner is built once, so that settings it
    refuses are problems of the submission."""
    if data is None:
        return None
    before = r.found
    item = r.mapping(data, PATH, {"algorithm", "settings", "patience"})
    algorithm = r.get(item, "algorithm", PATH, "str", required=True)
    settings: Mapping[str, Any] = r.get(item, "settings", PATH, "mapping") or {}
    if algorithm is not None and algorithm not in REGISTRY:
        r.fail(join(PATH, "algorithm"), f"unknown algorithm {algorithm!r}; expected one of {', '.join(REGISTRY)}")
    elif algorithm is not None:
        accepted = plain_settings(REGISTRY[algorithm], set())
        for key in settings:
            if key not in accepted:
                r.fail(f"{PATH}.settings.{key}", f"not a setting of {algorithm!r}; expected one of: {', '.join(sorted(accepted))}")
        settings, wrong = convert_all({k: v for k, v in settings.items() if k in accepted}, accepted,
                                      f"{PATH}.settings", limits.setting)
        r.add(wrong)
    settled = algorithm in REGISTRY and r.found == before
    patience = r.get(item, "patience", PATH, "int")
    if patience is not None and not 0 <= patience <= limits.setting:
        r.fail(join(PATH, "patience"), f"expected an integer from 0 to {limits.setting:,}, got {patience}")
    if n_objectives > 1:
        r.fail(PATH, "early stopping needs a single objective")
    early_stopping = EarlyStopping(algorithm or "median", tuple(sorted(settings.items())), patience)
    checked = settled and algorithm in HYPERBANDS
    found = hyperband.problems(settings, f"{PATH}.settings") if checked else []
    r.add(found or (_refusals(early_stopping) if settled else []))
    return early_stopping


def _refusals(early_stopping: EarlyStopping) -> list[Problem]:
    """What Optuna refuses in the pruner's settings. It raises at the first setting it refuses,
    so the pruner is built again without each setting refused, until it takes the rest; a
    refusal the removal itself causes (a required setting missing, a default that clashes with
    another setting: its message names a removed one) ends the search, and is not reported."""
    found: list[Problem] = []
    settings = dict(early_stopping.settings)
    while (refused := _refused(early_stopping.algorithm, tuple(settings.items()))) is not None:
        problem, error = refused
        removed = set(dict(early_stopping.settings)) - set(settings)
        if found and (isinstance(error, TypeError) or any(name in str(error) for name in removed)):
            break
        found.append(problem)
        setting = problem.path.removeprefix(f"{PATH}.settings").removeprefix(".")
        if setting not in settings:
            break
        del settings[setting]
    return found


def _refused(algorithm: str, settings: tuple[tuple[str, Any], ...]) -> tuple[Problem, Exception] | None:
    """The problem of the pruner ``algorithm`` refusing these settings, with the error it
    raised, if it refuses them."""
    try:
        build_pruner(EarlyStopping(algorithm, settings))
    except (TypeError, ValueError) as exc:
        by = "Katib's medianstop rule" if algorithm == "medianstop" else "Optuna"
        return culprit(exc, plain_settings(REGISTRY[algorithm], set()), f"{PATH}.settings", by), exc
    return None


AUTO_RESOURCE = "katuna:auto_resource"
"""The Optuna study's system attribute holding its pruner's ``auto`` resource, once resolved."""

_AUTO = {**dict.fromkeys(HYPERBANDS, ("max_resource", lambda longest: longest + 1)),
         "asha": ("min_resource", lambda longest: max(longest // 100, 1))}
"""The setting of each pruner that ``auto`` (its default) leaves to Optuna, and the value Optuna
gives it from the longest completed trial's last step at its first judgement after one completed."""


def auto_resource(early_stopping: EarlyStopping, completed: Iterable[FrozenTrial]) -> dict[str, int] | None:
    """The resource ``early_stopping`` leaves ``auto``, resolved from the ``completed`` trials as
    Optuna resolves it; None when it leaves none, or none has completed yet. Optuna resolves it
    once, in a pruner that lives as long as its ``optimize``; katuna builds the pruner for every
    report, so the value is kept with the study (:data:`AUTO_RESOURCE`) and given to every
    pruner built after: otherwise Hyperband's brackets, and so every running trial's, would move
    each time a longer trial completed."""
    name = auto_setting(early_stopping)
    if name is None:
        return None
    steps = [t.last_step for t in completed if t.state == TrialState.COMPLETE and t.last_step is not None]
    return {name: _AUTO[early_stopping.algorithm][1](max(steps))} if steps else None


def auto_setting(early_stopping: EarlyStopping) -> str | None:
    """The setting ``early_stopping`` leaves ``auto``, if one."""
    found = _AUTO.get(early_stopping.algorithm)
    if found is None or dict(early_stopping.settings).get(found[0], "auto") != "auto":
        return None
    return found[0]


def build_pruner(early_stopping: EarlyStopping, resolved: Mapping[str, int] | None = None,
                 counted_step: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner of ``early_stopping``, its ``auto`` resource as ``resolved``
    (:func:`auto_resource`), Hyperband's kept from pruning a trial that has run its full budget
    (:mod:`hyperband`), wrapped in Optuna's patience when one is given. ``counted_step`` is the
    step of the report it judges where each report is the next step: Katib's median stop then
    judges its window whatever order the reports come in (:class:`MedianStop`); Optuna's
    pruners, and Hyperband beside the median stop, see every step as ever."""
    factory = hyperband.build if early_stopping.algorithm == "hyperband" else REGISTRY[early_stopping.algorithm]
    pruner = factory(**{**dict(early_stopping.settings), **(resolved or {})})
    median = pruner.median if isinstance(pruner, HyperbandMedianStop) else pruner
    if isinstance(median, MedianStop):
        median.counted_step = counted_step
    if early_stopping.patience is not None:
        pruner = optuna.pruners.PatientPruner(pruner, patience=early_stopping.patience)
    return pruner
