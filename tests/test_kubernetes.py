"""Trials as Jobs: katuna serve with the Kubernetes executor, the real client, a loopback API."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service, Sink, free_port, serve_command, warm_runner
from kube_stub import KubeStub, image_id
from waiting import eventually
from warm_katuna import run as warm_run

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.records import STOPPED_AT_END
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("trials", "events", "lost", "pruning", "diverging", "clock", "backstop", "gone", "ended",
                   "again", "marked")
"""Where these tests run trials, katuna's Role bound in each."""


def job_study(name: str, mode: str = "ok", **overrides) -> dict:
    definition = study_definition(name=name, mode=mode, **overrides)
    definition["trialTemplate"]["image"] = "python:3.12"
    return definition


@pytest.fixture(scope="module")
def service(kube, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("k8s"), workers=2, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="trials")
    yield running
    running.close()


def submit(service: Service, definition: dict) -> None:
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body


def trials(service: Service, name: str) -> list[dict]:
    return service.json("GET", f"/studies/{name}/trials")[1]


def test_serve_on_kubernetes_without_a_cluster_refuses_to_start_in_one_line(tmp_path: Path):
    """No API address, not in a pod, no kubeconfig: said once at start, before any worker boots."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KATUNA_", "KUBERNETES_")) and k != "KUBECONFIG"}
    done = warm_run(warm_runner(), serve_command(tmp_path, free_port()) + ["--executor", "kubernetes"], tmp_path,
                    {**env, "HOME": str(home)}, 60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: no Kubernetes configuration for --executor kubernetes: not in a cluster")
    assert done.stderr.rstrip().endswith("set KUBECONFIG, or KATUNA_K8S_API to the address of a proxy that adds "
                                         "the credentials, such as `kubectl proxy`'s")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert not (tmp_path / "katuna.db").exists()


def test_a_study_runs_as_jobs_and_reads_their_pod_logs(service: Service, kube: KubeStub):
    submit(service, job_study("jobs", maxTrials=4))
    study = service.wait_for("jobs")
    assert (study["status"], study["counts"]["complete"]) == ("completed", 4)
    created = [n for n in kube.created if n.startswith("jobs-")]
    assert sorted(created) == ["jobs-0", "jobs-1", "jobs-2", "jobs-3"], "each Job created once"
    assert all(kube.created_jobs[n]["metadata"]["labels"]["katuna.dev/study"] == "jobs" for n in created)
    for trial in trials(service, "jobs"):
        assert trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2, abs=1e-5)
        assert trial["imageDigest"] == image_id("python:3.12"), "the image as the cluster ran it"
        assert trial["imageDigest"].startswith("docker.io/library/python@sha256:"), "by its digest, not its tag"
    assert study["reproducibility"]["seed"] == 1
    header, first, *_ = service.request("GET", "/studies/jobs/trials/0/logs")[2].decode().splitlines()
    assert header == "[katuna: attempt 1's log, kept when katuna deleted Job jobs-0 as the trial ended]"
    assert first.startswith("epoch=1 loss=")


def test_a_finished_trials_job_is_deleted_with_its_pods_once_its_result_is_stored_and_its_log_kept(
        service: Service, kube: KubeStub):
    """A finished Job would stay, with its pods, for its ttlSecondsAfterFinished (an hour) after
    katuna read its output: it is deleted (``Background``: its pods with it) once the trial's
    result is stored, as Katib deletes an ended trial's Job, its TTL left as the backstop; the
    log is served from the lines kept before. The finished event delivered again changes nothing."""
    submit(service, job_study("done-jobs", maxTrials=2, parallelism=2))
    assert service.wait_for("done-jobs")["status"] == "completed"
    eventually(lambda: not [k for k in kube.jobs if k[1].startswith("done-jobs-")], "the finished Jobs deleted")
    deleted = {name: policy for _, name, policy in kube.deleted if name.startswith("done-jobs-")}
    assert deleted == {"done-jobs-0": "Background", "done-jobs-1": "Background"}
    assert not [name for _, name in kube.pods if name.startswith("done-jobs-")], "their pods went with them"
    assert all(kube.created_jobs[name]["spec"]["ttlSecondsAfterFinished"] == 3600 for name in deleted)
    for trial in trials(service, "done-jobs"):
        assert trial["state"] == "COMPLETE" and trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2,
                                                                                  abs=1e-5)
        logs = service.request("GET", f"/studies/done-jobs/trials/{trial['number']}/logs")[2].decode()
        assert logs.startswith("[katuna: attempt 1's log, kept when katuna deleted Job done-jobs-") and "epoch=1 " in logs


def test_a_finished_trials_log_gone_with_its_pods_is_said_to_be_gone_not_shown_empty(service: Service,
                                                                                      kube: KubeStub):
    """A finished Job's pods, and their logs, can go without katuna (a kept Job's with their node,
    or its TTL passed): the API answers that the log is gone and why, and the dashboard says so,
    where both showed an empty log."""
    definition = job_study("gone-logs", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["retain"] = True
    submit(service, definition)
    assert service.wait_for("gone-logs")["status"] == "completed"
    assert service.request("GET", "/studies/gone-logs/trials/0/logs")[2].startswith(b"epoch=1 loss=")
    with kube.lock:
        for pod in [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") == "gone-logs-0"]:
            kube.delete_pod(pod)
    status, answer = service.json("GET", "/studies/gone-logs/trials/0/logs")
    assert status == 404 and answer["error"] == "log_gone", answer
    assert answer["message"].startswith("no log of Job gone-logs-0's last run is left: its pods are gone (deleted "
                                        "with the Job once its ttlSecondsAfterFinished passed")
    window = service.json("GET", "/ui/studies/gone-logs/trials/0/log?offset=-1")[1]
    assert (window["text"], window["gone"]) == ("", answer["message"])


def test_pod_fields_the_api_server_would_refuse_are_refused_when_posted_and_nothing_runs(service: Service,
                                                                                         kube: KubeStub):
    definition = job_study("refused", kubernetes={"tolerations": [{"key": "katuna.dev/trial", "operator": "Exists",
                                                                   "value": "true"}]})
    definition["trialTemplate"]["resources"] = {"cpu": "1", "gpu": "0.5"}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    problems = {p["path"]: p["message"] for p in json.loads(body)["problems"]}
    assert status == 422 and set(problems) == {"kubernetes.tolerations[0].value", "trialTemplate.resources.gpu"}
    assert service.request("GET", "/studies/refused")[0] == 404
    assert not [n for n in kube.created if n.startswith("refused-")]


def test_a_trial_spec_job_is_read_from_its_own_container(service: Service, kube: KubeStub):
    """A Katib-style ``trialSpec`` keeps its container's name: the log is read from that
    container of pods whose names end in random characters (the API refuses any other). Its
    labels are filled in as the rest of it is (the API refuses a placeholder)."""
    definition = job_study("spec-jobs", maxTrials=2, parallelism=2)
    command = definition["trialTemplate"].pop("command")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {"run": "${trialSpec.Name}"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "training-container", "image": "python:3.12", "command": command}]}}}}}
    submit(service, definition)
    study = service.wait_for("spec-jobs")
    assert (study["status"], study["counts"]["complete"]) == ("completed", 2)
    templates = [kube.created_jobs[f"spec-jobs-{n}"]["spec"]["template"]["spec"] for n in (0, 1)]
    assert {c["name"] for t in templates for c in t["containers"]} == {"training-container"}
    assert kube.created_jobs["spec-jobs-1"]["metadata"]["labels"]["run"] == "spec-jobs-1"
    for trial in trials(service, "spec-jobs"):
        assert trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2, abs=1e-5)
        assert trial["imageDigest"] == image_id("python:3.12")


def spec_study(name: str, container: dict, **job_spec) -> dict:
    """A study whose ``trialSpec`` is a Job of one container ``training-container`` with the
    fields of ``container`` (None: without the field), running the objective."""
    definition = job_study(name, maxTrials=1, parallelism=1)
    command = definition["trialTemplate"].pop("command")
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {**job_spec, "template": {
        "spec": {"restartPolicy": "Never", "containers": [
            {k: v for k, v in {"name": "training-container", "image": "python:3.12", "command": command,
                               **container}.items() if v is not None}]}}}}}
    return definition


REFUSED = "the API server refuses the first trial's Job (a dry run of its create)"
CONTAINER = "trialTemplate.trialSpec.spec.template.spec.containers[0]"


def posted_problems(service: Service, definition: dict, under: str) -> tuple[int, list[tuple[str, str]]]:
    """The status of POSTing ``definition``, and its problems in order, each path under ``under``
    and each message without what every dry-run refusal ends with."""
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition), {"Content-Type": "application/yaml"})
    return status, sorted((p["path"].removeprefix(under), p["message"].removesuffix(f": {REFUSED}"))
                          for p in json.loads(body)["problems"])


def test_a_trial_spec_job_the_api_server_refuses_is_refused_when_posted_naming_its_fields(service: Service,
                                                                                         kube: KubeStub):
    """The first trial's Job is created in a dry run when the study is submitted: what the API
    server refuses is refused at the ``trialSpec``'s field, with the API's reason, and nothing
    is stored or created (before, the study was stored and failed at its first trial)."""
    definition = spec_study("spec-refused", {"image": None, "imagePullPolicy": "always",
                                             "env": [{"name": "LR\u00e9", "value": "x"}],
                                             "ports": [{"containerPort": 70000}]})
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    problems = sorted((p["path"], p["message"]) for p in json.loads(body)["problems"])
    assert status == 422 and problems == [
        (f"{CONTAINER}.env[0].name", 'Invalid value: "LR\\u00e9": a valid environment variable name must consist '
                                     f"only of printable ASCII characters other than '=': {REFUSED}"),
        (f"{CONTAINER}.image", f"Required value: {REFUSED}"),
        (f"{CONTAINER}.imagePullPolicy", 'Unsupported value: "always": supported values: "Always", "IfNotPresent", '
                                         f'"Never": {REFUSED}'),
        (f"{CONTAINER}.ports[0].containerPort", f"Invalid value: 70000: must be between 1 and 65535, inclusive: "
                                                f"{REFUSED}")], problems
    assert service.request("GET", "/studies/spec-refused")[0] == 404, "nothing is stored"
    assert not [n for _, n in kube.create_requests if n.startswith("spec-refused")], "nothing is created"


def test_a_trial_spec_jobs_failure_policy_the_api_server_refuses_is_refused_at_the_templates_own_rules(
        service: Service):
    """katuna puts its own rule (a preempted pod is no failure) before the template's: the API
    server's refusal of the Job's rule ``i + 1`` is the template's rule ``i``."""
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42, 0]}},
             {"action": "FailIndex", "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [3]}}]
    definition = spec_study("spec-policy", {}, podFailurePolicy={"rules": rules})
    status, problems = posted_problems(service, definition, "trialTemplate.trialSpec.spec.podFailurePolicy.")
    assert status == 422 and problems == [
        ("rules[0].onExitCodes.values", "Invalid value: [42,0]: must be ordered"),
        ("rules[0].onExitCodes.values[1]", "Invalid value: 0: must not be 0 for the In operator"),
        ("rules[1].action", 'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
        ("rules[1].onExitCodes.containerName", 'Invalid value: "trainer": must be one of the container or '
                                               "initContainer names in the pod template")], problems
    assert service.request("GET", "/studies/spec-policy")[0] == 404, "nothing is stored"


def test_a_trial_spec_job_field_a_job_does_not_have_is_refused_when_posted_as_katibs_webhook_refuses_it(
        service: Service, kube: KubeStub):
    """A misspelt field (``resurces``, ``backofLimit``), which the API server would drop,
    running the trial unsized, is refused by name when the study is posted: the client's Job
    model refuses it before sending, and the dry run asks for strict field validation besides."""
    definition = spec_study("spec-typo", {"resurces": {"limits": {"memory": "1Gi"}}})
    definition["trialTemplate"]["trialSpec"]["spec"]["backofLimit"] = 2
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 422, body
    paths = sorted(p["path"] for p in json.loads(body)["problems"])
    assert paths == ["trialTemplate.trialSpec.spec.backofLimit", f"{CONTAINER}.resurces"], body
    assert all("Extra inputs are not permitted" in p["message"] for p in json.loads(body)["problems"])
    assert service.request("GET", "/studies/spec-typo")[0] == 404, "nothing is stored"
    assert not [n for _, n in kube.create_requests if n.startswith("spec-typo")], "nothing is created"


def test_a_trial_spec_jobs_selector_that_misses_its_pods_is_refused_when_posted(service: Service):
    definition = spec_study("spec-selector", {}, manualSelector=True, selector={"matchLabels": {"app": "x"}})
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 422 and [p["path"] for p in json.loads(body)["problems"]] == [
        "trialTemplate.trialSpec.spec.template.metadata.labels"], body


def test_a_trial_spec_pods_security_deadline_and_sources_the_api_server_refuses_are_refused_when_posted(
        service: Service):
    definition = spec_study("spec-pod", {
        "securityContext": {"seccompProfile": {"type": "Bogus"}},
        "env": [{"name": "A", "valueFrom": {}}]})
    pod = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod.update(activeDeadlineSeconds=0, securityContext={"runAsUser": -1})
    status, problems = posted_problems(service, definition, "trialTemplate.trialSpec.spec.template.spec.")
    assert status == 422 and problems == [
        ("activeDeadlineSeconds", "Invalid value: 0: must be between 1 and 2147483647, inclusive"),
        ("containers[0].env[0].valueFrom", 'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
                                           "`configMapKeyRef` or `secretKeyRef`"),
        ("containers[0].securityContext.seccompProfile.type", 'Unsupported value: "Bogus": supported values: '
                                                              '"Localhost", "RuntimeDefault", "Unconfined"'),
        ("securityContext.runAsUser", "Invalid value: -1: must be between 0 and 2147483647, inclusive")], problems
    assert service.request("GET", "/studies/spec-pod")[0] == 404, "nothing is stored"


def test_a_trial_spec_jobs_own_selector_or_job_labels_are_refused_when_posted_as_not_auto_generated(
        service: Service):
    """Without ``manualSelector`` the API server generates the selector and the labels that make
    it select the Job's pods; a template that gives its own differing ones is refused."""
    definition = spec_study("spec-generated", {}, selector={"matchLabels": {"app": "x"}})
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"] = {"labels": {"app": "x",
                                                                                          "job-name": "mine"}}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    paths = sorted(p["path"] for p in json.loads(body)["problems"])
    assert status == 422 and paths == ["trialTemplate.trialSpec.spec.selector",
                                       "trialTemplate.trialSpec.spec.template.metadata.labels[job-name]"], body


