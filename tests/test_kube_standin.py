"""The loopback Kubernetes API refuses what a real API server refuses and its controllers act as
a cluster's do, seen through the real ``kubernetes`` client: namespaces and RBAC from
``knative/``, the scheduler and autoscaler, preemption and pod GC, the Job controller."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3
import moto_eks
import moto_eks_iam
import pytest
from kube_standin.clouds import eks_node_groups, eks_pools
from kube_standin.nodes import NodePool
from kube_standin.rbac import Authorizer, Request
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException
from moto import mock_aws
from proc_stat import alive
from waiting import START_WAIT, eventually

from functions.adapters.kubernetes_client import api_client
from functions.core.nodepool import NodePool as PoolSpec
from infra import eks_requests

moto_eks.teach()

KATUNA = "system:serviceaccount:katuna:katuna"
JOBS_SOURCE = "system:serviceaccount:katuna:katuna-jobs-source"
TRIAL_TAINT = {"key": "katuna.dev/trial", "value": "true", "effect": "NoSchedule"}
POOL = NodePool("spot", 0, 2, {"pool": "spot"}, (TRIAL_TAINT,), {"cpu": "1", "memory": "4Gi", "pods": "110"})


def api(kube: KubeStub, user: str | None = None) -> client.ApiClient:
    """A client as ``user`` (its bearer token names it), else as katuna's ServiceAccount."""
    return client.ApiClient(kube.configuration(user))


def job(name: str, code: str = "print('done')", cpu: str | None = None, pool: bool = False, **spec) -> dict:
    """A Job as katuna renders one: one container running ``code``, disruptions ignored."""
    container = {"name": "trial", "image": "python:3.12", "command": [sys.executable, "-c", code]}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    pod: dict = {"restartPolicy": "Never", "containers": [container]}
    if pool:
        pod.update(nodeSelector={"pool": "spot"}, tolerations=[{**TRIAL_TAINT, "operator": "Equal"}])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "t"}}, "spec": pod},
                     "podFailurePolicy": {"rules": [{"action": "Ignore",
                                                     "onPodConditions": [{"type": "DisruptionTarget"}]}]},
                     **spec}}


def condition(kube: KubeStub, name: str, namespace: str = "katuna") -> dict | None:
    status = kube.jobs.get((namespace, name), {}).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] in ("Complete", "Failed")), None)


def pods_of(kube: KubeStub, name: str) -> list[dict]:
    with kube.lock:
        return [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") == name]


@pytest.fixture()
def static():
    stub = KubeStub()
    yield stub
    stub.close()


@pytest.fixture()
def pools():
    offered: list[NodePool] = []
    stub = KubeStub(pools=lambda: list(offered), boot_seconds=0.2, idle_seconds=0.5)
    yield stub, offered
    stub.close()


def refusal(call: Callable[[], object]) -> tuple[int, str]:
    """The status and message of the API's refusal of ``call``."""
    with pytest.raises(ApiException) as raised:
        call()
    return raised.value.status, json.loads(raised.value.body)["message"]


def test_a_job_in_a_namespace_that_does_not_exist_is_not_found(static: KubeStub):
    static.authorizer.grant_in("ghost")
    refused = refusal(lambda: client.BatchV1Api(api(static)).create_namespaced_job("ghost", job("j")))
    assert refused == (404, 'namespaces "ghost" not found')


def test_a_namespace_grants_katuna_what_its_rolebinding_of_katuna_trials_grants_and_no_more(static: KubeStub):
    """As the API server's RBAC: where ``katuna-trials`` is bound (the documented ``kubectl
    create rolebinding``), katuna runs trials; its Role and the sources' stay in their own
    namespace, and a RoleBinding elsewhere naming katuna's Role grants nothing."""
    static.add_namespace("team")
    assert client.BatchV1Api(api(static)).create_namespaced_job("team", job("j")).metadata.name == "j"
    assert client.CoreV1Api(api(static)).list_namespaced_pod("team").items is not None
    studies = client.CustomObjectsApi(api(static))
    assert refusal(lambda: studies.list_namespaced_custom_object("katuna.dev", "v1", "team", "studies"))[0] == 403
    assert refusal(lambda: client.BatchV1Api(api(static, JOBS_SOURCE)).list_namespaced_job("team"))[0] == 403
    static.add_namespace("bare", grant=False)
    with static.lock:
        static.authorizer.objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "katuna", "namespace": "bare"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "katuna"},
            "subjects": [{"kind": "ServiceAccount", "name": "katuna", "namespace": "katuna"}]})
    assert refusal(lambda: studies.list_namespaced_custom_object("katuna.dev", "v1", "bare", "studies"))[0] == 403


def test_katuna_may_only_do_what_the_manifests_grant_it(static: KubeStub):
    static.add_namespace("elsewhere", grant=False)
    batch, core = client.BatchV1Api(api(static)), client.CoreV1Api(api(static))
    refused = refusal(lambda: batch.create_namespaced_job("elsewhere", job("j")))
    assert refused == (403, 'jobs.batch is forbidden: User "system:serviceaccount:katuna:katuna" cannot create '
                       'resource "jobs" in API group "batch" in the namespace "elsewhere"')
    refused = refusal(lambda: core.delete_namespaced_pod("p", "katuna"))
    assert refused == (403, f'pods "p" is forbidden: User "{KATUNA}" cannot delete resource "pods" in API group "" '
                       'in the namespace "katuna"')
    assert refusal(lambda: core.read_node("node-static")) == (
        403, f'nodes "node-static" is forbidden: User "{KATUNA}" cannot get resource "nodes" in API group "" at the '
             'cluster scope')
    assert [n.metadata.name for n in core.list_node().items] == ["node-static"], "listing nodes is granted"
    custom = client.CustomObjectsApi(api(static))
    refused = refusal(lambda: custom.patch_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", "s",
                                                                    {"spec": {}}))
    assert refused[0] == 403 and 'cannot patch resource "studies" in API group "katuna.dev"' in refused[1]
    batch.create_namespaced_job("katuna", job("granted"))
    assert core.list_namespaced_pod("katuna", label_selector="job-name=granted").metadata.resource_version


def test_an_owner_reference_blocking_its_owners_deletion_needs_update_on_the_owners_finalizers(static: KubeStub):
    """OwnerReferencesPermissionEnforcement, as OpenShift runs it: katuna may make a Secret owned
    by its trial's Job, but may not block the Job's deletion with it, not being granted
    ``jobs/finalizers``; an account granted that may."""
    core = client.CoreV1Api(api(static))
    owner = client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("owner")).metadata

    def owned(name: str, blocking: bool) -> dict:
        return {"metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": owner.name, "uid": owner.uid, "controller": True,
            "blockOwnerDeletion": blocking}]}, "stringData": {"token": "t"}}

    assert core.create_namespaced_secret("katuna", owned("held", False)).metadata.name == "held"
    assert refusal(lambda: core.create_namespaced_secret("katuna", owned("blocking", True))) == (
        403, 'secrets "blocking" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a '
             f'resource you can\'t set finalizers on: User "{KATUNA}" cannot update resource "jobs/finalizers" in API '
             'group "batch" in the namespace "katuna"')
    with static.lock:
        static.authorizer.objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                          "metadata": {"name": "finalizers", "namespace": "katuna"},
                                          "rules": [{"apiGroups": ["batch"], "resources": ["jobs/finalizers"],
                                                     "verbs": ["update"]}]})
        static.authorizer.objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                          "metadata": {"name": "finalizers", "namespace": "katuna"},
                                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                      "name": "finalizers"},
                                          "subjects": [{"kind": "ServiceAccount", "name": "katuna",
                                                        "namespace": "katuna"}]})
    assert core.create_namespaced_secret("katuna", owned("blocking", True)).metadata.name == "blocking"


def _grant(kube: KubeStub, name: str, account: str, rules: list[dict]) -> None:
    """A Role of ``rules`` in katuna's namespace, bound to the ServiceAccount ``account`` there."""
    with kube.lock:
        kube.authorizer.objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                        "metadata": {"name": name, "namespace": "katuna"}, "rules": rules})
        kube.authorizer.objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                        "metadata": {"name": name, "namespace": "katuna"},
                                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": name},
                                        "subjects": [{"kind": "ServiceAccount", "name": account,
                                                      "namespace": "katuna"}]})


