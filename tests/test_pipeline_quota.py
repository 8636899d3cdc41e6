"""A pipeline run whose step's pod a ResourceQuota refuses, on the stand-in's simulated clock:
Argo's and Tekton's controllers take the quota's 403 (``exceeded quota``) as transient, so the
run waits, running, and makes its pod once the quota lets it, as the real controllers do (a
Workflow's node stays Pending and is requeued; a TaskRun stays ``ExceededResourceQuota`` and
tries again a minute later). Any other refusal still fails the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from kubernetes import client

from functions.adapters.kubernetes_client import api_client

WORKFLOW = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "wf"}, "spec": {
    "serviceAccountName": "trial-argo-executor", "entrypoint": "fit",
    "templates": [{"name": "fit", "container": {"image": "python:3.12", "command": ["train"]}}]}}
PIPELINE_RUN = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "pr"}, "spec": {
    "pipelineSpec": {"tasks": [{"name": "fit", "taskSpec": {"steps": [
        {"name": "fit", "image": "python:3.12", "command": ["train"]}]}}]}}}


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    stub = KubeStub(clock=SimulatedClock())
    stub.kubelets.containers = SimulatedContainers(stub.clock, lambda pod: Run(30, "loss=0.5\n"))
    for operator in ("argo", "tekton"):
        stub.install_operator(operator)
    yield stub
    stub.close()


def _create(kube: KubeStub, body: dict, plural: str) -> None:
    group, version = body["apiVersion"].split("/")
    client.CustomObjectsApi(api_client(kube.url)).create_namespaced_custom_object(group, version, "katuna", plural, body)


def _status(kube: KubeStub, plural: str, name: str) -> dict:
    with kube.lock:
        return dict(kube.workloads[(plural, "katuna", name)].get("status") or {})


def _pods(kube: KubeStub, prefix: str) -> list[dict]:
    with kube.lock:
        return [p for (_, name), p in kube.pods.items() if name.startswith(prefix)]


def test_an_argo_workflow_waits_out_a_full_quota_and_then_runs(kube: KubeStub):
    kube.set_quota("katuna", {"pods": 0})
    _create(kube, WORKFLOW, "workflows")
    kube.run_until(lambda: _status(kube, "workflows", "wf").get("phase"))
    kube.clock.now += 300
    kube.settle()
    assert _status(kube, "workflows", "wf")["phase"] == "Running" and not _pods(kube, "wf-"), "waiting, not failed"
    kube.set_quota("katuna", {})
    kube.run_until(lambda: _status(kube, "workflows", "wf")["phase"] != "Running")
    assert _status(kube, "workflows", "wf")["phase"] == "Succeeded"


def test_a_tekton_pipelinerun_waits_out_a_full_quota_trying_again_each_minute(kube: KubeStub):
    kube.set_quota("katuna", {"pods": 0})
    _create(kube, PIPELINE_RUN, "pipelineruns")
    kube.run_until(lambda: _status(kube, "pipelineruns", "pr").get("conditions"))
    refused = kube.clock.monotonic()
    kube.clock.now += 30
    kube.settle()
    [condition] = _status(kube, "pipelineruns", "pr")["conditions"]
    assert (condition["status"], condition["reason"]) == ("Unknown", "Running") and not _pods(kube, "pr-")
    kube.set_quota("katuna", {})
    kube.run_until(lambda: bool(_pods(kube, "pr-")))
    assert kube.clock.monotonic() - refused >= 60, "its pod is tried again a minute after the refusal"
    kube.run_until(lambda: _status(kube, "pipelineruns", "pr")["conditions"][0]["status"] != "Unknown")
    assert _status(kube, "pipelineruns", "pr")["conditions"][0]["status"] == "True"


def test_another_refusal_still_fails_the_run(kube: KubeStub):
    """A pod the namespace's Pod Security level refuses meets every retry the same way."""
    workflow = {**WORKFLOW, "spec": dict(WORKFLOW["spec"])}
    workflow["spec"]["templates"] = [{"name": "fit", "container": {
        "image": "python:3.12", "command": ["train"], "securityContext": {"privileged": True}}}]
    _create(kube, workflow, "workflows")
    kube.run_until(lambda: _status(kube, "workflows", "wf").get("phase") not in (None, "Running"))
    status = _status(kube, "workflows", "wf")
    assert status["phase"] == "Failed" and 'violates PodSecurity "baseline:latest": privileged' in status["message"]
