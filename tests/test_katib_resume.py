"""Katib's resume policies: an Experiment with ``resumePolicy: LongRunning`` or ``FromVolume``
that ended by reaching ``maxTrialCount`` restarts when its budget is raised, as Katib restarts
it, from its Experiment resource on a cluster and from its file with ``katuna run``; every other
ended Experiment, or edit, is refused as Katib's webhook refuses it."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import run_file
from http_helpers import Service, run_katuna
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_cli import here
from test_katib import experiment
from test_katib_defaults import as_katib_stores
from test_resources import katib_resource, send, wait_trials

from functions.core.events import study_completed
from functions.core.formats import load_study
from functions.handlers import stop

TEAM = "team"
PLURAL = "experiments.kubeflow.org"
USER = "alice"
"""A Katib user holding ``katuna-katib-edit`` in ``team``: who edits an Experiment's budget."""


# katuna run: the same file, its budget raised


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def katuna(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_katuna(*args, cwd=tmp_path)


def trials_of(tmp_path: Path, name: str) -> list[dict]:
    return json.loads(here("trials", name, "--json", cwd=tmp_path).stdout)


def resumable(name: str, policy: str = "LongRunning", **spec) -> dict:
    doc = experiment(resumePolicy=policy, maxTrialCount=2, parallelTrialCount=1, **spec)
    doc["metadata"]["name"] = name
    return doc


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["LongRunning", "FromVolume"])
def test_katuna_run_of_the_file_with_a_raised_budget_continues_the_ended_experiment(tmp_path: Path, policy: str):
    doc = resumable("resumed", policy)
    assert run_file(write(tmp_path / "experiment.yaml", doc)).status == "completed"
    first = trials_of(tmp_path, "resumed")
    assert [t["number"] for t in first] == [0, 1]

    doc["spec"].update(maxTrialCount=4, parallelTrialCount=2)
    write(tmp_path / "experiment.yaml", doc)
    again = katuna(tmp_path, "run", "experiment.yaml")
    assert again.returncode == 0, again.stdout + again.stderr
    trials = trials_of(tmp_path, "resumed")
    assert [t["number"] for t in trials] == [0, 1, 2, 3] and all(t["state"] == "COMPLETE" for t in trials)
    assert trials[:2] == first, "the trials of the first run stay as they were"
    shown = json.loads(here("show", "resumed", "--json", cwd=tmp_path).stdout)
    assert (shown["status"], shown["maxTrials"]) == ("completed", 4)

    once_more = katuna(tmp_path, "run", "experiment.yaml")
    assert once_more.returncode == 0 and "Nothing to run" in once_more.stdout
    assert len(trials_of(tmp_path, "resumed")) == 4


REFUSED = {
    "never": (lambda d: d["spec"].update(resumePolicy="Never", maxTrialCount=4), "spec.resumePolicy"),
    "not-above-its-trials": (lambda d: d["spec"].update(maxTrialCount=2, parallelTrialCount=2),
                             "spec.maxTrialCount must be more than the 2 trials it has"),
    "another-field": (lambda d: d["spec"]["algorithm"].update(algorithmName="tpe") or d["spec"].update(maxTrialCount=4),
                      "spec.algorithm cannot change"),
}


@pytest.mark.slow
@pytest.mark.parametrize("change,why", REFUSED.values(), ids=REFUSED.keys())
def test_katuna_run_refuses_what_katib_does_not_restart(tmp_path: Path, change, why: str):
    doc = resumable("kept", "Never" if why == "spec.resumePolicy" else "LongRunning")
    assert run_file(write(tmp_path / "experiment.yaml", doc)).status == "completed"
    edited = copy.deepcopy(doc)
    change(edited)
    write(tmp_path / "experiment.yaml", edited)
    refused = katuna(tmp_path, "run", "experiment.yaml")
    assert refused.returncode == 2
    message = " ".join(refused.stderr.split())
    assert "does not restart" in message and why in message
    assert len(trials_of(tmp_path, "kept")) == 2
    assert json.loads(here("show", "kept", "--json", cwd=tmp_path).stdout)["maxTrials"] == 2


