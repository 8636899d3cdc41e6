"""Settings, read once from the environment into a frozen object (never at import time).

Every variable has the ``KATUNA_`` prefix, except those Knative's SinkBinding sets (``K_SINK``,
``K_CA_CERTS`` and ``K_CE_OVERRIDES``) and ``KUBERNETES_SERVICE_HOST``, which Kubernetes sets in
every pod. How a variable's text becomes its value is :mod:`functions.setting_values`; what
each setting is, its default, and which values and combinations katuna refuses are here.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from functions import reporter
from functions.adapters.log_lines import FORMATS, LEVELS
from functions.adapters.trial_env import pass_through_problem
from functions.core import event_signature, pod_security, senders
from functions.core.checkpoint_volume import CheckpointVolume
from functions.core.cluster import MAX_INT32, MIN_TTL, TTL_WHY, Cluster
from functions.core.errors import InvalidSetting
from functions.core.katib_trials import LEAST_KEPT, TRIALS_KEPT
from functions.core.limits import PREFIX, Limits
from functions.core.node_hours import LOOK_EVERY
from functions.core.records import KUBERNETES, LOCAL, RUNS_ON
from functions.core.timeouts import POOL_WAIT, REMOTE_TIMEOUT
from functions.setting_values import (
    ce_overrides,
    comma_list,
    converted,
    endpoint,
    flag,
    host_names,
    resource_pairs,
    study_limits,
    url,
)

GSA_EMAIL = re.compile(r"[a-z0-9][a-z0-9-]{0,62}@[a-z0-9][a-z0-9.:-]*\.gserviceaccount\.com")
"""A Google service account's email, as a node pool's ``service_account`` takes it."""
IAM_ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
"""An IAM role's ARN (in any partition), as EKS takes a node group's ``nodeRole``: a role given
by name is refused with ``Invalid Role Arn``."""
ROLE_EXPECTED = "the IAM role ARN of the nodes (arn:aws:iam::ACCOUNT_ID:role/NAME)"
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A Kubernetes namespace's name (a DNS label)."""
CLAIM_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A PersistentVolumeClaim's name (a DNS subdomain)."""


TOKEN_CHARACTERS = 22
"""The fewest characters of ``KATUNA_API_TOKEN`` and ``KATUNA_METRICS_TOKEN``: 22 of
``secrets.token_urlsafe``'s alphabet hold 128 bits. A shorter token can be guessed, the API
token offline, from the signature of any event katuna posts (:mod:`functions.core.event_signature`)."""
RANDOM_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"

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


DEFAULT_RESOURCES = (("cpu", "1"), ("memory", "2Gi"))
"""The resources of a trial container whose study names neither cpu nor memory, unless
``KATUNA_K8S_DEFAULT_RESOURCES`` says otherwise: a pod without them is BestEffort, the first
evicted and with no memory limit, and a node pool's autoscaler would never grow for it."""


_POSITIVE_SECONDS = ("session_ttl", "node_look_seconds", "k8s_progress_seconds", "k8s_keep_seconds", "remote_timeout",
                     "pool_wait", "client_timeout")

VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "db": ("DB", Path), "log_dir": ("LOG_DIR", Path), "busy_timeout": ("BUSY_TIMEOUT", float),
    "api_token": ("API_TOKEN", str), "max_body": ("MAX_BODY", int), "max_log": ("MAX_LOG", int),
    "max_checkpoint": ("MAX_CHECKPOINT", int), "workdir": ("WORKDIR", Path),
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
    "service_claims": ("SERVICE_CLAIMS", comma_list),
    "checkpoint_claim": ("CHECKPOINT_CLAIM", str), "checkpoint_image": ("CHECKPOINT_IMAGE", str),
    "trial_pod_security": ("TRIAL_POD_SECURITY", str),
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
    "log_format": ("LOG_FORMAT", lambda v: v.strip().lower()), "log_level": ("LOG_LEVEL", lambda v: v.strip().upper()),
}
"""Each :class:`Settings` field read from one variable: its name after ``KATUNA_``, and how its
text becomes the value (``K_SINK``, ``K_CA_CERTS``, ``K_CE_OVERRIDES``, ``KUBERNETES_SERVICE_HOST`` and the
limits are read apart)."""


