"""What the watcher reads of the cluster as it ticks: whether a study's attempts are alive is
asked once the study's queue has been quiet for a while, not at every tick (a read of the API
server each), through the real client against the Kubernetes stand-in, with a real store."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from conftest import study_definition
from kube_stub import KubeStub
from test_katib_trial_writes import CountedClient
from waiting import eventually

from functions.adapters.broker import MemoryQueue
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study
from functions.watch import RECONCILE_AFTER, Watcher

NAMESPACE = "watched"


def _deliver_all(dispatcher: Dispatcher, event) -> None:
    pending = [event]
    while pending:
        pending.extend(dispatcher.deliver(pending.pop(0)))


def test_a_running_study_is_asked_about_its_jobs_once_its_queue_was_quiet_not_at_every_tick(tmp_path: Path):
    kube = KubeStub(namespaces=(NAMESPACE,))
    api = CountedClient(kube.url)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        deps = Deps(store, KubernetesExecutor(Cluster(namespace=NAMESPACE), api), time.time)
        definition = study_definition(name="held", mode="hang", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        record, _ = store_study(replace(deps, workdir=str(tmp_path)), parse_study(definition), definition)
        _deliver_all(Dispatcher(deps), study_created("held", record.uid))
        eventually(lambda: kube.jobs.get((NAMESPACE, "held-0")), "the trial's Job", timeout=10)
        watcher = Watcher(deps, MemoryQueue(), lambda: [store.get_study("held")])
        api.sent.clear()
        started = time.monotonic()
        ticks = 0
        while time.monotonic() - started < RECONCILE_AFTER * 1.5:
            watcher.tick()
            ticks += 1
            time.sleep(0.01)
        job_reads = [path for method, path in api.sent if method == "GET" and path.endswith("/jobs/held-0")]
        assert ticks > 50 and 1 <= len(job_reads) <= 3, (ticks, len(job_reads))
    finally:
        store.close()
        kube.close()
