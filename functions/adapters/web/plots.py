"""The study page's charts: Optuna's own visualizations of the study in katuna's Optuna storage.

Each chart is a plotly figure built server-side by :mod:`optuna.visualization` (or, where Optuna's
costs too much for a large study, by katuna as Optuna's looks: the optimization history, parallel
coordinates, the Pareto front in :mod:`~functions.adapters.web.pareto_chart`, the intermediate
values in :mod:`~functions.adapters.web.intermediate_chart`) and sent to the
page as plotly JSON, which the page draws with plotly.js (the bundle the ``plotly`` package ships).
plotly writes strict JSON: a NaN or infinite value is ``null``, which plotly.js draws as a gap.
The dashboard imports this module on the first chart request, so workers start without it.

plotly.js reads a chart's text (titles, tick labels, hover text) as a little HTML: ``<a href>``
is a link to anywhere, ``<b>`` and ``<span style>`` restyle, ``&amp;`` is ``&``. A parameter's
name, a categorical parameter's values and a metric's name are the study author's text (or,
for a study that follows a Katib Experiment, of whoever may create one in the namespace), so
they reach the charts with ``<``, ``>`` and ``&`` written as entities, and show as written.
"""

from __future__ import annotations

import copy
import html
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import plotly.io
from optuna import visualization as vis
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial

from functions.adapters.web.chart_kinds import CHARTS
from functions.adapters.web.chart_samples import ReadOnlyStudy, sample, thinned
from functions.adapters.web.intermediate_chart import intermediate_figure
from functions.adapters.web.pareto_chart import pareto_figure
from functions.core.application import HistoryCut
from functions.core.optuna_compat import color_scale, optimization_history, parallel_coordinate_info
from functions.core.parameters import CategoricalParameter, Parameter
from functions.core.records import StudyRecord
from functions.core.space import shown_trials
from functions.core.spec import MINIMIZE, Study, known_results

CONTOUR_TRIALS = 300
"""A contour's grid has a row and a column per distinct value: beyond this many completed trials
it is drawn from an even sample of them (the best included), and says so."""
PARALLEL_VALUES = 100_000
"""Values parallel coordinates draw: an axis per parameter and one for the objective, a value on
each for every completed trial (4,000 trials of 256 parameters made 20 MB of JSON for the page).
Beyond this many the chart is drawn from an even sample of the trials (the best included), and
says so: about 2 MB."""
NOTE_LINE = 32
"""Pixels of top margin a line of a chart's note (a sample's, a cut history's) takes: plotly
sets a title's first line on the middle of the top margin, so a line of 16 takes twice that."""

PARALLEL_RIGHT = 120
"""Pixels of right margin parallel coordinates take: their colour bar, set :data:`BAR_GAP` clear
of the last axis, and its ticks and title. plotly would widen a margin too narrow for the bar,
but not for the last axis' range labels, centred on it, which reached into the bar's column."""
BAR_GAP = 40
"""Pixels between the last axis of parallel coordinates and their colour bar: room for half of
the axis' widest range label (``-1.6519``), which is centred on the axis."""

NOT_STARTED = "the study has not started: no trial was suggested yet"

_PLOTTING = threading.Lock()
"""Held while a figure is built and written out. Optuna's visualization package is imported on
first use and imports itself circularly; two threads first using it at once (a fresh worker
asked for every chart of a page) could see it half loaded and answer 500. The warnings filter
is process-wide too. Building is pure Python under the GIL: one at a time costs no throughput."""


class NoChart(Exception):
    """The chart cannot be drawn for this study yet; the message says why."""


