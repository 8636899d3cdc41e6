"""Shared fixtures: study definitions around a real trial script, and an embedded runner; tests
marked ``browser`` skip before any of their fixtures start when Chromium is missing."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from browser import MISSING, Console, chromium, chromium_path, watched_page
from flask import Flask
from flask.testing import FlaskClient
from gke_stub import GkeStub
from hypothesis import settings as hypothesis_settings
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from playwright.sync_api import Browser, Page
from process_state import kept

from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_resources import KubernetesResources
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.collector import collect_less_often
from functions.core.cluster import Cluster
from functions.core.formats import load_study
from functions.core.limits import DEFAULTS
from functions.core.optuna_compat import CREATE_TRIAL
from functions.core.records import StudyRecord, TrialCap
from functions.core.spec import Study
from functions.core.trial_cap import study_cap
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps
from functions.runtime import Runtime
from functions.settings import Settings

TRIAL = Path(__file__).parent / "trials" / "objective.py"


SUITE_RUNNING_TRIALS = 64
"""``KATUNA_MAX_RUNNING_TRIALS`` for the suite's own services and runs, unless a test sets its
own: by default it is the machine's CPUs, and a test of another feature that runs three trials
at once would otherwise wait on a two-CPU machine and pass on a larger one. The default itself
is tested with environments that leave it unset (``tests/test_running_trials.py``)."""


LONGEST = ("test_seed_study.py", "test_katib_examples.py")
"""Modules whose tests take minutes: run first, so that with two processes (``make test``) they
overlap the many short tests instead of finishing alone at the end."""


class BufferedClient(FlaskClient):
    """Flask's test client reading each answer whole before it returns, as a WSGI server does.

    Unbuffered, a streamed answer (a CSV export, a trial's log) that a test never reads keeps its
    generator open, holding its request's context; the garbage collector then closes it inside a
    later test's request, popping that request's context instead of its own."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """The suite's own processes allocate heavily too (assertion rewriting, moto's AWS,
    hypothesis): at Python's default thresholds the collector took a third of their CPU.
    Property tests assert results, never timings: Hypothesis's per-example deadline is off, so a
    busy machine cannot fail one. The services and runs the tests start get a bound on the trials
    running at once that no machine sets (:data:`SUITE_RUNNING_TRIALS`). Every Flask test client
reads its answers whole (:class:`BufferedClient`)."""
    collect_less_often()
    Flask.test_client_class = BufferedClient
    os.environ.setdefault("KATUNA_MAX_RUNNING_TRIALS", str(SUITE_RUNNING_TRIALS))
    hypothesis_settings.register_profile("untimed", deadline=None)
    hypothesis_settings.load_profile("untimed")


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection made (modules, tests) lives to the end: no collection walks it again."""
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONGEST)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``browser`` test up front when Chromium is missing, so no service starts for it."""
    if item.get_closest_marker("browser") and chromium_path() is None:
        pytest.skip(MISSING)


@pytest.fixture(autouse=True)
def _process_state_kept() -> Iterator[None]:
    """What a command run in this process sets for the whole process (signal handlers, log
    handlers and levels, environment variables) is put back after each test, and a test that
    leaves another working directory fails (:func:`process_state.kept`): the next test in this
    process starts as pytest left it, whichever test ran before."""
    with kept():
        yield


def drop_letters_by_sender(db: sqlite_utils.Database) -> None:
    """Take a database back to before the fifty-first migration (each dead letter marked
    vouched for or not)."""
    db.execute("DROP INDEX IF EXISTS dead_letters_vouched")
    if "dead_letters" in db.table_names() and "vouched" in db["dead_letters"].columns_dict:
        db.execute("ALTER TABLE dead_letters DROP COLUMN vouched")


def drop_unreported(db: sqlite_utils.Database) -> None:
    """Take a database back to before the fiftieth migration (the mark beside the verdict of a
    trial that never reported its objective), and the fifty-first."""
    drop_letters_by_sender(db)
    if "unreported" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN unreported")


def drop_stopped_tally(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-ninth migration (the trials their study's end
    stopped tallied apart), and the fiftieth."""
    drop_unreported(db)
    db.execute("DROP TRIGGER IF EXISTS trial_stop_at_end_tallied")
    if "tallies" in db.table_names():
        db.execute("DELETE FROM tallies WHERE kind = 'trials_finished' AND label = 'STOPPED_AT_END'")


