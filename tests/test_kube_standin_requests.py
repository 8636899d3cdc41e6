"""Requests the loopback Kubernetes API answers as a real API server does, where it once took
what a real one refuses or does not do: a dry-run delete deletes nothing, a Job's merge patch is
decoded and held to the Job's identity, a write's options are validated before anything is
done (a ``dryRun`` other than ``All`` acts on nothing), a Secret's ownerReferences are validated whole, a log's
``timestamps`` is read as any boolean query parameter, a log's line longer than 16 KiB is
served from the several records the runtime wrote it as, a list's or a watch's field
selector selects, or is refused where it names a field its kind does not make selectable (a
collection delete's of Jobs too), and a
quota tracking cpu or memory refuses a pod one of whose containers does not ask for them (a
limit given alone standing for its request)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid

import pytest
from kube_stub import KubeStub
from kubernetes import client
from test_kube_standin import api as kube_api
from test_kube_standin import job, refusal
from waiting import eventually

MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub()
    yield stub
    stub.close()


def raw(kube: KubeStub, method: str, path: str, body: object = None, content_type: str = MERGE) -> tuple[int, object]:
    """A request as sent, as katuna's ServiceAccount, for what the client will not send as asked."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(kube.url + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
            return answer.status, json.loads(text) if answer.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_dry_run_delete_answers_as_done_and_deletes_nothing(kube: KubeStub):
    batch, core = client.BatchV1Api(client.ApiClient(kube.configuration())), client.CoreV1Api(
        client.ApiClient(kube.configuration()))
    batch.create_namespaced_job("katuna", job("dry-delete", "import time; time.sleep(60)"))
    core.create_namespaced_secret("katuna", {"metadata": {"name": "dry-delete"}, "data": {"k": "dg=="}})
    batch.delete_namespaced_job("dry-delete", "katuna", dry_run="All", propagation_policy="Background")
    core.delete_collection_namespaced_secret("katuna", field_selector="metadata.name=dry-delete", dry_run="All")
    assert ("katuna", "dry-delete") in kube.jobs and ("katuna", "dry-delete") in kube.secrets
    status, _ = raw(kube, "DELETE", "/apis/batch/v1/namespaces/katuna/jobs/dry-delete",
                    {"dryRun": ["All"], "propagationPolicy": "Background"})
    assert status == 200 and ("katuna", "dry-delete") in kube.jobs, "a body's dryRun too"
    batch.delete_namespaced_job("dry-delete", "katuna", propagation_policy="Background")
    core.delete_collection_namespaced_secret("katuna", field_selector="metadata.name=dry-delete")
    assert ("katuna", "dry-delete") not in kube.jobs and ("katuna", "dry-delete") not in kube.secrets


@pytest.mark.parametrize(("query", "patch", "code", "words"), [
    ("", {"spec": {"suspend": "yes"}}, 422, "patch: Invalid value: "),
    ("", {"spec": None}, 422, "spec.template: Invalid value: "),
    ("?fieldValidation=Strict", {"spec": {"suspendd": True}}, 422, 'strict decoding error: unknown field "spec.suspendd"'),
    ("?fieldValidation=Bogus", {"spec": {"suspend": True}}, 422, 'PatchOptions.meta.k8s.io "" is invalid: '
                                                                 'fieldValidation: Unsupported value: "Bogus"'),
    ("", {"metadata": {"name": "other"}}, 400, "the name of the object (other) does not match the name on the URL"),
    ("", {"metadata": {"uid": "0000"}}, 409, "Precondition failed: UID in precondition: 0000, UID in object meta: "),
])
def test_a_job_patch_the_api_server_refuses_is_refused_and_changes_nothing(kube: KubeStub, query, patch, code, words):
    name = f"patched-{uuid.uuid4().hex[:10]}"  # a Job of its own for each case, in the shared stand-in
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job(
        "katuna", job(name, "import time; time.sleep(60)"))
    before = json.dumps(kube.jobs[("katuna", name)]["spec"], sort_keys=True)
    status, body = raw(kube, "PATCH", f"/apis/batch/v1/namespaces/katuna/jobs/{name}{query}", patch)
    assert status == code and words in body["message"], body
    assert json.dumps(kube.jobs[("katuna", name)]["spec"], sort_keys=True) == before


