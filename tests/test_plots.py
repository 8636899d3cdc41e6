"""The study page's charts as katuna builds them from an Optuna storage, compared with the
figures Optuna itself draws from the same trials."""

from __future__ import annotations

import json
from typing import Any

import optuna
import plotly.basedatatypes
import pytest
from conftest import study_definition
from optuna.distributions import FloatDistribution

from functions.adapters.web import plots
from functions.adapters.web.chart_samples import HISTORY_POINTS
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
    theirs = optunas(optuna.visualization.plot_optimization_history(study, target_name=name, **drawn).update_layout(
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


def many_trials(count: int) -> list[optuna.trial.FrozenTrial]:
    """``count`` trials, one in ten failed, whose values wander down slowly: a few hundred improve
    on the best before them."""
    return [trial(None) if number % 10 == 3 else trial([(number * 7919 % 1000) / 1000 + 100 / (number + 1)])
            for number in range(count)]


def line_corners(x: list[int], y: list[float | None]) -> list[tuple[int, float | None]]:
    """The points where a polyline of steps turns: those whose value differs from the next or the
    one before, and its ends."""
    return [(x[i], y[i]) for i in range(len(x)) if i in (0, len(x) - 1) or y[i] != y[i - 1] or y[i] != y[i + 1]]


def test_a_long_history_draws_a_sample_with_its_best_so_far_line_as_it_is():
    """6,000 trials: the chart draws 5,000 of them and says so; the best-so-far line turns at the
    same trials at the same values as the one Optuna draws of every trial, and ends at the last.
    The slice draws 5,000 of the 5,400 completed, the best trial among them."""
    study, record = charted({"metric": "loss", "direction": "minimize"}, many_trials(6_000))
    figure = json.loads(plots.figure_json(study._storage, record, "history"))
    points, best, _ = figure["data"]
    whole = optunas(optuna.visualization.plot_optimization_history(study, target_name="loss"))["data"][1]
    assert figure["layout"]["title"]["text"] == f"from {HISTORY_POINTS:,} of 6,000 trials"
    assert len(best["x"]) == HISTORY_POINTS and points["x"] == [x for x in best["x"] if x % 10 != 3]
    assert line_corners(best["x"], best["y"]) == line_corners(whole["x"], whole["y"])
    assert study.best_trial.number in points["x"] and best["x"][-1] == 5_999
    assert dict(zip(points["x"], points["y"], strict=True)).items() <= dict(
        (t.number, t.value) for t in study.trials if t.value is not None).items()
    sliced = json.loads(plots.figure_json(study._storage, record, "slice", ["x"]))
    assert sliced["layout"]["title"]["text"] == f"from {HISTORY_POINTS:,} of 5,400 completed trials"
    assert study.best_trial.number in sliced["data"][0]["marker"]["color"], "the best trial is drawn"


def test_a_history_that_improves_on_every_trial_draws_at_most_its_bound_from_the_first_to_the_best():
    """12,000 trials each better than the one before: the best-so-far line changes at each, so
    the sample draws an even sample of the changes (and the trials before them), the first trial
    and the best among them, never more than :data:`HISTORY_POINTS`."""
    study, record = charted({"metric": "loss", "direction": "minimize"}, [trial([12_000.0 - n]) for n in range(12_000)])
    figure = json.loads(plots.figure_json(study._storage, record, "history"))
    points, best, _ = figure["data"]
    assert len(points["x"]) <= HISTORY_POINTS and len(best["x"]) == len(points["x"])
    assert figure["layout"]["title"]["text"] == f"from {len(points['x']):,} of 12,000 trials"
    assert {0, 11_999} <= set(points["x"]) and best["y"][-1] == 1.0


def test_a_long_front_in_a_history_of_several_objectives_is_drawn_spread_along_it():
    """8,000 trials all on the front of two objectives: the history's sample holds both ends of
    the front (the best on each objective), not its first 5,000."""
    study, record = charted(TWO_OBJECTIVES, [trial([float(k), float(k)]) for k in range(8_000)])
    figure = json.loads(plots.figure_json(study._storage, record, "history", objective=0))
    drawn = figure["data"][0]["x"]
    assert len(drawn) == HISTORY_POINTS and {0, 7_999} <= set(drawn)


def test_a_long_history_of_few_completed_trials_draws_every_one_of_them():
    """6,000 trials of which 500 completed (the rest failed): the sample of 5,000 holds every
    completed trial, which the chart draws as points, before the failed ones, which only carry
    the best-so-far line."""
    trials = [trial([number * 7919 % 1000 / 1000]) if number % 12 == 0 else trial(None) for number in range(6_000)]
    study, record = charted({"metric": "loss", "direction": "minimize"}, trials)
    figure = json.loads(plots.figure_json(study._storage, record, "history"))
    points, best, _ = figure["data"]
    assert figure["layout"]["title"]["text"] == f"from {HISTORY_POINTS:,} of 6,000 trials"
    assert points["x"] == list(range(0, 6_000, 12)) and len(best["x"]) == HISTORY_POINTS


def test_a_long_slice_draws_a_sample_with_the_best_trials_under_their_own_numbers():
    """A study of two objectives whose front is its first trial and its last ten: the sample
    holds them and says so, and each point keeps its trial's number (the chart colors points by
    it, and shows it)."""
    trials = [trial([1 + number / 6_000, 1 - number / 6_000]) for number in range(5_990)]
    study, record = charted(TWO_OBJECTIVES, trials + [trial([k / 10, k / 10]) for k in range(10)])
    front = {t.number for t in study.best_trials}
    figure = json.loads(plots.figure_json(study._storage, record, "slice", ["x"]))
    drawn = figure["data"][0]["marker"]["color"]
    assert figure["layout"]["title"]["text"] == f"from {HISTORY_POINTS:,} of 6,000 completed trials"
    assert front == {0, *range(5_990, 6_000)} and len(drawn) == HISTORY_POINTS and set(drawn) >= front
    assert max(drawn) == 5_999, "numbered as in the study, not as in a copy"


THREE_OBJECTIVES = {"metrics": [*TWO_OBJECTIVES["metrics"], {"name": "time", "direction": "minimize"}]}
FRONTED = [trial([3.0, 1.0]), trial(None), trial([2.0, 4.0]), trial([1.0, 0.5]), trial([5.0, 2.0]), trial([2.0, 4.0]),
           trial([4.0, 3.0]), trial([0.5, 0.2])]


def with_third(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """``trials`` with a third value each (failed trials stay without)."""
    return [trial([*t.values, (t.values[0] * 3) % 2]) if t.values else trial(None) for t in trials]


@pytest.mark.parametrize(("objective", "trials", "axes", "hovers"), [
    (TWO_OBJECTIVES, FRONTED, ("xaxis", "yaxis"), ["Trial", "Best Trial"]),
    (THREE_OBJECTIVES, with_third(FRONTED), ("scene",), ["Trial", "Best Trial"]),
], ids=["two", "three"])
def test_the_pareto_front_is_the_figure_optuna_draws(objective, trials, axes, hovers):
    """The same traces (the other trials in blue, the front in red), hover text, axis titles (a
    3-D scene's for three objectives) and template, titled by katuna alone."""
    study, record = charted(objective, trials)
    names = [plots._as_text(o.metric) for o in record.spec.objectives]
    ours = json.loads(plots.figure_json(study._storage, record, "pareto"))
    theirs = optunas(optuna.visualization.plot_pareto_front(study, target_names=names).update_layout(template="plotly_white"))
    assert ours["data"] == theirs["data"]
    assert [trace["hovertemplate"] for trace in ours["data"]] == [f"%{{text}}<extra>{h}</extra>" for h in hovers]
    assert all(trace["x"] for trace in ours["data"]), "each trace draws trials"
    for key in (*axes, "template"):
        assert ours["layout"][key] == theirs["layout"][key], key
    assert "title" not in ours["layout"], "the page titles the chart"


@pytest.mark.parametrize("objective", [TWO_OBJECTIVES, THREE_OBJECTIVES], ids=["two", "three"])
def test_a_long_pareto_front_draws_a_sample_along_it_with_its_ends_and_says_so(objective):
    """5,000 trials on the front and 2,000 behind it: the chart draws 5,000 trials, 4,000 of the
    front spread along it (the best on each objective among them, a third objective's too, which
    a front need not end with) and 1,000 of the others, each at its own values, and says so."""
    objectives = len(objective["metrics"])
    front = [trial([k, k, abs(k - 2_502)][:objectives]) for k in range(5_000)]  # 2,502: between two spread out
    behind = [trial([5_000 + k, -1, 5_000 + k][:objectives]) for k in range(2_000)]
    study, record = charted(objective, front + behind)
    figure = json.loads(plots.figure_json(study._storage, record, "pareto"))
    others, best = figure["data"]
    stored = study.get_trials(deepcopy=False)
    assert figure["layout"]["title"]["text"] == ("from 5,000 of 7,000 completed trials<br>"
                                                 "4,000 of the 5,000 on the front, spread along it")
    assert len(best["x"]) == 4_000 and len(others["x"]) == 1_000
    assert set(best["marker"]["color"]) <= set(range(5_000)) and set(others["marker"]["color"]) <= set(range(5_000, 7_000))
    for best_of, values in zip((min, max, min), zip(*(t.values for t in stored[:5_000]), strict=True), strict=False):
        assert values.index(best_of(values)) in best["marker"]["color"], "the front's best on each objective"
    for trace in (best, others):
        drawn = zip(trace["marker"]["color"], *(trace[axis] for axis in "xyz"[:objectives]), strict=True)
        assert all(stored[number].values == list(values) for number, *values in drawn)


TWO_PARAMETERS = [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}, {"name": "y", "type": "float", "min": 0.0, "max": 1.0}]
PLANE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def lopsided(values_of) -> list[optuna.trial.FrozenTrial]:
    """Trials on a grid of ``x`` and ``y`` whose ``size`` is high where ``x`` is (above 0.9)
    and low where ``y`` is high: maximising it, ``x`` matters; minimising it, ``y`` does."""
    made = []
    for i in range(20):
        for j in range(20):
            x, y = (i + 0.5) / 20, (j + 0.5) / 20
            size = 2.0 if x > 0.9 else -y
            made.append(optuna.trial.create_trial(params={"x": x, "y": y}, distributions=PLANE,
                                                  values=values_of(x, size)))
    return made


def charted_plane(objective: dict, trials: list[optuna.trial.FrozenTrial]) -> tuple[optuna.Study, StudyRecord]:
    """:func:`charted`, of the parameters ``x`` and ``y``."""
    definition = study_definition(name="charted", maxTrials=1_000, objective=objective, parameters=TWO_PARAMETERS,
                                  trialTemplate={"command": ["train", "${trialParameters.x}", "${trialParameters.y}"]})
    spec = parse_study(definition)
    study = optuna.create_study(study_name="charted", storage=optuna.storages.InMemoryStorage(),
                                directions=[o.direction for o in spec.objectives])
    study.add_trials(trials)
    return study, StudyRecord(spec, definition, "/tmp", "uid-charted", status="completed")


def drawn_importances(study: optuna.Study, record: StudyRecord, index: int) -> dict[str, float]:
    bars = json.loads(plots.figure_json(study._storage, record, "importance", objective=index))["data"][0]
    return dict(zip(bars["y"], bars["x"], strict=True))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_importances_of_an_objective_of_several_are_those_of_its_own_direction(direction):
    """The importance chart of a chosen objective of several is the one a study of that
    objective alone draws: its parameters' importance to its better values, maximised or
    minimised (Optuna's PED-ANOVA, told a target, takes lower as better whatever the study)."""
    objectives = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": direction}]}
    several, several_record = charted_plane(objectives, lopsided(lambda x, size: [x, size]))
    alone, alone_record = charted_plane({"metric": "size", "direction": direction}, lopsided(lambda x, size: [size]))
    ours = drawn_importances(several, several_record, 1)
    assert ours == pytest.approx(drawn_importances(alone, alone_record, 0))
    assert max(ours, key=ours.get) == ("x" if direction == "maximize" else "y")


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("kind", ["parallel", "contour"])
def test_the_colors_of_an_objective_of_several_run_the_way_of_its_direction(kind, direction):
    """Parallel coordinates and a contour of a chosen objective of several shade it as a study
    of that objective alone does: its better values the darker, whichever way is better."""
    objectives = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": direction}]}
    several, several_record = charted_plane(objectives, lopsided(lambda x, size: [x, size]))
    alone, alone_record = charted_plane({"metric": "size", "direction": direction}, lopsided(lambda x, size: [size]))

    def reversed_scales(study: optuna.Study, record: StudyRecord, index: int) -> list[bool]:
        figure = json.loads(plots.figure_json(study._storage, record, kind, ["x", "y"], objective=index))
        traces = [t for t in figure["data"] if t["type"] in ("parcoords", "contour")]
        return [bool(t["line"]["reversescale"] if kind == "parallel" else t["reversescale"]) for t in traces]

    assert reversed_scales(several, several_record, 1) == reversed_scales(alone, alone_record, 0) == \
        [direction == "minimize"]


def reported(number: int, steps: range, state: optuna.trial.TrialState = optuna.trial.TrialState.COMPLETE,
             constraint: float | None = None) -> optuna.trial.FrozenTrial:
    """A trial that reported a value at each of ``steps`` (completed at its last, or pruned or
    still running), infeasible where ``constraint`` > 0."""
    curve = {step: 1.0 / (step + 1) + number % 7 for step in steps}
    value = [curve[steps[-1]] if steps else 1.0] if state == optuna.trial.TrialState.COMPLETE else None
    made = optuna.trial.create_trial(params={"x": 0.5}, distributions=SPACE, values=value, state=state,
                                     intermediate_values=curve)
    if constraint is not None:
        made.set_constraint("budget", constraint)
    return made


def test_the_intermediate_values_are_the_figure_optuna_draws(monkeypatch):
    """The same lines (a trial's steps in order, grey where it broke a constraint, the pruned
    and running ones too, not those that reported nothing), axis titles and template, titled
    by katuna alone; built without a plotly figure, whose validation of every trace took 7 s
    of 2,000 trials."""
    pruned, running = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING
    trials = [reported(0, range(5)), trial(None), reported(2, range(3), pruned), reported(3, range(0)),
              reported(4, range(4), running), reported(5, range(6), constraint=1.0)]
    study, record = charted({"metric": "loss", "direction": "minimize"}, trials)
    theirs = optunas(optuna.visualization.plot_intermediate_values(study).update_layout(template="plotly_white"))

    def refused(*args, **kwargs):
        raise AssertionError("a plotly figure was built")

    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "__init__", refused)
    ours = json.loads(plots.figure_json(study._storage, record, "intermediate"))
    assert ours["data"] == theirs["data"]
    assert [trace["name"] for trace in ours["data"]] == ["Trial0", "Trial2", "Trial4", "Trial5"]
    for key in ("xaxis", "yaxis", "showlegend", "template"):
        assert ours["layout"][key] == theirs["layout"][key], key
    assert "title" not in ours["layout"], "the page titles the chart"


def test_many_reporting_trials_draw_a_bounded_sample_of_lines_and_says_so():
    """700 trials of 200 steps (140,000 values, under what a chart reads): at most 500 lines
    and 50,000 values, the running trial, the best completed one, the first and the last among
    them, each line from its first step to its last, and the chart says so."""
    trials = [reported(n, range(200), optuna.trial.TrialState.RUNNING if n == 350 else
                       optuna.trial.TrialState.COMPLETE) for n in range(700)]
    study, record = charted({"metric": "loss", "direction": "minimize"}, trials)
    figure = json.loads(plots.figure_json(study._storage, record, "intermediate"))
    lines = {int(trace["name"].removeprefix("Trial")): trace for trace in figure["data"]}
    assert len(lines) == 500 and {0, 699, 350, study.best_trial.number} <= set(lines)
    assert sum(len(trace["x"]) for trace in lines.values()) <= 50_000
    assert all(trace["x"][0] == 0 and trace["x"][-1] == 199 for trace in lines.values())
    assert figure["layout"]["title"]["text"] == "from 500 of 700 trials, each line at 100 of its steps at most"


def test_a_trial_of_a_hundred_thousand_steps_is_drawn_at_an_even_sample_of_them():
    """One trial that reported 100,000 values: one line of 50,000 of them, its first and last
    steps among them, each at its own value."""
    study, record = charted({"metric": "loss", "direction": "minimize"}, [reported(0, range(100_000))])
    figure = json.loads(plots.figure_json(study._storage, record, "intermediate"))
    (line,) = figure["data"]
    assert len(line["x"]) == 50_000 and line["x"][0] == 0 and line["x"][-1] == 99_999
    assert all(value == 1.0 / (step + 1) for step, value in zip(line["x"], line["y"], strict=True))
    assert figure["layout"]["title"]["text"] == "each line at 50,000 of its steps at most"


def test_a_slice_names_a_categorical_parameter_s_text_values_as_written():
    """Optuna's slice places and labels a categorical value by its ``repr`` (``'adam'``, quoted,
    where the trial table and the contour say ``adam``): katuna's labels them as written, markup
    as text, each point staying where Optuna placed it; a number keeps its label."""
    definition = study_definition(name="charted", maxTrials=100, parameters=[
        {"name": "opt", "type": "categorical", "values": ["adam", "<b>sgd</b>", 3]},
        {"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        trialTemplate={"command": ["train", "${trialParameters.opt}", "${trialParameters.x}"]})
    spec = parse_study(definition)
    space = {"opt": optuna.distributions.CategoricalDistribution(["adam", "<b>sgd</b>", 3]), "x": SPACE["x"]}
    study = optuna.create_study(study_name="charted", storage=optuna.storages.InMemoryStorage())
    study.add_trials([optuna.trial.create_trial(params={"opt": opt, "x": x}, distributions=space, value=x)
                      for opt, x in (("adam", 0.1), ("<b>sgd</b>", 0.2), (3, 0.3))])
    record = StudyRecord(spec, definition, "/tmp", "uid-charted", status="completed")
    figure = json.loads(plots.figure_json(study._storage, record, "slice", params=["opt", "x"]))
    axis = next(axis for name, axis in figure["layout"].items() if name.startswith("xaxis") and axis["title"]["text"] == "opt")
    assert dict(zip(axis["tickvals"], axis["ticktext"], strict=True)) == {
        "'adam'": "adam", "'&lt;b&gt;sgd&lt;/b&gt;'": "&lt;b&gt;sgd&lt;/b&gt;", "3": "3"}
    assert {x for trace in figure["data"] for x in trace["x"]} >= set(axis["tickvals"]) - {"3"}
