"""The kubelet rotates a running container's log at ``containerLogMaxSize`` (10 Mi by default)
and the API serves only the current file: a chatty cluster trial loses its first lines, with
any best value printed among them. The stand-in rotates as the kubelet does (here at 4 KiB);
katuna says in the trial's reason that the observations before the rotation are lost: for
certain where it read the running log before (early stopping), as likely where the log begins
long after the container started while the trial printed fast enough to fill a file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml
from http_helpers import Service
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.logs import Capture, serve
from kube_stub import KubeStub
from test_kube_standin_simulated import finished

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.launch import TrialLaunch, trial_launch
from functions.core.log_cursor import NANOS, Cursor, RunningLog
from functions.core.log_keep import Kept, line_parser, take, unread
from functions.core.log_rotation import LogStart, rotated
from functions.core.records import StudyRecord, TrialRecord, Unreported
from functions.core.validate import parse_study

NAMESPACE = "log-rotation"
KUBE_NAMESPACES = (NAMESPACE,)
SMALL = 4096

FLOOD = "".join(f"step={i} debug output of a chatty trial, padded {'.' * 40}\n" for i in range(200))
"""About 16 KiB of lines that report nothing: four files of :data:`SMALL`."""


def test_the_api_serves_only_the_lines_since_the_last_rotation_and_its_options_apply_to_them(tmp_path):
    output = tmp_path / "container.log"
    capture = Capture(output, max_size=SMALL)
    output.write_text("loss=0.1\n" + FLOOD)
    capture.read()
    assert capture.rotations == 0 and capture.lines[0].text == "loss=0.1", "rotated only when the manager looks"
    with output.open("a") as out:
        out.write("loss=0.5\nend\n")
    capture.read()
    assert capture.rotations == 1
    assert serve(capture.lines, {}, 0.0) == b"loss=0.5\nend\n"
    assert serve(capture.lines, {"tailLines": "5"}, 0.0) == b"loss=0.5\nend\n", "the tail of the current file"
    assert serve(capture.lines, {"limitBytes": "4"}, 0.0) == b"loss"
    with output.open("a") as out:
        out.write(FLOOD)
    capture.read(final=True)
    assert capture.rotations == 1 and len(capture.lines) == 202, "an ended container's log is not rotated"


def test_a_log_made_to_wait_for_its_reader_is_rotated_only_once_a_read_reached_its_end(tmp_path):
    """The stand-in's opt-in for tests of a reader racing the rotation (a kubelet waits for no reader)."""
    output = tmp_path / "container.log"
    rotations: list[int] = []
    capture = Capture(output, max_size=SMALL, waits_for_reader=True, on_rotation=lambda: rotations.append(1))
    output.write_text("loss=0.1\n" + FLOOD)
    capture.read()
    capture.read()
    assert capture.rotations == 0, "not read yet"
    capture.served({"timestamps": "true", "limitBytes": "100"}, time.time())
    capture.read()
    assert capture.rotations == 0, "a read cut short before the last line"
    capture.served({"timestamps": "true"}, time.time())
    capture.read()
    assert capture.rotations == 1 and rotations == [1] and capture.lines == []


def test_a_log_that_begins_long_after_its_chatty_container_started_is_reported_rotated():
    """On a simulated clock: the trial prints its best loss at once, floods its log two minutes
    later, prints a worse loss and floods on until it ends. Its log now begins at the worse loss."""
    clock = SimulatedClock()
    kube = KubeStub(clock=clock)
    kube.kubelets.log_max_size = SMALL
    pieces = ((1.0, "loss=0.1\n"), (120.0, FLOOD), (125.0, "loss=0.5\n" + FLOOD * 4))
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(130.0, "done\n", pieces=pieces))
    executor = KubernetesExecutor(Cluster(namespace="katuna"), api_client(kube.url), clock=clock.time)
    launch = TrialLaunch("chatty", "0123456789ab", 0, 1, "chatty-0", ["train"], {}, ".", timeout=None,
                         image="python:3.12")
    try:
        executor.launch(launch)
        kube.run_until(lambda: finished(kube, "chatty-0"))
        output = list(executor.output(launch))
        assert output[0] == "loss=0.5\n" and len(output) == 802, "the best loss went with the rotated file"
        start = executor.log_start(launch)
        assert start is not None and start.first is not None
        assert start.first / 1e9 - start.started == pytest.approx(125.0)
        reason = rotated(start, None, sum(map(len, output)), 1, clock.time())
        assert reason is not None and reason.startswith("the log the Kubernetes API served begins 125s after the "
                                                        "trial's container started")
        assert "the kubelet has likely rotated its earlier lines away" in reason
        assert rotated(start, None, 1000, 1, clock.time()) is None, (
            "a trial printing 1000 bytes in 5 s could not have filled 10 Mi in 125 s: it was only quiet at first")
    finally:
        kube.close()


