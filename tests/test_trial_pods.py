"""A trial Job's pods as the real controllers treat them, read through the real client on the
stand-in's simulated clock: a preempted or evicted pod is deleted once its Job controller has
seen it, so katuna keeps the disrupted pods it saw; a pod that can never start (its image cannot
be pulled, no node fits it) stays ``Pending`` for ever, so katuna says why and ends the wait; a
replacement pod has its own timeout, so a preemption late in a long run is no timeout."""

from __future__ import annotations

from pathlib import Path

from conftest import study_definition
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub

from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.launch import TrialLaunch
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

ALLOWANCE = 600
HOUR = 3600.0
MISSING = "registry.example.com/team/trainer:v2"


SIMULATED_RUN = Run(100 * HOUR, "loss=0.5\n")
"""How each container of the ``simulated_kube`` fixture runs."""


def executor_of(kube: KubeStub) -> KubernetesExecutor:
    return KubernetesExecutor(Cluster(namespace="katuna", start_allowance=ALLOWANCE), kube.api_client(),
                              clock=kube.clock.time)


def launch_of(name: str, timeout: float | None = None, image: str = "python:3.12",
              resources: dict[str, str] | None = None) -> TrialLaunch:
    return TrialLaunch(name, "0123456789ab", 0, 1, f"{name}-0", ["train"], {}, ".", timeout=timeout,
                       image=image, resources=resources)


def pods_of(kube: KubeStub, job: str) -> list[dict]:
    return sorted((p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == job),
                  key=lambda p: p["metadata"]["creationTimestamp"])


def waiting(pod: dict) -> dict | None:
    return pod["status"]["containerStatuses"][0]["state"].get("waiting")


