"""The variables katuna reads its settings from: which variable sets each field of
:class:`functions.settings.Settings` and how its text is read (:mod:`functions.settings.values`),
and the bound on running trials computed where its variable is unset.

Kept apart from the settings object so that one table, not the object's fields, names every
variable: the docs' list of variables is checked against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from functions.core.records import LOCAL
from functions.settings.values import comma_list, endpoint, flag, host_names, resource_pairs, url, workload_kinds

CLUSTER_RUNNING_TRIALS = 1000
"""The default bound on the trials running at once where they run as Jobs: the cluster and its
node pools bound them further."""


def default_running_trials(executor: str) -> int:
    """The bound on the trials running at once where ``KATUNA_MAX_RUNNING_TRIALS`` is unset."""
    return machine_cpus() if executor == LOCAL else CLUSTER_RUNNING_TRIALS


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container's cpuset narrows), the
    default bound on the trials running at once where they are processes of this machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


POSITIVE_SECONDS = ("session_ttl", "node_look_seconds", "k8s_progress_seconds", "k8s_keep_seconds", "remote_timeout",
                     "pool_wait", "client_timeout")
"""The settings that are seconds to wait, each positive and finite (an infinite wait never ends)."""

VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "db": ("DB", Path), "db_on_network_fs": ("DB_ON_NETWORK_FS", lambda v: v.strip().lower()), "log_dir": ("LOG_DIR", Path), "busy_timeout": ("BUSY_TIMEOUT", float),
    "api_token": ("API_TOKEN", str), "max_body": ("MAX_BODY", int), "max_log": ("MAX_LOG", int),
    "max_checkpoint": ("MAX_CHECKPOINT", int), "max_tfevents": ("MAX_TFEVENTS", int),
    "prune_checkpoints": ("PRUNE_CHECKPOINTS", flag),
    "workdir": ("WORKDIR", Path),
    "events": ("EVENTS", str), "k8s_namespace": ("K8S_NAMESPACE", str),
    "k8s_service_account": ("K8S_SERVICE_ACCOUNT", str), "k8s_ttl_seconds": ("K8S_TTL_SECONDS", int),
    "k8s_image_pull_secrets": ("K8S_IMAGE_PULL_SECRETS", lambda v: tuple(s for s in v.split(",") if s)),
    "executor": ("EXECUTOR", str), "k8s_api": ("K8S_API", url), "report_url": ("REPORT_URL", url),
    "k8s_default_resources": ("K8S_DEFAULT_RESOURCES", resource_pairs),
    "k8s_start_allowance": ("K8S_START_ALLOWANCE", int),
    **{f"gke_{key}": (f"GKE_{key.upper()}", str)
       for key in ("project", "location", "cluster", "node_service_account")},
    "gke_endpoint": ("GKE_ENDPOINT", endpoint),
    "service_accounts": ("SERVICE_ACCOUNTS", comma_list), "service_secrets": ("SERVICE_SECRETS", comma_list),
    "service_claims": ("SERVICE_CLAIMS", comma_list), "trial_kinds": ("TRIAL_KINDS", workload_kinds),
    "checkpoint_claim": ("CHECKPOINT_CLAIM", str), "checkpoint_image": ("CHECKPOINT_IMAGE", str),
    "trial_pod_security": ("TRIAL_POD_SECURITY", str), "trial_sink_binding": ("TRIAL_SINK_BINDING", str),
    "template_namespaces": ("TEMPLATE_NAMESPACES", comma_list),
    "eks_cluster": ("EKS_CLUSTER", str), "eks_node_role": ("EKS_NODE_ROLE", str),
    "eks_region": ("EKS_REGION", str), "eks_subnets": ("EKS_SUBNETS", comma_list),
    "trial_env": ("TRIAL_ENV", comma_list), "trial_secrets": ("TRIAL_SECRETS", comma_list),
    "allowed_hosts": ("ALLOWED_HOSTS", host_names), "session_ttl": ("SESSION_TTL", float),
    "tick_floor": ("TICK_FLOOR", float),
    "oidc_audience": ("OIDC_AUDIENCE", str), "oidc_issuer_url": ("OIDC_ISSUER_URL", url),
    "oidc_subjects": ("OIDC_SUBJECTS", comma_list),
    "max_dead_letters": ("MAX_DEAD_LETTERS", int), "max_running_trials": ("MAX_RUNNING_TRIALS", int),
    "metrics_token": ("METRICS_TOKEN", str), "lookahead": ("LOOKAHEAD", int),
    "katib_api": ("KATIB_API", flag), "katib_trials_kept": ("KATIB_TRIALS_KEPT", int),
    "node_look_seconds": ("NODE_LOOK_SECONDS", float),
    "k8s_progress_seconds": ("K8S_PROGRESS_SECONDS", float),
    "k8s_keep_seconds": ("K8S_KEEP_SECONDS", float),
    "remote_timeout": ("REMOTE_TIMEOUT", float), "pool_wait": ("POOL_WAIT", float),
    "client_timeout": ("CLIENT_TIMEOUT", float), "worker_timeout": ("WORKER_TIMEOUT", int),
    "sink_token_file": ("SINK_TOKEN_FILE", Path), "trust_bundles": ("TRUST_BUNDLES", Path),
    "installation": ("INSTALLATION", str), "orphan_grace": ("ORPHAN_GRACE", float),
    "log_format": ("LOG_FORMAT", lambda v: v.strip().lower()), "log_level": ("LOG_LEVEL", lambda v: v.strip().upper()),
}
"""Each :class:`~functions.settings.Settings` field read from one variable: its name after ``KATUNA_``, and how its
text becomes the value (``K_SINK``, ``K_CA_CERTS``, ``K_CE_OVERRIDES``, ``KUBERNETES_SERVICE_HOST`` and the
limits are read apart)."""
