"""A managed node group's ``nodeRole`` held to moto's IAM, as EKS holds it to IAM.

moto's EKS takes any ``nodeRole`` string. EKS refuses, with ``InvalidParameterException``
(HTTP 400), a role whose trust policy does not let EC2 assume it (``Following required service
principals [ec2.amazonaws.com] were not found in the trust relationships of nodeRole ARN``, EKS's
words as eksctl-io/eksctl#3290 quotes them), and a role IAM does not have (``The role with name
NAME cannot be found.``, IAM's ``NoSuchEntity`` wording, which this stand-in gives for EKS).
:func:`moto_eks.teach` makes moto's EKS refuse both; the tests make the nodes' role with
:func:`node_role`, as an operator makes it for katuna's node groups.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from moto.eks.models import EKSBackend
from moto.iam.models import iam_backends
from moto_eks_checks import invalid

EC2 = "ec2.amazonaws.com"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": EC2}, "Action": "sts:AssumeRole"}]}
"""The trust policy of a node role: EC2 instances may assume it."""


def node_role(iam: Any, name: str = "katuna-nodes", trust: dict[str, Any] | None = None) -> str:
    """Make the nodes' IAM role ``name`` through the IAM client ``iam`` (trusting EC2 unless
    ``trust`` says otherwise); its ARN. One that exists already is left as it is."""
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust or TRUST))["Role"]["Arn"])


def _services(document: str) -> set[str]:
    """The service principals a trust policy lets assume the role."""
    policy = json.loads(unquote(document)) if document else {}
    statements = policy.get("Statement") or []
    found: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        services = (statement.get("Principal") or {}).get("Service") or []
        found |= {services} if isinstance(services, str) else set(services)
    return found


def check_node_role(backend: EKSBackend, cluster: str, group: str, arn: str | None) -> None:
    """EKS's refusal of a node role IAM does not have, or that EC2 may not assume."""
    roles = {role.arn: role for role in iam_backends[backend.account_id]["global"].roles.values()}
    role = roles.get(arn or "")
    if role is None:
        raise invalid(cluster, group, f"The role with name {(arn or '').rpartition('/')[2]} cannot be found.")
    if EC2 not in _services(role.assume_role_policy_document):
        raise invalid(cluster, group, f"Following required service principals [{EC2}] were not found in the trust "
                                      f"relationships of nodeRole {arn}")


def role_exists(backend: EKSBackend, arn: str) -> bool:
    """Whether IAM has the role of ``arn`` (a group's nodes' role, deleted since, has none)."""
    return any(role.arn == arn for role in iam_backends[backend.account_id]["global"].roles.values())
