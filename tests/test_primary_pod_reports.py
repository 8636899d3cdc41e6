"""A trial whose workload runs the same code in several pods, each posting its own progress
reports (``functions.reporter``), through the real service, client, stand-in API server, Job
controller and kubelet: only the primary pods' reports are the trial's (``primaryPodLabels``), as
only their logs are read and as Katib collects the metrics of its primary pods alone. The other
pods are told they are not primary by their own labels (the downward API) and send nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from http_helpers import Service, Sink, free_port
from kube_stub import KubeStub
from test_replaced_pods_reports import intermediate

from functions import reporter
from functions.core import report_token
from functions.core.job import render_job
from functions.core.launch import TrialLaunch

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("ranks",)

RANKS = """
import os, sys, time
from pathlib import Path
from functions.reporter import flush, report
folder, index = Path(sys.argv[1]), os.environ["INDEX"]
if index == "0":
    assert report(1, loss=1.0) and flush(30), "the primary pod's report was not accepted"
    (folder / "primary").write_text("posted")
    while not (folder / "other").exists():
        time.sleep(0.05)
else:
    while not (folder / "primary").exists():
        time.sleep(0.05)
    sent = report(1, loss=5.0)
    flush(30)
    (folder / "other").write_text(str(sent))
print(f"epoch=1 loss={1.0 if index == '0' else 5.0}", flush=True)
"""
"""Pod 0 posts loss 1.0 at epoch 1; then pod 1 posts 5.0 at the same epoch, and each prints its
value and ends."""

INDEX = "batch.kubernetes.io/job-completion-index"


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    running = Service(tmp_path_factory.mktemp("ranks"), workers=1, port=port, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="ranks",
                      KATUNA_REPORT_URL=f"http://127.0.0.1:{port}/")
    yield running
    running.close()


def ranked_study(name: str, folder: Path) -> dict:
    """A study of one trial whose ``trialSpec`` is an Indexed Job of two pods, pod 0 primary,
    with a threshold rule (a loss above 3 prunes the trial)."""
    container = {"name": "trainer", "image": "python:3.12",
                 "command": [sys.executable, "-c", RANKS, str(folder), "${trialParameters.x}"],
                 "env": [{"name": "INDEX", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{INDEX}']"}}}]}
    return {"name": name, "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
            "algorithm": {"name": "random", "seed": 1}, "parallelism": 1, "maxTrials": 1,
            "earlyStopping": {"algorithm": "threshold", "settings": {"upper": 3.0}},
            "trialTemplate": {"primaryPodLabels": {INDEX: "0"}, "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job", "spec": {
                    "completionMode": "Indexed", "completions": 2, "parallelism": 2,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}}}


def test_only_the_primary_pods_posted_reports_judge_a_trial_of_several_pods(service: Service, tmp_path: Path):
    service.submit(ranked_study("ranks", tmp_path))
    service.wait_for("ranks", timeout=60)
    [trial] = service.json("GET", "/studies/ranks/trials")[1]
    assert (trial["state"], trial["value"]) == ("COMPLETE", 1.0), trial
    assert (tmp_path / "other").read_text() == "False", "the other pod sent no report"
    assert intermediate(service, "ranks") == {1: 1.0}, "the primary pod's curve alone"


def test_a_reporting_container_is_told_the_primary_pods_labels_and_its_own_pods(monkeypatch: pytest.MonkeyPatch):
    """The labels a primary pod has, and the pod's own values of them from the downward API, in
    the keys' order; a pod whose values differ sends nothing, and without those labels (a trial
    of one pod, a local trial) every report goes."""
    trainjob = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {"trainer": {
        "image": "python:3.12", "command": ["train"], "numNodes": 2}}}
    launch = TrialLaunch(study="s", uid="u", number=0, attempt=1, job_name="s-0", argv=[],
                         env={"KATUNA_REPORT_TOKEN": "t"}, working_dir=".", timeout=None, params={},
                         trial_spec=trainjob, primary_container="node")
    env = render_job(launch)["spec"]["trainer"]["env"]
    assert [e for e in env if e["name"].startswith(("KATUNA_PRIMARY", "KATUNA_POD_LABEL"))] == [
        {"name": "KATUNA_PRIMARY_POD_LABELS",
         "value": '{"batch.kubernetes.io/job-completion-index": "0", "jobset.sigs.k8s.io/replicatedjob-name": "node"}'},
        {"name": "KATUNA_POD_LABEL_1", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "KATUNA_POD_LABEL_2", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.labels['jobset.sigs.k8s.io/replicatedjob-name']"}}}]
    assert report_token.env_entries({"KATUNA_STUDY": "s"}, "s-0", {INDEX: "0"}) == [
        {"name": "KATUNA_STUDY", "value": "s"}], "no labels without the token: nothing is reported"
    sink = Sink()
    try:
        for variable, value in {"KATUNA_REPORT_URL": sink.url, "KATUNA_OBJECTIVE": "loss", "KATUNA_STUDY": "s",
                                "KATUNA_STUDY_UID": "u", "KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "1",
                                "KATUNA_REPORT_TOKEN": "t", "KATUNA_PRIMARY_POD_LABELS": '{"b": "node", "a": "0"}',
                                "KATUNA_POD_LABEL_1": "1", "KATUNA_POD_LABEL_2": "node"}.items():
            monkeypatch.setenv(variable, value)
        assert not reporter.report(1, loss=9.0), "node 1 is no primary pod"
        monkeypatch.setenv("KATUNA_POD_LABEL_1", "0")
        assert reporter.report(2, loss=0.5), "node 0 is"
        monkeypatch.delenv("KATUNA_PRIMARY_POD_LABELS")
        monkeypatch.setenv("KATUNA_POD_LABEL_1", "1")
        assert reporter.report(3, loss=0.4) and reporter.flush(), "no primary pods named: every pod reports"
        sent = sink.wait(2)
    finally:
        sink.close()
    assert [json.loads(body)["step"] for _, body in sent] == [2, 3]
