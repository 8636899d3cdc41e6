"""katuna upgraded in place, over a database an older katuna made.

A study stored by an older katuna, submitted again: the stored spec is that katuna's conversion
of its document, which may lack a default added since or fill one in otherwise. The user's own
document decides whether the study changed: the same document resumes (or reports) the stored
study, whatever the conversion; a different one is compared as this katuna converts both, so a
conflict names only what the user changed; its budget raised or edited, it searches on as it
began, whatever this katuna's conversion would change. An older process still running once a
newer katuna has migrated the file neither reads nor writes it any more; and a database of
katuna's first pre-release versions, which no migration upgrades, is refused as such, left as
it is.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import sqlite_utils
import yaml
from conftest import app_client, study_definition, watching_dispatcher
from http_helpers import run_katuna
from kube_stub import KubeStub
from kubernetes import client
from proc_stat import alive
from started_katuna import StartedKatuna
from test_katib import experiment
from waiting import BUSY_WAIT, START_WAIT, eventually

from functions.adapters import cloudevents_http
from functions.adapters.sqlite_first_migrations import migrate_1
from functions.adapters.sqlite_migrations import MIGRATIONS
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.core.errors import NewerDatabase
from functions.core.events import STUDY_CREATED, Event, resource_changed, trial_finished
from functions.core.formats import load_definition
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.runtime import Runtime
from functions.settings import Settings


def without_non_finite(normalized: dict) -> None:
    """A Katib Experiment as katunas stored it before their conversion gave it Katib's handling of
    non-finite values (``metricsCollector.nonFinite``)."""
    del normalized["metricsCollector"]["nonFinite"]


def as_converted(normalized: dict) -> None:
    """The stored spec left as this katuna converted it."""


def katuna(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_katuna(*args, cwd=tmp_path)


def stored_as_older(db: Path, definition: dict, status: str, older: Callable[[dict], None]) -> None:
    """Store ``definition``'s study, with ``status``, as an older katuna did: its stored spec (the
    conversion that katuna made) edited in place by ``older``."""
    spec, _ = load_definition(definition)
    store = SqliteStore(db)
    try:
        store.add_study(StudyRecord(spec, definition, str(db.parent), "uid-old", status=status))
    finally:
        store.close()
    normalized = stored_spec(db)
    older(normalized)
    written(db, "UPDATE studies SET normalized = ?", [json.dumps(normalized)])


def written(db: Path, statement: str, parameters: list | None = None) -> None:
    """``statement`` run on the file and committed, its connection closed: a test leaves no
    descriptor of its database to the later tests of its process."""
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(statement, parameters or [])


def stored_spec(db: Path) -> dict:
    with closing(sqlite3.connect(db)) as conn:
        return json.loads(conn.execute("SELECT normalized FROM studies").fetchone()[0])


def test_an_interrupted_experiment_stored_by_an_older_katuna_resumes_from_the_same_file(tmp_path: Path):
    """Before, ``katuna run`` of the unchanged file exited 2, the study "changed" at
    ``metricsCollector.nonFinite``, a field the file never held; it resumes as it was stored,
    and once ended, its budget raised restarts it."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=1, resumePolicy="LongRunning")
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc))
    stored_as_older(tmp_path / "katuna.db", doc, "running", without_non_finite)

    resumed = katuna(tmp_path, "run", "experiment.yaml")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "completed" in resumed.stdout
    assert "nonFinite" not in stored_spec(tmp_path / "katuna.db")["metricsCollector"], "the stored spec is kept"

    again = katuna(tmp_path, "run", "experiment.yaml")
    assert again.returncode == 0 and "Nothing to run" in again.stdout, again.stdout + again.stderr

    doc["spec"]["maxTrialCount"] = 3
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc))
    restarted = katuna(tmp_path, "run", "experiment.yaml")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert len(json.loads(katuna(tmp_path, "trials", "katib-exp", "--json").stdout)) == 3


