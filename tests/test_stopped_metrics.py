"""A trial still running when its study ends is stopped (stored ``PRUNED``, its reason saying
the study's end stopped it, shown ``STOPPED``) and keeps what its output held by then: the
metrics it printed, reduced as a finished trial's are, and its observations, as Optuna keeps a
pruned trial's intermediate values and Katib the observations its collector pushed. Its state,
reason and verdict stay as the stop made them. Through a real embedded run (real trial
processes, a real SQLite file), the real CLI, and the real app's API and dashboard; and on a
cluster (the loopback Kubernetes API, whose pods run the trials as processes)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import app_client, run_file, study_definition
from test_cli import here, write_study
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core import file_collector
from functions.core.cluster import Cluster
from functions.core.events import POOL_CHECK, Event, study_completed, study_created
from functions.core.launch import trial_launch
from functions.core.lines import bounded_lines
from functions.core.records import PRUNED, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan, reconcile
from functions.handlers.stopped_output import StoppedOutput
from functions.handlers.submit import store_study

TRIAL = """
import sys, time
from pathlib import Path
role, ready = sys.argv[1], Path(sys.argv[2])
if role == "slow":
    print("epoch 1", flush=True)
    print("loss=0.9", flush=True)
    print("loss=0.7 accuracy=0.55", flush=True)
    ready.touch()
    time.sleep(120)
else:
    while not ready.exists():
        time.sleep(0.01)
    print("loss=0.1 accuracy=0.9", flush=True)
"""
"""The ``slow`` trial prints its metrics, says so, and runs on until it is stopped; the ``fast``
one reports the goal only once the slow one has printed, so the study ends with it running."""


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a study run to its end: its goal reached by one trial while the other ran."""
    folder = tmp_path_factory.mktemp("stopped-metrics")
    definition = study_definition(
        name="ended", maxTrials=2, parallelism=2,
        objective={"metric": "loss", "direction": "minimize", "goal": 0.5, "additionalMetrics": ["accuracy"]},
        parameters=[{"name": "role", "type": "categorical", "values": ["slow", "fast"]}],
        algorithm={"name": "grid"},
        trialTemplate={"command": [sys.executable, "-c", TRIAL, "${trialParameters.role}", str(folder / "ready")]})
    run_file(write_study(folder / "ended.yaml", definition))
    return folder


def _stopped(trials: list[dict]) -> dict:
    (trial,) = [t for t in trials if t["params"]["role"] == "slow"]
    return trial


def test_katuna_trials_shows_the_metrics_a_stopped_trial_printed(ended: Path):
    """``katuna trials --json``: the stopped trial's metrics, as its output held them (the
    objective reduced by its strategy, ``min``), its state and reason the stop's, no values."""
    trials = json.loads(here("trials", "ended", "--json", "--db", str(ended / "katuna.db")).stdout)
    stopped = _stopped(trials)
    assert stopped["state"] == "STOPPED" and stopped["reason"].startswith(STOPPED_AT_END)
    assert stopped["metrics"] == {"loss": 0.7, "accuracy": 0.55}
    assert stopped.get("values") is None
    table = here("trials", "ended", "--db", str(ended / "katuna.db")).stdout
    (row,) = [line for line in table.splitlines() if "STOPPED" in line]
    assert "0.7" in row


def test_the_api_and_the_dashboard_show_the_stopped_trials_metrics_and_observations(ended: Path):
    """The API's trial and its observations, the dashboard's trial page and its CSV export show
    what the stopped trial printed; it is stored ``PRUNED`` still."""
    with app_client(ended / "katuna.db") as client:
        listed = client.get("/studies/ended/trials").get_json()
        number = _stopped(listed if isinstance(listed, list) else listed["trials"])["number"]
        trial = client.get(f"/studies/ended/trials/{number}").get_json()
        assert trial["metrics"] == {"loss": 0.7, "accuracy": 0.55}
        assert trial["reason"].startswith(STOPPED_AT_END)
        observed = client.get(f"/studies/ended/trials/{number}/observations").get_json()
        rows = observed if isinstance(observed, list) else observed["observations"]
        assert sorted((o["metric"], o["value"]) for o in rows) == [("accuracy", 0.55), ("loss", 0.7), ("loss", 0.9)]
        page = client.get(f"/ui/studies/ended/trials/{number}").get_data(as_text=True)
        exported = list(csv.DictReader(io.StringIO(client.get("/ui/studies/ended/trials.csv").text)))
    assert "none reported" not in page and "0.55" in page
    (row,) = [r for r in exported if r["number"] == str(number)]
    assert (row["state"], row["loss"], row["accuracy"]) == ("STOPPED", "0.7", "0.55")


