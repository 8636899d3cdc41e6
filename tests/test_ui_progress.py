"""A trial that draws a progress bar, followed in a real headless Chromium against a real
``katuna serve``: its page shows each progress line at its last state as the trial redraws it
(a carriage return read in one poll overwrites what an earlier poll showed), and how long the
trial has run so far; the API and ``katuna logs`` give the log either way; the collector reads
every value the bar printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service
from playwright.sync_api import Page, expect
from waiting import eventually

pytestmark = pytest.mark.browser

KATUNA = [str(Path(sys.executable).with_name("katuna"))]
WAIT_MS = 30_000

PRINTED = ["\rtrain 1/3 loss=0.9", "\rtrain 2/3 loss=0.7", "\rtrain 3/3 loss=0.5\r", "\neval 1/2\r", "eval 2/2\n"]
"""What the trial prints at each step, after its first line."""
PROGRESS = r"""import json, pathlib, sys, time
folder = pathlib.Path(sys.argv[1])
print("loading", flush=True)
for step, text in enumerate(json.loads(sys.argv[2])):
    while not (folder / str(step)).exists():
        time.sleep(0.05)
    sys.stdout.write(text)
    sys.stdout.flush()
"""
STEPS = ["loading\ntrain 1/3 loss=0.9", "loading\ntrain 2/3 loss=0.7", "loading\ntrain 3/3 loss=0.5",
         "loading\ntrain 3/3 loss=0.5\neval 1/2", "loading\ntrain 3/3 loss=0.5\neval 2/2\n"]
"""What the page's log shows after each step: a step's text begins with a carriage return, or
follows one the step before ended with, and overwrites the line, but where a line feed follows it."""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("progress"))
    yield running
    running.close()


def test_a_progress_bar_is_followed_at_its_last_state_and_its_trial_at_how_long_it_has_run(
        service: Service, page: Page):
    folder = service.workdir / "steps"
    folder.mkdir()
    definition = study_definition(name="progress", maxTrials=1, parallelism=1, trialTemplate={
        "command": [sys.executable, "-c", PROGRESS, str(folder), json.dumps(PRINTED), "${trialParameters.x}"]})
    status, _, _ = service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})
    assert status == 201
    eventually(lambda: service.request("GET", "/studies/progress/trials/0")[0] == 200, "trial 0", timeout=20)
    page.goto(service.base + "/ui/studies/progress/trials/0")
    log = "document.getElementById('log').textContent"
    page.wait_for_function(f"{log} === 'loading\\n'", timeout=WAIT_MS)
    elapsed = page.locator("#trial-elapsed")
    first = elapsed.inner_text()
    expect(elapsed).not_to_have_text(first, timeout=WAIT_MS)  # polled again, it has run longer
    assert "so far" in service.request("GET", "/ui/studies/progress/trials")[2].decode()
    for step, shown in enumerate(STEPS):
        (folder / str(step)).touch()
        if step < len(STEPS) - 1:
            page.wait_for_function(f"{log} === {json.dumps(shown)}", timeout=WAIT_MS)
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=WAIT_MS)
    page.wait_for_function(f"{log} === {json.dumps(STEPS[-1])}", timeout=WAIT_MS)
    expect(page.locator("#trial-elapsed")).to_have_count(0)

    raw = "loading\n\ntrain 1/3 loss=0.9\ntrain 2/3 loss=0.7\ntrain 3/3 loss=0.5\neval 1/2\neval 2/2\n"
    assert service.request("GET", "/studies/progress/trials/0/logs")[2].decode() == raw
    assert service.request("GET", "/studies/progress/trials/0/logs?terminal=true")[2].decode() == STEPS[-1]
    trial = service.json("GET", "/studies/progress/trials/0")[1]
    assert [o["value"] for o in trial["observations"]] == [0.9, 0.7, 0.5], "every value the bar printed is read"
    printed = subprocess.run([*KATUNA, "logs", "progress", "0"], cwd=service.workdir, capture_output=True, check=True)
    assert printed.stdout == ("loading\n" + "".join(PRINTED)).encode(), "byte for byte"
    shown = subprocess.run([*KATUNA, "logs", "progress", "0", "--terminal"], cwd=service.workdir, capture_output=True,
                           check=True, text=True)
    assert shown.stdout == STEPS[-1]