def test_a_trial_spec_jobs_annotations_the_api_server_refuses_are_refused_when_posted(service: Service):
    """``ValidateObjectMeta`` on annotations, the Job's and its pods' alike: a key that is no
    qualified name, and more than 256 KiB of them."""
    definition = spec_study("spec-notes", {})
    definition["trialTemplate"]["trialSpec"]["metadata"] = {"annotations": {"team notes": "x"}}
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"] = {"annotations": {"a": "n" * 300_000}}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    problems = sorted((p["path"], p["message"].removesuffix(f": {REFUSED}")) for p in json.loads(body)["problems"])
    assert status == 422 and problems == [
        ("trialTemplate.trialSpec.metadata.annotations", 'Invalid value: "team notes": name part must consist of '
         "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
         "'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?"
         "[A-Za-z0-9]')"),
        ("trialTemplate.trialSpec.spec.template.metadata.annotations", "Too long: may not be more than 262144 bytes"),
    ], problems
    assert service.request("GET", "/studies/spec-notes")[0] == 404, "nothing is stored"


def test_a_trial_spec_study_submitted_again_while_its_first_job_is_kept_is_taken(service: Service, kube: KubeStub):
    """The dry run of a study submitted again meets its first trial's Job, kept (``retain``):
    the API's "already exists" says the Job was valid, and the study is taken."""
    definition = spec_study("spec-again", {})
    definition["trialTemplate"]["retain"] = True
    submit(service, definition)
    assert service.wait_for("spec-again")["status"] == "completed"
    assert ("trials", "spec-again-0") in kube.jobs
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status in (200, 201), body


