"""Warm start: known results given to the sampler before the first trial, not counted as trials."""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import sqlite_utils
import yaml
from conftest import run_study, study_definition, undo_trial_changes
from http_helpers import Service, Sink, run_katuna
from optuna.distributions import FloatDistribution

from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import InvalidStudy
from functions.core.events import ROUTES
from functions.core.limits import Limits
from functions.core.records import TrialRecord
from functions.core.skopt_sampler import fitted
from functions.core.store_port import has_study
from functions.core.validate import parse_study
from functions.core.views import study_view
from functions.embedded import Embedded
from functions.settings import Settings


def test_inline_known_results_inform_the_sampler_without_counting_as_trials(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=4, algorithm={"name": "tpe", "seed": 2, "settings": {"n_startup_trials": 2}},
                                  warmStart={"trials": [{"params": {"x": 2.0}, "value": 0.0},
                                                        {"params": {"x": -4.0}, "value": 36.0},
                                                        {"params": {"x": 4.5}, "value": 6.25}]})
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("demo")
    assert [t.number for t in trials] == [3, 4, 5, 6], "the study's own trials come after the known ones"
    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    assert [t.params["x"] for t in study.trials[:3]] == [2.0, -4.0, 4.5]
    assert len(study.trials) == 7
    assert embedded.store.best_trials("demo", 1)[0].number >= 3


def test_a_study_starts_warm_from_an_earlier_one(embedded, tmp_path: Path):
    run_study(embedded, study_definition(name="first", maxTrials=3), tmp_path)
    run_study(embedded, study_definition(name="second", maxTrials=2, warmStart={"study": "first"}), tmp_path)
    first = {t.params["x"] for t in embedded.store.trials("first")}
    second = optuna.load_study(study_name="second", storage=embedded.store.optuna_storage())
    assert {t.params["x"] for t in second.trials[:3]} == first
    assert len(embedded.store.trials("second")) == 2


@pytest.mark.parametrize("algorithm", ["tpe", "random"])
def test_a_seeded_study_started_warm_from_one_of_its_seed_asks_for_other_points_than_those_it_knows(
        embedded, tmp_path: Path, algorithm: str):
    """Each trial's sampler is seeded from the study seed and the trial's number, the known
    results' numbers first: seeded from its own count alone, the study asked for the very
    points it was told of, and spent its budget on them again."""
    seeded = {"name": algorithm, "seed": 1}
    run_study(embedded, study_definition(name="first", maxTrials=3, parallelism=1, algorithm=seeded), tmp_path)
    run_study(embedded, study_definition(name="again", maxTrials=3, parallelism=1, algorithm=seeded,
                                         warmStart={"study": "first"}), tmp_path)
    known = {t.params["x"] for t in embedded.store.trials("first")}
    asked = {t.params["x"] for t in embedded.store.trials("again")}
    assert len(asked) == 3 and not asked & known, (known, asked)


def test_known_results_must_fit_the_space():
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(warmStart={"trials": [{"params": {"x": 99.0}, "value": 1.0},
                                                           {"params": {"x": 1.0}}]}))
    found = [str(p) for p in caught.value.problems]
    assert found == ["warmStart.trials[0].params.x: expected a value in [-5.0, 5.0], got 99.0",
                     "warmStart.trials[1]: expected value (or values: a list of 1) with finite numbers"]


def test_a_known_result_of_a_study_of_several_objectives_is_told_to_give_values_one_per_objective():
    """``value`` alone, or ``values`` short of one, is refused naming the objectives in the order
    ``values`` lists them, not offered ``value`` as if it would do."""
    objective = {"metrics": [{"name": "acc", "direction": "maximize"}, {"name": "latency", "direction": "minimize"}]}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(objective=objective, warmStart={"trials": [
            {"params": {"x": 1.0}, "value": 0.9}, {"params": {"x": 1.0}, "values": [0.9]}]}))
    assert [str(p) for p in caught.value.problems] == [
        "warmStart.trials[0]: expected values: a list of 2 finite numbers, one per objective (acc, latency), "
        "got value (one number)",
        "warmStart.trials[1]: expected values: a list of 2 finite numbers, one per objective (acc, latency)"]