def test_a_patch_setting_owner_references_is_admitted_as_a_create_or_replace_is(static: KubeStub):
    """OwnerReferencesPermissionEnforcement runs on updates, and a PATCH is one: a patch that
    adds a blocking ownerReference, or turns one blocking, needs ``update`` on the owner's
    ``finalizers``; one that changes the references at all needs ``delete`` on the patched
    object; a patch that leaves a blocking reference as it was is not asked about it again."""
    batch = client.BatchV1Api(api(static))
    owner = batch.create_namespaced_job("katuna", job("owner")).metadata
    batch.create_namespaced_job("katuna", job("owned", suspend=True))
    reference = {"apiVersion": "batch/v1", "kind": "Job", "name": owner.name, "uid": owner.uid}
    finalizers = ('jobs.batch "owned" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a '
                  f'resource you can\'t set finalizers on: User "{KATUNA}" cannot update resource "jobs/finalizers" in '
                  'API group "batch" in the namespace "katuna"')
    blocking = {"metadata": {"ownerReferences": [{**reference, "blockOwnerDeletion": True}]}}
    assert refusal(lambda: batch.patch_namespaced_job("owned", "katuna", blocking)) == (403, finalizers)
    turned = [{"op": "add", "path": "/metadata/ownerReferences/0/blockOwnerDeletion", "value": True}]
    batch.patch_namespaced_job("owned", "katuna", {"metadata": {"ownerReferences": [reference]}})
    assert refusal(lambda: batch.patch_namespaced_job("owned", "katuna", turned)) == (403, finalizers)
    assert static.jobs[("katuna", "owned")]["metadata"]["ownerReferences"] == [reference]

    _grant(static, "finalizers", "katuna", [{"apiGroups": ["batch"], "resources": ["jobs/finalizers"],
                                             "verbs": ["update"]}])
    assert batch.patch_namespaced_job("owned", "katuna", turned).metadata.owner_references[0].block_owner_deletion
    _grant(static, "patcher", "patcher", [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["patch"]}])
    patcher = client.BatchV1Api(api(static, "system:serviceaccount:katuna:patcher"))
    assert patcher.patch_namespaced_job("owned", "katuna", {"metadata": {"labels": {"kept": "yes"}}}).metadata.labels
    assert refusal(lambda: patcher.patch_namespaced_job("owned", "katuna", {"metadata": {"ownerReferences": []}})) == (
        403, 'jobs.batch "owned" is forbidden: cannot set an ownerRef on a resource you can\'t delete: User '
             '"system:serviceaccount:katuna:patcher" cannot delete resource "jobs" in API group "batch" in the '
             'namespace "katuna"')
    assert len(static.jobs[("katuna", "owned")]["metadata"]["ownerReferences"]) == 1


def test_any_account_may_ask_what_it_may_do_and_is_told_as_rbac_decides(static: KubeStub):
    """A SelfSubjectAccessReview, as the API server takes one: every account may post it, it
    names resource or non-resource attributes but not both, and its answer is the authorizer's."""
    static.add_namespace("elsewhere", grant=False)
    reviews = client.AuthorizationV1Api(api(static, JOBS_SOURCE))

    def allowed(namespace: str, verb: str = "create", resource: str = "jobs", group: str = "batch") -> bool:
        attributes = client.V1ResourceAttributes(namespace=namespace, verb=verb, group=group, resource=resource)
        body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
        return reviews.create_self_subject_access_review(body).status.allowed

    assert allowed("katuna", "list") and not allowed("katuna"), "the jobs source lists Jobs, and creates none"
    reviews = client.AuthorizationV1Api(api(static))
    assert allowed("katuna") and not allowed("elsewhere") and not allowed("katuna", "get", "secrets", "")
    neither = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec())
    refused = refusal(lambda: reviews.create_self_subject_access_review(neither))
    assert refused[0] == 422 and "exactly one of nonResourceAttributes or resourceAttributes" in refused[1]


WILDCARDS = {
    "pods/* grants no subresource": ("pods/*", "log", False),
    "*/log grants every resource's log": ("*/log", "log", True),
    "*/log grants no other subresource": ("*/log", "exec", False),
    "* grants every subresource": ("*", "log", True),
}


@pytest.mark.parametrize("granted,subresource,allowed", WILDCARDS.values(), ids=WILDCARDS.keys())
def test_a_rules_wildcard_reaches_the_subresources_rbac_lets_it_reach(granted: str, subresource: str, allowed: bool):
    """As RBAC's ``ResourceMatches``: ``*`` matches every resource and subresource, ``*/log`` the
    ``log`` subresource of every resource, and ``pods/*`` no more than a resource of that name."""
    user = "system:serviceaccount:katuna:reader"
    authorizer = Authorizer([
        {"kind": "Role", "metadata": {"name": "r", "namespace": "katuna"},
         "rules": [{"apiGroups": [""], "resources": [granted], "verbs": ["get"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "r", "namespace": "katuna"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "katuna"}]}])
    assert authorizer.allows(Request(user, "get", "", "pods", subresource, "katuna", "p")) is allowed


def test_a_bearer_token_names_another_account_with_its_own_grants(static: KubeStub):
    source = client.BatchV1Api(api(static, JOBS_SOURCE))
    assert source.list_namespaced_job("katuna").items == []
    refused = refusal(lambda: source.create_namespaced_job("katuna", job("j")))
    assert refused == (403, f'jobs.batch is forbidden: User "{JOBS_SOURCE}" cannot create resource "jobs" in API '
                       'group "batch" in the namespace "katuna"')


def test_the_api_server_refuses_a_request_without_credentials_and_the_proxy_adds_katunas(static: KubeStub):
    """The API server takes a request with no token as ``system:anonymous``, which may do
    nothing, not even ask what it may do; so katuna pointed at it (``KATUNA_K8S_API``, which
    carries no credentials) is refused. Through ``kubectl proxy`` run with katuna's credentials,
    the same request is katuna's."""
    anonymous = client.BatchV1Api(api_client(static.api_url))
    assert refusal(lambda: anonymous.list_namespaced_job("katuna")) == (
        403, 'jobs.batch is forbidden: User "system:anonymous" cannot list resource "jobs" in API group "batch" '
             'in the namespace "katuna"')
    attributes = client.V1ResourceAttributes(namespace="katuna", verb="list", group="batch", resource="jobs")
    body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
    assert refusal(lambda: client.AuthorizationV1Api(api_client(static.api_url)).create_self_subject_access_review(
        body)) == (403, 'selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "system:anonymous" cannot '
                        'create resource "selfsubjectaccessreviews" in API group "authorization.k8s.io" at the '
                        'cluster scope')
    with_token = client.Configuration()
    with_token.host, with_token.api_key, with_token.api_key_prefix = (
        static.api_url, {"authorization": KATUNA}, {"authorization": "Bearer"})
    assert client.BatchV1Api(client.ApiClient(with_token)).list_namespaced_job("katuna").items == []
    assert client.BatchV1Api(api_client(static.url)).list_namespaced_job("katuna").items == []


def test_a_pod_stays_pending_until_a_node_it_fits_is_ready(pools):
    kube, offered = pools
    client.BatchV1Api(api(kube)).create_namespaced_job("katuna", job("wait", cpu="500m", pool=True))
    pod = eventually(lambda: next((p for p in pods_of(kube, "wait")
                                   if p["status"].get("conditions")), None), "the scheduler's verdict")
    assert pod["metadata"]["name"].startswith("wait-") and len(pod["metadata"]["name"]) == len("wait-") + 5
    assert pod["status"]["phase"] == "Pending" and pod["status"]["conditions"][0]["reason"] == "Unschedulable"
    unbound = client.CoreV1Api(api(kube)).read_namespaced_pod_log_with_http_info(pod["metadata"]["name"], "katuna",
                                                                                container="trial")
    assert unbound[:2] == (None, 204), "a pod no node has taken has an empty log (No Content), not an error"
    offered.append(POOL)
    eventually(lambda: condition(kube, "wait"), "the Job ends on the node the autoscaler adds")
    assert condition(kube, "wait")["type"] == "Complete" and kube.peak_nodes("spot") == 1
    eventually(lambda: kube.timeline[-1][1] == {"spot": 0}, "the idle node is removed")


@pytest.mark.slow
def test_the_autoscaler_adds_nodes_for_pods_that_do_not_fit_up_to_the_pools_maximum(pools):
    kube, offered = pools
    offered.append(POOL)
    batch = client.BatchV1Api(api(kube))
    for n in range(3):
        batch.create_namespaced_job("katuna", job(f"fill-{n}", "import time; time.sleep(1)", cpu="1", pool=True))
    eventually(lambda: all(condition(kube, f"fill-{n}") for n in range(3)), "every Job ends")
    assert [condition(kube, f"fill-{n}")["type"] for n in range(3)] == ["Complete"] * 3
    assert kube.peak_nodes("spot") == 2, "one pod a node (cpu), never above the maximum"
    eventually(lambda: kube.timeline[-1][1] == {"spot": 0}, "idle nodes are removed down to the minimum")


def test_best_effort_pods_count_only_against_the_pod_limit(pools):
    kube, offered = pools
    offered.append(NodePool("small", 0, 1, {"pool": "spot"}, (TRIAL_TAINT,), {"cpu": "1", "pods": "2"}))
    batch = client.BatchV1Api(api(kube))
    for n in range(3):
        batch.create_namespaced_job("katuna", job(f"be-{n}", "import time; time.sleep(30)", pool=True))
    eventually(lambda: sum(p["status"]["phase"] == "Running" for n in range(3) for p in pods_of(kube, f"be-{n}")) == 2,
               "two pods run on the node, BestEffort as they are")
    waiting = [p for n in range(3) for p in pods_of(kube, f"be-{n}") if not p["spec"].get("nodeName")]
    assert len(waiting) == 1 and "1 Too many pods" in waiting[0]["status"]["conditions"][0]["message"]
    assert kube.peak_nodes("small") == 1, "the pool's maximum holds"


def test_a_preempted_node_fails_its_pods_as_disrupted_and_the_job_replaces_them(pools):
    kube, offered = pools
    offered.append(POOL)
    kube.pod_gc_seconds = 60
    client.BatchV1Api(api(kube)).create_namespaced_job("katuna", job("spot", "import time; time.sleep(1.5)", pool=True))
    first = eventually(lambda: next((p for p in pods_of(kube, "spot") if p["status"]["phase"] == "Running"), None),
                       "the pod runs")
    kube.preempt_node(first["spec"]["nodeName"], reason="TerminationByKubelet")
    assert first["status"]["phase"] == "Failed"
    assert {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}.items() <= \
        next(c for c in first["status"]["conditions"] if c["type"] == "DisruptionTarget").items()
    eventually(lambda: (condition(kube, "spot") or {}).get("type") == "Complete", "the replacement pod completes")
    assert (kube.jobs[("katuna", "spot")]["status"].get("failed"), kube.peak_nodes("spot")) == (None, 1)
    assert ("katuna", first["metadata"]["name"]) not in kube.pods, "a pod whose node is gone is collected"
    name = first["metadata"]["name"]
    assert refusal(lambda: client.CoreV1Api(api(kube)).read_namespaced_pod_log(name, "katuna")) == (
        404, f'pods "{name}" not found')


def test_terminated_pods_are_collected_after_a_while_and_the_ttl_deletes_the_job(static: KubeStub):
    static.pod_gc_seconds = 0.3
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("gc"))
    eventually(lambda: condition(static, "gc"), "the Job completes")
    eventually(lambda: not pods_of(static, "gc"), "the pod is collected")
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("ttl", ttlSecondsAfterFinished=1))
    eventually(lambda: ("katuna", "ttl") not in static.jobs, "the TTL deletes the Job")
    assert not pods_of(static, "ttl")