def test_a_trial_spec_study_is_not_refused_while_the_api_server_cannot_be_reached(tmp_path: Path):
    """A dry run that cannot be made (the API unreachable) refuses nothing: the submission is
    answered 503 with Retry-After, to be made again, and nothing is stored."""
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=f"http://127.0.0.1:{free_port()}", KATUNA_K8S_NAMESPACE="trials")
    try:
        status, headers, body = service.request("POST", "/studies", yaml.safe_dump(spec_study("spec-later", {})),
                                                {"Content-Type": "application/yaml"})
        stored = service.request("GET", "/studies/spec-later")[0]
    finally:
        service.close()
    assert status == 503 and json.loads(body)["retryable"] is True and headers.get("Retry-After"), body
    assert stored == 404


def test_an_indexed_trial_spec_whose_later_pods_names_are_too_long_is_refused_when_posted(service: Service,
                                                                                        kube: KubeStub):
    """An Indexed Job's pods are named ``<job name>-<index>``: a study name that leaves its last
    trial's retried Job no room for its last index is refused naming the study's name, saying
    how many characters must go; one character shorter, it runs."""
    name = "s" * 56
    definition = spec_study(name, {}, completionMode="Indexed", completions=2, parallelism=1)
    definition.update(maxTrials=20, parallelism=1)
    definition["trialTemplate"]["maxAttempts"] = 5
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    [problem] = json.loads(body)["problems"]
    assert status == 422 and problem["path"] == "name" and "shorten the name by 1 characters" in problem["message"]
    assert f"would be named {name}-19-a5-1 (64 characters)" in problem["message"], problem
    assert service.request("GET", f"/studies/{name}")[0] == 404
    definition.update(name=name[:-1], maxTrials=1)
    submit(service, definition)
    assert service.wait_for(name[:-1], timeout=60)["status"] == "completed"


def test_a_study_naming_a_namespace_katuna_may_not_use_is_refused_when_submitted(service: Service):
    """The cluster is asked (a SelfSubjectAccessReview) before anything is stored: a namespace
    where katuna's Role is not bound is refused naming the field, a Katib Experiment's own, and
    one where it is bound is taken."""
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(
        job_study("unbound", kubernetes={"namespace": "unbound"})), {"Content-Type": "application/yaml"})
    problems = json.loads(body)["problems"]
    assert status == 422 and problems == [{"path": "kubernetes.namespace", "message": (
        "katuna may not create jobs.batch in namespace 'unbound': bind the katuna-trials ClusterRole to its "
        "account there, or run the trials in a namespace where it is bound")}], body
    assert service.request("GET", "/studies/unbound")[0] == 404, "nothing is stored"
    experiment = yaml.safe_load((Path(__file__).parent / "data" / "katib_examples" / "random.yaml").read_text())
    experiment["metadata"]["namespace"] = "unbound"
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment),
                                      {"Content-Type": "application/yaml"})
    assert status == 422 and [p["path"] for p in json.loads(body)["problems"]] == ["metadata.namespace"], body
    submit(service, job_study("bound", maxTrials=1, parallelism=1, kubernetes={"namespace": "events"}))
    assert service.wait_for("bound", timeout=60)["status"] == "completed"


def test_a_study_with_early_stopping_where_katuna_may_not_make_secrets_is_refused_when_submitted(
        service: Service, kube: KubeStub, tmp_path: Path):
    """Each attempt of a study with early stopping reads its report token from a Secret katuna
    makes: in a namespace where katuna's grant leaves Secrets out, such a study is refused naming
    ``earlyStopping`` (its every attempt would fail at launch), nothing stored; one without
    early stopping runs there, and a service handing no tokens asks nothing of Secrets."""
    kube.add_namespace("no-secrets", grant=False)
    with kube.lock:
        kube.authorizer.grant_in_but("no-secrets", "secrets")
    pruned = job_study("no-tokens", maxTrials=1, parallelism=1, kubernetes={"namespace": "no-secrets"},
                       earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 2}})
    reporting = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                        KATUNA_K8S_NAMESPACE="trials", KATUNA_REPORT_URL="http://127.0.0.1:9/")
    try:
        status, _, body = reporting.request("POST", "/studies", yaml.safe_dump(pruned),
                                            {"Content-Type": "application/yaml"})
        assert status == 422 and json.loads(body)["problems"] == [{"path": "earlyStopping", "message": (
            "katuna may not create secrets in namespace 'no-secrets', where this study's trials run: each attempt of "
            "a study with early stopping reads its report token from a Secret katuna creates. Grant its account "
            "create and deletecollection on secrets there (the katuna-trials ClusterRole does), or leave early stopping out")}]
        assert reporting.request("GET", "/studies/no-tokens")[0] == 404, "nothing is stored"
        submit(reporting, {key: value for key, value in pruned.items() if key != "earlyStopping"})
        assert reporting.wait_for("no-tokens", timeout=60)["status"] == "completed"
    finally:
        reporting.close()
    submit(service, {**pruned, "name": "no-tokens-handed"})
    assert service.wait_for("no-tokens-handed", timeout=60)["status"] == "completed"


