"""``GET /metrics``: Prometheus's exposition of what the service handled and what its store holds.

A real ``katuna serve`` with two workers runs a small study; each scrape, whichever worker
answers it, counts every handling of both (prometheus_client's multiprocess mode in a directory
emptied at start). The access policy, the formats and the dispatcher's outcomes are checked on
the app and the dispatcher directly.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from doc_blocks import ROOT, block
from http_helpers import Service, Sink, free_port, refused_start
from prometheus_client.parser import text_string_to_metric_families
from waiting import eventually
from write_lock import WriteLock

from functions.adapters.web import METRICS_PATH, create_app
from functions.adapters.web.server import IN_USE, METRICS_DIR, metrics_dir
from functions.core.events import Event, study_created, trial_finished
from functions.core.pool_use import READY, RELEASED, PoolUse
from functions.core.records import PRUNED, RUNNING, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher, MalformedEventData, UnknownEventType
from functions.runtime import Runtime
from functions.settings import Settings

STUDY = "measured"
TRIALS = 4
HANDLED = "katuna_events_handled"


def scrape(service: Service) -> dict[str, list]:
    """The samples of each metric family, by family name."""
    status, headers, body = service.request("GET", "/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family.samples for family in text_string_to_metric_families(body.decode())}


def handled(families: dict[str, list]) -> Counter:
    """Handlings by (event type, handler, outcome)."""
    return Counter({(s.labels["type"], s.labels["handler"], s.labels["outcome"]): s.value
                    for s in families.get(HANDLED, []) if s.name == f"{HANDLED}_total"})


def by_label(families: dict[str, list], name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in families[name]}


def _event(event_type: str, data: dict) -> tuple[bytes, dict[str, str]]:
    event = CloudEvent(attributes={"type": event_type, "source": "/test", "datacontenttype": "application/json"},
                       data=data)
    message = ce_http.to_binary_event(event)
    return message.body, dict(message.headers)


def _post(service: Service, path: str, message: tuple[bytes, dict[str, str]]) -> int:
    body, headers = message
    return service.request("POST", path, body, headers)[0]


def _stale_counts(folder: Path) -> None:
    """What an earlier run of the service left in its metrics directory: 1000 handlings."""
    code = ("from prometheus_client import Counter\n"
            "Counter('katuna_events_handled', '', ['type', 'handler', 'outcome'])"
            ".labels('dev.katuna.trial.finished', 'collect', 'ok').inc(1000)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)})


def _worker_pids(service: Service) -> set[int]:
    children = Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def _counting_pids(folder: Path) -> set[int]:
    return {int(path.stem.rpartition("_")[2]) for path in folder.glob("counter_*.db")}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two workers that ran a study to its end; their metrics directory; the Kubernetes API is
    a closed port, so a study resource's event fails for now."""
    workdir = tmp_path_factory.mktemp("metrics")
    folder = workdir / "prometheus"
    folder.mkdir()
    _stale_counts(folder)
    service = Service(workdir, workers=2, PROMETHEUS_MULTIPROC_DIR=str(folder),
                      KATUNA_K8S_API=f"http://127.0.0.1:{free_port()}")
    try:
        definition = json.dumps(study_definition(name=STUDY, maxTrials=TRIALS, parallelism=2))
        assert service.request("POST", "/studies", definition, {"Content-Type": "application/json"})[0] == 201
        service.wait_for(STUDY)
        yield service, folder
    finally:
        service.close()


def _settled(service: Service, timeout: float = 60) -> dict[str, list]:
    """A scrape once the study's end has been handled and no event waits."""
    deadline = time.monotonic() + timeout
    while True:
        families = scrape(service)
        done = handled(families)[("dev.katuna.study.completed", "writeback", "ok")] == 1
        if done and families["katuna_queue_depth"][0].value == 0:
            return families
        assert time.monotonic() < deadline, families
        time.sleep(0.2)


