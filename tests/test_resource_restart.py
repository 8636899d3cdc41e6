"""A study that came from a cluster resource (a Katib Experiment, a katuna Study) restarts only
through that resource: posting its document with the budget raised is refused (409,
``restart_through_resource``) saying how to restart it, and the study stays as it was, whether
the resource is still there or was deleted (a deleted Experiment applied again starts a new
study in its place)."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import app_client
from test_katib import experiment

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.formats import load_definition
from functions.core.records import COMPLETED
from functions.core.resources import Origin, Ref
from functions.handlers.deps import Deps
from functions.handlers.submit import store_study

NAME = "followed"


def ended_experiment_study(db: Path, tmp_path: Path) -> dict:
    """A stored study of an Experiment (``resumePolicy: LongRunning``) that ended by reaching its
    ``maxTrialCount``, as one that came from the cluster: its document."""
    doc = experiment(resumePolicy="LongRunning", maxTrialCount=2, parallelTrialCount=1)
    doc["metadata"]["name"] = NAME
    store = SqliteStore(db)
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    try:
        origin = Origin(Ref("Experiment", "kubeflow", NAME, "kubeflow.org/v1beta1"), "uid-e", 1)
        store_study(Deps(store, executor, lambda: 1.0), *load_definition(doc), origin.to_dict())
        store.update_study(NAME, status=COMPLETED, reason="max trials reached (2)", completed_at=2.0)
    finally:
        executor.shutdown()
        store.close()
    return doc


def test_posting_a_clusters_experiment_with_a_raised_budget_is_refused_naming_the_resource(tmp_path: Path):
    db = tmp_path / "katuna.db"
    doc = ended_experiment_study(db, tmp_path)
    doc["spec"]["maxTrialCount"] = 4
    with app_client(db) as client:
        answer = client.post("/studies", data=yaml.safe_dump(doc), content_type="application/yaml")
        body = answer.get_json()
        assert answer.status_code == 409, body
        assert body["error"] == "restart_through_resource", body
        assert "Experiment 'followed' in namespace 'kubeflow'" in body["message"]
        assert "kubectl edit experiments.kubeflow.org followed -n kubeflow" in body["message"]
        assert "was deleted, apply it again" in body["message"]
        study = client.get(f"/studies/{NAME}").get_json()
        assert (study["status"], study["maxTrials"]) == (COMPLETED, 2), "the study stays as it was"
