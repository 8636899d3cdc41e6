"""Trial code never runs as the katuna service's own service account: a study naming one
(natively, in a Katib trialSpec, in any workload kind) is refused at submission naming the
field, on every path (``POST /studies``, a Katib Experiment resource on the loopback cluster,
``katuna run`` and ``katuna render``), and nothing is stored; trial pods get no API token unless
asked; the manifests name every account of the service and bind nothing to ``default``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TRIAL, study_definition
from http_helpers import Service
from kube_standin import katib_api
from kube_stub import KubeStub
from test_resources import conditions, send

from functions.core.errors import InvalidStudy
from functions.core.formats import load_definition
from functions.core.trial_identity import account_problems
from functions.settings import Settings

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"
KUBE_NAMESPACES = ("team",)
KATUNA = str(Path(sys.executable).with_name("katuna"))
POD_ACCOUNT = "spec.trialTemplate.trialSpec.spec.template.spec.serviceAccountName"


def experiment(name: str, account: str, api_version: str = "kubeflow.org/v1beta1") -> dict:
    """A Katib Experiment whose trial Job's pods run as ``account``."""
    return {"apiVersion": api_version, "kind": "Experiment", "metadata": {"name": name, "namespace": "team"},
            "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                     "algorithm": {"algorithmName": "random"}, "maxTrialCount": 1, "parallelTrialCount": 1,
                     "parameters": [{"name": "x", "parameterType": "double",
                                     "feasibleSpace": {"min": "-1", "max": "1"}}],
                     "trialTemplate": {"primaryContainerName": "main",
                                       "trialParameters": [{"name": "x", "reference": "x"}],
                                       "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                                           "spec": {"serviceAccountName": account, "restartPolicy": "Never",
                                                    "containers": [{"name": "main", "image": "python:3.12",
                                                                    "command": ["python", str(TRIAL), "--x",
                                                                                "${trialParameters.x}"]}]}}}}}}}


@pytest.fixture(scope="module")
def cluster(kube: KubeStub) -> KubeStub:
    katib_api.install(kube)
    return kube


