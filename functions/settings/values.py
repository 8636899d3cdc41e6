"""How a setting's text becomes its value: numbers written plainly, yes/no flags, comma lists,
host names, resource quantities, ``K_CE_OVERRIDES``, and the study limits and EKS quotas, each
read from a variable of its own.

Kept apart from :class:`functions.settings.Settings`, which says what each setting is, and from
:mod:`functions.settings.checks`, which combinations katuna refuses: these are the rules of the
text alone. Each refusal is an
:class:`InvalidSetting` naming the variable, so a setting katuna cannot use stops every command
with one line saying which.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from functions import reporter
from functions.core import trial_kinds
from functions.core.errors import InvalidSetting
from functions.core.limits import MAX_EXACT_INT, PREFIX, EksQuotas, Limits
from functions.core.masked_urls import without_userinfo
from functions.core.pod_fields import resource_problem
from functions.core.reader import shown


def resource_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``a=1,b=2`` as pairs, none for ``none``; :class:`InvalidSetting` names a malformed item."""
    if text.strip().lower() == "none":
        return ()
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InvalidSetting(f"{PREFIX}K8S_DEFAULT_RESOURCES: expected name=quantity items, got {item!r}")
        if (problem := resource_problem(key, value)) is not None:
            raise InvalidSetting(f"{PREFIX}K8S_DEFAULT_RESOURCES: {problem}")
        pairs.append((key, value))
    return tuple(pairs)


def flag(value: str) -> bool:
    """A yes/no setting: ``true``/``1``/``yes`` or ``false``/``0``/``no``."""
    lowered = value.strip().lower()
    if lowered not in ("true", "1", "yes", "false", "0", "no"):
        raise ValueError(value)
    return lowered in ("true", "1", "yes")


def url(text: str) -> str:
    """An address katuna sends requests to (``KATUNA_K8S_API``, ``KATUNA_REPORT_URL``,
    ``KATUNA_OIDC_ISSUER_URL``): an http or https URL with a host and a port in range. Another
    would make a client that reaches nothing, each call taken for an outage and asked again."""
    if not _reachable(text, text):
        raise ValueError(text)
    return text


def endpoint(text: str) -> str:
    """``KATUNA_GKE_ENDPOINT``: a URL as :func:`url` takes one, or ``HOST[:PORT]`` reached over
    HTTPS, as GKE's client (and the provisioning script's ``--endpoint``) takes it."""
    if not _reachable(text, text if "://" in text else f"https://{text}"):
        raise ValueError(text)
    return text


def _reachable(text: str, address: str) -> bool:
    """Whether ``address`` (``text`` as a URL) names an http or https host and a port in range,
    ``text`` holding no space."""
    parts = urlsplit(address)
    try:
        good = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:
        return False
    return good and not any(c.isspace() for c in text)


EXPECTED: dict[Callable[[str], Any], str] = {
    int: "an integer", float: "a number", flag: "true or false",
    url: "an http:// or https:// URL with a host (and a port from 1 to 65535)",
    endpoint: "an API endpoint's URL (http://127.0.0.1:PORT for a local stand-in, https://HOST) or HOST[:PORT]"}
"""What a setting read by each conversion that may fail holds, for the refusal naming it."""


def converted(name: str, kind: Callable[[str], Any], raw: str) -> Any:
    """The value of the variable ``name`` (``raw``) as ``kind`` makes it; :class:`InvalidSetting`
    naming the variable and what was expected when it is not one (a conversion of its own
    names it already)."""
    if kind not in EXPECTED:
        return kind(raw)
    try:
        value = _plain(kind, raw) if kind in (int, float) else kind(raw)
    except ValueError:
        raise InvalidSetting(f"{name}: expected {EXPECTED[kind]}, got {without_userinfo(repr(raw))}") from None
    return _within_exact(name, value) if isinstance(value, int) else value


_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _plain(kind: type[int] | type[float], raw: str) -> int | float:
    """``raw`` as an integer or a number where it is written in plain ASCII digits (``30``,
    ``0.5``, ``1e3``); ``ValueError`` otherwise. Python's own ``int`` and ``float`` also take
    ``1_0``, full-width digits, ``nan`` and ``inf``, none of which a setting means."""
    text = raw.strip()
    if not (_INTEGER if kind is int else _NUMBER).fullmatch(text):
        raise ValueError(text)
    return kind(text)


