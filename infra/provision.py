"""The provisioning script: a cluster's spot/preemptible node pool for trials, once per cluster.

    python -m infra.provision gke up --project P --location L --cluster C --pool trials --max-nodes 10
    python -m infra.provision eks up --cluster C --nodegroup trials --instance-types m5.xlarge,m5a.xlarge \\
        --max-nodes 10 --subnets subnet-a,subnet-b --node-role arn:aws:iam::123456789012:role/nodes

``up`` is held to the bounds the service holds a study's pool to (``--max-nodes`` at most
``KATUNA_MAX_POOL_NODES``, machine types among ``KATUNA_POOL_MACHINE_TYPES`` where set): what one
run can make scale is what the operator allows.
``up`` creates the pool (autoscaling from 0, tainted ``katuna.dev/trial=true:NoSchedule``) or,
when it exists, raises its maximum if it is lower, and waits until it is ready; run again, it
changes nothing (but an EKS group's missing cluster-autoscaler tags, which it writes and tells). A pool found still being created (an earlier run interrupted) is waited for
and then asked again for the flags' settings; settings a pool cannot change in place (machine
type, capacity, GKE nodes' service account, an EKS group's node role and subnets) are refused,
saying so. ``down`` deletes it and waits, only a pool carrying
the trial taint (katuna's, or one made for it), never another. A change the
cloud refuses for now (a cluster busy with another operation, throttling) is asked again
until ``--timeout`` has passed; a change not done by then is an error naming what is still
pending (exit code 1). A pool its cloud could not create is an error saying why, and that
``down`` then ``up`` creates it again. ``status`` prints its state and autoscaling limits as
JSON. ``--dry-run`` prints the exact API request as JSON and calls nothing (with, for ``eks up``,
the launch template's request sent first).
Credentials come from the SDKs' standard chains (Application Default Credentials; the AWS
profile or environment), and the EKS region from ``--region`` or that chain; ``--endpoint``
(GKE) and ``AWS_ENDPOINT_URL`` point at another API.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import click

from functions.core.errors import InvalidSetting, KatunaError
from functions.core.limits import PREFIX, EksQuotas, Limits
from functions.core.nodepool import EKS, GKE, NodePool, NodePoolFailed, PoolChange, parse_node_pool
from functions.core.reader import Reader
from functions.setting_values import study_limits
from functions.settings import IAM_ROLE_ARN, ROLE_EXPECTED
from infra import eks_requests, flag_checks, gke_requests
from infra.changes import change, interrupted, print_json, print_status

FLAGS = {"machineType": "--machine-type", "maxNodes": "--max-nodes", "labels": "--label",
         "instanceTypes": "--instance-types", "serviceAccount": "--node-service-account", "nodeRole": "--node-role",
         "subnets": "--subnets"}
"""The flag that sets each field of a study's ``nodePool``; the name's and the capacity's are
each command's own (:func:`_flags`)."""
SETTING_FLAGS = {gke_requests.CLUSTER_SETTINGS: "--cluster/--location", eks_requests.CLUSTER_SETTING: "--cluster",
                 gke_requests.LOCATION_SETTING: "--location",
                 gke_requests.NODE_ACCOUNT_SETTING: "--node-service-account",
                 eks_requests.REGION_SETTING: "--region", eks_requests.SUBNETS_SETTING: "--subnets",
                 eks_requests.NODE_ROLE_SETTING: "--node-role"}
"""The flags that set what the service's settings set."""


def _flags(name_flag: str, capacity: str | None = None) -> dict[str, str]:
    """The flags of one command by the study field each sets: the pool's name flag, and the
    capacity flag as typed (``--preemptible``; ``--spot``, the default, when none was)."""
    return FLAGS | {"name": name_flag} | ({"capacity": f"--{capacity}"} if capacity else {})