def drop_recorded_study_events(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-eighth migration (the Events recorded about
    each study's resource), and the forty-ninth."""
    drop_stopped_tally(db)
    if "events_recorded" in db["studies"].columns_dict:
        db.execute("ALTER TABLE studies DROP COLUMN events_recorded")


def drop_recorded_events(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-seventh migration (the Events recorded about
    each trial's Trial), and the forty-eighth."""
    drop_recorded_study_events(db)
    if "events_recorded" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN events_recorded")


def drop_front_trials(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-sixth migration (one row a trial of each kept
    Pareto front): each front one JSON value in its study's row, and the forty-seventh."""
    drop_recorded_events(db)
    if "study_front_trials" not in db.table_names():
        return
    db.execute("ALTER TABLE study_fronts ADD COLUMN front TEXT NOT NULL DEFAULT '[]'")
    db.execute("UPDATE study_fronts SET front = (SELECT json_group_array(json_array(number, json(trial_values))) "
               "FROM study_front_trials WHERE study = study_fronts.study)")
    db.execute("DROP TABLE study_front_trials")


def drop_study_fronts(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-fourth migration (each study's Pareto front
    kept), and the forty-sixth."""
    drop_front_trials(db)
    db.execute("DROP TABLE IF EXISTS study_fronts")


def drop_state_order(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-third migration (each study's trials by state,
    then number), and the forty-fourth."""
    drop_study_fronts(db)
    db.execute("DROP INDEX IF EXISTS trials_state_order")


def drop_processed_age(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-second migration (the handlings' records by
    age), and the forty-third."""
    drop_state_order(db)
    db.execute("DROP INDEX IF EXISTS processed_events_age")


def drop_initial_trials(db: sqlite_utils.Database) -> None:
    """Take a database back to before the forty-first migration (the entry of its study's
    initialTrials each trial runs), and the forty-second."""
    drop_processed_age(db)
    db.execute("DROP INDEX IF EXISTS trials_initial")
    if "initial_trial" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN initial_trial")


def drop_waiting_line(db: sqlite_utils.Database) -> None:
    """Take a database back to before the fortieth migration (each study's waiting trials by
    since when they wait), and the forty-first."""
    drop_initial_trials(db)
    db.execute("DROP INDEX IF EXISTS trials_waiting_line")


def drop_stop_taken(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-ninth migration (when the tick last took each
    marked trial's stop), and the fortieth."""
    drop_waiting_line(db)
    db.execute("DROP INDEX IF EXISTS trials_stop_taken")
    if "stop_taken" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN stop_taken")


def drop_stopped_at_end_index(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-eighth migration (the index of the trials each
    study's end stopped), and the thirty-ninth."""
    drop_stop_taken(db)
    db.execute("DROP INDEX IF EXISTS trials_stopped_at_end")


def drop_lineage(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-seventh migration (each trial's generation and
    parent under population-based training), and the thirty-eighth."""
    drop_stopped_at_end_index(db)
    for column in ("generation", "parent"):
        if column in db["trials"].columns_dict:
            db.execute(f"ALTER TABLE trials DROP COLUMN {column}")


def drop_peak_memory(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-sixth migration (each trial's peak memory), and
    the thirty-seventh."""
    drop_lineage(db)
    if "peak_memory" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN peak_memory")


def drop_tallies(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-fifth migration (the tallies of trials ended and
    dead letters received), and the thirty-sixth."""
    drop_peak_memory(db)
    for trigger in ("trial_end_tallied", "dead_letter_tallied"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute("DROP TABLE IF EXISTS tallies")


def drop_library_versions(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-fourth migration (the library versions each
    study's sampler drew on), and the thirty-fifth."""
    drop_tallies(db)
    if "library_versions" in db["studies"].columns_dict:
        db.execute("ALTER TABLE studies DROP COLUMN library_versions")


def drop_kept_tails(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-third migration (the kept tails of trials' logs),
    and the thirty-fourth."""
    drop_library_versions(db)
    db.execute("DROP TABLE IF EXISTS kept_tails")


def drop_runner(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-second migration (the process that runs each
    study), and the thirty-third."""
    drop_kept_tails(db)
    if "runner" in db["studies"].columns_dict:
        db.execute("ALTER TABLE studies DROP COLUMN runner")


def drop_runs_on(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirty-first migration (where each study's trials run),
    and the thirty-second."""
    drop_runner(db)
    if "runs_on" in db["studies"].columns_dict:
        db.execute("ALTER TABLE studies DROP COLUMN runs_on")


def drop_stopping(db: sqlite_utils.Database) -> None:
    """Take a database back to before the thirtieth migration (trials' workloads marked to stop),
    and the thirty-first."""
    drop_runs_on(db)
    db.execute("DROP INDEX IF EXISTS trials_stopping")
    if "stopping" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN stopping")


def drop_pool_emptying(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-ninth migration (pool uses' emptying), and the thirtieth."""
    drop_stopping(db)
    for column in ("empty_asked", "emptied"):
        if column in db["node_pools"].columns_dict:
            db.execute(f"ALTER TABLE node_pools DROP COLUMN {column}")


def drop_trial_caps(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-eighth migration (the trial cap of each study
    without ``maxTrials``), and the twenty-ninth."""
    drop_pool_emptying(db)
    for column in ("trial_cap", "trial_cap_setting"):
        if column in db["studies"].columns_dict:
            db.execute(f"ALTER TABLE studies DROP COLUMN {column}")


def drop_trials_removed(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-seventh migration (the latest change of each
    study's trials that are gone), and the twenty-eighth."""
    drop_trial_caps(db)
    db.execute("DROP TRIGGER IF EXISTS trial_change_kept")
    if "trials_removed" in db["studies"].columns_dict:
        db.execute("ALTER TABLE studies DROP COLUMN trials_removed")


def shared_journal(db: sqlite_utils.Database, bodies: list[str]) -> None:
    """Optuna's journal as katuna kept it before the twenty-sixth migration (and the
    twenty-seventh): one table of every study's records (``bodies``, in order), an empty
    snapshot table and the count of the trials they created, in place of today's tables."""
    drop_trials_removed(db)
    db.execute("DROP TABLE IF EXISTS optuna_journal")
    db.execute("DROP TABLE IF EXISTS optuna_snapshot")
    db.execute("DROP TABLE IF EXISTS optuna_streams")
    db.execute("DROP TABLE IF EXISTS optuna_history")
    db.execute("CREATE TABLE optuna_journal (number INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    db.conn.executemany("INSERT INTO optuna_journal (body) VALUES (?)", [(body,) for body in bodies])
    db.execute("CREATE TABLE optuna_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), log_number INTEGER NOT NULL, "
               "optuna_version TEXT NOT NULL, body BLOB NOT NULL)")
    db.execute("CREATE TABLE optuna_history (id INTEGER PRIMARY KEY CHECK (id = 1), trials INTEGER NOT NULL)")
    db.execute("INSERT INTO optuna_history VALUES (1, ?)",
               [sum(json.loads(body)["op_code"] == CREATE_TRIAL for body in bodies)])
    db.conn.commit()  # a connection that opens transactions by itself would lose the rows, and what follows


def drop_journal_streams(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-sixth migration (a journal per study): every
    study's records in one journal again, a study after the other, with the ids Optuna gives them
    there (a study's, its place; a trial's, after every earlier study's trials), and the
    twenty-seventh."""
    drop_trials_removed(db)
    if not db["optuna_streams"].exists():
        return
    bodies, studies, trials, created = [], {}, {}, 0
    for stream, body in db.execute("SELECT s.id, j.body FROM optuna_streams s JOIN optuna_journal j ON j.stream = s.id "
                                   "ORDER BY s.id, j.number").fetchall():
        studies.setdefault(stream, len(studies))
        trials.setdefault(stream, created)
        record = json.loads(body)
        if "study_id" in record:
            record["study_id"] = studies[stream]
        if "trial_id" in record:
            record["trial_id"] += trials[stream]
        created += record["op_code"] == CREATE_TRIAL
        bodies.append(json.dumps(record))
    shared_journal(db, bodies)


def drop_optuna_history(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-fifth migration (the count of Optuna's trials),
    and the twenty-sixth."""
    drop_journal_streams(db)
    db.execute("DROP TABLE IF EXISTS optuna_history")


def drop_lost_pods(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-fourth migration (the pods a trial's attempt lost),
    and the twenty-fifth."""
    drop_optuna_history(db)
    if "lost_pods" in db["trials"].columns_dict:
        db.execute("ALTER TABLE trials DROP COLUMN lost_pods")


def drop_session_marks(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-third migration (the token each session is bound
    to), and the twenty-fourth; a test that already put an older sessions table in place keeps it."""
    drop_lost_pods(db)
    if db["sessions"].exists() and "token_mac" in db["sessions"].columns_dict:
        db.execute("ALTER TABLE sessions DROP COLUMN token_mac")


def drop_log_folders(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twenty-first migration (each study's log folder), and
    the later ones."""
    drop_session_marks(db)
    db.execute("ALTER TABLE studies DROP COLUMN log_folder")


def drop_report_keys(db: sqlite_utils.Database) -> None:
    """Take a database back to before the nineteenth migration (studies' progress report keys),
    the twentieth (the look-ahead each study started with) and the twenty-first."""
    drop_log_folders(db)
    db.execute("ALTER TABLE studies DROP COLUMN lookahead")
    db.execute("ALTER TABLE studies DROP COLUMN report_key")


def drop_log_reads(db: sqlite_utils.Database) -> None:
    """Take a database back to before the eighteenth migration (how far a trial's log was read),
    and the nineteenth."""
    drop_report_keys(db)
    for column in ("log_cursor", "log_kept"):
        db.execute(f"ALTER TABLE trials DROP COLUMN {column}")


def undo_trial_changes(db: sqlite_utils.Database) -> None:
    """Take a database back to before the twelfth migration (trial changes, pool uses found by
    their release), the thirteenth (studies' restarts), the fourteenth (warm-start results kept
    with a study), the fifteenth (pool uses' requests counted), the sixteenth (when a trial's
    later attempt was suggested) and the eighteenth (how far a trial's log was read), for a test
    of an older database."""
    drop_log_reads(db)
    db.execute("ALTER TABLE trials DROP COLUMN suggested_at")
    db.execute("ALTER TABLE node_pools DROP COLUMN requests")
    db.execute("ALTER TABLE studies DROP COLUMN warm_results")
    db.execute("ALTER TABLE studies DROP COLUMN restarts")
    db.execute("ALTER TABLE studies DROP COLUMN restarted_at")
    db.execute("DROP INDEX idx_trials_study_changed")
    db.execute("ALTER TABLE trials DROP COLUMN changed")
    db.execute("ALTER TABLE studies DROP COLUMN trials_reported")
    db.execute("DROP INDEX idx_node_pools_released_at")


def job_experiment(name: str, container: dict[str, Any], *, max_trials: int, parallel: int = 1,
                   objective: dict | None = None, algorithm: dict | None = None, collector: dict | None = None,
                   early_stopping: dict | None = None, pod: dict | None = None, **spec: Any) -> dict[str, Any]:
    """A Katib Experiment, the shape of Katib's own examples: ``max_trials`` trials ``parallel``
    at a time, each a Job whose pod spec has ``pod`` and one container ``training-container``
    with ``container``'s fields (its command, arguments, resources), given ``lr`` in [0.1, 0.2]
    as the trial parameter ``learningRate``; minimizing ``loss`` by random search unless
    ``objective`` or ``algorithm`` say otherwise, ``collector`` its ``metricsCollectorSpec``,
    ``early_stopping`` its ``earlyStopping``, and ``spec`` any other field of its spec. Each
    call builds new dicts, which a test may change."""
    optional = {"metricsCollectorSpec": collector, "earlyStopping": early_stopping}
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": objective or {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": algorithm or {"algorithmName": "random"},
            "parallelTrialCount": parallel, "maxTrialCount": max_trials, **spec,
            **{key: value for key, value in optional.items() if value is not None},
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never", **(pod or {}),
                    "containers": [{"name": "training-container", "image": "python:3.12", **container}]}}}}}}}


def katib_job_experiment(name: str, container: dict[str, Any], /, **pod: Any) -> dict[str, Any]:
    """:func:`job_experiment` of one trial, which may fail once, whose Job's pod spec has ``pod``
    and its container ``container``'s fields."""
    return job_experiment(name, container, max_trials=1, maxFailedTrialCount=1, pod=pod)


def study_definition(name: str = "demo", mode: str = "ok", **overrides: Any) -> dict[str, Any]:
    """A small study whose trials run ``tests/trials/objective.py`` as a real subprocess."""
    definition: dict[str, Any] = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
        "algorithm": {"name": "random", "seed": 1},
        "parallelism": 2,
        "maxTrials": 4,
        "trialTemplate": {
            "command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--mode", mode],
        },
    }
    for key, value in overrides.items():
        definition[key] = copy.deepcopy(value)
    return definition


def stored_cap(spec: Study) -> TrialCap:
    """The cap the stop rules get for ``spec`` stored under the default limits: its
    ``maxTrials``, as :func:`functions.core.trial_cap.study_cap` gives it to them."""
    return study_cap(StudyRecord(spec, {}, ".", "uid-1"), DEFAULTS)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the browser tests of one module (skipping them where it is
    missing), closed at the module's end, so no Chromium outlives the tests that use it."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def console() -> dict[Page, Console]:
    """The console of each page a test opens with :func:`page`."""
    return {}


VIEWPORT = (1360, 900)
"""The size of a :func:`page` in pixels, unless its test's module sets its own ``VIEWPORT``."""


@pytest.fixture
def page(browser: Browser, console: dict[Page, Console], request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page whose console must show no error by the end of the test (``console[page].expect``
    names those the test causes), as big as its module's ``VIEWPORT`` says (:data:`VIEWPORT`)."""
    width, height = getattr(request.module, "VIEWPORT", VIEWPORT)
    with watched_page(browser, console, width, height) as opened:
        yield opened


@pytest.fixture
def embedded(tmp_path: Path):
    """A fresh embedded runner on a database in a temporary directory."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    yield runner
    runner.close()


def run_study(runner: Embedded, definition: dict[str, Any], base_dir: Path):
    """Submit and run a study to its end; the final study record."""
    runner.submit(parse_study(definition), definition, base_dir)
    return runner.run(definition["name"])


def run_file(path: Path, db: Path | None = None, base_dir: Path | None = None) -> StudyRecord:
    """The study file at ``path`` (native, or Katib's) run to its end in this process on ``db``
    (default: ``katuna.db`` beside it), its trials run from ``base_dir`` (default: its folder), as
    ``katuna run`` run from there stores it: for a test of what is done with a study a run
    stored, where a ``katuna run`` process would only add its start-up. The final study record."""
    folder = path.parent
    runner = Embedded(Settings(db=db or folder / "katuna.db"))
    try:
        spec, definition = load_study(path.read_text())
        runner.submit(spec, definition, base_dir or folder)
        return runner.run(spec.name)
    finally:
        runner.close()


@pytest.fixture
def gke_api():
    """A loopback GKE API, fresh for each test, holding the cluster tuning (project proj-7, region
    europe-west4)."""
    stub = GkeStub()
    stub.add_cluster("proj-7", "europe-west4", "tuning")
    yield stub
    stub.close()


@pytest.fixture(params=["rest", "grpc"])
def either(request: pytest.FixtureRequest, gke_api: GkeStub):
    """The GKE adapter on the cluster of ``gke_api`` over REST, as tests reach the stand-in, and
    over gRPC, as production reaches GKE (imported here only for the tests that ask for it)."""
    from gke_stub_grpc import GrpcGke

    from infra import gke, gke_requests

    cluster = gke_requests.GkeCluster("proj-7", "europe-west4", "tuning")
    if request.param == "rest":
        yield gke.GkeNodePools(cluster, gke.client(gke_api.url))
        return
    face = GrpcGke(gke_api)
    yield gke.GkeNodePools(cluster, face.client())
    face.close()


@contextlib.contextmanager
def app_client(db: Path, settings: Mapping[str, Any] | None = None, **runtime: Any) -> Iterator:
    """Flask's test client on the real app and a Runtime (given ``runtime``'s arguments) over the
    SQLite file ``db`` (and the other ``settings`` given), the Runtime closed once the client is
    done with."""
    served = Runtime(Settings(db=db, **(settings or {})), **runtime)
    try:
        yield create_app(served).test_client()
    finally:
        served.close()


def watching_dispatcher(store: SqliteStore, api: Any, namespace: str, katib_api: bool = True,
                        **deps: Any) -> Dispatcher:
    """katuna's handlers as a service on a cluster has them (:mod:`functions.runtime`): trials
    run as workloads through the client ``api`` in ``namespace``, where the service watches
    the study resources (Katib's Experiments too, where ``katib_api``); ``deps`` are the rest of
    its :class:`~functions.handlers.Deps`."""
    resources = KubernetesResources(lambda: api, katib_api=katib_api)
    resources.namespace = namespace  # where the service watches, as its wrapper (functions.runtime) says
    return Dispatcher(Deps(store, KubernetesExecutor(Cluster(namespace=namespace), api), time.time,
                           resources=resources, **deps))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Flask's test client on the real app and Runtime over a new SQLite file, shared by a
    module's tests (a module needing studies in it first makes its own)."""
    with app_client(tmp_path_factory.mktemp("app") / "katuna.db") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def kube(request: pytest.FixtureRequest):
    """A loopback Kubernetes API shared by a module's tests. Besides ``default`` and ``katuna``,
    the namespaces a module lists in ``KUBE_NAMESPACES`` exist, with the ``katuna-trials``
    ClusterRole bound to katuna in each (as an operator binds it where trials run)."""
    stub = KubeStub(namespaces=getattr(request.module, "KUBE_NAMESPACES", ()))
    yield stub
    stub.close()



SIMULATED_RUN = Run(60, "loss=0.5\n")
"""How each container of :func:`simulated_kube` runs unless its module says otherwise."""


@pytest.fixture
def simulated_kube(request: pytest.FixtureRequest) -> Iterator[KubeStub]:
    """A loopback Kubernetes API of its own for each test, on a simulated clock, whose containers
    all run as the module's ``SIMULATED_RUN`` (a :class:`Run`; by default a minute, printing a
    loss): hours of a cluster's life pass in the instants the test takes."""
    stub = KubeStub(clock=SimulatedClock())
    run = getattr(request.module, "SIMULATED_RUN", SIMULATED_RUN)
    stub.kubelets.containers = SimulatedContainers(stub.clock, lambda pod: run)
    yield stub
    stub.close()


def unlined(text: str) -> str:
    """CLI output with the line of each of a study file's problems left out (``path (line 3):
    ...`` read as ``path: ...``), for tests of what a problem says rather than where."""
    return re.sub(r" \(line \d+\)(?=: )", "", text)


def uid_of(folder: Path) -> str:
    """The study uid of the attempts a test makes in its ``folder``, its own: an attempt's
    processes are found by a marker made of its uid and numbers, and an owner a test kills has
    its guard end every process of its attempt's marker after the test is done with it, which
    must not take another test's attempt (the next in this process, or one in another) for it."""
    return "u-" + uuid.uuid5(uuid.NAMESPACE_URL, str(folder)).hex[:16]
