"""A resource refused for its labels or annotations (a label of katuna's own prefix, a node-pool
annotation out of bounds) is taken once they are put right: ``kubectl label``, ``kubectl
annotate`` or ``kubectl apply`` of the corrected file change no ``metadata.generation`` (the
API server counts only the spec's), so a refusal remembered by generation alone would stay for
good, naming a problem the resource no longer has."""

from __future__ import annotations

import copy
import json
import time

import pytest
from conftest import study_definition
from gke_stub import GkeStub
from http_helpers import Service
from kube_stub import KubeStub
from test_resources import EXAMPLES, as_experiment, conditions, deliver, send, status_of, tick, wait_status

from functions.adapters.web.errors import ROOM_RETRY_AFTER_SECONDS
from functions.core.errors import Problem, TooManyPools, TooManyStudies
from functions.core.resource_status import failed_status, refusal_stands, waiting_stands, waiting_status

KUBE_NAMESPACES = ("team",)


@pytest.fixture(scope="module", autouse=True)
def study_grants(kube: KubeStub) -> None:
    """katuna's Role in the namespace the resources live in (its service account writes their status)."""
    with kube.lock:
        kube.authorizer.copy_role("katuna", "team")


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("resource-refusals"), workers=1, KATUNA_K8S_API=kube.url)
    yield running
    running.close()


def experiment(name: str, **metadata: dict) -> dict:
    """Katib's example as a ``katuna.dev`` Experiment of one trial, run by a local script."""
    katib = as_experiment(EXAMPLES / "katib-experiment.yaml")
    katib["metadata"] = {"name": name, "namespace": "team", **metadata}
    container = katib["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = study_definition()["trialTemplate"]["command"][:2] + ["--x=${trialParameters.learningRate}"]
    katib["spec"]["objective"].update(type="minimize", objectiveMetricName="loss", additionalMetricNames=[])
    katib["spec"]["objective"].pop("goal")
    katib["spec"].update(maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1, parameters=katib["spec"]["parameters"][:1])
    katib["spec"]["trialTemplate"]["trialParameters"] = katib["spec"]["trialTemplate"]["trialParameters"][:1]
    return katib


@pytest.mark.slow
@pytest.mark.parametrize("name,wrong,field", [
    ("ref-label", {"labels": {"katuna.dev/study": "mine"}}, "metadata.labels.katuna.dev/study"),
    ("ref-pool", {"annotations": {"katuna.dev/node-pool": "{machineType: e2-standard-4, maxNodes: 5000}"}},
     'metadata.annotations["katuna.dev/node-pool"].maxNodes'),
])
def test_a_resource_refused_for_its_metadata_is_taken_once_the_metadata_is_put_right(
        service: Service, kube: KubeStub, name: str, wrong: dict, field: str):
    refused = kube.apply(experiment(name, **wrong))
    assert send(service, "add", refused) == []
    status = status_of(kube, refused)
    assert conditions(status)["Failed"]["reason"] == "InvalidSpec"
    assert field in [p["field"] for p in status["problems"]], status["problems"]
    assert send(service, "update", kube.resources[("experiments", "team", name)]) == [], "its own status write"

    fixed = kube.apply(experiment(name))
    assert fixed["metadata"]["generation"] == 1, "a change of metadata alone is no new generation"
    assert send(service, "update", fixed) == ["dev.katuna.study.created"], status_of(kube, fixed)
    assert service.wait_for(name, timeout=60)["status"] == "completed"
    assert "Failed" not in conditions(status_of(kube, fixed))
    assert send(service, "update", copy.deepcopy(kube.resources[("experiments", "team", name)])) == []


def test_a_refusal_stands_for_its_generation_labels_and_annotations_only():
    metadata = {"name": "x", "generation": 2, "labels": {"team": "a"}, "annotations": {"note": "1"}}
    refused = {"metadata": metadata, "status": failed_status("InvalidSpec", [Problem("spec", "bad")], metadata, 0.0)}
    assert refusal_stands(refused)
    assert not refusal_stands({**refused, "metadata": {**metadata, "generation": 3}})
    assert not refusal_stands({**refused, "metadata": {**metadata, "labels": {}}})
    assert not refusal_stands({**refused, "metadata": {**metadata, "annotations": {"note": "2"}}})
    earlier = {**refused, "status": {k: v for k, v in refused["status"].items() if k != "observedMetadata"}}
    assert refusal_stands({**earlier, "metadata": {**metadata, "labels": {}}}), "a status written before: by generation"
    assert not refusal_stands({"metadata": metadata, "status": {"phase": "Running", "observedGeneration": 2}})


def test_a_waiting_status_stands_for_its_generation_and_limit_only_and_is_no_refusal():
    """A resource that waits is written so once per generation and limit; it is no refusal, so
    the tick still brings it (:func:`refusal_stands` False)."""
    metadata = {"name": "x", "generation": 2}
    studies, pools = TooManyStudies("the database holds 3"), TooManyPools("the studies hold 2 node pools")
    waiting = {"metadata": metadata, "status": waiting_status(studies, metadata, 0.0)}
    assert waiting_stands(waiting, TooManyStudies("the database holds 4"))
    assert not waiting_stands(waiting, pools), "another limit is written"
    assert not waiting_stands({**waiting, "metadata": {**metadata, "generation": 3}}, studies)
    assert not refusal_stands(waiting)
    assert conditions(waiting_status(pools, metadata, 0.0))["Created"]["reason"] == "MaxPoolsReached"


def test_a_refusal_counts_the_problems_found_past_those_listed():
    """A resource with more problems than are kept (:class:`InvalidStudy`'s ``more``) says how
    many it has in all, and how many are not listed."""
    metadata = {"name": "x", "generation": 1}
    kept = [Problem(f"spec.field{i}", "unknown field") for i in range(100)]
    status = failed_status("InvalidSpec", kept, metadata, 0.0, more=50)
    message = conditions(status)["Failed"]["message"]
    assert message.startswith("150 problem(s): spec.field0: unknown field;"), message[:60]
    assert message.endswith("spec.field99: unknown field (50 more problems not listed)"), message[-80:]
    assert len(status["problems"]) == 100


@pytest.mark.slow
def test_a_resource_applied_while_the_database_holds_its_most_studies_waits_and_runs_once_one_ends(
        kube: KubeStub, tmp_path):
    """``KATUNA_MAX_STUDIES`` is reached: the resource's event is answered ``429`` with
    ``Retry-After``, which the broker retries (and past its retries dead-letters, the tick sending
    the event again), its status not written Failed, nothing stored; once a study ends, the same
    generation runs. Over the HTTP API the same study is a ``409``, as ever."""
    held = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_MAX_STUDIES="1")
    try:
        held.submit(study_definition(name="room-held", mode="hang", maxTrials=1, parallelism=1))
        waits = experiment("room-waits")
        waits["spec"]["resumePolicy"] = "LongRunning"
        obj = kube.apply(waits)
        status, headers, body = deliver(held, "add", obj)
        assert status == 429, body
        answer = json.loads(body)
        assert (answer["error"], answer["retryable"]) == ("no_room_for_study", True), answer
        assert "KATUNA_MAX_STUDIES" in answer["message"] and "once one ends" in answer["message"], answer
        assert headers["Retry-After"] == str(ROOM_RETRY_AFTER_SECONDS), "room frees as a study ends, not within seconds"
        assert "Failed" not in conditions(status_of(kube, obj)), status_of(kube, obj)
        assert held.request("GET", "/studies/room-waits")[0] == 404
        definition = json.dumps(study_definition(name="other", maxTrials=1, parallelism=1))
        assert held.request("POST", "/studies", definition, {"Content-Type": "application/json"})[0] == 409

        assert held.request("POST", "/studies/room-held/stop")[0] == 200
        status, headers, body = deliver(held, "add", obj)
        assert status == 202, body
        assert held.wait_for("room-waits", timeout=60)["status"] == "completed"

        held.submit(study_definition(name="room-held-again", mode="hang", maxTrials=1, parallelism=1))
        raised = copy.deepcopy(waits)
        raised["spec"]["maxTrialCount"] = 2
        obj = kube.apply(raised)
        status, headers, body = deliver(held, "update", obj)
        assert status == 429 and json.loads(body)["error"] == "no_room_for_study", body
        assert held.json("GET", "/studies/room-waits")[1]["status"] == "completed", "a restart waits as a new study"
        assert "UpdateRefused" not in conditions(status_of(kube, obj)), status_of(kube, obj)
        assert held.request("POST", "/studies/room-held-again/stop")[0] == 200
        assert deliver(held, "update", obj)[0] == 202
        assert held.wait_for("room-waits", timeout=60)["maxTrials"] == 2
    finally:
        held.close()