def test_the_kubelet_expands_variables_in_a_containers_command_args_and_env(static: KubeStub):
    """As Kubernetes documents ``command``, ``args`` and ``env[].value``: ``$(NAME)`` is the
    container's variable (an env value sees those defined before it), an unknown one stays as
    written, and ``$$`` is one ``$``; a trial's values reach a cluster trial so, where a local
    trial gets them as they are."""
    manifest = job("expanded", "import os, sys; print(sys.argv[1:], os.environ['B'])")
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["$(A)", "a$$b", "$$(A)", "$(NONE)", "${$} $1 $", "$(B)"]
    container["env"] = [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$$-$(C)"},
                        {"name": "C", "value": "late"}]
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", manifest)
    eventually(lambda: condition(static, "expanded"), "the Job completes")
    [pod] = pods_of(static, "expanded")
    log = client.CoreV1Api(api(static)).read_namespaced_pod_log(pod["metadata"]["name"], "katuna")
    assert log == "['x', 'a$b', '$(A)', '$(NONE)', '${$} $1 $', 'x-$-$(C)'] x-$-$(C)\n"


def test_the_deadline_counts_from_the_jobs_start_pending_time_included(pools):
    kube, _ = pools
    client.BatchV1Api(api(kube)).create_namespaced_job("katuna", job("late", pool=True, activeDeadlineSeconds=1))
    ended = eventually(lambda: condition(kube, "late"), "the deadline passes while the pod is pending")
    assert (ended["type"], ended["reason"]) == ("Failed", "DeadlineExceeded")
    assert kube.jobs[("katuna", "late")]["status"]["startTime"] and not pods_of(kube, "late")


def test_failures_beyond_the_backoff_limit_fail_the_job(static: KubeStub):
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("crash", "raise SystemExit(3)",
                                                                       backoffLimit=1))
    ended = eventually(lambda: condition(static, "crash"), "the Job fails")
    assert (ended["type"], ended["reason"]) == ("Failed", "BackoffLimitExceeded")
    assert static.jobs[("katuna", "crash")]["status"]["failed"] == 2
    terminated = [p["status"]["containerStatuses"][0]["state"]["terminated"] for p in pods_of(static, "crash")]
    assert [(t["exitCode"], t["reason"]) for t in terminated] == [(3, "Error")] * 2
    assert all(t["startedAt"] <= t["finishedAt"] for t in terminated)


def test_a_container_in_a_relative_folder_never_starts_and_its_pod_fails(static: KubeStub):
    """The API server takes a relative ``workingDir``, but the container runtime refuses it (the OCI
    runtime spec's ``cwd`` is absolute): containerd reports a ``StartError`` with exit code 128,
    and the pod of a Job fails."""
    failing = job("relative", backoffLimit=0)
    failing["spec"]["template"]["spec"]["containers"][0]["workingDir"] = "examples"
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", failing)
    ended = eventually(lambda: condition(static, "relative"), "the Job fails")
    assert ended["type"] == "Failed"
    [pod] = pods_of(static, "relative")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 128, "StartError")
    assert "cwd 'examples' is not an absolute path" in terminated["message"]


def test_a_container_whose_command_is_not_found_never_starts_and_its_pod_fails(static: KubeStub):
    """A command the container's ``PATH`` lacks: runc cannot execute it, containerd reports a
    ``StartError`` with exit code 128 naming it, and the pod of a Job fails, as does an init
    container's."""
    failing = job("absent", backoffLimit=0)
    failing["spec"]["template"]["spec"]["containers"][0]["command"] = ["no-such-program-here"]
    init = job("absent-init", backoffLimit=0)
    pod_spec = init["spec"]["template"]["spec"]
    pod_spec["initContainers"] = [{"name": "fetch", "image": pod_spec["containers"][0]["image"],
                                   "command": ["no-such-fetcher"]}]
    for made in (failing, init):
        client.BatchV1Api(api(static)).create_namespaced_job("katuna", made)
    for name, program in (("absent", "no-such-program-here"), ("absent-init", "no-such-fetcher")):
        assert eventually(lambda n=name: condition(static, n), f"the Job {name} fails")["type"] == "Failed"
        [pod] = pods_of(static, name)
        [status] = pod["status"]["initContainerStatuses" if name == "absent-init" else "containerStatuses"]
        terminated = status["state"]["terminated"]
        assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 128, "StartError")
        assert f'exec: "{program}": executable file not found in $PATH' in terminated["message"]