@pytest.mark.slow
def test_an_experiment_ended_by_its_goal_does_not_restart(tmp_path: Path):
    doc = resumable("reached")
    doc["spec"]["objective"]["goal"] = 1000.0
    assert run_file(write(tmp_path / "experiment.yaml", doc)).status == "completed"
    doc["spec"]["maxTrialCount"] = 4
    write(tmp_path / "experiment.yaml", doc)
    refused = katuna(tmp_path, "run", "experiment.yaml")
    assert refused.returncode == 2 and "ended by reaching spec.maxTrialCount" in " ".join(refused.stderr.split())
    assert len(trials_of(tmp_path, "reached")) == 1


@pytest.mark.slow
def test_the_end_of_the_first_run_never_ends_the_restarted_one(embedded, tmp_path: Path):
    """A ``study.completed`` of the first run delivered late (a Trigger retrying it) changes
    nothing; the second run's end is a fact of its own, with its own id."""
    doc = resumable("late")
    embedded.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    ended = embedded.run("late")
    assert (ended.status, ended.restarts) == ("completed", 0)
    first_end = study_completed("late", ended.uid, ended.status, ended.reason)

    doc["spec"]["maxTrialCount"] = 3
    restarted = embedded.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    assert (restarted.status, restarted.restarts, restarted.uid) == ("running", 1, ended.uid)
    assert stop.handle(first_end, embedded.deps) == []
    assert embedded.store.get_study("late").status == "running"

    finished = embedded.run("late")
    assert (finished.status, finished.restarts) == ("completed", 1)
    assert [t.number for t in embedded.store.trials("late")] == [0, 1, 2]
    second_end = study_completed("late", finished.uid, finished.status, finished.reason, finished.restarts)
    assert second_end.id != first_end.id and second_end.data["restarts"] == 1


# on a cluster: the Experiment resource edited


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("katib-resume"), workers=1, KATUNA_K8S_API=kube.url,
                      KATUNA_KATIB_API="true")
    yield running
    running.close()


def katib_experiment(name: str, **spec) -> dict:
    """Katib's own Experiment (``kubeflow.org``), one trial at a time, two trials at first."""
    doc = katib_resource(name, **{"maxTrialCount": 2, "parallelTrialCount": 1, **spec})
    doc["apiVersion"] = "kubeflow.org/v1beta1"
    return doc


def status_of(kube: KubeStub, name: str) -> dict:
    return kube.get_resource(PLURAL, TEAM, name)[1].get("status") or {}


def wait_phase(kube: KubeStub, service: Service, name: str, phase: str, progress: str) -> dict:
    service.wait_for(name, statuses=("completed",) if phase == "Succeeded" else ("running",))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = status_of(kube, name)
        if status.get("phase") == phase and status.get("progress") == progress:
            return status
        time.sleep(0.05)
    raise AssertionError(f"{name} never got to {phase} {progress}: {status}")


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status.get("conditions", [])}


def apply_and_send(kube: KubeStub, service: Service, doc: dict, change: str) -> tuple[dict, list[str]]:
    obj = kube.apply(copy.deepcopy(doc))
    return obj, send(service, change, obj, path="/functions/resource")


