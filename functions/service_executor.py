"""Where a service process (:class:`functions.runtime.Runtime`) runs trials, as
``KATUNA_EXECUTOR`` says: as local processes, or as Kubernetes Jobs, with the ports that only a
cluster offers (the running trials' logs, the admissions that hold Jobs, the access review, the
Jobs deleting deleted studies' checkpoints from the claim), and with ``KATUNA_PRUNE_CHECKPOINTS``
the deletion of checkpoint folders no later trial copies, by the executor's own means."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.local_log_reads import LocalLogReads
from functions.adapters.owners import Runner
from functions.core.errors import Problem
from functions.core.events import Event
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.log_reads import LogReads, StreamedLogReads
from functions.core.ports import Admissions, Executor, RunningLogs
from functions.core.spec import Study
from functions.settings import Settings


class ServiceExecutor(NamedTuple):
    """The executor, where trials' logs are read for a person, and the ports that come with it."""

    executor: Executor
    log_reads: LogReads
    logs: RunningLogs | None = None
    admissions: Admissions | None = None
    access_refusal: Callable[[Study], Problem | None] | None = None
    runner: Runner | None = None
    checkpoint_drops: Callable[[TrialLaunch], bool] | None = None
    checkpoint_prunes: Callable[[TrialLaunch, Sequence[int]], None] | None = None


def service_executor(settings: Settings, clock: Callable[[], float], publish: Callable[[Event], None],
                     kept_tail: Callable[[TrialLaunch], KeptTail | None], sole_parent: bool) -> ServiceExecutor:
    """The executor, and where trials' logs are read for a person: a local trial's log file,
    a cluster trial's pods' logs, the runs its Job lost included
    (:meth:`~functions.adapters.kubernetes_executor.KubernetesExecutor.log`), and what its Job
    kept as katuna stopped it (``kept_tail``). A local executor sends its trials' ends to
    ``publish``, and ends an orphan a trial left outside its session when the process is its
    trials' ``sole_parent``."""
    if settings.runs_jobs:
        from functions.adapters.kubernetes_access import Access
        from functions.adapters.kubernetes_client import api_client
        from functions.adapters.kubernetes_executor import KubernetesExecutor

        api = api_client(settings.k8s_api, settings.remote_timeout)
        executor = KubernetesExecutor(settings.cluster_defaults(), api, settings.report_url, clock=clock,
                                      installation=settings.installation_id, orphan_grace=settings.orphan_grace)
        refusal = Access(api, settings.cluster_defaults(), hands_tokens=bool(settings.report_url)).refusal
        drops = executor.checkpoint_drops
        return ServiceExecutor(executor, StreamedLogReads(executor.log, kept_tail, executor), executor, executor, refusal,
                               checkpoint_drops=drops.ask,
                               checkpoint_prunes=drops.prune if settings.prune_checkpoints else None)
    local = LocalExecutor(settings.logs, publish, pass_env=settings.passed_to_trials, max_checkpoint=settings.max_checkpoint,
                          max_tfevents=settings.max_tfevents, sole_parent=sole_parent)
    return ServiceExecutor(local, LocalLogReads(local.log_file), runner=Runner(local.identity),
                           checkpoint_prunes=local.prune_checkpoints if settings.prune_checkpoints else None)
