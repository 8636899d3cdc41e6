"""Katib's own SDK (``kubeflow-katib``), unchanged, against katuna: the overlay ``knative/katib-api``
serves Katib's kinds on the loopback Kubernetes API, ``katuna serve`` (queue mode, trials as
Jobs) takes the Experiments the SDK creates, runs their trials in the Experiment's namespace,
and keeps the Experiment's status and its Trial resources up to date; a v1alpha1 StudyJob is
applied, shown and deleted as kubectl does."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from http_helpers import Service
from kube_standin import katib_api
from kube_standin.server import KATUNA_USER as KATUNA
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_studyjob import studyjob
from waiting import eventually

from functions.core import resources
from functions.core.events import APISERVER_EVENTS, OVERLAY_OBJECTS
from functions.core.katib_trials import EXPERIMENT_LABEL

if TYPE_CHECKING:
    from kubeflow.katib import KatibClient

ROOT = Path(__file__).parent.parent
TEAM = "sdk-team"
"""The namespace the SDK's user works in (Katib's multi-user model: a profile namespace)."""
USER = "alice"


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("katib-sdk"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="katuna", KATUNA_KATIB_API="true")
    yield running
    running.close()


def configuration(kube: KubeStub, user: str = USER) -> client.Configuration:
    """The SDK's client configuration: the stand-in's address and the user's bearer token."""
    return kube.configuration(user)


@pytest.fixture
def sdk(kube: KubeStub) -> Iterator[KatibClient]:
    """Katib's client for the SDK's user (:func:`katib_sdk.client_for`), closed after the test. The SDK is imported
    where a test uses it, not at collection: importing it loads every ``kubernetes`` model,
    seconds of work each test process would otherwise pay."""
    from katib_sdk import client_for

    with client_for(configuration(kube), TEAM) as katib:
        yield katib


def objective(parameters):
    x = float(parameters["x"])
    print(f"loss={(x - 1.0) ** 2}")


@pytest.mark.slow
def test_tune_runs_its_trials_and_the_sdk_reads_the_result(kube: KubeStub, service: Service, sdk: KatibClient):
    from kubeflow.katib import search

    sdk.tune(name="sdk-tune", objective=objective, parameters={"x": search.double(min=0.0, max=2.0)},
             objective_metric_name="loss", objective_type="minimize", algorithm_name="random",
             max_trial_count=3, parallel_trial_count=3, base_image="docker.io/python:3.12")
    experiment = sdk.wait_for_experiment_condition("sdk-tune", timeout=120, polling_interval=1)
    assert experiment.status.trials_succeeded == 3
    types = {c.type: c.status for c in sdk.get_experiment_conditions("sdk-tune")}
    assert types["Created"] == "True" and types["Succeeded"] == "True"

    best = sdk.get_optimal_hyperparameters("sdk-tune")
    x = float(best.parameter_assignments[0].value)
    assert best.parameter_assignments[0].name == "x" and 0.0 <= x <= 2.0
    assert [m.name for m in best.observation.metrics] == ["loss"]
    assert float(best.observation.metrics[0].latest) == pytest.approx((x - 1.0) ** 2)

    trials = sdk.list_trials("sdk-tune")
    assert sorted(t.metadata.name for t in trials) == [f"sdk-tune-{i}" for i in range(3)]
    assert all(t.metadata.labels[EXPERIMENT_LABEL] == "sdk-tune" for t in trials)
    assert best.best_trial_name in {t.metadata.name for t in trials}
    for trial in trials:
        assert {c.type for c in trial.status.conditions if c.status == "True"} >= {"Created", "Succeeded"}
        assert trial.status.observation.metrics[0].name == "loss"
    jobs = {name: job for name, job in kube.created_jobs.items() if name.startswith("sdk-tune")}
    assert {job["metadata"]["namespace"] for job in jobs.values()} == {TEAM}, "trials run in the Experiment's namespace"
    pods = [job["spec"]["template"]["metadata"]["labels"] for job in jobs.values()]
    assert sorted(labels.get("katib.kubeflow.org/trial") for labels in pods) == [f"sdk-tune-{i}" for i in range(3)], \
        "Katib's SDK and UI find a trial's pods by its name"
    assert {labels.get(EXPERIMENT_LABEL) for labels in pods} == {"sdk-tune"}

    eventually(lambda: described(kube, "experiments", "sdk-tune") == [("Normal", "ExperimentMaxTrialsReached")],
               "the Experiment's end, as kubectl describe shows it", timeout=10)
    for number in range(3):
        assert described(kube, "trials", f"sdk-tune-{number}") == [("Normal", "JobCreated"), ("Normal", "JobRunning"),
                                                                    ("Normal", "JobSucceeded"), ("Normal", "JobDeleted")]

    sdk.delete_experiment("sdk-tune")
    assert sdk.list_trials("sdk-tune") == [], "the Trials go with their Experiment"