@pytest.mark.slow
def test_a_raised_budget_restarts_the_experiment_as_katib_does(kube: KubeStub, service: Service):
    doc = katib_experiment("rs-long", resumePolicy="LongRunning")
    added, _ = apply_and_send(kube, service, doc, "add")
    ended = wait_phase(kube, service, "rs-long", "Succeeded", "2/2")
    first = service.json("GET", "/studies/rs-long/trials")[1]

    doc["spec"].update(maxTrialCount=4, parallelTrialCount=2)
    edited, emitted = apply_and_send(kube, service, doc, "update")
    assert emitted == ["dev.katuna.trial.suggested"] * 2
    restarting = status_of(kube, "rs-long")
    assert restarting["phase"] == "Running" and restarting["observedGeneration"] == 2
    found = conditions(restarting)
    assert found["Restarting"]["status"] == "True" and found["Restarting"]["reason"] == "ExperimentRestarting"
    assert found["Running"]["status"] == "True" and "Succeeded" not in found and "completionTime" not in restarting
    assert send(service, "update", edited, path="/functions/resource") == [], "each generation is handled once"
    assert send(service, "add", added, path="/functions/resource") == [], "and an old event changes nothing"

    done = wait_phase(kube, service, "rs-long", "Succeeded", "4/4")
    assert [c["type"] for c in done["conditions"]] == ["Created", "Restarting", "Running", "Succeeded"]
    assert conditions(done)["Succeeded"]["reason"] == "ExperimentMaxTrialsReached"
    assert done["completionTime"] >= ended["completionTime"] and done["trialsSucceeded"] == 4
    trials = service.json("GET", "/studies/rs-long/trials")[1]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert [t["params"] for t in trials[:2]] == [t["params"] for t in first]
    written = {name for (plural, ns, name) in kube.resources if plural == "trials.kubeflow.org" and ns == TEAM}
    assert {f"rs-long-{i}" for i in range(4)} <= written, "the restarted run's Trials are written too"


REFUSED_EDITS = {
    "never": ({"resumePolicy": "Never"}, {"maxTrialCount": 3}, "spec.resumePolicy LongRunning or FromVolume"),
    "default-never": ({}, {"maxTrialCount": 3}, "spec.resumePolicy LongRunning or FromVolume"),
    "budget-not-raised": ({"resumePolicy": "FromVolume"}, {"maxFailedTrialCount": 1},
                          "spec.maxTrialCount must be more than the 2 trials it has to restart it, got 2"),
}


@pytest.mark.slow
@pytest.mark.parametrize("spec,edit,why", REFUSED_EDITS.values(), ids=REFUSED_EDITS.keys())
def test_an_edit_katib_refuses_leaves_the_ended_experiment_as_it_was(kube: KubeStub, service: Service,
                                                                       spec: dict, edit: dict, why: str):
    name = f"rs-{len(spec)}-{next(iter(edit))[:8].lower()}"
    doc = katib_experiment(name, **spec)
    apply_and_send(kube, service, doc, "add")
    wait_phase(kube, service, name, "Succeeded", "2/2")
    doc["spec"].update(edit)
    _, emitted = apply_and_send(kube, service, doc, "update")
    assert emitted == []
    status = status_of(kube, name)
    assert status["phase"] == "Succeeded" and status["observedGeneration"] == 2
    refusal = conditions(status)["UpdateRefused"]
    assert refusal["reason"] == "SpecChangeRefused" and why in refusal["message"]
    assert status["conditions"][-1]["type"] == "Succeeded", "kubectl get experiments shows the last condition"
    assert "Restarting" not in conditions(status)
    assert len(service.json("GET", f"/studies/{name}/trials")[1]) == 2


@pytest.mark.slow
def test_posting_the_experiment_with_a_raised_budget_restarts_it_as_katuna_run_does(service: Service):
    doc = resumable("posted")
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(doc), {"Content-Type": "application/yaml"})
    assert status == 201, body
    assert service.wait_for("posted")["status"] == "completed"
    first = service.json("GET", "/studies/posted/trials")[1]

    doc["spec"].update(maxTrialCount=4, parallelTrialCount=2)
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(doc), {"Content-Type": "application/yaml"})
    assert status == 200 and json.loads(body)["status"] == "running", body
    study = service.wait_for("posted")
    assert (study["status"], study["counts"]["complete"], study["maxTrials"]) == ("completed", 4, 4)
    assert service.json("GET", "/studies/posted/trials")[1][:2] == first, "the first run's trials stay as they were"
    doc["spec"]["resumePolicy"] = "Never"
    doc["spec"]["maxTrialCount"] = 6
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(doc), {"Content-Type": "application/yaml"})
    assert status == 409 and "does not restart" in body.decode(), body


