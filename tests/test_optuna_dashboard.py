"""``katuna optuna-dashboard``: Optuna's own dashboard over the journal in katuna's database,
on loopback only, changing nothing katuna keeps in step with its own records."""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import run_study, study_definition
from doc_blocks import ROOT
from http_helpers import KATUNA, NOBODY, answer_as, free_port, raw_request, run_katuna, warm_runner
from waiting import stopped
from warm_katuna import WarmProcess

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import study_created
from functions.core.records import TrialRecord
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

pytestmark = pytest.mark.slow


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def send(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """The status and JSON answer of a request as the dashboard's page sends it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    return status, json.loads(text) if text.strip() else {}


@contextmanager
def dashboard(tmp_path: Path, *, held_to_file_modes: bool = False, **env: str) -> Iterator[str]:
    """A running ``katuna optuna-dashboard`` of the database in ``tmp_path`` (with ``env`` added
    to its environment; ``held_to_file_modes``: root's power to write any file taken from it, so
    it meets a read-only file as any user does): its base URL. It is forked from the tests' warm
    Python (:func:`warm_runner`), as ``katuna serve`` is, but where it must give up root's power
    before it starts."""
    port = free_port()
    log = tmp_path / "dashboard.log"
    log.write_text("")
    command = [KATUNA, "optuna-dashboard", "--db", str(tmp_path / "katuna.db"), "--port", str(port)]
    if held_to_file_modes and os.geteuid() == 0:
        with log.open("a") as out:
            server: subprocess.Popen | WarmProcess = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
                preexec_fn=_without_root_override)
    else:
        server = warm_runner().start(command, Path.cwd(), {**os.environ, **env}, log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                get(base + "/api/studies")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()
                time.sleep(0.2)
        yield base
    finally:
        stopped(server)


@pytest.fixture(scope="module")
def read_only_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[TrialRecord]]]:
    """A dashboard of a database holding the completed study ``od-demo``, shared by the tests
    that only read through it: its base URL, its folder (its log in ``dashboard.log``), and the
    study's trials as katuna stored them."""
    folder = tmp_path_factory.mktemp("od")
    runner = Embedded(Settings(db=folder / "katuna.db"))
    try:
        assert run_study(runner, study_definition(name="od-demo"), folder).status == "completed"
        trials = runner.store.trials("od-demo")
    finally:
        runner.close()
    with dashboard(folder) as base:
        yield base, folder, trials


def test_optuna_dashboard_reads_the_study_from_katunas_database(read_only_dashboard):
    base, _, trials = read_only_dashboard
    [summary] = [s for s in get(base + "/api/studies")["study_summaries"] if s["study_name"] == "od-demo"]
    detail = get(f"{base}/api/studies/{summary['study_id']}")
    assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in trials]
    assert {t["number"]: t["values"][0] for t in detail["trials"]} == {t.number: t.values[0] for t in trials}
    assert detail["trials"][0]["params"][0]["name"] == "x"


def test_optuna_dashboard_names_each_objective_by_its_metric(tmp_path):
    """As ``study.set_metric_names`` names them: its charts and tables title each objective of a
    study of several by its metric, not "Objective 0", "Objective 1"; the storage holds no name."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        front = study_definition(name="od-front", objective={"metrics": [{"name": "loss", "direction": "minimize"},
                                                                         {"name": "size", "direction": "maximize"}]})
        for definition in (front, study_definition(name="od-one")):
            assert run_study(runner, definition, tmp_path).status == "completed"
    finally:
        runner.close()
    with dashboard(tmp_path) as base:
        ids = {s["study_name"]: s["study_id"] for s in get(base + "/api/studies")["study_summaries"]}
        assert get(f"{base}/api/studies/{ids['od-front']}")["objective_names"] == ["loss", "size"]
        assert get(f"{base}/api/studies/{ids['od-one']}")["objective_names"] == ["loss"]
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert optuna.load_study(study_name="od-front", storage=store.optuna_storage()).metric_names is None, \
            "nothing written"
    finally:
        store.close()


def test_a_study_whose_journal_is_damaged_is_left_out_of_the_list_which_shows_the_others(tmp_path):
    """One study's journal damaged in place failed the whole list (``500``, a traceback on the
    console): no study could be opened. It is left out, the console saying which and what to do."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        for name in ("od-damaged", "od-sound"):
            assert run_study(runner, study_definition(name=name), tmp_path).status == "completed"
    finally:
        runner.close()
    with closing(sqlite3.connect(tmp_path / "katuna.db")) as conn, conn:
        conn.execute("UPDATE optuna_journal SET body = '{not json' WHERE stream = (SELECT MIN(stream) "
                     "FROM optuna_journal) AND number = 1")
    with dashboard(tmp_path) as base:
        assert [s["study_name"] for s in get(base + "/api/studies")["study_summaries"]] == ["od-sound"]
    console = (tmp_path / "dashboard.log").read_text()
    assert "the Optuna journal of study 'od-damaged'" in console and "left out of the studies listed" in console
    assert "Traceback" not in console, console


