"""The dashboard's restart form: it offers the restart only of a study that can take one, and for
any other says why, keeping the definition to submit under a new name."""

from __future__ import annotations

import html
import re
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import app_client, study_definition


@pytest.fixture
def client(tmp_path) -> Iterator:
    with app_client(tmp_path / "katuna.db") as served:
        yield served


def wait_for(client, name: str, status: str) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/studies/{name}").get_json()["status"] != status:
        assert time.monotonic() < deadline, f"{name} never became {status}"
        time.sleep(0.1)


def form_text(client, name: str) -> str:
    answer = client.get(f"/ui/new?restart={name}")
    assert answer.status_code == 200
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", answer.text)))


def test_a_study_that_reached_its_budget_is_offered_the_restart(client):
    assert client.post("/studies", json=study_definition(name="budget", maxTrials=1, parallelism=1)).status_code == 201
    wait_for(client, "budget", "completed")
    text = form_text(client, "budget")
    assert "Raise maxTrials above its 1 trial and submit it" in text and "cannot restart" not in text


def test_a_running_then_stopped_study_is_told_why_it_cannot_restart(client):
    sleeper = study_definition(name="sleeper", maxTrials=2, parallelism=1,
                               trialTemplate={"command": [sys.executable, "-c", "import time; time.sleep(60)",
                                                          "${trialParameters.x}"]})
    assert client.post("/studies", json=sleeper).status_code == 201
    text = form_text(client, "sleeper")
    assert ("sleeper cannot restart: only a study that ended by reaching maxTrials restarts (with maxTrials "
            "raised); it is running.") in text
    assert "Raise maxTrials" not in text and '"name": "sleeper"' in text, "the definition stays, for a new name"
    assert client.post("/studies/sleeper/stop").status_code == 200
    wait_for(client, "sleeper", "stopped")
    assert "cannot restart: only a study that ended by reaching maxTrials restarts (with maxTrials raised); " \
           "it ended stopped (stopped by user)." in form_text(client, "sleeper")


def test_without_javascript_the_form_says_how_else_to_submit_and_cannot_send_the_study_in_an_address(client):
    """The form is sent by its script: without it, a click would GET the page again with the
    study in its address, storing nothing and saying nothing. Its button is disabled until the
    script enables it, and a note shown only without the script says what else submits it."""
    page = client.get("/ui/new").text
    note = re.search(r'<noscript><p class="problems" id="new-without-script">(.*?)</p></noscript>', page, re.S)
    assert note and " ".join(re.sub(r"<[^>]+>", "", note.group(1)).split()) == (
        "Submitting needs JavaScript, which is off: run the study with katuna run FILE, or send it to the API's "
        "POST /studies.")
    assert re.search(r'<button type="submit" id="submit-study" disabled>', page)
