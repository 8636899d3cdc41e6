"""The IAM that docs/kubernetes.md asks for names every cloud API call infra/ makes, and the
EKS policy allows those calls and no others: the list is read from the adapters' code."""

from __future__ import annotations

import ast
import json
import re
from fnmatch import fnmatchcase

import yaml
from doc_blocks import ROOT, block

from functions.core.nodepool import EKS, NodePool
from infra.eks_requests import CLUSTER_TAG, option_tags, template_tags

PAGE = "docs/kubernetes.md"
CLIENTS = {"gke.py": {"api": "container", "_call": "container"},
           "eks.py": {"eks": "eks", "autoscaling": "autoscaling", "ec2": "ec2", "_call": "eks"},
           "eks_templates.py": {"ec2": "ec2"}, "eks_creates.py": {"eks": "eks", "ec2": "ec2"},
           "eks_groups.py": {"autoscaling": "autoscaling"}, "eks_listing.py": {"call": "eks"}}
"""For each adapter, the attribute of ``self`` (or the parameter of a helper) that holds a client
(or the helper that calls one by name) and the cloud service it speaks to."""
CALLERS = {"_call", "call"}
"""The names of the helpers that call a client's method by its name, given first."""
NOT_CALLS = {"get_waiter"}
EXTRA_EKS = {"iam:PassRole", "eks:TagResource", "iam:CreateServiceLinkedRole", "ec2:CreateTags", "ec2:RunInstances",
             "ec2:DescribeLaunchTemplateVersions"}
"""Allowed besides the calls: passing the node role to EKS, tagging on create (a node group, a
launch template), creating EKS's node-group service-linked role with an account's first managed
node group, and what EKS authorizes as the caller of a create that names a launch template
(launching from it, reading its version)."""


