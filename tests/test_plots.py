"""The study page's charts as katuna builds them from an Optuna storage, compared with the
figures Optuna itself draws from the same trials."""

from __future__ import annotations

import json
from typing import Any

import optuna
import plotly.basedatatypes
import pytest
from conftest import study_definition
from optuna import visualization as vis
from optuna.distributions import FloatDistribution

from functions.adapters.web import plots
from functions.core.records import StudyRecord
from functions.core.validate import parse_study

SPACE = {"x": FloatDistribution(0.0, 1.0)}
TWO_OBJECTIVES = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]}


def charted(objective: dict, trials: list[optuna.trial.FrozenTrial]) -> tuple[optuna.Study, StudyRecord]:
    """A study of ``trials`` in memory, and katuna's record of it."""
    definition = study_definition(name="charted", maxTrials=100, objective=objective)
    spec = parse_study(definition)
    study = optuna.create_study(study_name="charted", storage=optuna.storages.InMemoryStorage(),
                                directions=[o.direction for o in spec.objectives])
    study.add_trials(trials)
    return study, StudyRecord(spec, definition, "/tmp", "uid-charted", status="completed")


def trial(values: list[float] | None, constraint: float | None = None) -> optuna.trial.FrozenTrial:
    """A completed trial of ``values`` (a failed one without), infeasible where ``constraint`` > 0."""
    made = optuna.trial.create_trial(params={"x": 0.5}, distributions=SPACE, values=values,
                                     state=optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL)
    if constraint is not None:
        made.set_constraint("budget", constraint)
    return made


def optunas(figure: Any) -> dict[str, Any]:
    return json.loads(figure.to_json())


SINGLE = [trial(None), trial([3.0]), trial([5.0], constraint=1.0), trial([2.0]), trial(None), trial([4.0]),
          trial([1.0], constraint=0.0), trial([0.5], constraint=2.0)]
MULTI = [trial([3.0, 1.0]), trial(None), trial([2.0, 4.0]), trial([1.0, 0.5], constraint=1.0), trial([5.0, 2.0])]


@pytest.mark.parametrize(("objective", "trials", "index", "drawn", "names"), [
    ({"metric": "loss", "direction": "minimize"}, SINGLE, 0, {}, ["loss", "Best Value", "Infeasible Trial"]),
    ({"metric": "acc", "direction": "maximize"}, SINGLE, 0, {}, ["acc", "Best Value", "Infeasible Trial"]),
    (TWO_OBJECTIVES, MULTI, 1, {"target": lambda t: t.values[1]}, ["size", "Infeasible Trial"]),
], ids=["minimize", "maximize", "second-objective"])
def test_the_optimization_history_is_the_figure_optuna_draws(objective, trials, index, drawn, names):
    """The same traces (each feasible trial's value; the best so far, but for a chosen objective
    of several, whose better way Optuna cannot tell; the infeasible trials in grey, out of the
    legend), the same axis titles and template, titled by katuna alone (its notes)."""
    study, record = charted(objective, trials)
    name = record.spec.objectives[index].metric
    ours = json.loads(plots.figure_json(study._storage, record, "history", objective=index))
    theirs = optunas(vis.plot_optimization_history(study, target_name=name, **drawn).update_layout(
        template="plotly_white"))
    assert ours["data"] == theirs["data"]
    assert [trace["name"] for trace in ours["data"]] == names
    assert all(trace["x"] for trace in ours["data"]), "each trace draws trials"
    for axis in ("xaxis", "yaxis", "template"):
        assert ours["layout"][axis] == theirs["layout"][axis], axis
    assert "title" not in ours["layout"], "the page titles the chart"


def test_the_optimization_history_is_built_without_a_plotly_figure(monkeypatch):
    """No ``plotly.graph_objects`` figure, whose validation of each value took half of a
    20,000-trial history's build: the chart is a plain figure written out unvalidated, as
    parallel coordinates are."""
    study, record = charted({"metric": "loss", "direction": "minimize"}, SINGLE)

    def refused(*args, **kwargs):
        raise AssertionError("a plotly figure was built")

    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "__init__", refused)
    figure = json.loads(plots.figure_json(study._storage, record, "history"))
    assert [len(trace["x"]) for trace in figure["data"]] == [4, 8, 2]
    with pytest.raises(AssertionError, match="a plotly figure was built"):
        plots.figure_json(study._storage, record, "slice")
