"""Trial templates held in ConfigMaps: a Katib Experiment's ``trialTemplate.configMap`` and a
``v1alpha1`` StudyJob's ``worker-template``, read from the loopback Kubernetes API (real client,
katuna's RBAC from ``knative/``) when the study is submitted on the cluster, stored inline with
their source; refused naming the field where the ConfigMap, its key or the right to read it is
missing, and where there is no cluster at all. A study resource takes its template only from its
own namespace, katuna's, or one the operator shares (``KATUNA_TEMPLATE_NAMESPACES``), however
widely katuna may read: another team's ConfigMap is refused unread. The tests that start
``katuna serve`` are marked slow (``make check`` leaves them out)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TRIAL, unlined
from http_helpers import Service
from kube_standin import katib_api
from kube_standin.rbac import Request
from kube_standin.server import KATUNA_USER
from kube_stub import KubeStub
from test_cli import here
from test_resources import send, status_of, wait_status
from test_studyjob import TEMPLATE, studyjob

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_resources import KubernetesResources
from functions.core import template_text
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.formats import load_definition
from functions.core.job import render_job
from functions.core.katib_paths import TYPED_FIELDS_ANNOTATION
from functions.core.katib_template import NO_CLUSTER
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.stored import study_from_dict
from functions.core.study_file import parse_file
from functions.core.template_sources import SOURCE_ANNOTATION, ClusterTemplates, load
from functions.settings import Settings

KUBE_NAMESPACES = ("team", "neighbour", "shared")
"""Where Experiments and their template ConfigMaps live: ``katuna-trials`` bound there, and a
copy of katuna's Role for the study resources applied there (in ``team``). ``neighbour`` is
another team's, which katuna may read since it runs trials there; ``shared`` is where the
operator keeps templates for everyone (``KATUNA_TEMPLATE_NAMESPACES``)."""
CLOSED = "closed"
"""A namespace where nothing is bound to katuna."""


def job_template(mode: str = "ok") -> str:
    """A trialSpec as a ConfigMap holds it: YAML text with a placeholder."""
    return yaml.safe_dump({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "python:3.12",
                        "command": ["python", str(TRIAL), "--x", "${trialParameters.learningRate}", "--mode", mode]}]}}}})


JOB_TEMPLATE = job_template()
TORCH_TEMPLATE = f"""\
apiVersion: kubeflow.org/v1
kind: PyTorchJob
spec:
  runPolicy:
    schedulingPolicy:
      queue: ${{trialParameters.note}}
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      template:
        metadata:
          annotations:
            workers: ${{trialParameters.workers}}
        spec:
          containers:
            - name: pytorch
              image: python:3.12
              command:
                - {sys.executable}
                - -c
                - print('loss=1')
                - ${{trialParameters.workers}}
              env:
                - name: WORKERS
                  value: "${{trialParameters.workers}}"
    Worker:
      replicas: ${{trialParameters.workers}}
      template:
        spec:
          containers:
            - name: pytorch
              image: python:3.12
              command: [{sys.executable}, -c, pass]
