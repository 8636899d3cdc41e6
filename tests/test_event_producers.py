"""Events a producer outside katuna posts to a real ``katuna serve``, made with the CloudEvents
SDK or by hand: an event is told from another by its source and id together, data the SDK
writes as ``data_base64`` is read as the JSON it is, data of a type katuna does not read is
refused naming that type, and a batch is refused saying so; attributes are read as CloudEvents
1.0, its JSON format and its HTTP binding have them (each refusal naming the attribute, a null
one unset, the content mode told by Content-Type alone, 0.3 refused); a resource event where no
Kubernetes API is configured is refused for good; an answer with no body names no content
type; and the events katuna sends are those its documentation describes."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service

from functions.adapters.cloudevents_attributes import URI, URI_REFERENCE
from functions.adapters.cloudevents_http import to_http
from functions.adapters.sqlite_store import SqliteStore
from functions.core import events

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "producer-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("producers")
    served = Service(workdir, workers=1, KATUNA_API_TOKEN=TOKEN, KUBECONFIG=str(workdir / "no-kubeconfig"),
                     KUBERNETES_SERVICE_HOST="")
    yield served
    served.close()


def _running(service: Service, name: str) -> str:
    """A study of one trial that hangs, running; its uid, which katuna's events name."""
    definition = study_definition(name, mode="hang", maxTrials=1, parallelism=1)
    status, _, body = service.request("POST", "/studies", json.dumps(definition),
                                      {"Content-Type": "application/json", **BEARER})
    assert status == 201, body
    return SqliteStore(service.workdir / "katuna.db").get_study(name).uid


def _stop(study: str, uid: str, **attributes: str) -> CloudEvent:
    return CloudEvent(attributes={"type": "dev.katuna.study.completed", "datacontenttype": "application/json",
                                  **attributes},
                      data={"study": study, "uid": uid, "status": "stopped", "reason": "stopped by its producer"})


def _post(service: Service, message: ce_http.HTTPMessage, **headers: str) -> tuple[int, dict]:
    status, _, body = service.request("POST", "/", message.body, {**message.headers, **BEARER, **headers})
    return status, json.loads(body) if body else {}


def _status(service: Service, name: str, wanted: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = service.json("GET", f"/studies/{name}", headers=BEARER)[1]["status"]
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _duplicates(service: Service) -> float:
    """The handlings of ``study.completed`` by ``stop`` answered from their record."""
    text = service.request("GET", "/metrics", headers=BEARER)[2].decode()
    found = re.search(r'^katuna_events_handled_total\{(?=[^}]*handler="stop")(?=[^}]*outcome="duplicate")'
                      r'(?=[^}]*type="dev.katuna.study.completed")[^}]*\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_two_producers_events_of_the_same_id_are_two_events_and_each_is_handled_once(service: Service):
    """CloudEvents identifies an event by its source and id: two producers may both number
    their events from 1. The second was taken for a redelivery of the first, answered from its
    record, and its study went on running."""
    first, second = _running(service, "by-x"), _running(service, "by-y")
    assert _post(service, ce_http.to_binary_event(_stop("by-x", first, source="/producer/x", id="1")))[0] == 202
    assert _post(service, ce_http.to_binary_event(_stop("by-y", second, source="/producer/y", id="1")))[0] == 202
    assert (_status(service, "by-x", "stopped"), _status(service, "by-y", "stopped")) == ("stopped", "stopped")
    before = _duplicates(service)
    again = ce_http.to_binary_event(_stop("by-y", second, source="/producer/y", id="1"))
    assert _post(service, again)[0] == 202
    assert _duplicates(service) == before + 1, "a redelivery of the same source and id is handled once"


@pytest.mark.slow
def test_a_structured_event_whose_data_the_sdk_wrote_as_base64_json_is_read_as_that_json(service: Service):
    """The CloudEvents SDKs write data given as bytes as ``data_base64`` in structured mode,
    whatever its ``datacontenttype``: JSON bytes were refused as no JSON data."""
    uid = _running(service, "based")
    event = _stop("based", uid, source="/producer/z", id="b-1")
    as_bytes = CloudEvent(attributes=event.get_attributes(), data=json.dumps(event.get_data()).encode())
    message = ce_http.to_structured_event(as_bytes)
    assert b"data_base64" in message.body
    status, answer = _post(service, message)
    assert status == 202, answer
    assert _status(service, "based", "stopped") == "stopped"


@pytest.mark.slow
@pytest.mark.parametrize(("data", "named"), [
    (b'{"study": "based", "study": "other"}', "duplicate key 'study'"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"study=based", "not JSON"),
])
def test_base64_data_of_a_json_type_that_is_no_json_is_refused_naming_data_base64(service: Service, data: bytes,
                                                                                  named: str):
    body = json.dumps({"specversion": "1.0", "type": "dev.katuna.study.created", "source": "/producer/z",
                       "id": "b-2", "datacontenttype": "application/json",
                       "data_base64": base64.b64encode(data).decode()})
    status, _, answer = service.request("POST", "/", body, {"Content-Type": "application/cloudevents+json", **BEARER})
    message = json.loads(answer)["message"]
    assert (status, message.startswith("data_base64:"), named in message) == (400, True, True), message


@pytest.mark.slow
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "application/xml"])
def test_data_of_a_type_katuna_does_not_read_is_refused_naming_the_type(service: Service, content_type: str):
    """``curl -d`` and Python's urllib label a body ``application/x-www-form-urlencoded``: the
    refusal said katuna expected JSON data, which is what was sent, not what was wrong."""
    message = ce_http.to_binary_event(_stop("any", "no-such-uid", source="/producer/z", id="t-1"))
    status, answer = _post(service, message, **{"Content-Type": content_type})
    assert status == 400
    assert answer["message"].startswith("datacontenttype:") and content_type in answer["message"], answer