def test_a_warm_start_from_a_study_the_database_lacks_is_refused_and_nothing_is_stored(embedded, tmp_path: Path):
    later = study_definition(name="second", maxTrials=2, warmStart={"study": "first"})
    with pytest.raises(InvalidStudy) as caught:
        embedded.submit(parse_study(later), later, tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "warmStart.study: no study named 'first' in this database; expected the name of an earlier study whose "
        "completed trials the sampler learns from"]
    assert embedded.store.list_studies() == []
    run_study(embedded, study_definition(name="first", maxTrials=2), tmp_path)
    embedded.submit(parse_study(later), later, tmp_path)
    embedded.store.delete_study("first")
    assert embedded.submit(parse_study(later), later, tmp_path).name == "second", \
        "the identical study submitted again (to resume it) is not refused"


def _shown(tmp_path: Path) -> str:
    """What ``katuna show second`` prints for the database in ``tmp_path``; it must exit 0."""
    shown = run_katuna("show", "second", "--db", str(tmp_path / "katuna.db"), cwd=tmp_path,
                       env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return shown.stdout


def completed(store: SqliteStore, name: str) -> list[tuple[float, float]]:
    """The study's completed trials as (x, loss), by number."""
    return [(t.params["x"], t.values[0]) for t in store.trials(name, ("COMPLETE",))]


def known(store: SqliteStore, name: str, count: int) -> list[tuple[float, float]]:
    """The first ``count`` trials of the study's sampler as (x, loss): its known results."""
    study = optuna.load_study(study_name=name, storage=store.optuna_storage())
    return [(t.params["x"], t.value) for t in study.trials[:count]]


def test_a_warm_start_keeps_the_results_of_a_study_deleted_before_its_first_trial(embedded, tmp_path: Path):
    run_study(embedded, study_definition(name="first", maxTrials=3), tmp_path)
    taken = completed(embedded.store, "first")
    later = study_definition(name="second", maxTrials=2, warmStart={"study": "first"})
    embedded.submit(parse_study(later), later, tmp_path)
    assert run_katuna("delete", "first", "--db", str(tmp_path / "katuna.db"), cwd=tmp_path).returncode == 0
    fresh = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        assert fresh.run("second").status == "completed"
        assert known(fresh.store, "second", 3) == taken, "the results 'first' held when 'second' was submitted"
        assert [t.number for t in fresh.store.trials("second")] == [3, 4], "its own trials come after them"
    finally:
        fresh.close()


def test_a_study_submitted_again_keeps_the_results_it_took_though_the_earlier_study_changed(embedded, tmp_path: Path):
    run_study(embedded, study_definition(name="first", maxTrials=3), tmp_path)
    taken = completed(embedded.store, "first")
    later = study_definition(name="second", maxTrials=2, warmStart={"study": "first"})
    stored = embedded.submit(parse_study(later), later, tmp_path)
    embedded.store.delete_study("first")
    run_study(embedded, study_definition(name="first", maxTrials=4, algorithm={"name": "random", "seed": 7}), tmp_path)
    assert embedded.submit(parse_study(later), later, tmp_path).uid == stored.uid
    assert run_study(embedded, later, tmp_path).status == "completed"
    assert known(embedded.store, "second", 3) == taken
    assert [t.number for t in embedded.store.trials("second")] == [3, 4], \
        "the sampler learnt from the 3 results taken at the first submission, not the 4 of the new 'first'"


def test_a_warm_start_with_more_known_results_than_the_limit_is_refused_and_nothing_is_stored(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(warm_start=3)))
    try:
        run_study(runner, study_definition(name="first", maxTrials=3), tmp_path)
        later = study_definition(name="second", warmStart={"study": "first", "trials": [{"params": {"x": 0.0}, "value": 0.0}]})
        with pytest.raises(InvalidStudy) as caught:
            runner.submit(parse_study(later), later, tmp_path)
        assert [str(p) for p in caught.value.problems] == [
            "warmStart.study: expected at most 3 known results (set by KATUNA_MAX_WARM_START), got more than 3: at "
            "least 3 completed trials of 'first' that fit this space and 1 in warmStart.trials; give the ones to "
            "learn from in a file (warmStart.file), or raise the limit"]
        assert [s.name for s in runner.store.list_studies()] == ["first"]
        del later["warmStart"]["trials"]
        assert runner.submit(parse_study(later), later, tmp_path).name == "second"
    finally:
        runner.close()


def stored_before_kept_results(path: Path) -> None:
    """The database as a katuna that took an earlier study's results when the study started
    left it: without the column they are kept in (the studies in it have none)."""
    db = sqlite_utils.Database(path)
    undo_trial_changes(db)
    db.execute("PRAGMA user_version = 11")
    db.close()


