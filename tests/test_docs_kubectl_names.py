"""The resources the pages' ``kubectl`` commands name are the ones kubectl finds on a cluster with
every component installed.

Two kinds are named ``experiments`` there: katuna's own ``katuna.dev`` Experiment and, with the
``katib-api`` component, Katib's ``kubeflow.org`` one. kubectl takes a bare name (``kubectl get
experiments``) for the first API group serving it in the API server's discovery, which lists the
APIServices of every CRD group at one priority (1000), by name (``v1.katuna.dev`` before
``v1beta1.kubeflow.org``): so a bare ``experiment`` is katuna's, and a command meant for Katib's
answers ``No resources found`` or ``NotFound``. A page names such a resource with its group.
"""

from __future__ import annotations

import re

from doc_blocks import ROOT, blocks
from test_deploy_kustomize import COMPONENTS, KNATIVE, render

PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")) + ["README.md"]
CRD_PRIORITY = 1000
"""The ``groupPriorityMinimum`` of the APIService the API server makes for each CRD group version."""
VERBS = {"get", "describe", "delete", "edit", "patch", "label", "annotate", "wait", "explain", "scale"}
TAKE_VALUES = {"-n", "--namespace", "-o", "--output", "-l", "--selector", "-c", "--container", "--type", "-p",
               "--patch", "--patch-file", "--for", "--timeout", "--field-selector", "--sort-by"}
"""The flags of those commands whose value is the next word."""
FILES = {"-f", "--filename", "-k", "--kustomize"}
"""Flags naming the objects by file: no resource name to resolve."""


def crds() -> list[dict]:
    """Every CustomResourceDefinition ``kubectl apply -k`` installs with every component listed."""
    return [doc for doc in render(KNATIVE, components=COMPONENTS) if doc["kind"] == "CustomResourceDefinition"]


def discovery_order(definitions: list[dict]) -> list[str]:
    """The CRD groups in the order the API server's discovery lists them: their APIServices
    (``<version>.<group>``, one per served version, all at :data:`CRD_PRIORITY`) sorted by name,
    each group where its first APIService falls (the aggregator's ``ByGroupPriorityMinimum``)."""
    services = sorted(f"{version['name']}.{crd['spec']['group']}" for crd in definitions
                      for version in crd["spec"]["versions"] if version.get("served"))
    groups: list[str] = []
    for service in services:
        group = service.partition(".")[2]
        if group not in groups:
            groups.append(group)
    return groups


def groups_serving(definitions: list[dict]) -> dict[str, list[str]]:
    """Each name kubectl takes for a CRD's resource (plural, singular, kind, short names), with
    the groups serving a resource of that name, in discovery order."""
    order = discovery_order(definitions)
    found: dict[str, set[str]] = {}
    for crd in definitions:
        names = crd["spec"]["names"]
        for name in [names["plural"], names.get("singular", ""), names["kind"].lower(), *names.get("shortNames", [])]:
            if name:
                found.setdefault(name, set()).add(crd["spec"]["group"])
    return {name: sorted(groups, key=order.index) for name, groups in found.items()}


def kubectl_commands(page: str) -> list[str]:
    """Every ``kubectl`` command of ``page``: each line of its shell blocks (continued lines
    joined) and each inline code span that is one."""
    text = (ROOT / page).read_text()
    commands = [line.strip() for b in blocks(page) if b.language in ("sh", "")
                for line in b.text.replace("\\\n", " ").splitlines() if line.strip().startswith("kubectl ")]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += [" ".join(span.split()) for span in re.findall(r"`(kubectl [^`]+)`", prose)]
    return commands


def resource_names(command: str) -> list[str]:
    """The resource names a ``kubectl`` command resolves (``experiments`` of ``kubectl get
    experiments -n team``, each of a comma-separated list, the type of ``ksvc/katuna``); none
    for a command naming its objects by file."""
    words = command.split("#")[0].split()[1:]
    verb = next((i for i, word in enumerate(words) if word in VERBS), None)
    if verb is None or FILES & {word.split("=")[0] for word in words}:
        return []
    rest, i = words[verb + 1:], 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("-"):
            i += 2 if word in TAKE_VALUES else 1
            continue
        return [part.split("/")[0] for part in word.split(",") if part]
    return []


def test_a_bare_experiments_is_katunas_own_kind_where_katibs_is_installed_beside_it():
    """What kubectl makes of the name, from the CRDs the manifests install: katuna.dev's group
    comes first in discovery, so ``kubectl get experiments`` lists katuna's Experiments."""
    serving = groups_serving(crds())
    assert serving["experiments"] == ["katuna.dev", "kubeflow.org"]
    assert serving["experiment"] == ["katuna.dev", "kubeflow.org"]
    assert serving["trials"] == ["kubeflow.org"], "a name one group serves is found whatever the order"


def test_every_kubectl_command_of_the_pages_names_a_resource_two_groups_serve_with_its_group():
    serving = groups_serving(crds())
    ambiguous = {name: groups for name, groups in serving.items() if len(groups) > 1}
    assert ambiguous, "the check has names to look for"
    found = [(page, command, name) for page in PAGES for command in kubectl_commands(page)
             for name in resource_names(command) if name in ambiguous]
    assert not found, "\n".join(
        f"{page}: `{command}`: kubectl takes {name} for {ambiguous[name][0]}'s; name it {name}.{ambiguous[name][-1]} "
        f"or {name}.{ambiguous[name][0]}" for page, command, name in found)


def test_the_commands_are_read_as_kubectl_reads_them():
    assert resource_names("kubectl get experiments -n team -o wide") == ["experiments"]
    assert resource_names("kubectl -n katuna delete studies.katuna.dev,experiments.katuna.dev --all") == [
        "studies.katuna.dev", "experiments.katuna.dev"]
    assert resource_names("kubectl -n katuna wait ksvc/katuna --for=condition=Ready --timeout=15m") == ["ksvc"]
    assert resource_names("kubectl delete -n katuna -f examples/digits-study.yaml") == []
    assert resource_names("kubectl wait --for=condition=Stopped") == []
