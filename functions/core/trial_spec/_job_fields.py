"""The fields of a ``batch/v1`` Job template that katuna lays its own over, keeps, or reads:
its deadline, its TTL, its ``podFailurePolicy`` rules (katuna's go first) and its
``backoffLimit``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core.cluster import MAX_JOB_DEADLINE

MAX_POLICY_RULES = 20
"""The most rules Kubernetes takes in a Job's ``podFailurePolicy``."""
OWN_POLICY_RULES = 1
"""The ``podFailurePolicy`` rules katuna puts before a Job template's own (:func:`required_field`)."""
_POLICY_RULE = re.compile(r"spec\.podFailurePolicy\.rules\[(\d+)\]")
DEADLINE = ("spec", "activeDeadlineSeconds")
"""Where a Job keeps its deadline, as a path in the ``trialSpec``."""
MAX_DEADLINE = MAX_JOB_DEADLINE
"""The largest ``activeDeadlineSeconds`` the Job controller counts as given: a larger one fails
the Job at once (:data:`~functions.core.cluster.MAX_JOB_DEADLINE`)."""


def is_deadline(value: Any) -> bool:
    """Whether ``value`` is a Job deadline Kubernetes takes and counts: a whole number of
    seconds, not negative (the batch API's validation, ``ValidateNonnegativeField``), that the
    Job controller counts as given (:data:`MAX_DEADLINE`). With 0 the Job controller fails the
    Job at its first sync (``DeadlineExceeded``), and a local trial is ended at once."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DEADLINE


def required_field(key: str, value: Any, own: Any, spec: Mapping[str, Any]) -> Any:
    """A Job spec field as katuna requires it, given the template's ``own`` and its whole
    ``spec``: the template's ``backoffLimit``, and its TTL unless katuna keeps the Job for good
    (``retain``: none), are kept (:func:`~functions.core.trial_spec.check` refused a TTL too
    short); no ``backoffLimit`` where the template counts failures per index
    (``backoffLimitPerIndex``: Kubernetes then limits none Job-wide, where katuna's would end
    the Job at its first failure); its own
    ``activeDeadlineSeconds`` where it is sooner than katuna's backstop (the Job then fails
    there, as on Katib); its ``podFailurePolicy`` rules follow katuna's, which Kubernetes
    matches first; katuna's value of any other field."""
    if key == "backoffLimit" and own is None and spec.get("backoffLimitPerIndex") is not None:
        return None
    if key == "backoffLimit" or (key == "ttlSecondsAfterFinished" and value is not None):
        return value if own is None else own
    if key == DEADLINE[-1] and is_deadline(own) and own < value:
        return own
    if key == "podFailurePolicy" and isinstance(own, Mapping) and isinstance(own.get("rules"), list):
        return {**own, "rules": [*value["rules"], *own["rules"]]}
    return value


_POD_TEMPLATE_META = re.compile(r"spec\.template\.(labels|annotations)\b")
"""The pod template's labels and annotations as the API server names them: its pod template
validation (``ValidatePodTemplateSpec``) leaves the template's ``metadata`` out of the path."""


def template_field(field: str) -> str:
    """The field of a Job template that the API server's refusal of the rendered Job names at
    ``field``: the Job's ``podFailurePolicy`` rules begin with katuna's own, so its rule
    ``i + OWN_POLICY_RULES`` is the template's rule ``i``; the pod template's labels and
    annotations (``spec.template.labels``) are under its ``metadata``, where the template has
    them; any other field is the template's own."""
    meta = _POD_TEMPLATE_META.match(field)
    if meta is not None:
        return f"spec.template.metadata.{meta[1]}{field[meta.end():]}"
    rule = _POLICY_RULE.match(field)
    if rule is None or int(rule[1]) < OWN_POLICY_RULES:
        return field
    return f"spec.podFailurePolicy.rules[{int(rule[1]) - OWN_POLICY_RULES}]{field[rule.end():]}"