def test_a_trial_kind_katuna_is_not_granted_is_refused_when_submitted(service: Service):
    """No ``knative/trial-kinds/`` component grants katuna PyTorchJobs here: a study of them is
    refused naming its ``trialSpec``, or, where it names a namespace, that namespace with the
    kind to grant there; nothing is stored."""
    container = {"name": "pytorch", "image": "python:3.12",
                 "command": [sys.executable, "-c", "print('loss=1')", "${trialParameters.x}"]}
    definition = job_study("torch-ungranted", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {
        "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [container]}}}}}}}
    answers = []
    for namespace in (None, "events"):
        if namespace is not None:
            definition["kubernetes"] = {"namespace": namespace}
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        answers.append((status, [(p["path"], p["message"]) for p in json.loads(body)["problems"]]))
    assert answers == [
        (422, [("trialTemplate.trialSpec", "katuna may not create pytorchjobs.kubeflow.org in namespace 'trials', "
                                           "where this study's trials run: grant its account that kind there (a kind "
                                           "of knative/trial-kinds/ is granted by deploying its component), or use a "
                                           "kind it may create")]),
        (422, [("kubernetes.namespace", "katuna may not create pytorchjobs.kubeflow.org in namespace 'events': bind "
                                        "the katuna-trials ClusterRole to its account there with this kind granted (a "
                                        "kind of knative/trial-kinds/ is granted by deploying its component), or run "
                                        "the trials in a namespace where it is bound")])], answers
    assert service.request("GET", "/studies/torch-ungranted")[0] == 404, "nothing is stored"


def test_a_refusal_for_good_fails_its_study_in_queue_mode_too_and_is_kept_as_a_dead_letter(kube: KubeStub,
                                                                                         tmp_path: Path):
    """Trials in the service's own namespace, where katuna's Role was never bound: the API's 403
    is permanent, and the service's own queue gives up on the event as a Knative broker does,
    failing the study with the reason and keeping the dead letter (before, the study stayed
    running with nothing to run it on)."""
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="unbound")
    try:
        submit(service, job_study("refused", maxTrials=1, parallelism=1))
        study = service.wait_for("refused", timeout=30)
        letters = [letter for letter in service.json("GET", "/dead-letters")[1]
                   if letter["event"]["data"].get("study") == "refused"]
    finally:
        service.close()
    assert study["status"] == "failed", study
    assert study["reason"].startswith("an event could not be delivered (dev.katuna.trial.suggested): "), study
    assert "403" in study["reason"], study["reason"]
    assert "dev.katuna.trial.suggested" in [letter["event"]["type"] for letter in letters], letters


def test_a_failed_job_fails_its_trial_with_the_exit_code(service: Service):
    submit(service, job_study("job-fails", mode="crash", maxTrials=1, parallelism=1))
    service.wait_for("job-fails")
    trial = trials(service, "job-fails")[0]
    assert trial["state"] == "FAIL" and trial["exitCode"] == 3
    assert "BackoffLimitExceeded" in trial["reason"] and "about to fail" in trial["reason"]


def test_a_trial_past_its_timeout_fails_and_its_job_is_deleted(service: Service, kube: KubeStub):
    """The timeout counts from the container's start; the Job's own deadline is a backstop."""
    definition = job_study("job-deadline", mode="hang", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["timeout"] = 1
    submit(service, definition)
    service.wait_for("job-deadline")
    trial = trials(service, "job-deadline")[0]
    assert trial["state"] == "FAIL" and trial["reason"].startswith("timed out: ran past its timeout of 1s")
    assert kube.created_jobs["job-deadline-0"]["spec"]["activeDeadlineSeconds"] == (1 + 3600) * 5
    eventually(lambda: ("trials", "job-deadline-0", "Background") in kube.deleted,
               "the Job deleted with its pods once the trial's failure is stored")
    assert ("trials", "job-deadline-0") not in kube.jobs


def test_a_timeout_counts_from_the_start_of_the_current_pods_container(kube: KubeStub):
    """Time a trial waited, or ran in a pod that was disrupted, is not its own: the replacement
    pod's container starts a fresh timeout, and a container not started yet has none running.
    The disrupted pod is one its kubelet evicted (no memory limit, its node short of memory):
    such a pod stays, failed, beside its replacement."""
    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    now = [0.0]
    executor = KubernetesExecutor(Cluster(namespace="clock"), api_client(kube.url), clock=lambda: now[0])
    command = study_definition(mode="hang")["trialTemplate"]["command"]
    launch = TrialLaunch("clocked", "u1", 0, 1, "clocked-0", [c.replace("${trialParameters.x}", "1") for c in command],
                         {}, ".", timeout=100, image="python:3.12")
    kube.exhaust = lambda job, index: (1.2, "memory") if (job, index) == ("clocked-0", 0) else None
    try:
        executor.launch(launch)
        pods = _wait_pods(kube, "clocked-0", 2)
    finally:
        kube.exhaust = None
    first, current = (_started(p) for p in pods)
    now[0] = first + 100.5
    assert executor.poll(launch) is None, "the disrupted pod's run does not count"
    now[0] = current + 99
    assert executor.poll(launch) is None
    now[0] = current + 100
    finished = executor.poll(launch)
    assert finished is not None and finished.data["outcome"] == "timeout"
    assert finished.data["message"] == ("ran past its timeout of 100s: its container started 100s ago "
                                        "(trialTemplate.timeout sets it: raise it for a trial that needs longer)")
    with kube.lock:
        pods[1]["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    now[0] = current + 10_000
    assert executor.poll(launch) is None, "a container not started yet has not run past anything"
    executor.stop(launch)


def _ended_job(kube: KubeStub, cluster, launch):
    """The end of ``launch``, run by an executor of ``cluster``, polled once its Job has a condition."""
    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_executor import KubernetesExecutor

    executor = KubernetesExecutor(cluster, api_client(kube.url), clock=lambda: 0.0)
    executor.launch(launch)
    deadline = time.monotonic() + 20
    while not kube.jobs[(cluster.namespace, launch.job_name)]["status"].get("conditions") and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = executor.poll(launch)
    assert finished is not None
    return finished


def test_a_job_past_its_backstop_deadline_times_out_naming_it(kube: KubeStub):
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    command = [c.replace("${trialParameters.x}", "1") for c in study_definition(mode="hang")["trialTemplate"]["command"]]
    launch = TrialLaunch("backstop", "u1", 0, 1, "backstop-0", command, {}, ".", timeout=1, image="python:3.12",
                         max_attempts=1)
    finished = _ended_job(kube, Cluster(namespace="backstop", start_allowance=0), launch)
    assert finished.data["outcome"] == "timeout"
    assert finished.data["message"].startswith("its Job ran past its deadline (1s from the Job's start: the trial's "
                                               "timeout plus the start allowance")


def test_a_job_past_its_trial_specs_own_deadline_times_out_naming_it(kube: KubeStub):
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    command = [c.replace("${trialParameters.x}", "1") for c in study_definition(mode="hang")["trialTemplate"]["command"]]
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"activeDeadlineSeconds": 1, "template": {"spec": {
        "containers": [{"name": "main", "image": "python:3.12", "command": command}], "restartPolicy": "Never"}}}}
    launch = TrialLaunch("own", "u1", 0, 1, "own-0", command, {}, ".", timeout=None, deadline=1, trial_spec=job,
                         primary_container="main", max_attempts=1)
    finished = _ended_job(kube, Cluster(namespace="backstop"), launch)
    assert finished.data["outcome"] == "timeout"
    assert finished.data["message"].startswith("its Job ran past its own spec.activeDeadlineSeconds (1s from the "
                                               "Job's start, as its trialSpec sets it: DeadlineExceeded")


def test_a_finished_job_whose_pods_are_gone_is_a_lost_run_not_a_failure(kube: KubeStub):
    """A node removed (scaled down, preempted) before the end was read takes the pods' logs with
    it: the attempt's metrics are unknowable, so it is run again rather than failed."""
    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.errors import LogGone, OutputLost
    from functions.core.launch import TrialLaunch
    from functions.core.log_reads import StreamedLogReads

    executor = KubernetesExecutor(Cluster(namespace="gone"), api_client(kube.url))
    command = [c.replace("${trialParameters.x}", "1") for c in study_definition()["trialTemplate"]["command"]]
    launch = TrialLaunch("gone", "u1", 0, 1, "gone-0", command, {}, ".", timeout=None, image="python:3.12")
    executor.launch(launch)
    deadline = time.monotonic() + 20
    while executor.poll(launch) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executor.poll(launch).data["outcome"] == "exited", "read while its pod is there"
    assert any(line.startswith("epoch=1 loss=") for line in executor.output(launch))
    with kube.lock:
        for pod in [p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == "gone-0"]:
            kube.delete_pod(pod)
    finished = executor.poll(launch)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("preempted", None)
    assert "are gone, and their logs with them" in finished.data["message"]
    with pytest.raises(OutputLost, match="no log of Job gone-0's last run is left"):
        list(executor.output(launch))
    with pytest.raises(LogGone, match="no log of Job gone-0's last run is left"):
        StreamedLogReads(executor.log, lambda launch: None).window(launch, -1, 1024)
    executor.stop(launch)


def _wait_pods(kube: KubeStub, job: str, count: int) -> list[dict]:
    """The Job's pods, oldest first, once ``count`` of them run or ran."""
    def running() -> list[dict] | None:
        with kube.lock:
            pods = [p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == job]
            statuses = pods[-1]["status"].get("containerStatuses") or [] if pods else []
            return pods if len(pods) >= count and statuses and "running" in statuses[0]["state"] else None
    return eventually(running, f"{job} to have {count} pods", timeout=20)


def _started(pod: dict) -> float:
    from datetime import datetime

    state = pod["status"]["containerStatuses"][0]["state"]
    stamp = (state.get("running") or state.get("terminated"))["startedAt"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_preempted_pod_is_replaced_inside_its_job_and_not_failed(service: Service, kube: KubeStub):
    kube.preempt_first_pod = True
    definition = job_study("job-preempt", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["retain"] = True  # the Job and its pods kept, to be looked at
    try:
        submit(service, definition)
        service.wait_for("job-preempt")
    finally:
        kube.preempt_first_pod = False
    trial = trials(service, "job-preempt")[0]
    assert (trial["state"], trial["attempt"]) == ("COMPLETE", 1)
    uid = kube.created_jobs["job-preempt-0"]["metadata"]["uid"]
    assert kube.job_controller.pods_made[uid] == 2, "the preempted pod and its replacement, in one Job"
    pods = [name for (_, name) in kube.pods if name.startswith("job-preempt-0-")]
    assert len(pods) == 1, "the scheduler deleted the preempted pod once the Job controller saw it"


def test_a_vanished_job_is_run_again_as_a_new_attempt(service: Service, kube: KubeStub):
    definition = job_study("job-lost", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] += ["--sleep", "3"]
    submit(service, definition)
    deadline = time.monotonic() + 20
    while ("trials", "job-lost-0") not in kube.jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    kube.delete_job("trials", "job-lost-0", None)
    service.wait_for("job-lost")
    trial = trials(service, "job-lost")[0]
    assert (trial["state"], trial["attempt"]) == ("COMPLETE", 2)
    assert "job-lost-0-a2" in kube.created


def test_stopping_a_study_deletes_its_running_jobs_with_their_pods(service: Service, kube: KubeStub):
    submit(service, job_study("job-stop", mode="hang", maxTrials=4))
    deadline = time.monotonic() + 20
    while sum(n.startswith("job-stop-") for n in kube.created) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, study = service.json("POST", "/studies/job-stop/stop")
    assert status == 200 and study["status"] == "stopped"
    deleted = {name: policy for _, name, policy in kube.deleted if name.startswith("job-stop-")}
    assert deleted == {"job-stop-0": "Background", "job-stop-1": "Background"}
    ended = [selector for _, selector, _ in kube.collection_deletes if "katuna.dev/study=job-stop," in (selector or "")]
    assert len(ended) == 1 and ended[0].endswith("katuna.dev/trial in (0,1)"), "one request stops them all"
    assert not [k for k in kube.jobs if k[1].startswith("job-stop-")]


def test_a_study_submitted_again_under_its_name_runs_its_own_jobs_beside_the_kept_ones(service: Service,
                                                                                      kube: KubeStub):
    """Job names carry no study uid: a study deleted and submitted again under its name meets
    the finished Jobs the first one kept (``retain``, or within their TTL). Its trial runs a Job
    of its own, in place of the old one of that name, and reads its own result; the old Jobs of
    other names are left as they were, even when the new study is stopped."""
    first = job_study("again", maxTrials=3, parallelism=3)
    first["trialTemplate"]["retain"] = True
    submit(service, first)
    assert service.wait_for("again")["status"] == "completed"
    kept = {name: kube.jobs[("trials", name)]["metadata"]["labels"]["katuna.dev/uid"]
            for name in ("again-0", "again-1", "again-2")}
    assert service.request("DELETE", "/studies/again")[0] == 204
    assert {name for _, name in kube.jobs if name.startswith("again-")} == set(kept), "kept after the delete"

    second = job_study("again", maxTrials=1, parallelism=1,
                       parameters=[{"name": "x", "type": "float", "min": 6.0, "max": 7.0}])
    submit(service, second)
    study = service.wait_for("again")
    assert (study["status"], study["counts"]["complete"]) == ("completed", 1)
    trial = trials(service, "again")[0]
    assert 6 <= trial["params"]["x"] <= 7 and trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2, abs=1e-5)
    assert kube.created.count("again-0") == 2, "its own Job, not the first study's"
    assert kube.created_jobs["again-0"]["metadata"]["labels"]["katuna.dev/uid"] != kept["again-0"]

    assert service.request("DELETE", "/studies/again")[0] == 204
    submit(service, job_study("again", mode="hang", maxTrials=1, parallelism=1))
    deadline = time.monotonic() + 20
    while kube.created.count("again-0") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, study = service.json("POST", "/studies/again/stop")
    assert status == 200 and study["status"] == "stopped"
    assert ("trials", "again-0") not in kube.jobs
    assert {name: kube.jobs[("trials", name)]["metadata"]["labels"]["katuna.dev/uid"]
            for name in ("again-1", "again-2")} == {name: kept[name] for name in ("again-1", "again-2")}


def test_a_trial_takes_its_name_from_an_earlier_study_of_the_same_name_and_nothing_else(kube: KubeStub):
    """A trial whose Job name is held by a Job of an earlier study of the same name deletes that
    Job with its pods (the delete's body, which carries the uid precondition, says
    ``Background``: the API reads no query parameter beside a body) and is tried again once it
    is gone; a launch delivered again is a no-op; stopping the
    trial deletes its own Jobs only, not the earlier study's of the same trial number."""
    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.errors import TemporaryError
    from functions.core.launch import TrialLaunch
    from functions.core.naming import job_name

    executor = KubernetesExecutor(Cluster(namespace="again"), api_client(kube.url))

    def launch(uid: str, attempt: int, code: int) -> TrialLaunch:
        return TrialLaunch("digits", uid, 1, attempt, job_name("digits", 1, attempt),
                           [sys.executable, "-c", f"print('loss={code}'); raise SystemExit({code})"], {}, ".",
                           timeout=None, image="python:3.12", retain=True)

    earlier = [launch("0123456789ab", attempt, 0) for attempt in (1, 2)]
    for each in earlier:
        executor.launch(each)
        assert _finished(executor, each).data["exitCode"] == 0
    mine = launch("ba9876543210", 1, 3)
    assert not executor.exists(mine), "the earlier study's Job is not this attempt's"
    with pytest.raises(TemporaryError, match="earlier study named digits"):
        executor.launch(mine)
    assert ("again", "digits-1") not in kube.jobs
    with kube.lock:
        left = [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") == "digits-1"]
    assert left == [], "the earlier study's Job went with its pods"
    executor.launch(mine)
    executor.launch(mine)
    assert kube.created.count("digits-1") == 2, "a launch delivered again creates nothing"
    finished = _finished(executor, mine)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", 3)
    assert list(executor.output(mine)) == ["loss=3\n"]
    executor.stop(mine)
    assert ("again", "digits-1") not in kube.jobs
    assert kube.jobs[("again", "digits-1-a2")]["metadata"]["labels"]["katuna.dev/uid"] == "0123456789ab"


def test_a_job_of_a_trials_name_that_katuna_did_not_make_refuses_the_trial_and_is_left(kube: KubeStub):
    from kubernetes import client

    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.errors import PermanentError
    from functions.core.launch import TrialLaunch

    foreign = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "mine-0", "labels": {"team": "vision"}},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                   {"name": "c", "image": "python:3.12", "command": [sys.executable, "-c", "print('loss=0')"]}]}}}}
    client.BatchV1Api(api_client(kube.url)).create_namespaced_job("again", foreign)
    executor = KubernetesExecutor(Cluster(namespace="again"), api_client(kube.url))
    launch = TrialLaunch("mine", "0123456789ab", 0, 1, "mine-0", [sys.executable, "-c", "print('loss=1')"], {}, ".",
                         timeout=None, image="python:3.12")
    with pytest.raises(PermanentError, match="Job mine-0 exists and is no trial of study mine"):
        executor.launch(launch)
    assert kube.jobs[("again", "mine-0")]["metadata"]["labels"] == {"team": "vision"}


