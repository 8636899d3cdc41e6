"""Katib's early stopping for cluster trials that only print their metrics: katuna reads the
running trial's log now and then, each report of the objective a step as Katib counts them,
and the pruner judges them as it judges a local trial's (a real ``katuna serve`` with the
Kubernetes executor, the real client, the loopback API whose kubelet runs the trial's command
and serves its log while it runs)."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import job_experiment, study_definition
from http_helpers import run_on_cluster
from kube_stub import KubeStub
from kubernetes import client
from waiting import eventually

from functions.adapters import cloudevents_http
from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import TRIAL_PROGRESS, Event, pool_check, study_created
from functions.core.formats import load_study
from functions.core.launch import Progress, TrialLaunch, trial_launch
from functions.core.log_cursor import Cursor, RunningLog, reports, written_at
from functions.core.records import StudyRecord
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan, reconcile
from functions.handlers.submit import store_study
from functions.settings import Settings

NAMESPACE = "stopping"
KUBE_NAMESPACES = (NAMESPACE,)

TRIAL = """
import os, time
good = os.environ["KATUNA_TRIAL"] == "0"
for epoch in (1, 2, 3):
    print(f"Epoch {epoch}: loss={(1.0 if good else 10.0) + 1 / epoch:.4f}", flush=True)
    time.sleep(0.1 if good or epoch == 1 else 300)
