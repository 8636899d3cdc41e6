"""Trials as Kubernetes Jobs: a study's ``kubernetes`` section and the labels of trial Jobs.

The Job of one attempt is rendered by :mod:`functions.core.job`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from functions.core import pod_fields
from functions.core.checkpoint_volume import CheckpointVolume
from functions.core.reader import Reader, join

STUDY_LABEL = "katuna.dev/study"
TRIAL_LABEL = "katuna.dev/trial"
ATTEMPT_LABEL = "katuna.dev/attempt"
UID_LABEL = "katuna.dev/uid"
SINK_BINDING_LABEL = "katuna.dev/sink-binding"
"""The label of a trial Job that a SinkBinding selects it by (:attr:`Cluster.sink_binding`)."""
TRIAL_TAINT = {"key": "katuna.dev/trial", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
START_ALLOWANCE = 3600
"""Seconds, by default, that a trial's Job may spend beyond its timeout (see :attr:`Cluster.start_allowance`)."""
TTL = 3600
"""Seconds, by default, that a finished trial Job (and its pods) is kept (``ttlSecondsAfterFinished``)."""
MIN_TTL = 600
"""The least ``ttlSecondsAfterFinished`` a trial Job may have: Kubernetes deletes the Job and its
pods once it runs out, and katuna must still find the finished trial's pods when it reads their
logs (on Knative it learns of an end at the next minute's tick, and a retried delivery takes longer)."""
TTL_WHY = ("katuna reads the finished trial's metrics and exit code from its Job's pods, which the TTL deletes, "
           "after learning of its end (on Knative at the next minute's tick, and a delivery retried with back-off "
           "takes longer)")
"""Why a shorter TTL than :data:`MIN_TTL` is refused, for the refusals that name it."""


