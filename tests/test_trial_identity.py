"""Trial code never runs as the katuna service's own service account nor reads its Secrets: a
study naming one (natively, in a Katib trialSpec, in any workload kind, anywhere a pod takes a
Secret's name, in an Argo ``podSpecPatch`` read as Argo reads it) is refused at submission naming the field, on every path (``POST /studies``, a
Katib Experiment resource on the loopback cluster, ``katuna run`` and ``katuna render``), and
nothing is stored; a parameter that makes the name fails the launch; trial pods get no API token
unless asked; the manifests name every account and Secret of the service and bind nothing to
``default``."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import TRIAL, study_definition, unlined
from http_helpers import Service
from kube_standin import katib_api
from kube_stub import KubeStub
from test_cli import here
from test_resources import added, conditions, send

from functions.core import pod_security, template
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, Problem
from functions.core.formats import load_definition
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.spec import Study
from functions.core.trial_identity import secret_field, study_problems
from functions.settings import Settings

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"
KUBE_NAMESPACES = ("team",)
POD_ACCOUNT = "spec.trialTemplate.trialSpec.spec.template.spec.serviceAccountName"
POD = "spec.trialTemplate.trialSpec.spec.template.spec"
TOKEN = "katuna-api-token"
ENV_SECRET = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": TOKEN, "key": "token"}}}]


def experiment(name: str, account: str, api_version: str = "kubeflow.org/v1beta1", **pod: list) -> dict:
    """A Katib Experiment whose trial Job's pods run as ``account``, with the ``pod`` spec's
    ``env`` (for its container) and ``volumes``."""
    env = pod.pop("env", [])
    return {"apiVersion": api_version, "kind": "Experiment", "metadata": {"name": name, "namespace": "team"},
            "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                     "algorithm": {"algorithmName": "random"}, "maxTrialCount": 1, "parallelTrialCount": 1,
                     "parameters": [{"name": "x", "parameterType": "double",
                                     "feasibleSpace": {"min": "-1", "max": "1"}}],
                     "trialTemplate": {"primaryContainerName": "main",
                                       "trialParameters": [{"name": "x", "reference": "x"}],
                                       "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                                           "spec": {"serviceAccountName": account, "restartPolicy": "Never", **pod,
                                                    "containers": [{"name": "main", "image": "python:3.12",
                                                                    "command": ["python", str(TRIAL), "--x",
                                                                                "${trialParameters.x}"],
                                                                    **({"env": env} if env else {})}]}}}}}}}


@pytest.fixture(scope="module")
def cluster(kube: KubeStub) -> KubeStub:
    katib_api.install(kube)
    kube.add_service_account("team", "trainer")
    return kube


@pytest.fixture(scope="module")
def service(cluster: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("identity"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=cluster.url, KATUNA_K8S_NAMESPACE="katuna", KATUNA_KATIB_API="true",
                      KATUNA_SERVICE_ACCOUNTS="katuna,katuna-jobs-source",
                      KATUNA_SERVICE_SECRETS=f"{TOKEN},katuna-metrics-token")
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
    added(service, obj)
    study = service.wait_for("exp-trainer", timeout=90)
    assert study["status"] == "completed", (study["reason"], service.json("GET", "/studies/exp-trainer/trials")[1],
                                            _warnings(service))
    pod = cluster.created_jobs["exp-trainer-0"]["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("trainer", False)


def _warnings(service: Service) -> list[str]:
    """The service's warnings and errors so far (a failure it counted against a study among them)."""
    lines = (service.workdir / "serve.log").read_text().splitlines()
    return [line for line in lines if " WARNING " in line or " ERROR " in line]


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



def _account_problems(spec: Study, reserved: tuple[str, ...]) -> list[Problem]:
    """What the service refuses of ``spec`` where ``reserved`` are its own accounts (and no Pod
    Security level applies)."""
    return study_problems(spec, Cluster(reserved_accounts=reserved, pod_security=pod_security.PRIVILEGED))


def _secret_problems(spec: Study, reserved: tuple[str, ...]) -> list[Problem]:
    """What the service refuses of ``spec`` where ``reserved`` are its own Secrets."""
    return study_problems(spec, Cluster(reserved_secrets=reserved, pod_security=pod_security.PRIVILEGED))