@pytest.mark.slow
def test_a_batch_of_events_is_refused_saying_batched_mode_is_not_taken(service: Service):
    """The refusal asked for a CloudEvent in structured or binary mode, not saying that a batch
    is one katuna does not take."""
    batch = json.dumps([{"specversion": "1.0", "type": "dev.katuna.study.created", "source": "/producer/z",
                         "id": "batch-1", "data": {"study": "any", "uid": "no-such-uid"}}])
    status, _, answer = service.request("POST", "/", batch, {"Content-Type": "application/cloudevents-batch+json",
                                                             **BEARER})
    message = json.loads(answer)["message"]
    assert (status, message.startswith("batched mode"), "each event on its own" in message) == (415, True, True)


STRUCTURED = {"Content-Type": "application/cloudevents+json"}
EVENT = {"specversion": "1.0", "type": "dev.katuna.study.created", "source": "/producer/z", "id": "a-1",
         "datacontenttype": "application/json", "data": {"study": "any", "uid": "no-such-uid"}}
BINARY = {"ce-specversion": "1.0", "ce-type": "dev.katuna.study.created", "ce-source": "/producer/z", "ce-id": "a-2",
          "Content-Type": "application/json"}


def _structured(**changes: object) -> tuple[str, dict[str, str]]:
    event = {**EVENT, **changes}
    return json.dumps({name: value for name, value in event.items() if value is not ...}), STRUCTURED


def _binary(**changes: str) -> tuple[str, dict[str, str]]:
    return json.dumps(EVENT["data"]), {**BINARY, **changes}


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "refusal"), [
    (_structured(id=5), "attributes.id: expected a non-empty String that, with its source, identifies the event, "
                        "got a JSON number: 5"),
    (_structured(source=None), "attributes.source: the CloudEvent has no source; expected a non-empty URI-reference"),
    (_structured(type=""), "attributes.type: expected a non-empty String"),
    (_structured(subject=["a"]), "attributes.subject: expected a non-empty String, got a JSON array"),
    (_structured(comexample={"a": 1}), "attributes.comexample: expected a CloudEvents Boolean, Integer (32 bits) or "
                                       "String: a JSON true or false, whole number or string, got a JSON object"),
    (_structured(comexample=[1]), "attributes.comexample: expected a CloudEvents Boolean, Integer (32 bits) or String"),
    (_structured(comexample=1.5), "attributes.comexample: expected a CloudEvents Boolean, Integer (32 bits) or String"),
    (_structured(comexample=2**31), "attributes.comexample: expected a CloudEvents Boolean, Integer (32 bits)"),
    (_structured(my_ext="x"), "attributes.my_ext: expected an attribute name of ASCII lower-case letters and digits"),
    (_structured(source="a producer"), "attributes.source: expected a non-empty URI-reference (RFC 3986)"),
    (_structured(source="%zz"), "attributes.source: expected a non-empty URI-reference (RFC 3986)"),
    (_structured(dataschema="/schemas/study"), "attributes.dataschema: expected a URI (RFC 3986) with its scheme"),
    (_structured(dataschema="not a uri"), "attributes.dataschema: expected a URI (RFC 3986) with its scheme"),
    (_structured(datacontenttype="json"), "attributes.datacontenttype: expected a media type (RFC 2046)"),
    (_structured(datacontenttype="text/plain"), "attributes.datacontenttype: 'text/plain' is no JSON type"),
    (_structured(data_base64="e30="), "data_base64: expected an event's data in data or in data_base64, never both"),
    (_structured(data=..., data_base64="not base64!"), "data_base64: expected Base64 text (RFC 4648)"),
    (_structured(time=1), "attributes.time: expected an RFC 3339 timestamp"),
    (_binary(**{"ce-source": "a%20producer"}), "ce-source: expected a non-empty URI-reference (RFC 3986)"),
    (_binary(**{"ce-id": "x%C0%A0"}), "ce-id: expected percent-encoded UTF-8 (the HTTP binding)"),
    (_binary(**{"ce-datacontenttype": "application/json"}), "ce-datacontenttype: binary mode carries "
                                                            "datacontenttype in the Content-Type header"),
    (_binary(**{"ce-dataschema": "schemas/study"}), "ce-dataschema: expected a URI (RFC 3986) with its scheme"),
    (_binary(**{"Content-Type": "application/json; charset"}), "Content-Type: expected a media type (RFC 2046)"),
])
def test_a_refused_attribute_is_named_with_what_was_expected(service: Service, sent: tuple[str, dict[str, str]],
                                                             refusal: str):
    """The CloudEvents SDK's refusals named an attribute in its own words ("Failed to create
    CloudEvent due to the validation errors:: id: ..."), and it took what CloudEvents forbids:
    an extension that is an object, an array or a fraction, a source that is no URI-reference,
    a dataschema that is no URI, a JSON object under a type that is not JSON, bytes that are not
    UTF-8 once percent-decoded."""
    body, headers = sent
    status, _, answer = service.request("POST", "/", body, {**headers, **BEARER})
    message = json.loads(answer)["message"]
    assert (status, message[:len(refusal)]) == (400, refusal)