COLLECTED = """
import sys, time
from pathlib import Path
sys.path[:0] = [TESTS]
import tfevent_writer
how, role, ready, path = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
reports = [(0.875, None), (0.625, 0.5)] if role == "slow" else [(0.125, 0.875)]
while role == "fast" and not ready.exists():
    time.sleep(0.01)
if how == "tfevent":
    events = [tfevent_writer.event(step, [("loss", loss)] + ([("accuracy", accuracy)] if accuracy else []),
                                   tfevent_writer.SIMPLE) for step, (loss, accuracy) in enumerate(reports)]
    tfevent_writer.write(path / "events.out.tfevents.1.katuna", events)
else:
    path.write_text("".join(f"loss={loss}" + (f" accuracy={accuracy}" if accuracy else "") + "\\n"
                            for loss, accuracy in reports))
if role == "slow":
    ready.touch()
    time.sleep(120)
""".replace("TESTS", repr(str(Path(__file__).parent)))
"""Writes its metrics to its metrics file (``file``) or event folder (``tfevent``: values a
32-bit float holds exactly, as TensorFlow's scalars are); the
``slow`` trial then runs until it is stopped, the ``fast`` one writes the goal once it has."""


@pytest.mark.parametrize("how", ["file", "tfevent"])
def test_a_local_trial_stopped_by_its_studys_end_keeps_the_metrics_of_its_file(tmp_path: Path, how: str):
    """A File or TensorFlowEvent collector's metrics are in a file on this machine's disk, which
    the stop leaves: the stopped trial keeps what it held, its state and reason the stop's."""
    where = str(tmp_path / ("m-${trialSpec.Name}.txt" if how == "file" else "ev-${trialSpec.Name}"))
    definition = study_definition(
        name="filed", maxTrials=2, parallelism=2, metricsCollector={"kind": how, "path": where},
        objective={"metric": "loss", "direction": "minimize", "goal": 0.5, "additionalMetrics": ["accuracy"]},
        parameters=[{"name": "role", "type": "categorical", "values": ["slow", "fast"]}],
        algorithm={"name": "grid"},
        trialTemplate={"command": [sys.executable, "-c", COLLECTED, how, "${trialParameters.role}",
                                   str(tmp_path / "ready"), where]})
    run_file(write_study(tmp_path / "filed.yaml", definition))
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        (stopped,) = [t for t in store.trials("filed") if t.params["role"] == "slow"]
        assert (stopped.state, stopped.reason.startswith(STOPPED_AT_END)) == (PRUNED, True), stopped.reason
        assert stopped.metrics == {"loss": 0.625, "accuracy": 0.5} and stopped.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("filed", stopped.number, stopped.attempt))
        assert observed == [("accuracy", 0.5), ("loss", 0.625), ("loss", 0.875)]
    finally:
        store.close()


KUBE_NAMESPACES = ("stopped",)

RUNNING = "import time; print('loss=0.9', flush=True); print('loss=0.7 accuracy=0.55', flush=True); time.sleep(120)"
"""A cluster trial that prints its metrics, then runs until it is stopped."""


def _running(kube) -> bool:
    """Whether the trial's pod runs. The stand-in's Job controller makes the Job's pod, and its
    kubelet starts it, in their own time on the controllers' thread (a slow pass on a loaded
    machine): until then the Job has no log, and reading its output finds it lost."""
    return any(namespace == "stopped" and pod.get("status", {}).get("phase") == "Running"
               for (namespace, _), pod in list(kube.pods.items()))


def _delivered(deps: Deps, events: list[Event]) -> None:
    """Deliver the events and every event they lead to, in this process."""
    for event in events:
        _delivered(deps, Dispatcher(deps).deliver(event))


