"""A study per trial kind on the stand-in cluster, through a real ``katuna serve`` with the
Kubernetes executor: each trial's workload is made by its operator's controller, ends by its
conditions, and its metrics are read from its primary pod's primary container (the other pods
print a loss of 999, so a metric read from them would show)."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import TRIAL, study_definition
from http_helpers import Service
from kube_standin.workloads import Crd
from kube_stub import KubeStub
from waiting import eventually

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("kinds",)
IMAGE = "python:3.12"
OBJECTIVE = [sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--epochs", "2"]
DECOY = [sys.executable, "-c", "print('loss=999')"]
IDLE = [sys.executable, "-c", "import time; time.sleep(600)"]
DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
"""What starts a command that only SIGKILL ends: its pod stays Terminating for its grace period."""
"""A worker that waits, as a distributed job's idle workers do once the master is done."""
EXECUTOR = "trial-argo-executor"
"""The account trial Workflows name, which Argo's executor needs to report each step."""
EXECUTOR_ROLE = "katuna-argo-executor"
"""The ClusterRole the argo component grants that account."""


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory):
    for operator in ("training-operator", "trainer", "jobset", "argo", "tekton"):
        kube.install_operator(operator)
    # As knative/trial-kinds/argo/executor.yaml says for a namespace trials run in besides katuna's.
    kube.add_service_account("kinds", EXECUTOR)
    kube.authorizer.bind(EXECUTOR_ROLE, "kinds", "kinds", EXECUTOR)
    running = Service(tmp_path_factory.mktemp("kinds"), workers=2, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="kinds",
                      KATUNA_TRIAL_KINDS="Thing.v1.example.com,BatchProcess.v1.example.com")
    yield running
    running.close()


KEEP = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
"""The annotation every trial pod carries: the cluster autoscaler may not evict it to empty a node."""


def _container(name: str, command: list[str]) -> dict:
    return {"name": name, "image": IMAGE, "command": command}


def _replica(replicas: int, *containers: dict) -> dict:
    return {"replicas": replicas, "restartPolicy": "OnFailure", "template": {"spec": {"containers": list(containers)}}}


def _run(service: Service, name: str, trial_spec: dict, kubernetes: dict | None = None, **template) -> list[dict]:
    definition = study_definition(name, maxTrials=2, parallelism=2, **({"kubernetes": kubernetes} if kubernetes else {}))
    definition["trialTemplate"] = {"trialSpec": trial_spec, **template}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for(name, timeout=120)
    trials = service.json("GET", f"/studies/{name}/trials")[1]
    assert (study["status"], study["counts"]["complete"]) == ("completed", 2), trials
    for trial in trials:
        assert trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2, abs=1e-5)
    return trials


def _pods(kube: KubeStub, label: str, value_prefix: str) -> list[dict]:
    with kube.lock:
        return [p for p in kube.pods.values() if p["metadata"]["labels"].get(label, "").startswith(value_prefix)]


def test_a_pytorchjob_runs_master_and_worker_pods_and_reads_the_master(service: Service, kube: KubeStub):
    _run(service, "torch", {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": _replica(1, _container("pytorch", OBJECTIVE)),
        "Worker": _replica(2, _container("pytorch", DECOY))}}}, primaryContainerName="pytorch")
    made = {c.object["metadata"]["name"] for c in kube.changes_since(0, "pods") if c.type == "ADDED"}
    assert sorted(name for name in made if name.startswith("torch-0-")) == [
        "torch-0-master-0", "torch-0-worker-0", "torch-0-worker-1"], "workers still running at the end are deleted"
    assert all(c.object["metadata"]["annotations"] == KEEP for c in kube.changes_since(0, "pods")
               if c.type == "ADDED" and c.object["metadata"]["name"].startswith("torch-0-")), \
        "the autoscaler may evict no replica to empty a node"
    with kube.lock:
        job = kube.workloads[("pytorchjobs", "kinds", "torch-0")]
        types = [(c["type"], c["status"]) for c in job["status"]["conditions"]]
    assert types == [("Created", "True"), ("Succeeded", "True"), ("Running", "False")]
    assert job["metadata"]["labels"]["katuna.dev/study"] == "torch"


