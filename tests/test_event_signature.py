"""katuna's signature on its own events, which every caller without the API token (a broker's
delivery) must carry: through the real CloudEvents binding, and end to end behind the loopback
broker, where a trial pod forges a sibling's end and a dead letter."""

from __future__ import annotations

import base64
import json
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import study_definition
from knative_emulator import KnativeCluster
from knative_emulator.broker import attributes_of
from kube_stub import KubeStub
from prometheus_client.parser import text_string_to_metric_families

from functions.adapters import cloudevents_http
from functions.core import event_signature
from functions.core.errors import ForgedEvent
from functions.core.events import (
    APISERVER_EVENTS,
    POOL_CHECK,
    Event,
    study_completed,
    study_created,
    trial_finished,
    trial_progress,
    trial_suggested,
)

KEY = event_signature.event_key("a-token-0123456789")
OTHER_KEY = event_signature.event_key("another-token-0123")

OWN_EVENTS = [study_created("s", "u"), trial_suggested("s", "u", 3, 1),
              trial_finished("s", "u", 3, 1, "exited", exit_code=0, message="ünïcode, \"quotes\""),
              study_completed("s", "u", "failed", "why\nnot")]


@pytest.mark.parametrize("event", OWN_EVENTS, ids=lambda e: e.type)
def test_katunas_own_events_are_taken_without_the_api_token_only_signed_with_its_key(event: Event):
    headers, body = cloudevents_http.to_http(event, KEY)
    assert cloudevents_http.from_http(headers, body, KEY).data == event.data
    for unsigned_or_foreign in (cloudevents_http.to_http(event), cloudevents_http.to_http(event, OTHER_KEY)):
        with pytest.raises(ForgedEvent, match=event_signature.EXTENSION):
            cloudevents_http.from_http(*unsigned_or_foreign, KEY)
    assert cloudevents_http.from_http(*cloudevents_http.to_http(event)).data == event.data, \
        "with the API token, no signature is needed"


def test_every_type_katuna_sends_itself_and_handles_is_signed_but_progress_reports():
    assert {event.type for event in OWN_EVENTS} == event_signature.SIGNED


def test_a_signature_covers_the_type_and_every_field_of_the_data():
    headers, body = cloudevents_http.to_http(trial_finished("s", "u", 3, 1, "exited", exit_code=0), KEY)
    data = json.loads(body)
    for changed in ({**data, "trial": 4}, {**data, "outcome": "preempted"}, {**data, "extra": 1}):
        with pytest.raises(ForgedEvent):
            cloudevents_http.from_http(headers, json.dumps(changed).encode(), KEY)
    retyped = {**headers, "ce-type": "dev.katuna.study.completed"}
    with pytest.raises(ForgedEvent):
        cloudevents_http.from_http(retyped, body, KEY)
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=2).encode()
    assert cloudevents_http.from_http(headers, reordered, KEY).data["trial"] == 3, \
        "the data's key order and spacing, which a broker may change, are not signed"


def test_events_others_send_need_no_signature():
    others = [Event(POOL_CHECK, {}), Event(APISERVER_EVENTS[0], {"apiVersion": "batch/v1", "kind": "Job"}),
              trial_progress("s", "u", 3, 1, 2, 0.5, token="t")]
    for event in others:
        assert cloudevents_http.from_http(*cloudevents_http.to_http(event), KEY).type == event.type


def _dead_letter(event: Event, key: bytes | None) -> tuple[dict[str, str], bytes]:
    headers, body = cloudevents_http.to_http(event, key)
    return {**headers, "ce-knativeerrordest": "http://katuna/functions/collect", "ce-knativeerrorcode": "422"}, body


def test_a_dead_letter_fails_its_study_only_when_katuna_signed_its_event():
    event = trial_finished("s", "u", 3, 1, "exited", exit_code=0)
    assert cloudevents_http.dead_letter(*_dead_letter(event, KEY), KEY).fails_study
    assert not cloudevents_http.dead_letter(*_dead_letter(event, None), KEY).fails_study
    assert not cloudevents_http.dead_letter(*_dead_letter(event, OTHER_KEY), KEY).fails_study
    assert cloudevents_http.dead_letter(*_dead_letter(event, None)).fails_study, "with the API token"
    for other in (Event("dev.example.anything", {"study": "s", "uid": "u"}), Event(POOL_CHECK, {"study": "s", "uid": "u"})):
        assert not cloudevents_http.dead_letter(*_dead_letter(other, KEY), KEY).fails_study, \
            "without the API token, a dead letter of a type katuna does not sign fails nothing"


