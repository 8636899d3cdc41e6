"""The stand-in serves an operator's kinds only once the test installs it, and katuna may use
them only where its component grants them, as a real cluster refuses them otherwise."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest
from kube_standin.rbac import MANIFESTS
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException
from waiting import eventually

from functions.adapters.kubernetes_client import api_client

DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
"""What starts a command that only SIGKILL ends: its pod stays Terminating for its grace period."""
PYTORCHJOB = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "p"},
              "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "Never", "template": {
                  "spec": {"containers": [{"name": "pytorch", "image": "python:3.12",
                                           "command": [sys.executable, "-c", "print('loss=1')"]}]}}},
                  "Worker": {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [
                      {"name": "pytorch", "image": "python:3.12"}]}}}}}}
"""A PyTorchJob whose pods fail for good at a failure (its replicas' default, ``OnFailure``,
runs a failed container again in place until ``runPolicy.backoffLimit``)."""


@pytest.fixture
def cluster():
    stub = KubeStub()
    yield stub
    stub.close()


def _message(exc: ApiException) -> str:
    return json.loads(exc.body)["message"]


def _create(cluster: KubeStub, body: dict) -> dict:
    api = client.CustomObjectsApi(api_client(cluster.url))
    return api.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", body)


def test_a_kind_whose_operator_is_not_installed_is_not_found(cluster: KubeStub):
    """As the API server authorizes before it routes: refused (403) where not granted, not found
    (404) where granted but not served."""
    with pytest.raises(ApiException) as refused:
        _create(cluster, PYTORCHJOB)
    assert refused.value.status == 403
    with cluster.lock:
        cluster.authorizer.enable(MANIFESTS / "trial-kinds" / "training-operator")
    with pytest.raises(ApiException) as caught:
        _create(cluster, PYTORCHJOB)
    assert caught.value.status == 404 and caught.value.body == "404 page not found\n", "no Status: the path is not routed"


def test_katuna_may_create_a_kind_only_where_its_component_grants_it(cluster: KubeStub):
    cluster.install_operator("training-operator", grant=False)
    with pytest.raises(ApiException) as caught:
        _create(cluster, PYTORCHJOB)
    assert caught.value.status == 403 and 'cannot create resource "pytorchjobs" in API group "kubeflow.org"' in \
        _message(caught.value)
    cluster.install_operator("training-operator")
    assert _create(cluster, PYTORCHJOB)["metadata"]["uid"]
    with pytest.raises(ApiException) as again:
        _create(cluster, PYTORCHJOB)
    assert again.value.status == 409 and _message(again.value) == 'pytorchjobs.kubeflow.org "p" already exists'


def test_deleting_a_workload_deletes_its_pods_and_finishes_nothing_twice(cluster: KubeStub):
    cluster.install_operator("training-operator")
    _create(cluster, PYTORCHJOB)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with cluster.lock:
            job = cluster.workloads[("pytorchjobs", "default", "p")]
            if any(c["type"] == "Succeeded" for c in job.get("status", {}).get("conditions", [])):
                break
        time.sleep(0.05)
    with cluster.lock:
        assert ("default", "p-master-0") in cluster.pods and ("default", "p-worker-0") in cluster.pods, \
            "a PyTorchJob's cleanPodPolicy is None by default: the worker still running at its end runs on"
    api = client.CustomObjectsApi(api_client(cluster.url))
    api.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "p",
                                        propagation_policy="Background")
    with cluster.lock:
        assert all(p["metadata"].get("deletionTimestamp") for k, p in cluster.pods.items() if k[1].startswith("p-"))
    eventually(lambda: not [k for k in list(cluster.pods) if k[1].startswith("p-")],
               "its pods go once their containers stopped")
    with pytest.raises(ApiException) as caught:
        api.get_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "p")
    assert caught.value.status == 404 and _message(caught.value) == 'pytorchjobs.kubeflow.org "p" not found'


@pytest.mark.parametrize(("code", "exit_code"), [(0, 0), (4, 4)])
def test_a_job_with_conditions_of_its_own_ends_by_them(cluster: KubeStub, code: int, exit_code: int):
    """A Katib condition on a Job's counts rather than its conditions: the end is the one the
    study's GJSON paths read, with the pod's exit code."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "train", "image": "python:3.12",
                                                  "command": [sys.executable, "-c", f"raise SystemExit({code})"]}]}}}}
    launch = TrialLaunch("own", "u1", 0, 1, f"own-{code}", [], {}, ".", timeout=None, trial_spec=job,
                         success_condition="status.[@this].#(succeeded>0)#",
                         failure_condition="status.[@this].#(failed>0)#")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    executor.launch(launch)
    finished = _finished(executor, launch)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", exit_code)


