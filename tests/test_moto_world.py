"""tests/moto_world.py: each test given a module's baseline starts from it as made, whatever the
tests before it wrote, in place or not."""

from __future__ import annotations

import json

import boto3
import moto_eks
import moto_eks_iam
import pytest
from moto.eks.models import eks_backends
from moto_cluster import fake_credentials, make_cluster
from moto_world import Baseline

from functions.core.limits import EksQuotas

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"
ACCOUNT = "123456789012"

moto_eks.teach()


def world() -> dict:
    """What a test could find of the baseline's world through the API, and the quotas moto's EKS
    keeps on its backend."""
    ec2, iam, eks = (boto3.client(service, region_name=REGION) for service in ("ec2", "iam", "eks"))
    return {"vpcs": ec2.describe_vpcs()["Vpcs"], "subnets": ec2.describe_subnets()["Subnets"],
            "tables": ec2.describe_route_tables()["RouteTables"], "roles": iam.list_roles()["Roles"],
            "clusters": eks.list_clusters()["clusters"], "cluster": eks.describe_cluster(name="tuning")["cluster"],
            "groups": eks.list_nodegroups(clusterName="tuning")["nodegroups"],
            "scaling": boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups()[
                "AutoScalingGroups"],
            "quotas": moto_eks.quotas_of(eks_backends[ACCOUNT][REGION])}


def write_over(subnets: tuple[str, ...]) -> None:
    """What a test may do to the world: add to it, and change its objects in place."""
    ec2, iam, eks = (boto3.client(service, region_name=REGION) for service in ("ec2", "iam", "eks"))
    eks.create_nodegroup(clusterName="tuning", nodegroupName="katuna-digits", nodeRole=ROLE, subnets=list(subnets),
                         scalingConfig={"minSize": 0, "maxSize": 2, "desiredSize": 0}, instanceTypes=["m5.xlarge"])
    ec2.modify_subnet_attribute(SubnetId=subnets[0], MapPublicIpOnLaunch={"Value": True})
    moto_eks.network(ec2, public=True)
    moto_eks_iam.node_role(iam, "another")
    eks_only = {**moto_eks_iam.TRUST, "Statement": [
        {**moto_eks_iam.TRUST["Statement"][0], "Principal": {"Service": "eks.amazonaws.com"}}]}
    iam.update_assume_role_policy(RoleName="katuna-nodes", PolicyDocument=json.dumps(eks_only))
    arn = eks.describe_cluster(name="tuning")["cluster"]["arn"]
    eks.tag_resource(resourceArn=arn, tags={"written": "by a test"})
    moto_eks.raise_quotas(EksQuotas(nodes_per_group=600), REGION)


def test_each_test_starts_from_the_baseline_whatever_the_one_before_wrote(monkeypatch):
    fake_credentials(monkeypatch, REGION)
    baseline = Baseline(lambda: make_cluster(REGION, ROLE))
    with baseline.restored() as subnets:
        made = world()
        assert set(subnets) <= {subnet["SubnetId"] for subnet in made["subnets"]}
        assert made["clusters"] == ["tuning"] and made["groups"] == [] and made["quotas"] == EksQuotas()
        write_over(subnets)
        assert world() != made, "the test's writes are seen in its own world"
    for _ in range(2):
        with baseline.restored() as again:
            assert again == subnets
            assert world() == made


def test_a_world_that_refers_to_motos_registry_is_refused_not_copied(monkeypatch):
    """moto empties its registry of backends at each mock's start: a copy of it would be a
    registry no call reaches, so a backend referring to it is refused as the world is made."""
    fake_credentials(monkeypatch, REGION)

    def make() -> None:
        make_cluster(REGION, ROLE)
        eks_backends[ACCOUNT][REGION].__dict__["registry"] = eks_backends

    with pytest.raises(TypeError, match="a moto backend refers to moto's registry"):
        Baseline(make)