def _running_pods(kube: KubeStub, prefix: str) -> list[str]:
    with kube.lock:
        return sorted(name for (_, name), pod in kube.pods.items() if name.startswith(prefix)
                      and pod["status"].get("phase") in ("Pending", "Running")
                      and not pod["metadata"].get("deletionTimestamp"))


def test_a_pytorchjobs_workers_left_running_at_its_end_are_stopped_with_it(service: Service, kube: KubeStub):
    """The Training Operator leaves a PyTorchJob's pods running at its end (``cleanPodPolicy``
    defaults to ``None``): katuna deletes the workload once the trial's output is read, so no
    idle worker keeps its node, nor outlives the study."""
    _run(service, "lingering", {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": _replica(1, _container("pytorch", OBJECTIVE)),
        "Worker": _replica(1, {"name": "pytorch", "image": IMAGE})}}}, primaryContainerName="pytorch")
    eventually(lambda: _running_pods(kube, "lingering-") == [], "the idle workers stopped", timeout=30)


def test_a_retained_pytorchjob_is_kept_and_its_idle_workers_go_at_its_end(service: Service, kube: KubeStub):
    """``retain`` keeps each trial's PyTorchJob, and katuna asks the Training Operator to delete
    the pods still running at its end (``cleanPodPolicy: Running``), so no idle worker holds its
    node for as long as the job is kept."""
    _run(service, "kept", {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": _replica(1, _container("pytorch", OBJECTIVE)),
        "Worker": _replica(1, _container("pytorch", IDLE))}}}, primaryContainerName="pytorch", retain=True)
    eventually(lambda: _running_pods(kube, "kept-") == [], "the idle workers deleted at the job's end", timeout=30)
    with kube.lock:
        assert sorted(name for plural, _, name in kube.workloads if plural == "pytorchjobs" and
                      name.startswith("kept-")) == ["kept-0", "kept-1"], "each trial's PyTorchJob kept"


@pytest.mark.parametrize(("kind", "specs", "master", "container"),
                         [("PyTorchJob", "pytorchReplicaSpecs", "Master", "pytorch"),
                          ("TFJob", "tfReplicaSpecs", "Chief", "tensorflow")])
def test_a_jobs_worker_failing_fails_its_trial_once_and_stops_the_master_left_running(
        service: Service, kube: KubeStub, kind: str, specs: str, master: str, container: str):
    """A worker's exit fails the job while its master runs on (a PyTorchJob's ``cleanPodPolicy``
    is ``None``) or is deleted (a TFJob's is ``Running``): the trial's failure with the worker's
    code, not a run lost to run again, and the master left running is stopped. The worker's
    ``restartPolicy`` is ``Never``: under ``OnFailure`` its kubelet would run it again in place."""
    name = f"failing-{kind.lower()}"
    definition = study_definition(name, maxTrials=1, parallelism=1, maxFailedTrials=1)
    definition["trialTemplate"] = {"primaryContainerName": container, "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {specs: {
            master: _replica(1, _container(container, [sys.executable, "-c", "import time; time.sleep(86400)",
                                                    "${trialParameters.x}"])),
            "Worker": {**_replica(1, _container(container, [sys.executable, "-c", "raise SystemExit(3)"])),
                       "restartPolicy": "Never"}}}}}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition), {"Content-Type": "application/yaml"})
    assert status == 201, body
    assert service.wait_for(name, timeout=120)["status"] == "failed"
    [trial] = service.json("GET", f"/studies/{name}/trials")[1]
    assert (trial["state"], trial["attempt"], trial["exitCode"]) == ("FAIL", 1, 3), trial
    assert f"its pod {name}-0-worker-0 failed with exit code 3" in trial["reason"]
    eventually(lambda: _running_pods(kube, f"{name}-") == [], "the master left running stopped", timeout=30)


def test_a_tfjob_without_a_chief_reads_worker_zero_and_stops_its_parameter_servers(service: Service, kube: KubeStub):
    _run(service, "tf", {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {"tfReplicaSpecs": {
        "Worker": _replica(2, _container("tensorflow", OBJECTIVE)),
        "PS": _replica(1, {"name": "tensorflow", "image": IMAGE})}}})
    roles = {p["metadata"]["name"]: p["metadata"]["labels"].get("training.kubeflow.org/job-role")
             for p in _pods(kube, "training.kubeflow.org/job-name", "tf-0")}
    assert roles == {"tf-0-worker-0": "master", "tf-0-worker-1": None}, "the parameter server was cleaned up"


