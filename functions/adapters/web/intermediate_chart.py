"""The study page's intermediate-values chart: Optuna's ``plot_intermediate_values`` as it
looks, drawn from a bounded sample of the study's trials and of their steps.

Optuna's own draws a line for every trial that reported a value, every step of it, each a
validated plotly trace: 2,000 trials of 10 steps took 7 s, so 20,000 (250,000 values, what a
chart reads at most of a history) outlast a worker's 60 s, and one trial of 100,000 steps took
6 s and made 1.4 MB of JSON. This one draws at most :data:`INTERMEDIATE_LINES` trials and
:data:`INTERMEDIATE_POINTS` values in all, as a plain plotly figure with Optuna's traces,
marker, colors and axis titles, and says what it left out.
"""

from __future__ import annotations

from typing import Any

import optuna
import plotly.io
from optuna.trial import FrozenTrial, TrialState

from functions.core.spread import spread

INTERMEDIATE_LINES = 500
"""Trials the chart draws a line for: beyond this many reporting, the running ones, the best
completed one and an even sample of the others (the first and the last among them)."""
INTERMEDIATE_POINTS = 50_000
"""Values the chart draws in all, shared evenly between its lines: a line of more steps than
its share is drawn at an even sample of them, its first and last included."""
_DRAWN = (TrialState.PRUNED, TrialState.COMPLETE, TrialState.RUNNING)
"""The trials Optuna's chart draws: those that ran, or run, and may have reported."""


def intermediate_figure(study: optuna.Study) -> tuple[dict[str, Any], str | None]:
    """The chart of the values the study's trials reported as they ran (``NoChart`` is the
    caller's where none did), and what it says of its sample (None where it draws them all)."""
    reporting = [t for t in study.get_trials(deepcopy=False, states=_DRAWN) if t.intermediate_values]
    lines = _lines(study, reporting)
    share = max(INTERMEDIATE_POINTS // max(len(lines), 1), 2)
    data = [_trace(trial, share) for trial in lines]
    layout = {"xaxis": {"title": {"text": "Step"}}, "yaxis": {"title": {"text": "Intermediate Value"}},
              "showlegend": False, "template": plotly.io.templates["plotly_white"]}
    return {"data": data, "layout": layout}, _note(lines, reporting, share)


def _lines(study: optuna.Study, reporting: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials drawn, in the study's order: every one reporting, or, where more report, at
    most :data:`INTERMEDIATE_LINES` of them: those running, the best completed one (of a study
    of one objective), then the others spread evenly over the study."""
    if len(reporting) <= INTERMEDIATE_LINES:
        return reporting
    kept = {t.number for t in reporting if t.state == TrialState.RUNNING}
    completed = [t for t in reporting if t.state == TrialState.COMPLETE and t.values]
    if completed and len(study.directions) == 1:
        pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
        kept.add(pick(completed, key=lambda t: t.values[0]).number)
    kept = set(sorted(kept)[:INTERMEDIATE_LINES])
    rest = [t.number for t in reporting if t.number not in kept]
    kept |= set(spread(rest, INTERMEDIATE_LINES - len(kept)))
    return [t for t in reporting if t.number in kept]


def _trace(trial: FrozenTrial, share: int) -> dict[str, Any]:
    """The trial's line, as Optuna draws it (its steps in order, grey where it broke a
    constraint), at ``share`` of its steps at most."""
    steps = spread(sorted(trial.intermediate_values.items()), share)
    marker: dict[str, Any] = {"maxdisplayed": 10}
    if not all(value <= 0.0 for value in trial.constraints.values()):
        marker["color"] = "#CCCCCC"
    return {"type": "scatter", "x": [step for step, _ in steps], "y": [value for _, value in steps],
            "mode": "lines+markers", "marker": marker, "name": f"Trial{trial.number}"}


def _note(lines: list[FrozenTrial], reporting: list[FrozenTrial], share: int) -> str | None:
    """What the chart says of what it left out: trials, steps of long lines, or both."""
    notes = [f"from {len(lines):,} of {len(reporting):,} trials"] if len(lines) < len(reporting) else []
    if any(len(t.intermediate_values) > share for t in lines):
        notes.append(f"each line at {share:,} of its steps at most")
    return ", ".join(notes) or None