def test_a_pod_whose_image_the_registry_has_not_stays_pending_retrying_the_pull(simulated_kube: KubeStub):
    """As the kubelet's image manager: ``ErrImagePull`` with the runtime's error, then
    ``ImagePullBackOff`` until the next pull; the pod is never failed, the Job does nothing."""
    simulated_kube.kubelets.missing_images.add(MISSING)
    executor_of(simulated_kube).launch(launch_of("pull", image=MISSING))
    simulated_kube.run_until(
        lambda: pods_of(simulated_kube, "pull-0") and waiting(pods_of(simulated_kube, "pull-0")[0]) is not None
        and waiting(pods_of(simulated_kube, "pull-0")[0]).get("reason") == "ImagePullBackOff")
    [pod] = pods_of(simulated_kube, "pull-0")
    assert waiting(pod) == {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{MISSING}"'}
    simulated_kube.run_until(lambda: waiting(pod)["reason"] == "ErrImagePull")
    assert waiting(pod)["message"] == (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{MISSING}": failed to resolve '
        f'reference "{MISSING}": {MISSING}: not found')
    simulated_kube.clock.now += 10 * HOUR
    simulated_kube.settle()
    assert pods_of(simulated_kube, "pull-0") == [pod] and pod["status"]["phase"] == "Pending"
    assert not simulated_kube.jobs[("katuna", "pull-0")]["status"].get("conditions")


def test_a_trial_whose_image_cannot_be_pulled_says_why_and_fails_after_the_start_allowance(simulated_kube: KubeStub):
    """No timeout, so no Job deadline: only katuna ends the wait, as an error of the trial."""
    simulated_kube.kubelets.missing_images.add(MISSING)
    executor = executor_of(simulated_kube)
    launch = launch_of("typo", image=MISSING)
    executor.launch(launch)
    simulated_kube.run_until(lambda: pods_of(simulated_kube, "typo-0")
                             and waiting(pods_of(simulated_kube, "typo-0")[0]).get("reason") == "ImagePullBackOff")
    [pod] = pods_of(simulated_kube, "typo-0")
    seen = executor.look(launch)
    assert seen.finished is None
    assert seen.held == (
        f'its pod {pod["metadata"]["name"]} cannot start: container trial: ImagePullBackOff: Back-off pulling image '
        f'"{MISSING}"; the trial fails if it has not started within the start allowance of {ALLOWANCE}s')
    simulated_kube.clock.now = simulated_kube.clock.start + ALLOWANCE
    simulated_kube.settle()
    ended = executor.look(launch).finished
    assert ended is not None and ended.data["outcome"] == "error"
    assert ended.data["message"].startswith(f"its pod {pod['metadata']['name']}: container trial: ")
    assert "ImagePull" in ended.data["message"] and MISSING in ended.data["message"]
    assert ended.data["message"].endswith(
        f"; it waited past the start allowance of {ALLOWANCE}s (KATUNA_K8S_START_ALLOWANCE)")


def test_a_trial_no_node_fits_says_the_schedulers_words_and_fails_after_the_start_allowance(simulated_kube: KubeStub):
    executor = executor_of(simulated_kube)
    launch = launch_of("huge", resources={"cpu": "512"})
    executor.launch(launch)
    simulated_kube.settle()
    [pod] = pods_of(simulated_kube, "huge-0")
    message = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert executor.look(launch).held.startswith(
        f"its pod {pod['metadata']['name']} cannot start: no node fits it: {message}; ")
    simulated_kube.clock.now = simulated_kube.clock.start + ALLOWANCE - 1
    assert executor.look(launch).finished is None
    simulated_kube.clock.now += 1
    ended = executor.look(launch).finished
    assert (ended.data["outcome"], ended.data["message"]) == (
        "error", f"its pod {pod['metadata']['name']}: no node fits it: {message}; it waited past the start "
                 f"allowance of {ALLOWANCE}s (KATUNA_K8S_START_ALLOWANCE)")


def started(kube: KubeStub, tmp_path: Path, name: str, trials: int = 1, **template: object) -> tuple[
        SqliteStore, Deps, StudyRecord, Dispatcher]:
    """A study of ``trials`` trials run one at a time, stored and started as ``katuna serve``
    starts it, its first trial's Job made on the stand-in."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = executor_of(kube)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=Cluster(namespace="katuna", start_allowance=ALLOWANCE),
                admissions=executor)
    definition = study_definition(name, mode="hang", maxTrials=trials, parallelism=1)
    definition["trialTemplate"].update(template)
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    for suggested in dispatcher.deliver(study_created(name, record.uid)):
        dispatcher.deliver(suggested)
    return store, deps, record, dispatcher


def test_the_trials_reason_says_why_its_pod_waits_and_then_that_it_could_not_start(simulated_kube: KubeStub,
                                                                                   tmp_path: Path):
    simulated_kube.kubelets.missing_images.add(MISSING)
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "typo", image=MISSING)
    try:
        simulated_kube.run_until(lambda: pods_of(simulated_kube, "typo-0")
                                 and waiting(pods_of(simulated_kube, "typo-0")[0]).get("reason") == "ImagePullBackOff")
        assert look(record, store.get_trial("typo", 0), deps) is None
        assert store.get_trial("typo", 0).reason.startswith("waiting: its pod typo-0-")
        assert f'cannot start: container trial: ImagePullBackOff: Back-off pulling image "{MISSING}"' in \
            store.get_trial("typo", 0).reason
        simulated_kube.clock.now = simulated_kube.clock.start + ALLOWANCE
        ended = look(record, store.get_trial("typo", 0), deps)
        assert ended is not None
        dispatcher.deliver(ended)
        trial = store.get_trial("typo", 0)
        assert (trial.state, trial.attempt) == ("FAIL", 1)
        assert trial.reason.startswith(f'could not start: image "{MISSING}" cannot be pulled; its pod typo-0-')
        assert "waiting: " not in trial.reason
        assert ("katuna", "typo-0") not in simulated_kube.jobs, "its Job is deleted"
    finally:
        store.close()


def test_a_trial_whose_image_reference_the_kubelet_cannot_parse_fails_at_once(simulated_kube: KubeStub):
    """``InvalidImageName``: the kubelet parses the same reference at every sync, so waiting the
    start allowance would change nothing."""
    executor = executor_of(simulated_kube)
    launch = launch_of("upper", image="Python:3.12")
    executor.launch(launch)
    simulated_kube.run_until(
        lambda: pods_of(simulated_kube, "upper-0")
        and (waiting(pods_of(simulated_kube, "upper-0")[0]) or {}).get("reason") == "InvalidImageName")
    [pod] = pods_of(simulated_kube, "upper-0")
    ended = executor.look(launch).finished
    assert simulated_kube.clock.now - simulated_kube.clock.start < ALLOWANCE
    assert ended is not None and (ended.data["outcome"], ended.data["cause"]) == (
        "error", 'image "Python:3.12" is no valid image reference')
    assert ended.data["message"] == (
        f'its pod {pod["metadata"]["name"]}: container trial: InvalidImageName: Failed to apply default image tag '
        '"Python:3.12": couldn\'t parse image name "Python:3.12": invalid reference format: repository name '
        "(library/Python) must be lowercase; the kubelet retries it for ever, and no retry can change it")


def test_a_single_failed_pull_waits_for_the_registry(simulated_kube: KubeStub):
    """``ErrImagePull`` may be a registry's rate limit: the trial waits, as for a back-off."""
    simulated_kube.kubelets.missing_images.add(MISSING)
    executor = executor_of(simulated_kube)
    launch = launch_of("limit", image=MISSING)
    executor.launch(launch)
    simulated_kube.run_until(lambda: pods_of(simulated_kube, "limit-0")
                             and (waiting(pods_of(simulated_kube, "limit-0")[0]) or {}).get("reason") == "ErrImagePull")
    seen = executor.look(launch)
    assert seen.finished is None and "cannot start: container trial: ErrImagePull: " in seen.held


def test_a_study_whose_trials_keep_failing_to_pull_its_image_stops_saying_why(simulated_kube: KubeStub, tmp_path: Path):
    """Five trials, one at a time, of an image the registry has not: the third that fails to
    start for it ends the study, which says why, and the last two never run."""
    simulated_kube.kubelets.missing_images.add(MISSING)
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "typos", trials=5, image=MISSING)
    try:
        for number in range(3):
            simulated_kube.run_until(lambda job=f"typos-{number}": pods_of(simulated_kube, job))
            simulated_kube.clock.now += ALLOWANCE
            ended = look(record, store.get_trial("typos", number), deps)
            assert ended is not None and ended.data["outcome"] == "error"
            pending = dispatcher.deliver(ended)
            while pending:
                pending = [later for event in pending for later in dispatcher.deliver(event)]
        study = store.get_study("typos")
        assert (study.status, [t.state for t in store.trials("typos")]) == ("failed", ["FAIL"] * 3)
        assert study.reason.startswith(f'every trial could not start: image "{MISSING}" cannot be pulled (3 trials, ')
    finally:
        store.close()