def test_an_mpijob_runs_its_launcher_beside_idle_workers_and_reads_it_by_katibs_label(service: Service, kube: KubeStub):
    _run(service, "mpi", {"apiVersion": "kubeflow.org/v1", "kind": "MPIJob", "spec": {"slotsPerWorker": 1,
         "mpiReplicaSpecs": {"Launcher": _replica(1, _container("mpi-launcher", OBJECTIVE)),
                             "Worker": _replica(2, {"name": "mpi-worker", "image": IMAGE})}}},
         primaryContainerName="mpi-launcher", primaryPodLabels={"mpi-job-role": "launcher"})
    eventually(lambda: _running_pods(kube, "mpi-0") == [], "the idle workers (cleanPodPolicy None) stopped with the "
               "MPIJob", timeout=30)


def test_a_trainjob_runs_as_a_jobset_and_reads_node_zero(service: Service, kube: KubeStub):
    """Kept (``retain``) so that its pods are read here once it ended."""
    spot = {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}
    _run(service, "train", {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"numNodes": 2, "image": IMAGE, "command": OBJECTIVE}}}, kubernetes={"tolerations": [spot]},
        primaryContainerName="node", retain=True)
    pods = _pods(kube, "jobset.sigs.k8s.io/jobset-name", "train-0")
    assert sorted(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods) == ["0", "1"]
    assert [p["spec"]["containers"][0]["resources"]["requests"] for p in pods] == [
        {"cpu": "1", "memory": "2Gi"}] * 2, "each node's pod sized by the service's default (resourcesPerNode)"
    assert [p["spec"]["tolerations"] for p in pods] == [[spot]] * 2, "placed through the TrainJob's podSpecOverrides"


