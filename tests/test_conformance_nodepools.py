"""The ``NodePools`` port's contract, run against every cloud's node pools.

:class:`NodePoolsContract` states what node pools do in any cloud; each cloud gets a subclass
that provides a ``pools`` fixture on a fake of its API and the few hooks that play the cloud's
part (finishing an operation, changing a pool behind katuna's back). A new cloud comes with its
tests ready: subclass the contract. Each cloud's own requests are checked in its own module
(tests/test_nodepools_gke.py, tests/test_nodepools_eks.py).
"""

from __future__ import annotations

import time
from dataclasses import replace

import boto3
import moto_eks
import moto_eks_iam
import pytest
from gke_stub import GkeStub
from moto import mock_aws

from functions.core.nodepool import ON_DEMAND, SPOT, NodePool, NodePoolFailed, PoolChange, installation_value
from functions.core.ports import NodePools
from infra import eks, eks_clients, eks_requests, gke, gke_requests

NAME = "katuna-digits"
UID = "5e0f9b2c7d41"
OPERATION_CHECKS = 10


class NodePoolsContract:
    """What node pools do in every cloud. Subclasses provide ``pools`` and the hooks below."""

    provider: str
    machine_types: tuple[str, ...]

    def pool(self, **overrides) -> NodePool:
        fields = dict(name=NAME, provider=self.provider, capacity=SPOT, machine_types=self.machine_types,
                      max_nodes=5, labels=(("team", "vision"),))
        return NodePool(**(fields | overrides))

    def finish(self) -> None:
        """Let the cloud's pending operations finish."""

    def settle(self, pools: NodePools, change: PoolChange) -> None:
        """Let the cloud finish the change's operation, and check it until it is done."""
        if change.operation is None:
            return
        self.finish()
        for _ in range(OPERATION_CHECKS):
            status = pools.check(change.operation)
            if status.done:
                assert status.error is None, status.error
                return
        raise AssertionError(f"operation {change.operation} never finished")

    def set_minimum(self, pools: NodePools, nodes: int) -> None:
        """Raise the pool's autoscaling minimum outside katuna, as an operator might."""
        raise NotImplementedError

    def make_by_hand(self, pools: NodePools, tainted: bool, capacity: str = SPOT, max_nodes: int = 3) -> None:
        """Create pool NAME outside katuna, autoscaling 1..``max_nodes``, as an operator might."""
        raise NotImplementedError

    def of_installation(self, pools: NodePools, installation: str) -> NodePools:
        """The same cloud's node pools, as the service of ``installation`` makes them."""
        raise NotImplementedError

    resizes: bool
    """Whether the cloud resizes a pool the autoscaler sizes when katuna empties it."""

    def grow(self, pools: NodePools, nodes: int) -> None:
        """Give pool NAME ``nodes`` nodes, as the cluster autoscaler does."""
        raise NotImplementedError

    def nodes(self, pools: NodePools) -> int:
        """How many nodes pool NAME has (or is asked to have)."""
        raise NotImplementedError

    def test_the_pools_are_of_their_provider(self, pools: NodePools):
        assert pools.provider == self.provider

    def test_a_missing_pool_is_described_as_none(self, pools: NodePools):
        assert pools.describe(NAME) is None

    def test_ensure_creates_a_pool_that_scales_from_zero_to_its_maximum(self, pools: NodePools):
        change = pools.ensure(self.pool(), owner=UID)
        assert change.created and change.owned and change.operation and change.adopted is None
        self.settle(pools, change)
        status = pools.describe(NAME)
        assert (status.name, status.min_nodes, status.max_nodes) == (NAME, 0, 5)
        assert (status.capacity, status.machine_types) == (SPOT, self.machine_types)

    def test_ensuring_an_existing_pool_is_success_and_changes_nothing(self, pools: NodePools):
        self.settle(pools, pools.ensure(self.pool(), owner=UID))
        before = pools.describe(NAME)
        assert pools.ensure(self.pool(), owner=UID) == PoolChange(created=True, owned=True), "its own create"
        assert pools.ensure(self.pool(), owner="another") == PoolChange(owned=True), "katuna's, for another study"
        assert pools.describe(NAME) == before

    def test_a_pool_made_by_hand_is_adopted_and_given_back_its_limits(self, pools: NodePools):
        self.make_by_hand(pools, tainted=True)
        change = pools.ensure(self.pool(max_nodes=8), owner=UID)
        assert not change.created and not change.owned and change.adopted is not None
        self.settle(pools, change)
        assert (pools.describe(NAME).min_nodes, pools.describe(NAME).max_nodes) == (1, 8)
        self.settle(pools, pools.scale_back(self.pool(), change.adopted))
        assert (pools.describe(NAME).min_nodes, pools.describe(NAME).max_nodes) == (1, 3)
        assert pools.scale_back(self.pool(), change.adopted) == PoolChange(), "given back once"

    def test_a_pool_without_the_trial_taint_is_not_adopted(self, pools: NodePools):
        self.make_by_hand(pools, tainted=False)
        with pytest.raises(NodePoolFailed, match="nodePool.name: node pool katuna-digits exists without the taint "
                                                 "katuna.dev/trial=true:NoSchedule"):
            pools.ensure(self.pool(max_nodes=8), owner=UID)
        assert pools.describe(NAME).max_nodes == 3, "left as it was"

    def test_a_pool_of_other_capacity_is_not_adopted(self, pools: NodePools):
        self.make_by_hand(pools, tainted=True, capacity=ON_DEMAND)
        with pytest.raises(NodePoolFailed, match="nodePool.capacity: .* on-demand capacity; the study asks for spot"):
            pools.ensure(self.pool(), owner=UID)

    def test_a_pool_whose_nodes_lack_the_studys_labels_is_not_adopted_one_with_more_is(self, pools: NodePools):
        self.make_by_hand(pools, tainted=True)
        with pytest.raises(NodePoolFailed, match="nodePool.labels: .* without the labels team=audio"):
            pools.ensure(self.pool(max_nodes=8, labels=(("team", "audio"),)), owner=UID)
        assert pools.describe(NAME).labels == (("team", "vision"),), "left as it was"
        change = pools.ensure(self.pool(max_nodes=8, labels=()), owner=UID)
        assert change.adopted is not None

    def test_a_pool_to_raise_is_left_as_found_until_ensured_again_when_not_raising(self, pools: NodePools):
        self.make_by_hand(pools, tainted=True)
        change = pools.ensure(self.pool(max_nodes=8), owner=UID, raising=False)
        assert change.adopted is not None and change.operation, "its settings as found, and the raise to come"
        assert (pools.describe(NAME).min_nodes, pools.describe(NAME).max_nodes) == (1, 3), "nothing changed yet"
        self.settle(pools, change)
        self.settle(pools, pools.ensure(self.pool(max_nodes=8), owner=UID))
        assert (pools.describe(NAME).min_nodes, pools.describe(NAME).max_nodes) == (1, 8)

    def test_a_larger_maximum_raises_it_and_keeps_the_minimum(self, pools: NodePools):
        self.settle(pools, pools.ensure(self.pool()))
        self.set_minimum(pools, 1)
        change = pools.ensure(self.pool(max_nodes=12))
        assert not change.created and change.operation
        self.settle(pools, change)
        status = pools.describe(NAME)
        assert (status.min_nodes, status.max_nodes) == (1, 12)

    def test_scale_back_lowers_the_minimum_to_zero_only_when_needed_and_keeps_the_maximum(self, pools: NodePools):
        self.settle(pools, pools.ensure(self.pool()))
        assert pools.scale_back(self.pool()) == PoolChange()
        self.set_minimum(pools, 2)
        self.settle(pools, pools.scale_back(self.pool()))
        status = pools.describe(NAME)
        assert (status.min_nodes, status.max_nodes) == (0, 5)

    def test_scale_back_brings_a_raised_maximum_down_to_the_pools(self, pools: NodePools):
        self.settle(pools, pools.ensure(self.pool()))
        self.settle(pools, pools.ensure(self.pool(max_nodes=12), owner="another"))
        assert pools.describe(NAME).max_nodes == 12
        self.settle(pools, pools.scale_back(self.pool(max_nodes=5)))
        status = pools.describe(NAME)
        assert (status.min_nodes, status.max_nodes) == (0, 5)
        assert pools.scale_back(self.pool(max_nodes=5)) == PoolChange(), "brought down once"

    def test_emptying_leaves_the_pool_as_it_was_with_no_nodes_where_the_cloud_resizes(self, pools: NodePools):
        assert pools.empty(NAME) == PoolChange(), "an absent pool is no change"
        self.settle(pools, pools.ensure(self.pool(), owner=UID))
        self.grow(pools, 2)
        before = pools.describe(NAME)
        change = pools.empty(NAME)
        assert (change.operation is not None) == self.resizes and not (change.created or change.owned)
        self.settle(pools, change)
        assert pools.describe(NAME) == before, "its limits, labels and owner kept"
        assert self.nodes(pools) == (0 if self.resizes else 2)

    def test_made_lists_the_pools_the_installation_made_for_studies_and_no_others(self, pools: NodePools):
        mine = self.of_installation(pools, installation_value("katuna.tuning"))
        theirs = self.of_installation(pools, installation_value("katuna.other"))
        assert mine.made() == [], "none made yet"
        asked = time.time()
        self.settle(mine, mine.ensure(self.pool(), owner=UID))
        self.settle(theirs, theirs.ensure(self.pool(name="katuna-theirs"), owner="7c1d"))
        self.settle(mine, mine.ensure(self.pool(name="katuna-by-script")))
        self.settle(pools, pools.ensure(self.pool(name="katuna-older"), owner="9a2b"))
        made = mine.made()
        assert [(found.name, found.owner, found.installation) for found in made] == [
            (NAME, UID, installation_value("katuna.tuning"))], "another's, one made for no study, an older katuna's: left out"
        assert asked - 1 <= made[0].created_at <= time.time() + 1
        assert mine.made(skip={NAME}) == [], "a pool skipped is left out"
        assert pools.made() == [], "a service of no installation (the provisioning script) finds none"

    def test_a_deleted_pool_is_gone_and_deleting_it_again_is_success(self, pools: NodePools):
        self.settle(pools, pools.ensure(self.pool()))
        change = pools.delete(NAME)
        assert change.operation
        self.settle(pools, change)
        assert pools.describe(NAME) is None
        assert pools.delete(NAME) == PoolChange()


