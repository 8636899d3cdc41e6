"""Events reach a broker that needs Knative Eventing's OIDC tokens over TLS: katuna posts to
``K_SINK`` with the token a SinkBinding mounts (read again at each post, as it is rotated),
trusting the CA certificates the binding puts in ``K_CA_CERTS``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service, refused_start
from tls_sink import Authority, TlsSink

from functions import reporter
from functions.adapters import cloudevents_sink
from functions.core.errors import InvalidSetting, TemporaryError
from functions.core.events import study_created
from functions.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[TlsSink]:
    running = TlsSink(tmp_path)
    yield running
    running.close()


def submit(service: Service, name: str) -> int:
    definition = study_definition(name=name, parallelism=1, maxTrials=1)
    return service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0]


def arrived(sink: TlsSink, count: int, refused: int = 0, timeout: float = 30.0) -> list[dict[str, str]]:
    """What the sink took, once it took ``count`` posts and refused ``refused``: katuna's
    senders post queued events in the background."""
    deadline = time.monotonic() + timeout
    while (len(sink.received) < count or sink.refused < refused) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (len(sink.received), sink.refused >= refused) == (count, True), (sink.received, sink.refused)
    return sink.received


@pytest.mark.timeout(120)
def test_events_reach_an_https_broker_with_the_rotated_oidc_token_and_wait_while_refused(tmp_path: Path,
                                                                                       sink: TlsSink):
    token = tmp_path / "oidc" / "token"
    token.parent.mkdir()
    token.write_text("first-token\n")
    sink.tokens.add("first-token")
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url, K_CA_CERTS=sink.ca_pem,
                      KATUNA_SINK_TOKEN_FILE=str(token))
    try:
        assert submit(service, "first") == 201
        received = arrived(sink, 1)
        assert received[-1]["authorization"] == "Bearer first-token"
        assert received[-1]["ce-type"] == "dev.katuna.study.created"

        token.write_text("second-token")
        sink.tokens = {"second-token"}
        assert submit(service, "second") == 201
        assert arrived(sink, 2)[-1]["authorization"] == "Bearer second-token", "the token is read again at each post"

        token.unlink()
        assert submit(service, "third") == 201, "the study is stored; its event waits in the queue"
        arrived(sink, 2, refused=2)
        status, _, metrics = service.request("GET", "/metrics")
        assert status == 200 and b"katuna_queue_depth 1.0" in metrics, "the waiting event is counted"
        token.write_text("third-token")
        sink.tokens = {"third-token"}
        received = arrived(sink, 3, refused=2)
        assert (received[-1]["authorization"], received[-1]["ce-type"]) == ("Bearer third-token",
                                                                          "dev.katuna.study.created"), \
            "the event the broker refused is posted again, and taken once the token is back"
    finally:
        service.close()


@pytest.mark.timeout(60)
def test_a_trial_reports_its_progress_to_an_https_broker_with_its_oidc_token(tmp_path: Path, sink: TlsSink,
                                                                             monkeypatch: pytest.MonkeyPatch):
    token = tmp_path / "token"
    token.write_text("trial-token")
    sink.tokens.add("trial-token")
    for variable, value in {"KATUNA_REPORT_URL": sink.url, "KATUNA_OBJECTIVE": "loss", "KATUNA_STUDY": "s",
                            "KATUNA_STUDY_UID": "u", "KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "1",
                            "K_CA_CERTS": sink.ca_pem, "KATUNA_SINK_TOKEN_FILE": str(token)}.items():
        monkeypatch.setenv(variable, value)
    assert reporter.report(1, loss=0.5) and reporter.flush()
    assert sink.received[-1]["authorization"] == "Bearer trial-token"
    token.unlink()
    assert reporter.report(2, loss=0.4), "the report is taken; the broker refuses it"
    assert not reporter.flush()
    assert sink.refused == 1


def report_from(sink: TlsSink, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The trial's environment, as katuna sets it for a study with early stopping."""
    sink.tokens.add("trial-token")
    for variable, value in {"KATUNA_REPORT_URL": sink.url, "KATUNA_OBJECTIVE": "loss", "KATUNA_STUDY": "s",
                            "KATUNA_STUDY_UID": "u", "KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "1",
                            "K_CA_CERTS": sink.ca_pem}.items():
        monkeypatch.setenv(variable, value)
    token = folder / "token"
    token.write_text("trial-token")
    monkeypatch.setenv("KATUNA_SINK_TOKEN_FILE", str(token))


@pytest.mark.timeout(60)
def test_a_slow_broker_never_holds_up_the_trial_and_gets_its_reports_in_order(tmp_path: Path, sink: TlsSink,
                                                                             monkeypatch: pytest.MonkeyPatch):
    report_from(sink, monkeypatch, tmp_path)
    sink.open.clear()
    assert all(reporter.report(step, loss=1.0 / step) for step in range(1, 6)), "each report is taken at once"
    assert not sink.received and not reporter.flush(0.2), "the broker has answered none yet"
    sink.open.set()
    assert reporter.flush(), "every report went out once the broker answered"
    assert [headers["ce-id"] for headers in sink.received] == [f"u/0/1/progress/{step}" for step in range(1, 6)]