def test_a_label_the_api_server_would_refuse_refuses_the_workload(cluster: KubeStub):
    """``ValidateLabels`` on the object's own labels; a pod template's are refused too, as the
    kind's controller could never make its pods."""
    cluster.install_operator("training-operator")
    own = json.loads(json.dumps(PYTORCHJOB))
    own["metadata"]["labels"] = {"optimizer": "${trialParameters.opt}"}
    with pytest.raises(ApiException) as caught:
        _create(cluster, own)
    assert caught.value.status == 422
    assert _message(caught.value).startswith('PyTorchJob.kubeflow.org "p" is invalid: metadata.labels: Invalid value: '
                                             '"${trialParameters.opt}": a valid label must be an empty string')
    templated = json.loads(json.dumps(PYTORCHJOB))
    templated["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["metadata"] = {"labels": {"role": "x" * 64}}
    with pytest.raises(ApiException) as caught:
        _create(cluster, templated)
    assert caught.value.status == 422 and ("spec.pytorchReplicaSpecs.Worker.template.metadata.labels: Invalid value: "
                                           f'"{"x" * 64}": must be no more than 63 characters') in _message(caught.value)
    assert not cluster.workloads, "nothing refused is stored"


def test_the_training_operators_webhook_refuses_a_name_that_is_no_dns_1035_label(cluster: KubeStub):
    """Its validating webhook (``NameIsDNS1035Label``): the name begins with a letter, as the
    Services of its pods are named after it; a dry run is refused alike, and nothing is stored."""
    cluster.install_operator("training-operator")
    digits = json.loads(json.dumps(PYTORCHJOB))
    digits["metadata"]["name"] = "7b-0"
    api = client.CustomObjectsApi(api_client(cluster.url))
    for dry_run in ("All", None):
        with pytest.raises(ApiException) as caught:
            api.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", digits,
                                                dry_run=dry_run)
        assert caught.value.status == 403
        assert _message(caught.value).startswith(
            'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request: '
            'metadata.name: Invalid value: "7b-0": should match: a DNS-1035 label must consist of lower case')
    assert not cluster.workloads, "nothing refused is stored"


