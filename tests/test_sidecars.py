"""Trial Jobs whose pods run a sidecar beside the trial's container (an injected Istio proxy, a
Vault agent). A regular sidecar runs on after the trial's container exits, so its pod stays
``Running`` and its Job never ends by itself, as on a real cluster (kubernetes/kubernetes#73118):
katuna takes the trial's container's exit as the attempt's end and deletes the Job. A native
sidecar (an init container with ``restartPolicy: Always``) is stopped once the containers have
ended, and the Job ends as any other. A held end handled late, once its pod was deleted and the
Job replaced it, changes nothing. The stand-in's kubelets and Job controller, read through the
real client, on a simulated clock, through ``katuna serve``, and event by event through the
dispatcher (:class:`test_delivery_order.Workers`)."""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import katib_job_experiment, study_definition
from http_helpers import run_on_cluster
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from kubernetes import client
from test_delivery_order import Worker, Workers
from test_suspended_jobs import executor_of, job, pods_of
from waiting import eventually

from functions.adapters.kubernetes_sidecars import held_by_sidecars
from functions.core.events import Event, study_completed, study_created
from functions.core.launch import TrialLaunch, trial_launch
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.handlers import Deps
from functions.handlers.submit import store_study

PROXY = {"name": "istio-proxy", "image": "istio/proxyv2:1.24.0"}
KUBE_NAMESPACES = ("meshed",)


def sidecar_launch(name: str, native: bool = False) -> TrialLaunch:
    """A ``trialSpec`` Job whose pods run the trial's container beside an Istio proxy: a regular
    container, or with ``native`` an init container that restarts always (Kubernetes 1.29+)."""
    pod: dict = {"containers": [{"name": "trainer", "image": "python:3.12", "command": ["train"]}]}
    if native:
        pod["initContainers"] = [{**PROXY, "restartPolicy": "Always"}]
    else:
        pod["containers"].append(PROXY)
    spec = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod}}}
    return TrialLaunch(name, "0123456789ab", 0, 1, f"{name}-0", [], {}, ".", timeout=None, trial_spec=spec,
                       primary_container="trainer")


def states(statuses: list[dict]) -> list[tuple[str, str, int | None]]:
    """Each container's name, state and exit code (None while it runs)."""
    return [(s["name"], *next((kind, value.get("exitCode")) for kind, value in s["state"].items()))
            for s in statuses]


def ended(kube: KubeStub, name: str) -> bool:
    return any(c["type"] in ("Complete", "Failed") for c in job(kube, name)["status"].get("conditions", []))


def test_a_sidecar_runs_on_after_the_trials_container_exits_and_its_job_never_ends(simulated_kube: KubeStub):
    """The kubelet lists a pod's containers by name; the trial's container exits 3, the proxy runs
    on, and with it the pod (not ready): a day later the Job has still not ended."""
    simulated_kube.kubelets.containers = SimulatedContainers(simulated_kube.clock, lambda pod: Run(10, "boom\n", 3))
    executor_of(simulated_kube).launch(sidecar_launch("sidecar"))
    simulated_kube.run_until(lambda: any(("trainer", "terminated", 3) in states(p["status"].get("containerStatuses", []))
                                         for p in pods_of(simulated_kube, "sidecar")))
    simulated_kube.clock.now += 86_400
    simulated_kube.settle()
    [pod] = pods_of(simulated_kube, "sidecar")
    assert states(pod["status"]["containerStatuses"]) == [("istio-proxy", "running", None), ("trainer", "terminated", 3)]
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "False"
    assert not ended(simulated_kube, "sidecar") and job(simulated_kube, "sidecar")["status"]["active"] == 1


