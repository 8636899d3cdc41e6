"""How katuna reads what ``boto3`` raises for EKS, EC2 and Auto Scaling: which errors pass
(throttling, a server's failure, a group or cluster busy, the network), which are refusals that
no retry changes (a missing region or credentials, a configuration botocore cannot use, a
request EKS refused), and the field or setting each refusal names. :mod:`infra.eks` raises
what :func:`translate` returns, ``from`` the error it read.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    CapacityNotAvailableError,
    ClientError,
    ConfigParseError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    InvalidConfigError,
    InvalidRegionError,
    MetadataRetrievalError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError
from urllib3.exceptions import LocationValueError

from functions.core.errors import TemporaryError
from functions.core.masked_urls import without_userinfo
from functions.core.nodepool import NodePoolFailed
from infra.eks_requests import NODE_ROLE_SETTING, REGION_SETTING, SUBNETS_SETTING

_TEMPORARY = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
              "ServiceUnavailableException", "ServerException", "InternalFailure", "InternalError",
              "ResourceInUseException", "ResourceContention"}
"""Error codes that pass: throttling, a server's failure, and a group busy with another change
(EKS refuses to update or delete a group that is not active with ``ResourceInUseException``;
Auto Scaling refuses a change to a group with one pending with ``ResourceContention``)."""
_NOT_ACTIVE = "is not in ACTIVE status"
"""EKS's ``InvalidRequestException`` while the cluster is being created, updated (a Kubernetes
version upgrade) or deleted: the same request passes once the cluster is active again."""
_OVERTAKEN = re.compile(r"desired capacity \d+ can't be greater than max size \d+"
                        r"|minimum capacity \d+ can't be greater than desired size \d+", re.IGNORECASE)
"""EKS's ``InvalidParameterException`` to ``UpdateNodegroupConfig`` for limits asked of a group
whose desired size its autoscaler moved past them since katuna looked (``desired capacity 7
can't be greater than max size 4``, ``Minimum capacity 8 can't be greater than desired size
4``, as terraform-aws-modules/terraform-aws-eks#3306 and eksctl users quote them): the next
look asks limits that hold it."""
_NO_INSTANCE_TYPES = "The following supplied instance types do not exist"
"""How EKS's ``InvalidParameterException`` begins for instance types EC2 has not in the region
(``... do not exist: [m5n.large, m5zn.large]``): the study's ``nodePool.instanceTypes`` to fix."""
_NODE_ROLE = re.compile(r"trust relationships of nodeRole|^The role with name \S+ cannot be found")
"""How EKS's ``InvalidParameterException`` reads for a node role EC2 may not assume (``Following
required service principals [ec2.amazonaws.com] were not found in the trust relationships of
nodeRole ARN``, as eksctl-io/eksctl#3290 quotes it) or that IAM does not have (IAM's ``The role
with name NAME cannot be found.``): ``KATUNA_EKS_NODE_ROLE`` to fix."""
_NO_CLUSTER = "No cluster found"
"""How EKS's ``ResourceNotFoundException`` begins when the cluster is missing (``No cluster found
for name: C.``), which it answers for a group of that cluster as for a group that is absent."""
_UNSET = (NoCredentialsError, PartialCredentialsError, NoRegionError)
"""What botocore raises when the AWS configuration lacks credentials or a region: no retry
brings them, so they are refusals naming what to set, not an unreachable EKS."""
_NO_CREDENTIALS = ("no AWS credentials: give the service's Kubernetes service account katuna an IAM role (IRSA, or "
                   "an EKS Pod Identity association); elsewhere set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY")
_UNUSABLE = (SSOError, TokenRetrievalError, ProfileNotFound, InvalidConfigError, ConfigParseError)
"""What botocore raises when the AWS configuration names credentials it cannot get: an SSO
session never started or expired (``Error loading SSO Token: Token for ... does not exist``,
``The SSO session associated with this profile has expired``), a profile the configuration
lacks, a configuration it cannot read. They wait for someone to log in or fix a file, so they
are refusals naming what to do, not an unreachable EKS asked again until ``--timeout``."""
_NO_REGION = "no AWS region is set (nor AWS_REGION, AWS_DEFAULT_REGION, or the AWS profile's region)"
_FIX_CONFIGURATION = "no retry helps: fix the AWS_* variables or the AWS profile (AWS_PROFILE, AWS_CONFIG_FILE)"
_BAD_ENDPOINT = ("the AWS endpoint URL is no http or https URL (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EKS, _EC2 or "
                 "_AUTO_SCALING, or the AWS profile's endpoint_url); no retry helps: fix it, or unset it for AWS's own")
_PASSING = (BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseParserError, MetadataRetrievalError,
            CredentialRetrievalError, CapacityNotAvailableError)
"""What botocore raises for a call the network, the endpoint or a credentials service failed
for now: a connection refused, reset or timed out, an answer cut short or unreadable (a proxy's
error page), the instance metadata or container credentials endpoint not answering, botocore's
own retry quota spent. Any other error of botocore is raised before anything is sent, from the
configuration or the request, and no retry changes it."""


def masked(error: Exception) -> Exception:
    """``error`` (katuna's, made by :func:`translate` or :func:`set_up_failure`) with the user and
    password of any endpoint URL it quotes masked: botocore's ``Could not connect to the endpoint
    URL: "http://USER:PASSWORD@HOST/..."`` quotes ``AWS_ENDPOINT_URL`` whole."""
    if isinstance(error, NodePoolFailed):
        return NodePoolFailed(without_userinfo(error.reason), error.field)
    return type(error)(without_userinfo(str(error)))


def set_up_failure(exc: Exception, region: str | None) -> Exception:
    """katuna's error for EKS, EC2 and Auto Scaling clients that the AWS configuration cannot
    make: a region or credentials missing or unusable, a setting botocore refuses, an endpoint
    URL that is none (urllib3's ``ValueError``), each a refusal; only a credentials endpoint
    that does not answer for now (EKS Pod Identity's agent, read as the clients are made) passes
    (:func:`translate`)."""
    if isinstance(exc, (*_UNSET, *_UNUSABLE, CredentialRetrievalError, InvalidRegionError)):
        return translate(exc, region)
    if isinstance(exc, BotoCoreError):
        return masked(NodePoolFailed(f"the AWS configuration is invalid: {exc}; {_FIX_CONFIGURATION}"))
    return masked(NodePoolFailed(f"{_BAD_ENDPOINT}: {exc}"))


def code(exc: ClientError) -> str:
    """The error code AWS answered with (``ResourceNotFoundException``)."""
    return exc.response.get("Error", {}).get("Code", "")


def message(exc: ClientError) -> str:
    """The words AWS answered with, or the error's own where it gave none."""
    return str(exc.response.get("Error", {}).get("Message", exc))


def not_active(exc: ClientError) -> bool:
    """EKS's ``InvalidRequestException`` for a cluster that is not ``ACTIVE`` (:data:`_NOT_ACTIVE`)."""
    return code(exc) == "InvalidRequestException" and _NOT_ACTIVE in message(exc)


def no_cluster(exc: ClientError) -> bool:
    """EKS's ``ResourceNotFoundException`` for the cluster a request names."""
    return code(exc) == "ResourceNotFoundException" and message(exc).startswith(_NO_CLUSTER)


@functools.cache
def _regions() -> frozenset[str]:
    """The regions botocore knows EKS in, in every partition."""
    session = boto3.session.Session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("eks", partition))