def test_a_jobset_reads_the_replicated_job_its_primary_labels_name(service: Service, kube: KubeStub):
    def replicated(name: str, command: list[str]) -> dict:
        return {"name": name, "replicas": 1, "template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [_container(name, command)]}}}}}

    _run(service, "jobset", {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {
        "replicatedJobs": [replicated("decoy", DECOY), replicated("trainer", OBJECTIVE)]}},
        primaryContainerName="trainer", primaryPodLabels={"jobset.sigs.k8s.io/replicatedjob-name": "trainer"})


def _workflow(**spec) -> dict:
    """As Katib's argo-workflow example: a first step's output is the training step's argument."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        **spec, "entrypoint": "hp", "templates": [
            {"name": "hp", "steps": [[{"name": "prep", "template": "gen-epochs"}],
                                     [{"name": "fit", "template": "train", "arguments": {"parameters": [
                                         {"name": "epochs", "value": "{{steps.prep.outputs.result}}"}]}}]]},
            {"name": "gen-epochs", "script": {"image": IMAGE, "command": [sys.executable], "source": "print(3)"}},
            {"name": "train", "metadata": {"labels": {"katib.kubeflow.org/model-training": "true"}},
             "inputs": {"parameters": [{"name": "epochs"}]},
             "container": {"image": IMAGE, "command": [*OBJECTIVE[:4], "--epochs", "{{inputs.parameters.epochs}}"]}}]}}


def test_an_argo_workflow_passes_a_steps_output_on_and_reads_the_labelled_step(service: Service, kube: KubeStub):
    _run(service, "argo", _workflow(serviceAccountName=EXECUTOR),
         primaryContainerName="main", primaryPodLabels={"katib.kubeflow.org/model-training": "true"})
    with kube.lock:
        workflow = kube.workloads[("workflows", "kinds", "argo-0")]
        training = [p for p in kube.pods.values() if p["metadata"]["name"].startswith("argo-0-train-")]
    assert workflow["status"]["phase"] == "Succeeded"
    assert training[0]["spec"]["containers"][0]["command"][-2:] == ["--epochs", "3"]
    assert training[0]["spec"]["serviceAccountName"] == EXECUTOR
    assert training[0]["metadata"]["annotations"] == KEEP, "from the Workflow's podMetadata"


def test_an_argo_workflow_naming_no_account_fails_its_trials_as_its_executor_may_not_report(service: Service):
    """A Workflow's pods run as the namespace's ``default`` account where it names none, which
    nothing grants what Argo's executor writes: its first step errs, its step group fails, and
    the Workflow ends ``Failed``; the trial's reason says which step and why."""
    definition = study_definition("argo-default", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"trialSpec": _workflow(), "primaryContainerName": "main"}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for("argo-default", timeout=120)
    [trial] = service.json("GET", "/studies/argo-default/trials")[1]
    assert (study["status"], trial["state"]) == ("failed", "FAIL"), trial
    assert ('wait: Error (exit code 64): workflowtaskresults.argoproj.io is forbidden: User '
            '"system:serviceaccount:kinds:default" cannot create resource "workflowtaskresults"') in trial["reason"]


def test_a_tekton_pipelinerun_passes_a_result_on_and_reads_the_training_task(service: Service, kube: KubeStub):
    """As Katib's pipeline-run example: a task's result is the training task's parameter. Kept
    (``retain``) to be read here: :func:`test_a_workload_no_ttl_deletes_goes_once_its_trial_is_read`."""
    write = "open('$(results.epochs.path)', 'w').write('3')"
    _run(service, "tekton", {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {
        "params": [{"name": "x", "value": "${trialParameters.x}"}],
        "pipelineSpec": {"params": [{"name": "x"}], "tasks": [
            {"name": "prep", "taskSpec": {"results": [{"name": "epochs"}], "steps": [
                {"name": "count", "image": IMAGE, "command": [sys.executable, "-c", write]}]}},
            {"name": "model-training", "params": [{"name": "x", "value": "$(params.x)"},
                                                  {"name": "epochs", "value": "$(tasks.prep.results.epochs)"}],
             "taskSpec": {"params": [{"name": "x"}, {"name": "epochs"}], "steps": [
                 {"name": "fit", "image": IMAGE, "command": [sys.executable, str(TRIAL), "--x", "$(params.x)",
                                                             "--epochs", "$(params.epochs)"]}]}}]}}},
        primaryContainerName="step-fit", primaryPodLabels={"tekton.dev/pipelineTask": "model-training"}, retain=True)
    with kube.lock:
        run = kube.workloads[("pipelineruns", "kinds", "tekton-0")]
    assert [(c["type"], c["status"]) for c in run["status"]["conditions"]] == [("Succeeded", "True")]
    assert [p["metadata"]["annotations"] for p in _pods(kube, "tekton.dev/pipelineRun", "tekton-0")] == [KEEP, KEEP], \
        "the run's annotations reach its tasks' pods"


def _workloads(kube: KubeStub, plural: str, prefix: str) -> list[str]:
    with kube.lock:
        return sorted(name for kind, _, name in kube.workloads if kind == plural and name.startswith(prefix))


@pytest.mark.parametrize("plural", ["pipelineruns", "trainjobs"])
def test_a_workload_no_ttl_deletes_goes_once_its_trial_is_read(service: Service, kube: KubeStub, plural: str):
    """A PipelineRun and a TrainJob keep no lifetime katuna can set: each trial's is deleted once
    its output is read, as Katib deletes an ended trial's workload, rather than kept for the
    study's whole life, one a trial (with a PipelineRun's TaskRuns and pods)."""
    name = f"gone-{plural[:5]}"
    if plural == "pipelineruns":
        _run(service, name, {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
            {"name": "model-training", "taskSpec": {"steps": [{"name": "fit", "image": IMAGE, "command": OBJECTIVE}]}}]}}},
             primaryContainerName="step-fit", primaryPodLabels={"tekton.dev/pipelineTask": "model-training"})
    else:
        _run(service, name, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
            "runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 1, "image": IMAGE,
                                                                     "command": OBJECTIVE}}},
             primaryContainerName="node")
    eventually(lambda: _workloads(kube, plural, f"{name}-") == [], f"each trial's {plural} deleted", timeout=30)
    eventually(lambda: _running_pods(kube, f"{name}-") == [], "and its pods", timeout=30)


