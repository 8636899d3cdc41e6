"""A Kubernetes trial attempt's report token travels in a Secret of its own, owned by its Job,
never in the Job's pod template: the real client against the stand-in's API server, RBAC,
garbage collector and kubelet, on a simulated clock (nothing moves until the test settles it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from kube_standin import secrets
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.errors import PermanentError
from functions.core.launch import Progress, TrialLaunch

VALUE = "0123456789abcdef0123456789abcdef"
"""The attempt's token, as :func:`functions.core.report_token.attempt_token` makes one."""
SINK = "http://sink.katuna.svc/"


class Containers(SimulatedContainers):
    """Simulated containers that keep the environment each pod's container was started with, by pod."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__(clock, lambda pod: Run(60, "loss=0.5\n"))
        self.started: dict[str, dict[str, str]] = {}

    def start(self, pod: dict, log: Path, env: dict[str, str], container: dict | None = None,
              mounts: Mapping[str, Path] | None = None):
        if container is None:
            self.started[pod["metadata"]["name"]] = env
        return super().start(pod, log, env, container, mounts)


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    stub = KubeStub(namespaces=("tokens",), clock=SimulatedClock())
    stub.kubelets.containers = Containers(stub.clock)
    yield stub
    stub.close()


def executor(kube: KubeStub, namespace: str = "tokens") -> KubernetesExecutor:
    return KubernetesExecutor(Cluster(namespace=namespace, start_allowance=60), api_client(kube.url), SINK,
                              clock=kube.clock.time)


def launch(name: str = "tok-0") -> TrialLaunch:
    return TrialLaunch("tok", "u1", 0, 1, name, ["train"], {"KATUNA_STUDY": "tok"}, ".", None, image="python:3.12",
                       progress=Progress("loss", token=VALUE))


def started_env(kube: KubeStub, pod_prefix: str = "tok-0-") -> dict[str, str] | None:
    """The environment the first container of the pod whose name starts ``pod_prefix`` started with."""
    return next((env for name, env in kube.kubelets.containers.started.items() if name.startswith(pod_prefix)), None)


def held_value(kube: KubeStub, name: str = "tok-0.report") -> str:
    return base64.b64decode(kube.secrets[("tokens", name)]["data"]["token"]).decode()


def test_the_token_is_in_a_secret_owned_by_the_job_and_the_container_reads_it(kube: KubeStub):
    executor(kube).launch(launch())
    job = kube.jobs[("tokens", "tok-0")]
    assert VALUE not in json.dumps(job), "whoever may read Jobs or pods would read the token"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KATUNA_REPORT_TOKEN"] == {"name": "KATUNA_REPORT_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "tok-0.report", "key": "token"}}}
    assert env["KATUNA_REPORT_URL"]["value"] == SINK
    secret = kube.secrets[("tokens", "tok-0.report")]
    assert secret["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "tok-0",
                                                      "uid": job["metadata"]["uid"]}]
    assert held_value(kube) == VALUE and secret["metadata"]["labels"] == job["metadata"]["labels"]
    assert env["KATUNA_POD_UID"] == {"name": "KATUNA_POD_UID", "valueFrom": {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}}}, "the pod's uid, which its reports carry"
    kube.run_until(lambda: started_env(kube) is not None)
    [pod] = [p for p in kube.pods.values() if p["metadata"]["name"].startswith("tok-0-")]
    assert started_env(kube)["KATUNA_REPORT_TOKEN"] == VALUE
    assert started_env(kube)["KATUNA_POD_UID"] == pod["metadata"]["uid"]


def test_the_garbage_collector_deletes_the_secret_with_its_job(kube: KubeStub):
    runner = executor(kube)
    runner.launch(launch())
    assert ("tokens", "tok-0.report") in kube.secrets
    runner.stop(launch())
    kube.settle()
    assert ("tokens", "tok-0") not in kube.jobs and ("tokens", "tok-0.report") not in kube.secrets


def test_a_launch_delivered_again_makes_the_secret_again_owned_by_the_same_job(kube: KubeStub):
    runner = executor(kube)
    runner.launch(launch())
    runner.launch(launch())
    kube.settle()
    [job] = [j for (ns, _), j in kube.jobs.items() if ns == "tokens"]
    assert [name for ns, name in kube.secrets if ns == "tokens"] == ["tok-0.report"]
    assert kube.secrets[("tokens", "tok-0.report")]["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert held_value(kube) == VALUE


def test_an_earlier_studys_secret_of_the_name_is_replaced_by_the_attempts_own(kube: KubeStub):
    """One whose Job is gone, the collector not there yet: kept, it would hand the pod a
    stranger's token, and go with its old owner from under the pod."""
    secrets.create(kube, "tokens", {"metadata": {"name": "tok-0.report", "labels": {
        "app.kubernetes.io/managed-by": "katuna", "katuna.dev/study": "tok"}, "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "tok-0", "uid": "an-earlier-job"}]},
        "stringData": {"token": "an earlier study's"}})
    executor(kube).launch(launch())
    kube.settle()
    assert held_value(kube) == VALUE
    assert kube.secrets[("tokens", "tok-0.report")]["metadata"]["ownerReferences"][0]["uid"] == \
        kube.jobs[("tokens", "tok-0")]["metadata"]["uid"]


def test_a_secret_of_the_name_that_is_not_katunas_is_kept_and_fails_the_launch(kube: KubeStub):
    """A study's name is a user's, and the Secret's name is built from it: a Secret of that name
    that katuna did not make (no ``app.kubernetes.io/managed-by: katuna``) is someone else's,
    never deleted nor overwritten; the launch fails for good and its Job goes again. Another
    Secret of katuna's in the namespace is left too."""
    secrets.create(kube, "tokens", {"metadata": {"name": "tok-0.report", "labels": {"app": "billing"}},
                                    "stringData": {"password": "hunter2"}})
    secrets.create(kube, "tokens", {"metadata": {"name": "other-0.report", "labels": {
        "app.kubernetes.io/managed-by": "katuna"}}, "stringData": {"token": "another attempt's"}})
    with pytest.raises(PermanentError, match=r"Secret tok-0.report in namespace tokens .* is not katuna's"):
        executor(kube).launch(launch())
    assert secrets.data_of(kube, "tokens", "tok-0.report") == {"password": "hunter2"}
    assert secrets.data_of(kube, "tokens", "other-0.report") == {"token": "another attempt's"}
    assert ("tokens", "tok-0") not in kube.jobs, "no attempt waits for a token that never comes"


def test_the_standin_deletes_a_collection_of_secrets_by_label_and_name_only(kube: KubeStub):
    """As the API server's ``DeleteCollection``: both selectors apply, a field its kind does not
    make selectable is 400, and the answer lists what went."""
    for name, labels in (("a", {"x": "1"}), ("b", {"x": "1"}), ("c", {})):
        secrets.create(kube, "tokens", {"metadata": {"name": name, "labels": labels}})
    code, body = secrets.delete_collection(kube, "tokens", "x=1", "metadata.name=b")
    assert (code, [item["metadata"]["name"] for item in body["items"]]) == (200, ["b"])
    assert secrets.delete_collection(kube, "tokens", None, "spec.x=1")[0] == 400
    assert sorted(name for ns, name in kube.secrets if ns == "tokens") == ["a", "c"]


def test_a_refused_job_leaves_no_secret_and_a_refused_secret_no_job(kube: KubeStub):
    kube.add_namespace("elsewhere", grant=False)
    with pytest.raises(PermanentError, match="create Job tok-0: 403"):
        executor(kube, "elsewhere").launch(launch())
    assert not [name for ns, name in kube.secrets if ns == "elsewhere"]
    kube.add_namespace("old-grants", grant=False)
    with kube.lock:
        kube.authorizer.grant_in_but("old-grants", "secrets")
    with pytest.raises(PermanentError, match=r"create Secret tok-0.report .*403 Forbidden.*cannot create resource .*secrets"):
        executor(kube, "old-grants").launch(launch())
    assert ("old-grants", "tok-0") not in kube.jobs, "no attempt waits for a token that never comes"


def test_a_missing_token_secret_is_made_again_and_never_fails_the_trial(kube: KubeStub):
    """Deleted (or never made: the launch stopped between the Job and its Secret), the pod waits
    in CreateContainerConfigError; katuna's look makes it again, however long it waited, and
    never reports it as the user's missing Secret."""
    runner = executor(kube)
    runner.launch(launch())
    secrets.delete(kube, "tokens", "tok-0.report")
    kube.run_until(lambda: any(s.get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"
                               for p in kube.pods.values() for s in p["status"].get("containerStatuses", [])))
    kube.clock.now += 600
    look = runner.look(launch())
    assert look.finished is None, look
    assert look.held is not None and "waits for its report token's Secret tok-0.report, made again now" in look.held
    assert held_value(kube) == VALUE
    kube.run_until(lambda: started_env(kube) is not None)
    assert started_env(kube)["KATUNA_REPORT_TOKEN"] == VALUE


def test_the_standin_refuses_an_owner_without_a_uid_and_collects_a_secret_whose_owner_is_gone(kube: KubeStub):
    """As the API server's ``validateOwnerReference`` and the garbage collector's
    ``attemptToDeleteItem``: an owner that is not there (no Job of its name has its uid) is
    absent, and a Secret whose owners are all absent goes; one without owners stays."""
    code, body = secrets.create(kube, "tokens", {"metadata": {"name": "x", "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "j"}]}})
    assert (code, body["details"]["causes"]) == (422, [{"reason": "FieldValueInvalid", "field":
                                                        "metadata.ownerReferences[0].uid",
                                                        "message": "Required value: must not be empty"}])
    secrets.create(kube, "tokens", {"metadata": {"name": "orphan", "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "gone"}]}})
    secrets.create(kube, "tokens", {"metadata": {"name": "unowned"}})
    kube.settle()
    assert ("tokens", "orphan") not in kube.secrets and ("tokens", "unowned") in kube.secrets


def test_a_workload_of_another_kind_owns_its_attempts_secret(kube: KubeStub):
    """A PyTorchJob's primary container reads the token from the Secret, which the collector
    deletes with the PyTorchJob."""
    kube.install_operator("training-operator")
    replica = {"replicas": 1, "restartPolicy": "OnFailure",
               "template": {"spec": {"containers": [{"name": "pytorch", "image": "python:3.12", "command": ["t"]}]}}}
    torch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
             "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}}}
    attempt = replace(launch(), trial_spec=torch, primary_container="pytorch", params={},
                      primary_pod_labels={"training.kubeflow.org/job-role": "master"})
    runner = executor(kube)
    runner.launch(attempt)
    [workload] = [w for (plural, ns, name), w in kube.workloads.items() if (ns, name) == ("tokens", "tok-0")]
    assert VALUE not in json.dumps(workload)
    assert kube.secrets[("tokens", "tok-0.report")]["metadata"]["ownerReferences"] == [
        {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "tok-0", "uid": workload["metadata"]["uid"]}]
    kube.run_until(lambda: started_env(kube) is not None)
    assert started_env(kube)["KATUNA_REPORT_TOKEN"] == VALUE
    runner.stop(attempt)
    kube.settle()
    assert ("tokens", "tok-0.report") not in kube.secrets


def test_where_katuna_may_not_delete_a_collection_of_secrets_a_secret_of_the_name_fails_the_launch(kube: KubeStub):
    """A namespace bound to a Role from an older katuna's manifests, without ``deletecollection``
    on Secrets: katuna, which never reads a Secret, cannot tell whether one of the name is its own,
    so it is left and the launch fails for good naming the grant, its Job deleted again; the pod
    never starts with someone else's ``token`` key."""
    kube.add_namespace("older", grant=False)
    with kube.lock:
        kube.authorizer.grant_in_but("older", "secrets", verb="deletecollection")
    secrets.create(kube, "older", {"metadata": {"name": "tok-0.report", "labels": {"app": "billing"}},
                                   "stringData": {"token": "someone else's"}})
    with pytest.raises(PermanentError, match=r"Secret tok-0.report in namespace older .* may not deletecollection "
                                             r"secrets .* Grant katuna deletecollection on secrets there"):
        executor(kube, "older").launch(launch())
    assert secrets.data_of(kube, "older", "tok-0.report") == {"token": "someone else's"}
    assert ("older", "tok-0") not in kube.jobs, "no attempt starts with another's token"
