"""Trial Jobs an admission controller holds back (Kueue with ``manageJobsWithoutQueueName``
creates every Job suspended until a queue admits it): the stand-in's Job controller as the real
one behaves, read through the real client on a simulated clock (Jobs whose pods run a sidecar:
``test_sidecars``)."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import study_definition
from http_helpers import Service
from kube_standin import kueue
from kube_standin.clock import rfc3339
from kube_standin.containers import Run
from kube_stub import KubeStub
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.launch import TrialLaunch

ALLOWANCE = 600


SIMULATED_RUN = Run(100, "loss=0.5\n")
"""How each container of the ``simulated_kube`` fixture runs."""


def executor_of(kube: KubeStub) -> KubernetesExecutor:
    return KubernetesExecutor(Cluster(namespace="katuna", start_allowance=ALLOWANCE), api_client(kube.url),
                              clock=kube.clock.time)


def launch_of(name: str, timeout: float | None = 60) -> TrialLaunch:
    return TrialLaunch(name, "0123456789ab", 0, 1, f"{name}-0", ["train"], {}, ".", timeout=timeout,
                       image="python:3.12")


def job(kube: KubeStub, name: str) -> dict:
    return kube.jobs[("katuna", f"{name}-0")]


def suspended(kube: KubeStub, name: str) -> dict | None:
    return next((c for c in job(kube, name)["status"].get("conditions", []) if c["type"] == "Suspended"), None)


def pods_of(kube: KubeStub, name: str) -> list[dict]:
    return [p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == f"{name}-0"]


def test_a_suspended_job_makes_no_pods_and_its_deadline_waits_until_it_is_resumed(simulated_kube: KubeStub):
    """As the real Job controller: a Job created suspended gets the ``Suspended`` condition and
    no start time; its deadline does not run however long it waits; resumed, it starts then."""
    simulated_kube.install_kueue()
    executor_of(simulated_kube).launch(launch_of("queued"))
    simulated_kube.settle()
    assert pods_of(simulated_kube, "queued") == [] and "startTime" not in job(simulated_kube, "queued")["status"]
    assert {k: suspended(simulated_kube, "queued")[k] for k in ("status", "reason", "message")} == {
        "status": "True", "reason": "JobSuspended", "message": "Job suspended"}
    simulated_kube.clock.now += 10 * (60 + ALLOWANCE)
    simulated_kube.settle()
    conditions = job(simulated_kube, "queued")["status"]["conditions"]
    assert not [c for c in conditions if c["type"] in ("Failed", "FailureTarget")]

    simulated_kube.admit("katuna", "queued-0")
    simulated_kube.settle()
    resumed = suspended(simulated_kube, "queued")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    assert job(simulated_kube, "queued")["status"]["startTime"] == simulated_kube.clock.stamp(), \
        "its deadline counts from now"
    simulated_kube.run_until(
        lambda: any(c["type"] == "Complete" for c in job(simulated_kube, "queued")["status"]["conditions"]))


def test_suspending_a_running_job_deletes_its_pod_without_counting_a_failure(simulated_kube: KubeStub):
    """Kueue takes a Job's admission back (to preempt it for a higher-priority workload): its
    active pods are deleted, uncounted, and a fresh one runs once it is admitted again."""
    executor_of(simulated_kube).launch(launch_of("preempted"))
    simulated_kube.run_until(
        lambda: any(p["status"].get("phase") == "Running" for p in pods_of(simulated_kube, "preempted")))
    simulated_kube.set_suspended("katuna", "preempted-0", True)
    simulated_kube.run_until(lambda: not pods_of(simulated_kube, "preempted"))
    status = job(simulated_kube, "preempted")["status"]
    assert suspended(simulated_kube, "preempted")["status"] == "True"
    assert "failed" not in status and "active" not in status
    simulated_kube.set_suspended("katuna", "preempted-0", False)
    simulated_kube.run_until(
        lambda: any(c["type"] == "Complete" for c in job(simulated_kube, "preempted")["status"]["conditions"]))
    status = job(simulated_kube, "preempted")["status"]
    assert status["succeeded"] == 1 and "failed" not in status


def test_a_job_kept_suspended_times_out_after_the_start_allowance_and_one_admitted_in_time_runs(
        simulated_kube: KubeStub):
    """No pod, no deadline: only katuna can end the wait. It ends the attempt once the Job has
    been suspended longer than the start allowance; a Job admitted before then runs as any other."""
    simulated_kube.install_kueue()
    executor = executor_of(simulated_kube)
    held, admitted = launch_of("held", timeout=None), launch_of("admitted")
    executor.launch(held)
    executor.launch(admitted)
    simulated_kube.settle()
    simulated_kube.clock.now += ALLOWANCE - 200
    simulated_kube.admit("katuna", "admitted-0")
    simulated_kube.run_until(
        lambda: any(c["type"] == "Complete" for c in job(simulated_kube, "admitted")["status"]["conditions"]))
    assert simulated_kube.clock.now < simulated_kube.clock.start + ALLOWANCE and executor.poll(held) is None
    ran = executor.poll(admitted)
    assert (ran.data["outcome"], ran.data["exitCode"]) == ("exited", 0)
    simulated_kube.clock.now = simulated_kube.clock.start + ALLOWANCE
    ended = executor.poll(held)
    assert ended is not None and ended.data["outcome"] == "timeout"
    assert ended.data["message"] == (
        f"its Job is suspended since {rfc3339(simulated_kube.clock.start)} (JobSuspended: Job suspended): an admission "
        "controller such as Kueue holds it until a queue admits it, and it waited past the start allowance of "
        f"{ALLOWANCE}s (KATUNA_K8S_START_ALLOWANCE)")


def test_a_trial_waiting_for_admission_says_so_until_it_runs(tmp_path: Path):
    """Through ``katuna serve``: the running trial's reason says why it waits while its Job is
    suspended, and no longer once its queue admitted it and it ran."""
    simulated_kube = KubeStub()
    simulated_kube.install_kueue()
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=simulated_kube.url,
                      KATUNA_K8S_NAMESPACE="default")
    try:
        definition = study_definition(name="kueued", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        reason = eventually(lambda: next((t["reason"] for t in service.json("GET", "/studies/kueued/trials")[1]), None),
                            "the trial's reason", timeout=60)
        assert reason.startswith("waiting: its Job is suspended since ")
        assert "(JobSuspended: Job suspended): an admission controller such as Kueue holds it" in reason
        eventually(lambda: kueue.workload_of(simulated_kube, simulated_kube.jobs[("default", "kueued-0")]),
                   "Kueue makes the Job's Workload")
        simulated_kube.admit("default", "kueued-0")
        study = service.wait_for("kueued")
        [trial] = service.json("GET", "/studies/kueued/trials")[1]
        assert (study["status"], trial["state"], trial["reason"]) == ("completed", "COMPLETE", None)
    finally:
        service.close()
        simulated_kube.close()
