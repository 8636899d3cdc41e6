"""The sizes the API server and its etcd take: a request body the API server decodes for a
write, and an object etcd stores.

The API server refuses a create, update or patch whose body is over 3 MiB before decoding it
(``MaxRequestBodyBytes``, k8s.io/apiserver pkg/server/config.go: 413 ``RequestEntityTooLarge``,
"Request entity too large: limit is 3145728"). etcd refuses a write over its
``--max-request-bytes``, 1.5 MiB by default (etcd's embed/config.go ``DefaultMaxRequestBytes``),
and the API server passes that on as a 500 whose message is etcd's own, "etcdserver: request is
too large", with no reason (kubernetes/kubernetes#112152: it maps no such etcd error to a
status); nothing is stored. A custom resource is stored as JSON; here its compact JSON is
measured, without the ``managedFields`` and key the API server adds to it, so the stand-in
refuses no object a cluster would take. A dry run reaches no etcd and is measured by neither
bound but the body's.
"""

from __future__ import annotations

import json

MAX_REQUEST_BODY = 3 * 1024 * 1024
"""Bytes of a write's body the API server decodes (3,145,728)."""
MAX_STORED = 1536 * 1024
"""Bytes of one etcd write by default (1,572,864): an object larger than this is never stored."""


def body_refusal(length: int) -> tuple[int, dict] | None:
    """The API server's 413 for a write body of ``length`` bytes past :data:`MAX_REQUEST_BODY`."""
    if length <= MAX_REQUEST_BODY:
        return None
    return 413, _status(413, f"Request entity too large: limit is {MAX_REQUEST_BODY}", "RequestEntityTooLarge")


def stored_size(obj: dict) -> int:
    """The bytes of ``obj`` as compact JSON, as the API server encodes a custom resource."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def store_refusal(obj: dict) -> tuple[int, dict] | None:
    """etcd's refusal, as the API server answers it, of storing ``obj`` when it is past
    :data:`MAX_STORED`; None when it fits."""
    if stored_size(obj) <= MAX_STORED:
        return None
    return 500, _status(500, "etcdserver: request is too large")


def _status(code: int, message: str, reason: str | None = None) -> dict:
    """A ``metav1.Status`` failure, with a reason only where the API server gives one."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "code": code}
    return body if reason is None else {**body, "reason": reason}
