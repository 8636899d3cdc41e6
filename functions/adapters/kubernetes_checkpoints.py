"""Asking the cluster to delete a deleted study's checkpoints from the shared claim: the Job of
:mod:`functions.core.checkpoint_drop`, created in the namespace the study's trials run in.

A Job of its name there already is the one asked for before (its name is the study's uid):
asking twice is asking once, unless that Job failed, which is run again. Until the create is
answered the study is kept, so a refusal, a timeout or a restart leaves it for a deletion again,
which asks again. Its container asks for what the namespace's LimitRanges allow
(:mod:`~functions.adapters.kubernetes_limit_ranges`). Katuna's sweep of the cluster (:meth:`CheckpointDrops.sweep`) tells of each
Job that failed, the folder it left and why, and runs it again a few times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from kubernetes import client

from functions.adapters.kubernetes_client import call, delete_options
from functions.adapters.kubernetes_limit_ranges import LimitRanges
from functions.core import checkpoint_drop, checkpoint_volume
from functions.core.cluster import Cluster
from functions.core.errors import KatunaError
from functions.core.job import primary_container_name, render_trial
from functions.core.launch import TrialLaunch
from functions.core.log_context import about
from functions.core.workload_labels import MANAGED_BY

log = logging.getLogger("katuna.kubernetes")

OWN_DROPS = f"{MANAGED_BY}=katuna,{checkpoint_drop.OF_LABEL}"
"""The drop Jobs katuna made (:func:`~functions.core.checkpoint_drop.drop_job` labels them so):
a Job of anyone else's that carries the drop label is never deleted, nor made again as katuna's."""


class CheckpointDrops:
    """Create the Jobs deleting studies' checkpoints from the claim, and follow those that fail."""

    def __init__(self, defaults: Cluster, api: client.ApiClient, clock: Callable[[], float] = time.time,
                 limits: LimitRanges | None = None) -> None:
        self._defaults = defaults
        self._limits = limits or LimitRanges(api)
        self._api = api
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._clock = clock
        self._told: set[str] = set()

    def ask(self, launch: TrialLaunch) -> bool:
        """Ask for the checkpoints of the study of ``launch`` (a trial of it, as it would run) to
        be deleted; whether a Job was asked for (now or before: one that failed is run again). A
        study of no checkpoints, or a service given no claim any more (whose folders it cannot
        name), asks for none."""
        cluster = (launch.cluster or Cluster()).with_defaults(self._defaults)
        if launch.checkpoint is None:
            return False
        if cluster.checkpoints is None:
            log.warning("study %s (uid %s) keeps its checkpoints on the claim: KATUNA_CHECKPOINT_CLAIM and "
                        "KATUNA_CHECKPOINT_IMAGE are no longer set", launch.study, launch.uid, extra=about(launch.study))
            return False
        job = checkpoint_drop.drop_job(cluster.checkpoints, launch.uid, self._user(launch), cluster.pod_security,
                                       cluster.ttl_seconds_after_finished)
        namespace = cluster.namespace or "default"
        if not self._created(namespace, job, f"deleting study {launch.study}'s checkpoints"):
            stored = self._stored(namespace, job["metadata"]["name"])
            if stored is not None and checkpoint_drop.failed_at(stored) is not None:
                self._again(namespace, stored, 1)
        return True

    def prune(self, launch: TrialLaunch, numbers: Sequence[int]) -> None:
        """Ask for the checkpoint folders of the trials ``numbers`` of the study of ``launch``,
        whose trial's end freed them, to be deleted from the claim (:func:`~functions.core.checkpoint_drop.prune_job`):
        a Job named for that end, so a pass made again finds it made (and the sweep runs it
        again if it failed). Nothing where the service has no claim any more."""
        cluster = (launch.cluster or Cluster()).with_defaults(self._defaults)
        if launch.checkpoint is None or cluster.checkpoints is None:
            return
        job = checkpoint_drop.prune_job(cluster.checkpoints, launch.uid, launch.number, numbers, self._user(launch),
                                        cluster.pod_security, cluster.ttl_seconds_after_finished)
        self._created(cluster.namespace or "default", job, f"deleting checkpoint folders of study {launch.study}")

    def _created(self, namespace: str, job: dict[str, Any], doing: str) -> bool:
        """Create ``job`` (its requests fit to the namespace's LimitRanges); False where a Job of
        its name exists already."""
        self._limits.fit(namespace, job, [checkpoint_drop.CONTAINER], alone=True)
        name = job["metadata"]["name"]
        return call(lambda: self._batch.create_namespaced_job(namespace, cast(client.V1Job, job)),
                    f"create Job {name} {doing}", tolerate=(409,)) is not None

    def sweep(self, namespace: str) -> None:
        """Tell of each drop Job of katuna's (:data:`OWN_DROPS`) in ``namespace`` that failed, once (a warning: :func:`~functions.core.checkpoint_drop.left`),
        and run it again once it has been failed :data:`~functions.core.checkpoint_drop.RETRY_AFTER`
        seconds, up to :data:`~functions.core.checkpoint_drop.MAX_RUNS` runs."""
        listed = call(lambda: self._batch.list_namespaced_job(namespace, label_selector=OWN_DROPS),
                      f"list the Jobs deleting checkpoints in namespace {namespace}")
        for item in listed.items:
            job = self._api.sanitize_for_serialization(item)
            failed = checkpoint_drop.failed_at(job)
            if failed is None:
                continue
            retry = checkpoint_drop.runs(job) < checkpoint_drop.MAX_RUNS
            if job["metadata"]["uid"] not in self._told:
                self._told.add(job["metadata"]["uid"])
                log.warning("%s", checkpoint_drop.left(job, namespace, failed[0], self._said(namespace, job), retry))
            if retry and self._clock() - failed[1] >= checkpoint_drop.RETRY_AFTER:
                self._again(namespace, job, checkpoint_drop.runs(job) + 1)

    def _stored(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = call(lambda: self._batch.read_namespaced_job(name, namespace), f"read Job {name}", tolerate=(404,))
        return None if found is None else self._api.sanitize_for_serialization(found)

    def _again(self, namespace: str, job: Mapping[str, Any], run: int) -> None:
        """Delete the failed Job with its pods (while it is that Job), and make it anew as run
        ``run``; another process's making it first is the same."""
        name = job["metadata"]["name"]
        call(lambda: self._batch.delete_namespaced_job(name, namespace, body=delete_options(job["metadata"]["uid"])),
             f"delete the failed Job {name}", tolerate=(404, 409))
        anew = checkpoint_drop.again(job, run)
        call(lambda: self._batch.create_namespaced_job(namespace, cast(client.V1Job, anew)),
             f"create Job {name} again", tolerate=(409,))
        log.info("Job %s/%s deleting checkpoints runs again (run %d of %d)", namespace, name, run,
                 checkpoint_drop.MAX_RUNS)

    def _said(self, namespace: str, job: Mapping[str, Any]) -> str | None:
        """What the Job's last failed pod's container said as it ended (its termination message:
        the program's error), or None."""
        pods = call(lambda: self._core.list_namespaced_pod(
            namespace, label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"),
            f"list the pods of Job {job['metadata']['name']}")
        said = None
        for pod in sorted(pods.items, key=lambda p: p.metadata.creation_timestamp):
            for status in (pod.status.container_statuses or []) if pod.status else []:
                ended = status.state.terminated if status.state else None
                if ended is not None and ended.exit_code and ended.message:
                    said = ended.message
        return said

    def _user(self, launch: TrialLaunch) -> dict[str, Any]:
        """The user and groups the trial's primary container runs as, as its Job is rendered;
        none known where it cannot be (its image's user then)."""
        try:
            pod = render_trial(launch, self._defaults)["spec"]["template"]["spec"]
        except (KatunaError, KeyError, TypeError) as exc:
            log.warning("deleting study %s's checkpoints as its trials' image's user: %s", launch.study, exc,
                        extra=about(launch.study))
            return {}
        return checkpoint_volume.trial_user(pod, primary_container_name(launch))