def test_a_trial_held_by_a_sidecar_ends_with_its_own_containers_exit_and_its_job_runs_on_until_stopped(
        simulated_kube: KubeStub):
    """A sidecar listed before the trial's container (``istio-proxy`` < ``trainer``) still runs;
    the trial's container exited 3, and that is the attempt's end, reported while the Job runs
    on (for the handler to delete it once the output is read), with the trial's output."""
    simulated_kube.kubelets.containers = SimulatedContainers(simulated_kube.clock, lambda pod: Run(10, "boom\n", 3))
    executor = executor_of(simulated_kube)
    launch = sidecar_launch("exits")
    executor.launch(launch)
    simulated_kube.run_until(lambda: executor.poll(launch) is not None)
    end = executor.poll(launch)
    assert (end.data["outcome"], end.data["exitCode"], end.data["running"]) == ("exited", 3, True)
    assert end.data["message"].startswith("its pod exits-0-") and "ran on for container istio-proxy" in end.data["message"]
    assert end.data["message"].endswith("container trainer exited with code 3 (Error)")
    assert not ended(simulated_kube, "exits")
    assert list(executor.output(launch)) == ["boom\n"]
    executor.stop(launch)
    simulated_kube.run_until(lambda: not pods_of(simulated_kube, "exits"))


def test_a_native_sidecar_is_stopped_once_the_trials_container_exits_and_the_job_ends(simulated_kube: KubeStub):
    """An init container that restarts always starts before the trial's container, runs beside
    it, and is stopped (exit 0) once it exited: the pod fails with the trial's exit 3, its Job
    with it, and the attempt's end is the Job's."""
    simulated_kube.kubelets.containers = SimulatedContainers(simulated_kube.clock, lambda pod: Run(10, "boom\n", 3))
    executor = executor_of(simulated_kube)
    launch = sidecar_launch("native", native=True)
    executor.launch(launch)
    simulated_kube.run_until(lambda: any(p["status"].get("phase") == "Running" for p in pods_of(simulated_kube, "native")))
    [pod] = pods_of(simulated_kube, "native")
    assert states(pod["status"]["initContainerStatuses"]) == [("istio-proxy", "running", None)]
    simulated_kube.run_until(lambda: ended(simulated_kube, "native"))
    [pod] = pods_of(simulated_kube, "native")
    assert pod["status"]["phase"] == "Failed"
    assert states(pod["status"]["containerStatuses"]) == [("trainer", "terminated", 3)]
    assert states(pod["status"]["initContainerStatuses"]) == [("istio-proxy", "terminated", 0)]
    end = executor.poll(launch)
    assert (end.data["outcome"], end.data["exitCode"], "running" in end.data) == ("exited", 3, False)
    assert end.data["message"].endswith("container trainer exited with code 3 (Error)")


@pytest.mark.parametrize(("program", "state", "value"), [
    ("print('loss=0.25')", "COMPLETE", 0.25), ("print('loss=0.25'); raise SystemExit(3)", "FAIL", None)])
def test_a_trial_whose_pod_runs_a_sidecar_ends_when_its_own_container_exits(
        kube: KubeStub, tmp_path, program: str, state: str, value: float | None):
    """Through ``katuna serve``: a Katib Experiment's trial Job whose pod runs an Istio proxy
    beside the trial's container, which never exits (as a proxy runs until stopped), ends as
    its container exits, with that exit; its Job is deleted, and the proxy with it."""
    name = f"meshed-{state.lower()}"
    experiment = katib_job_experiment(name, {"command": [sys.executable, "-c", program, "${trialParameters.learningRate}"]})
    template = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    template["containers"].append(PROXY)
    _, [trial] = run_on_cluster(kube.url, tmp_path, "meshed", experiment)
    assert (trial["state"], trial["value"]) == (state, value), trial
    if state == "FAIL":
        assert trial["reason"].startswith("exited with code 3 (its pod "), trial["reason"]
    eventually(lambda: not [j for j in kube.jobs if j[0] == "meshed" and j[1].startswith(f"{name}-")],
               "the Job is deleted", timeout=30)

def _pod(restart: str, code: int, *, proxy: dict | None = None, deleted: bool = False) -> client.V1Pod:
    """A running pod whose ``trainer`` ended with ``code`` beside a proxy in the ``proxy`` state
    (``deleted``: the pod being deleted, its containers stopping)."""
    ended = client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=code, reason="Error"))
    statuses = [client.V1ContainerStatus(name="trainer", image="python:3.12", image_id="", ready=False,
                                         restart_count=0, state=ended)]
    if proxy is not None:
        statuses.append(client.V1ContainerStatus(name="istio-proxy", image="proxy", image_id="", ready=True,
                                                 restart_count=0, state=client.V1ContainerState(**proxy)))
    metadata = client.V1ObjectMeta(name="t-0-abcde", creation_timestamp=datetime.now(UTC),
                                   deletion_timestamp=datetime.now(UTC) if deleted else None)
    return client.V1Pod(metadata=metadata,
                        spec=client.V1PodSpec(restart_policy=restart, containers=[]),
                        status=client.V1PodStatus(phase="Running", container_statuses=statuses))