@dataclass(frozen=True)
class Cluster:
    """Where and how trial Jobs run; unset fields fall back to the service's defaults."""

    namespace: str | None = None
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    ttl_seconds_after_finished: int | None = None
    backoff_limit: int = 0
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Mapping[str, Any], ...] = (TRIAL_TAINT,)
    default_resources: tuple[tuple[str, str], ...] = ()
    """Container resources of trials whose template names none (from the service's settings)."""
    automount_token: bool | None = None
    """Whether trial pods get their service account's API token (``automountServiceAccountToken``):
    only when the study asks; a trial's code needs no Kubernetes API."""
    run_as_user: int | None = None
    """The user id a trial container runs as (the pod's ``runAsUser``), in place of its image's
    own: a non-root one, for an image whose ``USER`` is root or a name where the pods must not run
    as root (:mod:`functions.core.pod_security_restricted`). Only for the Job katuna renders: a
    ``trialSpec`` sets its own ``securityContext``."""
    reserved_accounts: tuple[str, ...] = ()
    """The katuna service's own service accounts, which no trial pod may run as (from the
    service's settings; see :mod:`functions.core.trial_identity`)."""
    reserved_secrets: tuple[str, ...] = ()
    """The katuna service's own Secrets, which no trial pod may name (from the service's
    settings; see :mod:`functions.core.trial_identity`)."""
    reserved_claims: tuple[str, ...] = ()
    """The katuna service's own PersistentVolumeClaims (its database), which no trial pod may
    mount (from the service's settings; see :mod:`functions.core.trial_identity`)."""
    trial_kinds: tuple[tuple[str, str], ...] = ()
    """The ``(apiVersion, kind)`` of the operator's own workload kinds a ``trialSpec`` may be
    besides those katuna knows (``KATUNA_TRIAL_KINDS``, from the service's settings; see
    :func:`functions.core.trial_kinds.taken`)."""
    sender_subjects: tuple[str, ...] = ()
    """The subjects katuna takes events from (from the service's settings; see
    :mod:`functions.core.senders`): no trial pod may run as an account they name in its namespace."""
    pod_security: str = "baseline"
    """``baseline``: trial pods may not ask for what Kubernetes' baseline Pod Security Standard
    forbids (privileged, the node's namespaces or files); ``restricted``: nor fall short of the
    restricted one (``runAsNonRoot`` among others); ``privileged``: the operator lifted it
    (from the service's settings; see :mod:`functions.core.pod_security`)."""
    start_allowance: int | None = None
    """Seconds a trial's pod may spend not running its trial (waiting for a node, pulling the
    image) on top of its timeout: the Job's ``activeDeadlineSeconds`` is the timeout plus this,
    for each run the Job may make (:func:`functions.core.job.job_deadline`), a backstop. The
    timeout itself counts from the start of the trial's container (the executor measures it), so
    waiting for a node never times a trial out; a pod that cannot start (its image cannot be
    pulled, no node fits it) for this long fails its trial."""
    sink_binding: str | None = None
    """The SinkBinding that binds trial Jobs by :data:`SINK_BINDING_LABEL`, which each Job katuna
    makes then carries with this value (``KATUNA_TRIAL_SINK_BINDING``, from the service's
    settings): Jobs made before it are not selected, as Eventing's reconciler would patch their
    immutable template, be refused, and stop there, minting no OIDC token for the binding."""
    checkpoints: CheckpointVolume | None = None
    """Where population-based training keeps its trials' checkpoints, for trials that run as
    Jobs (``KATUNA_CHECKPOINT_CLAIM``, from the service's settings; see
    :mod:`functions.core.checkpoint_volume`); None: such a study is refused."""

    def with_defaults(self, defaults: Cluster) -> Cluster:
        return replace(
            self,
            namespace=self.namespace or defaults.namespace or "default",
            service_account=self.service_account or defaults.service_account,
            image_pull_secrets=self.image_pull_secrets or defaults.image_pull_secrets,
            ttl_seconds_after_finished=_first(self.ttl_seconds_after_finished, defaults.ttl_seconds_after_finished, TTL),
            default_resources=self.default_resources or defaults.default_resources,
            reserved_accounts=defaults.reserved_accounts,
            reserved_secrets=defaults.reserved_secrets,
            reserved_claims=defaults.reserved_claims,
            trial_kinds=defaults.trial_kinds,
            sender_subjects=defaults.sender_subjects,
            pod_security=defaults.pod_security,
            checkpoints=defaults.checkpoints,
            sink_binding=defaults.sink_binding,
            start_allowance=_first(self.start_allowance, defaults.start_allowance, START_ALLOWANCE),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace, "serviceAccountName": self.service_account,
            "imagePullSecrets": list(self.image_pull_secrets) or None,
            "ttlSecondsAfterFinished": self.ttl_seconds_after_finished, "backoffLimit": self.backoff_limit,
            "nodeSelector": dict(self.node_selector) or None, "tolerations": [dict(t) for t in self.tolerations],
            "automountServiceAccountToken": self.automount_token, "runAsUser": self.run_as_user,
        }
        return {k: v for k, v in out.items() if v is not None}


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


_FIELDS = {"namespace", "serviceAccountName", "automountServiceAccountToken", "imagePullSecrets",
           "ttlSecondsAfterFinished", "backoffLimit", "nodeSelector", "tolerations", "runAsUser"}
MAX_INT32 = 2**31 - 1
"""The largest number an ``int32`` field of Kubernetes' API holds: a larger one is not decoded,
and the whole request is refused."""
MAX_INT64 = 2**63 - 1
"""The largest number an ``int64`` field holds."""
MAX_JOB_DEADLINE = MAX_INT64 // 1_000_000_000
"""The longest ``activeDeadlineSeconds`` (about 292 years) the Job controller counts as given:
it reads the field as a Go ``time.Duration`` (``pastActiveDeadline``: seconds times
``time.Second``, int64 nanoseconds), which wraps past that, a larger deadline reading as
another, most often one already past (``2**63 - 1`` seconds as -1 s), so the Job fails with
``DeadlineExceeded`` at its first sync. The API takes any int64."""
MAX_USER = MAX_INT32
"""The greatest user id Kubernetes takes (``IsValidUserID``)."""