@pytest.mark.slow
def test_a_null_attribute_is_unset_as_the_json_format_has_it(service: Service):
    """The JSON format reads ``null`` as an attribute left out: ``time: null`` failed inside the
    SDK ("object of type 'NoneType' has no len()")."""
    uid = _running(service, "nulls")
    message = ce_http.to_structured_event(_stop("nulls", uid, source="/producer/n", id="n-1"))
    event = {**json.loads(message.body), "time": None, "subject": None, "comexample": None}
    status, _, answer = service.request("POST", "/", json.dumps(event), {**STRUCTURED, **BEARER})
    assert status == 202, answer
    assert _status(service, "nulls", "stopped") == "stopped"


@pytest.mark.slow
@pytest.mark.parametrize(("to_message", "named"), [(ce_http.to_structured_event, "attributes.specversion"),
                                                   (ce_http.to_binary_event, "ce-specversion")])
def test_a_cloudevents_0_3_event_is_refused_naming_specversion(service: Service, to_message, named: str):
    """The documentation requires CloudEvents 1.0, which Knative sends; the SDK read 0.3 (whose
    attributes differ) and katuna handled it."""
    uid = _running(service, f"old-{named[:2]}")
    event = CloudEventV03(attributes={"type": "dev.katuna.study.completed", "source": "/producer/o", "id": named,
                                      "datacontenttype": "application/json"},
                          data={"study": f"old-{named[:2]}", "uid": uid, "status": "stopped", "reason": "0.3"})
    status, answer = _post(service, to_message(event))
    assert (status, answer["message"].startswith(f'{named}: expected "1.0"'), "got '0.3'" in answer["message"]) == (
        400, True, True), answer
    assert _status(service, f"old-{named[:2]}", "stopped", timeout=0) == "running"


@pytest.mark.slow
def test_the_content_type_alone_tells_a_structured_event_from_a_binary_one(service: Service):
    """The HTTP binding tells the mode by Content-Type: a structured event may carry ``ce-*``
    headers beside its body, which holds every attribute. It was read in binary mode, and
    refused for a missing ce-specversion."""
    uid = _running(service, "headed")
    message = ce_http.to_structured_event(_stop("headed", uid, source="/producer/h", id="h-1"))
    status, answer = _post(service, message, **{"ce-source": "/a/router", "ce-traceparent": "00-01"})
    assert status == 202, answer
    assert _status(service, "headed", "stopped") == "stopped"
    status, _, answer = service.request("POST", "/", message.body, {"Content-Type": "application/cloudevents+xml",
                                                                     "ce-specversion": "1.0", **BEARER})
    assert (status, json.loads(answer)["message"]) == (415, (
        "structured mode in the event format of application/cloudevents+xml is not taken: katuna reads the JSON "
        "format, application/cloudevents+json, or binary mode"))


