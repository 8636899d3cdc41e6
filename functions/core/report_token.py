"""The token that proves a progress report comes from the attempt it names, or from katuna.

A trial Job can post events to the broker, and it knows its study's name and uid; without a
proof of origin it could report values for any other trial of its study, and have the pruner
stop it. Each study has a random key, kept in katuna's store and nowhere else; an attempt's
token is the key's HMAC of the study's uid, the trial's number and the attempt, given to the
attempt alone (``KATUNA_REPORT_TOKEN``), and carried by every report of it: by
:mod:`functions.reporter`, and by katuna's own readers of the attempt's output. A token opens
nothing else, and nothing once its attempt has ended.

On Kubernetes the token is no value of the pod template, which anyone who may read Jobs or pods
of the namespace reads (the built-in ``view`` role included, which leaves Secrets out): the
container reads it from a Secret of its attempt (:func:`holder_name`, :func:`env_entries`),
which katuna creates beside the workload, owned by it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from functions.core.errors import ForgedReport
from functions.core.events import TRIAL_PROGRESS

ENV = "KATUNA_REPORT_TOKEN"
"""The variable that hands a trial attempt its token."""

POD_ENV = "KATUNA_POD_UID"
"""The variable that tells a reporting container on Kubernetes its pod's uid, which each of its
reports carries: a pod its Job made in place of a disrupted one runs the trial again from its
start, in the same attempt, and its reports are its own, not the lost pod's sent again."""

POD_FIELD = {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}}
"""Where the container reads :data:`POD_ENV` from: the downward API, the pod's own uid (nothing a
reader of the pod does not see)."""

PRIMARY_ENV = "KATUNA_PRIMARY_POD_LABELS"
"""The variable that tells a reporting container the labels of the trial's primary pods (the
study's ``primaryPodLabels``, else its kind's), as a JSON object, where the workload has several
pods made from one template (a TrainJob's nodes, a Training Operator job's workers without a
master, a Job with ``primaryPodLabels``): only a primary pod's reports are the trial's, as Katib
reads the metrics of its primary pods alone, and as katuna reads those pods' logs alone."""

LABEL_ENV = "KATUNA_POD_LABEL_"
"""The prefix of the variables that give the container its own pod's value of each label of
:data:`PRIMARY_ENV` (``KATUNA_POD_LABEL_1`` the first key's, in the keys' order), from the
downward API, empty where the pod has no such label."""

KEY_BYTES = 16
"""A study's key: 128 random bits."""

HOLDER_KEY = "token"
"""The key of the attempt's Secret whose value is its token."""


def new_key() -> str:
    """A study's key, in hex."""
    return secrets.token_hex(KEY_BYTES)


def attempt_token(key: str, uid: str, number: int, attempt: int) -> str:
    """The token of one attempt of one trial of the study whose key is ``key``."""
    message = f"{uid}/{number}/{attempt}".encode()
    return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()[:32]


def check_report(key: str, data: Mapping[str, Any]) -> None:
    """Refuse (:class:`ForgedReport`) a progress report whose token is not its attempt's."""
    expected = attempt_token(key, data["uid"], data["trial"], data["attempt"])
    if not hmac.compare_digest(str(data["token"]).encode(), expected.encode()):
        raise ForgedReport(f"progress report for trial {data['trial']} attempt {data['attempt']} of study "
                           f"{data['study']!r} refused: its token is not that attempt's ({ENV})", TRIAL_PROGRESS)


HOLDER_SUFFIX = ".report"


def holder_name(workload: str) -> str:
    """The name of the Secret holding the token of the attempt whose Job (or workload of another
    kind) is named ``workload``: a DNS subdomain with a dot, which no Job or workload name of
    katuna's (DNS labels) has, so it is told apart from anything else katuna names."""
    return f"{workload}{HOLDER_SUFFIX}"


def is_holder(secret: str) -> bool:
    """Whether ``secret`` is named as an attempt's token Secret is (:func:`holder_name`)."""
    return secret.endswith(HOLDER_SUFFIX)


def env_entries(env: Mapping[str, str], workload: str,
                primary: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """A container's ``env`` entries for ``env``, by name: each variable's value, but the token's
    (:data:`ENV`), which the container reads from its attempt's Secret (:func:`holder_name`),
    so the workload's spec never holds it. The kubelet retries a container whose Secret is not
    there yet (``CreateContainerConfigError``), and starts it once it is. With the token, the
    container is told its pod's uid too (:data:`POD_ENV`), which its reports carry, and, where the
    workload's ``primary`` pods are told apart by their labels, those labels and its own pod's
    values of them (:data:`PRIMARY_ENV`, :func:`primary_entries`), so a pod that is not one of
    them sends no report."""
    entries = [{"name": name, "valueFrom": {"secretKeyRef": {"name": holder_name(workload), "key": HOLDER_KEY}}}
               if name == ENV else {"name": name, "value": value} for name, value in sorted(env.items())]
    if ENV not in env:
        return entries
    added = [{"name": POD_ENV, "valueFrom": copy.deepcopy(POD_FIELD)}, *primary_entries(primary or {})]
    names = {entry["name"] for entry in added}
    return [*(e for e in entries if e["name"] not in names), *added]


def primary_entries(primary: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``env`` entries that tell a container the ``primary`` pods' labels (:data:`PRIMARY_ENV`)
    and its own pod's value of each, in the keys' order (:data:`LABEL_ENV`); none without labels."""
    if not primary:
        return []
    keys = sorted(primary)
    return [{"name": PRIMARY_ENV, "value": json.dumps({key: primary[key] for key in keys}, sort_keys=True)},
            *({"name": f"{LABEL_ENV}{i}", "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": f"metadata.labels['{key}']"}}} for i, key in enumerate(keys, 1))]
