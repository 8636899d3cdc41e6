"""Whether a cluster trial's log lost its beginning to the kubelet's log rotation.

The kubelet starts a new log file for a running container each time the current one passes
``containerLogMaxSize`` (10 Mi by default, on GKE and EKS too), and the Kubernetes API serves
only the current file. A trial that printed more than that has lost its first lines by the time
katuna reads its log at the end: its observations begin in the middle, a ``min`` or ``max``
reduction runs over the tail only, and an objective printed early seems never reported. The
API gives no sign of a rotation, so katuna infers one from what it can see:

- where katuna kept the observations of the pod's running log as it read it
  (:mod:`functions.core.log_keep`), none of those is lost: only the lines written between the last
  line it read and the first line the log now begins with, when the log begins after it;
- for certain, when katuna read the pod's running log before (the progress cursor of a study with
  early stopping, :mod:`functions.core.log_cursor`) and the log now begins after the last line it
  read then, or holds fewer reports of the objective than it had counted by then;
- as likely, when the log begins well after the container started (:data:`QUIET_START`) and the
  trial printed fast enough while it was served to have filled a file of :data:`MAX_SIZE` in
  that time (:data:`RATE_SLACK`): a trial that was only quiet at first prints far slower than
  that, and is not flagged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from functions.core.log_cursor import NANOS, Cursor
from functions.core.log_keep import Kept

MAX_SIZE = 10 * 1024 * 1024
"""The kubelet's ``containerLogMaxSize`` by default (GKE, EKS, and Kubernetes itself)."""

QUIET_START = 30.0
"""Seconds between a container's start and its log's first line past which the log may have been rotated."""

RATE_SLACK = 10
"""How many times slower than needed to fill :data:`MAX_SIZE` before its first served line a
trial may print while its log is served, and its log still count as likely rotated."""

ADVICE = ("the Kubernetes API serves only a container's current log file, and the kubelet starts a new one each "
          "time the log passes its containerLogMaxSize (10 Mi by default on GKE and EKS); print less (progress "
          "bars and per-step debugging elsewhere), or raise containerLogMaxSize in the nodes' kubelet configuration")


ADVICE_SHORT = ("print less, or raise containerLogMaxSize in the nodes' kubelet configuration (10 Mi by default on "
                "GKE and EKS)")


@dataclass(frozen=True)
class LogStart:
    """Where the log of an attempt's last run begins: its pod's uid, when its trial container
    started and ended (seconds since the epoch; ``ended`` None while it runs), and when the
    first line the API serves was written (nanoseconds since the epoch; None when it serves none)."""

    pod: str
    started: float
    ended: float | None
    first: int | None


def _lost_between(start: LogStart, read: Cursor) -> str | None:
    """Where the observations of the current pod's log were kept up to ``read``: nothing is lost
    when the log the API serves begins at or before that line; else the lines written between it
    and the log's first line went with the rotated files (the log rotated before katuna read them:
    it printed faster than katuna reads, or the reads were too far apart)."""
    if start.first is not None and start.first <= read.at:
        return None
    begins = "serves no line" if start.first is None else f"begins at {_when(start.first)}"
    return (f"the kubelet rotated this trial's log before katuna read all of it: katuna kept the observations of "
            f"its lines up to {_when(read.at)}, and the log now {begins}; the observations printed in between are "
            f"lost (with any best value of a min or max metric among them): read the running logs more often "
            f"(KATUNA_K8S_KEEP_SECONDS, KATUNA_K8S_PROGRESS_SECONDS), or {ADVICE_SHORT}")


def _when(nanos: int) -> str:
    """A log line's time, as a trial's reason shows it (UTC, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(nanos // NANOS))


def rotated(start: LogStart | None, cursor: Cursor | None, served_bytes: int, reports: int, now: float,
            kept: Kept | None = None) -> str | None:
    """What a trial's reason says about the rotation of its log, or None when there is no sign
    of one. ``cursor`` is how far katuna read the running log's reports (None when it never did);
    ``kept`` what it kept of it (:mod:`functions.core.log_keep`); ``served_bytes`` and ``reports``
    (of the objective) what the API served at the end; ``now`` the time of that read."""
    if start is None:
        return None
    read = kept.of(start.pod) if kept is not None else None
    if read is not None:
        return _lost_between(start, read)
    if cursor is not None and cursor.pod == start.pod and (
            start.first is None or start.first > cursor.at or reports < cursor.reports):
        begins = "serves no line" if start.first is None else f"begins at {_when(start.first)}"
        return (f"the kubelet rotated this trial's log: katuna read its lines up to {_when(cursor.at)} while it "
                f"ran, and the log now {begins}; the observations printed before then are lost (with any best "
                f"value of a min or max metric among them): {ADVICE}")
    if start.first is None:
        return None
    quiet = start.first / NANOS - start.started
    served_for = max((start.ended or now) - start.first / NANOS, 1.0)
    if quiet < QUIET_START or served_bytes / served_for * RATE_SLACK < MAX_SIZE / quiet:
        return None
    return (f"the log the Kubernetes API served begins {quiet:.0f}s after the trial's container started, at "
            f"{_when(start.first)}, and the trial printed {served_bytes / served_for:,.0f} bytes a second after "
            f"that: the kubelet has likely rotated its earlier lines away, and the observations printed before "
            f"then are lost (with any best value of a min or max metric among them): {ADVICE}")