def _finished(executor, launch):
    return eventually(lambda: executor.poll(launch), f"{launch.job_name} to end", timeout=30)


def test_deleting_a_study_just_ended_deletes_the_jobs_its_end_has_not_reached_yet(kube: KubeStub, tmp_path: Path):
    """A handler ends a study at once and its ``study.completed`` deletes the Jobs later; a
    DELETE in between must not leave them running with nothing left to delete them."""
    from functions.adapters.web import create_app
    from functions.core.events import study_created
    from functions.runtime import Runtime
    from functions.settings import Settings

    runtime = Runtime(Settings(db=tmp_path / "katuna.db", executor="kubernetes", k8s_api=kube.url,
                               k8s_namespace="ended"))
    try:
        client = create_app(runtime).test_client()
        assert client.post("/studies", json=job_study("ended", mode="hang", parallelism=2)).status_code == 201
        store = runtime.store()
        pending = runtime.dispatcher().deliver(study_created("ended", store.get_study("ended").uid))
        while pending:
            pending = [emitted for event in pending for emitted in runtime.dispatcher().deliver(event)]
        assert sorted(name for namespace, name in kube.jobs if namespace == "ended") == ["ended-0", "ended-1"]
        store.update_study("ended", status="failed", reason="a stop rule fired", completed_at=time.time())
        assert client.delete("/studies/ended").status_code == 204
        assert not [name for namespace, name in kube.jobs if namespace == "ended"], "its Jobs are deleted"
    finally:
        runtime.close()


