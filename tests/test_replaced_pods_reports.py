"""A trial's pod disrupted inside its Job while the trial posts its own progress reports
(``functions.reporter``), through the real service, client, stand-in API server and kubelet: the
Job's replacement pod runs the trial again from its start, in the same attempt, and its reports
at the steps the lost pod had reported are its own (each names its pod, which the downward API
gives the container), judged by the study's rule, not dropped as the lost pod's sent again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service, Sink, free_port
from kube_stub import KubeStub
from test_kube_standin_simulated import pods_of
from waiting import eventually

from functions import reporter
from functions.adapters.sqlite_store import SqliteStore
from functions.core.event_data import data_problems
from functions.core.events import TRIAL_PROGRESS

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("replaced",)

REPORTS = """
import os, sys, time
from pathlib import Path
from functions.reporter import flush, report
folder, later = Path(sys.argv[1]), [float(value) for value in sys.argv[2].split(",")]
try:
    (folder / "first").open("x").close()
except FileExistsError:
    for step, value in enumerate(later, 1):
        assert report(step, loss=value), "katuna refused a report"
    assert flush(30), "a report was not accepted"
    print(f"epoch={len(later)} loss={later[-1]}", "loss=0.5", sep="\\n", flush=True)
    sys.exit(0)
assert report(1, loss=1.0) and report(2, loss=0.9) and flush(30), "the first pod's reports were not accepted"
(folder / "posted").write_text(os.environ.get("KATUNA_POD_UID", "none"))
time.sleep(600)
"""
"""The first pod posts two epochs (loss 1.0, 0.9), then runs on until its node goes; the Job's
replacement posts the epochs ``argv[2]`` lists from the first, prints its last and ends."""


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    running = Service(tmp_path_factory.mktemp("replaced"), workers=1, port=port, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="replaced",
                      KATUNA_REPORT_URL=f"http://127.0.0.1:{port}/")
    yield running
    running.close()


def run_with_a_lost_pod(service: Service, kube: KubeStub, name: str, later: str, folder: Path) -> tuple[dict, bool]:
    """A study of one trial with a threshold rule (a loss above 3 prunes it) whose first pod
    posts two epochs and is then lost to its node's shutdown; the trial as it ends, and whether
    the first pod's container was told its pod's uid."""
    definition = study_definition(name=name, maxTrials=1, parallelism=1,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 3.0}})
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["trialTemplate"]["command"] = [sys.executable, "-c", REPORTS, str(folder), later,
                                              "${trialParameters.x}"]
    service.submit(definition)
    lost = eventually(lambda: (folder / "posted").exists() and (folder / "posted").read_text(),
                      "the first pod's reports accepted", timeout=60)
    [pod] = pods_of(kube, f"{name}-0")
    kube.preempt_pod("replaced", pod["metadata"]["name"], "TerminationByKubelet")
    service.wait_for(name, timeout=60)
    [trial] = service.json("GET", f"/studies/{name}/trials")[1]
    return trial, pod["metadata"]["uid"] == lost


def intermediate(service: Service, name: str) -> dict[int, float]:
    store = SqliteStore(service.workdir / "katuna.db")
    try:
        storage = store.optuna_stream(name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), 0)
        return dict(storage.get_trial(trial_id).intermediate_values)
    finally:
        store.close()


def test_a_replacements_posted_report_at_a_step_the_lost_pod_reported_is_judged_by_the_rule(
        service: Service, kube: KubeStub, tmp_path: Path):
    trial, told = run_with_a_lost_pod(service, kube, "posted-pruned", "5.0", tmp_path)
    assert (trial["state"], trial["attempt"]) == ("PRUNED", 1), trial
    assert trial["reason"] == "pruned at step 1 by the threshold rule (loss=5)", trial
    assert intermediate(service, "posted-pruned") == {1: 5.0, 2: 5.0}, \
        "the replacement's value, carried over the step only the lost pod reached"
    assert told, "the container was told its pod's uid (KATUNA_POD_UID)"


def test_a_replacement_that_completes_leaves_its_own_posted_curve_in_optuna(service: Service, kube: KubeStub,
                                                                           tmp_path: Path):
    trial, _ = run_with_a_lost_pod(service, kube, "posted-curve", "1.1,0.8,0.7", tmp_path)
    assert (trial["state"], trial["attempt"]) == ("COMPLETE", 1), trial
    assert intermediate(service, "posted-curve") == {1: 1.1, 2: 0.8, 3: 0.7}, "the replacement's curve alone"


def test_a_report_posted_on_a_cluster_names_its_pod_in_its_data_and_its_id(monkeypatch: pytest.MonkeyPatch):
    """The pod's uid (``KATUNA_POD_UID``) is in the report's data and its id, so two pods' reports
    of a step are two events; without it the report is as before. A pod no uid could be is
    refused, naming the field."""
    sink = Sink()
    uid = "5f0c2d1e-8a47-4b7e-9c33-1f2e3d4c5b6a"
    try:
        for variable, value in {"KATUNA_REPORT_URL": sink.url, "KATUNA_OBJECTIVE": "loss", "KATUNA_STUDY": "s",
                                "KATUNA_STUDY_UID": "u", "KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "1",
                                "KATUNA_REPORT_TOKEN": "t", "KATUNA_POD_UID": uid}.items():
            monkeypatch.setenv(variable, value)
        assert reporter.report(1, loss=0.5)
        monkeypatch.delenv("KATUNA_POD_UID")
        assert reporter.report(1, loss=0.5) and reporter.flush()
        (podded, body), (plain, old) = sink.wait(2)
    finally:
        sink.close()
    data = json.loads(body)
    assert (podded["ce-id"], data["pod"]) == (f"u/0/1/{uid}/progress/1", uid)
    assert (plain["ce-id"], "pod" in json.loads(old)) == ("u/0/1/progress/1", False)
    assert data_problems(TRIAL_PROGRESS, data) == data_problems(TRIAL_PROGRESS, json.loads(old)) == []
    assert data_problems(TRIAL_PROGRESS, {**data, "pod": "x" * 129}) == [
        f"data.pod: expected a pod's uid (its metadata.uid): a non-empty string of at most 128 characters, "
        f"got {'x' * 129!r:.80}"]
