"""One cache of botocore's service models for every session of a test process.

botocore reads a service's model (EC2's is megabytes of JSON) once per session, and the tests
make many sessions: moto starts a new default one at each mock's start and another for each
role it checks, and katuna's EKS adapter makes its own, as it does once per process in service.
A test process read the same files hundreds of times, most of the CPU of the EKS tests. The
files do not change while the tests run, so what a loader would read with the same search
paths is read once and shared; a loader with other paths (boto3 adds its own to its sessions')
reads for itself.

Imported for its effect by :mod:`moto_eks`, before any session is made.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import botocore.session
from botocore.loaders import Loader

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
