"""A running trial whose attempt something other than katuna holds back from running (a Job an
admission controller such as Kueue keeps suspended until a queue admits it, a pod whose image
cannot be pulled or that no node fits): its reason says so, as its first line, for as long as it
waits, and drops the note once the attempt runs or ends."""

from __future__ import annotations

HELD = "waiting: "
"""How the note of a held attempt starts, among a trial's reasons."""

EARLIER_HELD = "waiting to be admitted: "
"""How it started in earlier katunas, whose notes are still dropped."""


def noted(reason: str, held: str | None) -> str:
    """``reason`` with ``held`` (why the attempt waits) as its note in its first line; without a
    note when ``held`` is None."""
    return "\n".join(part for part in (HELD + held if held else "", without_note(reason)) if part)


def without_note(reason: str) -> str:
    """``reason`` without the note of a held attempt: what the trial's earlier attempts left."""
    first, _, rest = reason.partition("\n")
    return rest if first.startswith((HELD, EARLIER_HELD)) else reason