def test_another_file_is_compared_as_this_katuna_converts_both(tmp_path: Path):
    """A file that says the same in other words (a default written out) is the stored study; one
    that changes a field is refused naming that field only, not what the conversions differ in."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=1)
    stored_as_older(tmp_path / "katuna.db", doc, "completed", without_non_finite)

    spelt_out = experiment(maxTrialCount=2, parallelTrialCount=1,
                           metricsCollectorSpec={"collector": {"kind": "StdOut"}})
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(spelt_out))
    same = katuna(tmp_path, "run", "experiment.yaml")
    assert same.returncode == 0 and "Nothing to run" in same.stdout, same.stdout + same.stderr

    edited = experiment(maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2)
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(edited))
    refused = katuna(tmp_path, "run", "experiment.yaml")
    assert refused.returncode == 2
    assert "(changed: spec.maxFailedTrialCount)" in refused.stderr and "nonFinite" not in refused.stderr


def test_posting_the_same_experiment_again_answers_200(tmp_path: Path):
    """Before, ``POST /studies`` of the Experiment it had stored answered 409 ``study_conflict``."""
    doc = experiment()
    stored_as_older(tmp_path / "katuna.db", doc, "completed", without_non_finite)
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        answer = create_app(runtime).test_client().post("/studies", data=yaml.safe_dump(doc),
                                                        content_type="application/yaml")
        assert answer.status_code == 200, answer.get_json()
        edited = experiment(parallelTrialCount=1)
        answer = create_app(runtime).test_client().post("/studies", data=yaml.safe_dump(edited),
                                                        content_type="application/yaml")
        assert answer.status_code == 409 and answer.get_json()["changed"] == ["spec.parallelTrialCount"]
    finally:
        runtime.close()


def test_a_native_study_stored_under_another_default_resumes_from_the_same_file(tmp_path: Path):
    """A native study is converted too (its defaults filled in): one stored when a default was
    another (here ``trialTemplate.maxAttempts``) resumes from its unchanged file, and keeps the
    default it was stored with."""
    definition = study_definition(maxTrials=2)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    stored_as_older(tmp_path / "katuna.db", definition, "running",
                    lambda normalized: normalized["trialTemplate"].update(maxAttempts=3))

    resumed = katuna(tmp_path, "run", "study.yaml")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert stored_spec(tmp_path / "katuna.db")["trialTemplate"]["maxAttempts"] == 3


# A study whose conversion changed since it was stored: Katib's tpe, independent since


def tpe_experiment(**spec) -> dict:
    """A Katib Experiment of ``tpe``, which this katuna converts to independent TPE."""
    tpe = {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "3"}]}
    return experiment(**{"algorithm": tpe, "resumePolicy": "LongRunning", "maxTrialCount": 2,
                         "parallelTrialCount": 1, **spec})


def as_joint_tpe(normalized: dict) -> None:
    """Katib's tpe as katunas stored it before it ran as independent TPE: Optuna's TPE as it
    defaults, modelling the parameters jointly."""
    del normalized["algorithm"]["settings"]["multivariate"]


def test_an_experiment_restarted_with_a_raised_budget_searches_on_as_it_began(tmp_path: Path):
    """Before, the restart stored this katuna's conversion of the Experiment: a study that had
    searched with joint TPE went on with independent TPE, its sampler changed mid-study."""
    db = tmp_path / "katuna.db"
    stored_as_older(db, tpe_experiment(), "completed", as_joint_tpe)
    written(db, "UPDATE studies SET reason = 'max trials reached (2)'")
    began = stored_spec(db)
    with app_client(db) as client_:
        answer = client_.post("/studies", data=yaml.safe_dump(tpe_experiment(maxTrialCount=4)),
                              content_type="application/yaml")
        assert answer.status_code == 200, answer.get_json()
        assert client_.get("/studies/katib-exp").get_json()["status"] == "running"
    restarted = stored_spec(db)
    assert restarted["algorithm"] == began["algorithm"], "the sampler it began with"
    assert restarted["maxTrials"] == 4 and {**restarted, "maxTrials": 2} == began, "only the budget changed"


def test_an_experiment_edited_on_the_cluster_searches_on_as_it_began(tmp_path: Path):
    """Before, an edit of a running Experiment's parallelTrialCount stored this katuna's
    conversion of it: the running study changed its sampler to independent TPE mid-run."""
    kube = KubeStub()
    store = SqliteStore(tmp_path / "katuna.db")
    api = client.ApiClient(kube.configuration())
    try:
        doc = {**tpe_experiment(), "apiVersion": "katuna.dev/v1",
               "metadata": {"name": "katib-exp", "namespace": "katuna"}}
        dispatcher = watching_dispatcher(store, api, "katuna", katib_api=False)
        dispatcher.deliver_to("resource", resource_changed("add", kube.apply(doc)))
        normalized = stored_spec(tmp_path / "katuna.db")
        as_joint_tpe(normalized)
        written(tmp_path / "katuna.db", "UPDATE studies SET normalized = ?", [json.dumps(normalized)])
        doc["spec"]["parallelTrialCount"] = 2
        dispatcher.deliver_to("resource", resource_changed("update", kube.apply(doc)))
    finally:
        api.close()
        store.close()
        kube.close()
    edited = stored_spec(tmp_path / "katuna.db")
    assert edited["parallelism"] == 2, "the edit applies"
    assert edited["algorithm"] == normalized["algorithm"], "the sampler it began with"


# A newer katuna migrating the file under an older process


def migrated_by_a_newer_katuna(db: Path) -> None:
    """What a newer katuna's migration leaves for this one to see: a schema past the last it knows."""
    with closing(sqlite3.connect(db, timeout=BUSY_WAIT)) as conn, conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")