@pytest.mark.parametrize("deleted", [False, True])
def test_a_study_stored_before_results_were_kept_starts_warm_or_fails_saying_why(tmp_path: Path, deleted: bool):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    run_study(runner, study_definition(name="first", maxTrials=3), tmp_path)
    taken = completed(runner.store, "first")
    later = study_definition(name="second", maxTrials=2, warmStart={"study": "first"})
    runner.submit(parse_study(later), later, tmp_path)
    if deleted:
        runner.store.delete_study("first")
    runner.close()
    stored_before_kept_results(tmp_path / "katuna.db")
    migrated = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        assert migrated.store.get_study("second").warm_results is None
        record = migrated.run("second")
        if deleted:
            assert (record.status, record.reason) == ("failed", (
                "no study named 'first' in this database any more (warmStart.study), and this study was stored before "
                "katuna kept a warm start's results with the study: rather than start cold it fails; delete it and "
                "submit it again with the warm start it should have"))
            assert migrated.store.trials("second") == []
        else:
            assert record.status == "completed"
            assert known(migrated.store, "second", 3) == taken
    finally:
        migrated.close()


@pytest.mark.parametrize(("content", "problems"), [
    ("x,loss\n1.0,0.5\nabc,0.1\n", ["known.csv line 3, column x: expected a number, got 'abc'"]),
    ("x,loss\n10,0.1\n", ["known.csv line 2, column x: expected a value in [-5.0, 5.0], got 10"]),
    ("x,loss\n1.0,high\n", ["known.csv line 2, column loss: expected the objective's value, a finite number; got 'high'"]),
    ("x,loss\n1_0,0.1\n", ["known.csv line 2, column x: expected a number, got '1_0'"]),
    ("x,loss\n1.0,1_000\n", ["known.csv line 2, column loss: expected the objective's value, a finite number; got "
                             "'1_000'"]),
    ("y,loss\n1,0.1\n2,0.2\n3,0.3\n", ["known.csv line 1: column 'y' is no parameter or objective of the study; "
                                        "expected columns among x, loss",
                                        "known.csv line 1: no column 'x' (the file has y, loss); expected one per "
                                        "parameter and per objective"]),
    ("x\n1\n2\n", ["known.csv line 1: no column 'loss' (the file has x); expected one per parameter and per "
                    "objective"]),
    ("x,loss,note\n1,0.1,good\n", ["known.csv line 1: column 'note' is no parameter or objective of the study; "
                                    "expected columns among x, loss"]),
    ("x,loss,x\n1,0.1,2\n", ["known.csv line 1: the header names 'x' more than once; expected each column once"]),
    ("x,loss\n1,0.1\n1,0.1,7\n", ["known.csv line 3: 3 cells; expected 2, one per column of the header (an empty "
                                   "one for a parameter a trial did not have)"]),
    ("loss,x\n0.1\n", ["known.csv line 2: 1 cell; expected 2, one per column of the header (an empty one for a "
                        "parameter a trial did not have)"]),
    ("x,loss\n", ["known.csv holds no known results; expected at least one"])])
def test_a_bad_known_results_file_names_the_file_the_line_the_column_and_the_value(content: str, problems: list[str]):
    import yaml

    from functions.core.formats import load_study

    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(study_definition(warmStart={"file": "known.csv"})), read_file=lambda path: content)
    assert [str(p) for p in caught.value.problems] == [f"warmStart.file: {p}" for p in problems]


def test_known_results_of_a_study_whose_objective_is_refused_are_not_refused_for_it_too():
    """With no objective read, no known result can be told to hold one value per objective: the
    objective's own problem is the one listed."""
    definition = study_definition(objective={"metrics": "loss"},
                                  warmStart={"trials": [{"params": {"x": 1.0}, "value": 0.5}]})
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert [p.path for p in caught.value.problems if p.path.startswith("warmStart")] == []
    assert [p.path for p in caught.value.problems if p.path.startswith("objective")], caught.value.problems


def test_a_csv_file_a_spreadsheet_saved_with_a_byte_order_mark_is_read():
    import yaml

    from functions.core.formats import load_study

    spec, _ = load_study(yaml.safe_dump(study_definition(warmStart={"file": "known.csv"})),
                         read_file=lambda path: "\ufeffx,loss\r\n1.5,0.25\r\n")
    assert [(r.params, r.values) for r in spec.warm_start.trials] == [({"x": 1.5}, (0.25,))]


