"""Where trial templates held in ConfigMaps are read from, apart from the reading itself (which
needs YAML): the runtime and the application interface name these on every path, the event
path included, which loads no YAML (:mod:`functions.core.template_sources` reads the templates)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.errors import PermanentError

ReadConfigMap = Callable[[str, str], Mapping[str, Any] | None]
"""``(namespace, name)`` to the ConfigMap's ``data``, or None when there is no such ConfigMap
(:meth:`functions.core.ports.Resources.read_config_map`)."""


@dataclass(frozen=True)
class ClusterTemplates:
    """Where templates held in ConfigMaps are read: through ``read``, katuna's namespace ``home``."""

    read: ReadConfigMap
    home: str


class ConfigMapForbidden(PermanentError):
    """The Kubernetes API refuses katuna the read of a ConfigMap (nothing bound there grants ``get``)."""