@pytest.fixture(scope="module")
def service(cluster: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("identity"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=cluster.url, KATUNA_K8S_NAMESPACE="katuna", KATUNA_KATIB_API="true",
                      KATUNA_SERVICE_ACCOUNTS="katuna,katuna-jobs-source")
    yield running
    running.close()


def _post(service: Service, definition: dict) -> tuple[int, dict]:
    return service.json("POST", "/studies", body=json.dumps(definition), headers={"Content-Type": "application/json"})


@pytest.mark.slow
def test_posting_a_study_that_runs_trials_as_the_service_is_refused_and_stores_nothing(service: Service,
                                                                                        cluster: KubeStub):
    native = study_definition(name="as-katuna", kubernetes={"serviceAccountName": "katuna"})
    native["trialTemplate"]["image"] = "python:3.12"
    status, body = _post(service, native)
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == ["kubernetes.serviceAccountName"]
    assert "katuna service's own service account" in body["problems"][0]["message"]
    status, body = _post(service, experiment("as-source", "katuna-jobs-source"))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == [POD_ACCOUNT]
    for name in ("as-katuna", "as-source"):
        assert service.json("GET", f"/studies/{name}")[0] == 404
    assert not [job for job in cluster.created_jobs if job.startswith("as-")]


@pytest.mark.slow
def test_a_katib_experiment_running_trials_as_the_service_fails_in_its_status(service: Service, cluster: KubeStub):
    obj = cluster.apply(experiment("exp-as-katuna", "katuna"))
    assert send(service, "add", obj, path="/functions/resource") == []
    status = cluster.get_resource("experiments.kubeflow.org", "team", "exp-as-katuna")[1]["status"]
    failed = conditions(status)["Failed"]
    assert (status["phase"], failed["reason"]) == ("Failed", "InvalidSpec")
    assert POD_ACCOUNT in failed["message"] and "'katuna'" in failed["message"]
    assert service.json("GET", "/studies/exp-as-katuna")[0] == 404
    assert not [job for job in cluster.created_jobs if job.startswith("exp-as-katuna")]


@pytest.mark.slow
def test_a_trial_naming_its_own_account_runs_without_an_api_token(service: Service, cluster: KubeStub):
    obj = cluster.apply(experiment("exp-trainer", "trainer"))
    assert send(service, "add", obj, path="/functions/resource") == ["dev.katuna.study.created"]
    assert service.wait_for("exp-trainer", timeout=90)["status"] == "completed"
    pod = cluster.created_jobs["exp-trainer-0"]["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("trainer", False)


WORKLOADS = {
    "PyTorchJob": ({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [{"name": "pytorch", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}},
        "Worker": {"template": {"spec": {"serviceAccount": "katuna",
                                         "containers": [{"name": "pytorch", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}}}}},
                   "spec.pytorchReplicaSpecs.Worker.template.spec.serviceAccount"),
    "Workflow": ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "entrypoint": "main", "executor": {"serviceAccountName": "katuna"},
        "templates": [{"name": "main", "container": {"image": "p", "command": ["t", "${trialParameters.x}"]}}]}},
                 "spec.executor.serviceAccountName"),
    "PipelineRun": ({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {
        "taskRunTemplate": {"serviceAccountName": "katuna"}, "pipelineSpec": {"tasks": [
            {"name": "train", "taskSpec": {"steps": [{"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}]}}},
                    "spec.taskRunTemplate.serviceAccountName"),
    "TrainJob": ({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"}, "trainer": {"image": "p", "command": ["t", "${trialParameters.x}"]},
        "podSpecOverrides": [{"targetJobs": [{"name": "node"}], "serviceAccountName": "katuna"}]}},
                 "spec.podSpecOverrides[0].serviceAccountName"),
    "JobSet": ({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": {
            "serviceAccountName": "katuna", "containers": [{"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}}}}]}},
               "spec.replicatedJobs[0].template.spec.template.spec.serviceAccountName"),
}


@pytest.mark.parametrize("trial_spec,path", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_every_workload_kind_naming_the_service_account_is_refused_at_its_field(trial_spec: dict, path: str):
    native = study_definition(name="kinds")
    native["trialTemplate"] = {"trialSpec": trial_spec}
    spec, _ = load_definition(native)
    assert [p.path for p in account_problems(spec, ("katuna",))] == [f"trialTemplate.trialSpec.{path}"]
    assert account_problems(spec, ("someone-else",)) == []


def test_katuna_run_and_render_refuse_a_study_running_trials_as_the_service(tmp_path: Path):
    native = study_definition(name="cli-as-katuna", kubernetes={"serviceAccountName": "katuna"})
    native["trialTemplate"]["image"] = "python:3.12"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(native))
    for command in (["run", str(path), "--db", str(tmp_path / "k.db")], ["render", str(path)]):
        done = subprocess.run([KATUNA, *command], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "kubernetes.serviceAccountName: 'katuna' is the katuna service's own" in done.stderr
    assert not (tmp_path / "k.db").exists() or "cli-as-katuna" not in subprocess.run(
        [KATUNA, "studies", "--db", str(tmp_path / "k.db"), "--json"], capture_output=True, text=True).stdout


def test_the_service_refuses_to_start_with_its_own_account_as_the_trials_default():
    with pytest.raises(ValueError, match="KATUNA_K8S_SERVICE_ACCOUNT: 'katuna' is one of the service's own"):
        Settings.from_env({"KATUNA_K8S_SERVICE_ACCOUNT": "katuna"})
    with pytest.raises(ValueError, match="KATUNA_K8S_SERVICE_ACCOUNT"):
        Settings.from_env({"KATUNA_K8S_SERVICE_ACCOUNT": "ops", "KATUNA_SERVICE_ACCOUNTS": "ops,katuna"})
    assert Settings.from_env({"KATUNA_K8S_SERVICE_ACCOUNT": "trainer"}).cluster_defaults().reserved_accounts == (
        "katuna",)
    with pytest.raises(ValueError, match="KATUNA_GKE_NODE_SERVICE_ACCOUNT: expected a Google service account"):
        Settings.from_env({"KATUNA_GKE_NODE_SERVICE_ACCOUNT": "katuna-nodes"})


def test_a_native_study_asks_for_the_token_with_a_boolean():
    native = study_definition(name="asks", kubernetes={"automountServiceAccountToken": "yes"})
    with pytest.raises(InvalidStudy, match="kubernetes.automountServiceAccountToken: expected true or false"):
        load_definition(native)


def _manifests(*folders: Path) -> list[dict]:
    return [doc for folder in folders for path in sorted(folder.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_manifests_name_every_account_of_the_service_and_bind_nothing_to_default():
    docs = _manifests(KNATIVE, KNATIVE / "katib-api")
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "katuna-config")
    named = set(Settings.from_env(config["data"]).service_accounts)
    made = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    service = next(d for d in docs if d["kind"] == "Service" and "serving" in d["apiVersion"])
    assert made | {service["spec"]["template"]["spec"]["serviceAccountName"]} == named
    bound = {s["name"] for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding") for s in d["subjects"]}
    assert bound <= named and "default" not in bound
    docs_text = " ".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert "katuna:default" not in docs_text and "[katuna/default]" not in docs_text
