"""Which settings and combinations katuna refuses, checked once when they are read.

Kept apart from :class:`functions.settings.Settings`, which says what each setting is and holds
its value: these are the rules across settings (a claim with its image, tokens long enough and
distinct, one cloud's node pools) and the names they must match. Each refusal is an
:class:`InvalidSetting` naming the variable, so katuna stops at start with one line saying which.
"""

from __future__ import annotations

import math
import re
import ssl
from typing import TYPE_CHECKING

from functions import reporter
from functions.adapters.log_lines import FORMATS, LEVELS
from functions.adapters.trial_env import pass_through_problem
from functions.core import installation, labels, pod_security, senders
from functions.core.cluster import MAX_INT32, MIN_TTL, TTL_WHY
from functions.core.errors import InvalidSetting
from functions.core.file_systems import ALLOW, REFUSE
from functions.core.katib_trials import LEAST_KEPT
from functions.core.limits import PREFIX
from functions.core.records import RUNS_ON
from functions.settings.variables import POSITIVE_SECONDS, VARIABLES

if TYPE_CHECKING:
    from functions.settings import Settings

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
TOKEN_VARIETY = 8
"""The fewest different characters of such a token. Long enough is not random enough: 22 of one
character, or a word written over and over, is as easily guessed as a short token. A random
token of 22 characters or more holds fewer than 8 different ones about once in 10,000 tokens
where it is hexadecimal, and next to never where it is :func:`secrets.token_urlsafe`'s."""
RANDOM_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check(settings: Settings) -> None:
    """Refuse a setting katuna cannot use, alone or beside the others, each check in turn."""
    _choices(settings)
    _node_pools(settings)
    _trial_identity(settings)
    _checkpoints(settings)
    _trial_env(settings)
    _tokens(settings)
    _waits_and_dead_letters(settings)
    _sizes(settings)
    _counts(settings)
    _sink_certificates(settings)
    _installation(settings)


def _choices(settings: Settings) -> None:
    """Settings that name one of a few choices: where events go, the log lines' format and
    level, where trials run, and whether a database on a network file system is opened."""
    if settings.events not in ("queue", "reply"):
        raise InvalidSetting(f"{PREFIX}EVENTS: expected queue or reply, got {settings.events!r}")
    if settings.log_format not in FORMATS or settings.log_level not in LEVELS:
        raise InvalidSetting(f"{PREFIX}LOG_FORMAT and {PREFIX}LOG_LEVEL: expected {' or '.join(FORMATS)}, and "
                             f"{', '.join(LEVELS)}; got {settings.log_format!r} and {settings.log_level!r}")
    if settings.executor not in RUNS_ON:
        raise InvalidSetting(f"{PREFIX}EXECUTOR: expected {' or '.join(RUNS_ON)}, got {settings.executor!r}")
    if settings.db_on_network_fs not in (None, ALLOW, REFUSE):
        raise InvalidSetting(f"{PREFIX}DB_ON_NETWORK_FS: expected {ALLOW} or {REFUSE}, got {settings.db_on_network_fs!r}")


def _checkpoints(settings: Settings) -> None:
    """The claim of population-based training's checkpoints: a claim's name, none of the
    service's own (trials write to it), given with the image that seeds its folders."""
    claim, image = settings.checkpoint_claim, settings.checkpoint_image
    if claim is None:
        if image is not None:
            raise InvalidSetting(f"{PREFIX}CHECKPOINT_IMAGE: set only with {PREFIX}CHECKPOINT_CLAIM, the claim whose "
                                 "checkpoint folders its init containers seed")
        return
    if not CLAIM_NAME.fullmatch(claim):
        raise InvalidSetting(f"{PREFIX}CHECKPOINT_CLAIM: expected a PersistentVolumeClaim's name (lower-case "
                             f"letters, digits, '-' and '.', at most 253), got {claim!r}")
    if claim in settings.service_claims:
        raise InvalidSetting(f"{PREFIX}CHECKPOINT_CLAIM: {claim!r} is one of the service's own claims "
                             f"({PREFIX}SERVICE_CLAIMS), which trials may never mount; name a claim made for "
                             "checkpoints")
    if not image:
        raise InvalidSetting(f"{PREFIX}CHECKPOINT_IMAGE: required with {PREFIX}CHECKPOINT_CLAIM: katuna's own image "
                             "(the one its Service runs), whose init container seeds each trial's checkpoint folder")


