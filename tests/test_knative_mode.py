"""Knative mode end to end: ``katuna serve`` in reply mode behind the loopback broker, fed by the
PingSource and the ApiServerSources of ``knative/``, trials as Jobs on the loopback Kubernetes
API; and the broker emulator itself held to Knative's delivery and filter rules."""

from __future__ import annotations

import base64
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from knative_emulator import MANIFESTS, KnativeCluster, manifests
from knative_emulator.broker import Broker, attributes_of, post
from knative_emulator.delivery import Delivery, iso_seconds
from knative_emulator.filters import UnsupportedFilter, delivered, trigger_filter
from kube_stub import KubeStub

SERVICE_REF = "serving.knative.dev/v1/Service/katuna"


class Subscriber:
    """A loopback subscriber answering each POST with the next of ``answers`` (then the last one);
    ``reply`` maps an event type to the CloudEvent to answer it with (binary mode)."""

    def __init__(self, answers: list[int], reply: dict[str, CloudEvent] | None = None) -> None:
        self.answers = answers
        self.reply = reply or {}
        self.received: list[tuple[float, str, dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with subscriber.arrived:
                    subscriber.received.append((time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    code = subscriber.answers[min(len(subscriber.received), len(subscriber.answers)) - 1]
                    subscriber.arrived.notify_all()
                self.send_response(code)
                payload = b'{"error": "refused"}' if code >= 300 else b""
                answer = subscriber.reply.get(self.headers.get("ce-type", ""))
                if answer is not None:
                    message = ce_http.to_binary_event(answer)
                    payload = message.body
                    for name, value in message.headers.items():
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, path: str | None = None, timeout: float = 30) -> list:
        def matching() -> list:
            return [r for r in self.received if path is None or r[1] == path]

        with self.arrived:
            self.arrived.wait_for(lambda: len(matching()) >= count, timeout=timeout)
            return matching()

    def close(self) -> None:
        self.server.shutdown()


def one_trigger(tmp_path: Path, delivery: str, filters: str = "- exact:\n        type: test.event") -> Path:
    """A manifests directory with a Broker and one Trigger to the ``katuna`` Service ref."""
    (tmp_path / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: katuna\nspec: {}\n")
    (tmp_path / "trigger.yaml").write_text(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: failing
spec:
  broker: katuna
  filters:
    {filters}
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: katuna}}
    uri: /functions/x
  delivery:
{delivery}
""")
    return tmp_path


def event(event_type: str = "test.event", **extensions: str) -> CloudEvent:
    return CloudEvent(attributes={"type": event_type, "source": "/test", "datacontenttype": "application/json",
                                  **extensions}, data={"study": "s"})


def test_a_failing_subscriber_is_retried_with_exponential_backoff_then_dead_lettered(tmp_path: Path):
    subscriber = Subscriber([503])
    delivery = """    retry: 2
    backoffPolicy: exponential
    backoffDelay: PT0.2S
    deadLetterSink:
      ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: katuna}
      uri: /dead-letters"""
    broker = Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url}, token="secret")
    try:
        assert post(broker.url, event(), None)[0] == 202
        tries = subscriber.wait(3, "/functions/x")
        letters = subscriber.wait(1, "/dead-letters")
        assert len(tries) == 3, "the first attempt and two retries"
        gaps = [later[0] - earlier[0] for earlier, later in zip(tries, tries[1:], strict=False)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4, "0.2 s, then 0.4 s: delay * 2^n"
        headers = letters[0][2]
        assert headers["ce-knativeerrorcode"] == "503"
        assert headers["ce-knativeerrordest"] == f"{subscriber.url}/functions/x"
        assert base64.b64decode(headers["ce-knativeerrordata"]) == b'{"error": "refused"}'
        assert headers["authorization"] == "Bearer secret"
    finally:
        broker.close()
        subscriber.close()


@pytest.mark.parametrize("code,attempts", [(400, 1), (422, 1), (404, 3), (408, 3), (409, 3), (429, 3), (500, 3)])
def test_which_answers_knative_retries(tmp_path: Path, code: int, attempts: int):
    subscriber = Subscriber([code])
    delivery = f"""    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.05S
    deadLetterSink:
      uri: {subscriber.url}/dead-letters"""
    broker = Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        subscriber.wait(1, "/dead-letters")
        assert len([r for r in subscriber.received if r[1] == "/functions/x"]) == attempts
    finally:
        broker.close()
        subscriber.close()


def test_a_structured_event_is_delivered_and_its_reply_re_enters_the_broker_once(tmp_path: Path):
    subscriber = Subscriber([200], reply={"test.first": event("test.reply")})
    broker = Broker(one_trigger(tmp_path, "    retry: 3", "- prefix:\n        type: test."), {SERVICE_REF: subscriber.url})
    try:
        structured = ce_http.to_structured_event(event("test.first"))
        request = urllib.request.Request(broker.url, data=structured.body, headers=structured.headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        received = subscriber.wait(2)
        time.sleep(0.3)
        assert [r[2]["ce-type"] for r in subscriber.received] == ["test.first", "test.reply"], "each once, in binary mode"
        assert received[0][2]["ce-knativearrivaltime"], "stamped by the ingress"
        assert broker.received == {"test.first": 1, "test.reply": 1} and broker.replies == 1
        bad = urllib.request.Request(broker.url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(bad, timeout=10)
    finally:
        broker.close()
        subscriber.close()


def test_filters_evaluate_as_knative_does():
    def passes(filters: list, **attributes: str) -> bool:
        return delivered(trigger_filter({"filters": filters}), attributes)

    job = {"type": "dev.knative.apiserver.resource.update", "apiversion": "batch/v1", "kind": "Job"}
    assert passes([{"exact": {"type": job["type"], "apiversion": "batch/v1"}}], **job)
    assert not passes([{"exact": {"type": job["type"], "apiversion": "katuna.dev/v1"}}], **job)
    assert not passes([{"exact": {"subject": "x"}}], **job), "a missing attribute fails"
    assert passes([{"prefix": {"type": "dev.knative.apiserver."}}, {"suffix": {"type": ".update"}}], **job)
    assert passes([{"any": [{"exact": {"kind": "Study"}}, {"exact": {"kind": "Job"}}]}], **job)
    assert not passes([{"not": {"exact": {"kind": "Job"}}}], **job)
    assert passes([{"all": [{"not": {"exact": {"kind": "Study"}}}, {"prefix": {"apiversion": "batch"}}]}], **job)
    assert passes([], **job), "no filter delivers everything"
    for refused in ([{"exact": {"type": "a"}, "prefix": {"type": "b"}}], [{"cesql": "type = 'a'"}],
                    [{"exact": {"Type": "a"}}], [{"exact": {"type": ""}}]):
        with pytest.raises(UnsupportedFilter):
            trigger_filter({"filters": refused})
    with pytest.raises(UnsupportedFilter, match="spec.filter"):
        trigger_filter({"filter": {"attributes": {"type": "a"}}})


def test_delivery_reads_iso_durations_and_refuses_what_it_does_not_emulate():
    assert iso_seconds("PT0.5S") == 0.5 and iso_seconds("PT1M30S") == 90 and iso_seconds("P1DT1H") == 90000
    spec = Delivery.from_spec({"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT2S"})
    assert [spec.backoff(n) for n in range(3)] == [0, 2, 4], "linear: delay * n, n from 0"
    for bad in ({"retry": -1}, {"backoffPolicy": "random"}, {"timeout": "PT1S"}, {"backoffDelay": "0.5s"}):
        with pytest.raises(ValueError):
            Delivery.from_spec(bad)


def test_the_manifests_triggers_route_each_event_type_to_its_functions():
    broker = Broker(MANIFESTS, {SERVICE_REF: "http://127.0.0.1:1"})
    try:
        def routed(event_type: str, **extensions: str) -> set[str]:
            attributes = attributes_of(event(event_type, **extensions))
            return {t.subscriber.rsplit("/", 1)[1] for t in broker.triggers if delivered(t.check, attributes)}

        assert routed("dev.katuna.study.created") == {"suggest", "provision"}
        assert routed("dev.katuna.study.completed") == {"stop", "provision", "writeback"}
        assert routed("dev.knative.sources.ping") == {"provision"} | ({"reconcile"} & _functions())
        assert routed("dev.knative.apiserver.resource.update", apiversion="batch/v1", kind="Job") == {"jobwatch"}
        assert routed("dev.knative.apiserver.resource.add", apiversion="katuna.dev/v1") == {"resource"}
        assert routed("dev.knative.apiserver.resource.add") == set(), "no apiversion, no Trigger"
        assert {t.dead_letter for t in broker.triggers} == {"http://127.0.0.1:1/dead-letters"}
    finally:
        broker.close()


def _functions() -> set[str]:
    return {doc["spec"]["subscriber"]["uri"].rsplit("/", 1)[1] for doc in manifests("Trigger")}


def test_the_ping_source_sends_an_empty_object_as_knative_does():
    from knative_emulator.faults import Faults
    from knative_emulator.sources import PingSource

    ping = PingSource(manifests("PingSource")[0], "http://127.0.0.1:1/", Faults(), interval=3600)
    try:
        tick = ce_http.to_binary_event(ping.tick())
        assert tick.headers["ce-type"] == "dev.knative.sources.ping"
        name = manifests("PingSource")[0]["metadata"]["name"]
        assert tick.headers["ce-source"] == f"/apis/v1/namespaces/katuna/pingsources/{name}"
        assert (tick.headers["content-type"], tick.body) == ("application/json", b"{}")
    finally:
        ping.close()


def _wait(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def _study(name: str) -> dict:
    spec = study_definition(name=name)
    del spec["name"]
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": "katuna"},
            "spec": spec}


@pytest.mark.slow
def test_the_api_server_source_sends_watched_changes_and_drops_what_a_relist_skips(tmp_path: Path):
    from knative_emulator.faults import Faults
    from knative_emulator.sources import ApiServerSource

    kube = KubeStub(history=10)
    ingress = Subscriber([202])
    kube.apply(_study("before"))
    manifest = next(d for d in manifests("ApiServerSource") if d["spec"]["resources"][0]["kind"] == "Study")
    source = ApiServerSource(manifest, kube.url, ingress.url + "/", Faults())
    try:
        _wait(lambda: source.watching == len(manifest["spec"]["resources"]))
        kube.apply(_study("seen"))
        headers = ingress.wait(1)[0][2]
        assert (headers["ce-type"], headers["ce-kind"], headers["ce-apiversion"], headers["ce-name"],
                headers["ce-namespace"], headers["ce-subject"]) == (
            "dev.knative.apiserver.resource.add", "Study", "katuna.dev/v1", "seen", "katuna",
            "/apis/katuna.dev/v1/namespaces/katuna/studies/seen")
        source.pause()
        _wait(lambda: source.watching == 0)
        for number in range(12):
            kube.apply(_study(f"gap-{number}"))
        kube.delete("Study", "katuna", "seen")
        source.resume()
        _wait(lambda: source.relists >= 1)
        kube.apply(_study("after"))
        ingress.wait(2)
        time.sleep(0.5)
        sent = [(r[2]["ce-type"].rsplit(".", 1)[1], r[2]["ce-name"]) for r in ingress.received]
        assert sent == [("add", "seen"), ("add", "after")], "nothing from before the start or from the gap"
    finally:
        source.close()
        ingress.close()
        kube.close()


@pytest.mark.slow
def test_a_study_runs_to_completion_through_the_broker(tmp_path: Path):
    kube = KubeStub()
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5)
    try:
        definition = study_definition(name="through-knative", maxTrials=4, parallelism=2)
        definition["trialTemplate"]["image"] = "python:3.12"
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("through-knative", timeout=90)
        assert (study["status"], study["counts"]["complete"]) == ("completed", 4)
        assert sorted(n for n in kube.created if n.startswith("through-knative-")) == [
            f"through-knative-{n}" for n in range(4)]
        assert cluster.broker.received["dev.katuna.trial.finished"] >= 4
        assert cluster.broker.replies > 0, "functions answered with replies that re-entered the broker"
        assert not cluster.broker.dead_letters, [attributes_of(e) for e in cluster.broker.dead_letters]
    finally:
        cluster.close()
        kube.close()