def _within_exact(name: str, value: int) -> int:
    """An integer setting's ``value``, at most 2**53 in magnitude as a study's integers are
    (:data:`~functions.core.limits.MAX_EXACT_INT`); :class:`InvalidSetting` naming the variable
    otherwise: a larger size, count or number of seconds means nothing, and would overflow where
    it is used (a file read, an SQLite column, a Job's field) with a traceback."""
    if abs(value) > MAX_EXACT_INT:
        raise InvalidSetting(f"{name}: expected an integer of at most 2**53 in magnitude, got {shown(value)}")
    return value


def comma_list(text: str) -> tuple[str, ...]:
    """``a, b,,c`` as its items, each stripped, the empty ones left out."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def workload_kinds(text: str) -> tuple[tuple[str, str], ...]:
    """``KATUNA_TRIAL_KINDS``: the operator's workload kinds, ``Kind.version.group`` as Katib's
    ``trialResources`` lists them, each as its ``(apiVersion, kind)``
    (:func:`~functions.core.trial_kinds.added_kind`); :class:`InvalidSetting` names one that is none."""
    kinds = []
    for item in comma_list(text):
        added = trial_kinds.added_kind(item)
        if isinstance(added, str):
            raise InvalidSetting(f"{PREFIX}TRIAL_KINDS: {added}")
        kinds.append(added)
    return tuple(kinds)


def host_names(text: str) -> tuple[str, ...]:
    """``KATUNA_ALLOWED_HOSTS``: host names (``*.example.org`` for the subdomains) or addresses,
    an IPv6 one kept without brackets, as a request's ``Host`` is compared once its port is
    dropped; :class:`InvalidSetting` naming an entry with a port, scheme or path, which no
    ``Host`` would ever match."""
    hosts = []
    for entry in comma_list(text):
        bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        if ("/" in bare or ":" in bare) and not _is_ipv6(bare):
            raise InvalidSetting(f"{PREFIX}ALLOWED_HOSTS: expected host names alone (example.org, *.example.org), "
                                 f"without a scheme, port or path: they are served on any port; got {entry!r}")
        hosts.append(bare)
    return tuple(hosts)


def _is_ipv6(text: str) -> bool:
    """Whether ``text`` is an IPv6 address, the one host a colon may be part of."""
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _positive(env: Mapping[str, str], name: str, kind: type[int] | type[float] = int) -> int | float | None:
    """The positive number variable ``name`` holds, None when unset; :class:`InvalidSetting` naming it."""
    if not env.get(name):
        return None
    try:
        value = _plain(kind, env[name])
    except ValueError:
        value = 0
    if not 0 < value < math.inf:
        raise InvalidSetting(f"{name}: expected a positive {'number' if kind is float else 'integer'}, got {env[name]!r}")
    return _within_exact(name, value) if isinstance(value, int) else value


def eks_quotas(env: Mapping[str, str]) -> EksQuotas:
    """The EKS account's quotas, each AWS's default unless ``KATUNA_EKS_NODES_PER_GROUP`` or
    ``KATUNA_EKS_GROUPS_PER_CLUSTER`` gives the figure it was raised to."""
    given = {field: _positive(env, f"{PREFIX}EKS_{field.upper()}") for field in ("nodes_per_group", "groups_per_cluster")}
    return EksQuotas(**{field: int(value) for field, value in given.items() if value is not None})


def ce_overrides(text: str) -> tuple[tuple[str, str], ...]:
    """The extensions of ``K_CE_OVERRIDES``, read by the rules the trials' reporter applies to
    its own (that one standard-library file holds them); :class:`InvalidSetting` names what is wrong."""
    try:
        return reporter.parse_overrides(text)
    except ValueError as exc:
        raise InvalidSetting(str(exc)) from exc


def study_limits(env: Mapping[str, str]) -> Limits:
    """The study limits, each numeric default replaced by its ``KATUNA_MAX_<FIELD>`` variable
    where set, the machine types pools may have from ``KATUNA_POOL_MACHINE_TYPES``, and the EKS
    account's quotas."""
    overrides: dict[str, Any] = {"machine_types": comma_list(env.get(f"{PREFIX}POOL_MACHINE_TYPES", "")),
                                 "eks": eks_quotas(env)}
    for item in fields(Limits):
        if isinstance(item.default, (int, float)):
            value = _positive(env, f"{PREFIX}MAX_{item.name.upper()}", type(item.default))
            if value is not None:
                overrides[item.name] = value
    return Limits(**overrides)
