"""The causes of trial pods a namespace's ResourceQuota or LimitRange refuses, and what to change.

A quota tracking cpu or memory refuses a pod one of whose containers does not ask for them
(:func:`quota_cause`), and any quota a pod that asks for more than it allows in all
(:func:`quota_small_cause`): no pod's end makes room. A LimitRange refuses a pod one of whose
containers (or whose sums) is outside its bounds (:func:`limit_range_cause`). Every pod of the
template meets the same, so each fails its trial at once, and a study whose every trial meets one
stops (:func:`functions.core.start_failures.unstartable`), saying what to change (:func:`fix`).
"""

from __future__ import annotations

import re

from functions.core.spec import TrialTemplate

_QUOTA = re.compile(r'^ResourceQuota "[^"]*" of namespace "[^"]*" needs ')
_QUOTA_SMALL = re.compile(r'^ResourceQuota "(?P<quota>[^"]*)" of namespace "(?P<namespace>[^"]*)" allows less ')
_LIMIT_RANGE = re.compile(r'^a LimitRange of namespace "(?P<namespace>[^"]*)" refuses the pod: ')


def quota_cause(quota: str, namespace: str, missing: str) -> str:
    """The cause of a pod the namespace's ResourceQuota ``quota`` refuses because a container of
    it does not ask for cpu or memory the quota tracks (every container must: ``must specify``),
    ``missing`` in its words (each resource, and the containers that lack it)."""
    return f'ResourceQuota "{quota}" of namespace "{namespace}" needs every container to ask for what it tracks: ' \
           f"must specify {missing}".replace(";", ",")


def quota_small_cause(quota: str, namespace: str, beyond: str) -> str:
    """The cause of a pod the namespace's ResourceQuota ``quota`` refuses because the pod alone
    asks for more than it allows in all (``beyond``: each resource, what the pod asks and the
    quota's hard limit), which no pod's end frees."""
    return f'ResourceQuota "{quota}" of namespace "{namespace}" allows less in all than the pod asks for: ' \
           f"{beyond}".replace(";", ",")


def limit_range_cause(namespace: str, why: str) -> str:
    """The cause of a pod a LimitRange of ``namespace`` refuses (a container, or the pod's sums,
    outside its min, max or limit-to-request ratio), ``why`` in LimitRanger's words."""
    return f'a LimitRange of namespace "{namespace}" refuses the pod: {why.strip("[]")}'.replace(";", ",")


def refused(cause: str) -> bool:
    """Whether ``cause`` is one of this module's."""
    return any(rule.match(cause) for rule in (_QUOTA, _QUOTA_SMALL, _LIMIT_RANGE))


def fix(cause: str, template: TrialTemplate, parametrized: bool) -> str | None:
    """What to change for ``cause`` (:func:`refused`) in a study of ``template``; None where
    the trials' resources are ``parametrized`` (each trial asks for its own) for a quota or
    LimitRange a pod is too large for."""
    if _QUOTA.match(cause):
        return _constraints_fix(cause, template)
    bounded = _QUOTA_SMALL.match(cause) or _LIMIT_RANGE.match(cause)
    return None if bounded is None else _bounds_fix(bounded, template, parametrized)


def _constraints_fix(cause: str, template: TrialTemplate) -> str:
    """What to set where the namespace's quota needs every container to ask for cpu or memory:
    the ``trialSpec``'s containers' resources; or ``trialTemplate.resources``, whose cpu is katuna's
    own container's request and never its limit, so a quota tracking ``limits.cpu`` needs a
    ``trialSpec`` Job whose container gives one."""
    elsewhere = "or run the trials in a namespace whose quota does not track them (kubernetes.namespace)"
    if template.trial_spec is not None:
        return ("Give every container of the trial pod the requests and limits the quota names (each container's "
                f"resources in the trialSpec's pod template), {elsewhere}")
    if "limits.cpu for:" in cause:
        return ("katuna's own trial container asks for trialTemplate.resources.cpu as a request, never a limit: give "
                "the study a trialSpec (a batch/v1 Job whose container sets resources.limits.cpu and the rest the "
                f"quota names), {elsewhere}")
    return ("Give the trial pod the requests and limits the quota names (trialTemplate.resources: cpu is its "
            f"container's request, memory its request and limit), {elsewhere}")


def _bounds_fix(found: re.Match[str], template: TrialTemplate, parametrized: bool) -> str | None:
    """What to change where the namespace's ResourceQuota is smaller than a trial's pod, or its
    LimitRange refuses it: what the trials ask for (None where a trial's parameters set it: each
    trial asks for its own), or the namespace's bounds (``kubectl describe``), or the namespace."""
    if parametrized:
        return None
    own = "each container's resources in the trialSpec's pod template" if template.trial_spec is not None \
        else "trialTemplate.resources"
    namespace = found.group("namespace")
    if "quota" in found.groupdict():
        return (f"Ask for no more than the quota allows in all ({own}), or have its hard limits raised (kubectl "
                f"describe resourcequota {found.group('quota')} -n {namespace}), or run the trials in a namespace "
                "whose quota fits a trial (kubernetes.namespace)")
    return (f"Ask for requests and limits within the LimitRange's bounds ({own}: kubectl describe limitrange -n "
            f"{namespace} shows them), or run the trials in a namespace whose LimitRange allows them "
            "(kubernetes.namespace)")