def read_back(kube: KubeStub, name: str) -> dict:
    """The Experiment as ``kubectl get experiment -o yaml`` gives it back from Katib: its spec
    with the defaults Katib's webhook wrote in, its metadata and status as the API holds them."""
    return as_katib_stores(kube.get_resource(PLURAL, TEAM, name)[1])


@pytest.mark.slow
def test_an_experiment_applied_again_with_katibs_defaults_written_out_is_no_change(kube: KubeStub,
                                                                                   service: Service):
    """Katib's webhook compares the specs once both are defaulted: the copy is taken, running or
    ended (not refused as a change of fields that cannot change, nor as a budget not above the
    trials made), and a real change of such a field is still refused."""
    apply_and_send(kube, service, katib_experiment("rd-run", mode="hang", maxTrialCount=1, maxFailedTrialCount=1), "add")
    wait_trials(service, "rd-run", 1)
    copied, emitted = apply_and_send(kube, service, read_back(kube, "rd-run"), "update")
    assert copied["metadata"]["generation"] == 2 and emitted == []
    status = status_of(kube, "rd-run")
    assert (status["phase"], status["observedGeneration"]) == ("Running", 2)
    assert "UpdateRefused" not in conditions(status), conditions(status).get("UpdateRefused")
    changed = read_back(kube, "rd-run")
    changed["spec"]["objective"]["metricStrategies"][0]["value"] = "max"
    apply_and_send(kube, service, changed, "update")
    refusal = conditions(status_of(kube, "rd-run"))["UpdateRefused"]
    assert "spec.objective cannot change while the study runs" in refusal["message"], refusal
    apply_and_send(kube, service, read_back(kube, "rd-run") | {"spec": copied["spec"]}, "update")
    status = status_of(kube, "rd-run")
    assert status["observedGeneration"] == 4 and "UpdateRefused" not in conditions(status), \
        "the spec as it runs again: the refusal of the change is no longer the resource's"
    delete_and_send(kube, service, copied)

    apply_and_send(kube, service, katib_experiment("rd-end"), "add")
    wait_phase(kube, service, "rd-end", "Succeeded", "2/2")
    _, emitted = apply_and_send(kube, service, read_back(kube, "rd-end"), "update")
    status = status_of(kube, "rd-end")
    assert emitted == [] and (status["phase"], status["observedGeneration"]) == ("Succeeded", 2)
    assert "UpdateRefused" not in conditions(status), conditions(status).get("UpdateRefused")
    assert service.json("GET", "/studies/rd-end")[1]["status"] == "completed"


@pytest.mark.slow
def test_posting_the_experiment_again_with_katibs_defaults_written_out_is_the_stored_study(service: Service):
    doc = resumable("posted-copy")
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(doc), {"Content-Type": "application/yaml"})
    assert status == 201, body
    assert service.wait_for("posted-copy")["status"] == "completed"
    copied = as_katib_stores(doc)
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(copied), {"Content-Type": "application/yaml"})
    assert status == 200 and json.loads(body)["status"] == "completed", body
    copied["spec"]["maxTrialCount"] = 3
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(copied), {"Content-Type": "application/yaml"})
    assert status == 200 and json.loads(body)["status"] == "running", body
    assert service.wait_for("posted-copy")["counts"]["complete"] == 3


# on a cluster: the budget edited as Katib's SDK edits it


BUDGET = {"max_trial_count": "maxTrialCount", "parallel_trial_count": "parallelTrialCount",
          "max_failed_trial_count": "maxFailedTrialCount"}
"""``KatibClient.edit_experiment_budget``'s arguments, by the spec field each sets."""