def calls() -> dict[str, set[str]]:
    """The API methods each service is called with, from the adapters' source."""
    found: dict[str, set[str]] = {}
    for module, clients in CLIENTS.items():
        for node in ast.walk(ast.parse((ROOT / "infra" / module).read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            target = node.func.value
            if node.func.attr in CALLERS and node.func.attr in clients and node.args \
                    and isinstance(node.args[0], ast.Constant):
                found.setdefault(clients[node.func.attr], set()).add(node.args[0].value)
            elif node.func.attr in NOT_CALLS:
                continue
            elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                  and target.value.id == "self" and target.attr in clients):
                found.setdefault(clients[target.attr], set()).add(node.func.attr)
            elif isinstance(target, ast.Name) and target.id in clients:
                found.setdefault(clients[target.id], set()).add(node.func.attr)
    return found


def action(service: str, method: str) -> str:
    """boto3's method as an IAM action: ``create_or_update_tags`` is ``CreateOrUpdateTags``."""
    return f"{service}:" + "".join(part.capitalize() for part in method.split("_"))


def test_the_calls_are_read_from_the_code():
    found = calls()
    assert {"create_node_pool", "set_node_pool_autoscaling", "get_operation"} <= found["container"]
    assert {"create_nodegroup", "update_nodegroup_config"} <= found["eks"]
    assert found["autoscaling"] == {"describe_auto_scaling_groups", "create_or_update_tags"}
    assert found["ec2"] == {"describe_subnets", "describe_route_tables", "describe_instance_type_offerings",
                            "describe_launch_templates",
                            "create_launch_template", "delete_launch_template"}
    assert "describe_cluster" in found["eks"]


def test_the_gke_table_names_every_call_and_nothing_else():
    section = (ROOT / PAGE).read_text().split("### IAM on GKE")[1].split("###")[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    assert listed == calls()["container"]


def test_the_eks_policy_allows_exactly_the_calls_katuna_makes():
    policy = json.loads(block(PAGE, "IAM on EKS", "json"))
    allowed = set()
    for statement in policy["Statement"]:
        actions = statement["Action"]
        allowed |= {actions} if isinstance(actions, str) else set(actions)
    found = calls()
    made = {action(service, method) for service in ("eks", "autoscaling", "ec2") for method in found[service]}
    assert allowed == made | EXTRA_EKS


def test_the_eks_policy_lets_only_eks_node_groups_service_linked_role_be_created():
    policy = json.loads(block(PAGE, "IAM on EKS", "json"))
    [statement] = [s for s in policy["Statement"] if s["Action"] == "iam:CreateServiceLinkedRole"]
    assert statement["Resource"] == ("arn:aws:iam::*:role/aws-service-role/eks-nodegroup.amazonaws.com/"
                                     "AWSServiceRoleForAmazonEKSNodegroup")
    assert statement["Condition"] == {"StringLike": {"iam:AWSServiceName": "eks-nodegroup.amazonaws.com"}}


def test_the_identities_are_shown_with_their_annotations():
    gke, eks = block(PAGE, "IAM on GKE", "yaml"), block(PAGE, "IAM on EKS", "yaml")
    assert "iam.gke.io/gcp-service-account: katuna@PROJECT_ID.iam.gserviceaccount.com" in gke
    assert "eks.amazonaws.com/role-arn:" in eks
    commands = block(PAGE, "IAM on GKE", "sh")
    for role in ("projects/PROJECT_ID/roles/katunaNodePools", "roles/iam.serviceAccountUser",
                 "roles/iam.workloadIdentityUser"):
        assert role in commands
    assert "svc.id.goog[katuna/katuna]" in commands
    text = (ROOT / PAGE).read_text()
    assert "eks:DescribeNodegroup" in text.split("cluster-autoscaler, installed")[1], "the autoscaler's own need"


def test_katunas_gke_role_holds_exactly_the_permissions_of_its_calls():
    """A custom role of the table's permissions, not a predefined one that creates and deletes clusters."""
    section = (ROOT / PAGE).read_text().split("### IAM on GKE")[1].split("###")[0]
    needed = set(re.findall(r"^\| `[a-z_]+` \| `[^`]+` \| `([a-z.]+)` \|", section, flags=re.MULTILINE))
    commands = block(PAGE, "IAM on GKE", "sh")
    [granted] = re.findall(r"gcloud iam roles create katunaNodePools .*--permissions (\S+)", commands)
    assert set(granted.split(",")) == needed == {"container.clusters.get", "container.clusters.update",
                                                 "container.operations.get"}
    bound = re.findall(r"add-iam-policy-binding PROJECT_ID --member serviceAccount:katuna@\S+ --role (\S+)", commands)
    assert bound == ["projects/PROJECT_ID/roles/katunaNodePools"]


def test_the_eks_policy_changes_only_the_clusters_node_groups_and_auto_scaling_groups():
    """Every action that AWS authorizes on a resource is held to the cluster ``tuning``: its own
    ARN and its node groups', and, for tags, the Auto Scaling groups EKS tagged with its name."""
    policy = json.loads(block(PAGE, "IAM on EKS", "json"))
    describes = {"autoscaling:DescribeAutoScalingGroups", "ec2:DescribeSubnets", "ec2:DescribeRouteTables",
                 "ec2:DescribeInstanceTypeOfferings",
                 "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions"}
    for statement in policy["Statement"]:
        actions = {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
        if actions <= describes:
            continue
        if all(action.startswith("eks:") for action in actions):
            assert statement["Resource"] == ["arn:aws:eks:eu-west-1:123456789012:cluster/tuning",
                                             "arn:aws:eks:eu-west-1:123456789012:nodegroup/tuning/*/*"]
        elif actions == {"autoscaling:CreateOrUpdateTags"}:
            assert statement["Condition"]["StringEquals"] == {"autoscaling:ResourceTag/eks:cluster-name": "tuning"}
        else:
            assert statement["Resource"] != "*" or "Condition" in statement, statement


def test_the_eks_policy_creates_and_deletes_only_the_clusters_launch_templates():
    """A template is created only tagged with the cluster katuna tags it with, tagged only as
    it is created, deleted only if it carries that tag, and nodes launch only from templates."""
    policy = json.loads(block(PAGE, "IAM on EKS", "json"))
    by_action = {s["Action"]: s for s in policy["Statement"] if isinstance(s["Action"], str)}
    templates = "arn:aws:ec2:eu-west-1:123456789012:launch-template/*"
    assert by_action["ec2:CreateLaunchTemplate"]["Condition"] == {
        "StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": "tuning"}}
    assert by_action["ec2:DeleteLaunchTemplate"]["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": "tuning"}}
    assert by_action["ec2:CreateTags"]["Condition"] == {"StringEquals": {"ec2:CreateAction": "CreateLaunchTemplate"}}
    for action in ("ec2:CreateLaunchTemplate", "ec2:DeleteLaunchTemplate", "ec2:CreateTags"):
        assert by_action[action]["Resource"] == templates
    assert by_action["ec2:RunInstances"]["Condition"] == {"ArnLike": {"ec2:LaunchTemplate": templates}}


def test_the_eks_policy_writes_only_the_cluster_autoscalers_node_template_tags_on_auto_scaling_groups():
    """The role may write on the cluster's Auto Scaling groups the node-template tags katuna
    writes (a GPU group's labels and its study's labels among them) and no other key: not the
    tags the cluster-autoscaler discovers groups by, nor EKS's own, nor a tag propagated to the
    instances of a group katuna did not make."""
    policy = json.loads(block(PAGE, "IAM on EKS", "json"))
    [statement] = [s for s in policy["Statement"] if s["Action"] == "autoscaling:CreateOrUpdateTags"]
    [pattern] = [statement["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]]
    pool = NodePool("trials", EKS, machine_types=("g5.xlarge",), labels=(("team", "vision"),))
    written = {tag["Key"] for tag in template_tags("eks-trials-1", pool, "SPOT") + option_tags("eks-trials-1")}
    assert len(written) > 4 and all(fnmatchcase(key, pattern) for key in written), written
    for other in ("k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/tuning", "eks:cluster-name",
                  "eks:nodegroup-name", "Name", "kubernetes.io/cluster/tuning"):
        assert not fnmatchcase(other, pattern), other


def test_the_irsa_role_trusts_the_services_account_alone_not_a_trial_pods():
    """The role katuna's account takes with IRSA: the cluster's OIDC provider, for the
    subject ``system:serviceaccount:katuna:katuna`` exactly (a trial pod of the namespace may
    have a token of its own account for any audience) and STS's audience, the role the
    annotation names; the policy put on it is the one shown."""
    commands = block(PAGE, "IAM on EKS", "sh")
    trust = json.loads(commands.split("<<'END'\n")[1].split("\nEND\n")[0])
    [statement] = trust["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "sts:AssumeRoleWithWebIdentity")
    provider = statement["Principal"]["Federated"].split(":oidc-provider/")[1]
    assert statement["Condition"] == {"StringEquals": {f"{provider}:sub": "system:serviceaccount:katuna:katuna",
                                                       f"{provider}:aud": "sts.amazonaws.com"}}
    annotated = yaml.safe_load(block(PAGE, "IAM on EKS", "yaml"))["patches"][0]["patch"]
    assert "arn:aws:iam::123456789012:role/katuna\n" in annotated
    assert "create-role --role-name katuna --assume-role-policy-document file://katuna-trust.json" in commands
    assert "put-role-policy --role-name katuna " in commands and "file://katuna-policy.json" in commands
