"""The stand-in's controllers make objects of fixed names (a Training Operator job's
``<job>-<role>-<index>`` pods, a JobSet's ``<jobset>-<replicatedJob>-<index>`` Jobs) through the
API's refusal of a name already held, as on a cluster: an earlier workload's object of the same
name, Terminating or orphaned, is left as it is, the refusal shows as the controller's Warning
Event, the new workload's status waits, and the object is made once the name is free. Driven
through the real kubernetes client on a simulated clock."""

from __future__ import annotations

import re

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.objects import SUFFIX_ALPHABET
from kube_stub import KubeStub
from kubernetes import client

from functions.adapters.kubernetes_client import api_client

GRACE_SECONDS = 45


def _behaviour(pod: dict) -> Run:
    """The first workload's containers run for ten minutes, deaf to SIGTERM; the second's print their loss in
    five seconds."""
    if pod["metadata"]["labels"].get("run") == "first":
        return Run(600.0, "loss=999\n", term_seconds=None)
    return Run(5.0, "loss=3\n")


@pytest.fixture
def simulated():
    clock = SimulatedClock()
    kube = KubeStub(clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, _behaviour)
    yield kube, clock
    kube.close()



def _template(run: str) -> dict:
    return {"metadata": {"labels": {"run": run}}, "spec": {
        "terminationGracePeriodSeconds": GRACE_SECONDS, "restartPolicy": "Never",
        "containers": [{"name": "pytorch", "image": "python:3.12", "command": ["train"]}]}}


def _pytorchjob(run: str) -> dict:
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "p"},
            "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": _template(run)},
                                             "Worker": {"replicas": 1, "template": _template(run)}}}}


def _masters(core: client.CoreV1Api) -> list[client.V1Pod]:
    """The master pods of the PyTorchJobs ``p``, whoever's (as katuna lists them: by their labels)."""
    return core.list_namespaced_pod("default", label_selector="training.kubeflow.org/job-name=p,"
                                                              "training.kubeflow.org/replica-type=master").items


def _conditions(obj: dict) -> list[str]:
    return [c["type"] for c in (obj.get("status") or {}).get("conditions", []) if c["status"] == "True"]


def test_a_pod_whose_name_an_earlier_jobs_terminating_pod_holds_is_made_once_it_is_gone(simulated):
    kube, clock = simulated
    kube.install_operator("training-operator")
    objects, core = client.CustomObjectsApi(api_client(kube.url)), client.CoreV1Api(api_client(kube.url))

    def job() -> dict:
        return objects.get_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "p")

    objects.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", _pytorchjob("first"))
    kube.run_until(lambda: "Running" in _conditions(job()))
    objects.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "p",
                                            propagation_policy="Background")
    [earlier] = _masters(core)
    assert earlier.metadata.deletion_timestamp is not None, "its container takes its grace period to stop"

    created = objects.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs",
                                                      _pytorchjob("second"))
    kube.settle()
    assert _conditions(job()) == ["Created"], "the job's status waits for its pods"
    [held] = _masters(core)
    assert (held.metadata.uid, held.metadata.labels["run"]) == (earlier.metadata.uid, "first"), "left as it was"
    refusals = {e["message"]: (e["type"], e["reason"]) for e in kube.events_of("PyTorchJob", "p")}
    assert refusals == {f'Error creating: pods "p-{role}-0" already exists': ("Warning", "FailedCreatePod")
                        for role in ("master", "worker")}

    kube.run_until(lambda: "Succeeded" in _conditions(job()))
    [mine] = _masters(core)
    assert mine.metadata.labels["run"] == "second" and mine.metadata.owner_references[0].uid == \
        created["metadata"]["uid"]
    assert core.read_namespaced_pod_log("p-master-0", "default") == "loss=3\n"
    changes = [(c.type, c.object["metadata"]["uid"]) for c in kube.changes_since(0, "pods")
               if c.object["metadata"]["name"] == "p-master-0" and c.type in ("ADDED", "DELETED")]
    assert changes == [("ADDED", earlier.metadata.uid), ("DELETED", earlier.metadata.uid),
                       ("ADDED", mine.metadata.uid)], "made once the earlier pod was gone, its grace period over"


def _jobset(run: str) -> dict:
    job = {"metadata": {"labels": {"run": run}}, "spec": {"completionMode": "Indexed", "completions": 1, "parallelism": 1, "backoffLimit": 0,
                    "template": _template(run)}}
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": "s"},
            "spec": {"replicatedJobs": [{"name": "node", "replicas": 1, "template": job}]}}


def _job_conditions(batch: client.BatchV1Api) -> list[str]:
    job = batch.read_namespaced_job("s-node-0", "default")
    return [c.type for c in job.status.conditions or [] if c.status == "True"]


def test_a_job_whose_name_an_earlier_jobsets_orphaned_job_holds_is_made_once_it_is_deleted(simulated):
    kube, clock = simulated
    kube.install_operator("jobset")
    objects, batch = client.CustomObjectsApi(api_client(kube.url)), client.BatchV1Api(api_client(kube.url))

    def jobset() -> dict:
        return objects.get_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets", "s")

    objects.create_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets", _jobset("first"))
    kube.run_until(lambda: ("default", "s-node-0") in kube.jobs)
    objects.delete_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets", "s",
                                            propagation_policy="Orphan")
    orphan = batch.read_namespaced_job("s-node-0", "default")
    assert not orphan.metadata.owner_references

    created = objects.create_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets",
                                                      _jobset("second"))
    kube.run_until(lambda: "Complete" in _job_conditions(batch))
    held = batch.read_namespaced_job("s-node-0", "default")
    assert (held.metadata.uid, held.metadata.labels["run"]) == (orphan.metadata.uid, "first"), "left as it was"
    assert _conditions(jobset()) == [], "the JobSet does not complete on a Job not its own"
    [refusal] = kube.events_of("JobSet", "s")
    assert (refusal["type"], refusal["reason"], refusal["message"]) == (
        "Warning", "JobCreationFailed",
        'job "s-node-0" creation failed with error: jobs.batch "s-node-0" already exists')

    batch.delete_namespaced_job("s-node-0", "default", propagation_policy="Background")
    kube.run_until(lambda: "Completed" in _conditions(jobset()))
    mine = batch.read_namespaced_job("s-node-0", "default")
    assert mine.metadata.labels["run"] == "second" and mine.metadata.owner_references[0].uid == \
        created["metadata"]["uid"]
    [pod] = [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") == "s-node-0"]
    assert re.fullmatch(f"s-node-0-0-[{SUFFIX_ALPHABET}]{{5}}", pod["metadata"]["name"]), \
        "an Indexed Job's pod is named by generateName <job>-<index>-, as the Job controller names it"
