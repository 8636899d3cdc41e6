"""katuna's EC2 launch templates for the EKS node groups it creates.

A group katuna creates boots from katuna's launch template (:func:`infra.eks_requests.template_request`:
IMDSv2 required with a hop limit of 1, so that no pod reads the node role's credentials, and the
group's disk size): made before the group unless a run before made it (its name follows from
the group and its content), and deleted once the group is gone, never before, since EKS
launches the group's nodes from it. A group of the same name created meanwhile keeps it
(:meth:`LaunchTemplates.drop`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from functions.core.nodepool import NodePool
from infra.eks_errors import code
from infra.eks_requests import POOL_TAG, EksCluster, cluster_template_filters, template_filters, template_request

_NO_TEMPLATE = {"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"}
"""EC2's codes for a launch template it does not have (asked by name, or by id)."""
_TEMPLATE_TAKEN = "InvalidLaunchTemplateName.AlreadyExistsException"
"""EC2's code for a launch template name in use: made meanwhile by another run of the same create."""
STALE_READ = 200
"""The most of the cluster's templates one :meth:`LaunchTemplates.stale` reads: one page, the
most EC2's ``DescribeLaunchTemplates`` answers at once (its ``MaxResults``, 1 to 200)."""


class LaunchTemplates:
    """The launch templates of one cluster's groups; ``failed`` is katuna's error for what an
    EC2 call raised (:func:`infra.eks_errors.translate`)."""

    def __init__(self, cluster: EksCluster, ec2: Any, failed: Callable[[Exception], Exception]) -> None:
        self.cluster = cluster
        self.ec2 = ec2
        self._failed = failed

    def exists(self, pool: NodePool) -> bool:
        """Whether EC2 has the group's launch template (:func:`infra.eks_requests.template_name`)."""
        try:
            self.ec2.describe_launch_templates(LaunchTemplateNames=[template_request(self.cluster, pool)[
                "LaunchTemplateName"]])
            return True
        except ClientError as exc:
            if code(exc) not in _NO_TEMPLATE:
                raise self._failed(exc) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        return False

    def make(self, pool: NodePool) -> None:
        """Create the group's launch template unless it exists: a create delivered twice, or one
        whose earlier run stopped before the group, finds the template made then (its name
        follows from its content), and one made meanwhile by another run is that run's. No
        ``ClientToken``: EC2 would answer a token used again with the template it made for it,
        even one deleted since with the group it was for."""
        if self.exists(pool):
            return
        try:
            self.ec2.create_launch_template(**template_request(self.cluster, pool))
        except ClientError as exc:
            if code(exc) != _TEMPLATE_TAKEN:
                raise self._failed(exc) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc

    def left(self, name: str) -> list[dict[str, str]]:
        """The launch templates katuna made for the group ``name`` (their names and ids), read
        alone: what :meth:`drop` deletes once the group is gone, as ``down``'s plan tells it."""
        try:
            found = self.ec2.describe_launch_templates(Filters=template_filters(self.cluster, name))
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        return [{"LaunchTemplateName": t["LaunchTemplateName"], "LaunchTemplateId": t["LaunchTemplateId"]}
                for t in found["LaunchTemplates"]]

    def drop(self, name: str, group_back: Callable[[], bool]) -> list[str]:
        """Delete the launch templates katuna made for the group ``name``, which is gone (EKS
        launches a group's nodes from its template until then); one deleted meanwhile is gone too.
        ``group_back`` looks for the group again once they are listed: a create of a group of the
        same name (another study's, another service's) may have taken the same template since the
        group was found gone, and its group keeps it. A create that finds it gone at its own
        create makes it again (:meth:`infra.eks.EksNodePools.ensure`). The names of those it deleted."""
        found = self.left(name)
        if found and group_back():
            return []
        return self.delete(found)

    def stale(self, before: float) -> dict[str, list[dict[str, str]]]:
        """The launch templates katuna made for the cluster's groups before ``before`` (a Unix
        time), by the group each is for (its :data:`~infra.eks_requests.POOL_TAG`), read in one
        page of at most :data:`STALE_READ`: a later call finds the others once these are gone."""
        try:
            found = self.ec2.describe_launch_templates(Filters=cluster_template_filters(self.cluster),
                                                       MaxResults=STALE_READ)
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        groups: dict[str, list[dict[str, str]]] = {}
        for template in found["LaunchTemplates"]:
            group = {tag["Key"]: tag["Value"] for tag in template.get("Tags") or []}.get(POOL_TAG)
            if group and template["CreateTime"].timestamp() < before:
                groups.setdefault(group, []).append({"LaunchTemplateName": template["LaunchTemplateName"],
                                                     "LaunchTemplateId": template["LaunchTemplateId"]})
        return groups

    def delete(self, found: list[dict[str, str]]) -> list[str]:
        """Delete the templates (one deleted meanwhile is gone too): the names of those deleted."""
        try:
            for template in found:
                try:
                    self.ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
                except ClientError as exc:
                    if code(exc) not in _NO_TEMPLATE:
                        raise
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        return [template["LaunchTemplateName"] for template in found]
