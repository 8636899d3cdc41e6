"""What katuna asks of the API server on a run as deployed (its trials in its own namespace), as
the API server's authorizer saw each request, against what ``knative/rbac.yaml`` grants its
service account: nothing refused (a refusal katuna takes as best effort, such as an Event it
could not record, would show in no answer), and nothing asked that the reading of the adapters'
source (tests/test_security.py) does not see, so that its "exactly what the code uses" holds
for the calls a run makes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service, free_port
from kube_stub import KubeStub
from test_security import used_permissions

pytestmark = pytest.mark.slow

KATUNA = "system:serviceaccount:katuna:katuna"
WORKERS = 2


def _asked(kube: KubeStub, before: int) -> set[tuple[str, str, str]]:
    return {(r.group, f"{r.resource}/{r.subresource}" if r.subresource else r.resource, r.verb)
            for r in kube.authorized[before:] if r.user == KATUNA}


def test_a_study_run_in_katunas_namespace_asks_only_what_its_roles_grant(kube: KubeStub, tmp_path: Path):
    """A study with early stopping (report-token Secrets, progress, pruned trials' Jobs deleted)
    run to its end and then deleted, as the manifests deploy katuna: every request granted, the
    tick's orphan sweep's included (no trial-kinds component applied, no grant across
    namespaces: it lists only what discovery and an access review say it may)."""
    before, refused_before = len(kube.authorized), len(kube.refused)
    port = free_port()
    service = Service(tmp_path, workers=WORKERS, port=port, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna", KATUNA_REPORT_URL=f"http://127.0.0.1:{port}/")
    try:
        definition = study_definition(name="granted", mode="curve", maxTrials=4, parallelism=2,
                                      earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 2}})
        definition["trialTemplate"]["image"] = "python:3.12"
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        assert service.wait_for("granted", timeout=120)["status"] == "completed"
        assert service.request("DELETE", "/studies/granted")[0] in (200, 202, 204)
    finally:
        service.close()
    refused = Counter((r.verb, r.group, r.resource, r.subresource, r.namespace)
                      for r in kube.refused[refused_before:] if r.user == KATUNA)
    assert refused == Counter(), "a request RBAC refused, which the API server's audit log keeps"
    asked = _asked(kube, before)
    assert {("batch", "jobs", "create"), ("", "pods/log", "get"), ("", "secrets", "create")} <= asked
    assert asked - used_permissions() == set(), "a call the reading of the adapters' source misses"
