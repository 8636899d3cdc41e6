"""The signature that proves an event comes from katuna, whoever delivers it.

A broker delivers what any sender its policy admits posted to it: without Eventing's OIDC,
any pod in the cluster, trial pods included, which may also post to the service directly; with
OIDC but no EventPolicy, any pod of the broker's namespace. A pod knowing its study's name and
uid could post a ``trial.finished`` that ends a sibling's attempt, or a dead letter that fails
the study. So every event katuna sends carries, in the extension attribute :data:`EXTENSION`, an
HMAC-SHA256 of its type and data under a key made from ``KATUNA_API_TOKEN``, a secret no trial
is given (``KATUNA_SERVICE_SECRETS``). Without that token in the request, an event of a type
katuna sends itself is taken only with that signature, and a dead letter fails its study only
when the event it carries has it. Others' events are not signed: an ApiServerSource's or a PingSource's
(their handlers read the cluster again rather than trust the event) and progress reports (each
carries its attempt's token, :mod:`functions.core.report_token`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from functions.core.errors import ForgedEvent
from functions.core.events import ADVISORY, ROUTES

EXTENSION = "katunasignature"
"""The CloudEvents extension attribute holding the signature; brokers pass extensions on, into
dead letters too."""

SIGNED = frozenset(kind for kind in ROUTES if kind.startswith("dev.katuna.")) - ADVISORY
"""The types taken without the API token only when signed: those katuna sends itself and
handles, but for progress reports."""

_PURPOSE = b"katuna event signature"


def event_key(api_token: str) -> bytes:
    """The signing key made from the API token: not the token itself, so a signature reveals
    nothing that opens the API."""
    return hmac.new(api_token.encode(), _PURPOSE, hashlib.sha256).digest()


def signature(key: bytes, event_type: str, data: Mapping[str, Any]) -> str:
    """The signature of an event of ``event_type`` with ``data``: over its JSON with sorted keys,
    which the data's trip through a broker leaves as it was."""
    body = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hmac.new(key, f"{event_type}\n{body}".encode(), hashlib.sha256).hexdigest()


def is_katunas(key: bytes, event_type: str, data: Mapping[str, Any], given: str | None) -> bool:
    """Whether katuna sent the event: of a type it signs, carrying its signature under ``key``."""
    return (event_type in SIGNED and given is not None
            and hmac.compare_digest(given.encode(), signature(key, event_type, data).encode()))


def check(key: bytes, event_type: str, data: Mapping[str, Any], given: str | None) -> None:
    """Refuse (:class:`ForgedEvent`) an event of a type katuna signs that katuna did not sign;
    others' types pass."""
    if event_type in SIGNED and not is_katunas(key, event_type, data, given):
        raise ForgedEvent(f"{event_type} refused: events of this type are taken only as katuna sends them, "
                          f"signed ({EXTENSION}), or with the API token", event_type)