def test_a_kind_katuna_is_not_granted_is_refused_when_submitted_naming_it(service: Service):
    """A kind the operator added (KATUNA_TRIAL_KINDS) that katuna's ClusterRole grants not, as the
    cluster answers a SelfSubjectAccessReview:
    the study is refused before anything is stored, rather than failing at its first trial."""
    definition = study_definition("unserved", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {
        "trialSpec": {"apiVersion": "example.com/v1", "kind": "Thing", "spec": {"command": OBJECTIVE}},
        "successCondition": "status.done", "failureCondition": "status.broken"}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 422 and json.loads(body)["problems"] == [{"path": "trialTemplate.trialSpec", "message": (
        "katuna may not create things.example.com in namespace 'kinds', where this study's trials run: grant its "
        "account that kind there (a kind of knative/trial-kinds/ is granted by deploying its component), or use a "
        "kind it may create")}], body
    assert service.request("GET", "/studies/unserved")[0] == 404, "nothing is stored"


def test_an_added_kind_is_made_and_deleted_at_the_resource_the_apis_discovery_lists_for_it(service: Service,
                                                                                         kube: KubeStub):
    """A kind the operator added is served at its CRD's plural, which is not always the kind
    lower-cased plus ``s``: a ``BatchProcess``'s is ``batchprocesses``. katuna asks the API
    server's discovery, as Katib's REST mapper does, where it guessed ``batchprocesss``: it asked
    for access to a resource its grant does not name and refused the study, and would have
    created each trial at a path the API does not serve."""
    with kube.lock:
        kube.crds[("example.com", "batchprocesses")] = Crd("example.com", ("v1",), "batchprocesses", "BatchProcess")
        kube.authorizer.objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "batch-processes", "namespace": "kinds"},
             "rules": [{"apiGroups": ["example.com"], "resources": ["batchprocesses"],
                        "verbs": ["create", "get", "list", "watch", "patch", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "batch-processes", "namespace": "kinds"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "batch-processes"},
             "subjects": [{"kind": "ServiceAccount", "name": "katuna", "namespace": "katuna"}]}]
    definition = study_definition("processes", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {
        "trialSpec": {"apiVersion": "example.com/v1", "kind": "BatchProcess", "spec": {"command": OBJECTIVE}},
        "successCondition": "status.done", "failureCondition": "status.broken"}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body

    def made() -> bool:
        with kube.lock:
            return ("batchprocesses", "kinds", "processes-0") in kube.workloads
    eventually(made, "the trial's BatchProcess", timeout=60)
    assert service.request("POST", "/studies/processes/stop")[0] == 200
    eventually(lambda: not made(), "the stopped trial's BatchProcess deleted", timeout=60)


def test_a_workload_its_kinds_schema_refuses_is_refused_when_submitted_naming_the_field(service: Service,
                                                                                        kube: KubeStub):
    """The first trial's workload is created in a dry run (the custom objects API's ``dryRun``):
    a value its CRD's schema refuses is refused at its field in the ``trialSpec``, before
    anything is stored or made."""
    definition = study_definition("torch-typed", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": {**_replica(1, _container("pytorch", OBJECTIVE)), "replicas": "one"}}}}}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    problems = json.loads(body)["problems"]
    assert status == 422 and [p["path"] for p in problems] == [
        "trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.replicas"], body
    assert problems[0]["message"].endswith("the API server refuses the first trial's PyTorchJob (a dry run of its "
                                           "create)"), problems
    assert service.request("GET", "/studies/torch-typed")[0] == 404, "nothing is stored"
    assert not [key for key in kube.workloads if key[2].startswith("torch-typed")]


def test_a_pytorchjob_study_submitted_again_while_the_first_ones_pods_terminate_reads_only_its_own(
        service: Service, kube: KubeStub, monkeypatch: pytest.MonkeyPatch):
    """Pod names of a Training Operator job carry no study uid: a study deleted while its trial
    runs and submitted again under its name meets the first one's pods Terminating (their
    containers take their grace period to stop), which hold the new trial's pod names. The
    operator makes the new pods once the old ones are gone; the trial reads its own master's
    metric, never the first run's."""
    linger = [sys.executable, "-c", DEAF + "print('loss=999', flush=True); time.sleep(600)",
              "${trialParameters.x}"]

    def submit(master: list[str]) -> None:
        replica = _replica(1, _container("pytorch", master))
        replica["template"]["spec"]["terminationGracePeriodSeconds"] = 3
        definition = study_definition("rerun", maxTrials=1, parallelism=1)
        definition["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
                "Master": replica, "Worker": _replica(1, _container("pytorch", DECOY))}}}}
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body

    def master() -> dict | None:
        with kube.lock:
            return kube.pods.get(("kinds", "rerun-0-master-0"))

    submit(linger)
    eventually(lambda: (pod := master()) is not None and pod["status"].get("phase") == "Running"
               and kube.read_log("kinds", "rerun-0-master-0", None) == (200, b"loss=999\n"),
               "the master pod runs and prints", timeout=30)
    earlier = master()["metadata"]["uid"]  # type: ignore[index]
    assert service.request("DELETE", "/studies/rerun")[0] == 204
    eventually(lambda: (pod := master()) is not None and "deletionTimestamp" in pod["metadata"],
               "the master pod is terminating", timeout=30)

    submit(OBJECTIVE)
    study = service.wait_for("rerun", timeout=60)
    [trial] = service.json("GET", "/studies/rerun/trials")[1]
    assert (study["status"], study["counts"]["complete"]) == ("completed", 1), trial
    assert trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2, abs=1e-5), "its own master's metric"
    assert trial["attempt"] == 1, f"no run lost to the name held: {trial.get('reason')}"
    assert "Error creating: pods \"rerun-0-master-0\" already exists" in \
        [e["message"] for e in kube.events_of("PyTorchJob", "rerun-0")], "the earlier pod held the name"
    made = [(c.type, c.object["metadata"]["uid"]) for c in kube.changes_since(0, "pods")
            if c.object["metadata"]["name"] == "rerun-0-master-0" and c.type in ("ADDED", "DELETED")]
    assert made[:2] == [("ADDED", earlier), ("DELETED", earlier)] and made[2][0] == "ADDED", \
        "the trial's master was made once the earlier one was gone"


