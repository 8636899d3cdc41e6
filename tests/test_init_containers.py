"""A trial Job's init containers as a kubelet runs them: in their order, before the pod's
containers, which wait ``PodInitializing`` meanwhile; one whose image the registry has not holds
the pod ``Pending`` for ever, and one that exits other than 0 fails the pod. The stand-in's
kubelets read through the real client on a simulated clock, and what katuna says of such a trial,
through its handlers and through ``katuna serve``."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import katib_job_experiment, study_definition
from http_helpers import run_on_cluster
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from kubernetes import client
from test_suspended_jobs import ALLOWANCE, executor_of, job, pods_of

from functions.adapters.kubernetes_client import api_client
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.launch import TrialLaunch
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

MISSING = "registry.example.com/team/fetcher:v1"
KUBE_NAMESPACES = ("inits",)


def trial_spec(*inits: dict, args: tuple[str, ...] = ()) -> dict:
    """A Job whose pod runs ``inits`` before the trial's container ``trainer``."""
    trainer = {"name": "trainer", "image": "python:3.12", "command": ["train"], "args": list(args)}
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "initContainers": list(inits), "containers": [trainer]}}}}


def states(statuses: list[dict]) -> list[tuple[str, str, int | None]]:
    """Each container's name, state and exit code (None unless it ended)."""
    return [(s["name"], *next((kind, value.get("exitCode")) for kind, value in s["state"].items()))
            for s in statuses]


def test_init_containers_run_in_order_before_the_trials_container_and_keep_their_logs(simulated_kube: KubeStub):
    """Each init container runs once the one before it completed; the trial's container waits
    ``PodInitializing`` and the pod stays ``Pending`` meanwhile; each init container's log is
    served by its name once it ended."""
    simulated_kube.kubelets.containers = SimulatedContainers(
        simulated_kube.clock, lambda pod: Run(100, "loss=0.5\n"), init=lambda c: Run(30, f"{c['name']} done\n"))
    spec = trial_spec({"name": "fetch", "image": "busybox"}, {"name": "unpack", "image": "busybox"})
    executor_of(simulated_kube).launch(TrialLaunch("ordered", "0123456789ab", 0, 1, "ordered-0", [], {}, ".", None,
                                                   trial_spec=spec, primary_container="trainer"))
    simulated_kube.run_until(lambda: any(p["status"].get("initContainerStatuses") for p in pods_of(simulated_kube, "ordered")))
    [pod] = pods_of(simulated_kube, "ordered")
    simulated_kube.run_until(lambda: states(pod["status"]["initContainerStatuses"])[0][1] == "running")
    assert pod["status"]["phase"] == "Pending"
    assert states(pod["status"]["initContainerStatuses"]) == [("fetch", "running", None), ("unpack", "waiting", None)]
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    simulated_kube.run_until(lambda: pod["status"].get("phase") == "Running")
    assert states(pod["status"]["initContainerStatuses"]) == [("fetch", "terminated", 0), ("unpack", "terminated", 0)]
    fetched, unpacked = (s["state"]["terminated"] for s in pod["status"]["initContainerStatuses"])
    assert fetched["finishedAt"] <= unpacked["startedAt"]
    logs = client.CoreV1Api(api_client(simulated_kube.url))
    assert logs.read_namespaced_pod_log(pod["metadata"]["name"], "katuna", container="unpack") == "unpack done\n"
    simulated_kube.run_until(lambda: any(c["type"] == "Complete" for c in job(simulated_kube, "ordered")["status"]
                                         .get("conditions", [])))


def test_a_trial_whose_init_image_cannot_be_pulled_says_why_and_fails_after_the_start_allowance(
        simulated_kube: KubeStub, tmp_path: Path):
    """Through katuna's handlers: the pod stays ``Pending``, its init container waiting for its
    image and the trial's container ``PodInitializing``; the trial's reason names the init
    container, and once the start allowance has passed the trial fails as one that could not
    start, for its image, and its Job is deleted."""
    simulated_kube.kubelets.missing_images.add(MISSING)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        deps, record, dispatcher = _started(simulated_kube, store, "pull", trial_spec(
            {"name": "fetch", "image": MISSING}, args=("${trialParameters.x}",)))
        simulated_kube.run_until(lambda: any(
            ("fetch", "waiting", None) in states(p["status"].get("initContainerStatuses", []))
            and p["status"]["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
            for p in pods_of(simulated_kube, "pull")))
        [pod] = pods_of(simulated_kube, "pull")
        assert pod["status"]["phase"] == "Pending"
        assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
        assert look(record, store.get_trial("pull", 0), deps) is None
        assert store.get_trial("pull", 0).reason == (
            f"waiting: its pod {pod['metadata']['name']} cannot start: container fetch: ImagePullBackOff: Back-off "
            f'pulling image "{MISSING}"; the trial fails if it has not started within the start allowance of '
            f"{ALLOWANCE}s")
        simulated_kube.clock.now = simulated_kube.clock.start + ALLOWANCE
        ended = look(record, store.get_trial("pull", 0), deps)
        assert ended is not None
        dispatcher.deliver(ended)
        trial = store.get_trial("pull", 0)
        assert trial.state == "FAIL"
        assert trial.reason.startswith(f'could not start: image "{MISSING}" cannot be pulled; its pod '
                                       f"{pod['metadata']['name']}: container fetch: "), trial.reason
        assert ("katuna", "pull-0") not in simulated_kube.jobs, "its Job is deleted"
    finally:
        store.close()


def test_a_trial_whose_init_container_fails_fails_with_its_exit_code(kube: KubeStub, tmp_path: Path):
    """Through ``katuna serve``: the init container exits 2 under ``restartPolicy: Never``, so the
    pod fails before the trial's container starts, and its Job with it; the trial fails with the
    init container's exit code, saying the trial's container never started."""
    experiment = katib_job_experiment("init-fails", {"command": [sys.executable, "-c", "print('loss=0.25')",
                                                                 "${trialParameters.learningRate}"]})
    job_spec = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]
    job_spec["backoffLimit"] = 0
    job_spec["template"]["spec"]["initContainers"] = [
        {"name": "fetch", "image": "python:3.12", "command": [sys.executable, "-c", "print('no data'); raise SystemExit(2)"]}]
    _, [trial] = run_on_cluster(kube.url, tmp_path, "inits", experiment)
    assert (trial["state"], trial["exitCode"]) == ("FAIL", 2), trial
    assert trial["reason"].startswith("exited with code 2 (Job failed: BackoffLimitExceeded: "), trial["reason"]
    assert "init container fetch exited with code 2 (Error), so container training-container never started" \
        in trial["reason"]

def _started(kube: KubeStub, store: SqliteStore, name: str, spec: dict) -> tuple[Deps, object, Dispatcher]:
    """A study of one trial whose Job is ``spec``, stored and started as ``katuna serve`` starts
    it, its Job made on the stand-in."""
    executor = executor_of(kube)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=Cluster(namespace="katuna", start_allowance=ALLOWANCE),
                admissions=executor)
    definition = study_definition(name, maxTrials=1, parallelism=1,
                                  trialTemplate={"primaryContainerName": "trainer", "trialSpec": spec})
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    for suggested in dispatcher.deliver(study_created(name, record.uid)):
        dispatcher.deliver(suggested)
    return deps, record, dispatcher