class TestGkeNodePools(NodePoolsContract):
    """GKE through the real google-cloud-container client, on a loopback GKE API."""

    provider = "gke"
    machine_types = ("n2-standard-8",)

    @pytest.fixture
    def pools(self, gke_api: GkeStub) -> gke.GkeNodePools:
        self.api = gke_api
        return gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))

    resizes = True

    def of_installation(self, pools: NodePools, installation: str) -> NodePools:
        return gke.GkeNodePools(replace(pools.cluster, installation=installation), pools.api)

    def finish(self) -> None:
        self.api.advance(600)

    def grow(self, pools: NodePools, nodes: int) -> None:
        self.api.set_node_count(NAME, nodes)

    def nodes(self, pools: NodePools) -> int:
        return self.api.node_count(NAME)

    def set_minimum(self, pools: NodePools, nodes: int) -> None:
        self.api.pools[NAME]["autoscaling"]["totalMinNodeCount"] = nodes

    def make_by_hand(self, pools: NodePools, tainted: bool, capacity: str = SPOT, max_nodes: int = 3) -> None:
        request = gke_requests.create_request(pools.cluster, self.pool(capacity=capacity, max_nodes=max_nodes))
        request["node_pool"]["autoscaling"]["total_min_node_count"] = 1
        if not tainted:
            del request["node_pool"]["config"]["taints"]
        pools.api.create_node_pool(request=request)
        self.finish()