@dataclass(frozen=True)
class Settings:
    """Where state lives, how the HTTP service behaves, and where emitted events go.

    ``KATUNA_DB`` (default ``./katuna.db``); ``KATUNA_LOG_DIR`` (default ``<db stem>-logs``
    beside the database); ``KATUNA_BUSY_TIMEOUT`` seconds (30); ``KATUNA_API_TOKEN`` (unset: the
    service is open, but listens on and answers loopback only); ``KATUNA_MAX_BODY`` bytes of a request body (1 MiB); ``KATUNA_MAX_LOG`` bytes of a
    trial log served by the API (8 MiB: the first and the last halves, with a note between); ``KATUNA_WORKDIR``, the
    directory that relative trial working directories of POSTed studies start from (the current
    one); ``KATUNA_EVENTS``: ``queue`` (emitted events go to the database queue that the
    service's own workers take from) or ``reply`` (behind a Knative broker: the reply, and
    ``K_SINK`` for more than one). Trial Jobs: ``KATUNA_K8S_NAMESPACE``,
    ``KATUNA_K8S_SERVICE_ACCOUNT``, ``KATUNA_K8S_IMAGE_PULL_SECRETS`` (comma-separated) and
    ``KATUNA_K8S_TTL_SECONDS`` (3600; at least 600, so katuna can still read a finished trial's
    pods), ``KATUNA_K8S_DEFAULT_RESOURCES`` (``cpu=1,memory=2Gi``; ``none`` for none, leaving
    such trials' pods BestEffort; requests only in a ``trialSpec``), each the default for studies that do not set it; ``KATUNA_SERVICE_ACCOUNTS`` (comma-separated,
    default ``katuna``), the service's own Kubernetes service accounts (its own and its event
    sources'), which hold its permissions and cloud identity: a study whose trial pods would run
    as one is refused, and ``KATUNA_K8S_SERVICE_ACCOUNT`` may not name one; ``KATUNA_SERVICE_SECRETS``
    (comma-separated, default ``katuna-api-token``), the service's own Secrets: a study whose trial
    pods would name one (an env, a volume, an image pull Secret) is refused, and
    ``KATUNA_K8S_IMAGE_PULL_SECRETS`` may not name one; ``KATUNA_SERVICE_CLAIMS`` (comma-separated,
    default ``katuna-data``), the service's own PersistentVolumeClaims (its database): a study
    whose trial pods would mount one is refused; ``KATUNA_CHECKPOINT_CLAIM`` (unset: population-based
    training is refused where trials run as Jobs), a ReadWriteMany PersistentVolumeClaim of the
    trials' namespace (none of ``KATUNA_SERVICE_CLAIMS``) that holds the checkpoints of such studies'
    trials, and ``KATUNA_CHECKPOINT_IMAGE``, required with it: katuna's own image (the Service's),
    whose init container seeds each trial's folder (:mod:`functions.core.checkpoint_volume`);
    ``KATUNA_TRIAL_POD_SECURITY``: ``baseline``
    (the default: a study whose trial pods ask for what Kubernetes' baseline Pod Security Standard
    forbids, a privileged container or the node's files or namespaces, is refused),
    ``restricted`` (for trials whose namespaces enforce restricted: katuna's own trial pods set
    ``runAsNonRoot``, and a ``trialSpec`` short of restricted is refused) or ``privileged`` (no
    such check); ``KATUNA_TEMPLATE_NAMESPACES`` (comma-separated namespaces,
    none by default): where the operator keeps shared trial templates (Katib's ``trial-templates``
    in ``kubeflow``, say), which a study resource's ``trialTemplate.configMap`` may name besides its
    own namespace and ``KATUNA_K8S_NAMESPACE`` (:mod:`functions.core.cluster_templates`);
    ``KATUNA_K8S_START_ALLOWANCE`` seconds (3600) a
    trial's pod may spend waiting for a node and pulling its image (its Job's
    ``activeDeadlineSeconds`` is the timeout plus this, for each run the Job may make; the
    timeout itself counts from the trial container's start; a pod that cannot start for this
    long, or a Job suspended this long, fails its trial);
    ``KATUNA_EXECUTOR``: ``local`` (trials are processes here) or ``kubernetes`` (trials are
    Jobs; the API from in-cluster configuration, the kubeconfig, or ``KATUNA_K8S_API``, a proxy
    that adds credentials such as ``kubectl proxy``: katuna sends none to it);
    ``KATUNA_REPORT_URL``, where trial Jobs of studies with early stopping post their progress
    (:mod:`functions.reporter`; unset: ``K_SINK``, the broker that a SinkBinding names). Node pools for studies with a
    ``nodePool``, in one cloud: GKE with ``KATUNA_GKE_PROJECT``, ``KATUNA_GKE_LOCATION``,
    ``KATUNA_GKE_CLUSTER`` (and ``KATUNA_GKE_ENDPOINT`` to reach another API endpoint;
    ``KATUNA_GKE_NODE_SERVICE_ACCOUNT``, the email of the Google service account its pools' nodes
    run as, else the cluster's default); or EKS
    with ``KATUNA_EKS_CLUSTER``, ``KATUNA_EKS_SUBNETS`` (comma-separated), ``KATUNA_EKS_NODE_ROLE``
    (an IAM role ARN) and ``KATUNA_EKS_REGION`` (else the AWS configuration's region).
    ``KATUNA_REMOTE_TIMEOUT`` seconds (10) a call to the Kubernetes API or a cloud's API waits to
    connect, and again for each read of its answer (each chunk of a streamed log), before it
    fails as a temporary error (:mod:`functions.core.timeouts`). ``KATUNA_POOL_WAIT`` seconds
    (3600) after a study is stored that the cloud may go on refusing its node pool for now (a
    cluster busy, throttled or unreachable) before the study fails with the cloud's last answer.
    ``KATUNA_NODE_LOOK_SECONDS`` (30): how often at most the nodes of a study's pool are listed
    for its measured node-hours (:mod:`functions.handlers.node_hours`).
    ``KATUNA_K8S_PROGRESS_SECONDS`` (10): how often ``katuna serve`` with the Kubernetes
    executor reads the logs of running trials of studies with early stopping for new reports
    of the objective (:mod:`functions.handlers.progress_scan`; on Knative the reconcile tick reads them).
    ``KATUNA_K8S_KEEP_SECONDS`` (30): how often it reads the logs of the other studies' running
    trials, keeping their observations as they are read, so the kubelet's log rotation loses none
    of a chatty trial's (:mod:`functions.core.log_keep`).
    ``KATUNA_TRIAL_ENV`` (comma-separated names, none by default): variables of the service's
    environment that local trial processes get besides their minimal one (say
    ``CUDA_VISIBLE_DEVICES``); a ``KATUNA_*`` name (the API and metrics tokens among them), a cloud
    credential's (``AWS_SECRET_ACCESS_KEY``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``KUBECONFIG``...)
    and a secret's (a name with ``TOKEN``, ``SECRET``, ``PASSWORD``, ``API_KEY``...) are refused
    at start. ``KATUNA_TRIAL_SECRETS`` (none): the trials' own secrets they get so (say
    ``WANDB_API_KEY``), each named there on purpose; never a ``KATUNA_*`` name or a cloud
    credential's. ``KATUNA_LOOKAHEAD`` (1): trials
    ``katuna run`` asks the sampler for ahead of a free slot, while the study's trials run, so a
    slot that frees is refilled without waiting for the sampler (0: ask only when a slot frees).
    ``KATUNA_LOG_FORMAT``: ``text`` (the default; ``time level logger pid message``) or ``json``
    (one object a line, with ``severity``, as Cloud Logging reads it: the image's default) for
    the service's own log lines and gunicorn's; ``KATUNA_LOG_LEVEL`` (``INFO``; ``DEBUG`` adds a
    line per routine event dropped, ``WARNING`` or ``ERROR`` fewer) for katuna's loggers
    (:mod:`functions.adapters.log_lines`).

    Who may reach the HTTP service (:mod:`functions.adapters.web.guard`): ``KATUNA_ALLOWED_HOSTS``,
    comma-separated host names (no port: a name with one, a scheme or a path is refused at start) served besides the loopback names ``localhost``,
    ``127.0.0.1`` and ``[::1]``; ``*.example.org`` allows every subdomain (unset: loopback names
    only, against DNS rebinding; naming other hosts needs ``KATUNA_API_TOKEN``).
    ``KATUNA_SESSION_TTL`` seconds a dashboard login lasts (43200, 12 hours).
    ``KATUNA_TICK_FLOOR`` (10): the fewest seconds between two ticks (``dev.knative.sources.ping``)
    handled for senders nobody vouches for (no token, no OIDC: a broker without OIDC, which
    passes on what any pod posted); a tick sooner is answered and does nothing. 0 handles every one.
    ``KATUNA_CLIENT_TIMEOUT`` seconds (15) a client has to send a request, head and body, from
    when the service starts reading it, and at most each write of an answer waits for the client
    to take more (:mod:`functions.adapters.web.worker`, and ``katuna optuna-dashboard``'s
    :mod:`functions.adapters.web.dashboard_server`); a slower client's connection is closed.
    ``KATUNA_WORKER_TIMEOUT`` whole seconds (60) a ``katuna serve`` worker's main loop may go without
    a heartbeat before gunicorn kills it, with the local trials it owns (gunicorn's ``timeout``;
    a request a thread is serving does not stop the heartbeat, a GIL held that long does).
    ``KATUNA_OIDC_AUDIENCE``: the event paths then also take Knative Eventing's OIDC delivery
    tokens issued for this audience (the Trigger's ``subscriber.audience``), signed by a key of
    ``KATUNA_OIDC_ISSUER_URL`` (the Kubernetes API server, ``https://kubernetes.default.svc``:
    its ``/.well-known/openid-configuration`` names the issuer, ``/openid/v1/jwks`` holds the keys).
    ``KATUNA_OIDC_SUBJECTS`` (comma-separated, unset: any): the only senders such a token is taken
    from, by its ``sub`` claim (``system:serviceaccount:<namespace>:<name>``, the Triggers' OIDC
    accounts; a trailing ``*`` matches every name it begins, as in a Knative EventPolicy); another
    sender's valid token gets 403 (:mod:`functions.core.senders`). Trials may never run as these
    accounts, so a study naming one in the namespace its trials run in is refused, and
    ``KATUNA_K8S_SERVICE_ACCOUNT`` (or ``default``) in ``KATUNA_K8S_NAMESPACE`` matching one stops
    the service at start.
    Events posted to ``K_SINK`` carry the OIDC token Knative's SinkBinding mounts at
    ``KATUNA_SINK_TOKEN_FILE`` (``/oidc/token``; none while the file is absent), read again at
    each post since it is rotated, and trust the PEM certificates of ``K_CA_CERTS`` (set by the
    SinkBinding for an https sink) and those of the cluster's trust bundles, which the binding
    mounts at ``KATUNA_TRUST_BUNDLES`` (``/knative-custom-certs``), besides the system's. Each carries the extensions of
    ``K_CE_OVERRIDES`` (the SinkBinding's ``ceOverrides`` as JSON: :func:`functions.reporter.parse_overrides`;
    one that is no such JSON, or names an attribute katuna sets, stops the service at start).
    ``KATUNA_METRICS_TOKEN`` (unset): a bearer token that reaches ``GET /metrics`` only, for a
    Prometheus scrape (the API token reaches it too; with neither set, loopback Hosts only).
    Each token, where set, has :data:`TOKEN_CHARACTERS` characters at least and no space, and
    the metrics token is not the API token, or katuna stops at start.
    Neither token is part of the settings' ``repr``: a log line, a traceback showing its frames'
    locals or a debugger that shows the settings shows no token.
    ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's own variable, not a setting): where gunicorn
    workers keep their counts; ``katuna serve`` empties it of an earlier run's counts, or makes one.
    ``KATUNA_MAX_DEAD_LETTERS`` dead letters kept, the oldest dropped first (1000), each at most
    ``KATUNA_MAX_BODY`` bytes. ``KATUNA_MAX_CHECKPOINT`` (4,096 MiB): the most bytes of a trial's
    checkpoint folder copied for a child trial under population-based training (a larger one
    fails the child: :mod:`functions.adapters.local_checkpoints`). ``KATUNA_MAX_RUNNING_TRIALS``: the most trials ``katuna run`` and
    ``katuna serve`` run at once across every study on the database (the CPUs this process may
    use where trials are local processes, 1,000 where they are Jobs); a trial past it waits,
    saying why, until another ends (:mod:`functions.handlers.spawn`). A study's ``parallelism``
    above it is no error: its trials past the bound wait their turn. ``KATUNA_KATIB_TRIALS_KEPT`` (10,000, at least 100): the
    most Trial resources of ended trials a Katib Experiment keeps on the cluster, those of its
    latest trials and its best (:func:`functions.core.katib_trials.kept_trials`). ``KUBERNETES_SERVICE_HOST`` (set by Kubernetes in every pod) tells
    that the service runs in a cluster: its reconcile pass then compares the study resources of
    ``KATUNA_K8S_NAMESPACE`` with the stored studies, as it does wherever ``KATUNA_K8S_API`` is set.
    ``KATUNA_KATIB_API`` (false): ``true`` where the overlay ``knative/katib-api`` serves Katib's
    own kinds (``kubeflow.org/v1beta1`` Experiment, ``kubeflow.org/v1alpha1`` StudyJob): the
    reconcile pass then also takes those of every namespace, runs their trials in their
    namespace, and keeps their status and Katib Trial resources up to date.

    Bounds on what one submitted study may ask (:class:`functions.core.limits.Limits`), each
    a positive number: ``KATUNA_MAX_PARALLELISM`` trials at once (1,000); ``KATUNA_MAX_TRIALS``,
    the largest ``maxTrials`` and ``maxFailedTrials`` (1,000,000); ``KATUNA_MAX_GRID`` points of
    a grid search (100,000); ``KATUNA_MAX_PARAMETERS`` per study (256); ``KATUNA_MAX_VALUES`` of
    one categorical or discrete parameter (10,000); ``KATUNA_MAX_DURATION`` seconds of a
    ``timeBudget`` or trial ``timeout`` (31,622,400: 366 days); ``KATUNA_MAX_ATTEMPTS``, the
    largest ``trialTemplate.maxAttempts`` (100); ``KATUNA_MAX_SETTING``, the largest integer
    sampler or pruner setting (100,000); ``KATUNA_MAX_TEXT`` characters of a metric filter or a
    name (4,096); ``KATUNA_MAX_FILTERS`` metric filters (16); ``KATUNA_MAX_FILTER_PROGRAM``
    instructions of the programs RE2 compiles a study's metric filters to, together (1,000);
    ``KATUNA_MAX_OBJECTIVES`` objectives of a study (8); ``KATUNA_MAX_METRICS`` metrics,
    objectives and additional ones (64); ``KATUNA_MAX_WARM_START`` known results of a warm
    start, inline and taken from ``warmStart.study`` (1,000); ``KATUNA_MAX_HISTORY`` trials Optuna's storage may hold for
    one study, past which a study's ``maxTrials`` is refused (100,000: every process serving
    the study loads them all); ``KATUNA_MAX_HISTORY_CELLS`` values (its trials' parameters,
    objective values and intermediate values) it may hold for one study, likewise (500,000);
    ``KATUNA_MAX_TPE_HISTORY`` trials it may hold for a study of ``tpe`` or ``multivariate-tpe``
    with three or more objectives, likewise (2,000: :mod:`functions.core.tpe_history`).
    A study without ``maxTrials`` runs at most the largest ``maxTrials`` these allow it
    when it is admitted (:mod:`functions.core.trial_cap`). What one study's node pool may cost: ``KATUNA_MAX_POOL_NODES`` nodes of one pool (100);
    ``KATUNA_MAX_ACCELERATORS`` GPUs on one node (8);
    ``KATUNA_MAX_POOLS`` pools katuna's studies hold at once (10; at most
    ``KATUNA_EKS_GROUPS_PER_CLUSTER`` on EKS); ``KATUNA_POOL_MACHINE_TYPES`` (comma-separated,
    unset: any), the GKE machine types and EC2 instance types a pool may have. The EKS account's
    service quotas, each a positive integer, where the account has them raised
    (:class:`functions.core.limits.EksQuotas`): ``KATUNA_EKS_NODES_PER_GROUP`` (450), the most
    ``nodePool.maxNodes`` of an EKS study, and ``KATUNA_EKS_GROUPS_PER_CLUSTER`` (30).
    """

    db: Path = Path("katuna.db")
    log_dir: Path | None = None
    busy_timeout: float = 30.0
    api_token: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    max_body: int = 1 << 20
    max_log: int = 8 << 20
    max_checkpoint: int = 4 << 30
    workdir: Path = Path(".")
    events: str = "queue"
    sink: str | None = None
    k8s_namespace: str | None = None
    k8s_service_account: str | None = None
    service_accounts: tuple[str, ...] = ("katuna",)
    service_secrets: tuple[str, ...] = ("katuna-api-token",)
    service_claims: tuple[str, ...] = ("katuna-data",)
    checkpoint_claim: str | None = None
    checkpoint_image: str | None = None
    trial_pod_security: str = "baseline"
    template_namespaces: tuple[str, ...] = ()
    k8s_image_pull_secrets: tuple[str, ...] = ()
    k8s_ttl_seconds: int | None = None
    k8s_default_resources: tuple[tuple[str, str], ...] = DEFAULT_RESOURCES
    k8s_start_allowance: int | None = None
    executor: str = LOCAL
    k8s_api: str | None = None
    report_url: str | None = None
    gke_project: str | None = None
    gke_location: str | None = None
    gke_cluster: str | None = None
    gke_endpoint: str | None = None
    gke_node_service_account: str | None = None
    eks_cluster: str | None = None
    eks_subnets: tuple[str, ...] = ()
    eks_node_role: str | None = None
    eks_region: str | None = None
    trial_env: tuple[str, ...] = ()
    trial_secrets: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    session_ttl: float = 12 * 3600.0
    tick_floor: float = 10.0
    oidc_audience: str | None = None
    oidc_subjects: tuple[str, ...] = ()
    oidc_issuer_url: str = "https://kubernetes.default.svc"
    max_dead_letters: int = 1000
    max_running_trials: int | None = None
    running_trials_by_default: bool = False
    in_cluster: bool = False
    katib_api: bool = False
    katib_trials_kept: int = TRIALS_KEPT
    lookahead: int = 1
    limits: Limits = Limits()
    node_look_seconds: float = LOOK_EVERY
    k8s_progress_seconds: float = 10.0
    k8s_keep_seconds: float = 30.0
    remote_timeout: float = REMOTE_TIMEOUT
    client_timeout: float = 15.0
    worker_timeout: int = 60
    pool_wait: float = POOL_WAIT
    sink_token_file: Path = Path("/oidc/token")
    sink_ca_certs: str | None = None
    trust_bundles: Path = Path(reporter.TRUST_BUNDLES)
    ce_overrides: tuple[tuple[str, str], ...] = ()
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings ``environ`` (the process's environment unless given) holds;
        :class:`InvalidSetting` naming the first one katuna cannot use."""
        env = os.environ if environ is None else environ
        values = {field: converted(PREFIX + name, kind, env[PREFIX + name])
                  for field, (name, kind) in VARIABLES.items() if env.get(PREFIX + name)}
        if env.get("K_SINK"):
            values["sink"] = env["K_SINK"]
            values.setdefault("report_url", env["K_SINK"])
        if env.get("K_CA_CERTS"):
            values["sink_ca_certs"] = env["K_CA_CERTS"]
        values["ce_overrides"] = ce_overrides(env.get(reporter.OVERRIDES, ""))
        values["in_cluster"] = bool(env.get("KUBERNETES_SERVICE_HOST"))
        values["limits"] = study_limits(env)
        if "max_running_trials" not in values:
            values["max_running_trials"] = default_running_trials(values.get("executor", LOCAL))
            values["running_trials_by_default"] = True
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        """Refuse a setting katuna cannot use, alone or beside the others, each check in turn."""
        self._check_choices()
        self._check_node_pools()
        self._check_trial_identity()
        self._check_checkpoints()
        self._check_trial_env()
        self._check_tokens()
        self._check_waits_and_dead_letters()
        self._check_sizes()
        self._check_counts()
        self._check_sink_certificates()

    def _check_choices(self) -> None:
        """Settings that name one of a few choices: where events go, the log lines' format and
        level, and where trials run."""
        if self.events not in ("queue", "reply"):
            raise InvalidSetting(f"{PREFIX}EVENTS: expected queue or reply, got {self.events!r}")
        if self.log_format not in FORMATS or self.log_level not in LEVELS:
            raise InvalidSetting(f"{PREFIX}LOG_FORMAT and {PREFIX}LOG_LEVEL: expected {' or '.join(FORMATS)}, and "
                                 f"{', '.join(LEVELS)}; got {self.log_format!r} and {self.log_level!r}")
        if self.executor not in RUNS_ON:
            raise InvalidSetting(f"{PREFIX}EXECUTOR: expected {' or '.join(RUNS_ON)}, got {self.executor!r}")

    def _check_checkpoints(self) -> None:
        """The claim of population-based training's checkpoints: a claim's name, none of the
        service's own (trials write to it), given with the image that seeds its folders."""
        claim, image = self.checkpoint_claim, self.checkpoint_image
        if claim is None:
            if image is not None:
                raise InvalidSetting(f"{PREFIX}CHECKPOINT_IMAGE: set only with {PREFIX}CHECKPOINT_CLAIM, the claim whose "
                                     "checkpoint folders its init containers seed")
            return
        if not CLAIM_NAME.fullmatch(claim):
            raise InvalidSetting(f"{PREFIX}CHECKPOINT_CLAIM: expected a PersistentVolumeClaim's name (lower-case "
                                 f"letters, digits, '-' and '.', at most 253), got {claim!r}")
        if claim in self.service_claims:
            raise InvalidSetting(f"{PREFIX}CHECKPOINT_CLAIM: {claim!r} is one of the service's own claims "
                                 f"({PREFIX}SERVICE_CLAIMS), which trials may never mount; name a claim made for "
                                 "checkpoints")
        if not image:
            raise InvalidSetting(f"{PREFIX}CHECKPOINT_IMAGE: required with {PREFIX}CHECKPOINT_CLAIM: katuna's own image "
                                 "(the one its Service runs), whose init container seeds each trial's checkpoint folder")

    def _check_trial_env(self) -> None:
        """The variables local trials get: names of variables, never the service's own settings or
        cloud credentials, and secrets only in the list that says they are."""
        for name, names, secrets in (("TRIAL_ENV", self.trial_env, False), ("TRIAL_SECRETS", self.trial_secrets, True)):
            problem = pass_through_problem(names, secrets)
            if problem:
                raise InvalidSetting(f"{PREFIX}{name}: {problem}")

    def _check_tokens(self) -> None:
        """The API and metrics tokens, where set: long enough not to be guessed, nothing but
        printable characters other than spaces, as an ``Authorization`` header carries them, and
        not the same token, which would give the metrics' scraper the whole API."""
        for name, token in (("API_TOKEN", self.api_token), ("METRICS_TOKEN", self.metrics_token)):
            if token is None:
                continue
            if len(token) < TOKEN_CHARACTERS or not token.isprintable() or any(c.isspace() for c in token):
                raise InvalidSetting(f"{PREFIX}{name}: expected a random token of at least {TOKEN_CHARACTERS} "
                                     f"characters, without spaces, got one of {len(token)}: a short token can be "
                                     "guessed (the API token offline, from any event katuna signs); make one with "
                                     f"{RANDOM_COMMAND}")
        if self.metrics_token is not None and self.metrics_token == self.api_token:
            raise InvalidSetting(f"{PREFIX}METRICS_TOKEN: the same as {PREFIX}API_TOKEN, which opens the whole API to "
                                 "whoever scrapes the metrics: give the scraper a token of its own, or set only "
                                 f"{PREFIX}API_TOKEN")

    def _check_counts(self) -> None:
        """Counts of trials and seconds that have a floor: at least one running trial, no
        negative look-ahead or start allowance, and a worker timeout of a second or more."""
        if self.max_running_trials is not None and self.max_running_trials < 1:
            raise InvalidSetting(f"{PREFIX}MAX_RUNNING_TRIALS: expected a positive number of trials, "
                                 f"got {self.max_running_trials}")
        if self.katib_trials_kept < LEAST_KEPT:
            raise InvalidSetting(f"{PREFIX}KATIB_TRIALS_KEPT: expected at least {LEAST_KEPT} Trials (as many as a "
                                 f"status's Trial list names), got {self.katib_trials_kept}")
        if self.lookahead < 0:
            raise InvalidSetting(f"{PREFIX}LOOKAHEAD: expected trials >= 0, got {self.lookahead}")
        if self.k8s_start_allowance is not None and self.k8s_start_allowance < 0:
            raise InvalidSetting(f"{PREFIX}K8S_START_ALLOWANCE: expected seconds >= 0, got {self.k8s_start_allowance}")
        if self.worker_timeout < 1:
            raise InvalidSetting(f"{PREFIX}WORKER_TIMEOUT: expected a whole number of seconds >= 1, "
                                 f"got {self.worker_timeout}")

    def _check_sizes(self) -> None:
        """Sizes and waits that must be positive (a read of a negative size reads everything), and
        the trial Jobs' TTL, long enough for katuna to read a finished trial's pods."""
        for name, value in (("MAX_BODY", self.max_body), ("MAX_LOG", self.max_log), ("MAX_CHECKPOINT", self.max_checkpoint),
                            ("BUSY_TIMEOUT", self.busy_timeout)):
            if not 0 < value < math.inf:
                raise InvalidSetting(f"{PREFIX}{name}: expected a positive number, got {value}")
        ttl = self.k8s_ttl_seconds
        if ttl is not None and ttl < MIN_TTL:
            raise InvalidSetting(f"{PREFIX}K8S_TTL_SECONDS: expected at least {MIN_TTL} seconds, got {ttl}: {TTL_WHY}")
        if ttl is not None and ttl > MAX_INT32:
            raise InvalidSetting(f"{PREFIX}K8S_TTL_SECONDS: expected at most {MAX_INT32} seconds (the Job's int32), "
                                 f"got {ttl}")

    def _check_waits_and_dead_letters(self) -> None:
        """Waits that must be a positive, finite number of seconds (an infinite one never ends),
        the tick floor, and room for at least one dead letter."""
        for setting in _POSITIVE_SECONDS:
            seconds = getattr(self, setting)
            if not 0 < seconds < math.inf:
                raise InvalidSetting(f"{PREFIX}{VARIABLES[setting][0]}: expected a positive number of seconds, "
                                     f"got {seconds}")
        if not 0 <= self.tick_floor < math.inf:
            raise InvalidSetting(f"{PREFIX}TICK_FLOOR: expected a number of seconds, 0 or more, got {self.tick_floor}")
        if self.max_dead_letters < 1:
            raise InvalidSetting(f"{PREFIX}MAX_DEAD_LETTERS: expected at least 1, got {self.max_dead_letters}")

    def _check_sink_certificates(self) -> None:
        """``K_CA_CERTS``, which the SinkBinding sets, must hold PEM certificates: an https sink
        could never be trusted without them."""
        if not self.sink_ca_certs:
            return
        try:
            reporter.tls_context(self.sink_ca_certs, str(self.trust_bundles))
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidSetting(f"K_CA_CERTS: expected PEM CA certificates for the sink, could not load them: "
                                 f"{exc}") from exc

    def _check_trial_identity(self) -> None:
        if self.k8s_service_account in self.service_accounts:
            raise InvalidSetting(f"{PREFIX}K8S_SERVICE_ACCOUNT: {self.k8s_service_account!r} is one of the service's own "
                             f"accounts ({PREFIX}SERVICE_ACCOUNTS), which trials may never run as; name an account "
                             "made for trials")
        shared = [name for name in self.k8s_image_pull_secrets if name in self.service_secrets]
        if shared:
            raise InvalidSetting(f"{PREFIX}K8S_IMAGE_PULL_SECRETS: {shared[0]!r} is one of the service's own Secrets "
                             f"({PREFIX}SERVICE_SECRETS), which trials may never name; name a Secret made for trials")
        if self.trial_pod_security not in pod_security.LEVELS:
            raise InvalidSetting(f"{PREFIX}TRIAL_POD_SECURITY: expected {', '.join(pod_security.LEVELS[:-1])} or "
                                 f"{pod_security.LEVELS[-1]}, got {self.trial_pod_security!r}")
        self._check_senders()
        wrong = [name for name in self.template_namespaces if not NAMESPACE.fullmatch(name)]
        if wrong:
            raise InvalidSetting(f"{PREFIX}TEMPLATE_NAMESPACES: expected namespace names (lower-case letters, digits "
                             f"and '-', at most 63), got {wrong[0]!r}")
        account = self.gke_node_service_account
        if account is not None and not GSA_EMAIL.fullmatch(account):
            raise InvalidSetting(f"{PREFIX}GKE_NODE_SERVICE_ACCOUNT: expected a Google service account's email "
                             f"(NAME@PROJECT_ID.iam.gserviceaccount.com), got {account!r}")

    def _check_senders(self) -> None:
        for subject in self.oidc_subjects:
            problem = senders.subject_problem(subject)
            if problem:
                raise InvalidSetting(f"{PREFIX}OIDC_SUBJECTS: {problem}")
        default = senders.account_subject(self.k8s_namespace or "default", self.k8s_service_account or "default")
        if senders.allowed(default, self.oidc_subjects):
            raise InvalidSetting(f"{PREFIX}OIDC_SUBJECTS: {default!r}, the account trials run as by default "
                             f"({PREFIX}K8S_SERVICE_ACCOUNT in {PREFIX}K8S_NAMESPACE), may send katuna events; "
                             "trials may never: name only the Triggers' accounts")

    def _check_node_pools(self) -> None:
        if self.gke_cluster and self.eks_cluster:
            raise InvalidSetting(f"{PREFIX}GKE_CLUSTER and {PREFIX}EKS_CLUSTER: node pools live in one cloud; set one")
        if self.gke_cluster:
            for name in ("project", "location"):
                if not getattr(self, f"gke_{name}"):
                    raise InvalidSetting(f"{PREFIX}GKE_{name.upper()}: required with {PREFIX}GKE_CLUSTER")
        if self.eks_cluster and not (self.eks_subnets and self.eks_node_role):
            raise InvalidSetting(f"{PREFIX}EKS_SUBNETS and {PREFIX}EKS_NODE_ROLE: required with {PREFIX}EKS_CLUSTER")
        if self.eks_node_role and not IAM_ROLE_ARN.fullmatch(self.eks_node_role):
            raise InvalidSetting(f"{PREFIX}EKS_NODE_ROLE: expected {ROLE_EXPECTED}, got {self.eks_node_role!r}")
        groups = self.limits.eks.groups_per_cluster
        if self.eks_cluster and self.limits.pools > groups:
            raise InvalidSetting(f"{PREFIX}MAX_POOLS: expected at most {groups} with {PREFIX}EKS_CLUSTER (EKS's quota of "
                             f"managed node groups per cluster; where the account's quota is raised, set "
                             f"{PREFIX}EKS_GROUPS_PER_CLUSTER to it), got {self.limits.pools}")

    @property
    def running_trials_set_by(self) -> str:
        """What set the bound on the trials running at once, for the note of a trial that waits
        for room (:mod:`functions.handlers.spawn`)."""
        if not self.running_trials_by_default:
            return f"{PREFIX}MAX_RUNNING_TRIALS"
        where = "this machine's CPUs" if self.executor == LOCAL else "the default where trials run as Jobs"
        return f"{where}, as {PREFIX}MAX_RUNNING_TRIALS is unset"

    def with_executor(self, executor: str) -> Settings:
        """These settings with trials run ``executor`` (``katuna serve --executor``): a bound on
        the trials running at once left to its default is that executor's default."""
        bound = default_running_trials(executor) if self.running_trials_by_default else self.max_running_trials
        return replace(self, executor=executor, max_running_trials=bound)

    @property
    def node_pool_provider(self) -> str | None:
        """The cloud whose node pools studies may ask for: gke, eks, or None."""
        return "gke" if self.gke_cluster else "eks" if self.eks_cluster else None

    @property
    def passed_to_trials(self) -> tuple[str, ...]:
        """The variables of the service's environment local trials get besides their minimal
        one: ``KATUNA_TRIAL_ENV``'s and ``KATUNA_TRIAL_SECRETS``'."""
        return self.trial_env + self.trial_secrets

    @property
    def runs_jobs(self) -> bool:
        """Whether trials run as Kubernetes Jobs (``KATUNA_EXECUTOR=kubernetes``), not local processes."""
        return self.executor == KUBERNETES

    @property
    def event_key(self) -> bytes | None:
        """The key katuna signs its events with, made from the API token; None without one."""
        return event_signature.event_key(self.api_token) if self.api_token else None

    def sink_tls(self) -> ssl.SSLContext:
        """The TLS context for an https ``K_SINK``, trusting what Knative's senders trust; asked
        for at each post, so a rotated trust bundle is trusted from the next one."""
        return reporter.tls_context(self.sink_ca_certs, str(self.trust_bundles))

    def with_db(self, db: str | Path | None) -> Settings:
        return self if db is None else replace(self, db=Path(db))

    def cluster_defaults(self) -> Cluster:
        """What trial Jobs use where a study's ``kubernetes`` section says nothing."""
        return Cluster(namespace=self.k8s_namespace, service_account=self.k8s_service_account,
                       image_pull_secrets=self.k8s_image_pull_secrets, ttl_seconds_after_finished=self.k8s_ttl_seconds,
                       default_resources=self.k8s_default_resources, start_allowance=self.k8s_start_allowance,
                       reserved_accounts=self.service_accounts, reserved_secrets=self.service_secrets,
                       reserved_claims=self.service_claims,
                       sender_subjects=self.oidc_subjects, pod_security=self.trial_pod_security,
                       checkpoints=self._checkpoint_volume())

    def _checkpoint_volume(self) -> CheckpointVolume | None:
        if self.checkpoint_claim is None or self.checkpoint_image is None:
            return None
        return CheckpointVolume(self.checkpoint_claim, self.checkpoint_image, self.max_checkpoint)

    @property
    def logs(self) -> Path:
        return self.log_dir or self.db.with_name(self.db.stem + "-logs")
