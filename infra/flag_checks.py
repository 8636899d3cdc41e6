"""The provisioning script's flags checked as click reads them, before anything is asked of the
cloud: labels, comma-separated lists, a ``--timeout`` in seconds, and the names each cloud
takes for what the flags name: GKE's project, location, cluster and node pool, EKS's cluster
and node group, and GKE nodes' service account. A flag that cannot name one would reach the SDK, which raises on an empty one,
or the cloud, which answers that it has no such cluster; a pool name would become part of the
request's path, where ``trials?x`` or ``a/b`` names another resource or none (GKE's REST
transport sends the name unescaped: ``down --pool 'trials?x'`` deleted the pool ``trials``).

The pool ``up``'s flags describe is checked by the same rules as a study's ``nodePool``
(:func:`node_pool`), within the bounds the service's operator sets (:func:`limits`), and EKS's
subnets and node role as EKS takes them (:func:`eks_required`): each a bad flag, exit code 2,
dry run or not."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import click

from functions.core.errors import InvalidSetting
from functions.core.limits import PREFIX, Limits
from functions.core.masked_urls import without_userinfo
from functions.core.nodepool import EKS, GKE_POOL_NODES, NodePool, parse_node_pool
from functions.core.reader import Reader
from functions.settings import values as setting_values
from functions.settings.checks import GSA_EMAIL, IAM_ROLE_ARN, ROLE_EXPECTED
from infra.refusals import FLAGS, flag_of


def labels(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--label k=v`` given again and again, as a mapping; a key given twice is refused rather
    than the last value kept (``--label tier=a --label tier=b`` would label no node ``tier=a``)."""
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}")
        if key in labels:
            raise click.BadParameter(f"{key} given twice ({key}={labels[key]}, {item}); expected each key once")
        labels[key] = value
    return labels


ITEMS = {"--instance-types": "instance type", "--subnets": "subnet id"}
"""What each comma-separated flag lists, as its refusals name it."""