@pytest.mark.parametrize("trial_spec,path", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_every_workload_kind_naming_the_service_account_is_refused_at_its_field(trial_spec: dict, path: str):
    native = study_definition(name="kinds")
    native["trialTemplate"] = {"trialSpec": trial_spec}
    spec, _ = load_definition(native)
    assert [p.path for p in _account_problems(spec, ("katuna",))] == [f"trialTemplate.trialSpec.{path}"]
    assert _account_problems(spec, ("someone-else",)) == []


def test_katuna_run_and_render_refuse_a_study_running_trials_as_the_service(tmp_path: Path):
    native = study_definition(name="cli-as-katuna", kubernetes={"serviceAccountName": "katuna"})
    native["trialTemplate"]["image"] = "python:3.12"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(native))
    for command in (["run", str(path), "--db", str(tmp_path / "k.db")], ["render", str(path)]):
        done = here(*command, cwd=tmp_path, check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "kubernetes.serviceAccountName: 'katuna' is the katuna service's own" in unlined(done.stderr)
    assert not (tmp_path / "k.db").exists() or "cli-as-katuna" not in here(
        "studies", "--db", str(tmp_path / "k.db"), "--json").stdout


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


def _job(main: dict | None = None, **pod: list) -> dict:
    """A trialSpec Job whose pod spec has ``pod`` besides its one container ``main`` (with ``main``'s fields)."""
    container = {"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"], **(main or {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [container], **pod}}}}


def _native(name: str, trial_spec: dict) -> dict:
    native = study_definition(name=name)
    native["trialTemplate"] = {"trialSpec": trial_spec}
    return native


@pytest.mark.slow
def test_posting_a_study_whose_trials_read_a_service_secret_is_refused_and_stores_nothing(service: Service,
                                                                                          cluster: KubeStub):
    status, body = _post(service, experiment("reads-env", "trainer", env=ENV_SECRET))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == [f"{POD}.containers[0].env[0].valueFrom.secretKeyRef.name"]
    assert "'katuna-api-token' is one of the katuna service's own Secrets" in body["problems"][0]["message"]
    status, body = _post(service, _native("reads-from", _job(main={"envFrom": [{"secretRef": {"name": TOKEN}}]})))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == [
        "trialTemplate.trialSpec.spec.template.spec.containers[0].envFrom[0].secretRef.name"]
    pulls = study_definition(name="reads-pull", kubernetes={"imagePullSecrets": ["katuna-metrics-token"]})
    pulls["trialTemplate"]["image"] = "python:3.12"
    status, body = _post(service, pulls)
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == ["kubernetes.imagePullSecrets[0]"]
    for name in ("reads-env", "reads-from", "reads-pull"):
        assert service.json("GET", f"/studies/{name}")[0] == 404
    assert not [job for job in cluster.created_jobs if job.startswith("reads-")]


@pytest.mark.slow
def test_a_katib_experiment_mounting_a_service_secret_fails_in_its_status(service: Service, cluster: KubeStub):
    volume = {"name": "t", "projected": {"sources": [{"secret": {"name": TOKEN}}]}}
    obj = cluster.apply(experiment("exp-mounts", "trainer", volumes=[volume]))
    assert send(service, "add", obj, path="/functions/resource") == []
    status = cluster.get_resource("experiments.kubeflow.org", "team", "exp-mounts")[1]["status"]
    failed = conditions(status)["Failed"]
    assert (status["phase"], failed["reason"]) == ("Failed", "InvalidSpec")
    assert f"{POD}.volumes[0].projected.sources[0].secret.name" in failed["message"]
    assert service.json("GET", "/studies/exp-mounts")[0] == 404
    assert not [job for job in cluster.created_jobs if job.startswith("exp-mounts")]


@pytest.mark.slow
def test_a_trial_reading_a_secret_of_its_own_runs(service: Service, cluster: KubeStub):
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "trainer-data", "key": "token", "optional": True}}}]
    obj = cluster.apply(experiment("exp-own-secret", "trainer", env=env))
    added(service, obj)
    assert service.wait_for("exp-own-secret", timeout=90)["status"] == "completed"
    container = cluster.created_jobs["exp-own-secret-0"]["spec"]["template"]["spec"]["containers"][0]
    assert env[0] in container["env"]


