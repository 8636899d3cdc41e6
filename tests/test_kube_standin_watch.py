"""Watches on the loopback Kubernetes API, through the real ``kubernetes`` client's ``Watch``:
every change in order from a list's resourceVersion, 410 Gone past the kept window, bookmarks."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import study_definition
from kube_stub import KubeStub
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

JOBS_SOURCE = "system:serviceaccount:katuna:katuna-jobs-source"
STUDIES_SOURCE = "system:serviceaccount:katuna:katuna-studies-source"


def api(kube: KubeStub, user: str) -> client.ApiClient:
    return client.ApiClient(kube.configuration(user))


def study(name: str) -> dict:
    """A Study resource in katuna's namespace, as a user applies one."""
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": "katuna"},
            "spec": study_definition(name)}


def job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {"katuna.dev/study": "w"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "trial", "image": "python:3.12", "command": [sys.executable, "-c", "print(1)"]}]}}}}


@pytest.fixture()
def kube():
    stub = KubeStub(history=50)
    yield stub
    stub.close()


def test_a_watch_from_a_lists_version_sees_every_change_of_a_job_in_order(kube: KubeStub):
    jobs = client.BatchV1Api(api(kube, JOBS_SOURCE))
    version = jobs.list_namespaced_job("katuna").metadata.resource_version
    kube.create_job("katuna", job("watched"))
    seen: list[tuple[str, int, bool]] = []
    for event in watch.Watch().stream(jobs.list_namespaced_job, "katuna", resource_version=version,
                                      label_selector="katuna.dev/study=w", timeout_seconds=30):
        obj = event["object"]
        done = any(c.type == "Complete" for c in (obj.status.conditions or []))
        seen.append((event["type"], int(obj.metadata.resource_version), done))
        if done and event["type"] == "MODIFIED":
            kube.delete_job("katuna", "watched", "Background")
        if event["type"] == "DELETED":
            break
    types = [t for t, _, _ in seen]
    assert types[0] == "ADDED" and types[-1] == "DELETED" and set(types[1:-1]) == {"MODIFIED"}
    versions = [v for _, v, _ in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions) and versions[0] > int(version)


def test_a_watch_without_a_version_starts_with_what_exists(kube: KubeStub):
    kube.apply(study("s"))
    objects = client.CustomObjectsApi(api(kube, STUDIES_SOURCE))
    stream = watch.Watch().stream(objects.list_namespaced_custom_object, "katuna.dev", "v1", "katuna", "studies",
                                  timeout_seconds=5)
    first = next(stream)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "s")
    kube.patch_status("studies", "katuna", "s", {"status": {"phase": "Running"}})
    second = next(stream)
    assert (second["type"], second["object"]["status"]) == ("MODIFIED", {"phase": "Running"})


def test_a_watch_from_a_version_older_than_the_window_is_gone(kube: KubeStub):
    jobs = client.BatchV1Api(api(kube, JOBS_SOURCE))
    old = jobs.list_namespaced_job("katuna").metadata.resource_version
    for n in range(60):
        kube.add_namespace(f"churn-{n}", grant=False)
    with pytest.raises(ApiException) as gone:
        next(watch.Watch().stream(jobs.list_namespaced_job, "katuna", resource_version=old, timeout_seconds=5))
    assert gone.value.status == 410 and "too old resource version" in gone.value.reason
    current = jobs.list_namespaced_job("katuna").metadata.resource_version
    assert list(watch.Watch().stream(jobs.list_namespaced_job, "katuna", resource_version=current,
                                     timeout_seconds=1)) == [], "a version from a fresh list is fine"


def test_an_idle_watch_gets_bookmarks_when_it_asks(kube: KubeStub):
    kube.bookmark_seconds = 0.1
    jobs = client.BatchV1Api(api(kube, JOBS_SOURCE))
    version = jobs.list_namespaced_job("katuna").metadata.resource_version
    event = next(watch.Watch().stream(jobs.list_namespaced_job, "katuna", resource_version=version,
                                      allow_watch_bookmarks=True, timeout_seconds=10))
    assert event["type"] == "BOOKMARK" and int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(version)


def test_a_watch_is_authorized_like_any_request(kube: KubeStub):
    katuna = client.BatchV1Api(api(kube, "system:serviceaccount:katuna:katuna"))
    with pytest.raises(ApiException) as refused:
        next(watch.Watch().stream(katuna.list_namespaced_job, "katuna", timeout_seconds=1))
    assert refused.value.status == 403


def test_a_list_comes_a_page_at_a_time_and_refuses_a_token_it_did_not_issue(kube: KubeStub):
    for name in ("c", "a", "b"):
        kube.apply(study(name))
    objects = client.CustomObjectsApi(api(kube, STUDIES_SOURCE))
    first = objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", limit=2)
    rest = objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", limit=2,
                                                 _continue=first["metadata"]["continue"])
    assert [o["metadata"]["name"] for o in first["items"] + rest["items"]] == ["a", "b", "c"]
    assert "continue" not in rest["metadata"]
    with pytest.raises(ApiException) as refused:
        objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", _continue="after:b")
    assert refused.value.status == 400


def test_a_python_side_watch_follows_the_same_changes(kube: KubeStub):
    version = kube.history.version
    kube.create_job("katuna", job("followed"))
    events = kube.follow("jobs", version, seconds=30)
    added = next(events)
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "followed")
    assert next(events)["object"]["status"].get("startTime"), "the Job controller's first sync"


def test_a_page_tells_how_many_remain_unless_a_selector_filters_and_an_expired_token_is_410(kube: KubeStub):
    """As etcd3's ``GetList``: ``remainingItemCount`` only where no selector filters the list;
    a token whose version was compacted (left the kept history) is 410 Expired, with a token
    that continues at the latest version."""
    for name in ("c", "a", "b"):
        kube.apply(study(name))
    objects = client.CustomObjectsApi(api(kube, STUDIES_SOURCE))
    first = objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", limit=1)
    assert first["metadata"]["remainingItemCount"] == 2
    selected = objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", limit=1,
                                                     label_selector="team!=none")
    assert "remainingItemCount" not in selected["metadata"] and selected["metadata"]["continue"]
    for number in range(60):
        kube.apply(study(f"z{number}"))
    with pytest.raises(ApiException) as expired:
        objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", limit=1,
                                              _continue=first["metadata"]["continue"])
    body = json.loads(expired.value.body)
    assert (expired.value.status, body["reason"]) == (410, "Expired")
    assert body["message"].startswith("The provided continue parameter is too old to display a consistent list result")
    rest = objects.list_namespaced_custom_object("katuna.dev", "v1", "katuna", "studies", limit=2,
                                                 _continue=body["metadata"]["continue"])
    assert [o["metadata"]["name"] for o in rest["items"]] == ["b", "c"]