def test_the_training_operators_webhook_refuses_replicas_without_the_kinds_container(cluster: KubeStub):
    """``ValidateReplicaSpecs``: each role's template holds a container of the kind's default
    name (a PyTorchJob's ``pytorch``), which its controller reads as the training container."""
    cluster.install_operator("training-operator")
    renamed = json.loads(json.dumps(PYTORCHJOB))
    renamed["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] = "main"
    with pytest.raises(ApiException) as caught:
        _create(cluster, renamed)
    assert caught.value.status == 403 and _message(caught.value).endswith(
        "spec.pytorchReplicaSpecs[Worker].template.spec.containers: Required value: must have at least one container "
        "with name pytorch")
    assert not cluster.workloads


def test_the_training_operators_webhook_refuses_roles_replicas_and_managers_its_kind_does_not_take(
        cluster: KubeStub):
    """``validatePyTorchReplicaSpecs`` and ``ValidateRunPolicy``: a role the kind has not (a
    PyTorchJob's ``Chief``), a container without an image, a ``Master`` of two replicas, a
    manager other than the operator or MultiKueue; several reasons aggregated between brackets.
    A role in another case is taken, as the defaulting webhook camel-cases it first."""
    cluster.install_operator("training-operator")
    wrong = json.loads(json.dumps(PYTORCHJOB))
    roles = wrong["spec"]["pytorchReplicaSpecs"]
    roles["Chief"] = roles.pop("Worker")
    roles["Master"]["replicas"] = 2
    del roles["Master"]["template"]["spec"]["containers"][0]["image"]
    wrong["spec"]["runPolicy"] = {"managedBy": "example.com/mine"}
    with pytest.raises(ApiException) as caught:
        _create(cluster, wrong)
    assert caught.value.status == 403 and _message(caught.value) == (
        'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request: ['
        'spec.runPolicy.managedBy: Unsupported value: "example.com/mine": supported values: '
        '"kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue", '
        'spec.pytorchReplicaSpecs[Chief]: Unsupported value: "Chief": supported values: "Master", "Worker", '
        "spec.pytorchReplicaSpecs[Master].template.spec.containers[0].image: Required value: must be required, "
        "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1]")
    assert not cluster.workloads
    lower = json.loads(json.dumps(PYTORCHJOB))
    lower["spec"]["pytorchReplicaSpecs"]["worker"] = lower["spec"]["pytorchReplicaSpecs"].pop("Worker")
    _create(cluster, lower)


@pytest.mark.parametrize(("kind", "roles", "master"), [("PaddleJob", ("Worker",), set()),
                                                       ("PyTorchJob", ("Worker",), {"worker-0"}),
                                                       ("PaddleJob", ("Master", "Worker"), {"master-0"})])
def test_the_operator_labels_master_the_pods_of_the_kinds_master_role_alone(cluster: KubeStub, kind, roles, master):
    """``IsMasterRole``: without a Master, a PyTorchJob's worker 0 is labelled ``job-role:
    master``, a PaddleJob's Workers never are; a replica naming no ``restartPolicy`` runs its
    pods under its kind's default over its template's (a PyTorchJob's and a PaddleJob's
    ``OnFailure``)."""
    cluster.install_operator("training-operator")
    name = kind[:-3].lower()
    specs = {role: {"replicas": 2 if role == "Worker" else 1, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": name, "image": "python:3.12",
                                                   "command": [sys.executable, "-c", "pass"]}]}}} for role in roles}
    body = {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": {"name": "j"},
            "spec": {f"{name}ReplicaSpecs": specs}}
    client.CustomObjectsApi(api_client(cluster.url)).create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", kind.lower() + "s", body)
    pods = eventually(lambda: _pods_of(cluster, "j", 2 + len(roles) - 1), f"the {kind}'s pods", timeout=10)
    assert {n.removeprefix("j-") for n, p in pods.items()
            if p["metadata"]["labels"].get("training.kubeflow.org/job-role") == "master"} == master
    assert {p["spec"]["restartPolicy"] for p in pods.values()} == {"OnFailure"}


def _pods_of(cluster: KubeStub, job: str, count: int) -> dict[str, dict]:
    with cluster.lock:
        found = {name: pod for (_, name), pod in cluster.pods.items()
                 if pod["metadata"]["labels"].get("training.kubeflow.org/job-name") == job}
    return found if len(found) == count else {}


def test_jobsets_webhook_refuses_a_jobset_whose_jobs_or_pods_names_would_be_no_dns_1035_label(cluster: KubeStub):
    """The last Job of each replicated Job (``<jobset>-<replicatedJob>-<replicas-1>``) and, of
    an Indexed one, its longest pod name with its random suffix must be DNS-1035 labels."""
    cluster.install_operator("jobset")
    api = client.CustomObjectsApi(api_client(cluster.url))

    def jobset(name: str, completions: int) -> dict:
        job = {"completionMode": "Indexed", "completions": completions, "parallelism": completions, "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "node", "image": "python:3.12"}]}}}
        return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": name},
                "spec": {"replicatedJobs": [{"name": "workers", "replicas": 10, "template": {"spec": job}}]}}

    fits = "j" * (63 - len("-workers-9-9-abcde"))
    assert api.create_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets",
                                               jobset(fits, 10), dry_run="All")
    for refused, completions, longest in (("1-" + fits[2:], 1, f"1-{fits[2:]}-workers-9"),
                                          (fits, 11, f"{fits}-workers-9-10-abcde")):
        with pytest.raises(ApiException) as caught:
            api.create_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets",
                                                jobset(refused, completions))
        assert caught.value.status == 403, longest
        assert _message(caught.value).startswith('admission webhook "vjobset.kb.io" denied the request: ')
        assert f'Invalid value: "{longest}"' in _message(caught.value)
    assert not cluster.workloads


