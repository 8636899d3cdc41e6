"""A reply the broker refuses, under Eventing's ``authentication-oidc``: the channel posts the
reply to broker-filter's ``/reply`` path, which passes it on to the Broker's ``status.address``,
so the dead letter's ``knativeerrordest`` is that address, not ``K_SINK`` (the Broker's address
as a reference resolves it). Under permissive transport encryption the two differ in scheme
(``K_SINK`` https, ``status.address`` http), and katuna still knows its reply was refused, not
its event, and leaves the study to the tick."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service, free_port
from knative_emulator import KnativeCluster, documents, sink_binding_env
from knative_emulator.broker import Broker, post
from kube_stub import KubeStub
from test_knative_mode import RETRY_TWICE, SERVICE_REF, Subscriber, event, one_trigger

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import StudyRecord
from functions.core.validate import parse_study


@pytest.mark.parametrize(("oidc", "mode"), [(False, "disabled"), (True, "disabled"), (False, "permissive"),
                                            (True, "permissive"), (False, "strict"), (True, "strict")])
def test_a_refused_replys_dead_letter_names_the_address_the_reply_was_posted_to(tmp_path: Path, oidc: bool,
                                                                                  mode: str):
    """Without OIDC the channel posts a reply to the Subscription's reply, the Broker's address as
    a reference resolves it (the first of ``status.addresses``); with OIDC broker-filter posts it
    to ``status.address``. Both are one address but under permissive transport encryption."""
    subscriber = Subscriber([200], reply={"test.event": event("test.event")})
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url},
                    oidc=oidc, transport_encryption=mode)
    try:
        schemes = {"disabled": ("http", "http"), "permissive": ("https", "http"), "strict": ("https", "https")}[mode]
        assert (broker.url.split(":")[0], broker.address.split(":")[0]) == schemes
        assert broker.url.endswith("/katuna/katuna") and broker.address.endswith("/katuna/katuna")
        assert (broker.ca_pem is None) == (mode == "disabled")
        assert post(broker.url, event(knativebrokerttl="2"), None)[0] == 202, "the dead-letter sink took the letter"
        letter = subscriber.wait(1, "/dead-letters")[0][2]
        assert (letter["ce-knativeerrorcode"], letter["ce-knativeerrordest"]) == (
            "400", broker.address if oidc else broker.url), "the reply's TTL was spent"
        assert post(broker.address, event(), None)[0] == 202, "status.address takes events too"
        assert sink_binding_env(broker, documents()).get("K_CA_CERTS") == broker.ca_pem, \
            "the SinkBinding passes on the CA of an https K_SINK"
    finally:
        broker.close()
        subscriber.close()


TOKEN = "oidc-replies-api-token-0123456789"


def _plant_study(db: Path, name: str) -> None:
    """A running study ``name`` of uid ``uid-<name>``."""
    spec = parse_study(study_definition(name))
    store = SqliteStore(db)
    store.add_study(StudyRecord(spec, spec.to_dict(), str(db.parent), f"uid-{name}", created_at=1.0))
    store.close()


def _trigger(tmp_path: Path, replying: str, katuna: str) -> Path:
    """A Broker and one Trigger: ``trial.suggested`` to ``replying``, its dead letters to katuna's
    ``/dead-letters``."""
    (tmp_path / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: katuna\nspec: {}\n")
    (tmp_path / "trigger.yaml").write_text(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: katuna-spawn
spec:
  broker: katuna
  filters:
    - exact: {{type: dev.katuna.trial.suggested}}
  subscriber:
    uri: {replying}/functions/spawn
  delivery:
    retry: 0
    deadLetterSink:
      uri: {katuna}/dead-letters
""")
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("oidc", [False, True], ids=["without-oidc", "oidc"])
def test_under_oidc_and_permissive_transport_encryption_a_refused_reply_fails_no_study(tmp_path: Path, oidc: bool):
    """The 255th reply in a row (here the second: the event came with ``knativebrokerttl`` 2) is
    refused, and the event it answered dead-lettered naming the ingress. With OIDC that is
    the Broker's http ``status.address`` while ``K_SINK`` is its https address: the study still
    runs on, left to the tick, as it does without OIDC (``K_SINK`` itself named)."""
    _plant_study(tmp_path / "katuna.db", "replied")
    replying = Subscriber([200], reply={"dev.katuna.trial.suggested": event("dev.katuna.study.completed")})
    port = free_port()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    broker = Broker(_trigger(manifests, replying.url, f"http://127.0.0.1:{port}"), {}, token=TOKEN, oidc=oidc,
                    transport_encryption="permissive")
    service = Service(tmp_path, workers=1, port=port, KATUNA_API_TOKEN=TOKEN, KATUNA_EVENTS="reply",
                      K_SINK=broker.url, K_CA_CERTS=broker.ca_pem or "")
    try:
        suggested = CloudEvent(attributes={
            "type": "dev.katuna.trial.suggested", "source": "/katuna", "datacontenttype": "application/json",
            "knativebrokerttl": "2"}, data={"study": "replied", "uid": "uid-replied", "trial": 0, "attempt": 1})
        assert post(broker.address, suggested, None)[0] == 202, "katuna took the dead letter"
        [letter] = broker.dead_letters
        assert letter.get_extension("knativeerrordest") == (broker.address if oidc else broker.url)
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        study = service.json("GET", "/studies/replied", headers=authorized)[1]
        assert study["status"] == "running", study
        [kept] = service.json("GET", "/dead-letters", headers=authorized)[1]
        assert kept["reason"].startswith(f"{broker.address if oidc else broker.url} 400"), kept
        assert kept["event"]["data"] == {"study": "replied", "uid": "uid-replied", "trial": 0, "attempt": 1}
    finally:
        service.close()
        broker.close()
        replying.close()


@pytest.mark.slow
def test_a_study_runs_through_a_broker_with_oidc_and_permissive_transport_encryption(tmp_path: Path):
    """The SinkBinding gives katuna the Broker's https address and its CA (``K_CA_CERTS``), the
    sources send there too, and the replies go through broker-filter to its http address."""
    kube = KubeStub()
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5, time_scale=0.005, oidc=True,
                             transport_encryption="permissive")
    try:
        assert cluster.service.env["K_SINK"].startswith("https://") and cluster.service.env["K_CA_CERTS"]
        definition = study_definition(name="encrypted", maxTrials=2, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("encrypted", timeout=90)
        assert (study["status"], study["counts"]["complete"]) == ("completed", 2), study
        assert cluster.broker.received["dev.katuna.study.created"] >= 1 and cluster.broker.replies > 0
        assert not cluster.broker.dead_letters
    finally:
        cluster.close()
        kube.close()
