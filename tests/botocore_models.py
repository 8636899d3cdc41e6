"""One cache of botocore's service models for every session of a test process.

botocore reads a service's model (EC2's is megabytes of JSON) once per session, and the tests
make many sessions: moto starts a new default one at each mock's start and another for each
role it checks, and katuna's EKS adapter makes its own, as it does once per process in service.
A test process read the same files hundreds of times, most of the CPU of the EKS tests. The
files do not change while the tests run, so what a loader would read with the same search
paths is read once and shared; a loader with other paths (boto3 adds its own to its sessions')
reads for itself.

Each client then built its service's model again from that description, and a method for each of
its operations (EC2's are hundreds): about half the CPU of making a client, and a test makes
several. A model and the methods depend only on the description, which is shared and not
changed, so each is built once per description and shared by the clients made from it; each
client still gets its own class (the ``creating-client-class`` handlers run for each) and its
own events, so a Stubber on one client leaves the others as they were.

Imported for its effect by :mod:`moto_eks`, before any session is made.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import botocore.session
from botocore.client import ClientCreator
from botocore.loaders import Loader
from botocore.model import ServiceModel

_READ: dict[tuple[tuple[str, ...], Hashable], Any] = {}
"""What loaders have read, by their search paths and the call that read it."""


class _SharedReads:
    """A loader's cache (``Loader._cache``, which botocore's ``instance_cache`` reads and
    writes), kept in :data:`_READ` under the loader's search paths at the time of the call."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def _key(self, call: Hashable) -> tuple[tuple[str, ...], Hashable]:
        return tuple(self.loader.search_paths), call

    def __contains__(self, call: Hashable) -> bool:
        return self._key(call) in _READ

    def __getitem__(self, call: Hashable) -> Any:
        return _READ[self._key(call)]

    def __setitem__(self, call: Hashable, value: Any) -> None:
        _READ[self._key(call)] = value


_create_loader = botocore.session.create_loader


def _sharing_loader(search_path_string: str | None = None) -> Loader:
    loader = _create_loader(search_path_string)
    loader._cache = _SharedReads(loader)
    return loader


botocore.session.create_loader = _sharing_loader


_MODELS: dict[tuple[int, str], ServiceModel] = {}
"""Service models made, by the identity of their description (kept alive in :data:`_READ`) and name."""
_METHODS: dict[int, tuple[ServiceModel, dict[str, Any]]] = {}
"""The client methods made for a service model, by its identity, with the model they were made for."""
_make_methods = ClientCreator._create_methods


def _load_service_model(self: ClientCreator, service_name: str, api_version: str | None = None) -> ServiceModel:
    """The model of ``service_name``, made once for each description the loader reads."""
    description = self._loader.load_service_model(service_name, "service-2", api_version=api_version)
    model = _MODELS.get((id(description), service_name))
    if model is None or model._service_description is not description:
        model = _MODELS[(id(description), service_name)] = ServiceModel(description, service_name=service_name)
    return model


def _create_methods(self: ClientCreator, service_model: ServiceModel) -> dict[str, Any]:
    """A copy of the methods made once for ``service_model``, for one client's class."""
    made = _METHODS.get(id(service_model))
    if made is None or made[0] is not service_model:
        made = _METHODS[id(service_model)] = (service_model, _make_methods(self, service_model))
    return dict(made[1])


ClientCreator._load_service_model = _load_service_model  # type: ignore[method-assign]
ClientCreator._create_methods = _create_methods  # type: ignore[method-assign]