RUNNING = {"running": client.V1ContainerStateRunning()}


@pytest.mark.parametrize(("pod", "completions", "held"), [
    (_pod("Never", 3, proxy=RUNNING), None, 3),
    (_pod("OnFailure", 0, proxy=RUNNING), 1, 0),
    (_pod("OnFailure", 3, proxy=RUNNING), None, None),
    (_pod("Never", 0), None, None),
    (_pod("Never", 0, proxy=RUNNING), 2, None),
    (_pod("Never", 143, proxy=RUNNING, deleted=True), None, None),
], ids=["failed under Never", "succeeded under OnFailure", "restarted in place under OnFailure",
       "no other container: the pod ends itself", "a Job of two completions",
       "a pod being deleted: the Job judges its end"])
def test_only_a_container_ended_for_good_beside_one_that_runs_is_the_attempts_end(pod, completions, held):
    """``OnFailure`` runs a failed container again in place, so only its exit 0 is final; a pod
    with nothing else running ends on its own (native sidecars are init containers, stopped by
    the kubelet), and a Job of several completions needs its other pods."""
    job = client.V1Job(spec=client.V1JobSpec(completions=completions, template=client.V1PodTemplateSpec()))
    found = held_by_sidecars(job, [pod], "trainer")
    assert (found.code if found is not None else None) == held


