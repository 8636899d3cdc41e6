"""Role-based access control as the API server's RBAC authorizer decides it, from the Roles,
ClusterRoles and their bindings in the repository's Kustomization (``knative/``).

A request is allowed when a rule bound to its user (directly, or through a ServiceAccount
subject) names its verb, API group and resource (``pods/log`` for a subresource; ``*`` every
resource and subresource, ``*/log`` that subresource of every resource, and no other
wildcard, as RBAC's ``ResourceMatches``), in the request's namespace for a Role, anywhere for
a ClusterRole. Everything else is 403 Forbidden with the API server's wording.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import jsonpatch
import yaml

from kube_standin import manifests
from kube_standin.objects import status

MANIFESTS = Path(__file__).resolve().parents[2] / "knative"
SERVICE_ACCOUNT_USER = "system:serviceaccount:{namespace}:{name}"
ANONYMOUS = "system:anonymous"
"""Who a request without credentials is to the API server (in group ``system:unauthenticated``)."""
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
TRIALS_ROLE = "katuna-trials"
"""The ClusterRole of what running trials takes, bound per namespace where they run."""


@dataclass(frozen=True)
class Request:
    """What the authorizer sees of a resource request."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def qualified(self) -> str:
        """The resource as errors name it: ``jobs.batch``, ``pods``."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


def kustomization_objects(directory: Path = MANIFESTS) -> list[dict]:
    """The RBAC objects of a Kustomization, in the namespace it sets (as ``kubectl apply -k``)."""
    kustomization = manifests.document(directory / "kustomization.yaml")
    namespace = kustomization.get("namespace", "default")
    objects = []
    for resource in kustomization.get("resources", []):
        for obj in manifests.documents(directory / resource):
            if obj and obj.get("kind") in RBAC_KINDS:
                objects.append(_in_namespace(obj, namespace))
    return objects


def _in_namespace(obj: dict, namespace: str) -> dict:
    """``obj`` as Kustomize's namespace transformer leaves it: namespaced kinds and ServiceAccount
    subjects without a namespace get the Kustomization's."""
    obj = copy.deepcopy(obj)
    if obj["kind"] in ("Role", "RoleBinding"):
        obj["metadata"]["namespace"] = namespace
    for subject in obj.get("subjects", []):
        if subject.get("kind") == "ServiceAccount":
            subject.setdefault("namespace", namespace)
    return obj


