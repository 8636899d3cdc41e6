"""docs/api.md's shell blocks and docs/reproducibility.md's record, run as written against a real
``katuna serve`` in a copy of the repository's examples: the quick start's curl calls, then the
paging loop, which follows the service's own ``Link`` headers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_blocks import ROOT, block
from http_helpers import Service, free_port
from waiting import eventually

PAGE = "docs/api.md"
ADDRESS = "localhost:8080"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("curl") is None, reason="the page's commands run curl")]


def served_examples(tmp_path_factory) -> Service:
    """``katuna serve`` run from a folder holding the examples, as from the repository's root."""
    workdir = tmp_path_factory.mktemp("docs-api")
    shutil.copytree(ROOT / "examples", workdir / "examples")
    return Service(workdir, workers=1)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    """A service for the quick start's own calls, which create its study."""
    running = served_examples(tmp_path_factory)
    yield running
    running.close()


def shell(service: Service, script: str) -> str:
    """What ``script`` prints, run by sh in the service's folder, aimed at the service's port."""
    run = subprocess.run(["sh", "-c", script.replace(ADDRESS, f"127.0.0.1:{service.port}")], cwd=service.workdir,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, (script, run.stderr)
    return run.stdout


def json_values(text: str) -> list:
    """The JSON values printed one after another (curl ends no answer with a newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def wait_for_trial(service: Service, number: int) -> None:
    """Until trial ``number`` has started: one asked for but not yet started is discarded, not
    listed, when the study stops."""
    deadline = time.monotonic() + 60
    while not started(service, number):
        assert time.monotonic() < deadline, f"trial {number} never started"
        time.sleep(0.1)


def started(service: Service, number: int) -> bool:
    status, trial = service.json("GET", f"/studies/quickstart/trials/{number}")
    return status == 200 and isinstance(trial, dict) and trial["startedAt"] is not None


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Iterator[Service]:
    """A service of its own holding the quick start's study, submitted and stopped as the quick
    start does: the tests that read it do not depend on the quick start's own test, which may
    run on another test worker, or after them."""
    running = served_examples(tmp_path_factory)
    try:
        body = (running.workdir / "examples" / "quickstart.yaml").read_bytes()
        assert running.request("POST", "/studies", body, {"Content-Type": "application/yaml"})[0] == 201
        wait_for_trial(running, 1)
        assert running.request("POST", "/studies/quickstart/stop")[0] == 200
        running.wait_for("quickstart")
        yield running
    finally:
        running.close()


def test_the_quick_start_calls_submit_read_and_stop_the_study(service: Service):
    lines = [line for line in block(PAGE, "The HTTP API and CloudEvent functions", "sh").splitlines()
             if line.startswith("curl ")]
    answers = []
    for line in lines:
        if "/trials" in line:
            wait_for_trial(service, 0)  # typed by hand, the call comes after the first trial's start
        answers.append(shell(service, line.replace("curl ", "curl -sS --fail-with-body ", 1)))
    created, study, trials, log, stopped = answers
    assert json.loads(created) == {"name": "quickstart", "status": "running", "links": {
        "self": "/studies/quickstart", "stop": "/studies/quickstart/stop", "trials": "/studies/quickstart/trials",
        "best": "/studies/quickstart/best"}}
    assert json.loads(study)["definition"]["maxTrials"] == 30
    assert json.loads(trials)[0]["number"] == 0
    assert all(line.startswith("epoch=") for line in log.splitlines()), log
    assert json.loads(stopped)["status"] == "stopped"
    assert service.wait_for("quickstart")["reason"] == "stopped by user"


def test_the_paging_loop_reads_every_trial_once_following_the_link_headers(quickstart: Service):
    service = quickstart
    loop = block(PAGE, "Paging", "sh")
    first = "url=/studies/quickstart/trials\n"
    assert loop.startswith(first)
    pages = json_values(shell(service, loop.replace(first, "url='/studies/quickstart/trials?limit=1'\n", 1)))
    _, _, body = service.request("GET", "/studies/quickstart/trials")
    every = [trial["number"] for trial in json.loads(body)]
    assert len(every) >= 2, "the study has trials for more than one page"
    assert [[trial["number"] for trial in page] for page in pages] == [[number] for number in every]
    whole = json_values(shell(service, loop))
    assert [[trial["number"] for trial in page] for page in whole] == [every], "without a limit: one page"


def test_the_reproducibility_record_has_the_fields_the_page_shows(quickstart: Service):
    service = quickstart
    shown = json.loads("{" + block("docs/reproducibility.md", "Reproducible studies", "json") + "}")
    status, study = service.json("GET", "/studies/quickstart")
    assert status == 200
    record = study["reproducibility"]
    assert record.keys() == shown["reproducibility"].keys()
    assert {name: type(value) for name, value in record.items()} == {
        name: type(value) for name, value in shown["reproducibility"].items()}
    assert record["seed"] == 7, "the quick start's algorithm.seed"
    assert Path(ROOT / "pyproject.toml").read_text().count(f'version = "{record["katunaVersion"]}"') == 1


def test_the_gunicorn_command_serves_the_api_as_katuna_serve_does(tmp_path: Path):
    """The command the Workers section gives, run as written (gunicorn from katuna's environment,
    on another port): its settings module lets the worker start, and the API answers."""
    port = free_port()
    command = block(PAGE, "Workers", "sh").replace("\\\n", " ").replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    command = command.replace("gunicorn ", f"{Path(sys.executable).with_name('gunicorn')} ", 1)
    environment = {**os.environ, "KATUNA_DB": str(tmp_path / "katuna.db")}
    with (tmp_path / "gunicorn.log").open("w") as log:
        process = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=tmp_path, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            def studies() -> bytes | None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/studies", timeout=5) as answer:
                        return answer.read()
                except OSError:
                    assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                    return None

            assert json.loads(eventually(studies, "the API's answer")) == []
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_the_clis_json_of_a_study_is_the_apis_without_links_and_with_interrupted(quickstart: Service):
    service = quickstart
    database = str(service.workdir / "katuna.db")

    def cli(*arguments: str):
        run = subprocess.run([str(Path(sys.executable).with_name("katuna")), *arguments, "--db", database, "--json"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    one = service.json("GET", "/studies/quickstart")[1]
    listed = service.json("GET", "/studies")[1]
    shown, studies = cli("show", "quickstart"), cli("studies")
    assert shown.keys() == (one.keys() - {"links"}) | {"interrupted"}
    assert [study.keys() for study in studies] == [(study.keys() - {"links"}) | {"interrupted"} for study in listed]
    assert "definition" in shown and "definition" not in studies[0]
    assert shown["interrupted"] is False


def test_a_stopped_studys_running_trials_end_stopped_as_the_stop_rules_say(quickstart: Service):
    """``katuna stop`` (here the API's) ends the trials still running, and the study format's
    Stop rules say how they are recorded, with the reason the page quotes: a user who sees a
    stopped study's trials marked STOPPED finds why."""
    _, trials = quickstart.json("GET", "/studies/quickstart/trials")
    stopped = [trial for trial in trials if trial["state"] != "COMPLETE"]
    assert stopped, "the quick start's fixture stops the study while a trial runs"
    assert {trial["state"] for trial in stopped} == {"STOPPED"}
    rules = " ".join((ROOT / "docs/study-format.md").read_text().split("\n## Stop rules\n", 1)[1].split())
    assert "`katuna stop` (`stopped`, running trials are stopped and marked `STOPPED`" in rules
    for reason in {trial["reason"] for trial in stopped}:
        assert f"their reason `{reason}`" in rules, reason


def test_the_tick_posted_by_hand_is_taken_as_a_cloudevent_and_answered_202(quickstart: Service):
    """The CloudEvent functions' example, run as written: a PingSource tick in binary mode."""
    tick = block(PAGE, "CloudEvent functions", "sh").replace("\\\n", " ")
    head = shell(quickstart, tick)
    assert head.startswith("HTTP/1.1 202 "), head
    assert "\nKatuna-Emitted-Count: " in head, head