def _limits(nodes_per_group: int | None = None) -> Limits:
    """The bounds the service's operator sets on what one pool may cost, read from the same
    variables as the service reads (``KATUNA_MAX_POOL_NODES``, ``KATUNA_POOL_MACHINE_TYPES``; the
    documented defaults where unset), with the EKS account's quota of nodes per group where the
    command is told it. A pool the script makes is one studies then scale: it may not be one the
    service would refuse a study. A variable that holds no such bound is a bad flag, naming it."""
    try:
        limits = study_limits(os.environ)
    except InvalidSetting as exc:
        raise click.UsageError(str(exc)) from exc
    if nodes_per_group is None:
        return limits
    return replace(limits, eks=replace(limits.eks, nodes_per_group=nodes_per_group))


def _pool(section: dict[str, Any], flags: dict[str, str], limits: Limits) -> NodePool:
    """The pool the flags describe, checked by the same rules as a study's ``nodePool``: what
    the cloud takes, and the operator's bounds (``limits``) on its machine types and its nodes,
    so that one invocation cannot make a pool that scales past them."""
    reader = Reader()
    pool = parse_node_pool(reader, {k: v for k, v in section.items() if v not in (None, {})}, None, None, limits)
    if reader.problems or pool is None:
        raise click.UsageError("; ".join(f"{_flag(p.path, flags) or p.path}: {p.message}" for p in reader.problems))
    if pool.max_nodes > limits.pool_nodes:
        raise click.UsageError(f"--max-nodes: expected at most {limits.pool_nodes} nodes, the most this service lets "
                               f"one pool have ({PREFIX}MAX_POOL_NODES), got {pool.max_nodes}: each node may bill "
                               f"at once; set {PREFIX}MAX_POOL_NODES to allow more")
    return pool


def _dry_run(call: str, request: dict[str, Any], first: tuple[str, dict[str, Any]] | None = None) -> None:
    """Print the request a command would send, and the one it would send ``first`` if any (an
    EKS group's launch template)."""
    print_json({"call": call, "request": request} | (
        {"first": {"call": first[0], "request": first[1]}} if first else {}))


def _run(adapter: Callable[[], Any], act: Callable[[Any], None], flags: dict[str, str]) -> None:
    """Build the adapter and act with it; a refusal from the cloud is an error message, in
    terms of the command's ``flags`` (:func:`_flags`), and exit code 1; Ctrl-C, exit code 130."""
    try:
        act(adapter())
    except NodePoolFailed as exc:
        flag = _flag(exc.field, flags)
        click.echo(f"error: {flag}: {_in_place(exc)}" if flag else f"error: {exc}", err=True)
        sys.exit(1)
    except KatunaError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        interrupted()


IN_PLACE = {"nodePool.machineType": "machine type", "nodePool.capacity": "capacity (spot, preemptible or on-demand)",
            "nodePool.instanceTypes": "instance types", "nodePool.serviceAccount": "service account",
            "nodePool.nodeRole": "node role", "nodePool.subnets": "subnets"}
"""What a cloud cannot change of an existing pool: it is created with them."""


STUDY_WORDS = (("; the study asks for ", "; the flags ask for "), ("; the study accepts ", "; the flags accept "),
               (" the study gives them;", " the flags give them;"),
               ("name a pool katuna creates for the study", "name another pool, which `up` creates"))
"""A refusal of an existing pool in a study's words (:func:`functions.core.nodepool.adoption_problem`)
and in the command's: the flags, not a study, ask."""


def _in_place(exc: NodePoolFailed) -> str:
    """The refusal of an existing pool whose settings differ from the flags' (the study's words
    put in the command's), told, where the cloud cannot change them in place, what can be done."""
    said = exc.reason
    for study, flags in STUDY_WORDS:
        said = said.replace(study, flags)
    what = IN_PLACE.get(exc.field or "")
    if what is None or not re.match(r"node pool \S+ exists with ", exc.reason):
        return said
    return (f"{said}. A node pool's {what} cannot be changed in place: give the flags that match the pool, or run "
            "`down`, then `up` to create it again with these (its nodes, and any trials on them, go with it)")