def wait_for(signal: Path) -> str:
    """A trial's code that waits until ``signal`` exists (:func:`run_on_cluster` creates it), or
    fails after a minute."""
    return f"""
deadline = time.monotonic() + 60
while not os.path.exists({str(signal)!r}):
    if time.monotonic() > deadline:
        sys.exit("no {signal.name} after a minute")
    time.sleep(0.05)
"""


def chatty(signals: Path) -> str:
    """Prints its best loss, waits while katuna reads its running log, floods the log past
    :data:`SMALL` (the stand-in rotates it once katuna has read it all), then, once the log was
    rotated, prints a worse loss and ends once katuna has read it."""
    return f"""
import os, sys, time
print("loss=0.1", flush=True)
time.sleep(1.5)
print({FLOOD!r}, flush=True)
{wait_for(signals / "rotated")}
print("loss=0.5", flush=True)
{wait_for(signals / "read")}
"""


def chatty_study(name: str, script: str, **extra: object) -> dict:
    return {
        "name": name, "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["acc"],
                                    "strategies": {"loss": "min", "acc": "latest"}},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "algorithm": {"name": "random", "seed": 1}, "parallelism": 1, "maxTrials": 1,
        "trialTemplate": {"image": "python:3.12", "command": [sys.executable, "-c", script, "--x=${trialParameters.x}"]},
        **extra,
    }


def run_on_cluster(kube: KubeStub, tmp_path: Path, definition: dict) -> tuple[dict, list[str]]:
    """The one trial of ``definition`` run by ``katuna serve`` on the stand-in, which rotates logs
    at :data:`SMALL`, and the pods whose log it rotated; its running logs read every 0.3 s.
    However late katuna reads, the stand-in waits for it: it rotates a log only once the API
    served a read that reached the log's end; it creates ``tmp_path / "rotated"`` when it rotates
    a log and ``tmp_path / "read"`` when a read reached the trial's last line, a worse loss
    (the trial's signals, :func:`wait_for`)."""
    rotations: list[str] = []

    def rotated(pod: str) -> None:
        rotations.append(pod)
        (tmp_path / "rotated").touch()

    def read(pod: str, last: str) -> None:
        if last.startswith("loss=0.5"):
            (tmp_path / "read").touch()

    kubelets = kube.kubelets
    kubelets.log_max_size, kubelets.log_look_seconds, kubelets.log_rotation_waits_for_reader = SMALL, 1.0, True
    kubelets.on_log_rotation, kubelets.on_log_read = rotated, read
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE=NAMESPACE, KATUNA_K8S_PROGRESS_SECONDS="0.3", KATUNA_K8S_KEEP_SECONDS="0.3")
    try:
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        service.wait_for(definition["name"], timeout=60)
        return service.json("GET", f"/studies/{definition['name']}/trials/0")[1], rotations
    finally:
        kubelets.log_max_size, kubelets.log_rotation_waits_for_reader = 10 * 1024 * 1024, False
        kubelets.on_log_rotation, kubelets.on_log_read = None, None
        service.close()


REPORTS = "".join(f"loss=0.3 acc=0.6 line {i} of a chatty trial, padded {'.' * 40}\n" for i in range(200))
"""About 16 KiB of reports: enough for the stand-in to rotate the log at :data:`SMALL`."""