def _trial_env(settings: Settings) -> None:
    """The variables local trials get: names of variables, never the service's own settings or
    cloud credentials, and secrets only in the list that says they are."""
    for name, names, secrets in (("TRIAL_ENV", settings.trial_env, False), ("TRIAL_SECRETS", settings.trial_secrets, True)):
        problem = pass_through_problem(names, secrets)
        if problem:
            raise InvalidSetting(f"{PREFIX}{name}: {problem}")


def _tokens(settings: Settings) -> None:
    """The API and metrics tokens, where set: long enough not to be guessed, nothing but
    printable characters other than spaces, as an ``Authorization`` header carries them, and
    not the same token, which would give the metrics' scraper the whole API."""
    for name, token in (("API_TOKEN", settings.api_token), ("METRICS_TOKEN", settings.metrics_token)):
        if token is None:
            continue
        if not token.isprintable() or any(c.isspace() for c in token):
            raise InvalidSetting(f"{PREFIX}{name}: expected a random token of printable characters without spaces, "
                                 "as an Authorization header carries it, got one with a space or a control "
                                 f"character; make one with {RANDOM_COMMAND}")
        if len(token) < TOKEN_CHARACTERS:
            raise InvalidSetting(f"{PREFIX}{name}: expected a random token of at least {TOKEN_CHARACTERS} "
                                 f"characters, without spaces, got one of {len(token)}: a short token can be "
                                 "guessed (the API token offline, from any event katuna signs); make one with "
                                 f"{RANDOM_COMMAND}")
        pattern = _pattern(token)
        if pattern:
            raise InvalidSetting(f"{PREFIX}{name}: expected a random token, got one that {pattern}: such a token "
                                 "is guessed as easily as a short one (the API token offline, from any event "
                                 f"katuna signs); make one with {RANDOM_COMMAND}")
    if settings.metrics_token is not None and settings.metrics_token == settings.api_token:
        raise InvalidSetting(f"{PREFIX}METRICS_TOKEN: the same as {PREFIX}API_TOKEN, which opens the whole API to "
                             "whoever scrapes the metrics: give the scraper a token of its own, or set only "
                             f"{PREFIX}API_TOKEN")


def _counts(settings: Settings) -> None:
    """Counts of trials and seconds that have a floor: at least one running trial, no
    negative look-ahead or start allowance, and a worker timeout of a second or more."""
    if settings.max_running_trials is not None and settings.max_running_trials < 1:
        raise InvalidSetting(f"{PREFIX}MAX_RUNNING_TRIALS: expected a positive number of trials, "
                             f"got {settings.max_running_trials}")
    if settings.katib_trials_kept < LEAST_KEPT:
        raise InvalidSetting(f"{PREFIX}KATIB_TRIALS_KEPT: expected at least {LEAST_KEPT} Trials (as many as a "
                             f"status's Trial list names), got {settings.katib_trials_kept}")
    if settings.lookahead < 0:
        raise InvalidSetting(f"{PREFIX}LOOKAHEAD: expected trials >= 0, got {settings.lookahead}")
    if settings.k8s_start_allowance is not None and settings.k8s_start_allowance < 0:
        raise InvalidSetting(f"{PREFIX}K8S_START_ALLOWANCE: expected seconds >= 0, got {settings.k8s_start_allowance}")
    if settings.worker_timeout < 1:
        raise InvalidSetting(f"{PREFIX}WORKER_TIMEOUT: expected a whole number of seconds >= 1, "
                             f"got {settings.worker_timeout}")


