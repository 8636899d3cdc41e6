"""A refusal of the provisioning script told in the command's terms: the flag that sets what a
cloud refused (a study's ``nodePool`` field, a service setting) named instead of the field, the
words of a study's refusal put in the flags', and what can be done about a setting a cloud
cannot change of a pool in place. ``up``, ``down`` and their ``--dry-run`` plans tell each refusal
in the same words (:func:`refusal_text`)."""

from __future__ import annotations

import re

from functions.core.nodepool import NodePoolFailed
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
            "`down`, then `up` to create it again with these (its nodes, and any trials on them, go with it)")


def refusal_text(exc: NodePoolFailed, flags: dict[str, str]) -> str:
    """A refusal as the command tells it after ``error:``: its flag first, where one sets what was refused."""
    flag = flag_of(exc.field, flags)
    return f"{flag}: {in_place(exc)}" if flag else str(exc)