@pytest.mark.slow
def test_a_scrape_counts_each_handling_of_a_study_by_type_handler_and_outcome(served):
    service, _ = served
    counts = handled(_settled(service))
    assert {key: n for key, n in counts.items() if key[2] == "ok"} == {
        ("dev.katuna.study.created", "provision", "ok"): 1,
        ("dev.katuna.study.created", "suggest", "ok"): 1,
        ("dev.katuna.trial.suggested", "spawn", "ok"): TRIALS,
        ("dev.katuna.trial.suggested", "writeback", "ok"): TRIALS,
        ("dev.katuna.trial.finished", "collect", "ok"): TRIALS,
        ("dev.katuna.study.completed", "stop", "ok"): 1,
        ("dev.katuna.study.completed", "provision", "ok"): 1,
        ("dev.katuna.study.completed", "writeback", "ok"): 1,
    }, "the earlier run's counts are gone"


@pytest.mark.slow
def test_the_latency_histogram_counts_every_handling_of_each_handler(served):
    service, _ = served
    families = _settled(service)
    per_handler: Counter = Counter()
    for (_, handler, _), n in handled(families).items():
        if handler != "none":  # refused before any handler ran: not timed
            per_handler[handler] += n
    latency = families["katuna_handler_duration_seconds"]
    counted = {s.labels["handler"]: s.value for s in latency if s.name.endswith("_count")}
    assert counted == dict(per_handler)
    slowest = {s.labels["handler"]: s.value for s in latency if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"}
    assert slowest == counted


@pytest.mark.slow
def test_trials_and_studies_by_state_are_what_the_api_says(served):
    service, _ = served
    families = _settled(service)
    status, study = service.json("GET", f"/studies/{STUDY}")
    assert status == 200
    assert by_label(families, "katuna_trials", "state") == {state: float(n) for state, n in study["counts"].items()}
    assert by_label(families, "katuna_studies", "status") == {"running": 0, "completed": 1, "failed": 0, "stopped": 0}
    assert by_label(families, "katuna_node_pool_uses", "phase") == dict.fromkeys(
        ("creating", "ready", "releasing", "released", "failed"), 0)
    assert families["katuna_node_pool_operations_pending"][0].value == 0


@pytest.mark.slow
def test_every_scrape_adds_up_the_handlings_of_both_workers(served):
    service, folder = served
    workers = _worker_pids(service)
    assert len(workers) == 2
    malformed = _event("dev.katuna.trial.finished", {"study": STUDY})
    posted, deadline = 0, time.monotonic() + 60
    while not workers <= _counting_pids(folder):
        assert time.monotonic() < deadline, f"one worker took every request: {_counting_pids(folder)} of {workers}"
        assert _post(service, "/", malformed) == 400
        posted += 1
    assert _counting_pids(folder) == workers, "the earlier run's file was removed"
    for _ in range(6):
        refused = handled(scrape(service))[("dev.katuna.trial.finished", "none", "permanent_error")]
        assert refused == posted


@pytest.mark.slow
def test_a_temporary_failure_is_counted_as_such(served):
    service, _ = served
    resource = {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": "from-the-cluster",
                                                                                "namespace": "default"}}
    assert _post(service, "/", _event("dev.knative.apiserver.resource.add", resource)) == 503
    counts = handled(scrape(service))
    assert counts[("dev.knative.apiserver.resource.add", "resource", "temporary_error")] == 1
    assert counts[("dev.knative.apiserver.resource.add", "jobwatch", "temporary_error")] == 0, "not its object"


@pytest.mark.slow
def test_an_event_of_a_study_that_is_gone_is_counted_as_dropped(served):
    service, _ = served
    gone = trial_finished("never-created", "no-such-uid", 0, 1, "exited", 0)
    assert _post(service, "/functions/collect", _event(gone.type, dict(gone.data))) == 202
    assert handled(scrape(service))[("dev.katuna.trial.finished", "collect", "dropped")] == 1