def test_a_connection_open_before_a_newer_katuna_migrated_the_file_neither_writes_nor_reads(tmp_path: Path):
    """Before, only opening the file checked its schema: a process that had it open already went
    on writing tables the newer katuna had changed."""
    db = tmp_path / "katuna.db"
    store = SqliteStore(db)
    try:
        definition = study_definition()
        store.add_study(StudyRecord(load_definition(definition)[0], definition, str(tmp_path), "uid-1"))
        migrated_by_a_newer_katuna(db)
        other = study_definition(name="other")
        with pytest.raises(NewerDatabase, match="migrated by a newer katuna .* while this process had it open"):
            store.add_study(StudyRecord(load_definition(other)[0], other, str(tmp_path), "uid-2"))
        with pytest.raises(NewerDatabase):
            store.get_study("demo")
    finally:
        store.close()
    with closing(sqlite3.connect(db)) as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM studies")] == ["demo"]


def test_a_katuna_run_whose_database_a_newer_katuna_migrated_stops_its_trials_and_exits_2(tmp_path: Path):
    """Before, the run retried every handling and tick for ever, a warning each time, and stored
    nothing more: not even the ends of its trials, which ran to their end meanwhile."""
    definition = study_definition(maxTrials=4, parallelism=2)
    definition["trialTemplate"]["command"] += ["--until", str(tmp_path / "go")]
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    db = tmp_path / "katuna.db"
    process = StartedKatuna("run", "study.yaml", cwd=tmp_path)
    try:
        eventually(lambda: len(list(tmp_path.glob("*.1.pid"))) == 2 and running_trials(db) == 2,
                   "two running trials", timeout=START_WAIT)
        migrated_by_a_newer_katuna(db)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 2, stderr
    assert stderr.endswith(
        f"error: {db} was migrated by a newer katuna (schema {len(MIGRATIONS) + 1}; this katuna knows schema "
        f"{len(MIGRATIONS)} at most) while this process had it open; this process reads and writes it no more: "
        "replace it with the newer katuna. The study's running trials were stopped: run the same command with the "
        "newer katuna to resume 'demo'.\n"), stderr
    assert not any(alive(pid.read_text()) for pid in tmp_path.glob("*.1.pid")), "its trials were stopped"
    with closing(sqlite3.connect(db)) as conn, conn:  # the newer katuna, as far as this study is concerned
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    (tmp_path / "go").touch()
    resumed = katuna(tmp_path, "run", "study.yaml")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall() == [("COMPLETE", 4)]