def _printing(deps: Deps, kube, name: str, script: str = RUNNING, printed: str = "accuracy=0.55",
              **fields: object) -> StudyRecord:
    """A study ``name`` of one cluster trial running ``script`` (its study's ``fields`` as
    given), stored and started, once the trial's log holds ``printed``."""
    definition = study_definition(name, maxTrials=1, parallelism=1, **fields,
                                  objective={"metric": "loss", "direction": "minimize", "additionalMetrics": ["accuracy"]})
    definition["trialTemplate"].update(image="python:3.12", command=[sys.executable, "-c", script,
                                                                     "${trialParameters.x}"])
    record, _ = store_study(deps, parse_study(definition), definition)
    _delivered(deps, [study_created(record.name, record.uid)])
    eventually(lambda: _running(kube), "the trial's pod running", timeout=60)
    _printed(deps, record, printed, "the trial's metrics printed")
    return record


def _printed(deps: Deps, record: StudyRecord, text: str, what: str, timeout: float = 60) -> None:
    """Wait for ``text`` in the output of the study's running trial (``what``, if it never comes)."""
    launch = trial_launch(record, deps.store.get_trial(record.name, 0))
    eventually(lambda: text in "".join(deps.executor.output(launch)), what, timeout=timeout)


def _end_read_once(deps: Deps, kube, record: StudyRecord) -> Event:
    """The study's end (stopped by its user), delivered, once asserted that the stop read the
    trial's log in one read: one list of its pods, one get of its log (no request more for it)."""
    end = study_completed(record.name, record.uid, "stopped", "stopped by its user")
    before = len(kube.audit)
    _delivered(deps, [end])
    stop = Counter(f"{verb} {resource}" for verb, resource, _, _ in kube.audit[before:])
    assert (stop["list pods"], stop["get pods"]) == (1, 1), "one read of the trial's log gives both"
    return end


@pytest.mark.slow
def test_a_cluster_trial_stopped_by_its_studys_end_keeps_what_its_pods_log_held_once(tmp_path: Path, kube):
    """On a cluster the stop deletes the Job and its pods' logs with it: the output is read
    before, in the one read that keeps its last lines (no request more for it), and kept once,
    however often the study's end and the tick come. The trial's state,
    reason and Optuna trial stay as the stop made them; the Job is gone."""
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url)), time.time)
    try:
        end = _end_read_once(deps, kube, _printing(deps, kube, "halted"))
        _delivered(deps, [end])
        _delivered(deps, reconcile.handle(Event(POOL_CHECK, {}), deps))
        trial = store.get_trial("halted", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.7, "accuracy": 0.55} and trial.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("halted", 0, 1))
        assert observed == [("accuracy", 0.55), ("loss", 0.7), ("loss", 0.9)]
        assert [name for namespace, name in kube.jobs if namespace == "stopped"] == []
    finally:
        store.close()


@pytest.mark.slow
def test_a_cluster_trial_whose_running_log_was_kept_keeps_those_observations_when_its_study_ends(tmp_path: Path, kube):
    """Where the reads of the running trial's log kept its observations (every cluster study's
    are, now and then: they outlive the kubelet's rotation of the log), the stop keeps those,
    reduced, with the same one read of the log's last lines as any stop."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url))
    deps = Deps(store, executor, time.time, logs=executor)
    try:
        record = _printing(deps, kube, "scanned")
        progress_scan.scan(deps, [store.get_study("scanned")])
        assert len(store.observations("scanned", 0, 1)) == 3, "the running log's observations kept"
        _end_read_once(deps, kube, record)
        trial = store.get_trial("scanned", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.7, "accuracy": 0.55} and trial.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("scanned", 0, 1))
        assert observed == [("accuracy", 0.55), ("loss", 0.7), ("loss", 0.9)]
    finally:
        store.close()


def _waiting(go: Path) -> str:
    """A cluster trial that prints its metrics, and once ``go`` exists, better ones, then runs until it is stopped."""
    return f"""
import time
from pathlib import Path
print('loss=0.9', flush=True)
print('loss=0.7 accuracy=0.55', flush=True)
while not Path({str(go)!r}).exists():
    time.sleep(0.01)
