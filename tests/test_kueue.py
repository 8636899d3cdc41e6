"""Trial Jobs under Kueue (``manageJobsWithoutQueueName``), on the stand-in's simulated clock
through the real client: Kueue holds each Job's ``spec.suspend`` to its Workload's admission,
so a retained trial stopped before its end is stopped by deactivating its Workload, which Kueue
honours for good, where a Job suspended alone would be resumed and run again from its start."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from kube_standin import kueue
from kube_standin.containers import Run
from kube_stub import KubeStub
from kubernetes import client
from test_suspended_jobs import executor_of, job, launch_of, pods_of

from functions.adapters.kubernetes_client import api_client
from functions.core.cluster import Cluster

SIMULATED_RUN = Run(600, "loss=0.5\n")
"""Each trial's container runs ten minutes, long enough to be stopped while it runs."""


def workload(kube: KubeStub, name: str, namespace: str = "katuna") -> dict:
    found = kueue.workload_of(kube, kube.jobs[(namespace, f"{name}-0")])
    assert found is not None, "Kueue made the Job's Workload"
    return found


def condition(obj: dict, kind: str) -> tuple[str, str] | None:
    found = next((c for c in obj["status"].get("conditions", []) if c["type"] == kind), None)
    return None if found is None else (found["status"], found["reason"])


def running(kube: KubeStub, name: str) -> bool:
    return any(p["status"].get("phase") == "Running" for p in pods_of(kube, name))


def admitted_and_running(kube: KubeStub, name: str, namespace: str = "katuna") -> None:
    """Kueue has made the Job's Workload; the queue admits it, and its pod runs."""
    kube.settle()
    kube.admit(namespace, f"{name}-0")
    kube.run_until(lambda: running(kube, name))


def test_kueue_resumes_an_admitted_job_suspended_by_another_and_suspends_one_resumed_unadmitted(
        simulated_kube: KubeStub):
    """As Kueue's Job reconciler: the Workload's admission decides, whoever patches the Job."""
    simulated_kube.install_kueue()
    executor_of(simulated_kube).launch(launch_of("held"))
    simulated_kube.settle()
    assert workload(simulated_kube, "held")["metadata"]["name"].startswith("job-held-0-")
    simulated_kube.set_suspended("katuna", "held-0", False)
    simulated_kube.settle()
    assert job(simulated_kube, "held")["spec"]["suspend"] is True, "not admitted: suspended again"
    admitted_and_running(simulated_kube, "held")
    simulated_kube.set_suspended("katuna", "held-0", True)
    simulated_kube.settle()
    assert job(simulated_kube, "held")["spec"]["suspend"] is False, "admitted: resumed"


def test_a_deactivated_workload_is_evicted_and_its_job_suspended_for_good(simulated_kube: KubeStub):
    """``spec.active: false``: the Workload is evicted (``Deactivated``), its Job suspended and
    its pod deleted, its quota released; Kueue admits it no more."""
    simulated_kube.install_kueue()
    executor_of(simulated_kube).launch(launch_of("off"))
    admitted_and_running(simulated_kube, "off")
    client.CustomObjectsApi(api_client(simulated_kube.url)).patch_namespaced_custom_object(
        kueue.GROUP, "v1beta2", "katuna", kueue.PLURAL, workload(simulated_kube, "off")["metadata"]["name"],
        {"spec": {"active": False}}, _content_type="application/merge-patch+json")
    simulated_kube.run_until(lambda: not pods_of(simulated_kube, "off"))
    simulated_kube.clock.now += 3600
    simulated_kube.settle()
    deactivated = workload(simulated_kube, "off")
    assert job(simulated_kube, "off")["spec"]["suspend"] is True and not pods_of(simulated_kube, "off")
    assert condition(deactivated, "Evicted") == ("True", "Deactivated")
    assert (condition(deactivated, "QuotaReserved"), condition(deactivated, "Admitted")) == (
        ("False", "Pending"), ("False", "NoReservation"))
    with pytest.raises(ValueError, match="Kueue admits no inactive Workload"):
        simulated_kube.admit("katuna", "off-0")


@pytest.mark.parametrize("versions", [kueue.VERSIONS, ("v1beta1",)], ids=["v1beta2", "before-0.15"])
def test_a_retained_trial_stopped_under_kueue_stays_stopped_its_job_kept(simulated_kube: KubeStub, versions):
    """katuna stops a retained trial's Job by deactivating its Workload: Kueue suspends the Job
    and keeps it so (a Job katuna suspended itself, Kueue would resume, running the trial again
    from its start); the Job stays, as ``retain`` keeps it. A Kueue older than 0.15 serves its
    Workloads as ``v1beta1`` only."""
    simulated_kube.install_kueue(versions)
    executor = executor_of(simulated_kube)
    launch = launch_of("kept")
    executor.launch(launch)
    admitted_and_running(simulated_kube, "kept")
    executor.stop(launch, keep=True)
    for _ in range(20):
        simulated_kube.settle()
        assert job(simulated_kube, "kept")["spec"]["suspend"] is True, "Kueue does not resume it"
        assert not pods_of(simulated_kube, "kept"), "its pod is deleted, and no other made"
        simulated_kube.clock.now += 60
    assert workload(simulated_kube, "kept")["spec"]["active"] is False
    assert not simulated_kube.deleted, "the retained trial's Job is kept"


def test_without_kueue_a_retained_trial_is_stopped_by_suspending_its_job(simulated_kube: KubeStub):
    """No Kueue, no Workloads served (404): katuna suspends the Job itself."""
    executor = executor_of(simulated_kube)
    launch = launch_of("plain")
    executor.launch(launch)
    simulated_kube.run_until(lambda: running(simulated_kube, "plain"))
    executor.stop(launch, keep=True)
    simulated_kube.run_until(lambda: not pods_of(simulated_kube, "plain"))
    assert job(simulated_kube, "plain")["spec"]["suspend"] is True and not simulated_kube.deleted


def test_where_katuna_may_not_list_workloads_it_suspends_the_job_and_says_why_kueue_may_resume_it(
        simulated_kube: KubeStub, caplog: pytest.LogCaptureFixture):
    """A namespace bound to an older katuna's grant, without Kueue's Workloads: katuna cannot
    know which Jobs Kueue manages, suspends the Job as before, and says what to grant."""
    simulated_kube.install_kueue()
    simulated_kube.add_namespace("older", grant=False)
    simulated_kube.authorizer.grant_in_but("older", "workloads")
    executor = executor_of(simulated_kube)
    launch = replace(launch_of("older"), cluster=Cluster(namespace="older"))
    executor.launch(launch)
    admitted_and_running(simulated_kube, "older", "older")
    with caplog.at_level(logging.WARNING, logger="katuna.kubernetes"):
        executor.stop(launch, keep=True)
    assert simulated_kube.jobs[("older", "older-0")]["spec"]["suspend"] is True
    assert "katuna may not list workloads.kueue.x-k8s.io in namespace older (grant it, as the katuna-trials " \
           "ClusterRole does)" in caplog.text
