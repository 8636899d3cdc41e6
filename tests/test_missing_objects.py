"""Trials whose containers read a Secret or ConfigMap that is missing, on the stand-in's
simulated clock through the real client: the kubelet leaves such a pod waiting with
``CreateContainerConfigError`` for ever, so a trial waits its start allowance (the user may
create the object meanwhile, and the trial then runs), and a study whose template itself names
the missing object stops once 3 trials could not start for it, saying how to create it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import study_definition
from kube_stub import KubeStub
from test_trial_pods import ALLOWANCE, executor_of, pods_of, waiting

from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

SECRET_ENV = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]


def started(kube: KubeStub, tmp_path: Path, name: str, trials: int, parameters: tuple[dict, ...] = (),
            pod: dict | None = None, **container: object) -> tuple[SqliteStore, Deps, StudyRecord, Dispatcher]:
    """A study of ``trials`` trials run one at a time, with ``parameters`` besides ``x``, its
    trialSpec a Job whose pod has ``pod``'s fields and whose container has ``container``'s,
    stored and started as ``katuna serve`` starts it."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = executor_of(kube)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=Cluster(namespace="katuna", start_allowance=ALLOWANCE),
                admissions=executor)
    definition = study_definition(name, maxTrials=trials, parallelism=1)
    definition["parameters"].extend(parameters)
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "trial", "image": "python:3.12", "command": ["train", "--x=${trialParameters.x}"], **container}],
        **(pod or {})}}}},
        "primaryContainerName": "trial"}
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    for suggested in dispatcher.deliver(study_created(name, record.uid)):
        dispatcher.deliver(suggested)
    return store, deps, record, dispatcher


def deliver(dispatcher: Dispatcher, event) -> None:
    """Deliver ``event`` and every event it leads to."""
    pending = dispatcher.deliver(event)
    while pending:
        pending = [later for each in pending for later in dispatcher.deliver(each)]


def held(kube: KubeStub, job: str) -> Callable[[], bool]:
    return lambda: bool(pods_of(kube, job)) and (waiting(pods_of(kube, job)[0]) or {}).get("reason") == \
        "CreateContainerConfigError"


CASES = {
    "secret": ({"env": SECRET_ENV}, lambda kube: None, 'secret "db" not found', 'Secret "db" in namespace "katuna" '
               "is missing", "Create it (kubectl create secret generic db -n katuna --from-literal=password=<value>)"),
    "configmap key": (
        {"envFrom": [{"configMapRef": {"name": "settings"}}],
         "env": [{"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "lr"}}}]},
        lambda kube: kube.create_config_map("katuna", "settings", {"batch": "32"}),
        "couldn't find key lr in ConfigMap katuna/settings", 'key "lr" of ConfigMap "settings" in namespace "katuna" '
        "is missing", """Add the key (kubectl patch configmap settings -n katuna --type merge -p '{"data":{"lr":"<value>"}}')"""),
}


@pytest.mark.parametrize(("container", "setup", "kubelet", "cause", "fix"), CASES.values(), ids=CASES.keys())
def test_a_study_whose_trials_read_a_missing_object_of_its_template_stops_saying_how_to_create_it(
        simulated_kube: KubeStub, tmp_path: Path, container: dict, setup, kubelet: str, cause: str, fix: str):
    """Five trials, one at a time: the third that could not start for it ends the study, and
    the last two never run."""
    setup(simulated_kube)
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "reads", trials=5, **container)
    try:
        for number in range(3):
            simulated_kube.run_until(held(simulated_kube, f"reads-{number}"))
            assert look(record, store.get_trial("reads", number), deps) is None, "it waits for the object"
            simulated_kube.clock.now += ALLOWANCE
            ended = look(record, store.get_trial("reads", number), deps)
            assert ended is not None and ended.data["outcome"] == "error"
            deliver(dispatcher, ended)
        trial = store.get_trial("reads", 0)
        assert trial.reason.startswith(f"could not start: {cause}; its pod reads-0-")
        assert f": container trial: CreateContainerConfigError: {kubelet}; it waited past the start allowance" in \
            trial.reason
        study = store.get_study("reads")
        assert (study.status, [t.state for t in store.trials("reads")]) == ("failed", ["FAIL"] * 3)
        assert study.reason == (
            f"every trial could not start: {cause} (3 trials, each after waiting for it); every later trial would "
            f"meet the same, so the study stops. {fix}, "
            "then delete this study and submit it again (submitted again as it is, a failed study stays failed)")
    finally:
        store.close()


def test_a_trial_waiting_for_a_missing_secret_runs_once_it_is_created(simulated_kube: KubeStub, tmp_path: Path):
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "later", trials=1, env=SECRET_ENV)
    try:
        simulated_kube.run_until(held(simulated_kube, "later-0"))
        assert look(record, store.get_trial("later", 0), deps) is None
        assert 'cannot start: container trial: CreateContainerConfigError: secret "db" not found; the trial fails ' \
               "if it has not started within the start allowance" in store.get_trial("later", 0).reason
        simulated_kube.clock.now += ALLOWANCE - 60
        simulated_kube.settle()
        assert look(record, store.get_trial("later", 0), deps) is None, "the allowance is not over"
        simulated_kube.create_secret("katuna", "db", {"password": "hunter2"})
        simulated_kube.run_until(lambda: pods_of(simulated_kube, "later-0")[0]["status"]["phase"] == "Succeeded")
        ended = look(record, store.get_trial("later", 0), deps)
        assert ended is not None and ended.data["outcome"] == "exited"
        deliver(dispatcher, ended)
        assert store.get_trial("later", 0).state == "COMPLETE"
        assert store.get_study("later").status == "completed"
    finally:
        store.close()


def test_a_study_whose_secret_a_trials_parameter_names_goes_on(simulated_kube: KubeStub, tmp_path: Path):
    """The name is the trial's, not the study's: another trial may name one that exists (here
    every trial names the same, its parameter's one value, and still the study goes on)."""
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-${trialParameters.shard}", "key": "password"}}}]
    shard = {"name": "shard", "type": "categorical", "values": ["a"]}
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "chosen", 5, (shard,), env=env)
    try:
        for number in range(3):
            simulated_kube.run_until(held(simulated_kube, f"chosen-{number}"))
            simulated_kube.clock.now += ALLOWANCE
            ended = look(record, store.get_trial("chosen", number), deps)
            assert ended is not None and ended.data["outcome"] == "error"
            deliver(dispatcher, ended)
        assert store.get_study("chosen").status == "running"
        assert {t.reason.split(";")[0] for t in store.trials("chosen", ("FAIL",))} == {
            'could not start: Secret "db-a" in namespace "katuna" is missing'}
    finally:
        store.close()