def described(kube: KubeStub, plural: str, name: str) -> list[tuple[str, str]]:
    """The type and reason of each Event ``kubectl describe`` shows of a Katib resource of the user's."""
    api = client.CustomObjectsApi(client.ApiClient(configuration(kube)))
    found = api.get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, plural, name)
    return [(event["type"], event["reason"]) for event in kube.described(found)]


@pytest.mark.slow
def test_edit_experiment_budget_restarts_a_long_running_experiment_for_the_extra_trials(service: Service,
                                                                                       sdk: KatibClient):
    budgeted = experiment("sdk-budget", ["python3", "-c", "import sys; print(f'loss={sys.argv[1]}')"])
    budgeted["spec"]["resumePolicy"] = "LongRunning"
    sdk.create_experiment(budgeted)
    first = sdk.wait_for_experiment_condition("sdk-budget", timeout=120, polling_interval=1)
    assert first.status.trials_succeeded == 1

    sdk.edit_experiment_budget("sdk-budget", max_trial_count=3, parallel_trial_count=2)
    edited = sdk.get_experiment("sdk-budget")
    assert (edited.spec.max_trial_count, edited.spec.parallel_trial_count, edited.metadata.generation) == (3, 2, 2)
    eventually(lambda: sdk.get_experiment("sdk-budget").status.trials_succeeded == 3, "the extra trials", timeout=120)
    done = sdk.wait_for_experiment_condition("sdk-budget", timeout=60, polling_interval=1)
    assert (done.status.trials, done.status.trials_succeeded) == (3, 3)
    assert {c.type for c in done.status.conditions if c.status == "True"} >= {"Restarting", "Succeeded"}
    assert sorted(t.metadata.name for t in sdk.list_trials("sdk-budget")) == [f"sdk-budget-{i}" for i in range(3)]
    sdk.delete_experiment("sdk-budget")


@pytest.mark.slow
def test_deleting_an_experiment_stops_its_study(service: Service, sdk: KatibClient):
    sdk.create_experiment(experiment("sdk-stop", ["sleep", "60"]))
    eventually(lambda: sdk.is_experiment_running("sdk-stop"), "the Experiment to run", timeout=90)
    sdk.delete_experiment("sdk-stop")
    stopped = service.wait_for("sdk-stop", timeout=60)
    assert stopped["status"] == "stopped" and "deleted" in stopped["reason"]
    with pytest.raises(RuntimeError):
        sdk.get_experiment("sdk-stop")


@pytest.mark.slow
def test_an_experiment_whose_deletion_finalizers_hold_stops_its_study_once_its_deletion_begins(
        kube: KubeStub, service: Service, sdk: KatibClient):
    """Another controller's finalizer (or a foreground deletion) keeps a deleted Experiment on
    the API server, marked deleting, until it is taken off: Katib's controller does nothing more
    for it from that moment, and katuna stops its study then, not once the object is gone."""
    held = experiment("sdk-held", ["sleep", "600"])
    held["metadata"]["finalizers"] = ["example.com/hold"]
    sdk.create_experiment(held)
    eventually(lambda: sdk.is_experiment_running("sdk-held"), "the Experiment to run", timeout=90)
    sdk.delete_experiment("sdk-held")
    assert sdk.get_experiment("sdk-held").metadata.deletion_timestamp is not None, "held by its finalizer"
    stopped = service.wait_for("sdk-held", timeout=60)
    assert (stopped["status"], stopped["reason"]) == ("stopped", "stopped: its resource was deleted")
    eventually(lambda: kept_jobs(kube, "sdk-held") == [], "its trial's Job deleted", timeout=60)
    api = client.CustomObjectsApi(client.ApiClient(configuration(kube)))
    api.patch_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", "sdk-held",
                                       {"metadata": {"finalizers": None}})
    with pytest.raises(RuntimeError):
        sdk.get_experiment("sdk-held")
    assert service.json("GET", "/studies/sdk-held")[1]["status"] == "stopped"