"""
"""Trial 0 ends at once; every later one is far worse, and after its second report it would
run for many minutes."""


def experiment(name: str, program: str = TRIAL, parallel: int = 1, min_trials: int = 1, start_step: int = 2) -> dict:
    """A Katib Experiment with the median stopping rule, judged at the second report (or the
    ``start_step``-th), whose
    trial (``program``) prints ``loss=`` once an epoch with no step key, as Katib's example
    images do."""
    return job_experiment(name, {"command": [sys.executable, "-c", program, "--lr=${trialParameters.learningRate}"]},
                          max_trials=2, parallel=parallel, early_stopping={"algorithmName": "medianstop", "algorithmSettings": [
                              {"name": "min_trials_required", "value": str(min_trials)},
                              {"name": "start_step", "value": str(start_step)}]})


@pytest.mark.slow
def test_a_cluster_trial_that_only_prints_is_stopped_by_katibs_rule_while_it_runs(kube: KubeStub, tmp_path):
    study, trials = run_on_cluster(kube.url, tmp_path, NAMESPACE, experiment("stop-early"))
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    assert trials[1]["reason"] == "pruned at step 2 by the medianstop rule (loss=10.5)"
    assert trials[1]["metrics"] == {"loss": 10.5}, "the metrics reported before the stop, as Katib's collector"
    deleted = [(namespace, name, policy) for namespace, name, policy in kube.deleted if name.startswith("stop-early")]
    assert sorted(deleted) == [(NAMESPACE, "stop-early-0", "Background"), (NAMESPACE, "stop-early-1", "Background")], \
        "the pruned trial's Job deleted, with its pods, while it ran; the complete one's once its result was stored"


@pytest.mark.slow
def test_a_retained_trial_stopped_early_keeps_its_job_suspended_as_katib_keeps_it(kube: KubeStub, tmp_path):
    """Katib deletes a completed trial's Job, an early-stopped one's too, only without
    ``retainRun`` (trial_controller.go): with ``retain: true`` the stopped trial's Job stays,
    suspended, so Kubernetes terminated its running pod and made no other."""
    definition = experiment("stop-kept")
    definition["spec"]["trialTemplate"]["retain"] = True
    study, trials = run_on_cluster(kube.url, tmp_path, NAMESPACE, definition)
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    assert not [name for _, name, _ in kube.deleted if name.startswith("stop-kept")], "no Job of the study is deleted"
    kept = kube.jobs[(NAMESPACE, "stop-kept-1")]
    assert kept["spec"]["suspend"] is True and "ttlSecondsAfterFinished" not in kept["spec"], kept["spec"]
    assert eventually(lambda: [c for c in kept["status"].get("conditions") or []
                               if c["type"] == "Suspended" and c["status"] == "True"], "the Job controller suspends it")
    assert eventually(lambda: not [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") ==
                                   "stop-kept-1" and p["status"].get("phase") in ("Pending", "Running")],
                      "its running pod is terminated")


SLOW_KUBELET = 3.0
"""Seconds the kubelet of a pod takes to answer the read of its last lines that a stop makes."""


@pytest.mark.slow
def test_a_retained_trial_stopped_because_the_experiment_ended_keeps_its_job_suspended(kube: KubeStub, tmp_path):
    """The trial shows its stop as soon as its verdict is stored; its Job is suspended once the
    last lines of its log are read, which a slow kubelet holds up: the study is waited for until
    then, not closed in between (a service stopped then leaves the suspend to the next one's tick)."""
    definition = experiment("end-kept", parallel=2)
    spec = definition["spec"]
    del spec["earlyStopping"]
    spec["objective"]["goal"] = 2.0
    spec["trialTemplate"]["retain"] = True
    held = threading.Event()

    def read(pod: str, query: dict[str, str]) -> None:
        """The stop's read of trial 1's last lines (not a scan of its running log, which asks
        for bytes) answered late."""
        if pod.startswith("end-kept-1-") and "tailLines" in query:
            held.set()
            time.sleep(SLOW_KUBELET)

    kube.on_log_read = read
    try:
        study, trials = run_on_cluster(kube.url, tmp_path, NAMESPACE, definition)
    finally:
        kube.on_log_read = None
    assert held.is_set(), "the stop read the trial's last lines"
    assert (study["status"], [t["state"] for t in trials]) == ("completed", ["COMPLETE", "STOPPED"]), trials
    assert trials[1]["reason"].startswith("stopped: the study ended before the trial did"), trials[1]
    assert not [name for _, name, _ in kube.deleted if name.startswith("end-kept")], "no Job of the study is deleted"
    assert kube.jobs[(NAMESPACE, "end-kept-1")]["spec"]["suspend"] is True


DIVERGING = """
import os, time
good = os.environ["KATUNA_TRIAL"] == "0"
for epoch in (1, 2, 3):
    print(f"Epoch {epoch}: loss={1.0 + 1 / epoch if good else float('nan')}", flush=True)
    time.sleep(0.1 if good or epoch == 1 else 20)
"""
"""Trial 0 ends at once; every later one prints ``loss=nan`` from its first epoch, and after its
second report it would run for 20 seconds, then fail on its NaN objective."""


@pytest.mark.slow
def test_a_cluster_trial_whose_log_reports_only_nan_is_stopped_at_the_judged_report(kube: KubeStub, tmp_path):
    """NaN read from the running log reaches the rule, which stops the trial as Optuna's median
    pruner would: pruned, it is no failure and never runs its last epoch."""
    study, trials = run_on_cluster(kube.url, tmp_path, NAMESPACE, experiment("nan-early", DIVERGING))
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    assert trials[1]["reason"] == "pruned at step 2 by the medianstop rule (loss=nan)"
    deleted = [(namespace, name) for namespace, name, _ in kube.deleted if name.startswith("nan-early")]
    assert sorted(deleted) == [(NAMESPACE, "nan-early-0"), (NAMESPACE, "nan-early-1")], \
        "the pruned trial's Job deleted while it ran; the complete one's once its result was stored"


# How far a log has been read: the cursor, and the reports past it.

POD = "pod-uid"
T1, T2 = "2026-11-30T10:00:00.123456789Z", "2026-11-30T10:00:01.5Z"


def launch(metrics_file: str | None = None, fmt: str = "text") -> TrialLaunch:
    return TrialLaunch("s", "uid", 0, 1, "s-0", [], {}, ".", None, progress=Progress("loss", (), fmt),
                       metrics_file=metrics_file)


def read(lines: list[str], cursor: Cursor | None = None, pod: str = POD, **kwargs) -> list[tuple[int, float]]:
    return [(r.step, r.value) for r in reports(launch(**kwargs), RunningLog(pod, lines), cursor)]


def test_each_report_is_a_step_counted_from_the_start_of_the_log_whatever_the_read_starts_at():
    log = [f"{T1} Epoch 1: loss=4\n", f"{T1} Epoch 2: loss=3\n", f"{T2} other output\n", f"{T2} loss=2\n"]
    first = reports(launch(), RunningLog(POD, log[:2]), None)
    assert [(r.step, r.value) for r in first] == [(1, 4.0), (2, 3.0)]
    after_one = first[0].cursor
    assert (after_one.at, after_one.same, after_one.reports) == (written_at(T1), 1, 1)
    assert read(log, after_one) == [(2, 3.0), (3, 2.0)], \
        "a read from the second the cursor is in skips what it covers, lines written at the same time included"
    assert read(log, first[1].cursor) == [(3, 2.0)]
    assert read(log[2:], first[1].cursor) == [(3, 2.0)], "a read starting past the cursor's second counts on"
    assert read(log, Cursor("an-earlier-pod", written_at(T2) or 0, 2, 9)) == [(1, 4.0), (2, 3.0), (3, 2.0)], \
        "a replaced pod's log is counted from its start, as Katib's collector in the new pod counts"


def test_a_named_step_is_the_step_and_a_report_naming_none_after_it_is_none():
    log = [f"{T1} epoch=5 loss=4\n", f"{T1} loss=1\n", f"{T2} epoch=6 loss=3\n"]
    found = reports(launch(), RunningLog(POD, log), None)
    assert [(r.step, r.value) for r in found] == [(5, 4.0), (6, 3.0)]
    assert found[0].cursor.named
    assert read(log[1:], Cursor(POD, 0, 0, 1, named=True)) == [(6, 3.0)], "the count's state goes on with the cursor"


def test_only_complete_stamped_lines_count_and_nan_or_an_infinity_is_a_report_for_the_pruner():
    assert read([f"{T1} {'x' * 10}\n", "loss=7 (the rest of an overlong line)\n", f"{T2} loss=2"]) == [], \
        "a piece of an overlong line is no line; a line cut by the read's limit waits for the next read"
    found = read([f'{T1} {{"loss": NaN}}\n', f'{T1} {{"loss": "-inf"}}\n', f'{T2} {{"loss": "high"}}\n',
                  f'{T2} {{"loss": 2}}\n'], fmt="json")
    assert [step for step, _ in found] == [1, 2, 3] and math.isnan(found[0][1]), found
    assert found[1:] == [(2, -math.inf), (3, 2.0)], "a value that is no number is no report, and no step"
    assert read([f"{T1} Epoch 1: loss=inf\n"]) == [(1, math.inf)]
    files = [f"{T1} loss=9\n", f"{T1} katuna-metrics-file| loss=3\n"]
    assert read(files, metrics_file="/var/log/katib/metrics.log") == [(1, 3.0)], "the File collector's lines only"
    assert read([f'{T1} {{"loss": 0.5}}\n'], fmt="json") == [(1, 0.5)]


def test_times_and_stored_cursors_are_read_strictly():
    assert written_at("2026-11-30T10:00:00Z") == written_at("2026-11-30T10:00:00.000000000Z")
    assert written_at("2026-11-30T12:00:00.5+02:00") == written_at("2026-11-30T10:00:00.500000000Z")
    assert [written_at(bad) for bad in ("loss=1", "2026-11-30T10:00:00", "2026-11-30T10:00:00.1234567890Z")] == [None] * 3
    cursor = Cursor(POD, 5, 1, 2, True)
    assert Cursor.from_dict(cursor.to_dict()) == cursor
    assert [Cursor.from_dict(bad) for bad in (None, "x", {**cursor.to_dict(), "at": -1},
                                              {**cursor.to_dict(), "reports": True})] == [None] * 4
    assert cursor.passes(None) and cursor.passes(Cursor("other", 9, 9, 9)) and not cursor.passes(cursor)
    assert not Cursor(POD, 5, 0, 9).passes(cursor), "an earlier position never replaces a later one"



def test_the_read_interval_is_a_positive_number_of_seconds():
    assert Settings.from_env({}).k8s_progress_seconds == 10.0
    assert Settings.from_env({"KATUNA_K8S_PROGRESS_SECONDS": "2.5"}).k8s_progress_seconds == 2.5
    with pytest.raises(ValueError, match="^KATUNA_K8S_PROGRESS_SECONDS: expected a positive number of seconds, got 0.0$"):
        Settings.from_env({"KATUNA_K8S_PROGRESS_SECONDS": "0"})


# The loopback API serves a running container's log as the kubelet does.

def core(kube: KubeStub) -> client.CoreV1Api:
    configuration = client.Configuration()
    configuration.host = kube.url
    return client.CoreV1Api(client.ApiClient(configuration))


def running_pod(kube: KubeStub, name: str, program: str, printed: int) -> str:
    """The name of the pod of a Job running ``program`` once its log holds ``printed`` whole lines
    (a line's text and its newline may reach the runtime in two writes)."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "python",
                                                          "command": [sys.executable, "-c", program]}]}}}}
    configuration = client.Configuration()
    configuration.host = kube.url
    client.BatchV1Api(client.ApiClient(configuration)).create_namespaced_job(NAMESPACE, job)

    def printing() -> str | None:
        with kube.lock:
            pods = [p for (ns, _), p in kube.pods.items() if ns == NAMESPACE and p["metadata"]["labels"]["job-name"] == name]
            if pods and pods[0]["status"].get("phase") == "Running" and len(kube.kubelets.log_of(pods[0])) >= printed:
                return pods[0]["metadata"]["name"]
        return None
    return eventually(printing, f"Job {name}'s pod to print {printed} lines", timeout=30)


@pytest.mark.slow
def test_a_running_containers_log_is_read_with_the_kubelets_options(kube: KubeStub):
    pod = running_pod(kube, "log-options", "import time\nprint('one\\ntwo\\nthree', flush=True)\ntime.sleep(60)", printed=3)
    api = core(kube)
    assert api.read_namespaced_pod_log(pod, NAMESPACE) == "one\ntwo\nthree\n", "readable while the container runs"
    stamped = api.read_namespaced_pod_log(pod, NAMESPACE, timestamps=True).splitlines()
    assert [line.partition(" ")[2] for line in stamped] == ["one", "two", "three"]
    assert all(written_at(line.partition(" ")[0]) for line in stamped), "each line behind its RFC 3339 time"
    assert api.read_namespaced_pod_log(pod, NAMESPACE, tail_lines=2) == "two\nthree\n"
    assert api.read_namespaced_pod_log(pod, NAMESPACE, limit_bytes=6) == "one\ntw", "cut mid-line at the limit"
    assert api.read_namespaced_pod_log(pod, NAMESPACE, since_seconds=60, tail_lines=1) == "three\n"
    for options, field in (({"limit_bytes": 0}, "limitBytes"), ({"tail_lines": -1}, "tailLines"),
                           ({"since_seconds": 0}, "sinceSeconds")):
        with pytest.raises(client.ApiException) as refused:
            api.read_namespaced_pod_log(pod, NAMESPACE, **options)
        assert refused.value.status == 422, options
        assert [c["field"] for c in json.loads(refused.value.body)["details"]["causes"]] == [field]


# The scan: stateless, idempotent, bounded.

WAITING = """
import os, time
print("Epoch 1: loss=5", flush=True)
print("Epoch 2: loss=4", flush=True)
flag = os.path.join(FLAGS, "go-" + os.environ["KATUNA_TRIAL"])
while not os.path.exists(flag):
    time.sleep(0.05)
print("Epoch 3: loss=3", flush=True)
time.sleep(60)
"""
"""Two reports, a third once the test says so, then nothing for a minute."""


def scanned(deps: Deps, record: StudyRecord, count: int, window: int = 0) -> list[Event]:
    """What a scan sends once it sends ``count`` events (trials start, then print)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = progress_scan.scan(deps, [record], window)
        if len(events) >= count:
            return events
        time.sleep(0.1)
    raise AssertionError(f"the scan found {events}, not {count} reports")


def steps(events: list[Event]) -> list[tuple[int, int, float]]:
    return sorted((e.data["trial"], e.data["step"], e.data["value"]) for e in events)


@pytest.mark.slow
def test_the_scan_sends_each_report_once_handled_and_reads_a_slice_of_the_logs_at_a_time(
        kube: KubeStub, tmp_path, monkeypatch: pytest.MonkeyPatch):
    deps, record = started(kube, tmp_path, experiment(
        "scanned", WAITING.replace("FLAGS", repr(str(tmp_path))), parallel=2, min_trials=3))
    dispatcher = Dispatcher(deps)
    journal = deps.store.optuna_version("scanned")
    try:
        first = scanned(deps, record, 4)
        assert steps(first) == [(0, 1, 5.0), (0, 2, 4.0), (1, 1, 5.0), (1, 2, 4.0)]
        assert deps.store.log_read("scanned", 0).kept_of(1).cursors, "what the scans read was kept"
        assert deps.store.optuna_version("scanned") == journal, "in katuna's store alone: Optuna's journal is not written"
        assert [e.id for e in progress_scan.scan(deps, [record])] == [e.id for e in first], \
            "a scan before the reports are handled sends the same events again"
        ticked = [e for e in reconcile.handle(pool_check(), deps) if e.type == TRIAL_PROGRESS]
        assert [e.id for e in ticked] == [e.id for e in first], "the reconcile tick (a PingSource's, on Knative) scans"
        for event in [*first, *reversed(first)]:
            dispatcher.deliver(event)
        assert progress_scan.scan(deps, [record]) == [], "what was handled is not sent again"
        assert deps.store.log_read("scanned", 0).cursor.reports == 2, "the handled reports moved the stored cursor"
        (tmp_path / "go-0").touch()
        assert steps(scanned(deps, record, 1)) == [(0, 3, 3.0)], "the count goes on where the stored cursor stopped"
        monkeypatch.setattr(progress_scan, "MAX_READS", 1)
        (tmp_path / "go-1").touch()
        scanned(deps, record, 1, window=1)
        assert steps(progress_scan.scan(deps, [record], 0)) == [(0, 3, 3.0)], "one log a scan: trial 0's"
        assert steps(progress_scan.scan(deps, [record], 1)) == [(1, 3, 3.0)], "the next window's slice: trial 1's"
    finally:
        stop(deps, record)


FLOOD = "import time\nfor i in range(5000): print(f'loss={5000 - i}')\ntime.sleep(60)"


@pytest.mark.slow
def test_a_log_read_holding_thousands_of_reports_sends_the_first_and_the_latest(kube: KubeStub, tmp_path):
    """A trial printing 5,000 reports at once, judged at its 150th: the scan sends the first 99,
    every one up to the rule's judged step, and the latest, not 5,000 events ahead of every other
    study's."""
    deps, record = started(kube, tmp_path, experiment("flood", FLOOD, start_step=150))
    try:
        sent = eventually(lambda: (found := progress_scan.scan(deps, [record])) and found[-1].data["step"] == 5000
                          and found, "a scan that read the whole flood", timeout=30)
        assert [step for _, step, _ in steps(sent)] == [*range(1, 151), 5000]
        assert all(event.data["counted"] is True for event in sent), "each report is the next step"
    finally:
        stop(deps, record)


PRINTS_NAN = "import time\nprint('loss=1', flush=True)\nprint('loss=nan', flush=True)\ntime.sleep(60)"


def strict_json(text: bytes) -> object:
    """``text`` read as JSON is: ``NaN`` and ``Infinity`` are no JSON."""
    def refuse(word: str) -> None:
        raise ValueError(f"{word} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_nan_read_from_a_log_travels_as_json_and_prunes_the_trial_once_however_often_handled(
        kube: KubeStub, tmp_path):
    definition = study_definition(name="log-nan", maxTrials=1, parallelism=1,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 10.0}})
    definition["trialTemplate"].update(image="python:3.12",
                                       command=[sys.executable, "-c", PRINTS_NAN, "${trialParameters.x}"])
    deps, record = started(kube, tmp_path, definition)
    try:
        sent = [cloudevents_http.to_http(event) for event in scanned(deps, record, 2)]
    finally:
        stop(deps, record)
    assert [strict_json(body)["value"] for _, body in sent] == [1, "nan"], "NaN by name: JSON has no number for it"
    dispatcher = Dispatcher(deps)

    def handled(events: list[tuple[dict[str, str], bytes]]) -> tuple[object, ...]:
        for headers, body in events:
            dispatcher.deliver(cloudevents_http.from_http(headers, body))
        return deps.store.get_trial("log-nan", 0), deps.store.optuna_study("log-nan", ["minimize"]).trials[0]

    trial, frozen = handled(sent)
    assert (trial.state, trial.reason) == ("PRUNED", "pruned at step 2 by the threshold rule (loss=nan)")
    assert handled([*reversed(sent), *sent]) == (trial, frozen), "handled again, in any order, nothing changes"
    assert frozen.state.name == "PRUNED" and frozen.intermediate_values[1] == 1.0
    assert math.isnan(frozen.intermediate_values[2])