def test_an_init_container_in_a_relative_folder_never_starts_and_its_pod_fails(static: KubeStub):
    """The runtime refuses an init container's relative ``workingDir`` as it does a container's:
    the init container ends ``StartError`` with exit code 128, the pod fails with its containers
    never started, and so does its Job."""
    failing = job("relative-init", backoffLimit=0)
    pod_spec = failing["spec"]["template"]["spec"]
    pod_spec["initContainers"] = [{"name": "fetch", "image": pod_spec["containers"][0]["image"],
                                   "command": ["true"], "workingDir": "src"}]
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", failing)
    ended = eventually(lambda: condition(static, "relative-init"), "the Job fails")
    assert ended["type"] == "Failed"
    [pod] = pods_of(static, "relative-init")
    [init] = pod["status"]["initContainerStatuses"]
    terminated = init["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 128, "StartError")
    assert "cwd 'src' is not an absolute path" in terminated["message"]
    assert all("running" not in s["state"] for s in pod["status"].get("containerStatuses") or [])


def test_a_container_exiting_under_on_failure_runs_again_in_place_keeping_its_last_runs_log(static: KubeStub,
                                                                                           tmp_path):
    """Under ``restartPolicy: OnFailure`` the kubelet runs a container that exited other than 0
    again in place: the pod stays ``Running``, its status counts the restarts and keeps the run
    before the current one as ``lastState``, whose log alone ``previous=true`` serves (the run
    before that one's is gone)."""
    static.kubelets.restart_backoff = (0.2, 0.4)
    runs = tmp_path / "runs"
    code = (f"import pathlib, sys, time\np = pathlib.Path({str(runs)!r})\nn = len(p.read_text()) if p.exists() else 0\n"
            "p.write_text('x' * (n + 1))\nprint(f'run {n + 1}', flush=True)\nsys.exit(n + 2) if n < 2 else time.sleep(600)")
    body = job("again", code)
    body["spec"].pop("podFailurePolicy")
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", body)
    core = client.CoreV1Api(api(static))

    def third_run() -> dict | None:
        pods = pods_of(static, "again")
        held = pods[0]["status"].get("containerStatuses", [{}])[0] if pods else {}
        return pods[0] if held.get("restartCount") == 2 and "running" in held.get("state", {}) else None

    pod = eventually(third_run, "the container runs a third time")
    [held] = pod["status"]["containerStatuses"]
    assert (pod["status"]["phase"], held["lastState"]["terminated"]["exitCode"]) == ("Running", 3)
    name = pod["metadata"]["name"]
    eventually(lambda: core.read_namespaced_pod_log(name, "katuna", container="trial") == "run 3\n", "run 3 prints")
    assert core.read_namespaced_pod_log(name, "katuna", container="trial", previous=True) == "run 2\n"
    assert condition(static, "again") is None, "the Job runs on"


def test_a_container_that_has_not_started_has_no_log(static: KubeStub):
    static.image_pull_seconds = 60
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("pull"))
    pod = eventually(lambda: next((p for p in pods_of(static, "pull") if p["status"].get("containerStatuses")), None),
                     "the kubelet creates the container")
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    name = pod["metadata"]["name"]
    refused = refusal(lambda: client.CoreV1Api(api(static)).read_namespaced_pod_log(name, "katuna", container="trial"))
    assert refused == (400, f'container "trial" in pod "{name}" is waiting to start: ContainerCreating')


def test_the_log_of_a_containers_previous_run_is_refused_where_it_never_restarted(static: KubeStub):
    """``previous=true`` asks for the run before the container's current one: the kubelet
    refuses it (400) where there was none, whether the container runs or has ended; ``false``
    and ``0`` ask for the current run."""
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("once"))
    eventually(lambda: condition(static, "once"), "the Job completes")
    [pod] = pods_of(static, "once")
    name, core = pod["metadata"]["name"], client.CoreV1Api(api(static))
    refused = (400, f'previous terminated container "trial" in pod "{name}" not found')
    assert refusal(lambda: core.read_namespaced_pod_log(name, "katuna", container="trial", previous=True)) == refused
    assert core.read_namespaced_pod_log(name, "katuna", container="trial", previous=False) == "done\n"
    for value, answer in (("yes", refused), ("0", (200, "done\n")), ("FALSE", (200, "done\n"))):
        url = f"{static.url}/api/v1/namespaces/katuna/pods/{name}/log?container=trial&previous={value}"
        try:
            with urllib.request.urlopen(url) as read:
                assert (read.status, read.read().decode()) == answer, value
        except urllib.error.HTTPError as exc:
            assert (exc.code, json.loads(exc.read())["message"]) == answer, value


