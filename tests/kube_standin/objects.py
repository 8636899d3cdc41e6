"""Small pieces every part of the stand-in shares: Status bodies, label selectors,
merge patches, resource quantities."""

from __future__ import annotations

import copy
import random
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from kube_standin import etcd

SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The characters Kubernetes' name generator uses (no vowels, no look-alikes)."""

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
            "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
"""A quantity as ``resource.ParseQuantity`` reads it: a decimal number, then either a decimal
exponent or one suffix (``1e3`` and ``1Gi``, never ``1e-05Gi``)."""


def suffix() -> str:
    """The random five characters the Job controller appends to a pod's name."""
    return "".join(random.choices(SUFFIX_ALPHABET, k=5))


def snapshot(obj: Any) -> Any:
    """A copy nobody else holds, as the API server serialises an object into each answer. Objects
    are JSON's dicts, lists and scalars, copied here at a fraction of ``copy.deepcopy``'s cost
    (which keeps track of every object it met, for cycles JSON cannot have)."""
    if isinstance(obj, dict):
        return {key: snapshot(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [snapshot(value) for value in obj]
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    return copy.deepcopy(obj)


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A ``metav1.Status`` failure body."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def not_found(qualified: str, name: str) -> tuple[int, dict]:
    """404 as the API server words it: ``jobs.batch "x" not found``."""
    kind = qualified.split(".", 1)
    group = kind[1] if len(kind) > 1 else ""
    return 404, status(404, "NotFound", f'{qualified} "{name}" not found', {"name": name, "group": group,
                                                                              "kind": kind[0]})


def already_exists(qualified: str, name: str) -> tuple[int, dict]:
    """409 AlreadyExists as the API server words a create whose name an object holds already
    (``pods "x" already exists``), whoever made the object and whatever its state (a pod
    Terminating included)."""
    kind, _, group = qualified.partition(".")
    details = {"name": name, "group": group, "kind": kind} if group else {"name": name, "kind": kind}
    return 409, status(409, "AlreadyExists", f'{qualified} "{name}" already exists', details)


class AlreadyExists(Exception):
    """A controller's create refused as the API refuses it (:func:`already_exists`): the
    controller keeps what holds the name, and tries again on a later sync."""

    def __init__(self, qualified: str, name: str) -> None:
        self.code, self.body = already_exists(qualified, name)
        super().__init__(self.body["message"])


MAX_GENERATED_PREFIX = 58
"""Characters of a ``generateName`` kept before the random ones (``MaxGeneratedNameLength``,
k8s.io/apiserver pkg/storage/names/generate.go: 63 less the five it draws)."""


def generated_name(prefix: str, taken) -> str:
    """A name for a create by ``generateName``: ``prefix``, cut to :data:`MAX_GENERATED_PREFIX`
    characters as the API server's name generator cuts it (so the pod of a Job named near 63
    characters does not begin with the Job's name and ``-``), and five random characters, drawn
    again while ``taken(name)`` (the API server retries a generated name that clashes)."""
    prefix = prefix[:MAX_GENERATED_PREFIX]
    name = prefix + suffix()
    while taken(name):
        name = prefix + suffix()
    return name


def invalid(kind: str, qualified: str, name: str, causes: list[tuple[str, str]]) -> tuple[int, dict]:
    """422 Invalid, listing each ``(field, message)``."""
    text = "; ".join(f"{field}: {message}" for field, message in causes)
    group = qualified.split(".", 1)[1] if "." in qualified else ""
    return 422, status(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {text}' if group
                       else f'{kind} "{name}" is invalid: {text}',
                       {"name": name, "group": group, "kind": kind,
                        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})


def deletes_nothing(options: dict) -> bool:
    """Whether a delete's ``options`` (:meth:`kube_standin.server.Call.delete_options`, their
    ``dryRun`` validated: :mod:`kube_standin.request_options`) ask for a dry run: answered as
    done, with nothing deleted, as the registry's store passes the dry run on to its storage
    (``Store.Delete``, store.go)."""
    return bool(options.get("dryRun"))


def namespace_refusal(namespace: str | None, body: object) -> tuple[int, dict] | None:
    """400 for a create whose body names a namespace other than the request's, as
    ``EnsureObjectNamespaceMatchesRequestNamespace`` refuses it (k8s.io/apiserver
    pkg/registry/rest/meta.go); None where the body names none or the same (the request's then
    goes in)."""
    given = ((body.get("metadata") if isinstance(body, dict) else None) or {}).get("namespace")
    if not namespace or not given or given == namespace:
        return None
    return 400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent "
                                          "on the request")


def unmet_precondition(kind: str, group: str, obj: dict, options: dict) -> tuple[int, dict] | None:
    """409 Conflict when a delete's ``preconditions`` (uid, resourceVersion) do not hold for
    ``obj`` (of ``kind`` in ``group``); None when they hold or there are none. Worded as the API
    server's ``rest.BeforeDelete`` refuses it, which checks them against the object read before
    anything is deleted (kubernetes/kubernetes,
    staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go): the conflict names the object's
    kind qualified by its group (``Trial.kubeflow.org``, ``Job.batch``)."""
    wanted = options.get("preconditions") or {}
    name = obj["metadata"]["name"]
    for field, label, then in (("uid", "UID", "deleted and then recreated"), ("resourceVersion", "ResourceVersion",
                                                                            "modified")):
        if wanted.get(field) is not None and wanted[field] != obj["metadata"].get(field):
            return 409, status(409, "Conflict", f'Operation cannot be fulfilled on {kind}{"." if group else ""}{group} '
                                                f'"{name}": the {label} in the precondition ({wanted[field]}) does not '
                                                f"match the {label} in record ({obj['metadata'].get(field)}). The "
                                                f"object might have been {then}",
                               {"name": name, "group": group, "kind": kind})
    return None


def merge(target: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch: ``null`` deletes, an object merges into the object it meets
    (into an empty one where there is none, so its nulls set nothing), anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            target[key] = merge(target[key] if isinstance(target.get(key), dict) else {}, value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def quantity(text: str | int | float) -> Decimal:
    """A resource quantity (``500m``, ``2Gi``, ``1.5``) as a number of base units."""
    found = QUANTITY.match(str(text).strip())
    if not found:
        raise ValueError(f"quantities must match the regular expression {QUANTITY.pattern!r}: {text!r}")
    number, exponent, unit = found.groups()
    return Decimal(number) * (Decimal(10) ** int(exponent) if exponent else Decimal(SUFFIXES[unit or ""]))


def added(cluster: Any, table: dict, plural: str, namespace: str, obj: dict, dry_run: bool,
          complete: Callable[[dict], None]) -> tuple[int, dict]:
    """A namespaced object created as the API server creates it, once its own checks passed:
    refused where its namespace is not, or an object of its name is; else given its namespace,
    uid and creation time, and what ``complete`` adds (its kind, its status), and kept in
    ``table`` (its ``ADDED`` event recorded) unless ``dry_run``."""
    name = obj["metadata"].get("name") or ""
    with cluster.lock:
        if namespace not in cluster.namespaces:
            return not_found("namespaces", namespace)
        if (namespace, name) in table:
            return already_exists(plural, name)
        obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=cluster.clock.stamp())
        complete(obj)
        if dry_run:
            return 201, snapshot(obj)
        if (too_large := etcd.store_refusal(obj)) is not None:
            return too_large
        table[(namespace, name)] = obj
        cluster.history.record("ADDED", plural, obj)
        return 201, snapshot(obj)