MOUNTS = {
    "env": (_job(main={"env": ENV_SECRET}), "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name"),
    "envFrom": (_job(initContainers=[{"name": "init", "image": "p", "envFrom": [
        {"configMapRef": {"name": "settings"}}, {"secretRef": {"name": TOKEN}}]}]),
                "spec.template.spec.initContainers[0].envFrom[1].secretRef.name"),
    "secret": (_job(volumes=[{"name": "t", "secret": {"secretName": TOKEN}}]),
               "spec.template.spec.volumes[0].secret.secretName"),
    "projected": (_job(volumes=[{"name": "t", "projected": {"sources": [
        {"configMap": {"name": "settings"}}, {"secret": {"name": TOKEN, "items": [{"key": "token", "path": "t"}]}}]}}]),
                  "spec.template.spec.volumes[0].projected.sources[1].secret.name"),
    "csi": (_job(volumes=[{"name": "t", "csi": {"driver": "secrets-store.csi.k8s.io",
                                                  "nodePublishSecretRef": {"name": TOKEN}}}]),
            "spec.template.spec.volumes[0].csi.nodePublishSecretRef.name"),
    "imagePullSecrets": (_job(imagePullSecrets=[{"name": TOKEN}]), "spec.template.spec.imagePullSecrets[0].name"),
    "PyTorchJob": ({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [
            {"name": "pytorch", "image": "p", "command": ["t", "${trialParameters.x}"], "env": ENV_SECRET}]}}}}}},
                   "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name"),
    "JobSet": ({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": {
            "volumes": [{"name": "t", "secret": {"secretName": TOKEN}}],
            "containers": [{"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}}}}]}},
               "spec.replicatedJobs[0].template.spec.template.spec.volumes[0].secret.secretName"),
    "TrainJob": ({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"image": "p", "command": ["t", "${trialParameters.x}"], "env": ENV_SECRET}}},
                 "spec.trainer.env[0].valueFrom.secretKeyRef.name"),
    "Workflow": ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": {"image": "p", "command": ["t", "${trialParameters.x}"]},
         "inputs": {"artifacts": [{"name": "data", "path": "/data", "s3": {
             "endpoint": "s3.example.com", "bucket": "b", "key": "k",
             "accessKeySecret": {"name": TOKEN, "key": "token"}}}]}}]}},
                 "spec.templates[0].inputs.artifacts[0].s3.accessKeySecret.name"),
    "PipelineRun": ({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {
        "workspaces": [{"name": "creds", "secret": {"secretName": TOKEN}}], "pipelineSpec": {
            "workspaces": [{"name": "creds"}], "tasks": [{"name": "train", "workspaces": [{"name": "creds"}],
                                                          "taskSpec": {"workspaces": [{"name": "creds"}], "steps": [
                {"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}]}}},
                    "spec.workspaces[0].secret.secretName"),
}


@pytest.mark.parametrize("trial_spec,path", MOUNTS.values(), ids=MOUNTS.keys())
def test_every_way_a_trial_names_a_service_secret_is_refused_at_its_field(trial_spec: dict, path: str):
    spec, _ = load_definition(_native("mounts", trial_spec))
    assert [p.path for p in _secret_problems(spec, (TOKEN,))] == [f"trialTemplate.trialSpec.{path}"]
    assert _secret_problems(spec, ("someone-else",)) == []


def test_a_configmap_or_container_of_a_service_secrets_name_is_no_secret():
    trial_spec = _job(main={"env": [{"name": "T", "valueFrom": {"configMapKeyRef": {"name": TOKEN, "key": "t"}}}]},
                      volumes=[{"name": TOKEN, "configMap": {"name": TOKEN}}])
    spec, _ = load_definition(_native("configmap", trial_spec))
    assert _secret_problems(spec, (TOKEN,)) == []


def _cli(tmp_path: Path, definition: dict, *command: str) -> subprocess.CompletedProcess:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(definition))
    args = [command[0], str(path), *command[1:]]
    return here(*args, cwd=tmp_path, check=False)


def test_katuna_run_and_render_refuse_a_study_whose_trials_read_a_service_secret(tmp_path: Path):
    reads = _native("cli-reads", _job(main={"image": "python:3.12", "env": ENV_SECRET}))
    for command in (["run", "--db", str(tmp_path / "k.db")], ["render"]):
        done = _cli(tmp_path, reads, *command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert ("trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name: "
                "'katuna-api-token' is one of the katuna service's own Secrets") in unlined(done.stderr)
    assert not (tmp_path / "k.db").exists() or "cli-reads" not in here(
        "studies", "--db", str(tmp_path / "k.db"), "--json").stdout
    own = _native("cli-own", _job(main={"image": "python:3.12", "env": [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "trainer-data", "key": "token"}}}]}))
    done = _cli(tmp_path, own, "render")
    assert done.returncode == 0, done.stderr
    assert "name: trainer-data" in done.stdout


def _chosen(name: str) -> dict:
    """A study whose trials read the Secret a categorical parameter names."""
    native = _native(name, _job(main={"image": "python:3.12", "env": [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "${trialParameters.secret}", "key": "token"}}}]}))
    native["parameters"].append({"name": "secret", "type": "categorical", "values": ["trainer-data", TOKEN]})
    return native


def test_a_parameter_that_makes_a_service_secret_fails_the_launch(tmp_path: Path):
    path = "trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name"
    done = _cli(tmp_path, _chosen("cli-chosen"), "render", "--params", "x=1", "--params", f"secret={TOKEN}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}: 'katuna-api-token' is one of the katuna service's own Secrets" in unlined(done.stderr)
    spec, _ = load_definition(_chosen("chosen"))
    assert _secret_problems(spec, (TOKEN,)) == [], "the name is known only at launch"
    launch = TrialLaunch("chosen", "u1", 0, 1, "chosen-0", [], {}, ".", None, trial_spec=spec.trial_template.trial_spec,
                         primary_container="main", params={"x": 1.0, "secret": "trainer-data"})
    service = Cluster(reserved_secrets=(TOKEN,))
    assert render_job(launch, service)["spec"]["template"]["spec"]["containers"][0]["env"][0] == {
        "name": "T", "valueFrom": {"secretKeyRef": {"name": "trainer-data", "key": "token"}}}
    with pytest.raises(InvalidStudy) as refused:
        render_job(replace(launch, params={"x": 1.0, "secret": TOKEN}), service)
    assert [p.path for p in refused.value.problems] == [path]
    with pytest.raises(InvalidStudy, match="kubernetes.imagePullSecrets.0.: 'katuna-api-token' is one of"):
        render_job(replace(launch, cluster=Cluster(image_pull_secrets=(TOKEN,)), params={"x": 1.0, "secret": "s"}),
                   service)


def test_the_service_refuses_to_start_with_its_own_secret_as_the_trials_pull_secret():
    with pytest.raises(ValueError, match="KATUNA_K8S_IMAGE_PULL_SECRETS: 'katuna-api-token' is one of the service's"):
        Settings.from_env({"KATUNA_K8S_IMAGE_PULL_SECRETS": "registry,katuna-api-token"})
    with pytest.raises(ValueError, match="KATUNA_K8S_IMAGE_PULL_SECRETS: 'ops'"):
        Settings.from_env({"KATUNA_K8S_IMAGE_PULL_SECRETS": "ops", "KATUNA_SERVICE_SECRETS": "ops,katuna-api-token"})
    assert Settings.from_env({"KATUNA_K8S_IMAGE_PULL_SECRETS": "registry"}).cluster_defaults().reserved_secrets == (
        TOKEN,)


def test_the_manifests_name_every_secret_of_the_service():
    """The Secrets the manifests read or make, and the one Knative makes with OIDC for the
    service's SinkBinding (``<binding>-oidc-token``): its token posts to the broker as katuna."""
    docs = _manifests(KNATIVE, KNATIVE / "katib-api", KNATIVE / "oidc")
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "katuna-config")
    read = {value for doc in docs for path, value in template.strings(doc, "") if secret_field(path)}
    made = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    knatives = {f"{d['metadata']['name']}-oidc-token" for d in docs
                if d["kind"] == "SinkBinding" and d["spec"]["subject"].get("name") == "katuna"}
    assert TOKEN in read and knatives == {"katuna-sink-oidc-token"}
    assert made | read | knatives == set(Settings.from_env(config["data"]).service_secrets)


def _workflow(patch: str | None = None, template_patch: str | None = None, command_arg: str = "${trialParameters.x}",
              **spec: object) -> dict:
    """An Argo Workflow trialSpec of one container template ``main``, with the Workflow's own
    ``podSpecPatch`` and the template's (each a string, as Argo takes it)."""
    main: dict = {"name": "main", "container": {"image": "python:3.12", "command": ["t", command_arg]}}
    if template_patch is not None:
        main["podSpecPatch"] = template_patch
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "entrypoint": "main", "templates": [main], **({"podSpecPatch": patch} if patch is not None else {}), **spec}}


