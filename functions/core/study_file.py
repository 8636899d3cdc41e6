"""A study file as ``kubectl apply -f`` takes one: an Experiment (or katuna's study) and the
ConfigMap its trial template is read from (``spec.trialTemplate.configMap``), each a document of
one YAML stream. The study is read as from a file of one document; each ConfigMap (``apiVersion:
v1``, ``kind: ConfigMap``) is kept with the line it begins at, for the template to be read from it
(:mod:`functions.core.given_templates`). Anything else in the file is refused, naming the
document by its line: a second study, a document of another kind (a Secret, a Service), one that
is no mapping, a ConfigMap that is no ConfigMap as the API server takes one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core import katib, resources, studyjob, yaml_documents, yaml_streams
from functions.core.errors import Problem, UnparseableStudy
from functions.core.formats import kind_of, parse_text, yaml_problems
from functions.core.pod_fields import is_dns_subdomain
from functions.core.reader import shown

NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A namespace's name: a DNS label, as the API server takes one."""
ONE_STUDY = ("a study file holds one study and the ConfigMap its trial template is read from "
             "(spec.trialTemplate.configMap)")


@dataclass(frozen=True)
class GivenConfigMap:
    """A ConfigMap given in the study's file: its name, its namespace (None where it names none:
    kubectl puts it in the namespace it applies the file to), its ``data``, and the line it begins at."""

    name: str
    namespace: str | None
    data: Mapping[str, str]
    line: int

    def __str__(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name} (line {self.line})" if self.namespace else \
            f"ConfigMap {self.name} (line {self.line}, no namespace)"


def parse_file(text: str) -> tuple[dict[str, Any], tuple[GivenConfigMap, ...]]:
    """The study in ``text`` and the ConfigMaps given with it (none in a file of one document,
    read as :func:`~functions.core.formats.parse_text` reads it); ``UnparseableStudy`` naming
    each document that is neither, by its line."""
    try:
        return parse_text(text), ()
    except UnparseableStudy as exc:
        if not isinstance(exc.__cause__, yaml_streams.SeveralDocuments):
            raise
    with yaml_problems():
        documents = yaml_documents.load_all(text)
    return _split(documents)


def _split(documents: list[yaml_documents.Document]) -> tuple[dict[str, Any], tuple[GivenConfigMap, ...]]:
    studies: list[yaml_documents.Document] = []
    given: list[GivenConfigMap] = []
    problems: list[Problem] = []
    for document in documents:
        data = document.data
        if not isinstance(data, dict):
            problems.append(Problem("", f"the document beginning at line {document.line} holds {kind_of(data)}: "
                                        f"expected a mapping; {ONE_STUDY}"))
        elif data.get("apiVersion") == "v1" and data.get("kind") == "ConfigMap":
            found = _config_map(data, document.line)
            problems += found if isinstance(found, list) else []
            given += [found] if isinstance(found, GivenConfigMap) else []
        elif _study(data):
            studies.append(document)
        else:
            problems.append(Problem("", f"the document beginning at line {document.line} is {_named(data)}, which "
                                        f"katuna does not read; {ONE_STUDY}: apply the other with kubectl"))
    problems += [Problem("", f"the document beginning at line {second.line} is a second study ({_named(second.data)}"
                             f"; the first begins at line {studies[0].line}): {ONE_STUDY}; put each study in a file "
                             "of its own") for second in studies[1:]]
    if not studies:
        problems.append(Problem("", f"holds no study, only {', '.join(map(str, given)) or 'documents refused'}: "
                                    f"{ONE_STUDY}"))
    if problems:
        raise UnparseableStudy(problems)
    return studies[0].data, tuple(given)


def _study(data: Mapping[str, Any]) -> bool:
    """Whether a document is one katuna reads as a study: Katib's, katuna's, or a native study,
    which names no API version and kind."""
    return katib.is_experiment(data) or studyjob.is_studyjob(data) or resources.is_resource(data) or \
        ("apiVersion" not in data and "kind" not in data)


def _named(data: Mapping[str, Any]) -> str:
    """A document in words: its API version and kind, and its name where it gives one."""
    if "apiVersion" not in data and "kind" not in data:
        return f"a native study{_name_of(data.get('name'))}"
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"apiVersion {shown(data.get('apiVersion'))} kind {shown(data.get('kind'))}{_name_of(name)}"


def _name_of(name: Any) -> str:
    return f" named {shown(name)}" if isinstance(name, str) else ""


def _config_map(data: Mapping[str, Any], line: int) -> GivenConfigMap | list[Problem]:
    """The ConfigMap of a document, or why the API server would not take it: a name (and any
    namespace) that is text, and ``data`` of text values (a template is text)."""
    metadata = data.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name, namespace, values = metadata.get("name"), metadata.get("namespace"), data.get("data") or {}
    where = f"the ConfigMap beginning at line {line}"
    problems = []
    if not isinstance(name, str) or not name:
        problems.append(Problem("", f"{where}: metadata.name: required, the name the Experiment's "
                                    "spec.trialTemplate.configMap.configMapName gives"))
    elif not is_dns_subdomain(name):
        problems.append(Problem("", f"{where}: metadata.name: expected a ConfigMap's name (a DNS subdomain: "
                                    f"lowercase letters, digits, '-' and '.'), got {shown(name)}"))
    if namespace is not None and not (isinstance(namespace, str) and NAMESPACE.fullmatch(namespace)):
        problems.append(Problem("", f"{where}: metadata.namespace: expected a namespace's name (a DNS label: "
                                    f"lowercase letters, digits and '-'), got {shown(namespace)}"))
    if not isinstance(values, Mapping):
        problems.append(Problem("", f"{where}: data: expected a mapping of keys to text, got {kind_of(values)}"))
    else:
        problems += [Problem("", f"{where}: data.{key}: expected text, got {kind_of(value)} (quote it: the API "
                                 "server takes only strings in a ConfigMap's data)")
                     for key, value in values.items() if not isinstance(value, str)]
    if problems or not isinstance(name, str):
        return problems
    return GivenConfigMap(name, namespace, dict(values), line)
