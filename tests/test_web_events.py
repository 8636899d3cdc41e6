"""The event paths of a real ``katuna serve``: the token outside Knative, Knative Eventing's OIDC
delivery tokens (checked against a loopback issuer with a key made here), capped dead letters,
and answers that do not tell whether a study exists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import jwt
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from http_helpers import Service
from standin_server import StandInServer

pytestmark = pytest.mark.slow

TOKEN = "events-token-0123456789"
AUDIENCE = "katuna-functions"
ISSUER = "https://kubernetes.default.svc.cluster.local"


def _event(event_type: str, data: dict, **attributes: str) -> tuple[bytes, dict[str, str]]:
    event = CloudEvent(attributes={"type": event_type, "source": "/test", "datacontenttype": "application/json",
                                   **attributes}, data=data)
    message = ce_http.to_binary_event(event)
    return message.body, dict(message.headers)


def completed(study: str, uid: str = "no-such-uid") -> tuple[bytes, dict[str, str]]:
    return _event("dev.katuna.study.completed", {"study": study, "uid": uid, "status": "stopped", "reason": "x"})


def finished(study: str) -> tuple[bytes, dict[str, str]]:
    return _event("dev.katuna.trial.finished", {"study": study, "uid": "no-such-uid", "trial": 7, "attempt": 1,
                                                "outcome": "exited", "exitCode": 0, "message": ""})


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("queued"), workers=1, KATUNA_API_TOKEN=TOKEN,
                      KATUNA_MAX_DEAD_LETTERS="3", KATUNA_MAX_BODY="8192")
    yield service
    service.close()


def _post(service: Service, path: str, message: tuple[bytes, dict[str, str]], **headers: str):
    body, message_headers = message
    status, _, answer = service.request("POST", path, body, {**message_headers, **headers})
    return status, json.loads(answer) if answer else None


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("path", ["/", "/functions/provision", "/dead-letters"])
def test_outside_knative_the_event_paths_need_the_token(queued: Service, path: str):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        assert _post(queued, path, completed("any"), **headers)[0] == 401, headers
    assert queued.request("GET", "/dead-letters")[0] == 401
    assert _post(queued, path, completed("any"), **BEARER)[0] in (202, 200)


def test_dead_letters_are_capped_oldest_first_and_bounded_in_size(queued: Service):
    for number in range(5):
        status, _ = _post(queued, "/dead-letters", _event("dev.katuna.trial.finished", {"study": "s", "n": number},
                                                          id=f"lost-{number}"), **BEARER)
        assert status == 202
    status, _, body = queued.request("GET", "/dead-letters", headers=BEARER)
    assert [d["event"]["id"] for d in json.loads(body)] == ["lost-4", "lost-3", "lost-2"]
    big = _event("dev.katuna.trial.finished", {"study": "s", "pad": "x" * 10000}, id="too-big")
    assert _post(queued, "/dead-letters", big, **BEARER)[0] == 413
    assert "too-big" not in queued.request("GET", "/dead-letters", headers=BEARER)[2].decode()


def test_an_event_answer_does_not_tell_whether_a_study_exists(queued: Service):
    definition = json.dumps(study_definition(name="known", maxTrials=1, parallelism=1))
    assert queued.request("POST", "/studies", definition, {"Content-Type": "application/json", **BEARER})[0] == 201
    for make in (completed, finished):
        for path in ("/", "/functions/collect" if make is finished else "/functions/provision"):
            known = _post(queued, path, make("known"), **BEARER)
            unknown = _post(queued, path, make("never-created"), **BEARER)
            assert known == unknown, (make.__name__, path)


class Issuer:
    """A loopback stand-in for the API server's service-account issuer: OIDC discovery and JWKS."""

    def __init__(self, keys: list[dict], discovery: dict | None = None) -> None:
        issuer = self
        self.key_reads = 0
        self.reads: dict[str, int] = {}
        self.failing: set[str] = set()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                found = {"issuer": ISSUER, "jwks_uri": issuer.url + "/openid/v1/jwks"} if discovery is None else discovery
                documents = {"/.well-known/openid-configuration": found, "/openid/v1/jwks": {"keys": keys}}
                issuer.key_reads += self.path == "/openid/v1/jwks"
                issuer.reads[self.path] = issuer.reads.get(self.path, 0) + 1
                body = json.dumps(documents.get(self.path, {})).encode()
                failing = self.path in issuer.failing
                self.send_response(503 if failing else 200 if self.path in documents else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return

        self.server = StandInServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key, kid: str, algorithm) -> dict:
    return {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def knative(tmp_path_factory):
    issuer = Issuer([_jwk(RSA_KEY, "rsa", jwt.algorithms.RSAAlgorithm), _jwk(EC_KEY, "ec", jwt.algorithms.ECAlgorithm)])
    service = Service(tmp_path_factory.mktemp("knative"), workers=1, KATUNA_EVENTS="reply", KATUNA_API_TOKEN=TOKEN,
                      KATUNA_OIDC_AUDIENCE=AUDIENCE, KATUNA_OIDC_ISSUER_URL=issuer.url)
    yield service
    service.close()
    issuer.close()


def _claims(**changes) -> dict:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "system:serviceaccount:katuna:broker", "iat": now,
            "nbf": now, "exp": now + 600, **changes}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict, sign=None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return signing_input + "." + (_b64(sign(signing_input.encode())) if sign else "")