def test_the_pods_an_attempt_lost_are_kept_though_each_is_deleted_once_its_job_saw_it(simulated_kube: KubeStub,
                                                                                      tmp_path: Path):
    """maxAttempts 2: the first attempt's Job may lose one pod, and its second ends the trial.
    Each preempted pod is seen while it terminates (katuna looks as its Job changes) and is
    gone by the next look; the count is kept with the trial, and only grows."""
    simulated_kube.disrupt = lambda job, index: 600.0
    simulated_kube.kubelets.containers = SimulatedContainers(simulated_kube.clock, lambda pod: Run(3600, term_seconds=None))
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "spot", image="python:3.12", maxAttempts=2)
    try:
        terminating(simulated_kube)
        assert look(record, store.get_trial("spot", 0), deps) is None, "the attempt may lose one pod"
        [first] = pods_of(simulated_kube, "spot-0")
        simulated_kube.run_until(lambda: [p["metadata"]["uid"] for p in pods_of(simulated_kube, "spot-0")]
                                 not in ([], [first["metadata"]["uid"]]))
        assert look(record, store.get_trial("spot", 0), deps) is None, "the replacement runs; the lost pod is gone"
        terminating(simulated_kube)
        ended = look(record, store.get_trial("spot", 0), deps)
        assert ended is not None and (ended.data["outcome"], ended.data["disruptions"]) == ("preempted", 2)
        assert ended.data["message"].startswith("its Job lost 2 pods (2 PreemptionByScheduler: ")
        dispatcher.deliver(ended)
        trial = store.get_trial("spot", 0)
        assert (trial.state, trial.attempt) == ("FAIL", 1)
        assert ("katuna", "spot-0") not in simulated_kube.jobs, "its Job is deleted"
    finally:
        store.close()


