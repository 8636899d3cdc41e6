"""A Trigger's (or its Broker's) ``delivery``, as Knative Eventing's dispatcher applies it.

``retry`` more attempts after the first; between them the back-off of ``backoffPolicy`` from
``backoffDelay`` (an ISO-8601 duration): exponential waits ``delay * 2**n``, linear ``delay * n``,
``n`` counting retries from 0 (go-retryablehttp's attempt number, which Knative hands to its
back-off). An answer is retried when there is none (a connection error) or it is 5xx, 404, 408,
409 or 429; any other non-2xx answer gives up at once. On giving up the event goes to the
``deadLetterSink`` (with the same retries) carrying ``knativeerrordest``, ``knativeerrorcode``
and ``knativeerrordata`` (the answer's body, base64, at most 1,024 characters), where the broker
filter's answer carried them (:mod:`.answers`). A body longer than 768 bytes does not fit: the
in-memory channel's dispatcher sizes its buffer for 1,024 characters and then writes the whole
body's base64 into it (``dispatchExecutionInfoTransformers`` in event_dispatcher.go), and the
panic ends the dispatcher with every channel's events in flight (knative-extensions/
eventing-natss#434): :class:`DispatcherCrash`. Fields the emulator does not honour
(``timeout``, ``retryAfterMax``) are refused loudly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ERROR_DATA_MAX = 1024
ERROR_BODY_FITS = ERROR_DATA_MAX // 4 * 3
"""The longest answer body whose base64 fits the dispatcher's buffer: 768 bytes."""
NO_ANSWER = 500
"""The code Knative's dispatcher records when a request got no answer (a connection error)."""

_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def iso_seconds(text: str) -> float:
    """Seconds of an ISO-8601 duration such as ``PT0.5S`` or ``PT1M``, as Knative reads a
    ``backoffDelay``: with ``period.Parse`` of rickb777/date v1.13.0 (eventing's go.mod), which
    keeps one decimal place of a number and drops the rest (period/parse.go
    ``parseDecimalFixedPoint``), so ``PT0.25S`` waits 0.2 s and ``PT0.05S`` none at all."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"backoffDelay: {text!r} is not an ISO-8601 duration")
    parts = {key: _tenths(value) / 10 for key, value in match.groupdict().items() if value}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def _tenths(number: str) -> int:
    """Tenths of a decimal number, the digits past the first decimal one dropped."""
    whole, _, fraction = number.partition(".")
    return int(whole + (fraction[:1] or "0"))


def retried(status: int | None) -> bool:
    """Whether Knative tries again after this answer (None: no answer at all)."""
    return status is None or status >= 500 or status in (404, 408, 409, 429)


class DispatcherCrash(Exception):
    """The in-memory channel's dispatcher panicked on an error body too long for its buffer."""


def error_data(body: bytes) -> str:
    """The ``knativeerrordata`` of an answer's body; :class:`DispatcherCrash` where it is longer
    than :data:`ERROR_BODY_FITS`."""
    if len(body) > ERROR_BODY_FITS:
        raise DispatcherCrash(f"index out of range [{ERROR_DATA_MAX}] with length {ERROR_DATA_MAX}: an error answer "
                              f"of {len(body)} bytes")
    return base64.b64encode(body).decode()


@dataclass(frozen=True)
class Delivery:
    retry: int = 0
    policy: str | None = None
    delay: float | None = None
    dead_letter: Mapping[str, Any] | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Delivery:
        spec = spec or {}
        unknown = set(spec) - {"retry", "backoffPolicy", "backoffDelay", "deadLetterSink"}
        if unknown:
            raise ValueError(f"delivery: {sorted(unknown)} not emulated")
        policy, delay = spec.get("backoffPolicy"), spec.get("backoffDelay")
        if policy not in (None, "linear", "exponential"):
            raise ValueError(f"delivery.backoffPolicy: expected linear or exponential, got {policy!r}")
        retry = spec.get("retry", 0)
        if not isinstance(retry, int) or retry < 0:
            raise ValueError(f"delivery.retry: expected an integer >= 0, got {retry!r}")
        return cls(retry, policy, None if delay is None else iso_seconds(delay), spec.get("deadLetterSink"))

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (0 for the first retry)."""
        if self.policy is None or self.delay is None:
            return 0.0
        factor = 2 ** retry_number if self.policy == "exponential" else retry_number
        return self.delay * factor