@pytest.mark.slow
def test_a_resource_event_where_no_kubernetes_api_is_configured_is_refused_for_good(service: Service):
    """The resource cannot be read however often the event comes: a 503 had the broker retry it
    until it gave up."""
    study = {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": "r", "namespace": "team"}}
    message = ce_http.to_binary_event(CloudEvent(attributes={
        "type": "dev.knative.apiserver.resource.add", "source": "https://10.96.0.1:443", "id": "r-1",
        "datacontenttype": "application/json"}, data=study))
    status, answer = _post(service, message)
    assert (status, answer["error"], answer["retryable"]) == (422, "no_kubernetes_api", False), answer
    assert answer["message"].startswith("no Kubernetes API to read study resources from: not in a cluster, no "
                                        "KATUNA_K8S_API and no usable kubeconfig")


@pytest.mark.slow
def test_an_answer_without_a_body_names_no_content_type(service: Service):
    """Flask labelled each empty answer ``text/html``."""
    message = ce_http.to_binary_event(_stop("any", "no-such-uid", source="/producer/e", id="e-1"))
    letter = ce_http.to_binary_event(CloudEvent(attributes={**_stop("any", "u", source="/p/e", id="e-2").get_attributes(),
                                                            "knativeerrorcode": "500"}, data={"study": "any"}))
    _running(service, "gone")
    answers = [service.request("POST", "/", message.body, {**message.headers, **BEARER}),
               service.request("POST", "/dead-letters", letter.body, {**letter.headers, **BEARER}),
               service.request("DELETE", "/studies/gone", None, BEARER)]
    assert [(status, body, "Content-Type" in headers) for status, headers, body in answers] == [
        (202, b"", False), (202, b"", False), (204, b"", False)]


@pytest.mark.parametrize(("text", "reference", "uri"), [
    ("/apis/v1/namespaces/team/pingsources/tick", True, False), ("https://10.96.0.1:443", True, True),
    ("//pubsub.googleapis.com/projects/p", True, False), ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", True, True),
    ("g;x?y#s", True, False), ("../g", True, False), ("http://[::1]:8080/a?b=c#d", True, True), ("mailto:a@b.c", True, True),
    ("a producer", False, False), ("%zz", False, False), ("1a:b", False, False), ("http://[::1/a", False, False),
    ("a\\b", False, False), ("<x>", False, False), ("a#b#c", False, False),
])
def test_a_uri_and_a_uri_reference_are_rfc_3986s(text: str, reference: bool, uri: bool):
    assert (URI_REFERENCE.fullmatch(text) is not None, URI.fullmatch(text) is not None) == (reference, uri)


def _sent_table() -> dict[str, tuple[str, str]]:
    """The documented events katuna sends: each type's ``subject`` and data cells."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text[text.index("### The events katuna sends"):]
    section = section[:section.index("\n## ")]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return {row[0].strip("| `"): (row[1].strip("`"), row[2]) for row in rows}


def _documented_type(table: dict[str, tuple[str, str]], event_type: str) -> tuple[str, str]:
    for documented, cells in table.items():
        prefix, _, changes = documented.partition("{")
        names = changes.rstrip("}").split(",") if changes else [""]
        if event_type in (prefix + name for name in names):
            return cells
    raise AssertionError(f"{event_type} is not in the table of the events katuna sends (docs/api.md)")


def test_the_events_katuna_sends_are_those_the_documentation_describes():
    """Each type katuna sends, with every data field its events may carry, its subject's form,
    its source, and no ``dataschema``, as docs/api.md says; the documentation said nothing of
    source, subject or data."""
    study = {"apiVersion": "katuna.dev/v1", "kind": "Study",
             "metadata": {"name": "demo", "namespace": "ml", "uid": "r-1", "generation": 2}}
    sent = [events.study_created("demo", "u-1", restarts=1),
            events.trial_suggested("demo", "u-1", 3, 1),
            events.trial_finished("demo", "u-1", 3, 1, "exited", 0, "", image_id="img", disruptions=1, cause="c",
                                  running=True, pod="p", peak_memory=1, refused=True),
            events.trial_progress("demo", "u-1", 3, 1, 2, 0.5, "t", cursor={"offset": 1}),
            events.study_completed("demo", "u-1", "stopped", "r", restarts=1),
            *(events.resource_changed(change, study) for change in ("add", "update", "delete"))]
    table = _sent_table()
    placeholders = {"<study>": "demo", "<trial>": "3", "<kind>": "Study", "<namespace>": "ml", "<name>": "demo"}
    for event in sent:
        subject, data = _documented_type(table, event.type)
        for placeholder, value in placeholders.items():
            subject = subject.replace(placeholder, value)
        assert subject == event.subject, event.type
        assert [key for key in event.data if f"`{key}`" not in data] == [], event.type
        headers, _ = to_http(event)
        assert (headers["ce-source"], headers["content-type"], "ce-dataschema" in headers) == (
            events.SOURCE, "application/json", False)
        assert event.type in events.ROUTES, "katuna accepts back each event it sends"
    assert f"`source` `{events.SOURCE}`" in (ROOT / "docs" / "api.md").read_text()
