"""Settings, read once from the environment into a frozen object (never at import time).

Every variable has the ``KATUNA_`` prefix, except those Knative's SinkBinding sets (``K_SINK``,
``K_CA_CERTS`` and ``K_CE_OVERRIDES``) and ``KUBERNETES_SERVICE_HOST``, which Kubernetes sets in
every pod. What each setting is and its default are here, and in
:mod:`functions.settings.access` for who may reach the service; which variable sets it is
:mod:`functions.settings.variables`, how its text becomes its value
:mod:`functions.settings.values`, how the environment is read
:mod:`functions.settings.environment`, and which values and combinations katuna refuses
:mod:`functions.settings.checks`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from functions.core.checkpoint_volume import CheckpointVolume
from functions.core.cluster import Cluster
from functions.core.file_systems import NetworkRule, network_rule
from functions.core.installation import ORPHAN_GRACE, identity
from functions.core.katib_trials import TRIALS_KEPT
from functions.core.limits import PREFIX, Limits
from functions.core.node_hours import LOOK_EVERY
from functions.core.records import KUBERNETES, LOCAL
from functions.core.tfevent_budget import MAX_READ
from functions.core.timeouts import POOL_WAIT, REMOTE_TIMEOUT
from functions.settings import environment
from functions.settings.access import AccessSettings
from functions.settings.checks import check
from functions.settings.environment import DEFAULT_DB
from functions.settings.variables import default_running_trials

DEFAULT_RESOURCES = (("cpu", "1"), ("memory", "2Gi"))
"""The resources of a trial container whose study names neither cpu nor memory, unless
``KATUNA_K8S_DEFAULT_RESOURCES`` says otherwise: a pod without them is BestEffort, the first
evicted and with no memory limit, and a node pool's autoscaler would never grow for it."""


