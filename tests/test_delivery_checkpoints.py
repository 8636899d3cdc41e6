"""At-least-once delivery of a deleted resource's end to a study of population-based training:
its checkpoints on the claim are asked to be deleted whichever of its trials are left, when its
first trial was discarded (its launch overtaken by a later trial's, the resource deleted before
it ran) or its trials are numbered past a warm start's known results. Each event goes through
the real dispatcher, handlers and SQLite store; the drop Job is counted by the stand-in's API
server."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
from kube_standin import claims
from kube_stub import KubeStub
from test_pbt_cluster import CLAIM, VOLUME_OF, native_pbt

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.checkpoint_drop import job_name
from functions.core.cluster import Cluster
from functions.core.events import TRIAL_SUGGESTED, study_completed, study_created
from functions.core.records import STOPPED
from functions.core.resources import DELETED, Origin, Ref
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study

KUBE_NAMESPACES = ("ckpt",)

KNOWN = {"trials": [{"params": {"lr": 0.005}, "value": 0.5}, {"params": {"lr": 0.01}, "value": 0.6}]}


@pytest.mark.parametrize("warm", [False, True], ids=["first-discarded", "warm-started"])
def test_a_deleted_resources_end_asks_for_the_checkpoints_whichever_trials_are_left(kube: KubeStub, tmp_path: Path,
                                                                                     warm: bool):
    if ("ckpt", CLAIM) not in kube.claims:
        assert claims.create(kube, "ckpt", {"metadata": {"name": CLAIM}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})[0] == 201
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="ckpt", checkpoints=VOLUME_OF), api_client(kube.url))
    deps = Deps(store, executor, time.time, checkpoint_drops=executor.checkpoint_drops.ask)
    dispatcher = Dispatcher(deps)
    try:
        definition = native_pbt()
        definition["name"] = f"ckpt-{'warm' if warm else 'cold'}"
        if warm:
            definition["warmStart"] = copy.deepcopy(KNOWN)
        origin = Origin(Ref("Study", "ckpt", definition["name"]), "uid-res", 1)
        record, _ = store_study(deps, parse_study(definition), definition, origin.to_dict())
        suggested = [e for e in dispatcher.deliver(study_created(record.name, record.uid))
                     if e.type == TRIAL_SUGGESTED]
        assert [e.data["trial"] for e in suggested] == ([2, 3] if warm else [0, 1])
        dispatcher.deliver(suggested[-1])
        assert store.get_trial(record.name, suggested[-1].data["trial"]).started_at is not None
        dispatcher.deliver(study_completed(record.name, record.uid, STOPPED, DELETED))
        assert [t.number for t in store.trials(record.name)] == [suggested[-1].data["trial"]], \
            "the trial never launched is discarded"
        assert ("ckpt", job_name(record.uid)) in kube.jobs, "the drop Job is asked for"
        assert store.get_study(record.name).origin["checkpointsDropped"] is True
    finally:
        store.close()