def keeps(signals: Path) -> str:
    """Prints its best loss, then enough reports for the log to rotate, then, once the log was
    rotated, a worse loss and the last acc, and ends once katuna has read them."""
    return f"""
import os, sys, time
print("loss=0.1 acc=0.5", flush=True)
time.sleep(1.5)
print({REPORTS!r}, end="", flush=True)
{wait_for(signals / "rotated")}
print("loss=0.5 acc=0.9", flush=True)
{wait_for(signals / "read")}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_chatty_trial_keeps_every_observation_though_its_log_was_rotated(kube: KubeStub, tmp_path):
    trial, rotations = run_on_cluster(kube, tmp_path, chatty_study("kept", keeps(tmp_path)))
    assert trial["state"] == "COMPLETE", trial["reason"]
    assert len(rotations) == 1, "the stand-in rotated the trial's log once"
    assert trial["metrics"] == {"loss": 0.1, "acc": 0.9}, "min over the whole run; latest is the last printed"
    assert trial["values"] == [0.1]
    observations = trial["observations"]
    assert [o["metric"] for o in observations].count("loss") == 202, "each line printed counted once"
    assert [o["metric"] for o in observations].count("acc") == 202
    assert [o["value"] for o in observations if o["metric"] == "loss"][:2] == [0.1, 0.3]
    assert observations[-1] == {"attempt": 1, "metric": "acc", "value": 0.9, "step": None, "timestamp": None}
    assert not trial["reason"], "nothing was lost"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_trial_with_early_stopping_whose_log_was_rotated_keeps_what_was_read(kube: KubeStub, tmp_path):
    definition = chatty_study("chatty", chatty(tmp_path), earlyStopping={"algorithm": "median",
                                                                "settings": {"n_startup_trials": 5}})
    definition["objective"] = {"metric": "loss", "direction": "minimize"}
    trial, rotations = run_on_cluster(kube, tmp_path, definition)
    assert len(rotations) == 1, "the stand-in rotated the trial's log once"
    assert trial["state"] == "COMPLETE" and trial["metrics"] == {"loss": 0.1}, "the best loss, read before the rotation"
    assert [o["value"] for o in trial["observations"]] == [0.1, 0.5]
    assert not trial["reason"], trial["reason"]


def stamped(at: int, text: str) -> str:
    seconds, nanos = divmod(at, NANOS)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{nanos:09d}Z {text}\n"


def test_lines_read_twice_count_once_though_lines_share_a_time():
    """A scan takes the complete lines of its read; the next read starts a little early and the
    final read from the start: only the lines past what was kept count again."""
    spec = parse_study(chatty_study("shared", "pass"))
    launch = trial_launch(StudyRecord(spec, {}, ".", "0123456789ab"), TrialRecord("shared", 0, {"x": 0.5}))
    parse = line_parser(spec, launch)
    at = 1_700_000_000 * NANOS
    first = [stamped(at, "loss=0.1"), stamped(at, "loss=0.2"), stamped(at + 5, "loss=0.3"), "2023"]
    taken = take(RunningLog("pod", first), parse, "loss", None)
    assert taken is not None and [o.value for o in taken.observations] == [0.1, 0.2, 0.3]
    assert (taken.cursor.at, taken.cursor.same, taken.cursor.reports) == (at + 5, 1, 3), "the cut line is read on"
    kept = Kept(1).on(taken.cursor, {})
    whole = [stamped(at, "loss=0.1"), stamped(at, "loss=0.2"), stamped(at + 5, "loss=0.3"), stamped(at + 5, "loss=0.4"),
             stamped(at + 9, "acc=1 and no line break").rstrip("\n")]
    again = take(RunningLog("pod", whole), parse, "loss", kept.of("pod"))
    assert again is not None and [o.value for o in again.observations] == [0.4], "a line of the same time, after"
    assert [(text, new) for text, new in unread([("pod", iter(whole))], kept)] == [
        ("loss=0.1", False), ("loss=0.2", False), ("loss=0.3", False), ("loss=0.4", True),
        ("acc=1 and no line break", True)]
    assert all(new for _, new in unread([("other", iter(whole))], kept)), "another pod's log was never kept"


def test_the_rotation_notice_appears_only_when_lines_went_unread():
    at = 1_700_000_000 * NANOS
    kept = Kept(1, (Cursor("pod", at, 1, 1),), {})
    assert rotated(LogStart("pod", 1.0, None, at), None, 100, 1, 2.0, kept) is None, "the log holds the last line read"
    reason = rotated(LogStart("pod", 1.0, None, at + 3 * NANOS), None, 100, 1, 2.0, kept)
    assert reason is not None and reason.startswith("the kubelet rotated this trial's log before katuna read all of it")
    assert "the observations printed in between are lost" in reason and "KATUNA_K8S_KEEP_SECONDS" in reason


def unreporting(signals: Path) -> str:
    """Prints another metric than the study's objective, then enough for the log to rotate, and
    ends once it was rotated, printing nothing more: the log the API serves at its end is empty."""
    return f"""
import os, sys, time
print("acc=0.5", flush=True)
print({FLOOD!r}, flush=True)
{wait_for(signals / "rotated")}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_trial_whose_log_rotated_and_that_never_reported_its_objective_counts_as_metrics_unavailable(
        kube: KubeStub, tmp_path):
    """Marked as never reporting its objective, as a trial whose log kept its lines is (Katib
    counts it MetricsUnavailable, not Failed); with no metrics it printed instead, since the
    objective's reports may be among the lines lost: no sign of a misspelt name."""
    definition = chatty_study("unreported", unreporting(tmp_path))
    definition["objective"] = {"metric": "loss", "direction": "minimize"}
    trial, rotations = run_on_cluster(kube, tmp_path, definition)
    assert len(rotations) == 1 and trial["state"] == "FAIL", trial
    assert trial["reason"].startswith("the kubelet rotated this trial's log") and (
        "metrics unavailable: objective 'loss' never reported" in trial["reason"]), trial["reason"]
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert store.get_trial("unreported", 0).unreported == Unreported(("loss",))
        assert store.count_metrics_unavailable("unreported") == 1
    finally:
        store.close()