def test_a_field_of_the_wrong_type_refuses_the_workload(cluster: KubeStub):
    """The Training Operator's CRD schema: ``replicas`` is an integer, a container's arguments
    and environment values are strings; anything else is 422 Invalid naming the field."""
    cluster.install_operator("training-operator")
    wrong = json.loads(json.dumps(PYTORCHJOB))
    worker = wrong["spec"]["pytorchReplicaSpecs"]["Worker"]
    worker["replicas"] = "2"
    worker["template"]["spec"]["containers"][0]["env"] = [{"name": "LR", "value": 0.5}]
    with pytest.raises(ApiException) as caught:
        _create(cluster, wrong)
    message = _message(caught.value)
    assert caught.value.status == 422 and message.startswith('PyTorchJob.kubeflow.org "p" is invalid: ')
    assert 'spec.pytorchReplicaSpecs.Worker.replicas: Invalid value: "string": spec.pytorchReplicaSpecs.Worker.' \
           "replicas in body must be of type integer" in message
    assert 'spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].env[0].value: Invalid value: "number"' in message
    assert not cluster.workloads, "nothing refused is stored"


def test_a_delete_whose_uid_precondition_fails_is_a_conflict_and_deletes_nothing(cluster: KubeStub):
    cluster.install_operator("training-operator")
    created = _create(cluster, PYTORCHJOB)
    api = client.CustomObjectsApi(api_client(cluster.url))
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-its-uid"))
    with pytest.raises(ApiException) as caught:
        api.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "p", body=stale)
    assert caught.value.status == 409 and _message(caught.value) == (
        'Operation cannot be fulfilled on PyTorchJob.kubeflow.org "p": the UID in the precondition (not-its-uid) '
        f"does not match the UID in record ({created['metadata']['uid']}). The object might have been deleted and "
        "then recreated")
    assert ("pytorchjobs", "default", "p") in cluster.workloads
    own = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created["metadata"]["uid"]))
    api.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "p", body=own)
    assert ("pytorchjobs", "default", "p") not in cluster.workloads


def test_a_workload_of_an_earlier_study_of_the_same_name_gives_its_name_up_and_nothing_else(cluster: KubeStub):
    """As for Jobs: the trial deletes the earlier study's workload of its name and is tried again
    once it is gone; it reads its own end and log; stopping it leaves the earlier study's other
    workloads of the same trial number."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.errors import TemporaryError
    from functions.core.launch import TrialLaunch
    from functions.core.naming import job_name

    cluster.install_operator("training-operator")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))

    def launch(uid: str, attempt: int, code: int) -> TrialLaunch:
        spec = json.loads(json.dumps(PYTORCHJOB))
        del spec["metadata"]
        spec["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"] = [
            sys.executable, "-c", f"print('loss={code}'); raise SystemExit({code})"]
        return TrialLaunch("torch", uid, 0, attempt, job_name("torch", 0, attempt), [], {}, ".", timeout=None,
                           trial_spec=spec, retain=True)

    for earlier in (launch("0123456789ab", 1, 0), launch("0123456789ab", 2, 0)):
        executor.launch(earlier)
        assert _finished(executor, earlier).data["exitCode"] == 0
    mine = launch("ba9876543210", 1, 3)
    assert not executor.exists(mine)
    with pytest.raises(TemporaryError, match="earlier study named torch"):
        executor.launch(mine)
    executor.launch(mine)
    executor.launch(mine)
    assert cluster.created.count("torch-0") == 2, "a launch delivered again creates nothing"
    finished = _finished(executor, mine)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", 3)
    assert list(executor.output(mine)) == ["loss=3\n"]
    executor.stop(mine)
    with cluster.lock:
        assert ("pytorchjobs", "default", "torch-0") not in cluster.workloads
        assert cluster.workloads[("pytorchjobs", "default", "torch-0-a2")]["metadata"]["labels"]["katuna.dev/uid"] \
            == "0123456789ab"


@pytest.mark.parametrize("plural", ["jobs", "pytorchjobs"])
def test_a_workload_made_anew_between_katunas_read_and_its_delete_is_left(cluster: KubeStub, plural: str,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """Giving up the name an earlier study's workload (a Job, or another kind) holds, katuna
    reads it, then deletes it only while its uid is the one read. Between the two, the earlier
    workload is deleted and another worker, launching the same attempt (a delivery made again),
    makes the trial's own: the delete is refused (409, the API server's uid precondition) and
    that workload runs on."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.errors import TemporaryError
    from functions.core.launch import TrialLaunch

    cluster.install_operator("training-operator")
    workers = [KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url)) for _ in range(2)]
    objects, batch = client.CustomObjectsApi(api_client(cluster.url)), client.BatchV1Api(api_client(cluster.url))

    def launch(uid: str, code: int) -> TrialLaunch:
        command = [sys.executable, "-c", f"print('loss={code}'); raise SystemExit({code})"]
        if plural == "jobs":
            return TrialLaunch("torch", uid, 0, 1, "torch-0", command, {}, ".", timeout=None, image="python:3.12",
                               retain=True)
        spec = json.loads(json.dumps(PYTORCHJOB))
        del spec["metadata"]
        spec["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"] = command
        return TrialLaunch("torch", uid, 0, 1, "torch-0", [], {}, ".", timeout=None, trial_spec=spec, retain=True)

    def delete_and_read() -> dict:
        """Delete the workload of the name as a user would, let the other worker launch the
        attempt, and read what then holds the name."""
        if plural == "jobs":
            batch.delete_namespaced_job("torch-0", "default", propagation_policy="Background")
            workers[1].launch(mine)
            return batch.read_namespaced_job("torch-0", "default").to_dict()
        objects.delete_namespaced_custom_object("kubeflow.org", "v1", "default", plural, "torch-0")
        workers[1].launch(mine)
        return objects.get_namespaced_custom_object("kubeflow.org", "v1", "default", plural, "torch-0")

    earlier, mine = launch("0123456789ab", 0), launch("ba9876543210", 3)
    workers[0].launch(earlier)
    assert _finished(workers[0], earlier).data["exitCode"] == 0
    made: list[dict] = []
    first = threading.Lock()
    serve = cluster.serve

    def swapped(call):
        """The API server, where the user's delete and the other worker's launch land just
        before katuna's delete (the first delete of the name it serves)."""
        if call.method == "DELETE" and call.resource == plural and first.acquire(blocking=False):
            made.append(delete_and_read())
        return serve(call)

    monkeypatch.setattr(cluster, "serve", swapped)
    with pytest.raises(TemporaryError, match="earlier study named torch"):
        workers[0].launch(mine)
    assert made and made[0]["metadata"]["labels"]["katuna.dev/uid"] == "ba9876543210"
    finished = _finished(workers[0], mine)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", 3)
    with cluster.lock:
        held = cluster.jobs[("default", "torch-0")] if plural == "jobs" else cluster.workloads[(plural, "default",
                                                                                              "torch-0")]
        assert held["metadata"]["uid"] == made[0]["metadata"]["uid"], "the worker's workload is the one left"