def _ensure_gke(adapter: Any, pool: NodePool, account: str | None) -> PoolChange:
    """``up`` on GKE. GKE cannot change the service account of an existing pool's nodes: one
    running as another than ``--node-service-account`` asks for is refused, naming it, not left
    as it is with "nothing to change"."""
    found = adapter.node_service_account(pool.name) if account else None
    if found is not None and found != account:
        raise NodePoolFailed(f"node pool {pool.name} exists with its nodes running as {found}; the flags ask for "
                             f"{account}", "nodePool.serviceAccount")
    return adapter.ensure(pool)


def _ensure_eks(adapter: Any, pool: NodePool, where: eks_requests.EksCluster) -> PoolChange:
    """``up`` on EKS. EKS cannot change the node role or the subnets of an existing group: one
    whose differ from ``--node-role`` or ``--subnets`` (in any order) is refused, naming them,
    not left as it is with "nothing to change"."""
    found = adapter.node_settings(pool.name)
    if found is None:
        return adapter.ensure(pool)
    role, subnets = found
    if role != where.node_role:
        raise NodePoolFailed(f"node pool {pool.name} exists with node role {role}; the flags ask for "
                             f"{where.node_role}", "nodePool.nodeRole")
    if subnets != set(where.subnets):
        raise NodePoolFailed(f"node pool {pool.name} exists with subnets {', '.join(sorted(subnets))}; the flags ask "
                             f"for {', '.join(sorted(set(where.subnets)))}", "nodePool.subnets")
    return adapter.ensure(pool)


def _delete(adapter: Any, name: str) -> PoolChange:
    """``down`` deletes only a pool that carries the trial taint (one katuna made, or one made
    for it): another (a cluster's ``default-pool``, a pool of other workloads that happens to
    have the name) is refused, naming the pool's flag, and nothing is deleted."""
    found = adapter.describe(name)
    if found is not None and not found.tainted:
        raise NodePoolFailed(f"node pool {name} is not katuna's: its nodes lack the taint katuna.dev/trial=true:"
                             "NoSchedule, so other workloads may run on it; `down` deletes only katuna's pools "
                             "(delete it with the cloud's own tools if you mean to)", "nodePool.name")
    return adapter.delete(name)


def _flag(field: str | None, flags: dict[str, str]) -> str | None:
    """The flag that sets the study field or service setting an error names, if there is one; a
    label's with its key (``--label team``)."""
    if field is None:
        return None
    if field.startswith("nodePool."):
        _, name, *key = field.split(".", 2)
        flag = flags.get(name)
        return f"{flag} {key[0]}" if flag and name == "labels" and key else flag
    return SETTING_FLAGS.get(field)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Provision katuna's node pool for trials on GKE or EKS."""


@main.group(name="gke")
def gke_group() -> None:
    """A GKE node pool (google-cloud-container)."""


def gke_options(command: Callable) -> Callable:
    for option in reversed([
        click.option("--project", required=True, callback=flag_checks.gke_name, help="Google Cloud project id."),
        click.option("--location", required=True, callback=flag_checks.gke_name, help="The cluster's region or zone."),
        click.option("--cluster", required=True, callback=flag_checks.gke_name, help="The GKE cluster."),
        click.option("--pool", required=True, callback=flag_checks.gke_name, help="The node pool's name."),
        click.option("--endpoint", help="Another API endpoint (a local stand-in: http://127.0.0.1:PORT)."),
        click.option("--dry-run", is_flag=True, help="Print the API request as JSON; call nothing."),
    ]):
        command = option(command)
    return command


def _gke(project: str, location: str, cluster: str, endpoint: str | None,
         node_service_account: str | None = None) -> tuple[gke_requests.GkeCluster, Callable[[], Any]]:
    """The cluster, and how to build the adapter (each cloud's SDK is imported only by the
    commands of that cloud)."""
    from infra import gke

    where = gke_requests.GkeCluster(project, location, cluster, node_service_account)
    return where, (lambda: gke.GkeNodePools(where, gke.client(endpoint)))