print('loss=0.3 accuracy=0.6', flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_cluster_trial_keeps_what_it_printed_after_its_running_log_was_last_read(tmp_path: Path, kube):
    """The lines a trial printed after the last read of its running log are kept with what that
    read kept, each observation once, in the stop's one read of the log's last lines."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url))
    deps = Deps(store, executor, time.time, logs=executor)
    try:
        record = _printing(deps, kube, "later", _waiting(tmp_path / "go"))
        progress_scan.scan(deps, [store.get_study("later")])
        assert len(store.observations("later", 0, 1)) == 3, "the running log's observations kept"
        (tmp_path / "go").touch()
        _printed(deps, record, "loss=0.3", "the later metrics printed")
        end = _end_read_once(deps, kube, record)
        _delivered(deps, [end])
        _delivered(deps, reconcile.handle(Event(POOL_CHECK, {}), deps))
        trial = store.get_trial("later", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.3, "accuracy": 0.55} and trial.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("later", 0, 1))
        assert observed == [("accuracy", 0.55), ("accuracy", 0.6), ("loss", 0.3), ("loss", 0.7), ("loss", 0.9)]
    finally:
        store.close()


LONG = ("import time; print('loss=0.9', flush=True); [print(f'step {n}') for n in range(3000)]; "
        "print('loss=0.7 accuracy=0.55', flush=True); time.sleep(120)")
"""A cluster trial whose log is longer than the last lines a stop keeps."""


@pytest.mark.slow
def test_a_cluster_trial_whose_running_log_was_never_read_has_only_its_last_lines_read_as_it_is_stopped(
        tmp_path: Path, kube):
    """Where nothing was kept of the running log (the trial stopped before its first read), the
    stop reads the log's last lines as it always does (``tailLines``), not the whole log, and
    the trial keeps what they held."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url))
    deps = Deps(store, executor, time.time, logs=executor)
    try:
        record = _printing(deps, kube, "unread", LONG)
        reads: list[dict[str, str]] = []
        kube.on_log_read = lambda pod, query: reads.append(query)
        _delivered(deps, [study_completed("unread", record.uid, "stopped", "stopped by its user")])
        kube.on_log_read = None
        (read,) = reads
        assert read.get("tailLines") == "2001", read
        trial = store.get_trial("unread", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.7, "accuracy": 0.55}
        assert "step 2999" in store.kept_tail("unread", 0, 1).text
    finally:
        store.close()


FILED = ("import time, pathlib, sys; pathlib.Path(sys.argv[1]).write_text('loss=0.9\\nloss=0.7 accuracy=0.55\\n'); "
         "print('written', flush=True); time.sleep(120)")
"""A cluster trial that writes its metrics to the File collector's file (its path its first argument), then runs on."""


@pytest.mark.slow
def test_a_cluster_file_collectors_trial_stopped_by_its_studys_end_keeps_its_files_metrics(tmp_path: Path, kube):
    """The File collector's wrapper copies the metrics file to the pod's log as it grows: the
    stop's read of the log's last lines gives the stopped trial its metrics."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url))
    deps = Deps(store, executor, time.time, logs=executor)
    path = str(tmp_path / "metrics.log")
    try:
        record = _printing(deps, kube, "filed", FILED.replace("sys.argv[1]", repr(path)), "accuracy=0.55",
                           metricsCollector={"kind": "file", "path": path})
        _delivered(deps, [study_completed("filed", record.uid, "stopped", "stopped by its user")])
        trial = store.get_trial("filed", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.7, "accuracy": 0.55}
    finally:
        store.close()


EVENTS = """
import sys, time
from pathlib import Path
sys.path[:0] = [TESTS]
import tfevent_writer
reports = [(0.875, None), (0.625, 0.5), (0.75, 0.25)]
tfevent_writer.write(Path(sys.argv[1]) / "events.out.tfevents.1.katuna",
                     [tfevent_writer.event(step, [("loss", loss)] + ([("accuracy", accuracy)] if accuracy else []),
                                           tfevent_writer.SIMPLE) for step, (loss, accuracy) in enumerate(reports)])
print("written", flush=True)
time.sleep(120)
""".replace("TESTS", repr(str(Path(__file__).parent)))
"""A cluster trial that writes its metrics to event files in its folder (its first argument),
then runs until it is stopped."""


@pytest.mark.slow
def test_a_cluster_tensorflow_event_collectors_trial_stopped_by_its_studys_end_keeps_its_event_files_metrics(
        tmp_path: Path, kube):
    """The TensorFlowEvent collector's wrapper prints the event files' records to the pod's log
    as they are written: the stop's one read of the log's last lines gives the stopped trial its
    metrics and observations, once, however often the study's end comes."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url))
    deps = Deps(store, executor, time.time, logs=executor)
    folder = str(tmp_path / "events")
    try:
        record = _printing(deps, kube, "evented", EVENTS.replace("sys.argv[1]", repr(folder)), "written",
                           metricsCollector={"kind": "tfevent", "path": folder})
        _printed(deps, record, '"step": 2', "the event records in the log", timeout=30)
        end = _end_read_once(deps, kube, record)
        _delivered(deps, [end])
        trial = store.get_trial("evented", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.625, "accuracy": 0.25} and trial.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("evented", 0, 1))
        assert observed == [("accuracy", 0.25), ("accuracy", 0.5), ("loss", 0.625), ("loss", 0.75), ("loss", 0.875)]
    finally:
        store.close()


