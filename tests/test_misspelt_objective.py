"""A study whose objective's name is misspelt (``metric: los`` where the trial prints
``loss=``) stops once its first 3 trials to end all failed for it, saying what to fix, whatever
its ``maxFailedTrials``; a study whose first trials failed otherwise (a crash, nothing
metric-like printed), or that had one complete, goes on. Real trial processes, the real SQLite
store and the handlers as dispatched; on a cluster, Jobs on the Kubernetes stand-in."""

from __future__ import annotations

import json
import queue
import sys
import time
from pathlib import Path

from conftest import katib_job_experiment, run_study, study_definition
from kube_standin.containers import Run
from kube_stub import KubeStub

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core import resource_status, resources
from functions.core.cluster import Cluster
from functions.core.events import TRIAL_FINISHED, Event, study_created
from functions.core.formats import load_study
from functions.core.records import Counts, TrialRecord, Unreported
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

FIRST = 3
"""The trials to end first that, all failing for a misspelt objective, fail the study."""
SIMULATED_RUN = Run(60.0, "epoch=1 loss=0.7 accuracy=0.5\nloss=0.5\n")
"""How each container of the ``simulated_kube`` fixture runs: it prints ``loss``, never ``los``."""

PRINTS_LOSS = "import sys; print('epoch=1 loss=' + sys.argv[1]); sys.exit(3 if float(sys.argv[1]) < -4 else 0)"
"""A trial that prints its metric as ``loss``, and crashes for an ``x`` below -4."""

STOPPED = ("every trial reported other metrics than its objective: objective 'los' never reported, while the first "
           "3 trials report {printed}; every later trial would fail alike, so the study stops. Fix the name in {field} (or "
           "have the trials print the objective under it), then delete this study and submit it again (submitted "
           "again as it is, a failed study stays failed)")


def _misspelt(name: str, program: str = PRINTS_LOSS, **overrides: object) -> dict:
    """A study of 6 trials, one at a time, allowing 5 failures, whose objective is ``los``."""
    fields = {"maxTrials": 6, "parallelism": 1, "maxFailedTrials": 5,
              "objective": {"metric": "los", "direction": "minimize"}, **overrides}
    definition = study_definition(name, **fields)
    definition["trialTemplate"]["command"] = [sys.executable, "-c", program, "${trialParameters.x}"]
    return definition


def _run_delivering_ends_twice(tmp_path: Path, definition: dict) -> SqliteStore:
    """Run the study to its end through the dispatcher, each trial's end delivered twice (as
    at-least-once delivery may), on a fresh store, which is returned."""
    store = SqliteStore(tmp_path / "katuna.db")
    ends: queue.Queue[Event] = queue.Queue()
    executor = LocalExecutor(tmp_path / "logs", ends.put)
    deps = Deps(store, executor, time.time, workdir=str(tmp_path))
    dispatcher = Dispatcher(deps)
    try:
        record, _ = store_study(deps, parse_study(definition), definition)
        pending = [study_created(record.name, record.uid)]
        while not store.get_study(record.name).terminal:
            if not pending:
                pending.append(ends.get(timeout=30))
            event = pending.pop(0)
            twice = 2 if event.type == TRIAL_FINISHED else 1
            pending.extend(later for _ in range(twice) for later in dispatcher.deliver(event))
    finally:
        executor.shutdown()
    return store


def test_a_misspelt_objective_fails_the_study_after_its_first_three_trials_each_end_counted_once(tmp_path: Path):
    store = _run_delivering_ends_twice(tmp_path, _misspelt("typo"))
    try:
        study = store.get_study("typo")
        assert (study.status, study.reason) == ("failed", STOPPED.format(field="objective.metric", printed="loss"))
        assert [t.state for t in store.trials("typo")] == ["FAIL"] * FIRST, "3 of 6, 5 failures allowed"
        assert resource_status.end_reason(study.reason) == "StudyObjectiveNotReported"
    finally:
        store.close()


def test_two_ends_delivered_twice_are_two_trials_and_stop_no_study(tmp_path: Path):
    store = _run_delivering_ends_twice(tmp_path, _misspelt("two", maxTrials=2))
    try:
        study = store.get_study("two")
        assert study.status == "failed" and study.reason.startswith("max trials reached (2)"), study.reason
        assert store.count_trials("two").failed == 2
    finally:
        store.close()


def test_a_crash_or_a_trial_that_printed_no_metric_among_the_first_three_leaves_the_study_to_max_failed_trials(
        embedded, tmp_path: Path):
    crashed = _misspelt("crashed", maxTrials=4, initialTrials=[{"x": -5.0}])
    silent = _misspelt("silent", program="import sys; print('training done', sys.argv[1])", maxTrials=4)
    for definition in (crashed, silent):
        record = run_study(embedded, definition, tmp_path)
        assert record.status == "failed" and record.reason.startswith("max trials reached (4)"), record.reason
        assert embedded.store.count_trials(definition["name"]).failed == 4
    assert embedded.store.get_trial("crashed", 0).reason.startswith("exited with code 3")


TWO_OBJECTIVES = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "latency", "direction": "minimize"}]}
"""Two objectives, ``loss`` and ``latency``: a trial that prints only ``loss=`` reports one of them."""