def test_a_job_patch_keeps_its_annotations_and_a_dry_run_stores_nothing(kube: KubeStub):
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job(
        "katuna", job("annotated", "import time; time.sleep(60)"))
    path = "/apis/batch/v1/namespaces/katuna/jobs/annotated"
    status, body = raw(kube, "PATCH", path + "?dryRun=All", {"spec": {"parallelism": 0}})
    assert (status, body["spec"]["parallelism"]) == (200, 0)
    assert kube.jobs[("katuna", "annotated")]["spec"].get("parallelism") != 0
    status, _ = raw(kube, "PATCH", path, {"metadata": {"annotations": {"team": "vision"}}})
    assert status == 200 and kube.jobs[("katuna", "annotated")]["metadata"]["annotations"] == {"team": "vision"}


JOBS = "/apis/batch/v1/namespaces/katuna/jobs"
NOT_ALL = 'Unsupported value: ["Bogus"]: supported values: "All"'


@pytest.mark.parametrize(("method", "path", "body", "kind", "field", "words"), [
    ("PATCH", "/{name}?dryRun=Bogus", {"metadata": {"labels": {"a": "b"}}}, "PatchOptions", "dryRun", NOT_ALL),
    ("PATCH", "/{name}?dryRun=All&dryRun=Bogus", {"metadata": {"labels": {"a": "b"}}}, "PatchOptions", "dryRun",
     'Unsupported value: ["All","Bogus"]: supported values: "All"'),
    ("POST", "?fieldValidation=Bogus", "job", "CreateOptions", "fieldValidation",
     'Unsupported value: "Bogus": supported values: "", "Ignore", "Strict", "Warn"'),
    ("DELETE", "/{name}", {"dryRun": ["Bogus"], "propagationPolicy": "Background"}, "DeleteOptions", "dryRun", NOT_ALL),
    ("DELETE", "/{name}?dryRun=Bogus&propagationPolicy=Background", None, "DeleteOptions", "dryRun", NOT_ALL),
    ("DELETE", "?labelSelector=app%3Dt&dryRun=Bogus", None, "DeleteOptions", "dryRun", NOT_ALL),
    ("DELETE", "/{name}", {"propagationPolicy": "Bogus"}, "DeleteOptions", "propagationPolicy",
     'Unsupported value: "Bogus": supported values: "Foreground", "Background", "Orphan", "nil"'),
])
def test_a_writes_options_the_api_server_refuses_are_refused_and_nothing_is_done(kube: KubeStub, method, path, body,
                                                                                kind, field, words):
    """As the API server validates a write's options (``ValidatePatchOptions`` and the rest)
    before it acts: 422 naming the options' kind, and the Job is neither patched nor deleted,
    nor made."""
    name = f"options-{abs(hash((method, path, json.dumps(body)))) % 10_000}"
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job(
        "katuna", job(name, "import time; time.sleep(60)"))
    before = json.dumps(_identity(kube.jobs[("katuna", name)]), sort_keys=True)
    sent = job(f"{name}-new") if body == "job" else body
    status, answer = raw(kube, method, JOBS + path.format(name=name), sent)
    assert (status, answer["reason"], answer["details"]) == (422, "Invalid", {
        "name": "", "group": "meta.k8s.io", "kind": kind,
        "causes": [{"reason": "FieldValueNotSupported", "message": words, "field": field}]}), answer
    assert answer["message"] == f'{kind}.meta.k8s.io "" is invalid: {field}: {words}'
    assert json.dumps(_identity(kube.jobs[("katuna", name)]), sort_keys=True) == before
    assert ("katuna", f"{name}-new") not in kube.jobs
    assert ("katuna", f"{name}-new") not in kube.jobs