def _with_choice(values: list, trials: list) -> dict:
    """A study with the float ``x`` and a categorical ``c`` of ``values``, warm started with ``trials``."""
    definition = study_definition(warmStart={"trials": trials})
    definition["parameters"].append({"name": "c", "type": "categorical", "values": values})
    definition["trialTemplate"]["command"].append("--c=${trialParameters.c}")
    return definition


@pytest.mark.parametrize(("params", "problem"), [
    ({"x": True, "c": "a"}, "params.x: expected a number, got a boolean (true)"),
    ({"x": "0.5", "c": "a"}, 'params.x: expected a number, got a string ("0.5")'),
    ({"x": 0.5, "c": 1}, 'params.c: expected one of true, "a", got 1'),
    ({"x": 0.5, "c": "true"}, 'params.c: expected one of true, "a", got "true"'),
])
def test_a_known_value_of_another_kind_than_its_parameters_is_refused(params: dict, problem: str):
    with pytest.raises(InvalidStudy) as caught:
        parse_study(_with_choice([True, "a"], [{"params": params, "value": 1.0}]))
    assert [str(p) for p in caught.value.problems] == [f"warmStart.trials[0].{problem}"]


def test_a_known_result_with_value_and_values_is_refused():
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(warmStart={"trials": [{"params": {"x": 1.0}, "value": 1.0, "values": [2.0]}]}))
    assert [str(p) for p in caught.value.problems] == [
        "warmStart.trials[0].values: given with value; expected value (one objective's) or values (one per "
        "objective), not both"]


def test_a_known_value_of_its_parameters_kind_is_taken():
    spec = parse_study(_with_choice([True, 16.0], [{"params": {"x": 1, "c": True}, "value": 1.0},
                                                   {"params": {"x": 0.5, "c": 16}, "value": 2.0}]))
    assert [r.params for r in spec.warm_start.trials] == [{"x": 1, "c": True}, {"x": 0.5, "c": 16}]


def _int_and_discrete(trials: list) -> dict:
    """A study of an int ``x`` and a discrete ``y`` of 32 and 64, warm started with ``trials``."""
    definition = study_definition(maxTrials=1, parallelism=1, warmStart={"trials": trials}, parameters=[
        {"name": "x", "type": "int", "min": -5, "max": 5}, {"name": "y", "type": "discrete", "values": [32, 64]}])
    definition["trialTemplate"]["command"] += ["--y", "${trialParameters.y}"]
    return definition


def test_a_whole_number_written_as_a_float_is_taken_as_the_parameters_own_value(embedded, tmp_path: Path):
    """JSON has one number: ``1.0`` for an int is 1 and ``32.0`` for discrete 32 is 32, and the
    sampler learns the parameter's own values."""
    run_study(embedded, _int_and_discrete([{"params": {"x": 1.0, "y": 32.0}, "value": 1.0}]), tmp_path)
    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    known = study.trials[0].params
    assert known == {"x": 1, "y": 32} and [type(v) for v in known.values()] == [int, int]


def test_a_fraction_for_an_int_or_off_a_discrete_value_is_refused_naming_the_field():
    with pytest.raises(InvalidStudy) as caught:
        parse_study(_int_and_discrete([{"params": {"x": 1.5, "y": 32}, "value": 1.0},
                                       {"params": {"x": 1, "y": 32.5}, "value": 1.0}]))
    assert [str(p) for p in caught.value.problems] == [
        "warmStart.trials[0].params.x: expected a value in [-5, 5], got 1.5",
        "warmStart.trials[1].params.y: expected one of 32, 64, got 32.5"]


def test_a_bad_entry_of_a_json_known_results_file_names_the_file_the_entry_and_the_field():
    import json

    import yaml

    from functions.core.formats import load_study

    entries = [{"params": {"x": 1.0}, "value": 0.5}, {"params": {"x": 1.0, "z": 2}, "value": 0.5}]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(study_definition(warmStart={"file": "known.json"})),
                   read_file=lambda path: json.dumps(entries))
    assert [str(p) for p in caught.value.problems] == [
        "warmStart.file: known.json entry [1], params.z: not a parameter of the study; expected one of x"]


