"""The ``knative/`` manifests, validated offline, and kept in step with the routing table."""

from __future__ import annotations

import copy
import importlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from kube_versions import VERSIONS, validate_strictly

from functions.core.events import OBJECTS, ROUTES
from functions.handlers import HANDLERS

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"
SCHEMAS = ROOT / "tests" / "schemas" / "knative"
"""Knative's CRD schemas, made by ``tests/schemas/knative/generate.py`` from the upstream CRDs."""


def manifests() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in sorted(KNATIVE.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]


def strict(schema: dict) -> dict:
    """The CRD schema, rejecting fields it does not list.

    Stricter than the CRD where it preserves unknown fields (a Trigger's ``spec``, ``delivery``):
    Knative's webhooks decode with unknown fields disallowed, so a typo there fails on a cluster.
    """
    schema = copy.deepcopy(schema)

    def close(node: object) -> None:
        if isinstance(node, dict):
            if node.get("properties"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    schema["properties"].update(apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"})
    return schema


def schema_path(api_version: str, kind: str) -> Path:
    return SCHEMAS / f"{api_version.replace('/', '_')}_{kind}.json".lower()


def crd_schema(api_version: str, kind: str) -> dict:
    return json.loads(schema_path(api_version, kind).read_text())["schema"]


KNATIVE_DOCS = [(name, doc) for name, doc in manifests() if "knative.dev" in doc["apiVersion"]]


@pytest.mark.parametrize("name,doc", KNATIVE_DOCS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in KNATIVE_DOCS])
def test_knative_objects_match_their_crd_schemas_strictly(name: str, doc: dict):
    jsonschema.validate(doc, strict(crd_schema(doc["apiVersion"], doc["kind"])))


def test_every_knative_kind_the_manifests_use_has_a_schema_with_its_origin():
    for _, doc in KNATIVE_DOCS:
        stored = json.loads(schema_path(doc["apiVersion"], doc["kind"]).read_text())
        assert (stored["apiVersion"], stored["kind"]) == (doc["apiVersion"], doc["kind"])
        assert "commit" in stored["release"]


def test_the_schemas_keep_structure_only():
    text = " ".join(path.read_text() for path in SCHEMAS.glob("*.json"))
    assert '"description"' not in text
    assert '"properties"' in text


def test_the_strict_check_rejects_a_misspelt_field():
    trigger = next(doc for _, doc in KNATIVE_DOCS if doc["kind"] == "Trigger")
    broken = copy.deepcopy(trigger)
    broken["spec"]["subscribr"] = broken["spec"].pop("subscriber")
    with pytest.raises(jsonschema.ValidationError, match="subscribr"):
        jsonschema.validate(broken, strict(crd_schema(broken["apiVersion"], broken["kind"])))


def test_core_objects_pass_kubernetes_validate_strictly():
    files = sorted({str(KNATIVE / name) for name, doc in manifests() if "knative.dev" not in doc["apiVersion"]})
    core = sum(1 for _, d in manifests() if "knative.dev" not in d["apiVersion"])
    assert [output.count("passed") for output in validate_strictly(files)] == [core] * len(VERSIONS)



def test_the_pages_name_the_kubernetes_versions_the_objects_are_validated_at():
    """The supported range the docs state is the one the strict checks run at: its oldest end is
    where a field katuna starts using would first be missing."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    oldest, newest = (".".join(version.split(".")[:2]) for version in VERSIONS)
    assert f"katuna supports Kubernetes {oldest} to {newest}." in text
    assert f"schemas of Kubernetes {oldest} and {newest}," in text

def test_triggers_and_functions_match_the_routing_table():
    triggers = [d["spec"] for _, d in manifests() if d["kind"] == "Trigger"]
    assert all(len(t["filters"]) == 1 and set(t["filters"][0]) == {"exact"} for t in triggers)
    found = sorted((tuple(sorted(t["filters"][0]["exact"].items())), t["subscriber"]["uri"]) for t in triggers)
    routed = sorted((tuple(sorted({"type": event_type, **({"apiversion": OBJECTS[f]} if f in OBJECTS else {})}.items())),
                     f"/functions/{f}") for event_type, functions in ROUTES.items() for f in functions)
    assert found == routed
    assert {uri.rsplit("/", 1)[1] for _, uri in found} == set(HANDLERS)


def test_the_api_server_sources_send_only_objects_a_function_takes():
    watched = {r["apiVersion"] for _, d in manifests() if d["kind"] == "ApiServerSource" for r in d["spec"]["resources"]}
    assert watched == set(OBJECTS.values())
    crds = [d for _, d in manifests() if d["kind"] == "CustomResourceDefinition"]
    assert {(r["apiVersion"], r["kind"]) for _, d in manifests() if d["kind"] == "ApiServerSource"
            for r in d["spec"]["resources"] if r["apiVersion"] != "batch/v1"} == \
        {(f"{c['spec']['group']}/{c['spec']['versions'][0]['name']}", c["spec"]["names"]["kind"]) for c in crds}


def test_the_service_account_may_read_study_resources_and_write_their_status():
    roles = {d["metadata"]["name"]: d["rules"] for _, d in manifests() if d["kind"] == "Role"}

    def allowed(role: str, resource: str) -> set[str]:
        return {verb for rule in roles[role] if "katuna.dev" in rule["apiGroups"] and resource in rule["resources"]
                for verb in rule["verbs"]}

    source = next(d["spec"]["serviceAccountName"] for _, d in manifests()
                  if d["kind"] == "ApiServerSource" and d["spec"]["resources"][0]["apiVersion"] == "katuna.dev/v1")
    for plural in ("studies", "experiments"):
        assert {"get", "list", "watch"} <= allowed(source, plural)
        assert "get" in allowed("katuna", plural) and {"patch"} <= allowed("katuna", f"{plural}/status")
        assert not allowed("katuna", plural) & {"create", "update", "patch", "delete"}


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in KNATIVE.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_service_is_one_stateful_pod_with_probes_and_its_volume():
    service = next(doc for _, doc in manifests() if doc["kind"] == "Service" and "serving" in doc["apiVersion"])
    template = service["spec"]["template"]
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"] == "1"
    container = template["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    claim = template["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert any(d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for _, d in manifests())
    config = next(d for _, d in manifests() if d["kind"] == "ConfigMap")
    assert config["data"]["KATUNA_EVENTS"] == "reply"


def test_a_long_one_off_migration_at_start_is_no_failed_liveness_probe_nor_failed_revision():
    """The store migrates the database while the app loads, before ``/healthz`` answers; the
    kubelet holds liveness back until the startup probe passes (KEP-950), and Knative marks a
    revision failed once its progress deadline passes, so both allow ten minutes at least."""
    service = next(doc for _, doc in manifests() if doc["kind"] == "Service" and "serving" in doc["apiVersion"])
    template = service["spec"]["template"]
    startup = template["spec"]["containers"][0]["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    allowed = startup["periodSeconds"] * startup["failureThreshold"]
    assert allowed >= 600
    deadline = template["metadata"]["annotations"]["serving.knative.dev/progress-deadline"]
    assert int(deadline.removesuffix("s")) > allowed


def test_the_probes_find_a_thread_free_while_every_admitted_request_is_handled():
    """queue-proxy admits ``containerConcurrency`` requests; the kubelet's probes reach gunicorn
    directly, so gunicorn has more threads than that, and the probes a timeout above 1 s."""
    service = next(doc for _, doc in manifests() if doc["kind"] == "Service" and "serving" in doc["apiVersion"])
    spec = service["spec"]["template"]["spec"]
    threads = int(re.search(r'"--threads", "(\d+)"', (KNATIVE / "Dockerfile").read_text()).group(1))
    assert threads > spec["containerConcurrency"]
    container = spec["containers"][0]
    assert all(container[probe]["timeoutSeconds"] > 1 for probe in ("readinessProbe", "livenessProbe"))


def test_the_image_runs_the_app_factory():
    dockerfile = (KNATIVE / "Dockerfile").read_text()
    module, entry = re.search(r'"(functions[\w.]*):(\w+)\(\)"', dockerfile).groups()
    assert callable(getattr(importlib.import_module(module), entry))
    assert "requirements-deploy.lock" in dockerfile
    assert "COPY infra ./infra" in dockerfile, "the node-pool adapters ship with the service"


def test_the_broker_names_the_class_whose_delivery_katuna_is_made_for():
    """Without the annotation the Broker gets the cluster's default class (config-br-defaults),
    which may be another (Kafka's) with another delivery; the class cannot change afterwards."""
    [broker] = [doc for _, doc in manifests() if doc["kind"] == "Broker"]
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "MTChannelBasedBroker"


@pytest.mark.parametrize("component", ["", "katib-api"])
def test_a_waiting_resources_event_is_retried_within_the_ticks_minute_then_left_to_the_tick(component: str):
    """A study resource waiting for room (``429 no_room_for_study``) waits for a study to end,
    minutes away, and the tick sends its event again each minute. Its Trigger's retries end
    within that minute, whether the dispatcher waits its own back-off or, honouring the answer's
    ``Retry-After`` (``delivery.retryAfterMax``), that: each post of the event holds one of the
    service's senders to ``K_SINK`` until its last retry, so retries over 8.5 minutes kept 8 of one
    resource's events in flight at once, 11 handlings a minute, and outlasted the senders."""
    from knative_emulator.delivery import iso_seconds
    from test_deploy_kustomize import render

    from functions.adapters.web.errors import ROOM_RETRY_AFTER_SECONDS

    objects = render(KNATIVE, components=(component,) if component else ())
    [ping] = [doc for doc in render(KNATIVE) if doc["kind"] == "PingSource"]
    assert ping["spec"]["schedule"] == "* * * * *", "the tick comes each minute"
    waiting = [doc for doc in objects if doc["kind"] == "Trigger" and delivery_kind(doc) == "resource"]
    assert len(waiting) == (6 if component else 2), [doc["metadata"]["name"] for doc in waiting]
    for trigger in waiting:
        delivery = trigger["spec"]["delivery"]
        assert "retryAfterMax" not in delivery, "Knative's webhook refuses it unless delivery-retryafter is enabled"
        backoffs = [iso_seconds(delivery["backoffDelay"]) * 2 ** n for n in range(delivery["retry"])]
        for after in (0, ROOM_RETRY_AFTER_SECONDS):
            assert sum(max(wait, after) for wait in backoffs) < 60, (trigger["metadata"]["name"], after)


def test_every_trigger_names_the_oidc_audience_the_service_verifies():
    triggers = [d["spec"] for _, d in manifests() if d["kind"] == "Trigger"]
    audiences = {t["subscriber"].get("audience") for t in triggers}
    audiences |= {t["delivery"]["deadLetterSink"].get("audience") for t in triggers}
    assert audiences == {"katuna"}


def documented_delivery() -> dict[str, dict]:
    """The delivery docs/knative.md ("Delivery, retries and dead letters") gives the Triggers:
    ``event`` for every event Trigger (and the Broker's default), ``ping`` for the PingSource's,
    ``resource`` for those of study resources' adds and updates."""
    text = " ".join((ROOT / "docs" / "knative.md").read_text().split())
    retries, delay = re.search(r"Each event Trigger retries (\d+) times, exponentially from ([\d.]+) s", text).groups()
    ping = re.search(r"The two Triggers of the PingSource keep (\d+) retries", text).group(1)
    resource, from_s = re.search(r"Those of a study resource's add or update retry (\d+) times, from ([\d.]+) s",
                                 text).groups()
    spec = {"backoffPolicy": "exponential", "backoffDelay": f"PT{delay}S"}
    return {"event": {"retry": int(retries), **spec}, "ping": {"retry": int(ping), **spec},
            "resource": {"retry": int(resource), "backoffPolicy": "exponential", "backoffDelay": f"PT{from_s}S"}}


def delivery_kind(trigger: dict) -> str:
    """Which of :func:`documented_delivery`'s a Trigger's is: a study resource's add or update
    (to the resource function), the PingSource's, or any other event's."""
    kind = trigger["spec"]["filters"][0]["exact"]["type"]
    if kind == "dev.knative.sources.ping":
        return "ping"
    changes = ("dev.knative.apiserver.resource.add", "dev.knative.apiserver.resource.update")
    return "resource" if trigger["spec"]["subscriber"]["uri"] == "/functions/resource" and kind in changes else "event"


def components() -> list[str]:
    """Every kustomize Component under ``knative/`` (``oidc``, ``trial-kinds/jobset``, ...)."""
    return sorted(str(path.parent.relative_to(KNATIVE)) for path in KNATIVE.glob("**/kustomization.yaml")
                  if yaml.load(path.read_text(), Loader=yaml.CSafeLoader).get("kind") == "Component")


@pytest.mark.parametrize("component", ["", *components()])
def test_every_trigger_delivers_as_documented(component: str):
    """The base's Triggers and each component's retry as docs/knative.md says, and dead-letter
    to the service: a component's trial workloads' ends as long as plain Jobs' ends."""
    from test_deploy_kustomize import render

    documented = documented_delivery()
    objects = render(KNATIVE, components=(component,) if component else ())
    triggers = [doc for doc in objects if doc["kind"] == "Trigger"]
    assert triggers
    for trigger in triggers:
        delivery = dict(trigger["spec"]["delivery"])
        sink = delivery.pop("deadLetterSink")
        assert delivery == documented[delivery_kind(trigger)], trigger["metadata"]["name"]
        assert (sink["ref"]["name"], sink["uri"]) == ("katuna", "/dead-letters"), trigger["metadata"]["name"]
    [broker] = [doc for doc in objects if doc["kind"] == "Broker"]
    assert {k: v for k, v in broker["spec"]["delivery"].items() if k != "deadLetterSink"} == documented["event"]
