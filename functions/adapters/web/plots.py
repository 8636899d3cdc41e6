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
import operator
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
from functions.adapters.web.intermediate_chart import intermediate_figure
from functions.adapters.web.pareto_chart import pareto_figure
from functions.core.application import HistoryCut
from functions.core.optuna_compat import color_scale, optimization_history, parallel_coordinate_info
from functions.core.parameters import CategoricalParameter, Parameter
from functions.core.pareto_search import pareto_front
from functions.core.records import StudyRecord
from functions.core.space import shown_trials
from functions.core.spec import MINIMIZE, Study, known_results
from functions.core.spread import spread

CONTOUR_TRIALS = 300
"""A contour's grid has a row and a column per distinct value: beyond this many completed trials
it is drawn from an even sample of them (the best included), and says so."""
PARALLEL_VALUES = 100_000
"""Values parallel coordinates draw: an axis per parameter and one for the objective, a value on
each for every completed trial (4,000 trials of 256 parameters made 20 MB of JSON for the page).
Beyond this many the chart is drawn from an even sample of the trials (the best included), and
says so: about 2 MB."""
HISTORY_POINTS = 5_000
"""Trials the optimization history and slice charts draw, each a point (20,000 trials made a 1 MB
history and a 1.7 MB slice). Beyond this many, a chart draws an even sample of them with the
best trials and, in the history, the trials where the best value so far changes, those just
before them and the last (so its best-so-far line is drawn as it is, or where the best changes
more than 2,499 times, at an even sample of its changes, the first and the best among them),
and says so."""
NOTE_LINE = 32
"""Pixels of top margin a line of a chart's note (a sample's, a cut history's) takes: plotly
sets a title's first line on the middle of the top margin, so a line of 16 takes twice that."""

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
    shown: frozenset[int] | None = None
    """The numbers of the trials a sampled chart draws (:func:`_thinned`); None: every trial."""

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        trials = super().get_trials(deepcopy=False, states=states)
        if self.own_from:
            trials = [t for t in trials if t.number >= self.own_from]
        return trials if self.shown is None else [t for t in trials if t.number in self.shown]


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
        study = _ReadOnlyStudy(study_name=record.name, storage=storage)
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
    margin = {"l": 60, "r": 40, "t": top, "b": 50}
    title = {"text": "<br>".join(notes), "font": {"size": 12}} if notes else None
    if isinstance(fig, dict):
        fig["layout"] = fig.get("layout", {}) | {"margin": margin} | ({"title": title} if title else {})
        return plotly.io.to_json(fig, validate=False)
    fig.update_layout(title=title, margin=margin, template="plotly_white")
    return fig.to_json()


def _as_shown(study: _ReadOnlyStudy, parameters: tuple[Parameter, ...], as_text: bool) -> _ReadOnlyStudy:
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
    charted = _ReadOnlyStudy(study_name=study.study_name, storage=storage)
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


def _build(study: _ReadOnlyStudy, kind: str, spec: Study, index: int, params: list[str]):
    """Optuna's figure for ``kind``, and what it says of the trials it drew where it drew a
    sample; multi-objective studies chart objective ``index``."""
    name, lower_better = spec.objectives[index].metric, spec.objectives[index].direction == MINIMIZE
    target = {"target": _target(index)} if spec.multi_objective else {}
    if kind == "parallel":  # which writes its labels as text itself
        sample, sampled = _sample(study, spec, max(PARALLEL_VALUES // (len(spec.parameters) + 1), 1))
        return _parallel_coordinates(sample, lower_better, **target, target_name=name), sampled
    one = {**target, "target_name": _as_text(name)}
    if kind == "history":
        sampled = _thinned(study, None, "trials", spec, corners=True)
        return _optimization_history(study, **one), sampled
    if kind == "slice":
        sampled = _thinned(study, (optuna.trial.TrialState.COMPLETE,), "completed trials", spec)
        return vis.plot_slice(study, params=params, **one), sampled
    if kind == "contour":
        if len(params) < 2:
            raise NoChart("a contour needs two parameters")
        sample, sampled = _sample(study, spec, CONTOUR_TRIALS)
        contour = vis.plot_contour(sample, params=params[:2], **one)
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


def _sample(study: _ReadOnlyStudy, spec: Study, limit: int) -> tuple[_ReadOnlyStudy, str | None]:
    """``study`` showing at most ``limit`` of its completed trials (all where it has no more):
    its best trials (as many as fit: those tied on the best value, or the Pareto front as
    katuna's tables show it), and the others spread evenly over the study; and what the chart
    says of it. As :func:`_thinned`, it copies nothing: copying 25,000 trials into a study of
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


def _thinned(study: _ReadOnlyStudy, states: tuple[optuna.trial.TrialState, ...] | None, noun: str,
             spec: Study, corners: bool = False) -> str | None:
    """Where ``study`` has more than :data:`HISTORY_POINTS` trials in ``states`` (None: any), has
    it show only that many of them (more where :func:`_kept` holds more): those :func:`_kept`
    names, then completed trials (the points drawn) spread evenly over the study, then, where
    room is left, the others (which only carry the best-so-far line); and what the chart says of
    it. Unlike :func:`_sample` it copies nothing, and the trials keep their numbers, which these
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
            "showscale": True, "colorbar": {"title": {"text": _as_text(info.colorbar_title)}}}
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