@pytest.mark.slow
def test_the_cli_reads_known_results_from_csv_and_json_files(tmp_path: Path):
    import json

    import yaml

    (tmp_path / "known.csv").write_text("x,loss\n2.0,0.0\n-1.0,9.0\n")
    (tmp_path / "known.json").write_text(json.dumps([{"params": {"x": 3.0}, "value": 1.0}]))
    for name, file in (("from-csv", "known.csv"), ("from-json", "known.json")):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(
            study_definition(name=name, maxTrials=2, warmStart={"file": file})))
        assert run_katuna("run", f"{name}.yaml", cwd=tmp_path).returncode == 0
    from functions.adapters.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "katuna.db")
    try:
        csv_study = optuna.load_study(study_name="from-csv", storage=store.optuna_storage())
        assert [(t.params["x"], t.value) for t in csv_study.trials[:2]] == [(2.0, 0.0), (-1.0, 9.0)]
        json_study = optuna.load_study(study_name="from-json", storage=store.optuna_storage())
        assert (json_study.trials[0].params["x"], json_study.trials[0].value) == (3.0, 1.0)
        assert len(store.trials("from-csv")) == 2
    finally:
        store.close()


def test_a_service_cannot_read_the_submitters_files():
    import yaml

    from functions.core.formats import load_study

    with pytest.raises(InvalidStudy, match="only the CLI reads files"):
        load_study(yaml.safe_dump(study_definition(warmStart={"file": "known.csv"})))


@pytest.mark.parametrize("sign, expected", [(1.0, [1, 7, 8, 9]), (-1.0, [4, 5, 8, 9])])
def test_past_its_bound_the_gp_is_told_the_better_half_and_the_latest_of_the_rest(sign: float, expected: list[int]):
    study = optuna.create_study()
    study.add_trials([optuna.trial.create_trial(params={"x": float(v)}, distributions={"x": FloatDistribution(0, 9)},
                                                value=v) for v in (5, 1, 7, 2, 9, 8, 6, 3, 4, 0)])
    assert [t.number for t in fitted(study.trials, sign, limit=4)] == expected
    assert fitted(study.trials, sign, limit=10) == study.trials


def broker(service: Service, sink: Sink, ended: str) -> None:
    """Play the broker until the study ``ended`` has ended: deliver each event the service sent
    to ``K_SINK``, and each it replied with, to the functions its type is routed to."""
    delivered, replies = 0, deque()
    deadline = time.monotonic() + 60
    while service.json("GET", f"/studies/{ended}")[1]["status"] == "running":
        assert time.monotonic() < deadline, f"study {ended} did not end"
        if replies:
            headers, body = replies.popleft()
        elif len(sink.received) > delivered:
            headers, body = sink.received[delivered]
            delivered += 1
        else:
            time.sleep(0.05)
            continue
        for function in ROUTES[headers["ce-type"]]:
            status, answer_headers, answer = service.request(
                "POST", f"/functions/{function}", body,
                {k: v for k, v in headers.items() if k.startswith("ce-") or k == "content-type"})
            assert status in (200, 202), (function, status, answer)
            if status == 200:
                replies.append(({k.lower(): v for k, v in answer_headers.items()}, answer))


@pytest.mark.slow
def test_over_the_api_a_study_keeps_the_warm_start_it_was_submitted_with(tmp_path: Path):
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(study_definition(name="first", maxTrials=3)))
    assert run_katuna("run", "first.yaml", cwd=tmp_path).returncode == 0
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url)
    try:
        _, first_trials = service.json("GET", "/studies/first/trials")
        taken = [(t["params"]["x"], t["value"]) for t in first_trials]
        later = study_definition(name="second", maxTrials=2, warmStart={"study": "first"})
        assert service.request("POST", "/studies", yaml.safe_dump(later), {"Content-Type": "application/yaml"})[0] == 201
        assert service.request("DELETE", "/studies/first")[0] == 204
        assert service.request("POST", "/studies", json.dumps(later), {"Content-Type": "application/json"})[0] == 200
        broker(service, sink, "second")
        _, study = service.json("GET", "/studies/second")
        assert (study["status"], study["counts"]["complete"]) == ("completed", 2)
        assert [t["number"] for t in service.json("GET", "/studies/second/trials")[1]] == [3, 4]
    finally:
        service.close()
        sink.close()
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert known(store, "second", 3) == taken
    finally:
        store.close()