@pytest.mark.slow
def test_an_experiment_katuna_stops_is_succeeded_to_the_sdk_its_reason_saying_it_was_stopped(
        kube: KubeStub, service: Service, sdk: KatibClient):
    """Katib has no stop: its SDK's ``wait_for_experiment_condition`` knows an Experiment ended
    by ``Succeeded`` (or raises on ``Failed``) only. One stopped with ``katuna stop`` is
    ``Succeeded`` (after a ``Stopped`` condition), reason ``StoppedByUser``, as the printer
    columns show it; katuna says it was stopped."""
    sdk.create_experiment(experiment("sdk-halt", ["sleep", "600"]))
    eventually(lambda: sdk.is_experiment_running("sdk-halt"), "the Experiment to run", timeout=90)
    assert service.json("POST", "/studies/sdk-halt/stop")[1]["status"] == "stopped"
    done = sdk.wait_for_experiment_condition("sdk-halt", timeout=30, polling_interval=1)
    assert sdk.is_experiment_succeeded("sdk-halt") and not sdk.is_experiment_failed("sdk-halt")
    assert [(c.type, c.status, c.reason) for c in done.status.conditions][-2:] == [
        ("Stopped", "True", "StoppedByUser"), ("Succeeded", "True", "StoppedByUser")]
    assert done.status.trials_killed == 1 and done.status.completion_time is not None
    shown = kube.get_resource("experiments.kubeflow.org", TEAM, "sdk-halt")[1]["status"]
    columns = printer_columns("experiments.kubeflow.org")
    assert (columns["Type"], columns["Status"], columns["Reason"]) == tuple(
        f".status.conditions[-1:].{field}" for field in ("type", "status", "reason"))
    assert [shown["conditions"][-1][field] for field in ("type", "status", "reason")] == [
        "Succeeded", "True", "StoppedByUser"]
    assert shown["phase"] == "Stopped" and service.json("GET", "/studies/sdk-halt")[1]["status"] == "stopped"
    sdk.delete_experiment("sdk-halt")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["Never", "LongRunning"])
def test_the_experiment_and_its_suggestion_pass_the_checks_of_katibs_conformance_program(
        kube: KubeStub, service: Service, sdk: KatibClient, policy: str):
    """Katib's conformance program (conformance/run.sh: its run-e2e-experiment.py with
    random.yaml, 3 trials, 2 at once, none may fail) waits for the Experiment to succeed, then
    checks it and its Suggestion (verify.py): the best trial has the objective's metric, all
    trials completed where it reached ``maxTrialCount``; the Suggestion, named as the
    Experiment, ``Succeeded`` and not ``Running`` (``Never``, ``FromVolume``), or ``Running`` and
    not ``Succeeded`` (``LongRunning``), and no suggestion Deployment or Service left. Read as
    its user reads it, through the real client, once the SDK has seen the Experiment end."""
    name = f"sdk-conform-{policy.lower()}"
    conforming = experiment(name, ["python3", "-c", "import sys; print(f'loss={sys.argv[1]}')"])
    conforming["spec"].update(maxTrialCount=3, parallelTrialCount=2, maxFailedTrialCount=0, resumePolicy=policy)
    sdk.create_experiment(conforming)
    done = sdk.wait_for_experiment_condition(name, timeout=120, polling_interval=1)
    api = client.CustomObjectsApi(client.ApiClient(configuration(kube)))
    found = api.get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "suggestions", name)

    best = done.status.current_optimal_trial.observation.metrics
    assert [m.name for m in best] == ["loss"]
    [reason] = [c.reason for c in done.status.conditions if c.type == "Succeeded" and c.status == "True"]
    assert reason == "ExperimentMaxTrialsReached"
    assert (done.status.trials_succeeded or 0) + (done.status.trials_early_stopped or 0) == 3
    conditions = {c["type"]: c for c in found["status"]["conditions"]}
    running, succeeded = ({kind: kind in conditions and conditions[kind]["status"] == "True"}
                          for kind in ("Running", "Succeeded"))
    if policy == "LongRunning":
        assert running == {"Running": True} and succeeded == {"Succeeded": False}
    else:
        assert running == {"Running": False} and succeeded == {"Succeeded": True}
        assert (conditions["Succeeded"]["reason"], conditions["Succeeded"]["message"]) == (
            "Experiment is succeeded", "Suggestion is succeeded, can't be restarted")
    assert conditions["Created"]["reason"] == "SuggestionCreated"
    assert found["metadata"]["ownerReferences"] == [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                                                     "name": name, "uid": done.metadata.uid, "controller": True}]
    assert found["spec"] == {"algorithm": {"algorithmName": "random"}, "requests": 3, "resumePolicy": policy}
    assert found["status"]["suggestionCount"] == 3 and "suggestions" not in found["status"]
    assert sdk.get_suggestion(name).status.suggestion_count == 3, "Katib's SDK reads it"
    assert not [r for r in kube.authorized if r.user == KATUNA and r.resource in ("deployments", "services")], \
        "no suggestion Deployment or Service: katuna samples in its own store"

    sdk.delete_experiment(name)
    with pytest.raises(ApiException) as gone:
        api.get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "suggestions", name)
    assert gone.value.status == 404, "the Suggestion goes with its Experiment"


