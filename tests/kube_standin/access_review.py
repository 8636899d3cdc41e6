"""SelfSubjectAccessReview as the API server answers it: every authenticated account may ask
(the ``system:basic-user`` ClusterRole every cluster binds to ``system:authenticated``; an
anonymous request is refused), about resource attributes or non-resource attributes but not
both, and is told whether the authorizer would let it."""

from __future__ import annotations

from kube_standin.objects import status
from kube_standin.rbac import ANONYMOUS, Request, forbidden

PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
VERSION, KIND = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
EITHER = "exactly one of nonResourceAttributes or resourceAttributes must be specified"


def answer(authorizer, user: str, body: object) -> tuple[int, dict]:
    """The answer to a review posted by ``user``: refused (403) for an anonymous request, which
    ``system:basic-user`` does not cover, else :func:`review`'s."""
    if user == ANONYMOUS:
        return forbidden(Request(user, "create", "authorization.k8s.io", "selfsubjectaccessreviews"))
    return review(authorizer, user, body)


def review(authorizer, user: str, body: object) -> tuple[int, dict]:
    """The answer to a review posted by ``user``: 201 with its ``status``, or the refusal."""
    if not isinstance(body, dict):
        return 400, status(400, "BadRequest", "the body of the request is no object")
    if body.get("apiVersion", VERSION) != VERSION or body.get("kind", KIND) != KIND:
        # As the API server's decoder: a type left out is the endpoint's, another one refused.
        return 400, status(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) does not "
                                              f"match the expected API version ({VERSION})")
    spec = body.get("spec") or {}
    attributes, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (attributes is None) == (non_resource is None):
        return 422, status(422, "Invalid", f'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '
                                           f'spec.resourceAttributes: Invalid value: "null": {EITHER}')
    allowed = attributes is not None and authorizer.allows(Request(
        user, attributes.get("verb", ""), attributes.get("group", ""), attributes.get("resource", ""),
        attributes.get("subresource", ""), attributes.get("namespace", ""), attributes.get("name", "")))
    return 201, {"apiVersion": VERSION, "kind": KIND,
                 "metadata": {"creationTimestamp": None}, "spec": spec,
                 "status": {"allowed": allowed} if allowed else {"allowed": False, "reason": ""}}