def test_job_events_from_a_broker_end_a_trial_once(kube: KubeStub, tmp_path: Path):
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="events")
    try:
        release = tmp_path / "release-job-events"
        definition = job_study("job-events", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["command"] += ["--until", str(release)]
        submit(service, definition)
        headers, body = sink.wait(1)[0]
        status, reply_headers, reply = service.request("POST", "/functions/suggest", body, _ce_headers(headers))
        assert status == 200 and reply_headers["ce-type"] == "dev.katuna.trial.suggested"
        assert service.request("POST", "/functions/spawn", reply, _ce_headers(reply_headers))[0] == 202
        job = kube.jobs[("events", "job-events-0")]
        assert _job_event(service, "update", job) == "", "a Job still running ends nothing"
        release.touch()
        deadline = time.monotonic() + 20
        while not job["status"].get("conditions") and time.monotonic() < deadline:
            time.sleep(0.05)
        first = _job_event(service, "update", job)
        again = _job_event(service, "update", job)
        assert first.startswith("dev.katuna.trial.finished "), "sent on to K_SINK, not as the reply"
        assert again == first, "a duplicate Job event emits the same event"
        assert sink.wait(2)[1][0]["ce-type"] == "dev.katuna.trial.finished"
        foreign = {"metadata": {"name": "other", "labels": {"app": "x"}}}
        assert _job_event(service, "update", foreign) == ""
        for number in ("9" * 20, "9" * 5000):
            huge = {"metadata": {**job["metadata"], "labels": {**job["metadata"]["labels"], "katuna.dev/trial": number}}}
            assert _job_event(service, "update", {**job, "metadata": huge["metadata"]}) == "", "no trial of katuna's"
    finally:
        service.close()
        sink.close()


def _ce_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"}


def _job_event(service: Service, change: str, job: dict) -> str:
    """What the Job event's handling emitted (``Katuna-Emitted``): an ApiServerSource's event is
    answered without a reply (202), its events sent on to ``K_SINK``."""
    event = CloudEvent(attributes={"type": f"dev.knative.apiserver.resource.{change}",
                                   "source": "https://kubernetes.default.svc", "datacontenttype": "application/json",
                                   "kind": "Job", "apiversion": "batch/v1", "name": job["metadata"]["name"]},
                       data=json.loads(json.dumps(job)))
    message = ce_http.to_binary_event(event)
    status, headers, body = service.request("POST", "/functions/jobwatch", message.body, message.headers)
    assert (status, body) == (202, b""), body
    return headers.get("Katuna-Emitted", "")


def test_a_job_created_by_a_spawn_whose_record_was_lost_still_ends_its_trial(kube: KubeStub, tmp_path: Path):
    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.adapters.sqlite_store import SqliteStore
    from functions.core.cluster import Cluster
    from functions.core.events import Event, study_created
    from functions.core.launch import trial_launch
    from functions.core.records import StudyRecord
    from functions.core.validate import parse_study
    from functions.dispatch import Dispatcher
    from functions.handlers import Deps

    store = SqliteStore(tmp_path / "k.db")
    executor = KubernetesExecutor(Cluster(namespace="lost"), api_client(kube.url))
    dispatcher = Dispatcher(Deps(store, executor, time.time))
    definition = job_study("job-relaunch", maxTrials=1, parallelism=1)
    record = store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "u1", created_at=time.time()))
    suggested = dispatcher.deliver(study_created(record.name, record.uid))
    executor.launch(trial_launch(record, store.get_trial(record.name, 0)))  # the Job exists; spawn's record does not
    for event in suggested:
        assert dispatcher.deliver(event) == []
    assert store.get_trial(record.name, 0).state == "RUNNING"
    deadline = time.monotonic() + 20
    while not kube.jobs[("lost", "job-relaunch-0")]["status"].get("conditions") and time.monotonic() < deadline:
        time.sleep(0.05)
    update = Event("dev.knative.apiserver.resource.update", json.loads(json.dumps(kube.jobs[("lost", "job-relaunch-0")])))
    finished = dispatcher.deliver(update)
    assert [e.type for e in finished] == ["dev.katuna.trial.finished"]
    dispatcher.deliver(finished[0])
    assert store.get_trial(record.name, 0).state == "COMPLETE"
    assert kube.created.count("job-relaunch-0") == 1
    store.close()


