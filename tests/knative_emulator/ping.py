"""A PingSource of ``knative/`` (sources.knative.dev/v1), ticking every ``interval`` seconds instead
of on its schedule, each tick sent on its own (:func:`.sources.send`), as the adapter's cron runs
each in a goroutine of its own: a tick whose fan-out takes long holds up no later tick.

The spec is checked as Eventing's webhook checks it (ping_validation.go): the ``schedule``
(``* * * * *`` where none is given) and ``timezone`` (:mod:`.cron`); ``data`` and
``dataBase64`` not both; ``dataBase64`` valid base64; with ``contentType`` ``application/json``,
the data (decoded) a JSON object. A field it does not emulate (``ceOverrides``) is refused loudly.

Each tick is the event the mtping adapter makes (runner.go ``makeEvent``):
``dev.knative.sources.ping`` from ``/apis/v1/namespaces/<namespace>/pingsources/<name>``, a fresh
id and the time of sending; its data ``data``'s bytes, or ``dataBase64`` decoded, with
``contentType`` as its ``datacontenttype``. Without data there is none; without a
``contentType``, no ``datacontenttype`` (no ``Content-Type``: nothing defaults it). The adapter
waits a random 0 to 500 ms before each send, to spread the load; the emulator sends at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from .cron import check_schedule
from .faults import Faults
from .sources import send

DEFAULT_SCHEDULE = "* * * * *"
"""The schedule the webhook gives a PingSource without one (ping_defaults.go)."""
EMULATED = frozenset({"schedule", "timezone", "contentType", "data", "dataBase64", "sink"})


def ping_data(spec: Mapping[str, Any]) -> bytes | None:
    """The data of a PingSource's ticks (None: none); ``ValueError`` naming the field the
    webhook refuses."""
    data, encoded = spec.get("data", ""), spec.get("dataBase64", "")
    if data and encoded:
        raise ValueError("spec.data, spec.dataBase64: expected exactly one, got both")
    field, found = ("dataBase64", _decoded(encoded)) if encoded else ("data", data.encode() if data else None)
    if found is not None and spec.get("contentType") == "application/json":
        try:
            parsed = json.loads(found, parse_constant=_no_constant)
        except ValueError as exc:
            raise ValueError(f"spec.{field}: expected a JSON object (contentType application/json): {exc}") from None
        if parsed is not None and not isinstance(parsed, dict):
            raise ValueError(f"spec.{field}: expected a JSON object (contentType application/json)")
    return found


def _decoded(text: str) -> bytes:
    """``dataBase64`` as Go's standard decoding reads it (line breaks skipped, padding required)."""
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"spec.dataBase64: expected standard base64: {exc}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"invalid character in {name}")


class PingSource:
    """Ticks of a PingSource manifest in ``namespace``, sent to ``sink`` every ``interval`` seconds."""

    def __init__(self, manifest: Mapping[str, Any], sink: str, faults: Faults, interval: float,
                 namespace: str = "katuna") -> None:
        spec = manifest["spec"]
        unknown = set(spec) - EMULATED
        if unknown:
            raise ValueError(f"PingSource spec: {sorted(unknown)} not emulated")
        check_schedule(spec.get("schedule") or DEFAULT_SCHEDULE, spec.get("timezone", ""))
        self.data = ping_data(spec)
        self.content_type = spec.get("contentType", "").strip()
        self.source = f"/apis/v1/namespaces/{namespace}/pingsources/{manifest['metadata']['name']}"
        self.sink, self.faults, self.interval = sink, faults, interval
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def tick(self) -> CloudEvent:
        attributes = {"type": "dev.knative.sources.ping", "source": self.source, "id": str(uuid.uuid4()),
                      "time": datetime.now(UTC)}
        if self.content_type:
            attributes["datacontenttype"] = self.content_type
        return CloudEvent(attributes=attributes, data=self.data)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.ticks += 1
            threading.Thread(target=send, args=(self.sink, self.tick(), self.faults), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
