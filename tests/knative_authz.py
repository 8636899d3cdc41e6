"""Knative Eventing's EventPolicy, as its webhook checks one and as a broker's ingress applies it.

:func:`webhook_problems` is the admission check Eventing's webhook makes beyond the CRD's schema
(which requires no field): each ``from`` holds exactly one of ``ref`` and ``sub``, each ``to``
one of ``ref`` and ``selector``, a ref names its ``apiVersion``, ``kind`` and ``name``, and a
``sub`` has ``*`` only at its end; ``filters`` are checked as a Trigger's.

:func:`authorize` is the ingress's decision for a sender with a valid token (Eventing's
``authentication-oidc`` on): the policies whose ``to`` selects the broker (all of them for an
empty ``to``), in the order of their names, each with the subjects it resolved: a ``sub`` as it
is, a ``ref`` the OIDC account Knative makes for that object (``<name>-oidc-<group>-<kind>``). The
first policy holding the sender's subject (exactly, ignoring case, or a trailing ``*`` as a
prefix) decides by its ``filters``; a sender no policy holds gets ``403``. With no policy, the
default authorization mode decides. A ref to an object that is not among those given, or to a
kind without an OIDC account, leaves its policy unready, which the broker ignores: that is
raised here (:class:`NotReady`), not modelled.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from knative_emulator.filters import UnsupportedFilter, delivered, trigger_filter

AUTHENTICATABLE = {("sources.knative.dev", kind) for kind in ("ApiServerSource", "PingSource", "SinkBinding",
                                                              "ContainerSource")}
AUTHENTICATABLE |= {("eventing.knative.dev", "Trigger"), ("messaging.knative.dev", "Subscription")}
"""The kinds whose status names the OIDC account Knative made for them (what a ``from.ref`` resolves)."""

MODES = ("allow-same-namespace", "allow-all", "deny-all")
"""Eventing's ``default-authorization-mode`` values, for a broker no policy applies to."""


class NotReady(Exception):
    """A policy Knative would leave unready, and the broker would not apply."""


def webhook_problems(policy: Mapping[str, Any]) -> list[str]:
    """What Eventing's webhook refuses in an EventPolicy's spec, each naming its field."""
    spec = policy.get("spec", {})
    problems = []
    for index, entry in enumerate(spec.get("from", [])):
        where = f"spec.from[{index}]"
        has_ref, has_sub = "ref" in entry, bool(entry.get("sub"))
        if has_ref == has_sub:
            problems.append(f"{where}: expected exactly one of ref, sub")
        problems += _ref_problems(entry.get("ref"), f"{where}.ref")
        sub = entry.get("sub") or ""
        if "*" in sub[:-1]:
            problems.append(f"{where}.sub: {sub!r}: '*' is only allowed as suffix")
    for index, entry in enumerate(spec.get("to", [])):
        where = f"spec.to[{index}]"
        if ("ref" in entry) == ("selector" in entry):
            problems.append(f"{where}: expected exactly one of ref, selector")
        problems += _ref_problems(entry.get("ref"), f"{where}.ref")
    try:
        trigger_filter({"filters": spec.get("filters")})
    except UnsupportedFilter as exc:
        problems.append(str(exc))
    return problems


def _ref_problems(ref: Mapping[str, Any] | None, where: str) -> list[str]:
    if ref is None:
        return []
    return [f"{where}.{name}: missing field" for name in ("kind", "apiVersion", "name") if not ref.get(name)]


def oidc_account(name: str, api_version: str, kind: str) -> str:
    """The service account Knative makes for an object's OIDC identity (kmeta.ChildName of the
    name and ``-oidc-<group>-<kind>``: cut to 31 characters and an MD5 where longer than 63)."""
    suffix = f"-oidc-{api_version.split('/')[0]}-{kind}"
    if len(name) + len(suffix) <= 63:
        return (name + suffix).lower()
    return (name[:31] + hashlib.md5((name + suffix).encode(), usedforsecurity=False).hexdigest()).lower()


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def applying(policies: Sequence[Mapping[str, Any]], broker: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The policies of the broker's namespace that select it, in the order of their names."""
    namespace, name = broker["metadata"]["namespace"], broker["metadata"]["name"]
    group, labels = _group(broker["apiVersion"]), broker["metadata"].get("labels", {})

    def selects(to: Mapping[str, Any]) -> bool:
        target = to.get("ref") or to["selector"]
        if _group(target["apiVersion"]).lower() != group.lower() or target["kind"].lower() != broker["kind"].lower():
            return False
        if "ref" in to:
            return bool(target["name"].lower() == name.lower())
        if target.get("matchExpressions"):
            raise NotImplementedError("a to.selector with matchExpressions is not modelled")
        return all(labels.get(key) == value for key, value in target.get("matchLabels", {}).items())

    found = [p for p in policies if p["metadata"]["namespace"] == namespace
             and (not p["spec"].get("to") or any(selects(to) for to in p["spec"]["to"]))]
    return sorted(found, key=lambda p: p["metadata"]["name"])


def subjects(policy: Mapping[str, Any], objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The subjects a policy resolves its ``from`` to; :class:`NotReady` for a ref Knative could not resolve."""
    resolved = []
    for entry in policy["spec"].get("from", []):
        if "sub" in entry:
            resolved.append(entry["sub"])
            continue
        ref = entry["ref"]
        namespace = ref.get("namespace") or policy["metadata"]["namespace"]
        if (_group(ref["apiVersion"]), ref["kind"]) not in AUTHENTICATABLE:
            raise NotReady(f"{ref['kind']} {ref['name']}: no OIDC account (status.auth) to resolve")
        if not any(o["apiVersion"] == ref["apiVersion"] and o["kind"] == ref["kind"]
                   and o["metadata"]["name"] == ref["name"] and o["metadata"].get("namespace") == namespace
                   for o in objects):
            raise NotReady(f"{ref['kind']} {namespace}/{ref['name']} does not exist")
        resolved.append(f"system:serviceaccount:{namespace}:{oidc_account(ref['name'], ref['apiVersion'], ref['kind'])}")
    return resolved


def _holds(pattern: str, subject: str) -> bool:
    return pattern.lower() == subject.lower() or (pattern.endswith("*") and subject.startswith(pattern[:-1]))


def authorize(objects: Sequence[Mapping[str, Any]], broker: str, subject: str, attributes: Mapping[str, str],
              mode: str = "allow-same-namespace") -> int:
    """The ingress's answer to a valid token of ``subject`` posting an event with these context
    attributes to ``broker`` (202 taken, 403 refused), the deployed ``objects`` holding the policies."""
    if mode not in MODES:
        raise ValueError(f"default-authorization-mode: expected one of {MODES}, got {mode!r}")
    if not re.fullmatch(r"system:serviceaccount:[^:]+:[^:]+", subject):
        raise ValueError(f"subject: expected system:serviceaccount:<namespace>:<name>, got {subject!r}")
    [target] = [o for o in objects if o["kind"] == "Broker" and o["metadata"]["name"] == broker]
    policies = applying([o for o in objects if o["kind"] == "EventPolicy"], target)
    for policy in policies:
        if any(_holds(pattern, subject) for pattern in subjects(policy, objects)):
            filters = policy["spec"].get("filters", [])
            return 202 if delivered(trigger_filter({"filters": filters}), attributes) else 403
    if policies or mode == "deny-all":
        return 403
    same = subject.startswith(f"system:serviceaccount:{target['metadata']['namespace']}:")
    return 202 if mode == "allow-all" or same else 403
