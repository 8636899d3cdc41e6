"""Trial kinds as Katib reads them: GJSON success and failure conditions, each kind's defaults,
and the RBAC, ApiServerSource entries and Triggers a deployment enables per operator."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import study_definition

from functions.core import file_collector, gjson, trial_kinds, trial_spec, workload_pods
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.validate import parse_study

KNATIVE = Path(__file__).parent.parent / "knative"

KATIB_CONDITIONS = {
    "job": ('status.conditions.#(type=="Complete")#|#(status=="True")#',
            'status.conditions.#(type=="Failed")#|#(status=="True")#'),
    "kubeflow": ('status.conditions.#(type=="Succeeded")#|#(status=="True")#',
                 'status.conditions.#(type=="Failed")#|#(status=="True")#'),
    "argo": ('status.[@this].#(phase=="Succeeded")#', 'status.[@this].#(phase=="Failed")#'),
    "tekton": ('status.conditions.#(type=="Succeeded")#|#(status=="True")#',
               'status.conditions.#(type=="Succeeded")#|#(status=="False")#'),
}
"""The conditions of Katib's defaults and of its examples (argo-workflow.yaml, pipeline-run.yaml)."""


def _conditions(*pairs: tuple[str, str]) -> dict:
    return {"status": {"conditions": [{"type": t, "status": s, "reason": f"{t}Reason", "message": f"{t} {s}"}
                                      for t, s in pairs]}}


@pytest.mark.parametrize(("case", "document", "expected"), [
    ("job", _conditions(("Complete", "True")), "success"),
    ("job", _conditions(("Failed", "True")), "failure"),
    ("job", _conditions(("Complete", "False")), None),
    ("job", {"status": {}}, None),
    ("job", {}, None),
    ("kubeflow", _conditions(("Created", "True"), ("Running", "True")), None),
    ("kubeflow", _conditions(("Created", "True"), ("Running", "False"), ("Succeeded", "True")), "success"),
    ("kubeflow", _conditions(("Created", "True"), ("Failed", "True")), "failure"),
    ("argo", {"status": {"phase": "Running"}}, None),
    ("argo", {"status": {"phase": "Succeeded"}}, "success"),
    ("argo", {"status": {"phase": "Failed", "message": "child failed"}}, "failure"),
    ("argo", {"metadata": {"name": "w"}}, None),
    ("tekton", _conditions(("Succeeded", "Unknown")), None),
    ("tekton", _conditions(("Succeeded", "True")), "success"),
    ("tekton", _conditions(("Succeeded", "False")), "failure"),
])
def test_katib_conditions_hold_as_katib_reads_them(case: str, document: dict, expected: str | None):
    success, failure = KATIB_CONDITIONS[case]
    found = "failure" if gjson.holds(document, failure) is not None else (
        "success" if gjson.holds(document, success) is not None else None)
    assert found == expected


def test_a_holding_condition_is_the_first_match_with_its_reason_and_message():
    document = _conditions(("Created", "True"), ("Failed", "True"))
    assert gjson.holds(document, KATIB_CONDITIONS["kubeflow"][1]) == {
        "type": "Failed", "status": "True", "reason": "FailedReason", "message": "Failed True"}
    assert gjson.holds({"status": {"phase": "Failed"}}, KATIB_CONDITIONS["argo"][1]) == {"phase": "Failed"}


def test_the_gjson_subset_paths_queries_pipes_and_counts():
    document = {"status": {"conditions": [{"type": "A", "n": 1}, {"type": "B", "n": 3}], "a.b": "dotted"}}
    assert gjson.get(document, "status.conditions.#") == 2
    assert gjson.get(document, "status.conditions.1.type") == "B"
    assert gjson.get(document, "status.conditions.#.type") == ["A", "B"]
    assert gjson.get(document, 'status.conditions.#(type=="B").n') == 3
    assert gjson.get(document, "status.conditions.#(n>1)#.type") == ["B"]
    assert gjson.get(document, 'status.conditions.#(type%"*")#|#') == 2
    assert gjson.get(document, 'status.conditions.#(type!="A")#|0.n') == 3
    assert gjson.get(document, "status.a\\.b") == "dotted"
    assert gjson.get(document, 'status.conditions.#(type=="C")') is gjson.MISSING
    assert gjson.get(document, 'status.conditions.#(n=="1")#') == [], "a string never equals a number"


