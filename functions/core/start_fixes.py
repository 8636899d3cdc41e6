"""What the user does about the cause every trial of a study could not start for, when the
study stops for it (:func:`functions.core.start_failures.unstartable`): :func:`fix`.

Each cause :mod:`functions.core.start_failures` writes (an image, a Secret or ConfigMap, a
ServiceAccount, a program or working directory, a pod no node fits or the namespace refuses) is
told here from its words, and its fix read off the study's template: whether the template itself
gives what the cause names (its image, the objects its containers read, its command, its
scheduling fields) or a trial's parameters made it, in which case each trial meets its own and
there is no one fix. This reading of the template is apart from when a study stops, which
:mod:`functions.core.start_failures` decides from the trials' reasons alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from functions.core import quota_causes
from functions.core.spec import TrialTemplate
from functions.core.trial_spec import local_folder

_IMAGE = re.compile(r'^image "(?P<image>[^"]*)" ')
_MISSING = re.compile(r'^(?:key "(?P<key>[^"]*)" of )?(?P<kind>Secret|ConfigMap) "(?P<name>[^"]*)" in namespace '
                      r'"(?P<namespace>[^"]*)" is missing$')
_UNFIT = re.compile(r"^cannot be scheduled: the pod asks for ")
_ACCOUNT = re.compile(r'^ServiceAccount "(?P<name>[^"]*)" in namespace "(?P<namespace>[^"]*)" is missing$')
_POD_SECURITY = re.compile(r"^violates PodSecurity ")
_NON_ROOT = re.compile(r"""^(?:image "(?P<image>[^"]*)" runs as .*|the container's runAsUser is 0 \(root\)), """
                       r"which runAsNonRoot forbids$")
_PROGRAM = re.compile(r'^program "(?P<program>[^"]*)" cannot be run: ')
_DIRECTORY = re.compile(r"^working directory .* cannot be entered: ")
_INVALID_POD = re.compile(r"^the API server refuses the pod as invalid: ")
SCHEDULING = frozenset({"resources", "nodeSelector", "tolerations", "affinity"})
"""The fields of a trialSpec's pod that decide which nodes may take it."""
REFERENCES = {"secretKeyRef": "Secret", "secretRef": "Secret", "configMapKeyRef": "ConfigMap",
              "configMapRef": "ConfigMap"}
"""The fields of a container that read a Secret or ConfigMap into its environment (an ``env``'s
``valueFrom``, an ``envFrom``), to the kind each reads."""


def fix(cause: str, template: TrialTemplate) -> str | None:
    """What the user does about ``cause`` when an image or object the study's template itself
    gives meets it, or a pod it asks for that no node fits; None for one a trial's parameters made.
    The first of :data:`_FIXES` whose cause it is answers."""
    for matches, fixer in _FIXES:
        found = matches(cause)
        if found:
            return fixer(found, template)
    return None


def waited(cause: str) -> bool:
    """Whether each trial that met ``cause`` waited the start allowance for it first (an image
    that cannot be pulled, a Secret, ConfigMap or ServiceAccount that is missing) rather than
    failing at once (an image that may run as root, whose words begin as a pulled image's)."""
    return any(rule.match(cause) for rule in (_IMAGE, _MISSING, _ACCOUNT)) and not _NON_ROOT.match(cause)


def _walk(value: Any, key: object = None) -> Iterator[tuple[object, Any]]:
    """Each value a template holds, however deep, with the key it is under (None for a list's
    items and the template itself)."""
    yield key, value
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _walk(item, name)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


def _directory_fix(template: TrialTemplate) -> str | None:
    """How to fix a working directory every trial fails to enter: the folder a local trial runs
    in (:func:`~functions.core.trial_spec.local_folder`), the ``workingDir`` of its trialSpec's
    primary container, where it runs as the container would, or the template's own (None where
    a trial's parameters fill it in: each trial has its own)."""
    runs_in = local_folder(template)
    if runs_in is None or "${" in runs_in.folder:
        return None
    if runs_in.in_container:
        return ("Fix the workingDir of the trialSpec's primary container (a folder that exists on this machine, "
                "where a local trial runs its command as Kubernetes runs it in that folder of the image), or "
                "leave it out to run the trials in the study's folder")
    return "Fix trialTemplate.workingDir (a folder that exists, relative to where katuna runs)"


def _images(value: Any) -> Iterator[str]:
    """Every ``image`` a template holds, in a trialSpec of any kind (a container's, a TrainJob's
    trainer's, an Argo script's, a Tekton step's)."""
    return (item for key, item in _walk(value) if key == "image" and isinstance(item, str))


def _strings(value: Any) -> Iterator[str]:
    """Every string a template holds, however deep."""
    return (item for _, item in _walk(value) if isinstance(item, str))


def _references(value: Any) -> Iterator[tuple[str, str, str | None]]:
    """Every Secret or ConfigMap a template's containers must read (:data:`REFERENCES`, not
    ``optional``: the kubelet skips those), as its kind, its name and the key read (None for
    an ``envFrom``'s, which reads them all), in a ``trialSpec`` of any kind."""
    return ((REFERENCES[key], item["name"], item.get("key")) for key, item in _walk(value)
            if key in REFERENCES and isinstance(item, Mapping) and isinstance(item.get("name"), str)
            and not item.get("optional"))