def test_a_deletes_options_are_its_bodys_and_must_decode(kube: KubeStub):
    """A delete with a body is read from its body alone, a ``dryRun`` of its query then unread;
    a body whose ``dryRun`` is no list of strings cannot be decoded (400), and deletes nothing."""
    batch = client.BatchV1Api(client.ApiClient(kube.configuration()))
    batch.create_namespaced_job("katuna", job("body-options", "import time; time.sleep(60)"))
    status, answer = raw(kube, "DELETE", f"{JOBS}/body-options", {"dryRun": "All", "propagationPolicy": "Background"})
    assert (status, answer["message"]) == (400, "json: cannot unmarshal string into Go struct field "
                                                "DeleteOptions.dryRun of type []string")
    assert ("katuna", "body-options") in kube.jobs
    status, _ = raw(kube, "DELETE", f"{JOBS}/body-options?dryRun=Bogus", {"propagationPolicy": "Background"})
    assert status == 200 and ("katuna", "body-options") not in kube.jobs


def test_a_patchs_type_is_checked_before_its_options_and_its_options_before_its_object(kube: KubeStub):
    """A patch of a type the API server does not take is 415 whatever its options; a patch's
    options are refused before its object is looked for (a custom resource's status here)."""
    status, _ = raw(kube, "PATCH", f"{JOBS}/absent?dryRun=Bogus", {"spec": {}}, "application/yaml")
    assert status == 415
    status, answer = raw(kube, "PATCH", "/apis/katuna.dev/v1/namespaces/katuna/studies/absent/status?dryRun=Bogus",
                         {"status": {}})
    assert (status, answer["details"]["kind"]) == (422, "PatchOptions"), answer


def _identity(obj: dict) -> str:
    """What a write would change of a Job (not its status, nor the resourceVersion its controller's writes move)."""
    return json.dumps([obj["spec"], obj["metadata"].get("labels"), obj["metadata"].get("annotations")], sort_keys=True)


@pytest.mark.parametrize(("owners", "field", "words"), [
    ([{"apiVersion": "a/b/c", "kind": "Job", "name": "j", "uid": "1"}], "metadata.ownerReferences[0].apiVersion",
     'Invalid value: "a/b/c": must be <group>/<version> or <version>'),
    ([{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}], "metadata.ownerReferences[0]",
     "/v1, Kind=Event is disallowed from being an owner"),
    ([{"apiVersion": "batch/v1", "kind": "Job", "name": n, "uid": n, "controller": True} for n in ("a", "b")],
     "metadata.ownerReferences", 'Only one reference can have Controller set to true. Found "true" in references '
                                 "for Job/a and Job/b"),
])
def test_a_secret_whose_owner_references_the_api_server_refuses_is_refused(kube: KubeStub, owners, field, words):
    secret = {"metadata": {"name": "owned", "ownerReferences": owners}, "data": {"k": base64.b64encode(b"v").decode()}}
    status, message = refusal(lambda: client.CoreV1Api(client.ApiClient(kube.configuration())).create_namespaced_secret(
        "katuna", secret))
    assert status == 422 and f"{field}: Invalid value: " in message and words in message, message
    assert ("katuna", "owned") not in kube.secrets


def test_a_logs_timestamps_is_read_as_the_api_server_reads_a_boolean(kube: KubeStub):
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job("katuna", job("stamped"))
    pod = _ended_pod(kube, "stamped")
    path = f"/api/v1/namespaces/katuna/pods/{pod}/log?container=trial&timestamps="
    for value, stamped in (("True", True), ("", True), ("FALSE", False), ("0", False)):
        status, text = raw(kube, "GET", path + value)
        assert status == 200 and text.endswith("done\n") and (text != "done\n") == stamped, (value, text)


