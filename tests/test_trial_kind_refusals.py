"""A ``trialSpec`` is created with katuna's own permissions, so katuna runs only the workload kinds
it knows and those the operator adds (``KATUNA_TRIAL_KINDS``, as Katib's ``trialResources``): an
Event, a Secret or one of Katib's Trials written as a trial is refused at submission, naming its
``kind``, and again at launch, where the study was stored before."""

from __future__ import annotations

import json

import pytest
from conftest import TRIAL, study_definition
from http_helpers import Service
from kube_standin import katib_api
from kube_stub import KubeStub

from functions.core import trial_kinds
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.settings import Settings

KUBE_NAMESPACES = ("team",)
COMMAND = ["python", str(TRIAL), "--x", "${trialParameters.x}"]
EVENT = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "${trialParameters.x}", "reason": "Tuned",
         "action": "Tune", "type": "Normal", "reportingController": "katuna.dev/katuna",
         "reportingInstance": "katuna", "eventTime": "2026-12-07T10:00:00.000000Z",
         "regarding": {"kind": "Pod", "name": "anything", "namespace": "team"}}
"""An Event as a trial: katuna may create Events (it records its own), so a study could have it
write any it likes, with no pod to run."""
CONDITIONS = {"successCondition": "metadata.name", "failureCondition": "metadata.uid"}


@pytest.fixture(scope="module")
def cluster(kube: KubeStub) -> KubeStub:
    katib_api.install(kube)
    return kube


@pytest.fixture(scope="module")
def service(cluster: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("kinds"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=cluster.url, KATUNA_K8S_NAMESPACE="team", KATUNA_KATIB_API="true")
    yield running
    running.close()


def _post(service: Service, definition: dict) -> tuple[int, dict]:
    return service.json("POST", "/studies", body=json.dumps(definition), headers={"Content-Type": "application/json"})


def _experiment(name: str, trial_spec: dict) -> dict:
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name, "namespace": "team"},
            "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                     "algorithm": {"algorithmName": "random"}, "maxTrialCount": 1, "parallelTrialCount": 1,
                     "parameters": [{"name": "x", "parameterType": "double",
                                     "feasibleSpace": {"min": "-1", "max": "1"}}],
                     "trialTemplate": {"primaryContainerName": "main", **CONDITIONS,
                                       "trialParameters": [{"name": "x", "reference": "x"}],
                                       "trialSpec": trial_spec}}}


@pytest.mark.slow
def test_a_trial_spec_of_a_kind_that_is_no_workload_is_refused_naming_its_kind(service: Service, cluster: KubeStub):
    native = study_definition(name="as-event", maxTrials=1, parallelism=1)
    native["trialTemplate"] = {"trialSpec": EVENT, **CONDITIONS}
    status, body = _post(service, native)
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == ["trialTemplate.trialSpec.kind"], body
    message = body["problems"][0]["message"]
    assert "got events.k8s.io/v1 Event" in message and "KATUNA_TRIAL_KINDS" in message
    assert "batch/v1 Job" in message and "tekton.dev/v1 PipelineRun" in message
    trial = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "spec": {"primaryContainerName": "main",
                                                                             "runSpec": {"x": "${trialParameters.x}"}}}
    status, body = _post(service, _experiment("as-trial", trial))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == ["spec.trialTemplate.trialSpec.kind"], body
    assert "got kubeflow.org/v1beta1 Trial" in body["problems"][0]["message"]
    for name in ("as-event", "as-trial"):
        assert service.json("GET", f"/studies/{name}")[0] == 404, "nothing is stored"
    assert not [key for key in cluster.workloads if key[2].startswith(("as-event", "as-trial"))]


def _launch(trial_spec: dict) -> TrialLaunch:
    return TrialLaunch("stored", "u1", 0, 1, "stored-0", [], {}, ".", None, trial_spec=trial_spec,
                       primary_container="main", params={"x": 1.0})


def test_a_stored_study_of_a_kind_katuna_does_not_run_fails_at_launch():
    """A study stored before this check, or while the operator's ``KATUNA_TRIAL_KINDS`` named its
    kind, is refused at its launch: the study fails, its workload never made."""
    secret = {"apiVersion": "v1", "kind": "Secret", "stringData": {"x": "${trialParameters.x}"}}
    with pytest.raises(InvalidStudy) as refused:
        render_job(_launch(secret), Cluster())
    assert [p.path for p in refused.value.problems] == ["trialTemplate.trialSpec.kind"]
    assert "got v1 Secret" in refused.value.problems[0].message
    ray = {"apiVersion": "ray.io/v1", "kind": "RayJob", "spec": {"entrypoint": "python train.py ${trialParameters.x}"}}
    with pytest.raises(InvalidStudy, match="got ray.io/v1 RayJob"):
        render_job(_launch(ray), Cluster())
    rendered = render_job(_launch(ray), Cluster(trial_kinds=(("ray.io/v1", "RayJob"),)))
    assert (rendered["kind"], rendered["spec"]["entrypoint"]) == ("RayJob", "python train.py 1.0")


def test_the_operator_adds_workload_kinds_as_katibs_trial_resources():
    settings = Settings.from_env({"KATUNA_TRIAL_KINDS": "RayJob.v1.ray.io, Job.v1.batch,TFJob.v1.kubeflow.org"})
    assert settings.trial_kinds == (("ray.io/v1", "RayJob"), ("batch/v1", "Job"), ("kubeflow.org/v1", "TFJob"))
    assert settings.cluster_defaults().trial_kinds == settings.trial_kinds
    assert Settings.from_env({}).trial_kinds == ()
    for bad, why in (("RayJob", "expected Kind.version.group"), ("rayjob.v1.ray.io", "expected Kind.version.group"),
                     ("Event.v1.events.k8s.io", "is no workload kind"), ("Secret.v1.", "expected Kind.version.group"),
                     ("Pod.v1.core", "is no workload kind"), ("Trial.v1beta1.kubeflow.org", "is no workload kind"),
                     ("Study.v1.katuna.dev", "is no workload kind"),
                     ("Role.v1.rbac.authorization.k8s.io", "is no workload kind")):
        with pytest.raises(ValueError, match=f"KATUNA_TRIAL_KINDS: .*{why}"):
            Settings.from_env({"KATUNA_TRIAL_KINDS": f"RayJob.v1.ray.io,{bad}"})
    assert trial_kinds.added_kind("PipelineRun.v1beta1.tekton.dev") == ("tekton.dev/v1beta1", "PipelineRun")