def test_optuna_dashboard_shows_the_trials_katuna_has_a_prepared_one_waiting_a_discarded_one_not_at_all(
        embedded, tmp_path):
    """A trial asked for ahead (look-ahead) is running to Optuna but waits in katuna; once the study
    is stopped before it started, katuna discards it, and Optuna keeps it failed: neither is a
    trial that ran, or failed."""
    definition = study_definition(name="od-demo", mode="hang", maxTrials=10, parallelism=2)
    record = embedded.submit(parse_study(definition), definition, tmp_path)
    for event in embedded.dispatcher.deliver(study_created("od-demo", record.uid)):
        embedded.dispatcher.deliver(event)
    assert [(t.number, t.state) for t in embedded.store.trials("od-demo")] == \
        [(0, "RUNNING"), (1, "RUNNING"), (2, "WAITING")]
    with dashboard(tmp_path) as base:
        [summary] = get(base + "/api/studies")["study_summaries"]
        running = get(f"{base}/api/studies/{summary['study_id']}")["trials"]
    embedded.stop("od-demo")
    assert [(t.number, t.state) for t in embedded.store.trials("od-demo")] == [(0, "PRUNED"), (1, "PRUNED")]
    with dashboard(tmp_path) as base:
        stopped = get(f"{base}/api/studies/{summary['study_id']}")["trials"]
    assert [(t["number"], t["state"]) for t in running] == [(0, "Running"), (1, "Running"), (2, "Waiting")]
    assert "datetime_start" in running[0] and "datetime_start" not in running[2], "trial 2 has not started"
    assert [(t["number"], t["state"]) for t in stopped] == [(0, "Pruned"), (1, "Pruned")]


def test_optuna_dashboard_keeps_notes_and_refuses_every_other_change(embedded, tmp_path):
    run_study(embedded, study_definition(name="od-demo"), tmp_path)
    storage = embedded.store.optuna_storage()
    before = [(t.number, t.state, t.values) for t in optuna.load_study(study_name="od-demo", storage=storage).trials]
    with dashboard(tmp_path, KATUNA_MAX_BODY="4096") as base:
        [summary] = get(base + "/api/studies")["study_summaries"]
        study = f"{base}/api/studies/{summary['study_id']}"
        trial = get(study)["trials"][0]["trial_id"]
        refusals = {
            "delete": send("DELETE", study),
            "tell": send("POST", f"{base}/api/trials/{trial}/tell", {"state": "Fail"}),
            "create": send("POST", f"{base}/api/studies", {"study_name": "other", "directions": ["minimize"]}),
            "user attribute": send("POST", f"{base}/api/trials/{trial}/user-attrs", {"user_attrs": {"seen": "y"}}),
            "preference": send("POST", f"{study}/preference", {"mode": "ChooseWorst", "candidates": [0, 1],
                                                               "clicked": 0}),
        }
        renamed = send("POST", f"{study}/rename", {"study_name": "renamed"})
        huge = send("PUT", f"{study}/note", {"version": 1, "body": "n" * 5000})
        assert huge[0] == 413 and "at most 4096 bytes (KATUNA_MAX_BODY)" in huge[1]["message"]
        assert send("PUT", f"{study}/note", {"version": 1, "body": "baseline"})[0] == 204
        assert [s["study_name"] for s in get(base + "/api/studies")["study_summaries"]] == ["od-demo"]
        assert get(study)["note"]["body"] == "baseline"
    assert {what: status for what, (status, _) in refusals.items()} == dict.fromkeys(refusals, 403)
    assert "may not delete the study 'od-demo'" in refusals["delete"][1]["reason"]
    assert "may not end trial 0 as FAIL" in refusals["tell"][1]["reason"]
    assert "may not create the study 'other'" in refusals["create"][1]["reason"]
    assert renamed == (403, {"reason": renamed[1]["reason"]})
    assert "may not rename the study 'od-demo'" in renamed[1]["reason"]
    after = optuna.load_study(study_name="od-demo", storage=storage)
    assert [(t.number, t.state, t.values) for t in after.trials] == before
    assert after.trials[0].user_attrs == {}
    assert embedded.store.get_study("od-demo").status == "completed"