def _katib_workflow(name: str, trial_spec: dict) -> dict:
    """A Katib Experiment whose trials are the Argo Workflow ``trial_spec``."""
    definition = experiment(name, "trainer")
    definition["spec"]["trialTemplate"]["trialSpec"] = trial_spec
    return definition


AS_KATUNA = "containers:\n- name: main\n  resources: {limits: {cpu: '1'}}\nserviceAccountName: katuna\n"
MOUNT_TOKEN = json.dumps({"volumes": [{"name": "t", "secret": {"secretName": TOKEN}}]})


@pytest.mark.slow
def test_posting_a_workflow_whose_pod_spec_patch_runs_as_or_reads_the_service_is_refused(service: Service,
                                                                                          cluster: KubeStub):
    status, body = _post(service, _native("patch-as", _workflow(template_patch=AS_KATUNA)))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == [
        "trialTemplate.trialSpec.spec.templates[0].podSpecPatch.serviceAccountName"]
    assert "'katuna' is the katuna service's own service account" in body["problems"][0]["message"]
    status, body = _post(service, _katib_workflow("patch-reads", _workflow(patch=MOUNT_TOKEN)))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == [
        "spec.trialTemplate.trialSpec.spec.podSpecPatch.volumes[0].secret.secretName"]
    assert "'katuna-api-token' is one of the katuna service's own Secrets" in body["problems"][0]["message"]
    status, body = _post(service, _native("patch-unread", _workflow(template_patch='{"containers": [')))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == ["trialTemplate.trialSpec.spec.templates[0].podSpecPatch"]
    assert "expected a pod spec fragment as JSON or YAML" in body["problems"][0]["message"]
    for name in ("patch-as", "patch-reads", "patch-unread"):
        assert service.json("GET", f"/studies/{name}")[0] == 404
    assert not [key for key in cluster.workloads if "patch-" in str(key)]