def test_an_earlier_studys_results_are_taken_by_metric_name_whatever_its_objectives(embedded, tmp_path: Path):
    """The earlier study minimised ``loss`` and maximised ``size``; the new one lists them the
    other way round: each known result's values are this study's objectives' own, by name. One
    optimising ``size`` alone learns each trial's size, not its loss."""
    both = [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]
    run_study(embedded, study_definition(name="first", maxTrials=3, objective={"metrics": both}), tmp_path)
    metrics = {t.params["x"]: t.metrics for t in embedded.store.trials("first", ("COMPLETE",))}
    for name, objective in (("swapped", {"metrics": both[::-1]}), ("sizes", {"metric": "size", "direction": "maximize"})):
        names = [m["name"] for m in objective.get("metrics", [{"name": objective.get("metric")}])]
        run_study(embedded, study_definition(name=name, maxTrials=1, parallelism=1, objective=objective,
                                             warmStart={"study": "first"}), tmp_path)
        taken = optuna.load_study(study_name=name, storage=embedded.store.optuna_storage()).trials[:3]
        assert {t.params["x"]: t.values for t in taken} == {
            x: [m[n] for n in names] for x, m in metrics.items()}, name


def test_a_warm_start_none_of_whose_trials_can_be_taken_is_refused(embedded, tmp_path: Path):
    run_study(embedded, study_definition(name="first", maxTrials=2), tmp_path)
    later = study_definition(name="second", objective={"metric": "accuracy", "direction": "maximize"},
                             warmStart={"study": "first"})
    with pytest.raises(InvalidStudy) as caught:
        embedded.submit(parse_study(later), later, tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "warmStart.study: no completed trial of 'first' fits this study's space with a value of each of its "
        "objectives (accuracy); expected a study whose completed trials report them"]
    assert [s.name for s in embedded.store.list_studies()] == ["first"]


def steps_to_refuse(runner: Embedded, completed: int, tmp_path: Path) -> int:
    """The SQLite steps a submission takes to refuse a warm start from a study of ``completed``
    trials that all fit, past a limit of 5 known results."""
    runner.store.add_study(replace(runner.store.get_study("first"), spec=replace(runner.store.get_study("first").spec,
                                                                                  name=f"first{completed}")))
    for number in range(completed):
        runner.store.add_trial(TrialRecord(f"first{completed}", number, {"x": number / completed}, "COMPLETE",
                                           values=[1.0], metrics={"loss": 1.0}))
    later = study_definition(name=f"later{completed}", warmStart={"study": f"first{completed}"})
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    runner.store.db.conn.set_progress_handler(count, 100)
    try:
        with pytest.raises(InvalidStudy) as caught:
            runner.submit(parse_study(later), later, tmp_path)
    finally:
        runner.store.db.conn.set_progress_handler(None, 0)
    assert [p.path for p in caught.value.problems] == ["warmStart.study"]
    assert "more than 5" in caught.value.problems[0].message
    return steps[0]


def test_refusing_a_warm_start_past_the_limit_reads_no_more_of_the_earlier_study_than_the_limit_needs(tmp_path: Path):
    """The results of the earlier study are taken until one more than the limit fit: a study of
    thousands of trials costs the refusal what one of a few hundred does, not a read of all of
    them while the submission holds the database's write lock."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(warm_start=5)))
    try:
        run_study(runner, study_definition(name="first", maxTrials=1, parallelism=1), tmp_path)
        small, large = steps_to_refuse(runner, 200, tmp_path), steps_to_refuse(runner, 4_000, tmp_path)
        assert large < 2 * small, (small, large)
    finally:
        runner.close()


def test_a_study_shows_what_its_warm_start_gave_its_sampler(embedded, tmp_path: Path):
    """Known results are no trials of the study, so no listing shows them: the study's view
    (``GET /studies/{name}``, ``katuna show``) says how many were given and how many of the
    earlier study's trials fit and were taken, where the others were left out without a word."""
    run_study(embedded, study_definition(name="first", maxTrials=4, parallelism=1), tmp_path)
    inside = [t for t in embedded.store.trials("first") if t.params["x"] >= 0]
    later = study_definition(name="second", maxTrials=1, parallelism=1,
                             parameters=[{"name": "x", "type": "float", "min": 0.0, "max": 5.0}],
                             warmStart={"study": "first", "trials": [{"params": {"x": 1.0}, "value": 1.0}]})
    run_study(embedded, later, tmp_path)
    assert 0 < len(inside) < 4
    assert study_view(embedded.store, embedded.store.get_study("second"))["warmStart"] == {
        "knownResults": len(inside) + 1, "given": 1, "study": "first", "taken": len(inside)}
    assert study_view(embedded.store, embedded.store.get_study("first"))["warmStart"] is None
    shown = _shown(tmp_path)
    assert f"warm start: {len(inside) + 1} known results (1 given, {len(inside)} taken from 'first'), not counted " \
           "as the study's trials" in shown