class Recorder:
    """An observer that keeps what it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float | None) -> None:
        assert (seconds is None) == (handler == "none") and (seconds is None or seconds >= 0)
        self.seen.append((event_type, handler, outcome))


def test_the_dispatcher_reports_each_handling_and_its_outcome(embedded, tmp_path):
    definition = study_definition(name="observed", maxTrials=1, parallelism=1)
    record = embedded.submit(parse_study(definition), definition, tmp_path)
    recorder = Recorder()
    dispatcher = Dispatcher(embedded.deps, observer=recorder)
    created = study_created(record.name, record.uid)
    dispatcher.deliver(created)
    dispatcher.deliver(created)
    assert dispatcher.deliver(trial_finished("gone", "no-uid", 0, 1, "exited", 0)) == [], "its study is gone: done"
    with pytest.raises(UnknownEventType):
        dispatcher.deliver(Event("dev.example.unheard.of", {}))
    with pytest.raises(MalformedEventData):
        dispatcher.deliver(Event("dev.katuna.trial.finished", {"study": "observed"}))
    assert recorder.seen == [
        ("dev.katuna.study.created", "provision", "ok"), ("dev.katuna.study.created", "suggest", "ok"),
        # provision has nothing to do for a study without a node pool, and keeps no record of it
        ("dev.katuna.study.created", "provision", "ok"), ("dev.katuna.study.created", "suggest", "duplicate"),
        ("dev.katuna.trial.finished", "collect", "dropped"),
        ("unknown", "none", "permanent_error"), ("dev.katuna.trial.finished", "none", "permanent_error"),
    ]


def _app(tmp_path: Path, **settings):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", **settings))
    return runtime, create_app(runtime).test_client()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_with_a_metrics_token_a_scrape_from_any_host_needs_it_or_the_api_token(tmp_path):
    runtime, client = _app(tmp_path, api_token="api-token-0123456789", metrics_token="metrics-token-0123456789",
                           allowed_hosts=("katuna.example.org",))
    try:
        pod = "http://10.12.0.7:8080"
        assert client.get("/metrics", base_url=pod).status_code == 401
        assert client.get("/metrics", base_url=pod, headers=_bearer("wrong")).status_code == 401
        assert client.get("/metrics", base_url=pod, headers=_bearer("metrics-token-0123456789")).status_code == 200
        assert client.get("/metrics", base_url=pod, headers=_bearer("api-token-0123456789")).status_code == 200
        studies = client.get("/studies", base_url="http://katuna.example.org", headers=_bearer("metrics-token-0123456789"))
        assert studies.status_code == 401, "the metrics token reaches /metrics only"
    finally:
        runtime.close()


def test_without_a_token_metrics_are_served_to_loopback_host_names_only(tmp_path):
    runtime, client = _app(tmp_path)
    try:
        assert client.get("/metrics", base_url="http://127.0.0.1:8080").status_code == 200
        refused = client.get("/metrics", base_url="http://attacker.example:8080")
        assert refused.status_code == 400 and refused.json["error"] == "host_not_allowed"
    finally:
        runtime.close()


def test_openmetrics_when_asked_and_the_events_not_yet_sent_behind_a_broker(tmp_path):
    runtime, client = _app(tmp_path, events="reply")
    try:
        answer = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert answer.status_code == 200
        assert answer.content_type.startswith("application/openmetrics-text; version=1.0.0")
        assert answer.text.endswith("# EOF\n")
        families = {family.name: family for family in text_string_to_metric_families(client.get("/metrics").text)}
        assert {"katuna_trials", "katuna_studies", "katuna_node_pool_uses"} <= set(families)
        assert [sample.value for sample in families["katuna_queue_depth"].samples] == [0.0], \
            "behind a broker the queue holds the events not yet sent to it"
    finally:
        runtime.close()


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
"""The ``Accept`` of Prometheus's scrapes (its ``scrape.go``): OpenMetrics first."""


def test_a_scrape_as_prometheus_asks_is_openmetrics_gzipped_and_says_it_follows_both_headers(tmp_path):
    """Prometheus takes gzip and asks for OpenMetrics first: that answer is compressed as the text
    format is, and, since a scrape's format follows ``Accept`` as its coding follows
    ``Accept-Encoding``, ``Vary`` names both (RFC 9110 section 12.5.5). A type refused with
    ``q=0`` is not sent, however early it comes."""
    runtime, client = _app(tmp_path)
    try:
        answer = client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
        assert answer.content_type.startswith("application/openmetrics-text; version=1.0.0")
        assert answer.headers.get("Content-Encoding") == "gzip"
        assert gzip.decompress(answer.data).endswith(b"# EOF\n")
        assert set(answer.vary) == {"Accept", "Accept-Encoding"}
        plain = client.get("/metrics", headers={"Accept": "application/openmetrics-text; q=0, text/plain"})
        assert plain.content_type.startswith("text/plain; version=0.0.4") and set(plain.vary) == {
            "Accept", "Accept-Encoding"}
        assert client.get("/metrics", headers={"Accept": "application/openmetrics-text;q=0.0"}).content_type \
            .startswith("text/plain; version=0.0.4"), "the text format is what a scrape gets unless it asks"
    finally:
        runtime.close()


