"""The provisioning script: a cluster's spot/preemptible node pool for trials, once per cluster.

    python -m infra.provision gke up --project P --location L --cluster C --pool trials --max-nodes 10
    python -m infra.provision eks up --cluster C --nodegroup trials --instance-types m5.xlarge,m5a.xlarge \\
        --max-nodes 10 --subnets subnet-a,subnet-b --node-role arn:aws:iam::123456789012:role/nodes

``up`` is held to the bounds the service holds a study's pool to (``--max-nodes`` at most
``KATUNA_MAX_POOL_NODES``, machine types among ``KATUNA_POOL_MACHINE_TYPES`` where set): what one
run can make scale is what the operator allows. It creates the pool (autoscaling from 0,
tainted ``katuna.dev/trial=true:NoSchedule``, marked ``katuna-made-by=infra-provision``) or, when
it exists, raises its maximum if it is lower, and waits until it is ready; run again, it changes
nothing (but an EKS group's missing cluster-autoscaler tags, which it writes and tells). A pool
found still being created is waited for and then asked again for the flags' settings; settings
a pool cannot change in place are refused, saying so (:mod:`infra.refusals`), and so is the pool
the service made for a study, which the service deletes or scales back (:mod:`infra.pool_checks`).
``down`` deletes only a pool ``up`` made, unless ``--any-katuna-pool`` (and never one without
the trial taint), and waits (:mod:`infra.pool_checks`); of an absent EKS group, it deletes the
launch templates an earlier create left, and tells them. A refused permission is told what to
grant, and to whom. A change the cloud refuses for now is asked again until
``--timeout``; a change not done by then is an error naming what is still pending
(:mod:`infra.changes`). ``status`` prints the pool's state and autoscaling limits as JSON,
with what the cloud says is wrong with it, if anything.
``--dry-run`` of ``up`` and ``down`` reads the cloud (read-only calls) and prints what the
command would do, with ``up``'s worst case and, given ``--price-per-node-hour``, its cost an hour
(:mod:`infra.plan`); ``status --dry-run`` prints its request and calls nothing. The exit codes
(:data:`EXIT_CODES`) end every ``--help``; SIGTERM ends a command as Ctrl-C does.
Credentials come from the SDKs' standard chains (Application Default Credentials; the AWS
profile or environment), and the EKS region from ``--region`` or that chain; ``--endpoint``
(GKE) and ``AWS_ENDPOINT_URL`` point at another API.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from functions.cli_flags import OptionsOnceGroup
from functions.core.errors import KatunaError
from functions.core.limits import EksQuotas
from functions.core.nodepool import EKS, GKE, SCRIPT_MARK, NodePool, NodePoolFailed
from infra import eks_requests, flag_checks, gke_requests, plan, pool_checks
from infra.changes import change, interrupted, on_stopping_signals, print_json, print_status
from infra.refusals import command_flags, refusal_text

EXIT_CODES = """\b
Exit codes:
  0    done; with --dry-run, the plan printed
  1    refused (by the cloud, or a pool `up` or `down` may not
       change), or not done by --timeout; with --dry-run, `up` or
       `down` would be refused
  2    a bad flag
  130  interrupted (Ctrl-C), saying what goes on in the cloud
  143  terminated (SIGTERM), saying the same"""
"""The exit codes of every command, as its ``--help`` ends with them (docs/kubernetes.md lists the same)."""


def _run(adapter: Callable[[], Any], act: Callable[[Any], None], flags: dict[str, str]) -> None:
    """Build the adapter and act with it; a refusal (the cloud's, a check's, or a plan's) is an
    error message, in terms of the command's ``flags`` (:func:`infra.refusals.command_flags`),
    and exit code 1, with a plan's JSON on stdout; Ctrl-C, exit code 130; SIGTERM, 143."""
    on_stopping_signals()
    try:
        act(adapter())
    except plan.Refused as exc:
        said = refusal_text(exc.refusal, flags)
        print_json(exc.plan | {"summary": said})
        click.echo(f"error: {said}", err=True)
        sys.exit(1)
    except NodePoolFailed as exc:
        click.echo(f"error: {refusal_text(exc, flags)}", err=True)
        sys.exit(1)
    except KatunaError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        interrupted(None, exc)


@click.group(cls=OptionsOnceGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
def main() -> None:
    """Provision katuna's node pool for trials on GKE or EKS."""


@main.group(name="gke", epilog=EXIT_CODES)
def gke_group() -> None:
    """A GKE node pool (google-cloud-container)."""


PLAN_HELP = ("Print what the command would do ({}), read from the cloud with read-only calls, as JSON; change "
             "nothing.")
up_plan_option = click.option("--dry-run", is_flag=True, help=PLAN_HELP.format(
    "create, raise the maximum, write autoscaler tags, nothing to change, wait, refuse"))
down_plan_option = click.option("--dry-run", is_flag=True, help=PLAN_HELP.format("delete, nothing to delete, refuse"))
price_options = [
    click.option("--price-per-node-hour", type=float, metavar="PRICE",
                 help="What one node costs an hour, in your currency (as a study's nodePool.pricePerNodeHour): "
                      "the plan's worst case, and `up`'s once done, says what the most nodes cost an hour. "
                      "katuna holds no price list."),
    click.option("--currency", metavar="CODE", help="The price's currency, an ISO 4217 code (USD, EUR)."),
]
any_pool_option = click.option(
    pool_checks.ANY_POOL_FLAG, "any_pool", is_flag=True,
    help=f"Delete the pool even if `up` did not make it (it lacks the mark katuna-made-by={SCRIPT_MARK}: a pool "
         "made by hand or by an older `up`, or one the service made for a study), as long as it carries "
         "katuna's trial taint.")


def with_options(options: list[Callable]) -> Callable[[Callable], Callable]:
    def wrap(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command
    return wrap


gke_options = with_options([
    click.option("--project", required=True, callback=flag_checks.gke_name, help="Google Cloud project id."),
    click.option("--location", required=True, callback=flag_checks.gke_name, help="The cluster's region or zone."),
    click.option("--cluster", required=True, callback=flag_checks.gke_name, help="The GKE cluster."),
    click.option("--pool", required=True, callback=flag_checks.gke_name, help="The node pool's name."),
    click.option("--endpoint", callback=flag_checks.endpoint, help="Another API endpoint (a local stand-in: http://127.0.0.1:PORT)."),
])
status_dry_run = click.option("--dry-run", is_flag=True, help="Print the API request as JSON; call nothing.")


def _gke(project: str, location: str, cluster: str, endpoint: str | None,
         node_service_account: str | None = None) -> tuple[gke_requests.GkeCluster, Callable[[], Any]]:
    """The cluster, whose pools ``up`` creates carry the script's mark, and how to build the
    adapter (each cloud's SDK is imported only by the commands of that cloud)."""
    from infra import gke

    where = gke_requests.GkeCluster(project, location, cluster, node_service_account, made_by=SCRIPT_MARK)
    return where, (lambda: gke.GkeNodePools(where, gke.client(endpoint)))


def _up(pools: Callable[[], Any], spec: NodePool, check: Callable[[Any], None], ensure: Callable[[Any], Any],
        done: str, dry_run: bool, timeout: float, flags: dict[str, str]) -> None:
    """``up``, or its plan: ``check`` a pool found, then ``ensure`` it."""
    if dry_run:
        return _run(pools, lambda adapter: plan.show(plan.up(adapter, spec, check, timeout)), flags)
    def ask(adapter: Any) -> Any:
        check(adapter)
        return ensure(adapter)

    _run(pools, change(ask, spec.name, done, timeout, settle=True, max_nodes=spec.max_nodes,
                       worst=plan.worst_of(spec)), flags)


def _down(pools: Callable[[], Any], name: str, any_pool: bool, dry_run: bool, timeout: float, flags: dict[str, str],
          request: tuple[str, dict[str, Any]], also: str = "",
          leftovers: Callable[[Any], list[dict[str, str]]] | None = None) -> None:
    """``down``, or its plan: the pool deleted if :func:`infra.pool_checks.check_delete` lets it
    be (and what an earlier create left of an absent one, ``leftovers``)."""
    if dry_run:
        return _run(pools, lambda adapter: plan.show(plan.down(adapter, name, any_pool, timeout, *request, also,
                                                               leftovers)), flags)
    _run(pools, change(lambda adapter: pool_checks.delete(adapter, name, any_pool), name, "deleted", timeout), flags)


@gke_group.command(name="up", epilog=EXIT_CODES)
@gke_options
@up_plan_option
@click.option("--machine-type", default="e2-standard-4", show_default=True,
              help="The machine type of every node (one of KATUNA_POOL_MACHINE_TYPES, where set).")
@click.option("--max-nodes", type=int, default=3, show_default=True, help=flag_checks.max_nodes_help())
@click.option("--spot", "capacity", flag_value="spot", default=True, help="Spot VMs (the default).")
@click.option("--preemptible", "capacity", flag_value="preemptible", help="Preemptible VMs.")
@click.option("--on-demand", "capacity", flag_value="on-demand", help="Standard VMs.")
@click.option("--label", "labels", multiple=True, callback=flag_checks.labels, metavar="KEY=VALUE", help="A node label (repeat).")
@click.option("--node-service-account", metavar="EMAIL", callback=flag_checks.node_service_account,
              help="The Google service account the nodes run as, its email (default: the cluster's).")
@with_options(price_options)
@flag_checks.timeout_option
def gke_up(project, location, cluster, pool, endpoint, dry_run, machine_type, max_nodes, capacity, labels,
           node_service_account, price_per_node_hour, currency, timeout) -> None:
    """Create the node pool, or raise its maximum; wait until it is ready."""
    flags = command_flags("--pool", capacity)
    spec = flag_checks.node_pool({"name": pool, "provider": GKE, "capacity": capacity, "machineType": machine_type,
                  "maxNodes": max_nodes, "labels": labels, "pricePerNodeHour": price_per_node_hour,
                  "currency": currency}, flags, flag_checks.limits())
    _, pools = _gke(project, location, cluster, endpoint, node_service_account)
    _up(pools, spec, lambda adapter: pool_checks.check_gke(adapter, spec, node_service_account),
        lambda adapter: adapter.ensure(spec), "ready", dry_run, timeout, flags)


@gke_group.command(name="down", epilog=EXIT_CODES)
@gke_options
@down_plan_option
@any_pool_option
@flag_checks.timeout_option
def gke_down(project, location, cluster, pool, endpoint, dry_run, any_pool, timeout) -> None:
    """Delete the node pool `up` made and wait until it is gone (an absent pool is fine)."""
    where, pools = _gke(project, location, cluster, endpoint)
    _down(pools, pool, any_pool, dry_run, timeout, command_flags("--pool"),
          ("delete_node_pool", gke_requests.name_request(where, pool)))


@gke_group.command(name="status", epilog=EXIT_CODES)
@gke_options
@status_dry_run
def gke_status(project, location, cluster, pool, endpoint, dry_run) -> None:
    """Print the node pool's state and autoscaling limits as JSON."""
    where, pools = _gke(project, location, cluster, endpoint)
    if dry_run:
        return print_json({"call": "get_node_pool", "request": gke_requests.name_request(where, pool)})
    _run(pools, lambda adapter: print_status(adapter, pool), command_flags("--pool"))


@main.group(name="eks", epilog=EXIT_CODES)
def eks_group() -> None:
    """An EKS managed node group (boto3)."""


eks_options = with_options([
    click.option("--cluster", required=True, callback=flag_checks.eks_name, help="The EKS cluster."),
    click.option("--region", callback=flag_checks.region, help="The cluster's AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the "
                                  "AWS profile's)."),
    click.option("--nodegroup", required=True, callback=flag_checks.eks_name, help="The managed node group's name."),
])


def _eks(cluster: str, region: str | None, subnets: Sequence[str] = (),
         node_role: str | None = None) -> tuple[eks_requests.EksCluster, Callable[[], Any]]:
    """The cluster, whose groups ``up`` creates carry the script's mark, and how to build the
    adapter (boto3 is imported only by the EKS commands)."""
    from infra import eks, eks_clients

    where = eks_requests.EksCluster(cluster, tuple(subnets), node_role, made_by=SCRIPT_MARK)
    return where, (lambda: eks.EksNodePools(where, *eks_clients.clients(region), advise=False))


@eks_group.command(name="up", epilog=EXIT_CODES)
@eks_options
@up_plan_option
@click.option("--instance-types", callback=flag_checks.csv, default="m5.xlarge,m5a.xlarge,m6i.xlarge", show_default=True,
              help="Instance types, comma-separated (several give spot capacity more pools to come from; "
                   "each one of KATUNA_POOL_MACHINE_TYPES, where set).")
@click.option("--max-nodes", type=int, default=3, show_default=True, help=flag_checks.max_nodes_help())
@click.option("--subnets", callback=flag_checks.csv, required=True, help="Subnet ids, comma-separated.")
@click.option("--node-role", required=True, metavar="ARN", help="The IAM role of the nodes.")
@click.option("--spot", "capacity", flag_value="spot", default=True, help="Spot instances (the default).")
@click.option("--on-demand", "capacity", flag_value="on-demand", help="On-demand instances.")
@click.option("--label", "labels", multiple=True, callback=flag_checks.labels, metavar="KEY=VALUE", help="A node label (repeat).")
@click.option("--nodes-per-group-quota", type=click.IntRange(min=1), default=EksQuotas().nodes_per_group,
              envvar="KATUNA_EKS_NODES_PER_GROUP", show_default=True, show_envvar=True,
              help="The account's EKS quota of nodes per managed node group, where it is raised: "
                   "--max-nodes may not exceed it.")
@with_options(price_options)
@flag_checks.timeout_option
def eks_up(cluster, region, nodegroup, dry_run, instance_types, max_nodes, subnets, node_role, capacity, labels,
           nodes_per_group_quota, price_per_node_hour, currency, timeout) -> None:
    """Create the node group, or raise its maximum; wait until it is active."""
    flag_checks.eks_required(subnets, node_role)
    flag_checks.warn_single_spot_type(capacity, instance_types)
    flags = command_flags("--nodegroup", capacity)
    spec = flag_checks.node_pool({"name": nodegroup, "provider": EKS, "capacity": capacity, "instanceTypes": instance_types,
                  "maxNodes": max_nodes, "labels": labels, "pricePerNodeHour": price_per_node_hour,
                  "currency": currency}, flags, flag_checks.limits(nodes_per_group_quota))
    where, pools = _eks(cluster, region, subnets, node_role)
    _up(pools, spec, lambda adapter: pool_checks.check_eks(adapter, spec, where),
        lambda adapter: adapter.ensure(spec), "active", dry_run, timeout, flags)


@eks_group.command(name="down", epilog=EXIT_CODES)
@eks_options
@down_plan_option
@any_pool_option
@flag_checks.timeout_option
def eks_down(cluster, region, nodegroup, dry_run, any_pool, timeout) -> None:
    """Delete the node group `up` made and wait until it is gone (an absent one is fine)."""
    where, pools = _eks(cluster, region)
    _down(pools, nodegroup, any_pool, dry_run, timeout, command_flags("--nodegroup"),
          ("delete_nodegroup", eks_requests.name_request(where, nodegroup)), ", then the launch templates katuna made for it",
          lambda adapter: adapter.leftovers(nodegroup))


@eks_group.command(name="status", epilog=EXIT_CODES)
@eks_options
@status_dry_run
def eks_status(cluster, region, nodegroup, dry_run) -> None:
    """Print the node group's state and scaling limits as JSON."""
    where, pools = _eks(cluster, region)
    if dry_run:
        return print_json({"call": "describe_nodegroup", "request": eks_requests.name_request(where, nodegroup)})
    _run(pools, lambda adapter: print_status(adapter, nodegroup), command_flags("--nodegroup"))


if __name__ == "__main__":
    main()