def figure_json(storage: optuna.storages.BaseStorage | None, record: StudyRecord, kind: str,
                params: Sequence[str] = (), objective: int = 0, cut: HistoryCut | None = None) -> str:
    """The plotly JSON of one chart from ``storage`` (None where Optuna has no such study yet);
    ``NoChart`` when the study cannot have it (yet). A slice or contour is drawn for ``params``,
    names of the study's parameters (:func:`~functions.adapters.web.ui._charts.chart_params` picks them
    from a request), else its first two. ``cut``: the storage holds only the study's first trials
    (:data:`~functions.core.history.CHART_CELLS`), which the chart's note says."""
    if kind not in CHARTS:
        raise NoChart(f"unknown chart {kind!r}; one of {', '.join(CHARTS)}")
    if storage is None:
        raise NoChart(NOT_STARTED)
    try:
        study = ReadOnlyStudy(study_name=record.name, storage=storage)
    except KeyError as exc:
        raise NoChart(NOT_STARTED) from exc
    spec = record.spec
    study = _as_shown(study, spec.parameters, as_text=kind != "parallel")
    study.own_from = len(known_results(spec, record.warm_results)) if kind == "pareto" else 0
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise NoChart("no completed trial yet")
    index = min(max(objective, 0), len(spec.objectives) - 1)
    known = [p.name for p in spec.parameters]
    chosen = [_as_text(name) for name in list(params) or known[:2]]
    with _PLOTTING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fig, sampled = _build(study, kind, spec, index, chosen)
        except (ValueError, RuntimeError) as exc:
            raise NoChart(str(exc)) from exc
        return _serialized(fig, kind, [note for note in (sampled, _cut_note(cut)) if note])


def _cut_note(cut: HistoryCut | None) -> str | None:
    """What a chart drawn from a cut history says of it, and where the rest is."""
    if cut is None:
        return None
    return (f"the study's first {cut.trials:,} of {cut.held:,} trials: a chart reads {cut.cells:,} values at most"
            "<br>the trial table lists every trial")


def _serialized(fig, kind: str, notes: list[str]) -> str:
    """The figure's plotly JSON, titled by the page rather than by Optuna: its title is only
    its notes, one after the other (each of a line or two, to fit half the page's width)."""
    # The page titles each chart; parallel coordinates need room above for their axis labels.
    lines = sum(note.count("<br>") + 1 for note in notes)
    top = {"parallel": 80, "contour": 40}.get(kind, 30) + NOTE_LINE * lines
    margin = {"l": 60, "r": PARALLEL_RIGHT if kind == "parallel" else 40, "t": top, "b": 50}
    title = {"text": "<br>".join(notes), "font": {"size": 12}} if notes else None
    if isinstance(fig, dict):
        fig["layout"] = fig.get("layout", {}) | {"margin": margin} | ({"title": title} if title else {})
        return plotly.io.to_json(fig, validate=False)
    fig.update_layout(title=title, margin=margin, template="plotly_white")
    return fig.to_json()


def _as_shown(study: ReadOnlyStudy, parameters: tuple[Parameter, ...], as_text: bool) -> ReadOnlyStudy:
    """``study`` itself, or an in-memory copy of all its trials (numbered as they are): where a
    parameter is normal (its sampler holds quantiles), the values the trials received in its
    place; with ``as_text``, where a parameter's name or values hold what plotly reads as
    markup, those written as text (:func:`_as_text`). Parallel coordinates take them as they
    are: katuna writes that chart's labels itself."""
    trials = study.get_trials(deepcopy=False)
    shown = shown_trials(trials, parameters)
    if as_text and _has_markup(parameters):
        shown = [_text_trial(t) for t in shown]
    if shown is trials:
        return study
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name=study.study_name, directions=study.directions)
    charted = ReadOnlyStudy(study_name=study.study_name, storage=storage)
    charted.add_trials(shown)
    return charted


def _as_text(value: Any) -> Any:
    """A name or a value as plotly shows it as written: ``<``, ``>`` and ``&`` as entities."""
    return html.escape(value, quote=False) if isinstance(value, str) else value


def _has_markup(parameters: tuple[Parameter, ...]) -> bool:
    """Whether a parameter's name, or a categorical parameter's value, changes as text (:func:`_as_text`)."""
    texts = [p.name for p in parameters]
    texts += [v for p in parameters if isinstance(p, CategoricalParameter) for v in p.values]
    return any(_as_text(text) != text for text in texts if isinstance(text, str))