def _hs256_with_public_key(claims: dict) -> str:
    public = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _unsigned({"alg": "HS256", "typ": "JWT", "kid": "rsa"}, claims,
                     lambda data: hmac.new(public, data, hashlib.sha256).digest())


def signed_by_katuna(event_type: str, data: dict) -> tuple[bytes, dict[str, str]]:
    """The event as katuna sends it: ``katunasignature``, the HMAC-SHA256 of its type and its data's
    JSON with sorted keys, under the HMAC-SHA256 of "katuna event signature" keyed with the API token."""
    key = hmac.new(TOKEN.encode(), b"katuna event signature", hashlib.sha256).digest()
    message = f"{event_type}\n{json.dumps(data, sort_keys=True, separators=(',', ':'))}".encode()
    return _event(event_type, data, katunasignature=hmac.new(key, message, hashlib.sha256).hexdigest())


def test_a_delivery_token_for_this_audience_is_accepted(knative: Service):
    data = {"study": "any", "uid": "no-such-uid", "status": "stopped", "reason": "x"}
    for token in (jwt.encode(_claims(), RSA_KEY, "RS256", headers={"kid": "rsa"}),
                  jwt.encode(_claims(), EC_KEY, "ES256", headers={"kid": "ec"})):
        status, _ = _post(knative, "/functions/provision", signed_by_katuna("dev.katuna.study.completed", data),
                          Authorization=f"Bearer {token}")
        assert status == 202


def test_a_broker_delivery_of_katunas_own_event_types_is_taken_only_with_katunas_signature(knative: Service):
    """A broker with OIDC delivers what any sender its policy admits posted to it: a valid
    delivery token proves the Trigger, not the event's origin."""
    token = {"Authorization": f"Bearer {jwt.encode(_claims(), RSA_KEY, 'RS256', headers={'kid': 'rsa'})}"}
    status, answer = _post(knative, "/functions/provision", completed("any"), **token)
    assert (status, answer["error"]) == (403, "forged_event"), answer
    forged_signature = _event("dev.katuna.study.completed", json.loads(completed("any")[0]), katunasignature="0" * 64)
    assert _post(knative, "/", forged_signature, **token)[0] == 403
    assert _post(knative, "/functions/provision", completed("any"), **BEARER)[0] == 202, "the API token needs none"


@pytest.mark.parametrize("case", ["none", "garbage", "wrong-audience", "expired", "not-yet-valid", "wrong-issuer",
                                  "bad-signature", "alg-none", "hs256-public-key", "no-expiry", "no-subject"])