def writes_of(kube: KubeStub, name: str) -> list[dict]:
    """The statuses written to the resource ``name``, in order."""
    return [status for _, written, status in kube.status_writes if written == name]


@pytest.mark.slow
def test_a_resource_waiting_for_room_says_why_in_its_status_once_and_is_taken_once_room_frees(
        kube: KubeStub, tmp_path):
    """While the resource waits for ``KATUNA_MAX_STUDIES``, ``kubectl get`` shows why: phase
    ``Waiting``, its ``Created`` condition ``False`` naming the limit (so Katib's clients do not
    read it as created, nor as failed). Written once: the update event of that write, and the
    resource's earlier events, delivered again in any order, are answered ``429`` and write
    nothing more; the tick still brings the resource, and once a study ends its normal status
    replaces the waiting one."""
    kube.add_namespace("waiting")
    with kube.lock:
        kube.authorizer.copy_role("katuna", "waiting")
    held = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="waiting",
                   KATUNA_MAX_STUDIES="1")
    try:
        held.submit(study_definition(name="shown-held", mode="hang", maxTrials=1, parallelism=1))
        waits = experiment("shown-waits")
        waits["metadata"]["namespace"] = "waiting"
        added = kube.apply(waits)
        assert deliver(held, "add", added)[0] == 429
        status = status_of(kube, added)
        assert (status["phase"], status["observedGeneration"]) == ("Waiting", 1), status
        created = conditions(status)["Created"]
        assert (created["status"], created["reason"]) == ("False", "MaxStudiesReached"), created
        assert "KATUNA_MAX_STUDIES" in created["message"] and "once one ends" in created["message"], created
        assert [c["type"] for c in status["conditions"]] == ["Created"], "the last condition is the state kubectl shows"
        assert len(writes_of(kube, "shown-waits")) == 1
        written = copy.deepcopy(kube.resources[("experiments", "waiting", "shown-waits")])
        for change, obj in (("update", written), ("add", added), ("update", written), ("update", written)):
            status_code, headers, body = deliver(held, change, obj)
            assert status_code == 429 and json.loads(body)["error"] == "no_room_for_study", body
        assert len(writes_of(kube, "shown-waits")) == 1, writes_of(kube, "shown-waits")
        assert held.request("GET", "/studies/shown-waits")[0] == 404
        assert "dev.knative.apiserver.resource.add" in tick(held), "the waiting generation is not marked handled"

        assert held.request("POST", "/studies/shown-held/stop")[0] == 200
        assert deliver(held, "update", written)[0] == 202
        assert held.wait_for("shown-waits", timeout=60)["status"] == "completed"
        status = wait_status(kube, added, lambda s: s.get("phase") == "Succeeded")
        assert conditions(status)["Created"]["status"] == "True", status
        assert conditions(status)["Created"]["reason"] == "ExperimentCreated"
    finally:
        held.close()


