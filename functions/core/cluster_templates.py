"""Where trial templates held in ConfigMaps are read from, apart from the reading itself (which
needs YAML): the runtime and the application interface name these on every path, the event
path included, which loads no YAML (:mod:`functions.core.template_sources` reads the templates).

katuna reads a ConfigMap with its own RBAC, which reaches every namespace where it runs trials.
A study resource's author may have no right to read ConfigMaps in another team's namespace, so
a resource takes its template only from a namespace it may fairly name (:meth:`ClusterTemplates.refusal`):
its own, katuna's, or one the operator keeps shared templates in; katuna would otherwise be a
confused deputy, reading for the author what the author may not read, and storing it as the
trials' spec. A study posted with the API token has no namespace of its own, and its sender acts
for the operator: it may name any namespace katuna's RBAC lets it read."""

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
    owner: str | None = None
    """The namespace of the study resource whose template is read; None for a study posted with
    the API token, which may name any namespace."""
    shared: tuple[str, ...] = ()
    """Namespaces the operator keeps shared templates in (``KATUNA_TEMPLATE_NAMESPACES``), which
    any resource may name besides its own and ``home``."""

    def refusal(self, namespace: str) -> str | None:
        """Why the resource may not take a template from a ConfigMap of ``namespace`` (None: it may)."""
        allowed = (self.owner, self.home, *self.shared)
        if self.owner is None or namespace in allowed:
            return None
        listed = ", ".join(repr(name) for name in dict.fromkeys(allowed))
        return (f"{namespace!r} is another namespace: a resource in {self.owner!r} takes its trial template from a "
                f"ConfigMap of its own namespace, of katuna's, or of a namespace of shared templates "
                f"(KATUNA_TEMPLATE_NAMESPACES); expected one of {listed}. Copy the template into a ConfigMap of "
                f"{self.owner!r}, or ask the operator to share its namespace")


class ConfigMapForbidden(PermanentError):
    """The Kubernetes API refuses katuna the read of a ConfigMap (nothing bound there grants ``get``)."""