def kept_jobs(kube: KubeStub, name: str) -> list[str]:
    """The Jobs, and the pods, of the Experiment ``name``'s trials left on the cluster."""
    prefix = f"{name}-"
    return sorted(n for (ns, n) in [*kube.jobs, *kube.pods] if ns == TEAM and n.startswith(prefix))


def retaining(name: str, command: list[str], trials: int) -> dict:
    """An Experiment whose trials' Jobs ``retain`` keeps, one trial at a time."""
    retained = experiment(name, command)
    retained["spec"].update(maxTrialCount=trials, parallelTrialCount=1)
    retained["spec"]["trialTemplate"]["retain"] = True
    return retained


@pytest.mark.slow
def test_deleting_a_succeeded_experiment_deletes_the_jobs_retain_kept(kube: KubeStub, service: Service,
                                                                      sdk: KatibClient):
    """Katib's Job is owned by its Trial, and its Trial by the Experiment: ``retain`` keeps a
    finished trial's Job until the Experiment is deleted, and the garbage collector then
    deletes it with its pods."""
    sdk.create_experiment(retaining("sdk-kept", ["python3", "-c", "import sys; print(f'loss={sys.argv[1]}')"], 2))
    sdk.wait_for_experiment_condition("sdk-kept", timeout=120, polling_interval=1)
    assert [n for n in kept_jobs(kube, "sdk-kept") if n in ("sdk-kept-0", "sdk-kept-1")] == ["sdk-kept-0",
                                                                                             "sdk-kept-1"]
    sdk.delete_experiment("sdk-kept")
    eventually(lambda: kept_jobs(kube, "sdk-kept") == [], "the kept Jobs and their pods deleted", timeout=60)
    assert service.json("GET", "/studies/sdk-kept")[1]["status"] == "completed", "the study stays, as it ended"


@pytest.mark.slow
def test_deleting_a_running_experiment_deletes_the_jobs_retain_kept_once_its_trials_are_stopped(
        kube: KubeStub, service: Service, sdk: KatibClient):
    command = ["python3", "-c", "import os, time; print('loss=1'); "
               "time.sleep(0 if os.environ['KATIB_TRIAL_NAME'].endswith('-0') else 600)"]
    sdk.create_experiment(retaining("sdk-drop", command, 3))
    def states() -> list[str]:
        found, trials = service.json("GET", "/studies/sdk-drop/trials")
        return [t["state"] for t in trials] if found == 200 else []

    eventually(lambda: states() == ["COMPLETE", "RUNNING"], "one trial ended and one running", timeout=120)
    sdk.delete_experiment("sdk-drop")
    stopped = service.wait_for("sdk-drop", timeout=60)
    assert (stopped["status"], stopped["reason"]) == ("stopped", "stopped: its resource was deleted")
    eventually(lambda: kept_jobs(kube, "sdk-drop") == [], "every Job of the Experiment deleted", timeout=60)
    assert states() == ["COMPLETE", "STOPPED"], "the running trial stopped, counted as killed"


