"""Where a stored study's trial template was read from: the annotation katuna keeps on the
definition of an Experiment or StudyJob whose template it read from a ConfigMap
(:mod:`functions.core.template_sources`), which a study's view shows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SOURCE_ANNOTATION = "katuna.dev/trial-template-source"
"""Where a stored definition's trial template was read from (``ConfigMap <namespace>/<name>, key <key>``)."""


def annotated_source(definition: Mapping[str, Any]) -> str | None:
    """Where the stored definition's trial template was read from, if from a ConfigMap."""
    annotations = (definition.get("metadata") or {}).get("annotations")
    source = annotations.get(SOURCE_ANNOTATION) if isinstance(annotations, Mapping) else None
    return source if isinstance(source, str) else None