@gke_group.command(name="up")
@gke_options
@click.option("--machine-type", default="e2-standard-4", show_default=True,
              help="The machine type of every node (one of KATUNA_POOL_MACHINE_TYPES, where set).")
@click.option("--max-nodes", type=int, default=3, show_default=True,
              help="The autoscaling maximum, at least 1 (the pool scales down to 0 nodes), at most "
                   "KATUNA_MAX_POOL_NODES (100).")
@click.option("--spot", "capacity", flag_value="spot", default=True, help="Spot VMs (the default).")
@click.option("--preemptible", "capacity", flag_value="preemptible", help="Preemptible VMs.")
@click.option("--on-demand", "capacity", flag_value="on-demand", help="Standard VMs.")
@click.option("--label", "labels", multiple=True, callback=flag_checks.labels, metavar="KEY=VALUE", help="A node label (repeat).")
@click.option("--node-service-account", metavar="EMAIL",
              help="The Google service account the nodes run as (default: the cluster's).")
@flag_checks.timeout_option
def gke_up(project, location, cluster, pool, endpoint, dry_run, machine_type, max_nodes, capacity, labels,
           node_service_account, timeout) -> None:
    """Create the node pool, or raise its maximum; wait until it is ready."""
    flags = _flags("--pool", capacity)
    spec = _pool({"name": pool, "provider": GKE, "capacity": capacity, "machineType": machine_type,
                  "maxNodes": max_nodes, "labels": labels}, flags, _limits())
    where, pools = _gke(project, location, cluster, endpoint, node_service_account)
    if dry_run:
        return _dry_run("create_node_pool", gke_requests.create_request(where, spec))
    _run(pools, change(lambda adapter: _ensure_gke(adapter, spec, node_service_account), pool, "ready", timeout,
                       settle=True, max_nodes=max_nodes), flags)


@gke_group.command(name="down")
@gke_options
@flag_checks.timeout_option
def gke_down(project, location, cluster, pool, endpoint, dry_run, timeout) -> None:
    """Delete the node pool and wait until it is gone (an absent pool is fine)."""
    where, pools = _gke(project, location, cluster, endpoint)
    if dry_run:
        return _dry_run("delete_node_pool", gke_requests.name_request(where, pool))
    _run(pools, change(lambda adapter: _delete(adapter, pool), pool, "deleted", timeout),
         _flags("--pool"))


@gke_group.command(name="status")
@gke_options
def gke_status(project, location, cluster, pool, endpoint, dry_run) -> None:
    """Print the node pool's state and autoscaling limits as JSON."""
    where, pools = _gke(project, location, cluster, endpoint)
    if dry_run:
        return _dry_run("get_node_pool", gke_requests.name_request(where, pool))
    _run(pools, lambda adapter: print_status(adapter, pool), _flags("--pool"))


@main.group(name="eks")
def eks_group() -> None:
    """An EKS managed node group (boto3)."""


def eks_options(command: Callable) -> Callable:
    for option in reversed([
        click.option("--cluster", required=True, callback=flag_checks.eks_name, help="The EKS cluster."),
        click.option("--region", help="The cluster's AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the "
                                      "AWS profile's)."),
        click.option("--nodegroup", required=True, callback=flag_checks.eks_name, help="The managed node group's name."),
        click.option("--dry-run", is_flag=True, help="Print the API request as JSON; call nothing."),
    ]):
        command = option(command)
    return command


def _eks(cluster: str, region: str | None, subnets: Sequence[str] = (),
         node_role: str | None = None) -> tuple[eks_requests.EksCluster, Callable[[], Any]]:
    """The cluster, and how to build the adapter (boto3 is imported only by the EKS commands)."""
    from infra import eks

    where = eks_requests.EksCluster(cluster, tuple(subnets), node_role)
    return where, (lambda: eks.EksNodePools(where, *eks.clients(region)))


@eks_group.command(name="up")
@eks_options
@click.option("--instance-types", callback=flag_checks.csv, default="m5.xlarge,m5a.xlarge,m6i.xlarge", show_default=True,
              help="Instance types, comma-separated (several give spot capacity more pools to come from; "
                   "each one of KATUNA_POOL_MACHINE_TYPES, where set).")