def test_a_log_line_longer_than_a_record_is_counted_and_stamped_by_its_records(kube: KubeStub):
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job(
        "katuna", job("long-line", "print('a' * 16384 + 'b' * 16384 + 'c' * 7232); print('end')"))
    pod = _ended_pod(kube, "long-line")
    core = client.CoreV1Api(client.ApiClient(kube.configuration()))
    tail = core.read_namespaced_pod_log(pod, "katuna", container="trial", tail_lines=2)
    assert tail == "c" * 7232 + "\nend\n", "tailLines counts the runtime's records: the long line's last one"
    stamped = core.read_namespaced_pod_log(pod, "katuna", container="trial", timestamps=True).splitlines()
    assert [line.split(" ")[1] for line in stamped] == ["a" * 16384 + "b" * 16384 + "c" * 7232, "end"], \
        "a time only ahead of a line's first record, its pieces joined back"
    fragment = core.read_namespaced_pod_log(pod, "katuna", container="trial", tail_lines=3, timestamps=True)
    stamp, _, rest = fragment.partition(" ")
    assert stamp.endswith("Z") and rest.startswith("b" * 16384 + "c"), \
        "the first record read is stamped, as at a line's start, though it is inside one"


def _ended_pod(kube: KubeStub, name: str) -> str:
    """The name of the Job's pod, once its container has ended."""
    return eventually(lambda: next((p["metadata"]["name"] for p in kube.pods.values()
                                    if p["metadata"]["labels"].get("job-name") == name
                                    and p["status"].get("phase") == "Succeeded"), None), "the pod ends", timeout=30)


def test_a_field_selector_selects_what_a_list_returns_over_its_kinds_selectable_fields(kube: KubeStub):
    """As each registry's ``ToSelectableFields``: a pod by its phase and node, a Job by its
    successes, any object by its name; a term may ask for inequality."""
    kube.add_namespace("fields")
    batch, core = client.BatchV1Api(kube_api(kube)), client.CoreV1Api(kube_api(kube))
    batch.create_namespaced_job("fields", job("chosen"))
    batch.create_namespaced_job("fields", job("other"))
    eventually(lambda: all(kube.jobs[("fields", name)]["status"].get("succeeded") for name in ("chosen", "other")),
               "both Jobs to succeed")
    names = [j.metadata.name for j in batch.list_namespaced_job("fields", field_selector="metadata.name=chosen").items]
    assert names == ["chosen"]
    assert [j.metadata.name for j in batch.list_namespaced_job("fields", field_selector="metadata.name!=chosen,"
                                                                                          "status.successful=1").items] \
        == ["other"]
    assert not core.list_namespaced_pod("fields", field_selector="status.phase=Running").items
    done = core.list_namespaced_pod("fields", field_selector="status.phase==Succeeded,spec.nodeName!=").items
    assert sorted(p.metadata.labels["job-name"] for p in done) == ["chosen", "other"]


@pytest.mark.parametrize("path", ["/api/v1/namespaces/katuna/pods?fieldSelector=status.foo%3Dx",
                                  "/apis/batch/v1/namespaces/katuna/jobs?fieldSelector=spec.suspend%3Dtrue",
                                  "/api/v1/nodes?fieldSelector=metadata.namespace%3Dkatuna"])
def test_a_field_selector_naming_a_field_its_kind_does_not_select_by_is_refused(kube: KubeStub, path: str):
    """A field the kind does not make selectable is 400, for a list and a watch alike, never a
    list that ignores it (a Node has no namespace to select by)."""
    status, body = raw(kube, "GET", path)
    key = path.rpartition("fieldSelector=")[2].partition("%3D")[0]
    assert (status, body["message"]) == (400, f"field label not supported: {key}")