@pytest.mark.slow
def test_katuna_serve_keeps_its_workers_counts_in_a_private_directory_it_removes(tmp_path):
    service = Service(tmp_path, workers=2, TMPDIR=str(tmp_path))
    try:
        [folder] = tmp_path.glob("katuna-metrics-*")
        assert folder.stat().st_mode & 0o777 == 0o700
        assert _post(service, "/", _event("dev.katuna.trial.finished", {"study": "any"})) == 400
        assert handled(scrape(service))[("dev.katuna.trial.finished", "none", "permanent_error")] == 1
    finally:
        service.close()
    assert not folder.exists()


@pytest.mark.slow
def test_the_directory_of_a_killed_katuna_serve_is_removed_by_the_next(tmp_path):
    killed = Service(tmp_path, workers=1, TMPDIR=str(tmp_path))
    workers: set[int] = set()
    try:
        [left] = tmp_path.glob("katuna-metrics-*")
        assert _post(killed, "/", _event("dev.katuna.trial.finished", {"study": "any"})) == 400
        workers = {int(f.stem.rsplit("_", 1)[1]) for f in left.glob("*.db")}
        assert workers, "the worker keeps its counts there"
    finally:
        for pid in (killed.process.pid, *workers):
            os.kill(pid, signal.SIGKILL)
        killed.close()
    assert left.exists(), "a SIGKILL leaves no time to remove it"
    _wait_until_unlocked(left / IN_USE)

    service = Service(tmp_path, workers=1, TMPDIR=str(tmp_path))
    try:
        assert not left.exists(), "nothing of the killed service holds its lock any more"
        [mine] = tmp_path.glob("katuna-metrics-*")
        assert (mine / IN_USE).is_file()
    finally:
        service.close()


def _wait_until_unlocked(path: Path, timeout: float = 30) -> None:
    """Until no process holds ``path``'s lock (a killed process lets go of it once it is gone)."""
    deadline = time.monotonic() + timeout
    with path.open() as probe:
        while True:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{path} is still locked"
                time.sleep(0.05)
            else:
                fcntl.flock(probe, fcntl.LOCK_UN)
                return


def _private_dir(parent: Path, tag: str, *files: str) -> Path:
    folder = parent / f"katuna-metrics-{tag}"
    folder.mkdir()
    for name in (IN_USE, *files):
        (folder / name).write_text("")
    return folder


def test_only_a_private_metrics_directory_whose_service_is_gone_is_removed(tmp_path, monkeypatch):
    abandoned = _private_dir(tmp_path, "ended", "counter_7.db", "histogram_7.db")
    running = _private_dir(tmp_path, "running", "counter_8.db")
    foreign = _private_dir(tmp_path, "foreign", "counter_9.db", "notes.txt")
    unlocked = tmp_path / "katuna-metrics-older"
    unlocked.mkdir()
    (unlocked / "counter_10.db").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(METRICS_DIR, "")  # unset for metrics_dir, and what it sets is undone after the test
    with (running / IN_USE).open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        made, lock = metrics_dir()
    try:
        assert made.parent == tmp_path and sorted(p.name for p in made.iterdir()) == [IN_USE]
        assert not abandoned.exists(), "nobody holds its lock"
        assert running.exists(), "its service holds the lock"
        assert foreign.exists(), "it holds something other than metrics"
        assert unlocked.exists(), "it has no lock to tell whether its service runs"
        assert lock is not None
        with (made / IN_USE).open() as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(lock)


def _gauges(runtime: Runtime) -> dict[str, dict[tuple, float]]:
    """Each gauge's values by label values, as ``runtime`` exposes them now."""
    text = runtime.metrics("")[0].decode()
    return {family.name: {tuple(s.labels.values()): s.value for s in family.samples}
            for family in text_string_to_metric_families(text) if family.type == "gauge"}


