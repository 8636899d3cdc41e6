"""katuna's log lines: one line per record with its time, level, logger and process id, as text
or JSON (``KATUNA_LOG_FORMAT``), with the study and event a line is about, and a line that may
repeat for as long as a condition lasts written once a minute at most."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import KATUNA, Sink, answers, free_port, warm_runner
from test_poison import _breaking, _plant_study
from waiting import eventually
from warm_katuna import WarmProcess

from functions.adapters.log_lines import JsonLines, Repeats, TextLines
from functions.core.events import Event, trial_finished
from functions.core.log_context import about, of_event

TOKEN = "log-token-0123456789abcdefghijklmnop"
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ \d+ \S")


def _record(message: str, *args: object, name: str = "katuna.functions", level: int = logging.WARNING,
            exc_info: object = None, **extra: object) -> logging.LogRecord:
    record = logging.getLogger(name).makeRecord(name, level, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_a_text_line_has_time_level_logger_and_pid_and_its_traceback_on_the_same_line():
    try:
        raise RuntimeError("boom\nsecond")
    except RuntimeError:
        record = _record("handling %s failed", "x\x1b[31m", exc_info=sys.exc_info())
    line = TextLines().format(record)
    assert TEXT_LINE.match(line), line
    assert f" WARNING katuna.functions {os.getpid()} handling x\\x1b[31m failed\\nTraceback" in line
    assert "\n" not in line and "RuntimeError: boom\\nsecond" in line


def test_a_text_line_names_the_study_trial_and_event_it_is_about_before_its_traceback():
    """``grep trial=3`` over ``kubectl logs`` finds the line, in the text format as in JSON; a
    value a client chose is quoted, so it never reads as another ``name=value``."""
    event = trial_finished("mnist", "uid-1", 3, 1, outcome="exited", exit_code=0)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("handling %s failed", event.id, exc_info=sys.exc_info(), **of_event(event))
    line = TextLines().format(record)
    assert f"handling {event.id} failed study=mnist trial=3 eventId={event.id} eventType=dev.katuna.trial.finished " \
           "eventSource=/katuna\\nTraceback" in line, line
    forged = TextLines().format(_record("dropped", **about("a trial=9", event=Event("x", {}, id="1 study=b"))))
    assert forged.endswith(' dropped study="a trial=9" eventId="1 study=b" eventType=x eventSource=/katuna'), forged


def test_a_json_line_has_severity_and_the_study_and_event_it_is_about():
    event = trial_finished("mnist", "uid-1", 3, 1, outcome="exited", exit_code=0)
    line = JsonLines().format(_record("dropped %s", event.id, level=logging.INFO, **about("mnist", 3, event)))
    parsed = json.loads(line)
    assert "\n" not in line and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parsed.pop("time"))
    assert parsed == {"severity": "INFO", "logger": "katuna.functions", "pid": os.getpid(),
                      "message": f"dropped {event.id}", "study": "mnist", "trial": 3, "eventId": event.id,
                      "eventType": "dev.katuna.trial.finished", "eventSource": "/katuna"}
    assert json.loads(JsonLines().format(_record("a\u2028b"))).get("message") == "a\u2028b"
    assert "\u2028" not in JsonLines().format(_record("a\u2028b")), "no character a reader takes for a line end"


def test_a_repeating_line_is_written_once_a_minute_saying_how_many_were_held_back():
    now = [0.0]
    repeats = Repeats(clock=lambda: now[0])
    passed = []
    for second in range(125):
        now[0] = float(second)
        record = _record("delivering events failed; starting again: %s", "file is not a database",
                         name="katuna.runtime")
        if repeats.filter(record):
            passed.append((second, record.getMessage()))
    assert passed == [(0, "delivering events failed; starting again: file is not a database"),
                      (60, "delivering events failed; starting again: file is not a database (59 more like it "
                           "in the 60 s before not logged)"),
                      (120, "delivering events failed; starting again: file is not a database (59 more like it "
                            "in the 60 s before not logged)")]
    assert repeats.filter(_record("another message", name="katuna.runtime")), "a different message is written"
    assert all(repeats.filter(_record("refused an event from 127.0.0.1")) for _ in range(3)), \
        "a line about one event is always written"


def _serve(tmp_path: Path, port: int, **env: str) -> subprocess.Popen | WarmProcess:
    """``katuna serve`` of one worker (forked from the tests' warm Python, as :class:`Service`
    starts one), its standard output in ``out`` and its standard error in ``err``."""
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}, **env}
    for name in ("out", "err"):
        (tmp_path / name).write_text("")
    return warm_runner().start([KATUNA, "serve", "--db", str(tmp_path / "k.db"), "--port", str(port), "--workers",
                                "1"], tmp_path, environ, tmp_path / "out", tmp_path / "err")


def _json_lines(path: Path) -> list[dict]:
    """The lines written whole to ``path`` so far, each a JSON object."""
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


def _post(port: int, headers: dict[str, str], body: dict) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "ce-specversion": "1.0",
                                              "ce-source": "test", "ce-type": "dev.katuna.trial.finished", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code
    except urllib.error.URLError:
        return 0


@pytest.mark.slow
def test_the_service_writes_json_lines_naming_events_their_studies_and_their_forwarded_senders(tmp_path: Path):
    port = free_port()
    process = _serve(tmp_path, port, KATUNA_LOG_FORMAT="json", KATUNA_API_TOKEN=TOKEN, KATUNA_EVENTS="reply")
    gone = {"study": "nosuch", "uid": "u-1", "trial": 0, "attempt": 1, "outcome": "exited", "exitCode": 0,
            "message": ""}
    try:
        eventually(lambda: answers(port, "/healthz"), "the service to answer", timeout=60)
        assert _post(port, {"ce-id": "gone-1", "Authorization": f"Bearer {TOKEN}"}, gone) == 202
        forwarded = '10.9.8.7, "x' + "f" * 300
        assert _post(port, {"ce-id": "forged-1", "X-Forwarded-For": forwarded}, gone) == 403
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"GET /studies?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1x\r\n\r\n")
            assert connection.recv(64).startswith(b"HTTP/1.1 400")
        # each answer's access line is written after its answer: waited for, those asserted below, not a count
        # of lines (a readiness poll timed out but answered later is a line more)
        access = eventually(lambda: (lines := _json_lines(tmp_path / "out"))
                            and any(line.get("eventId") == "gone-1" for line in lines)
                            and any(line["httpRequest"]["status"] == "400" for line in lines) and lines,
                            "the access lines of the event and of the bad request")
        err = eventually(lambda: "gone-1" in (text := (tmp_path / "err").read_text()) and "refused an event from" in text
                         and "Invalid request" in text and text, "the service's lines")
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    others = " ".join(line for line in err.splitlines() if not line.startswith("{"))
    assert others == ("warning: katuna runs as root, so every trial's command runs as root too, able to read this "
                      "process's memory and environment: run it as an unprivileged user" if os.geteuid() == 0 else ""), \
        "every line but the command's own warning to the person who started it is JSON"
    assert {line["severity"] for line in lines if line["logger"] == "gunicorn.error"} >= {"INFO", "WARNING"}
    dropped = [line for line in lines if line.get("eventId") == "gone-1"]
    assert [(d["severity"], d["study"], "its study nosuch is gone" in d["message"]) for d in dropped] == \
        [("INFO", "nosuch", True)], dropped
    forged = [line for line in lines if "refused an event from" in line["message"]]
    assert len(forged) == 1 and forged[0]["severity"] == "WARNING", forged
    assert f'127.0.0.1 (X-Forwarded-For: "10.9.8.7, \\"x{"f" * 188}…")' in forged[0]["message"], forged
    event_line = next(line for line in access if line.get("eventId") == "gone-1")
    assert event_line["httpRequest"]["status"] == "202" and event_line["eventType"] == "dev.katuna.trial.finished"
    assert event_line["message"].startswith('127.0.0.1 - - [') and \
        event_line["message"].endswith(' "-" "Python-urllib/3.11" gone-1 dev.katuna.trial.finished ' +
                                       str(event_line["message"].rsplit(" ", 1)[1]))
    refused = next(line for line in access if line["httpRequest"]["status"] == "400")
    assert '"GET /studies?… HTTP/1.1" 400' in refused["message"], "what was received, without its query"


@pytest.mark.slow
def test_one_studys_events_are_found_by_its_name_in_every_json_line_about_them(tmp_path: Path):
    """The access line of each event names the study and trial its data names, and the sender's
    line about an event the broker refused names the event and its study, as the functions'
    own lines do: a collector filtering on ``study`` finds them all."""
    port, sink = free_port(), Sink(status=400)
    process = _serve(tmp_path, port, KATUNA_LOG_FORMAT="json", KATUNA_API_TOKEN=TOKEN, KATUNA_EVENTS="reply",
                     K_SINK=sink.url)
    finished = {"study": "followed", "uid": "u-1", "trial": 3, "attempt": 1, "outcome": "exited", "exitCode": 0,
                "message": ""}
    try:
        eventually(lambda: answers(port, "/healthz"), "the service to answer", timeout=60)
        definition = json.dumps(study_definition("followed", maxTrials=1, parallelism=1)).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/studies", definition, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 201
        assert _post(port, {"ce-id": "finished-3", "Authorization": f"Bearer {TOKEN}"}, finished) == 202
        sink.wait(1)
        err = eventually(lambda: "which the broker refused" in (text := (tmp_path / "err").read_text()) and text,
                         "the sender's line")
        out = eventually(lambda: "finished-3" in (text := (tmp_path / "out").read_text()) and text, "the access line")
    finally:
        process.terminate()
        process.wait(timeout=30)
        sink.close()
    refused = [json.loads(line) for line in err.splitlines() if "which the broker refused" in line]
    assert [(line["study"], line["eventType"], line["eventId"] in line["message"]) for line in refused] == \
        [("followed", "dev.katuna.study.created", True)], refused
    access = next(json.loads(line) for line in out.splitlines() if "finished-3" in line)
    assert (access["study"], access["trial"], access["eventId"]) == ("followed", 3, "finished-3"), access


@pytest.mark.slow
def test_why_an_event_was_retried_or_refused_is_in_a_line_naming_it_and_its_study(tmp_path: Path):
    """Each error answer to a delivery has a line saying why, naming the event, its study and trial
    and its trace: a temporary one (a Trigger of a newer katuna's: retried), one refused for good
    (an unknown type, data lacking a field), and a handling's failure counted against its study;
    an event that could not be read is named by its sender."""
    db = tmp_path / "k.db"
    _plant_study(db, _breaking("broken"))
    port = free_port()
    process = _serve(tmp_path, port, KATUNA_LOG_FORMAT="json", KATUNA_EVENTS="reply", K_SINK="http://127.0.0.1:9/")
    traced = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    try:
        eventually(lambda: answers(port, "/healthz"), "the service to answer", timeout=60)
        created = {"study": "broken", "uid": "uid-broken"}
        assert _event(port, "/functions/nope", "dev.katuna.study.created", "newer-1", created) == 503
        assert _event(port, "/", "com.example.x", "unknown-1", {"study": "broken", "trial": 4}) == 422
        assert _event(port, "/functions/suggest", "dev.katuna.study.created", "bad-1", {"no": "study"}) == 400
        assert _event(port, "/functions/suggest", "dev.katuna.study.created", "broken-1", created, traced) == 500
        assert _event(port, "/", "dev.katuna.study.created", "", created) == 400
        err = eventually(lambda: (text := (tmp_path / "err").read_text()).count("answered ") >= 3
                         and "failure 1 of" in text and "refused an event from" in text and text, "the lines")
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    answered = {line["eventId"]: line for line in lines if line["message"].startswith("answered ")}
    assert (answered["newer-1"]["severity"], answered["newer-1"]["study"]) == ("WARNING", "broken")
    assert "with 503, to be retried: no function named 'nope'" in answered["newer-1"]["message"]
    assert "with 422, refused for good: unknown event type 'com.example.x'" in answered["unknown-1"]["message"]
    assert answered["unknown-1"]["trial"] == 4
    assert "with 400, refused for good: malformed dev.katuna.study.created event bad-1" in answered["bad-1"]["message"]
    [counted] = [line for line in lines if "failure 1 of" in line["message"]]
    assert (counted["eventId"], counted["eventType"], counted["study"], counted["traceId"]) == \
        ("broken-1", "dev.katuna.study.created", "broken", "4bf92f3577b34da6a3ce929d0e0e4736"), counted
    [unread] = [line for line in lines if "refused an event from" in line["message"]]
    assert unread["message"].startswith("refused an event from 127.0.0.1 with 400: ce-id:"), unread


def _event(port: int, path: str, event_type: str, event_id: str, data: dict, headers: dict | None = None) -> int:
    """The status of a binary-mode CloudEvent posted to ``path``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(data).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "ce-specversion": "1.0",
                                              "ce-source": "/test", "ce-type": event_type, "ce-id": event_id,
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code