@pytest.mark.parametrize(("path", "why"), [
    ("status.succeeded>0", "a comparison belongs in a query"),
    ("status.*.phase", "wildcard keys"),
    ("status.@reverse", "the modifier '@reverse'"),
    ('status.conditions.#(type=="Complete"', "unbalanced"),
    ('status.conditions.#(type==Complete)#', "expected a JSON value"),
    ("status..phase", "an empty component"),
    ("status.conditions.#(type==" + "[" * 3000 + "]" * 3000 + ")", "nested deeper than 32"),
    ("[" * 1000 + "a" + "]" * 1000, "nested deeper than 32"),
])
def test_a_path_outside_the_subset_is_refused_saying_what_it_met(path: str, why: str):
    assert why in (gjson.check(path) or "")


def test_each_kind_has_katibs_defaults():
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"}
    assert trial_kinds.conditions(pytorch, None, None) == KATIB_CONDITIONS["kubeflow"]
    assert trial_kinds.primary_pod_labels(pytorch, None) == {"training.kubeflow.org/job-role": "master"}
    assert trial_kinds.primary_pod_labels(pytorch, {"a": "b"}) == {"a": "b"}
    train = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob"}
    assert trial_kinds.conditions(train, None, None) == KATIB_CONDITIONS["job"]
    assert trial_kinds.primary_pod_labels(train, None) == {"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                                           "batch.kubernetes.io/job-completion-index": "0"}
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}
    assert trial_kinds.conditions(workflow, None, None) == KATIB_CONDITIONS["argo"]
    assert trial_kinds.conditions({"apiVersion": "x.io/v1", "kind": "Thing"}, None, "f") == (None, "f")
    assert trial_kinds.resource({"apiVersion": "x.io/v1", "kind": "Thing"}) == ("x.io", "v1", "things")


def _study(spec: dict, **template) -> dict:
    definition = study_definition("kinds")
    definition["trialTemplate"] = {"trialSpec": spec, **template}
    return definition


def _problems(definition: dict) -> dict[str, str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return {p.path: p.message for p in caught.value.problems}


def test_a_kind_without_defaults_needs_both_conditions():
    thing = {"apiVersion": "example.com/v1", "kind": "Thing", "spec": {"x": "${trialParameters.x}"}}
    assert "needs successCondition and failureCondition" in _problems(_study(thing))["trialTemplate"]
    parsed = parse_study(_study(thing, successCondition="status.done", failureCondition="status.broken"))
    assert parsed.trial_template.success_condition == "status.done"
    found = _problems(_study(thing, successCondition="status.done>0", failureCondition="status.broken"))
    assert "a comparison belongs in a query" in found["trialTemplate.successCondition"]


def test_the_primary_container_is_found_in_the_primary_pods_of_each_kind():
    argv = ["python", "train.py", "--x", "${trialParameters.x}"]
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "pytorch", "command": ["worker"]}]}}},
        "Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "command": argv}]}}}}}}
    assert trial_spec.local_process(pytorch, "pytorch", {"x": 1.5}, "t-0")[0] == ["python", "train.py", "--x", "1.5"]
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [
        {"name": "prep", "script": {"command": ["python"], "source": "print(1)"}},
        {"name": "train", "metadata": {"labels": {"model-training": "true"}}, "container": {"command": argv}}]}}
    assert trial_spec.local_process(workflow, "main", {"x": 2}, "t-0", {"model-training": "true"})[0][-1] == "2"
    tekton = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
        {"name": "train", "taskSpec": {"steps": [{"name": "fit", "command": argv}]}}]}}}
    assert trial_spec.primary_container_name(tekton, "step-fit", {"tekton.dev/pipelineTask": "train"}) == "step-fit"
    found = _problems(_study(pytorch, primaryContainerName="tensorflow"))
    assert found["trialTemplate.primaryContainerName"] == "names no container; expected one of pytorch"