def test_a_bad_delivery_token_is_refused(knative: Service, case: str):
    tokens = {
        "none": None, "garbage": "not.a.jwt",
        "wrong-audience": jwt.encode(_claims(aud="another-service"), RSA_KEY, "RS256", headers={"kid": "rsa"}),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 3600), RSA_KEY, "RS256", headers={"kid": "rsa"}),
        "not-yet-valid": jwt.encode(_claims(nbf=int(time.time()) + 3600), RSA_KEY, "RS256", headers={"kid": "rsa"}),
        "wrong-issuer": jwt.encode(_claims(iss="https://attacker.example"), RSA_KEY, "RS256", headers={"kid": "rsa"}),
        "bad-signature": jwt.encode(_claims(), OTHER_KEY, "RS256", headers={"kid": "rsa"}),
        "alg-none": _unsigned({"alg": "none", "typ": "JWT", "kid": "rsa"}, _claims()),
        "hs256-public-key": _hs256_with_public_key(_claims()),
        "no-expiry": jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, RSA_KEY, "RS256",
                                headers={"kid": "rsa"}),
        "no-subject": jwt.encode({k: v for k, v in _claims().items() if k != "sub"}, RSA_KEY, "RS256",
                                 headers={"kid": "rsa"}),
    }
    headers = {"Authorization": f"Bearer {tokens[case]}"} if tokens[case] else {}
    for path in ("/", "/functions/provision", "/dead-letters"):
        assert _post(knative, path, completed("any"), **headers)[0] == 401, (case, path)


def test_tokens_naming_unknown_keys_do_not_each_make_the_service_read_the_issuers_keys(tmp_path: Path):
    """A token whose key id the issuer's keys lack has the keys read again (a rotated key), at
    most once within the cooldown: anyone who can reach the service cannot make it ask the API
    server once per request. A token whose key the keys read again for it still lack is refused
    (401); one that comes before they may be read again is answered 503, which the broker
    retries (a key rotated in since the last read is found by a retry), where a 401 would
    dead-letter it; a token naming no key is refused."""
    issuer = Issuer([_jwk(RSA_KEY, "rsa", jwt.algorithms.RSAAlgorithm)])
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", KATUNA_API_TOKEN=TOKEN,
                      KATUNA_OIDC_AUDIENCE=AUDIENCE, KATUNA_OIDC_ISSUER_URL=issuer.url)
    try:
        answers = []
        for number in range(6):
            token = jwt.encode(_claims(), OTHER_KEY, "RS256", headers={"kid": f"rotated-{number}"})
            answers.append(_post(service, "/", completed("any"), Authorization=f"Bearer {token}")[0])
        assert answers == [401] + [503] * 5, answers
        assert issuer.key_reads == 2, issuer.key_reads
        keyless = jwt.encode(_claims(), RSA_KEY, "RS256")
        assert _post(service, "/", completed("any"), Authorization=f"Bearer {keyless}")[0] == 401
    finally:
        service.close()
        issuer.close()


@pytest.mark.parametrize("failing", ["/.well-known/openid-configuration", "/openid/v1/jwks"])
def test_while_the_issuer_cannot_be_read_deliveries_are_answered_at_once_without_asking_it_each_time(
        tmp_path: Path, failing: str):
    """Every delivery asked the issuer again while it failed (its discovery one at a time, each up
    to 10 s; its keys with the pod's token each time, PyJWT counting its cooldown from a read
    that succeeded): a failed read is remembered for ``oidc.RETRY_SECONDS``, and deliveries in
    that time are answered 503 at once, saying why, which the broker retries."""
    issuer = Issuer([_jwk(RSA_KEY, "rsa", jwt.algorithms.RSAAlgorithm)])
    issuer.failing.add(failing)
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", KATUNA_API_TOKEN=TOKEN,
                      KATUNA_OIDC_AUDIENCE=AUDIENCE, KATUNA_OIDC_ISSUER_URL=issuer.url)
    token = {"Authorization": f"Bearer {jwt.encode(_claims(), RSA_KEY, 'RS256', headers={'kid': 'rsa'})}"}
    try:
        answers = [_post(service, "/", completed("any"), **token) for _ in range(5)]
    finally:
        service.close()
        issuer.close()
    assert [status for status, _ in answers] == [503] * 5
    assert issuer.reads[failing] == 1, issuer.reads
    assert "could not read the token issuer's keys" in answers[0][1]["message"], answers[0]
    assert re.search(r"could not be read \d+(\.\d+)? s ago .*503.* asked again after", answers[-1][1]["message"]), \
        answers[-1]