@pytest.mark.slow
def test_a_katib_experiment_whose_pod_spec_patch_reads_a_service_secret_fails_in_its_status(service: Service,
                                                                                             cluster: KubeStub):
    patch = yaml.safe_dump({"containers": [{"name": "main", "env": ENV_SECRET}]})
    obj = cluster.apply(_katib_workflow("exp-patch-env", _workflow(templateDefaults={"podSpecPatch": patch})))
    assert send(service, "add", obj, path="/functions/resource") == []
    status = cluster.get_resource("experiments.kubeflow.org", "team", "exp-patch-env")[1]["status"]
    failed = conditions(status)["Failed"]
    assert (status["phase"], failed["reason"]) == ("Failed", "InvalidSpec")
    assert ("spec.trialTemplate.trialSpec.spec.templateDefaults.podSpecPatch.containers[0].env[0].valueFrom."
            "secretKeyRef.name: 'katuna-api-token'") in failed["message"]
    assert service.json("GET", "/studies/exp-patch-env")[0] == 404
    assert not [key for key in cluster.workloads if "exp-patch-env" in str(key)]


PATCHES = {
    "YAML": (_workflow(template_patch=AS_KATUNA), "account", "spec.templates[0].podSpecPatch.serviceAccountName"),
    "JSON": (_workflow(patch=json.dumps({"serviceAccount": "katuna"})), "account", "spec.podSpecPatch.serviceAccount"),
    "any case": (_workflow(template_patch='{"ServiceAccountName": "katuna"}'), "account",
                 "spec.templates[0].podSpecPatch.ServiceAccountName"),
    "artifactGC": (_workflow(artifactGC={"podSpecPatch": "serviceAccountName: katuna"}), "account",
                   "spec.artifactGC.podSpecPatch.serviceAccountName"),
    "volume": (_workflow(patch=MOUNT_TOKEN), "secret", "spec.podSpecPatch.volumes[0].secret.secretName"),
    "projected": (_workflow(template_patch=yaml.safe_dump({"volumes": [{"name": "t", "projected": {"sources": [
        {"secret": {"name": TOKEN}}]}}]})), "secret", "spec.templates[0].podSpecPatch.volumes[0].projected.sources[0].secret.name"),
    "envFrom": (_workflow(template_patch=json.dumps({"initContainers": [{"name": "i", "image": "p", "envFrom": [
        {"secretRef": {"name": TOKEN}}]}]})), "secret", "spec.templates[0].podSpecPatch.initContainers[0].envFrom[0].secretRef.name"),
    "imagePullSecrets": (_workflow(template_patch=f"imagePullSecrets:\n- name: {TOKEN}\n"), "secret",
                         "spec.templates[0].podSpecPatch.imagePullSecrets[0].name"),
}


@pytest.mark.parametrize("trial_spec,kind,path", PATCHES.values(), ids=PATCHES.keys())
def test_every_field_a_pod_spec_patch_sets_is_checked_as_a_pod_spec(trial_spec: dict, kind: str, path: str):
    spec, _ = load_definition(_native("patched", trial_spec))
    found = _account_problems(spec, ("katuna",)) if kind == "account" else _secret_problems(spec, (TOKEN,))
    assert [p.path for p in found] == [f"trialTemplate.trialSpec.{path}"]
    assert study_problems(spec, Cluster(reserved_accounts=("someone",), reserved_secrets=("else",))) == []