def test_a_training_job_none_of_whose_pods_its_operator_labels_master_needs_primary_pod_labels():
    """The Training Operator labels ``job-role: master`` (Katib's default ``primaryPodLabels``)
    on a PaddleJob's Master only: of one of Workers alone, no pod's output would be read. A
    PyTorchJob's or a JAXJob's worker 0 is their master without a Master."""
    def job(kind: str, specs: str, *roles: str) -> dict:
        return {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {specs: {role: {"template": {"spec": {
            "containers": [{"name": kind[:-3].lower(), "command": ["python", "-c", "${trialParameters.x}"]}]}}}
            for role in roles}}}

    workers = job("PaddleJob", "paddleReplicaSpecs", "Worker")
    found = _problems(_study(workers))
    assert found["trialTemplate.primaryPodLabels"].startswith(
        "expected labels selecting the pods whose output is the trial's: the PaddleJob has no Master role, and its "
        "operator labels none of its pods training.kubeflow.org/job-role: master (the default)"), found
    assert [labels for _, labels, _ in workload_pods.pod_specs(workers)] == [{"training.kubeflow.org/replica-type": "worker"}]
    given = {"training.kubeflow.org/replica-type": "worker", "training.kubeflow.org/replica-index": "0"}
    for accepted in (_study(workers, primaryPodLabels=given), _study(job("PaddleJob", "paddleReplicaSpecs", "Master",
                                                                         "Worker")),
                     _study(job("PyTorchJob", "pytorchReplicaSpecs", "Worker")), _study(job("JAXJob", "jaxReplicaSpecs",
                                                                                            "Worker"))):
        parse_study(accepted)


ARGV = ["python", "train.py", "--x", "${trialParameters.x}"]


def _replicas(kind: str, specs: str, role: str, container: dict) -> dict:
    return {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {specs: {
        role: {"template": {"spec": {"containers": [{"name": "main", **container}]}}}}}}


def _tekton(step: dict, version: str = "tekton.dev/v1") -> dict:
    return {"apiVersion": version, "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
        {"name": "train", "taskSpec": {"steps": [{"name": "fit", "command": ARGV, **step}]}}]}}}


def _workflow(template: dict) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [
        {"name": "prep", "container": {"command": ["true"]}},
        {"name": "train", "container": {"command": ARGV}, **template}]}}


def _trainer(trainer: dict) -> dict:
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"}, "trainer": {"command": ARGV, **trainer}}}


JOBSET = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
    {"name": "node", "template": {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "command": ["python"], "args": "train.py --x=${trialParameters.x}"}]}}}}}]}}


@pytest.mark.parametrize(("spec", "path", "message"), [
    (_replicas("PyTorchJob", "pytorchReplicaSpecs", "Master", {"command": "python train.py --x=${trialParameters.x}"}),
     "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].command", "expected a list of strings, got a string"),
    (_replicas("XGBoostJob", "xgbReplicaSpecs", "Master", {"command": 3, "args": ARGV}),
     "spec.xgbReplicaSpecs.Master.template.spec.containers[0].command", "expected a list of strings, got an integer"),
    (_replicas("TFJob", "tfReplicaSpecs", "Chief", {"command": ARGV, "env": [{"name": 5, "value": "x"}]}),
     "spec.tfReplicaSpecs.Chief.template.spec.containers[0].env[0].name", "expected a string, got an integer"),
    (_tekton({"command": "python train.py --x=${trialParameters.x}"}),
     "spec.pipelineSpec.tasks[0].taskSpec.steps[0].command", "expected a list of strings, got a string"),
    (_tekton({"script": 3, "args": ["${trialParameters.x}"]}),
     "spec.pipelineSpec.tasks[0].taskSpec.steps[0].script", "expected a string, got an integer"),
    (_tekton({"computeResources": ["cpu"]}),
     "spec.pipelineSpec.tasks[0].taskSpec.steps[0].computeResources", "expected a mapping, got a list"),
    (_workflow({"metadata": {"labels": -1}}), "spec.templates[1].metadata.labels", "expected a mapping, got an integer"),
    (_workflow({"metadata": "train"}), "spec.templates[1].metadata", "expected a mapping, got a string"),
    (_trainer({"env": [{"name": "A", "value": 1.5}]}), "spec.trainer.env[0].value", "expected a string, got a number"),
    (_trainer({"resourcesPerNode": "4"}), "spec.trainer.resourcesPerNode", "expected a mapping, got a string"),
    (JOBSET, "spec.replicatedJobs[0].template.spec.template.spec.containers[0].args",
     "expected a list of strings, got a string"),
])
def test_a_container_field_katuna_reads_is_refused_by_its_path_in_every_kind(spec: dict, path: str, message: str):
    """Whatever the kind, a container's command, args, env and resources and a template's
    metadata are read by katuna (a local trial's process, the labels and resources it adds on a
    cluster), so a value of the wrong type there is refused at submission, naming it; it was
    taken, then every trial failed with a Python error, or ``katuna render`` with a traceback."""
    assert _problems(_study(spec))[f"trialTemplate.trialSpec.{path}"] == message


