"""The provisioning script's flags checked as click reads them, before anything is asked of the
cloud: labels, comma-separated lists, a ``--timeout`` in seconds, and the names GKE takes for
a project, a location and a cluster (a flag that cannot name one would reach the SDK, which
raises on an empty one, or the cloud, which answers that it has no such cluster)."""

from __future__ import annotations

import math
import re

import click


def labels(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--label k=v`` given again and again, as a mapping."""
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}")
        labels[key] = value
    return labels


def csv(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str]:
    """A comma-separated flag's items, blanks left out."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


WAIT = 1800.0
"""How long ``up`` and ``down`` take at most by default, in seconds: asking again a change
refused for now, and waiting for it."""


def seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """A number of seconds: ``nan`` or ``inf``, which click's float takes, would never end a wait."""
    if not math.isfinite(value):
        raise click.BadParameter(f"expected a number of seconds, at least 0, got {value}")
    return value


timeout_option = click.option("--timeout", type=click.FloatRange(min=0), default=WAIT, show_default=True,
                              callback=seconds,
                              help="How long to ask again a change refused for now and wait for it, in seconds; "
                                   "not done by then is an error.")


GKE_NAMES = {
    "--project": (re.compile(r"(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z](?:[-a-z0-9]{0,28}[a-z0-9])?"),
                  "a Google Cloud project id: lower-case letters, digits and '-', starting with a letter, "
                  "at most 30 characters"),
    "--location": (re.compile(r"[a-z]+-[a-z]+[0-9]+(?:-[a-z])?"),
                   "a region (europe-west4) or a zone (europe-west4-a)"),
    "--cluster": (re.compile(r"[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?"),
                  "a GKE cluster name: lower-case letters, digits and '-', starting with a letter, at most 40 characters"),
}
"""What GKE takes for each flag naming the cluster (its resource names' syntax), so that a flag
that cannot name one is refused before anything is asked of the cloud."""


def gke_name(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The project, location or cluster flag as given, if GKE could take it (:data:`GKE_NAMES`)."""
    pattern, expected = GKE_NAMES[param.opts[0]]
    if not pattern.fullmatch(value):
        raise click.BadParameter(f"expected {expected}, got {value!r}")
    return value