@pytest.mark.slow
def test_the_autoscaler_grows_an_eks_node_group_as_moto_describes_it(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        cluster = eks_requests.EksCluster("tuning", moto_eks.network(boto3.client("ec2", region_name="eu-west-1")),
                                          moto_eks_iam.node_role(boto3.client("iam", region_name="eu-west-1")))
        groups = boto3.client("eks", region_name="eu-west-1")
        groups.create_cluster(name="tuning", roleArn=cluster.node_role,
                              resourcesVpcConfig={"subnetIds": list(cluster.subnets)})
        groups.create_nodegroup(**moto_eks.by_hand(eks_requests.create_request(cluster, PoolSpec(
            name="katuna-spot", provider="eks", capacity="spot", machine_types=("m5.xlarge",), max_nodes=2))))
        moto_eks.minutes_pass()
        kube = KubeStub(pools=eks_pools(lambda: [
            groups.describe_nodegroup(clusterName="tuning", nodegroupName=name)["nodegroup"]
            for name in groups.list_nodegroups(clusterName="tuning")["nodegroups"]]), boot_seconds=0.2)
        try:
            spot = job("eks", cpu="3")
            spot["spec"]["template"]["spec"].update(
                nodeSelector={"eks.amazonaws.com/capacityType": "SPOT"},
                tolerations=[{**TRIAL_TAINT, "operator": "Equal"}])
            client.BatchV1Api(api(kube)).create_namespaced_job("katuna", spot)
            ended = eventually(lambda: condition(kube, "eks"), "the Job ends on a node of the group")
            assert ended["type"] == "Complete" and kube.peak_nodes("katuna-spot") == 1
            node = next(iter(kube.nodes.values()))
            assert node["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "katuna-spot"
            assert node["status"]["allocatable"]["pods"] == "58"
        finally:
            kube.close()


def test_the_autoscaler_skips_a_node_group_deleted_between_its_list_and_its_describe(monkeypatch):
    """katuna deletes a study's node group while the autoscaler reads the groups: the group
    listed, then gone, is no group (the real autoscaler's refresh does not fail on it)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        cluster = eks_requests.EksCluster("tuning", moto_eks.network(boto3.client("ec2", region_name="eu-west-1")),
                                          moto_eks_iam.node_role(boto3.client("iam", region_name="eu-west-1")))
        katuna, reader = (boto3.client("eks", region_name="eu-west-1") for _ in range(2))
        katuna.create_cluster(name="tuning", roleArn=cluster.node_role,
                              resourcesVpcConfig={"subnetIds": list(cluster.subnets)})
        for name in ("katuna-a", "katuna-b"):
            katuna.create_nodegroup(**moto_eks.by_hand(eks_requests.create_request(cluster, PoolSpec(
                name=name, provider="eks", capacity="spot", machine_types=("m5.xlarge",), max_nodes=2))))
        moto_eks.minutes_pass()

        def delete_first(params, **_):
            if params.get("nodegroupName") == "katuna-a":
                katuna.delete_nodegroup(clusterName="tuning", nodegroupName="katuna-a")
                moto_eks.minutes_pass()
        reader.meta.events.register("before-parameter-build.eks.DescribeNodegroup", delete_first)
        groups = eks_node_groups(reader, "tuning")()
        assert [g["nodegroupName"] for g in groups] == ["katuna-b"]


def test_a_job_the_api_server_would_not_accept_is_refused_naming_the_field(static: KubeStub):
    batch = client.BatchV1Api(api(static))
    unreadable = job("gb")
    unreadable["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": "2GB"}}
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", unreadable))
    assert status == 400 and message.startswith('Job in version "v1" cannot be handled as a Job: quantities must')
    gpu = job("gpu")
    gpu["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": "1"}}
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", gpu))
    assert status == 422 and "spec.template.spec.containers[0].resources.limits: Required value: Limit must be set" \
        in message
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", job("x" * 64)))
    assert status == 422 and message.startswith(f'Job.batch "{"x" * 64}" is invalid: spec.template.labels: Invalid '
                                                f'value: "{"x" * 64}": must be no more than 63 characters'), \
        "a DNS subdomain, the name is no value of the job-name labels the API server gives the pod template"
    assert not static.jobs, "nothing refused is stored"


def test_a_job_field_of_the_wrong_type_cannot_be_decoded(static: KubeStub):
    """As the API server decodes a Job into Go structs before validating it: a string where an
    integer is, a number where an argument or environment value is, refuses the whole Job (sent
    untyped: the typed client checks these types itself)."""
    untyped = client.CustomObjectsApi(api(static))

    def create(body: dict) -> object:
        return untyped.create_namespaced_custom_object("batch", "v1", "katuna", "jobs", body)
    quoted = job("quoted")
    quoted["spec"]["parallelism"] = "2"
    status, message = refusal(lambda: create(quoted))
    assert (status, message) == (400, 'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal string '
                                      "into Go struct field JobSpec.spec.parallelism of type int32")
    numeric = job("numeric")
    numeric["spec"]["template"]["spec"]["containers"][0]["args"] = ["--lr", 0.5]
    status, message = refusal(lambda: create(numeric))
    assert status == 400 and message.endswith("cannot unmarshal number into Go struct field "
                                              "Container.spec.template.spec.containers.args of type string")
    assert not static.jobs, "nothing refused is stored"


def test_a_job_whose_labels_or_selector_the_generated_selector_contradicts_is_refused(static: KubeStub):
    """Without ``manualSelector`` the API server adds the labels that select a Job's pods where
    its template has none, and its uid to the selector; one the Job gives that differs is kept,
    and refused (``validateGeneratedSelector``); one equal to the generated label is taken."""
    batch = client.BatchV1Api(api(static))
    labelled = job("labelled")
    labelled["spec"]["template"]["metadata"] = {"labels": {"job-name": "other"}}
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", labelled))
    assert (status, message) == (422, 'Job.batch "labelled" is invalid: spec.template.metadata.labels[job-name]: '
                                      "Invalid value: \"other\": must be 'labelled'")
    selected = job("selected")
    selected["spec"]["selector"] = {"matchLabels": {"app": "trainer"}}
    selected["spec"]["template"]["metadata"] = {"labels": {"app": "trainer"}}
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", selected))
    assert status == 422 and message.startswith('Job.batch "selected" is invalid: spec.selector: Invalid value: ')
    assert message.endswith(": `selector` not auto-generated")
    assert not static.jobs, "nothing refused is stored"
    named = job("named")
    named["spec"]["template"]["metadata"] = {"labels": {"job-name": "named", "app": "trainer"}}
    batch.create_namespaced_job("katuna", named)
    stored = static.jobs[("katuna", "named")]
    uid = stored["metadata"]["uid"]
    assert stored["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert stored["spec"]["template"]["metadata"]["labels"] == {
        "job-name": "named", "app": "trainer", "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "named", "controller-uid": uid}


def test_a_secret_key_reference_without_its_key_is_refused(static: KubeStub):
    """Sent untyped: the typed client refuses it before sending."""
    untyped = client.CustomObjectsApi(api(static))
    keyless = job("keyless")
    keyless["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "valueFrom": {
        "secretKeyRef": {"name": "s"}}}]
    status, message = refusal(lambda: untyped.create_namespaced_custom_object("batch", "v1", "katuna", "jobs", keyless))
    assert (status, message) == (422, 'Job.batch "keyless" is invalid: spec.template.spec.containers[0].env[0].'
                                      "valueFrom.secretKeyRef.key: Required value")


def test_a_privileged_container_that_may_not_escalate_is_refused(static: KubeStub):
    batch = client.BatchV1Api(api(static))
    privileged = job("privileged")
    context = {"privileged": True, "allowPrivilegeEscalation": False}
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"] = context
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", privileged))
    assert status == 422 and message.endswith(
        "spec.template.spec.containers[0].securityContext: Invalid value: "
        '{"allowPrivilegeEscalation": false, "privileged": true}: cannot set `allowPrivilegeEscalation` to false and '
        "`privileged` to true")
    assert not static.jobs, "nothing refused is stored"


@pytest.mark.parametrize("field,value,go_type", [("backoffLimit", 2**31, "int32"),
                                                 ("ttlSecondsAfterFinished", 3_000_000_000, "int32"),
                                                 ("activeDeadlineSeconds", 2**63, "int64")])
def test_a_job_number_its_go_type_cannot_hold_cannot_be_decoded(static: KubeStub, field: str, value: int,
                                                                  go_type: str):
    """A number past the field's Go integer type is refused as a value of the wrong type is, even
    from the typed client, which checks no range; the largest it holds is taken."""
    batch = client.BatchV1Api(api(static))
    too_large = job("too-large")
    too_large["spec"][field] = value
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", too_large))
    assert (status, message) == (400, f'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal number '
                                      f"{value} into Go struct field JobSpec.spec.{field} of type {go_type}")
    assert not static.jobs, "nothing refused is stored"
    largest = job("largest")
    largest["spec"][field] = {"int32": 2**31 - 1, "int64": 2**63 - 1}[go_type]
    batch.create_namespaced_job("katuna", largest)
    assert [j["metadata"]["name"] for j in static.jobs.values()] == ["largest"]


def test_a_job_field_its_schema_lacks_is_refused_under_strict_validation_and_warned_of_otherwise(static: KubeStub):
    """As the API server decodes a Job: ``fieldValidation=Strict`` refuses it naming each unknown
    field, the default (``Warn``) takes it with a warning for each, ``Ignore`` with none."""
    untyped = client.CustomObjectsApi(api(static))
    misspelt = job("misspelt")
    misspelt["spec"]["backofLimit"] = 2
    misspelt["spec"]["template"]["spec"]["containers"][0]["comand"] = ["python"]
    status, message = refusal(lambda: untyped.create_namespaced_custom_object(
        "batch", "v1", "katuna", "jobs", misspelt, field_validation="Strict"))
    assert (status, message) == (400, 'Job in version "v1" cannot be handled as a Job: strict decoding error: unknown '
                                      'field "spec.backofLimit", unknown field "spec.template.spec.containers[0].comand"')
    assert not static.jobs, "nothing refused is stored"
    for directive, warned in (("Warn", 2), ("Ignore", 0)):
        misspelt["metadata"]["name"] = f"misspelt-{directive.lower()}"
        _, code, headers = untyped.create_namespaced_custom_object_with_http_info(
            "batch", "v1", "katuna", "jobs", misspelt, field_validation=directive)
        assert code == 201 and len([w for w in headers.getlist("Warning") if "unknown field" in w]) == warned, directive


def test_a_quantity_is_a_json_number_or_a_string_and_what_is_none_is_refused_as_the_api_server_refuses_it(
        static: KubeStub):
    """``Quantity.UnmarshalJSON`` (k8s.io/apimachinery/pkg/api/resource/quantity.go) parses a
    number's text as it parses a string: a Job with ``cpu: 0.5`` or ``sizeLimit: 1000`` is taken
    (sent untyped: the typed client takes only strings). A value that is no quantity, in any
    quantity of the pod spec, cannot be decoded (400); a negative one is invalid (422)."""
    untyped = client.CustomObjectsApi(api(static))

    def create(body: dict) -> object:
        return untyped.create_namespaced_custom_object("batch", "v1", "katuna", "jobs", body)

    def shaped(name: str, resources: dict, size: object = 1000, init: dict | None = None) -> dict:
        made = job(name)
        pod = made["spec"]["template"]["spec"]
        pod["containers"][0]["resources"] = resources
        pod["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": size}}]
        if init is not None:
            pod["initContainers"] = [{"name": "init", "image": "busybox", "command": ["true"], "resources": init}]
        return made
    create(shaped("numbers", {"requests": {"cpu": 0.5}, "limits": {"cpu": 1, "example.com/fpga": 1}},
                  init={"limits": {"cpu": 0.25}}))
    assert ("katuna", "numbers") in static.jobs
    decode = ('Job in version "v1" cannot be handled as a Job: quantities must match the regular expression '
              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    for name, body in (("init", shaped("init", {}, init={"limits": {"cpu": "abc"}})),
                       ("size", shaped("size", {}, size="lots")), ("flag", shaped("flag", {"limits": {"cpu": True}}))):
        assert refusal(lambda body=body: create(body)) == (400, decode), name
    status, message = refusal(lambda: create(shaped("negative", {"limits": {"cpu": -1}})))
    assert status == 422 and 'spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be ' \
        "greater than or equal to 0" in message
    status, message = refusal(lambda: create(shaped("small", {}, size=-1000)))
    assert status == 422 and "spec.template.spec.volumes[0].emptyDir.sizeLimit: Forbidden: SizeLimit field must " \
        "be a valid resource quantity" in message
    assert set(static.jobs) == {("katuna", "numbers")}, "nothing refused is stored"


def test_a_job_patched_suspended_loses_its_running_pod_and_stays_and_its_template_is_immutable(static: KubeStub):
    """As the API server takes a merge patch of a Job: ``spec.suspend`` may change (the Job
    controller then deletes its active pods), its pod template may not (``ValidateJobSpecUpdate``)."""
    batch = client.BatchV1Api(api(static))
    batch.create_namespaced_job("katuna", job("held", "import time; time.sleep(300)"))
    eventually(lambda: [p for p in static.pods.values() if p["status"].get("phase") == "Running"], "its pod runs")
    merge = "application/merge-patch+json"
    batch.patch_namespaced_job("held", "katuna", {"spec": {"suspend": True}}, _content_type=merge)
    eventually(lambda: not [p for p in static.pods.values() if p["status"].get("phase") in ("Pending", "Running")],
               "its running pod is deleted")
    assert static.jobs[("katuna", "held")]["spec"]["suspend"] is True
    status, message = refusal(lambda: batch.patch_namespaced_job(
        "held", "katuna", {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}, _content_type=merge))
    assert status == 422 and "spec.template: Invalid value" in message and "field is immutable" in message


def test_a_jobs_fields_fixed_at_creation_are_refused_in_a_patch_as_the_api_server_refuses_them(static: KubeStub):
    """``ValidateJobSpecUpdate``: ``completionMode``, ``completions``, ``podFailurePolicy`` and
    the rest are immutable (422 ``field is immutable``, nothing changed); ``parallelism`` may
    change, and an Indexed Job's ``completions`` with it, to the same count (elastic Indexed Jobs)."""
    batch = client.BatchV1Api(api(static))
    batch.create_namespaced_job("katuna", job("fixed", suspend=True))
    batch.create_namespaced_job("katuna", job("elastic", suspend=True, completionMode="Indexed", completions=2,
                                              parallelism=2))
    merge = "application/merge-patch+json"

    def patched(name: str, spec: dict) -> tuple[int, str]:
        return refusal(lambda: batch.patch_namespaced_job(name, "katuna", {"spec": spec}, _content_type=merge))

    assert patched("fixed", {"completionMode": "Indexed"}) == (
        422, 'Job.batch "fixed" is invalid: spec.completionMode: Invalid value: "Indexed": field is immutable')
    assert patched("fixed", {"completions": 3, "parallelism": 3}) == (
        422, 'Job.batch "fixed" is invalid: spec.completions: Invalid value: 3: field is immutable')
    assert patched("fixed", {"podFailurePolicy": None})[1].endswith(
        'spec.podFailurePolicy: Invalid value: "null": field is immutable')
    assert patched("elastic", {"completions": 3}) == (
        422, 'Job.batch "elastic" is invalid: spec.completions: Invalid value: 3: can only be modified in tandem with '
             "spec.parallelism")
    spec = static.jobs[("katuna", "fixed")]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("NonIndexed", 1, 1)
    assert batch.patch_namespaced_job("fixed", "katuna", {"spec": {"parallelism": 0}}, _content_type=merge) \
        .spec.parallelism == 0
    grown = batch.patch_namespaced_job("elastic", "katuna", {"spec": {"completions": 3, "parallelism": 3}},
                                       _content_type=merge)
    assert (grown.spec.completions, grown.spec.parallelism) == (3, 3)


def with_pod(name: str, resources: dict | None = None, **pod) -> dict:
    """A Job as katuna renders one, with its container's ``resources`` and fields of its pod spec set."""
    made = job(name)
    made["spec"]["template"]["spec"].update(pod)
    if resources is not None:
        made["spec"]["template"]["spec"]["containers"][0]["resources"] = resources
    return made


def with_container(name: str, **fields) -> dict:
    """A Job as katuna renders one, with fields of its container set (None: removed)."""
    made = job(name)
    container = made["spec"]["template"]["spec"]["containers"][0]
    container.update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        del container[key]
    return made


def indexed(name: str, completions: int) -> dict:
    return job(name, completionMode="Indexed", completions=completions, parallelism=1)


def manual(name: str, selector: dict) -> dict:
    return job(name, manualSelector=True, selector=selector)


EXACT = {"requests": {"nvidia.com/gpu": "2", "cpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}


@pytest.mark.parametrize("body", [
    with_pod("gpu", EXACT),
    with_pod("huge", {"requests": {"hugepages-2Mi": "64Mi", "memory": "1Gi"}, "limits": {"hugepages-2Mi": "64Mi"}}),
    with_pod("pool", nodeSelector={"cloud.google.com/gke-nodepool": "trials", "empty": ""}, serviceAccountName="a.b-c",
             tolerations=[{"key": "katuna.dev/trial", "operator": "Exists"}, {"operator": "Exists"},
                          {"key": "spot", "value": "true", "effect": "NoExecute", "tolerationSeconds": 30},
                          {"key": "k", "operator": "Equal", "value": "v", "effect": ""}]),
    job("replace", podReplacementPolicy="Failed"),
    with_container("env", env=[{"name": "1st.relaxed-name$", "value": "x"}], imagePullPolicy="Never",
                   ports=[{"containerPort": 65535, "hostPort": 1, "protocol": "UDP"}]),
    with_pod("init", initContainers=[{"name": "fetch", "image": "busybox"}]),
    with_pod("native", initContainers=[{"name": "proxy", "image": "busybox", "restartPolicy": "Always"}]),
    manual("manual", {"matchLabels": {"app": "t"}}),
    indexed("i" * 61, 10),
])
def test_pod_fields_the_api_server_takes_are_accepted(static: KubeStub, body: dict):
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", body)


POD = "spec.template.spec"
CONTAINER = f"{POD}.containers[0].resources"


@pytest.mark.parametrize("body,cause", [
    (with_pod("a", {"requests": {"gpus": "1"}, "limits": {"gpus": "1"}}),
     f'{CONTAINER}.limits[gpus]: Invalid value: "gpus": must be a standard resource for containers'),
    (with_pod("b", {"requests": {"nvidia.com/gpu": "0.5"}, "limits": {"nvidia.com/gpu": "0.5"}}),
     f'{CONTAINER}.requests[nvidia.com/gpu]: Invalid value: "0.5": must be an integer'),
    (with_pod("c", {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}),
     f'{CONTAINER}.requests: Invalid value: "1": must be equal to nvidia.com/gpu limit of 2'),
    (with_pod("d", {"requests": {"cpu": "-1"}}), f'{CONTAINER}.requests[cpu]: Invalid value: "-1": must be greater'),
    (with_pod("e", nodeSelector={"gpu": "nvidia tesla"}),
     f'{POD}.nodeSelector: Invalid value: "nvidia tesla": a valid label must be an empty string'),
    (with_pod("f", nodeSelector={"-gpu": "x"}), f'{POD}.nodeSelector: Invalid value: "-gpu": name part must consist'),
    (with_pod("g", tolerations=[{"key": "k", "operator": "Exists", "value": "true", "effect": "NoSchedule"}]),
     f'{POD}.tolerations[0].operator: Invalid value: "true": value must be empty when `operator` is \'Exists\''),
    (with_pod("h", tolerations=[{"key": "k", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 30}]),
     f'{POD}.tolerations[0].effect: Invalid value: "NoSchedule": effect must be \'NoExecute\' when'),
    (with_pod("i", tolerations=[{"key": "k", "value": "v", "effect": "NoSchedul"}]),
     f'{POD}.tolerations[0].effect: Unsupported value: "NoSchedul": supported values: "NoSchedule"'),
    (with_pod("j", tolerations=[{"key": "k", "operator": "In", "value": "v"}]),
     f'{POD}.tolerations[0].operator: Unsupported value: "In": supported values: "Equal", "Exists"'),
    (with_pod("k", tolerations=[{"value": "v"}]),
     f'{POD}.tolerations[0].operator: Invalid value: "": operator must be Exists when `key` is empty'),
    (with_pod("l", serviceAccountName="Trainer_SA"),
     f'{POD}.serviceAccountName: Invalid value: "Trainer_SA": a lowercase RFC 1123 subdomain'),
    (job("m", podReplacementPolicy="TerminatingOrFailed"),
     'spec.podReplacementPolicy: Unsupported value: "TerminatingOrFailed": supported values: "Failed"'),
    (with_container("n", image=None), f"{POD}.containers[0].image: Required value"),
    (with_container("o", imagePullPolicy="always"),
     f'{POD}.containers[0].imagePullPolicy: Unsupported value: "always": supported values: "Always", '
     '"IfNotPresent", "Never"'),
    (with_container("p", ports=[{"containerPort": 70000}]),
     f"{POD}.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    (with_container("q", ports=[{"containerPort": 80, "hostPort": -1}]),
     f"{POD}.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive"),
    (with_container("r", env=[{"name": "A=B", "value": "1"}]),
     f'{POD}.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only '
     "of printable ASCII characters other than '='"),
    (with_container("s", env=[{"name": "", "value": "1"}]), f"{POD}.containers[0].env[0].name: Required value"),
    (with_pod("t", containers=[{"name": "trial", "image": "a"}, {"name": "trial", "image": "b"}]),
     f'{POD}.containers[1].name: Duplicate value: "trial"'),
    (with_pod("u", initContainers=[{"name": "trial", "image": "busybox"}]),
     f'{POD}.initContainers[0].name: Duplicate value: "trial"'),
    (with_container("x", restartPolicy="Always"),
     f"{POD}.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"),
    (with_pod("y", initContainers=[{"name": "fetch", "image": "busybox", "restartPolicy": "Never"}]),
     f'{POD}.initContainers[0].restartPolicy: Unsupported value: "Never": supported values: "Always"'),
    (manual("v", {"matchLabels": {"app": "other"}}),
     'spec.template.metadata.labels: Invalid value: {"app":"t"}: `selector` does not match template `labels`'),
    (job("w", manualSelector=True), "spec.selector: Required value"),
    (indexed("i" * 61, 11), f'metadata.name: Invalid value: "{"i" * 61}": will not able to create pod with invalid '
                            f'DNS label: {"i" * 61}-10'),
    (indexed("i" * 62, 1), "will not able to create pod with invalid DNS label"),
])
def test_pod_fields_the_api_server_refuses_are_refused_naming_the_field(static: KubeStub, body: dict, cause: str):
    status, message = refusal(lambda: client.BatchV1Api(api(static)).create_namespaced_job("katuna", body))
    assert status == 422 and cause in message, message
    assert not static.jobs, "nothing refused is stored"


@pytest.mark.parametrize(("labels", "refused"), [
    ({"optimizer": "${trialParameters.opt}"}, 'Invalid value: "${trialParameters.opt}": a valid label must be an '
                                              "empty string or consist of alphanumeric characters"),
    ({"optimizer": "sgd momentum"}, 'Invalid value: "sgd momentum": a valid label must be'),
    ({"optimizer": "-sgd"}, 'Invalid value: "-sgd": a valid label must be'),
    ({"optimizer": "s" * 64}, f'Invalid value: "{"s" * 64}": must be no more than 63 characters'),
    ({"bad key": "x"}, 'Invalid value: "bad key": name part must consist of alphanumeric characters'),
    ({"Katuna.dev/x": "x"}, 'Invalid value: "Katuna.dev/x": prefix part a lowercase RFC 1123 subdomain must'),
    ({"/x": "x"}, 'Invalid value: "/x": prefix part must be non-empty'),
    ({"a/b/c": "x"}, 'Invalid value: "a/b/c": a qualified name must consist of'),
    ({"k" * 64: "x"}, f'Invalid value: "{"k" * 64}": name part must be no more than 63 characters'),
])
@pytest.mark.parametrize("where", ["metadata.labels", "spec.template.labels"])
def test_a_job_whose_labels_the_api_server_would_not_take_is_refused_naming_them(static: KubeStub, labels: dict,
                                                                                 refused: str, where: str):
    """``ValidateObjectMeta`` on the Job's labels and on its pod template's (``IsValidLabelValue``,
    ``IsQualifiedName``), the template's named as ``ValidatePodTemplateSpec`` names them, without
    the ``metadata`` they are under."""
    body = job("labelled")
    (body if where == "metadata.labels" else body["spec"]["template"]).setdefault("metadata", {})["labels"] = labels
    status, message = refusal(lambda: client.BatchV1Api(api(static)).create_namespaced_job("katuna", body))
    assert status == 422 and message.startswith(f'Job.batch "labelled" is invalid: {where}: {refused}'), message
    assert not static.jobs


def test_labels_the_api_server_takes_are_taken(static: KubeStub):
    body = job("labelled")
    body["metadata"]["labels"] = {"example.com/Team_1": "Vision.v2", "empty": "", "n": "9" * 63}
    body["metadata"]["annotations"] = {"Example.COM/Note": "any text: spaces, ${x} and all", "n": "9" * 200_000}
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", body)
    assert static.jobs[("katuna", "labelled")]["metadata"]["labels"] == body["metadata"]["labels"]
    assert static.jobs[("katuna", "labelled")]["metadata"]["annotations"] == body["metadata"]["annotations"], \
        "an annotation's key is checked lower-cased, and its value is any text"


def test_a_job_delete_whose_precondition_fails_is_a_conflict_and_deletes_nothing(static: KubeStub):
    batch = client.BatchV1Api(api(static))
    created = batch.create_namespaced_job("katuna", job("kept", "import time; time.sleep(30)"))
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-its-uid"))
    status, message = refusal(lambda: batch.delete_namespaced_job("kept", "katuna", body=stale,
                                                                  propagation_policy="Background"))
    assert status == 409 and message == ('Operation cannot be fulfilled on Job.batch "kept": the UID in the '
                                         f"precondition (not-its-uid) does not match the UID in record "
                                         f"({created.metadata.uid}). The object might have been deleted and then "
                                         "recreated")
    older = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
    before = int(static.jobs[("katuna", "kept")]["metadata"]["resourceVersion"])
    status, message = refusal(lambda: batch.delete_namespaced_job("kept", "katuna", body=older))
    after = int(static.jobs[("katuna", "kept")]["metadata"]["resourceVersion"])
    refused = re.fullmatch(r'Operation cannot be fulfilled on Job\.batch "kept": the ResourceVersion in the precondition '
                           r"\(1\) does not match the ResourceVersion in record \((\d+)\)\. The object might have been modified",
                           message)
    assert status == 409 and refused, message
    assert before <= int(refused[1]) <= after, "the Job's version as it was when refused (its controller moves it on)"
    assert ("katuna", "kept") in static.jobs
    own = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid),
                                 propagation_policy="Background")
    batch.delete_namespaced_job("kept", "katuna", body=own)
    assert ("katuna", "kept") not in static.jobs
    eventually(lambda: not pods_of(static, "kept"), "the garbage collector deletes the Job's pods after it")


def test_a_delete_with_a_body_takes_its_options_from_the_body_alone_and_a_job_orphans_its_pods_by_default(
        static: KubeStub):
    """As the API server decodes delete options: from the body when there is one, the query
    parameters ignored then; from the query otherwise. A Job delete that leaves the propagation
    policy unset keeps its pods (``batch/v1``'s default, ``Orphan``), and the answer warns of it."""
    batch = client.BatchV1Api(api(static))
    for name in ("queried", "bodied", "background"):
        batch.create_namespaced_job("katuna", job(name, "import time; time.sleep(30)"))
        eventually(lambda name=name: pods_of(static, name), f"{name} has its pod")
    warned = {}
    for name, body in (("queried", None), ("bodied", client.V1DeleteOptions(preconditions=client.V1Preconditions())),
                       ("background", client.V1DeleteOptions(propagation_policy="Background"))):
        _, _, headers = batch.delete_namespaced_job_with_http_info(name, "katuna", body=body,
                                                                   propagation_policy="Background")
        warned[name] = headers.get("Warning")
    assert all(p["metadata"].get("deletionTimestamp") for p in pods_of(static, "queried") + pods_of(static, "background"))
    eventually(lambda: not pods_of(static, "queried") and not pods_of(static, "background"),
               "the deleted Jobs' pods go once their containers stopped")
    assert [p["metadata"]["ownerReferences"] for p in pods_of(static, "bodied")] == [[]], "orphaned"
    assert warned == {"queried": None, "background": None, "bodied": (
        '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to '
        'remove them"')}


def test_a_failed_pod_is_replaced_after_the_controllers_back_off(static: KubeStub):
    static.backoff_seconds = 2
    version = static.history.version
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("retry", "raise SystemExit(1)", backoffLimit=1))
    eventually(lambda: condition(static, "retry"), "the Job fails after its second pod")
    pods = [c.object for c in static.changes_since(version, "pods") if c.type == "ADDED"]
    first_failed = pods_of(static, "retry")[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert len(pods) == 2 and pods[1]["metadata"]["creationTimestamp"] > first_failed, "not at once"


def test_deleting_a_pod_ends_every_process_of_its_container(static: KubeStub, tmp_path: Path):
    """A container's processes end with it, children included (its PID namespace goes): a
    helper a trial's command started in the background must not outlive the pod."""
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    batch = client.BatchV1Api(api(static))
    batch.create_namespaced_job("katuna", job("tree", code))
    deadline = time.monotonic() + START_WAIT
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the container started its child"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    batch.delete_namespaced_job("tree", "katuna", propagation_policy="Background")
    while alive(child):
        assert time.monotonic() < deadline + 10, "the container's child ended with its pod"
        time.sleep(0.05)


@pytest.mark.parametrize("selector,reason", [
    ("job role=master", "key: Invalid value: 'job role': name part must consist"),
    ("role=chief worker", "values[0]: Invalid value: 'chief worker': a valid label must be"),
    ("role in (a b)", "values[0]: Invalid value: 'a b'"),
    ("role=a,,x", "found ',', expected: identifier"),
])
def test_a_label_selector_no_label_could_match_is_refused(static: KubeStub, selector: str, reason: str):
    """The API server parses a selector before it lists or watches (400), as it reads the
    ``primaryPodLabels`` a study names and the selectors katuna builds from them."""
    core = client.CoreV1Api(api(static))
    status, message = refusal(lambda: core.list_namespaced_pod("katuna", label_selector=selector))
    assert status == 400 and message.startswith("unable to parse requirement: ") and reason in message, message
    watcher = client.BatchV1Api(api(static, "system:serviceaccount:katuna:katuna-jobs-source"))
    status, _ = refusal(lambda: watcher.list_namespaced_job("katuna", label_selector=selector, watch=True,
                                                            timeout_seconds=1))
    assert status == 400, "a watch is refused the same"


def test_set_based_selectors_select_as_the_api_server_does(static: KubeStub):
    batch = client.BatchV1Api(api(static))
    for name, role in (("one", "chief"), ("two", "worker"), ("three", None)):
        body = job(name)
        if role:
            body["metadata"]["labels"] = {"role": role}
        batch.create_namespaced_job("katuna", body)

    def names(selector: str) -> list[str]:
        return sorted(j.metadata.name for j in batch.list_namespaced_job("katuna", label_selector=selector).items)

    assert names("role in (chief, ps)") == ["one"]
    assert names("role notin (chief)") == ["three", "two"], "notin takes the jobs without the label too"
    assert names("role") == ["one", "two"] and names("!role") == ["three"]
    assert names("role!=worker") == ["one", "three"] and names("role==worker") == ["two"]


def test_a_katib_trial_delete_honours_its_uid_precondition_and_an_experiments_delete_its_propagation(static: KubeStub):
    """As the API server: a delete whose uid precondition fails is a 409 and deletes nothing; an
    Experiment deleted with ``Orphan`` leaves its Trials unowned, and otherwise the garbage
    collector deletes them once it notices (``gc_seconds`` after), not with the Experiment."""
    from kube_standin import katib_api

    katib_api.install(static)
    objects = client.CustomObjectsApi(api(static))
    experiments = []
    for name in ("orphaned", "collected"):
        experiments.append(static.apply({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                                         "metadata": {"name": name, "namespace": "default"}, "spec": {}}))
        owner = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": name,
                 "uid": experiments[-1]["metadata"]["uid"], "controller": True}
        objects.create_namespaced_custom_object("kubeflow.org", "v1beta1", "default", "trials", {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
            "metadata": {"name": f"{name}-0", "ownerReferences": [owner]}, "spec": {}})
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-its-uid"))
    status, message = refusal(lambda: objects.delete_namespaced_custom_object(
        "kubeflow.org", "v1beta1", "default", "trials", "orphaned-0", body=stale))
    assert status == 409 and message.startswith('Operation cannot be fulfilled on Trial.kubeflow.org "orphaned-0": '
                                                "the UID in the precondition (not-its-uid) does not match")

    static.gc_seconds = 3600
    static.delete("Experiment", "default", "orphaned", "kubeflow.org/v1beta1", cascade="orphan")
    static.delete("Experiment", "default", "collected", "kubeflow.org/v1beta1")
    trials = ("trials.kubeflow.org", "default")
    with static.lock:
        assert static.resources[(*trials, "orphaned-0")]["metadata"]["ownerReferences"] == []
        assert static.resources[(*trials, "collected-0")]["metadata"]["ownerReferences"][0]["name"] == "collected"
    katib_api.collect_due(static, static.clock.monotonic() + 3600)
    with static.lock:
        assert (*trials, "orphaned-0") in static.resources and (*trials, "collected-0") not in static.resources


def test_a_dry_run_create_is_checked_defaulted_and_answered_as_a_create_and_stores_nothing(static: KubeStub):
    """``dryRun=All``, as the API server takes it: the object is validated and defaulted and
    answered 201 as created, but nothing is stored and no controller sees it; a refusal is the
    create's (422, or 409 for a name taken); any other value is refused as an invalid option."""
    batch = client.BatchV1Api(api(static))
    answered = batch.create_namespaced_job("katuna", job("dry"), dry_run="All")
    assert answered.metadata.uid and answered.spec.completions == 1 and answered.spec.backoff_limit == 0
    assert answered.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": answered.metadata.uid}
    time.sleep(0.5)
    assert ("katuna", "dry") not in static.jobs and not pods_of(static, "dry") and "dry" not in static.created
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", with_container("dry", image=None),
                                                                  dry_run="All"))
    assert (status, message) == (422, 'Job.batch "dry" is invalid: spec.template.spec.containers[0].image: '
                                      "Required value")
    batch.create_namespaced_job("katuna", job("dry"))
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", job("dry"), dry_run="All"))
    assert (status, message) == (409, 'jobs.batch "dry" already exists')
    status, message = refusal(lambda: batch.create_namespaced_job("katuna", job("other"), dry_run="Server"))
    assert (status, message) == (422, 'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
                                      '["Server"]: supported values: "All"')
    assert ("katuna", "other") not in static.jobs