def _rendered(workload: dict, primary: str, retain: bool = False) -> dict:
    cluster = Cluster(ttl_seconds_after_finished=600, default_resources=(("cpu", "1"), ("memory", "2Gi")),
                      tolerations=({"key": "spot", "operator": "Exists", "effect": "NoSchedule"},))
    launch = TrialLaunch(study="kinds", uid="u", number=0, attempt=1, job_name="kinds-0", argv=[], env={},
                         working_dir=".", timeout=None, cluster=cluster, params={}, trial_spec=workload,
                         primary_container=primary,
                         retain=retain)
    return render_job(launch)


POD_UID = {"name": "KATUNA_POD_UID", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}}}
"""How a reporting trial's container is told its pod's uid: the downward API, never a value."""


@pytest.mark.parametrize(("workload", "primary", "labels"), [
    ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [
        {"name": "main", "command": ARGV}]}}}}, "main", None),
    (_replicas("PyTorchJob", "pytorchReplicaSpecs", "Master", {"command": ARGV}), "main", None),
    (_tekton({}), "step-fit", {"tekton.dev/pipelineTask": "train"}),
    (_workflow({"metadata": {"labels": {"model-training": "true"}}}), "main", {"model-training": "true"}),
    (_trainer({}), "node", None),
    (JOBSET, "main", None),
], ids=["Job", "PyTorchJob", "PipelineRun", "Workflow", "TrainJob", "JobSet"])
def test_a_reporting_trials_container_is_told_its_pods_uid_in_every_kind(workload: dict, primary: str,
                                                                        labels: dict | None):
    """With its report token, the primary container reads its pod's uid from the downward API
    (each report names it, so a pod that replaced a disrupted one reports as itself), in place of
    a variable of that name the template sets; without the token it is not told."""
    container = trial_spec.primary_container(workload, primary, labels)
    container["env"] = [*(container.get("env") or []), {"name": "KATUNA_POD_UID", "value": "mine"}]
    for env, told in (({"KATUNA_REPORT_TOKEN": "t", "KATUNA_STUDY": "kinds"}, [POD_UID]),
                      ({"KATUNA_STUDY": "kinds"}, [{"name": "KATUNA_POD_UID", "value": "mine"}])):
        launch = TrialLaunch(study="kinds", uid="u", number=0, attempt=1, job_name="kinds-0", argv=[], env=env,
                             working_dir=".", timeout=None, params={"x": 1.0}, trial_spec=workload,
                             primary_container=primary, primary_pod_labels=labels)
        rendered = trial_spec.primary_container(render_job(launch), primary, labels)
        assert [e for e in rendered["env"] if e["name"] == "KATUNA_POD_UID"] == told, rendered["env"]


def test_every_replica_is_scheduled_and_sized_and_a_finished_workload_kept_as_a_job_is():
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [{"name": "pytorch", "command": ["train"]}]}}},
        "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "pytorch", "command": ["w"]},
                                                                         {"name": "sidecar", "command": ["s"]}]}}}}}}
    rendered = _rendered(pytorch, "pytorch")
    for role in ("Master", "Worker"):
        pod = rendered["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]
        assert pod["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}, role
    assert "resources" not in rendered["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][1]
    assert rendered["spec"]["runPolicy"] == {"ttlSecondsAfterFinished": 600, "backoffLimit": 6}
    assert _rendered(pytorch, "pytorch", retain=True)["spec"]["runPolicy"] == {"cleanPodPolicy": "Running",
                                                                               "backoffLimit": 6}, \
        "kept with no TTL, its idle workers deleted at its end"
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "ttlStrategy": {"secondsAfterSuccess": 60}, "templates": [{"name": "t", "container": {"command": ["x"]}}]}}
    assert _rendered(workflow, "main")["spec"]["ttlStrategy"] == {"secondsAfterSuccess": 60, "secondsAfterCompletion": 600}
    tekton = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
        {"name": "train", "taskSpec": {"steps": [{"name": "fit", "command": ["x"]}]}}]}}}
    assert set(_rendered(tekton, "step-fit")["spec"]) == {"pipelineSpec", "taskRunTemplate"}, \
        "a PipelineRun has no TTL of its own"


