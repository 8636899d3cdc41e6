"""The study page's charts: Optuna's own visualizations of the study in katuna's Optuna storage.

Each chart is a plotly figure built server-side by :mod:`optuna.visualization` and sent to the
page as plotly JSON, which the page draws with plotly.js (the bundle the ``plotly`` package ships).
plotly writes strict JSON: a NaN or infinite value is ``null``, which plotly.js draws as a gap.
The dashboard imports this module on the first chart request, so workers start without it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import plotly.io
from optuna import visualization as vis
from optuna.trial import FrozenTrial

from functions.core.optuna_compat import color_scale, parallel_coordinate_info
from functions.core.parameters import Parameter
from functions.core.records import StudyRecord
from functions.core.space import shown_trials

KINDS = ("history", "parallel", "slice", "contour", "importance", "intermediate", "pareto")
CONTOUR_TRIALS = 300
"""A contour's grid has a row and a column per distinct value: beyond this many completed trials
it is drawn from an even sample of them (the best included), and says so."""

NOT_STARTED = "the study has not started: no trial was suggested yet"

_PLOTTING = threading.Lock()
"""Held while a figure is built and written out. Optuna's visualization package is imported on
first use and imports itself circularly; two threads first using it at once (a fresh worker
asked for every chart of a page) could see it half loaded and answer 500. The warnings filter
is process-wide too. Building is pure Python under the GIL: one at a time costs no throughput."""


class NoChart(Exception):
    """The chart cannot be drawn for this study yet; the message says why."""


class _ReadOnlyStudy(optuna.Study):
    """The study as the charts read it: trials without Optuna's defensive deep copies, which cost
    seconds at 10,000 trials (the visualizations only read them); for the Pareto front, only its
    own, from number ``own_from`` on (the known results of a warm start come first, and the
    front katuna shows is of the study's own trials). The other charts take every trial:
    Optuna's history and its kin index their values by trial number."""

    own_from = 0

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        trials = super().get_trials(deepcopy=False, states=states)
        return trials if not self.own_from else [t for t in trials if t.number >= self.own_from]


def figure_json(storage: optuna.storages.BaseStorage | None, record: StudyRecord, kind: str,
                params: Sequence[str] = (), objective: int = 0) -> str:
    """The plotly JSON of one chart from ``storage`` (None where Optuna has no such study yet);
    ``NoChart`` when the study cannot have it (yet). A slice or contour is drawn for ``params``,
    names of the study's parameters (:func:`~functions.adapters.web.ui.chart_params` picks them
    from a request), else its first two."""
    if kind not in KINDS:
        raise NoChart(f"unknown chart {kind!r}; one of {', '.join(KINDS)}")
    if storage is None:
        raise NoChart(NOT_STARTED)
    try:
        study = _ReadOnlyStudy(study_name=record.name, storage=storage)
    except KeyError as exc:
        raise NoChart(NOT_STARTED) from exc
    study.own_from = known_results(record) if kind == "pareto" else 0
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise NoChart("no completed trial yet")
    spec = record.spec
    study = _with_values(study, spec.parameters)
    index = min(max(objective, 0), len(spec.objectives) - 1)
    target, name = _target(index), spec.objectives[index].metric
    known = [p.name for p in spec.parameters]
    chosen = list(params) or known[:2]
    with _PLOTTING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fig = _build(study, kind, spec.multi_objective, target, name, chosen, [o.metric for o in spec.objectives])
        except (ValueError, RuntimeError) as exc:
            raise NoChart(str(exc)) from exc
        return _serialized(fig, kind)


def _serialized(fig, kind: str) -> str:
    """The figure's plotly JSON, titled by the page rather than by Optuna."""
    # The page titles each chart; parallel coordinates need room above for their axis labels.
    top = {"parallel": 80, "contour": 40}.get(kind, 30)
    margin = {"l": 60, "r": 40, "t": top, "b": 50}
    if isinstance(fig, dict):
        fig["layout"] = {"margin": margin}
        return plotly.io.to_json(fig, validate=False)
    if kind != "contour":
        fig.update_layout(title=None)
    fig.update_layout(margin=margin, template="plotly_white")
    return fig.to_json()


def known_results(record: StudyRecord) -> int:
    """How many known results of a warm start come before the study's own trials in Optuna's
    storage: those given inline and those taken from an earlier study."""
    warm = record.spec.warm_start
    return 0 if warm is None else len(warm.trials) + len(record.warm_results or ())


def _with_values(study: _ReadOnlyStudy, parameters: tuple[Parameter, ...]) -> _ReadOnlyStudy:
    """``study`` itself, or where a parameter is normal (its sampler holds quantiles), an
    in-memory copy whose trials hold the values the trials received."""
    trials = study.get_trials(deepcopy=False)
    shown = shown_trials(trials, parameters)
    if shown is trials:
        return study
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name=study.study_name, directions=study.directions)
    copy = _ReadOnlyStudy(study_name=study.study_name, storage=storage)
    copy.add_trials(shown)
    return copy