def test_trial_jobs_report_progress_and_the_pruner_deletes_the_losers(kube: KubeStub, tmp_path: Path):
    from http_helpers import free_port

    port = free_port()
    service = Service(tmp_path, workers=2, port=port, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="pruning", KATUNA_REPORT_URL=f"http://127.0.0.1:{port}/")
    try:
        definition = job_study("job-prune", mode="curve", maxTrials=6, parallelism=2,
                               earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 2}})
        definition["trialTemplate"]["command"] += ["--sleep", "2.4"]
        submit(service, definition)
        service.wait_for("job-prune", timeout=120)
        states = {t["number"]: (t["state"], t["reason"]) for t in trials(service, "job-prune")}
        pruned = [n for n, (state, _) in states.items() if state == "PRUNED"]
        assert pruned and all(states[n][1].startswith("pruned at step") for n in pruned), states
        eventually(lambda: {f"job-prune-{n}" for n in pruned}
                   <= {name for ns, name, policy in kube.deleted if ns == "pruning" and policy == "Background"},
                   "the pruned trials' Jobs deleted with their pods once their verdicts are stored")
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in kube.created_jobs["job-prune-0"]["spec"]
               ["template"]["spec"]["containers"][0]["env"]}
        assert env["KATUNA_REPORT_URL"] == f"http://127.0.0.1:{port}/" and env["KATUNA_OBJECTIVE"] == "loss"
        assert env["KATUNA_REPORT_TOKEN"] == {"secretKeyRef": {"name": "job-prune-0.report", "key": "token"}}
    finally:
        service.close()


REPORTS_NAN = """
import time
from functions.reporter import report
assert report(1, loss=0.5) and report(2, loss=float("nan")), "katuna refused a report"
time.sleep(20)
print("loss=0.5")
"""
"""Reports NaN at its second step (and prints nothing the log reader takes), then would run for
20 seconds and complete."""


def test_a_trial_job_reporting_nan_is_pruned_as_optunas_threshold_rule_prunes_it(kube: KubeStub, tmp_path: Path):
    """The reporter posts NaN as JSON carries it, the service takes it, and the pruner judges it."""
    port = free_port()
    service = Service(tmp_path, workers=1, port=port, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="diverging", KATUNA_REPORT_URL=f"http://127.0.0.1:{port}/")
    try:
        definition = job_study("job-nan", maxTrials=1, parallelism=1,
                               earlyStopping={"algorithm": "threshold", "settings": {"upper": 10.0}})
        definition["trialTemplate"]["command"] = [sys.executable, "-c", REPORTS_NAN, "${trialParameters.x}"]
        submit(service, definition)
        service.wait_for("job-nan", timeout=60)
        (trial,) = trials(service, "job-nan")
    finally:
        service.close()
    assert (trial["state"], trial["reason"]) == ("PRUNED", "pruned at step 2 by the threshold rule (loss=nan)"), trial
    assert ("diverging", "job-nan-0", "Background") in kube.deleted


FORGES = """
import json, os, sys, time, urllib.error, urllib.request
from pathlib import Path
if os.environ["KATUNA_TRIAL"] == "0":
    time.sleep(0.5)
    env = os.environ
    data = {"study": env["KATUNA_STUDY"], "uid": env["KATUNA_STUDY_UID"], "trial": 1, "attempt": 1, "step": 1,
            "value": "nan", "token": env["KATUNA_REPORT_TOKEN"]}
    headers = {"ce-specversion": "1.0", "ce-type": "dev.katuna.trial.progress", "ce-source": "/forger",
               "ce-id": "forged", "content-type": "application/json"}
    for _ in range(4):
        request = urllib.request.Request(env["KATUNA_REPORT_URL"], json.dumps(data).encode(), headers, method="POST")
        try:
            status = urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as refused:
            status = refused.code
        Path(sys.argv[1]).open("a").write(f"{status}\\n")
else:
    time.sleep(2.5)
print("loss=0.5")
"""
"""Trial 0 posts, as trial 1, a NaN the threshold rule would prune trial 1 for, four times, with
the token it was given (its own); trial 1 runs on for 2.5 seconds."""


