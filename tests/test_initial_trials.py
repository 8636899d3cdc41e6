"""Initial trials (``initialTrials``): points the first trials run, in order, each once, before
the sampler's own suggestions, as Optuna's ``enqueue_trial`` runs them; checked at submission."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import app_client, run_study, study_definition
from http_helpers import Service, Sink, run_katuna

from functions.adapters.sqlite_store import SqliteStore
from functions.core import samplers
from functions.core.errors import InvalidStudy
from functions.core.events import study_created
from functions.core.formats import load_study
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.handlers import asking, suggest
from functions.settings import Settings

GIVEN = [{"x": 1.5, "act": "tanh"}, {"x": -2.0}, {"act": "relu", "n": 3}]


def _study(name: str = "given", **overrides) -> dict:
    """A study of three parameters whose trials run a real subprocess, giving :data:`GIVEN`."""
    definition = study_definition(name, **overrides)
    definition["parameters"] = [{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
                                {"name": "act", "type": "categorical", "values": ["relu", "tanh"]},
                                {"name": "n", "type": "int", "min": 1, "max": 9, "step": 2}]
    definition["trialTemplate"]["command"] += ["--y", "${trialParameters.n}"]
    definition["trialTemplate"]["env"] = {"ACT": "${trialParameters.act}"}
    definition.setdefault("initialTrials", GIVEN)
    return definition


def _params(store: SqliteStore, name: str) -> list[dict]:
    return [t.params for t in store.trials(name)]


def _problems(definition: dict) -> list[str]:
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    return [str(p) for p in refused.value.problems]


def test_the_first_trials_run_the_given_points_in_order_and_the_sampler_draws_what_they_leave_out(
        embedded, tmp_path: Path):
    record = run_study(embedded, _study(maxTrials=5, parallelism=2, algorithm={"name": "tpe", "seed": 3}), tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("given")
    assert [t.initial_trial for t in trials] == [0, 1, 2, None, None]
    for trial, given in zip(trials, GIVEN, strict=False):
        assert {k: trial.params[k] for k in given} == given
        assert set(trial.params) == {"x", "act", "n"}, "the parameters an entry leaves out are drawn"
    study = optuna.load_study(study_name="given", storage=embedded.store.optuna_storage())
    assert [t.system_attrs.get("fixed_params") is not None for t in study.trials] == [True] * 3 + [False] * 2


def test_katuna_run_runs_the_given_points_first_and_a_second_run_gives_them_no_more(tmp_path: Path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(_study(maxTrials=4)))
    assert run_katuna("run", "study.yaml", cwd=tmp_path).returncode == 0
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        first = store.trials("given")
        assert [t.initial_trial for t in first] == [0, 1, 2, None]
        assert [{k: t.params[k] for k in given} for t, given in zip(first, GIVEN, strict=False)] == GIVEN
        held = len(optuna.load_study(study_name="given", storage=store.optuna_storage()).trials)
    finally:
        store.close()
    again = run_katuna("run", "study.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    shown = run_katuna("show", "given", cwd=tmp_path)
    assert "initial trials: 3 of the 3 given asked for" in shown.stdout
    detail = run_katuna("show", "given", "1", cwd=tmp_path)
    assert "given: initialTrials[1]" in detail.stdout, detail.stdout
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert store.trials("given") == first, "the run again asks for nothing"
        study = optuna.load_study(study_name="given", storage=store.optuna_storage())
        assert len(study.trials) == held, "nor enqueues anything in Optuna's storage"
    finally:
        store.close()


@pytest.mark.parametrize(("entries", "path", "message"), [
    ([{"x": 0.1, "z": 1}], "initialTrials[0].z", "not a parameter of the study; expected one of x, act, n"),
    ([{"x": "0.5"}], "initialTrials[0].x", "expected a number, got a string"),
    ([{"x": True}], "initialTrials[0].x", "expected a number, got a boolean"),
    ([{"x": 7.5}], "initialTrials[0].x", "expected a value in [-5.0, 5.0], got 7.5"),
    ([{"act": "gelu"}], "initialTrials[0].act", 'expected one of "relu", "tanh", got "gelu"'),
    ([{"n": 4}], "initialTrials[0].n", "expected a value in [1, 9] on the step 2, got 4"),
    ([{"n": 2.5}], "initialTrials[0].n", "expected a value in [1, 9] on the step 2, got 2.5"),
    ([{}], "initialTrials[0]", "expected a mapping of parameter names to values (at least one), got an empty"),
    ([[0.1]], "initialTrials[0]", "expected a mapping of parameter names to values (at least one), got a list"),
    ({"x": 0.1}, "initialTrials", "expected a list of mappings of parameter names to values, got a mapping"),
    ([{"x": 0.1}] * 5, "initialTrials", "expected at most maxTrials (4): each entry is a trial of the study; got 5"),
])
def test_an_entry_off_the_space_is_refused_naming_its_path_and_what_was_expected(entries, path: str, message: str):
    [problem] = _problems(_study(initialTrials=entries))
    assert problem.startswith(f"{path}: {message}"), problem


def test_every_bad_entry_is_listed_at_once_and_more_than_a_thousand_are_refused_unread():
    found = _problems(_study(initialTrials=[{"x": 0.1}, {"x": 9}, {"act": 1, "q": 2}]))
    assert [p.split(":")[0] for p in found] == ["initialTrials[1].x", "initialTrials[2].act", "initialTrials[2].q"]
    [problem] = _problems(_study(maxTrials=None, timeBudget="1h", initialTrials=[{"x": "bad"}] * 1001))
    assert problem == "initialTrials: expected at most 1,000; got 1,001 entries"


def test_a_value_is_kept_as_its_parameter_holds_it():
    spec = parse_study(_study(initialTrials=[{"x": 1, "n": 3.0, "act": "relu"}]))
    [entry] = spec.initial_trials
    assert entry == {"x": 1.0, "n": 3, "act": "relu"}
    assert (type(entry["x"]), type(entry["n"])) == (float, int)


def test_a_conditional_parameter_is_given_only_with_the_values_it_applies_to():
    definition = _study(initialTrials=[{"act": "relu", "n": 3}, {"n": 3}, {"act": "tanh", "n": 3}])
    definition["parameters"][2]["when"] = {"act": "relu"}
    found = _problems(definition)
    assert found == ["initialTrials[1].n: applies only when act is relu; expected act given too",
                     "initialTrials[2].n: does not apply: it applies only when act is relu"]


def test_over_the_api_a_bad_entry_is_refused_by_its_path_and_nothing_is_stored(tmp_path: Path):
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url)
    try:
        kept = _study("kept", initialTrials=[{"x": 0.5}])
        created = service.request("POST", "/studies", json.dumps(kept), {"Content-Type": "application/json"})
        assert created[0] == 201, created[2]
        before = service.json("GET", "/studies")[1]
        bad = _study(initialTrials=[{"x": 0.5}, {"x": 6, "act": "gelu"}])
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(bad), {"Content-Type": "application/yaml"})
        assert status == 422, body
        assert [(p["path"], p["message"]) for p in json.loads(body)["problems"]] == [
            ("initialTrials[1].act", 'expected one of "relu", "tanh", got "gelu"'),
            ("initialTrials[1].x", "expected a value in [-5.0, 5.0], got 6")]
        assert service.request("GET", "/studies/given")[0] == 404
        assert service.json("GET", "/studies")[1] == before
        assert service.json("GET", "/studies/kept")[1]["initialTrials"] == {"given": 1, "asked": 0}
    finally:
        service.close()
        sink.close()


def test_a_redelivered_creating_event_gives_no_entry_twice_and_a_discarded_one_runs_next(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        definition = _study(maxTrials=6, parallelism=3, initialTrials=GIVEN[:2])
        record = runner.submit(parse_study(definition), definition, tmp_path)
        created = study_created(record.name, record.uid)
        for _ in range(2):
            with runner.store.transaction():
                suggest.handle(created, runner.deps)
        trials = runner.store.trials("given")
        assert [t.initial_trial for t in trials][:2] == [0, 1]
        assert [t.initial_trial for t in trials[2:]] == [None] * (len(trials) - 2), "each entry asked once"
        study = optuna.load_study(study_name="given", storage=runner.store.optuna_storage())
        assert [t.state for t in study.trials].count(optuna.trial.TrialState.WAITING) == 0
        assert sum("fixed_params" in t.system_attrs for t in study.trials) == 2, "each entry enqueued once"
        with runner.store.transaction():
            asking.discard(runner.store.get_study("given"), runner.deps, 1)
            suggest.handle(created, runner.deps)
        [again] = [t for t in runner.store.trials("given") if t.number > trials[-1].number]
        assert (again.initial_trial, again.params["x"]) == (1, GIVEN[1]["x"]), \
            "asked after a trial of the sampler's, which found no waiting trial, the entry is found"
    finally:
        runner.close()


def _grid(**overrides) -> dict:
    definition = _study("grid", algorithm={"name": "grid", "seed": 4}, parallelism=1, **overrides)
    definition["parameters"][0] = {"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 0.5}
    definition["parameters"][2]["max"] = 3
    del definition["maxTrials"]
    return definition


def test_a_grid_runs_the_given_points_first_and_visits_every_other_once(embedded, tmp_path: Path):
    given = [{"x": 1.0, "act": "tanh", "n": 3}, {"x": 0.0, "act": "relu", "n": 1}]
    record = run_study(embedded, _grid(initialTrials=given), tmp_path)
    assert record.status == "completed"
    points = [tuple(sorted(p.items())) for p in _params(embedded.store, "grid")]
    assert points[:2] == [tuple(sorted(g.items())) for g in given]
    assert len(points) == len(set(points)) == 12, "the grid's 12 points, each once"


def test_a_grid_takes_only_whole_distinct_points_not_those_its_warm_start_covers(embedded, tmp_path: Path):
    found = _problems(_grid(initialTrials=[{"x": 0.5}, {"x": 0.5, "act": "relu", "n": 1},
                                           {"x": 0.5, "act": "relu", "n": 1.0}]))
    assert found == ["initialTrials[0].act: missing; the grid runs a given point whole: expected a value of each "
                     "parameter",
                     "initialTrials[0].n: missing; the grid runs a given point whole: expected a value of each "
                     "parameter",
                     "initialTrials[2]: the point of initialTrials[1] again; expected each point of the grid once, "
                     "as the grid visits it once"]
    point = {"x": 0.5, "act": "relu", "n": 1}
    definition = _grid(initialTrials=[point], warmStart={"trials": [{"params": point, "value": 1.0}]})
    with pytest.raises(InvalidStudy) as refused:
        embedded.submit(parse_study(definition), definition, tmp_path)
    assert [str(p) for p in refused.value.problems] == [
        "initialTrials[0]: a point of the grid the warm start's known results cover, which the grid does not "
        "visit again; expected a point they leave"]
    assert not embedded.store.list_studies()


def test_several_objectives_run_the_given_points_first(embedded, tmp_path: Path):
    definition = _study(maxTrials=4, algorithm={"name": "nsga2", "seed": 1},
                        objective={"metrics": [{"name": "loss", "direction": "minimize"},
                                               {"name": "size", "direction": "minimize"}]})
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("given")
    assert [t.initial_trial for t in trials] == [0, 1, 2, None]
    assert [{k: t.params[k] for k in given} for t, given in zip(trials, GIVEN, strict=False)] == GIVEN
    assert all(len(t.values or ()) == 2 for t in trials)


def test_the_api_the_cli_and_the_dashboard_mark_a_given_trial(embedded, tmp_path: Path):
    run_study(embedded, _study(maxTrials=4), tmp_path)
    with app_client(tmp_path / "katuna.db") as client:
        trials = client.get("/studies/given/trials").get_json()
        assert [t.get("initialTrial") for t in trials] == [0, 1, 2, None]
        assert client.get("/studies/given").get_json()["initialTrials"] == {"given": 3, "asked": 3}
        page = client.get("/ui/studies/given/trials/2").get_data(as_text=True)
        assert "initialTrials[2] of the study" in page
        sampled = client.get("/ui/studies/given/trials/3").get_data(as_text=True)
        assert 'id="trial-given"' not in sampled


def _pbt(**overrides) -> dict:
    """Katib's simple-pbt in the native format, its trial program this repository's."""
    experiment = yaml.safe_load((Path(__file__).parent / "data" / "katib_examples" / "simple-pbt.yaml").read_text())
    native = load_study(yaml.safe_dump(experiment))[0].to_dict()
    command = native["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"]
    command[:2] = [sys.executable, str(Path(__file__).parent / "trials" / "katib_pbt.py")]
    native["trialTemplate"] = {"command": command, "maxAttempts": 1}
    return native | {"maxTrials": 7, "maxFailedTrials": 0} | overrides


def test_population_based_training_runs_the_given_points_as_members_of_its_first_generation(
        embedded, tmp_path: Path):
    given = [{"lr": 0.0123}, {"lr": 0.0005}]
    record = run_study(embedded, _pbt(initialTrials=given), tmp_path)
    assert record.status == "completed", record.reason
    trials = embedded.store.trials("simple-pbt")
    assert [(t.params, t.generation, t.initial_trial) for t in trials[:2]] == [(g, 0, i) for i, g in enumerate(given)]
    [problem] = _problems(_pbt(initialTrials=[{"lr": 0.001}] * 6))
    assert problem == ("initialTrials: expected at most n_population (5): pbt runs them as members of its first "
                       "generation; got 6 entries")


def test_a_normal_parameters_given_value_reaches_the_trial_as_given(embedded, tmp_path: Path):
    definition = _study(maxTrials=2, initialTrials=[{"x": 0.3}, {"x": 7.25}])
    definition["parameters"][0]["distribution"] = "normal"
    run_study(embedded, definition, tmp_path)
    assert [t.params["x"] for t in embedded.store.trials("given")] == [0.3, 7.25], \
        "a normal's bounds do not clip, so a given value beyond them is taken too"


@pytest.mark.parametrize("algorithm", sorted(set(samplers.REGISTRY) - {"grid", "pbt"}))
def test_every_sampler_asks_the_given_points_first_and_draws_the_rest(tmp_path: Path, algorithm: str):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        definition = _study(maxTrials=4, parallelism=4, algorithm={"name": algorithm, "seed": 2},
                            initialTrials=[{"x": 1.5, "n": 7}, {"act": "relu"}])
        record = runner.submit(parse_study(definition), definition, tmp_path)
        with runner.store.transaction():
            suggest.handle(study_created(record.name, record.uid), runner.deps)
        first, second, *rest = runner.store.trials("given")
        assert ({k: first.params[k] for k in ("x", "n")}, second.params["act"]) == ({"x": 1.5, "n": 7}, "relu")
        assert [t.initial_trial for t in (first, second, *rest)] == [0, 1] + [None] * len(rest)
    finally:
        runner.close()


def test_katuna_render_shows_the_job_of_the_first_given_point(tmp_path: Path):
    definition = _study(initialTrials=[{"x": 1.25, "act": "tanh"}])
    definition["trialTemplate"]["image"] = "python:3.12"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    rendered = run_katuna("render", "study.yaml", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    [container] = yaml.safe_load(rendered.stdout)["spec"]["template"]["spec"]["containers"]
    assert container["command"][2:4] == ["--x", "1.25"]
    assert {"name": "ACT", "value": "tanh"} in container["env"]