def test_a_note_the_database_cannot_take_now_is_answered_503_with_the_reason_the_page_shows(embedded, tmp_path):
    """Another writer holds the database past the busy timeout: the note is answered 503 with
    why (optuna-dashboard's page shows the answer's ``reason``), not 500 "internal server error"
    with a traceback on the console; nothing of it is kept, so the same save succeeds once the
    writer is done."""
    run_study(embedded, study_definition(name="od-demo"), tmp_path)
    with dashboard(tmp_path, KATUNA_BUSY_TIMEOUT="0.2") as base:
        [summary] = get(base + "/api/studies")["study_summaries"]
        study = f"{base}/api/studies/{summary['study_id']}"
        assert send("PUT", f"{study}/note", {"version": 1, "body": "first"})[0] == 204
        writer = sqlite3.connect(tmp_path / "katuna.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            busy = send("PUT", f"{study}/note", {"version": 2, "body": "second " * 1000})
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        kept = get(study)["note"]
        again = send("PUT", f"{study}/note", {"version": 2, "body": "second " * 1000})
        saved = get(study)["note"]
    assert busy == (503, {"reason": f"the note was not saved: the database {tmp_path / 'katuna.db'} is busy: another "
                                    "writer held it past the busy timeout (KATUNA_BUSY_TIMEOUT); retry later"})
    assert kept == {"version": 1, "body": "first"}
    assert again[0] == 204 and saved == {"version": 2, "body": "second " * 1000}
    assert "Traceback" not in (tmp_path / "dashboard.log").read_text()


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE = 24, 1
"""prctl's option to drop a capability from the bounding set, and the capability by which root
writes a file its mode refuses (linux/prctl.h, linux/capability.h)."""


def _without_root_override() -> None:
    """In the dashboard's process before it starts: drop ``CAP_DAC_OVERRIDE`` from its bounding
    set, so root's program runs without it and a file's mode holds for it."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE) failed")


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only by its mode (to root too, in a dashboard ``held_to_file_modes``)."""
    mode = path.stat().st_mode
    path.chmod(0o444)
    try:
        yield
    finally:
        path.chmod(mode)


def test_a_note_to_a_read_only_database_is_answered_503_with_the_reason_the_page_shows(embedded, tmp_path):
    run_study(embedded, study_definition(name="od-demo"), tmp_path)
    database = tmp_path / "katuna.db"
    with read_only(database), dashboard(tmp_path, held_to_file_modes=True) as base:
        [summary] = get(base + "/api/studies")["study_summaries"]
        study = f"{base}/api/studies/{summary['study_id']}"
        refused = send("PUT", f"{study}/note", {"version": 1, "body": "first"})
        kept = get(study)["note"]
    assert refused == (503, {"reason": f"the note was not saved: cannot use the database {database} (attempt to "
                                       "write a readonly database); katuna needs to read and write the file and to "
                                       "create files beside it (its -wal and -shm)"})
    assert kept == {"version": 0, "body": ""}
    assert "Traceback" not in (tmp_path / "dashboard.log").read_text()


EMBEDDED = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
"""What a browser sends for an image another site's page embeds."""
VISIT = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
"""What a browser sends for a link on another site's page, followed."""


def test_optuna_dashboard_answers_loopback_host_names_only_takes_writes_from_its_own_pages_and_is_never_framed(
        embedded, tmp_path):
    run_study(embedded, study_definition(name="od-demo"), tmp_path)
    with dashboard(tmp_path) as base:
        rebound = {"Host": f"rebound.example:{base.rpartition(':')[2]}",
                   "Origin": f"http://rebound.example:{base.rpartition(':')[2]}"}
        [summary] = get(base + "/api/studies")["study_summaries"]
        study = f"{base}/api/studies/{summary['study_id']}"
        read = send("GET", base + "/api/studies", headers={"Host": rebound["Host"]})
        written = send("PUT", f"{study}/note", {"version": 1, "body": "through a rebound name"}, headers=rebound)
        cross = send("PUT", f"{study}/note", {"version": 1, "body": "from another site"},
                     headers={"Origin": "http://evil.example"})
        own = send("PUT", f"{study}/note", {"version": 1, "body": "from its own page"}, headers={"Origin": base})
        assert get(study)["note"]["body"] == "from its own page"
        with urllib.request.urlopen(base + "/dashboard", timeout=10) as page:
            framing = page.headers["X-Frame-Options"]
    assert read[0] == written[0] == 400 and read[1]["error"] == "host_not_allowed"
    assert cross[0] == 403 and cross[1]["error"] == "cross_origin"
    assert own[0] == 204
    assert framing == "DENY"


def test_optuna_dashboard_refuses_the_reads_another_sites_page_asks_for_and_serves_a_visit(read_only_dashboard):
    """A page the user opens could otherwise have the dashboard compute parameter importances
    or export a study again and again, each behind the other on its one thread."""
    base, _, _ = read_only_dashboard
    [summary] = get(base + "/api/studies")["study_summaries"]
    study = summary["study_id"]
    embeds = {path: send("GET", base + path, headers=EMBEDDED)
              for path in (f"/api/studies/{study}/param_importances", f"/api/studies/{study}", "/api/studies")}
    visit = urllib.request.Request(f"{base}/dashboard/studies/{study}", headers=VISIT)
    with urllib.request.urlopen(visit, timeout=10) as page:
        visited = page.status
    assert {path: (status, answer.get("error")) for path, (status, answer) in embeds.items()} == {
        path: (403, "cross_origin") for path in embeds}
    assert visited == 200


def test_optuna_dashboard_refuses_a_request_a_proxy_passed_on(read_only_dashboard):
    """A proxy of this user's own (nginx setting Host to its upstream, as it does by default)
    connects as this user whoever its client is; the dashboard has no sign-in, so a request
    naming a header by which a proxy says it passed it on is refused, and one without is served."""
    base, _, _ = read_only_dashboard
    [summary] = get(base + "/api/studies")["study_summaries"]
    note = f"{base}/api/studies/{summary['study_id']}/note"
    read = send("GET", base + "/api/studies", headers={"X-Forwarded-For": "203.0.113.7"})
    written = send("PUT", note, {"version": 1, "body": "from beyond a proxy"}, headers={"X-Real-IP": "203.0.113.7"})
    assert (read[0], read[1]["error"], written[0], written[1]["error"]) == (
        403, "local_user_not_allowed", 403, "local_user_not_allowed")
    assert "came through a proxy (its X-Forwarded-For header says so)" in read[1]["message"]
    assert get(base + "/api/studies")["study_summaries"] == [summary]


def test_optuna_dashboard_refuses_a_request_naming_no_host_or_a_target_of_another_host(read_only_dashboard):
    """Without ``Host`` (which HTTP/1.0 allows, and wsgiref does not ask of HTTP/1.1 either)
    werkzeug took the address the dashboard listens on, a loopback one; an absolute target names
    the host that replaces ``Host``: both are refused as a rebound Host is, while the same request
    naming the loopback Host is served. (The requests are HTTP/1.1: another test reads the log
    for an HTTP/1.0 one.)"""
    base, _, _ = read_only_dashboard
    host = base.partition("//")[2]
    port = int(base.rpartition(":")[2])
    unnamed = raw_request(port, "GET /api/studies HTTP/1.1\r\nConnection: close\r\n")
    other = raw_request(port, f"GET http://evil.example/api/studies HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n")
    own = raw_request(port, f"GET /api/studies HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n")
    assert (unnamed[0], unnamed[1].get("error"), other[0], other[1].get("error")) == (
        400, "host_not_allowed", 400, "host_not_allowed")
    assert other[1]["message"].startswith("the request target names 'evil.example'")
    assert own[0] == 200 and "study_summaries" in own[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can connect as another user (os.setuid in a child)")
def test_optuna_dashboard_turns_other_accounts_away_before_reading_them_and_serves_its_own_user(read_only_dashboard):
    base, folder, _ = read_only_dashboard
    port = int(base.rpartition(":")[2])
    asked = answer_as(NOBODY, port, f"GET /api/studies HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    silent = answer_as(NOBODY, port, b"")
    own = get(base + "/api/studies")
    for head, _, body in (asked.partition(b"\r\n\r\n"), silent.partition(b"\r\n\r\n")):
        assert head.startswith(b"HTTP/1.1 403") and b"Connection: close" in head, head
        answer = json.loads(body)
        assert answer["error"] == "local_user_not_allowed", answer
        assert f"serves only its own user on this machine (uid {os.geteuid()}), not a caller of uid {NOBODY}" in \
            answer["message"]
    assert [summary["study_name"] for summary in own["study_summaries"]] == ["od-demo"]
    assert "HTTP/1.0" not in (folder / "dashboard.log").read_text(), "the refused request was never read"


def test_a_client_that_stops_part_way_through_its_request_holds_optuna_dashboard_only_until_the_client_timeout(
        tmp_path):
    SqliteStore(tmp_path / "katuna.db").close()
    with dashboard(tmp_path, KATUNA_CLIENT_TIMEOUT="1") as base:
        with socket.create_connection(("127.0.0.1", int(base.rpartition(":")[2])), timeout=30) as stalled:
            stalled.sendall(b"GET /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            studies = get(base + "/api/studies")
            closed = stalled.recv(1024)
    assert studies["study_summaries"] == []
    assert closed == b"", "the stalled connection is closed unanswered"
    assert "the client did not send its request within 1 s (KATUNA_CLIENT_TIMEOUT)" in \
        (tmp_path / "dashboard.log").read_text()


def test_optuna_dashboard_listens_on_loopback_only(tmp_path):
    (tmp_path / "katuna.db").touch()
    result = run_katuna("optuna-dashboard", "--db", str(tmp_path / "katuna.db"), "--host", "0.0.0.0",
                        "--port", str(free_port()), cwd=Path.cwd(), timeout=20)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0: optuna-dashboard has no sign-in" in result.stderr


def test_optuna_dashboard_names_a_missing_database(tmp_path):
    result = run_katuna("optuna-dashboard", "--db", str(tmp_path / "none.db"), cwd=Path.cwd(), timeout=60)
    assert result.returncode == 2 and f"no database at {tmp_path / 'none.db'}" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_optuna_dashboard_on_a_port_in_use_exits_2_naming_the_port(tmp_path):
    SqliteStore(tmp_path / "katuna.db").close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_katuna("optuna-dashboard", "--db", str(tmp_path / "katuna.db"), "--port", str(port),
                            cwd=Path.cwd(), timeout=60)
    assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr
    assert result.stderr == (f"error: port {port} is already in use on 127.0.0.1 (another katuna optuna-dashboard?): "
                             "stop what listens there, or choose another port with --port\n")


@pytest.mark.parametrize("command", ["optuna-dashboard", "serve"])
@pytest.mark.parametrize("port", ["0", "-1", "65536", "70000"])
def test_a_port_out_of_range_exits_2_naming_the_option_and_the_range(tmp_path, command, port):
    result = run_katuna(command, "--db", str(tmp_path / "katuna.db"), "--port", port, cwd=Path.cwd(), timeout=60)
    assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr
    assert f"Invalid value for '--port': {port} is not in the range 1<=x<=65535." in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_optuna_dashboard_the_command_says_how_to_install_it_from_the_checkout(embedded, tmp_path):
    """katuna is not on the package index: the hint installs the checkout's ``dashboard`` extra
    with the Python katuna runs in (optuna-dashboard made unimportable, as where it is missing)."""
    run_study(embedded, study_definition(name="od-missing"), tmp_path)
    missing = ("import sys; sys.modules['optuna_dashboard'] = None; sys.argv[0] = 'katuna'; "
               "from functions.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", missing, "optuna-dashboard", "--db", str(tmp_path / "katuna.db")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert f"optuna-dashboard is not installed in this Python ({sys.executable})" in message, message
    extra = re.search(rf"`{re.escape(sys.executable)} -m pip install -e '\.\[(\w+)\]'` in katuna's checkout", message)
    assert extra, message
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("optuna-dashboard") for requirement in extras[extra.group(1)])
    assert "katuna[" not in message, "no katuna on the package index to install an extra of"