@pytest.mark.slow
def test_an_invalid_experiment_fails_with_every_problem_in_its_conditions(service: Service, sdk: KatibClient):
    broken = experiment("sdk-broken", ["true"])
    broken["spec"]["objective"]["type"] = "maximise"
    sdk.create_experiment(broken)
    failed = sdk.wait_for_experiment_condition("sdk-broken", expected_condition="Failed", timeout=60,
                                               polling_interval=1)
    message = failed.status.conditions[-1].message
    assert "maximise" in message and "minimize or maximize" in message
    sdk.delete_experiment("sdk-broken")


def test_get_trial_metrics_finds_no_db_manager_and_the_docs_name_the_observations_that_answer_it(sdk: KatibClient):
    """The SDK's ``get_trial_metrics`` asks Katib's DB manager over gRPC, which katuna does not
    serve: it raises. docs/katib.md says so, and names the observation log katuna serves in its
    place, with the DB manager's ``MetricLog`` fields (a metric's name, value and time)."""
    from functions.adapters.web.openapi._schemas import SCHEMAS

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(RuntimeError, match=f"Unable to get metrics for Trial {TEAM}/sdk-metrics-0"):
        sdk.get_trial_metrics("sdk-metrics-0", db_manager_address=f"127.0.0.1:{closed}", timeout=5)
    text = " ".join((ROOT / "docs" / "katib.md").read_text().split())
    said = text[text.index("`get_trial_metrics` reads"):][:800]
    assert "raises `RuntimeError`" in said and "`GET /studies/{study}/trials/{n}/observations`" in said
    assert {"metric", "value", "timestamp"} <= set(SCHEMAS["Observation"]["properties"])


POOLS = ("(worker)", "(_handle_workers)", "(_handle_tasks)", "(_handle_results)")
"""How the threads of a ``multiprocessing.pool.ThreadPool`` (the kubernetes client's) are named."""


def test_the_sdks_client_leaves_no_thread_of_its_requests_running(kube: KubeStub):
    """The SDK's reads (``async_req``) start a pool of threads in its kubernetes client, which
    its exit hook holds until the process ends: the client a test used is closed after it
    (:func:`katib_sdk.client_for`), and the next test of the process finds none of them."""
    from katib_sdk import client_for

    def pools() -> set[threading.Thread]:
        return {thread for thread in threading.enumerate() if thread.name.endswith(POOLS)}
    before = pools()
    with client_for(configuration(kube), TEAM) as katib:
        katib.list_experiments()
        assert pools() - before, "the SDK's read started its client's pool"
    assert pools() - before == set(), "the pool's threads outlived the client"


def test_the_sdk_user_needs_the_edit_role_in_the_namespace(kube: KubeStub):
    from kubeflow.katib import KatibClient

    outsider = KatibClient(client_configuration=configuration(kube, "mallory"), namespace=TEAM)
    with pytest.raises(RuntimeError, match="Failed to create"):
        outsider.create_experiment(experiment("sdk-denied", ["true"]))
    api = client.CustomObjectsApi(client.ApiClient(configuration(kube, "mallory")))
    with pytest.raises(ApiException) as refused:
        api.list_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments")
    assert refused.value.status == 403


def test_the_api_refuses_a_taken_name_and_a_name_it_cannot_hold(kube: KubeStub):
    api = client.CustomObjectsApi(client.ApiClient(configuration(kube)))
    body = experiment("sdk-twice", ["true"])
    body["status"] = {"phase": "Succeeded"}
    created = api.create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    assert "status" not in created, "the status subresource is not written by a create"
    with pytest.raises(ApiException) as taken:
        api.create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    assert taken.value.status == 409
    with pytest.raises(ApiException) as invalid:
        api.create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments",
                                            experiment("Not_A_Name", ["true"]))
    assert invalid.value.status == 422
    api.delete_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", "sdk-twice")
    with pytest.raises(ApiException) as gone:
        api.get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", "sdk-twice")
    assert gone.value.status == 404