UNREADABLE = {
    "not YAML": ('containers: [{"name": "main"', "expected a pod spec fragment as JSON or YAML", ""),
    "a list": ("- serviceAccountName: katuna", "not a mapping of pod spec fields", ""),
    "a key twice": ("serviceAccountName: trainer\nserviceAccountName: katuna\n", "duplicate key 'serviceAccountName'", ""),
    "too large": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n" for a, b in zip("abcd", "bcde")),
                  "more than 100,000 values", ""),
    "an Argo expression": ('{"serviceAccountName": "{{inputs.parameters.sa}}"}', "an Argo expression", ""),
    "a name outside ASCII": ('{"ſerviceAccountName": "katuna"}', "expected a field name in ASCII",
                             ".ſerviceAccountName"),
}


@pytest.mark.parametrize("patch,message,field", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_pod_spec_patch_katuna_cannot_read_as_argo_does_is_refused_at_its_field(patch: str, message: str,
                                                                                  field: str):
    spec, _ = load_definition(_native("unread", _workflow(template_patch=patch)))
    found = [p for p in study_problems(spec, Cluster(reserved_accounts=("katuna",))) if message in p.message]
    assert [p.path for p in found] == [f"trialTemplate.trialSpec.spec.templates[0].podSpecPatch{field}"]


def _patched(name: str) -> dict:
    """A study of Argo Workflow trials whose podSpecPatch takes a number and an account from parameters."""
    patch = '{"serviceAccountName": "${trialParameters.sa}", "containers": [{"name": "main", "resources": ' \
            '{"limits": {"memory": ${trialParameters.gib}}}}]}'
    native = _native(name, _workflow(template_patch=patch))
    native["parameters"] += [{"name": "sa", "type": "categorical", "values": ["trainer", "katuna"]},
                             {"name": "gib", "type": "int", "min": 1, "max": 4}]
    return native


def test_a_parameter_that_makes_a_pod_spec_patch_run_as_the_service_fails_the_launch(tmp_path: Path):
    path = "trialTemplate.trialSpec.spec.templates[0].podSpecPatch.serviceAccountName"
    done = _cli(tmp_path, _patched("cli-patched"), "render", "--params", "x=1", "--params", "sa=katuna",
                "--params", "gib=2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}: 'katuna' is the katuna service's own service account" in unlined(done.stderr)
    done = _cli(tmp_path, _patched("cli-patched"), "render", "--params", "x=1", "--params", "sa=trainer",
                "--params", "gib=2")
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)["spec"]["templates"][0]["podSpecPatch"]
    assert json.loads(rendered) == {"serviceAccountName": "trainer", "containers": [
        {"name": "main", "resources": {"limits": {"memory": 2}}}]}
    spec, _ = load_definition(_patched("patched"))
    assert study_problems(spec, Cluster(reserved_accounts=("katuna",))) == [], "the account is known only at launch"
    launch = TrialLaunch("patched", "u1", 0, 1, "patched-0", [], {}, ".", None, trial_spec=spec.trial_template.trial_spec,
                         primary_container="main", params={"x": 1.0, "sa": "katuna", "gib": 2})
    with pytest.raises(InvalidStudy) as refused:
        render_job(launch, Cluster(reserved_accounts=("katuna",)))
    assert [p.path for p in refused.value.problems] == [path]
    with pytest.raises(InvalidStudy) as unread:
        render_job(replace(launch, params={"x": 1.0, "sa": "trainer", "gib": "["}), Cluster())
    assert [p.path for p in unread.value.problems] == [path.rpartition(".")[0]]


FILLED_LATER = {
    "Argo template account": (_workflow(), ("spec", "templates", 0, "serviceAccountName"), "{{inputs.parameters.sa}}"),
    "Argo artifact credentials": (MOUNTS["Workflow"][0], ("spec", "templates", 0, "inputs", "artifacts", 0, "s3",
                                                          "accessKeySecret", "name"), "{{workflow.parameters.creds}}"),
    "Tekton workspace": (MOUNTS["PipelineRun"][0], ("spec", "workspaces", 0, "secret", "secretName"), "$(params.creds)"),
}


@pytest.mark.parametrize("trial_spec,field,value", FILLED_LATER.values(), ids=FILLED_LATER.keys())
def test_a_name_the_workloads_controller_fills_in_later_is_refused_at_its_field(trial_spec: dict, field: tuple,
                                                                               value: str):
    trial_spec = json.loads(json.dumps(trial_spec))
    *parents, key = field
    holder = trial_spec
    for part in parents:
        holder = holder[part]
    holder[key] = value
    spec, _ = load_definition(_native("filled-later", trial_spec))
    found = study_problems(spec, Cluster(reserved_accounts=("katuna",), reserved_secrets=(TOKEN,)))
    path = "trialTemplate.trialSpec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in field)
    assert [p.path for p in found] == [path]
    assert "holds an expression the workload's controller fills in" in found[0].message


@pytest.mark.slow
def test_posting_a_workflow_whose_account_an_earlier_step_writes_is_refused(service: Service, cluster: KubeStub):
    trial_spec = _workflow()
    trial_spec["spec"]["templates"][0]["serviceAccountName"] = "{{inputs.parameters.sa}}"
    status, body = _post(service, _katib_workflow("late-account", trial_spec))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == ["spec.trialTemplate.trialSpec.spec.templates[0].serviceAccountName"]
    assert service.json("GET", "/studies/late-account")[0] == 404
    assert not [key for key in cluster.workloads if "late-account" in str(key)]


def test_the_services_database_claim_and_another_attempts_report_token_are_refused_its_own_token_is_not():
    """A trial pod mounting (or cloning) the service's database (``katuna-data``) would read every study's
    report key and could write a study of its own; one reading another attempt's report-token
    Secret could report for that trial. Both are refused at their fields; the attempt's own
    token, which katuna gives it, is rendered."""
    trial_spec = _job(main={"image": "python:3.12", "env": [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "victim-0.report", "key": "token"}}}]},
        volumes=[{"name": "db", "persistentVolumeClaim": {"claimName": "katuna-data"}},
                 {"name": "copy", "ephemeral": {"volumeClaimTemplate": {"spec": {
                     "dataSource": {"kind": "PersistentVolumeClaim", "name": "katuna-data"}}}}}])
    spec, _ = load_definition(_native("claims", trial_spec))
    service = Settings.from_env({}).cluster_defaults()
    assert service.reserved_claims == ("katuna-data",)
    found = {p.path: p.message for p in study_problems(spec, service)}
    assert set(found) == {"trialTemplate.trialSpec.spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
                          "trialTemplate.trialSpec.spec.template.spec.volumes[1].ephemeral.volumeClaimTemplate.spec."
                          "dataSource.name",
                          "trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name"}
    assert any("own PersistentVolumeClaims (its database)" in m for m in found.values())
    assert any("a trial may never read another's" in m for m in found.values())
    mine = _native("mine", _job(main={"image": "python:3.12"}))
    mine_spec, _ = load_definition(mine)
    launch = TrialLaunch("mine", "u1", 0, 1, "mine-0", [], {"KATUNA_REPORT_TOKEN": "t"}, ".", None,
                         trial_spec=mine_spec.trial_template.trial_spec, primary_container="main", params={"x": 1.0})
    env = render_job(launch, service)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "KATUNA_REPORT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "mine-0.report", "key": "token"}}} \
        in env, env


