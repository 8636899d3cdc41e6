"""What the offline schema generators (``knative/generate.py``, ``operators/generate.py``) share:
the served versions of the CustomResourceDefinitions in upstream YAML files, and a schema
without its prose."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml


def structure(node: Any) -> Any:
    """The schema without its prose: ``description`` keys dropped at every depth."""
    if isinstance(node, dict):
        return {key: structure(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [structure(value) for value in node]
    return node


def served_versions(paths: Iterable[Path]) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """Each version a CRD of the YAML files at ``paths`` serves: its file, the CRD and the version."""
    for path in paths:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    yield path, crd, version