def terminating(kube: KubeStub) -> None:
    """Run until the Job's pod is preempted: deleted, its container stopping."""
    kube.run_until(lambda: any(p["metadata"].get("deletionTimestamp") for p in pods_of(kube, "spot-0")))


def test_a_preemption_late_in_a_long_run_gives_the_replacement_its_own_timeout(simulated_kube: KubeStub):
    """Timeout 3 h: the first pod is preempted after 2.5 h, its replacement needs 2 h. The Job's
    deadline counts from the Job's start across its pods, so it is sized for every run the
    attempt may make, and the replacement completes."""
    runs = iter([Run(2.9 * HOUR), Run(2 * HOUR, "loss=0.5\n")])
    simulated_kube.kubelets.containers = SimulatedContainers(simulated_kube.clock, lambda pod: next(runs))
    simulated_kube.disrupt = lambda job, index: 2.5 * HOUR if index == 0 else None
    executor = executor_of(simulated_kube)
    launch = launch_of("late", timeout=3 * HOUR)
    executor.launch(launch)
    assert simulated_kube.jobs[("katuna", "late-0")]["spec"]["activeDeadlineSeconds"] == 5 * (3 * HOUR + ALLOWANCE)
    simulated_kube.run_until(lambda: simulated_kube.jobs[("katuna", "late-0")]["status"].get("conditions"))
    assert simulated_kube.clock.now - simulated_kube.clock.start >= 4.5 * HOUR
    ended = executor.poll(launch)
    assert ended is not None and (ended.data["outcome"], ended.data["exitCode"]) == ("exited", 0)


def _workload_launch(name: str, spec: dict, **fields: object) -> TrialLaunch:
    return TrialLaunch(name, "0123456789ab", 0, 1, f"{name}-0", [], {}, ".", timeout=None, trial_spec=spec, **fields)


def _replica(image: str) -> dict:
    return {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
        {"name": "pytorch", "image": image, "command": ["train"]}]}}}


def test_a_training_job_whose_worker_cannot_pull_its_image_fails_after_the_start_allowance(simulated_kube: KubeStub):
    """The worker is no primary pod, yet it holds the whole job back: every pod of the
    workload is read for one that cannot start."""
    simulated_kube.install_operator("training-operator")
    simulated_kube.kubelets.missing_images.add(MISSING)
    executor = executor_of(simulated_kube)
    launch = _workload_launch("torch", {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {
        "pytorchReplicaSpecs": {"Master": _replica("python:3.12"), "Worker": _replica(MISSING)}}},
        primary_container="pytorch")
    executor.launch(launch)
    simulated_kube.run_until(lambda: ("katuna", "torch-0-worker-0") in simulated_kube.pods and (
        waiting(simulated_kube.pods[("katuna", "torch-0-worker-0")]) or {}).get("reason") == "ImagePullBackOff")
    seen = executor.look(launch)
    assert seen.finished is None and seen.held.startswith(
        "its pod torch-0-worker-0 cannot start: container pytorch: ImagePullBackOff: ")
    simulated_kube.clock.now = simulated_kube.clock.start + ALLOWANCE
    ended = executor.look(launch).finished
    assert ended is not None and (ended.data["outcome"], ended.data["cause"]) == (
        "error", f'image "{MISSING}" cannot be pulled')
    assert ended.data["message"].startswith("its pod torch-0-worker-0: container pytorch: ")


def test_an_argo_step_whose_image_reference_cannot_be_parsed_fails_its_trial_at_once(simulated_kube: KubeStub):
    simulated_kube.install_operator("argo")
    executor = executor_of(simulated_kube)
    launch = _workload_launch("wf", {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "entrypoint": "fit", "templates": [{"name": "fit", "container": {"image": "Python:3.12", "command": ["t"]}}]}},
        primary_container="main")
    executor.launch(launch)
    simulated_kube.run_until(
        lambda: [p for p in simulated_kube.pods.values() if p["metadata"]["name"].startswith("wf-0-")
                 and (waiting(p) or {}).get("reason") == "InvalidImageName"])
    ended = executor.look(launch).finished
    assert ended is not None and (ended.data["outcome"], ended.data["cause"]) == (
        "error", 'image "Python:3.12" is no valid image reference')