def _text_trial(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` whose parameter names and categorical values are written as text."""
    shown = copy.copy(trial)
    shown.params = {_as_text(name): _as_text(value) for name, value in trial.params.items()}
    shown.distributions = {_as_text(name): _text_distribution(d) for name, d in trial.distributions.items()}
    return shown


def _text_distribution(distribution: Any) -> Any:
    if not isinstance(distribution, CategoricalDistribution):
        return distribution
    return CategoricalDistribution([_as_text(choice) for choice in distribution.choices])


def _target(index: int, sign: float = 1.0) -> Callable[[FrozenTrial], float]:
    """Objective ``index`` of a trial, times ``sign``. A chart given a target reads it as Optuna
    reads one: lower is better for PED-ANOVA's importances, and shaded as if minimised. So a
    maximised objective of several is negated for its importances, and its colors reversed."""
    return lambda trial: sign * trial.values[index]


def _build(study: ReadOnlyStudy, kind: str, spec: Study, index: int, params: list[str]):
    """Optuna's figure for ``kind``, and what it says of the trials it drew where it drew a
    sample; multi-objective studies chart objective ``index``."""
    name, lower_better = spec.objectives[index].metric, spec.objectives[index].direction == MINIMIZE
    target = {"target": _target(index)} if spec.multi_objective else {}
    if kind == "parallel":  # which writes its labels as text itself
        subset, sampled = sample(study, spec, max(PARALLEL_VALUES // (len(spec.parameters) + 1), 1))
        return _parallel_coordinates(subset, lower_better, **target, target_name=name), sampled
    one = {**target, "target_name": _as_text(name)}
    if kind == "history":
        sampled = thinned(study, None, "trials", spec, corners=True)
        return _optimization_history(study, **one), sampled
    if kind == "slice":
        sampled = thinned(study, (optuna.trial.TrialState.COMPLETE,), "completed trials", spec)
        return _labelled(_columns_as_picked(vis.plot_slice(study, params=params, **one), params), spec.parameters), sampled
    if kind == "contour":
        if len(params) < 2:
            raise NoChart("a contour needs two parameters")
        subset, sampled = sample(study, spec, CONTOUR_TRIALS)
        contour = _axes_as_picked(vis.plot_contour(subset, params=params[:2], **one), params[:2])
        return contour.update_traces(reversescale=lower_better, selector={"type": "contour"}), sampled
    if kind == "importance":
        from optuna.importance import PedAnovaImportanceEvaluator  # optuna.importance loads scikit-learn: seconds

        lowest = {"target": _target(index, -1.0)} if spec.multi_objective and not lower_better else {}
        return vis.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), **(one | lowest)), None
    if kind == "intermediate":
        if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            raise NoChart("no intermediate values: the study reports none (it has no early stopping)")
        return intermediate_figure(study)
    return _pareto(study, spec)


def _columns_as_picked(fig, picked: list[str]):
    """A slice whose columns go in the order the parameters were ``picked``: Optuna draws them
    in the order of their names. Each column's x axis (its title, type, categories) and its
    points move to the place of the picked order; the places themselves stay, the objective's
    axis on the left."""
    drawn = sorted(set(picked))
    if len(drawn) < 2 or drawn == picked:
        return fig
    axes = [fig.layout[_axis_name("xaxis", column)].to_plotly_json() for column in range(len(drawn))]
    moved = [picked.index(name) for name in drawn]
    for column, axis in enumerate(axes):
        place = {key: axes[moved[column]][key] for key in ("anchor", "domain") if key in axes[moved[column]]}
        shown = {key: value for key, value in axis.items() if key not in ("anchor", "domain")}
        fig.layout[_axis_name("xaxis", moved[column])] = shown | place
    for trace in fig.data:
        column = moved[int(trace.xaxis[1:] or 1) - 1]
        trace.update(xaxis=_axis_name("x", column), yaxis=_axis_name("y", column))
    return fig


def _axis_name(prefix: str, column: int) -> str:
    """The name of the axis of the column (from 0) of a figure of subplots: ``xaxis``, ``xaxis2``..."""
    return prefix + (str(column + 1) if column else "")


def _axes_as_picked(fig, picked: list[str]):
    """A contour whose x axis is the parameter picked first, its y axis the other: Optuna puts
    the first by name on x. Its axes are swapped, and every trace's x and y with them."""
    if len(picked) < 2 or picked[0] <= picked[1]:
        return fig
    for trace in fig.data:
        swapped = {"x": trace.y, "y": trace.x}
        if trace.type == "contour" and trace.z is not None:
            swapped["z"] = [list(row) for row in zip(*trace.z, strict=True)]
        trace.update(swapped)
    x_axis, y_axis = fig.layout.xaxis.to_plotly_json(), fig.layout.yaxis.to_plotly_json()
    fig.layout.xaxis, fig.layout.yaxis = y_axis, x_axis
    return fig


def _labelled(fig, parameters: tuple[Parameter, ...]):
    """A slice whose categorical axes name their text values as written (``adam``), as the trial
    table and the contour do: Optuna's slice places and labels them by their ``repr``
    (``'adam'``, quoted). Only the labels change: each point stays where Optuna placed it."""
    written = {repr(_as_text(v)): _as_text(v) for p in parameters if isinstance(p, CategoricalParameter)
               for v in p.values if isinstance(v, str)}
    for axis in fig.select_xaxes(selector={"type": "category"}):
        placed = list(axis.categoryarray or ())
        if any(place in written for place in placed):
            axis.update(tickmode="array", tickvals=placed, ticktext=[written.get(place, place) for place in placed])
    return fig


def _pareto(study: optuna.Study, spec: Study) -> tuple[dict[str, Any], str | None]:
    """The Pareto front of a study of two or three objectives (:mod:`~functions.adapters.web.pareto_chart`)."""
    metrics = [o.metric for o in spec.objectives]
    if not spec.multi_objective:
        raise NoChart("a Pareto front needs two or more objectives")
    if len(metrics) > 3:
        raise NoChart(f"a Pareto front is drawn for 2 or 3 objectives, and this study has {len(metrics)}: the table "
                      "lists its front")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return pareto_figure(complete, spec, [_as_text(metric) for metric in metrics])


def _parallel_coordinates(study: optuna.Study, lower_better: bool, **target) -> dict[str, Any]:
    """Optuna's parallel-coordinate data (log axes, categories, missing values, Pareto ranks)
    drawn as one plotly ``parcoords`` trace: axes that brush ranges and that the page can hide.
    Shaded darker the better the objective (``lower_better``: minimised), as Optuna shades a
    study of one objective; given a target, Optuna's own shades it as if minimised.

    Optuna 5 draws this chart as one line trace per trial, which cannot brush and grows heavy
    with thousands of trials; the data it prepares is the same either way. The figure is plain
    plotly JSON: plotly's Python-side validation of 10,000-value arrays would take seconds.
    """
    info = parallel_coordinate_info(study, target.get("target"), target["target_name"])
    dimensions = [
        {"label": _as_text(d.label), "values": list(d.values), "range": list(d.range)}
        | ({"tickvals": list(d.tickvals), "ticktext": list(d.ticktext)} if d.tickvals else {})
        for d in info.dims_objectives + info.dims_params
    ]
    colors = color_scale()
    scale = [[i / (len(colors) - 1), color] for i, color in enumerate(colors)]
    line = {"color": list(info.color_values), "colorscale": scale, "reversescale": lower_better,
            "showscale": True, "colorbar": {"title": {"text": _as_text(info.colorbar_title)}, "x": 1.0, "xpad": BAR_GAP}}
    return {"data": [{"type": "parcoords", "dimensions": dimensions, "line": line}]}


def _optimization_history(study: optuna.Study, target: Callable[[FrozenTrial], float] | None = None,
                          target_name: str = "Objective Value") -> dict[str, Any]:
    """Optuna's optimization-history chart (each feasible trial's value, the best so far, the
    infeasible trials in grey, on Optuna's white template) as a plain plotly figure.

    Built from ``plotly.graph_objects`` as Optuna builds it, plotly's Python-side validation of
    every value took 0.41 s of the chart's 0.78 s at 20,000 trials, and the chart is built again
    after every trial of a running study."""
    history = optimization_history(study, target, target_name)
    data = [_scatter(*history.points, mode="markers", name=history.label)]
    if history.best is not None:
        data.append(_scatter(history.numbers, history.best, mode="lines", name=history.best_label))
    data.append(_scatter(*history.infeasible, mode="markers", name="Infeasible Trial", marker={"color": "#cccccc"},
                         showlegend=False))
    layout = {"xaxis": {"title": {"text": "Trial"}}, "yaxis": {"title": {"text": target_name}},
              "template": plotly.io.templates["plotly_white"]}
    return {"data": data, "layout": layout}


def _scatter(x: list[int], y: list[float], **style: Any) -> dict[str, Any]:
    """A plotly ``scatter`` trace of ``y`` over ``x``, styled by ``style``."""
    return {"type": "scatter", "x": x, "y": y, **style}