def edit_budget(kube: KubeStub, name: str, **budget: int) -> dict:
    """The requests ``KatibClient.edit_experiment_budget`` makes, as its user: read the
    Experiment, set the new budget in its spec, and send the whole object back as a merge patch
    (metadata with the resourceVersion read, and the status, which the API ignores). A status
    written between the two is a 409 conflict, as on any cluster, and the edit is made again."""
    api = client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))
    for _ in range(20):
        experiment = api.get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", name)
        experiment["spec"].update({BUDGET[arg]: value for arg, value in budget.items()})
        try:
            return api.patch_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", name, experiment)
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError(f"the budget of {name} could not be edited for conflicts")


def edit_and_send(kube: KubeStub, service: Service, name: str, **budget: int) -> tuple[dict, list[str]]:
    edited = edit_budget(kube, name, **budget)
    return edited, send(service, "update", edited, path="/functions/resource")


def delete_and_send(kube: KubeStub, service: Service, obj: dict) -> None:
    kube.delete("Experiment", TEAM, obj["metadata"]["name"], api_version="kubeflow.org/v1beta1")
    send(service, "delete", obj, path="/functions/resource")
    service.wait_for(obj["metadata"]["name"], statuses=("stopped",))


@pytest.mark.slow
def test_the_sdks_budget_edit_restarts_a_succeeded_long_running_experiment(kube: KubeStub, service: Service):
    added, _ = apply_and_send(kube, service, katib_experiment("eb-long", resumePolicy="LongRunning"), "add")
    ended = wait_phase(kube, service, "eb-long", "Succeeded", "2/2")

    edited, emitted = edit_and_send(kube, service, "eb-long", max_trial_count=4)
    assert edited["metadata"]["generation"] == 2 and edited["status"]["phase"] == "Succeeded", \
        "the patch changes the spec; the status it carried is the subresource's"
    assert emitted == ["dev.katuna.trial.suggested"]
    assert send(service, "update", edited, path="/functions/resource") == [], "a redelivered edit changes nothing"
    done = wait_phase(kube, service, "eb-long", "Succeeded", "4/4")
    assert done["observedGeneration"] == 2 and done["trials"] == 4 and done["completionTime"] >= ended["completionTime"]
    assert conditions(done)["Restarting"]["reason"] == "ExperimentRestarting"
    assert [t["number"] for t in service.json("GET", "/studies/eb-long/trials")[1]] == [0, 1, 2, 3]
    assert send(service, "update", edited, path="/functions/resource") == [], "nor once the restarted run ended"
    assert len(service.json("GET", "/studies/eb-long/trials")[1]) == 4 and added


@pytest.mark.slow
def test_the_sdks_budget_edit_of_a_running_experiment_takes_effect_at_once(kube: KubeStub, service: Service):
    """As Katib's controller reconciles a running Experiment with its new budget: more trials at
    a time, and more trials in all."""
    added, _ = apply_and_send(kube, service, katib_experiment("eb-run", mode="hang", maxTrialCount=3), "add")
    wait_trials(service, "eb-run", 1)
    edited, emitted = edit_and_send(kube, service, "eb-run", max_trial_count=5, parallel_trial_count=3)
    assert emitted == ["dev.katuna.trial.suggested"] * 2
    assert send(service, "update", edited, path="/functions/resource") == [], "a redelivered edit changes nothing"
    trials = wait_trials(service, "eb-run", 3)
    assert len(trials) == 3, "three at a time, as the new parallelTrialCount says"
    assert service.json("GET", "/studies/eb-run")[1]["maxTrials"] == 5
    status = status_of(kube, "eb-run")
    assert status["observedGeneration"] == 2 and "UpdateRefused" not in conditions(status)
    delete_and_send(kube, service, added)