def test_a_retained_training_job_keeps_the_pods_its_template_says_to_keep():
    """``retain`` asks the Training Operator to delete the pods still running at a job's end only
    where the template says nothing: its own ``cleanPodPolicy`` (an MPIJob's older
    ``spec.cleanPodPolicy`` too) is left as written, and a kind without the field gets none."""
    def job(kind: str, specs: str, **spec) -> dict:
        return {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {**spec, specs: {
            "Worker": {"template": {"spec": {"containers": [{"name": "main", "command": ["w"]}]}}}}}}
    kept = job("PyTorchJob", "pytorchReplicaSpecs", runPolicy={"cleanPodPolicy": "None", "backoffLimit": 1})
    assert _rendered(kept, "main", retain=True)["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 1}
    legacy = job("MPIJob", "mpiReplicaSpecs", cleanPodPolicy="None")
    assert "runPolicy" not in _rendered(legacy, "main", retain=True)["spec"]
    assert _rendered(job("XGBoostJob", "xgbReplicaSpecs"), "main", retain=True)["spec"]["runPolicy"] == \
        {"cleanPodPolicy": "Running"}
    jobset = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}}}]}}
    assert "runPolicy" not in _rendered(jobset, "main", retain=True)["spec"]


@pytest.mark.parametrize(("kind", "specs", "policy", "own", "limit"), [
    ("PyTorchJob", "pytorchReplicaSpecs", None, None, 6), ("PaddleJob", "paddleReplicaSpecs", None, None, 6),
    ("TFJob", "tfReplicaSpecs", "OnFailure", None, 6), ("XGBoostJob", "xgbReplicaSpecs", "Always", None, 6),
    ("JAXJob", "jaxReplicaSpecs", "ExitCode", None, 6), ("PyTorchJob", "pytorchReplicaSpecs", None, 0, 0),
    ("PyTorchJob", "pytorchReplicaSpecs", "OnFailure", 2, 2), ("PyTorchJob", "pytorchReplicaSpecs", "Never", None, None),
    ("TFJob", "tfReplicaSpecs", None, None, None), ("MPIJob", "mpiReplicaSpecs", None, None, None)])
def test_a_training_job_whose_replicas_restart_is_bounded_by_a_backoff_limit_unless_it_sets_its_own(
        kind: str, specs: str, policy: str | None, own: int | None, limit: int | None):
    """A replica that names no ``restartPolicy`` runs under its kind's default (a PyTorchJob's
    and a PaddleJob's ``OnFailure``), and the operator sets no ``backoffLimit``: a master that
    keeps failing would restart in place for ever. katuna gives 6 where a replica restarts, keeps
    the template's own (0 too), and adds none where every replica's policy is ``Never``."""
    replica: dict = {"template": {"spec": {"containers": [{"name": "main", "command": ["w"]}]}}}
    if policy is not None:
        replica["restartPolicy"] = policy
    spec: dict = {specs: {"Worker": replica}}
    if own is not None:
        spec["runPolicy"] = {"backoffLimit": own}
    rendered = _rendered({"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": spec}, "main")["spec"]
    assert rendered.get("runPolicy", {}).get("backoffLimit") == limit
    assert rendered[specs]["Worker"].get("restartPolicy") == policy, "the replica's policy is left as written"