def _meshed_study(cluster: Workers, program: str, max_attempts: int) -> tuple[Worker, StudyRecord]:
    """A study of one trial whose Job's pod runs ``program`` in the trial's container beside an
    Istio proxy, launched: its one worker and its record."""
    definition = study_definition(maxTrials=1, parallelism=1)
    pod = {"restartPolicy": "Never", "containers": [
        {"name": "trainer", "image": "python:3.12", "command": [sys.executable, "-c", program, "${trialParameters.x}"]},
        PROXY]}
    definition["trialTemplate"] = {"primaryContainerName": "trainer", "maxAttempts": max_attempts, "trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod}}}}
    [worker] = cluster.workers
    record = store_study(Deps(worker.store, worker.executor, time.time), parse_study(definition), definition)[0]
    for suggested in worker.deliver(study_created("demo", record.uid)):
        worker.deliver(suggested)
    return worker, record


def _held_end(worker: Worker, record: StudyRecord, other_than: Event | None = None) -> Event:
    """The held end the executor reports for the trial's attempt (of another pod than
    ``other_than``'s, when given), once it does."""
    launch = trial_launch(record, worker.store.get_trial("demo", 0))

    def held() -> Event | None:
        end = worker.executor.poll(launch)
        fresh = end is not None and end.data.get("running") and (
            other_than is None or end.data.get("pod") != other_than.data.get("pod"))
        return end if fresh else None
    return eventually(held, "the held end", timeout=60)


def _drain_pod(cluster: Workers) -> None:
    """A drain of the trial Job's one pod (the Eviction API), whose proxy exits 143 on SIGTERM
    (as Cloud SQL Auth Proxy v2 does unless told otherwise): the pod fails with its
    ``DisruptionTarget`` condition, and its Job replaces it."""
    cluster.kube.kubelets.sidecar_term_codes[PROXY["image"]] = 143
    with cluster.kube.lock:
        [pod] = [p for p in cluster.kube.pods.values()
                 if p["metadata"]["namespace"] == cluster.namespace and p["metadata"]["labels"]["job-name"] == "demo-0"]
        cluster.kube.kubelets.disrupt(cluster.kube, pod, "EvictionByEvictionAPI")


def test_a_held_end_handled_once_its_pod_is_gone_changes_nothing_and_the_replacements_own_end_is_taken(
        kube: KubeStub, tmp_path: Path):
    """The trial's container prints ``loss=0.25`` and exits 0 while the proxy holds its pod: the
    held end names that pod. The pod is drained before the end is handled, fails as its proxy
    exits 143 on SIGTERM, and the Job replaces it, which runs the trial again. Handled late, that end
    no longer holds (the executor, asked again, reports no end, then the replacement's): it
    changes nothing, whenever it comes. Before, it was judged from whatever pods the Job had
    then: with no log yet, the output lost, the trial ran again as attempt 2 beside the old
    Job; with the replacement's log, the trial failed (``loss`` never reported) and its Job was
    deleted under the replacement. The replacement's own held end, an id of its own, is then
    taken as the attempt's end: never a duplicate of the stale end recorded as nothing."""
    cluster = Workers(kube, tmp_path)
    first, second, go = tmp_path / "first", tmp_path / "second", tmp_path / "go"
    program = (f"import pathlib, time; first, second, go = (pathlib.Path(p) for p in {[str(first), str(second), str(go)]!r})\n"
               "if not first.exists(): first.touch(); print('loss=0.25'); raise SystemExit\n"
               "second.touch()\n"
               "while not go.exists(): time.sleep(0.1)\n"
               "print('loss=0.5')")
    worker, record = _meshed_study(cluster, program, max_attempts=2)
    try:
        stale = _held_end(worker, record)
        assert stale.data["exitCode"] == 0 and stale.data["pod"], stale.data
        _drain_pod(cluster)
        assert worker.deliver(replace(stale, id=str(uuid.uuid4()))) == [], "handled as the pod goes"
        eventually(second.exists, "the replacement runs the trial again", timeout=60)
        assert worker.deliver(stale) == [], "handled while the replacement runs"
        go.touch()
        own = _held_end(worker, record, other_than=stale)
        assert own.data["pod"] != stale.data["pod"] and own.id != stale.id
        assert worker.deliver(replace(stale, id=str(uuid.uuid4()))) == [], "handled once the replacement is held"
        trial = worker.store.get_trial("demo", 0)
        assert (trial.state, trial.attempt, cluster.posted()) == ("RUNNING", 1, ["demo-0"])
        assert [e.type for e in worker.deliver(own)] == ["dev.katuna.study.completed"]
        trial = worker.store.get_trial("demo", 0)
        assert (trial.state, trial.values, trial.attempt) == ("COMPLETE", [0.5], 1), trial
        assert cluster.outcomes.of("collect") == ["ok"] * 4, "no end taken for a duplicate"
        eventually(lambda: not cluster.jobs(), "the Job is deleted once its end is taken", timeout=30)
    finally:
        worker.deliver(study_completed("demo", record.uid, "stopped", "the test ended"))
        cluster.close()


def test_a_held_end_whose_output_is_lost_stops_its_job_before_the_trial_runs_again(kube: KubeStub, tmp_path: Path):
    """A held end that still holds, whose output cannot be read (its pod's log file gone from the
    node: the kubelet answers 400, as for a pod with no log), runs the trial again as its next
    attempt, as an exit 0 with no output does; the attempt's Job,
    whose proxy runs on, is deleted first. Before, it ran on beside the next attempt's Job, past
    the study's parallelism, until a tick's sweep of stray Jobs found it."""
    cluster = Workers(kube, tmp_path)
    worker, record = _meshed_study(cluster, "print('loss=0.25')", max_attempts=2)
    try:
        end = _held_end(worker, record)
        with kube.lock:
            kube.lost_logs |= {key for key, pod in kube.pods.items() if pod["metadata"]["labels"]["job-name"] == "demo-0"}
        [again] = worker.deliver(end)
        trial = worker.store.get_trial("demo", 0)
        assert (again.type, trial.state, trial.attempt) == ("dev.katuna.trial.suggested", "WAITING", 2)
        assert not worker.executor.exists(trial_launch(record, replace(trial, attempt=1))), "attempt 1's Job is deleted"
        worker.deliver(again)
        assert list(cluster.jobs()) == ["demo-0-a2"]
    finally:
        worker.deliver(study_completed("demo", record.uid, "stopped", "the test ended"))
        cluster.close()
