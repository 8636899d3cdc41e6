"""A call the cloud refuses for a permission the identity running ``python -m infra.provision``
lacks: the error names the permission, as the cloud does, and says what to grant and to whom
(the script's own identity; docs/kubernetes.md's IAM sections list each call's permission).
GKE's refusals come from the loopback GKE API; EKS's from botocore's ClientError as boto3 raises
it (moto's server cannot authorize EKS calls), read by the script's own translation."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from gke_stub import GkeStub
from test_provision_script import GKE_FLAGS, provision

from functions.core.nodepool import NodePoolFailed
from infra.eks_errors import translate
from infra.refusals import command_flags, refusal_text

pytestmark = pytest.mark.slow

GKE_GRANT = ("grant the permission it names to the Google identity the script runs as (its Application Default "
             "Credentials: `gcloud auth application-default login`, or GOOGLE_APPLICATION_CREDENTIALS) on the "
             "cluster's project: `up` and `down` need container.clusters.get, container.clusters.update and "
             "container.operations.get (the role of docs/kubernetes.md, IAM on GKE, holds exactly these; "
             "roles/container.clusterAdmin holds them too), and `up` Service Account User on the nodes' service "
             "account")
EKS_GRANT = ("grant the action it names to the AWS identity the script runs as (`aws sts get-caller-identity` names "
             "it): the policy of docs/kubernetes.md, IAM on EKS, allows every call `up` and `down` make")
UPDATE = ('Required "container.clusters.update" permission(s) for '
          '"projects/proj-7/locations/europe-west4/clusters/tuning".')
GET = ('Required "container.clusters.get" permission(s) for '
       '"projects/proj-7/locations/europe-west4/clusters/tuning/nodePools/trials".')


def test_gke_up_down_and_a_plan_refused_a_permission_say_what_to_grant_and_to_whom(gke_api: GkeStub):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    gke_api.refuse_next, gke_api.refuse_method = (403, UPDATE), "POST"
    up = provision("gke", "up", *flags)
    assert (up.returncode, up.stdout) == (1, ""), up.stderr
    assert up.stderr == f"error: GKE refused the request: {UPDATE}; {GKE_GRANT}\n", up.stderr
    assert gke_api.pools == {}
    gke_api.refuse_next, gke_api.refuse_method = (403, GET), "GET"
    plan = provision("gke", "up", *flags, "--dry-run")
    assert plan.returncode == 1 and plan.stderr == f"error: GKE refused the request: {GET}; {GKE_GRANT}\n", plan.stderr
    assert provision("gke", "up", *flags).returncode == 0
    gke_api.refuse_next, gke_api.refuse_method = (403, UPDATE), "DELETE"
    down = provision("gke", "down", *flags)
    assert down.returncode == 1 and down.stderr.endswith(f"{UPDATE}; {GKE_GRANT}\n"), down.stderr
    assert json.loads(provision("gke", "status", *flags).stdout)["state"] == "RUNNING"


def test_a_gke_refusal_that_is_no_permissions_says_nothing_of_grants(gke_api: GkeStub):
    gke_api.refuse_next, gke_api.refuse_method = (400, 'Invalid machine type "e2-standard-3" in zone "x"'), "POST"
    refused = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    assert refused.returncode == 1 and "grant" not in refused.stderr, refused.stderr


@pytest.mark.parametrize("code,said", [
    ("AccessDeniedException", "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: "
                              "eks:CreateNodegroup on resource: arn:aws:eks:eu-west-1:123456789012:cluster/tuning"),
    ("UnauthorizedOperation", "You are not authorized to perform this operation. User: "
                              "arn:aws:iam::123456789012:user/ops is not authorized to perform: "
                              "ec2:CreateLaunchTemplate on resource: arn:aws:ec2:eu-west-1:123456789012:launch-template/*"),
    ("AccessDenied", "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: "
                     "autoscaling:CreateOrUpdateTags on resource: arn:aws:autoscaling:eu-west-1:123456789012:*"),
])
def test_an_eks_call_refused_an_action_says_what_to_grant_and_to_whom(code: str, said: str):
    error = ClientError({"Error": {"Code": code, "Message": said}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                        "CreateNodegroup")
    refusal = translate(error, "eu-west-1")
    assert isinstance(refusal, NodePoolFailed)
    assert refusal_text(refusal, command_flags("--nodegroup")) == (
        f"EKS refused the request: {code}: {said}; {EKS_GRANT}")


def test_a_node_groups_health_issue_access_denied_is_its_node_roles_not_a_grant_to_the_script():
    degraded = NodePoolFailed("EKS node group trials is DEGRADED: AccessDenied: the node role cannot ...",
                              "KATUNA_EKS_NODE_ROLE")
    assert "grant" not in refusal_text(degraded, command_flags("--nodegroup"))


def test_gke_credentials_refused_for_good_are_told_how_the_script_signs_in():
    """The service's advice (Workload Identity of its Kubernetes service account) is not the
    script's: its credentials are its own Application Default Credentials."""
    from google.auth.exceptions import RefreshError

    from infra.gke_errors import translate as gke_translate

    refused = gke_translate(RefreshError("invalid_grant: Invalid JWT Signature.", {"error": "invalid_grant"}))
    said = refusal_text(refused, command_flags("--pool"))
    assert said == ("GKE: the Google Cloud credentials were refused: ('invalid_grant: Invalid JWT Signature.', "
                    "{'error': 'invalid_grant'}); sign in again as the identity the script runs as (`gcloud auth "
                    "application-default login`), or point GOOGLE_APPLICATION_CREDENTIALS at a key file that is "
                    "still valid"), said