def _create(kind: str, name: str, namespace: str, keys: Iterable[str | None]) -> str:
    """How to create the missing ``kind`` ``name`` with the ``keys`` the template reads."""
    literals = " ".join(f"--from-literal={key}=<value>" for key in sorted({k for k in keys if k})) \
        or "--from-literal=<key>=<value>"
    command = "secret generic" if kind == "Secret" else "configmap"
    return f"Create it (kubectl create {command} {name} -n {namespace} {literals})"


def _add(kind: str, name: str, namespace: str, key: str) -> str:
    """How to add the missing ``key`` to the ``kind`` ``name``."""
    field = "stringData" if kind == "Secret" else "data"
    return (f"Add the key (kubectl patch {kind.lower()} {name} -n {namespace} --type merge -p "
            f"'{{\"{field}\":{{\"{key}\":\"<value>\"}}}}')")


def _parametrized(value: Any, scheduling: bool = False) -> bool:
    """Whether a trial's parameters (a ``${...}`` reference) reach a field of :data:`SCHEDULING` in ``value``."""
    if isinstance(value, Mapping):
        return any(_parametrized(item, scheduling or key in SCHEDULING) for key, item in value.items())
    if isinstance(value, list):
        return any(_parametrized(item, scheduling) for item in value)
    return scheduling and isinstance(value, str) and "${" in value


def _account_fix(found: re.Match[str], template: TrialTemplate) -> str:
    name, namespace = found.group("name", "namespace")
    return (f"Create the ServiceAccount (kubectl create serviceaccount {name} -n {namespace}), or name one that "
            "exists in kubernetes.serviceAccountName")


def _pod_security_fix(found: re.Match[str], template: TrialTemplate) -> str:
    restricted = " (for restricted, the operator's KATUNA_TRIAL_POD_SECURITY=restricted has katuna's own trial " \
                 "pods meet it)" if found.string.startswith('violates PodSecurity "restricted:') else ""
    return ("Ask for no more than the namespace's Pod Security level allows in the trial template (its "
            "securityContext, host namespaces, hostPath volumes, capabilities), or run the trials in a namespace "
            f"whose level allows it (kubernetes.namespace){restricted}")


def _unfit_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if _parametrized({"resources": dict(template.resources)}) or _parametrized(template.trial_spec):
        return None
    return ("Ask for what a node of the pool offers in the trial template (its resources, nodeSelector, "
            "tolerations), or give the pool a machine type that fits the trials (enough cpu, memory or GPUs, "
            "the labels and taints the trials select)")


def _program_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if found.group("program") not in set(_strings([template.command, template.trial_spec])):
        return None
    return ("Fix the program the trial template runs (its command's first word: one on the trials' PATH, or "
            "the path of an executable file)")


def _quota_fix(cause: str, template: TrialTemplate) -> str | None:
    parametrized = _parametrized({"resources": dict(template.resources)}) or _parametrized(template.trial_spec)
    return quota_causes.fix(cause, template, parametrized)


def _invalid_pod_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if any("${" in image for image in {template.image or "", *_images(template.trial_spec)}):
        return None
    return "Fix the trial template's pod where the API server says"


def _image_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if found.group("image") not in {template.image, *_images(template.trial_spec)}:
        return None
    return "Fix the image, or make it pullable (its tag pushed, the pull secret given)"


def _missing_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    kind, name, namespace, key = found.group("kind", "name", "namespace", "key")
    keys = [read for of, called, read in _references(template.trial_spec) if (of, called) == (kind, name)]
    if not keys or (key is not None and key not in keys):
        return None
    return _add(kind, name, namespace, key) if key is not None else _create(kind, name, namespace, keys)


_FIXES: tuple[tuple[Callable[[str], Any], Callable[[Any, TrialTemplate], str | None]], ...] = (
    (_ACCOUNT.match, _account_fix),
    (_NON_ROOT.match, lambda found, template: _user_fix(found.group("image"), template)),
    (_POD_SECURITY.match, _pod_security_fix),
    (_UNFIT.match, _unfit_fix),
    (_PROGRAM.match, _program_fix),
    (_DIRECTORY.match, lambda found, template: _directory_fix(template)),
    (lambda cause: cause if quota_causes.refused(cause) else None, _quota_fix),
    (_INVALID_POD.match, _invalid_pod_fix),
    (_IMAGE.match, _image_fix),
    (_MISSING.match, _missing_fix),
)
"""The causes :func:`fix` knows, in the order it asks (a cause that two match is the first's):
how each is told (a match, or the cause), and the fix it gives for what was found."""


def _user_fix(image: str | None, template: TrialTemplate) -> str | None:
    """How to run the study's ``image`` (None: the template's ``runAsUser``) as a user the kubelet
    can tell is not root; None for an image a trial's parameters made."""
    own = "securityContext.runAsUser in the trialSpec's pod template" if template.trial_spec is not None \
        else "kubernetes.runAsUser"
    if image is None:
        return f"Give a runAsUser other than 0 ({own}), or none"
    if image not in {template.image, *_images(template.trial_spec)}:
        return None
    return f"Build the image with a numeric USER other than 0 (USER 10001 in its Dockerfile), or give the user id to " \
           f"run it as ({own})"