def _no_region(exc: Exception, region: str | None) -> bool:
    """Whether ``exc`` says the region is none of AWS's: a name botocore refuses, or one it
    knows of nowhere whose endpoint does not answer (GKE's answer to a location it does not
    have is a refusal naming the setting too). An endpoint of a region botocore knows not
    answering is the network's fault, for now."""
    return isinstance(exc, InvalidRegionError) or (
        isinstance(exc, EndpointConnectionError) and region is not None and region not in _regions())


def _unusable(exc: Exception) -> bool:
    """Whether ``exc`` says the configured credentials cannot be had (:data:`_UNUSABLE`), or a
    profile's ``credential_process`` failed; the container credentials endpoint (EKS Pod
    Identity's agent) not answering is for now."""
    return isinstance(exc, _UNUSABLE) or (
        isinstance(exc, CredentialRetrievalError) and exc.kwargs.get("provider") != "container-role")


def translate(exc: Exception, region: str | None = None) -> Exception:
    """katuna's error for what a call (or the clients' set-up, in ``region``) raised: a
    :class:`~functions.core.errors.TemporaryError` where the same call may pass later, else a
    :class:`~functions.core.nodepool.NodePoolFailed` saying what to fix, naming the field or
    setting where one is to blame; an endpoint URL's user and password masked (:func:`masked`)."""
    return masked(_translated(exc, region))


def _translated(exc: Exception, region: str | None) -> Exception:
    """:func:`translate`'s error, before it is masked."""
    if _no_region(exc, region):
        return NodePoolFailed(f"EKS has no region {region} (expected an AWS region, such as us-east-1): {exc}",
                              REGION_SETTING)
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        said = message(exc)
        busy = not_active(exc) or (
            code(exc) == "InvalidParameterException" and _OVERTAKEN.search(said) is not None)
        if code(exc) in _TEMPORARY or status >= 500 or busy:
            return TemporaryError(f"EKS: {code(exc)}: {said}")
        field = "nodePool.instanceTypes" if said.startswith(_NO_INSTANCE_TYPES) else \
            NODE_ROLE_SETTING if code(exc) == "InvalidParameterException" and _NODE_ROLE.search(said) else None
        return NodePoolFailed(f"EKS refused the request: {code(exc)}: {said}", field)
    if isinstance(exc, ParamValidationError):
        return NodePoolFailed(f"botocore refused the request before sending it: {exc}; no retry helps")
    if isinstance(exc, NoRegionError):
        return NodePoolFailed(_NO_REGION, REGION_SETTING)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return NodePoolFailed(f"{_NO_CREDENTIALS} ({exc})")
    if _unusable(exc):
        return NodePoolFailed(f"the AWS credentials could not be used: {exc}; log in again (`aws sso login`), or fix "
                              "the AWS profile (AWS_PROFILE, its credential_process) or the credentials set")
    if _bad_scheme(exc):
        return NodePoolFailed(f"{_BAD_ENDPOINT}: {exc}")
    if isinstance(exc, _PASSING):
        return TemporaryError(f"EKS is unreachable for now (tried again later): {exc}")
    return NodePoolFailed(f"the AWS client refused to send the request: {exc}; {_FIX_CONFIGURATION}")