def pool_released(service: Service, name: str, timeout: float = 60) -> None:
    """Wait until the study ``name`` has given its node pool back."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = service.json("GET", f"/studies/{name}")[1]["nodePool"]
        if pool and pool["phase"] == "released":
            return
        time.sleep(0.2)
    raise AssertionError(f"the pool of {name} was not given back: {pool}")


@pytest.mark.slow
def test_a_study_whose_node_pool_would_be_one_too_many_is_a_conflict_and_its_resource_waits(
        kube: KubeStub, tmp_path):
    """``KATUNA_MAX_POOLS`` is room that frees as ``KATUNA_MAX_STUDIES``'s does (a study's pool
    is given back once it ends): over the API one more pool is ``409 too_many_pools``, not an
    invalid study, and a resource asking for it waits (``429``, its status ``Waiting``, reason
    ``MaxPoolsReached``), taken once a pool is given back."""
    gke = GkeStub(speed=100.0)
    gke.add_cluster("proj-7", "europe-west4", "tuning")
    kube.add_namespace("pooled")
    with kube.lock:
        kube.authorizer.copy_role("katuna", "pooled")
    held = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="pooled",
                   KATUNA_GKE_PROJECT="proj-7", KATUNA_GKE_LOCATION="europe-west4", KATUNA_GKE_CLUSTER="tuning",
                   KATUNA_GKE_ENDPOINT=gke.url, KATUNA_MAX_POOLS="1", KATUNA_EXECUTOR="kubernetes",
                   KATUNA_K8S_DEFAULT_RESOURCES="cpu=100m")
    pool = {"provider": "gke", "machineType": "n2-standard-4", "maxNodes": 2}

    def pooled(name: str) -> dict:
        definition = {**study_definition(name=name, maxTrials=1, parallelism=1), "nodePool": pool}
        definition["trialTemplate"]["image"] = "python:3.12"
        return definition

    try:
        held.submit(pooled("pool-held"))
        other = pooled("pool-other")
        code, answer = held.json("POST", "/studies", body=json.dumps(other), headers={"Content-Type": "application/json"})
        assert (code, answer["error"], answer["retryable"]) == (409, "too_many_pools", False), answer
        assert answer["problems"][0]["path"] == "nodePool" and "KATUNA_MAX_POOLS" in answer["problems"][0]["message"]
        assert held.request("GET", "/studies/pool-other")[0] == 404

        waits = experiment("pool-waits", annotations={"katuna.dev/node-pool": json.dumps(pool)})
        waits["metadata"]["namespace"] = "pooled"
        added = kube.apply(waits)
        code, _, body = deliver(held, "add", added)
        assert code == 429 and json.loads(body)["error"] == "no_room_for_study", body
        assert "KATUNA_MAX_POOLS" in json.loads(body)["message"], body
        status = status_of(kube, added)
        created = conditions(status)["Created"]
        assert (status["phase"], created["status"], created["reason"]) == ("Waiting", "False", "MaxPoolsReached"), status
        assert "dev.knative.apiserver.resource.add" in tick(held), "no refusal stands: the tick brings it"

        assert held.request("POST", "/studies/pool-held/stop")[0] == 200
        pool_released(held, "pool-held")
        assert deliver(held, "update", copy.deepcopy(kube.resources[("experiments", "pooled", "pool-waits")]))[0] == 202
        assert held.json("GET", "/studies/pool-waits")[1]["status"] == "running"
        assert conditions(status_of(kube, added))["Created"]["status"] == "True"
    finally:
        held.close()
        gke.close()