def test_a_collection_delete_of_jobs_applies_its_field_selector_and_refuses_one_jobs_do_not_take(kube: KubeStub):
    """As ``DeleteCollection``: the field selector is converted as a list's, a field a Job does
    not make selectable 400 before anything is deleted, and only the Jobs both selectors
    select go."""
    kube.add_namespace("gone-by-field")
    batch = client.BatchV1Api(kube_api(kube))
    for name in ("kept", "taken"):
        batch.create_namespaced_job("gone-by-field", {**job(name), "metadata": {"name": name, "labels": {"app": "katuna"}}})
    path = "/apis/batch/v1/namespaces/gone-by-field/jobs?labelSelector=app%3Dkatuna"
    status, body = raw(kube, "DELETE", path + "&fieldSelector=spec.suspend%3Dfalse")
    assert (status, body["message"]) == (400, "field label not supported: spec.suspend")
    assert sorted(name for ns, name in kube.jobs if ns == "gone-by-field") == ["kept", "taken"]
    status, body = raw(kube, "DELETE", path + "&fieldSelector=metadata.name%3Dtaken")
    assert (status, [item["metadata"]["name"] for item in body["items"]]) == (200, ["taken"])
    assert [name for ns, name in kube.jobs if ns == "gone-by-field"] == ["kept"]


def test_a_watch_whose_field_selector_names_a_field_its_kind_does_not_select_by_is_refused(kube: KubeStub):
    watcher = client.BatchV1Api(kube_api(kube, "system:serviceaccount:katuna:katuna-jobs-source"))
    assert refusal(lambda: watcher.list_namespaced_job("katuna", field_selector="spec.suspend=true", watch=True,
                                                       timeout_seconds=1)) == (
        400, "field label not supported: spec.suspend")