def _sizes(settings: Settings) -> None:
    """Sizes and waits that must be positive (a read of a negative size reads everything), and
    the trial Jobs' TTL, long enough for katuna to read a finished trial's pods."""
    for name, value in (("MAX_BODY", settings.max_body), ("MAX_LOG", settings.max_log), ("MAX_CHECKPOINT", settings.max_checkpoint),
                        ("MAX_TFEVENTS", settings.max_tfevents), ("BUSY_TIMEOUT", settings.busy_timeout)):
        if not 0 < value < math.inf:
            raise InvalidSetting(f"{PREFIX}{name}: expected a positive number, got {value}")
    ttl = settings.k8s_ttl_seconds
    if ttl is not None and ttl < MIN_TTL:
        raise InvalidSetting(f"{PREFIX}K8S_TTL_SECONDS: expected at least {MIN_TTL} seconds, got {ttl}: {TTL_WHY}")
    if ttl is not None and ttl > MAX_INT32:
        raise InvalidSetting(f"{PREFIX}K8S_TTL_SECONDS: expected at most {MAX_INT32} seconds (the Job's int32), "
                             f"got {ttl}")


def _pattern(token: str) -> str | None:
    """What makes a long enough token no random one, in words that do not show it: fewer than
    :data:`TOKEN_VARIETY` different characters, or one string written twice or more over."""
    different = len(set(token))
    if different < TOKEN_VARIETY:
        return f"holds {different} different character(s), fewer than {TOKEN_VARIETY}"
    repeated = next((size for size in range(1, len(token) // 2 + 1) if token[size:] == token[:-size]), None)
    if repeated is not None:
        return f"repeats one string of {repeated} characters"
    return None


def _waits_and_dead_letters(settings: Settings) -> None:
    """Waits that must be a positive, finite number of seconds (an infinite one never ends),
    the tick floor, and room for at least one dead letter."""
    for setting in POSITIVE_SECONDS:
        seconds = getattr(settings, setting)
        if not 0 < seconds < math.inf:
            raise InvalidSetting(f"{PREFIX}{VARIABLES[setting][0]}: expected a positive number of seconds, "
                                 f"got {seconds}")
    if not 0 <= settings.tick_floor < math.inf:
        raise InvalidSetting(f"{PREFIX}TICK_FLOOR: expected a number of seconds, 0 or more, got {settings.tick_floor}")
    if settings.max_dead_letters < 1:
        raise InvalidSetting(f"{PREFIX}MAX_DEAD_LETTERS: expected at least 1, got {settings.max_dead_letters}")


def _sink_certificates(settings: Settings) -> None:
    """``K_CA_CERTS``, which the SinkBinding sets, must hold PEM certificates: an https sink
    could never be trusted without them."""
    if not settings.sink_ca_certs:
        return
    try:
        reporter.tls_context(settings.sink_ca_certs, str(settings.trust_bundles))
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidSetting(f"K_CA_CERTS: expected PEM CA certificates for the sink, could not load them: "
                             f"{exc}") from exc


def _trial_identity(settings: Settings) -> None:
    """Who trials run as and what they may name: never the service's own accounts or Secrets, a
    known pod security level, senders that exclude the trials' account, template namespaces
    that are namespaces' names, and a node service account that is a Google one's email."""
    if settings.k8s_service_account in settings.service_accounts:
        raise InvalidSetting(f"{PREFIX}K8S_SERVICE_ACCOUNT: {settings.k8s_service_account!r} is one of the service's own "
                         f"accounts ({PREFIX}SERVICE_ACCOUNTS), which trials may never run as; name an account "
                         "made for trials")
    shared = [name for name in settings.k8s_image_pull_secrets if name in settings.service_secrets]
    if shared:
        raise InvalidSetting(f"{PREFIX}K8S_IMAGE_PULL_SECRETS: {shared[0]!r} is one of the service's own Secrets "
                         f"({PREFIX}SERVICE_SECRETS), which trials may never name; name a Secret made for trials")
    if settings.trial_pod_security not in pod_security.LEVELS:
        raise InvalidSetting(f"{PREFIX}TRIAL_POD_SECURITY: expected {', '.join(pod_security.LEVELS[:-1])} or "
                             f"{pod_security.LEVELS[-1]}, got {settings.trial_pod_security!r}")
    binding = settings.trial_sink_binding
    if binding is not None and not (binding and labels.valid_value(binding)):
        raise InvalidSetting(f"{PREFIX}TRIAL_SINK_BINDING: expected a SinkBinding's name that is a Kubernetes label "
                             "value: at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter "
                             f"or digit, got {binding!r}")
    _senders(settings)
    wrong = [name for name in settings.template_namespaces if not NAMESPACE.fullmatch(name)]
    if wrong:
        raise InvalidSetting(f"{PREFIX}TEMPLATE_NAMESPACES: expected namespace names (lower-case letters, digits "
                         f"and '-', at most 63), got {wrong[0]!r}")
    account = settings.gke_node_service_account
    if account is not None and not GSA_EMAIL.fullmatch(account):
        raise InvalidSetting(f"{PREFIX}GKE_NODE_SERVICE_ACCOUNT: expected a Google service account's email "
                         f"(NAME@PROJECT_ID.iam.gserviceaccount.com), got {account!r}")


def _senders(settings: Settings) -> None:
    """The OIDC senders katuna takes events from: well-formed subjects, none of them the account
    trials run as by default."""
    for subject in settings.oidc_subjects:
        problem = senders.subject_problem(subject)
        if problem:
            raise InvalidSetting(f"{PREFIX}OIDC_SUBJECTS: {problem}")
    default = senders.account_subject(settings.k8s_namespace or "default", settings.k8s_service_account or "default")
    if senders.allowed(default, settings.oidc_subjects):
        raise InvalidSetting(f"{PREFIX}OIDC_SUBJECTS: {default!r}, the account trials run as by default "
                         f"({PREFIX}K8S_SERVICE_ACCOUNT in {PREFIX}K8S_NAMESPACE), may send katuna events; "
                         "trials may never: name only the Triggers' accounts")


def _node_pools(settings: Settings) -> None:
    """The node pools' cloud: one of GKE and EKS, with what each needs to make a pool, and no more
    pools than EKS allows node groups in a cluster."""
    if settings.gke_cluster and settings.eks_cluster:
        raise InvalidSetting(f"{PREFIX}GKE_CLUSTER and {PREFIX}EKS_CLUSTER: node pools live in one cloud; set one")
    if settings.gke_cluster:
        for name in ("project", "location"):
            if not getattr(settings, f"gke_{name}"):
                raise InvalidSetting(f"{PREFIX}GKE_{name.upper()}: required with {PREFIX}GKE_CLUSTER")
    if settings.eks_cluster and not (settings.eks_subnets and settings.eks_node_role):
        raise InvalidSetting(f"{PREFIX}EKS_SUBNETS and {PREFIX}EKS_NODE_ROLE: required with {PREFIX}EKS_CLUSTER")
    if settings.eks_node_role and not IAM_ROLE_ARN.fullmatch(settings.eks_node_role):
        raise InvalidSetting(f"{PREFIX}EKS_NODE_ROLE: expected {ROLE_EXPECTED}, got {settings.eks_node_role!r}")
    groups = settings.limits.eks.groups_per_cluster
    if settings.eks_cluster and settings.limits.pools > groups:
        raise InvalidSetting(f"{PREFIX}MAX_POOLS: expected at most {groups} with {PREFIX}EKS_CLUSTER (EKS's quota of "
                         f"managed node groups per cluster; where the account's quota is raised, set "
                         f"{PREFIX}EKS_GROUPS_PER_CLUSTER to it), got {settings.limits.pools}")


def _installation(settings: Settings) -> None:
    """The installation's identity, a label value on every trial workload, and the grace before
    a workload of its own whose study the store does not hold is stopped: never shorter than a
    handling may take to commit the workload's launch."""
    given = settings.installation
    if given is not None and not (given and labels.valid_value(given)):
        raise InvalidSetting(f"{PREFIX}INSTALLATION: expected {installation.EXPECTED}, got {given!r}")
    if not installation.MIN_ORPHAN_GRACE <= settings.orphan_grace < math.inf:
        raise InvalidSetting(f"{PREFIX}ORPHAN_GRACE: expected at least {installation.MIN_ORPHAN_GRACE:.0f} seconds "
                             f"(a trial workload younger may belong to a handling not committed yet), got "
                             f"{settings.orphan_grace}")