@pytest.mark.timeout(60)
def test_a_forked_child_sends_its_own_reports(tmp_path: Path, sink: TlsSink, monkeypatch: pytest.MonkeyPatch):
    """A data loader's worker, say: the child has its own sender, not a copy of its parent's idle one."""
    report_from(sink, monkeypatch, tmp_path)
    assert reporter.report(1, loss=1.0) and reporter.flush()
    child = os.fork()
    if child == 0:
        os._exit(0 if reporter.report(2, loss=0.5) and reporter.flush(20) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's report went out"
    assert [headers["ce-id"].rsplit("/", 1)[1] for headers in sink.received] == ["1", "2"]


@pytest.mark.timeout(60)
def test_past_the_bound_the_oldest_waiting_report_is_dropped(tmp_path: Path, sink: TlsSink,
                                                            monkeypatch: pytest.MonkeyPatch):
    report_from(sink, monkeypatch, tmp_path)
    monkeypatch.setattr(reporter, "MAX_WAITING", 2)
    sink.open.clear()
    reporter.report(1, loss=1.0)
    while not sink.posts:
        time.sleep(0.01)
    for step in range(2, 6):
        reporter.report(step, loss=1.0 / step)
    sink.open.set()
    assert not reporter.flush(), "a dropped report counts as not sent"
    assert [headers["ce-id"].rsplit("/", 1)[1] for headers in sink.received] == ["1", "4", "5"], \
        "the report being posted, then the latest two"


def trust_bundles(folder: Path, files: dict[str, str]) -> Path:
    """``files`` laid out as the kubelet lays out a projected ConfigMap volume: in a timestamped
    folder that ``..data`` links to, each name linking through ``..data``."""
    folder.mkdir()
    (folder / "..2026_12_05_03_00_00.1").mkdir()
    for name, text in files.items():
        (folder / "..2026_12_05_03_00_00.1" / name).write_text(text)
        (folder / name).symlink_to(Path("..data") / name)
    (folder / "..data").symlink_to("..2026_12_05_03_00_00.1")
    return folder


@pytest.mark.timeout(60)
def test_events_and_reports_reach_an_https_broker_whose_ca_only_a_trust_bundle_holds(
        tmp_path: Path, sink: TlsSink, monkeypatch: pytest.MonkeyPatch):
    """Eventing's SinkBinding mounts the namespace's trust-bundle ConfigMaps at
    ``/knative-custom-certs``, and Knative's senders trust every certificate there; a file that
    holds none is passed over."""
    bundles = trust_bundles(tmp_path / "bundles", {"kn-combined-kne-bundle.pem": sink.ca_pem,
                                                   "readme.txt": "no certificate here"})
    token = tmp_path / "service-token"
    token.write_text("service-token")
    sink.tokens.add("service-token")
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url,
                      KATUNA_TRUST_BUNDLES=str(bundles), KATUNA_SINK_TOKEN_FILE=str(token))
    try:
        assert submit(service, "bundled") == 201
        assert arrived(sink, 1)[-1]["ce-type"] == "dev.katuna.study.created"
    finally:
        service.close()
    report_from(sink, monkeypatch, tmp_path)
    monkeypatch.delenv("K_CA_CERTS")
    monkeypatch.setenv("KATUNA_TRUST_BUNDLES", str(bundles))
    assert reporter.report(1, loss=0.5) and reporter.flush()
    assert sink.received[-1]["ce-type"] == "dev.katuna.trial.progress"


def test_a_rotated_trust_bundle_is_trusted_from_the_next_post(tmp_path: Path, sink: TlsSink):
    """The kubelet rotates a projected volume by linking ``..data`` to a new timestamped folder;
    the sink's CA, absent before, is trusted from the post after the swap."""
    (tmp_path / "other-ca").mkdir()
    other = Authority(tmp_path / "other-ca")
    bundles = trust_bundles(tmp_path / "bundles", {"bundle.pem": other.ca_pem})
    sink.tokens.add("service-token")
    token = tmp_path / "token"
    token.write_text("service-token")
    settings = Settings.from_env({"K_SINK": sink.url, "KATUNA_TRUST_BUNDLES": str(bundles)})
    posting = cloudevents_sink.Sink(sink.url, token, settings.sink_tls)
    with pytest.raises(TemporaryError, match="CERTIFICATE_VERIFY_FAILED"):
        posting.send(study_created("rotated", "uid-1"), 10)
    (bundles / "..2026_12_05_04_00_00.2").mkdir()
    (bundles / "..2026_12_05_04_00_00.2" / "bundle.pem").write_text(sink.ca_pem)
    (bundles / "..data_tmp").symlink_to("..2026_12_05_04_00_00.2")
    os.replace(bundles / "..data_tmp", bundles / "..data")
    posting.send(study_created("rotated", "uid-1"), 10)
    assert [headers["ce-type"] for headers in sink.received] == ["dev.katuna.study.created"]


def test_the_sink_takes_its_ca_certificates_from_k_ca_certs_and_refuses_what_is_no_pem(sink: TlsSink):
    settings = Settings.from_env({"K_SINK": sink.url, "K_CA_CERTS": sink.ca_pem})
    assert (settings.sink_ca_certs, settings.sink_token_file, settings.trust_bundles) == \
        (sink.ca_pem, Path("/oidc/token"), Path("/knative-custom-certs"))
    with pytest.raises(InvalidSetting, match="K_CA_CERTS: expected PEM CA certificates"):
        Settings.from_env({"K_SINK": sink.url, "K_CA_CERTS": "not a certificate"})


def test_katuna_serve_does_not_start_with_a_k_ca_certs_that_holds_no_certificate_and_says_why(tmp_path: Path):
    done = refused_start(tmp_path, KATUNA_EVENTS="reply", K_SINK="https://127.0.0.1:9/", K_CA_CERTS="garbage")
    assert done.returncode == 2, done.stderr
    assert "K_CA_CERTS: expected PEM CA certificates for the sink" in done.stderr
    assert "Traceback" not in done.stderr