def test_a_quota_tracking_cpu_or_memory_refuses_a_pod_whose_containers_do_not_all_ask_for_them(kube: KubeStub):
    """A ResourceQuota of ``limits.cpu`` and ``requests.memory`` refuses the pods of a Job whose
    container asks for cpu alone, and of one whose init container asks for nothing, naming each
    resource and the containers that lack it, however much of the quota is free; the Job
    controller records the refusal and makes no pod. A pod asking for both is made."""
    kube.add_namespace("quota")
    kube.set_quota("quota", {"limits.cpu": 8, "requests.memory": "16Gi"})
    try:
        batch = client.BatchV1Api(kube_api(kube))
        batch.create_namespaced_job("quota", job("cpu-only", cpu="500m"))
        asking = job("asking")
        container = asking["spec"]["template"]["spec"]["containers"][0]
        container["resources"] = {"requests": {"memory": "64Mi"}, "limits": {"cpu": "1"}}
        init = job("init")
        init["spec"]["template"]["spec"]["containers"][0]["resources"] = container["resources"]
        init["spec"]["template"]["spec"]["initContainers"] = [{"name": "seed", "image": "python:3.12",
                                                               "command": ["true"]}]
        batch.create_namespaced_job("quota", init)
        batch.create_namespaced_job("quota", asking)
        eventually(lambda: len(kube.events_of("Job", "cpu-only")) and len(kube.events_of("Job", "init"))
                   and any(p["metadata"]["labels"].get("job-name") == "asking" for p in kube.pods.values()),
                   "both Jobs refused their pods, and the third's made")
        said = {name: kube.events_of("Job", name)[0]["message"].partition(" is forbidden: ")
                for name in ("cpu-only", "init")}
        assert {name: (named.startswith(f'Error creating: pods "{name}-'), why) for name, (named, _, why) in said.items()} \
            == {"cpu-only": (True, "failed quota: trial-quota: must specify limits.cpu for: trial; requests.memory for: "
                                   "trial"),
                "init": (True, "failed quota: trial-quota: must specify limits.cpu for: seed; requests.memory for: seed")}
        assert not [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") in said]
    finally:
        kube.set_quota("quota", {})


def test_a_limit_given_alone_stands_for_its_request_in_a_quotas_constraints(kube: KubeStub):
    """The API server defaults a pod's absent request to its limit before admission, so a pod
    whose container and init container give cpu and memory limits alone meets a quota tracking
    both requests and limits; one whose init container gives a cpu request alone lacks its limit."""
    kube.add_namespace("defaulted")
    kube.set_quota("defaulted", {"requests.cpu": 8, "requests.memory": "16Gi", "limits.cpu": 8, "limits.memory": "16Gi"})
    try:
        batch = client.BatchV1Api(kube_api(kube))
        limited = {"limits": {"cpu": "1", "memory": "64Mi"}}
        unlimited_cpu = {"requests": {"cpu": "1"}, "limits": {"memory": "64Mi"}}
        for name, init in (("limits-alone", limited), ("init-request", unlimited_cpu)):
            made = job(name)
            made["spec"]["template"]["spec"]["containers"][0]["resources"] = limited
            made["spec"]["template"]["spec"]["initContainers"] = [{"name": "seed", "image": "python:3.12",
                                                                   "command": ["true"], "resources": init}]
            batch.create_namespaced_job("defaulted", made)
        eventually(lambda: any(p["metadata"]["labels"].get("job-name") == "limits-alone" for p in kube.pods.values())
                   and kube.events_of("Job", "init-request"), "the first Job's pod made, the second's refused")
        assert not kube.events_of("Job", "limits-alone")
        assert kube.events_of("Job", "init-request")[0]["message"].partition(" is forbidden: ")[2] == (
            "failed quota: trial-quota: must specify limits.cpu for: seed")
    finally:
        kube.set_quota("defaulted", {})


def _settled_job(kube: KubeStub, name: str) -> str:
    """Create a suspended Job; its resourceVersion once its controller has said it is suspended
    (and so writes no more)."""
    client.BatchV1Api(kube_api(kube)).create_namespaced_job("katuna", job(name, suspend=True))
    eventually(lambda: any(c["type"] == "Suspended" for c in kube.jobs[("katuna", name)]["status"].get("conditions", [])),
               "the Job is said suspended")
    return kube.jobs[("katuna", name)]["metadata"]["resourceVersion"]


def test_a_job_patch_names_the_version_it_was_made_against_or_none(kube: KubeStub):
    """As the registry's optimistic lock: a resourceVersion the patch names must be the stored
    one (a stale one is 409, one that is no number 422, and nothing changes); a patch naming
    none, or clearing it, is an unconditional update, as a Job allows."""
    version = _settled_job(kube, "versioned")
    path = f"{JOBS}/versioned"
    status, body = raw(kube, "PATCH", path, {"metadata": {"resourceVersion": "1", "labels": {"a": "stale"}}})
    assert (status, body["reason"], body["message"]) == (409, "Conflict", (
        'Operation cannot be fulfilled on jobs.batch "versioned": the object has been modified; please apply your '
        "changes to the latest version and try again")), body
    status, body = raw(kube, "PATCH", path, {"metadata": {"resourceVersion": "x1", "labels": {"a": "odd"}}})
    assert (status, body["message"]) == (422, 'jobs.batch "versioned" is invalid: resourceVersion: Invalid value: '
                                              '"x1": strconv.ParseUint: parsing "x1": invalid syntax'), body
    assert "a" not in (kube.jobs[("katuna", "versioned")]["metadata"].get("labels") or {})
    status, body = raw(kube, "PATCH", path, {"metadata": {"resourceVersion": version, "labels": {"a": "current"}}})
    assert (status, body["metadata"]["labels"]["a"]) == (200, "current"), body
    status, body = raw(kube, "PATCH", path, [{"op": "remove", "path": "/metadata/resourceVersion"},
                                             {"op": "replace", "path": "/metadata/labels/a", "value": "unconditional"}],
                       "application/json-patch+json")
    assert (status, body["metadata"]["labels"]["a"]) == (200, "unconditional"), body


def test_a_jobs_json_patch_is_taken_and_a_type_no_built_in_kind_takes_is_415(kube: KubeStub):
    """A built-in kind takes a JSON patch (applied in order, all or none: a failed ``test``
    is 422 and changes nothing) beside the merge patches; another type is 415 listing the four
    types in the API server's order."""
    _settled_job(kube, "json-patched")
    path, kind = f"{JOBS}/json-patched", "application/json-patch+json"
    status, body = raw(kube, "PATCH", path, [{"op": "add", "path": "/metadata/labels", "value": {"team": "vision"}},
                                             {"op": "replace", "path": "/spec/parallelism", "value": 0}], kind)
    assert (status, body["metadata"]["labels"], body["spec"]["parallelism"]) == (200, {"team": "vision"}, 0), body
    status, body = raw(kube, "PATCH", path, [{"op": "replace", "path": "/spec/parallelism", "value": 1},
                                             {"op": "test", "path": "/spec/suspend", "value": False}], kind)
    assert (status, body["details"]["causes"][0]["message"]) == (422, "testing value /spec/suspend failed: test "
                                                                      "failed"), body
    assert kube.jobs[("katuna", "json-patched")]["spec"]["parallelism"] == 0
    status, body = raw(kube, "PATCH", path, {"spec": {"parallelism": 1}}, "application/yaml")
    assert (status, body["message"]) == (415, "the body of the request was in an unknown format - accepted media "
                                              "types include: application/json-patch+json, "
                                              "application/merge-patch+json, application/strategic-merge-patch+json, "
                                              "application/apply-patch+yaml"), body


def test_a_job_patch_keeps_the_metadata_it_gives_and_moves_the_generation_with_the_spec_alone(kube: KubeStub):
    """The patched metadata is stored whole (ownerReferences and finalizers as well as labels,
    validated as a create's), the generation goes up where the spec changes and only there, and
    a patch that changes nothing writes nothing (no new resourceVersion)."""
    version = _settled_job(kube, "kept-metadata")
    path, stored = f"{JOBS}/kept-metadata", kube.jobs[("katuna", "kept-metadata")]["metadata"]
    owner = {"apiVersion": "katuna.dev/v1", "kind": "Study", "name": "s", "uid": "0d9f3c1e"}
    status, body = raw(kube, "PATCH", path, {"metadata": {"ownerReferences": [owner], "finalizers": ["katuna.dev/x"]}})
    assert status == 200 and (stored["ownerReferences"], stored["finalizers"], stored["generation"]) == (
        [owner], ["katuna.dev/x"], 1), body
    version = stored["resourceVersion"]
    assert raw(kube, "PATCH", path, {"spec": {"suspend": True}})[0] == 200
    assert stored["resourceVersion"] == version, "a patch that changes nothing writes nothing"
    assert raw(kube, "PATCH", path, {"spec": {"parallelism": 0}})[1]["metadata"]["generation"] == 2
    status, body = raw(kube, "PATCH", path, {"metadata": {"finalizers": ["orphan", "foregroundDeletion"],
                                                          "ownerReferences": [{**owner, "uid": ""}]}})
    assert status == 422 and "metadata.ownerReferences[0].uid: Required value" in body["message"] \
        and "finalizer orphan and foregroundDeletion cannot be both set" in body["message"], body
    assert stored["finalizers"] == ["katuna.dev/x"]


@pytest.mark.parametrize(("query", "code", "words"), [
    ("limit=ten", 400, 'strconv.ParseInt: parsing "ten": invalid syntax'),
    ("limit=1.5", 400, 'strconv.ParseInt: parsing "1.5": invalid syntax'),
    ("limit=99999999999999999999", 400, 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
    ("timeoutSeconds=", 400, 'strconv.ParseInt: parsing "": invalid syntax'),
    ("resourceVersionMatch=NotOlderThan", 422, 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: '
                                               "Forbidden: resourceVersionMatch is forbidden unless resourceVersion "
                                               "is provided"),
    ("resourceVersion=0&resourceVersionMatch=Newest", 422, 'resourceVersionMatch: Unsupported value: "Newest": '
                                                           'supported values: "Exact", "NotOlderThan", ""'),
    ("continue=abc&resourceVersion=5", 400, "specifying resource version is not allowed when using continue"),
])
def test_a_lists_options_the_api_server_cannot_take_are_refused_before_anything_is_listed(kube: KubeStub, query,
                                                                                            code, words):
    status, body = raw(kube, "GET", f"{JOBS}?{query}")
    assert status == code and words in body["message"], body


def test_a_watch_is_asked_for_by_any_value_the_api_server_reads_as_true(kube: KubeStub):
    """``watch=True`` (as ``True`` is written by a client in Python) is a watch: a stream of
    events, not a list."""
    seen = job("seen", suspend=True)
    seen["metadata"]["labels"] = {"watched": "yes"}
    client.BatchV1Api(kube_api(kube)).create_namespaced_job("katuna", seen)
    request = urllib.request.Request(f"{kube.url}{JOBS}?watch=True&timeoutSeconds=1&labelSelector=watched%3Dyes",
                                     headers={"Authorization": "Bearer system:serviceaccount:katuna:katuna-jobs-source"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        first = json.loads(answer.read().decode().splitlines()[0])
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "seen"), first


@pytest.mark.parametrize(("method", "path", "kind", "field", "reason", "words"), [
    ("PATCH", "/{name}?fieldManager=" + "m" * 129, "PatchOptions", "fieldManager", "FieldValueTooLong",
     "Too long: may not be more than 128 bytes"),
    ("POST", "?fieldManager=" + "m" * 129, "CreateOptions", "fieldManager", "FieldValueTooLong",
     "Too long: may not be more than 128 bytes"),
    ("PATCH", "/{name}?fieldManager=tuner%09one", "PatchOptions", "fieldManager", "FieldValueInvalid",
     'Invalid value: "tuner\\tone": invalid character U+0009 (at position 5)'),
    ("PATCH", "/{name}?force=true", "PatchOptions", "force", "FieldValueForbidden",
     "Forbidden: may not be specified for non-apply patch"),
])
def test_a_field_manager_the_api_server_refuses_is_refused_and_nothing_is_done(kube: KubeStub, method, path, kind,
                                                                               field, reason, words):
    """``ValidateFieldManager``: at most 128 bytes, printable characters only, for a create, an
    update and a patch alike; ``force`` only with a server-side apply. 422 naming the options'
    kind, and the Job is neither patched nor made."""
    name = f"manager-{method.lower()}-{len(path)}"
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job(
        "katuna", job(name, "import time; time.sleep(60)"))
    before = json.dumps(_identity(kube.jobs[("katuna", name)]), sort_keys=True)
    sent = job(f"{name}-new") if method == "POST" else {"metadata": {"labels": {"a": "b"}}}
    status, answer = raw(kube, method, JOBS + path.format(name=name), sent)
    assert (status, answer["reason"], answer["details"]["causes"]) == (422, "Invalid", [
        {"reason": reason, "message": words, "field": field}]), answer
    assert answer["message"] == f'{kind}.meta.k8s.io "" is invalid: {field}: {words}'
    assert json.dumps(_identity(kube.jobs[("katuna", name)]), sort_keys=True) == before
    assert ("katuna", f"{name}-new") not in kube.jobs
    assert ("katuna", f"{name}-new") not in kube.jobs
    status, _ = raw(kube, method, JOBS + path.format(name=name).partition("?")[0] + "?fieldManager=" + "m" * 128,
                    job(f"{name}-kept") if method == "POST" else sent)
    assert status in (200, 201), "128 bytes are taken"