@click.option("--max-nodes", type=int, default=3, show_default=True,
              help="The autoscaling maximum, at least 1 (the pool scales down to 0 nodes), at most "
                   "KATUNA_MAX_POOL_NODES (100).")
@click.option("--subnets", callback=flag_checks.csv, required=True, help="Subnet ids, comma-separated.")
@click.option("--node-role", required=True, metavar="ARN", help="The IAM role of the nodes.")
@click.option("--spot", "capacity", flag_value="spot", default=True, help="Spot instances (the default).")
@click.option("--on-demand", "capacity", flag_value="on-demand", help="On-demand instances.")
@click.option("--label", "labels", multiple=True, callback=flag_checks.labels, metavar="KEY=VALUE", help="A node label (repeat).")
@click.option("--nodes-per-group-quota", type=click.IntRange(min=1), default=EksQuotas().nodes_per_group,
              envvar="KATUNA_EKS_NODES_PER_GROUP", show_default=True, show_envvar=True,
              help="The account's EKS quota of nodes per managed node group, where it is raised: "
                   "--max-nodes may not exceed it.")
@flag_checks.timeout_option
def eks_up(cluster, region, nodegroup, dry_run, instance_types, max_nodes, subnets, node_role, capacity, labels,
           nodes_per_group_quota, timeout) -> None:
    """Create the node group, or raise its maximum; wait until it is active."""
    _required_flags(subnets, node_role)
    _warn_single_spot_type(capacity, instance_types)
    flags = _flags("--nodegroup", capacity)
    spec = _pool({"name": nodegroup, "provider": EKS, "capacity": capacity, "instanceTypes": instance_types,
                  "maxNodes": max_nodes, "labels": labels}, flags, _limits(nodes_per_group_quota))
    where, pools = _eks(cluster, region, subnets, node_role)
    if dry_run:
        return _dry_run("create_nodegroup", eks_requests.create_request(where, spec),
                        ("create_launch_template", eks_requests.template_request(where, spec)))
    _run(pools, change(lambda adapter: _ensure_eks(adapter, spec, where), nodegroup, "active", timeout, settle=True,
                       max_nodes=max_nodes), flags)


def _warn_single_spot_type(capacity: str, instance_types: Sequence[str]) -> None:
    """EKS takes a spot node group of one instance type, but it cannot scale up while that type
    has no spot capacity in any of its zones (AWS's best practices for Spot on EKS: add several
    instance types): a warning on stderr, dry run or not."""
    if capacity == "spot" and len(instance_types) == 1:
        click.echo(f"warning: --instance-types: a spot node group of one instance type ({instance_types[0]}) cannot "
                   "scale up while that type has no spot capacity in its zones; several types give spot capacity "
                   "more pools to come from", err=True)


def _required_flags(subnets: Sequence[str], node_role: str) -> None:
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


@eks_group.command(name="down")
@eks_options
@flag_checks.timeout_option
def eks_down(cluster, region, nodegroup, dry_run, timeout) -> None:
    """Delete the node group and wait until it is gone (an absent one is fine)."""
    where, pools = _eks(cluster, region)
    if dry_run:
        return _dry_run("delete_nodegroup", eks_requests.name_request(where, nodegroup))
    _run(pools, change(lambda adapter: _delete(adapter, nodegroup), nodegroup, "deleted", timeout),
         _flags("--nodegroup"))


@eks_group.command(name="status")
@eks_options
def eks_status(cluster, region, nodegroup, dry_run) -> None:
    """Print the node group's state and scaling limits as JSON."""
    where, pools = _eks(cluster, region)
    if dry_run:
        return _dry_run("describe_nodegroup", eks_requests.name_request(where, nodegroup))
    _run(pools, lambda adapter: print_status(adapter, nodegroup), _flags("--nodegroup"))


if __name__ == "__main__":
    main()