def test_a_trial_job_cannot_report_for_another_trial_of_its_study(kube: KubeStub, tmp_path: Path):
    """The forged report is refused (403) before the pruner sees it, and counts as no failure of
    the study however often it comes: both trials complete, and so does the study."""
    port = free_port()
    service = Service(tmp_path, workers=1, port=port, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="diverging", KATUNA_REPORT_URL=f"http://127.0.0.1:{port}/")
    answers = tmp_path / "forged"
    try:
        definition = job_study("job-forged", maxTrials=2, parallelism=2,
                               earlyStopping={"algorithm": "threshold", "settings": {"upper": 10.0}})
        definition["trialTemplate"]["command"] = [sys.executable, "-c", FORGES, str(answers), "${trialParameters.x}"]
        submit(service, definition)
        service.wait_for("job-forged", timeout=60)
        states = {t["number"]: (t["state"], t["reason"]) for t in trials(service, "job-forged")}
        study = service.json("GET", "/studies/job-forged")[1]
        metrics = service.request("GET", "/metrics")[2].decode()
    finally:
        service.close()
    assert answers.read_text().split() == ["403"] * 4
    assert 'katuna_events_handled_total{handler="prune",outcome="forged",type="dev.katuna.trial.progress"} 4.0' \
        in metrics, "each refusal is counted as forged, not as a failure"
    assert states == {0: ("COMPLETE", None), 1: ("COMPLETE", None)}, states
    assert study["status"] == "completed", study
    made = {change.object["metadata"]["name"]: change.object["data"]["token"]
            for change in kube.changes_since(0, "secrets") if change.type == "ADDED"}
    tokens = {made[f"{name}.report"] for name in kube.created_jobs if name.startswith("job-forged-")}
    assert len(tokens) == 2, "each attempt has a token of its own"


def test_katuna_stop_deletes_the_running_jobs_of_a_study_on_the_cluster(service: Service, kube: KubeStub):
    """``katuna stop`` where trials run as Jobs (``KATUNA_EXECUTOR=kubernetes``, as the service's
    own settings say) stops the study as ``POST /studies/NAME/stop`` does: its Jobs are deleted
    with their pods, and its trials end stopped by the study's end, not left running on the
    cluster behind a study the store calls stopped."""
    submit(service, job_study("cli-stop", mode="hang", maxTrials=4))
    deadline = time.monotonic() + 20
    while sum(n.startswith("cli-stop-") for n in kube.created) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    result = CliRunner().invoke(main, ["stop", "cli-stop", "--db", str(service.workdir / "katuna.db")],
                                env={"KATUNA_EXECUTOR": "kubernetes", "KATUNA_K8S_API": kube.url,
                                     "KATUNA_K8S_NAMESPACE": "trials"})
    assert result.exit_code == 0, result.output
    deleted = {name: policy for _, name, policy in kube.deleted if name.startswith("cli-stop-")}
    assert deleted == {"cli-stop-0": "Background", "cli-stop-1": "Background"}
    assert not [k for k in kube.jobs if k[1].startswith("cli-stop-")]
    ended = {t["number"]: (t["state"], t["reason"]) for t in trials(service, "cli-stop")}
    assert ended == {n: ("STOPPED", f"{STOPPED_AT_END} (stopped by user)") for n in (0, 1)}


def test_katuna_delete_on_kubernetes_first_deletes_the_jobs_a_refused_stop_left_and_keeps_the_study_if_it_cannot(
        kube: KubeStub, tmp_path: Path):
    """A study stopped while the API server refused to delete its Jobs ends with them still
    marked to stop, and its service gone, nothing else will stop them: ``katuna delete`` with
    the service's settings deletes them before the study (whose marks name them); while the
    cluster still refuses, it fails saying so, and the study and its marks stay."""
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="marked")
    try:
        submit(service, job_study("marked", mode="hang", maxTrials=2, parallelism=2))
        eventually(lambda: {"marked-0", "marked-1"} <= {name for ns, name in kube.jobs if ns == "marked"},
                   "both trials run", timeout=20)
        kube.faults.refuse("deletecollection", "jobs", times=1_000)
        service.request("POST", "/studies/marked/stop")
    finally:
        service.close()
    env = {"KATUNA_EXECUTOR": "kubernetes", "KATUNA_K8S_API": kube.url, "KATUNA_K8S_NAMESPACE": "marked"}
    refused = CliRunner().invoke(main, ["delete", "marked", "--db", str(tmp_path / "katuna.db")], env=env)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("error: study 'marked' was not deleted: the Jobs of the trials its end stopped "
                                     "could not be deleted"), refused.stderr
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert store.get_study("marked").status == "stopped" and store.stopping_trials(10) == [("marked", 0),
                                                                                              ("marked", 1)]
    finally:
        store.close()
    kube.faults.refuse("deletecollection", "jobs", times=0)
    deleted = CliRunner().invoke(main, ["delete", "marked", "--db", str(tmp_path / "katuna.db")], env=env)
    assert deleted.exit_code == 0, deleted.output
    assert not [name for ns, name in kube.jobs if ns == "marked"], "the Jobs went before the study"
    assert {name for ns, name, policy in kube.deleted if ns == "marked" and policy == "Background"} == \
        {"marked-0", "marked-1"}, "with their pods"
    assert "Deleted study 'marked' and its 2 trial(s)" in deleted.stdout
    again = CliRunner().invoke(main, ["delete", "marked", "--db", str(tmp_path / "katuna.db")], env=env)
    assert (again.exit_code, again.stderr) == (1, f"error: no study named 'marked' in {tmp_path / 'katuna.db'}\n")


def test_katuna_stop_on_kubernetes_without_a_cluster_says_so_and_leaves_the_study_running(tmp_path: Path):
    """No cluster to delete the Jobs on: the command fails naming the setting that asked for one,
    and the study stays as it was (marking it stopped would leave its Jobs running for good)."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        runner.submit(parse_study(job_study("unreached")), job_study("unreached"), tmp_path)
    finally:
        runner.close()
    home = tmp_path / "home"
    home.mkdir()
    result = CliRunner().invoke(main, ["stop", "unreached", "--db", str(tmp_path / "katuna.db")],
                                env={"KATUNA_EXECUTOR": "kubernetes", "KATUNA_K8S_API": None, "KUBECONFIG": None,
                                     "KUBERNETES_SERVICE_HOST": None, "HOME": str(home)})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no Kubernetes configuration for KATUNA_EXECUTOR=kubernetes: not in a cluster")
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert store.get_study("unreached").status == "running"
    finally:
        store.close()