def test_a_trainjob_study_submitted_again_while_the_first_ones_pods_terminate_reads_only_its_own(
        service: Service, kube: KubeStub, monkeypatch: pytest.MonkeyPatch):
    """A TrainJob's pods come from its runtime's templates, without katuna's labels, and are
    named afresh by the Job controller: a study deleted while its trial runs and submitted
    again under its name runs its new trial beside the first one's pod, Terminating still (its
    container takes its time to stop). The trial reads only its own pods, known by their owners,
    and never reports the first run's loss."""
    linger = [sys.executable, "-c", DEAF + "print('loss=999', flush=True); time.sleep(600)",
              "${trialParameters.x}"]

    def submit(command: list[str]) -> None:
        definition = study_definition("retrain", maxTrials=1, parallelism=1)
        definition["trialTemplate"] = {"primaryContainerName": "node", "trialSpec": {
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"numNodes": 1, "image": IMAGE, "command": command}}}}
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body

    def node() -> dict | None:
        return next(iter(_pods(kube, "jobset.sigs.k8s.io/jobset-name", "retrain-0")), None)

    submit(linger)
    eventually(lambda: (pod := node()) is not None and pod["status"].get("phase") == "Running"
               and kube.read_log("kinds", pod["metadata"]["name"], None) == (200, b"loss=999\n"),
               "the node pod runs and prints", timeout=30)
    earlier = node()["metadata"]  # type: ignore[index]
    assert service.request("DELETE", "/studies/retrain")[0] == 204
    eventually(lambda: (pod := node()) is not None and "deletionTimestamp" in pod["metadata"],
               "the node pod is terminating", timeout=30)

    submit(OBJECTIVE)
    study = service.wait_for("retrain", timeout=60)
    with kube.lock:
        assert ("kinds", earlier["name"]) in kube.pods, "the first run's pod is Terminating still"
    [trial] = service.json("GET", "/studies/retrain/trials")[1]
    assert (study["status"], study["counts"]["complete"]) == ("completed", 1), trial
    assert trial["value"] == pytest.approx((trial["params"]["x"] - 2) ** 2, abs=1e-5), "its own node's metric"
    assert trial["attempt"] == 1, trial.get("reason")
    observed = service.json("GET", "/studies/retrain/trials/0")[1]["observations"]
    assert observed and 999 not in [o["value"] for o in observed], "the first run's log is never read"