def test_a_dry_run_create_of_a_custom_object_stores_nothing_and_its_operator_makes_nothing(static: KubeStub):
    static.install_operator("training-operator")
    objects = client.CustomObjectsApi(api(static))
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.12", "command": [sys.executable, "-c", "print(1)"]}]}}}
    body = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "dry"},
            "spec": {"pytorchReplicaSpecs": {"Master": replica}}}
    answered = objects.create_namespaced_custom_object("kubeflow.org", "v1", "katuna", "pytorchjobs", body,
                                                       dry_run="All")
    assert answered["metadata"]["uid"] and answered["metadata"]["namespace"] == "katuna"
    time.sleep(0.5)
    assert not static.workloads and not pods_of(static, "dry") and not static.pods


def test_a_disruption_due_before_the_container_exits_comes_first_however_late_the_kubelet_looks(static: KubeStub):
    """A busy machine may stall the stand-in's control loop past both a pod's disruption and its
    container's exit: the disruption, due first, still wins, as it would on a node."""
    static.disrupt = lambda name, index: 1.0 if index == 0 else None
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job("late", "import time; time.sleep(1.5)"))
    def running() -> bool:
        with static.lock:
            return any(p["status"].get("phase") == "Running" for p in static.pods.values())
    eventually(running, "the pod to run")
    with static.lock:
        time.sleep(2.5)
    eventually(lambda: static.disrupted == [("late", 0)], "the disruption, though its container exited since")
    eventually(lambda: static.jobs[("katuna", "late")]["status"].get("succeeded") == 1, "the replacement to succeed")