"""
"""A Training Operator job as a ConfigMap's text: ``replicas`` and the queue unquoted
placeholders, the environment value a quoted one, an argument and an annotation unquoted ones
where Kubernetes takes only strings."""
SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


def experiment(name: str, api_version: str = "kubeflow.org/v1beta1", **config_map: str) -> dict:
    """A Katib Experiment whose trial template is the ConfigMap ``templates`` of ``team``."""
    source = {"configMapName": "templates", "configMapNamespace": "team", "templatePath": "job.yaml", **config_map}
    return {"apiVersion": api_version, "kind": "Experiment", "metadata": {"name": name, "namespace": "team"},
            "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                     "algorithm": {"algorithmName": "random"}, "maxTrialCount": 2, "parallelTrialCount": 2,
                     "parameters": [{"name": "lr", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.5", "max": "1.5"}}],
                     "trialTemplate": {"primaryContainerName": "main", "successCondition": SUCCESS,
                                       "failureCondition": FAILURE, "configMap": source,
                                       "trialParameters": [{"name": "learningRate", "reference": "lr"}]}}}


@pytest.fixture(scope="module")
def cluster(kube: KubeStub) -> KubeStub:
    kube.create_config_map("team", "templates", {"job.yaml": JOB_TEMPLATE, "broken.yaml": "spec: [unclosed",
                                                 "torch.yaml": TORCH_TEMPLATE})
    with kube.lock:
        kube.authorizer.copy_role("katuna", "team")
    kube.add_namespace(CLOSED, grant=False)
    kube.create_config_map(CLOSED, "templates", {"job.yaml": JOB_TEMPLATE})
    for namespace in ("neighbour", "shared"):
        kube.create_config_map(namespace, "templates", {"job.yaml": JOB_TEMPLATE})
    kube.create_config_map("katuna", "worker-template", {"cpuWorkerTemplate.yaml": TEMPLATE.replace(
        "PYTHON", sys.executable).replace("TRIAL", str(TRIAL)).replace("- name: {{.WorkerID}}", "- name: worker")})
    katib_api.install(kube)
    return kube


@pytest.fixture(scope="module")
def service(cluster: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("configmap"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=cluster.url, KATUNA_K8S_NAMESPACE="katuna", KATUNA_KATIB_API="true",
                      KATUNA_TEMPLATE_NAMESPACES=f"shared,{CLOSED}")
    yield running
    running.close()


def templates(kube: KubeStub, owner: str | None = None, shared: tuple[str, ...] = ()) -> ClusterTemplates:
    """The real adapter's ConfigMap reads against the stand-in, as katuna's service account, for
    a resource of namespace ``owner`` (None: a study posted with the API token)."""
    return ClusterTemplates(KubernetesResources(lambda: api_client(kube.url)).read_config_map, "katuna", owner, shared)


def problems_of(definition: dict, kube: KubeStub, owner: str | None = None) -> dict[str, str]:
    with pytest.raises(InvalidStudy) as caught:
        load(definition, templates(kube, owner))
    return {p.path: p.message for p in caught.value.problems}


@pytest.mark.slow
def test_a_katib_experiment_resource_runs_the_template_its_configmap_holds(service: Service, cluster: KubeStub):
    obj = cluster.apply(experiment("cm-resource"))
    assert send(service, "add", obj) == ["dev.katuna.study.created"]
    assert service.wait_for("cm-resource", timeout=90)["status"] == "completed"
    jobs = [job for name, job in cluster.created_jobs.items() if name.startswith("cm-resource-")]
    assert len(jobs) == 2
    for job in jobs:
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:3] == ["python", str(TRIAL), "--x"] and 0.5 <= float(command[3]) <= 1.5
    study = service.json("GET", "/studies/cm-resource")[1]
    assert study["trialTemplateSource"] == "ConfigMap team/templates, key job.yaml"
    assert study["definition"]["trialTemplate"]["trialSpec"]["kind"] == "Job"


@pytest.mark.slow
def test_an_edit_of_a_running_experiment_does_not_read_its_configmap_again(service: Service, cluster: KubeStub):
    resource = experiment("cm-edit", api_version="katuna.dev/v1")
    resource["spec"].update(maxTrialCount=3, parallelTrialCount=1)
    resource["spec"]["trialTemplate"]["configMap"]["templatePath"] = "hang.yaml"
    with cluster.lock:
        cluster.configmaps[("team", "templates")]["data"]["hang.yaml"] = job_template("hang")
    obj = cluster.apply(resource)
    assert send(service, "add", obj) == ["dev.katuna.study.created"]
    with cluster.lock:
        del cluster.configmaps[("team", "templates")]["data"]["hang.yaml"]
    edited = copy.deepcopy(resource)
    edited["spec"]["parallelTrialCount"] = 2
    send(service, "update", cluster.apply(edited))
    status = wait_status(cluster, obj, lambda s: s.get("observedGeneration") == 2 and s.get("trialsRunning") == 2)
    assert "UpdateRefused" not in {c["type"] for c in status["conditions"]}
    assert service.request("POST", "/studies/cm-edit/stop")[0] in (200, 202)


@pytest.mark.slow
def test_posting_an_experiment_to_a_cluster_service_stores_the_template_inline(service: Service):
    status, created = service.json("POST", "/studies", body=yaml.safe_dump(experiment("cm-post")),
                                   headers={"Content-Type": "application/yaml"})
    assert status == 201, created
    study = service.json("GET", "/studies/cm-post")[1]
    assert study["trialTemplateSource"] == "ConfigMap team/templates, key job.yaml"
    assert "${trialParameters.lr}" in study["definition"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"][0]["command"]


def with_its_configmap(definition: dict, mode: str) -> str:
    """``definition`` and the ConfigMap ``team/templates`` it names in one file, as ``kubectl apply -f``
    takes them; the file's ``job.yaml`` runs the trial with ``--mode mode``."""
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "templates", "namespace": "team"},
                  "data": {"job.yaml": job_template(mode)}}
    return yaml.safe_dump_all([definition, config_map])