def test_kinds_without_pod_templates_are_placed_where_their_controllers_read_it():
    """A TrainJob's trainer nodes through its ``podSpecOverrides`` (an entry of the template's for
    them taken), a PipelineRun's TaskRun pods through its pod template, wherever its version keeps it."""
    spot = [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    train = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"}, "trainer": {"command": ["train"]}}}
    assert _rendered(train, "node")["spec"]["podSpecOverrides"] == [{"targetJobs": [{"name": "node"}],
                                                                      "tolerations": spot}]
    own = {"targetJobs": [{"name": "node"}], "nodeSelector": {"disk": "ssd"}}
    train["spec"]["podSpecOverrides"] = [{"targetJobs": [{"name": "dataset-initializer"}]}, own]
    assert _rendered(train, "node")["spec"]["podSpecOverrides"] == [
        {"targetJobs": [{"name": "dataset-initializer"}]}, {**own, "tolerations": spot}]
    steps = {"pipelineSpec": {"tasks": [{"name": "train", "taskSpec": {"steps": [{"name": "fit"}]}}]}}
    v1 = _rendered({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": steps}, "step-fit")["spec"]
    assert v1["taskRunTemplate"] == {"podTemplate": {"tolerations": spot}}
    beta = _rendered({"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun", "spec": steps}, "step-fit")["spec"]
    assert beta["podTemplate"] == {"tolerations": spot} and "taskRunTemplate" not in beta


def test_each_kind_is_sized_in_the_field_it_reads_resources_from():
    """A TrainJob's trainer asks resources per node (``resourcesPerNode``; it has no
    ``resources``), a Tekton v1 step in ``computeResources`` (v1beta1's ``resources``); a
    template's own sizing there is left as it is."""
    defaults = {"cpu": "1", "memory": "2Gi"}
    train = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2, "command": ["train"]}}}
    trainer = _rendered(train, "node")["spec"]["trainer"]
    assert (trainer["resourcesPerNode"]["requests"], "resources" in trainer) == (defaults, False)
    train["spec"]["trainer"]["resourcesPerNode"] = {"requests": {"cpu": "4"}}
    trainer = _rendered(train, "node")["spec"]["trainer"]
    assert (trainer["resourcesPerNode"], "resources" in trainer) == ({"requests": {"cpu": "4"}}, False), \
        "its own sizing kept, alone"
    for version, key in (("tekton.dev/v1", "computeResources"), ("tekton.dev/v1beta1", "resources")):
        tekton = {"apiVersion": version, "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
            {"name": "train", "taskSpec": {"steps": [{"name": "fit", "command": ["x"]}]}}]}}}
        step = _rendered(tekton, "step-fit")["spec"]["pipelineSpec"]["tasks"][0]["taskSpec"]["steps"][0]
        assert set(step) - {"name", "command", "env"} == {key} and step[key]["requests"] == defaults, version


def test_every_pod_template_katuna_writes_keeps_its_pods_from_the_cluster_autoscalers_evictions():
    """The autoscaler drains an under-used node by evicting its pods when they fit elsewhere (a
    Job's, an operator's): a running trial would start again from its beginning. A template's own
    value of the annotation wins."""
    keep = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    own = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true", "team": "vision"}
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [{"name": "pytorch", "command": ["train"]}]}}},
        "Worker": {"template": {"metadata": {"annotations": own},
                                "spec": {"containers": [{"name": "pytorch", "command": ["w"]}]}}}}}}
    replicas = _rendered(pytorch, "pytorch")["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["template"]["metadata"]["annotations"] == keep
    assert replicas["Worker"]["template"]["metadata"]["annotations"] == own
    jobset = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": {"containers": [
            {"name": "trainer", "command": ["train"]}]}}}}}]}}
    job = _rendered(jobset, "trainer")["spec"]["replicatedJobs"][0]["template"]
    assert job["spec"]["template"]["metadata"]["annotations"] == keep
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "templates": [{"name": "t", "container": {"command": ["x"]}}]}}
    assert _rendered(workflow, "main")["spec"]["podMetadata"]["annotations"] == keep
    tekton = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"annotations": {"team": "nlp"}},
              "spec": {"pipelineSpec": {"tasks": [{"name": "train", "taskSpec": {"steps": [
                  {"name": "fit", "command": ["x"]}]}}]}}}
    assert _rendered(tekton, "step-fit")["metadata"]["annotations"] == {**keep, "team": "nlp"}, \
        "a PipelineRun passes its annotations on to its TaskRuns' pods"
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"metadata": {"annotations": own}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "train", "command": ["x"]}]}}}}
    assert _rendered(job, "train")["spec"]["template"]["metadata"]["annotations"] == own


def test_the_file_collector_wraps_each_replica_and_names_a_kind_it_cannot_wrap():
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [{"name": "pytorch", "command": ["train"]}]}}}}}}
    wrapped = file_collector.wrap(_rendered(pytorch, "pytorch"), "pytorch", "/m/metrics.log")
    pod = wrapped["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["containers"][0]["command"][:2] == ["sh", "-c"] and pod["volumes"][0]["emptyDir"] == {}
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "templates": [{"name": "t", "container": {"command": ["x"]}}]}}
    with pytest.raises(file_collector.NoCommand, match="Workflow has no pod template container 'main'"):
        file_collector.wrap(_rendered(workflow, "main"), "main", "/m/metrics.log")