@pytest.mark.slow
def test_katib_kinds_are_ignored_where_the_overlay_is_not_enabled(tmp_path: Path):
    kube = KubeStub(namespaces=(TEAM,))
    katib_api.install(kube)
    with kube.lock:
        kube.authorizer.copy_role("katuna", TEAM)  # katuna reads its own study resources there
    running = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE=TEAM)
    try:
        kube.apply(experiment("sdk-ignored", ["true"]))
        kube.apply({"apiVersion": "katuna.dev/v1", "kind": "Experiment", "metadata": {"name": "sdk-own", "namespace": TEAM},
                    "spec": experiment("sdk-own", ["true"])["spec"]})
        running.wait_for("sdk-own", timeout=60)
        assert running.request("GET", "/studies/sdk-ignored")[0] == 404
    finally:
        running.close()
        kube.close()


@pytest.mark.slow
def test_a_studyjob_is_applied_shown_and_deleted_as_kubectl_does(kube: KubeStub, service: Service):
    job = studyjob(studyName="sdk-sj", requestcount=1)
    template = job["spec"]["workerSpec"]["goTemplate"]
    template["rawTemplate"] = template["rawTemplate"].replace("- name: {{.WorkerID}}", "- name: worker")
    job["metadata"] = {"name": "sdk-sj", "namespace": TEAM}
    kube.apply(job)
    done = service.wait_for("sdk-sj", timeout=90)
    assert done["status"] == "completed", done
    shown = eventually(lambda: kube.get_resource("studyjobs.kubeflow.org", TEAM, "sdk-sj")[1].get("status", {})
                       .get("phase") == "Succeeded" and kube.get_resource("studyjobs.kubeflow.org", TEAM, "sdk-sj")[1],
                       "the StudyJob's status", timeout=90)
    columns = printer_columns("studyjobs.kubeflow.org")
    assert shown["status"]["progress"] == "2/2" and columns["Trials"] == ".status.progress"
    assert columns["Status"] == ".status.phase" and isinstance(shown["status"]["currentOptimalTrial"]["objectiveValue"],
                                                               float)
    assert {job["metadata"]["namespace"] for name, job in kube.created_jobs.items() if name.startswith("sdk-sj")} == {TEAM}
    kube.delete("StudyJob", TEAM, "sdk-sj", api_version="kubeflow.org/v1alpha1")
    assert service.request("GET", "/studies/sdk-sj")[0] == 200, "an ended study stays, as after kubectl delete"


def test_a_kubeflow_ref_round_trips_through_its_stored_origin():
    ref = resources.Ref("Experiment", TEAM, "x", "kubeflow.org/v1beta1")
    origin = resources.Origin(ref, "uid-1", 2)
    assert resources.Origin.from_dict(origin.to_dict()) == origin
    old = {k: v for k, v in origin.to_dict().items() if k != "apiVersion"}
    assert resources.Origin.from_dict(old).ref.api_version == resources.API_VERSION, "stored before Katib's kinds"
    assert (ref.group, ref.version, ref.plural, ref.katib) == ("kubeflow.org", "v1beta1", "experiments", True)
    assert resources.is_study_resource({"apiVersion": "kubeflow.org/v1alpha1", "kind": "StudyJob"})
    assert not resources.is_study_resource({"apiVersion": "kubeflow.org/v1beta1", "kind": "Study"})
    assert not resources.is_resource({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment"}), \
        "a Katib Experiment given as a study definition is a definition, not katuna's resource"


def experiment(name: str, command: list[str]) -> dict:
    """A Katib Experiment as a user writes one, whose trial Job runs ``command``."""
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name, "namespace": TEAM},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 1, "parallelTrialCount": 1,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "training-container", "image": "docker.io/python:3.12",
                                    "command": command, "args": ["${trialParameters.x}"]}],
                }}}},
            },
        },
    }


def printer_columns(resource: str) -> dict[str, str]:
    plural = resource.partition(".")[0]
    crds = yaml.safe_load_all((ROOT / "knative" / "katib-api" / "crds.yaml").read_text())
    crd = next(c for c in crds if c and c["spec"]["names"]["plural"] == plural)
    return {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}


