"""Who may reach katuna's HTTP service, and how the events it posts reach their sink: the
settings of :class:`AccessSettings`, part of :class:`functions.settings.Settings`."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from functions import reporter
from functions.core import event_signature


@dataclass(frozen=True)
class AccessSettings:
    """``KATUNA_API_TOKEN`` (unset: the service is open, but listens on and answers loopback only).
    Who may reach the HTTP service (:mod:`functions.adapters.web.guard`): ``KATUNA_ALLOWED_HOSTS``,
    comma-separated host names (no port: a name with one, a scheme or a path is refused at start)
    served besides the loopback names ``localhost``, ``127.0.0.1`` and ``[::1]``;
    ``*.example.org`` allows every subdomain (unset: loopback names only, against DNS rebinding;
    naming other hosts needs ``KATUNA_API_TOKEN``).
    ``KATUNA_SESSION_TTL`` seconds a dashboard login lasts (43200, 12 hours).
    ``KATUNA_TICK_FLOOR`` (10): the fewest seconds between two ticks (``dev.knative.sources.ping``)
    handled for senders nobody vouches for (no token, no OIDC: a broker without OIDC, which
    passes on what any pod posted); a tick sooner is answered and does nothing. 0 handles every one.
    ``KATUNA_CLIENT_TIMEOUT`` seconds (15) a client has to send a request, head and body, from
    when the service starts reading it, and at most each write of an answer waits for the client
    to take more (:mod:`functions.adapters.web.worker`, and ``katuna optuna-dashboard``'s
    :mod:`functions.adapters.web.dashboard_server`); a slower client's connection is closed.
    ``KATUNA_WORKER_TIMEOUT`` whole seconds (60) a ``katuna serve`` worker's main loop may go without
    a heartbeat before gunicorn kills it, with the local trials it owns (gunicorn's ``timeout``;
    a request a thread is serving does not stop the heartbeat, a GIL held that long does).
    ``KATUNA_OIDC_AUDIENCE``: the event paths then also take Knative Eventing's OIDC delivery
    tokens issued for this audience (the Trigger's ``subscriber.audience``), signed by a key of
    ``KATUNA_OIDC_ISSUER_URL`` (the Kubernetes API server, ``https://kubernetes.default.svc``:
    its ``/.well-known/openid-configuration`` names the issuer, ``/openid/v1/jwks`` holds the keys).
    ``KATUNA_OIDC_SUBJECTS`` (comma-separated, unset: any): the only senders such a token is taken
    from, by its ``sub`` claim (``system:serviceaccount:<namespace>:<name>``, the Triggers' OIDC
    accounts; a trailing ``*`` matches every name it begins, as in a Knative EventPolicy); another
    sender's valid token gets 403 (:mod:`functions.core.senders`). Trials may never run as these
    accounts, so a study naming one in the namespace its trials run in is refused, and
    ``KATUNA_K8S_SERVICE_ACCOUNT`` (or ``default``) in ``KATUNA_K8S_NAMESPACE`` matching one stops
    the service at start.
    Events posted to ``K_SINK`` carry the OIDC token Knative's SinkBinding mounts at
    ``KATUNA_SINK_TOKEN_FILE`` (``/oidc/token``; none while the file is absent), read again at
    each post since it is rotated, and trust the PEM certificates of ``K_CA_CERTS`` (set by the
    SinkBinding for an https sink) and those of the cluster's trust bundles, which the binding
    mounts at ``KATUNA_TRUST_BUNDLES`` (``/knative-custom-certs``), besides the system's. Each
    carries the extensions of ``K_CE_OVERRIDES`` (the SinkBinding's ``ceOverrides`` as JSON:
    :func:`functions.reporter.parse_overrides`; one that is no such JSON, or names an attribute
    katuna sets, stops the service at start).
    ``KATUNA_METRICS_TOKEN`` (unset): a bearer token that reaches ``GET /metrics`` only, for a
    Prometheus scrape (the API token reaches it too; with neither set, loopback Hosts only).
    Each token, where set, has :data:`~functions.settings.checks.TOKEN_CHARACTERS` characters at
    least and no space, of :data:`~functions.settings.checks.TOKEN_VARIETY` different ones at
    least and not one string repeated, and the metrics token is not the API token, or katuna
    stops at start.
    Neither token is part of the settings' ``repr``: a log line, a traceback showing its frames'
    locals or a debugger that shows the settings shows no token.
    """

    api_token: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    session_ttl: float = 12 * 3600.0
    tick_floor: float = 10.0
    oidc_audience: str | None = None
    oidc_subjects: tuple[str, ...] = ()
    oidc_issuer_url: str = "https://kubernetes.default.svc"
    client_timeout: float = 15.0
    worker_timeout: int = 60
    sink_token_file: Path = Path("/oidc/token")
    sink_ca_certs: str | None = None
    trust_bundles: Path = Path(reporter.TRUST_BUNDLES)
    ce_overrides: tuple[tuple[str, str], ...] = ()

    @property
    def event_key(self) -> bytes | None:
        """The key katuna signs its events with, made from the API token; None without one."""
        return event_signature.event_key(self.api_token) if self.api_token else None

    def sink_tls(self) -> ssl.SSLContext:
        """The TLS context for an https ``K_SINK``, trusting what Knative's senders trust; asked
        for at each post, so a rotated trust bundle is trusted from the next one."""
        return reporter.tls_context(self.sink_ca_certs, str(self.trust_bundles))