OPERATOR_OF = {"TFJob": "training-operator", "PyTorchJob": "training-operator", "MPIJob": "training-operator",
               "XGBoostJob": "training-operator", "PaddleJob": "training-operator", "JAXJob": "training-operator",
               "TrainJob": "trainer", "JobSet": "jobset", "Workflow": "argo", "PipelineRun": "tekton"}


def _patches(operator: str) -> list[tuple[dict, list[dict]]]:
    component = yaml.load((KNATIVE / "trial-kinds" / operator / "kustomization.yaml").read_text(),
                          Loader=yaml.CSafeLoader)
    return [(p["target"], yaml.load(p["patch"], Loader=yaml.CSafeLoader)) for p in component["patches"]]


@pytest.mark.parametrize("kind", [k for k in trial_kinds.KINDS if k != "Job"])
def test_every_kind_katuna_creates_has_its_rbac_and_source_entry_in_its_operators_component(kind: str):
    """katuna creates, reads, lists and deletes the kind wherever ``katuna-trials`` is bound; the
    source's account watches it; the ApiServerSource reports it (only where the component is
    enabled: the kind must be served)."""
    known = trial_kinds.KINDS[kind]
    granted: dict[str, set[str]] = {}
    sources = []
    for target, operations in _patches(OPERATOR_OF[kind]):
        for operation in operations:
            value = operation["value"]
            if target["kind"] == "ClusterRole" and known.group in value["apiGroups"] and known.plural in value["resources"]:
                granted[target["name"]] = set(value["verbs"])
            if target["kind"] == "ApiServerSource":
                sources.append((target["name"], value["apiVersion"], value["kind"]))
    assert {"create", "get", "list", "delete"} <= granted["katuna-trials"]
    assert {"get", "list", "watch"} <= granted["katuna-jobs-source"]
    assert ("katuna-jobs", known.api_versions[0], kind) in sources
    base = yaml.load((KNATIVE / "kustomization.yaml").read_text(), Loader=yaml.CSafeLoader)
    assert f"trial-kinds/{OPERATOR_OF[kind]}" not in (base.get("components") or []), \
        "off by default: a source for a kind the cluster does not serve cannot start"


