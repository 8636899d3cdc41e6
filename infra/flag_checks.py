"""The provisioning script's flags checked as click reads them, before anything is asked of the
cloud: labels, comma-separated lists, a ``--timeout`` in seconds, and the names each cloud
takes for what the flags name: GKE's project, location, cluster and node pool, EKS's cluster
and node group. A flag that cannot name one would reach the SDK, which raises on an empty one,
or the cloud, which answers that it has no such cluster; a pool name would become part of the
request's path, where ``trials?x`` or ``a/b`` names another resource or none (GKE's REST
transport sends the name unescaped: ``down --pool 'trials?x'`` deleted the pool ``trials``)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

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


_GKE_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?")
"""A GKE cluster's or node pool's name."""


def _gke_name(kind: str) -> str:
    return (f"a GKE {kind} name: lower-case letters, digits and '-', starting with a letter, at most 40 "
            "characters")


NAMES = {
    ("gke", "--project"): (re.compile(r"(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z](?:[-a-z0-9]{0,28}[a-z0-9])?"),
                           "a Google Cloud project id: lower-case letters, digits and '-', starting with a letter, "
                           "at most 30 characters"),
    ("gke", "--location"): (re.compile(r"[a-z]+-[a-z]+[0-9]+(?:-[a-z])?"),
                            "a region (europe-west4) or a zone (europe-west4-a)"),
    ("gke", "--cluster"): (_GKE_NAME, _gke_name("cluster")),
    ("gke", "--pool"): (_GKE_NAME, _gke_name("node pool")),
    ("eks", "--cluster"): (re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}"),
                           "an EKS cluster name: letters, digits, '-' and '_', starting with a letter or digit, at "
                           "most 100 characters"),
    ("eks", "--nodegroup"): (re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,62}"),
                             "an EKS node group name: letters, digits, '-' and '_', starting with a letter or digit, "
                             "at most 63 characters"),
}
"""What each cloud takes for each flag naming a resource (GKE's resource names' syntax; EKS's
``CreateCluster`` and ``CreateNodegroup`` names, as its API reference gives them), so that a
flag that cannot name one is refused before anything is asked of the cloud. ``up`` holds a new
pool's name to katuna's own rule besides (an EKS group's name ends with a letter or digit, as
the label value its nodes carry must); ``down`` and ``status`` take any name the cloud can hold."""


def resource_name(cloud: str) -> Callable[[click.Context, click.Parameter, str], str]:
    """The callback of a ``cloud`` flag naming a resource: the value as given, if that cloud
    could take it (:data:`NAMES`)."""
    def checked(_ctx: click.Context, param: click.Parameter, value: str) -> str:
        pattern, expected = NAMES[(cloud, param.opts[0])]
        if not pattern.fullmatch(value):
            raise click.BadParameter(f"expected {expected}, got {value!r}")
        return value
    return checked


gke_name = resource_name("gke")
eks_name = resource_name("eks")