@dataclass(frozen=True)
class Settings(AccessSettings):
    """Where state lives, how the HTTP service behaves, and where emitted events go; who may
    reach the service, and how its events reach their sink, are
    :class:`~functions.settings.access.AccessSettings`'.

    ``KATUNA_DB`` (default ``./katuna.db``); ``KATUNA_DB_ON_NETWORK_FS`` (unset: ``katuna serve``
    refuses a database on a network or FUSE file system, where SQLite's write-ahead log is
    unsafe, and the other commands keep it with a rollback journal; ``allow``: every command
    keeps it so; ``refuse``: none opens it; :mod:`functions.core.file_systems`); ``KATUNA_LOG_DIR`` (default ``<db stem>-logs``
    beside the database); ``KATUNA_BUSY_TIMEOUT`` seconds (30); ``KATUNA_MAX_BODY`` bytes of a request body (1 MiB); ``KATUNA_MAX_LOG`` bytes of a
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
    whose trial pods would mount one is refused; ``KATUNA_TRIAL_KINDS`` (comma-separated
    ``Kind.version.group``, as Katib's ``trialResources``: ``RayJob.v1.ray.io``; none by default),
    the operator's own workload kinds a ``trialSpec`` may be besides those katuna knows: a study of
    any other kind is refused (:func:`functions.core.trial_kinds.added_kind`); ``KATUNA_CHECKPOINT_CLAIM`` (unset: population-based
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
    ``KATUNA_INSTALLATION`` (unset: the Knative service's namespace and name, else the host's name
    and the database's path), the identity labelled on every trial workload, and ``KATUNA_ORPHAN_GRACE`` seconds
    (1800, at least 300) after which the tick deletes a running one of this identity whose study
    the store does not hold (:mod:`functions.adapters.kubernetes_orphans`), and a node pool of
    this identity no stored study uses (:mod:`functions.handlers.pool_orphans`);
    ``KATUNA_K8S_START_ALLOWANCE`` seconds (3600) a
    trial's pod may spend waiting for a node and pulling its image (its Job's
    ``activeDeadlineSeconds`` is the timeout plus this, for each run the Job may make; the
    timeout itself counts from the trial container's start; a pod that cannot start for this
    long, or a Job suspended this long, fails its trial);
    ``KATUNA_EXECUTOR``: ``local`` (trials are processes here) or ``kubernetes`` (trials are
    Jobs; the API from in-cluster configuration, the kubeconfig, or ``KATUNA_K8S_API``, a proxy
    that adds credentials such as ``kubectl proxy``: katuna sends none to it);
    ``KATUNA_REPORT_URL``, where trial Jobs of studies with early stopping post their progress
    (:mod:`functions.reporter`; unset: ``K_SINK``, the broker that a SinkBinding names);
    ``KATUNA_TRIAL_SINK_BINDING``, the name of a SinkBinding that binds trial Jobs by the label
    ``katuna.dev/sink-binding`` with that value, which katuna gives the Jobs it makes from then on
    (a binding that selected Jobs made before it would have to change their immutable template,
    and Eventing's reconciler stops at the first it cannot). Node pools for studies with a
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
    and a secret's (a name with the word ``TOKEN``, ``SECRET``, ``PASSWORD``, ``API_KEY``, ``DSN``...,
    or ending in ``_PASS``, ``_KEY``, ``_AUTH``...) are refused at start. ``KATUNA_TRIAL_SECRETS`` (none): the trials' own secrets they get so (say
    ``WANDB_API_KEY``), each named there on purpose; never a ``KATUNA_*`` name or a cloud
    credential's. ``KATUNA_LOOKAHEAD`` (1): trials
    ``katuna run`` asks the sampler for ahead of a free slot, while the study's trials run, so a
    slot that frees is refilled without waiting for the sampler (0: ask only when a slot frees).
    ``KATUNA_LOG_FORMAT``: ``text`` (the default; ``time level logger pid message``) or ``json``
    (one object a line, with ``severity``, as Cloud Logging reads it: the image's default) for
    the service's own log lines and gunicorn's; ``KATUNA_LOG_LEVEL`` (``INFO``; ``DEBUG`` adds a
    line per routine event dropped, ``WARNING`` or ``ERROR`` fewer) for katuna's loggers
    (:mod:`functions.adapters.log_lines`).

    ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's own variable, not a setting): where gunicorn
    workers keep their counts; ``katuna serve`` empties it of an earlier run's counts, or makes one.
    ``KATUNA_MAX_DEAD_LETTERS`` dead letters kept, the oldest dropped first (1000), each at most
    ``KATUNA_MAX_BODY`` bytes, of those vouched for, and apart as many of those nobody vouches for. ``KATUNA_MAX_CHECKPOINT`` (4,096 MiB): the most bytes of a trial's
    checkpoint folder copied for a child trial under population-based training (a larger one
    fails the child: :mod:`functions.adapters.local_checkpoints`). ``KATUNA_MAX_TFEVENTS`` (16 MiB):
    the most bytes of records read of a local attempt's TensorFlow event files, all of them
    together; past it the trial fails, its reason naming this setting (on a cluster the trial's
    container reads them, without a limit: :data:`functions.core.tfevent_budget.MAX_READ`). ``KATUNA_PRUNE_CHECKPOINTS``
    (false): ``true`` deletes, as trials end, the checkpoint folders of population-based training
    no later trial can copy (:mod:`functions.handlers.checkpoint_prunes`): a local trial's at once,
    a trial Job's on the claim by a Job (:func:`functions.core.checkpoint_drop.prune_job`).
    ``KATUNA_MAX_RUNNING_TRIALS``: the most trials ``katuna run`` and
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
    ``KATUNA_MAX_POOL_DISK_GB`` GiB of each node's boot disk (1,000);
    ``KATUNA_MAX_ACCELERATORS`` GPUs on one node (8);
    ``KATUNA_MAX_STUDIES`` studies not ended the database holds at once (500: each costs the
    service work at every tick);
    ``KATUNA_MAX_POOLS`` pools katuna's studies hold at once (10; at most
    ``KATUNA_EKS_GROUPS_PER_CLUSTER`` on EKS); ``KATUNA_POOL_MACHINE_TYPES`` (comma-separated,
    unset: any), the GKE machine types and EC2 instance types a pool may have. The EKS account's
    service quotas, each a positive integer, where the account has them raised
    (:class:`functions.core.limits.EksQuotas`): ``KATUNA_EKS_NODES_PER_GROUP`` (450), the most
    ``nodePool.maxNodes`` of an EKS study, and ``KATUNA_EKS_GROUPS_PER_CLUSTER`` (30).
    """

    db: Path = DEFAULT_DB
    found_db: Path = DEFAULT_DB
    """The database a command finds by itself (``KATUNA_DB``, else ``./katuna.db``), whatever
    ``--db`` gave this one (:meth:`with_db`): the one a command katuna tells the user to run next
    reaches without ``--db`` (:func:`functions.cli_common.on_database`)."""
    db_on_network_fs: str | None = None
    log_dir: Path | None = None
    busy_timeout: float = 30.0
    max_body: int = 1 << 20
    max_log: int = 8 << 20
    max_checkpoint: int = 4 << 30
    max_tfevents: int = MAX_READ
    prune_checkpoints: bool = False
    workdir: Path = Path(".")
    events: str = "queue"
    sink: str | None = None
    k8s_namespace: str | None = None
    k8s_service_account: str | None = None
    service_accounts: tuple[str, ...] = ("katuna",)
    service_secrets: tuple[str, ...] = ("katuna-api-token",)
    service_claims: tuple[str, ...] = ("katuna-data",)
    trial_kinds: tuple[tuple[str, str], ...] = ()
    checkpoint_claim: str | None = None
    checkpoint_image: str | None = None
    trial_pod_security: str = "baseline"
    trial_sink_binding: str | None = None
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
    pool_wait: float = POOL_WAIT
    log_format: str = "text"
    log_level: str = "INFO"
    installation: str | None = None
    orphan_grace: float = ORPHAN_GRACE
    knative_service: str | None = None
    """``K_SERVICE``, which Knative sets to the service's name."""
    service_namespace: str | None = None
    """The namespace the service's pod runs in (its service account's), where ``K_SERVICE`` is set."""
    host: str = ""
    """This machine's name, part of the installation's identity off Knative."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings ``environ`` (the process's environment unless given) holds;
        :class:`~functions.core.errors.InvalidSetting` naming the first one katuna cannot use
        (:func:`functions.settings.environment.from_environment`)."""
        settings = cls(**environment.from_environment(os.environ if environ is None else environ))
        check(settings)
        return settings

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

    def network_rule(self, service: bool) -> NetworkRule:
        """What the service (``service``) or a command does with a database on a network file
        system (``KATUNA_DB_ON_NETWORK_FS``, :func:`functions.core.file_systems.network_rule`)."""
        return network_rule(self.db_on_network_fs, service)

    def with_db(self, db: str | Path | None) -> Settings:
        """These settings on the database ``db`` (``--db``), where given; :attr:`found_db` kept."""
        return self if db is None else replace(self, db=Path(db))

    def cluster_defaults(self) -> Cluster:
        """What trial Jobs use where a study's ``kubernetes`` section says nothing."""
        return Cluster(namespace=self.k8s_namespace, service_account=self.k8s_service_account,
                       image_pull_secrets=self.k8s_image_pull_secrets, ttl_seconds_after_finished=self.k8s_ttl_seconds,
                       default_resources=self.k8s_default_resources, start_allowance=self.k8s_start_allowance,
                       reserved_accounts=self.service_accounts, reserved_secrets=self.service_secrets,
                       reserved_claims=self.service_claims, trial_kinds=self.trial_kinds,
                       sender_subjects=self.oidc_subjects, pod_security=self.trial_pod_security,
                       sink_binding=self.trial_sink_binding,
                       checkpoints=self._checkpoint_volume())

    def _checkpoint_volume(self) -> CheckpointVolume | None:
        if self.checkpoint_claim is None or self.checkpoint_image is None:
            return None
        return CheckpointVolume(self.checkpoint_claim, self.checkpoint_image, self.max_checkpoint)

    @property
    def installation_id(self) -> str:
        """The identity the trial workloads this installation creates are labelled with
        (:func:`functions.core.installation.identity`)."""
        return identity(self.installation, self.knative_service, self.service_namespace, str(self.db.absolute()),
                        self.host)

    @property
    def logs(self) -> Path:
        return self.log_dir or self.db.with_name(self.db.stem + "-logs")
