"""A refusal of the provisioning script told in the command's terms: the flag that sets what a
cloud refused (a study's ``nodePool`` field, a service setting) named instead of the field, the
words of a study's refusal put in the flags', and what can be done about a setting a cloud
cannot change of a pool in place. ``up``, ``down`` and their ``--dry-run`` plans tell each refusal
in the same words (:func:`refusal_text`). A refusal for a permission the caller lacks, which the
cloud names, is told what to grant and to whom: the identity the script runs as, not the
service's (:data:`GRANTS`)."""

from __future__ import annotations

import re

from functions.core.nodepool import ANY_POOL_FLAG, NodePoolFailed
from infra import eks_requests, gke_requests

FLAGS = {"machineType": "--machine-type", "maxNodes": "--max-nodes", "labels": "--label",
         "instanceTypes": "--instance-types", "serviceAccount": "--node-service-account", "nodeRole": "--node-role",
         "subnets": "--subnets", "pricePerNodeHour": "--price-per-node-hour", "currency": "--currency"}
"""The flag that sets each field of a study's ``nodePool``; the name's and the capacity's are
each command's own (:func:`command_flags`)."""
SETTING_FLAGS = {gke_requests.CLUSTER_SETTINGS: "--cluster/--location", eks_requests.CLUSTER_SETTING: "--cluster",
                 gke_requests.LOCATION_SETTING: "--location",
                 gke_requests.NODE_ACCOUNT_SETTING: "--node-service-account",
                 eks_requests.REGION_SETTING: "--region", eks_requests.SUBNETS_SETTING: "--subnets",
                 eks_requests.NODE_ROLE_SETTING: "--node-role"}
"""The flags that set what the service's settings set."""


def command_flags(name_flag: str, capacity: str | None = None) -> dict[str, str]:
    """The flags of one command by the study field each sets: the pool's name flag, and the
    capacity flag as typed (``--preemptible``; ``--spot``, the default, when none was)."""
    return FLAGS | {"name": name_flag} | ({"capacity": f"--{capacity}"} if capacity else {})


def flag_of(field: str | None, flags: dict[str, str]) -> str | None:
    """The flag that sets the study field or service setting an error names, if there is one; a
    label's with its key (``--label team``)."""
    if field is None:
        return None
    if field.startswith("nodePool."):
        _, name, *key = field.split(".", 2)
        flag = flags.get(name)
        return f"{flag} {key[0]}" if flag and name == "labels" and key else flag
    return SETTING_FLAGS.get(field)


IN_PLACE = {"nodePool.machineType": "machine type", "nodePool.capacity": "capacity (spot, preemptible or on-demand)",
            "nodePool.instanceTypes": "instance types", "nodePool.serviceAccount": "service account",
            "nodePool.nodeRole": "node role", "nodePool.subnets": "subnets"}
"""What a cloud cannot change of an existing pool: it is created with them."""


STUDY_WORDS = (("; the study asks for ", "; the flags ask for "), ("; the study accepts ", "; the flags accept "),
               (" the study gives them;", " the flags give them;"),
               ("name a pool katuna creates for the study", "name another pool, which `up` creates"))
"""A refusal of an existing pool in a study's words (:func:`functions.core.nodepool.adoption_problem`)
and in the command's: the flags, not a study, ask."""


def in_place(exc: NodePoolFailed) -> str:
    """The refusal of an existing pool whose settings differ from the flags' (the study's words
    put in the command's), told, where the cloud cannot change them in place, what can be done."""
    said = exc.reason
    for study, flags in STUDY_WORDS:
        said = said.replace(study, flags)
    what = IN_PLACE.get(exc.field or "")
    if what is None or not re.match(r"node pool \S+ exists with ", exc.reason):
        return said
    return (f"{said}. A node pool's {what} cannot be changed in place: give the flags that match the pool, or run "
            f"`down` (`down {ANY_POOL_FLAG}` for a pool `up` did not make), then `up` to create it again with these "
            "(its nodes, and any trials on them, go with it)")


GRANTS = (
    (re.compile(r'Required "[^"]+" permission|Permission \'[^\']+\' denied'),
     "grant the permission it names to the Google identity the script runs as (its Application Default "
     "Credentials: `gcloud auth application-default login`, or GOOGLE_APPLICATION_CREDENTIALS) on the cluster's "
     "project: `up` and `down` need container.clusters.get, container.clusters.update and container.operations.get "
     "(the role of docs/kubernetes.md, IAM on GKE, holds exactly these; roles/container.clusterAdmin holds them "
     "too), and `up` Service Account User on the nodes' service account"),
    (re.compile(r"EKS refused the request: (AccessDeniedException|AccessDenied|UnauthorizedOperation):"),
     "grant the action it names to the AWS identity the script runs as (`aws sts get-caller-identity` names it): "
     "the policy of docs/kubernetes.md, IAM on EKS, allows every call `up` and `down` make"),
)
"""A cloud's refusal for a permission the caller lacks (GKE's ``Required "container.clusters.update"
permission(s) for ...``; AWS's ``AccessDeniedException``, EC2's ``UnauthorizedOperation``, each
naming the action, as :func:`infra.eks_errors.translate` tells a refused call: not a node
group's health issue ``AccessDenied``, which is its node role's), and what to grant, to whom."""


def grant(reason: str) -> str:
    """What to grant, after a refusal for a permission the identity running the script lacks; "" for another refusal."""
    return next((f"; {said}" for pattern, said in GRANTS if pattern.search(reason)), "")


SCRIPT_SIGN_IN = ("sign in again as the identity the script runs as (`gcloud auth application-default login`), or "
                  "point GOOGLE_APPLICATION_CREDENTIALS at a key file that is still valid")
"""What to do about the script's Google Cloud credentials refused for good: they are its
Application Default Credentials, not the service's Workload Identity
(:data:`infra.gke_requests.SERVICE_SIGN_IN`, which a refusal comes with)."""


def refusal_text(exc: NodePoolFailed, flags: dict[str, str]) -> str:
    """A refusal as the command tells it after ``error:``: its flag first, where one sets what was
    refused, what to grant, where a permission is missing, and how to sign in, where the
    script's credentials were refused."""
    flag = flag_of(exc.field, flags)
    said = (f"{flag}: {in_place(exc)}" if flag else str(exc)) + grant(exc.reason)
    return said.replace(gke_requests.SERVICE_SIGN_IN, SCRIPT_SIGN_IN)
