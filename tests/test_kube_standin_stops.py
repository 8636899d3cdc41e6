"""The stand-in's kubelet stops a pod's containers as a kubelet does: SIGTERM to each one's main
process, SIGKILL to what still runs once the grace period is over; a container reports the
exit code it gave, and its pod ends as its containers (or, where its kubelet ends it, failed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from test_kube_standin import condition
from test_kube_standin import job as process_job
from test_kube_standin import pods_of as live_pods
from test_kube_standin_simulated import conditions, job, pods_of
from test_kube_standin_simulated import static as on_simulated_clock
from waiting import eventually

from functions.core.file_collector import final_lines, wrap

DEAF = Run(3600.0, term_seconds=None)
"""A container that ignores SIGTERM."""


@pytest.fixture
def cluster() -> Iterator[KubeStub]:
    stub = KubeStub()
    yield stub
    stub.close()


def run_until_running(kube: KubeStub, *names: str) -> None:
    """The simulated clock run until the first pod of each Job named runs."""
    kube.run_until(lambda: all(pods_of(kube, name) and pods_of(kube, name)[0]["status"].get("phase") == "Running"
                               for name in names))


def state(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]["state"]


def test_a_deleted_pods_container_gets_sigterm_and_reports_the_code_it_exits_with(cluster: KubeStub):
    """Its handler prints a last line and exits 0: the pod succeeds, the line in its log."""
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: (print('flushed', flush=True), sys.exit(0)))\n"
            "print('ready', flush=True)\ntime.sleep(60)")
    cluster.create_job("katuna", process_job("flush", code))
    [pod] = eventually(lambda: [p for p in live_pods(cluster, "flush") if cluster.read_log(
        "katuna", p["metadata"]["name"], None) == (200, b"ready\n")], "the container runs")
    with cluster.lock:
        cluster.delete_pod(pod)
        assert pod["metadata"].get("deletionTimestamp"), "Terminating while its container stops"
    eventually(lambda: pod["status"].get("phase") == "Succeeded", "it exits on SIGTERM")
    assert state(pod)["terminated"]["exitCode"] == 0 and state(pod)["terminated"]["reason"] == "Completed"
    assert [line.text for line in cluster.logs.get(("katuna", pod["metadata"]["name"]), [])] in (
        [], ["ready", "flushed"]), "its log, while it lasts, has the line its handler printed"
    eventually(lambda: not live_pods(cluster, "flush"), "then it goes")


def test_a_container_deaf_to_sigterm_is_killed_once_its_grace_period_is_over(cluster: KubeStub):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    spec = process_job("deaf", code)
    spec["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    cluster.create_job("katuna", spec)
    [pod] = eventually(lambda: [p for p in live_pods(cluster, "deaf") if cluster.read_log(
        "katuna", p["metadata"]["name"], None) == (200, b"ready\n")], "the container runs")
    with cluster.lock:
        cluster.delete_pod(pod)
    eventually(lambda: pod["status"].get("phase") == "Failed", "SIGKILLed after its grace period (at least 2 s)")
    assert state(pod)["terminated"]["exitCode"] == 137


def test_a_process_that_kills_itself_exits_as_its_runtime_reports_it(cluster: KubeStub):
    """Ended by a signal, as ``128 +`` its number (not as the negative code Python gives)."""
    cluster.create_job("katuna", process_job("killed", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    eventually(lambda: condition(cluster, "killed"), "the Job fails")
    [pod] = live_pods(cluster, "killed")
    assert state(pod)["terminated"]["exitCode"] == 137


def test_a_preempted_pod_terminates_for_its_grace_period_before_a_policy_job_replaces_it():
    """With a ``podFailurePolicy`` the Job waits for the pod to fail; it then ignores the failure."""
    clock = SimulatedClock()
    kube = on_simulated_clock(clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: DEAF)
    spec = job("spot", {})
    spec["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 45
    try:
        kube.create_job("katuna", spec)
        run_until_running(kube, "spot")
        [first] = pods_of(kube, "spot")
        preempted_at = clock.now
        kube.preempt_pod("katuna", first["metadata"]["name"])
        kube.settle()
        assert len(pods_of(kube, "spot")) == 1 and first["metadata"]["deletionTimestamp"]
        assert conditions(first)["DisruptionTarget"] == "PreemptionByScheduler"
        kube.run_until(lambda: len(pods_of(kube, "spot")) == 1 and pods_of(kube, "spot")[0] is not first)
        assert clock.now - preempted_at == 45, "replaced once its container was killed, its grace period over"
        assert (first["status"]["phase"], state(first)["terminated"]["exitCode"]) == ("Failed", 137)
        assert kube.jobs[("katuna", "spot")]["status"].get("failed", 0) == 0, "the policy ignored it"
    finally:
        kube.close()


def test_a_job_without_a_pod_failure_policy_counts_a_deleted_pod_failed_and_replaces_it_at_once():
    """``podReplacementPolicy: TerminatingOrFailed``: the replacement runs beside the pod terminating."""
    clock = SimulatedClock()
    kube = on_simulated_clock(clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: DEAF)
    spec = job("plain", {})
    del spec["spec"]["podFailurePolicy"]
    spec["spec"]["backoffLimit"] = 3
    try:
        kube.create_job("katuna", spec)
        run_until_running(kube, "plain")
        [first] = pods_of(kube, "plain")
        with kube.lock:
            kube.delete_pod(first)
        kube.settle()
        terminating, replacement = pods_of(kube, "plain")
        assert terminating is first and first["status"]["phase"] == "Running" and first["metadata"]["deletionTimestamp"]
        status = kube.jobs[("katuna", "plain")]["status"]
        assert (status["failed"], status["terminating"], status["active"]) == (1, 1, 1)
    finally:
        kube.close()


def test_a_node_shutting_down_gives_its_pods_its_own_grace_and_fails_them_whatever_they_exit_with():
    """GKE's kubelet gives ordinary pods 15 of its 30 seconds; a container that exits 0 on SIGTERM
    leaves its pod ``Failed`` all the same, with reason ``Terminated``."""
    clock = SimulatedClock()
    kube = on_simulated_clock(clock)
    saving_run = Run(3600.0, term_seconds=1.0, term_output="saved\n", term_code=0)
    kube.kubelets.containers = SimulatedContainers(
        clock, lambda pod: DEAF if pod["metadata"]["labels"]["job-name"] == "deaf" else saving_run)
    try:
        for name in ("deaf", "saving"):
            kube.create_job("katuna", job(name, {}))
        run_until_running(kube, "deaf", "saving")
        deaf, saving = pods_of(kube, "deaf")[0], pods_of(kube, "saving")[0]
        shut_at = clock.now
        with kube.lock:
            for pod in (deaf, saving):
                kube.kubelets.disrupt(kube, pod, "TerminationByKubelet", 15.0)
        kube.run_until(lambda: deaf["status"]["phase"] == "Failed")
        assert clock.now - shut_at == 15 and state(deaf)["terminated"]["exitCode"] == 137
        assert (saving["status"]["phase"], saving["status"]["reason"]) == ("Failed", "Terminated")
        assert state(saving)["terminated"]["exitCode"] == 0
        assert [line.text for line in kube.logs[("katuna", saving["metadata"]["name"])]] == ["saved"]
    finally:
        kube.close()


def test_a_sidecar_ends_with_its_pod_exiting_0_on_sigterm():
    clock = SimulatedClock()
    kube = on_simulated_clock(clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: DEAF)
    spec = job("proxied", {})
    spec["spec"]["template"]["spec"]["containers"].append({"name": "istio-proxy", "image": "istio/proxyv2"})
    try:
        kube.create_job("katuna", spec)
        run_until_running(kube, "proxied")
        [pod] = pods_of(kube, "proxied")
        kube.preempt_pod("katuna", pod["metadata"]["name"])
        kube.run_until(lambda: pod["status"]["phase"] == "Failed")
        codes = {s["name"]: s["state"]["terminated"]["exitCode"] for s in pod["status"]["containerStatuses"]}
        assert codes == {"trial": 137, "istio-proxy": 0}
    finally:
        kube.close()



def test_a_held_pod_deleted_fails_where_its_sidecar_exits_143_on_sigterm():
    """The trial's container exited 0; its proxy holds the pod until the pod is deleted, then exits
    as its image does on SIGTERM (here 143): the pod fails for the sidecar's code."""
    clock = SimulatedClock()
    kube = on_simulated_clock(clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(10.0, "loss=0.5\n"))
    kube.kubelets.sidecar_term_codes["cloud-sql-proxy:2"] = 143
    spec = job("held", {})
    spec["spec"]["template"]["spec"]["containers"].append({"name": "sql", "image": "cloud-sql-proxy:2"})
    try:
        kube.create_job("katuna", spec)
        kube.run_until(lambda: pods_of(kube, "held") and any(
            "terminated" in s["state"] for s in pods_of(kube, "held")[0]["status"]["containerStatuses"]))
        [pod] = pods_of(kube, "held")
        assert pod["status"]["phase"] == "Running", "held by its sidecar"
        with kube.lock:
            kube.delete_pod(pod)
        kube.run_until(lambda: pod["status"]["phase"] != "Running")
        codes = {s["name"]: s["state"]["terminated"]["exitCode"] for s in pod["status"]["containerStatuses"]}
        assert (pod["status"]["phase"], codes) == ("Failed", {"trial": 0, "sql": 143})
    finally:
        kube.close()