def _cmaes_first_generation(embedded, tmp_path: Path, name: str, known: int, **settings) -> list[tuple[float, float]]:
    """The points of the first CMA-ES generation (6 trials in two dimensions) of a study warm
    started with ``known`` results around the optimum (2, 0) of ``loss = (x - 2)² + y²``."""
    near = [(2 + 0.1 * (i % 5 - 2), 0.1 * (i // 5 - 2)) for i in range(known)]
    trials = [{"params": {"x": x, "y": y}, "value": (x - 2) ** 2 + y ** 2} for x, y in near]
    definition = study_definition(
        name=name, maxTrials=6, algorithm={"name": "cmaes", "seed": 3, "settings": settings},
        parameters=[{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
                    {"name": "y", "type": "float", "min": -5.0, "max": 5.0}],
        warmStart={"trials": trials} if trials else None)
    if not trials:
        del definition["warmStart"]
    definition["trialTemplate"]["command"] += ["--y", "${trialParameters.y}"]
    assert run_study(embedded, definition, tmp_path).status == "completed"
    return [(t.params["x"], t.params["y"]) for t in embedded.store.trials(name)]


def _centre(points: list[tuple[float, float]]) -> tuple[float, float]:
    return (sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points))


def test_cmaes_starts_from_the_best_of_ten_or_more_known_results_unless_told_where_to_start(embedded, tmp_path: Path):
    """With ten or more known results, CMA-ES's first run starts where their best tenth is (Optuna's
    Warm Starting CMA-ES); with fewer it starts in the middle of the space, as a cold study does;
    a start given in its settings (``x0``) is kept."""
    cold = _cmaes_first_generation(embedded, tmp_path, "cold", 0)
    warm = _cmaes_first_generation(embedded, tmp_path, "warm", 20)
    few = _cmaes_first_generation(embedded, tmp_path, "few", 9)
    told = _cmaes_first_generation(embedded, tmp_path, "told", 20, x0={"x": -4.0, "y": -4.0}, sigma0=0.05)
    assert math.dist(_centre(cold), (0, 0)) < 1.0 < math.dist(_centre(cold), (2, 0)), cold
    assert math.dist(_centre(warm), (2, 0)) < 0.75, warm
    assert math.dist(_centre(few), (0, 0)) < 1.0 < math.dist(_centre(few), (2, 0)), few
    assert math.dist(_centre(told), (-4, -4)) < 0.5, told


GRID = [{"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 0.5},
        {"name": "y", "type": "categorical", "values": [0, 1, 2]}]
"""A 3 x 3 grid: nine points, x on its step, y a list of numbers."""


def _grid_study(name: str, **overrides) -> dict:
    """A seeded grid study over :data:`GRID`, without maxTrials: the grid ends it."""
    definition = study_definition(name=name, **{"algorithm": {"name": "grid", "seed": 3}, "parameters": GRID,
                                                "parallelism": 1, **overrides})
    definition["trialTemplate"]["command"] += ["--y", "${trialParameters.y}"]
    if "maxTrials" not in overrides:
        del definition["maxTrials"]
    return definition


def _points(embedded, name: str) -> list[tuple]:
    return [(t.params["x"], t.params["y"]) for t in embedded.store.trials(name)]


EVERY_POINT = {(x, y) for x in (0.0, 0.5, 1.0) for y in (0, 1, 2)}


def test_a_grid_study_started_warm_from_one_that_ran_part_of_its_grid_runs_only_the_rest(embedded, tmp_path: Path):
    """Half a grid run in one study, the other study over the same grid warm started from it
    runs the other half: the known points count as visited, its cap is the points left, and
    the grid's end stops it there, in the seeded order of the grid less the known points."""
    run_study(embedded, _grid_study("first", maxTrials=4), tmp_path)
    known = _points(embedded, "first")
    record = run_study(embedded, _grid_study("second", warmStart={"study": "first"}), tmp_path)
    own = _points(embedded, "second")
    assert len(set(known)) == 4 and sorted(own) == sorted(EVERY_POINT - set(known)), (known, own)
    assert (record.status, record.reason) == (
        "completed", "search space exhausted after 5 trials, the grid's other 4 points known from the warm start")
    again = run_study(embedded, _grid_study("again", warmStart={"study": "first"}), tmp_path)
    assert again.status == "completed" and _points(embedded, "again") == own, "the order of the points left is the seed's"
    view = study_view(embedded.store, record)
    assert (view["maxTrials"], view["maxTrialsSetBy"], view["grid"]) == (5, "grid", {"points": 9, "covered": 4})
    assert study_view(embedded.store, embedded.store.get_study("first"))["grid"] == {"points": 9, "covered": 0}
    shown = _shown(tmp_path)
    assert "trials: 5/5 (the grid's 9 points less the 4 its warm start covers)" in shown, shown
    assert "not counted as the study's trials; they cover 4 of the grid's 9 points" in shown, shown


def test_known_results_given_twice_or_with_maxtrials_cover_their_points_once(embedded, tmp_path: Path):
    """Each point a known result lies on counts once, however often it is given; a study's own
    ``maxTrials`` above the points left is cut short by the grid's end, one below them ends it first."""
    given = [{"params": {"x": x, "y": y}, "value": 1.0} for x, y in [(0.0, 0), (0.5, 1), (0.5, 1), (1.0, 2), (0.0, 0)]]
    record = run_study(embedded, _grid_study("twice", maxTrials=9, warmStart={"trials": given}), tmp_path)
    own = _points(embedded, "twice")
    assert sorted(own) == sorted(EVERY_POINT - {(0.0, 0), (0.5, 1), (1.0, 2)}), own
    assert record.reason == "search space exhausted after 6 trials, the grid's other 3 points known from the warm start"
    assert study_view(embedded.store, record)["grid"] == {"points": 9, "covered": 3}
    short = run_study(embedded, _grid_study("short", maxTrials=2, warmStart={"trials": given}), tmp_path)
    assert short.reason.startswith("max trials reached") and _points(embedded, "short") == own[:2]


def test_a_warm_grid_study_restarted_with_a_raised_budget_runs_the_points_left_and_no_known_one(embedded, tmp_path: Path):
    """Restarted with ``maxTrials`` raised, the study goes on over the points neither its trials
    nor its known results visited, and the grid's end stops it below the raised budget."""
    given = [{"params": {"x": x, "y": y}, "value": 1.0} for x, y in [(0.0, 0), (0.5, 1), (1.0, 2), (1.0, 0)]]
    definition = _grid_study("budget", maxTrials=2, warmStart={"trials": given})
    assert run_study(embedded, definition, tmp_path).reason.startswith("max trials reached")
    definition["maxTrials"] = 20
    record = run_study(embedded, definition, tmp_path)
    own = _points(embedded, "budget")
    assert sorted(own) == sorted(EVERY_POINT - {(0.0, 0), (0.5, 1), (1.0, 2), (1.0, 0)}), own
    assert (record.restarts, record.reason) == (
        1, "search space exhausted after 5 trials, the grid's other 4 points known from the warm start")


def test_a_warm_grid_study_delivered_shuffled_and_twice_runs_each_point_left_once(tmp_path: Path):
    """At-least-once delivery, events shuffled and handled up to three times, three trials at
    a time: every point the known results leave runs once, none they cover."""
    from test_delivery import ChaosDelivery

    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    given = [{"params": {"x": x, "y": y}, "value": 1.0} for x, y in [(0.0, 0), (0.5, 1)]]
    definition = _grid_study("chaos", parallelism=3, warmStart={"trials": given})
    try:
        runner.submit(parse_study(definition), definition, tmp_path)
        ChaosDelivery(runner, 7).run("chaos")
        own = _points(runner, "chaos")
        assert sorted(own) == sorted(EVERY_POINT - {(0.0, 0), (0.5, 1)}), own
        assert runner.store.get_study("chaos").status == "completed"
    finally:
        runner.close()


@pytest.mark.parametrize("warm", ["trials", "study"])
def test_a_grid_its_warm_start_covers_wholly_is_refused_naming_the_warm_start(embedded, tmp_path: Path, warm: str):
    """Not one trial would run: the submission is refused at ``warmStart``, nothing stored, as a
    budget that leaves nothing to run is."""
    every = [{"params": {"x": x, "y": y}, "value": 1.0} for x, y in sorted(EVERY_POINT)]
    if warm == "study":
        run_study(embedded, _grid_study("all"), tmp_path)
    definition = _grid_study("covered", warmStart={"trials": every} if warm == "trials" else {"study": "all"})
    with pytest.raises(InvalidStudy) as caught:
        embedded.submit(parse_study(definition), definition, tmp_path)
    assert [(p.path, p.message) for p in caught.value.problems] == [(
        "warmStart", "its known results cover every point of the grid (all 9), so not one trial would run; expected "
                     "known results that leave points of the grid to visit, or another algorithm to learn from them")]
    assert not has_study(embedded.store, "covered")
