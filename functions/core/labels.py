"""Kubernetes label keys and values as the API server validates them (``ValidateLabels``): a key
is a name of at most 63 characters, with an optional DNS subdomain prefix of at most 253 and
``/``; a value is empty or at most 63 characters. katuna checks the labels it sends, so a study
is refused naming the label rather than its workload being refused by the cluster (422).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from functions.core.errors import Problem

NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_NAME = 63
MAX_PREFIX = 253
KEY_EXPECTED = ("a Kubernetes label key: an optional DNS subdomain prefix of at most 253 characters and '/', then a "
                "name of 1 to 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit")
OWN_PREFIX = "katuna.dev/"
OWN_PREFIX_EXPECTED = (f"expected a label of another prefix: {OWN_PREFIX} is katuna's own (its trials' study, "
                       "trial and attempt; katuna.dev/client admits a pod to the service past Knative's data plane)")
VALUE_EXPECTED = ("a Kubernetes label value: a string of at most 63 letters, digits, '-', '_' or '.' that begins and "
                  "ends with a letter or digit, or the empty string")


def valid_key(key: object) -> bool:
    """Whether ``key`` is a label key the API server takes."""
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and not (PREFIX.fullmatch(prefix) and len(prefix) <= MAX_PREFIX):
        return False
    return len(name) <= MAX_NAME and NAME.fullmatch(name) is not None


def valid_value(value: object) -> bool:
    """Whether ``value`` is a label value the API server takes."""
    return isinstance(value, str) and (value == "" or (len(value) <= MAX_NAME and NAME.fullmatch(value) is not None))


def problems(labels: Mapping[object, object], path: str) -> list[Problem]:
    """A problem for each label of ``labels`` (at ``path``) the API server would refuse."""
    found = []
    for key, value in labels.items():
        if not valid_key(key):
            found.append(Problem(f"{path}.{key}", f"expected {KEY_EXPECTED}, got {key!r}"))
        elif not valid_value(value):
            found.append(Problem(f"{path}.{key}", f"expected {VALUE_EXPECTED}, got {value!r}"))
    return found
