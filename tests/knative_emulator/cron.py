"""A PingSource's ``schedule`` and ``timezone`` checked as Eventing's webhook checks them
(pkg/apis/sources/v1/ping_validation.go): with robfig/cron v3's parser, seconds optional and
descriptors taken (``@hourly``, ...), but ``@every`` refused; the timezone put in front as
``CRON_TZ=<timezone>``, a name Go's ``time.LoadLocation`` does not know refused as the timezone's
fault."""

from __future__ import annotations

import re
import zoneinfo

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
BOUNDS = {"second": (0, 59, {}), "minute": (0, 59, {}), "hour": (0, 23, {}), "day of month": (1, 31, {}),
          "month": (1, 12, {name: number for number, name in enumerate(MONTHS, 1)}),
          "day of week": (0, 6, {name: number for number, name in enumerate(DAYS)})}
"""Each field's range and names (taken in any case), seconds first."""
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class ScheduleError(ValueError):
    """A schedule (or timezone) the webhook refuses; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}")
        self.field = field


def check_schedule(schedule: str, timezone: str = "") -> None:
    """Refuse (:class:`ScheduleError`) a schedule the PingSource webhook refuses."""
    if "@every" in schedule:
        raise ScheduleError("schedule", "unsupported descriptor @every")
    spec = f"CRON_TZ={timezone} {schedule}" if timezone else schedule
    if not spec:
        raise ScheduleError("schedule", "empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        location, _, spec = spec.partition(" ")
        _check_location(location.partition("=")[2])
        spec = spec.strip()
    if spec.startswith("@"):
        if spec not in DESCRIPTORS:
            raise ScheduleError("schedule", f"unrecognized descriptor: {spec}")
        return
    fields = spec.split()
    if not 5 <= len(fields) <= 6:
        raise ScheduleError("schedule", f"expected 5 to 6 fields, found {len(fields)}: {fields}")
    for text, (name, bounds) in zip(["0"] * (6 - len(fields)) + fields, BOUNDS.items(), strict=True):
        for expression in filter(None, text.split(",")):
            _check_range(expression, name, bounds)


def _check_location(name: str) -> None:
    """As Go's ``time.LoadLocation``: ``UTC`` and ``Local``, else a name of the IANA database."""
    if name in ("", "UTC", "Local"):
        return
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"provided bad location {name}: unknown time zone {name}") from None


def _check_range(expression: str, name: str, bounds: tuple[int, int, dict[str, int]]) -> None:
    """One ``number | number "-" number [ "/" number ]`` (``*`` or ``?`` for the whole range)."""
    low, high, names = bounds
    span, *steps = expression.split("/")
    ends = span.split("-")
    if len(steps) > 1 or len(ends) > 2:
        raise ScheduleError("schedule", f"too many {'slashes' if len(steps) > 1 else 'hyphens'}: {expression}")
    if ends[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _number(ends[0], names)
        end = _number(ends[-1], names) if len(ends) == 2 else (high if steps else start)
    if steps and _number(steps[0], {}) == 0:
        raise ScheduleError("schedule", f"step of range should be a positive number: {expression}")
    if start < low or end > high or start > end:
        raise ScheduleError("schedule", f"{name} {expression}: expected a range within {low}-{high}")


def _number(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not re.fullmatch(r"[+-]?\d+", text) or int(text) < 0:
        raise ScheduleError("schedule", f"failed to parse int from {text}")
    return int(text)
