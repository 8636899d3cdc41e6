"""Asking the cluster to delete a deleted study's checkpoints from the shared claim: the Job of
:mod:`functions.core.checkpoint_drop`, created in the namespace the study's trials run in.

A Job of its name there already is the one asked for before (its name is the study's uid):
asking twice is asking once. Until the create is answered the study is kept, so a refusal, a
timeout or a restart leaves it for a deletion again, which asks again.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import translate
from functions.core import checkpoint_drop
from functions.core.cluster import Cluster
from functions.core.errors import KatunaError
from functions.core.job import primary_container_name, render_trial
from functions.core.launch import TrialLaunch

log = logging.getLogger("katuna.kubernetes")


class CheckpointDrops:
    """Create the Jobs deleting studies' checkpoints from the claim."""

    def __init__(self, defaults: Cluster, api: client.ApiClient) -> None:
        self._defaults = defaults
        self._batch = client.BatchV1Api(api)

    def ask(self, launch: TrialLaunch) -> bool:
        """Ask for the checkpoints of the study of ``launch`` (a trial of it, as it would run) to
        be deleted; whether a Job was asked for (now or before). A study of no checkpoints, or a
        service given no claim any more (whose folders it cannot name), asks for none."""
        cluster = (launch.cluster or Cluster()).with_defaults(self._defaults)
        if launch.checkpoint is None:
            return False
        if cluster.checkpoints is None:
            log.warning("study %s (uid %s) keeps its checkpoints on the claim: KATUNA_CHECKPOINT_CLAIM and "
                        "KATUNA_CHECKPOINT_IMAGE are no longer set", launch.study, launch.uid)
            return False
        job = checkpoint_drop.drop_job(cluster.checkpoints, launch.uid, self._user(launch), cluster.pod_security,
                                       cluster.ttl_seconds_after_finished)
        name, namespace = job["metadata"]["name"], cluster.namespace or "default"
        try:
            self._batch.create_namespaced_job(namespace, cast(client.V1Job, job))
        except ApiException as exc:
            if exc.status != 409:
                raise translate(exc, f"create Job {name} deleting study {launch.study}'s checkpoints") from exc
        except HTTPError as exc:
            raise translate(exc, f"create Job {name} deleting study {launch.study}'s checkpoints") from exc
        return True

    def _user(self, launch: TrialLaunch) -> dict[str, Any]:
        """The user and groups the trial's primary container runs as, as its Job is rendered;
        none known where it cannot be (its image's user then)."""
        try:
            pod = render_trial(launch, self._defaults)["spec"]["template"]["spec"]
        except (KatunaError, KeyError, TypeError) as exc:
            log.warning("deleting study %s's checkpoints as its trials' image's user: %s", launch.study, exc)
            return {}
        return checkpoint_drop.trial_user(pod, primary_container_name(launch))
