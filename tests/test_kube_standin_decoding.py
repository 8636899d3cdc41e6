"""The loopback Kubernetes API reads the Secrets and ``events.k8s.io/v1`` Events katuna creates as
a real API server's decoder reads them: a value of the wrong JSON type cannot be decoded (400),
a field the kind's schema lacks is refused under ``fieldValidation=Strict`` and warned of and
dropped otherwise, and an ``events.k8s.io/v1`` Event's labels, annotations and owner references
are validated as every object's (``ValidateObjectMeta``). katuna's own Events pass Kubernetes'
schemas at the oldest and the newest version it supports."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import kubernetes_validate
import pytest
from kube_stub import KubeStub
from kube_versions import VERSIONS

from functions.adapters.kubernetes_events import event
from functions.core.resource_events import Happening, Regarding

SECRETS = "/api/v1/namespaces/katuna/secrets"
EVENTS = "/apis/events.k8s.io/v1/namespaces/katuna/events"
REGARDING = Regarding("batch/v1", "Job", "katuna", "tuned-0", "0b0b0b0b-1111-2222-3333-444455556666")


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub()
    yield stub
    stub.close()


def post(kube: KubeStub, path: str, body: dict) -> tuple[int, dict, list[str]]:
    """POST ``body`` as katuna's ServiceAccount: the answer's status, body and ``Warning`` headers."""
    request = urllib.request.Request(kube.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), answer.headers.get_all("Warning") or []
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read()), []


def katuna_event(name: str, **changes: object) -> dict:
    """An Event as katuna writes it (:func:`functions.adapters.kubernetes_events.event`), renamed and changed."""
    body = event(REGARDING, Happening("JobCreated", "Normal", "Created", "Job tuned-0 created", 1.7e9, name), "host")
    body["metadata"]["name"] = name
    return {**body, **changes}


def secret(name: str, **changes: object) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"token": base64.b64encode(b"v").decode()}, **changes}


@pytest.mark.parametrize(("path", "query", "body", "code", "words"), [
    (SECRETS, "", secret("typed", stringData={"token": 7}), 400,
     'Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal number into Go struct field '
     "Secret.stringData"),
    (SECRETS, "", secret("flagged", immutable="yes"), 400,
     "cannot unmarshal string into Go struct field Secret.immutable of type bool"),
    (SECRETS, "?fieldValidation=Strict", secret("misspelt", dtaa={}), 400,
     'Secret in version "v1" cannot be handled as a Secret: strict decoding error: unknown field "dtaa"'),
    (EVENTS, "", katuna_event("noted", note={"text": "x"}), 400,
     'Event in version "v1" cannot be handled as a Event: json: cannot unmarshal object into Go struct field '
     "Event.note of type string"),
    (EVENTS, "?fieldValidation=Strict", katuna_event("misspelt", nte="x"), 400,
     'strict decoding error: unknown field "nte"'),
    (EVENTS, "", katuna_event("labelled", metadata={"name": "labelled", "labels": {"-a": "b"}}), 422,
     'Event.events.k8s.io "labelled" is invalid: metadata.labels: Invalid value: "-a"'),
    (EVENTS, "", katuna_event("annotated", metadata={"name": "annotated", "annotations": {"a b": "c"}}), 422,
     'metadata.annotations: Invalid value: "a b"'),
    (EVENTS, "", katuna_event("owned", metadata={"name": "owned", "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": ""}]}), 422,
     "metadata.ownerReferences[0].uid: Required value"),
])
def test_a_secret_or_event_the_api_server_cannot_decode_or_refuses_is_refused_and_not_stored(
        kube: KubeStub, path, query, body, code, words):
    status, answer, _ = post(kube, path + query, body)
    assert (status, answer.get("code")) == (code, code) and words in answer["message"], answer
    name = body["metadata"]["name"]
    assert ("katuna", name) not in kube.secrets
    assert not [e for e in kube.events if e["metadata"]["name"] == name]


def test_a_field_the_schema_lacks_is_warned_of_and_dropped_under_the_default_validation(kube: KubeStub):
    status, made, warnings = post(kube, SECRETS, secret("extra", dtaa={"a": "b"}))
    assert status == 201 and "dtaa" not in made and "dtaa" not in kube.secrets[("katuna", "extra")]
    assert warnings == ['299 - "unknown field \\"dtaa\\""'], warnings
    status, made, warnings = post(kube, EVENTS, katuna_event("extra", nte="x"))
    assert status == 201 and "nte" not in made and warnings == ['299 - "unknown field \\"nte\\""'], warnings


@pytest.mark.parametrize("version", VERSIONS)
def test_the_events_katuna_writes_pass_kubernetes_schemas(kube: KubeStub, version: str):
    body = katuna_event(f"tuned-0.{version}")
    kubernetes_validate.validate(body, version, strict=True)
    status, _, warnings = post(kube, EVENTS, body)
    assert (status, warnings) == (201, [])
