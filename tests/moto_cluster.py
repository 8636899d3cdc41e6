"""An EKS cluster in moto for a test: stand-in credentials in the environment, and a cluster in a
new VPC's private subnets (:func:`moto_eks.network`), with its nodes' role (:func:`moto_eks_iam.node_role`)."""

from __future__ import annotations

from typing import Any

import boto3
import moto_eks
import moto_eks_iam


def fake_credentials(monkeypatch: Any, region: str) -> None:
    """moto's credentials and ``region`` in the environment, and no other endpoint for boto3."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": region}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def make_cluster(region: str, role: str, name: str = "tuning") -> tuple[str, ...]:
    """The cluster ``name`` created in moto (its AWS mocked already), and the nodes' role
    ``katuna-nodes``; its subnets."""
    subnets = moto_eks.network(boto3.client("ec2", region_name=region))
    moto_eks_iam.node_role(boto3.client("iam", region_name=region))
    boto3.client("eks", region_name=region).create_cluster(name=name, roleArn=role,
                                                           resourcesVpcConfig={"subnetIds": list(subnets)})
    return subnets