@pytest.mark.parametrize("operator", sorted(set(OPERATOR_OF.values())))
def test_each_component_patches_the_manifests_into_valid_objects(operator: str):
    """The component's JSON patches apply to the Role and ApiServerSource they name, and the
    patched source still fits Knative's schema."""
    import jsonpatch
    import jsonschema
    from test_knative import crd_schema, strict

    objects = [doc for name in ("rbac.yaml", "apiserversource.yaml")
               for doc in yaml.load_all((KNATIVE / name).read_text(), Loader=yaml.CSafeLoader) if doc]
    for target, operations in _patches(operator):
        [obj] = [o for o in objects if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
        obj.update(jsonpatch.apply_patch(obj, operations))
    [source] = [o for o in objects if o["kind"] == "ApiServerSource" and o["metadata"]["name"] == "katuna-jobs"]
    jsonschema.validate(source, strict(crd_schema(source["apiVersion"], source["kind"])))
    assert source["spec"]["resources"][0]["kind"] == "Job", "the Job entry stays first"


def _routed(triggers: list[dict], attributes: dict[str, str]) -> set[str]:
    from knative_emulator.filters import delivered, trigger_filter

    return {t["spec"]["subscriber"]["uri"] for t in triggers if delivered(trigger_filter(t["spec"]), attributes)}


@pytest.mark.parametrize("operator", sorted(set(OPERATOR_OF.values())))
def test_each_component_routes_the_changes_its_source_reports_to_jobwatch(operator: str):
    """Each kind the component adds to the ``katuna-jobs`` source reaches the jobwatch function
    through a Trigger of the component (a status update tells of a trial's end, a delete of its
    workload's disappearance), with the attributes an ApiServerSource in Resource mode sets;
    without the component, nothing routes them."""
    import jsonschema
    from test_deploy_kustomize import render
    from test_knative import crd_schema, strict

    base = [o for o in render(KNATIVE) if o["kind"] == "Trigger"]
    objects = render(KNATIVE, components=(f"trial-kinds/{operator}",))
    triggers = [o for o in objects if o["kind"] == "Trigger"]
    for trigger in triggers:
        jsonschema.validate(trigger, strict(crd_schema(trigger["apiVersion"], trigger["kind"])))
    [source] = [o for o in objects if o["kind"] == "ApiServerSource" and o["metadata"]["name"] == "katuna-jobs"]
    added = [(r["apiVersion"], r["kind"]) for r in source["spec"]["resources"] if r["kind"] != "Job"]
    assert added
    for api_version, kind in added:
        for change in ("update", "delete"):
            attributes = {"type": f"dev.knative.apiserver.resource.{change}", "source": "https://10.96.0.1:443",
                          "apiversion": api_version, "kind": kind, "name": "s-0", "namespace": "katuna"}
            assert _routed(triggers, attributes) == {"/functions/jobwatch"}, (kind, change)
            assert _routed(base, attributes) == set(), "the base has no Trigger for the kind"
    job = {"type": "dev.knative.apiserver.resource.update", "apiversion": "batch/v1", "kind": "Job"}
    assert _routed(triggers, job) == {"/functions/jobwatch"}, "a Job still reaches jobwatch once"


def test_a_workflow_may_run_as_the_argo_components_account_in_katunas_namespace_which_sends_no_events():
    """The shipped deployment (``knative/config.yaml``, trials in ``katuna``) takes a study whose
    Workflow names the account the argo component makes for it, as the component says to: that
    account is none katuna or the broker's EventPolicy takes events from, so a trial's pod holding
    its token could not send events as katuna's own senders do."""
    from functions.core import senders
    from functions.core.trial_identity import study_problems
    from functions.settings import Settings

    [account] = [doc["metadata"]["name"] for doc in yaml.safe_load_all(
        (KNATIVE / "trial-kinds" / "argo" / "executor.yaml").read_text()) if doc["kind"] == "ServiceAccount"]
    config = yaml.load((KNATIVE / "config.yaml").read_text(), Loader=yaml.CSafeLoader)["data"]
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "serviceAccountName": account, "entrypoint": "fit", "templates": [{"name": "fit", "container": {
            "image": "python:3.12", "command": ["python", "fit.py", "--x", "${trialParameters.x}"]}}]}}
    spec = parse_study(study_definition(name="argo-account", trialTemplate={
        "trialSpec": workflow, "primaryContainerName": "main", "successCondition": "status.done",
        "failureCondition": "status.broken"}))
    assert study_problems(spec, Settings.from_env(config).cluster_defaults()) == []
    policies = yaml.load_all((KNATIVE / "oidc" / "eventpolicy.yaml").read_text(), Loader=yaml.CSafeLoader)
    subs = tuple(entry["sub"] for policy in policies for entry in policy["spec"]["from"] if "sub" in entry)
    subject = senders.account_subject(config["KATUNA_K8S_NAMESPACE"], account)
    assert not senders.allowed(subject, subs), "the broker would take its pods' events"


def test_the_argo_component_gives_workflows_an_account_their_executor_may_report_with():
    """Argo's executor creates and patches a WorkflowTaskResult as its pod's account
    (argo-workflows docs/workflow-rbac.md): the component's ``trial-argo-executor`` may, in
    katuna's namespace only (another namespace binds the ClusterRole itself); the namespace's
    ``default`` account, which a Workflow naming none runs as, may not."""
    from kube_standin.rbac import Authorizer, Request
    from test_deploy_kustomize import render

    objects = render(KNATIVE, components=("trial-kinds/argo",))
    authorizer = Authorizer([o for o in objects if o["kind"] in ("Role", "ClusterRole", "RoleBinding",
                                                                  "ClusterRoleBinding")])
    assert ("ServiceAccount", "trial-argo-executor", "katuna") in {
        (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}

    def allowed(account: str, namespace: str) -> list[str]:
        user = f"system:serviceaccount:{namespace}:{account}"
        return [verb for verb in ("create", "patch", "get", "delete") if authorizer.allows(
            Request(user, verb, "argoproj.io", "workflowtaskresults", namespace=namespace))]

    assert allowed("trial-argo-executor", "katuna") == ["create", "patch"]
    assert allowed("trial-argo-executor", "team") == []
    assert allowed("default", "katuna") == []
