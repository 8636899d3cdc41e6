"""Early stopping with the File collector, as Katib's collector gives it: the metrics file is
read while the trial writes it, each report of the objective a step, and the rule stops a bad
trial while it runs. Locally the file is followed as it grows; on a cluster its lines come from
the wrapped container's log (``tests/test_katib_early_stopping_cluster.py`` reads those)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from http_helpers import run_on_cluster
from kube_stub import KubeStub

from functions.adapters import local_marks
from functions.adapters.file_follow import follow
from functions.core.formats import load_study
from functions.core.launch import Progress, TrialLaunch
from functions.core.log_cursor import RunningLog, reports

NAMESPACE = "file-stopping"
KUBE_NAMESPACES = (NAMESPACE,)

TRIAL = """
import json, os, sys, time
path, bad = sys.argv[1], sys.argv[2]
good = os.environ["KATUNA_TRIAL"] != bad
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "a") as metrics:
    print("training; the metrics go to", path, flush=True)
    for epoch in (1, 2, 3):
        line = json.dumps({"timestamp": time.time(), "loss": str((1.0 if good else 10.0) + 1 / epoch)})
        metrics.write(line[:5]); metrics.flush(); time.sleep(0.05)
        metrics.write(line[5:] + "\\n"); metrics.flush()
        time.sleep(60 if not good and epoch == 2 else 0.05)
"""
"""Writes a JSON line per epoch to the file it is given, half a line at a time, with no step key
(as ``cloudml-hypertune`` does). The trial numbered by its second argument is far worse than
the others, and after its second report it would wait a minute; the others end at once."""


def experiment(workdir: Path, bad: int = 1) -> str:
    """A Katib Experiment with the File collector in JSON format and the median stopping rule,
    judged at the second report; each trial writes its own file, named by the trial. Trial
    ``bad`` is the bad one, and the last."""
    path = f"{workdir}/${{trialSpec.Name}}/metrics.json"
    return yaml.safe_dump({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "file-stop"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "metricsCollectorSpec": {"source": {"fileSystemPath": {"path": path, "kind": "File", "format": "JSON"}},
                                     "collector": {"kind": "File"}},
            "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 1, "maxTrialCount": bad + 1,
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "2"}]},
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "learningRate", "reference": "lr"},
                                    {"name": "trialName", "reference": "${trialSpec.Name}"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "training-container", "image": "python:3.12",
                                    "command": [sys.executable, "-c", TRIAL,
                                                f"{workdir}/${{trialParameters.trialName}}/metrics.json", str(bad),
                                                "--lr=${trialParameters.learningRate}"]}]}}}}}}})


@pytest.mark.timeout(120)
def test_a_local_trial_writing_a_metrics_file_is_stopped_by_katibs_rule_while_it_runs(embedded, tmp_path: Path):
    """``katuna run`` asks for trial 1 ahead, while trial 0 runs: judged as launched once trial 0
    completed, it has trial 0's early average as its rule, as Katib would."""
    spec, definition = load_study(experiment(tmp_path))
    embedded.submit(spec, definition, tmp_path)
    assert embedded.run("file-stop").status == "completed"
    trials = sorted(embedded.store.trials("file-stop"), key=lambda t: t.number)
    assert [t.state for t in trials] == ["COMPLETE", "PRUNED"], [(t.state, t.reason) for t in trials]
    assert trials[1].reason == "pruned at step 2 by the medianstop rule (loss=10.5)"
    assert trials[1].metrics == {"loss": 10.5}, "the metrics written before the stop, read from the file"
    assert trials[0].metrics == {"loss": 1 + 1 / 3}


@pytest.mark.slow
def test_a_cluster_trial_writing_a_metrics_file_is_stopped_by_katibs_rule_while_it_runs(kube: KubeStub, tmp_path):
    """The wrapper copies the file's lines to the pod log, where the scan reads them."""
    definition = yaml.safe_load(experiment(tmp_path))
    definition["metadata"]["namespace"] = NAMESPACE
    study, trials = run_on_cluster(kube.url, tmp_path, NAMESPACE, definition, timeout=90)
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    assert trials[1]["reason"] == "pruned at step 2 by the medianstop rule (loss=10.5)"
    assert trials[1]["metrics"] == {"loss": 10.5}, "the file's lines written before the stop"