def _finished(executor, launch):
    return eventually(lambda: executor.poll(launch), f"{launch.job_name} to end", timeout=30)


def test_the_pods_an_earlier_studys_workload_left_terminating_are_not_read_as_the_trials(cluster: KubeStub):
    """A deleted workload's running pods stay Terminating for their grace period (a container
    that takes its time to stop, up to ``terminationGracePeriodSeconds``), and pod names of
    JobSets carry no study uid: the trial of the study submitted again under the name reads its
    own pods' logs, not those of the earlier study's trial of the same name."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    cluster.install_operator("jobset")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))

    def launch(uid: str, code: str) -> TrialLaunch:
        spec = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
            {"name": "node", "replicas": 1, "template": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [
                    {"name": "node", "image": "python:3.12", "command": [sys.executable, "-c", code]}]}}}}}]}}
        return TrialLaunch("sets", uid, 0, 1, "sets-0", [], {}, ".", timeout=None, trial_spec=spec,
                           primary_container="node")

    earlier = launch("0123456789ab", DEAF + "print('loss=0', flush=True); time.sleep(600)")
    executor.launch(earlier)
    _await_printed(executor, earlier, "loss=0\n")
    executor.stop(earlier)
    with cluster.lock:
        lingering = [p for p in cluster.pods.values() if p["metadata"].get("deletionTimestamp")]
    assert len(lingering) == 1 and lingering[0]["metadata"]["deletionGracePeriodSeconds"] == 30

    mine = launch("ba9876543210", "print('loss=3')")
    executor.launch(mine)
    finished = _finished(executor, mine)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", 0)
    with cluster.lock:
        assert (lingering[0]["metadata"]["namespace"], lingering[0]["metadata"]["name"]) in cluster.pods, \
            "the earlier study's pod is Terminating still"
    assert list(executor.output(mine)) == ["loss=3\n"]


def _await_printed(executor, launch, line: str, seconds: float = 30.0) -> None:
    """Wait (up to ``seconds``) until the attempt's pod has printed its ``line``."""
    from functions.core.errors import OutputLost

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if list(executor.output(launch)) == [line]:
                return
        except OutputLost:
            pass
        time.sleep(0.05)