@pytest.mark.parametrize("cut", [1, 2, 3], ids=lambda n: f"{n}-of-4-bytes")
def test_a_dead_letters_error_data_cut_inside_a_character_reads_as_its_text(cut: int):
    """Knative cuts ``knativeerrordata`` at 1,024 base64 characters: a body cut inside a
    character of several bytes reads as its text up to that character, not as base64. Bytes
    that are no UTF-8 before the end are still shown as sent."""
    event = trial_finished("s", "u", 3, 1, "exited", exit_code=0)
    headers, body = _dead_letter(event, None)
    text = "quota exceeded: réessayez 🙂".encode()
    cut_body = text[:len(text) - 4 + cut]
    letter = cloudevents_http.dead_letter({**headers, "ce-knativeerrordata": base64.b64encode(cut_body).decode()}, body)
    assert letter.reason == "http://katuna/functions/collect 422 quota exceeded: réessayez"
    binary = base64.b64encode(b"\xff\xfe" + text[:-1]).decode()
    assert cloudevents_http.dead_letter({**headers, "ce-knativeerrordata": binary}, body).reason.endswith(binary)


def _forged_counts(cluster: KnativeCluster) -> dict[tuple[str, str], float]:
    """The service's count of forged events, by type and handler, from ``/metrics``."""
    request = urllib.request.Request(cluster.service.url + "/metrics", headers={"Authorization": f"Bearer {cluster.token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return {(s.labels["type"], s.labels["handler"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "katuna_events_handled_total" and s.labels["outcome"] == "forged"}


FORGER = """
import json, os, sys, time, urllib.error, urllib.request
service, broker, answers = sys.argv[1:4]
env = os.environ
if env["KATUNA_TRIAL"] == "0":
    time.sleep(0.5)
    sibling = {"study": env["KATUNA_STUDY"], "uid": env["KATUNA_STUDY_UID"], "trial": 1, "attempt": 1,
               "outcome": "exited", "exitCode": 0, "message": ""}
    headers = {"ce-specversion": "1.0", "ce-type": "dev.katuna.trial.finished", "ce-source": "/katuna",
               "ce-id": "forged", "content-type": "application/json"}
    letter = {**headers, "ce-knativeerrordest": service, "ce-knativeerrorcode": "422"}
    for url, sent in ((service, headers), (broker, headers), (service + "dead-letters", letter)):
        request = urllib.request.Request(url, json.dumps(sibling).encode(), sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, body = answer.status, answer.read().decode()
        except urllib.error.HTTPError as refused:
            status, body = refused.code, refused.read().decode()
        with open(answers, "a") as out:
            out.write(json.dumps([status, body]) + "\\n")
else:
    time.sleep(3)
print("loss=0.5")
"""
"""Trial 0 posts the end of trial 1 as katuna would, unsigned: to the service itself, to the
broker's ingress, and as a dead letter of a refusal; trial 1 runs on for 3 seconds."""


@pytest.mark.slow
def test_a_trial_pod_cannot_end_a_sibling_or_fail_its_study_behind_a_broker_without_oidc(tmp_path: Path):
    """The service refuses the forged end (403, whether posted to it or through the broker,
    which then dead-letters it), and takes the forged dead letter without failing the study:
    trial 1 runs to its own end, and the study completes."""
    kube = KubeStub()
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5, time_scale=0.005)
    answers = tmp_path / "answers"
    try:
        definition = study_definition(name="signed", maxTrials=2, parallelism=2)
        definition["trialTemplate"]["image"] = "python:3.12"
        definition["trialTemplate"]["command"] = [sys.executable, "-c", FORGER, cluster.url + "/",
                                                  cluster.broker.url, str(answers), "${trialParameters.x}"]
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("signed", timeout=90)
        trials = {t["number"]: (t["state"], t["values"], t["reason"]) for t in cluster.api("GET", "/studies/signed/trials")[1]}
        letters = cluster.api("GET", "/dead-letters")[1]
        log = cluster.service.log()
        metrics = _forged_counts(cluster)
    finally:
        cluster.close()
        kube.close()
    (direct, direct_body), (brokered, _), (letter, letter_body) = [json.loads(line) for line in answers.read_text().splitlines()]
    assert (direct, json.loads(direct_body)["error"]) == (403, "forged_event")
    assert log.count("refused an event from 127.0.0.1: dev.katuna.trial.finished refused") == 2, \
        "each refusal is logged for the operator: the direct post, and the broker's delivery"
    assert brokered == 202, "the ingress takes any event; its delivery to katuna is what is refused"
    assert (letter, letter_body) == (202, ""), "an empty answer, as Knative's filter takes from a dead-letter sink"
    assert trials == {0: ("COMPLETE", [0.5], None), 1: ("COMPLETE", [0.5], None)}, trials
    assert study["status"] == "completed", study
    assert ("dev.katuna.trial.finished", "403") in [
        (attributes_of(e)["type"], attributes_of(e).get("knativeerrorcode")) for e in cluster.broker.dead_letters]
    assert metrics == {("dev.katuna.trial.finished", "none"): 2.0}, "each refusal is counted for the operator too"
    assert sorted(d["event"]["id"] for d in letters if d["event"]["type"] == "dev.katuna.trial.finished") == \
        ["forged", "forged"], "both dead letters are kept for the operator to see"


def test_a_signed_event_replayed_as_a_dead_letter_without_the_token_fails_no_study_it_does_not_fail(tmp_path: Path):
    """Behind a broker without OIDC, anyone who can reach the service may post a dead letter of
    an event katuna signed (a reply it answered someone with) and claim any refusal: katuna
    handles that event once more and, as it is not refused again, leaves the study running; the
    refusal's text is kept with the letter, never as the study's reason."""
    from http_helpers import Service, Sink

    token = "replay-token-0123456789"
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=token, KATUNA_EVENTS="reply", K_SINK=sink.url)
    try:
        definition = study_definition(name="replayed", maxTrials=2)
        status, _, body = service.request("POST", "/studies", json.dumps(definition),
                                          {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert status == 201, body
        (headers, body), = sink.wait(1)
        assert headers["ce-type"] == "dev.katuna.study.created" and f"ce-{event_signature.EXTENSION}" in headers
        forged = {**headers, "ce-knativeerrordest": service.base + "/functions/suggest", "ce-knativeerrorcode": "422",
                  "ce-knativeerrordata": base64.b64encode(b"sabotaged").decode()}
        status, answer_headers, answer = service.request("POST", "/dead-letters", body, forged)
        assert (status, answer, answer_headers["Katuna-Study-Failed"]) == (202, b"", "false")
        study = service.json("GET", "/studies/replayed", headers={"Authorization": f"Bearer {token}"})[1]
        assert study["status"] == "running" and "sabotaged" not in (study["reason"] or ""), study
        assert "handled here: its refusal" in (tmp_path / "serve.log").read_text()
    finally:
        service.close()
        sink.close()


def test_a_dead_letter_nobody_vouches_for_is_kept_as_a_bounded_summary(tmp_path: Path):
    """Without the API token, and of an event katuna did not sign, a dead letter could come from
    anyone who reaches the service: what is kept of it is its attributes, cut, and its reason,
    cut, not its body (a thousand of a MiB each would fill the service's disk)."""
    from http_helpers import Service

    token = "summary-token-0123456789"
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=token, KATUNA_EVENTS="reply", K_SINK="http://127.0.0.1:9")
    try:
        headers = {"ce-specversion": "1.0", "ce-type": "dev.katuna.trial.finished", "ce-source": "/anyone",
                   "ce-id": "x" * 1000, "content-type": "application/json", "ce-knativeerrorcode": "500",
                   "ce-knativeerrordata": base64.b64encode(b"r" * 700).decode()}
        body = json.dumps({"study": "s", "uid": "u", "padding": "p" * 500_000})
        status, _, _ = service.request("POST", "/dead-letters", body, headers)
        assert status == 202
        [kept] = service.json("GET", "/dead-letters", headers={"Authorization": f"Bearer {token}"})[1]
        assert kept["event"]["id"] == "x" * 256 and "padding" not in kept["event"]["data"]
        assert "data not kept" in kept["event"]["data"]["katuna"] and len(kept["reason"]) <= 1024
    finally:
        service.close()


def test_dead_letters_anyone_could_post_never_push_out_those_vouched_for(tmp_path: Path):
    """Behind a broker without OIDC anyone who reaches the service may post dead letters: a flood
    of them (a thousand in seconds) took the place of every letter kept, the broker's own of
    katuna's signed events included, the only record of why a study failed. Those nobody vouches
    for are kept within ``KATUNA_MAX_DEAD_LETTERS`` of their own; those of katuna's signed events
    or sent with the API token are each kept within theirs."""
    from http_helpers import Service

    token = "flood-token-0123456789"
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=token, KATUNA_EVENTS="reply",
                      K_SINK="http://127.0.0.1:9", KATUNA_MAX_DEAD_LETTERS="2")
    headers = {"ce-specversion": "1.0", "ce-source": "/anyone", "content-type": "application/json",
               "ce-knativeerrorcode": "500"}
    signed = trial_finished("s", "u", 1, 1, "exited", exit_code=0)
    signature = event_signature.signature(event_signature.event_key(token), signed.type, signed.data)
    try:
        letters = [({"ce-type": signed.type, "ce-id": "signed", f"ce-{event_signature.EXTENSION}": signature},
                    json.dumps(dict(signed.data))),
                   ({"ce-type": "dev.example.other", "ce-id": "with-token", "Authorization": f"Bearer {token}"}, "{}"),
                   *(({"ce-type": "dev.example.flood", "ce-id": f"flood-{n}"}, "{}") for n in range(5))]
        for extra, body in letters:
            assert service.request("POST", "/dead-letters", body, {**headers, **extra})[0] == 202
        kept = service.json("GET", "/dead-letters", headers={"Authorization": f"Bearer {token}"})[1]
        assert [letter["event"]["id"] for letter in kept] == ["flood-4", "flood-3", "with-token", "signed"]
        more = ({"ce-type": "dev.example.other", "ce-id": "with-token-2", "Authorization": f"Bearer {token}"}, "{}")
        assert service.request("POST", "/dead-letters", more[1], {**headers, **more[0]})[0] == 202
        kept = service.json("GET", "/dead-letters", headers={"Authorization": f"Bearer {token}"})[1]
        assert [letter["event"]["id"] for letter in kept] == ["with-token-2", "flood-4", "flood-3", "with-token"]
    finally:
        service.close()