def _tekton(*tasks: dict, **spec: object) -> dict:
    """A PipelineRun whose pipeline runs the trial in a task of its own and the ``tasks`` beside it,
    with ``spec`` beside its pipeline."""
    return {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {
        "pipelineSpec": {"tasks": [{"name": "train", **INLINE_STEPS}, *tasks]}, **spec}}


def _argo(**spec: object) -> dict:
    """A Workflow whose template ``main`` runs the trial, with ``spec`` beside its templates."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": {"image": "p", "command": ["t", "${trialParameters.x}"]}}], **spec}}


INLINE_STEPS = {"taskSpec": {"steps": [{"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"]}]}}
UNSEEN = {
    "Tekton pipeline from git": (_tekton(pipelineRef={"resolver": "git", "params": [
        {"name": "url", "value": "https://example.com/p.git"}]}), "spec.pipelineRef.resolver"),
    "Tekton pipeline of the cluster": (_tekton(pipelineRef={"name": "train"}), "spec.pipelineRef.name"),
    "Tekton task over http": (_tekton({"name": "more", "taskRef": {"resolver": "http", "params": [
        {"name": "url", "value": "https://example.com/task.yaml"}]}}), "spec.pipelineSpec.tasks[1].taskRef.resolver"),
    "Tekton task of the cluster": (_tekton({"name": "more", "taskRef": {"name": "train", "kind": "Task"}}),
                                   "spec.pipelineSpec.tasks[1].taskRef.name"),
    "Tekton finally task": ({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {
        "tasks": [{"name": "train", **INLINE_STEPS}], "finally": [{"name": "tidy", "taskRef": {"name": "tidy"}}]}}},
        "spec.pipelineSpec.finally[0].taskRef.name"),
    "Tekton step action": ({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {
        "tasks": [{"name": "train", "taskSpec": {"steps": [
            {"name": "main", "image": "p", "command": ["t", "${trialParameters.x}"]},
            {"name": "more", "ref": {"resolver": "bundles", "params": [{"name": "bundle", "value": "example.com/b"}]}},
        ]}}]}}}, "spec.pipelineSpec.tasks[0].taskSpec.steps[1].ref.resolver"),
    "Argo workflow template": (_argo(workflowTemplateRef={"name": "train"}), "spec.workflowTemplateRef.name"),
    "Argo step template": ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": "run", "templateRef": {"name": "t", "template": "run"}}]]},
            {"name": "main2", "container": {"image": "p", "command": ["t", "${trialParameters.x}"]}}]}},
        "spec.templates[0].steps[0][0].templateRef.name"),
}


@pytest.mark.parametrize("trial_spec,path", UNSEEN.values(), ids=UNSEEN.keys())
def test_a_pipeline_task_or_template_katuna_cannot_read_is_refused_at_its_reference(trial_spec: dict, path: str):
    """A Tekton Task or Pipeline fetched by a resolver (git, http, an OCI bundle) or held in the
    cluster, and an Argo WorkflowTemplate, give the trial's pods steps, volumes and securityContexts
    katuna never sees: a Task from anyone's repository could mount the service's token or the node."""
    spec, _ = load_definition(_native("unseen", trial_spec))
    found = study_problems(spec, Cluster(reserved_accounts=("katuna",), reserved_secrets=(TOKEN,),
                                         pod_security=pod_security.PRIVILEGED))
    assert [p.path for p in found] == [f"trialTemplate.trialSpec.{path}"]
    assert "katuna cannot read" in found[0].message


def test_an_argo_resource_template_is_refused_at_its_resource():
    """An Argo ``resource`` template creates its manifest (any kind: a Pod mounting the node, a
    Secret, a Job as the service's account) with the Workflow's account; katuna read neither its
    kind nor its pods, so it ran unchecked beside the Workflow's own pods, which katuna does check."""
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: x-}\nspec: {serviceAccountName: katuna, containers: []}"
    trial_spec = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "make", "template": "make"}], [{"name": "run", "template": "run"}]]},
        {"name": "make", "resource": {"action": "create", "manifest": pod}},
        {"name": "run", "container": {"image": "p", "command": ["t", "${trialParameters.x}"]}}]}}
    spec, _ = load_definition(_native("manifest", trial_spec))
    found = study_problems(spec, Cluster(reserved_accounts=("katuna",), reserved_secrets=(TOKEN,),
                                         pod_security=pod_security.PRIVILEGED))
    assert [p.path for p in found] == ["trialTemplate.trialSpec.spec.templates[1].resource"], found
    assert "Argo resource template" in found[0].message and "KATUNA_TRIAL_KINDS" in found[0].message
    launch = TrialLaunch("manifest", "u1", 0, 1, "manifest-0", [], {}, ".", None, trial_spec=trial_spec,
                         params={"x": "1"})
    with pytest.raises(InvalidStudy) as refused:
        render_job(launch, Cluster())
    assert [p.path for p in refused.value.problems] == ["trialTemplate.trialSpec.spec.templates[1].resource"]


def test_a_parameter_that_makes_a_tekton_reference_fails_the_launch():
    trial_spec = _tekton({"name": "more", "taskRef": {"resolver": "${trialParameters.where}", "params": []}})
    launch = TrialLaunch("refs", "u1", 0, 1, "refs-0", [], {}, ".", None, trial_spec=trial_spec,
                         params={"where": "git"})
    with pytest.raises(InvalidStudy) as refused:
        render_job(launch, Cluster())
    assert [p.path for p in refused.value.problems] == ["trialTemplate.trialSpec.spec.pipelineSpec.tasks[1].taskRef.resolver"]


def test_inline_tekton_tasks_and_argo_templates_are_read_and_taken():
    for trial_spec in (WORKLOADS["PipelineRun"][0], WORKLOADS["Workflow"][0]):
        spec, _ = load_definition(_native("inline", json.loads(json.dumps(trial_spec).replace("katuna", "trainer"))))
        assert study_problems(spec, Cluster(reserved_accounts=("katuna",))) == []