def test_node_pool_uses_by_phase_and_pending_operations_come_from_the_store(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        use = PoolUse("uid-a", "a", "katuna-a", "gke", "spot", ("n2-standard-8",), 5, shared=False, operation="op-1")
        with store.transaction():
            store.save_pool_use(use)
            store.save_pool_use(PoolUse(**{**use.__dict__, "uid": "uid-b", "phase": READY, "operation": None}))
            store.save_pool_use(PoolUse(**{**use.__dict__, "uid": "uid-c", "phase": RELEASED, "operation": "op-2"}))
        gauges = _gauges(runtime)
        assert gauges["katuna_node_pool_uses"] == {("creating",): 1, ("ready",): 1, ("releasing",): 0,
                                                   ("released",): 1, ("failed",): 0}
        assert gauges["katuna_node_pool_operations_pending"] == {(): 2}
    finally:
        runtime.close()


def test_the_queue_depth_counts_the_events_waiting(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        for number in range(3):
            runtime.publish(study_created(f"waiting-{number}", "uid"))
        assert _gauges(runtime)["katuna_queue_depth"] == {(): 3}
    finally:
        runtime.close()


def test_the_pod_monitor_on_the_knative_page_scrapes_the_service_s_pod_with_a_token():
    monitor = yaml.safe_load(block("docs/knative.md", "Operations: metrics", "yaml"))
    service = yaml.safe_load((ROOT / "knative/service.yaml").read_text())
    namespace = yaml.safe_load((ROOT / "knative/kustomization.yaml").read_text())["namespace"]
    assert monitor["metadata"]["namespace"] == namespace
    assert monitor["spec"]["selector"]["matchLabels"] == {"serving.knative.dev/service": service["metadata"]["name"]}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "user-port", "the name Knative gives the user container's port"
    assert endpoint["path"] == METRICS_PATH
    assert endpoint["authorization"]["type"] == "Bearer"


@pytest.mark.slow
def test_a_metrics_directory_that_holds_other_databases_is_refused(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "katuna.db").write_bytes(b"a database")
    done = refused_start(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder))
    assert done.returncode == 2, done.stderr
    assert "PROMETHEUS_MULTIPROC_DIR" in done.stderr and "katuna.db" in done.stderr
    assert "Traceback" not in done.stderr
    assert (folder / "katuna.db").read_bytes() == b"a database"


def _families(client) -> dict[str, list]:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {family.name: family.samples for family in text_string_to_metric_families(answer.get_data(as_text=True))}


def _counted(families: dict[str, list], name: str, label: str | None = None) -> dict[str, float] | float:
    """A counter's ``_total`` by label value (or its one value, unlabelled)."""
    samples = [s for s in families[name] if s.name == f"{name}_total"]
    return {s.labels[label]: s.value for s in samples} if label else samples[0].value


@pytest.mark.timeout(120)
def test_trials_that_ended_are_counted_as_they_end_and_deleting_their_study_lowers_no_count(tmp_path):
    runtime, client = _app(tmp_path)
    try:
        assert _counted(_families(client), "katuna_trials_finished", "state") == {
            "complete": 0, "failed": 0, "pruned": 0, "stopped": 0}, "every series from the start"
        for name, mode in (("ends-ok", "ok"), ("ends-failing", "crash")):
            definition = study_definition(name=name, mode=mode, maxTrials=2, parallelism=2, maxFailedTrials=2)
            assert client.post("/studies", json=definition).status_code == 201
        for name in ("ends-ok", "ends-failing"):
            eventually(lambda name=name: client.get(f"/studies/{name}").json["status"] in ("completed", "failed"),
                       f"{name} ended", timeout=60)
        ended = {"complete": 2, "failed": 2, "pruned": 0, "stopped": 0}
        assert _counted(_families(client), "katuna_trials_finished", "state") == ended
        for name in ("ends-ok", "ends-failing"):
            assert client.delete(f"/studies/{name}").status_code in (200, 204)
        families = _families(client)
        assert by_label(families, "katuna_trials", "state")["complete"] == 0, "the gauge counts stored trials"
        assert _counted(families, "katuna_trials_finished", "state") == ended, "a counter never goes down"
    finally:
        runtime.close()


def test_trials_their_studys_end_stopped_are_counted_stopped_apart_from_the_pruned_as_the_api_counts(tmp_path):
    """Both are stored ``PRUNED``: the gauge and the counter tell them apart by the reason, as a
    study's ``counts`` do, so ``pruned`` is what early stopping stopped."""
    runtime, client = _app(tmp_path)
    try:
        definition = study_definition(name="stops")
        store = runtime.store()
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-1", created_at=1.0))
        for number in range(3):
            store.add_trial(TrialRecord("stops", number, {"x": 0.5}, RUNNING))
        store.update_trial("stops", 0, state=PRUNED, reason="pruned at step 2 by the median rule")
        store.update_trial("stops", 1, state=PRUNED, reason=f"{STOPPED_AT_END} (stopped by the user)")
        counts = client.get("/studies/stops").json["counts"]
        assert (counts["pruned"], counts["stopped"], counts["running"]) == (1, 1, 1)
        families = _families(client)
        assert by_label(families, "katuna_trials", "state") == {state: float(n) for state, n in counts.items()}
        assert _counted(families, "katuna_trials_finished", "state") == {
            "complete": 0, "failed": 0, "pruned": 1, "stopped": 1}
    finally:
        runtime.close()


def test_each_dead_letter_received_is_counted_beyond_those_kept(tmp_path):
    runtime, client = _app(tmp_path, max_dead_letters=1)
    try:
        assert _counted(_families(client), "katuna_dead_letters") == 0
        for number in range(3):
            letter = _event("dev.katuna.trial.finished", {"study": "gone", "trial": number})
            assert client.post("/dead-letters", data=letter[0], headers=letter[1]).status_code == 202
        assert len(client.get("/dead-letters").json) == 1
        assert _counted(_families(client), "katuna_dead_letters") == 3
    finally:
        runtime.close()


@pytest.mark.timeout(60)
def test_an_event_the_broker_refuses_for_good_is_counted_as_dropped(tmp_path):
    broker = Sink(status=400)
    runtime, client = _app(tmp_path, events="reply", sink=broker.url)
    try:
        assert _counted(_families(client), "katuna_events_dropped", "reason") == {"refused": 0, "exhausted": 0}
        definition = study_definition(name="refused", maxTrials=1, parallelism=1)
        assert client.post("/studies", json=definition).status_code == 201
        eventually(lambda: _counted(_families(client), "katuna_events_dropped", "reason")["refused"] == 1,
                   "the refused start counted")
    finally:
        runtime.close()
        broker.close()


def test_a_storage_failure_is_counted_by_kind(tmp_path):
    runtime, client = _app(tmp_path, busy_timeout=0.05)
    lock = WriteLock(tmp_path / "katuna.db")
    try:
        assert _counted(_families(client), "katuna_storage_errors", "kind") == {
            "busy": 0, "full": 0, "unavailable": 0, "other": 0}
        lock.hold()
        refused = client.post("/studies", json=study_definition(name="held", maxTrials=1, parallelism=1))
        assert refused.status_code == 503 and "busy" in refused.json["message"]
        lock.release()
        counted = _counted(_families(client), "katuna_storage_errors", "kind")
        assert counted["busy"] >= 1 and counted["full"] == counted["unavailable"] == 0, counted
    finally:
        lock.close()
        runtime.close()


def test_an_event_refused_before_any_handler_is_counted_but_not_timed(tmp_path):
    runtime, client = _app(tmp_path)
    try:
        unknown = _event("dev.example.unheard.of", {})
        assert client.post("/", data=unknown[0], headers=unknown[1]).status_code == 422
        families = _families(client)
        assert handled(families)[("unknown", "none", "permanent_error")] == 1
        timed = {s.labels["handler"] for s in families.get("katuna_handler_duration_seconds", [])}
        assert "none" not in timed, "no handler ran: there is no handler's time to count"
    finally:
        runtime.close()


def test_metrics_answer_503_with_retry_after_while_the_database_cannot_be_read(tmp_path):
    runtime, client = _app(tmp_path, events="reply")  # no thread of its own reading the file meanwhile
    try:
        for name in ("katuna.db", "katuna.db-wal", "katuna.db-shm"):
            with (tmp_path / name).open("r+b") as file:
                file.write(b"not a database, overwritten in place " * 3)
        answer = client.get("/metrics")
        assert (answer.status_code, answer.json["error"]) == (503, "storage_unavailable")
        assert answer.headers["Retry-After"]
    finally:
        runtime.close()