def csv(_ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    """A comma-separated flag's items, blanks left out; an item given twice is refused: it adds
    nothing, and what EKS does with a list repeating one is not documented (its API reference
    gives ``instanceTypes`` and ``subnets`` as plain lists), so the typo behind it (the type or
    subnet meant instead) is named before anything is asked."""
    items = [part.strip() for part in (value or "").split(",") if part.strip()]
    twice = next((item for i, item in enumerate(items) if item in items[:i]), None)
    if twice is not None:
        raise click.BadParameter(f"{twice} given twice; expected each {ITEMS.get(param.opts[0], 'item')} once, "
                                 f"got {value!r}")
    return items


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
    ("gke", "--project"): (re.compile(r"(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]"),
                           "a Google Cloud project id: 6 to 30 lower-case letters, digits and '-', starting with a "
                           "letter and not ending with '-'"),
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


def node_service_account(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--node-service-account``: a Google service account's email, as GKE takes a node pool's
    ``service_account`` (and the service its ``KATUNA_GKE_NODE_SERVICE_ACCOUNT``), or ``default``,
    the cluster's; a bad flag, dry run or not, where GKE would refuse the pool's create without
    naming the flag."""
    if value is not None and value != "default" and not GSA_EMAIL.fullmatch(value):
        raise click.BadParameter(f"expected a Google service account's email (NAME@PROJECT_ID.iam.gserviceaccount.com) "
                                 f"or default, got {value!r}")
    return value


_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")
"""What botocore takes for a region's name (a host label: ``validate_region_name``), given at all."""


def region(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--region``: a name botocore could take for a region. botocore reads an empty one as none
    given, and would take the region of ``AWS_REGION`` or the profile instead, without a word
    (``--region "$REGION"`` with the variable unset); one it cannot take would end the command
    as a refusal (exit 1), not as the bad flag it is."""
    if value is not None and not _REGION.fullmatch(value):
        raise click.BadParameter(f"expected an AWS region, such as us-east-1, got {value!r}")
    return value


def endpoint(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--endpoint``: a URL of another API (``http://127.0.0.1:PORT``, ``https://HOST``) or a host
    (``HOST[:PORT]``, reached over HTTPS), as GKE's client takes one. An empty one, a blank one
    or another scheme would make a client that reaches nothing, each call of it taken for an
    outage and asked again until ``--timeout``."""
    if value is None:
        return None
    try:
        return setting_values.endpoint(value)
    except ValueError:
        raise click.BadParameter(f"expected {setting_values.EXPECTED[setting_values.endpoint]}, "
                                 f"got {without_userinfo(repr(value))}") from None


def limits(nodes_per_group: int | None = None) -> Limits:
    """The bounds the service's operator sets on what one pool may cost, read from the same
    variables as the service reads (``KATUNA_MAX_POOL_NODES``, ``KATUNA_POOL_MACHINE_TYPES``; the
    documented defaults where unset), with the EKS account's quota of nodes per group where the
    command is told it. A pool the script makes is one studies then scale: it may not be one the
    service would refuse a study. A variable that holds no such bound is a bad flag, naming it."""
    try:
        limits = setting_values.study_limits(os.environ)
    except InvalidSetting as exc:
        raise click.UsageError(str(exc)) from exc
    if nodes_per_group is None:
        return limits
    return replace(limits, eks=replace(limits.eks, nodes_per_group=nodes_per_group))


def node_pool(section: dict[str, Any], flags: dict[str, str], limits: Limits) -> NodePool:
    """The pool the flags describe, checked by the same rules as a study's ``nodePool``: what
    the cloud takes, and the operator's bounds (``limits``) on its machine types and its nodes,
    so that one invocation cannot make a pool that scales past them."""
    _check_max_nodes(section["maxNodes"], section["provider"], limits)
    reader = Reader()
    pool = parse_node_pool(reader, {k: v for k, v in section.items() if v not in (None, {})}, None, None, limits)
    if reader.problems or pool is None:
        raise click.UsageError("; ".join(f"{flag_of(p.path, flags) or p.path}: {flag_words(p.message)}"
                                         for p in reader.problems))
    return pool


def _check_max_nodes(max_nodes: int, provider: str, limits: Limits) -> None:
    """``--max-nodes`` from 1 to the service's bound (``KATUNA_MAX_POOL_NODES``), told in one
    message whichever side it misses, where that bound is the lower one; where the cloud's is
    (GKE's 1,000 nodes, the EKS account's quota per group), the study's rule tells it."""
    cloud = limits.eks.nodes_per_group if provider == EKS else GKE_POOL_NODES
    if 1 <= max_nodes <= limits.pool_nodes or limits.pool_nodes > cloud:
        return
    more = f": each node may bill at once; set {PREFIX}MAX_POOL_NODES to allow more" if max_nodes > limits.pool_nodes else ""
    raise click.UsageError(f"--max-nodes: expected an integer from 1 to {limits.pool_nodes}, the most this service "
                           f"lets one pool have ({PREFIX}MAX_POOL_NODES), got {max_nodes}{more}")


def max_nodes_help() -> str:
    """``--max-nodes``'s help, with the bound in force (``KATUNA_MAX_POOL_NODES`` as this
    environment sets it, else its default), read as the command will read it."""
    try:
        most = f"KATUNA_MAX_POOL_NODES ({setting_values.study_limits(os.environ).pool_nodes})"
    except InvalidSetting:
        most = "KATUNA_MAX_POOL_NODES"
    return f"The autoscaling maximum, at least 1 (the pool scales down to 0 nodes), at most {most}."


def flag_words(message: str) -> str:
    """A study's refusal naming other fields of ``nodePool`` (a currency without its price), by their flags."""
    for field, flag in FLAGS.items():
        message = message.replace(f"nodePool.{field}", flag)
    return message


def warn_single_spot_type(capacity: str, instance_types: Sequence[str]) -> None:
    """EKS takes a spot node group of one instance type, but it cannot scale up while that type
    has no spot capacity in any of its zones (AWS's best practices for Spot on EKS: add several
    instance types): a warning on stderr, dry run or not."""
    if capacity == "spot" and len(instance_types) == 1:
        click.echo(f"warning: --instance-types: a spot node group of one instance type ({instance_types[0]}) cannot "
                   "scale up while that type has no spot capacity in its zones; several types give spot capacity "
                   "more pools to come from", err=True)


def eks_required(subnets: Sequence[str], node_role: str) -> None:
    """EKS creates a node group only in subnets and with a node role's ARN: flags given empty
    (``--subnets " , "``, ``--node-role ""``), and a role given otherwise than by its ARN, which
    EKS refuses, are refused as bad flags, dry run or not."""
    empty = [flag for flag, value in (("--subnets", subnets), ("--node-role", node_role.strip())) if not value]
    if empty:
        raise click.UsageError("; ".join(f"{flag}: expected {what}" for flag, what in (
            ("--subnets", "at least one subnet id (comma-separated)"), ("--node-role", "the IAM role ARN of the nodes"))
            if flag in empty))
    if not IAM_ROLE_ARN.fullmatch(node_role):
        raise click.UsageError(f"--node-role: expected {ROLE_EXPECTED}, got {node_role!r}")