ENDING = """
import sys
from pathlib import Path
sys.path[:0] = [TESTS]
import tfevent_writer
reports = [(0.875, 0.625), (0.625, 0.5), (0.75, 0.375), (0.5, 0.25)]
tfevent_writer.write(Path(sys.argv[1]) / "events.out.tfevents.1.katuna",
                     [tfevent_writer.event(step, [("loss", loss), ("accuracy", accuracy)], tfevent_writer.SIMPLE)
                      for step, (loss, accuracy) in enumerate(reports)])
""".replace("TESTS", repr(str(Path(__file__).parent)))
"""A trial that writes its metrics to event files in its folder (its first argument) and ends."""


def test_a_stop_that_reads_the_log_while_the_end_prints_its_records_keeps_every_record(tmp_path: Path):
    """A study's end may read a trial's log while the reader at the end prints the event files'
    records (the command has just ended; the trial has not): the read holds a part of them only,
    so the stopped trial keeps the records its follower printed as they were written, every
    one, and not that part. The log is a real wrapper's (real ``sh``, the real follower and
    reader, a real trial process), read up to each point of the end's print."""
    folder = tmp_path / "events"
    job = {"spec": {"template": {"spec": {"containers": [{
        "name": "main", "command": [sys.executable, "-c", ENDING, str(folder)]}]}}}}
    wrapped = file_collector.wrap_events(job, "main", str(folder), ["loss", "accuracy"])
    done = subprocess.run(wrapped["spec"]["template"]["spec"]["containers"][0]["command"], capture_output=True,
                          timeout=60, check=True)
    log = done.stdout
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client("http://127.0.0.1:9"))
    deps = Deps(store, executor, time.time, logs=executor)
    try:
        definition = study_definition("ending", metricsCollector={"kind": "tfevent", "path": str(folder)},
                                      objective={"metric": "loss", "direction": "minimize",
                                                 "additionalMetrics": ["accuracy"]})
        record, _ = store_study(deps, parse_study(definition), definition)
        trial = TrialRecord("ending", 0, {"x": 0.5})

        def kept(read: bytes) -> dict[str, float]:
            output = StoppedOutput(record, trial, deps)
            for line in bounded_lines([read]):
                output(line)
            parsed = output.parsed()
            assert parsed is not None
            return parsed.summary.reduced()

        assert kept(log) == {"loss": 0.5, "accuracy": 0.25}
        start, last = (find(f"\r{file_collector.MARK}".encode()) for find in (log.index, log.rindex))
        cuts = [at for at in range(start, log.index(b"\n", last) + 2) if log[at:at + 1] in b"\r}"]
        assert len(cuts) >= 8, "the end printed every record, each cut before and within"
        assert [kept(log[:at]) for at in cuts] == [{"loss": 0.5, "accuracy": 0.25}] * len(cuts)
    finally:
        store.close()