def test_an_issuer_whose_discovery_document_names_no_issuer_has_deliveries_retried_not_refused(tmp_path: Path):
    """A discovery document without ``issuer`` (KATUNA_OIDC_ISSUER_URL naming another server) was
    taken as a bad token: 401, and the broker sent the event to its dead letters."""
    issuer = Issuer([_jwk(RSA_KEY, "rsa", jwt.algorithms.RSAAlgorithm)], discovery={"keys": []})
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", KATUNA_API_TOKEN=TOKEN,
                      KATUNA_OIDC_AUDIENCE=AUDIENCE, KATUNA_OIDC_ISSUER_URL=issuer.url)
    token = {"Authorization": f"Bearer {jwt.encode(_claims(), RSA_KEY, 'RS256', headers={'kid': 'rsa'})}"}
    try:
        status, answer = _post(service, "/", completed("any"), **token)
    finally:
        service.close()
        issuer.close()
    assert status == 503 and "no OpenID discovery document naming its issuer" in answer["message"], answer


def test_the_api_token_still_reaches_the_event_paths_beside_oidc(knative: Service):
    assert _post(knative, "/functions/provision", completed("any"), **BEARER)[0] == 202


def test_an_event_functions_error_answer_is_cut_to_fit_a_dead_letters_error_data(tmp_path):
    """Knative carries the answer's body into the dead letter (``knativeerrordata``, base64 in
    1,024 characters; its in-memory channel crashes on a body past 768 bytes): however long the
    error's message, the answer stays under 700 bytes, saying how much was cut."""
    from functions.adapters.web import create_app
    from functions.runtime import Runtime
    from functions.settings import Settings

    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        long_type = "dev.katuna." + "x" * 3000
        message = ce_http.to_binary_event(CloudEvent(attributes={
            "type": long_type, "source": "/test", "datacontenttype": "application/json"}, data={"study": "s"}))
        answer = client.post("/functions/collect", data=message.body, headers=message.headers)
        short = ce_http.to_binary_event(CloudEvent(attributes={
            "type": "dev.katuna.other", "source": "/test", "datacontenttype": "application/json"}, data={}))
        whole = client.post("/functions/collect", data=short.body, headers=short.headers).get_json()["message"]
    finally:
        runtime.close()
    body = answer.get_data()
    assert answer.status_code == 503 and len(body) <= 700, len(body)
    refusal = json.loads(body)
    assert refusal["error"] == "unknown_function" and refusal["message"].startswith(
        "function 'collect' does not handle events of type 'dev.katuna.xxx")
    assert re.fullmatch(r".* \[katuna: \d+ more characters cut\]", refusal["message"]), refusal["message"]
    assert whole == ("function 'collect' does not handle events of type 'dev.katuna.other' (a Trigger of a newer "
                     "katuna's, whose revision takes it once it serves; retry later)"), "a short one is whole"


def test_an_event_functions_refusal_listing_problems_still_fits_a_dead_letters_error_data():
    """An invalid study refused on an event path (a trial's template naming a Secret the service
    keeps since it was stored) lists its problems: the answer still stays under 700 bytes, as
    Knative's in-memory channel crashes on a body past 768 when it dead-letters the event (a
    422 is not retried), the problems it cannot hold counted in ``problemsNotListed``."""
    from flask import Flask

    from functions.adapters.web.errors import EVENT_ANSWER_MAX, error_response
    from functions.core.errors import InvalidStudy, Problem

    problems = [Problem(f"trialSpec.spec.template.spec.containers[{n}].env[0].valueFrom.secretKeyRef.name",
                        "katuna-api-token is a Secret of the service's own (KATUNA_SERVICE_SECRETS)") for n in range(6)]
    with Flask(__name__).app_context():
        event_answer = error_response(InvalidStudy(problems), resource=False)
        api_answer = error_response(InvalidStudy(problems))
    body = event_answer.get_data()
    assert event_answer.status_code == 422 and len(body) <= EVENT_ANSWER_MAX, len(body)
    refusal = json.loads(body)
    assert refusal["error"] == "invalid_study" and refusal["message"].startswith("invalid study: trialSpec.spec")
    assert refusal["problems"] == api_answer.get_json()["problems"][:len(refusal["problems"])]
    assert len(refusal["problems"]) + refusal["problemsNotListed"] == len(problems)
    kept = len(refusal["problems"])
    one_more = {**refusal, "problems": api_answer.get_json()["problems"][:kept + 1], "problemsNotListed": len(problems) - kept - 1}
    assert kept and len(json.dumps(one_more).encode()) > EVENT_ANSWER_MAX, "as many as fit are listed"
    assert len(api_answer.get_json()["problems"]) == len(problems), "the API's answer lists them all"
