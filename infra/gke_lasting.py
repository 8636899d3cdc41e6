"""Whether a GKE refusal of the codes that are often passing (``RESOURCE_EXHAUSTED``,
``FAILED_PRECONDITION``) lasts, as Google's error model tells it: by the ``google.rpc.Status``
details (JSON over REST, messages over gRPC). A ``RetryInfo`` says to ask again; an ``ErrorInfo``
reason of google/api/error_reason.proto that names a lasting state (``RESOURCE_QUOTA_EXCEEDED``,
a disabled service or billing account, an organization policy), a ``QuotaFailure`` of a
resource quota (not a rate: per minute, per second) or a ``PreconditionFailure`` says it lasts,
as does a message naming an organization policy constraint (``Constraint
constraints/compute.vmExternalIpAccess violated``, Compute Engine's words). Refusals that say
neither keep their code's verdict (:mod:`infra.gke_errors`)."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

_LASTING_REASONS = {
    "RESOURCE_QUOTA_EXCEEDED": "a resource quota of the project is used up",
    "SERVICE_DISABLED": "a service the request needs is disabled in the project",
    "BILLING_DISABLED": "the project's billing account is disabled",
    "CONSUMER_SUSPENDED": "the project is suspended",
    "GCP_SUSPENDED": "the project is suspended",
    "LOCATION_ORG_POLICY_VIOLATED": "an organization policy forbids the location",
    "LOCATION_POLICY_VIOLATED": "a policy forbids the location",
    "ORG_RESTRICTION_VIOLATION": "an organization restriction forbids it",
    "RESOURCE_USAGE_RESTRICTION_VIOLATED": "an organization policy restricts the resources it uses",
    "SECURITY_POLICY_VIOLATED": "a security policy forbids it",
}
"""``ErrorInfo`` reasons (google/api/error_reason.proto) of a state asking again does not change."""
_RATE = re.compile(r"per ?(minute|second|100 ?seconds)|Per(Minute|Second|HundredSeconds)|rate", re.IGNORECASE)
"""How a quota of requests over time (which the minute's turn clears) is named in a ``QuotaFailure``."""
_CONSTRAINT = re.compile(r"\bconstraints/[A-Za-z0-9_.]+")
"""An organization policy constraint as Compute Engine and GKE name it in a refusal."""
_METADATA = ("quota_metric", "quota_limit", "quota_location", "location", "service", "consumer")
"""The ``ErrorInfo`` metadata that names what is used up or forbidden, in the order told."""


def details(exc: Any) -> list[dict[str, Any]]:
    """The refusal's details in their JSON form (a gRPC message converted), each with its ``@type``."""
    found = []
    for item in exc.details:
        if isinstance(item, Message):
            converted = json_format.MessageToDict(item)
            converted["@type"] = f"type.googleapis.com/{item.DESCRIPTOR.full_name}"
            found.append(converted)
        elif isinstance(item, dict):
            found.append(item)
    return found


def _kind(detail: dict[str, Any]) -> str:
    return str(detail.get("@type", "")).rpartition("/")[2].removeprefix("google.rpc.")


def _quota(violation: dict[str, Any]) -> str:
    """A quota violation in words: the quota, where, its limit."""
    name = violation.get("quotaMetric") or violation.get("quotaId") or violation.get("subject") or "a quota"
    where = ", ".join(f"{key} {value}" for key, value in sorted((violation.get("quotaDimensions") or {}).items()))
    limit = violation.get("quotaValue")
    said = violation.get("description")
    return (f"{name}{f' in {where}' if where else ''}{f' (limit {limit})' if limit else ''}"
            f"{f': {said}' if said else ''}")


def _rate(violation: dict[str, Any]) -> bool:
    return any(_RATE.search(str(violation.get(key) or "")) for key in ("quotaId", "quotaMetric", "description"))


def lasting(exc: Any, said: str) -> str | None:
    """Why the refusal lasts, in words naming the quota, location or policy to see to; None
    where nothing in it says so, or a ``RetryInfo`` says to ask again."""
    found = details(exc)
    if any(_kind(detail) == "RetryInfo" for detail in found):
        return None
    for detail in found:
        kind = _kind(detail)
        if kind == "ErrorInfo" and detail.get("reason") in _LASTING_REASONS:
            metadata = detail.get("metadata") or {}
            named = ", ".join(f"{key} {metadata[key]}" for key in _METADATA if metadata.get(key))
            return f"{_LASTING_REASONS[detail['reason']]}{f' ({named})' if named else ''}"
        if kind == "QuotaFailure":
            quotas = [_quota(violation) for violation in detail.get("violations") or [] if not _rate(violation)]
            if quotas:
                return ("a quota of the project is used up: " + "; ".join(quotas) + "; ask Google Cloud for more "
                        "(IAM & Admin > Quotas), or ask for fewer or smaller nodes")
        if kind == "PreconditionFailure":
            failed = [" ".join(str(v.get(key)) for key in ("type", "subject", "description") if v.get(key))
                      for v in detail.get("violations") or []]
            if failed:
                return "a precondition fails: " + "; ".join(failed)
    constraint = _CONSTRAINT.search(said)
    return f"the organization policy constraint {constraint[0]} forbids it" if constraint else None