def test_a_cluster_trials_progress_is_read_from_the_copied_file_lines_in_the_files_format():
    launch = TrialLaunch("s", "uid", 0, 1, "s-0", [], {}, ".", None, progress=Progress("loss", (), "json"),
                         metrics_file="/katib/metrics.json")
    log = ['2026-11-30T10:00:00Z {"loss": 9}\n', '2026-11-30T10:00:00Z katuna-metrics-file| {"loss": 3}\n',
           '2026-11-30T10:00:01Z katuna-metrics-file| {"loss": "2.5", "trial": "0"}\n']
    assert [(r.step, r.value) for r in reports(launch, RunningLog("pod", log), None)] == [(1, 3.0), (2, 2.5)], \
        "the trial's own output is no report; each report in the file is a step"


# The follower: the file's new complete lines while its writer runs, then the rest.

class Writer:
    """A file written a piece at a time, each piece once the follower has looked at the file:
    ``ended()`` is the follower's look, and it says the writer ended once every piece is out."""

    def __init__(self, path: Path, pieces: list[bytes | None]) -> None:
        self.path = path
        self.pieces = pieces
        """Bytes to append, or None to truncate the file (a writer starting it anew)."""

    def ended(self) -> bool:
        if not self.pieces:
            return True
        piece = self.pieces.pop(0)
        with self.path.open("ab" if piece is not None else "wb") as handle:
            handle.write(piece or b"")
        return False


def followed(path: Path, writer: Writer) -> list[str]:
    return list(follow(path, writer.ended, poll=0))


def test_only_complete_lines_are_given_while_the_writer_runs_and_the_last_one_once_it_ended(tmp_path: Path):
    path = tmp_path / "metrics.json"
    lines: Iterator[str] = follow(path, Writer(path, [b'{"loss": ', b'1}\n{"lo', b'ss": 2}\r\n', b'{"loss": 3}']).ended,
                                  poll=0)
    assert list(lines) == ['{"loss": 1}\n', '{"loss": 2}\n', '{"loss": 3}']


def test_a_file_that_appears_late_is_read_from_its_first_line_and_one_that_never_does_gives_nothing(tmp_path: Path):
    path = tmp_path / "later" / "metrics.log"
    looks: list[int] = []

    def ended() -> bool:
        looks.append(1)
        if len(looks) == 3:
            path.parent.mkdir()
            path.write_text("loss=4\nloss=3\n")
        return len(looks) > 3

    assert list(follow(path, ended, poll=0)) == ["loss=4\n", "loss=3\n"]
    assert list(follow(tmp_path / "never", lambda: True, poll=0)) == []


def test_a_truncated_or_replaced_file_is_read_again_from_its_start(tmp_path: Path):
    path = tmp_path / "metrics.log"
    assert followed(path, Writer(path, [b"loss=5\nloss=4\nlo", None, b"loss=9\n"])) == \
        ["loss=5\n", "loss=4\n", "lo\n", "loss=9\n"], "a line cut short by the truncation stays apart"
    other = tmp_path / "other.log"
    looks = [0]

    def replaced() -> bool:
        looks[0] += 1
        if looks[0] == 1:
            path.write_text("loss=1\n")
        elif looks[0] == 2:
            other.write_text("loss=2\nloss=3\nloss=4\n")
            os.replace(other, path)
        return looks[0] > 2

    assert list(follow(path, replaced, poll=0)) == ["loss=1\n", "\n", "loss=2\n", "loss=3\n", "loss=4\n"]


def test_the_follower_starts_past_what_the_file_held_before_the_attempt_unless_it_is_written_anew(
        tmp_path: Path):
    """The lines an earlier trial left in a shared file are no reports of this attempt's: the
    follower starts at its mark (:mod:`functions.adapters.local_marks`), and from the start of a
    file written anew (truncated, here, under the follower's eyes)."""
    path = tmp_path / "metrics.log"
    path.write_text("loss=9\nloss=8\n")
    mark = local_marks.taken(TrialLaunch("s", "uid", 0, 1, "s-0", [], {}, str(tmp_path), None,
                                         metrics_file="metrics.log"))
    done = threading.Event()
    writes = iter([lambda: path.write_text("loss=9\nloss=8\nloss=1\n"), lambda: path.write_text("loss=2\n"),
                   done.set])

    def sleep(seconds: float) -> None:
        next(writes)()

    assert list(follow(path, done.is_set, poll=0, sleep=sleep, mark=mark)) == ["loss=1\n", "\n", "loss=2\n"]


def test_the_follower_waits_between_looks_while_the_writer_runs(tmp_path: Path):
    path = tmp_path / "metrics.log"
    done = threading.Event()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            path.write_text("loss=1\n")
            done.set()

    assert list(follow(path, done.is_set, poll=0.2, sleep=sleep)) == ["loss=1\n"]
    assert waits == [0.2, 0.2, 0.2]