def running_trials(db: Path) -> int:
    """How many of the database's trials are stored as running (0 before it has its tables)."""
    with closing(sqlite3.connect(db)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_a_broker_thread_opening_a_database_a_newer_katuna_migrated_says_so_and_tries_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Before, its thread ended on the error, with a traceback, and never delivered again."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        migrated_by_a_newer_katuna(tmp_path / "katuna.db")
        with caplog.at_level(logging.WARNING, "katuna.runtime"):
            runtime.start()
            eventually(lambda: caplog.text.count("migrated by a newer katuna") >= 2, "two tries, each logged")
        assert runtime.not_ready() is not None and "not running" not in runtime.not_ready()
    finally:
        runtime.close()


def test_the_service_answers_503_once_a_newer_katuna_migrated_its_database(tmp_path: Path):
    """Before, an old ``katuna serve`` answered a thread's reads on its open connection (200),
    as docs/knative.md says the old revision's requests do not."""
    doc = experiment()
    stored_as_older(tmp_path / "katuna.db", doc, "completed", as_converted)
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        assert client.get("/studies/katib-exp").status_code == 200
        assert client.get("/readyz").status_code == 200
        migrated_by_a_newer_katuna(tmp_path / "katuna.db")
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "migrated by a newer katuna" in ready.get_json()["message"], \
            "an old revision's pod is taken out of service"
        for answer in (client.get("/studies/katib-exp"),
                       client.post("/studies", data=yaml.safe_dump(doc), content_type="application/yaml")):
            assert (answer.status_code, answer.get_json()["error"]) == (503, "newer_database")
            assert "replace it with the newer katuna" in answer.get_json()["message"]
    finally:
        runtime.close()


# A newer katuna's events and Triggers, during its rollout


NEWER_DELIVERIES = (
    ("/functions/checkpoint", trial_finished("katib-exp", "uid-old", 0, 1, "exited", exit_code=0), "unknown_function"),
    ("/functions/spawn", trial_finished("katib-exp", "uid-old", 0, 1, "exited", exit_code=0), "unknown_function"),
    ("/", Event("dev.katuna.trial.checkpointed", {"study": "katib-exp", "uid": "uid-old", "trial": 0}),
     "newer_event_type"),
)
"""What a newer katuna's Triggers deliver to this revision before the newer one serves: to a
function it added, a type routed to another function, a type it added."""


@pytest.mark.parametrize(("path", "event", "code"), NEWER_DELIVERIES, ids=["added-function", "rerouted-type", "added-type"])
def test_a_newer_katunas_delivery_is_answered_503_and_its_dead_letter_fails_no_study(
        tmp_path: Path, path: str, event: Event, code: str):
    """Before, the answer was 422, refused for good: the broker dead-lettered the event at once,
    and the dead letter (its code 422) failed the study, which the newer revision would have run on."""
    stored_as_older(tmp_path / "katuna.db", experiment(), "running", as_converted)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        store.add_trial(TrialRecord("katib-exp", 0, {}, RUNNING, attempt=1))
    finally:
        store.close()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        headers, body = cloudevents_http.to_http(event)
        answer = client.post(path, data=body, headers=headers)
        assert (answer.status_code, answer.get_json()["error"]) == (503, code), answer.get_json()
        letter = {**headers, "ce-knativeerrordest": f"http://katuna{path}",
                  "ce-knativeerrorcode": str(answer.status_code), "ce-knativeerrordata": base64.b64encode(answer.get_data()).decode()}
        lettered = client.post("/dead-letters", data=body, headers=letter)
        assert (lettered.status_code, lettered.headers["Katuna-Study-Failed"]) == (202, "false")
        assert client.get("/studies/katib-exp").get_json()["status"] == "running"
    finally:
        runtime.close()


def test_an_event_whose_data_holds_a_field_this_katuna_does_not_know_is_handled(tmp_path: Path):
    """A newer katuna may add a field to an event's data: this one handles the event as it would without it."""
    stored_as_older(tmp_path / "katuna.db", study_definition(maxTrials=2), "running", as_converted)
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        headers, body = cloudevents_http.to_http(Event(STUDY_CREATED, {"study": "demo", "uid": "uid-old",
                                                                       "newerField": {"any": ["value"]}}))
        answer = client.post("/functions/suggest", data=body, headers=headers)
        assert answer.status_code in (200, 202), answer.get_data(as_text=True)
        assert [trial["number"] for trial in client.get("/studies/demo/trials").get_json()] == [0, 1]
    finally:
        runtime.close()


# A pre-release katuna's database


def test_a_database_of_katunas_first_pre_release_versions_is_refused_as_such_left_as_it_is(tmp_path: Path):
    """The first versions made studies without a ``uid``, which the later migrations read.
    Before, every command said "the database failed (no such column: uid); retry later"."""
    db = tmp_path / "katuna.db"
    made = sqlite_utils.Database(db)
    migrate_1(made)
    made.execute("ALTER TABLE studies DROP COLUMN uid")
    made.execute("PRAGMA user_version = 1")
    made.close()
    before = db.read_bytes()
    for command in (["studies"], ["show", "demo"]):
        refused = katuna(tmp_path, *command, "--db", str(db))
        assert (refused.returncode, refused.stderr) == (2, (
            f"error: {db} was made by a pre-release katuna (its studies have no uid), which this katuna cannot "
            "upgrade; katuna left it as it is: give --db (or KATUNA_DB) a new path, or read it with the katuna "
            "that made it\n"))
    assert db.read_bytes() == before
