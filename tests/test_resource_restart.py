"""A study that came from a cluster resource (a Katib Experiment, a katuna Study) restarts only
through that resource: posting its document with the budget raised is refused (409,
``restart_through_resource``) saying how to restart it, and the study stays as it was, whether
the resource is still there or was deleted (a deleted Experiment applied again starts a new
study in its place)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import app_client
from test_katib import experiment

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
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



@pytest.mark.parametrize("edit", [{"maxTrialCount": 4}, {"objective": {"type": "minimize", "objectiveMetricName": "loss"}}],
                         ids=["budget raised", "another field changed"])
def test_a_refusal_names_only_deletes_that_delete_the_study(tmp_path: Path, edit: dict):
    """A refusal's way out, where the resource was deleted, is a delete that works: ``DELETE
    /studies/{name}`` of the service watching the cluster, which deletes it once the resource is
    gone (tests/test_resources.py). It names no ``katuna delete``, which refuses every study of a
    resource, as it cannot ask the cluster whether the resource is gone."""
    db = tmp_path / "katuna.db"
    doc = ended_experiment_study(db, tmp_path)
    doc["spec"].update(edit)
    with app_client(db) as client:
        answer = client.post("/studies", data=yaml.safe_dump(doc), content_type="application/yaml")
        assert answer.status_code == 409, answer.get_json()
        message = answer.get_json()["message"]
    for command in re.findall(r"katuna (delete \S+?)[,;)]", message):
        result = CliRunner().invoke(main, [*command.split(), "--db", str(db)])
        assert result.exit_code == 0, f"the refusal says {command!r}, which answers: {result.output}"
    assert f"DELETE /studies/{NAME} of the service that watches the cluster" in message, message
