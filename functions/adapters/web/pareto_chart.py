"""The study page's Pareto-front chart: Optuna's ``plot_pareto_front`` as it looks, drawn from
a bounded sample of the study's completed trials.

Optuna's own draws every completed trial, and tells the front from the rest by looking each
trial up in the list of the front's: a study of 20,000 trials all on its front took 39 s and
made 7 MB of JSON, 50,000 took minutes, and the chart is built again after every trial of a
running study. This one finds the front as katuna's tables do
(:func:`~functions.core.pareto_search.pareto_front`, O(n log n) for 2 or 3 objectives), draws at most
:data:`PARETO_POINTS` trials, and writes them as a plain plotly figure (plotly's Python-side
validation of every value is half of a chart's build), with Optuna's traces, colors, hover text
and axis titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.colors
import plotly.io
from optuna.trial import FrozenTrial

from functions.core.optuna_compat import hover_text
from functions.core.pareto_search import pareto_front
from functions.core.spec import MINIMIZE, Study
from functions.core.spread import spread

PARETO_POINTS = 5_000
"""Trials the Pareto chart draws, each a point, as the optimization history and slice charts
draw (:data:`~functions.adapters.web.chart_samples.HISTORY_POINTS`)."""
FRONT_POINTS = 4_000
"""Trials of the front the chart draws at least, where the front holds them: the study's other
completed trials take the rest of :data:`PARETO_POINTS` (as many as they are, if fewer), so a
long front is still drawn against the trials it beats. A front longer than its share is drawn
spread evenly along it, its ends (the best trial on each objective) among them; the other
trials, spread evenly over the study."""


def pareto_figure(trials: list[FrozenTrial], spec: Study, names: list[str]) -> tuple[dict[str, Any], str | None]:
    """The chart of the completed ``trials`` of a study of 2 or 3 objectives (``names`` titling its
    axes), and what it says of the trials it drew where it drew a sample. As Optuna's: the front
    in red, the other trials in blue. (katuna sets no constraints, so no trial is infeasible.)"""
    by_number = {t.number: t for t in trials}
    front = pareto_front(spec, [(t.number, list(t.values)) for t in trials])
    on_front = set(front)
    others = [t.number for t in trials if t.number not in on_front]
    best = _along(front, spec, by_number, PARETO_POINTS - min(len(others), PARETO_POINTS - FRONT_POINTS))
    shown = best | set(spread(others, PARETO_POINTS - len(best)))
    drawn = [t for t in trials if t.number in shown]
    data = _traces(drawn, best, len(spec.objectives))
    return {"data": data, "layout": _layout(names)}, _note(len(drawn), len(trials), len(best), len(front))


def _note(drawn: int, trials: int, best: int, front: int) -> str | None:
    """What the chart says of the sample it drew: how many trials, and of the front."""
    if drawn == trials:
        return None
    sampled = f"{best:,} of the {front:,} on the front, spread along it" if best < front else \
        f"every one of the {front:,} on the front"
    return f"from {drawn:,} of {trials:,} completed trials<br>{sampled}"


def _along(front: list[int], spec: Study, by_number: dict[int, FrozenTrial], room: int) -> set[int]:
    """At most ``room`` of the ``front`` (best first on the first objective), all where they fit:
    those spread evenly along it (both its ends) and the best on each other objective, which a
    front of three need not end with."""
    if len(front) <= room:
        return set(front)
    signs = [1 if o.direction == MINIMIZE else -1 for o in spec.objectives]
    ends = {min((sign * by_number[number].values[i], number) for number in front)[1]
            for i, sign in enumerate(signs) if i}
    ends -= {front[0], front[-1]}
    return ends | set(spread([number for number in front if number not in ends], room - len(ends)))


def _traces(drawn: list[FrozenTrial], best: set[int], objectives: int) -> list[dict[str, Any]]:
    """Optuna's traces of the ``drawn`` trials, in their order: the other trials and the front
    (the trials numbered in ``best``)."""
    front = [t for t in drawn if t.number in best]
    rest = [t for t in drawn if t.number not in best]
    return [_trace(rest, objectives, "Trial", _marker(rest, "Blues", {"title": {"text": "Trial"}})),
            _trace(front, objectives, "Best Trial",
                   _marker(front, "Reds", {"title": {"text": "Best Trial"}, "x": 1.1, "xpad": 40}))]


def _trace(trials: Sequence[FrozenTrial], objectives: int, label: str, marker: dict[str, Any]) -> dict[str, Any]:
    """A scatter (3-D for three objectives) of ``trials`` by their values, hovered as ``label``."""
    axes = {axis: [t.values[i] for t in trials] for i, axis in enumerate("xyz"[:objectives])}
    return {"type": "scatter" if objectives == 2 else "scatter3d", **axes, "text": [hover_text(t) for t in trials],
            "mode": "markers", "hovertemplate": f"%{{text}}<extra>{label}</extra>", "marker": marker,
            "showlegend": False}


def _marker(trials: Sequence[FrozenTrial], scale: str, colorbar: dict[str, Any]) -> dict[str, Any]:
    """Points outlined in grey, shaded by trial number on the named plotly color scale."""
    return {"line": {"width": 0.5, "color": "Grey"}, "color": [t.number for t in trials],
            "colorscale": plotly.colors.get_colorscale(scale), "colorbar": colorbar}


def _layout(names: list[str]) -> dict[str, Any]:
    """The axes titled by the objectives' names (a 3-D scene's for three), on Optuna's white template."""
    titles = {f"{axis}axis": {"title": {"text": name}} for axis, name in zip("xyz", names, strict=False)}
    axes = titles if len(names) == 2 else {"scene": titles}
    return {**axes, "template": plotly.io.templates["plotly_white"]}