class Authorizer:
    """The RBAC objects in force and the decisions they make."""

    def __init__(self, objects: list[dict]) -> None:
        self.objects = [copy.deepcopy(o) for o in objects]

    def grant_in(self, namespace: str, service_namespace: str = "katuna") -> None:
        """How an operator lets katuna run trials in another namespace, as the manifests say
        (``kubectl create rolebinding katuna-trials -n NAMESPACE --clusterrole=katuna-trials
        --serviceaccount=katuna:katuna``): a RoleBinding there of the ``katuna-trials``
        ClusterRole to katuna's service account. Nothing else is granted there: katuna's
        ``Role`` lives in its own namespace, and a RoleBinding elsewhere naming it grants nothing."""
        self.bind(TRIALS_ROLE, namespace, service_namespace, "katuna")

    def grant_in_but(self, namespace: str, resource: str, service_namespace: str = "katuna",
                     verb: str | None = None) -> None:
        """A Role in ``namespace`` with the ``katuna-trials`` ClusterRole's rules but those on
        ``resource`` (only its ``verb``, when one is named), bound to katuna's service account: a
        grant an operator made by hand, or from an older katuna's manifests."""
        [trials] = [o for o in self.objects if o["kind"] == "ClusterRole" and o["metadata"]["name"] == TRIALS_ROLE]
        name = f"{TRIALS_ROLE}-but-{resource}"
        rules = [rule for rule in trials["rules"] if resource not in rule["resources"]] if verb is None else [
            {**rule, "verbs": [v for v in rule["verbs"] if v != verb]} if resource in rule["resources"] else rule
            for rule in trials["rules"]]
        self.objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                             "metadata": {"name": name, "namespace": namespace}, "rules": rules})
        self.objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "katuna", "namespace": service_namespace}]})

    def bind(self, cluster_role: str, namespace: str, account_namespace: str, account: str) -> None:
        """A RoleBinding named after ``cluster_role`` in ``namespace``, of that ClusterRole to the
        ServiceAccount ``account_namespace:account``, as ``kubectl create rolebinding
        --clusterrole --serviceaccount`` makes one."""
        self.objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": cluster_role, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}]})

    def copy_role(self, name: str, namespace: str, home: str = "katuna") -> None:
        """A copy of the Role ``name`` of ``home`` made in ``namespace``, with a RoleBinding there
        to the subjects its own binding names: how an admin grants a Role's rules in another
        namespace (a RoleBinding there naming the Role of ``home`` would grant nothing). katuna's
        ``katuna`` Role (its study resources) is copied so only where a test applies study
        resources outside katuna's namespace, which the manifests never set up."""
        [role] = [o for o in self.objects if o["kind"] == "Role" and o["metadata"]["name"] == name
                  and o["metadata"].get("namespace") == home]
        bindings = [o for o in self.objects if o["kind"] == "RoleBinding" and o["metadata"].get("namespace") == home
                    and o["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}]
        for obj in [role, *bindings]:
            copied = copy.deepcopy(obj)
            copied["metadata"]["namespace"] = namespace
            self.objects.append(copied)

    def enable(self, component: Path, namespace: str = "katuna") -> None:
        """Apply a Kustomize component as ``components:`` in the Kustomization would: its RBAC
        objects join, in katuna's namespace (where each names its own), and its JSON patches of
        Roles and ClusterRoles apply (a ClusterRole's grants wherever it is bound)."""
        spec = manifests.document(component / "kustomization.yaml")
        for resource in spec.get("resources", []):
            self.objects.extend(_in_namespace(obj, namespace) for obj in manifests.documents(component / resource)
                                if obj and obj.get("kind") in RBAC_KINDS)
        for patch in spec.get("patches", []):
            target = patch["target"]
            if target["kind"] not in RBAC_KINDS:
                continue
            for obj in self.objects:
                if obj["kind"] == target["kind"] and obj["metadata"]["name"] == target["name"]:
                    obj.update(jsonpatch.apply_patch(obj, yaml.safe_load(patch["patch"])))

    def allows(self, request: Request) -> bool:
        return any(self._rule_allows(rule, request) for rule in self._rules_of(request))

    def _rules_of(self, request: Request):
        for binding in self.objects:
            if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            if not any(_names(subject, request.user) for subject in binding.get("subjects", [])):
                continue
            scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
            if scope is not None and scope != request.namespace:
                continue
            yield from self._role(binding["roleRef"], scope)

    def _role(self, ref: dict, namespace: str | None) -> list[dict]:
        for role in self.objects:
            if role["kind"] != ref["kind"] or role["metadata"]["name"] != ref["name"]:
                continue
            if role["kind"] == "Role" and role["metadata"].get("namespace") != namespace:
                continue
            return role.get("rules", [])
        return []

    @staticmethod
    def _rule_allows(rule: dict, request: Request) -> bool:
        resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        resources = rule.get("resources", [])
        return ((request.verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
                and (request.group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
                and (resource in resources or "*" in resources
                     or (request.subresource and f"*/{request.subresource}" in resources))
                and (not rule.get("resourceNames") or request.name in rule["resourceNames"]))


def _names(subject: dict, user: str) -> bool:
    if subject.get("kind") == "ServiceAccount":
        return user == SERVICE_ACCOUNT_USER.format(namespace=subject.get("namespace", ""), name=subject["name"])
    if subject.get("kind") == "User":
        return user == subject["name"]
    group = "system:unauthenticated" if user == ANONYMOUS else "system:authenticated"
    return subject.get("kind") == "Group" and subject["name"] == group


def forbidden(request: Request) -> tuple[int, dict]:
    """403 worded as the API server's ``forbiddenMessage``."""
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    reason = (f'User "{request.user}" cannot {request.verb} resource "{resource}" in API group '
              f'"{request.group}" {where}')
    subject = f'{request.qualified} "{request.name}"' if request.name else request.qualified
    return 403, status(403, "Forbidden", f"{subject} is forbidden: {reason}",
                       {"name": request.name, "group": request.group, "kind": request.resource}
                       if request.name else {"group": request.group, "kind": request.resource})