@pytest.mark.parametrize("plural", ["experiments", "trials", "suggestions"])
def test_katibs_kinds_are_in_katibs_categories(plural: str):
    """``kubectl get katib`` (``kubeflow``, ``all``) finds Katib's kinds where Katib's own CRDs
    put them, and ``kubectl get katuna`` beside katuna's."""
    crds = yaml.safe_load_all((ROOT / "knative" / "katib-api" / "crds.yaml").read_text())
    crd = next(c for c in crds if c and c["spec"]["names"]["plural"] == plural)
    assert crd["spec"]["names"]["categories"] == ["all", "kubeflow", "katib", "katuna"]


def test_the_documented_binding_lets_katuna_run_an_experiments_trials_and_the_source_watch_them():
    """Following docs/katib.md on the rendered overlay: the RoleBinding its command makes grants
    katuna its trials' Jobs, pods, logs and ConfigMaps in the Experiment's namespace (and nothing
    of another namespace), and the ``katuna-jobs`` source, now watching every namespace, may
    watch the Jobs there, as its controller's access check requires."""
    import jsonschema
    from kube_standin.rbac import RBAC_KINDS, Authorizer, Request, _in_namespace
    from test_deploy_kustomize import KNATIVE, render
    from test_knative import crd_schema, strict

    objects = render(KNATIVE, components=("katib-api",))
    [source] = [o for o in objects if o["kind"] == "ApiServerSource" and o["metadata"]["name"] == "katuna-jobs"]
    jsonschema.validate(source, strict(crd_schema(source["apiVersion"], source["kind"])))
    assert source["spec"]["namespaceSelector"] == {}, "trial Jobs of every namespace"
    text = (ROOT / "docs" / "katib.md").read_text()
    [(namespace, role, account)] = re.findall(
        r"kubectl create rolebinding katuna-trials -n (\S+) \\\n\s+--clusterrole=(\S+) --serviceaccount=(\S+)", text)
    account_namespace, _, account_name = account.partition(":")
    authorizer = Authorizer([_in_namespace(o, "katuna") for o in objects if o["kind"] in RBAC_KINDS])
    katuna, watcher = "system:serviceaccount:katuna:katuna", "system:serviceaccount:katuna:katuna-jobs-source"
    wanted = [Request(katuna, "create", "batch", "jobs", namespace=namespace),
              Request(katuna, "list", "", "pods", namespace=namespace),
              Request(katuna, "get", "", "pods", "log", namespace=namespace),
              Request(katuna, "get", "", "configmaps", namespace=namespace)]
    assert not any(authorizer.allows(r) for r in wanted), "nothing before the binding"
    authorizer.objects.append({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "katuna-trials", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account_name, "namespace": account_namespace}]})
    assert all(authorizer.allows(r) for r in wanted)
    assert not authorizer.allows(Request(katuna, "create", "batch", "jobs", namespace="elsewhere"))
    for verb in ("get", "list", "watch"):
        assert authorizer.allows(Request(watcher, verb, "batch", "jobs", namespace=namespace))
        assert authorizer.allows(Request(watcher, verb, "batch", "jobs")), "at the cluster scope, every namespace"


def test_the_overlay_builds_and_routes_katibs_kinds_to_the_resource_function():
    from test_deploy_kustomize import KNATIVE, render

    objects = render(KNATIVE, components=("katib-api",))
    sources = [o for o in objects if o["kind"] == "ApiServerSource" and o["metadata"]["name"] == "katuna-katib"]
    assert [sorted(r["apiVersion"] for r in s["spec"]["resources"]) for s in sources] == \
        [sorted(OVERLAY_OBJECTS["resource"])]
    assert sources[0]["spec"]["namespaceSelector"] == {}, "Experiments of every namespace"
    routed = {(t["spec"]["filters"][0]["exact"]["type"], t["spec"]["filters"][0]["exact"]["apiversion"])
              for t in objects if t["kind"] == "Trigger" and t["spec"]["subscriber"]["uri"] == "/functions/resource"}
    assert {(e, v) for e in APISERVER_EVENTS for v in OVERLAY_OBJECTS["resource"]} <= routed
    [service] = [o for o in objects if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev")]
    env = {e["name"]: e.get("value") for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KATUNA_KATIB_API"] == "true"
    crds = {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    assert {"experiments.kubeflow.org", "trials.kubeflow.org", "studyjobs.kubeflow.org"} <= crds