def test_the_pod_of_a_job_named_near_63_characters_is_named_by_its_name_cut_as_the_api_server_cuts_it(
        static: KubeStub):
    """A ``generateName`` longer than 58 characters is cut there before the five random ones
    (``MaxGeneratedNameLength``): a pod name is 63 characters at most, and such a Job's pods do
    not begin with its name and ``-``."""
    name = "y" * 63
    client.BatchV1Api(api(static)).create_namespaced_job("katuna", job(name))
    [pod] = eventually(lambda: pods_of(static, name), "the Job's pod")
    assert len(pod["metadata"]["name"]) == 63 and pod["metadata"]["name"].startswith("y" * 58)
    assert not pod["metadata"]["name"].startswith(f"{name}-")


def test_a_job_another_controller_manages_gets_no_pod_and_no_status_from_the_job_controller(static: KubeStub):
    """``syncJob`` skips a Job whose ``managedBy`` names another controller (MultiKueue, which runs
    it on a worker cluster): nothing here makes its pods, starts its clock or ends it."""
    batch = client.BatchV1Api(api(static))
    batch.create_namespaced_job("katuna", job("elsewhere", managedBy="kueue.x-k8s.io/multikueue",
                                              activeDeadlineSeconds=1))
    batch.create_namespaced_job("katuna", job("here", managedBy="kubernetes.io/job-controller"))
    eventually(lambda: condition(static, "here"), "the Job the built-in controller manages runs to its end")
    assert not pods_of(static, "elsewhere") and static.jobs[("katuna", "elsewhere")]["status"] == {}