def about_template(exc: ClientError) -> bool:
    """Whether EKS refused a create for its launch template (``InvalidParameterException``
    naming one): the refusal of one EC2 does not have, among others."""
    return code(exc) == "InvalidParameterException" and "launch template" in message(exc).lower()


def _bad_scheme(exc: Exception) -> bool:
    """Whether ``exc`` is botocore's wrapping of urllib3's refusal of an endpoint URL's scheme
    (``ftp://``), raised at each call, never sent."""
    return isinstance(exc, HTTPClientError) and isinstance(exc.kwargs.get("error"), LocationValueError)


_LASTING_ISSUES: dict[str, str | None] = {
    **dict.fromkeys(("Ec2SubnetNotFound", "Ec2SubnetInvalidConfiguration", "Ec2SubnetMissingIpv6Assignment",
                     "Ec2SubnetListTooLong"), SUBNETS_SETTING),
    **dict.fromkeys(("IamNodeRoleNotFound", "IamInstanceProfileNotFound", "NodeCreationFailure", "AccessDenied"),
                    NODE_ROLE_SETTING),
    "Ec2InstanceTypeDoesNotExist": "nodePool.instanceTypes",
    **dict.fromkeys(("InstanceLimitExceeded", "IamLimitExceeded", "LimitExceeded", "AmiIdNotFound",
                     "AutoScalingGroupNotFound", "AutoScalingGroupInvalidConfiguration", "AutoScalingGroupOptInRequired",
                     "Ec2LaunchTemplateNotFound", "Ec2LaunchTemplateVersionMismatch",
                     "Ec2LaunchTemplateInvalidConfiguration", "Ec2LaunchTemplateMaxLimitExceeded",
                     "Ec2LaunchTemplateVersionMaxLimitExceeded", "SourceEc2LaunchTemplateNotFound",
                     "Ec2SecurityGroupNotFound", "KubernetesLabelInvalid")),
}
"""The health issues of a ``DEGRADED`` node group that no wait cures, with the setting or
field each names where one is to blame (the API reference's ``Issue`` codes: a subnet, role,
instance profile, launch template, Auto Scaling group or security group EKS cannot find or use,
an instance type or AMI that does not exist, a quota reached, nodes that cannot join the
cluster). The others pass with time: instances EC2 had no capacity for
(``AsgInstanceLaunchFailures``: the group stays ``DEGRADED``, and usable, until a scale-out
succeeds, aws/containers-roadmap#2326), addresses in use, throttling, the cluster unreachable
for now, EKS's own failures; such a group is used as it is."""
_FAILED = {"CREATE_FAILED": "failed to create", "DELETE_FAILED": "failed to delete", "DEGRADED": "is DEGRADED"}
"""The states a node group stays in until someone acts, in words: EKS neither creates a group
again nor retries its delete, and holds a ``DEGRADED`` one so while its issue lasts."""


def issues_text(group: dict[str, Any]) -> str:
    """The group's health issues (``code: message; ...``), or its status where it has none."""
    issues = (group.get("health") or {}).get("issues") or []
    return "; ".join(f"{i.get('code')}: {i.get('message')}" for i in issues) or group["status"]


def stuck(cluster: str, group: dict[str, Any], *, advise: bool = True) -> NodePoolFailed | None:
    """The refusal for a node group no wait brings back: one that failed to create or to
    delete, or is ``DEGRADED`` with an issue of :data:`_LASTING_ISSUES`, naming EKS's issues and
    the setting to fix where one is to blame; with ``advise``, what to do too (a group that
    failed stays so until it is deleted; one whose delete failed, until it is deleted again),
    which a check of katuna's own create leaves out: the study's release deletes a group it made.
    None for any other."""
    status = group["status"]
    codes = [issue.get("code") for issue in (group.get("health") or {}).get("issues") or []]
    lasting = [code for code in codes if code in _LASTING_ISSUES]
    if status not in _FAILED or (status == "DEGRADED" and not lasting):
        return None
    name = group["nodegroupName"]
    again = " again" if status == "DELETE_FAILED" else ""
    advice = (f"; EKS does not bring it back by itself: fix what it names, then delete the group{again} (aws eks "
              f"delete-nodegroup --cluster-name {cluster} --nodegroup-name {name}): it is created anew when next "
              "asked for") if advise else ""
    return NodePoolFailed(f"EKS node group {name} {_FAILED[status]}: {issues_text(group)}{advice}",
                          next((_LASTING_ISSUES[code] for code in lasting if _LASTING_ISSUES[code]), None))