FROM_FILE = "ConfigMap team/templates, key job.yaml, given in the submitted file"


def test_the_configmap_of_the_submitted_file_wins_over_the_clusters(cluster: KubeStub):
    """The file is what its author applies: its ConfigMap is the template, and the cluster's
    ConfigMap of the same name, which holds another, is not read."""
    definition, given = parse_file(with_its_configmap(experiment("cm-file"), "from-file"))
    _, stored = load(definition, templates(cluster), given=given)
    command = stored["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-2:] == ["--mode", "from-file"]
    assert stored["metadata"]["annotations"][SOURCE_ANNOTATION] == FROM_FILE
    _, from_cluster = load(experiment("cm-file"), templates(cluster))
    assert from_cluster["spec"]["trialTemplate"]["trialSpec"] != stored["spec"]["trialTemplate"]["trialSpec"]


@pytest.mark.slow
def test_a_file_posted_to_a_cluster_service_runs_the_template_of_its_own_configmap(service: Service,
                                                                                  cluster: KubeStub):
    status, created = service.json("POST", "/studies", body=with_its_configmap(experiment("cm-posted"), "file"),
                                   headers={"Content-Type": "application/yaml"})
    assert status == 201, created
    assert service.wait_for("cm-posted", timeout=90)["status"] == "completed"
    assert service.json("GET", "/studies/cm-posted")[1]["trialTemplateSource"] == FROM_FILE
    jobs = [job for name, job in cluster.created_jobs.items() if name.startswith("cm-posted-")]
    assert len(jobs) == 2
    for job in jobs:
        assert job["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == ["--mode", "file"]


REFUSED = {
    "no such ConfigMap": ({"configMapName": "nowhere"}, "spec.trialTemplate.configMap.configMapName",
                          "no ConfigMap 'nowhere' in namespace 'team'"),
    "no such key": ({"templatePath": "gone.yaml"}, "spec.trialTemplate.configMap.templatePath",
                    "has no key 'gone.yaml'; its keys: broken.yaml, job.yaml"),
    "not YAML": ({"templatePath": "broken.yaml"}, "spec.trialTemplate.configMap.templatePath",
                 "the key 'broken.yaml' of ConfigMap team/templates is not valid YAML"),
    "a namespace katuna may not read": ({"configMapNamespace": CLOSED}, "spec.trialTemplate.configMap.configMapNamespace",
                                        "may not get configmaps in namespace 'closed'"),
}


@pytest.mark.parametrize("source,field,message", REFUSED.values(), ids=REFUSED.keys())
def test_a_template_that_cannot_be_read_is_refused_naming_the_field(cluster: KubeStub, source: dict, field: str,
                                                                    message: str):
    wrong = experiment("cm-wrong", **source)
    wrong["spec"]["parallelTrialCount"] = 5
    found = problems_of(wrong, cluster)
    assert message in found.pop(field)
    assert list(found) == ["spec.parallelTrialCount"], "every other problem is reported too, and no noise"


@pytest.mark.slow
def test_a_refused_experiment_leaves_nothing_stored(service: Service, cluster: KubeStub):
    status, body = service.json("POST", "/studies", body=yaml.safe_dump(experiment("cm-none", configMapName="nowhere")),
                                headers={"Content-Type": "application/yaml"})
    assert status in (400, 422) and "spec.trialTemplate.configMap.configMapName" in str(body)
    assert service.request("GET", "/studies/cm-none")[0] == 404
    obj = cluster.apply(experiment("cm-closed", api_version="katuna.dev/v1", configMapNamespace=CLOSED))
    # CLOSED is a namespace of shared templates for this service, where nothing lets katuna read
    assert send(service, "add", obj) == []
    problems = {p["field"]: p["message"] for p in status_of(cluster, obj)["problems"]}
    assert "knative/rbac.yaml" in problems["spec.trialTemplate.configMap.configMapNamespace"]
    assert service.request("GET", "/studies/cm-closed")[0] == 404


@pytest.mark.slow
@pytest.mark.parametrize("api_version", ["katuna.dev/v1", "kubeflow.org/v1beta1"])
def test_a_resource_naming_another_teams_configmap_is_refused_unread(service: Service, cluster: KubeStub,
                                                                     api_version: str):
    """katuna may read ``neighbour``'s ConfigMaps (it runs trials there); an Experiment of
    ``team`` may not have it read them: before, the other team's template became its trials'."""
    name = f"cm-neighbour-{api_version.split('.')[0]}"
    obj = cluster.apply(experiment(name, api_version=api_version, configMapNamespace="neighbour"))
    assert send(service, "add", obj) == []
    plural = "experiments.kubeflow.org" if api_version.startswith("kubeflow") else "experiments"
    status = cluster.get_resource(plural, "team", name)[1]["status"]
    [failed] = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert (status["phase"], failed["reason"]) == ("Failed", "InvalidSpec")
    message = failed["message"]
    assert message.startswith("spec.trialTemplate.configMap.configMapNamespace: 'neighbour' is another namespace")
    assert "expected one of 'team', 'katuna', 'shared', 'closed'" in message and "KATUNA_TEMPLATE_NAMESPACES" in message
    assert service.request("GET", f"/studies/{name}")[0] == 404
    assert not [job for job in cluster.created_jobs if job.startswith(name)]


@pytest.mark.slow
def test_a_resource_takes_a_template_of_a_shared_namespace_and_a_posted_study_of_any(service: Service,
                                                                                    cluster: KubeStub):
    obj = cluster.apply(experiment("cm-shared", api_version="katuna.dev/v1", configMapNamespace="shared"))
    assert send(service, "add", obj) == ["dev.katuna.study.created"]
    assert service.json("GET", "/studies/cm-shared")[1]["trialTemplateSource"] == "ConfigMap shared/templates, key job.yaml"
    assert service.request("POST", "/studies/cm-shared/stop")[0] in (200, 202)
    status, created = service.json("POST", "/studies", body=yaml.safe_dump(experiment("cm-posted-neighbour",
                                                                                      configMapNamespace="neighbour")),
                                   headers={"Content-Type": "application/yaml"})
    assert status == 201, created
    assert service.request("POST", "/studies/cm-posted-neighbour/stop")[0] in (200, 202)


def test_a_resource_may_name_its_own_katunas_and_shared_namespaces_only(cluster: KubeStub):
    for namespace in ("team", "katuna", "shared"):
        source = templates(cluster, "team", ("shared",))
        assert source.refusal(namespace) is None, namespace
    _, stored = load(experiment("cm-own"), templates(cluster, "team", ("shared",)))
    assert stored["metadata"]["annotations"][SOURCE_ANNOTATION] == "ConfigMap team/templates, key job.yaml"
    refused = problems_of(experiment("cm-other", configMapNamespace="neighbour"), cluster, owner="team")
    assert list(refused) == ["spec.trialTemplate.configMap.configMapNamespace"]
    nowhere = problems_of(experiment("cm-other", configMapNamespace="nowhere"), cluster, owner="team")
    assert nowhere["spec.trialTemplate.configMap.configMapNamespace"].startswith("'nowhere' is another namespace"), \
        "refused unread: the answer tells nothing of whether that namespace or its ConfigMap exists"
    _, posted = load(experiment("cm-posted", configMapNamespace="neighbour"), templates(cluster))
    assert posted["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job", "a study posted with the token reads any"


def test_template_namespaces_must_be_namespace_names():
    assert Settings.from_env({"KATUNA_TEMPLATE_NAMESPACES": "kubeflow, shared"}).template_namespaces == (
        "kubeflow", "shared")
    with pytest.raises(ValueError, match="KATUNA_TEMPLATE_NAMESPACES: expected namespace names .* got 'Team_B'"):
        Settings.from_env({"KATUNA_TEMPLATE_NAMESPACES": "kubeflow,Team_B"})


def test_an_unquoted_placeholder_of_a_configmap_template_takes_the_type_of_its_value(cluster: KubeStub):
    """Katib substitutes into the template's text and reads the YAML afterwards: an unquoted
    ``replicas: ${trialParameters.workers}`` is the integer the API server requires, a quoted
    placeholder stays a string, and so does one where Kubernetes takes only strings (an
    argument, an annotation: Katib's number there is refused). A value is read as one scalar:
    ``a: b`` and a newline add no structure."""
    definition = experiment("cm-typed", templatePath="torch.yaml")
    definition["spec"]["trialTemplate"]["primaryContainerName"] = "pytorch"
    definition["spec"]["parameters"] = [
        {"name": "workers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
        {"name": "note", "parameterType": "categorical", "feasibleSpace": {"list": ["a: b\nreplicas: 9", "ok"]}}]
    definition["spec"]["trialTemplate"]["trialParameters"] = [{"name": "workers", "reference": "workers"},
                                                              {"name": "note", "reference": "note"}]
    study, stored = load(definition, templates(cluster))
    assert json.loads(stored["metadata"]["annotations"][TYPED_FIELDS_ANNOTATION]) == [
        ["spec", "runPolicy", "schedulingPolicy", "queue"], ["spec", "pytorchReplicaSpecs", "Worker", "replicas"]]
    for again in (load_definition(stored)[0], study_from_dict(study.to_dict())):
        assert again.trial_template.typed_fields == study.trial_template.typed_fields, "what is stored keeps them"
    cluster.install_operator("training-operator")
    record = StudyRecord(study, stored, "/somewhere", "0123456789ab")
    launch = trial_launch(record, TrialRecord(study.name, 0, {"workers": 2, "note": "a: b\nreplicas: 9"}))
    KubernetesExecutor(Cluster(namespace="team"), api_client(cluster.url)).launch(launch)
    with cluster.lock:
        created = copy.deepcopy(cluster.workloads[("pytorchjobs", "team", launch.job_name)])
    specs = created["spec"]["pytorchReplicaSpecs"]
    assert specs["Worker"]["replicas"] == 2 and specs["Master"]["replicas"] == 1
    master = specs["Master"]["template"]
    assert master["spec"]["containers"][0]["env"][0] == {"name": "WORKERS", "value": "2"}
    assert master["spec"]["containers"][0]["command"][-1] == "2"
    assert master["metadata"]["annotations"] == {"workers": "2", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert created["spec"]["runPolicy"]["schedulingPolicy"]["queue"] == "a: b\nreplicas: 9"


def test_a_configmap_template_written_as_json_is_read_as_katib_reads_it(cluster: KubeStub):
    """Katib decodes a template whose text begins with ``{`` as JSON (Kubernetes' YAML-or-JSON
    decoder), after substituting into the text: JSON indented with tabs, as ``kubectl create
    configmap --from-file`` of a file Go or an editor wrote, runs, and a placeholder outside
    quotes is the number its value is, as Katib's substitution makes it."""
    torch = yaml.safe_load(TORCH_TEMPLATE.replace("${trialParameters.workers}", "N_WORKERS"))
    del torch["spec"]["runPolicy"]
    text = json.dumps(torch, indent="\t").replace('"replicas": "N_WORKERS"', '"replicas": ${trialParameters.workers}').replace(
        '"N_WORKERS"', '"${trialParameters.workers}"')
    assert "\t" in text and text.count("${trialParameters.workers}") == 4
    with cluster.lock:
        cluster.configmaps[("team", "templates")]["data"]["torch.json"] = text
    definition = experiment("cm-json", templatePath="torch.json")
    definition["spec"]["trialTemplate"]["primaryContainerName"] = "pytorch"
    definition["spec"]["parameters"] = [{"name": "workers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}]
    definition["spec"]["trialTemplate"]["trialParameters"] = [{"name": "workers", "reference": "workers"}]
    study, stored = load(definition, templates(cluster))
    assert json.loads(stored["metadata"]["annotations"][TYPED_FIELDS_ANNOTATION]) == [
        ["spec", "pytorchReplicaSpecs", "Worker", "replicas"]]
    cluster.install_operator("training-operator")
    launch = trial_launch(StudyRecord(study, stored, "/somewhere", "0123456789ab"),
                          TrialRecord(study.name, 0, {"workers": 2}))
    KubernetesExecutor(Cluster(namespace="team"), api_client(cluster.url)).launch(launch)
    with cluster.lock:
        specs = copy.deepcopy(cluster.workloads[("pytorchjobs", "team", launch.job_name)]["spec"]["pytorchReplicaSpecs"])
    assert specs["Worker"]["replicas"] == 2 and specs["Master"]["replicas"] == 1
    master = specs["Master"]["template"]
    assert master["spec"]["containers"][0]["env"][0] == {"name": "WORKERS", "value": "2"}
    assert master["spec"]["containers"][0]["command"][-1] == "2" and master["metadata"]["annotations"]["workers"] == "2"


def test_a_placeholder_outside_quotes_reads_back_as_written_in_json_as_in_yaml():
    """A parameter's placeholder outside quotes reads back as written wherever it stands in a
    JSON template, a key too, as in the same template written as YAML; only a value is typed."""
    json_text = '{"metadata": {"labels": {${trialParameters.k}: "v"}}, "spec": {"replicas": ${trialParameters.n}}}'
    yaml_text = "metadata: {labels: {${trialParameters.k}: v}}\nspec: {replicas: ${trialParameters.n}}\n"
    read = ({"metadata": {"labels": {"${trialParameters.k}": "v"}}, "spec": {"replicas": "${trialParameters.n}"}},
            [("spec", "replicas")])
    assert template_text.read(json_text) == read
    assert template_text.read(yaml_text) == read


def test_katibs_webhook_rules_for_a_configmap_source(cluster: KubeStub):
    wrong = experiment("cm-rules", configMapNamespace="")
    del wrong["spec"]["trialTemplate"]["successCondition"]
    assert set(problems_of(wrong, cluster)) == {"spec.trialTemplate.configMap.configMapNamespace",
                                                "spec.trialTemplate.successCondition"}


@pytest.mark.slow
def test_a_studyjob_resource_runs_the_worker_template_of_katunas_namespace(service: Service, cluster: KubeStub):
    job = studyjob(studyName="cm-sj", requestcount=1, workerSpec={"goTemplate": {"templatePath": "cpuWorkerTemplate.yaml"}})
    job["metadata"] = {"name": "cm-sj", "namespace": "team"}
    emitted = send(service, "add", cluster.apply(job))
    # The service's tick, which lists the study resources whose events were lost, may take it first.
    assert emitted in ([], ["dev.katuna.study.created"]), emitted
    done = service.wait_for("cm-sj", timeout=90)
    assert done["status"] == "completed", done
    assert done["trialTemplateSource"] == "ConfigMap katuna/worker-template, key cpuWorkerTemplate.yaml"
    assert {job["metadata"]["namespace"] for name, job in cluster.created_jobs.items() if name.startswith("cm-sj")} == \
        {"team"}


def test_a_studyjob_takes_its_worker_template_from_the_worker_template_configmap(cluster: KubeStub):
    doc = studyjob(workerSpec={"goTemplate": {"templatePath": "cpuWorkerTemplate.yaml"}})
    spec, stored = load(doc, templates(cluster))
    assert stored["metadata"]["annotations"][SOURCE_ANNOTATION] == "ConfigMap katuna/worker-template, key cpuWorkerTemplate.yaml"
    assert stored["spec"]["workerSpec"]["goTemplate"]["rawTemplate"].startswith("apiVersion: batch/v1")
    assert spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]["command"][:2] == [
        sys.executable, str(TRIAL)]
    missing = problems_of(studyjob(workerSpec={"goTemplate": {}}), cluster)
    assert "has no key 'defaultWorkerTemplate.yaml'" in missing["spec.workerSpec.goTemplate.templatePath"]


def test_without_a_cluster_the_cli_refuses_a_configmap_template_saying_why(tmp_path: Path):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment("cm-cli")))
    converted = here("convert", str(path), check=False)
    assert converted.returncode == 2
    assert f"spec.trialTemplate.configMap: {NO_CLUSTER}" in " ".join(unlined(converted.stderr).split())
    assert sum(line.startswith("  - ") for line in converted.stderr.splitlines()) == 1, "the one problem, no noise"


def test_the_trial_templates_role_bound_in_a_namespace_lets_katuna_read_its_templates():
    kube = KubeStub()
    try:
        kube.add_namespace("kubeflow", grant=False)
        kube.create_config_map("kubeflow", "trial-templates", {"job.yaml": JOB_TEMPLATE})
        wrong = experiment("cm-kubeflow", configMapNamespace="kubeflow", configMapName="trial-templates")
        assert "spec.trialTemplate.configMap.configMapNamespace" in problems_of(wrong, kube)
        katib_api.install(kube)
        katib_api.bind(kube, KATUNA_USER, "katuna-trial-templates", "kubeflow")
        _, stored = load(wrong, templates(kube))
        assert stored["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job"
    finally:
        kube.close()


def test_a_katuna_experiment_reads_shared_templates_through_the_trial_templates_role_of_the_base():
    """Without Katib's kinds (the base of ``knative/``), a ``katuna.dev`` Experiment naming a
    namespace of shared templates is read once the operator binds ``katuna-trial-templates``
    there as the docs say; before, the refusal names that role, which grants ``get`` on
    ConfigMaps and nothing else, not ``katuna-trials``, which would let katuna run trials there."""
    kube = KubeStub()
    try:
        kube.add_namespace("kubeflow", grant=False)
        kube.create_config_map("kubeflow", "trial-templates", {"job.yaml": JOB_TEMPLATE})
        shared = experiment("cm-shared", api_version="katuna.dev/v1", configMapNamespace="kubeflow",
                            configMapName="trial-templates")
        with pytest.raises(InvalidStudy) as caught:
            load(shared, templates(kube, "team", ("kubeflow",)))
        [refusal] = caught.value.problems
        assert refusal.path == "spec.trialTemplate.configMap.configMapNamespace"
        assert "bind the katuna-trial-templates ClusterRole" in refusal.message, refusal.message
        with kube.lock:
            kube.authorizer.bind("katuna-trial-templates", "kubeflow", "katuna", "katuna")
        _, stored = load(shared, templates(kube, "team", ("kubeflow",)))
        assert stored["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job"
        assert not kube.authorizer.allows(Request(KATUNA_USER, "create", "batch", "jobs", namespace="kubeflow"))
    finally:
        kube.close()


@pytest.mark.slow
def test_a_service_whose_trials_run_locally_refuses_a_configmap_template_saying_why(tmp_path: Path):
    local = Service(tmp_path, workers=1)
    try:
        status, body = local.json("POST", "/studies", body=yaml.safe_dump(experiment("cm-local")),
                                  headers={"Content-Type": "application/yaml"})
        assert status == 422 and NO_CLUSTER in str(body), body
        assert local.request("GET", "/studies/cm-local")[0] == 404
    finally:
        local.close()


FLOW_JOB = ("{apiVersion: batch/v1, kind: Job, spec: {parallelism: ${trialParameters.workers}, template: {spec: {"
            "restartPolicy: Never, containers: [{name: main, image: 'python:3.12', command: "
            "[python, train.py, '--lr=${trialParameters.learningRate}', '${trialParameters.workers}']}]}}}}")
"""A Job written as one YAML flow mapping: its keys unquoted, so no JSON."""


@pytest.mark.parametrize("key, text", [
    ("flow.yaml", FLOW_JOB),
    ("two.yaml", yaml.safe_dump(yaml.safe_load(FLOW_JOB.replace("${trialParameters.workers}", "9"))).replace(
        "parallelism: 9", "parallelism: ${trialParameters.workers}").replace("'9'", "'${trialParameters.workers}'")
     + "---\napiVersion: v1\nkind: Service\nmetadata: {name: ${trialParameters.workers}\n"),
    ("two.json", json.dumps(yaml.safe_load(FLOW_JOB.replace("${trialParameters.workers}", "9"))).replace(
        '"parallelism": 9', '"parallelism": ${trialParameters.workers}').replace('"9"', '"${trialParameters.workers}"')
     + '\n{"apiVersion": "v1", "kind": "Service"} and more'),
], ids=["flow-mapping", "yaml-documents", "json-values"])
def test_a_configmap_template_is_its_texts_first_object_read_as_katib_reads_it(cluster: KubeStub, key: str, text: str):
    """Katib substitutes into the text, then reads one object of it with Kubernetes' YAML-or-JSON
    decoder: text beginning with ``{`` that is no JSON (a YAML flow mapping) as YAML, a quoted
    placeholder in it as the string and an unquoted one as the number Katib's substitution makes;
    and of several YAML documents, or JSON values, the first, the rest left unread."""
    with cluster.lock:
        cluster.configmaps[("team", "templates")]["data"][key] = text
    definition = experiment(f"cm-first-{key.replace('.', '-')}", templatePath=key)
    definition["spec"]["parameters"].append({"name": "workers", "parameterType": "int",
                                             "feasibleSpace": {"min": "1", "max": "3"}})
    definition["spec"]["trialTemplate"]["trialParameters"].append({"name": "workers", "reference": "workers"})
    study, stored = load(definition, templates(cluster))
    assert json.loads(stored["metadata"]["annotations"][TYPED_FIELDS_ANNOTATION]) == [["spec", "parallelism"]]
    launch = trial_launch(StudyRecord(study, stored, "/somewhere", "0123456789ab"),
                          TrialRecord(study.name, 0, {"lr": 0.5, "workers": 2}))
    job = render_job(launch, Cluster(namespace="team"))
    assert job["kind"] == "Job" and job["spec"]["parallelism"] == 2
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == ["--lr=0.5", "2"]


@pytest.mark.parametrize("key, text, refused", [
    ("z-comment.yaml", "# the trial's Job\n---\n" + JOB_TEMPLATE, "holds nothing before the --- at line 2"),
    ("z-blank.yaml", "\n---\n" + JOB_TEMPLATE, "holds nothing before the --- at line 2"),
    ("z-two-separators.yaml", "---\n---\n" + JOB_TEMPLATE, "holds nothing before the --- at line 2"),
    ("z-tagged.yaml", "--- !!map\n" + JOB_TEMPLATE, "'--- !!map' at line 1, which Katib refuses"),
    ("z-separator-first.yaml", "--- # the trial's Job\n# its one document\n" + JOB_TEMPLATE, None),
    ("z-yaml-directive.yaml", "%YAML 1.2\n---\n" + JOB_TEMPLATE, "directive '%YAML 1.2' at line 1"),
    ("z-tag-directive.yaml", "# tags\n%TAG !k! tag:kubernetes.io,2024:\n---\n" + JOB_TEMPLATE,
     "directive '%TAG !k! tag:kubernetes.io,2024:' at line 2"),
    ("z-separator-directive.yaml", "---\n%YAML 1.1\n---\n" + JOB_TEMPLATE,
     "ends its first document with '%YAML 1.1' at line 2"),
    ("z-separator-end.yaml", "--- # the Job\n...\n" + JOB_TEMPLATE, "ends its first document with '...' at line 2"),
    ("z-end-then-directive.yaml", JOB_TEMPLATE + "...\n%YAML 1.2\n---\nkind: Service\n", None),
], ids=["comment-chunk", "blank-chunk", "two-separators", "tagged-separator", "separator-first", "yaml-directive",
        "tag-directive", "separator-directive", "separator-end", "end-then-directive"])
def test_a_configmap_template_whose_first_chunk_katib_reads_as_empty_is_refused(cluster: KubeStub, key: str,
                                                                                 text: str, refused: str | None):
    """Kubernetes' YAML reader, which Katib's decoder uses, gives the lines before the first
    ``---`` that follows a first line as the first document, comments and blank lines alone
    included, and Katib then refuses the template (no apiVersion or kind); a ``---`` followed by
    anything but a comment it refuses outright. A ``---`` on the first line starts the document.
    A ``%YAML`` or ``%TAG`` directive is cut off from the ``---`` after it, so Katib's go-yaml
    finds no document start; after a first ``---``, a directive or ``...`` ends an empty document;
    after the Job, they are left unread."""
    with cluster.lock:
        cluster.configmaps[("team", "templates")]["data"][key] = text
    definition = experiment(f"cm-{key.removesuffix('.yaml')}", templatePath=key)
    if refused is None:
        study, _ = load(definition, templates(cluster))
        assert study.trial_template.trial_spec["kind"] == "Job"
        return
    found = problems_of(definition, cluster)
    assert refused in found.pop("spec.trialTemplate.configMap.templatePath") and not found