def started(kube: KubeStub, tmp_path: Path, experiment: dict) -> tuple[Deps, StudyRecord]:
    """The handlers' ports over a fresh store and the loopback API, with the Experiment's first
    trials launched."""
    executor = KubernetesExecutor(Cluster(namespace=NAMESPACE), api_client(kube.url))
    deps = Deps(SqliteStore(tmp_path / "katuna.db"), executor, time.time, logs=executor, workdir=str(tmp_path))
    spec, definition = load_study(yaml.safe_dump(experiment))
    record, _ = store_study(deps, spec, definition)
    pending = [study_created(record.name, record.uid)]
    while pending:
        pending = [emitted for event in pending for emitted in Dispatcher(deps).deliver(event)]
    return deps, record


def stop(deps: Deps, record: StudyRecord) -> None:
    for trial in deps.store.trials(record.name):
        deps.executor.stop(trial_launch(record, trial))


MASTER = "import time\nprint('loss=5', flush=True)\nprint('loss=4', flush=True)\ntime.sleep(60)"
WORKER = "import time\nprint('loss=999', flush=True)\ntime.sleep(60)"


@pytest.mark.slow
def test_a_pytorchjobs_progress_is_read_from_its_master_pod(kube: KubeStub, tmp_path):
    """Any kind of trial: the log read is the primary container's in the pod the kind's
    primary labels select (a PyTorchJob's master), not a worker's."""
    kube.install_operator("training-operator")
    replica = {"replicas": 1, "restartPolicy": "OnFailure"}
    torch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        role: {**replica, "template": {"spec": {"containers": [
            {"name": "pytorch", "image": "python:3.12",
             "command": [sys.executable, "-c", program, "--lr=${trialParameters.learningRate}"]}]}}}
        for role, program in (("Master", MASTER), ("Worker", WORKER))}}}
    definition = experiment("torch-progress", parallel=1, min_trials=3)
    definition["spec"]["trialTemplate"].update(primaryContainerName="pytorch", trialSpec=torch)
    deps, record = started(kube, tmp_path, definition)
    try:
        assert steps(scanned(deps, record, 2)) == [(0, 1, 5.0), (0, 2, 4.0)]
    finally:
        stop(deps, record)
