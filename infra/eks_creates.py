"""The create of an EKS node group, for :class:`infra.eks.EksNodePools`: its subnets and its
instance types checked against EC2 first (:meth:`GroupCreates.check_subnets`), its launch template made
(:mod:`infra.eks_templates`), the create asked, and the template of a create refused for good
deleted again."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from functions.core.errors import KatunaError
from functions.core.nodepool import NodePool, NodePoolFailed
from infra.eks_errors import about_template, code
from infra.eks_requests import (
    SUBNETS_SETTING,
    TYPES_FIELD,
    EksCluster,
    create_request,
    instance_type_problem,
    subnet_problem,
)
from infra.eks_templates import LaunchTemplates


class GroupCreates:
    """The creates of one cluster's groups. ``failed`` is katuna's error for what a call raised
    before or without EKS's answer (or with EC2's), ``refusal`` for EKS's answer, and
    ``drop_templates`` deletes the launch templates of a group that is not there."""

    def __init__(self, cluster: EksCluster, eks: Any, ec2: Any, templates: LaunchTemplates,
                 failed: Callable[[Exception], Exception], refusal: Callable[[ClientError], Exception],
                 drop_templates: Callable[[str], object]) -> None:
        self.cluster = cluster
        self.eks = eks
        self.ec2 = ec2
        self.templates = templates
        self._failed = failed
        self._refusal = refusal
        self._drop_templates = drop_templates

    def create(self, pool: NodePool, owner: str | None, request_id: str | None) -> bool:
        """Create the group, absent when looked for, with its launch template: whether EKS took
        the create (not when it answers that the group exists, made meanwhile). A create refused
        because the template is gone (deleted between its look and the create by the end of an
        earlier group of the same name, whose template it is: named by its content) makes it
        again and asks once more."""
        self.check_subnets(pool)
        self.templates.make(pool)
        try:
            return self._ask(pool, owner, request_id)
        except ClientError as exc:
            if not about_template(exc) or self.templates.exists(pool):
                raise self._refused(pool.name, exc) from exc
        self.templates.make(pool)
        try:
            return self._ask(pool, owner, request_id)
        except ClientError as exc:
            raise self._refused(pool.name, exc) from exc

    def _refused(self, name: str, exc: ClientError) -> Exception:
        """katuna's error for a create EKS refused. One refused for good (a node role, instance
        types, a quota) first deletes the launch template made for it, unless a group of the name
        took it meanwhile (``drop_templates``): no group holds it, so no delete of a group
        would. A template that cannot be deleted now is left (a create of the same content takes
        it, the next delete of a group of the name deletes it), the refusal told all the same;
        one refused for now keeps it for the next try."""
        refusal = self._refusal(exc)
        if isinstance(refusal, NodePoolFailed):
            with suppress(KatunaError):
                self._drop_templates(name)
        return refusal

    def _ask(self, pool: NodePool, owner: str | None, request_id: str | None) -> bool:
        """Ask EKS for the group: whether it took the create; False where it answers that the
        group exists. Its other refusals are raised as EKS's, for the caller to read."""
        try:
            self.eks.create_nodegroup(**create_request(self.cluster, pool, owner, request_id))
            return True
        except ClientError as exc:
            if code(exc) == "ResourceInUseException":
                return False
            raise
        except (BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc

    def check_subnets(self, pool: NodePool) -> None:
        """Refuse, before anything is created, subnets that cannot hold the cluster's node groups
        (:func:`infra.eks_requests.subnet_problem`): EKS would refuse some with a bare
        ``InvalidParameterException`` and accept the public ones that give no address, only for
        the group to fail minutes later; then instance types EC2 does not offer in every zone of
        those subnets (:func:`infra.eks_requests.instance_type_problem`), which EKS refuses, so
        that a ``--dry-run`` plan, which asks for no create, refuses them too. Only a group to be
        created is checked: one that exists already is adopted or raised whatever the subnets."""
        try:
            cluster = self.eks.describe_cluster(name=self.cluster.name)["cluster"]
        except ClientError as exc:
            raise self._refusal(exc) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        wanted = list(self.cluster.subnets)
        try:
            subnets = self.ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": wanted}])["Subnets"]
            vpcs = sorted({subnet["VpcId"] for subnet in subnets})
            tables = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": vpcs}])["RouteTables"] \
                if vpcs else []
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        vpc = cluster.get("resourcesVpcConfig", {}).get("vpcId")
        problem = subnet_problem(self.cluster.name, vpc, self.cluster.subnets, subnets, tables)
        if problem:
            raise NodePoolFailed(problem, SUBNETS_SETTING)
        problem = instance_type_problem(pool.machine_types, subnets, self._offered(pool.machine_types))
        if problem:
            raise NodePoolFailed(problem, TYPES_FIELD)

    def _offered(self, types: tuple[str, ...]) -> set[tuple[str, str]]:
        """The (instance type, availability zone) pairs of ``types`` EC2 offers in the region,
        every page of them."""
        offered: set[tuple[str, str]] = set()
        request: dict[str, Any] = {"LocationType": "availability-zone",
                                   "Filters": [{"Name": "instance-type", "Values": list(types)}]}
        try:
            while True:
                page = self.ec2.describe_instance_type_offerings(**request)
                offered |= {(o["InstanceType"], o["Location"]) for o in page.get("InstanceTypeOfferings", [])}
                if not page.get("NextToken"):
                    return offered
                request["NextToken"] = page["NextToken"]
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