def _target(index: int) -> Callable[[FrozenTrial], float]:
    return lambda trial: trial.values[index]


def _build(study: optuna.Study, kind: str, multi: bool, target, name: str, params: list[str], metrics: list[str]):
    """Optuna's figure for ``kind``; multi-objective studies chart the chosen objective."""
    one = {"target": target, "target_name": name} if multi else {"target_name": name}
    if kind == "history":
        return vis.plot_optimization_history(study, **one)
    if kind == "parallel":
        return _parallel_coordinates(study, **one)
    if kind == "slice":
        return vis.plot_slice(study, params=params, **one)
    if kind == "contour":
        if len(params) < 2:
            raise NoChart("a contour needs two parameters")
        sample, total = _sample(study, CONTOUR_TRIALS)
        fig = vis.plot_contour(sample, params=params[:2], **one)
        note = f"from {CONTOUR_TRIALS} of {total} completed trials" if sample is not study else None
        return fig.update_layout(title={"text": note, "font": {"size": 12}} if note else None)
    if kind == "importance":
        from optuna.importance import PedAnovaImportanceEvaluator  # optuna.importance loads scikit-learn: seconds

        return vis.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), **one)
    if kind == "intermediate":
        if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            raise NoChart("no intermediate values: the study reports none (it has no early stopping)")
        return vis.plot_intermediate_values(study)
    if not multi:
        raise NoChart("a Pareto front needs two or more objectives")
    if len(metrics) > 3:
        raise NoChart(f"a Pareto front is drawn for 2 or 3 objectives, and this study has {len(metrics)}: the table "
                      "lists its front")
    return vis.plot_pareto_front(study, target_names=metrics)


def _sample(study: optuna.Study, limit: int) -> tuple[optuna.Study, int]:
    """``study`` itself when it has at most ``limit`` completed trials, else an in-memory copy
    holding ``limit`` of them spread evenly over the study (its best trials among them)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) <= limit:
        return study, len(complete)
    best = {t.number for t in study.best_trials}
    chosen = [t for t in complete if t.number in best][:limit]
    rest = [t for t in complete if t.number not in best]
    step = len(rest) / (limit - len(chosen))
    chosen += [rest[int(i * step)] for i in range(limit - len(chosen))]
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(chosen)
    return copy, len(complete)


def _parallel_coordinates(study: optuna.Study, **target) -> dict[str, Any]:
    """Optuna's parallel-coordinate data (log axes, categories, missing values, Pareto ranks)
    drawn as one plotly ``parcoords`` trace: axes that brush ranges and that the page can hide.

    Optuna 5 draws this chart as one line trace per trial, which cannot brush and grows heavy
    with thousands of trials; the data it prepares is the same either way. The figure is plain
    plotly JSON: plotly's Python-side validation of 10,000-value arrays would take seconds.
    """
    info = parallel_coordinate_info(study, target.get("target"), target["target_name"])
    dimensions = [
        {"label": d.label, "values": list(d.values), "range": list(d.range)}
        | ({"tickvals": list(d.tickvals), "ticktext": list(d.ticktext)} if d.tickvals else {})
        for d in info.dims_objectives + info.dims_params
    ]
    colors = color_scale()
    scale = [[i / (len(colors) - 1), color] for i, color in enumerate(colors)]
    line = {"color": list(info.color_values), "colorscale": scale, "reversescale": info.reverse_scale,
            "showscale": True, "colorbar": {"title": {"text": info.colorbar_title}}}
    return {"data": [{"type": "parcoords", "dimensions": dimensions, "line": line}]}