def _trainjob(uid: str, code: str):
    """The launch of trial 0 of study ``trains`` (uid ``uid``): a TrainJob on one node running ``code``."""
    from functions.core.launch import TrialLaunch

    spec = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"numNodes": 1, "image": "python:3.12", "command": [sys.executable, "-c", code]}}}
    return TrialLaunch("trains", uid, 0, 1, "trains-0", [], {}, ".", timeout=None, trial_spec=spec,
                       primary_container="node")


def test_the_pods_an_earlier_studys_trainjob_left_terminating_are_not_read_as_the_trials(cluster: KubeStub):
    """A TrainJob's pods come from its runtime's templates, without katuna's labels, and the Job
    controller names them afresh (``generateName``): the trial of the study submitted again
    under the name runs while the earlier study's pod is Terminating still, beside it, and
    reads only its own, known by its owners (its TrainJob's JobSet's Job)."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster

    cluster.install_operator("trainer")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    earlier = _trainjob("0123456789ab", DEAF + "print('loss=999', flush=True); time.sleep(600)")
    executor.launch(earlier)
    _await_printed(executor, earlier, "loss=999\n")
    executor.stop(earlier)
    with cluster.lock:
        lingering = [p for p in cluster.pods.values() if p["metadata"].get("deletionTimestamp")]
    assert len(lingering) == 1 and lingering[0]["metadata"]["labels"]["jobset.sigs.k8s.io/jobset-name"] == "trains-0"

    mine = _trainjob("ba9876543210", "print('loss=3')")
    executor.launch(mine)
    finished = _finished(executor, mine)
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", 0)
    with cluster.lock:
        assert (lingering[0]["metadata"]["namespace"], lingering[0]["metadata"]["name"]) in cluster.pods, \
            "the earlier study's pod is Terminating still"
    assert list(executor.output(mine)) == ["loss=3\n"]


def test_a_trainjob_run_as_a_jobset_it_does_not_control_reads_none_of_its_pods(cluster: KubeStub):
    """Trainer takes a JobSet holding its TrainJob's name as its own, and its end as the
    TrainJob's, though the TrainJob does not control it: one an earlier study's TrainJob left
    (deleted with ``propagationPolicy: Orphan``, or not yet collected). None of its pods is the
    trial's: the attempt's run is lost, run again, never the earlier one's read as its own."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.errors import OutputLost

    cluster.install_operator("trainer")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    earlier = _trainjob("0123456789ab", "print('loss=999')")
    executor.launch(earlier)
    assert _finished(executor, earlier).data["exitCode"] == 0
    client.CustomObjectsApi(api_client(cluster.url)).delete_namespaced_custom_object(
        "trainer.kubeflow.org", "v1alpha1", "default", "trainjobs", "trains-0", propagation_policy="Orphan")

    mine = _trainjob("ba9876543210", "print('loss=3')")
    executor.launch(mine)
    finished = _finished(executor, mine)
    assert finished.data["outcome"] == "preempted" and "are gone" in finished.data["message"], finished.data
    with pytest.raises(OutputLost):
        list(executor.output(mine))


@pytest.mark.parametrize(("policy", "left"), [(None, {"p-master-0", "p-worker-0"}), ("Running", {"p-master-0"}),
                                              ("All", set())])
def test_the_operator_deletes_the_pods_a_jobs_clean_pod_policy_names_at_its_end(cluster: KubeStub, policy, left):
    """``None`` by default for a PyTorchJob (a TFJob's is ``Running``): the pods still running
    at its end run on, as the Training Operator leaves them."""
    cluster.install_operator("training-operator")
    job = json.loads(json.dumps(PYTORCHJOB))
    if policy is not None:
        job["spec"]["runPolicy"] = {"cleanPodPolicy": policy}
    _create(cluster, job)

    def succeeded() -> bool:
        with cluster.lock:
            found = cluster.workloads[("pytorchjobs", "default", "p")]
            return any(c["type"] == "Succeeded" for c in found.get("status", {}).get("conditions", []))

    eventually(succeeded, "the PyTorchJob succeeded", timeout=20)
    eventually(lambda: {name for namespace, name in list(cluster.pods) if namespace == "default"} == left,
               "the pods it deletes go once their containers stopped")
