"""The ``boto3`` clients katuna's EKS node groups are managed through (:mod:`infra.eks`): EKS,
Auto Scaling and EC2, made by this module alone, each call bounded in time and tries."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, NoRegionError

from functions.core.timeouts import REMOTE_TIMEOUT
from infra.eks_errors import set_up_failure

ATTEMPTS = 2
"""Tries of one call, the first included."""


def clients(region: str | None = None, timeout: float = REMOTE_TIMEOUT) -> tuple[Any, Any, Any]:
    """EKS, Auto Scaling and EC2 clients from the standard chain (profile, environment,
    ``AWS_ENDPOINT_URL``), whose calls each wait at most ``timeout`` seconds to connect and as
    long for each read, and are tried twice at most (botocore's standard retries: throttling,
    a server's failure, a timeout), so a call that hangs gives up instead of holding on. The
    region is ``region``, else ``AWS_REGION``, else botocore's own (``AWS_DEFAULT_REGION``, the
    profile's): the AWS CLI and the other AWS SDKs read ``AWS_REGION`` first, and boto3 not at all,
    so a shell or pod that sets it alone would otherwise get no region, or the profile's."""
    region = region or os.environ.get("AWS_REGION") or None
    bounded = Config(connect_timeout=timeout, read_timeout=timeout,
                     retries={"mode": "standard", "total_max_attempts": ATTEMPTS})
    try:
        session = boto3.session.Session(region_name=region)
        if not session.region_name:
            raise NoRegionError()
        return (session.client("eks", config=bounded), session.client("autoscaling", config=bounded),
                session.client("ec2", config=bounded))
    except (BotoCoreError, ValueError) as exc:
        raise set_up_failure(exc, region) from exc