def parse_cluster(r: Reader, data: Any, trial_spec: bool = False) -> Cluster:
    """The ``kubernetes`` section of a study (one whose trials are a ``trial_spec``'s, or katuna's
    own Job); problems go to ``r``."""
    path = "kubernetes"
    item = r.mapping(data, path, _FIELDS)
    secrets = r.get(item, "imagePullSecrets", path, "list") or []
    for i, secret in enumerate(secrets):
        if not isinstance(secret, str) or not secret:
            r.fail(f"{path}.imagePullSecrets[{i}]", "expected a secret name")
    counts = {key: r.get(item, key, path, "int") for key in ("ttlSecondsAfterFinished", "backoffLimit", "runAsUser")}
    _check_counts(r, path, counts, trial_spec)
    user = counts["runAsUser"]
    selector = r.get(item, "nodeSelector", path, "mapping") or {}
    pod_fields.check_node_selector(r, selector, join(path, "nodeSelector"))
    tolerations = r.get(item, "tolerations", path, "list")
    for i, toleration in enumerate(tolerations or []):
        pod_fields.check_toleration(r, toleration, f"{path}.tolerations[{i}]")
    account = r.get(item, "serviceAccountName", path, "str")
    if account is not None and not pod_fields.is_dns_subdomain(account):
        r.fail(join(path, "serviceAccountName"), "expected a service account name: lower-case letters, digits, '-' "
                                                 f"and '.', starting and ending with a letter or digit, got {account!r}")
    return Cluster(
        namespace=r.get(item, "namespace", path, "str"),
        service_account=account,
        automount_token=r.get(item, "automountServiceAccountToken", path, "bool"),
        run_as_user=user if user is not None and 0 < user <= MAX_USER else None,
        image_pull_secrets=tuple(s for s in secrets if isinstance(s, str)),
        ttl_seconds_after_finished=counts["ttlSecondsAfterFinished"],
        backoff_limit=counts["backoffLimit"] or 0,
        node_selector=tuple(sorted((k, v) for k, v in selector.items() if isinstance(v, str))),
        tolerations=tuple(tolerations) if tolerations is not None else (TRIAL_TAINT,),
    )


def _check_counts(r: Reader, path: str, counts: dict[str, int | None], trial_spec: bool) -> None:
    """Tell ``r`` of each of the section's numbers out of the range its Job field takes: a user id
    of root (or any with a ``trialSpec``, whose pod template says it), an int32 out of range, a
    TTL too short for katuna to read the ended Job's pods."""
    user = counts["runAsUser"]
    if user is not None and not 0 < user <= MAX_USER:
        r.fail(join(path, "runAsUser"), f"expected a user id from 1 to {MAX_USER}, not root (0), got {user}: it "
                                        "stands for the image's own user where that is root or a name")
    elif user is not None and trial_spec:
        r.fail(join(path, "runAsUser"), "expected none with a trialSpec: give runAsUser in the securityContext of its "
                                        "pod template, which katuna leaves as written")
    backoff = counts["backoffLimit"]
    if backoff is not None and not 0 <= backoff <= MAX_INT32:
        r.fail(join(path, "backoffLimit"), f"expected an integer from 0 to {MAX_INT32} (the Job's int32), got {backoff}")
    ttl = counts["ttlSecondsAfterFinished"]
    if ttl is not None and ttl < MIN_TTL:
        r.fail(join(path, "ttlSecondsAfterFinished"), f"expected at least {MIN_TTL} (or none), got {ttl}: {TTL_WHY}")
    elif ttl is not None and ttl > MAX_INT32:
        r.fail(join(path, "ttlSecondsAfterFinished"), f"expected at most {MAX_INT32} seconds (the Job's int32), got {ttl}")
