"""Which ConfigMap of a study's file an Experiment's trial template is read from.

``kubectl apply -f`` a file of an Experiment and the ConfigMap its
``spec.trialTemplate.configMap`` names creates both; Katib reads the key ``templatePath`` of the
ConfigMap ``configMapNamespace``/``configMapName`` when it creates trials. katuna reads the
template from the file's ConfigMap of that name and namespace, before any cluster: the file is
what its author applies, so its ConfigMap wins over one of the same name on the cluster, which
is then not read at all. A ConfigMap that names no namespace lands where kubectl puts the file's
objects: the Experiment's namespace where the Experiment names one, the one the file is applied
to otherwise (taken to be the one ``configMapNamespace`` names, as Katib requires it given).

A file whose ConfigMaps the study does not read from is refused, each of them named by its line:
the study names no ConfigMap, or another; so is one that gives the named ConfigMap twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.core.cluster_templates import ReadConfigMap
from functions.core.errors import Problem
from functions.core.study_file import ONE_STUDY, GivenConfigMap

CONFIG_MAP = "spec.trialTemplate.configMap"


def reader(definition: Mapping[str, Any], experiment: bool, given: Sequence[GivenConfigMap]
           ) -> tuple[ReadConfigMap | None, GivenConfigMap | None, list[Problem]]:
    """The reader of the one ConfigMap of ``given`` the study's template is read from, that
    ConfigMap, and the problems of the file's ConfigMaps (then no reader). ``experiment``: the
    study is an Experiment (Katib's, or katuna's resource of one); none else reads a ConfigMap
    from the file. No reader and no problems where the reference lacks its name or namespace,
    which the template's reading names."""
    spec = definition.get("spec")
    trial = spec.get("trialTemplate") if isinstance(spec, Mapping) else None
    source = trial.get("configMap") if isinstance(trial, Mapping) else None
    if not experiment or not isinstance(source, Mapping) or trial.get("trialSpec") is not None:  # type: ignore[union-attr]
        return None, None, [Problem("", f"{found}: the study reads no trial template from a ConfigMap "
                                        f"({_what_instead(experiment, trial)}); {ONE_STUDY}: apply the other with kubectl")
                            for found in given]
    name, namespace = source.get("configMapName"), source.get("configMapNamespace")
    if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
        return None, None, []
    home = _namespace_of(definition)
    matched = [found for found in given if found.name == name and (found.namespace or home or namespace) == namespace]
    named = f"{namespace}/{name}"
    problems = [Problem("", f"{found} is not the ConfigMap the study reads its trial template from ({CONFIG_MAP} names "
                            f"{named}{_landing(found, name, home)}); {ONE_STUDY}: apply the other with kubectl")
                for found in given if found not in matched]
    if not matched:
        listed = ", ".join(map(str, given))
        problems.insert(0, Problem(f"{CONFIG_MAP}.configMapName", f"names ConfigMap {named}, which the file does not "
                                                                   f"give: it gives {listed}"))
    elif len(matched) > 1:
        lines = " and ".join(str(found.line) for found in matched)
        problems.insert(0, Problem(f"{CONFIG_MAP}.configMapName", f"the file gives ConfigMap {named} more than once "
                                                                   f"(lines {lines}): kubectl applies each over the "
                                                                   "one before; give it once"))
    if problems:
        return None, None, problems
    data = matched[0].data
    return (lambda ns, cm: data if (ns, cm) == (namespace, name) else None), matched[0], []


def _namespace_of(definition: Mapping[str, Any]) -> str | None:
    metadata = definition.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else None


def _landing(found: GivenConfigMap, name: str, home: str | None) -> str:
    """Where a ConfigMap naming no namespace lands beside the Experiment, when that is why it is not the one."""
    if found.namespace is None and home is not None and found.name == name:
        return f"; naming no namespace, it lands in the Experiment's, {home}: give it metadata.namespace"
    return ""


def _what_instead(experiment: bool, trial: Any) -> str:
    if not experiment:
        return "only a Katib Experiment's spec.trialTemplate.configMap names one"
    if isinstance(trial, Mapping) and trial.get("trialSpec") is not None:
        return "its spec.trialTemplate gives the trialSpec inline"
    return f"it gives no {CONFIG_MAP}"
