"""The groups of an EKS cluster that one installation made, for :class:`infra.eks.EksNodePools`:
found among the cluster's groups by their tags (:meth:`GroupListing.made`), and the launch
templates of those gone deleted (:meth:`GroupListing.tidy`), each call bounded in the requests it
sends to EKS."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from functions.core.nodepool import PoolStatus
from infra.eks_groups import ForeignGroups, group_status, ours
from infra.eks_requests import EksCluster, list_request
from infra.eks_templates import LaunchTemplates

LIST_PAGES = 3
"""The most ``list_nodegroups`` pages one :meth:`GroupListing.made` reads: 300 groups, ten times
EKS's default quota of managed node groups per cluster."""
READS_PER_LIST = 30
"""The most groups one :meth:`GroupListing.made` describes: EKS's default quota of groups per cluster."""
TIDIED_GROUPS = 10
"""The most absent groups whose launch templates one :meth:`GroupListing.tidy` deletes."""


class GroupListing:
    """The listings of one cluster's groups. ``call`` sends a request to EKS and gives its
    answer, ``group`` is a group as EKS describes it (None where there is none), and ``monotonic``
    the clock by which a group found to be another's is left unread for a while."""

    def __init__(self, cluster: EksCluster, templates: LaunchTemplates,
                 call: Callable[[str, dict[str, Any]], dict[str, Any]],
                 group: Callable[[str], dict[str, Any] | None], monotonic: Callable[[], float]) -> None:
        self.cluster = cluster
        self.templates = templates
        self.call = call
        self.group = group
        self.foreign = ForeignGroups(monotonic)

    def made(self, skip: Collection[str] = ()) -> list[PoolStatus]:
        """The groups this installation created for studies, but those in ``skip``: the
        cluster's group names (``list_nodegroups``, at most :data:`LIST_PAGES` pages), then a
        ``describe_nodegroup`` of each, which alone holds a group's tags, at most
        :data:`READS_PER_LIST` of them; a group found not to be the installation's is not read
        again for an hour (:class:`~infra.eks_groups.ForeignGroups`). None outside the service."""
        installation = self.cluster.installation
        if installation is None:
            return []
        found = []
        for name in [name for name in self.names() if name not in skip and not self.foreign.known(name)][:READS_PER_LIST]:
            group = self.group(name)
            if group is not None and ours(group, installation):
                found.append(group_status(group))
            elif group is not None:
                self.foreign.add(name)
        return found

    def names(self) -> list[str]:
        """The cluster's group names (``list_nodegroups``, at most :data:`LIST_PAGES` pages)."""
        names: list[str] = []
        token: str | None = None
        for _ in range(LIST_PAGES):
            page = self.call("list_nodegroups", list_request(self.cluster, token))
            names += page.get("nodegroups") or []
            token = page.get("nextToken")
            if not token:
                break
        return names

    def tidy(self, before: float) -> list[str]:
        """Delete the launch templates katuna made before ``before`` for groups the cluster no
        longer has (a group deleted as an orphan leaves its template: no change of katuna's
        checks that delete), those of at most :data:`TIDIED_GROUPS` groups a call; a group
        listed, or created since, keeps its own (:meth:`~infra.eks_templates.LaunchTemplates.drop`
        looks again). None outside the service."""
        if self.cluster.installation is None:
            return []
        stale = self.templates.stale(before)
        if not stale:
            return []
        listed = set(self.names())
        gone = [name for name in sorted(stale) if name not in listed][:TIDIED_GROUPS]
        return [template for name in gone for template in self._drop_stale(name, stale[name])]

    def _drop_stale(self, name: str, found: list[dict[str, str]]) -> list[str]:
        """Delete the group's stale templates, unless the group is back."""
        return [] if self.group(name) is not None else self.templates.delete(found)
