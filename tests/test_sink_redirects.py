"""A sink that answers a post to ``K_SINK`` with a redirect is not followed: urllib would send
the event again as a GET without its body (whose 2xx would pass for the event taken) and with
the OIDC token, to whatever host the redirect names. Knative's deliveries take a 3xx for a
failure not worth a retry; so do katuna's service and its trials' reporter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from functions import reporter
from functions.adapters import cloudevents_sink
from functions.core.errors import PermanentError
from functions.core.events import study_created


class Recorder(ThreadingHTTPServer):
    """A loopback server answering every request with ``status`` (and ``location``), noting each
    request's method, path and Authorization header."""

    def __init__(self, status: int, location: str = "") -> None:
        self.status, self.location = status, location
        self.seen: list[tuple[str, str, str | None]] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


def serving(server: Recorder) -> Recorder:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    server = serving(Recorder(200))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def redirecting(elsewhere: Recorder) -> Iterator[Recorder]:
    server = serving(Recorder(302, f"{elsewhere.url}/taken"))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("oidc-token-for-the-broker\n")
    return path


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_service_follows_no_redirect_of_its_sink_and_drops_the_event_saying_so(
        redirecting: Recorder, elsewhere: Recorder, token: Path, status: int):
    redirecting.status = status
    sink = cloudevents_sink.Sink(redirecting.url, token_file=token)
    with pytest.raises(PermanentError, match=f"redirect \\({status}\\) to '{elsewhere.url}/taken'.*not followed"):
        sink.send(study_created("redirected", "uid-1"), timeout=10)
    assert [seen[0] for seen in redirecting.seen] == ["POST"]
    assert elsewhere.seen == [], "neither the event nor the OIDC token went where the redirect pointed"


def test_a_trials_report_is_not_taken_by_a_redirect_nor_its_token_sent_on(
        redirecting: Recorder, elsewhere: Recorder, token: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in {"KATUNA_REPORT_URL": redirecting.url, "KATUNA_OBJECTIVE": "loss", "KATUNA_STUDY": "s",
                        "KATUNA_TRIAL": "1", "KATUNA_SINK_TOKEN_FILE": str(token),
                        "KATUNA_TRUST_BUNDLES": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    for name in ("K_CE_OVERRIDES", "K_CA_CERTS", "KATUNA_PRIMARY_POD_LABELS"):
        monkeypatch.delenv(name, raising=False)
    assert reporter.flush(10)
    assert reporter.report(1, loss=0.5)
    assert reporter.flush(10) is False, "a report answered with a redirect was not accepted"
    assert [seen[:2] for seen in redirecting.seen] == [("POST", "/")]
    assert elsewhere.seen == []