@pytest.mark.slow
def test_a_budget_katib_refuses_for_a_running_experiment_leaves_it_running_as_it_was(kube: KubeStub,
                                                                                     service: Service):
    """Katib's webhook refuses a ``maxTrialCount`` not above the trials an Experiment has, running
    or not (the SDK's call fails, the Experiment runs on unchanged); katuna, which sees the edit
    once the API took it, refuses it in the status and runs on as before."""
    added, _ = apply_and_send(kube, service, katib_experiment("eb-fewer", mode="hang", maxTrialCount=5,
                                                              parallelTrialCount=3), "add")
    wait_trials(service, "eb-fewer", 3)
    edited, emitted = edit_and_send(kube, service, "eb-fewer", max_trial_count=3)
    assert emitted == []
    status = status_of(kube, "eb-fewer")
    assert status["phase"] == "Running" and status["observedGeneration"] == 2
    refusal = conditions(status)["UpdateRefused"]
    assert refusal["reason"] == "SpecChangeRefused"
    assert "spec.maxTrialCount must be more than the 3 trials it has, got 3" in refusal["message"]
    assert service.json("GET", "/studies/eb-fewer")[1]["maxTrials"] == 5
    assert send(service, "update", edited, path="/functions/resource") == []
    assert conditions(status_of(kube, "eb-fewer"))["UpdateRefused"] == refusal, "a redelivered edit changes nothing"
    delete_and_send(kube, service, added)


@pytest.mark.slow
def test_the_sdks_budget_edit_of_an_experiment_katib_does_not_restart_is_refused(kube: KubeStub, service: Service):
    apply_and_send(kube, service, katib_experiment("eb-never"), "add")
    wait_phase(kube, service, "eb-never", "Succeeded", "2/2")
    edited, emitted = edit_and_send(kube, service, "eb-never", max_trial_count=4)
    assert emitted == []
    status = status_of(kube, "eb-never")
    assert status["phase"] == "Succeeded" and status["observedGeneration"] == 2
    assert "spec.resumePolicy LongRunning or FromVolume" in conditions(status)["UpdateRefused"]["message"]
    assert send(service, "update", edited, path="/functions/resource") == []
    study = service.json("GET", "/studies/eb-never")[1]
    assert (study["status"], study["maxTrials"], study["counts"]["complete"]) == ("completed", 2, 2)


@pytest.mark.slow
def test_a_raised_budget_past_the_history_limit_is_refused_in_the_status_and_the_log(kube: KubeStub,
                                                                                    tmp_path: Path):
    """The restart adds trials to the study's Optuna history, which every worker serving it loads
    whole: one that would take it past ``KATUNA_MAX_HISTORY`` is refused where the Experiment's user looks (its status) and
    its operator (the log), and the ended study is left as it was."""
    bounded = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_KATIB_API="true", KATUNA_MAX_HISTORY="3")
    try:
        apply_and_send(kube, bounded, katib_experiment("rs-history", resumePolicy="LongRunning"), "add")
        wait_phase(kube, bounded, "rs-history", "Succeeded", "2/2")
        edited, emitted = edit_and_send(kube, bounded, "rs-history", max_trial_count=4)
        assert emitted == []
        status = status_of(kube, "rs-history")
        assert status["phase"] == "Succeeded" and status["observedGeneration"] == 2
        assert "Restarting" not in conditions(status)
        refusal = conditions(status)["UpdateRefused"]
        why = ("the study does not restart: spec.maxTrialCount: a study's Optuna history holds at most 3 trials "
               "(set by KATUNA_MAX_HISTORY), and this study, restarted with maxTrials 4 after 2 trials, "
               "may add 2 (maxTrials) where 1 fit")
        assert refusal["reason"] == "SpecChangeRefused" and why in refusal["message"], refusal
        study = bounded.json("GET", "/studies/rs-history")[1]
        assert (study["status"], study["maxTrials"], study["counts"]["complete"]) == ("completed", 2, 2)
        assert send(bounded, "update", edited, path="/functions/resource") == []
    finally:
        bounded.close()
    log = " ".join((tmp_path / "serve.log").read_text().split())
    assert f"Experiment {TEAM}/rs-history (kubeflow.org): generation 2 is refused: {why}" in log, log