def test_katunas_metrics_file_wrapper_passes_sigterm_on_and_prints_the_files_last_line(cluster: KubeStub,
                                                                                       tmp_path: Path):
    """A File-collector trial whose pod is deleted: the wrapper passes SIGTERM on to the command,
    whose handler writes a last metric and exits 0, then prints the whole file, that line included,
    and exits with the command's 0."""
    path = tmp_path / "metrics.log"
    code = ("import signal, sys, time\n"
            f"out = open({str(path)!r}, 'a'); out.write('loss=0.9\\n'); out.flush()\n"
            "def stop(*_):\n    out.write('loss=0.7\\n'); out.close(); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\ntime.sleep(60)")
    cluster.create_job("katuna", wrap(process_job("filed", code), "trial", str(path)))

    def log() -> list[str]:
        """The pod's log lines; none while it has no pod, or its container has not started."""
        [pod] = live_pods(cluster, "filed") or [None]
        if pod is None:
            return []
        status, body = cluster.read_log("katuna", pod["metadata"]["name"], None)
        return body.decode().splitlines() if status == 200 and isinstance(body, bytes) else []
    eventually(lambda: "ready" in log() and "katuna-metrics-file| loss=0.9" in log(), "the command runs")
    [pod] = live_pods(cluster, "filed")
    with cluster.lock:
        run = cluster.kubelets.runs[pod["metadata"]["uid"]]  # its log, read to its end as it ends
        cluster.delete_pod(pod)
    eventually(lambda: pod["status"].get("phase") == "Succeeded", "the wrapper exits with the command's 0")
    lines = [line.text.rsplit("\r", 1)[-1] for line in run.log.lines]  # cut at a carriage return, as katuna reads
    assert list(final_lines(lambda: lines)) == ["loss=0.9", "loss=0.7"], lines
