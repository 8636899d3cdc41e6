"""The access log of ``katuna serve`` and of the image's gunicorn: one line per request, whose
values a client cannot break into lines of its own or fill with terminal escapes, and which
never holds a token sent the wrong way."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from http_helpers import Service, answers, free_port
from knative_emulator.service import image_command
from waiting import START_WAIT, eventually

from functions.adapters.web.access_log import printable

TOKEN = "s3cret-token-0123456789abcdefghij"
FORGED_PATH = "/studies/x%0A127.0.0.1%20-%20-%20FORGED%20%1b%5b31mRED"
"""A path that, decoded, holds a line end and a terminal escape."""
FORGED_AGENT = 'x\\" 999 5 "-" "evil" forged.id dev.katuna.trial.finished 1 \\"'
"""A user agent that, its backslashes or quotes left as they are, would read as fields of the
line's own."""


def test_control_characters_are_written_as_their_escapes():
    assert printable("x\n127.0.0.1 - - FORGED \x1b[31mRED\u2028\x85") == \
        "x\\n127.0.0.1 - - FORGED \\x1b[31mRED\\u2028\\x85"
    assert printable("/studies/café") == "/studies/café"


def _forge(base: str) -> None:
    """A request whose path would forge a line, with a token in every place katuna never reads one."""
    request = urllib.request.Request(f"{base}{FORGED_PATH}?token={TOKEN}", headers={
        "Authorization": "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode(),
        "Referer": f"http://127.0.0.1/ui/?token={TOKEN}", "User-Agent": FORGED_AGENT})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(f"GET /studies?token={TOKEN}\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert connection.recv(64).startswith(b"HTTP/1.1 400"), "a request line gunicorn cannot parse"


def _check(log: str) -> None:
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+Z WARNING gunicorn\.error \d+ Invalid request from ip=127\.0\.0\.1: "
                     r"Invalid HTTP request line: 'GET /studies\?… HTTP/1\.1'$", log, re.MULTILINE), log
    lines = [line for line in log.splitlines() if "FORGED" in line]
    assert len(lines) == 1 and lines[0].startswith("127.0.0.1 "), log
    assert '"GET /studies/x\\n127.0.0.1 - - FORGED \\x1b[31mRED HTTP/1.1" 401 ' in lines[0], lines[0]
    agent = FORGED_AGENT.replace("\\", "\\\\").replace('"', '\\"')
    assert re.search(r' "http://127\.0\.0\.1/ui/\?…" "' + re.escape(agent) + r'" - - \d+$', lines[0]), \
        "Apache's combined line (the referrer without its query, the agent's quotes escaped), then the event's " \
        "id and type, and the duration"
    assert "\x1b" not in log and TOKEN not in log


@pytest.mark.slow
def test_katuna_serve_writes_a_forging_path_as_one_line_of_escapes(tmp_path: Path):
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    try:
        _forge(service.base)
        log = eventually(lambda: "FORGED" in (text := (tmp_path / "serve.log").read_text()) and
                         "Invalid request" in text and text, "the requests' lines")
    finally:
        service.close()
    _check(log)


@pytest.mark.slow
def test_the_images_gunicorn_writes_katuna_serves_access_lines(tmp_path: Path):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")},
           "KATUNA_DB": str(tmp_path / "katuna.db"), "KATUNA_API_TOKEN": TOKEN}
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(image_command(port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        eventually(lambda: answers(port, "/healthz"), "the image's gunicorn to serve", timeout=START_WAIT)
        _forge(f"http://127.0.0.1:{port}")
        text = eventually(lambda: "FORGED" in (found := log.read_text()) and "Invalid request" in found and found,
                          "the requests' lines")
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
    _check(text)
