"""What a Katib Experiment's ``metadata`` gives its Trials and the pods of their workloads, as
Katib gives it: the Experiment's labels with ``katib.kubeflow.org/experiment`` on every Trial
(its controller's ``TrialLabels``) and, with ``katib.kubeflow.org/trial``, on every pod of the
trial's workload over the pod template's own (its pod webhook's ``mutatePodMetadata``), but not
on the workload itself; its annotations nowhere. katuna's own labels win on the pods, and one of
its prefix is refused at submission, naming the label."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, watching_dispatcher
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from test_katib import experiment
from waiting import eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import STUDY_LABEL
from functions.core.errors import InvalidStudy
from functions.core.events import resource_changed
from functions.core.formats import load_study
from functions.core.job import render_trial
from functions.core.katib_trials import EXPERIMENT_LABEL, TRIAL_NAME_LABEL
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study

TEAM = "labels-team"
USER = "labeller"
NAME = "labelled"
GIVEN = {"team": "vision", "cost-center": "cc-42", "app.kubernetes.io/managed-by": "Helm",
         EXPERIMENT_LABEL: "another", "sidecar.istio.io/inject": "false"}
JOB_CONTROLLERS = {"controller-uid", "job-name"}
"""Labels the Job controller gives its pods (besides its ``batch.kubernetes.io/`` ones)."""
ANNOTATIONS = {"owner": "someone@example.com", "description": "not carried"}


def labelled_experiment() -> dict:
    """An Experiment with labels (one of Katib's keys, one Helm sets) and annotations, whose
    trialSpec's pod template has labels of its own, one of a key the Experiment labels too."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=2)
    doc["metadata"] = {"name": NAME, "namespace": TEAM, "labels": dict(GIVEN), "annotations": dict(ANNOTATIONS)}
    pod_template = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    pod_template["metadata"] = {"labels": {"team": "template", "from-template": "kept"}}
    return doc


def expected_pod_labels(number: int) -> dict[str, str]:
    """The Experiment's labels over the template's, Katib's two naming the Experiment and the
    Trial, and katuna's ``managed-by`` over Helm's."""
    return {**GIVEN, "from-template": "kept", EXPERIMENT_LABEL: NAME, TRIAL_NAME_LABEL: f"{NAME}-{number}",
            "app.kubernetes.io/managed-by": "katuna"}


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


def test_an_experiment_resources_labels_reach_its_trials_and_their_pods_not_its_annotations(kube: KubeStub,
                                                                                           tmp_path: Path):
    """Applied on a cluster serving Katib's API: each Trial has the Experiment's labels with
    ``katib.kubeflow.org/experiment`` naming it (over the Experiment's own of that key), each
    trial pod has them over its template's, and the Job has katuna's and Katib's alone, as
    Katib's Job has its template's; the annotations go nowhere."""
    user = client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))
    created = user.create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments",
                                                   labelled_experiment())
    api = client.ApiClient(kube.configuration())
    store = SqliteStore(tmp_path / "katuna.db")
    dispatcher = watching_dispatcher(store, api, TEAM)
    try:
        pending = dispatcher.deliver_to("resource", resource_changed("add", created))
        while pending:
            pending += dispatcher.deliver(pending.pop(0))
    finally:
        store.close()
    trials = user.list_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials",
                                                label_selector="team=vision,cost-center=cc-42")["items"]
    assert {t["metadata"]["name"]: t["metadata"]["labels"] for t in trials} == {
        f"{NAME}-{n}": {**GIVEN, EXPERIMENT_LABEL: NAME} for n in range(2)}
    assert not any(t["metadata"].get("annotations") for t in trials)
    jobs = {name: job for (namespace, name), job in kube.jobs.items() if namespace == TEAM}
    assert len(jobs) == 2
    for job in jobs.values():
        assert not {"team", "cost-center", "from-template"} & set(job["metadata"]["labels"]), \
            "the Job has katuna's and Katib's labels alone"
        assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "katuna"
        assert not set(ANNOTATIONS) & set(job["metadata"].get("annotations") or {})
    pods = eventually(lambda: (found := [pod for (namespace, _), pod in list(kube.pods.items())
                                         if namespace == TEAM]) and len(found) == 2 and found,
                      "the Job controller makes each Job's pod")
    assert sorted(pod["metadata"]["labels"][TRIAL_NAME_LABEL] for pod in pods) == [f"{NAME}-0", f"{NAME}-1"]
    for pod in pods:
        number = int(pod["metadata"]["labels"][TRIAL_NAME_LABEL].rsplit("-", 1)[1])
        labels = pod["metadata"]["labels"]
        assert {k: v for k, v in labels.items() if k not in JOB_CONTROLLERS and not k.startswith(
            ("katuna.dev/", "batch.kubernetes.io/"))} == expected_pod_labels(number)
        assert labels[STUDY_LABEL] == NAME
        assert not set(ANNOTATIONS) & set(pod["metadata"].get("annotations") or {})


def test_an_experiment_submitted_as_a_document_labels_its_trials_pods_as_katib_would():
    """An Experiment given to ``katuna run`` or ``POST /studies`` (no Trial resources): its
    trial pods, where trials run on a cluster, get its labels as Katib's would."""
    definition = labelled_experiment()
    spec, submitted = load_study(yaml.safe_dump(definition))
    launch = trial_launch(StudyRecord(spec, submitted, "/somewhere", "uid"), TrialRecord(NAME, 3, {"x": 0.5}))
    job = render_trial(launch)
    assert {k: v for k, v in job["spec"]["template"]["metadata"]["labels"].items()
            if not k.startswith("katuna.dev/")} == expected_pod_labels(3)
    assert not {"team", "cost-center"} & set(job["metadata"]["labels"])
    native = study_definition(name="plain", trialTemplate={"command": ["echo", "${trialParameters.x}"], "image": "trial:1"})
    plain = render_trial(trial_launch(StudyRecord(parse_study(native), native, "/somewhere", "uid"),
                                      TrialRecord("plain", 0, {"x": 0.5})))
    assert not any(k.startswith("katib.kubeflow.org/") for k in plain["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize(("labels", "path", "expected"), [
    ({"katuna.dev/study": "mine"}, "metadata.labels.katuna.dev/study", "expected a label of another prefix: "
                                                                       "katuna.dev/ is katuna's own"),
    ({"katuna.dev/client": "true"}, "metadata.labels.katuna.dev/client", "katuna.dev/client admits a pod"),
    ({"job-name": "mine"}, "metadata.labels.job-name", "the API server gives each trial's Job pod template"),
    ({"batch.kubernetes.io/controller-uid": "1"}, "metadata.labels.batch.kubernetes.io/controller-uid",
     "refuses any other value there"),
    ({"team": "a b"}, "metadata.labels.team", "expected a Kubernetes label value"),
    ({"team": 42}, "metadata.labels.team", "expected a Kubernetes label value"),
    ({"bad key!": "x"}, "metadata.labels.bad key!", "expected a Kubernetes label key")])
def test_an_experiment_label_katuna_keeps_for_itself_or_kubernetes_refuses_is_refused_naming_it(
        labels: dict, path: str, expected: str):
    """A label the API server would refuse (an Experiment file never met one), one of katuna's
    own prefix, which selects each attempt's pods (and admits a pod to the service), and one
    the API server sets on a Job's pod template to select its pods (every trial's Job would be
    refused) are refused at submission naming the label, where Katib would carry them to every
    pod."""
    doc = experiment()
    doc["metadata"]["labels"] = labels
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    [problem] = caught.value.problems
    assert problem.path == path and expected in problem.message