moto_eks.teach()


@pytest.mark.slow
class TestEksNodePools(NodePoolsContract):
    """EKS through boto3, on moto's AWS (with the ``DescribeUpdate`` EKS has, tests/moto_eks.py)."""

    provider = "eks"
    machine_types = ("m5.xlarge", "m5a.xlarge")
    region = "eu-west-1"

    @pytest.fixture
    def pools(self, monkeypatch) -> eks.EksNodePools:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": self.region}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        role = "arn:aws:iam::123456789012:role/katuna-nodes"
        with mock_aws():
            subnets = moto_eks.network(boto3.client("ec2", region_name=self.region))
            moto_eks_iam.node_role(boto3.client("iam", region_name=self.region))
            boto3.client("eks", region_name=self.region).create_cluster(
                name="tuning", roleArn=role, resourcesVpcConfig={"subnetIds": list(subnets)})
            yield eks.EksNodePools(eks_requests.EksCluster("tuning", subnets, role), *eks_clients.clients(self.region))

    def make_by_hand(self, pools: NodePools, tainted: bool, capacity: str = SPOT, max_nodes: int = 3) -> None:
        request = moto_eks.by_hand(eks_requests.create_request(pools.cluster, self.pool(capacity=capacity,
                                                                                       max_nodes=max_nodes)))
        request["scalingConfig"] = {"minSize": 1, "maxSize": max_nodes, "desiredSize": 1}
        if not tainted:
            del request["taints"]
        pools.eks.create_nodegroup(**request)
        self.finish()

    def of_installation(self, pools: NodePools, installation: str) -> NodePools:
        return eks.EksNodePools(replace(pools.cluster, installation=installation), pools.eks, pools.autoscaling,
                                pools.ec2)

    resizes = False
    """EKS's API reference: no change of ``desiredSize`` where the Cluster Autoscaler sizes the group."""

    def finish(self) -> None:
        moto_eks.minutes_pass()

    def grow(self, pools: NodePools, nodes: int) -> None:
        scaling = pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=NAME)["nodegroup"]["scalingConfig"]
        pools.eks.update_nodegroup_config(clusterName="tuning", nodegroupName=NAME,
                                          scalingConfig={**scaling, "desiredSize": nodes})
        self.finish()

    def nodes(self, pools: NodePools) -> int:
        group = pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=NAME)["nodegroup"]
        return group["scalingConfig"]["desiredSize"]

    def set_minimum(self, pools: NodePools, nodes: int) -> None:
        scaling = pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=NAME)["nodegroup"]["scalingConfig"]
        pools.eks.update_nodegroup_config(clusterName="tuning", nodegroupName=NAME,
                                          scalingConfig={**scaling, "minSize": nodes, "desiredSize": nodes})
        self.finish()