def test_a_trial_reporting_one_objective_of_two_is_no_sign_of_a_misspelt_name(embedded, tmp_path: Path):
    """``loss`` is an objective of the study, not what ``latency`` is misspelt as: the trials'
    reasons ask no question about the name, and the study goes on to ``maxFailedTrials``; a
    trial that prints ``latncy=`` beside ``loss=`` is asked about ``latncy`` alone, and the
    study stops after 3 trials naming it."""
    partial = _misspelt("partial", program="import sys; print('loss=' + sys.argv[1])", maxTrials=4,
                        objective=TWO_OBJECTIVES)
    record = run_study(embedded, partial, tmp_path)
    assert record.status == "failed" and record.reason.startswith("max trials reached (4)"), record.reason
    assert embedded.store.get_trial("partial", 0).reason.startswith(
        "metrics unavailable: objective 'latency' never reported (expected lines like latency=<number> on its "
        "output); last lines:\n")
    typo = _misspelt("typo2", program="import sys; print('loss=' + sys.argv[1], 'latncy=0.2')", objective=TWO_OBJECTIVES)
    record = run_study(embedded, typo, tmp_path)
    assert (record.status, record.reason) == ("failed", STOPPED.replace("'los'", "'latency'").format(
        field="objective.metrics", printed="latncy"))
    assert "its last lines report latncy: is the name in objective.metrics misspelt?" in \
        embedded.store.get_trial("typo2", 0).reason


def test_a_misspelt_objective_metric_name_fails_a_katib_experiment_naming_its_field(embedded, tmp_path: Path):
    """Its Experiment's last condition is ``Failed``, with the rule's own reason."""
    experiment = katib_job_experiment("typo", {"command": [sys.executable, "-c", PRINTS_LOSS,
                                                           "${trialParameters.learningRate}"]})
    experiment["spec"].update(maxTrialCount=6, maxFailedTrialCount=6)
    experiment["spec"]["objective"]["objectiveMetricName"] = "los"
    spec, definition = load_study(json.dumps(experiment))
    embedded.submit(spec, definition, tmp_path)
    record = embedded.run("typo")
    assert (record.status, record.reason) == ("failed", STOPPED.format(field="spec.objective.objectiveMetricName", printed="loss"))
    origin = resources.Origin(resources.Ref("Experiment", "team", "typo", resources.KATIB_API_VERSIONS[0]), "uid-1", 1)
    status = resource_status.study_status(record, embedded.store.count_trials("typo"), [], origin)
    assert (status["phase"], status["conditions"][-1]["type"], status["conditions"][-1]["reason"]) == (
        "Failed", "Failed", "StudyObjectiveNotReported")


def _failed(number: int, reason: str, mark: Unreported | None = None) -> TrialRecord:
    return TrialRecord("demo", number, {}, state="FAIL", reason=reason, unreported=mark)


def _unreported(number: int, printed: str = "loss", missing: str = "'los'") -> TrialRecord:
    """A trial failed as the default rule's verdict fails one that reported ``printed``, never the
    ``missing`` objectives: its reason, and the mark stored beside it."""
    names = tuple(name.strip("'") for name in missing.split(", "))
    return _failed(number, f"metrics unavailable: objective {missing} never reported (expected lines like "
                           f"los=<number> on its output; its last lines report {printed}: is the name in "
                           "objective.metric misspelt?); last lines:\nloss=0.5",
                   Unreported(names, tuple(printed.split(", ")), "objective.metric"))


def test_the_rule_wants_three_alike_and_none_completed():
    from functions.core.unreported import UNREPORTED_TRIALS, misreported

    assert UNREPORTED_TRIALS == FIRST
    trials = [_unreported(0), _unreported(1, "loss, accuracy"), _unreported(2)]
    why = misreported(trials, Counts(failed=3))
    assert why is not None and "while the first 3 trials report loss, accuracy;" in why
    assert misreported(trials[:2], Counts(failed=2)) is None, "two may be bad luck"
    assert misreported(trials, Counts(failed=3, complete=1)) is None
    assert misreported(trials, Counts(failed=3, pruned=1)) is None
    assert misreported([*trials[:2], _unreported(2, missing="'los', 'acc'")], Counts(failed=3)) is None
    silent = _failed(2, "metrics unavailable: objective 'los' never reported (expected lines like los=<number> on "
                        "its output); last lines:\ndone", Unreported(("los",)))
    assert misreported([*trials[:2], silent], Counts(failed=3)) is None
    rotated = _failed(2, f"the kubelet rotated the trial's log ...\n{trials[2].reason}")
    assert misreported([*trials[:2], rotated], Counts(failed=3)) is None, "its earlier lines, the objective's, lost"


def test_a_misspelt_objective_fails_a_study_on_a_cluster_too(simulated_kube: KubeStub, tmp_path: Path):
    """Jobs, one at a time, whose containers print ``loss``: the third trial's end stops the
    study of 5, and the last two never run."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="katuna"), api_client(simulated_kube.url),
                                  clock=simulated_kube.clock.time)
    deps = Deps(store, executor, simulated_kube.clock.time, trial_defaults=Cluster(namespace="katuna"),
                admissions=executor)
    definition = _misspelt("typos", maxTrials=5)
    definition["trialTemplate"] = {"image": "python:3.12", "command": ["train", "${trialParameters.x}"]}
    dispatcher = Dispatcher(deps)
    try:
        record, _ = store_study(deps, parse_study(definition), definition)
        pending = dispatcher.deliver(study_created("typos", record.uid))
        for number in range(FIRST):
            while pending:
                pending = [later for event in pending for later in dispatcher.deliver(event)]
            simulated_kube.run_until(lambda n=number: look(record, store.get_trial("typos", n), deps) is not None)
            ended = look(record, store.get_trial("typos", number), deps)
            assert ended is not None
            pending = dispatcher.deliver(ended) + dispatcher.deliver(ended)
        study = store.get_study("typos")
        assert (study.status, study.reason) == ("failed", STOPPED.format(field="objective.metric", printed="loss, accuracy"))
        assert [t.state for t in store.trials("typos")] == ["FAIL"] * FIRST
        assert "its last lines report loss, accuracy: is the name in objective.metric misspelt?" in store.get_trial("typos", 0).reason
    finally:
        store.close()
